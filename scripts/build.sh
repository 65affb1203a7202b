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
	# The CLI (ferrite bench, demo) for the arm64 guests, by trixie's
	# cargo and rustc 1.85 with their arm64 standard library (the host's
	# rustup toolchain has none and cannot fetch one); crates from
	# crates.io through the host's CA bundle. ferrite-fuzz needs a newer
	# rustc (u64::is_multiple_of, 1.87) and stays on x86-64.
	stage "host: cargo build of the ferrite CLI for arm64 (trixie's rustc 1.85)"
	cp /etc/ssl/certs/ca-certificates.crt "$KBUILD/host-ca.crt"
	in_rootfs /bin/sh -c "cd $FERRITE_REPO && CARGO_HTTP_CAINFO=$KBUILD/host-ca.crt \
		CARGO_TARGET_DIR=$CARGO_TARGET_DIR/rustc-1.85 \
		CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
		cargo build --release --quiet --target aarch64-unknown-linux-gnu -p ferrite --bin ferrite" ||
		die "cargo build of the arm64 CLI failed"
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
