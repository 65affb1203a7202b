// SPDX-License-Identifier: GPL-2.0

//! DMA reservation objects.
//!
//! A reservation object holds the fences of the operations that use a
//! buffer, each with a usage (kernel, write, read, bookkeep), so that a new
//! user can wait for the earlier ones: this is implicit synchronisation.
//!
//! C header: [`include/linux/dma-resv.h`](srctree/include/linux/dma-resv.h)

use crate::{
    bindings,
    dma_fence::Fence,
    error::to_result,
    prelude::*,
    sync::aref::ARef,
    types::{NotThreadSafe, Opaque},
};

/// How a fence uses a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Usage {
    /// Kernel memory management (moves, clears).
    Kernel = bindings::dma_resv_usage_DMA_RESV_USAGE_KERNEL,
    /// Implicit write.
    Write = bindings::dma_resv_usage_DMA_RESV_USAGE_WRITE,
    /// Implicit read.
    Read = bindings::dma_resv_usage_DMA_RESV_USAGE_READ,
    /// Bookkeeping only: never waited for implicitly.
    Bookkeep = bindings::dma_resv_usage_DMA_RESV_USAGE_BOOKKEEP,
}

impl Usage {
    /// The usage of a job that reads, or also writes, the buffer.
    pub fn rw(write: bool) -> Self {
        if write {
            Usage::Write
        } else {
            Usage::Read
        }
    }

    /// The fences a new user must wait for: a writer waits for readers and
    /// writers, a reader only for writers.
    pub fn wait_for(write: bool) -> Self {
        if write {
            Usage::Read
        } else {
            Usage::Write
        }
    }
}

/// A reservation object, borrowed from its owner (usually a GEM object).
#[repr(transparent)]
pub struct Resv(Opaque<bindings::dma_resv>);

// SAFETY: reservation objects are shared between threads; their state is
// protected by their ww_mutex and RCU.
unsafe impl Send for Resv {}
// SAFETY: see above.
unsafe impl Sync for Resv {}

impl Resv {
    /// Borrow a reservation object.
    ///
    /// # Safety
    ///
    /// `ptr` must point to an initialised `struct dma_resv` valid for `'a`.
    pub unsafe fn from_raw<'a>(ptr: *mut bindings::dma_resv) -> &'a Self {
        // SAFETY: transparent wrapper; validity is the caller's promise.
        unsafe { &*ptr.cast() }
    }

    /// The raw pointer.
    pub fn as_raw(&self) -> *mut bindings::dma_resv {
        self.0.get()
    }

    /// Lock the object, interruptibly (without a ww acquire context, so the
    /// caller must not hold another reservation lock).
    pub fn lock(&self) -> Result<ResvGuard<'_>> {
        // SAFETY: the object is valid; a null context locks it on its own.
        to_result(unsafe {
            bindings::dma_resv_lock_interruptible(self.as_raw(), core::ptr::null_mut())
        })?;
        Ok(ResvGuard {
            resv: self,
            _not_send: NotThreadSafe,
        })
    }

    /// References to the fences a user of the given `usage` must wait for.
    pub fn fences(&self, usage: Usage) -> Result<KVec<ARef<Fence>>> {
        let mut count: u32 = 0;
        let mut array: *mut *mut bindings::dma_fence = core::ptr::null_mut();
        // SAFETY: the object is valid; the call takes a reference to each
        // fence and returns them in a kmalloc'ed array.
        to_result(unsafe {
            bindings::dma_resv_get_fences(self.as_raw(), usage as u32, &mut count, &mut array)
        })?;
        let mut out = KVec::new();
        let mut result = Ok(());
        for i in 0..count as usize {
            // SAFETY: `array` holds `count` fence pointers, each with a
            // reference we now own.
            let fence = unsafe { Fence::from_raw_owned(*array.add(i)) };
            if let Some(f) = fence {
                if result.is_ok() {
                    result = out.push(f, GFP_KERNEL).map_err(Error::from);
                }
            }
        }
        // SAFETY: the array was allocated by `dma_resv_get_fences()`.
        unsafe { bindings::kfree(array.cast()) };
        result.map(|()| out)
    }
}

/// A locked reservation object.
pub struct ResvGuard<'a> {
    resv: &'a Resv,
    _not_send: NotThreadSafe,
}

impl ResvGuard<'_> {
    /// Make room for `num` more fences.
    pub fn reserve_fences(&mut self, num: u32) -> Result {
        // SAFETY: we hold the lock.
        to_result(unsafe { bindings::dma_resv_reserve_fences(self.resv.as_raw(), num) })
    }

    /// Add a fence, in a slot reserved by [`Self::reserve_fences`].
    pub fn add_fence(&mut self, fence: &Fence, usage: Usage) {
        // SAFETY: we hold the lock; the caller reserved a slot (the C code
        // warns otherwise); the object takes its own fence reference.
        unsafe { bindings::dma_resv_add_fence(self.resv.as_raw(), fence.as_raw(), usage as u32) };
    }
}

impl Drop for ResvGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: we hold the lock.
        unsafe { bindings::dma_resv_unlock(self.resv.as_raw()) };
    }
}
