// SPDX-License-Identifier: GPL-2.0

//! Userptrs: a process's own memory mapped into its GPU address space at
//! the same address (GPU VA == CPU VA).
//!
//! The pages are found with `get_user_pages` and referenced (not pinned
//! with `FOLL_PIN`, not `FOLL_LONGTERM`) while the GPU page table points at
//! them, and an interval notifier watches the range. When the kernel is
//! about to change the range's CPU page tables (munmap, mremap,
//! `MADV_DONTNEED`, fork's copy-on-write, migration), the notifier waits
//! for the fences of the VM's submitted jobs (every job's fence is in the
//! VM's reservation object) and marks the range stale. The wait is
//! bounded (a job may wait for a fence that never signals): past it, the
//! VM's jobs are stopped, those on a ring by a ring reset, those not yet
//! started when they would start ([`crate::recovery::stop_vm`]), so that
//! after the notifier returns no job can write the old pages (after
//! fork's copy-on-write, the child's). Where the notifier may not sleep,
//! it asks the kernel to retry unless the VM is idle. The references keep
//! the old pages from being freed until the driver has unmapped them from
//! the GPU (TLB flush and cache clean included): that happens before the
//! next job of the VM starts, which then gets the range's current pages,
//! or faults on the range if it is gone.
//!
//! Why references and not `hmm_range_fault()` alone: the userptr's entries
//! change under the VM's userptr lock, which is held across allocations
//! (the lookup); the notifier may run from reclaim, so it must not take
//! that lock. Holding
//! references lets the notifier return without touching the page table,
//! and keeps "GPU never touches a freed page" true in between.
//!
//! The DMA direction follows the binding: a read-only userptr's pages are
//! looked up without `FOLL_WRITE` and may be shared with other processes
//! and the kernel (the zero page, the page cache of a read-only file
//! mapping, KSM pages), so they are mapped `DMA_TO_DEVICE` and nothing is
//! ever copied or synced back into them; a writable one's pages are the
//! process's own (copy-on-write broken) and mapped `DMA_BIDIRECTIONAL`
//! (`kernel::mm::user_pages::Access` ties the two together).
//!
//! Ownership for DMA follows the jobs: pages are mapped with
//! `DMA_ATTR_SKIP_CPU_SYNC`, given to the device (`sync_for_device`) when
//! the first job that may use them is submitted and given back to the CPU
//! (`sync_for_cpu`, a no-op for read-only ones) when the last such job
//! ends, before its fence signals. In between, the device owns them: CPU
//! writes made while a job of the VM runs may not be seen by jobs
//! submitted before that job ends (on a bounced or non-coherent system),
//! as for BOs between GEM_SYNC END and BEGIN. The unmap (when the range
//! goes stale or is unbound, and no job holds the pages) does not sync
//! them again: they are the CPU's by then, and a second bounce-buffer
//! copy would overwrite what the CPU wrote since the last job ended.

use kernel::{
    device::{
        Bound,
        Device, //
    },
    devres::Devres,
    dma_resv::Usage,
    mm::{
        mmu_notifier::{
            IntervalNotifier,
            IntervalNotifierOps,
            Invalidation, //
        },
        user_pages::{
            Access,
            DmaPages,
            UserPages, //
        }, //
    },
    new_spinlock,
    page::PAGE_SIZE,
    prelude::*,
    scatterlist::SGTable,
    sync::{
        aref::ARef,
        atomic::Relaxed,
        Arc,
        SpinLock, //
    },
    time::Delta, //
};

use crate::{
    gem::Bo,
    gpu::Gpu,
    mmu::VmAs, //
};

/// How long an invalidation waits for the VM's jobs before it stops them.
const WAIT_JOBS_MS: i64 = 2000;

/// A userptr's pages as its GPU page-table entries map them, and whether
/// the device owns them.
///
/// The DMA mapping belongs to the device's binding, not to the files that
/// hold the range: a device unbound while a file still holds a userptr
/// (PCI remove) unmaps the pages then ([`Devres`]), and whoever drops the
/// range later finds nothing left to unmap.
#[pin_data(PinnedDrop)]
pub(crate) struct Mapped {
    pages: Devres<DmaPages>,
    /// The pages referenced, counted in [`Gpu::pages_held`] until drop.
    held: u64,
    gpu: Arc<Gpu>,
    /// Submitted jobs that may use the pages and have not ended: the
    /// device owns the pages while this is not zero.
    #[pin]
    device_jobs: SpinLock<u32>,
}

impl Mapped {
    fn new(dev: &Device<Bound>, pages: DmaPages, gpu: &Arc<Gpu>) -> Result<Arc<Self>> {
        let held = pages.pages().len() as u64;
        let pages = Devres::new(dev, pages)?;
        let m = Arc::pin_init(
            try_pin_init!(Self {
                pages,
                held,
                gpu: gpu.clone(),
                device_jobs <- new_spinlock!(0),
            }),
            GFP_KERNEL,
        )?;
        gpu.pages_held(held as i64);
        Ok(m)
    }

    /// Run `f` on the DMA-mapped table; `None` once the device is unbound
    /// (the table is gone with it).
    pub(crate) fn with_sgt<R>(&self, f: impl FnOnce(&SGTable) -> R) -> Option<R> {
        self.pages.try_access_with(|p| f(p.sgt()))
    }

    /// A job that may use the pages was submitted: the first one takes
    /// them from the CPU.
    fn get(&self) {
        let mut n = self.device_jobs.lock();
        if *n == 0 {
            // Nothing to hand over once the device is unbound.
            let _ = self.pages.try_access_with(|p| p.sync_for_device());
        }
        *n += 1;
    }

    /// Such a job ended: the last one gives them back to the CPU.
    fn put(&self) {
        let mut n = self.device_jobs.lock();
        *n = n.saturating_sub(1);
        if *n == 0 {
            // Synced by the unmap if the device was unbound meanwhile.
            let _ = self.pages.try_access_with(|p| p.sync_for_cpu());
        }
    }
}

#[pinned_drop]
impl PinnedDrop for Mapped {
    fn drop(self: Pin<&mut Self>) {
        self.gpu.pages_held(-(self.held as i64));
    }
}

/// The userptr pages a job may use, owned by the device from its
/// submission until [`DeviceLease::release`] (before its fence signals),
/// and kept mapped until then even if the range goes stale.
pub(crate) struct DeviceLease(KVec<Arc<Mapped>>);

impl DeviceLease {
    pub(crate) fn new() -> Self {
        Self(KVec::new())
    }

    /// Take `m` for the device, for the job this lease belongs to.
    pub(crate) fn add(&mut self, m: &Arc<Mapped>) -> Result {
        self.0.reserve(1, GFP_KERNEL)?;
        m.get();
        // Cannot fail: reserved above.
        let _ = self.0.push_within_capacity(m.clone());
        Ok(())
    }

    /// The job ended: give the pages back to the CPU (what the job wrote
    /// becomes visible to it). Needs no memory; called before the job's
    /// fence signals.
    pub(crate) fn release(&mut self) {
        while let Some(m) = self.0.pop() {
            m.put();
        }
    }
}

impl Drop for DeviceLease {
    fn drop(&mut self) {
        self.release();
    }
}

pub(crate) struct RangeState {
    /// The pages the GPU page table points at, if any.
    pub(crate) mapped: Option<Arc<Mapped>>,
    /// No invalidation since `mapped` was looked up.
    pub(crate) valid: bool,
}

/// One userptr: `[va, va + len)` with protection `prot`.
#[pin_data]
pub(crate) struct Range {
    pub(crate) va: u64,
    pub(crate) len: u64,
    pub(crate) prot: u32,
    /// The VM's address-space state (for its running jobs).
    hw: Arc<VmAs>,
    /// The BO holding the VM's reservation object, where every job of the
    /// VM puts its fence.
    resv: ARef<Bo>,
    gpu: Arc<Gpu>,
    /// The notifier lock: the invalidation sets the sequence under it.
    #[pin]
    pub(crate) state: SpinLock<RangeState>,
}

impl Range {
    pub(crate) fn new(
        va: u64,
        len: u64,
        prot: u32,
        hw: Arc<VmAs>,
        resv: ARef<Bo>,
        gpu: Arc<Gpu>,
    ) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            va,
            len,
            prot,
            hw,
            resv,
            gpu,
            state <- new_spinlock!(RangeState {
                mapped: None,
                valid: false,
            }),
        })
    }

    pub(crate) fn end(&self) -> u64 {
        self.va + self.len
    }

    /// Whether the range intersects `[va, va + len)`.
    pub(crate) fn overlaps(&self, va: u64, len: u64) -> bool {
        self.va < va.saturating_add(len) && va < self.end()
    }

    /// Whether the range lies inside `[va, va + len)`.
    pub(crate) fn inside(&self, va: u64, len: u64) -> bool {
        self.va >= va && self.end() <= va.saturating_add(len)
    }

    /// What the GPU may do with the range's pages.
    pub(crate) fn access(&self) -> Access {
        if self.prot & kernel::iommu::pgtable::prot::WRITE != 0 {
            Access::ReadWrite
        } else {
            Access::Read
        }
    }
}

impl IntervalNotifierOps for Range {
    fn invalidate(n: &IntervalNotifier<Self>, inv: &Invalidation<'_>) -> bool {
        let r = n.data();
        let resv = crate::gem::resv_of(&r.resv);
        // The jobs that may use the old pages must be over first (fork: a
        // job writing after the copy-on-write split would write into the
        // child's page).
        let idle = if inv.blockable() {
            resv.wait_timeout(Usage::Bookkeep, Delta::from_millis(WAIT_JOBS_MS))
        } else if resv.test_signaled(Usage::Bookkeep) {
            true
        } else {
            // May not sleep and jobs are pending: the kernel retries.
            return false;
        };
        {
            let mut st = r.state.lock();
            inv.set_seq();
            st.valid = false;
        }
        if !idle {
            // Stale first, then the generation: a SUBMIT that reads the new
            // generation leases fresh pages.
            r.hw.gen.add(1, Relaxed);
            crate::recovery::stop_vm(&r.gpu, &r.hw);
            r.gpu.stats.userptr_stops.add(1, Relaxed);
        }
        true
    }
}

/// A registered userptr.
pub(crate) type Userptr = Pin<KBox<IntervalNotifier<Range>>>;

/// Look up and DMA-map the current pages of `r` (for `dev`, segments of
/// at most `max_segment`); returns them with the notifier sequence they are
/// valid for.
pub(crate) fn fetch(
    n: &IntervalNotifier<Range>,
    dev: &Device<Bound>,
    max_segment: u32,
) -> Result<(Arc<Mapped>, u64)> {
    let r = n.data();
    let seq = n.read_begin();
    let mm = n.mm().mmget_not_zero().ok_or(EFAULT)?;
    let len = usize::try_from(r.len).map_err(|_| EINVAL)?;
    let va = usize::try_from(r.va).map_err(|_| EINVAL)?;
    // Whole CPU pages (VM_BIND checked): none may be left out of the lookup.
    if len % PAGE_SIZE != 0 || va % PAGE_SIZE != 0 {
        pr_debug!(
            "ferrite: userptr [{:#x}, +{:#x}) not in whole CPU pages\n",
            r.va,
            r.len
        );
        return Err(EINVAL);
    }
    let npages = len / PAGE_SIZE;
    let pages = UserPages::get(&mm, va, npages, r.access())?;
    drop(mm);
    // Cache maintenance is left to the first job (map first, flush later).
    let dma = pages.dma_map(dev, max_segment, true)?;
    Ok((Mapped::new(dev, dma, &r.gpu)?, seq))
}
