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

#[macros::kunit_tests(rust_devcoredump)]
mod tests {
    use super::*;
    use crate::{device::Bound, faux, page::PAGE_SIZE};

    /// Whether `dev` has a coredump: the core links it from the device's sysfs directory as
    /// `devcoredump` while it exists.
    fn has_dump(dev: &Device) -> bool {
        // SAFETY: `dev` is a registered device, so its sysfs directory exists.
        let node = unsafe {
            bindings::kernfs_find_and_get_ns(
                (*dev.as_raw()).kobj.sd,
                c"devcoredump".as_char_ptr(),
                core::ptr::null(),
            )
        };
        if node.is_null() {
            return false;
        }
        // SAFETY: the lookup returned a reference of ours.
        unsafe { bindings::kernfs_put(node) };
        true
    }

    /// Discard the coredump of `dev`, if any, as userspace does by writing to its `data`.
    fn discard(dev: &Device) {
        // SAFETY: `dev` is a valid device.
        unsafe { bindings::dev_coredump_put(dev.as_raw()) };
    }

    #[test]
    fn a_dump_is_kept_until_discarded() -> Result {
        let reg = faux::Registration::new(c"rust_devcoredump", None)?;
        let dev: &Device<Bound> = reg.as_ref().as_ref();
        assert!(!has_dump(dev));
        let mut data = VVec::with_capacity(3 * PAGE_SIZE, GFP_KERNEL)?;
        for i in 0..3 * PAGE_SIZE {
            data.push(i as u8, GFP_KERNEL)?;
        }
        dev_coredump(dev, data);
        assert!(has_dump(dev));
        // A second dump while the first is kept is dropped.
        dev_coredump(dev, VVec::from_elem(1u8, 16, GFP_KERNEL)?);
        assert!(has_dump(dev));
        discard(dev);
        assert!(!has_dump(dev));
        Ok(())
    }

    #[test]
    fn empty_data_makes_no_dump() -> Result {
        let reg = faux::Registration::new(c"rust_devcoredump", None)?;
        let dev: &Device<Bound> = reg.as_ref().as_ref();
        // No allocation behind it: the pointer is dangling.
        dev_coredump(dev, VVec::new());
        assert!(!has_dump(dev));
        // An allocation, but nothing in it.
        dev_coredump(dev, VVec::with_capacity(PAGE_SIZE, GFP_KERNEL)?);
        assert!(!has_dump(dev));
        Ok(())
    }
}
