// SPDX-License-Identifier: GPL-2.0

//! Device coredumps.
//!
//! A driver that detects a hang or a fatal fault can hand a snapshot of
//! the device state to userspace, which reads it from
//! `/sys/class/devcoredump/devcd<N>/data` and discards it by writing to
//! that file (the core discards it after a timeout otherwise).
//!
//! C header: [`include/linux/devcoredump.h`](srctree/include/linux/devcoredump.h)

use crate::{bindings, device::Device, prelude::*};

/// Hand `data` to userspace as a coredump of `dev`.
///
/// Only the first dump of a device is kept until userspace reads or
/// discards it; later ones are dropped meanwhile. Without
/// `CONFIG_DEV_COREDUMP` the data is freed. An empty `data` makes no dump
/// (its pointer is dangling, not an allocation the core could `vfree()`).
pub fn dev_coredump(dev: &Device, data: VVec<u8>) {
    if data.capacity() == 0 || data.is_empty() {
        return;
    }
    let (ptr, len, _cap) = data.into_raw_parts();
    // SAFETY: `data` had capacity, so `ptr` is a vmalloc allocation (of at
    // least `len` bytes, `len > 0`), whose ownership passes to the core,
    // which frees it with `vfree()`.
    unsafe { bindings::dev_coredumpv(dev.as_raw(), ptr.cast(), len, GFP_KERNEL.as_raw()) };
}
