// SPDX-License-Identifier: MIT
//! VM state (UAPI 0.5): VM_GET_STATE and the model of unusable VMs
//! (see the module documentation of [`super`]).

use super::*;

impl Worker<'_> {
    /// Whether `vm` may be lost to an asynchronous bind that fails: any
    /// explicit VM, and the process VM of a short-lived process.
    pub(super) fn may_lose(&self, vm: u32) -> bool {
        vm != PVM || self.pvm_expendable
    }

    /// Whether `vm` of `f` may be unusable, as far as this process knows.
    pub(super) fn maybe_unusable(&self, f: &FileCtx, vm: u32) -> bool {
        f.pools().risky.contains(&vm)
    }

    /// An asynchronous bind that waits for a fence is about to be made on
    /// `vm`.
    pub(super) fn mark_risky(&self, f: &FileCtx, vm: u32) {
        let mut p = f.pools();
        if !p.risky.contains(&vm) {
            p.risky.push(vm);
        }
    }

    /// VM_GET_STATE of `vm` through `f`: Some(true) if unusable, Some(false)
    /// if usable, None if that cannot be told (the VM is gone).
    pub(super) fn vm_state(&mut self, f: &FileCtx, vm: u32) -> Option<bool> {
        let mut s = uapi::drm_ferrite_vm_get_state {
            vm_id: vm,
            state: self.rng.next_u32(),
            pad: 0,
        };
        let ex = Expect {
            only: Some(if vm == PVM { STATE_PVM } else { STATE_VM }),
            ..Default::default()
        };
        self.ioctl(
            f.raw(),
            "VM_GET_STATE",
            IOCTL_VM_GET_STATE,
            &mut s,
            ex,
            &nothing,
        )
        .ok()?;
        self.state_answer(f, vm, s.state)
    }

    /// Check a state VM_GET_STATE returned for `vm` and note an unusable VM.
    pub(super) fn state_answer(&mut self, f: &FileCtx, vm: u32, state: u32) -> Option<bool> {
        match state {
            VM_USABLE => {
                let mut p = f.pools();
                p.risky.retain(|&v| v != vm);
                p.unusable.retain(|&v| v != vm);
                Some(false)
            }
            VM_UNUSABLE => {
                self.stats.event("vm_reported_unusable");
                {
                    let mut p = f.pools();
                    if !p.risky.contains(&vm) {
                        p.risky.push(vm);
                    }
                    if vm != PVM && p.vms.contains(&vm) && !p.unusable.contains(&vm) {
                        p.unusable.push(vm);
                    }
                }
                if vm == PVM
                    && !self.pvm_expendable
                    && !self.env.inject_pending
                    && !self.pvm_reported
                {
                    self.pvm_reported = true;
                    self.finding(
                        "VM_GET_STATE reports the process VM unusable, though none of the \
                         process's asynchronous binds on it waited for a fence (none could fail)",
                        "",
                    );
                }
                Some(true)
            }
            _ => {
                self.finding(
                    &format!("VM_GET_STATE of VM {vm} returned state {state}"),
                    "",
                );
                None
            }
        }
    }

    /// The state of `vm` before a call that an unusable VM fails, asked
    /// when it may be unusable and now and then anyway. (The caller reads
    /// the generation of `f`'s ids before it picks the ids it uses.)
    pub(super) fn pre_state(&mut self, f: &FileCtx, vm: u32) -> Option<bool> {
        if self.maybe_unusable(f, vm) || self.rng.chance(1, 16) {
            self.vm_state(f, vm)
        } else {
            None
        }
    }

    /// Whether the VM id `vm` named one VM since the generation `g0` was
    /// read: the process VM always does; an explicit one unless this
    /// process created or destroyed VMs or queues meanwhile, or another
    /// process uses the file.
    pub(super) fn vm_id_stable(&self, f: &FileCtx, vm: u32, g0: u64) -> bool {
        vm == PVM || (!self.shares_file && f.gen() == g0)
    }

    /// `what`, a bind with a MAP on `vm`, returned EIO, which only an
    /// unusable VM explains: VM_GET_STATE must say so.
    pub(super) fn bind_eio(
        &mut self,
        f: &FileCtx,
        vm: u32,
        g0: u64,
        what: &str,
        d: &dyn Fn() -> String,
    ) {
        self.stats.event("bind_eio_checked");
        if self.vm_state(f, vm) == Some(false) && self.vm_id_stable(f, vm, g0) {
            self.finding(
                &format!("{what} returned EIO, but VM_GET_STATE reports VM {vm} usable"),
                &d(),
            );
        }
    }

    /// `what`, a bind with a MAP on `vm`, succeeded though VM_GET_STATE
    /// reported the VM unusable before: if it still does, the MAP should
    /// have failed with EIO.
    pub(super) fn bind_on_unusable(
        &mut self,
        f: &FileCtx,
        vm: u32,
        g0: u64,
        what: &str,
        d: &dyn Fn() -> String,
    ) {
        self.stats.event("bind_on_unusable_ok_checked");
        if self.vm_state(f, vm) == Some(true) && self.vm_id_stable(f, vm, g0) {
            self.finding(
                &format!(
                    "{what} with a MAP succeeded on VM {vm}, which VM_GET_STATE reports unusable \
                     (before and after): expected EIO"
                ),
                &d(),
            );
        }
    }

    /// After a SUBMIT on queue `q` (as the pool had it): EIO only on an
    /// unusable VM (asked now); and if its VM was reported unusable just
    /// before (`unusable`), it must have failed, with EIO if nothing else
    /// was wrong (`clean`). Not where ids may have changed unseen: the pool
    /// forgets every queue destroyed through the file (so each entry names
    /// its queue, whose VM cannot go while it lives), and `g0`, read before
    /// `q` was picked, voids the checks when another thread created or
    /// destroyed queues or VMs meanwhile.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn submit_vm_check(
        &mut self,
        f: &FileCtx,
        q: QueueEnt,
        r: Result<i32, i32>,
        unusable: bool,
        clean: bool,
        g0: u64,
        d: &dyn Fn() -> String,
    ) {
        if self.shares_file {
            return;
        }
        match r {
            Err(libc::EIO) => self.stats.event("submit_eio_checked"),
            Err(_) if unusable => self.stats.event("submit_on_unusable_refused"),
            _ => {}
        }
        // EIO: asked now.
        let eio_on_usable = r == Err(libc::EIO) && self.vm_state(f, q.vm) == Some(false);
        match r {
            Err(libc::EIO) if eio_on_usable && f.gen() == g0 => self.finding(
                &format!(
                    "SUBMIT returned EIO, but VM_GET_STATE reports VM {} of queue {} usable",
                    q.vm, q.id
                ),
                &d(),
            ),
            Ok(_) if unusable && f.gen() == g0 => self.finding(
                &format!(
                    "SUBMIT on queue {} succeeded, but VM_GET_STATE reported its VM {} unusable \
                     just before: expected EIO",
                    q.id, q.vm
                ),
                &d(),
            ),
            Err(e) if unusable && clean && !SUBMIT_UNUSABLE.contains(&e) && f.gen() == g0 => self
                .finding(
                    &format!(
                        "SUBMIT on queue {} of unusable VM {} returned {}, expected EIO",
                        q.id,
                        q.vm,
                        errno_name(e)
                    ),
                    &d(),
                ),
            _ => {}
        }
    }

    /// What a client does with an unusable VM: destroy its queues, then the
    /// VM (both must work), and forget what was bound there.
    pub(super) fn recycle_vm(&mut self, f: &FileCtx, vm: u32) {
        if vm == PVM {
            return;
        }
        let queues: Vec<u32> = {
            let mut p = f.pools();
            p.gen = p.gen.wrapping_add(1);
            let ids = p
                .queues
                .iter()
                .filter(|q| q.vm == vm)
                .map(|q| q.id)
                .collect();
            p.queues.retain(|q| q.vm != vm);
            p.cmdbufs.retain(|c| c.vm != vm);
            p.bound.retain(|b| b.0 != vm);
            p.vms.retain(|&v| v != vm);
            p.unusable.retain(|&v| v != vm);
            ids
        };
        for id in queues {
            let mut d = uapi::drm_ferrite_queue_destroy {
                queue_id: id,
                pad: 0,
            };
            let ex = Expect {
                only: Some(STATE_VM),
                ..Default::default()
            };
            let _ = self.ioctl(
                f.raw(),
                "QUEUE_DESTROY",
                IOCTL_QUEUE_DESTROY,
                &mut d,
                ex,
                &nothing,
            );
        }
        let mut d = uapi::drm_ferrite_vm_destroy { vm_id: vm, pad: 0 };
        let ex = Expect {
            only: Some(RECYCLE_DESTROY),
            ..Default::default()
        };
        let r = self.ioctl(f.raw(), "VM_DESTROY", IOCTL_VM_DESTROY, &mut d, ex, &|| {
            format!(" unusable vm {vm}")
        });
        match r {
            Ok(_) => {
                self.stats.event("vm_recycled");
                self.forget_vm(f, vm);
                f.pools().risky.retain(|&v| v != vm);
            }
            Err(libc::EBUSY) => {
                let mut p = f.pools();
                if p.vms.len() < MAX_VMS {
                    p.vms.push(vm);
                }
            }
            Err(_) => {}
        }
    }

    /// VM_GET_STATE: of the process VM, a VM of the file or an unknown id
    /// (ENOENT), with a bad pad now and then (EINVAL).
    pub(super) fn op_vm_state(&mut self, f: &FileCtx) {
        if !f.async_ok {
            return;
        }
        let live = f.pools().vms.clone();
        let vm = match self.rng.below(10) {
            0..=2 => PVM,
            3..=7 if !live.is_empty() => *self.rng.pick(&live).unwrap(),
            8 => VM_ID_NEVER + self.rng.below(u64::from(u32::MAX - VM_ID_NEVER)) as u32,
            _ => gen::handle(&mut self.rng, &[]),
        };
        let pad = if self.rng.chance(1, 12) {
            Val::bad(self.rng.interesting_u64().max(1))
        } else {
            Val::ok(0)
        };
        let mut s = uapi::drm_ferrite_vm_get_state {
            vm_id: vm,
            state: self.rng.next_u32(),
            pad: pad.v,
        };
        let ex = if pad.bad {
            Expect {
                must_fail: true,
                only: Some(EINVAL_ONLY),
                ..Default::default()
            }
        } else {
            Expect {
                must_fail: vm >= VM_ID_NEVER,
                only: Some(if vm == PVM { STATE_PVM } else { STATE_VM }),
                ..Default::default()
            }
        };
        let r = self.ioctl(
            f.raw(),
            "VM_GET_STATE",
            IOCTL_VM_GET_STATE,
            &mut s,
            ex,
            &nothing,
        );
        if r.is_ok() && !pad.bad {
            self.state_answer(f, vm, s.state);
        }
    }
}
