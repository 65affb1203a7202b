#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# PID 1 of the test guest. The root filesystem is the trixie rootfs over 9p,
# read-only; the host's run directory is mounted read-write at the same
# path ($ferrite_share, from the kernel command line). Runs $share/job.sh,
# stores its exit code and powers off.
# /usr/libexec/busybox: the arm64 guest root's commands (busybox applets).
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/libexec/busybox
export HOME=/root LANG=C.UTF-8 TERM=dumb

mount -t proc proc /proc
echo "ferrite-init: started (guest up $(cut -d" " -f1 /proc/uptime) s)"
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
for d in /tmp /run /var/tmp /var/log /root; do mount -t tmpfs tmpfs "$d"; done
mount -t debugfs debugfs /sys/kernel/debug
mount -t tracefs tracefs /sys/kernel/tracing

share=${ferrite_share:?ferrite_share= missing from the kernel command line}
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 ferrite "$share" ||
	{ echo "ferrite-init: cannot mount the share"; echo o >/proc/sysrq-trigger; }
# shellcheck source=/dev/null
. "$share/env"
[ -d "$FERRITE_MODULES" ] && mount --bind "$FERRITE_MODULES" /usr/lib/modules

echo "ferrite-init: running job ($(uname -r), guest up $(cut -d" " -f1 /proc/uptime) s)"
cd "$share" || exit 1
bash "$share/job.sh" </dev/null 2>&1 | tee "$share/job.log"
echo "${PIPESTATUS[0]}" >"$share/exit-code"
echo "ferrite-init: job exited $(cat "$share/exit-code")"
sync
cd /
umount "$share"
# PID 1 must not exit before the power-off completes (the kernel panics
# when init dies), and nothing may need the 9p root by then: a `sleep`
# started from it can die while the machine goes down, so PID 1 waits in
# a loop of shell builtins.
echo o >/proc/sysrq-trigger
while :; do :; done
