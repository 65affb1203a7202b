#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Build everything that is missing or stale: rootfs, kernel, device model,
# driver module, guest test programs and tools. Cheap when nothing changed.
#
# usage: build.sh [main|debug]
. "$(dirname "$0")/lib.sh"
FLAVOUR=${1:-main}

"$FERRITE_REPO/scripts/setup-host.sh"
"$FERRITE_REPO/scripts/setup-rootfs.sh"
"$FERRITE_REPO/scripts/kernel.sh" "$FLAVOUR"
"$FERRITE_REPO/scripts/module.sh" "$FLAVOUR"

stage "host: cargo build --release (device model, userspace)"
(cd "$FERRITE_REPO" && cargo build --release --quiet --workspace) ||
	die "cargo build failed"

stage "igt-tests: building (gcc in the rootfs)"
out=$KBUILD/igt-tests
mkdir -p "$out"
in_rootfs make -s -C "$FERRITE_REPO/igt-tests" O="$out" \
	UAPI="$KBUILD/build-$FLAVOUR/hdr/include" ||
	die "building igt-tests failed"
