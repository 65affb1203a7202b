#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The main job: build what is missing, start the Ferrite GPU model, boot the
# guest, load the driver and run the demo.
#
# usage: run.sh [main|debug]
. "$(dirname "$0")/lib.sh"
FLAVOUR=${1:-${FERRITE_KERNEL:-main}}

"$FERRITE_REPO/scripts/build.sh" "$FLAVOUR"

job=$FERRITE_CACHE/demo.job
cat >"$job" <<'JOB'
set -e
echo "guest: $(uname -sr), $(nproc) CPUs"
insmod "$FERRITE_KO"
dmesg | grep -E 'ferrite [0-9a-f]{4}:|\[drm\].*ferrite' | sed 's/^/guest dmesg: /'
echo "guest: $ ferrite demo"
"$FERRITE_BIN/ferrite" demo
rmmod ferrite
echo "guest: driver unloaded"
JOB
stage "guest($FLAVOUR): boot, load the driver, run the demo"
set +e
"$FERRITE_REPO/scripts/vm.sh" --kernel "$FLAVOUR" --name demo --timeout 600 "$job"
rc=$?
set -e
if ! first=$("$FERRITE_REPO/scripts/console-scan.sh" "$RUNDIR/demo/console.log"); then
	echo "kernel report in the guest console: $first" >&2
	rc=1
fi
stage "done (exit $rc; console log: $RUNDIR/demo/console.log)"
exit $rc
