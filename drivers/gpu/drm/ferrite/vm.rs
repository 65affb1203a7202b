// SPDX-License-Identifier: GPL-2.0

//! GPU address spaces: DRM GPUVM tracks the mappings (splitting and merging
//! them), the kernel's io-pgtable writes the AArch64 LPAE stage-1 tables the
//! device walks, and every change is followed by one TLB invalidation of
//! exactly the range it touched.

use kernel::{
    device::{Bound, Device},
    devres::DevresLt,
    drm::gpuvm::{
        DriverGpuVm, GpuVaAlloc, GpuVaRemoved, GpuVm, OpMap, OpMapRequest, OpMapped, OpRemap,
        OpRemapped, OpUnmap, OpUnmapped, UniqueRefGpuVm,
    },
    iommu::pgtable::{prot, Config, IoPageTable, ARM64LPAES1},
    mm::{mmu_notifier::IntervalNotifier, Mm},
    new_mutex,
    prelude::*,
    rbtree::RBTree,
    scatterlist::SGTable,
    sizes::{SZ_1G, SZ_2M, SZ_4K},
    sync::{
        aref::ARef,
        atomic::{Atomic, Relaxed},
        Arc, Mutex, MutexGuard,
    },
    types::CovariantForLt,
};

use crate::{
    driver::{FerriteDevice, FerriteDrmDriver, KERNEL_VA_END, KERNEL_VA_START, VA_BITS},
    gem::{self, Bo, BoArgs, BoMeta, LabelFmt},
    gpu::{Gpu, LiveUpdate},
    mmu::VmAs,
    userptr::{self, DeviceLease, Mapped, Range, Userptr},
};

/// The page table of a VM, valid while the device is bound.
type PageTable<'a> = IoPageTable<'a, ARM64LPAES1>;
type PageTableLt = CovariantForLt!(for<'a> IoPageTable<'a, ARM64LPAES1>);

/// Page and block sizes the MMU maps.
const PGSIZES: [usize; 3] = [SZ_1G, SZ_2M, SZ_4K];

/// One mapping, as userspace created it (for splits and debugfs).
#[derive(Clone)]
pub(crate) struct MapInfo {
    pub(crate) len: u64,
    pub(crate) bo_offset: u64,
    pub(crate) prot: u32,
    /// The BO's debugfs id and label.
    pub(crate) bo: Arc<BoMeta>,
}

impl MapInfo {
    /// One line of a mapping listing (debugfs, coredumps), with the BO's
    /// label if it has one.
    pub(crate) fn write_line(&self, w: &mut impl core::fmt::Write, va: u64) -> core::fmt::Result {
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

/// The driver side of the GPUVM: the mappings as userspace sees them.
pub(crate) struct VmCore {
    pub(crate) maps: RBTree<u64, MapInfo>,
    /// Userptrs, outside GPUVM (they have no GEM object).
    pub(crate) userptrs: KVec<Userptr>,
}

impl VmCore {
    /// Whether a BO mapping intersects `[va, va + len)`.
    fn maps_overlap(&self, va: u64, len: u64) -> bool {
        let end = va.saturating_add(len);
        self.maps.iter().any(|(a, m)| *a < end && a + m.len > va)
    }

    fn userptrs_overlap(&self, va: u64, len: u64) -> bool {
        self.userptrs.iter().any(|u| u.data().overlaps(va, len))
    }
}

/// What the split/merge callbacks of one VM_BIND operation need.
pub(crate) struct BindCtx<'a> {
    /// The page table; `None` while the VM is torn down (its tables go).
    pt: Option<&'a PageTable<'a>>,
    /// The update in progress, told before existing entries change.
    live: Option<&'a LiveUpdate<'a>>,
    dev: Option<&'a Device<Bound>>,
    /// Protection of a new mapping.
    prot: u32,
    /// The range whose page-table entries changed.
    touched: Option<(u64, u64)>,
    /// Mappings removed, dropped only after the TLB flush.
    removed: KVec<GpuVaRemoved<VmCore>>,
    /// Userptrs removed, and their pages, dropped only after the TLB flush.
    removed_user: KVec<(Userptr, Option<Arc<Mapped>>)>,
    bytes_mapped: u64,
    bytes_unmapped: u64,
}

impl<'a> BindCtx<'a> {
    fn new(
        pt: Option<&'a PageTable<'a>>,
        live: Option<&'a LiveUpdate<'a>>,
        dev: Option<&'a Device<Bound>>,
    ) -> Self {
        Self {
            pt,
            live,
            dev,
            prot: 0,
            touched: None,
            removed: KVec::new(),
            removed_user: KVec::new(),
            bytes_mapped: 0,
            bytes_unmapped: 0,
        }
    }

    fn before_change(&self) {
        if let Some(l) = self.live {
            l.before_change();
        }
    }

    /// Existing entries of `[start, start + len)` changed: flush them.
    fn touch(&mut self, start: u64, len: u64) {
        let end = start + len;
        self.touched = Some(match self.touched {
            None => (start, end),
            Some((s, e)) => (s.min(start), e.max(end)),
        });
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
        let mut pa = seg.dma_address() + skip;
        let mut left = (seg_len - skip).min(end - va);
        skip = 0;
        while left > 0 {
            let (pg, n) = chunk(va, pa, left);
            f(va, pa, pg, n)?;
            let bytes = (pg * n) as u64;
            va += bytes;
            pa += bytes;
            left -= bytes;
        }
    }
    if va != end {
        return Err(EINVAL);
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
    (SZ_4K, 1)
}

fn map_plan(
    pt: &PageTable<'_>,
    sgt: &SGTable,
    gem_offset: u64,
    iova: u64,
    len: u64,
    prot: u32,
) -> Result {
    let mut done = 0u64;
    let ret = plan(sgt, gem_offset, iova, len, |va, pa, pg, n| {
        let mut off = 0usize;
        while off < pg * n {
            // SAFETY: the VM's lock is held, so nothing else changes this
            // range, which GPUVM guarantees is unmapped; the pages stay
            // pinned while the mapping exists (it holds the BO).
            let (mapped, r) = unsafe {
                pt.map_pages(
                    (va as usize) + off,
                    pa + off as u64,
                    pg,
                    n - off / pg,
                    prot,
                    GFP_KERNEL,
                )
            };
            off += mapped;
            done += mapped as u64;
            r?;
            if mapped == 0 {
                return Err(ENOMEM);
            }
        }
        Ok(())
    });
    if ret.is_err() && done > 0 {
        // Undo the prefix that was mapped.
        let _ = unmap_plan(pt, sgt, gem_offset, iova, done);
    }
    ret
}

fn unmap_plan(pt: &PageTable<'_>, sgt: &SGTable, gem_offset: u64, iova: u64, len: u64) -> Result {
    plan(sgt, gem_offset, iova, len, |va, _pa, pg, n| {
        let mut off = 0usize;
        while off < pg * n {
            // SAFETY: the range was mapped by `map_plan` with the same plan,
            // so it holds exactly these page sizes; the VM's lock is held.
            let unmapped = unsafe { pt.unmap_pages((va as usize) + off, pg, n - off / pg) };
            if unmapped == 0 {
                return Err(EINVAL);
            }
            off += unmapped;
        }
        Ok(())
    })
}

fn bo_sgt<'a>(bo: &'a Bo, dev: Option<&'a Device<Bound>>) -> Result<&'a SGTable> {
    gem::pinned_sgt(bo, dev.ok_or(ENODEV)?)
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
        let va = GpuVaAlloc::new(GFP_KERNEL)?;
        let info = MapInfo {
            len,
            bo_offset: off,
            prot: ctx.prot,
            bo: op.obj().meta.clone(),
        };
        let node = kernel::rbtree::RBTreeNode::new(addr, info, GFP_KERNEL)?;
        if let Some(pt) = ctx.pt {
            let sgt = bo_sgt(op.obj(), ctx.dev)?;
            // io-pgtable frees tables while mapping (a block replacing an
            // emptied table) and undoing a failed map: no walk of a busy
            // VM may read them meanwhile.
            ctx.before_change();
            if let Err(e) = map_plan(pt, sgt, off, addr, len, ctx.prot) {
                // A job may have cached the entries of the undone prefix.
                ctx.touch(addr, len);
                return Err(e);
            }
        }
        self.maps.insert(node);
        // New entries where nothing was mapped: no TLB flush needed.
        ctx.bytes_mapped += len;
        Ok(op.insert(va, ()))
    }

    fn sm_step_unmap<'op, 'ctx>(
        &mut self,
        op: OpUnmap<'op, Self>,
        ctx: &mut BindCtx<'ctx>,
    ) -> Result<OpUnmapped<'op, Self>, Error> {
        let va = op.va();
        let (addr, len, off) = (va.addr(), va.length(), va.gem_offset());
        // A live VM keeps removed mappings until the TLB flush; a VM being
        // torn down (no tables, no slot) drops them at once, so that its
        // teardown needs no memory.
        let live = ctx.pt.is_some();
        if live {
            ctx.removed.reserve(1, GFP_KERNEL)?;
        }
        if let Some(pt) = ctx.pt {
            let sgt = bo_sgt(va.obj(), ctx.dev)?;
            ctx.before_change();
            unmap_plan(pt, sgt, off, addr, len)?;
        }
        self.maps.remove(&addr);
        ctx.touch(addr, len);
        ctx.bytes_unmapped += len;
        let (done, removed) = op.remove();
        if live {
            // Cannot fail: reserved above.
            push_reserved(&mut ctx.removed, removed);
        }
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
        ctx.removed.reserve(1, GFP_KERNEL)?;

        // Blocks cannot be split: unmap the whole old mapping and map the
        // parts that stay.
        if let Some(pt) = ctx.pt {
            let sgt = bo_sgt(old.obj(), ctx.dev)?;
            ctx.before_change();
            unmap_plan(pt, sgt, off, addr, len)?;
            for (a, l, o) in Iterator::chain(prev.iter(), next.iter()) {
                map_plan(pt, sgt, *o, *a, *l, info.prot)?;
            }
        }
        ctx.touch(addr, len);
        self.maps.remove(&addr);
        let mut kept = 0;
        for ((a, l, _), node) in Iterator::chain(prev.into_iter(), next).zip([prev_node, next_node])
        {
            let node = node.into_reservation().into_node(a, info.clone());
            self.maps.insert(node);
            kept += l;
        }
        ctx.bytes_unmapped += len - kept;
        let (done, ret) = op.remap(vas, (), ());
        push_reserved(&mut ctx.removed, ret.unmapped_va);
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
#[pin_data(PinnedDrop)]
pub(crate) struct Vm {
    pub(crate) id: u64,
    pub(crate) gpu: Arc<Gpu>,
    pub(crate) hw: Arc<VmAs>,
    pt: DevresLt<PageTableLt>,
    #[pin]
    gpuvm: Mutex<UniqueRefGpuVm<VmCore>>,
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
    /// by the VM's private BOs (DRM_FERRITE_GEM_CREATE_VM_PRIVATE).
    pub(crate) resv_obj: ARef<Bo>,
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
}

impl Vm {
    pub(crate) fn new(
        gpu: &Arc<Gpu>,
        drm: &FerriteDevice<kernel::drm::Registered>,
        dev: &Device<Bound>,
        mm: Option<&Mm>,
    ) -> Result<Arc<Self>> {
        let oas = gpu.info.dma_addr_bits.min(48);
        let cfg = Config {
            quirks: 0,
            pgsize_bitmap: SZ_4K | SZ_2M | SZ_1G,
            ias: VA_BITS,
            oas,
            // The device walks tables in memory, bypassing its cache, and
            // memory is coherent with the CPU on this platform.
            coherent_walk: true,
        };
        let table = PageTable::new(dev, cfg)?;
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
                userptrs: KVec::new(),
            },
        )?;
        let id = gpu.new_id();
        let vm = Arc::pin_init(
            try_pin_init!(Self {
                id,
                gpu: gpu.clone(),
                hw: Arc::new(VmAs::new(ttbr, mair), GFP_KERNEL)?,
                pt,
                gpuvm <- new_mutex!(gpuvm),
                kernel_next: Atomic::new(KERNEL_VA_START),
                kernel_objs <- new_mutex!(KVec::new()),
                bytes_bound: Atomic::new(0),
                mm: mm.map(ARef::from),
                max_segment: gpu.info.dma_max_segment,
                resv_obj,
            }),
            GFP_KERNEL,
        )?;
        // INVARIANT (`VmList`): removed in `drop`, under the lock.
        gpu.vms.lock().add(id, &*vm)?;
        Ok(vm)
    }

    /// The mappings, for debugfs and coredumps: (va, info). Coredumps are
    /// written by a work item after the failed fence signalled, so waiting
    /// for the lock here never holds up a fence (a bind holding it may be
    /// waiting for one: its user-page lookup runs a userptr notifier that
    /// waits for the VM's jobs).
    pub(crate) fn for_each_mapping(&self, mut f: impl FnMut(u64, &MapInfo)) {
        for (va, info) in self.gpuvm.lock().data_ref().maps.iter() {
            f(*va, info);
        }
    }

    /// Apply `ops` in order. On an error, the operations before the failing
    /// one stay applied.
    pub(crate) fn bind(&self, dev: &Device<Bound>, ops: &[BindOp]) -> Result {
        let pt = self.pt.access(dev)?;
        let mut gpuvm = self.gpuvm.lock();
        let mut i = 0;
        while i < ops.len() {
            if let BindOp::MapUser { va, size, prot } = ops[i] {
                self.map_user(&mut gpuvm, pt, dev, va, size, prot)?;
                i += 1;
                continue;
            }
            // A run of BO operations: one TLB invalidation for all of them.
            let j = ops[i..]
                .iter()
                .position(|o| matches!(o, BindOp::MapUser { .. }))
                .map_or(ops.len(), |p| i + p);
            self.bind_bos(&mut gpuvm, pt, dev, &ops[i..j])?;
            i = j;
        }
        Ok(())
    }

    fn bind_bos(
        &self,
        gpuvm: &mut MutexGuard<'_, UniqueRefGpuVm<VmCore>>,
        pt: &PageTable<'_>,
        dev: &Device<Bound>,
        ops: &[BindOp],
    ) -> Result {
        let (ret, removed, removed_user, mapped, unmapped) = self.gpu.update_vm(&self.hw, |live| {
            let mut ctx = BindCtx::new(Some(pt), Some(live), Some(dev));
            let mut ret = Ok(());
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
                        if gpuvm.data_ref().userptrs_overlap(*va, *size) {
                            Err(EEXIST)
                        } else {
                            gpuvm.obtain(bo, ()).map_err(Error::from).and_then(|vm_bo| {
                                gpuvm.sm_map(OpMapRequest {
                                    addr: *va,
                                    range: *size,
                                    gem_offset: *bo_offset,
                                    vm_bo: &vm_bo,
                                    context: &mut ctx,
                                })
                            })
                        }
                    }
                    BindOp::Unmap { va, size } => {
                        Self::unmap_user(gpuvm.data(), pt, &mut ctx, *va, *size)
                            .and_then(|()| gpuvm.sm_unmap(*va, *size, &mut ctx))
                    }
                    BindOp::MapUser { .. } => Err(EINVAL),
                };
                if ret.is_err() {
                    break;
                }
            }
            let touched = ctx.touched;
            (
                (
                    ret,
                    core::mem::take(&mut ctx.removed),
                    core::mem::take(&mut ctx.removed_user),
                    ctx.bytes_mapped,
                    ctx.bytes_unmapped,
                ),
                touched,
            )
        });
        // The TLB no longer holds the old translations: the pages of the
        // removed mappings may go.
        drop(removed);
        drop(removed_user);
        gpuvm.deferred_cleanup();
        self.account(mapped, unmapped);
        ret
    }

    /// Remove the userptrs inside `[va, va + size)` (for an UNMAP); one
    /// that only partly is refuses the whole operation.
    fn unmap_user(
        core: &mut VmCore,
        pt: &PageTable<'_>,
        ctx: &mut BindCtx<'_>,
        va: u64,
        size: u64,
    ) -> Result {
        let ups = &mut core.userptrs;
        if ups
            .iter()
            .any(|u| u.data().overlaps(va, size) && !u.data().inside(va, size))
        {
            return Err(EINVAL);
        }
        let n = ups.iter().filter(|u| u.data().inside(va, size)).count();
        ctx.removed_user.reserve(n, GFP_KERNEL)?;
        let mut k = 0;
        while k < ups.len() {
            if !ups[k].data().inside(va, size) {
                k += 1;
                continue;
            }
            let u = ups.remove(k).map_err(|_| EINVAL)?;
            let r = u.data();
            let pages = r.state.lock().mapped.take();
            if let Some(p) = pages.as_ref() {
                ctx.before_change();
                // The range was mapped with this table's plan.
                let _ = unmap_plan(pt, p.sgt(), 0, r.va, r.len);
                ctx.touch(r.va, r.len);
            }
            ctx.bytes_unmapped += r.len;
            // Cannot fail: reserved above.
            push_reserved(&mut ctx.removed_user, (u, pages));
        }
        Ok(())
    }

    /// DRM_FERRITE_VM_BIND_USERPTR: register, look up and map the calling
    /// process's memory at `[va, va + size)`.
    fn map_user(
        &self,
        gpuvm: &mut MutexGuard<'_, UniqueRefGpuVm<VmCore>>,
        pt: &PageTable<'_>,
        dev: &Device<Bound>,
        va: u64,
        size: u64,
        prot: u32,
    ) -> Result {
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
        let core = gpuvm.data();
        if core.maps_overlap(va, size) || core.userptrs_overlap(va, size) {
            return Err(EEXIST);
        }
        core.userptrs.reserve(1, GFP_KERNEL)?;
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
        self.validate(&u, pt, dev)?;
        // Cannot fail: reserved above.
        push_reserved(&mut gpuvm.data().userptrs, u);
        self.account(size, 0);
        Ok(())
    }

    /// Make the GPU page table of userptr `u` point at its current pages:
    /// unmap stale ones, look the range up again and map it. Called with the
    /// VM's lock held.
    fn validate(
        &self,
        u: &IntervalNotifier<Range>,
        pt: &PageTable<'_>,
        dev: &Device<Bound>,
    ) -> Result {
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
                self.gpu.update_vm(&self.hw, |live| {
                    live.before_change();
                    // The range was mapped with this table's plan.
                    let _ = unmap_plan(pt, old.sgt(), 0, r.va, r.len);
                    ((), Some((r.va, r.end())))
                });
                // Flushed, cleaned and synced: the references may go.
                drop(old);
            }
            let (pages, seq) = userptr::fetch(u, dev, self.max_segment)?;
            self.gpu.update_vm(&self.hw, |live| {
                // io-pgtable may free tables while mapping.
                live.before_change();
                match map_plan(pt, pages.sgt(), 0, r.va, r.len, r.prot) {
                    // Fresh entries where nothing was mapped: no flush.
                    Ok(()) => (Ok(()), None),
                    Err(e) => (Err(e), Some((r.va, r.end()))),
                }
            })?;
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
        let pt = self.pt.access(dev)?;
        let gpuvm = self.gpuvm.lock();
        let mut lease = DeviceLease::new();
        for u in gpuvm.data_ref().userptrs.iter() {
            if self.validate(u, pt, dev).is_err() {
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

    /// Reserve `size` bytes of the kernel region; returns their GPU VA.
    pub(crate) fn reserve_kernel_va(&self, size: u64) -> Result<u64> {
        let size = size.next_multiple_of(SZ_4K as u64);
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
        let size = size.next_multiple_of(SZ_4K as u64);
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
        let _guard = self.gpuvm.lock();
        // Fresh entries in the driver's region: nothing to flush or lock.
        self.gpu.update_vm(&self.hw, |_| {
            let mut off = 0usize;
            let n = (size as usize) / SZ_4K;
            let mut ret = Ok(());
            while off < size as usize {
                // SAFETY: the kernel region is allocated by `kernel_next`
                // only, so the range is unmapped; the object outlives the
                // mapping (the caller put it in `kernel_objs`).
                let (mapped, r) = unsafe {
                    pt.map_pages(
                        va as usize + off,
                        bus + off as u64,
                        SZ_4K,
                        n - off / SZ_4K,
                        p,
                        GFP_KERNEL,
                    )
                };
                off += mapped;
                if r.is_err() || mapped == 0 {
                    ret = r.and(Err(ENOMEM));
                    break;
                }
            }
            (ret, None)
        })
    }
}

#[pinned_drop]
impl PinnedDrop for Vm {
    fn drop(self: Pin<&mut Self>) {
        self.gpu.vms.lock().remove(self.id);
        // Leave the slot: the page table is freed with `pt`.
        self.gpu.release(&self.hw);
        let mut gpuvm = self.gpuvm.lock();
        // Out of the slot: the userptrs' pages may go with their notifiers.
        let users = core::mem::take(&mut gpuvm.data().userptrs);
        drop(users);
        let mut ctx = BindCtx::new(None, None, None);
        // Empty the GPUVM so that it frees cleanly; the tables go with `pt`.
        // Userspace mappings only: the kernel region is GPUVM's reserved node.
        if let Err(e) = gpuvm.sm_unmap(0, KERNEL_VA_START, &mut ctx) {
            pr_warn!("ferrite: VM teardown: {:?}\n", e);
        }
        drop(core::mem::take(&mut ctx.removed));
        gpuvm.deferred_cleanup();
        drop(gpuvm);
        let bound = self.bytes_bound.load(Relaxed);
        self.gpu.stats.bytes_bound.fetch_sub(bound, Relaxed);
    }
}
