#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The arm64 guests' root filesystem ($FERRITE_CACHE/rootfs-arm64): what
# Ferrite's tests and their runner need, unpacked from Debian trixie's
# arm64 packages with dpkg-deb -x. Nothing arm64 runs on the host (no
# binfmt, no second stage): these packages need no maintainer script to
# work, and the guest's init only reads them. Debian's IGT (igt_runner and
# the generic tests) is built for amd64 only, so the arm64 guests run
# Ferrite's tests under scripts/guest-runner.sh. Idempotent.
. "$(dirname "$0")/lib.sh"

# bash for the guest's scripts, busybox for everything else they call
# (mount, insmod, grep, timeout...), the C library the tests link.
ARM64_PKGS="libc6 libgcc-s1 libtinfo6 bash busybox-static"
ROOT=$FERRITE_CACHE/rootfs-arm64

want=$(printf '%s' "$ARM64_PKGS" | cat - "$0" | sha256sum | cut -c1-16)
if stamp_ok rootfs-arm64 "$want" && [ -x "$ROOT/bin/busybox" ]; then
	stage "rootfs-arm64: up to date ($ROOT)"
	exit 0
fi

stage "rootfs-arm64: unpacking trixie's arm64 $ARM64_PKGS into $ROOT"
rm -rf "$ROOT.tmp"
mkdir -p "$ROOT.tmp"
# (scripts/setup-rootfs.sh added the arm64 architecture to its apt.)
in_rootfs /bin/bash -ec "
	rm -rf /var/tmp/arm64-debs; mkdir -p /var/tmp/arm64-debs; cd /var/tmp/arm64-debs
	for p in $ARM64_PKGS; do apt-get download -q \"\$p:arm64\"; done
" >"$FERRITE_CACHE/rootfs-arm64.log" 2>&1 ||
	die "downloading the arm64 packages failed, see $FERRITE_CACHE/rootfs-arm64.log"
# The merged-/usr layout Debian's packages expect (debootstrap makes these).
for d in bin sbin lib; do ln -s "usr/$d" "$ROOT.tmp/$d"; done
mkdir -p "$ROOT.tmp/usr/bin" "$ROOT.tmp/usr/sbin" "$ROOT.tmp/usr/lib"
for deb in "$ROOTFS"/var/tmp/arm64-debs/*.deb; do
	dpkg-deb -x "$deb" "$ROOT.tmp"
done
# busybox's applets that the guest's scripts and the tests call, as links
# in a directory of their own (first in the guest's PATH).
BUSYBOX_APPLETS="awk basename cat chmod cp cut date dd dirname dmesg echo env false find
 grep head insmod kill ln ls lsmod mkdir mknod modprobe mount mv poweroff printf ps readlink
 rm rmdir rmmod sed seq sh sleep sort stat sync tail tee test timeout touch tr true umount
 uname uptime wc xargs"
mkdir -p "$ROOT.tmp/usr/libexec/busybox"
for a in $BUSYBOX_APPLETS; do ln -s /bin/busybox "$ROOT.tmp/usr/libexec/busybox/$a"; done
# Mount points: the guest's pseudo file systems, and the host directories
# the guest sees at their host paths ($FERRITE_BINDS, bound by vm.sh).
mkdir -p "$ROOT.tmp"/{proc,sys,dev,tmp,run,root,var/tmp,var/log,etc,usr/lib/modules}
echo ferrite-arm64 >"$ROOT.tmp/etc/hostname"
rm -rf "$ROOT"
mv "$ROOT.tmp" "$ROOT"
stamp_set rootfs-arm64 "$want"
stage "rootfs-arm64: ready ($(du -sh "$ROOT" | cut -f1))"
