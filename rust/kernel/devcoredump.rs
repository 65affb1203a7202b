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
/// `CONFIG_DEV_COREDUMP` the data is freed.
pub fn dev_coredump(dev: &Device, data: VVec<u8>) {
    let (ptr, len, _cap) = data.into_raw_parts();
    // SAFETY: `ptr` is a vmalloc allocation of at least `len` bytes, whose
    // ownership passes to the core, which frees it with `vfree()`.
    unsafe { bindings::dev_coredumpv(dev.as_raw(), ptr.cast(), len, GFP_KERNEL.as_raw()) };
}
