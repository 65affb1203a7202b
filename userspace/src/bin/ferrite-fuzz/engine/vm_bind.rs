// SPDX-License-Identifier: MIT
//! VMs: VM_CREATE, VM_DESTROY and (synchronous) VM_BIND.

use super::*;

impl Worker<'_> {
    pub(super) fn op_vm_create(&mut self, f: &FileCtx) {
        let mut fl = gen::flags(&mut self.rng, 0);
        // The fuzzer makes no mirror VM (DRM_FERRITE_VM_CREATE_MIRROR,
        // 0.7): their jobs take no SIGNAL sync and no BO, and they bind
        // nothing below the process's address-space end. A bad word keeps
        // an unknown bit, so it fails with EINVAL whatever the device.
        if fl.bad && fl.v & !uapi::DRM_FERRITE_VM_CREATE_MIRROR == 0 {
            fl.v |= 1 << 1;
        }
        let mut c = uapi::drm_ferrite_vm_create {
            flags: fl.v,
            vm_id: self.rng.next_u32(),
            // Returned by the kernel; random here, as `vm_id`.
            mirror_start: self.rng.next_u64(),
            mirror_end: self.rng.next_u64(),
        };
        let ex = Expect::fail_if(fl.bad);
        f.bump();
        if self
            .ioctl(f.raw(), "VM_CREATE", IOCTL_VM_CREATE, &mut c, ex, &nothing)
            .is_err()
        {
            return;
        }
        if c.vm_id == uapi::DRM_FERRITE_VM_PROCESS {
            self.finding("VM_CREATE returned the process VM id 0", "");
            return;
        }
        let full = {
            let mut p = f.pools();
            let full = p.vms.len() >= MAX_VMS;
            if !full {
                p.vms.push(c.vm_id);
            }
            full
        };
        if full {
            self.vm_destroy(f, c.vm_id);
        }
    }

    pub(super) fn vm_destroy(&mut self, f: &FileCtx, vm: u32) {
        f.bump();
        let mut d = uapi::drm_ferrite_vm_destroy { vm_id: vm, pad: 0 };
        let _ = self.ioctl(
            f.raw(),
            "VM_DESTROY",
            IOCTL_VM_DESTROY,
            &mut d,
            Expect::default(),
            &nothing,
        );
    }

    pub(super) fn op_vm_destroy(&mut self, f: &FileCtx) {
        let taken = self.rng.take(&mut f.pools().vms, 9, 10);
        let vm = taken.unwrap_or_else(|| gen::handle(&mut self.rng, &[]));
        let pad = gen::pad32(&mut self.rng);
        let mut d = uapi::drm_ferrite_vm_destroy {
            vm_id: vm,
            pad: pad.v,
        };
        let ex = Expect::fail_if(pad.bad || vm == uapi::DRM_FERRITE_VM_PROCESS);
        f.bump();
        let r = self.ioctl(
            f.raw(),
            "VM_DESTROY",
            IOCTL_VM_DESTROY,
            &mut d,
            ex,
            &nothing,
        );
        if r.is_ok() {
            self.forget_vm(f, vm);
        }
        let mut p = f.pools();
        match r {
            Ok(_) => {
                p.bound.retain(|b| b.0 != vm);
                p.cmdbufs.retain(|c| c.vm != vm);
                p.risky.retain(|&v| v != vm);
                p.unusable.retain(|&v| v != vm);
            }
            Err(e) => {
                if let (Some(vm), true) = (taken, e != libc::ENOENT) {
                    p.vms.push(vm);
                }
            }
        }
    }

    /// VM_BIND of random operations: synchronous mostly, asynchronous a
    /// third of the time (UAPI 0.5), now and then with an unknown flag.
    pub(super) fn op_vm_bind(&mut self, f: &FileCtx) {
        let range = f.range;
        let g0 = f.gen();
        let fl = match self.rng.below(100) {
            0..=61 => Val::ok(0),
            62..=95 => Val {
                v: ASYNC,
                bad: !f.async_ok,
            },
            _ => gen::flags(&mut self.rng, ASYNC),
        };
        let async_ = fl.v & ASYNC != 0;
        let fl = Val {
            bad: fl.bad || (async_ && !f.async_ok),
            ..fl
        };
        let (vm, ops, syncs) = {
            let p = f.pools();
            let vm = gen::vm_id(&mut self.rng, &p.vms);
            let bound = p.bound_in(vm);
            let ctx = gen::BindCtx {
                range,
                bos: &p.bos,
                bound: &bound,
                null_ok: f.null_ok,
                async_,
            };
            let n = match self.rng.below(200) {
                0..=119 => 1,
                120..=149 => 2,
                150..=179 => self.rng.range(3, 8),
                180..=189 => 0,
                190..=198 => self.rng.range(9, 64),
                _ => self.rng.range(65, 4097),
            };
            let ops: Vec<BindOp> = (0..n).map(|_| gen::bind_op(&mut self.rng, &ctx)).collect();
            let mut syncs = self.sync_ops(&p.syncs, 3, 2);
            if async_ && !self.may_lose(vm) {
                // Waiting for a fence that fails would leave the VM unusable.
                syncs.retain(|s| s.flags & SIGNAL != 0);
            }
            (vm, ops, syncs)
        };
        let sa = self.array(f, &syncs, 16, gen::sync_op_bad);
        let waits = waits_for_fence(kernel_view(&syncs, &sa).as_deref());
        if async_ && waits && !fl.bad && !self.may_lose(vm) {
            // Only an array whose count reads past its elements gets here.
            return;
        }
        let oa = self.array(f, &ops, 40, |o| {
            gen::bind_op_bad(o, range, async_, f.null_ok)
        });
        let maps = kernel_view(&ops, &oa).is_none_or(|v| v.iter().any(|o| o.op == MAP));
        let pre = self.pre_state(f, vm);
        if async_ && waits {
            self.mark_risky(f, vm);
        }
        let mut b = uapi::drm_ferrite_vm_bind {
            vm_id: vm,
            flags: fl.v,
            ops: oa.arr,
            syncs: sa.arr,
        };
        // A synchronous bind returns a failed WAIT fence's error (EIO for
        // the fence of a bind that failed on an unusable VM). Any sync op
        // counts: a replay (seed 4653931437219714294, stride 4) got EIO
        // from a VM VM_GET_STATE then called usable, where this model saw
        // no WAIT.
        let fence_error = !async_ && (waits || sa.arr.count > 0);
        let ex = Expect {
            must_fail: fl.bad || oa.bad || sa.bad,
            extra: if maps || fence_error {
                BIND_EIO_EXTRA
            } else {
                BIND_EXTRA
            },
            ..Default::default()
        };
        let (ol, sl) = (oa.layout, sa.layout);
        let describe = || {
            format!(
                "\n  vm {vm} flags {:#x}\n  ops {ol:?}: {}\n  syncs {sl:?}: {}",
                fl.v,
                head(&ops, 8),
                head(&syncs, 8)
            )
        };
        let name = if async_ { "VM_BIND_ASYNC" } else { "VM_BIND" };
        let r = self.ioctl(f.raw(), name, IOCTL_VM_BIND, &mut b, ex, &describe);
        if maps && pre == Some(true) && r.is_err() {
            self.stats.event("map_on_unusable_refused");
        }
        match r {
            Err(libc::EIO) if !fence_error => self.bind_eio(f, vm, g0, name, &describe),
            Ok(_) if maps && pre == Some(true) => self.bind_on_unusable(f, vm, g0, name, &describe),
            _ => {}
        }
        if r.is_err() {
            return;
        }
        let mut p = f.pools();
        for o in ops.iter().take(b.ops.count as usize) {
            let o = gen::as_kernel_sees(o, oa.layout.stride);
            match o.op {
                MAP => p.add_bound(vm, o.va, o.size),
                UNMAP => p.remove_bound(vm, o.va, o.size),
                _ => {}
            }
        }
        let syncs: Vec<SyncOp> = syncs
            .iter()
            .map(|s| gen::as_kernel_sees(s, sa.layout.stride))
            .collect();
        p.signalled(&syncs);
    }
}
