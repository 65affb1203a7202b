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
    sync::aref::ARef,
    types::Opaque,
};

/// References to the pages of a page-aligned user range, in order.
///
/// # Invariants
///
/// Every entry of `pages` is a page this object holds one reference on.
pub struct UserPages {
    pages: KVVec<*mut bindings::page>,
}

// SAFETY: the page references may be dropped from any thread.
unsafe impl Send for UserPages {}
// SAFETY: `UserPages` gives out no interior mutability.
unsafe impl Sync for UserPages {}

impl UserPages {
    /// Reference the `npages` pages from `start` (page aligned) of `mm`, faulting them in;
    /// `write` asks for writable pages (breaking copy-on-write). Fails with `EFAULT` if a page
    /// is not mapped, or not writable when `write` is set.
    pub fn get(mm: &MmWithUser, start: usize, npages: usize, write: bool) -> Result<Self> {
        if start % PAGE_SIZE != 0 {
            return Err(EINVAL);
        }
        // References taken so far are given back by `drop` if a later call fails.
        let mut this = Self {
            pages: KVVec::with_capacity(npages, GFP_KERNEL)?,
        };
        let flags = if write { bindings::FOLL_WRITE } else { 0 };
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
                    addr as _,
                    n as _,
                    flags as _,
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
    /// `max_segment`. With `skip_cpu_sync`, no cache maintenance is done now: the caller syncs
    /// before the device first uses the table (`DMA_ATTR_SKIP_CPU_SYNC`).
    pub fn dma_map(
        self,
        dev: &Device<Bound>,
        max_segment: u32,
        dir: DataDirection,
        skip_cpu_sync: bool,
    ) -> Result<DmaPages> {
        let sgt = KBox::new(Opaque::<bindings::sg_table>::zeroed(), GFP_KERNEL)?;
        let max_segment = max_segment.max(PAGE_SIZE as u32) & !(PAGE_SIZE as u32 - 1);
        let n = u32::try_from(self.pages.len()).map_err(|_| EINVAL)?;
        // SAFETY: `sgt` is a valid, zeroed table; `pages` holds `n` referenced pages.
        to_result(unsafe {
            bindings::sg_alloc_table_from_pages_segment(
                sgt.get(),
                self.pages.as_ptr().cast_mut(),
                n,
                0,
                (n as usize * PAGE_SIZE) as _,
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
        let r =
            unsafe { bindings::dma_map_sgtable(dev.as_raw(), sgt.get(), dir.into(), attrs as _) };
        if r != 0 {
            // SAFETY: the table was allocated above and is not mapped.
            unsafe { bindings::sg_free_table(sgt.get()) };
            return Err(Error::from_errno(r));
        }
        Ok(DmaPages {
            dev: dev.into(),
            sgt,
            dir,
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
                self.pages.len() as _,
            )
        };
    }
}

/// [`UserPages`] mapped for a device.
///
/// # Invariants
///
/// `sgt` is a table of `pages`, mapped for `dev` in direction `dir`, until `drop`.
pub struct DmaPages {
    dev: ARef<Device>,
    sgt: KBox<Opaque<bindings::sg_table>>,
    dir: DataDirection,
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

    /// Give the pages to the device: cache maintenance (and bounce-buffer copies) for a device
    /// access after CPU accesses.
    pub fn sync_for_device(&self) {
        // SAFETY: the table is mapped for `dev` in `dir` (type invariant); `dev` is the device
        // it was mapped for, still bound while the mapping exists (it is unmapped in `drop`,
        // which drivers run before unbind completes).
        unsafe {
            bindings::dma_sync_sgtable_for_device(
                self.dev.as_raw(),
                self.sgt.get(),
                self.dir.into(),
            )
        };
    }

    /// Give the pages back to the CPU after device accesses.
    pub fn sync_for_cpu(&self) {
        // SAFETY: as in `sync_for_device`.
        unsafe {
            bindings::dma_sync_sgtable_for_cpu(self.dev.as_raw(), self.sgt.get(), self.dir.into())
        };
    }
}

impl Drop for DmaPages {
    fn drop(&mut self) {
        let sgt = self.sgt.get();
        // SAFETY: the table is mapped for `dev` in `dir` (type invariant); unmapping syncs it for
        // the CPU, so what the device wrote reaches the pages before they are released.
        unsafe {
            bindings::dma_unmap_sg_attrs(
                self.dev.as_raw(),
                (*sgt).sgl,
                (*sgt).orig_nents as _,
                self.dir.into(),
                0,
            );
            bindings::sg_free_table(sgt);
        }
    }
}
