#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Build the Debian trixie rootfs that holds the kernel toolchain, QEMU and
# the guest's userspace (IGT included). Idempotent; nothing from trixie or
# newer is ever installed on the host.
. "$(dirname "$0")/lib.sh"

ROOTFS_PKGS_TOOLCHAIN="rustc rust-src rustfmt bindgen libclang-19-dev clang-19 llvm-19 \
 lld-19 gcc make bc bison flex libelf-dev libssl-dev cpio kmod xz-utils python3 rsync \
 rust-clippy"
# Guest userspace: what the tests and their runner need inside the VM.
ROOTFS_PKGS_GUEST="busybox procps iproute2 libdrm2 libkmod2 strace"
ROOTFS_PKGS_QEMU="qemu-system-x86 qemu-system-arm"
# The arm64 guests: the cross compiler and C library of the C tests (the
# kernels use clang/lld), trixie's cargo with rustc's arm64 standard
# library for the userspace CLI (ferrite bench), libdrm's headers for its
# bindings, dtc for the device tree of the non-coherent boot.
ROOTFS_PKGS_ARM64="gcc-aarch64-linux-gnu libc6-dev-arm64-cross linux-libc-dev-arm64-cross"
ROOTFS_PKGS_ARM64+=" cargo libstd-rust-dev:arm64 libdrm-dev device-tree-compiler"
# IGT from sid: the test programs and igt_runner are packaged only there.
IGT_SID_PKGS="igt-gpu-tools igt-gpu-tools-tests libdrm-amdgpu1"

want=$(printf '%s|%s|%s|%s|%s' "$ROOTFS_PKGS_TOOLCHAIN" "$ROOTFS_PKGS_GUEST" \
	"$ROOTFS_PKGS_QEMU" "$IGT_SID_PKGS" "$ROOTFS_PKGS_ARM64" | cat - "$0" | sha256sum | cut -c1-16)
if stamp_ok rootfs "$want"; then
	stage "rootfs: up to date ($ROOTFS)"
	exit 0
fi

if [ ! -x "$ROOTFS/usr/bin/apt-get" ]; then
	stage "rootfs: debootstrap trixie into $ROOTFS"
	rm -rf "$ROOTFS.tmp"
	mkdir -p "$FERRITE_CACHE"
	debootstrap --variant=minbase trixie "$ROOTFS.tmp" "$DEBIAN_MIRROR" \
		>"$FERRITE_CACHE/debootstrap.log" 2>&1 ||
		die "debootstrap failed, see $FERRITE_CACHE/debootstrap.log"
	mv "$ROOTFS.tmp" "$ROOTFS"
fi

cat >"$ROOTFS/etc/apt/sources.list" <<SRC
deb $DEBIAN_MIRROR trixie main
deb $DEBIAN_MIRROR trixie-updates main
deb $DEBIAN_MIRROR trixie-backports main
SRC
# sid is listed only for 'apt-get download'; it is never installed from.
cat >"$ROOTFS/etc/apt/sources.list.d/sid.list" <<SRC
deb $DEBIAN_MIRROR sid main
SRC
cat >"$ROOTFS/etc/apt/preferences.d/no-sid" <<SRC
Package: *
Pin: release n=sid
Pin-Priority: -1
SRC
# The archive mirror reached here may serve Release files past their
# Valid-Until date (seen for sid); the signatures are still checked.
echo 'Acquire::Check-Valid-Until "false";' >"$ROOTFS/etc/apt/apt.conf.d/90ferrite"
echo ferrite >"$ROOTFS/etc/hostname"
# The guest bind-mounts the built kernel's modules here.
mkdir -p "$ROOTFS/usr/lib/modules"

stage "rootfs: apt-get install toolchain, guest userspace, QEMU x86 and arm64 (trixie-backports)"
in_rootfs /bin/sh -ec "
	export DEBIAN_FRONTEND=noninteractive
	dpkg --add-architecture arm64
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends $ROOTFS_PKGS_TOOLCHAIN $ROOTFS_PKGS_GUEST \
		$ROOTFS_PKGS_ARM64
	apt-get install -y -qq --no-install-recommends -t trixie-backports $ROOTFS_PKGS_QEMU
" >"$FERRITE_CACHE/rootfs-apt.log" 2>&1 || die "apt-get in rootfs failed, see $FERRITE_CACHE/rootfs-apt.log"

stage "rootfs: IGT test programs from sid, unpacked into /opt/igt"
in_rootfs /bin/bash -ec "
	export DEBIAN_FRONTEND=noninteractive
	rm -rf /opt/igt /var/tmp/igt-debs; mkdir -p /opt/igt /var/tmp/igt-debs; cd /var/tmp/igt-debs
	for p in $IGT_SID_PKGS; do
		apt-get download -q \"\$p/sid\" || { echo \"sid package \$p is not in the archive\"; exit 1; }
	done
	deps=''
	for d in *.deb; do
		dpkg-deb -x \"\$d\" /opt/igt
		deps=\"\$deps,\$(dpkg-deb -f \"\$d\" Depends)\"
	done
	# The runtime libraries the sid binaries need, from trixie.
	names=\$(echo \"\$deps\" | tr ',' '\n' | sed -e 's/(.*)//' -e 's/|.*//' -e 's/ //g' |
		grep -v -e '^\$' -e '^libdrm-amdgpu1\$' -e '^igt-gpu-tools' -e '^libc6\$' | sort -u)
	echo \"installing from trixie: \$names\"
	apt-get install -y -qq --no-install-recommends \$names
	ls /opt/igt/usr/libexec/igt-gpu-tools | wc -l
" >"$FERRITE_CACHE/rootfs-igt.log" 2>&1 || die "IGT install failed, see $FERRITE_CACHE/rootfs-igt.log"

stamp_set rootfs "$want"
stage "rootfs: ready"
