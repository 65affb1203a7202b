// SPDX-License-Identifier: GPL-2.0

//! GEM buffer objects: shmem-backed, never mapped into the kernel.

use kernel::{drm::gem, prelude::*};

use crate::driver::{FerriteDevice, FerriteDrmDriver};

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
