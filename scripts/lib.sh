# SPDX-License-Identifier: GPL-2.0
# Common helpers for Ferrite's build and test scripts. Source it; do not run it.

set -euo pipefail

FERRITE_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FERRITE_CACHE=${FERRITE_CACHE:-/var/cache/ferrite}
ROOTFS=$FERRITE_CACHE/rootfs
KBUILD=$FERRITE_CACHE/kbuild
RUNDIR=$FERRITE_CACHE/run
export FERRITE_REPO FERRITE_CACHE ROOTFS KBUILD RUNDIR
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$FERRITE_CACHE/target}
# Host directories visible at the same path inside the rootfs (and so in
# the guest, whose root is the rootfs).
FERRITE_BINDS="$KBUILD $RUNDIR $FERRITE_REPO $CARGO_TARGET_DIR"

# Pinned inputs. Change them only together with their checksums.
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
LINUX_SOURCE_PKG=linux-source-7.3
LINUX_SOURCE_VERSION=7.3.4-1~bpo13+1
LINUX_SOURCE_SHA256=703e369ddd4cce971452f5a593ee55df3a5c10c83caf0fa0df039633ed181ee3
LINUX_VERSION=7.3.4

# Kernel flavours (scripts/kernel.sh): main and debug are x86-64 guests,
# arm64-4k and arm64-16k arm64 guests with 4 KiB and 16 KiB CPU pages.
# kernel_arch FLAVOUR: the ARCH= of its kernel build; kernel_image FLAVOUR:
# the image QEMU boots; kmake_arch FLAVOUR: what make needs to cross-build.
kernel_arch() { case $1 in arm64-*) echo arm64 ;; *) echo x86 ;; esac; }
kernel_image() {
	case $(kernel_arch "$1") in
	arm64) echo "$KBUILD/build-$1/arch/arm64/boot/Image" ;;
	*) echo "$KBUILD/build-$1/arch/x86/boot/bzImage" ;;
	esac
}
kmake_arch() { [ "$(kernel_arch "$1")" = x86 ] || echo "ARCH=$(kernel_arch "$1")"; }

FERRITE_T0=${FERRITE_T0:-$(date +%s)}
export FERRITE_T0

die() { echo "error: $*" >&2; exit 1; }
now() { date +%s; }

# stage NAME: print a stage header with the time elapsed since the command
# began. With $FERRITE_TIMES set (make test sets it), also record it there:
# stage_summary tells where the time went.
stage() {
	local t=$(( $(now) - FERRITE_T0 ))
	printf '==> [%3d:%02d] %s\n' $((t / 60)) $((t % 60)) "$*"
	[ -z "${FERRITE_TIMES:-}" ] || printf '%s %s\n' "$(now)" "$*" >>"$FERRITE_TIMES"
}

# stage_summary: one line per stage of this command (stages named alike
# up to their first ':' are one: "kernel(main)", "guest(main kernel, swiotlb=force)"),
# with the time from its first header to the next stage's.
stage_summary() {
	[ -n "${FERRITE_TIMES:-}" ] && [ -f "$FERRITE_TIMES" ] || return 0
	printf '%s done\n' "$(now)" >>"$FERRITE_TIMES"
	FERRITE_TIMES= stage "where the time went"
	awk '
	{ t = $1; $1 = ""; name = substr($0, 2); key = name; sub(/:.*/, "", key) }
	NR > 1 { if (!(prev in secs)) order[++n] = prev; secs[prev] += t - pt }
	{ prev = key; pt = t }
	END {
		for (i = 1; i <= n; i++) { s = secs[order[i]]; total += s
			printf "time: %-44s %3dm%02ds\n", order[i], s / 60, s % 60 }
		printf "time: %-44s %3dm%02ds\n", "total", total / 60, total % 60
	}' "$FERRITE_TIMES"
}

# in_rootfs CMD...: run CMD inside the trixie rootfs in a private mount
# namespace, so that the bind mounts disappear with the command.
in_rootfs() {
	local binds=$FERRITE_BINDS
	mkdir -p $binds
	unshare --mount --propagation private -- /bin/bash -euc '
		R=$1; shift; binds=$1; shift
		mount --rbind /dev "$R/dev"; mount --make-rslave "$R/dev"
		mount -t proc proc "$R/proc"
		mount --rbind /sys "$R/sys"; mount --make-rslave "$R/sys"
		mount -t tmpfs tmpfs "$R/tmp"
		for b in $binds; do mkdir -p "$R$b"; mount --bind "$b" "$R$b"; done
		exec chroot "$R" /usr/bin/env -i HOME=/root TERM=dumb \
			PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
			LANG=C.UTF-8 "$@"' _ "$ROOTFS" "$binds" "$@"
}

# with_timeout SECS CMD...: run CMD, kill it (and its group) after SECS.
with_timeout() {
	local secs=$1; shift
	timeout --kill-after=10 "$secs" "$@"
}

# stamp_ok NAME VALUE: true if the stamp file NAME holds VALUE.
stamp_ok() { [ -f "$FERRITE_CACHE/stamps/$1" ] && [ "$(cat "$FERRITE_CACHE/stamps/$1")" = "$2" ]; }
stamp_set() { mkdir -p "$FERRITE_CACHE/stamps"; printf '%s' "$2" >"$FERRITE_CACHE/stamps/$1"; }
