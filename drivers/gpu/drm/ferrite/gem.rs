// SPDX-License-Identifier: GPL-2.0

//! GEM buffer objects: shmem-backed, allocated on first use, never mapped
//! into the kernel's address space by the driver.

use kernel::{
    drm::gem::{self, shmem, BaseObject},
    prelude::*,
    sync::aref::ARef,
};

use crate::{
    driver::{FerriteDevice, FerriteDrmDriver},
    file::File,
};

/// Driver data of a Ferrite buffer object.
#[pin_data]
pub(crate) struct BoData {}

impl gem::DriverObject for BoData {
    type Driver = FerriteDrmDriver;
    type Args = ();

    fn new(_dev: &FerriteDevice, _size: usize, _args: ()) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {})
    }
}

/// A Ferrite buffer object.
pub(crate) type Bo = gem::shmem::Object<BoData>;

/// Largest buffer object userspace may create.
pub(crate) const MAX_BO_SIZE: u64 = 1 << 36;

/// Create a buffer object of at least `size` bytes (rounded up to pages).
pub(crate) fn create(dev: &FerriteDevice, size: u64) -> Result<ARef<Bo>> {
    if size == 0 || size > MAX_BO_SIZE {
        return Err(EINVAL);
    }
    let size = usize::try_from(size)
        .ok()
        .and_then(|s| s.checked_next_multiple_of(kernel::page::PAGE_SIZE))
        .ok_or(EINVAL)?;
    Bo::new(
        dev,
        size,
        shmem::ObjectConfig {
            map_wc: false,
            parent_resv_obj: None,
        },
        (),
    )
}

/// Look up a handle of `file`.
pub(crate) fn lookup(file: &File, handle: u32) -> Result<ARef<Bo>> {
    Bo::lookup_handle(file, handle)
}
