// SPDX-License-Identifier: GPL-2.0

//! Mirror VMs: the process's whole address space on the GPU, by page
//! faults, without pinning (shared virtual memory).
//!
//! A mirror VM (DRM_FERRITE_VM_CREATE_MIRROR) maps nothing up front. Its
//! address-space slot runs in stall mode: a GPU access with no translation
//! stalls the queue and raises the MMU interrupt, whose handler hands the
//! fault to the VM's fault work ([`handle`]). The work looks the process's
//! memory up with `hmm_range_fault()` ([`kernel::mm::hmm`]), maps it and
//! RESUMEs the slot; an address the process has not mapped, or may not
//! access that way, ABORTs it, and the job fails with a recorded fault as
//! in any VM.
//!
//! Why `hmm_range_fault()` directly and not `drm_gpusvm`: the helper is
//! built around device memory (`drm_pagemap` migration to VRAM) and a
//! driver notifier lock it takes on the driver's behalf; the Ferrite GPU has
//! no memory of its own, its page tables belong to io-pgtable and are
//! changed under the VM's own locks, and what is left (ranges, a notifier
//! per range, a collector) is a few hundred lines, here.
//!
//! *Chunks.* A fault maps a whole chunk around the faulting address, so
//! that a linear walk does not fault on every page: the 2 MiB around it if
//! one mapping (VMA) of the process covers it and no chunk overlaps it,
//! else the 64 KiB, else the CPU page. A transparent huge page the CPU maps
//! with one PMD entry is mapped as one 2 MiB block (one TLB entry). Each
//! chunk has its own interval notifier.
//!
//! *No pinning.* The driver holds no reference on the pages: the chunk's
//! notifier runs before the CPU's page tables change (munmap, mprotect,
//! fork's copy-on-write, migration, compaction, swap-out, exit). It
//! removes the chunk's GPU entries (LOCK, edit, TLB flush), writes the
//! device cache back while the pages are still the process's, drops the
//! DMA mappings and retires the chunk; the next GPU access faults again
//! and finds the range as the CPU's page tables then say (a new chunk,
//! chosen from the VMAs of the moment).
//!
//! *Locks* (outermost first): [`Gpu::svm_gate`] (the device is bound: DMA
//! may be mapped; held from the DMA map to the page-table commit), the
//! VM's [`Mirror::chunks`] (the notifier lock: the callback takes it, so it
//! is never held while allocating), then the VM's page-table lock and the
//! slot lock, as for binds. A chunk's mapping is [`LockedBy`] the chunks
//! lock.
//!
//! *Fences.* Fault handling allocates memory (it faults pages in), so no
//! fence that memory reclaim may wait for can depend on it. The jobs of a
//! mirror VM are long-running: their fences never leave the driver (SUBMIT
//! takes no SIGNAL sync and no BO for them, the VM's BOs cannot be
//! exported), and a stalled queue gives its hardware ring up to any queue
//! that waits for one (the device can suspend a queue inside a stall), so
//! that other VMs' fences do not wait for a fault either. The work is not a
//! fence-signalling section, and need not be.
//!
//! [`Gpu::svm_gate`]: crate::gpu::Gpu::svm_gate

use kernel::{
    device::{
        Bound,
        Device, //
    },
    dma::DataDirection,
    iommu::pgtable::prot,
    mm::{
        hmm::{
            DmaRuns,
            Snapshot, //
        },
        mmu_notifier::{
            IntervalNotifier,
            IntervalNotifierOps,
            Invalidation, //
        },
        virt::flags as vmflags,
        Mm, //
    },
    new_mutex,
    new_spinlock,
    page::PAGE_SIZE,
    prelude::*,
    rbtree::{
        RBTree,
        RBTreeNode, //
    },
    sizes::{
        SZ_2M,
        SZ_64K, //
    },
    sync::{
        aref::ARef,
        atomic::{
            Atomic,
            Relaxed, //
        },
        LockedBy,
        Mutex,
        SpinLock, //
    },
    time::{
        Delta,
        Instant,
        Monotonic, //
    }, //
};

use crate::{
    driver::{
        GPU_PAGE_SIZE,
        USER_VA_START, //
    },
    gpu::Gpu,
    mmu::Fault,
    vm::{
        table_bound,
        Vm, //
    },
};

/// Chunk sizes, largest first (see the module documentation).
const CHUNKS: [u64; 3] = [SZ_2M as u64, SZ_64K as u64, PAGE_SIZE as u64];

/// How long a lookup retries while invalidations race with it.
const LOOKUP_TIMEOUT_MS: i64 = 1000;

/// How long a fault is retried while invalidations of its chunk win the
/// race (a swap-out, a migration, reclaim racing with the swap-in): the CPU
/// would retry its own fault as long; past this the job fails.
const RETRY_MS: i64 = 5000;

/// Fault types of `AS_FAULTSTATUS` the driver resolves.
const FAULT_TRANSLATION: u32 = 1;
const FAULT_PERMISSION: u32 = 2;

/// SVM figures (debugfs `svm`, the benchmark).
pub(crate) struct SvmStats {
    /// Faults resolved (the slot resumed).
    pub(crate) faults: Atomic<u64>,
    /// Faults that failed their job (the slot aborted).
    pub(crate) aborts: Atomic<u64>,
    /// Why the last one failed (a positive errno: EFAULT nothing mapped,
    /// EPERM not writable, EBUSY invalidations kept winning).
    pub(crate) last_abort_errno: Atomic<i64>,
    /// CPU pages mapped by faults.
    pub(crate) pages: Atomic<u64>,
    /// 2 MiB blocks mapped by faults.
    pub(crate) blocks_2m: Atomic<u64>,
    /// Chunks whose mapping an invalidation removed.
    pub(crate) invalidations: Atomic<u64>,
    /// Sums over resolved faults, in ns: interrupt to work, page lookup,
    /// DMA map and page-table commit, RESUME.
    pub(crate) ns_dispatch: Atomic<u64>,
    pub(crate) ns_get_pages: Atomic<u64>,
    pub(crate) ns_map: Atomic<u64>,
    pub(crate) ns_resume: Atomic<u64>,
}

impl Default for SvmStats {
    fn default() -> Self {
        Self {
            faults: Atomic::new(0),
            aborts: Atomic::new(0),
            last_abort_errno: Atomic::new(0),
            pages: Atomic::new(0),
            blocks_2m: Atomic::new(0),
            invalidations: Atomic::new(0),
            ns_dispatch: Atomic::new(0),
            ns_get_pages: Atomic::new(0),
            ns_map: Atomic::new(0),
            ns_resume: Atomic::new(0),
        }
    }
}

/// A fault the interrupt handler handed to the fault work.
#[derive(Clone, Copy)]
pub(crate) struct Pending {
    pub(crate) slot: usize,
    pub(crate) fault: Fault,
    pub(crate) at: Instant<Monotonic>,
}

impl Pending {
    fn kind(&self) -> u32 {
        self.fault.status & 0xf
    }

    fn write(&self) -> bool {
        self.fault.status & (1 << 4) != 0
    }
}

/// A chunk's mapping: the DMA mappings its GPU entries point at.
struct Mapping {
    /// Held (only dropped) until the entries are gone.
    _dma: DmaRuns,
    /// Every page was mapped writable.
    writable: bool,
}

/// A mirrored chunk `[start, start + len)`, watched by its notifier.
pub(crate) struct Chunk {
    start: u64,
    len: u64,
    /// The VM of the chunk.
    ///
    /// # Invariants
    ///
    /// Valid while the chunk's notifier is registered: the VM removes
    /// every chunk (and so their notifiers, waiting for running callbacks)
    /// before it is freed.
    vm: *const Vm,
    /// The VMA the chunk lies in was writable when it was chosen.
    vma_writable: bool,
    /// Mapped in the GPU page table; changed under the chunks lock.
    mapping: LockedBy<Option<Mapping>, Chunks>,
    /// An invalidation retired the chunk: the next fault work drops it.
    retired: Atomic<bool>,
}

// SAFETY: `vm` is only dereferenced while the VM is alive (type invariant),
// and `Vm` is `Sync`; the rest is `Send + Sync`.
unsafe impl Send for Chunk {}
// SAFETY: as above.
unsafe impl Sync for Chunk {}

type ChunkBox = Pin<KBox<IntervalNotifier<Chunk>>>;

impl Chunk {
    fn end(&self) -> u64 {
        self.start + self.len
    }

    fn vm(&self) -> &Vm {
        // SAFETY: the notifier of the chunk is registered while this runs
        // (type invariant).
        unsafe { &*self.vm }
    }
}

/// What [`Mirror::chunks`] guards.
pub(crate) struct Chunks {
    tree: RBTree<u64, ChunkBox>,
    /// Mapped (not retired) chunks, for debugfs.
    mapped: u64,
}

/// The mirror state of a VM.
#[pin_data]
pub(crate) struct Mirror {
    /// The mirrored range, `[start, end)`.
    pub(crate) start: u64,
    pub(crate) end: u64,
    /// The process whose addresses the VM mirrors.
    pub(crate) mm: ARef<Mm>,
    /// The chunks; the notifier lock (never held while allocating).
    #[pin]
    pub(crate) chunks: Mutex<Chunks>,
    /// The fault the work is to resolve next.
    #[pin]
    pub(crate) pending: SpinLock<Option<Pending>>,
}

impl Mirror {
    pub(crate) fn new(mm: &Mm, end: u64) -> impl PinInit<Self, Error> + '_ {
        try_pin_init!(Self {
            start: USER_VA_START.next_multiple_of(PAGE_SIZE as u64),
            end,
            mm: ARef::from(mm),
            chunks <- new_mutex!(Chunks {
                tree: RBTree::new(),
                mapped: 0,
            }),
            pending <- new_spinlock!(None),
        })
    }

    /// Whether `mm` is the mirrored process's.
    pub(crate) fn is_for(&self, mm: &Mm) -> bool {
        core::ptr::eq(self.mm.as_raw(), mm.as_raw())
    }

    /// Chunks mapped now.
    pub(crate) fn mapped(&self) -> u64 {
        self.chunks.lock().mapped
    }

    /// Take every chunk away (VM teardown; the VM has left its slot).
    /// Removing a notifier waits for its running callbacks, which take the
    /// chunks lock: the chunks go after it is released.
    pub(crate) fn clear(&self) {
        loop {
            let c = {
                let mut g = self.chunks.lock();
                let Some(k) = g.tree.keys().next().copied() else {
                    return;
                };
                g.tree.remove(&k)
            };
            drop(c);
        }
    }

    /// The device is being unbound: drop every DMA mapping while it still
    /// is (the page tables go with the device; the chunks stay, unmapped,
    /// until the VM goes). Called with [`Gpu::svm_gate`] closed.
    ///
    /// [`Gpu::svm_gate`]: crate::gpu::Gpu::svm_gate
    pub(crate) fn unmap_all(&self) {
        loop {
            let mut g = self.chunks.lock();
            let Some(c) = g
                .tree
                .values()
                .find(|c| c.data().mapping.access(&g).is_some())
                .map(|c| core::ptr::from_ref(c.data()))
            else {
                return;
            };
            // SAFETY: the chunk is in the tree, whose lock is held.
            let c = unsafe { &*c };
            c.retired.store(true, Relaxed);
            let m = c.mapping.access_mut(&mut g).take();
            g.mapped = g.mapped.saturating_sub(1);
            drop(g);
            drop(m);
        }
    }
}

impl IntervalNotifierOps for Chunk {
    fn invalidate(n: &IntervalNotifier<Self>, inv: &Invalidation<'_>) -> bool {
        let c = n.data();
        let vm = c.vm();
        let Some(mirror) = vm.mirror.as_ref() else {
            return true;
        };
        let mut g = if inv.blockable() {
            mirror.chunks.lock()
        } else {
            match mirror.chunks.try_lock() {
                Some(g) => g,
                None => return false,
            }
        };
        if !inv.blockable() && c.mapping.access_mut(&mut g).is_some() {
            // Unmapping sleeps (the page-table and slot locks).
            return false;
        }
        inv.set_seq();
        c.retired.store(true, Relaxed);
        let Some(m) = c.mapping.access_mut(&mut g).take() else {
            return true;
        };
        g.mapped = g.mapped.saturating_sub(1);
        unmap_chunk(vm, c.start, c.len);
        vm.gpu.stats.svm.invalidations.add(1, Relaxed);
        // Flushed and written back: the DMA mappings may go, before the
        // CPU's change completes.
        drop(m);
        drop(g);
        true
    }
}

/// Remove the GPU entries of `[start, start + len)`, flush them from the
/// TLB and write the device cache back. Allocates nothing.
fn unmap_chunk(vm: &Vm, start: u64, len: u64) {
    let _pt = vm.pt_lock.lock();
    vm.gpu.update_vm(&vm.hw, |live| {
        let _ = vm.pt.try_access_with(|pt| {
            live.before_change();
            // A whole 2 MiB chunk: its block, or its table, goes at once.
            let (pg, n) = if len == SZ_2M as u64 {
                (SZ_2M, 1)
            } else {
                (GPU_PAGE_SIZE, len as usize / GPU_PAGE_SIZE)
            };
            // SAFETY: `pt_lock` is held; the chunk's range belongs to no
            // other mapping (mirror VMs bind nothing below their end).
            // Entries that map nothing are tolerated (QUIRK_NO_WARN).
            let _ = unsafe { pt.unmap_pages(start as usize, pg, n) };
        });
        ((), Some((start, start + len)))
    });
}

/// Resolve the fault `p` of `vm`'s slot, then RESUME or ABORT the slot
/// (fault work; may sleep and allocate).
pub(crate) fn handle(vm: &Vm, m: &Mirror, p: Pending) {
    let stats = &vm.gpu.stats.svm;
    let start = Instant::<Monotonic>::now();
    let dispatch = (start - p.at).as_nanos() as u64;
    let mut times = Times::default();
    let r = resolve(vm, m, &p, &mut times);
    if let Err(e) = &r {
        pr_debug!(
            "ferrite: VM {}: fault at {:#x} (status {:#x}) not resolved: {:?}\n",
            vm.id,
            p.fault.addr,
            p.fault.status,
            e
        );
    }
    let t = Instant::<Monotonic>::now();
    finish(&vm.gpu, vm, p.slot, r.is_ok());
    if r.is_ok() {
        stats.faults.add(1, Relaxed);
        stats.ns_dispatch.add(dispatch, Relaxed);
        stats.ns_get_pages.add(times.get_pages, Relaxed);
        stats.ns_map.add(times.map, Relaxed);
        stats.ns_resume.add(t.elapsed().as_nanos() as u64, Relaxed);
    } else {
        stats.aborts.add(1, Relaxed);
        if let Err(e) = r {
            stats
                .last_abort_errno
                .store(-i64::from(e.to_errno()), Relaxed);
        }
    }
}

#[derive(Default)]
struct Times {
    get_pages: u64,
    map: u64,
}

/// RESUME (`ok`) or ABORT the stalled slot `slot`, if `vm` still holds it.
fn finish(gpu: &Gpu, vm: &Vm, slot: usize, ok: bool) {
    {
        let _slots = gpu.slots.lock();
        if vm.hw.slot() == Some(slot) {
            // Not checked: a device that is gone resumes nothing, and a
            // slot out of range was reported where it arose.
            // Posted: nothing here waits for the device to act on it (the
            // table writes it needs to see went before, `writel` orders
            // them).
            let _ = gpu.try_io(|bar| crate::mmu::end_stall(bar, slot, ok));
        }
    }
    crate::sched::unstalled(gpu, &vm.hw);
}

fn resolve(vm: &Vm, m: &Mirror, p: &Pending, times: &mut Times) -> Result {
    let kind = p.kind();
    if kind != FAULT_TRANSLATION && kind != FAULT_PERMISSION {
        pr_debug!("ferrite: mirror fault type {} is not resolved\n", kind);
        return Err(EFAULT);
    }
    let cpu_page = PAGE_SIZE as u64;
    let addr = p.fault.addr & !(cpu_page - 1);
    if addr < m.start || addr >= m.end {
        pr_debug!(
            "ferrite: mirror fault at {:#x}, outside [{:#x}, {:#x})\n",
            p.fault.addr,
            m.start,
            m.end
        );
        return Err(EFAULT);
    }
    let mm = m.mm.mmget_not_zero().ok_or(EFAULT)?;
    let deadline = Delta::from_millis(RETRY_MS);
    let begun = Instant::<Monotonic>::now();
    while begun.elapsed().as_nanos() < deadline.as_nanos() {
        collect(m);
        let chunk = match find(m, addr) {
            Some(c) => c,
            None => {
                let (start, len, writable) = match choose(&mm, m, addr) {
                    Ok(c) => c,
                    // A chunk retired since `collect` still holds the
                    // window: collect it, and choose again.
                    Err(e) if e == EBUSY => continue,
                    Err(e) => return Err(e),
                };
                let c: ChunkBox = KBox::pin_init(
                    IntervalNotifier::new(
                        &mm,
                        start as usize,
                        len as usize,
                        Ok::<_, Error>(Chunk {
                            start,
                            len,
                            vm: core::ptr::from_ref(vm),
                            vma_writable: writable,
                            mapping: LockedBy::new(&m.chunks, None),
                            retired: Atomic::new(false),
                        }),
                    ),
                    GFP_KERNEL,
                )?;
                // The box's contents stay where they are when the node moves.
                let ptr = core::ptr::from_ref(&*c);
                let node = RBTreeNode::new(start, c, GFP_KERNEL)?;
                // A retired chunk at the same start is replaced; its
                // notifier goes outside the lock (removing it waits for
                // its callbacks, which take the lock).
                let old = m.chunks.lock().tree.insert(node);
                drop(old);
                ptr
            }
        };
        // SAFETY: chunks leave the tree only in `collect` and `clear`,
        // which the fault work itself calls (or the VM's teardown, once no
        // work can run), so the chunk lives until the next `collect`.
        let n = unsafe { &*chunk };
        let c = n.data();
        {
            let mut g = m.chunks.lock();
            if c.retired.load(Relaxed) {
                continue;
            }
            if let Some(mp) = c.mapping.access_mut(&mut g).as_ref() {
                if !p.write() || mp.writable {
                    // Mapped meanwhile (a fault of another queue stalled on
                    // the slot): the access goes through now.
                    return Ok(());
                }
            }
        }
        let write = p.write() || c.vma_writable;
        let t0 = Instant::<Monotonic>::now();
        let timeout = Delta::from_millis(LOOKUP_TIMEOUT_MS);
        let snap = match Snapshot::fault(n, c.start as usize, c.len as usize, write, timeout) {
            // A read of memory the process cannot write any more (mprotect):
            // the pages read-only.
            Err(e) if (e == EPERM || e == EFAULT) && write && !p.write() => {
                Snapshot::fault(n, c.start as usize, c.len as usize, false, timeout)
            }
            r => r,
        };
        times.get_pages += t0.elapsed().as_nanos() as u64;
        let snap = match snap {
            Ok(s) => s,
            Err(e) if e == EBUSY => continue,
            Err(e) => return Err(e),
        };
        let t1 = Instant::<Monotonic>::now();
        let r = commit(vm, m, n, &snap);
        times.map += t1.elapsed().as_nanos() as u64;
        match r {
            Ok(true) => return Ok(()),
            Ok(false) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(EBUSY)
}

/// Drop the retired chunks (their notifiers are removed outside the lock:
/// removal waits for running callbacks, which take it).
fn collect(m: &Mirror) {
    loop {
        let c = {
            let mut g = m.chunks.lock();
            let Some(k) = g
                .tree
                .iter()
                .find(|(_, c)| c.data().retired.load(Relaxed))
                .map(|(k, _)| *k)
            else {
                return;
            };
            g.tree.remove(&k)
        };
        drop(c);
    }
}

/// The live chunk holding `addr`, if any. Chunks are aligned to their
/// size, so it starts at `addr` aligned down to one of the chunk sizes.
fn find(m: &Mirror, addr: u64) -> Option<*const IntervalNotifier<Chunk>> {
    let g = m.chunks.lock();
    for size in CHUNKS {
        if let Some(c) = g.tree.get(&(addr & !(size - 1))) {
            let d = c.data();
            if d.start <= addr && addr < d.end() && !d.retired.load(Relaxed) {
                return Some(core::ptr::from_ref(&**c));
            }
        }
    }
    None
}

/// Choose the chunk for a fault at `addr`: the largest size whose aligned
/// window around `addr` lies in the VMA holding `addr` and in the mirrored
/// range, and overlaps no chunk. Returns it with whether the VMA is
/// writable.
fn choose(mm: &kernel::mm::MmWithUser, m: &Mirror, addr: u64) -> Result<(u64, u64, bool)> {
    let (vs, ve, flags) = {
        let lock = mm.mmap_read_lock();
        let Some(vma) = lock.vma_lookup(addr as usize) else {
            pr_debug!("ferrite: mirror fault at {:#x}: nothing mapped\n", addr);
            return Err(EFAULT);
        };
        (vma.start() as u64, vma.end() as u64, vma.flags())
    };
    if flags & (vmflags::IO | vmflags::PFNMAP) != 0 {
        pr_debug!(
            "ferrite: mirror fault at {:#x}: a VM_IO or VM_PFNMAP mapping has no pages\n",
            addr
        );
        return Err(EFAULT);
    }
    let g = m.chunks.lock();
    let taken = |s: u64, e: u64| {
        // A chunk inside the window starts in it; one around it starts at
        // a larger size's alignment.
        g.tree
            .cursor_lower_bound(&s)
            .is_some_and(|cur| *cur.current().0 < e)
            || CHUNKS.iter().any(|&big| {
                big > e - s
                    && g.tree
                        .get(&(s & !(big - 1)))
                        .is_some_and(|c| c.data().end() > s)
            })
    };
    match pick(addr, (vs.max(m.start), ve.min(m.end)), taken) {
        Some((s, len)) => Ok((s, len, flags & vmflags::WRITE != 0)),
        None => {
            pr_debug!(
                "ferrite: mirror fault at {:#x}: no room for a chunk\n",
                addr
            );
            Err(EBUSY)
        }
    }
}

/// The chunk policy: the largest of [`CHUNKS`] whose aligned window around
/// `addr` lies in `within` (the VMA, clipped to the mirrored range) and is
/// not `taken`.
fn pick(addr: u64, within: (u64, u64), taken: impl Fn(u64, u64) -> bool) -> Option<(u64, u64)> {
    CHUNKS.iter().find_map(|&size| {
        let s = addr & !(size - 1);
        let e = s + size;
        (s >= within.0 && e <= within.1 && !taken(s, e)).then_some((s, size))
    })
}

/// Map `snap` (the pages of chunk `n`) in the GPU page table, unless the
/// chunk changed since the lookup (then `Ok(false)`: look again).
fn commit(vm: &Vm, m: &Mirror, n: &IntervalNotifier<Chunk>, snap: &Snapshot) -> Result<bool> {
    let c = n.data();
    // The pages' permissions, read before any lock is taken.
    let mut pfns = KVec::with_capacity(snap.pfns().count(), GFP_KERNEL)?;
    for pfn in snap.pfns() {
        pfns.push(pfn, GFP_KERNEL)?;
    }
    let writable = pfns.iter().all(|p| p.is_writable());
    let _tables = vm.pool.reserve(table_bound(c.start, c.len))?;
    let gate = vm.gpu.svm_gate.lock();
    if !*gate {
        return Err(ENODEV);
    }
    // SAFETY: the gate is open, so the device is bound until it is
    // released ([`Gpu::shutdown`] closes it, and drops every mirror DMA
    // mapping, before the device goes); `dev` does not outlive the guard.
    let dev: &Device<Bound> = unsafe { vm.gpu.dev.as_bound() };
    let dma = snap.dma_map(dev, DataDirection::Bidirectional)?;
    let mut g = m.chunks.lock();
    if c.retired.load(Relaxed) || n.read_retry(snap.seq()) {
        drop(g);
        drop(dma);
        return Ok(false);
    }
    let old = c.mapping.access_mut(&mut g).take();
    let had = old.is_some();
    let mut blocks = 0u64;
    let _pt = vm.pt_lock.lock();
    let r = vm.gpu.update_vm(&vm.hw, |live| {
        let r = vm
            .pt
            .try_access_with(|pt| {
                if had {
                    // A read-only mapping upgraded for a write.
                    live.before_change();
                    let (pg, k) = if c.len == SZ_2M as u64 {
                        (SZ_2M, 1)
                    } else {
                        (GPU_PAGE_SIZE, c.len as usize / GPU_PAGE_SIZE)
                    };
                    // SAFETY: `pt_lock` is held; the range is the chunk's.
                    let _ = unsafe { pt.unmap_pages(c.start as usize, pg, k) };
                }
                for run in dma.runs() {
                    let va = c.start + run.offset as u64;
                    let mut p = prot::READ;
                    if pfns
                        .get(run.offset / PAGE_SIZE)
                        .is_some_and(|pfn| pfn.is_writable())
                    {
                        p |= prot::WRITE;
                    }
                    let block =
                        run.len == SZ_2M && va % SZ_2M as u64 == 0 && run.addr % SZ_2M as u64 == 0;
                    let pages = |pt: &_| {
                        // SAFETY: `pt_lock` is held; the range was unmapped
                        // (a fresh chunk, or unmapped above); the DMA
                        // mapping stays until the entries are removed (the
                        // chunk's invalidation, or the VM's teardown).
                        unsafe {
                            crate::vm::map_run(
                                pt,
                                va,
                                run.addr,
                                GPU_PAGE_SIZE,
                                run.len / GPU_PAGE_SIZE,
                                p,
                                GFP_NOWAIT,
                            )
                        }
                    };
                    let r = if block {
                        // SAFETY: as for `pages`.
                        match unsafe {
                            crate::vm::map_run(pt, va, run.addr, SZ_2M, 1, p, GFP_NOWAIT)
                        } {
                            Ok(()) => {
                                blocks += 1;
                                Ok(())
                            }
                            // An empty table left by smaller chunks: pages.
                            Err(e) if e == EEXIST => pages(pt),
                            Err(e) => Err(e),
                        }
                    } else {
                        pages(pt)
                    };
                    if r.is_err() {
                        // SAFETY: as above; undo the partial map.
                        let _ = unsafe {
                            pt.unmap_pages(
                                c.start as usize,
                                GPU_PAGE_SIZE,
                                c.len as usize / GPU_PAGE_SIZE,
                            )
                        };
                        return r;
                    }
                }
                Ok(())
            })
            .unwrap_or(Err(ENODEV));
        // Only a replaced or failed mapping left entries to flush.
        let flush = (had || r.is_err()).then_some((c.start, c.end()));
        (r, flush)
    });
    drop(_pt);
    match r {
        Ok(()) => {
            *c.mapping.access_mut(&mut g) = Some(Mapping {
                _dma: dma,
                writable,
            });
            if !had {
                g.mapped += 1;
            }
            let stats = &vm.gpu.stats.svm;
            stats.pages.add(c.len / PAGE_SIZE as u64, Relaxed);
            stats.blocks_2m.add(blocks, Relaxed);
        }
        Err(e) => {
            if had {
                g.mapped = g.mapped.saturating_sub(1);
            }
            drop(g);
            drop(dma);
            drop(old);
            return Err(e);
        }
    }
    drop(g);
    // Flushed: the replaced mapping may go.
    drop(old);
    drop(gate);
    Ok(true)
}

/// Whether `gpu` can run mirror VMs: its DMA reaches all memory directly
/// and coherently (the CPU and the GPU share the pages themselves, with no
/// point at which to hand them over), and it can stall a faulting queue
/// and suspend a stalled one.
pub(crate) fn can_mirror(gpu: &Gpu, dev: &Device<Bound>) -> bool {
    let need = crate::regs::FEATURE_STALL | crate::regs::FEATURE_PREEMPT;
    gpu.info.features & need == need && gpu.info.dma_coherent && kernel::mm::hmm::dma_is_direct(dev)
}

/// End of the range a mirror VM of `mm` mirrors: the process's address
/// space (TASK_SIZE), within the user range of the GPU's.
pub(crate) fn mirror_end(mm: &Mm) -> u64 {
    // SAFETY: `mm` is a valid `mm_struct`; `task_size` is set at exec and
    // not changed after.
    let task_size = unsafe { (*mm.as_raw()).__bindgen_anon_1.task_size } as u64;
    task_size.min(crate::driver::USER_VA_END) & !(PAGE_SIZE as u64 - 1)
}

/// A mirror VM's BOs and NULL ranges go above the mirrored range, and it
/// takes no userptr.
pub(crate) fn check_bind(m: &Mirror, op: &crate::vm::BindOp) -> Result {
    use crate::vm::BindOp;
    match *op {
        BindOp::MapUser { .. } => {
            pr_debug!("ferrite: VM_BIND: no userptr in a mirror VM\n");
            Err(EINVAL)
        }
        BindOp::Map { va, .. } | BindOp::MapNull { va, .. } | BindOp::Unmap { va, .. }
            if va < m.end =>
        {
            pr_debug!(
                "ferrite: VM_BIND: {:#x} is mirrored (a mirror VM binds from {:#x})\n",
                va,
                m.end
            );
            Err(EINVAL)
        }
        _ => Ok(()),
    }
}

/// A mirror VM is used by its own process only.
pub(crate) fn check_process(vm: &Vm, ioctl: &str) -> Result {
    let Some(m) = vm.mirror.as_ref() else {
        return Ok(());
    };
    let task = kernel::current!();
    if task.mm().is_some_and(|mm| m.is_for(mm)) {
        return Ok(());
    }
    pr_debug!("ferrite: {}: VM {} mirrors another process\n", ioctl, vm.id);
    Err(EPERM)
}

#[kunit_tests(ferrite_svm)]
mod tests {
    use super::*;

    const M2: u64 = SZ_2M as u64;
    const K64: u64 = SZ_64K as u64;
    const PG: u64 = PAGE_SIZE as u64;
    const BASE: u64 = 0x7f00_0000_0000;

    fn free(_: u64, _: u64) -> bool {
        false
    }

    #[test]
    fn a_large_vma_gets_the_2m_around_the_fault() {
        let vma = (BASE, BASE + 8 * M2);
        assert_eq!(
            pick(BASE + 3 * M2 + 0x1234, vma, free),
            Some((BASE + 3 * M2, M2))
        );
    }

    #[test]
    fn a_vma_edge_inside_the_2m_gives_64k() {
        // The VMA ends 128 KiB into the 2 MiB of the fault.
        let vma = (BASE, BASE + M2 + 2 * K64);
        assert_eq!(pick(BASE + M2 + 0x100, vma, free), Some((BASE + M2, K64)));
        assert_eq!(
            pick(BASE + M2 + K64 + 0x100, vma, free),
            Some((BASE + M2 + K64, K64))
        );
    }

    #[test]
    fn a_one_page_vma_gets_one_page() {
        let vma = (BASE + 5 * PG, BASE + 6 * PG);
        if PG < K64 {
            assert_eq!(
                pick(BASE + 5 * PG + 8, vma, free),
                Some((BASE + 5 * PG, PG))
            );
        }
        // Outside the VMA: nothing.
        assert_eq!(pick(BASE + 7 * PG, vma, free), None);
    }

    #[test]
    fn existing_chunks_make_the_next_one_smaller() {
        let vma = (BASE, BASE + 4 * M2);
        // A 64 KiB chunk already maps the start of the 2 MiB: the fault
        // gets its own 64 KiB.
        let taken = |s: u64, e: u64| s <= BASE && BASE + K64 <= e;
        assert_eq!(
            pick(BASE + 3 * K64, vma, taken),
            Some((BASE + 3 * K64, K64))
        );
    }
}
