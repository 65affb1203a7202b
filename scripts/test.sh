#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Run every test: host (cargo test), then the guest suite (Ferrite's
# igt-tests and Debian's generic IGT tests under igt_runner) with the
# console scanned for kernel reports. Prints `PASS|FAIL|SKIP name` per test
# and ends with `N passed, N failed, N skipped`.
#
# usage: test.sh [main|debug]
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
FLAVOUR=${1:-${FERRITE_KERNEL:-main}}

# The generic IGT tests that apply to a render-only driver (see README).
IGT_GENERIC="core_getversion core_getclient core_getstats core_hotunplug syncobj_basic syncobj_wait syncobj_timeline vgem_basic dmabuf_sync_file sw_sync"

mkdir -p "$FERRITE_CACHE"
results=$FERRITE_CACHE/results.txt
# Every stage's start, for the summary of where the time went.
export FERRITE_TIMES=$FERRITE_CACHE/times.txt
: >"$FERRITE_TIMES"
stage "setup: make test ($FLAVOUR) with FERRITE_CACHE=$FERRITE_CACHE"
# The device model checks the driver's TLB discipline in every boot (see
# gpu-model/src/audit.rs, audit): reported in each boot's results.
export FERRITE_MODEL_AUDIT=1
: >"$results"
report() { echo "$*" | tee -a "$results"; }

# FERRITE_BOOTS picks boots for a quick local run (default: all of them);
# FERRITE_ONLY narrows the main and debug boots to matching subtests.
BOOTS=${FERRITE_BOOTS:-main swiotlb highmem kill debug arm64-4k arm64-16k arm64-swiotlb}
[ "${FERRITE_SKIP_DEBUG:-0}" = 1 ] && BOOTS=${BOOTS/debug/}
boot() { case " $BOOTS " in *" $1 "*) return 0 ;; esac; return 1; }

set +e
"$FERRITE_REPO/scripts/build.sh" "$FLAVOUR"
build_rc=$?
set -e
if [ $build_rc -ne 0 ]; then
	report "FAIL build (scripts/build.sh $FLAVOUR exited $build_rc)"
fi

# The guest boots, in the order they run: one row each, run by run_boot.
#   boot     its name in FERRITE_BOOTS
#   dir      its run directory under $RUNDIR (and guest-DIR.job)
#   label    results are reported as "guest(LABEL): ..."
#   kernel   main: the kernel this run built ($FLAVOUR: main, or debug for
#            `make test debug`); debug, arm64-4k, arm64-16k: a kernel that
#            a main run builds in the background (below), waited for here
#   mem      guest memory (-: ${GUEST_MEM:-2G})
#   append   kernel command line additions
#   generic  yes: the generic IGT tests ($IGT_GENERIC) run too
#   reload   1: the driver is unloaded, bound again and unloaded, and the
#            suites built into the kernel (KUnit) are reported from here
#   fuzz     ioctl fuzzer calls
#   only     what FERRITE_ONLY (a local run) does to it: narrow (only the
#            matching subtests, no generic IGT tests, no fuzzer), narrow+quick
#            (the same, and no reload)
#   env      more guest environment (VAR=value); FERRITE_VM_ARGS=... adds
#            options of scripts/vm.sh (--noncoherent)
#   tests    the subtests it runs, a grep -E pattern on igt@test@subtest
#            names (-: all)
#   exclude  the subtests it leaves out (the same)
# A - is an empty field. The patterns hold no blanks.
#
# Subtests with a boot of their own, or the debug kernel's.
own='^igt@ferrite_sync@stale-|^igt@ferrite_prime@reach-|^igt@ferrite_robust@(model-killed|fault-injection|page-fault-injection)'
# Mirror VMs (ferrite_svm) need direct, coherent DMA and a process
# address space that leaves room above it in the GPU's: the x86 boots
# (main, debug) run them; every boot runs refused-without-mirroring,
# which checks that a device that cannot mirror says so. arm64 with
# 48-bit user addresses has no GPU VA left above the process's, and
# arm64-16k's DMA is not coherent (see ferrite.rst, Known gaps).
svm_only='^igt@ferrite_svm@refused-without-mirroring'
svm_arm64='^igt@ferrite_svm@(malloc|file|fork|munmap|mprotect|migrate|swap|fault|stalled|thp|foreign|bad)'
BOOT_TABLE=(
	#boot   dir           label         kernel     mem append         generic reload fuzz   only         env                    tests and exclude
	# slub_debug: poisoned and red-zoned slab objects, so that a stray
	# write (a device's included) is reported where it lands.
	# Everything, except the subtests that need every DMA mapping bounced.
	"main    tests         main          main       -   slub_debug=FZP yes     1      100000 narrow+quick -                      -
		$own"
	# Every DMA mapping bounced through swiotlb: a missing or misplaced
	# dma_sync shows as stale data, a wrong DMA direction as data copied
	# back where it must not be (read-only userptrs of shared pages). The
	# ownership-transfer tests and every path that takes user memory
	# (the others read GPU results without GEM_SYNC, as is fine on
	# coherent x86), and the fuzzer, which makes read-only, zero-page and
	# file-backed userptrs.
	"swiotlb tests-swiotlb swiotlb=force main       -   swiotlb=force  no      0      20000  -            -                      ^igt@ferrite_(sync|userptr|bind)@|$svm_only
		-"
	# Memory above 4 GiB: pages the 32-bit GPU cannot reach exist, so the
	# dma-buf reach tests (allocation on attach, refusal) run here only,
	# and the userptr tests (every subtest on each GPU) see pages the
	# 32-bit GPU reaches only through bounce buffers.
	"highmem tests-highmem 6G            main       6G  -              no      0      -      -            -                      ^igt@ferrite_prime@reach-|^igt@ferrite_userptr@|$svm_only
		-"
	# Surprise removal: GPU 1's device process is killed under a hung job;
	# GPU 1 stays dead, so nothing else runs in this boot.
	"kill    tests-kill    model-killed  main       -   -              no      0      -      -            -                      ^igt@ferrite_robust@model-killed
		-"
	# The debug kernel (KASAN, lockdep, DMA-API debug, kmemleak, UBSAN):
	# Ferrite's own tests, the driver reload and a kmemleak scan. The
	# generic IGT tests stay on the main kernel: under KASAN and TCG the
	# syncobj ones alone take over 20 minutes. ferrite_sched@fairness
	# measures shares of GPU time, which the main boot checks; under KASAN
	# and lockdep the kernel's time per job, not the scheduler, sets them
	# (its code paths run here in many-queues, realtime and
	# preempt-mid-job). It runs once the background build is done.
	"debug   tests-debug   debug         debug      -   -              no      1      20000  narrow       FERRITE_IGT_MULTIPLE=1 ^igt@ferrite_
		^igt@ferrite_sync@stale-|^igt@ferrite_prime@reach-|^igt@ferrite_robust@model-killed|^igt@ferrite_sched@fairness"
	# arm64 (QEMU virt, GICv3 ITS, PCIe), the platform of the hardware
	# Ferrite stands for, with the same two GPUs. No igt_runner (Debian's
	# IGT is amd64-only: scripts/guest-runner.sh runs the tests), no
	# generic IGT tests, no fuzzer (a host-built Rust program). 4 KiB
	# pages, coherent DMA: Ferrite's tests as the main boot runs them.
	"arm64-4k arm64-4k    arm64-4k      arm64-4k   -   slub_debug=FZP no      1      -      narrow       -                      ^igt@ferrite_
		$own|$svm_arm64"
	# 16 KiB CPU pages (one CPU page is four GPU pages) and DMA that is
	# not cache-coherent: the PCIe host bridge without dma-coherent, so
	# every dma_sync_* is cache maintenance, as on Tegra- and AGX-class
	# SoCs. The same tests.
	"arm64-16k arm64-16k  arm64-16k     arm64-16k  -   slub_debug=FZP no      1      -      narrow       FERRITE_VM_ARGS=--noncoherent ^igt@ferrite_
		$own|$svm_arm64"
	# 16 KiB pages with every DMA mapping bounced (swiotlb=force): the
	# ownership tests, as the x86 swiotlb boot runs them, with 256 MiB of
	# bounce buffers (131072 slots of 2 KiB) instead of 64: the tests'
	# buffers are counted in CPU pages, four times as large. Coherent: a
	# non-coherent table walk needs its tables at bus address == physical
	# address (io-pgtable maps each with the DMA API and refuses a
	# translated one), which a forced bounce never gives.
	"arm64-swiotlb arm64-swiotlb arm64-16k-swiotlb=force arm64-16k - swiotlb=131072,force no 0 - - -                      ^igt@ferrite_(sync|userptr|bind)@|$svm_only
		-"
)

# The kernels other than $FLAVOUR's that the boots picked need (the debug
# kernel, the arm64 kernels) build one after the other in the background,
# at the lowest CPU priority (nice 19), while the host tests and the main
# kernel's boots run: the guests, mostly waiting on emulated devices and
# timeouts, leave a core idle much of the time, and the builds take only
# what they leave. Each one's exit code lands in kernel-NAME.rc.
bg_kernels=()
if [ $build_rc -eq 0 ] && [ "$FLAVOUR" = main ]; then
	for row in "${BOOT_TABLE[@]}"; do
		read -r b _ _ k _ <<<"$row"
		boot "$b" && [ "$k" != main ] || continue
		case " ${bg_kernels[*]} " in *" $k "*) ;; *) bg_kernels+=("$k") ;; esac
	done
fi
for k in "${bg_kernels[@]}"; do rm -f "$FERRITE_CACHE/kernel-$k.rc" "$FERRITE_CACHE/kernel-$k.secs"; done
if [ ${#bg_kernels[@]} -gt 0 ]; then
	stage "kernels(${bg_kernels[*]}): building in the background (nice 19), logs in $FERRITE_CACHE/kernel-NAME.log"
	(
		for k in "${bg_kernels[@]}"; do
			t0=$(now)
			FERRITE_TIMES='' nice -n 19 "$FERRITE_REPO/scripts/build.sh" "$k" \
				>"$FERRITE_CACHE/kernel-$k.log" 2>&1
			rc=$?
			echo "$(( $(now) - t0 ))" >"$FERRITE_CACHE/kernel-$k.secs"
			echo $rc >"$FERRITE_CACHE/kernel-$k.rc"
		done
	) &
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

# The kernel changes as a patch series: git am onto the pristine tree, the
# result against the tree the kernel build compiled, checkpatch --strict
# (scripts/series.sh prints its PASS/FAIL host: lines).
if ! "$FERRITE_REPO/scripts/series.sh" --check | tee -a "$results"; then
	report "FAIL host: series (scripts/series.sh --check failed, see above)"
fi

# run_boot ROW: the guest boot of one row of BOOT_TABLE, if FERRITE_BOOTS
# picks it; its results are reported as "guest(LABEL): ...".
run_boot() {
	local boot dir label kernel mem append generic reload fuzz only env tests exclude
	# (A row spans two lines: read to its end, which read reports as EOF.)
	read -r -d '' boot dir label kernel mem append generic reload fuzz only env tests exclude <<<"$1" || true
	boot "$boot" || return 0
	[ "$mem" != - ] || mem=${GUEST_MEM:-2G}
	[ "$env" != - ] || env=${GUEST_ENV:-}
	[ "$append" != - ] || append=
	[ "$fuzz" != - ] || fuzz=
	[ "$tests" != - ] || tests=
	[ "$exclude" != - ] || exclude=
	if [ "$generic" = yes ]; then
		generic=$IGT_GENERIC
	else
		generic=
	fi
	if [ -n "${FERRITE_ONLY:-}" ] && [ "$only" != - ]; then
		tests=$FERRITE_ONLY generic='' fuzz=
		[ "$only" != narrow+quick ] || reload=0
	fi
	if [ "$kernel" = main ]; then
		kernel=$FLAVOUR
	else
		# A kernel built in the background (above), if this run builds
		# it at all.
		case " ${bg_kernels[*]} " in *" $kernel "*) ;; *) return 0 ;; esac
		if [ ! -f "$FERRITE_CACHE/kernel-$kernel.rc" ]; then
			stage "kernel($kernel): waiting for the background build"
			while [ ! -f "$FERRITE_CACHE/kernel-$kernel.rc" ]; do sleep 2; done
		fi
		if [ "$(cat "$FERRITE_CACHE/kernel-$kernel.rc")" != 0 ]; then
			tail -20 "$FERRITE_CACHE/kernel-$kernel.log" | sed 's/^/  | /'
			report "FAIL build: $kernel kernel, module or tests (see $FERRITE_CACHE/kernel-$kernel.log)"
			return 0
		fi
		grep -h '==>' "$FERRITE_CACHE/kernel-$kernel.log" | sed 's/^/  | /'
	fi
	local job=$FERRITE_CACHE/guest-$dir.job D=$RUNDIR/$dir vm_rc first vm_args=()
	case $env in FERRITE_VM_ARGS=*) read -r -a vm_args <<<"${env#FERRITE_VM_ARGS=}"; env= ;; esac
	stage "guest($kernel kernel, $label): booting with two Ferrite GPUs, running the tests"
	{
		echo "export FERRITE_IGT_GENERIC='$generic'"
		echo "export FERRITE_TEST_FILTER='$tests' FERRITE_TEST_EXCLUDE='$exclude'"
		echo "export FERRITE_RELOAD=$reload FERRITE_FUZZ_CALLS='$fuzz' FERRITE_FUZZ_SECONDS=150"
		[ -z "$env" ] || echo "export $env"
		cat "$FERRITE_REPO/scripts/guest-tests.sh"
	} >"$job"
	set +e
	FERRITE_GUEST_MEM=$mem "$FERRITE_REPO/scripts/vm.sh" --kernel "$kernel" --name "$dir" --timeout 2400 "${vm_args[@]}" \
		${append:+--append "$append"} --gpu 48:2147483648 --gpu 32:65536:0xffff "$job" |
		sed 's/^/  | /'
	vm_rc=${PIPESTATUS[0]}
	set -e
	{
		if [ -f "$D/results/results.json" ] || [ -f "$D/results/results.tsv" ]; then
			python3 "$FERRITE_REPO/scripts/igt-results.py" "$D/results" "$D/testlist"
		else
			echo "FAIL guest: the test runner produced no results (vm exit $vm_rc, see $D)"
		fi
		[ -f "$D/fuzz.result" ] && cat "$D/fuzz.result"
		[ -n "$fuzz" ] && [ ! -f "$D/fuzz.result" ] && echo "FAIL guest: ioctl fuzzer did not run"
		if [ "$reload" = 1 ]; then
			# KUnit ran at boot: report it once, from the main boot.
			python3 "$FERRITE_REPO/scripts/kunit-results.py" "$D/kunit"
			if [ -f "$D/reload.result" ]; then
				cat "$D/reload.result"
			else
				echo "FAIL guest: driver reload did not run"
			fi
		fi
		# The driver's own KUnit suites (each `#[kunit_tests(..)]` in its
		# source) run when the module is loaded, in every boot: each
		# one's first run's KTAP, from the console.
		mkdir -p "$D/kunit-module"
		# shellcheck disable=SC2013 # (suite names are words)
		for suite in $(sed -nE 's/^#\[kunit_tests\(([a-z0-9_]+)\)\]$/\1/p' \
			"$FERRITE_REPO"/drivers/gpu/drm/ferrite/*.rs); do
			# (awk reads to the end: an early exit would kill the pipe's
			# writers with SIGPIPE, which pipefail turns into a failed run.)
			tr -d '\r' <"$D/console.log" | sed -E 's/^\[[^]]*\] //' | awk -v s="$suite" '
				done { next }
				$0 ~ "^ *# Subtest: " s "$" { on = 1 }
				on { print }
				on && $0 ~ "^(not )?ok [0-9]+ " s "$" { done = 1 }
			' >"$D/kunit-module/$suite.ktap"
		done
		python3 "$FERRITE_REPO/scripts/kunit-results.py" "$D/kunit-module"
		[ "$vm_rc" -eq 0 ] || echo "FAIL guest: job (driver load/unload, runner) exited $vm_rc, see $D/job.log"
		if [ -f "$D/kmemleak.txt" ]; then
			if grep -q '^unreferenced object' "$D/kmemleak.txt"; then
				echo "FAIL guest: kmemleak found leaks (see $D/kmemleak.txt)"
			else
				echo "PASS guest: kmemleak scan after the tests found no leak"
			fi
		fi
		# The device model's audit (FERRITE_MODEL_AUDIT, set below): a
		# translation the driver changed without invalidating it, or a
		# device write into a page-table page.
		if grep -qs 'audit:' "$D"/gpu*.log; then
			echo "FAIL guest: the device model's audit reported: $(grep -h -m1 'audit:' "$D"/gpu*.log)"
		else
			echo "PASS guest: the device model's audit found no stale translation or page-table write"
		fi
		if first=$("$FERRITE_REPO/scripts/console-scan.sh" "$D/console.log"); then
			echo "PASS guest: console has no kernel report"
		else
			echo "FAIL guest: console has a kernel report: $first"
		fi
	} | sed -E "s/^(PASS|FAIL|SKIP) (guest|kunit):/\1 \2($label):/" | tee -a "$results"
}

if [ $build_rc -eq 0 ]; then
	for row in "${BOOT_TABLE[@]}"; do
		run_boot "$row"
	done
fi

stage_summary
for k in "${bg_kernels[@]}"; do
	[ -f "$FERRITE_CACHE/kernel-$k.secs" ] || continue
	awk -v s="$(cat "$FERRITE_CACHE/kernel-$k.secs")" -v k="$k" 'BEGIN {
		printf "time: %-44s %3dm%02ds\n", "kernel(" k ") in the background, overlapped", s / 60, s % 60 }'
done
p=$(grep -c '^PASS' "$results" || true)
f=$(grep -c '^FAIL' "$results" || true)
s=$(grep -c '^SKIP' "$results" || true)
stage "tests done"
echo "$p passed, $f failed, $s skipped"
[ "$f" -eq 0 ]
