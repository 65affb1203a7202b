// SPDX-License-Identifier: GPL-2.0

//! Mirroring a process's page tables in a device's: `hmm_range_fault()`.
//!
//! A device with its own MMU and page faults can use the process's addresses directly ("shared
//! virtual memory"): when it faults on an address, the driver asks the kernel for the pages behind
//! a range around it with [`Snapshot::fault`], maps them in the device's page table and lets the
//! device go on. Nothing is pinned and no reference is held: what keeps the device off pages the
//! process gave away is the [`IntervalNotifier`] of the range, whose callback removes the device's
//! mappings before the CPU's change completes. The pattern (`Documentation/mm/hmm.rst`):
//!
//! 1. [`Snapshot::fault`] reads the range's pages, faulting them in as the CPU would (a write
//!    fault breaks copy-on-write, swapped-out pages are read back, THPs are reported whole), and
//!    returns them with the notifier sequence they are valid for;
//! 2. the driver maps them for DMA ([`Snapshot::dma_map`]) and takes the lock its notifier
//!    callback takes; if [`IntervalNotifier::read_retry`] says the range changed meanwhile it
//!    starts again, else it points the device's page table at the DMA addresses;
//! 3. the callback takes that lock, calls [`super::mmu_notifier::Invalidation::set_seq`], removes
//!    the device's entries (and flushes its TLB) and drops the [`DmaRuns`], all before it returns.
//!
//! The DMA mapping follows the pages' lifetime, not the other way round: by the time a
//! [`DmaRuns`] is dropped the pages may already belong to someone else (the range may have been
//! invalidated, the DMA mapping is then stale), so its unmap never touches them
//! (`DMA_ATTR_SKIP_CPU_SYNC`). Sharing memory with a device this way is only coherent where its
//! DMA is direct ([`dma_is_direct`]) and coherent with the CPU's caches.
//!
//! C header: [`include/linux/hmm.h`](srctree/include/linux/hmm.h)

use crate::{
    alloc::KVVec,
    bindings,
    device::{Bound, Device},
    dma::DataDirection,
    error::to_result,
    mm::mmu_notifier::{IntervalNotifier, IntervalNotifierOps},
    page::{PAGE_SHIFT, PAGE_SIZE},
    prelude::*,
    sync::aref::ARef,
    time::{msecs_to_jiffies, Delta},
};

/// The bits of an `hmm_pfns` entry above the page frame number.
const FLAG_BITS: u32 = 11;
const VALID: usize = 1 << (usize::BITS - 1);
const WRITE: usize = 1 << (usize::BITS - 2);
const ERROR: usize = 1 << (usize::BITS - 3);
const ORDER_SHIFT: u32 = usize::BITS - FLAG_BITS;
const PFN_MASK: usize = (1 << ORDER_SHIFT) - 1;

/// One page of a [`Snapshot`], as the CPU's page table maps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pfn(usize);

impl Pfn {
    /// Whether a page is there (always, for a snapshot that [`Snapshot::fault`] returned).
    pub fn is_valid(self) -> bool {
        self.0 & VALID != 0 && self.0 & ERROR == 0
    }

    /// Whether the CPU may write the page (the device may then write it too).
    pub fn is_writable(self) -> bool {
        self.0 & WRITE != 0
    }

    /// The order of the CPU mapping the page is part of: 0 for a page, `PMD_SHIFT - PAGE_SHIFT`
    /// for a transparent huge page mapped by one PMD entry.
    pub fn map_order(self) -> u32 {
        ((self.0 >> ORDER_SHIFT) & 0x1f) as u32
    }

    /// The page's physical address.
    pub fn phys(self) -> u64 {
        ((self.0 & PFN_MASK) as u64) << PAGE_SHIFT
    }
}

/// The pages behind `[start, start + len)` of a process's address space, read by
/// `hmm_range_fault()`, and the notifier sequence they are valid for.
///
/// No reference is held on the pages: the snapshot is only meaningful while the range's
/// [`IntervalNotifier`] has not been invalidated since (see the module documentation).
pub struct Snapshot {
    start: usize,
    pfns: KVVec<usize>,
    seq: u64,
}

impl Snapshot {
    /// Fault in and read `[start, start + len)` (whole CPU pages, inside the range `notifier`
    /// watches), as a CPU access would: for writing if `write`, else for reading (a read may then
    /// see the shared zero page or a copy-on-write page, not writable).
    ///
    /// Takes the `mmap_lock` itself (the caller must not hold it) and retries while
    /// invalidations race with it, for at most `timeout`. Fails with `EFAULT` if a page cannot be
    /// made present (nothing mapped there, a mapping that may not be read, or one that has no
    /// pages to give: `VM_IO`, `VM_PFNMAP`), `EPERM` for a write to a mapping that is not
    /// writable, `EBUSY` if invalidations kept racing, `EINTR` on a fatal signal, `ENOMEM`.
    pub fn fault<T: IntervalNotifierOps>(
        notifier: &IntervalNotifier<T>,
        start: usize,
        len: usize,
        write: bool,
        timeout: Delta,
    ) -> Result<Self> {
        if start % PAGE_SIZE != 0 || len % PAGE_SIZE != 0 || len == 0 {
            return Err(EINVAL);
        }
        let end = start.checked_add(len).ok_or(EINVAL)?;
        let npages = len / PAGE_SIZE;
        let mut pfns = KVVec::with_capacity(npages, GFP_KERNEL)?;
        pfns.resize(npages, 0, GFP_KERNEL)?;
        let mut range = bindings::hmm_range {
            notifier: notifier.as_raw(),
            notifier_seq: 0,
            start,
            end,
            hmm_pfns: pfns.as_mut_ptr(),
            default_flags: VALID | if write { WRITE } else { 0 },
            pfn_flags_mask: 0,
            dev_private_owner: core::ptr::null_mut(),
        };
        let ms = u32::try_from(timeout.as_millis().max(1)).unwrap_or(u32::MAX);
        // SAFETY: `range` is initialised; its notifier is registered (type invariant of
        // `IntervalNotifier`) and its `hmm_pfns` array has one entry per page of the range, and
        // both outlive the call. The caller does not hold the `mmap_lock`.
        to_result(unsafe {
            bindings::hmm_range_fault_unlocked_timeout(&mut range, msecs_to_jiffies(ms))
        })?;
        Ok(Self {
            start,
            pfns,
            seq: range.notifier_seq as u64,
        })
    }

    /// The notifier sequence the snapshot is valid for (check it with
    /// [`IntervalNotifier::read_retry`]).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The first address of the range.
    pub fn start(&self) -> usize {
        self.start
    }

    /// The pages, one per CPU page of the range.
    pub fn pfns(&self) -> impl Iterator<Item = Pfn> + '_ {
        self.pfns.iter().map(|p| Pfn(*p))
    }

    /// Map the pages for `dev`'s DMA in direction `dir`: one mapping per run of pages that the
    /// CPU maps as one huge page (where the whole huge page lies in the snapshot), one per page
    /// elsewhere. The map cleans CPU caches where needed; the unmap never touches the pages.
    pub fn dma_map(&self, dev: &Device<Bound>, dir: DataDirection) -> Result<DmaRuns> {
        let mut runs = DmaRuns {
            dev: dev.into(),
            dir,
            runs: KVec::new(),
        };
        let mut i = 0;
        while i < self.pfns.len() {
            let p = Pfn(self.pfns[i]);
            if !p.is_valid() {
                return Err(EFAULT);
            }
            let n = huge_run(&self.pfns[i..], self.start + i * PAGE_SIZE);
            let len = n * PAGE_SIZE;
            // SAFETY: `dev` is a bound device; the page is one `hmm_range_fault()` returned for
            // the range (the memory exists; if the range was invalidated since, the caller finds
            // out with `read_retry` and drops the mapping without using it).
            let addr =
                unsafe { bindings::dma_map_phys(dev.as_raw(), p.phys(), len, dir.into(), 0) };
            // SAFETY: `dev` is a valid device.
            if unsafe { bindings::dma_mapping_error(dev.as_raw(), addr) } != 0 {
                return Err(ENOMEM);
            }
            let run = DmaRun {
                offset: i * PAGE_SIZE,
                addr,
                len,
            };
            if let Err(e) = runs.runs.push(run, GFP_KERNEL) {
                // SAFETY: just mapped for `dev` in `dir`, not yet recorded in `runs`.
                unsafe {
                    bindings::dma_unmap_phys(
                        dev.as_raw(),
                        addr,
                        len,
                        dir.into(),
                        bindings::DMA_ATTR_SKIP_CPU_SYNC as usize,
                    )
                };
                return Err(e.into());
            }
            i += n;
        }
        Ok(runs)
    }
}

/// How many entries from the start of `pfns` (the first at address `va`) form one huge CPU
/// mapping that lies whole in `pfns` and is aligned in both address spaces; 1 if none does.
fn huge_run(pfns: &[usize], va: usize) -> usize {
    let p = Pfn(pfns[0]);
    let order = p.map_order();
    if order == 0 || order >= usize::BITS - PAGE_SHIFT as u32 {
        return 1;
    }
    let n = 1usize << order;
    let size = PAGE_SIZE << order;
    if va % size != 0 || p.phys() % size as u64 != 0 || pfns.len() < n {
        return 1;
    }
    let first = p.0 & PFN_MASK;
    let whole = pfns[..n].iter().enumerate().all(|(k, e)| {
        Pfn(*e).is_valid() && e & PFN_MASK == first + k && Pfn(*e).map_order() == order
    });
    if whole {
        n
    } else {
        1
    }
}

/// One DMA mapping of a [`DmaRuns`].
#[derive(Clone, Copy, Debug)]
pub struct DmaRun {
    /// Offset of the run in the snapshot's range.
    pub offset: usize,
    /// Its DMA address.
    pub addr: bindings::dma_addr_t,
    /// Its length in bytes (a CPU page, or a huge page).
    pub len: usize,
}

/// The DMA mappings of a [`Snapshot`]'s pages, unmapped on drop without touching the pages.
///
/// # Invariants
///
/// Each run is mapped for `dev` in `dir` until `drop`.
pub struct DmaRuns {
    dev: ARef<Device>,
    dir: DataDirection,
    runs: KVec<DmaRun>,
}

impl DmaRuns {
    /// The runs, in address order.
    pub fn runs(&self) -> &[DmaRun] {
        &self.runs
    }
}

impl Drop for DmaRuns {
    fn drop(&mut self) {
        for r in self.runs.iter() {
            // SAFETY: mapped for `dev` in `dir` (type invariant). The pages may be someone
            // else's by now: nothing is synced or copied back into them.
            unsafe {
                bindings::dma_unmap_phys(
                    self.dev.as_raw(),
                    r.addr,
                    r.len,
                    self.dir.into(),
                    bindings::DMA_ATTR_SKIP_CPU_SYNC as usize,
                )
            };
        }
    }
}

/// Whether `dev`'s DMA reaches all memory directly: no bounce buffer, whether forced
/// (`swiotlb=force`) or needed because its DMA mask is narrower than memory.
///
/// Sharing memory with a device by mirroring is coherent only where this holds and the device's
/// DMA is coherent with the CPU's caches ([`crate::dma::Device::dma_is_coherent`]). Elsewhere the
/// device and the CPU would see different copies of the memory they share, with no point at which
/// to hand it over.
pub fn dma_is_direct(dev: &Device<Bound>) -> bool {
    // SAFETY: `dev` is a valid, bound device.
    unsafe {
        !bindings::is_swiotlb_force_bounce(dev.as_raw())
            && !bindings::dma_addressing_limited(dev.as_raw())
    }
}

#[macros::kunit_tests(rust_mm_hmm)]
mod tests {
    use super::*;
    use crate::{
        faux,
        mm::{
            mmu_notifier::Invalidation,
            user_pages::test_support::{enable_dma, map, unmap, PROT_READ, PROT_WRITE},
        },
        uaccess::{UserPtr, UserSlice},
    };

    /// A notifier that only advances its sequence.
    struct Watch;

    impl IntervalNotifierOps for Watch {
        fn invalidate(_: &IntervalNotifier<Self>, inv: &Invalidation<'_>) -> bool {
            // Nothing maps the pages: no lock to take around the sequence.
            inv.set_seq();
            true
        }
    }

    /// A notifier on `[addr, addr + npages pages)` of the test's address space.
    fn watch(addr: usize, npages: usize) -> Result<Pin<KBox<IntervalNotifier<Watch>>>> {
        let task = crate::current!();
        let mm = task.mm().ok_or(EINVAL)?;
        KBox::pin_init(
            IntervalNotifier::new(mm, addr, npages * PAGE_SIZE, Ok::<_, Error>(Watch)),
            GFP_KERNEL,
        )
    }

    fn timeout() -> Delta {
        Delta::from_millis(1000)
    }

    #[test]
    fn fault_reads_what_the_cpu_wrote() -> Result {
        let addr = map(4, PROT_READ | PROT_WRITE)?;
        let bytes = KVec::from_elem(0x5au8, 4 * PAGE_SIZE, GFP_KERNEL)?;
        UserSlice::new(UserPtr::from_addr(addr), 4 * PAGE_SIZE)
            .writer()
            .write_slice(&bytes)?;
        let n = watch(addr, 4)?;
        let snap = Snapshot::fault(&n, addr, 4 * PAGE_SIZE, true, timeout())?;
        assert!(!n.read_retry(snap.seq()));
        assert_eq!(snap.pfns().count(), 4);
        assert!(snap.pfns().all(|p| p.is_valid() && p.is_writable()));
        // The device sees the CPU's bytes at the DMA addresses (a faux device maps directly, or,
        // with `swiotlb=force`, through bounce buffers the map filled).
        let reg = faux::Registration::new(c"rust_mm_hmm", None)?;
        let dev: &Device<Bound> = reg.as_ref().as_ref();
        // SAFETY: the device is ours, new, and has done no DMA.
        unsafe { enable_dma(dev) };
        let dma = snap.dma_map(dev, DataDirection::Bidirectional)?;
        assert_eq!(
            dma.runs().iter().map(|r| r.len).sum::<usize>(),
            4 * PAGE_SIZE
        );
        for r in dma.runs() {
            // SAFETY: `r.addr` is the physical address of `r.len` bytes of RAM (direct DMA).
            let p = unsafe {
                bindings::memremap(r.addr, r.len, bindings::MEMREMAP_WB as crate::ffi::c_ulong)
            };
            assert!(!p.is_null());
            // SAFETY: `p` maps `r.len` bytes nothing else writes meanwhile.
            let seen = unsafe { core::slice::from_raw_parts(p.cast::<u8>(), r.len) };
            assert!(seen.iter().all(|&b| b == 0x5a));
            // SAFETY: mapped above.
            unsafe { bindings::memunmap(p) };
        }
        Ok(())
    }

    #[test]
    fn read_of_untouched_memory_is_not_writable() -> Result {
        let addr = map(2, PROT_READ | PROT_WRITE)?;
        let n = watch(addr, 2)?;
        // A read fault maps the shared zero page: the device may not write it.
        let snap = Snapshot::fault(&n, addr, 2 * PAGE_SIZE, false, timeout())?;
        assert!(snap.pfns().all(|p| p.is_valid() && !p.is_writable()));
        // A write fault gives the process pages of its own.
        let snap = Snapshot::fault(&n, addr, 2 * PAGE_SIZE, true, timeout())?;
        assert!(snap.pfns().all(|p| p.is_valid() && p.is_writable()));
        Ok(())
    }

    #[test]
    fn unmapped_or_read_only_memory_fails() -> Result {
        let addr = map(2, PROT_READ | PROT_WRITE)?;
        let n = watch(addr, 2)?;
        unmap(addr + PAGE_SIZE, PAGE_SIZE)?;
        assert_eq!(
            Snapshot::fault(&n, addr, 2 * PAGE_SIZE, false, timeout()).err(),
            Some(EFAULT)
        );
        let ro = map(1, PROT_READ)?;
        let n = watch(ro, 1)?;
        assert_eq!(
            Snapshot::fault(&n, ro, PAGE_SIZE, true, timeout()).err(),
            Some(EPERM)
        );
        assert!(Snapshot::fault(&n, ro, PAGE_SIZE, false, timeout()).is_ok());
        // Not whole pages.
        assert_eq!(
            Snapshot::fault(&n, ro + 1, PAGE_SIZE, false, timeout()).err(),
            Some(EINVAL)
        );
        Ok(())
    }

    #[test]
    fn unmap_invalidates_the_snapshot() -> Result {
        let addr = map(2, PROT_READ | PROT_WRITE)?;
        let n = watch(addr, 2)?;
        let snap = Snapshot::fault(&n, addr, 2 * PAGE_SIZE, true, timeout())?;
        assert!(!n.read_retry(snap.seq()));
        unmap(addr, PAGE_SIZE)?;
        assert!(n.read_retry(snap.seq()));
        Ok(())
    }

    #[test]
    fn huge_run_needs_a_whole_aligned_huge_page() {
        let order = 9;
        let flags = VALID | WRITE | ((order as usize) << ORDER_SHIFT);
        let base = 0x200; // pfn of a 2 MiB-aligned page on 4 KiB pages
        let mut pfns = KVec::new();
        for i in 0..512 {
            assert!(pfns.push(flags | (base + i), GFP_KERNEL).is_ok());
        }
        let va = 512 * PAGE_SIZE;
        assert_eq!(huge_run(&pfns, va), 512);
        // Misaligned in the address space, cut short, or not contiguous: one page.
        assert_eq!(huge_run(&pfns, va + PAGE_SIZE), 1);
        assert_eq!(huge_run(&pfns[..511], va), 1);
        pfns[7] = flags | (base + 100);
        assert_eq!(huge_run(&pfns, va), 1);
        // A page of order 0.
        assert_eq!(huge_run(&[VALID | base], va), 1);
    }
}
