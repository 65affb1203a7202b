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
    /// `max_segment` (nor than `dma_max_mapping_size()`), in the direction their [`Access`]
    /// implies. With `skip_cpu_sync`, no cache maintenance is done now: the caller syncs before
    /// the device first uses the table (`DMA_ATTR_SKIP_CPU_SYNC`). Fails as `dma_map_sgtable()`
    /// does: `ENOMEM` when the DMA layer lacks the resources (memory, bounce buffers, address
    /// space).
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
        Ok(DmaPages {
            dev: dev.into(),
            sgt,
            device_owned: Atomic::new(!skip_cpu_sync),
            pages: self,
        })
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
