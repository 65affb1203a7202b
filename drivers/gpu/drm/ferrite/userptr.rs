// SPDX-License-Identifier: GPL-2.0

//! Userptrs: a process's own memory mapped into its GPU address space at
//! the same address (GPU VA == CPU VA).
//!
//! The pages are found with `get_user_pages` and referenced (not pinned
//! with `FOLL_PIN`, not `FOLL_LONGTERM`) while the GPU page table points at
//! them, and an interval notifier watches the range. When the kernel is
//! about to change the range's CPU page tables (munmap, mremap,
//! `MADV_DONTNEED`, fork's copy-on-write, migration), the notifier waits a
//! bounded time for the VM's running jobs and marks the range stale. The
//! references keep the old pages from being freed until the driver has
//! unmapped them from the GPU (TLB flush and cache clean included): that
//! happens before the next job of the VM starts, which then gets the
//! range's current pages, or faults on the range if it is gone.
//!
//! Why references and not `hmm_range_fault()` alone: the GPU page table is
//! changed under the VM's lock, which is held across allocations; the
//! notifier may run from reclaim, so it must not take that lock. Holding
//! references lets the notifier return without touching the page table,
//! and keeps "GPU never touches a freed page" true in between.
//!
//! Pages are DMA-mapped with `DMA_ATTR_SKIP_CPU_SYNC` and given to the
//! device (`dma_sync_sgtable_for_device`) before each job of the VM; the
//! unmap (when the range goes stale or is unbound) syncs them for the CPU.

use kernel::{
    device::{Bound, Device},
    dma::DataDirection,
    mm::{
        mmu_notifier::{IntervalNotifier, IntervalNotifierOps, Invalidation},
        user_pages::{DmaPages, UserPages},
    },
    new_spinlock,
    page::PAGE_SIZE,
    prelude::*,
    sync::{Arc, SpinLock},
    time::{delay::fsleep, Delta},
};

use crate::mmu::VmAs;

/// How long an invalidation waits for the VM's running jobs before it lets
/// the kernel go on (the old pages stay referenced, so nothing is freed
/// under a job that is still running).
const WAIT_JOBS_MS: i64 = 2000;

pub(crate) struct RangeState {
    /// The pages the GPU page table points at, if any.
    pub(crate) mapped: Option<DmaPages>,
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
    /// The notifier lock: the invalidation sets the sequence under it.
    #[pin]
    pub(crate) state: SpinLock<RangeState>,
}

impl Range {
    pub(crate) fn new(va: u64, len: u64, prot: u32, hw: Arc<VmAs>) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            va,
            len,
            prot,
            hw,
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

    pub(crate) fn writable(&self) -> bool {
        self.prot & kernel::iommu::pgtable::prot::WRITE != 0
    }
}

impl IntervalNotifierOps for Range {
    fn invalidate(n: &IntervalNotifier<Self>, inv: &Invalidation<'_>) -> bool {
        let r = n.data();
        // Let the jobs that may be using the old pages finish first (fork:
        // a job writing after the copy-on-write split would write into the
        // child's page). Only where sleeping is allowed, and bounded: a
        // hung job is ended by its own timeout.
        if inv.blockable() {
            let mut waited = 0;
            while r.hw.busy() && waited < WAIT_JOBS_MS {
                fsleep(Delta::from_millis(1));
                waited += 1;
            }
        }
        let mut st = r.state.lock();
        inv.set_seq();
        st.valid = false;
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
) -> Result<(DmaPages, u64)> {
    let r = n.data();
    let seq = n.read_begin();
    let mm = n.mm().mmget_not_zero().ok_or(EFAULT)?;
    let npages = usize::try_from(r.len).map_err(|_| EINVAL)? / PAGE_SIZE;
    let va = usize::try_from(r.va).map_err(|_| EINVAL)?;
    let pages = UserPages::get(&mm, va, npages, r.writable())?;
    drop(mm);
    // Cache maintenance is left to the first job (map first, flush later).
    let dma = pages.dma_map(dev, max_segment, DataDirection::Bidirectional, true)?;
    Ok((dma, seq))
}
