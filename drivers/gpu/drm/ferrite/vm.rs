// SPDX-License-Identifier: GPL-2.0

//! GPU address spaces: DRM GPUVM tracks the mappings (splitting and merging
//! them), the kernel's io-pgtable writes the AArch64 LPAE stage-1 tables the
//! device walks, and every change is followed by one TLB invalidation of
//! exactly the range it touched.

use kernel::{
    alloc::flags::GFP_NOWAIT,
    device::{
        Bound,
        Device, //
    },
    devres::DevresLt,
    dma_fence::{
        FenceCallback,
        FenceContext, //
    },
    drm::gpuvm::{
        DriverGpuVm,
        GpuVaAlloc,
        GpuVm,
        GpuVmBo,
        OpMap,
        OpMapRequest,
        OpMapped,
        OpRemap,
        OpRemapped,
        OpUnmap,
        OpUnmapped,
        UniqueRefGpuVm, //
    },
    iommu::pgtable::{
        prot,
        Config,
        IoPageTable,
        PoolReservation,
        TablePool,
        ARM64LPAES1, //
    },
    mm::{
        mmu_notifier::IntervalNotifier,
        Mm, //
    },
    new_mutex,
    new_work,
    prelude::*,
    rbtree::RBTree,
    scatterlist::SGTable,
    sizes::{
        SZ_1G,
        SZ_2M, //
    },
    sync::{
        aref::ARef,
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc,
        Mutex,
        MutexGuard, //
    },
    time::{
        Instant,
        Monotonic, //
    },
    types::CovariantForLt,
    workqueue::{
        Work,
        WorkItem, //
    }, //
};

use crate::{
    driver::{
        FerriteDevice,
        FerriteDrmDriver,
        GPU_PAGE_SIZE,
        KERNEL_VA_END,
        KERNEL_VA_START,
        VA_BITS, //
    },
    gem::{
        self,
        Bo,
        BoArgs,
        BoMeta,
        LabelFmt, //
    },
    gpu::{
        BindPhase,
        Gpu, //
    },
    mmu::VmAs,
    svm::{
        Mirror,
        Pending, //
    },
    userptr::{
        self,
        DeviceLease,
        Mapped,
        Range,
        Userptr, //
    }, //
};

/// The page table of a VM, valid while the device is bound.
type PageTable<'a> = IoPageTable<'a, ARM64LPAES1>;
type PageTableLt = CovariantForLt!(for<'a> IoPageTable<'a, ARM64LPAES1>);

/// Page and block sizes the MMU maps: 1 GiB and 2 MiB blocks, GPU pages.
/// A plan works in these, whatever the CPU page: the pieces of a
/// scatterlist (CPU pages, folios, merged runs of them) are mapped as GPU
/// pages, or blocks where aligned, a 16 KiB CPU page as four 4 KiB entries.
const PGSIZES: [usize; 3] = [SZ_1G, SZ_2M, GPU_PAGE_SIZE];

/// The device's null aperture (hardware spec): output addresses with bit
/// 47 set reach no memory; reads return zeros and writes are dropped.
pub(crate) const NULL_BASE: u64 = 1 << 47;

/// `IO_PGTABLE_QUIRK_NO_WARN`: unmapping an empty entry is not a bug when
/// an unusable VM's tables are cleared ([`Vm::clear_user`]).
const QUIRK_NO_WARN: usize = 1 << 9;

/// One mapping, as userspace created it (for splits and debugfs).
#[derive(Clone)]
pub(crate) struct MapInfo {
    pub(crate) len: u64,
    pub(crate) bo_offset: u64,
    pub(crate) prot: u32,
    /// The BO's debugfs id and label.
    pub(crate) bo: Arc<BoMeta>,
    /// A NULL mapping (DRM_FERRITE_VM_BIND_NULL): `bo` is the VM's own.
    pub(crate) null: bool,
}

impl MapInfo {
    /// One line of a mapping listing (debugfs, coredumps), with the BO's
    /// label if it has one.
    pub(crate) fn write_line(&self, w: &mut impl core::fmt::Write, va: u64) -> core::fmt::Result {
        if self.null {
            return writeln!(
                w,
                "  {va:#014x}-{:#014x} null prot {:#x}",
                va + self.len,
                self.prot
            );
        }
        write!(
            w,
            "  {va:#014x}-{:#014x} bo {} +{:#x} prot {:#x}",
            va + self.len,
            self.bo.id,
            self.bo_offset,
            self.prot
        )?;
        self.bo.with_label(|l| {
            if l.is_empty() {
                writeln!(w)
            } else {
                writeln!(w, " label {}", LabelFmt(l))
            }
        })
    }
}

/// The driver side of the GPUVM: the mappings as userspace sees them
/// (once the binds recorded so far are applied).
pub(crate) struct VmCore {
    pub(crate) maps: RBTree<u64, MapInfo>,
}

impl VmCore {
    /// Whether a BO or NULL mapping intersects `[va, va + len)`.
    fn maps_overlap(&self, va: u64, len: u64) -> bool {
        let end = va.saturating_add(len);
        self.maps.iter().any(|(a, m)| *a < end && a + m.len > va)
    }
}

fn userptrs_overlap(users: &[Userptr], va: u64, len: u64) -> bool {
    users.iter().any(|u| u.data().overlaps(va, len))
}

/// What the split/merge callbacks of one VM_BIND operation need. They run
/// when the bind is recorded (in the ioctl, under the VM's lock, where they
/// may allocate): GPUVM and the mapping records change at once, and the
/// page-table changes are written down as [`Edits`], applied when the
/// bind's turn comes ([`crate::bind`]).
pub(crate) struct BindCtx<'a> {
    /// The page-table changes; `None` while the VM is torn down.
    edits: Option<&'a mut Edits>,
    dev: Option<&'a Device<Bound>>,
    /// The object of NULL mappings (the VM's reservation BO).
    null_obj: *const Bo,
    /// Protection of a new mapping.
    prot: u32,
    /// The BOs of mappings removed, held until the bind is applied (TLB
    /// flushed) and let go outside the fence-signalling path: GPUVM drops
    /// its own reference at the next deferred cleanup, which another bind
    /// may run first.
    pub(crate) held: KVec<ARef<Bo>>,
    pub(crate) bytes_mapped: u64,
    pub(crate) bytes_unmapped: u64,
}

impl<'a> BindCtx<'a> {
    fn new(edits: Option<&'a mut Edits>, dev: Option<&'a Device<Bound>>, null_obj: &Bo) -> Self {
        Self {
            edits,
            dev,
            null_obj,
            prot: 0,
            held: KVec::new(),
            bytes_mapped: 0,
            bytes_unmapped: 0,
        }
    }

    fn is_null(&self, obj: &Bo) -> bool {
        core::ptr::eq(obj, self.null_obj)
    }

    /// Where the pages of a mapping of `obj` come from.
    fn src<'b>(&self, obj: &'b Bo) -> Result<Src<'b>>
    where
        'a: 'b,
    {
        if self.is_null(obj) {
            Ok(Src::Null)
        } else {
            Ok(Src::Pages(bo_sgt(obj, self.dev)?))
        }
    }
}

/// Walk the bus-address pieces backing `[gem_offset, gem_offset + len)` of
/// `sgt`, calling `f(iova, bus, pgsize, count)` for runs of equal pages,
/// choosing 1 GiB and 2 MiB blocks where both addresses are aligned. The
/// plan depends only on its inputs, so unmap replays the plan of map.
fn plan(
    sgt: &SGTable,
    gem_offset: u64,
    iova: u64,
    len: u64,
    mut f: impl FnMut(u64, u64, usize, usize) -> Result,
) -> Result {
    let mut skip = gem_offset;
    let mut va = iova;
    let end = iova.checked_add(len).ok_or(EINVAL)?;
    for seg in sgt.iter() {
        if va >= end {
            break;
        }
        let seg_len = seg.dma_len();
        if skip >= seg_len {
            skip -= seg_len;
            continue;
        }
        let pa = seg.dma_address() + skip;
        let left = (seg_len - skip).min(end - va);
        skip = 0;
        plan_contig(va, pa, left, &mut f)?;
        va += left;
    }
    if va != end {
        return Err(EINVAL);
    }
    Ok(())
}

/// The plan of `len` bytes at `va` backed by contiguous bus addresses
/// from `pa`.
fn plan_contig(
    mut va: u64,
    mut pa: u64,
    mut left: u64,
    f: &mut impl FnMut(u64, u64, usize, usize) -> Result,
) -> Result {
    while left > 0 {
        let (pg, n) = chunk(va, pa, left);
        f(va, pa, pg, n)?;
        let bytes = (pg * n) as u64;
        va += bytes;
        pa += bytes;
        left -= bytes;
    }
    Ok(())
}

/// The largest page size usable at (`va`, `pa`) and how many such pages to
/// map before a larger size may become usable.
fn chunk(va: u64, pa: u64, left: u64) -> (usize, usize) {
    for (i, &pg) in PGSIZES.iter().enumerate() {
        let pg64 = pg as u64;
        if (va | pa) % pg64 != 0 || left < pg64 {
            continue;
        }
        let mut n = left / pg64;
        if i > 0 {
            let bigger = PGSIZES[i - 1] as u64;
            if va % bigger == pa % bigger {
                let to_boundary = (bigger - va % bigger) % bigger / pg64;
                if to_boundary > 0 {
                    n = n.min(to_boundary);
                }
            }
        }
        return (pg, n as usize);
    }
    (GPU_PAGE_SIZE, 1)
}

/// Map `count` pages of `pgsize` at `va` to `pa` onwards.
///
/// # Safety
///
/// The range is unmapped and nothing else changes it meanwhile (the VM's
/// `pt_lock` is held); the pages stay valid while they are mapped.
pub(crate) unsafe fn map_run(
    pt: &PageTable<'_>,
    va: u64,
    pa: u64,
    pgsize: usize,
    count: usize,
    prot: u32,
    gfp: kernel::alloc::Flags,
) -> Result {
    let mut off = 0usize;
    while off < pgsize * count {
        // SAFETY: as the function's safety section says.
        let (mapped, r) = unsafe {
            pt.map_pages(
                va as usize + off,
                pa + off as u64,
                pgsize,
                count - off / pgsize,
                prot,
                gfp,
            )
        };
        off += mapped;
        r?;
        if mapped == 0 {
            return Err(ENOMEM);
        }
    }
    Ok(())
}

/// Unmap `count` pages of `pgsize` at `va`, mapped with exactly that size.
///
/// # Safety
///
/// Nothing else changes the range meanwhile (the VM's `pt_lock` is held).
unsafe fn unmap_run(pt: &PageTable<'_>, va: u64, pgsize: usize, count: usize) -> Result {
    let mut off = 0usize;
    while off < pgsize * count {
        // SAFETY: the range holds pages of this size (the plan that mapped
        // them is replayed), and nothing else changes it.
        let unmapped = unsafe { pt.unmap_pages(va as usize + off, pgsize, count - off / pgsize) };
        if unmapped == 0 {
            return Err(EINVAL);
        }
        off += unmapped;
    }
    Ok(())
}

/// Map userptr pages (`sgt`) at `iova`, with tables the caller reserved
/// from the VM's pool: no allocation.
fn map_plan(pt: &PageTable<'_>, sgt: &SGTable, iova: u64, len: u64, prot: u32) -> Result {
    let mut done = 0u64;
    let ret = plan(sgt, 0, iova, len, |va, pa, pg, n| {
        // SAFETY: the userptr's range is unmapped (stale pages were unmapped
        // first) and only its owner maps it, under `pt_lock`; the pages stay
        // referenced while mapped.
        unsafe { map_run(pt, va, pa, pg, n, prot, GFP_NOWAIT) }?;
        done += (pg * n) as u64;
        Ok(())
    });
    if ret.is_err() && done > 0 {
        // Undo the prefix that was mapped.
        let _ = unmap_plan(pt, sgt, iova, done);
    }
    ret
}

fn unmap_plan(pt: &PageTable<'_>, sgt: &SGTable, iova: u64, len: u64) -> Result {
    plan(sgt, 0, iova, len, |va, _pa, pg, n| {
        // SAFETY: the range was mapped by `map_plan` with the same plan;
        // `pt_lock` is held.
        unsafe { unmap_run(pt, va, pg, n) }
    })
}

fn bo_sgt<'a>(bo: &'a Bo, dev: Option<&'a Device<Bound>>) -> Result<&'a SGTable> {
    gem::pinned_sgt(bo, dev.ok_or(ENODEV)?)
}

/// Page-table pages a map of `[va, va + len)` may need: one table per
/// 2 MiB, 1 GiB and 512 GiB region it touches.
pub(crate) fn table_bound(va: u64, len: u64) -> usize {
    if len == 0 {
        return 0;
    }
    let last = va + len - 1;
    [21u32, 30, 39]
        .iter()
        .map(|&s| ((last >> s) - (va >> s) + 1) as usize)
        .sum()
}

/// The tables a bind may need, as keys (level shift, region index): one
/// per table, so that the same table counts once however many operations
/// need it.
struct TableNeed(KVec<u64>);

impl TableNeed {
    /// A table for the region of `va` covered by one entry one level up
    /// (`shift` 21: the level-3 table of its 2 MiB region, 30: level 2,
    /// 39: level 1).
    fn add(&mut self, shift: u32, va: u64) -> Result {
        let key = (u64::from(shift) << 56) | (va >> shift);
        // Neighbouring operations mostly share their tables.
        let recent = &self.0[self.0.len().saturating_sub(6)..];
        if !recent.contains(&key) {
            self.0.push(key, GFP_KERNEL)?;
        }
        Ok(())
    }

    /// The tables a run of `count` pages of `pgsize` at `va` sits in.
    fn run(&mut self, va: u64, pgsize: usize, count: usize) -> Result {
        let last = va + (pgsize * count) as u64 - 1;
        for shift in [21u32, 30, 39] {
            if (pgsize as u64) >= 1 << shift {
                continue;
            }
            let mut r = va >> shift;
            while r <= last >> shift {
                self.add(shift, r << shift)?;
                r += 1;
            }
        }
        Ok(())
    }

    /// Cutting a block that straddles `va` keeps a part mapped with smaller
    /// pages, in the tables of `va`'s 2 MiB and 1 GiB regions.
    fn cut_at(&mut self, va: u64) -> Result {
        self.add(21, va)?;
        self.add(30, va)?;
        self.add(39, va)
    }

    fn count(mut self) -> usize {
        self.0.sort_unstable();
        let mut n = 0;
        let mut last = None;
        for k in self.0.iter() {
            if last != Some(*k) {
                n += 1;
                last = Some(*k);
            }
        }
        n
    }
}

/// Where a mapping's pages come from.
enum Src<'a> {
    Pages(&'a SGTable),
    /// The device's null aperture: reads zero, writes dropped.
    Null,
}

impl Src<'_> {
    /// The plan of `[va, va + len)`, backed from `gem_offset`.
    fn plan(
        &self,
        gem_offset: u64,
        va: u64,
        len: u64,
        mut f: impl FnMut(u64, u64, usize, usize) -> Result,
    ) -> Result {
        match self {
            Src::Pages(sgt) => plan(sgt, gem_offset, va, len, f),
            // A NULL mapping's offset is its VA: the output address keeps
            // the VA's alignment, so blocks stay usable. The aperture is
            // `NULL_BASE` bytes wide, less than the VA space: a range that
            // crosses a multiple of `NULL_BASE` wraps to the aperture's
            // start there (a multiple of every block size, so nothing is
            // lost), instead of running past the output address size.
            Src::Null => {
                let (mut off, mut va, mut left) = (gem_offset, va, len);
                while left > 0 {
                    let inner = off & (NULL_BASE - 1);
                    let n = left.min(NULL_BASE - inner);
                    plan_contig(va, NULL_BASE | inner, n, &mut f)?;
                    off += n;
                    va += n;
                    left -= n;
                }
                Ok(())
            }
        }
    }
}

/// One page-table change.
#[derive(Clone, Copy)]
enum Edit {
    /// Map `count` pages of `pgsize` at `va` to bus addresses from `pa`.
    Map {
        va: u64,
        pa: u64,
        pgsize: usize,
        count: usize,
        prot: u32,
    },
    /// Unmap `count` pages of `pgsize` at `va` (mapped with that size).
    Unmap {
        va: u64,
        pgsize: usize,
        count: usize,
    },
}

/// Write down a map of `count` pages of `pgsize` at `va` (to `pa` on), and
/// note in `blocks` whether they are blocks (which may replace a table).
fn push_map(
    list: &mut KVec<Edit>,
    blocks: &mut bool,
    va: u64,
    pa: u64,
    pgsize: usize,
    count: usize,
    prot: u32,
) -> Result {
    *blocks |= pgsize > GPU_PAGE_SIZE;
    list.push(
        Edit::Map {
            va,
            pa,
            pgsize,
            count,
            prot,
        },
        GFP_KERNEL,
    )?;
    Ok(())
}

/// The page-table changes of a bind, written down when it is recorded and
/// applied later without allocating ([`Vm::apply`]).
pub(crate) struct Edits {
    list: KVec<Edit>,
    /// The range whose existing entries change (flushed from the TLB).
    touched: Option<(u64, u64)>,
    /// Whether applying may free a table the device could be walking: a
    /// block mapped where a (then empty) table was. Leaf edits free none
    /// (every unmap replays the plan that mapped the range), so a bind of
    /// fresh 4 KiB pages needs no MMU lock and no flush: no register
    /// access at all.
    frees_tables: bool,
}

impl Edits {
    pub(crate) fn new() -> Self {
        Self {
            list: KVec::new(),
            touched: None,
            frees_tables: false,
        }
    }

    fn touch(&mut self, start: u64, end: u64) {
        self.touched = Some(match self.touched {
            None => (start, end),
            Some((s, e)) => (s.min(start), e.max(end)),
        });
    }

    /// Record a new mapping of `[va, va + len)`; on an error, nothing.
    fn map(&mut self, src: &Src<'_>, off: u64, va: u64, len: u64, prot: u32) -> Result {
        let mark = self.list.len();
        let list = &mut self.list;
        let mut blocks = false;
        let r = src.plan(off, va, len, |va, pa, pgsize, count| {
            push_map(list, &mut blocks, va, pa, pgsize, count, prot)
        });
        if r.is_err() {
            self.list.truncate(mark);
        } else {
            self.frees_tables |= blocks;
        }
        r
    }

    /// Record the removal of a whole mapping; on an error, nothing.
    fn unmap(&mut self, src: &Src<'_>, off: u64, va: u64, len: u64) -> Result {
        let mark = self.list.len();
        let list = &mut self.list;
        let r = src.plan(off, va, len, |va, _pa, pgsize, count| {
            list.push(Edit::Unmap { va, pgsize, count }, GFP_KERNEL)?;
            Ok(())
        });
        if r.is_err() {
            self.list.truncate(mark);
        } else {
            self.touch(va, va + len);
        }
        r
    }

    /// Record the removal of `[c0, c1)` from the mapping `[va, va + len)`
    /// whose pages are `src` from `off`: its entries inside the range go,
    /// and a block that straddles an end is unmapped whole and its kept
    /// part mapped again with smaller pages (blocks cannot be split). The
    /// kept parts keep the plan they would have as mappings of their own,
    /// so a later unmap replays it. On an error, nothing.
    #[expect(clippy::too_many_arguments)]
    fn cut(
        &mut self,
        src: &Src<'_>,
        off: u64,
        va: u64,
        len: u64,
        c0: u64,
        c1: u64,
        prot: u32,
    ) -> Result {
        let mark = self.list.len();
        let mut span = None;
        let mut blocks = false;
        let list = &mut self.list;
        let r = src.plan(off, va, len, |pva, ppa, pg, n| {
            let pg64 = pg as u64;
            let pend = pva + pg64 * n as u64;
            if pend <= c0 || pva >= c1 {
                return Ok(());
            }
            let k0 = (c0.max(pva) - pva) / pg64;
            let k1 = (c1.min(pend) - 1 - pva) / pg64;
            let b0 = pva + k0 * pg64;
            let b1 = pva + (k1 + 1) * pg64;
            list.push(
                Edit::Unmap {
                    va: b0,
                    pgsize: pg,
                    count: (k1 - k0 + 1) as usize,
                },
                GFP_KERNEL,
            )?;
            let mut push_map = |va: u64, pa: u64, pgsize: usize, count: usize| -> Result {
                push_map(list, &mut blocks, va, pa, pgsize, count, prot)
            };
            if b0 < c0 {
                plan_contig(b0, ppa + (b0 - pva), c0 - b0, &mut push_map)?;
            }
            if c1 < b1 {
                plan_contig(c1, ppa + (c1 - pva), b1 - c1, &mut push_map)?;
            }
            span = Some(match span {
                None => (b0, b1),
                Some((s, e)) => (b0.min(s), b1.max(e)),
            });
            Ok(())
        });
        match r {
            Err(e) => {
                self.list.truncate(mark);
                Err(e)
            }
            Ok(()) => {
                if let Some((s, e)) = span {
                    self.touch(s, e);
                }
                self.frees_tables |= blocks;
                Ok(())
            }
        }
    }
}

/// Apply `edits` to `pt`, in order. Called with the VM's `pt_lock` held.
fn replay(pt: &PageTable<'_>, edits: &Edits) -> Result {
    for e in edits.list.iter() {
        match *e {
            Edit::Map {
                va,
                pa,
                pgsize,
                count,
                prot,
            } => {
                // SAFETY: GPUVM recorded the range as free once the edits
                // before this one are applied (they were, in order, under
                // `pt_lock`); the pages stay pinned while a mapping holds
                // their BO (or are the null aperture).
                unsafe { map_run(pt, va, pa, pgsize, count, prot, GFP_NOWAIT) }?
            }
            Edit::Unmap { va, pgsize, count } => {
                // SAFETY: `pt_lock` is held; the range was mapped with these
                // page sizes.
                unsafe { unmap_run(pt, va, pgsize, count) }?
            }
        }
    }
    Ok(())
}

impl DriverGpuVm for VmCore {
    type Driver = FerriteDrmDriver;
    type Object = Bo;
    type VaData = ();
    type VmBoData = ();
    type SmContext<'ctx> = BindCtx<'ctx>;

    fn sm_step_map<'op, 'ctx>(
        &mut self,
        op: OpMap<'op, Self>,
        ctx: &mut BindCtx<'ctx>,
    ) -> Result<OpMapped<'op, Self>, Error> {
        let (addr, len, off) = (op.addr(), op.length(), op.gem_offset());
        let null = ctx.is_null(op.obj());
        let va = GpuVaAlloc::new(GFP_KERNEL)?;
        let info = MapInfo {
            len,
            bo_offset: off,
            prot: ctx.prot,
            bo: op.obj().meta.clone(),
            null,
        };
        let node = kernel::rbtree::RBTreeNode::new(addr, info, GFP_KERNEL)?;
        if ctx.edits.is_some() {
            let src = ctx.src(op.obj())?;
            let prot = ctx.prot;
            if let Some(e) = ctx.edits.as_deref_mut() {
                e.map(&src, off, addr, len, prot)?;
            }
        }
        self.maps.insert(node);
        if !null {
            ctx.bytes_mapped += len;
        }
        Ok(op.insert(va, ()))
    }

    fn sm_step_unmap<'op, 'ctx>(
        &mut self,
        op: OpUnmap<'op, Self>,
        ctx: &mut BindCtx<'ctx>,
    ) -> Result<OpUnmapped<'op, Self>, Error> {
        let va = op.va();
        let (addr, len, off) = (va.addr(), va.length(), va.gem_offset());
        let null = ctx.is_null(va.obj());
        // A live VM holds the BO until the bind is applied; a VM being
        // torn down (no tables, no slot) needs nothing, so that its
        // teardown needs no memory.
        if ctx.edits.is_some() {
            ctx.held.reserve(1, GFP_KERNEL)?;
            let src = ctx.src(va.obj())?;
            if let Some(e) = ctx.edits.as_deref_mut() {
                e.unmap(&src, off, addr, len)?;
            }
            // Cannot fail: reserved above.
            push_reserved(&mut ctx.held, ARef::from(va.obj()));
        }
        self.maps.remove(&addr);
        if !null {
            ctx.bytes_unmapped += len;
        }
        // The VA itself is only memory, unlinked from the tree.
        let (done, _removed) = op.remove();
        Ok(done)
    }

    fn sm_step_remap<'op, 'ctx>(
        &mut self,
        op: OpRemap<'op, Self>,
        ctx: &mut BindCtx<'ctx>,
    ) -> Result<OpRemapped<'op, Self>, Error> {
        let old = op.va_to_unmap();
        let (addr, len, off) = (old.addr(), old.length(), old.gem_offset());
        let info = self.maps.get(&addr).cloned().ok_or(EINVAL)?;
        let prev = op.prev().map(|p| (p.addr(), p.length(), p.gem_offset()));
        let next = op.next().map(|n| (n.addr(), n.length(), n.gem_offset()));
        let vas = [GpuVaAlloc::new(GFP_KERNEL)?, GpuVaAlloc::new(GFP_KERNEL)?];
        let prev_node = kernel::rbtree::RBTreeNode::new(0, info.clone(), GFP_KERNEL)?;
        let next_node = kernel::rbtree::RBTreeNode::new(0, info.clone(), GFP_KERNEL)?;
        let c0 = prev.map_or(addr, |(a, l, _)| a + l);
        let c1 = next.map_or(addr + len, |(a, _, _)| a);
        if ctx.edits.is_some() {
            let src = ctx.src(old.obj())?;
            if let Some(e) = ctx.edits.as_deref_mut() {
                e.cut(&src, off, addr, len, c0, c1, info.prot)?;
            }
        }
        self.maps.remove(&addr);
        let mut kept = 0;
        for ((a, l, o), node) in Iterator::chain(prev.into_iter(), next).zip([prev_node, next_node])
        {
            let mut i = info.clone();
            i.len = l;
            i.bo_offset = o;
            let node = node.into_reservation().into_node(a, i);
            self.maps.insert(node);
            kept += l;
        }
        if !info.null {
            ctx.bytes_unmapped += len - kept;
        }
        // The BO stays mapped (the kept parts), so its pages stay.
        let (done, _ret) = op.remap(vas, (), ());
        Ok(done)
    }
}

/// Push `x` into room reserved earlier in `v`, which cannot fail. Were it
/// ever to, `x` is leaked rather than dropped: what goes on these lists
/// (mappings, userptr pages) may only be freed after the TLB flush that
/// follows the page-table edit.
fn push_reserved<T>(v: &mut KVec<T>, x: T) {
    if let Err(e) = v.push_within_capacity(x) {
        kernel::warn_on!(true);
        core::mem::forget(e);
    }
}

/// A GPU address space.
///
/// Locking (outermost first):
/// - `order`: the VM's VM_BIND calls, one at a time, in the order their
///   binds take effect; held while a bind is recorded (allocating).
/// - `users`: the userptr list; held while userptrs are looked up.
/// - `gpuvm`: GPUVM and the mapping records; held while a bind is
///   recorded (allocating), never on the path that applies one.
/// - `binds` ([`crate::bind`]): the queue of recorded binds; never held
///   while allocating, as the worker that signals bind fences takes it.
/// - `pt_lock`: changes to the page table, which take their tables from
///   `pool` and never allocate.
/// - the device's slot lock ([`Gpu::update_vm`]): held across changes
///   that remove entries or may free a table the device could be walking
///   (under an MMU lock, then a TLB flush); a map of fresh 4 KiB pages
///   takes neither.
#[pin_data(PinnedDrop)]
pub(crate) struct Vm {
    pub(crate) id: u64,
    pub(crate) gpu: Arc<Gpu>,
    pub(crate) hw: Arc<VmAs>,
    pub(crate) pt: DevresLt<PageTableLt>,
    /// The page table's tables, reserved before a bind is recorded.
    pub(crate) pool: Arc<TablePool>,
    #[pin]
    pub(crate) order: Mutex<BindOrder>,
    #[pin]
    users: Mutex<KVec<Userptr>>,
    #[pin]
    gpuvm: Mutex<UniqueRefGpuVm<VmCore>>,
    #[pin]
    pub(crate) binds: Mutex<crate::bind::BindQueue>,
    /// Serializes the changes to the page table (never held while
    /// allocating: taken where bind fences are signalled).
    #[pin]
    pub(crate) pt_lock: Mutex<()>,
    /// Fences of the VM's binds.
    pub(crate) bind_fences: FenceContext<crate::bind::BindTimeline>,
    /// Registered on the first unsignalled dependency of the oldest bind.
    #[pin]
    pub(crate) bind_cb: FenceCallback,
    #[pin]
    pub(crate) bind_work: Work<Vm>,
    /// A recorded bind could not be applied: the page tables no longer
    /// match the mappings (DRM_FERRITE_VM_STATE_UNUSABLE).
    pub(crate) unusable: Atomic<bool>,
    /// Highest user address ever mapped, for [`Self::clear_user`].
    user_high: Atomic<u64>,
    /// Next free address of the kernel region (queue rings).
    kernel_next: Atomic<u64>,
    /// Kernel objects mapped in this VM, kept alive as long as it is.
    #[pin]
    pub(crate) kernel_objs: Mutex<KVec<Arc<crate::ring::QueueMem>>>,
    pub(crate) bytes_bound: Atomic<u64>,
    /// The address space of the process the VM belongs to (userptrs).
    mm: Option<ARef<Mm>>,
    /// Longest DMA segment of the device (userptr tables).
    max_segment: u32,
    /// The BO whose reservation object is the VM's (the GPUVM's), shared
    /// by the VM's private BOs (DRM_FERRITE_GEM_CREATE_VM_PRIVATE); it is
    /// also the object of NULL mappings.
    pub(crate) resv_obj: ARef<Bo>,
    /// A mirror VM's state (DRM_FERRITE_VM_CREATE_MIRROR, see
    /// [`crate::svm`]).
    pub(crate) mirror: Option<Pin<KBox<Mirror>>>,
    /// Resolves the faults of a mirror VM.
    #[pin]
    fault_work: Work<Vm, 1>,
}

/// What `Vm::order` guards.
pub(crate) struct BindOrder {
    /// Fence of the last asynchronous bind recorded.
    pub(crate) last: Option<ARef<kernel::dma_fence::Fence>>,
    /// Its sequence number.
    pub(crate) seqno: u64,
}

kernel::impl_has_work! {
    impl HasWork<Vm> for Vm { self.bind_work }
    impl HasWork<Vm, 1> for Vm { self.fault_work }
}

impl WorkItem<1> for Vm {
    type Pointer = Arc<Vm>;

    /// Resolve the fault the MMU interrupt handed over ([`queue_fault`]).
    fn run(this: Arc<Vm>) {
        let Some(m) = this.mirror.as_ref() else {
            return;
        };
        let Some(p) = m.pending.lock().take() else {
            return;
        };
        crate::svm::handle(&this, m, p);
    }
}

/// Hand the fault `p` of mirror VM `vm` to its fault work (MMU interrupt).
/// A fault pending already is replaced: the slot stalls as one, and the
/// RESUME that ends the newer fault lets the older access retry.
pub(crate) fn queue_fault(vm: Arc<Vm>, p: Pending) {
    let Some(m) = vm.mirror.as_ref() else {
        return;
    };
    *m.pending.lock() = Some(p);
    // Already queued: that run takes the newer fault.
    let _ = kernel::workqueue::system_highpri().enqueue::<Arc<Vm>, 1>(vm);
}

kernel::impl_has_fence_callback! {
    impl HasFenceCallback for Vm { self.bind_cb }
}

/// One VM_BIND operation, validated.
pub(crate) enum BindOp {
    Map {
        bo: ARef<Bo>,
        bo_offset: u64,
        va: u64,
        size: u64,
        prot: u32,
    },
    /// DRM_FERRITE_VM_BIND_NULL.
    MapNull {
        va: u64,
        size: u64,
        prot: u32,
    },
    Unmap {
        va: u64,
        size: u64,
    },
    /// Map the caller's memory at `va` (GPU VA == CPU VA).
    MapUser {
        va: u64,
        size: u64,
        prot: u32,
    },
    /// DRM_FERRITE_VM_BIND_OP_SYNC_ONLY.
    SyncOnly,
}

impl BindOp {
    pub(crate) fn maps(&self) -> bool {
        matches!(
            self,
            BindOp::Map { .. } | BindOp::MapNull { .. } | BindOp::MapUser { .. }
        )
    }

    /// Add the page-table pages the operation may need to `need`: those
    /// of its own plan (which depends on its pages and VA only), and those
    /// of the blocks it may cut at its ends.
    fn tables(&self, dev: &Device<Bound>, need: &mut TableNeed) -> Result {
        let (va, size) = match self {
            BindOp::Map {
                bo,
                bo_offset,
                va,
                size,
                ..
            } => {
                let sgt = gem::pinned_sgt(bo, dev)?;
                plan(sgt, *bo_offset, *va, *size, |v, _, pg, n| {
                    need.run(v, pg, n)
                })?;
                (*va, *size)
            }
            BindOp::MapNull { va, size, .. } => {
                Src::Null.plan(*va, *va, *size, |v, _, pg, n| need.run(v, pg, n))?;
                (*va, *size)
            }
            BindOp::Unmap { va, size } => (*va, *size),
            BindOp::MapUser { .. } | BindOp::SyncOnly => return Ok(()),
        };
        need.cut_at(va)?;
        need.cut_at(va + size - 1)
    }
}

/// A bind recorded in GPUVM whose page-table changes are still to be
/// applied.
pub(crate) struct Recorded {
    pub(crate) edits: Edits,
    /// BOs of mappings removed, held (only dropped) until the edits are
    /// applied.
    _held: KVec<ARef<Bo>>,
    /// The tables the edits may take (only dropped).
    _tables: PoolReservation,
    /// Whether GPUVM may have BOs to clean up (mappings went, or an
    /// operation failed half-way).
    dirty: bool,
}

impl Vm {
    pub(crate) fn new(
        gpu: &Arc<Gpu>,
        drm: &FerriteDevice<kernel::drm::Registered>,
        dev: &Device<Bound>,
        mm: Option<&Mm>,
        mirror_end: Option<u64>,
    ) -> Result<Arc<Self>> {
        let cfg = Config {
            quirks: QUIRK_NO_WARN,
            pgsize_bitmap: GPU_PAGE_SIZE | SZ_2M | SZ_1G,
            ias: VA_BITS,
            // Output addresses cover the null aperture (bit 47); the
            // device's DMA reach is below it.
            oas: 48,
            // The device walks tables in memory, bypassing its cache. Where
            // its DMA is not coherent with the CPU's caches (firmware says
            // so), io-pgtable cleans every table update to the point of
            // coherency, through the DMA API, before the TLB invalidation
            // that lets the device walk it.
            coherent_walk: gpu.info.dma_coherent,
        };
        // A walker that addresses 32 bits finds its tables in the low 4 GiB.
        let pool = TablePool::new(gpu.info.dma_addr_bits <= 32)?;
        let table = PageTable::new_with_pool(dev, cfg, pool.clone())?;
        // SAFETY: the device stops using the table before it is freed: the
        // VM leaves its slot in `drop` (before `pt` goes), and a global reset
        // at unbind disables every slot before devres frees the table.
        let ttbr = unsafe { table.ttbr() };
        let mair = table.mair();
        // SAFETY: the table borrows `dev` only, which stays valid for the
        // whole time the device is bound.
        let pt = unsafe { DevresLt::<PageTableLt>::new(dev, table)? };
        // The VM's reservation object lives in a small BO of its own.
        let resv_obj = gem::create(drm, BoArgs::Internal, kernel::page::PAGE_SIZE as u64, None)?;
        let gpuvm = GpuVm::new::<Error, _>(
            c"ferrite-vm",
            drm,
            &*resv_obj,
            0..(1u64 << VA_BITS),
            KERNEL_VA_START..KERNEL_VA_END,
            VmCore {
                maps: RBTree::new(),
            },
        )?;
        let mirror = match (mirror_end, mm) {
            (Some(end), Some(mm)) => Some(KBox::pin_init(Mirror::new(mm, end), GFP_KERNEL)?),
            (Some(_), None) => return Err(EFAULT),
            _ => None,
        };
        let stall = mirror.is_some();
        let id = gpu.new_id();
        let vm = Arc::pin_init(
            try_pin_init!(Self {
                id,
                gpu: gpu.clone(),
                hw: Arc::new(VmAs::new(ttbr, mair, stall), GFP_KERNEL)?,
                pt,
                pool,
                order <- new_mutex!(BindOrder {
                    last: None,
                    seqno: 0
                }),
                users <- new_mutex!(KVec::new()),
                gpuvm <- new_mutex!(gpuvm),
                binds <- new_mutex!(crate::bind::BindQueue::new()),
                pt_lock <- new_mutex!(()),
                bind_fences: FenceContext::new(),
                bind_cb <- FenceCallback::new(),
                bind_work <- new_work!("ferrite::Vm::bind_work"),
                unusable: Atomic::new(false),
                user_high: Atomic::new(0),
                kernel_next: Atomic::new(KERNEL_VA_START),
                kernel_objs <- new_mutex!(KVec::new()),
                bytes_bound: Atomic::new(0),
                mm: mm.map(ARef::from),
                max_segment: gpu.info.dma_max_segment,
                resv_obj,
                mirror,
                fault_work <- new_work!("ferrite::Vm::fault_work"),
            }),
            GFP_KERNEL,
        )?;
        // INVARIANT (`VmList`): removed in `drop`, under the lock.
        gpu.vms.lock().add(id, &*vm)?;
        Ok(vm)
    }

    /// The mappings, for debugfs and coredumps: (va, info), as they are
    /// once the binds recorded so far are applied.
    pub(crate) fn for_each_mapping(&self, mut f: impl FnMut(u64, &MapInfo)) {
        for (va, info) in self.gpuvm.lock().data_ref().maps.iter() {
            f(*va, info);
        }
    }

    pub(crate) fn is_unusable(&self) -> bool {
        self.unusable.load(Relaxed)
    }

    /// Note that user addresses up to `end` may be mapped. Called with
    /// `order` held (the only writer).
    fn raise_high(&self, end: u64) {
        if end > self.user_high.load(Relaxed) {
            self.user_high.store(end, Relaxed);
        }
    }

    /// Record `ops` (no userptr ones) in GPUVM, writing their page-table
    /// changes down. On an error, the operations before the failing one
    /// stay recorded (and are returned with the error). Called with `order`
    /// held.
    pub(crate) fn record(
        &self,
        dev: &Device<Bound>,
        ops: &[BindOp],
    ) -> Result<(Recorded, Result), Error> {
        let mut need = TableNeed(KVec::new());
        for op in ops {
            op.tables(dev, &mut need)?;
        }
        let tables = self.pool.reserve(need.count())?;
        let mut edits = Edits::new();
        let mut gpuvm = self.gpuvm.lock();
        let null_vm_bo = if ops.iter().any(|o| matches!(o, BindOp::MapNull { .. })) {
            Some(gpuvm.obtain(&self.resv_obj, ())?)
        } else {
            None
        };
        let mut ctx = BindCtx::new(Some(&mut edits), Some(dev), &self.resv_obj);
        let mut ret = Ok(());
        // The GPUVM BO of the last BO mapped: runs of operations on one BO
        // look it up once.
        let mut last: Option<(*const Bo, ARef<GpuVmBo<VmCore>>)> = None;
        for op in ops {
            ret = match op {
                BindOp::Map {
                    bo,
                    bo_offset,
                    va,
                    size,
                    prot,
                } => {
                    ctx.prot = *prot;
                    let this: *const Bo = &**bo;
                    let vm_bo = match last.take() {
                        Some((p, vb)) if core::ptr::eq(p, this) => Ok(vb),
                        _ => gpuvm.obtain(bo, ()).map_err(Error::from),
                    };
                    vm_bo.and_then(|vm_bo| {
                        let r = gpuvm.sm_map(OpMapRequest {
                            addr: *va,
                            range: *size,
                            gem_offset: *bo_offset,
                            vm_bo: &vm_bo,
                            context: &mut ctx,
                        });
                        last = Some((this, vm_bo));
                        r
                    })
                }
                BindOp::MapNull { va, size, prot } => match null_vm_bo.as_ref() {
                    Some(vm_bo) => {
                        ctx.prot = *prot;
                        gpuvm.sm_map(OpMapRequest {
                            addr: *va,
                            range: *size,
                            // Its VA: see `Src::Null`.
                            gem_offset: *va,
                            vm_bo,
                            context: &mut ctx,
                        })
                    }
                    None => Err(EINVAL),
                },
                BindOp::Unmap { va, size } => gpuvm.sm_unmap(*va, *size, &mut ctx),
                BindOp::SyncOnly => Ok(()),
                BindOp::MapUser { .. } => Err(EINVAL),
            };
            if ret.is_err() {
                break;
            }
        }
        let held = core::mem::take(&mut ctx.held);
        let (mapped, unmapped) = (ctx.bytes_mapped, ctx.bytes_unmapped);
        drop(ctx);
        drop(last);
        drop(null_vm_bo);
        drop(gpuvm);
        self.account(mapped, unmapped);
        for op in ops {
            if let BindOp::Map { va, size, .. } | BindOp::MapNull { va, size, .. } = *op {
                self.raise_high(va + size);
            }
        }
        Ok((
            Recorded {
                edits,
                dirty: !held.is_empty() || ret.is_err(),
                _held: held,
                _tables: tables,
            },
            ret,
        ))
    }

    /// Apply recorded page-table changes and flush what they touched from
    /// the TLB. Allocates nothing (tables come from the reservation made
    /// when they were recorded), so it may run where a fence is signalled.
    /// On an error (the device is gone), the VM is unusable.
    pub(crate) fn apply(&self, edits: &Edits) -> Result {
        if edits.list.is_empty() {
            return Ok(());
        }
        if self.is_unusable() {
            // Its tables were cleared: nothing is left to change.
            return Ok(());
        }
        let pt_guard = self.pt_lock.lock();
        let r = if self.gpu.take_injected_pt_failure() {
            // As if io-pgtable had found no table page.
            Err(ENOMEM)
        } else if edits.frees_tables || edits.touched.is_some() {
            // Entries go (or a block may replace a table io-pgtable then
            // frees): the VM's queues wait for translations meanwhile, so
            // that no job goes on using a removed entry between the edit
            // and the flush (the device model's audit holds the driver to
            // that), nor walks a freed table.
            self.gpu.update_vm(&self.hw, |live| {
                let r = self
                    .pt
                    .try_access_with(|pt| {
                        live.before_change();
                        replay(pt, edits)
                    })
                    .unwrap_or(Err(ENODEV));
                (r, edits.touched)
            })
        } else {
            // Fresh GPU page entries where nothing was mapped: no table goes,
            // nothing is cached to flush, walks may go on. No register
            // access and no slot lock (which the scheduler takes).
            self.pt
                .try_access_with(|pt| replay(pt, edits))
                .unwrap_or(Err(ENODEV))
        };
        // `make_unusable` takes `pt_lock` itself.
        drop(pt_guard);
        if r.is_err() {
            self.make_unusable();
        }
        r
    }

    /// Mark the VM unusable and unmap every user mapping from its tables,
    /// so that no job reaches memory through mappings that no longer match
    /// what userspace bound. Allocates nothing.
    pub(crate) fn make_unusable(&self) {
        if self.unusable.xchg(true, Relaxed) {
            return;
        }
        self.clear_user();
    }

    fn clear_user(&self) {
        let high = self.user_high.load(Relaxed).min(KERNEL_VA_START);
        let g = SZ_1G as u64;
        let _pt = self.pt_lock.lock();
        self.gpu.update_vm(&self.hw, |live| {
            let _ = self.pt.try_access_with(|pt| {
                live.before_change();
                let mut va = 0;
                while va < high {
                    // SAFETY: `pt_lock` is held. An entry that maps
                    // nothing is tolerated (QUIRK_NO_WARN): unmapping a whole
                    // 1 GiB entry clears its block or frees its tables.
                    let _ = unsafe { pt.unmap_pages(va as usize, SZ_1G, 1) };
                    va += g;
                }
            });
            ((), Some((0, high.next_multiple_of(g))))
        });
    }

    /// Wait for the VM's asynchronous binds, then take `order` (a
    /// synchronous bind goes after them).
    pub(crate) fn lock_idle(&self) -> Result<MutexGuard<'_, BindOrder>> {
        loop {
            let g = self.order.lock();
            match g.last.as_ref() {
                Some(f) if !f.is_signaled() => {
                    let f = f.clone();
                    drop(g);
                    f.wait(true, None)?;
                }
                _ => return Ok(g),
            }
        }
    }

    /// A synchronous bind: apply `ops` in order, after the VM's earlier
    /// binds. On an error, the operations before the failing one stay
    /// applied.
    pub(crate) fn bind(
        &self,
        dev: &Device<Bound>,
        ops: &[BindOp],
        lap: &mut Instant<Monotonic>,
    ) -> Result {
        let prof = &self.gpu.stats.bind_profile;
        let _order = self.lock_idle()?;
        prof.lap(BindPhase::Wait, lap);
        if self.is_unusable() && ops.iter().any(BindOp::maps) {
            return Err(EIO);
        }
        let mut i = 0;
        while i < ops.len() {
            if let BindOp::MapUser { va, size, prot } = ops[i] {
                self.map_user(dev, va, size, prot)?;
                i += 1;
                continue;
            }
            // A run of other operations: one TLB invalidation for all of
            // them. Userptrs first: an UNMAP removes those it holds, a MAP
            // may not overlap one.
            let j = ops[i..]
                .iter()
                .position(|o| matches!(o, BindOp::MapUser { .. }))
                .map_or(ops.len(), |p| i + p);
            let mut k = i;
            let mut pre = Ok(());
            while k < j {
                pre = match ops[k] {
                    BindOp::Unmap { va, size } => self.unmap_user(va, size),
                    BindOp::Map { va, size, .. } | BindOp::MapNull { va, size, .. }
                        if userptrs_overlap(&self.users.lock(), va, size) =>
                    {
                        Err(EEXIST)
                    }
                    _ => Ok(()),
                };
                if pre.is_err() {
                    break;
                }
                k += 1;
            }
            let (rec, ret) = self.record(dev, &ops[i..k])?;
            prof.lap(BindPhase::Record, lap);
            let applied = self.apply(&rec.edits);
            prof.lap(BindPhase::Apply, lap);
            self.cleanup(rec);
            prof.lap(BindPhase::Cleanup, lap);
            ret?;
            applied?;
            pre?;
            i = j;
        }
        Ok(())
    }

    /// Check asynchronous `ops` against the userptrs (which only
    /// synchronous binds add, in order): a MAP over one -EEXIST, an UNMAP
    /// that holds one -EINVAL.
    pub(crate) fn check_async(&self, ops: &[BindOp]) -> Result {
        let users = self.users.lock();
        for op in ops {
            match *op {
                BindOp::Map { va, size, .. } | BindOp::MapNull { va, size, .. }
                    if userptrs_overlap(&users, va, size) =>
                {
                    return Err(EEXIST)
                }
                BindOp::Unmap { va, size } if userptrs_overlap(&users, va, size) => {
                    return Err(EINVAL)
                }
                BindOp::MapUser { .. } => return Err(EINVAL),
                _ => {}
            }
        }
        Ok(())
    }

    /// Let go of what an applied bind removed (process context, outside
    /// any fence-signalling section: the last reference to a BO may go).
    pub(crate) fn cleanup(&self, rec: Recorded) {
        let dirty = rec.dirty;
        drop(rec);
        if dirty {
            self.gpuvm.lock().deferred_cleanup();
        }
    }

    /// Remove the userptrs inside `[va, va + size)` (for an UNMAP); one
    /// that only partly is refuses the whole operation.
    fn unmap_user(&self, va: u64, size: u64) -> Result {
        let mut ups = self.users.lock();
        if ups
            .iter()
            .any(|u| u.data().overlaps(va, size) && !u.data().inside(va, size))
        {
            return Err(EINVAL);
        }
        let n = ups.iter().filter(|u| u.data().inside(va, size)).count();
        if n == 0 {
            return Ok(());
        }
        let mut removed: KVec<(Userptr, Option<Arc<Mapped>>)> = KVec::with_capacity(n, GFP_KERNEL)?;
        let mut k = 0;
        while k < ups.len() {
            if !ups[k].data().inside(va, size) {
                k += 1;
                continue;
            }
            let u = ups.remove(k).map_err(|_| EINVAL)?;
            let pages = u.data().state.lock().mapped.take();
            // Cannot fail: reserved above.
            push_reserved(&mut removed, (u, pages));
        }
        let pt_guard = self.pt_lock.lock();
        self.gpu.update_vm(&self.hw, |live| {
            let _ = self.pt.try_access_with(|pt| {
                for (u, pages) in removed.iter() {
                    if let Some(p) = pages.as_ref() {
                        live.before_change();
                        let r = u.data();
                        // The range was mapped with this table's plan.
                        let _ = p.with_sgt(|sgt| unmap_plan(pt, sgt, r.va, r.len));
                    }
                }
            });
            ((), Some((va, va + size)))
        });
        drop(pt_guard);
        let gone: u64 = removed.iter().map(|(u, _)| u.data().len).sum();
        // Flushed, cleaned and synced: the pages may go.
        drop(removed);
        self.account(0, gone);
        Ok(())
    }

    /// DRM_FERRITE_VM_BIND_USERPTR: register, look up and map the calling
    /// process's memory at `[va, va + size)`.
    fn map_user(&self, dev: &Device<Bound>, va: u64, size: u64, prot: u32) -> Result {
        // The notifier and the page lookup work in whole CPU pages: a range
        // aligned to GPU pages only would take memory beyond it (VM_BIND
        // checked this already).
        let cpu_page = kernel::page::PAGE_SIZE as u64;
        if va % cpu_page != 0 || size % cpu_page != 0 {
            pr_debug!(
                "ferrite: userptr [{:#x}, +{:#x}) not aligned to the CPU page ({:#x})\n",
                va,
                size,
                cpu_page
            );
            return Err(EINVAL);
        }
        let task = kernel::current!();
        let mm = task.mm().ok_or(EFAULT)?;
        // Only the VM's own process may put its memory there: a file passed
        // to another process cannot mirror the receiver's memory into the
        // opener's GPU address space.
        if !self
            .mm
            .as_ref()
            .is_some_and(|m| core::ptr::eq(m.as_raw(), mm.as_raw()))
        {
            return Err(EPERM);
        }
        let mut users = self.users.lock();
        if self.gpuvm.lock().data_ref().maps_overlap(va, size) || userptrs_overlap(&users, va, size)
        {
            return Err(EEXIST);
        }
        users.reserve(1, GFP_KERNEL)?;
        let (Ok(start), Ok(len)) = (usize::try_from(va), usize::try_from(size)) else {
            return Err(EINVAL);
        };
        let u: Userptr = KBox::pin_init(
            IntervalNotifier::new(
                mm,
                start,
                len,
                Range::new(
                    va,
                    size,
                    prot,
                    self.hw.clone(),
                    self.resv_obj.clone(),
                    self.gpu.clone(),
                ),
            ),
            GFP_KERNEL,
        )?;
        self.raise_high(va + size);
        self.validate(&u, dev)?;
        // Cannot fail: reserved above.
        push_reserved(&mut users, u);
        self.account(size, 0);
        Ok(())
    }

    /// Make the GPU page table of userptr `u` point at its current pages:
    /// unmap stale ones, look the range up again and map it. Called with
    /// `users` held.
    fn validate(&self, u: &IntervalNotifier<Range>, dev: &Device<Bound>) -> Result {
        let r = u.data();
        loop {
            let stale = {
                let mut st = r.state.lock();
                if st.valid && st.mapped.is_some() {
                    return Ok(());
                }
                st.mapped.take()
            };
            if let Some(old) = stale {
                let _pt = self.pt_lock.lock();
                self.gpu.update_vm(&self.hw, |live| {
                    let _ = self.pt.try_access_with(|pt| {
                        live.before_change();
                        // The range was mapped with this table's plan.
                        let _ = old.with_sgt(|sgt| unmap_plan(pt, sgt, r.va, r.len));
                    });
                    ((), Some((r.va, r.end())))
                });
                // Flushed, cleaned and synced: the references may go.
                drop(old);
            }
            let (pages, seq) = userptr::fetch(u, dev, self.max_segment)?;
            let _tables = self.pool.reserve(table_bound(r.va, r.len))?;
            let pt_guard = self.pt_lock.lock();
            let ret = self.gpu.update_vm(&self.hw, |live| {
                let ret = self
                    .pt
                    .try_access_with(|pt| {
                        // io-pgtable may free tables while mapping.
                        live.before_change();
                        pages
                            .with_sgt(|sgt| map_plan(pt, sgt, r.va, r.len, r.prot))
                            .unwrap_or(Err(ENODEV))
                    })
                    .unwrap_or(Err(ENODEV));
                match ret {
                    // Fresh entries where nothing was mapped: no flush.
                    Ok(()) => (Ok(()), None),
                    Err(e) => (Err(e), Some((r.va, r.end()))),
                }
            });
            drop(pt_guard);
            ret?;
            let mut st = r.state.lock();
            st.mapped = Some(pages);
            if u.read_retry(seq) {
                // Changed meanwhile: unmap these and look again.
                continue;
            }
            st.valid = true;
            return Ok(());
        }
    }

    /// Before a job of this VM: map the current pages of every userptr
    /// (a range that can no longer be looked up stays unmapped, and the job
    /// faults on it), and give them to the device for the job; the lease
    /// gives them back when the job ends.
    pub(crate) fn prepare_userptrs(&self, dev: &Device<Bound>) -> Result<DeviceLease> {
        let users = self.users.lock();
        let mut lease = DeviceLease::new();
        for u in users.iter() {
            if self.validate(u, dev).is_err() {
                continue;
            }
            let m = u.data().state.lock().mapped.clone();
            if let Some(m) = m {
                lease.add(&m)?;
            }
        }
        Ok(lease)
    }

    fn account(&self, mapped: u64, unmapped: u64) {
        self.bytes_bound.add(mapped, Relaxed);
        self.bytes_bound.fetch_sub(unmapped, Relaxed);
        self.gpu.stats.bytes_bound.add(mapped, Relaxed);
        self.gpu.stats.bytes_bound.fetch_sub(unmapped, Relaxed);
    }

    /// Reserve `size` bytes of the kernel region, in GPU pages; returns
    /// their GPU VA.
    pub(crate) fn reserve_kernel_va(&self, size: u64) -> Result<u64> {
        let size = size.next_multiple_of(GPU_PAGE_SIZE as u64);
        let va = self.kernel_next.fetch_add(size, Relaxed);
        if va.checked_add(size).is_none_or(|e| e > KERNEL_VA_END) {
            return Err(ENOSPC);
        }
        Ok(va)
    }

    /// Map a kernel object (`size` bytes at bus address `bus`) at `va`, which
    /// [`Self::reserve_kernel_va`] returned. The object must already be in
    /// `kernel_objs` (it outlives its entries, even those of a failed map).
    /// `writable` objects are not executable; read-only ones are (rings).
    pub(crate) fn map_kernel(
        &self,
        dev: &Device<Bound>,
        va: u64,
        bus: u64,
        size: u64,
        writable: bool,
    ) -> Result {
        let pt = self.pt.access(dev)?;
        // GPU pages: a DMA allocation is at least a CPU page, of which only
        // the GPU pages the object needs are mapped.
        let size = size.next_multiple_of(GPU_PAGE_SIZE as u64);
        // Privileged (AP[1] clear): only the ring's own commands reach
        // them, never a job's indirect buffer. A job that could write its
        // queue's fence page could signal itself done while it still runs,
        // and have its buffers freed under it.
        let p = prot::PRIVILEGED
            | if writable {
                prot::READ | prot::WRITE | prot::NOEXEC
            } else {
                prot::READ
            };
        let _tables = self.pool.reserve(table_bound(va, size))?;
        let _pt = self.pt_lock.lock();
        // Fresh entries in the driver's region: nothing to flush or lock.
        self.gpu.update_vm(&self.hw, |_| {
            // SAFETY: the kernel region is allocated by `kernel_next` only,
            // so the range is unmapped; the object outlives the mapping (the
            // caller put it in `kernel_objs`).
            let r = unsafe {
                map_run(
                    pt,
                    va,
                    bus,
                    GPU_PAGE_SIZE,
                    size as usize / GPU_PAGE_SIZE,
                    p,
                    GFP_NOWAIT,
                )
            };
            (r, None)
        })
    }
}

#[pinned_drop]
impl PinnedDrop for Vm {
    fn drop(self: Pin<&mut Self>) {
        self.gpu.vms.lock().remove(self.id);
        // Leave the slot: the page table is freed with `pt`.
        self.gpu.release(&self.hw);
        // Out of the slot: the mirrored chunks' DMA mappings may go, with
        // their notifiers (before the VM their callbacks use).
        if let Some(m) = self.mirror.as_ref() {
            m.clear();
        }
        // Out of the slot: the userptrs' pages may go with their notifiers.
        let users = core::mem::take(&mut *self.users.lock());
        drop(users);
        let mut gpuvm = self.gpuvm.lock();
        let mut ctx = BindCtx::new(None, None, &self.resv_obj);
        // Empty the GPUVM so that it frees cleanly; the tables go with `pt`.
        // Userspace mappings only: the kernel region is GPUVM's reserved node.
        if let Err(e) = gpuvm.sm_unmap(0, KERNEL_VA_START, &mut ctx) {
            pr_warn!("ferrite: VM teardown: {:?}\n", e);
        }
        drop(ctx);
        gpuvm.deferred_cleanup();
        drop(gpuvm);
        let bound = self.bytes_bound.load(Relaxed);
        self.gpu.stats.bytes_bound.fetch_sub(bound, Relaxed);
    }
}

#[kunit_tests(ferrite_vm)]
mod tests {
    use super::*;
    use kernel::sizes::SZ_4K;

    const K4: u64 = SZ_4K as u64;
    const M2: u64 = SZ_2M as u64;
    const G1: u64 = SZ_1G as u64;
    const PROT: u32 = prot::READ | prot::WRITE;

    /// A run of the plan: `(va, pa, pgsize, count)`.
    type Run = (u64, u64, usize, usize);

    fn plan_of(src: &Src<'_>, off: u64, va: u64, len: u64) -> Result<KVec<Run>> {
        let mut runs = KVec::new();
        src.plan(off, va, len, |va, pa, pg, n| {
            runs.push((va, pa, pg, n), GFP_KERNEL)?;
            Ok(())
        })?;
        Ok(runs)
    }

    fn contig(va: u64, pa: u64, len: u64) -> Result<KVec<Run>> {
        let mut runs = KVec::new();
        plan_contig(va, pa, len, &mut |va, pa, pg, n| {
            runs.push((va, pa, pg, n), GFP_KERNEL)?;
            Ok(())
        })?;
        Ok(runs)
    }

    /// Whether `runs` tile `[va, va + len)` with pages aligned on both
    /// sides and at a constant offset from `pa`.
    fn tiles(runs: &[Run], va: u64, pa: u64, len: u64) -> bool {
        let mut next = va;
        for &(v, p, pg, n) in runs {
            let pg64 = pg as u64;
            if v != next || p != pa + (v - va) || n == 0 || (v | p) % pg64 != 0 {
                return false;
            }
            next += pg64 * n as u64;
        }
        next == va + len
    }

    /// Sorted by VA, with runs of the same page size that continue each
    /// other (in VA and bus address) joined: two plans that map the same
    /// pages with the same sizes are equal once normalised.
    fn normalise(mut runs: KVec<Run>) -> Result<KVec<Run>> {
        runs.sort_unstable_by_key(|r| r.0);
        let mut out: KVec<Run> = KVec::new();
        for &(v, p, pg, n) in runs.iter() {
            if let Some(last) = out.last_mut() {
                let bytes = (last.2 * last.3) as u64;
                if last.2 == pg && last.0 + bytes == v && last.1 + bytes == p {
                    last.3 += n;
                    continue;
                }
            }
            out.push((v, p, pg, n), GFP_KERNEL)?;
        }
        Ok(out)
    }

    /// The page table `edits` leave when applied over the pages of
    /// `runs`; an unmap of pages that are not mapped with exactly its
    /// size, or a map over mapped pages, is an error.
    fn apply(runs: KVec<Run>, edits: &Edits) -> Result<KVec<Run>> {
        let mut cur = runs;
        for e in edits.list.iter() {
            match *e {
                Edit::Map {
                    va,
                    pa,
                    pgsize,
                    count,
                    ..
                } => {
                    let end = va + (pgsize * count) as u64;
                    let overlaps = cur
                        .iter()
                        .any(|&(v, _, pg, n)| v < end && va < v + (pg * n) as u64);
                    if overlaps || (va | pa) % pgsize as u64 != 0 {
                        return Err(EEXIST);
                    }
                    cur.push((va, pa, pgsize, count), GFP_KERNEL)?;
                }
                Edit::Unmap { va, pgsize, count } => {
                    let end = va + (pgsize * count) as u64;
                    let mut next = KVec::new();
                    let mut gone = 0u64;
                    for &(v, p, pg, n) in cur.iter() {
                        let vend = v + (pg * n) as u64;
                        if vend <= va || v >= end {
                            next.push((v, p, pg, n), GFP_KERNEL)?;
                            continue;
                        }
                        if pg != pgsize || va % pg as u64 != 0 {
                            return Err(EINVAL);
                        }
                        let (s, t) = (v.max(va), vend.min(end));
                        gone += t - s;
                        if v < s {
                            next.push((v, p, pg, ((s - v) / pg as u64) as usize), GFP_KERNEL)?;
                        }
                        if t < vend {
                            next.push(
                                (t, p + (t - v), pg, ((vend - t) / pg as u64) as usize),
                                GFP_KERNEL,
                            )?;
                        }
                    }
                    if gone != end - va {
                        return Err(ENOENT);
                    }
                    cur = next;
                }
            }
        }
        normalise(cur)
    }

    /// Cut `[c0, c1)` out of the NULL mapping `[va, va + len)` (pages from
    /// offset `off`) and check the result: the page table the edits leave
    /// is exactly the plans of the kept parts as mappings of their own,
    /// the flushed range covers the cut, `frees_tables` says whether
    /// blocks are mapped, and the tables the re-maps need are those
    /// [`BindOp::tables`] reserves for the cut's ends. Returns how many
    /// runs are mapped again.
    fn check_cut(off: u64, va: u64, len: u64, c0: u64, c1: u64) -> Result<usize> {
        let r = cut_result(off, va, len, c0, c1);
        if let Err(e) = r {
            pr_err!("    # cut [{c0:#x}, {c1:#x}) of [{va:#x}, +{len:#x}) from {off:#x}: {e:?}\n");
        }
        r
    }

    fn cut_result(off: u64, va: u64, len: u64, c0: u64, c1: u64) -> Result<usize> {
        let src = Src::Null;
        let before = plan_of(&src, off, va, len)?;
        let mut edits = Edits::new();
        edits.cut(&src, off, va, len, c0, c1, PROT)?;
        let after = apply(before, &edits)?;
        let mut kept = plan_of(&src, off, va, c0 - va)?;
        let tail = plan_of(&src, off + (c1 - va), c1, va + len - c1)?;
        kept.extend_from_slice(&tail, GFP_KERNEL)?;
        let kept = normalise(kept)?;
        if after[..] != kept[..] {
            pr_err!("    # left {:x?}, expected {:x?}\n", &after[..], &kept[..]);
            return Err(EINVAL);
        }
        if !edits.touched.is_some_and(|(s, e)| s <= c0 && c1 <= e) {
            return Err(ERANGE);
        }
        let mut need = TableNeed(KVec::new());
        need.cut_at(c0)?;
        need.cut_at(c1 - 1)?;
        let at_ends = need.count();
        let mut need = TableNeed(KVec::new());
        need.cut_at(c0)?;
        need.cut_at(c1 - 1)?;
        let (mut maps, mut blocks) = (0, false);
        for e in edits.list.iter() {
            if let Edit::Map {
                va, pgsize, count, ..
            } = *e
            {
                maps += 1;
                blocks |= pgsize > SZ_4K;
                need.run(va, pgsize, count)?;
            }
        }
        if need.count() != at_ends || edits.frees_tables != blocks {
            return Err(EFAULT);
        }
        Ok(maps)
    }

    #[test]
    fn chunk_picks_the_largest_usable_size() {
        // Alone, and as many as the length holds.
        assert_eq!(chunk(0, 0, K4), (SZ_4K, 1));
        assert_eq!(chunk(0, 0, M2), (SZ_2M, 1));
        assert_eq!(chunk(0, 0, 3 * G1), (SZ_1G, 3));
        assert_eq!(chunk(0, 0, M2 - K4), (SZ_4K, 511));
        assert_eq!(chunk(0, 0, M2 + K4), (SZ_2M, 1));
        // Up to the boundary where the larger size becomes usable...
        assert_eq!(chunk(K4, K4, 4 * M2), (SZ_4K, 511));
        assert_eq!(chunk(M2, M2, 2 * G1), (SZ_2M, 511));
        assert_eq!(chunk(G1 - K4, G1 - K4, 2 * K4), (SZ_4K, 1));
        // ...unless it never does: VA and bus address disagree modulo it.
        assert_eq!(chunk(K4, 2 * K4, 4 * M2), (SZ_4K, 2048));
        assert_eq!(chunk(M2, 2 * M2, 2 * G1), (SZ_2M, 1024));
        assert_eq!(chunk(G1, G1 + M2, 3 * G1), (SZ_2M, 1536));
    }

    #[test]
    fn cpu_pages_are_mapped_as_gpu_pages() -> Result {
        // A 16 KiB CPU page (or a 64 KiB one) at a 16 KiB-aligned address
        // that is not 2 MiB-aligned: four (sixteen) GPU page entries, one
        // run.
        for cpu_page in [4 * K4, 16 * K4] {
            let runs = contig(M2 + cpu_page, 5 * M2 + cpu_page, cpu_page)?;
            let n = (cpu_page / K4) as usize;
            assert_eq!(&runs[..], &[(M2 + cpu_page, 5 * M2 + cpu_page, SZ_4K, n)]);
        }
        // The page size of the kernel that runs the test, likewise.
        let page = kernel::page::PAGE_SIZE as u64;
        let runs = contig(M2 + page, 3 * M2 + page, page)?;
        assert_eq!(
            &runs[..],
            &[(M2 + page, 3 * M2 + page, SZ_4K, (page / K4) as usize)]
        );
        Ok(())
    }

    #[test]
    fn plan_contig_tiles_with_the_largest_pages() -> Result {
        let cases: [(u64, u64, u64, &[Run]); 4] = [
            // 4 KiB pages up to a 2 MiB boundary, blocks, 4 KiB pages.
            (
                M2 - 3 * K4,
                M2 - 3 * K4,
                3 * K4 + 2 * M2 + 5 * K4,
                &[
                    (M2 - 3 * K4, M2 - 3 * K4, SZ_4K, 3),
                    (M2, M2, SZ_2M, 2),
                    (3 * M2, 3 * M2, SZ_4K, 5),
                ],
            ),
            // Every size.
            (
                G1 - K4,
                G1 - K4,
                K4 + G1 + M2 + K4,
                &[
                    (G1 - K4, G1 - K4, SZ_4K, 1),
                    (G1, G1, SZ_1G, 1),
                    (2 * G1, 2 * G1, SZ_2M, 1),
                    (2 * G1 + M2, 2 * G1 + M2, SZ_4K, 1),
                ],
            ),
            // Not congruent modulo 2 MiB: 4 KiB pages throughout.
            (0, K4, 2 * M2, &[(0, K4, SZ_4K, 1024)]),
            // Not congruent modulo 1 GiB: 2 MiB blocks across a 1 GiB
            // boundary.
            (G1 - M2, M2, G1 + M2, &[(G1 - M2, M2, SZ_2M, 513)]),
        ];
        for (va, pa, len, want) in cases {
            let runs = contig(va, pa, len)?;
            assert!(tiles(&runs, va, pa, len));
            assert_eq!(&runs[..], want);
        }
        // An error from the callback stops the plan.
        let mut calls = 0;
        let r = plan_contig(M2 - K4, M2 - K4, 2 * M2, &mut |_, _, _, _| {
            calls += 1;
            if calls == 2 {
                Err(ENOSPC)
            } else {
                Ok(())
            }
        });
        assert_eq!(r, Err(ENOSPC));
        assert_eq!(calls, 2);
        Ok(())
    }

    #[test]
    fn null_plan_keeps_the_offset_alignment() -> Result {
        // A NULL mapping's offset is its VA: blocks stay usable.
        let runs = plan_of(&Src::Null, G1, G1, G1 + M2)?;
        assert_eq!(
            &runs[..],
            &[
                (G1, NULL_BASE | G1, SZ_1G, 1),
                (2 * G1, NULL_BASE | (2 * G1), SZ_2M, 1)
            ]
        );
        // Only the offset's bits below the aperture bit count.
        let runs = plan_of(&Src::Null, NULL_BASE | M2, M2, M2)?;
        assert_eq!(&runs[..], &[(M2, NULL_BASE | M2, SZ_2M, 1)]);
        // An offset off the VA's alignment takes small pages.
        let runs = plan_of(&Src::Null, M2 + K4, M2, M2)?;
        assert_eq!(&runs[..], &[(M2, NULL_BASE | (M2 + K4), SZ_4K, 512)]);
        Ok(())
    }

    #[test]
    fn null_plan_wraps_at_the_aperture_end() -> Result {
        // A range across VA 2^47 would run past the 48-bit output size
        // (io-pgtable WARNs and refuses it): it wraps to the aperture start.
        let va = NULL_BASE - G1;
        let runs = plan_of(&Src::Null, va, va, 2 * G1)?;
        assert_eq!(
            &runs[..],
            &[
                (va, NULL_BASE | va, SZ_1G, 1),
                (NULL_BASE, NULL_BASE, SZ_1G, 1)
            ]
        );
        // Every output address stays inside the aperture.
        let runs = plan_of(&Src::Null, va + K4, va + K4, G1)?;
        for &(_, pa, pg, n) in runs.iter() {
            assert!(pa & NULL_BASE != 0);
            assert!(pa + (pg * n) as u64 <= 2 * NULL_BASE);
        }
        Ok(())
    }

    #[test]
    fn table_bound_counts_regions_touched() {
        assert_eq!(table_bound(0, 0), 0);
        assert_eq!(table_bound(0, K4), 3);
        assert_eq!(table_bound(M2 - K4, 2 * K4), 4);
        assert_eq!(table_bound(G1 - K4, 2 * K4), 5);
        assert_eq!(table_bound(512 * G1 - K4, 2 * K4), 6);
        assert_eq!(table_bound(0, G1), 514);
    }

    #[test]
    fn table_need_counts_each_table_once() -> Result {
        let count = |runs: &[(u64, usize, usize)]| -> Result<usize> {
            let mut need = TableNeed(KVec::new());
            for &(va, pg, n) in runs {
                need.run(va, pg, n)?;
            }
            Ok(need.count())
        };
        // A page needs its level-3, level-2 and level-1 tables; a block
        // those above it only.
        assert_eq!(count(&[(0, SZ_4K, 1)]), Ok(3));
        assert_eq!(count(&[(0, SZ_4K, 1), (K4, SZ_4K, 1)]), Ok(3));
        assert_eq!(count(&[(0, SZ_2M, 1)]), Ok(2));
        assert_eq!(count(&[(0, SZ_1G, 2)]), Ok(1));
        assert_eq!(count(&[(M2 - K4, SZ_4K, 2)]), Ok(4));
        // 1 GiB of 4 KiB pages: as many as the bound.
        assert_eq!(count(&[(0, SZ_4K, SZ_1G / SZ_4K)]), Ok(table_bound(0, G1)));
        // Duplicates further apart than the recent window still count
        // once.
        let mut need = TableNeed(KVec::new());
        need.run(0, SZ_4K, 1)?;
        for i in 1..=8 {
            need.run(i * M2, SZ_4K, 1)?;
        }
        need.run(0, SZ_4K, 1)?;
        assert!(need.0.len() > 11);
        assert_eq!(need.count(), 11);
        // The tables of a cut at `va`.
        let mut need = TableNeed(KVec::new());
        need.cut_at(0)?;
        need.cut_at(K4)?;
        assert_eq!(need.count(), 3);
        let mut need = TableNeed(KVec::new());
        need.cut_at(0)?;
        need.cut_at(M2)?;
        assert_eq!(need.count(), 4);
        Ok(())
    }

    #[test]
    fn cut_1g_block_in_the_middle() {
        // One 4 KiB page: 2 MiB blocks and 4 KiB pages on both sides.
        let mid = G1 + G1 / 2;
        assert_eq!(check_cut(G1, G1, G1, mid, mid + K4), Ok(3));
        // Off every block boundary on both ends.
        assert_eq!(
            check_cut(G1, G1, G1, G1 + 5 * M2 + 3 * K4, mid + 7 * K4),
            Ok(4)
        );
        // On 2 MiB boundaries: 2 MiB blocks only.
        assert_eq!(check_cut(G1, G1, G1, mid - M2, mid + M2), Ok(2));
        // Keeping one end only.
        assert_eq!(check_cut(G1, G1, G1, G1, mid + K4), Ok(2));
        assert_eq!(check_cut(G1, G1, G1, mid - K4, 2 * G1), Ok(2));
    }

    #[test]
    fn cut_2m_block_at_4k_granularity() {
        let b = 5 * M2;
        for k in 0..512 {
            let c0 = b + k * K4;
            assert!(check_cut(b, b, M2, c0, c0 + K4).is_ok());
            assert!(check_cut(b, b, M2, b, c0 + K4).is_ok());
            assert!(check_cut(b, b, M2, c0, b + M2).is_ok());
        }
    }

    #[test]
    fn cut_on_block_boundaries_maps_nothing() {
        // A 2 MiB block, a 1 GiB block, a 2 MiB block.
        let (va, len) = (G1 - M2, M2 + G1 + M2);
        assert_eq!(check_cut(va, va, len, va, G1), Ok(0));
        assert_eq!(check_cut(va, va, len, G1, 2 * G1), Ok(0));
        assert_eq!(check_cut(va, va, len, 2 * G1, va + len), Ok(0));
        assert_eq!(check_cut(va, va, len, va, 2 * G1), Ok(0));
        assert_eq!(check_cut(va, va, len, va, va + len), Ok(0));
        // 4 KiB pages only (offset off the VA's alignment).
        assert_eq!(check_cut(K4, 0, 2 * M2, 3 * K4, M2 + K4), Ok(0));
    }

    #[test]
    fn cut_mixed_4k_runs() {
        // 4 KiB pages, two 2 MiB blocks, 4 KiB pages: every cut between
        // the edges of runs and blocks and the pages beside them.
        let (va, len) = (M2 - 3 * K4, 3 * K4 + 2 * M2 + 5 * K4);
        let points = [
            va,
            va + K4,
            M2 - K4,
            M2,
            M2 + K4,
            2 * M2 - K4,
            2 * M2,
            2 * M2 + 5 * K4,
            3 * M2,
            3 * M2 + 2 * K4,
            va + len,
        ];
        for (i, &c0) in points.iter().enumerate() {
            for &c1 in &points[i + 1..] {
                assert!(check_cut(va, va, len, c0, c1).is_ok());
            }
        }
    }
}
