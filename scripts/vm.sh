#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Boot the test guest with one or more Ferrite GPUs and run a job in it.
#
# usage: vm.sh [options] JOB_SCRIPT
#   --kernel FLAVOUR      kernel flavour (default main): main or debug boot
#                         an x86-64 q35 guest on the trixie rootfs,
#                         arm64-4k or arm64-16k an arm64 virt guest on
#                         the arm64 guest root (scripts/setup-guest-arm64.sh)
#   --noncoherent         arm64: the PCIe host bridge without the device
#                         tree's dma-coherent, so the kernel does cache
#                         maintenance for every streaming DMA sync
#   --gpu BITS:MAXSEG[:BOUNDARY]
#                         add a GPU with these DMA constraints: address
#                         bits, longest segment, segment boundary mask
#                         (default none) (repeatable; default one GPU,
#                         48:2147483648)
#   --timeout SECS        kill the guest after SECS (default 900)
#   --append ARGS         extra kernel command line
#   --name NAME           run directory name under $FERRITE_CACHE/run
# The job's output is streamed to stdout; the console log, the models' logs
# and the job's files stay in the run directory. Exit: the job's exit code,
# or 124 on timeout, or 125 when the guest died without finishing.
. "$(dirname "$0")/lib.sh"

flavour=main timeout=900 append="" name=vm gpus=() noncoherent=0
while [ $# -gt 1 ]; do
	case $1 in
	--kernel) flavour=$2; shift 2 ;;
	--gpu) gpus+=("$2"); shift 2 ;;
	--timeout) timeout=$2; shift 2 ;;
	--append) append=$2; shift 2 ;;
	--name) name=$2; shift 2 ;;
	--noncoherent) noncoherent=1; shift ;;
	*) die "unknown option $1" ;;
	esac
done
job=${1:?usage: vm.sh [options] JOB_SCRIPT}
[ ${#gpus[@]} -gt 0 ] || gpus=("48:2147483648")

kbuild=$KBUILD/build-$flavour
arch=$(kernel_arch "$flavour")
image=$(kernel_image "$flavour")
[ -f "$image" ] || die "no kernel at $image"
# The guest's root: the trixie rootfs itself (x86-64), or the arm64 guest
# root, exported from inside the rootfs's mount namespace (see below).
if [ "$arch" = arm64 ]; then
	guest_root=$FERRITE_CACHE/rootfs-arm64
	[ -x "$guest_root/bin/busybox" ] || die "no arm64 guest root at $guest_root"
	tests=$KBUILD/igt-tests-arm64
	bin=$CARGO_TARGET_DIR/rustc-1.85/aarch64-unknown-linux-gnu/release
else
	guest_root=
	tests=$KBUILD/igt-tests
	bin=$CARGO_TARGET_DIR/release
fi
D=$RUNDIR/$name
rm -rf "$D"; mkdir -p "$D"
cp "$job" "$D/job.sh"
# The arm64 guests' test runner, where the job finds it.
cp "$FERRITE_REPO/scripts/guest-runner.sh" "$D/"
krel=$(cat "$kbuild/include/config/kernel.release")
{
	echo "export FERRITE_REPO=$FERRITE_REPO"
	echo "export FERRITE_MODULES=$kbuild/mods/lib/modules"
	echo "export FERRITE_KO=$KBUILD/module-$flavour/drivers/gpu/drm/ferrite/ferrite.ko"
	echo "export FERRITE_TESTS=$tests FERRITE_ARCH=$arch"
	echo "export FERRITE_BIN=$bin"
	echo "export FERRITE_KERNEL_RELEASE=$krel"
	echo "export FERRITE_NUM_GPUS=${#gpus[@]} FERRITE_DMA_COHERENT=$((1 - noncoherent))"
} >"$D/env"

pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT

model=$CARGO_TARGET_DIR/release/ferrite-gpu
[ -x "$model" ] || die "no device model at $model (cargo build --release)"
devices=()
i=0
for g in "${gpus[@]}"; do
	IFS=: read -r bits seg boundary <<<"$g"
	# What the test bed started, for the tests that check it (ferrite_core).
	{
		echo "export FERRITE_GPU${i}_DMA_BITS=$bits FERRITE_GPU${i}_MAX_SEGMENT=$seg"
		[ -z "$boundary" ] || echo "export FERRITE_GPU${i}_SEG_BOUNDARY=$boundary"
	} >>"$D/env"
	"$model" --socket "$D/gpu$i.sock" --log "$D/gpu$i.log" \
		--dma-bits "$bits" --max-segment "$seg" ${boundary:+--seg-boundary "$boundary"} \
		${FERRITE_TRACE:+--trace} &
	pids+=($!)
	devices+=(-device "{\"driver\":\"vfio-user-pci\",\"socket\":{\"path\":\"$D/gpu$i.sock\",\"type\":\"unix\"}}")
	i=$((i + 1))
done
for i in $(seq 0 $((${#gpus[@]} - 1))); do
	for _ in $(seq 100); do [ -S "$D/gpu$i.sock" ] && break; sleep 0.05; done
	[ -S "$D/gpu$i.sock" ] || die "device model $i did not start, see $D/gpu$i.log"
done

# KVM only where it really works: on nested PVM hosts /dev/kvm exists but
# cannot run a stock guest kernel. Probe once per host kernel and guest
# kernel, by booting the guest under KVM with a job that only says hello.
probe_key="$(uname -r) $krel $flavour"
if [ "$arch" = arm64 ]; then
	accel=tcg
elif [ -n "${FERRITE_ACCEL:-}" ]; then
	accel=$FERRITE_ACCEL
elif stamp_ok accel-key "$probe_key"; then
	accel=$(cat "$FERRITE_CACHE/stamps/accel")
else
	accel=tcg
	if [ -c /dev/kvm ]; then
		echo "vm: probing KVM (/dev/kvm exists)"
		echo 'echo kvm-probe-ok' >"$RUNDIR/kvm-probe.job"
		if FERRITE_ACCEL=kvm "$0" --kernel "$flavour" --name kvm-probe --timeout 40 \
			"$RUNDIR/kvm-probe.job" 2>/dev/null | grep -q kvm-probe-ok; then
			accel=kvm
		else
			echo "vm: KVM cannot run this guest ($(grep -m1 -o 'KVM internal error.*' \
				"$RUNDIR/kvm-probe/qemu.log" 2>/dev/null || echo 'probe failed')); using TCG"
		fi
	fi
	stamp_set accel "$accel"
	stamp_set accel-key "$probe_key"
fi
if [ "$accel" = kvm ]; then
	accel_args=(-accel kvm -cpu host)
else
	accel_args=(-accel tcg,thread=multi -cpu max)
fi
mem=${FERRITE_GUEST_MEM:-2G}
# cache=loose: the root is read-only and nothing in it changes during a
# boot, so the guest may cache it; without it every exec reads the binary
# and its libraries over 9p again (about 8 s per test binary under KASAN
# and TCG). The share (the run directory) stays uncached.
cmdline="root=/dev/root rootfstype=9p rootflags=trans=virtio,version=9p2000.L,msize=262144,cache=loose ro"
cmdline+=" init=$FERRITE_REPO/scripts/guest-init.sh ferrite_share=$D panic=-1 oops=panic"
# The whole kernel log goes to the console, which is scanned for reports.
cmdline+=" loglevel=7"
if [ "$arch" = arm64 ]; then
	# virt with a GICv3 and its ITS (the GPUs' MSI-X), PCIe, PSCI.
	qemu=qemu-system-aarch64
	machine=(-machine "virt,gic-version=3,its=on,memory-backend=mem")
	# Neoverse-N1: a real Armv8.2 core with 4, 16 and 64 KiB granules
	# whose cache ID registers need maintenance to the point of coherency
	# (CLIDR_EL1.LoC != 0). With QEMU's "max" CPU (LoC 0) the kernel
	# treats every device as coherent, whatever the device tree says.
	accel_args=(-accel tcg,thread=multi -cpu "${FERRITE_ARM64_CPU:-neoverse-n1}")
	cmdline="console=ttyAMA0 $cmdline $append"
	root_path=/srv/guest-root
else
	qemu=qemu-system-x86_64
	machine=(-machine "q35,memory-backend=mem")
	# no5lvl: with -cpu max the guest would use 5-level paging, and the
	# KASAN kernel then reports a wild access in an interrupt during
	# identify_cpu() at 0.009 s of boot, before any driver (seen with
	# 7.3.4 under TCG).
	cmdline="console=ttyS0 $cmdline no5lvl $append"
	root_path=/
fi
common_args=(-smp 2 -m "$mem" -object "memory-backend-memfd,id=mem,size=$mem,share=on"
	-nographic -no-reboot -monitor none -display none -nodefaults)

# A non-coherent arm64 guest: QEMU's own device tree for this machine,
# with the PCIe host bridge's dma-coherent property removed. QEMU's memory
# is coherent whatever the guest believes: the kernel's cache maintenance
# runs (and DMA-API debug checks it) but cannot lose data under TCG.
dtb_args=()
if [ "$noncoherent" = 1 ]; then
	[ "$arch" = arm64 ] || die "--noncoherent is for the arm64 guests"
	in_rootfs /bin/sh -ec "
		$qemu ${accel_args[*]} ${common_args[*]} ${machine[*]} -machine dumpdtb=$D/virt.dtb
		dtc -q -I dtb -O dts $D/virt.dtb >$D/virt.dts
		grep -q dma-coherent $D/virt.dts
		sed '/^[[:space:]]*dma-coherent;/d' $D/virt.dts >$D/noncoherent.dts
		dtc -q -I dts -O dtb -o $D/noncoherent.dtb $D/noncoherent.dts
	" >"$D/dtb.log" 2>&1 || die "making the non-coherent device tree failed, see $D/dtb.log"
	dtb_args=(-dtb "$D/noncoherent.dtb")
fi

# Surprise removal: the guest asks for GPU N's device process to die by
# creating kill-gpuN in the run directory (ferrite_robust@model-killed).
(
	while sleep 0.2; do
		for i in "${!pids[@]}"; do
			if [ -e "$D/kill-gpu$i" ]; then
				kill -9 "${pids[$i]}" 2>/dev/null
				rm -f "$D/kill-gpu$i"
				echo "vm: killed the device model of GPU $i" >>"$D/qemu.log"
			fi
		done
	done
) &
pids+=($!)

echo "vm: $arch $accel, kernel $krel, ${#gpus[@]} GPU(s) (${gpus[*]}), run dir $D"
set +e
# QEMU runs in the rootfs (its build of QEMU), in a mount namespace of its
# own where the host directories the guest needs are bound at their host
# paths, below the guest's root.
with_timeout "$timeout" unshare --mount --propagation private -- /bin/bash -c '
	R=$1; shift; binds=$1; shift; groot=$1; shift; rpath=$1; shift
	mount --rbind /dev "$R/dev"; mount --make-rslave "$R/dev"
	mount -t proc proc "$R/proc"
	for b in $binds; do mkdir -p "$R$b"; mount --bind "$b" "$R$b"; done
	if [ -n "$groot" ]; then
		mkdir -p "$R$rpath"; mount --bind "$groot" "$R$rpath"
		for b in $binds; do mkdir -p "$R$rpath$b"; mount --bind "$b" "$R$rpath$b"; done
	fi
	exec chroot "$R" "$@"' _ "$ROOTFS" "$FERRITE_BINDS" "$guest_root" "$root_path" \
	$qemu "${accel_args[@]}" "${common_args[@]}" "${machine[@]}" "${dtb_args[@]}" \
	-serial "file:$D/console.log" \
	-kernel "$image" -append "$cmdline" \
	-fsdev "local,id=root,path=$root_path,security_model=none,readonly=on,multidevs=remap" \
	-device virtio-9p-pci,fsdev=root,mount_tag=/dev/root \
	-fsdev "local,id=share,path=$D,security_model=none" \
	-device virtio-9p-pci,fsdev=share,mount_tag=ferrite \
	"${devices[@]}" >"$D/qemu.log" 2>&1
rc=$?
set -e
[ -f "$D/job.log" ] && cat "$D/job.log"
if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
	echo "vm: guest killed after ${timeout}s (timeout)" >&2
	exit 124
fi
if [ ! -f "$D/exit-code" ]; then
	echo "vm: guest stopped without finishing the job (qemu exit $rc); last console lines:" >&2
	tail -n 30 "$D/console.log" >&2 || true
	tail -n 5 "$D/qemu.log" >&2 || true
	exit 125
fi
exit "$(cat "$D/exit-code")"
