// SPDX-License-Identifier: GPL-2.0 OR MIT

//! DRM sync objects.
//!
//! A sync object is a userspace handle to a fence (binary) or to a timeline
//! of fence points. Drivers look them up in a file, wait for their fences
//! and install the fences of the jobs they run.
//!
//! C header: [`include/drm/drm_syncobj.h`](srctree/include/drm/drm_syncobj.h)

use crate::{
    bindings,
    dma_fence::Fence,
    drm::{self, file::DriverFile},
    error::to_result,
    prelude::*,
    sync::aref::ARef,
};
use core::ptr::NonNull;

/// A reference to a DRM sync object.
///
/// # Invariants
///
/// The pointer is a valid sync object on which we own one reference.
pub struct SyncObj(NonNull<bindings::drm_syncobj>);

// SAFETY: sync objects are reference counted and internally locked.
unsafe impl Send for SyncObj {}
// SAFETY: see above.
unsafe impl Sync for SyncObj {}

impl SyncObj {
    /// Look up the sync object `handle` of `file`; `ENOENT` if none.
    pub fn lookup<T: DriverFile>(file: &drm::File<T>, handle: u32) -> Result<Self> {
        // SAFETY: the file is valid; the call returns a new reference or null.
        let ptr = unsafe { bindings::drm_syncobj_find(file.as_raw(), handle) };
        // INVARIANT: `drm_syncobj_find()` took a reference for us.
        NonNull::new(ptr).map(Self).ok_or(ENOENT)
    }

    fn as_raw(&self) -> *mut bindings::drm_syncobj {
        self.0.as_ptr()
    }

    /// The current fence of a binary sync object (the last point of a
    /// timeline), if any.
    pub fn fence(&self) -> Option<ARef<Fence>> {
        // SAFETY: the sync object is valid; the call returns a new reference.
        unsafe { Fence::from_raw_owned(bindings::drm_syncobj_fence_get(self.as_raw())) }
    }

    /// Replace the fence of a binary sync object.
    pub fn replace_fence(&self, fence: Option<&Fence>) {
        let f = fence.map_or(core::ptr::null_mut(), Fence::as_raw);
        // SAFETY: both objects are valid; the sync object takes its own
        // fence reference.
        unsafe { bindings::drm_syncobj_replace_fence(self.as_raw(), f) };
    }

    /// Add `fence` as timeline point `point`, using the preallocated `chain`.
    pub fn add_point(&self, chain: ChainNode, fence: &Fence, point: u64) {
        let node = core::mem::ManuallyDrop::new(chain);
        // SAFETY: the objects are valid; the sync object takes ownership of
        // the chain node and its own fence reference.
        unsafe {
            bindings::drm_syncobj_add_point(self.as_raw(), node.0.as_ptr(), fence.as_raw(), point)
        };
    }
}

impl Drop for SyncObj {
    fn drop(&mut self) {
        // SAFETY: by the type invariants we own one reference.
        unsafe { bindings::drm_syncobj_put(self.as_raw()) };
    }
}

/// The fence of sync object `handle` of `file` at timeline point `point`
/// (0 for a binary sync object): `ENOENT` if `handle` names no sync object,
/// `EINVAL` if it has no fence at `point` (yet). A point already signalled
/// and gone from the timeline gives a signalled fence.
pub fn find_fence<T: DriverFile>(
    file: &drm::File<T>,
    handle: u32,
    point: u64,
) -> Result<ARef<Fence>> {
    let mut fence: *mut bindings::dma_fence = core::ptr::null_mut();
    // SAFETY: the file is valid; on success `fence` holds a new reference.
    to_result(unsafe {
        bindings::drm_syncobj_find_fence(file.as_raw(), handle, point, 0, &mut fence)
    })?;
    // SAFETY: we own the reference returned above.
    unsafe { Fence::from_raw_owned(fence) }.ok_or(ENOENT)
}

/// A preallocated node for a timeline point.
///
/// # Invariants
///
/// The pointer is an unused, kmalloc'ed `struct dma_fence_chain`.
pub struct ChainNode(NonNull<bindings::dma_fence_chain>);

// SAFETY: an unused allocation may be sent to and freed on any thread.
unsafe impl Send for ChainNode {}

impl ChainNode {
    /// Allocate a node.
    pub fn new() -> Result<Self> {
        // SAFETY: plain allocation.
        let ptr = unsafe { bindings::dma_fence_chain_alloc() };
        NonNull::new(ptr).map(Self).ok_or(ENOMEM)
    }
}

impl Drop for ChainNode {
    fn drop(&mut self) {
        // SAFETY: the node was never used.
        unsafe { bindings::dma_fence_chain_free(self.0.as_ptr()) };
    }
}
