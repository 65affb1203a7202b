#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Benchmarks, each printing ratios measured in one run.
. "$(dirname "$0")/lib.sh"
"$FERRITE_REPO/scripts/setup-host.sh"
stage "bench: device model (host)"
(cd "$FERRITE_REPO" && cargo build --release --quiet -p ferrite-gpu-model) || die "cargo build failed"
"$CARGO_TARGET_DIR/release/model-bench"
