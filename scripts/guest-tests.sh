#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Job run inside the guest by `make test`: load the driver, run Ferrite's
# tests and the generic IGT tests under Debian's igt_runner, unload.
# $FERRITE_IGT_GENERIC lists the generic IGT binaries to run.
set -u
share=$PWD
igt=/opt/igt/usr/libexec/igt-gpu-tools
[ "${FERRITE_ARCH:-x86}" = x86 ] && export LD_LIBRARY_PATH=/opt/igt/usr/lib/x86_64-linux-gnu
export IGT_FORCE_DRIVER=ferrite
# The run directory, shared with the host (ferrite_robust@model-killed asks
# the host to kill a device model through it).
export FERRITE_SHARE=$share
# Progress lines carry the guest's uptime, so a slow phase shows in job.log.
say() { echo "guest: [$(cut -d' ' -f1 /proc/uptime)] $*"; }

# KUnit suites built into the kernel ran at boot; keep their results.
mkdir -p "$share/kunit"
for d in /sys/kernel/debug/kunit/*/; do
	[ -f "$d/results" ] && cp "$d/results" "$share/kunit/$(basename "$d").ktap"
done
say "$(ls "$share/kunit" | wc -l) KUnit suites"

# With kmemleak (debug kernel): forget what boot left, so the scan at the
# end reports only what the tests leaked.
kmemleak=/sys/kernel/debug/kmemleak
[ -w "$kmemleak" ] && echo clear >"$kmemleak" && say "kmemleak: cleared"

say "insmod ferrite.ko"
insmod "$FERRITE_KO" || { echo "guest: insmod failed"; exit 1; }
for _ in $(seq 50); do ls /dev/dri/renderD* >/dev/null 2>&1 && break; sleep 0.1; done
ls -l /dev/dri

# vgem: a second, kernel-only DRM driver for the dma-buf tests (Ferrite's
# and IGT's generic ones).
modprobe vgem || echo "guest: modprobe vgem failed"
say "vgem loaded; listing subtests"

root=/tmp/igt-root
mkdir -p "$root"
for t in $FERRITE_IGT_GENERIC; do ln -s "$igt/$t" "$root/$t"; done
for t in "$FERRITE_TESTS"/*; do [ -x "$t" ] && ln -s "$t" "$root/$(basename "$t")"; done

# igt_runner checks test names against test_root/test-list.txt.
{ echo TESTLIST; (cd "$root" && ls | tr '\n' ' '); echo; echo "END TESTLIST"; } >"$root/test-list.txt"

# Built in tmpfs and copied to the share once, instead of an append over
# 9p per line.
for t in "$root"/*; do
	b=$(basename "$t")
	[ "$b" = test-list.txt ] && continue
	subs=$("$t" --list-subtests 2>/dev/null)
	if [ -z "$subs" ]; then
		echo "igt@$b"
	else
		for s in $subs; do echo "igt@$b@$s"; done
	fi
done >/tmp/testlist
# Keep only what this boot runs.
if [ -n "${FERRITE_TEST_FILTER:-}" ]; then
	grep -E "$FERRITE_TEST_FILTER" /tmp/testlist >/tmp/testlist.f || true
	mv /tmp/testlist.f /tmp/testlist
fi
if [ -n "${FERRITE_TEST_EXCLUDE:-}" ]; then
	grep -vE "$FERRITE_TEST_EXCLUDE" /tmp/testlist >/tmp/testlist.f || true
	mv /tmp/testlist.f /tmp/testlist
fi
cp /tmp/testlist "$share/testlist"
say "$(wc -l <"$share/testlist") subtests"

# FERRITE_IGT_MULTIPLE=1: one execution of each test binary runs all its
# subtests (each still in a process of its own, forked by ftest), instead
# of one execution per subtest: under KASAN and TCG an exec costs more
# than most subtests.
if [ -x /opt/igt/usr/bin/igt_runner ]; then
	say "igt_runner starts"
	/opt/igt/usr/bin/igt_runner -o -l quiet ${FERRITE_IGT_MULTIPLE:+--multiple-mode} --test-list "$share/testlist" \
		--per-test-timeout 120 --inactivity-timeout 90 -e IGT_FORCE_DRIVER -e LD_LIBRARY_PATH -e FERRITE_SHARE \
		"$root" "$share/results" >"$share/runner.log" 2>&1
	rc=$?
	say "igt_runner exited $rc"
else
	# The arm64 guests: no igt_runner (see scripts/guest-runner.sh).
	say "guest-runner starts"
	bash "$share/guest-runner.sh" "$root" "$share/testlist" "$share/results" 120 \
		>"$share/runner.log" 2>&1
	say "guest-runner exited $?"
fi

# The ioctl fuzzer (userspace/src/bin/ferrite-fuzz): random and structured
# sequences of every ioctl from 2 threads and 2 processes (plus one that
# opens and closes files, and one that forks), bounded in calls and time.
if [ -n "${FERRITE_FUZZ_CALLS:-}" ]; then
	say "ferrite-fuzz --calls $FERRITE_FUZZ_CALLS"
	"$FERRITE_BIN/ferrite-fuzz" --calls "$FERRITE_FUZZ_CALLS" \
		--seconds "${FERRITE_FUZZ_SECONDS:-150}" --threads 2 --procs 2 \
		</dev/null >"$share/fuzz.log" 2>&1
	frc=$?
	summary=$(grep '^fuzz: calls=' "$share/fuzz.log" | tail -1)
	if [ $frc -eq 0 ] && [ -n "$summary" ]; then
		echo "PASS guest: ioctl fuzzer (${summary#fuzz: })"
	else
		echo "FAIL guest: ioctl fuzzer exited $frc (${summary:-no summary}; see fuzz.log)"
	fi >"$share/fuzz.result"
fi

say "rmmod ferrite"
rmmod ferrite || { echo "guest: rmmod failed"; exit 1; }

# Bind again (the probe resets the device and self-tests MSI-X) and unbind:
# vectors, BARs and the DRM device must all have been released.
if [ "${FERRITE_RELOAD:-1}" = 1 ]; then
	reload=FAIL
	if insmod "$FERRITE_KO" && [ -e /dev/dri/renderD128 ] && rmmod ferrite; then
		reload=PASS
	fi
	echo "$reload guest: driver reload (rebind, reset, MSI-X self-test, unbind)" >"$share/reload.result"
fi

if [ -w "$kmemleak" ]; then
	# Two scans: kmemleak reports an object only once it was unreferenced
	# in consecutive scans.
	echo scan >"$kmemleak"; sleep 6; echo scan >"$kmemleak"
	cat "$kmemleak" >"$share/kmemleak.txt"
	say "kmemleak: $(grep -c '^unreferenced object' "$share/kmemleak.txt") leak(s)"
fi
exit 0
