// SPDX-License-Identifier: GPL-2.0

//! References to the pages behind a range of a process's address space, and their DMA mapping.
//!
//! [`UserPages::get`] looks pages up with `get_user_pages_remote()` and holds a reference on each
//! (`FOLL_GET`, not `FOLL_PIN`). That is the pattern `Documentation/core-api/pin_user_pages.rst`
//! describes for drivers that also register an [`super::mmu_notifier::IntervalNotifier`]: the
//! device stops using the pages when the notifier fires, and the references go then; they only
//! keep the pages from being freed until the device has stopped.
//!
//! [`DmaPages`] maps such pages for a device as a scatter-gather table.
//!
//! What the device may do with the pages, [`Access`], is chosen once, when they are looked up,
//! and decides both the lookup and the DMA direction, so the two cannot disagree. Pages looked
//! up for reading may be shared with other processes and with the kernel (the shared zero page,
//! page-cache pages of a read-only file mapping, KSM pages); they are mapped `DMA_TO_DEVICE`, so
//! no unmap or sync ever copies a bounce buffer back into them or invalidates CPU caches over
//! them. Pages looked up for writing are the process's own (`FOLL_WRITE` breaks copy-on-write)
//! and are mapped `DMA_BIDIRECTIONAL`.
//!
//! C headers: [`include/linux/mm.h`](srctree/include/linux/mm.h),
//! [`include/linux/scatterlist.h`](srctree/include/linux/scatterlist.h)

use crate::{
    alloc::Flags,
    bindings,
    device::{Bound, Device},
    dma::DataDirection,
    error::to_result,
    mm::MmWithUser,
    page::PAGE_SIZE,
    prelude::*,
    scatterlist::SGTable,
    sync::{
        aref::ARef,
        atomic::{Atomic, Relaxed},
    },
    types::Opaque,
};

/// What a device may do with user pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// The device only reads the pages. They are looked up without `FOLL_WRITE`, so they may be
    /// shared (zero page, page cache, KSM), and are mapped `DMA_TO_DEVICE`.
    Read,
    /// The device reads and writes the pages. They are looked up with `FOLL_WRITE` (each is the
    /// process's own, writable page) and mapped `DMA_BIDIRECTIONAL`.
    ReadWrite,
}

impl Access {
    /// The DMA direction of a mapping for this access.
    pub fn dma_direction(self) -> DataDirection {
        match self {
            Access::Read => DataDirection::ToDevice,
            Access::ReadWrite => DataDirection::Bidirectional,
        }
    }

    /// Whether the device may write.
    pub fn writes(self) -> bool {
        self == Access::ReadWrite
    }
}

/// References to the pages of a page-aligned user range, in order.
///
/// # Invariants
///
/// Every entry of `pages` is a page this object holds one reference on. If `access` is
/// [`Access::ReadWrite`], the pages were looked up with `FOLL_WRITE`.
pub struct UserPages {
    pages: KVVec<*mut bindings::page>,
    access: Access,
}

// SAFETY: the page references may be dropped from any thread.
unsafe impl Send for UserPages {}
// SAFETY: `UserPages` gives out no interior mutability.
unsafe impl Sync for UserPages {}

impl UserPages {
    /// Reference the `npages` pages from `start` (page aligned) of `mm`, faulting them in, for
    /// a device that will access them as `access` says ([`Access::ReadWrite`] breaks
    /// copy-on-write). Fails with `EFAULT` if a page is not mapped, or not writable for
    /// [`Access::ReadWrite`].
    pub fn get(mm: &MmWithUser, start: usize, npages: usize, access: Access) -> Result<Self> {
        if start % PAGE_SIZE != 0 {
            return Err(EINVAL);
        }
        // References taken so far are given back by `drop` if a later call fails.
        let mut this = Self {
            pages: KVVec::with_capacity(npages, GFP_KERNEL)?,
            access,
        };
        let flags = if access.writes() {
            bindings::FOLL_WRITE
        } else {
            0
        };
        let _lock = mm.mmap_read_lock();
        while this.pages.len() < npages {
            let done = this.pages.len();
            let addr = start + done * PAGE_SIZE;
            // At most this many per call, to bound the time the lock is held in one go.
            let n = (npages - done).min(512);
            // SAFETY: `pages` has room for `n` more pointers (capacity `npages`); the mmap lock of
            // `mm` is held, as the function requires with `locked == NULL`.
            let got = unsafe {
                bindings::get_user_pages_remote(
                    mm.as_raw(),
                    addr,
                    n,
                    flags,
                    this.pages.as_mut_ptr().add(done),
                    core::ptr::null_mut(),
                )
            };
            if got <= 0 {
                return Err(if got == 0 {
                    EFAULT
                } else {
                    Error::from_errno(got as i32)
                });
            }
            // SAFETY: `get_user_pages_remote` filled `got` more entries, each with a reference.
            unsafe { this.pages.inc_len(got as usize) };
        }
        Ok(this)
    }

    /// The number of pages.
    pub fn len(&self) -> usize {
        self.pages.len()
    }

    /// Whether there are no pages.
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    /// Map the pages for `dev` as a scatter-gather table of segments no longer than
    /// `max_segment` (nor than `dma_max_mapping_size()`) and, if `dev` has a DMA segment boundary
    /// (`dma_set_seg_boundary()`), one page each, in the direction their [`Access`] implies. A
    /// page does not cross a boundary of at least a page, which is all the DMA layer supports;
    /// pages merged into longer segments might. With `skip_cpu_sync`, no cache maintenance is
    /// done now: the caller syncs before the device first uses the table
    /// (`DMA_ATTR_SKIP_CPU_SYNC`). Fails as `dma_map_sgtable()` does: `ENOMEM` when the DMA layer
    /// lacks the resources (memory, bounce buffers, address space), and also when a mapped
    /// segment crosses the boundary after all (the DMA layer could not map the pages as the
    /// device needs them).
    pub fn dma_map(
        self,
        dev: &Device<Bound>,
        max_segment: u32,
        skip_cpu_sync: bool,
    ) -> Result<DmaPages> {
        let dir = self.access.dma_direction();
        let sgt = KBox::new(Opaque::<bindings::sg_table>::zeroed(), GFP_KERNEL)?;
        // No segment longer than the DMA layer can map in one piece either: a bounce buffer
        // (swiotlb) holds at most 256 KiB, and physically contiguous pages would otherwise merge
        // into longer segments that cannot be bounced.
        // SAFETY: `dev` is a valid, bound device.
        let dma_max = unsafe { bindings::dma_max_mapping_size(dev.as_raw()) };
        let max_segment = u32::try_from(dma_max).map_or(max_segment, |m| max_segment.min(m));
        let max_segment = max_segment.max(PAGE_SIZE as u32) & !(PAGE_SIZE as u32 - 1);
        // SAFETY: `dev` is a valid, bound device.
        let boundary = unsafe { bindings::dma_get_seg_boundary(dev.as_raw()) };
        // `sg_alloc_table_from_pages_segment()` merges contiguous pages without regard to a
        // boundary: with one, every page is a segment of its own.
        let no_boundary = boundary == crate::ffi::c_ulong::MAX;
        let boundary = boundary as u64;
        let max_segment = if no_boundary {
            max_segment
        } else {
            PAGE_SIZE as u32
        };
        let n = u32::try_from(self.pages.len()).map_err(|_| EINVAL)?;
        // SAFETY: `sgt` is a valid, zeroed table; `pages` holds `n` referenced pages.
        to_result(unsafe {
            bindings::sg_alloc_table_from_pages_segment(
                sgt.get(),
                self.pages.as_ptr().cast_mut(),
                n,
                0,
                n as usize * PAGE_SIZE,
                max_segment,
                Flags::as_raw(GFP_KERNEL),
            )
        })?;
        let attrs = if skip_cpu_sync {
            bindings::DMA_ATTR_SKIP_CPU_SYNC as usize
        } else {
            0
        };
        // SAFETY: `sgt` was just allocated from the pages; `dev` is bound.
        let r = unsafe { bindings::dma_map_sgtable(dev.as_raw(), sgt.get(), dir.into(), attrs) };
        if r != 0 {
            // SAFETY: the table was allocated above and is not mapped.
            unsafe { bindings::sg_free_table(sgt.get()) };
            return Err(Error::from_errno(r));
        }
        let dma = DmaPages {
            dev: dev.into(),
            sgt,
            device_owned: Atomic::new(!skip_cpu_sync),
            pages: self,
        };
        // The DMA layer honours the boundary when it bounces or remaps; a direct mapping keeps the
        // pages' segments. Check rather than trust: the device must never be given a crossing.
        if !no_boundary {
            for e in dma.sgt().iter() {
                // `dma_addr_t` and `resource_size_t` are `u64` on most kernels, not all.
                #[allow(clippy::useless_conversion)]
                let (start, len) = (u64::from(e.dma_address()), u64::from(e.dma_len()));
                if len != 0 && (start ^ start.wrapping_add(len - 1)) & !boundary != 0 {
                    pr_debug!(
                        "user_pages: DMA segment {:#x}+{:#x} crosses the device's segment boundary (mask {:#x})\n",
                        start,
                        len,
                        boundary
                    );
                    // Dropping `dma` unmaps the table.
                    return Err(ENOMEM);
                }
            }
        }
        Ok(dma)
    }
}

impl Drop for UserPages {
    fn drop(&mut self) {
        if self.pages.is_empty() {
            return;
        }
        // SAFETY: each entry holds a reference of ours (type invariant), given back here once.
        unsafe {
            bindings::release_pages(
                bindings::release_pages_arg {
                    pages: self.pages.as_mut_ptr(),
                },
                self.pages.len() as i32,
            )
        };
    }
}

/// [`UserPages`] mapped for a device.
///
/// # Invariants
///
/// `sgt` is a table of `pages`, mapped for `dev` in the direction their [`Access`] decides
/// (`dir()`) until `drop`.
///
/// The pages belong to the CPU or to the device for DMA: [`DmaPages::sync_for_device`] gives
/// them to the device, [`DmaPages::sync_for_cpu`] back to the CPU, and `device_owned` records
/// which. The unmap in `drop` syncs for the CPU only while the device owns them: once they are
/// the CPU's, a sync (a bounce-buffer copy) would overwrite what the CPU wrote since.
pub struct DmaPages {
    dev: ARef<Device>,
    sgt: KBox<Opaque<bindings::sg_table>>,
    device_owned: Atomic<bool>,
    pages: UserPages,
}

// SAFETY: the table is only read, and unmapped once, in `drop`.
unsafe impl Send for DmaPages {}
// SAFETY: as above.
unsafe impl Sync for DmaPages {}

impl DmaPages {
    /// The mapped table.
    pub fn sgt(&self) -> &SGTable {
        // SAFETY: the table is valid and mapped until `drop` (type invariant).
        unsafe { SGTable::from_raw(self.sgt.get()) }
    }

    /// The pages.
    pub fn pages(&self) -> &UserPages {
        &self.pages
    }

    /// The direction the table is mapped in.
    fn dir(&self) -> DataDirection {
        self.pages.access.dma_direction()
    }

    /// Give the pages to the device: cache maintenance (and bounce-buffer copies) for a device
    /// access after CPU accesses. Callers serialise this with [`Self::sync_for_cpu`].
    pub fn sync_for_device(&self) {
        self.device_owned.store(true, Relaxed);
        // SAFETY: the table is mapped for `dev` in `dir()` (type invariant); `dev` is the device
        // it was mapped for, still bound while the mapping exists (it is unmapped in `drop`,
        // which drivers run before unbind completes).
        unsafe {
            bindings::dma_sync_sgtable_for_device(
                self.dev.as_raw(),
                self.sgt.get(),
                self.dir().into(),
            )
        };
    }

    /// Give the pages back to the CPU after device accesses. Nothing to do for pages the
    /// device only reads: there is nothing to copy back, and a read-only page may be shared.
    pub fn sync_for_cpu(&self) {
        self.device_owned.store(false, Relaxed);
        if !self.pages.access.writes() {
            return;
        }
        // SAFETY: as in `sync_for_device`.
        unsafe {
            bindings::dma_sync_sgtable_for_cpu(self.dev.as_raw(), self.sgt.get(), self.dir().into())
        };
    }
}

impl Drop for DmaPages {
    fn drop(&mut self) {
        let sgt = self.sgt.get();
        // Pages the device owns are synced for the CPU by the unmap, so what the device wrote
        // reaches them before they are released (for `DMA_TO_DEVICE`, nothing is copied back);
        // pages the CPU owns were synced when it got them, and are not synced again.
        let attrs = if self.device_owned.load(Relaxed) {
            0
        } else {
            bindings::DMA_ATTR_SKIP_CPU_SYNC as usize
        };
        // SAFETY: the table is mapped for `dev` in `dir()` (type invariant).
        unsafe {
            bindings::dma_unmap_sg_attrs(
                self.dev.as_raw(),
                (*sgt).sgl,
                (*sgt).orig_nents as i32,
                self.dir().into(),
                attrs,
            );
            bindings::sg_free_table(sgt);
        }
    }
}

/// Helpers for KUnit tests of user memory and its DMA mappings.
///
/// User memory: anonymous mappings in the address space KUnit gives the test thread.
///
/// DMA: a faux device that does DMA, and what it sees. The device has no IOMMU and no DMA offset,
/// so a DMA address is the physical address of the memory the device accesses: the pages
/// themselves or, with `swiotlb=force`, their bounce buffers. A test plays the device by reading
/// and writing there through `memremap()`.
#[cfg(CONFIG_KUNIT = "y")]
pub(crate) mod test_support {
    use crate::{
        bindings,
        device::{Bound, Device},
        dma::DmaAddress,
        error::to_result,
        ffi::c_ulong,
        page::PAGE_SIZE,
        prelude::*,
        scatterlist::SGTable,
    };

    // `include/uapi/asm-generic/mman-common.h`.
    pub(crate) const PROT_READ: c_ulong = 0x1;
    pub(crate) const PROT_WRITE: c_ulong = 0x2;
    const MAP_PRIVATE: c_ulong = 0x02;
    const MAP_ANONYMOUS: c_ulong = 0x20;

    /// Map `npages` pages of anonymous memory with the protection `prot` into the test's address
    /// space, which KUnit creates for the test thread and tears down at the end of the test.
    pub(crate) fn map(npages: usize, prot: c_ulong) -> Result<usize> {
        // SAFETY: no precondition; it returns NULL outside a KUnit test.
        let test = unsafe { bindings::kunit_get_current_test() };
        if test.is_null() {
            return Err(EINVAL);
        }
        // SAFETY: `test` is the running test; a NULL file and these flags map anonymous memory.
        let addr = unsafe {
            bindings::kunit_vm_mmap(
                test,
                core::ptr::null_mut(),
                0,
                npages * PAGE_SIZE,
                prot,
                MAP_PRIVATE | MAP_ANONYMOUS,
                0,
            )
        };
        // `vm_mmap` returns an error as a negative address, which `kunit_vm_mmap` passes on.
        if addr == 0 || addr > usize::MAX - bindings::MAX_ERRNO as usize {
            return Err(ENOMEM);
        }
        Ok(addr)
    }

    /// Unmap `[start, start + len)` of the test's address space.
    pub(crate) fn unmap(start: usize, len: usize) -> Result {
        // SAFETY: the tests only unmap their own mappings, which nothing else uses.
        to_result(unsafe { bindings::vm_munmap(start, len) })
    }

    /// Give `dev` a 64-bit DMA mask.
    ///
    /// # Safety
    ///
    /// `dev` is a device of the caller's (a faux device, say) that no bus code sets up for DMA
    /// and that has done no DMA yet.
    pub(crate) unsafe fn enable_dma(dev: &Device<Bound>) {
        let raw = dev.as_raw();
        // SAFETY: by the caller's guarantee nothing else sets or uses the masks; `dma_mask`
        // points into the device, as bus code sets it up.
        unsafe {
            (*raw).coherent_dma_mask = u64::MAX;
            (*raw).dma_mask = &raw mut (*raw).coherent_dma_mask;
        }
    }

    /// Run `f` on the `len` bytes at DMA address `addr` as the device accesses them.
    fn with_view<R>(addr: DmaAddress, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
        // SAFETY: `addr` is the physical address of `len` bytes of RAM (see above), which
        // `memremap()` maps at its linear-map address.
        let p = unsafe { bindings::memremap(addr, len, bindings::MEMREMAP_WB as c_ulong) };
        assert!(!p.is_null());
        // SAFETY: `p` maps `len` bytes, which only the test accesses meanwhile (the device
        // "accesses" them through this view).
        let r = f(unsafe { core::slice::from_raw_parts_mut(p.cast::<u8>(), len) });
        // SAFETY: mapped above.
        unsafe { bindings::memunmap(p) };
        r
    }

    /// The device writes `byte` into every segment of `sgt`; returns how many bytes.
    pub(crate) fn device_fill(sgt: &SGTable, byte: u8) -> usize {
        sgt.iter()
            .map(|e| {
                let len = e.dma_len() as usize;
                with_view(e.dma_address(), len, |m| m.fill(byte));
                len
            })
            .sum()
    }

    /// Whether the device reads `byte` everywhere in `sgt`.
    pub(crate) fn device_sees(sgt: &SGTable, byte: u8) -> bool {
        sgt.iter().all(|e| {
            with_view(e.dma_address(), e.dma_len() as usize, |m| {
                m.iter().all(|&b| b == byte)
            })
        })
    }
}

#[macros::kunit_tests(rust_mm_user_pages)]
mod tests {
    use super::{
        test_support::{device_fill, device_sees, enable_dma, map, unmap, PROT_READ, PROT_WRITE},
        *,
    };
    use crate::{
        faux,
        page::BorrowedPage,
        uaccess::{UserPtr, UserSlice},
    };
    use core::ptr::NonNull;

    /// Fill the `len` bytes at the user address `addr` with `byte`, as `copy_to_user()` does.
    fn fill(addr: usize, len: usize, byte: u8) -> Result {
        let data = KVec::from_elem(byte, len, GFP_KERNEL)?;
        UserSlice::new(UserPtr::from_addr(addr), len)
            .writer()
            .write_slice(&data)
    }

    /// The `len` bytes at the user address `addr`, read with `copy_from_user()`.
    fn user_bytes(addr: usize, len: usize) -> Result<KVec<u8>> {
        let mut buf = KVec::from_elem(0u8, len, GFP_KERNEL)?;
        UserSlice::new(UserPtr::from_addr(addr), len)
            .reader()
            .read_slice(&mut buf)?;
        Ok(buf)
    }

    /// Page `i` of `pages`, borrowed for as long as `pages` is.
    fn page(pages: &UserPages, i: usize) -> Result<BorrowedPage<'_>> {
        let p = NonNull::new(*pages.pages.get(i).ok_or(EINVAL)?).ok_or(EINVAL)?;
        // SAFETY: `pages` holds a reference on each of its pages (type invariant) for as long as
        // it is borrowed, so the page stays valid for the lifetime of the result.
        Ok(unsafe { BorrowedPage::from_raw(p) })
    }

    /// The contents of page `i` of `pages`, read through a kernel mapping of the page.
    fn contents(pages: &UserPages, i: usize) -> Result<KVec<u8>> {
        let mut buf = KVec::from_elem(0u8, PAGE_SIZE, GFP_KERNEL)?;
        // SAFETY: `buf` has room for `PAGE_SIZE` bytes. Only the test's thread uses its address
        // space, so nothing writes the page meanwhile.
        unsafe { page(pages, i)?.read_raw(buf.as_mut_ptr(), 0, PAGE_SIZE)? };
        Ok(buf)
    }

    /// The address space KUnit gave the test thread.
    fn with_mm<R>(f: impl FnOnce(&MmWithUser) -> Result<R>) -> Result<R> {
        let task = crate::current!();
        f(task.mm().ok_or(EINVAL)?)
    }

    #[test]
    fn pages_hold_what_was_written() -> Result {
        let addr = map(4, PROT_READ | PROT_WRITE)?;
        for i in 0..4 {
            fill(addr + i * PAGE_SIZE, PAGE_SIZE, 0xa0 + i as u8)?;
        }
        with_mm(|mm| {
            let pages = UserPages::get(mm, addr, 4, Access::Read)?;
            assert_eq!(pages.len(), 4);
            assert!(!pages.is_empty());
            for i in 0..4 {
                assert!(contents(&pages, i)?.iter().all(|&b| b == 0xa0 + i as u8));
            }
            // A lookup from the middle of the range starts at the page there.
            let tail = UserPages::get(mm, addr + 2 * PAGE_SIZE, 2, Access::ReadWrite)?;
            assert_eq!(tail.len(), 2);
            assert!(contents(&tail, 0)?.iter().all(|&b| b == 0xa2));
            assert!(contents(&tail, 1)?.iter().all(|&b| b == 0xa3));
            assert!(UserPages::get(mm, addr, 0, Access::Read)?.is_empty());
            Ok(())
        })
    }

    #[test]
    fn write_access_gets_the_process_pages() -> Result {
        // Memory never touched: a write lookup faults in pages of the process's own, not the
        // shared zero page, so what the process writes afterwards is in them.
        let addr = map(2, PROT_READ | PROT_WRITE)?;
        let pages = with_mm(|mm| UserPages::get(mm, addr, 2, Access::ReadWrite))?;
        assert_eq!(pages.len(), 2);
        assert!(contents(&pages, 0)?.iter().all(|&b| b == 0));
        fill(addr + PAGE_SIZE + 100, 200, 0x5a)?;
        let second = contents(&pages, 1)?;
        assert!(second[..100].iter().all(|&b| b == 0));
        assert!(second[100..300].iter().all(|&b| b == 0x5a));
        assert!(second[300..].iter().all(|&b| b == 0));
        // And what is written into the pages, the process reads.
        let data = [0xc3u8; 64];
        // SAFETY: `data` holds 64 bytes. Only the test's thread uses the page.
        unsafe { page(&pages, 0)?.write_raw(data.as_ptr(), 8, data.len())? };
        let back = user_bytes(addr, 128)?;
        assert!(back[..8].iter().all(|&b| b == 0));
        assert!(back[8..72].iter().all(|&b| b == 0xc3));
        assert!(back[72..].iter().all(|&b| b == 0));
        Ok(())
    }

    #[test]
    fn read_only_mapping_refuses_write_access() -> Result {
        let addr = map(2, PROT_READ)?;
        with_mm(|mm| {
            assert_eq!(
                UserPages::get(mm, addr, 2, Access::ReadWrite).err(),
                Some(EFAULT)
            );
            let pages = UserPages::get(mm, addr, 2, Access::Read)?;
            assert_eq!(pages.len(), 2);
            assert!(contents(&pages, 1)?.iter().all(|&b| b == 0));
            Ok(())
        })
    }

    #[test]
    fn unmapped_pages_fail() -> Result {
        let addr = map(4, PROT_READ | PROT_WRITE)?;
        fill(addr, 4 * PAGE_SIZE, 0x11)?;
        unmap(addr + 2 * PAGE_SIZE, 2 * PAGE_SIZE)?;
        with_mm(|mm| {
            // The first two pages are found, the third is not: the lookup fails (and gives the
            // references it took back).
            for access in [Access::Read, Access::ReadWrite] {
                assert_eq!(UserPages::get(mm, addr, 4, access).err(), Some(EFAULT));
                assert_eq!(
                    UserPages::get(mm, addr + 3 * PAGE_SIZE, 1, access).err(),
                    Some(EFAULT)
                );
            }
            let head = UserPages::get(mm, addr, 2, Access::ReadWrite)?;
            assert_eq!(head.len(), 2);
            assert!(contents(&head, 1)?.iter().all(|&b| b == 0x11));
            assert_eq!(
                UserPages::get(mm, addr + 1, 1, Access::Read).err(),
                Some(EINVAL)
            );
            Ok(())
        })
    }

    /// A faux device that does DMA (see `test_support`).
    fn dma_device() -> Result<faux::Registration> {
        let reg = faux::Registration::new(c"rust_mm_user_pages", None)?;
        // SAFETY: the device is ours, new, and has done no DMA.
        unsafe { enable_dma(reg.as_ref().as_ref()) };
        Ok(reg)
    }

    /// `npages` writable pages of the test's address space filled with `byte`, and their DMA
    /// mapping for `dev`.
    fn mapped(
        dev: &Device<Bound>,
        npages: usize,
        byte: u8,
        skip_sync: bool,
    ) -> Result<(usize, DmaPages)> {
        let addr = map(npages, PROT_READ | PROT_WRITE)?;
        fill(addr, npages * PAGE_SIZE, byte)?;
        let pages = with_mm(|mm| UserPages::get(mm, addr, npages, Access::ReadWrite))?;
        Ok((addr, pages.dma_map(dev, PAGE_SIZE as u32, skip_sync)?))
    }

    #[test]
    fn dma_map_gives_the_device_every_page() -> Result {
        let reg = dma_device()?;
        let dev = reg.as_ref().as_ref();
        let (_, dma) = mapped(dev, 4, 0x3c, false)?;
        assert_eq!(dma.pages().len(), 4);
        // No segment is longer than `max_segment`, and they cover the pages.
        assert_eq!(dma.sgt().iter().count(), 4);
        assert!(dma.sgt().iter().all(|e| e.dma_len() as usize == PAGE_SIZE));
        // Mapped without `skip_cpu_sync`: the device owns them and sees what the CPU wrote.
        assert!(device_sees(dma.sgt(), 0x3c));
        Ok(())
    }

    #[test]
    fn syncs_move_data_between_cpu_and_device() -> Result {
        let reg = dma_device()?;
        let dev = reg.as_ref().as_ref();
        let (addr, dma) = mapped(dev, 2, 0, false)?;
        assert_eq!(device_fill(dma.sgt(), 0xd5), 2 * PAGE_SIZE);
        dma.sync_for_cpu();
        assert!(user_bytes(addr, 2 * PAGE_SIZE)?.iter().all(|&b| b == 0xd5));
        fill(addr, 2 * PAGE_SIZE, 0x6e)?;
        dma.sync_for_device();
        assert!(device_sees(dma.sgt(), 0x6e));
        Ok(())
    }

    #[test]
    fn unmap_syncs_only_device_owned_pages() -> Result {
        let reg = dma_device()?;
        let dev = reg.as_ref().as_ref();
        // Owned by the device when unmapped: what it wrote reaches the pages.
        let (addr, dma) = mapped(dev, 2, 0, false)?;
        device_fill(dma.sgt(), 0x99);
        drop(dma);
        assert!(user_bytes(addr, 2 * PAGE_SIZE)?.iter().all(|&b| b == 0x99));
        // Given back to the CPU, which wrote since: the unmap must not copy the device's data
        // (a bounce buffer) over what the CPU wrote.
        let (addr, dma) = mapped(dev, 2, 0, false)?;
        device_fill(dma.sgt(), 0xd5);
        dma.sync_for_cpu();
        fill(addr, 2 * PAGE_SIZE, 0x42)?;
        drop(dma);
        assert!(user_bytes(addr, 2 * PAGE_SIZE)?.iter().all(|&b| b == 0x42));
        Ok(())
    }

    #[test]
    fn sgtable_syncs_transfer_ownership() -> Result {
        let reg = dma_device()?;
        let dev = reg.as_ref().as_ref();
        // Mapped with `skip_cpu_sync`: the CPU owns the pages, and the unmap does not sync.
        let (addr, dma) = mapped(dev, 3, 0x17, true)?;
        let dir = DataDirection::Bidirectional;
        // SAFETY: the table is mapped for `dev` in `dir`; the CPU does not touch the pages until
        // the sync for the CPU.
        unsafe { dma.sgt().dma_sync_for_device(dev, dir) };
        assert!(device_sees(dma.sgt(), 0x17));
        device_fill(dma.sgt(), 0x71);
        // SAFETY: as above; the device is done.
        unsafe { dma.sgt().dma_sync_for_cpu(dev, dir) };
        assert!(user_bytes(addr, 3 * PAGE_SIZE)?.iter().all(|&b| b == 0x71));
        Ok(())
    }
}
