// SPDX-License-Identifier: GPL-2.0

//! Asynchronous VM_BIND: each VM's queue of binds.
//!
//! A bind is split in two. Recording ([`Vm::record`]) happens in the
//! ioctl, in the order of the VM's VM_BIND calls: it checks the operations,
//! changes GPUVM and the mapping records, writes the page-table changes
//! down as [`crate::vm::Edits`] (bus addresses included, so applying them
//! needs neither the BOs' scatterlists nor a bound device reference) and
//! reserves every page-table page they can take. Applying
//! ([`Vm::apply`]) happens when the bind's turn comes: it replays the
//! edits under the slot lock with tables from the reservation, flushes the
//! TLB, and signals the bind's fence. That part runs in a
//! fence-signalling critical section and allocates nothing, so it cannot
//! fail for want of memory, and the fence cannot wait on reclaim.
//!
//! GPUVM thus describes the VM as it will be once the binds recorded so
//! far are applied; the page tables follow in order. A synchronous bind
//! waits for the VM's asynchronous ones before it is recorded, so it sees
//! tables and records in step. Binds of one VM never wait for another VM.
//!
//! Ordering: the queue is per VM, in recording order. Its work item looks
//! at the oldest bind only: when that bind's WAIT fences have signalled it
//! is applied, else a callback on the first unsignalled one queues the
//! work item again (no polling), as a queue's jobs do ([`crate::queue`]).
//! Mappings a bind removes (and the last references to their BOs) are
//! dropped after its fence signalled, outside the critical section: jobs
//! that used them can no longer reach their pages once the TLB is flushed.
//!
//! Failure: a WAIT fence that failed, a device that is gone, or injected
//! failure (debugfs `inject_bind_failure`) leaves the tables out of step
//! with GPUVM. The VM is then unusable: every user mapping is unmapped
//! from its tables ([`Vm::make_unusable`]), its fence carries the error,
//! later binds apply nothing (those that map fail with `EIO`), and
//! SUBMIT on it fails with `EIO`. UNMAP and VM_DESTROY still release what
//! the mappings held.

use kernel::{
    device::{
        Bound,
        Device, //
    },
    dma_fence::{
        Fence,
        FenceTimeline,
        SignalFence,
        SignallingSection, //
    },
    prelude::*,
    sync::{
        aref::ARef,
        Arc, //
    },
    workqueue::{
        self,
        WorkItem, //
    }, //
};

use crate::{
    queue::Dep,
    vm::{
        BindOp,
        Recorded,
        Vm, //
    }, //
};

/// Names of bind fences.
pub(crate) struct BindTimeline;

impl FenceTimeline for BindTimeline {
    const DRIVER_NAME: &'static CStr = c"ferrite";
    const TIMELINE_NAME: &'static CStr = c"ferrite-bind";
}

/// A recorded asynchronous bind waiting for its turn.
pub(crate) struct BindJob {
    /// WAIT fences not known to have signalled, the next to check last.
    deps: KVec<Dep>,
    fence: SignalFence,
    rec: Recorded,
    /// Whether it maps (a bind that maps fails on an unusable VM).
    maps: bool,
}

/// What `Vm::binds` guards. Never held while allocating: the work item
/// that signals bind fences takes it.
pub(crate) struct BindQueue {
    /// Recorded binds, oldest first; room for one more is made before a
    /// bind is recorded.
    jobs: KVec<KBox<BindJob>>,
    /// The fence `Vm::bind_cb` is registered on.
    armed: Option<ARef<Fence>>,
}

impl BindQueue {
    pub(crate) fn new() -> Self {
        Self {
            jobs: KVec::new(),
            armed: None,
        }
    }
}

impl Vm {
    /// DRM_FERRITE_VM_BIND_ASYNC: record `ops` (no userptr ones) and queue
    /// them behind the VM's earlier binds, to be applied once `deps` have
    /// signalled. Returns the bind's fence, and the error of an operation
    /// that could not be recorded (those before it are queued; the caller
    /// signals nothing then).
    pub(crate) fn bind_async(
        self: &Arc<Self>,
        dev: &Device<Bound>,
        ops: &[BindOp],
        deps: KVec<Dep>,
    ) -> Result<(ARef<Fence>, Result)> {
        let mut order = self.order.lock();
        if self.is_unusable() && ops.iter().any(BindOp::maps) {
            pr_debug!("ferrite: VM_BIND: VM {} is unusable\n", self.id);
            return Err(EIO);
        }
        self.check_async(ops)?;
        let seqno = order.seqno + 1;
        let fence = self.bind_fences.fence(seqno, GFP_KERNEL)?;
        let slot = KBox::<BindJob>::new_uninit(GFP_KERNEL)?;
        self.make_room()?;
        // Nothing may fail from here on but the recording itself, whose
        // recorded part is queued all the same.
        let (rec, ret) = self.record(dev, ops)?;
        let out = fence.fence();
        let job = KBox::write(
            slot,
            BindJob {
                deps,
                fence,
                rec,
                maps: ops.iter().any(BindOp::maps),
            },
        );
        order.seqno = seqno;
        order.last = Some(out.clone());
        if let Err(e) = self.binds.lock().jobs.push_within_capacity(job) {
            // Cannot happen: `make_room` made room, under `order`, and only
            // binds recorded under `order` add to the queue.
            kernel::warn_on!(true);
            let job = e.0;
            drop(order);
            self.run_bind(job, Some(ENOMEM));
            return Ok((out, ret));
        }
        drop(order);
        let _ = workqueue::system_unbound().enqueue::<Arc<Vm>, 0>(self.clone());
        Ok((out, ret))
    }

    /// Make room for one more bind in the queue, allocating outside its
    /// lock. Called with `order` held.
    fn make_room(&self) -> Result {
        loop {
            let want = {
                let q = self.binds.lock();
                if q.jobs.len() < q.jobs.capacity() {
                    return Ok(());
                }
                q.jobs.capacity().max(4) * 2
            };
            let mut bigger = KVec::with_capacity(want, GFP_KERNEL)?;
            let old = {
                let mut q = self.binds.lock();
                for j in core::mem::take(&mut q.jobs) {
                    // Cannot fail: the new vector is larger.
                    let _ = bigger.push_within_capacity(j);
                }
                core::mem::replace(&mut q.jobs, bigger)
            };
            drop(old);
        }
    }

    /// Apply a bind whose turn came (or fail it with `failed`), signal its
    /// fence, then let go of what it removed.
    fn run_bind(&self, job: KBox<BindJob>, failed: Option<Error>) {
        let BindJob {
            deps,
            fence,
            rec,
            maps,
        } = KBox::into_inner(job);
        drop(deps);
        {
            let _signalling = SignallingSection::begin();
            let r = match failed {
                Some(e) => Err(e),
                None if self.is_unusable() => {
                    if maps {
                        Err(EIO)
                    } else {
                        Ok(())
                    }
                }
                None if self.gpu.take_injected_bind_failure() => Err(ENOMEM),
                None => self.apply(&rec.edits),
            };
            match r {
                Ok(()) => fence.signal(),
                Err(e) => {
                    self.make_unusable();
                    fence.signal_error(e);
                }
            }
        }
        self.cleanup(rec);
    }
}

impl kernel::dma_fence::FenceCallbackHandler for Vm {
    /// A WAIT fence of the oldest bind signalled: look again (from the
    /// signaller's context: only queue the work item).
    fn signalled(this: Arc<Self>) {
        let _ = workqueue::system_unbound().enqueue::<Arc<Vm>, 0>(this);
    }
}

impl WorkItem for Vm {
    type Pointer = Arc<Vm>;

    /// Apply the binds whose turn came, oldest first.
    fn run(this: Arc<Vm>) {
        loop {
            let (job, failed) = {
                let mut q = this.binds.lock();
                // `bind_cb` may be registered again once its fence signalled
                // and the callback ran (or was removed).
                if let Some(f) = q.armed.take() {
                    if !f.is_signaled() {
                        q.armed = Some(f);
                        return;
                    }
                    drop(f.remove_callback(&this));
                }
                let Some(head) = q.jobs.first_mut() else {
                    return;
                };
                let mut failed = None;
                while let Some(d) = head.deps.last() {
                    if !d.fence.is_signaled() {
                        break;
                    }
                    if let Err(e) = d.fence.status() {
                        failed = Some(e);
                        break;
                    }
                    head.deps.pop();
                }
                if failed.is_none() {
                    if let Some(d) = head.deps.last() {
                        let d = d.fence.clone();
                        match d.add_callback(this.clone()) {
                            // Called back when it signals.
                            Ok(()) => {
                                q.armed = Some(d);
                                return;
                            }
                            // Signalled meanwhile: look again.
                            Err(_) => continue,
                        }
                    }
                }
                match q.jobs.remove(0) {
                    Ok(j) => (j, failed),
                    Err(_) => return,
                }
            };
            this.run_bind(job, failed);
        }
    }
}
