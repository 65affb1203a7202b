#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Benchmarks, each printing ratios measured in one run.
. "$(dirname "$0")/lib.sh"
"$FERRITE_REPO/scripts/setup-host.sh"
stage "bench: device model (host)"
(cd "$FERRITE_REPO" && cargo build --release --quiet -p ferrite-gpu-model) || die "cargo build failed"
"$CARGO_TARGET_DIR/release/model-bench"

# The driver, in the guest: null ioctl floor, VM_BIND of 4 KiB / 1 MiB /
# 32 MiB, NOP submit to fence, with the device's counters per call.
"$FERRITE_REPO/scripts/build.sh" main
job=$FERRITE_CACHE/bench.job
cat >"$job" <<'JOB'
set -e
insmod "$FERRITE_KO"
"$FERRITE_BIN/ferrite" bench
rmmod ferrite
JOB
stage "bench: driver (x86-64 guest, TCG)"
"$FERRITE_REPO/scripts/vm.sh" --name bench --timeout 600 "$job"

# The same on the arm64 guests (FERRITE_BENCH_ARM64=0 leaves them out):
# 4 KiB pages, and 16 KiB pages with non-coherent DMA, as make test boots
# them. Under TCG an arm64 guest emulates a different instruction set,
# so compare ratios, not times, across architectures.
if [ "${FERRITE_BENCH_ARM64:-1}" = 1 ]; then
	for k in arm64-4k arm64-16k; do
		"$FERRITE_REPO/scripts/build.sh" "$k"
		args=()
		[ "$k" = arm64-16k ] && args=(--noncoherent)
		stage "bench: driver ($k guest, TCG)"
		"$FERRITE_REPO/scripts/vm.sh" --kernel "$k" --name "bench-$k" --timeout 900 "${args[@]}" "$job"
	done
fi
