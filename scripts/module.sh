#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Build the Ferrite driver as an external module against the built kernel.
# Output goes to the cache (MO=), never into the repo.
#
# usage: module.sh [main|debug|arm64-4k|arm64-16k]
. "$(dirname "$0")/lib.sh"
FLAVOUR=${1:-main}
OUT=$KBUILD/build-$FLAVOUR
MO=$KBUILD/module-$FLAVOUR
[ -f "$OUT/Module.symvers" ] || die "kernel $FLAVOUR is not built; run scripts/kernel.sh $FLAVOUR"

stage "module($FLAVOUR): make M=$FERRITE_REPO MO=$MO"
mkdir -p "$MO"
if ! in_rootfs make -C "$KBUILD/linux-$LINUX_VERSION" O="$OUT" M="$FERRITE_REPO" MO="$MO" \
	$(kmake_arch "$FLAVOUR") LLVM=-19 CLIPPY=1 -j"$(nproc)" modules >"$MO/build.log" 2>&1; then
	cat "$MO/build.log" >&2
	die "module build failed"
fi
# The module is compiled with clippy-driver (CLIPPY=1): lints are warnings.
if grep -qE '^(warning|error)' "$MO/build.log"; then
	grep -E -A6 '^(warning|error)' "$MO/build.log" | head -60
	die "the driver has compiler or clippy warnings (see $MO/build.log)"
fi
[ -f "$MO/drivers/gpu/drm/ferrite/ferrite.ko" ] || die "no ferrite.ko in $MO"
