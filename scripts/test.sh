#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Run every test: host (cargo test), then the guest suite (Ferrite's
# igt-tests and Debian's generic IGT tests under igt_runner) with the
# console scanned for kernel reports. Prints `PASS|FAIL|SKIP name` per test
# and ends with `N passed, N failed, N skipped`.
#
# usage: test.sh [main|debug]
. "$(dirname "$0")/lib.sh"
FLAVOUR=${1:-${FERRITE_KERNEL:-main}}

# The generic IGT tests that apply to a render-only driver (see README).
IGT_GENERIC="core_getversion core_getclient core_getstats syncobj_basic syncobj_wait syncobj_timeline"

mkdir -p "$FERRITE_CACHE"
results=$FERRITE_CACHE/results.txt
: >"$results"
report() { echo "$*" | tee -a "$results"; }

set +e
"$FERRITE_REPO/scripts/build.sh" "$FLAVOUR"
build_rc=$?
set -e
if [ $build_rc -ne 0 ]; then
	report "FAIL build (scripts/build.sh $FLAVOUR exited $build_rc)"
fi

stage "host: cargo test"
host_log=$FERRITE_CACHE/cargo-test.log
set +e
(cd "$FERRITE_REPO" && cargo test --release --workspace --no-fail-fast 2>&1) >"$host_log"
set -e
n=0
while read -r verdict name; do
	n=$((n + 1))
	case $verdict in
	ok) report "PASS host: $name" ;;
	ignored) report "SKIP host: $name (ignored)" ;;
	*) report "FAIL host: $name" ;;
	esac
done < <(sed -n -E 's/^test (.*) \.\.\. (ok|FAILED|ignored)$/\2 \1/p' "$host_log")
# Compile errors only: "error: test failed" lines follow failed tests, reported above.
grep -E '^error(\[E[0-9]+\])?: ' "$host_log" | grep -qvE 'test failed|targets? failed' &&
	report "FAIL host: cargo test did not build (see $host_log)"
[ $n -gt 0 ] || report "FAIL host: cargo test ran no test (see $host_log)"

stage "host: style checks"
if in_rootfs /bin/sh -c "cd $FERRITE_REPO && rustfmt --edition 2021 --check \
	--config-path $KBUILD/linux-$LINUX_VERSION/.rustfmt.toml drivers/gpu/drm/ferrite/ferrite.rs" \
	>"$FERRITE_CACHE/rustfmt.log" 2>&1; then
	report "PASS host: rustfmt (kernel .rustfmt.toml) on drivers/gpu/drm/ferrite"
else
	report "FAIL host: rustfmt on drivers/gpu/drm/ferrite (see $FERRITE_CACHE/rustfmt.log)"
fi
if (cd "$FERRITE_REPO" && cargo fmt --all --check) >"$FERRITE_CACHE/cargo-fmt.log" 2>&1; then
	report "PASS host: cargo fmt --check"
else
	report "FAIL host: cargo fmt --check (see $FERRITE_CACHE/cargo-fmt.log)"
fi
if (cd "$FERRITE_REPO" && cargo clippy --release --workspace --all-targets -- -D warnings) \
	>"$FERRITE_CACHE/clippy.log" 2>&1; then
	report "PASS host: cargo clippy -D warnings"
else
	report "FAIL host: cargo clippy (see $FERRITE_CACHE/clippy.log)"
fi

if [ $build_rc -eq 0 ]; then
	stage "guest($FLAVOUR): booting with the Ferrite GPU, running igt_runner"
	job=$FERRITE_CACHE/guest-tests.job
	{
		echo "export FERRITE_IGT_GENERIC='$IGT_GENERIC'"
		cat "$FERRITE_REPO/scripts/guest-tests.sh"
	} >"$job"
	set +e
	"$FERRITE_REPO/scripts/vm.sh" --kernel "$FLAVOUR" --name tests --timeout 1800 \
		--gpu 48:2147483648 --gpu 32:65536 "$job" |
		sed 's/^/  | /'
	vm_rc=${PIPESTATUS[0]}
	set -e
	D=$RUNDIR/tests
	if [ -f "$D/results/results.json" ]; then
		python3 "$FERRITE_REPO/scripts/igt-results.py" "$D/results/results.json" "$D/testlist" |
			tee -a "$results"
	else
		report "FAIL guest: igt_runner produced no results (vm exit $vm_rc, see $D)"
	fi
	python3 "$FERRITE_REPO/scripts/kunit-results.py" "$D/kunit" | tee -a "$results"
	if [ -f "$D/reload.result" ]; then
		tee -a "$results" <"$D/reload.result"
	else
		report "FAIL guest: driver reload did not run"
	fi
	[ "$vm_rc" -eq 0 ] || report "FAIL guest: job (driver load/unload, runner) exited $vm_rc, see $D/job.log"
	if [ -f "$D/kmemleak.txt" ]; then
		if grep -q '^unreferenced object' "$D/kmemleak.txt"; then
			report "FAIL guest: kmemleak found leaks (see $D/kmemleak.txt)"
		else
			report "PASS guest: kmemleak scan after the tests found no leak"
		fi
	fi
	if first=$("$FERRITE_REPO/scripts/console-scan.sh" "$D/console.log"); then
		report "PASS guest: console has no kernel report"
	else
		report "FAIL guest: console has a kernel report: $first"
	fi
fi

p=$(grep -c '^PASS' "$results" || true)
f=$(grep -c '^FAIL' "$results" || true)
s=$(grep -c '^SKIP' "$results" || true)
stage "tests done"
echo "$p passed, $f failed, $s skipped"
[ "$f" -eq 0 ]
