#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Build everything that is missing or stale: rootfs, kernel, device model,
# driver module, guest test programs and tools. Cheap when nothing changed.
#
# usage: build.sh [main|debug|arm64-4k|arm64-16k]
. "$(dirname "$0")/lib.sh"
FLAVOUR=${1:-main}

"$FERRITE_REPO/scripts/setup-host.sh"
"$FERRITE_REPO/scripts/setup-rootfs.sh"
[ "$(kernel_arch "$FLAVOUR")" = arm64 ] && "$FERRITE_REPO/scripts/setup-guest-arm64.sh"
"$FERRITE_REPO/scripts/kernel.sh" "$FLAVOUR"
"$FERRITE_REPO/scripts/module.sh" "$FLAVOUR"

if [ "$(kernel_arch "$FLAVOUR")" = arm64 ]; then
	# The C tests for the arm64 guests, against the arm64 kernel's UAPI
	# headers (the device model and the tools stay on the host).
	stage "igt-tests: building for arm64 (aarch64-linux-gnu-gcc in the rootfs)"
	out=$KBUILD/igt-tests-arm64
	mkdir -p "$out"
	in_rootfs make -s -C "$FERRITE_REPO/igt-tests" O="$out" CC=aarch64-linux-gnu-gcc \
		UAPI="$KBUILD/build-$FLAVOUR/hdr/include" ||
		die "building igt-tests for arm64 failed"
	exit 0
fi

stage "host: cargo build --release (device model, userspace)"
(cd "$FERRITE_REPO" && cargo build --release --quiet --workspace) ||
	die "cargo build failed"

stage "igt-tests: building (gcc in the rootfs)"
out=$KBUILD/igt-tests
mkdir -p "$out"
in_rootfs make -s -C "$FERRITE_REPO/igt-tests" O="$out" \
	UAPI="$KBUILD/build-$FLAVOUR/hdr/include" ||
	die "building igt-tests failed"
