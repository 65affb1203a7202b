#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The test runner of the arm64 guests, where Debian has no igt_runner (IGT
# is packaged for amd64 only). It speaks the same test protocol: every
# subtest of the list runs in an execution of its own, as
# `BIN --run-subtest NAME`, whose exit code is the verdict (0 pass, 77
# skip, anything else a failure; killed after the per-test timeout).
#
# usage: guest-runner.sh TEST_ROOT TESTLIST OUTDIR [TIMEOUT]
# Writes OUTDIR/results.tsv (name, result, seconds) and OUTDIR/NAME.out,
# which scripts/igt-results.py reads as it reads igt_runner's results.json.
set -u
root=$1 list=$2 out=$3 limit=${4:-120}
# Built in tmpfs, copied to OUTDIR (a 9p share) at the end.
work=/tmp/guest-runner
rm -rf "$work"; mkdir -p "$work"
while read -r name; do
	[ -n "$name" ] || continue
	rest=${name#igt@}
	bin=${rest%%@*}
	args=()
	[ "$bin" != "$rest" ] && args=(--run-subtest "${rest#*@}")
	t0=$(cut -d' ' -f1 /proc/uptime)
	timeout -s KILL "$limit" "$root/$bin" "${args[@]}" </dev/null >"$work/$name.out" 2>&1
	rc=$?
	t1=$(cut -d' ' -f1 /proc/uptime)
	case $rc in
	0) result=pass ;;
	77) result=skip ;;
	137) result=timeout ;;
	*) result=fail ;;
	esac
	printf '%s\t%s\t%s\n' "$name" "$result" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')" \
		>>"$work/results.tsv"
done <"$list"
mkdir -p "$out"
cp "$work"/* "$out/"
