// SPDX-License-Identifier: GPL-2.0

//! Per-open-file state of a Ferrite render node.

use kernel::{drm, prelude::*};

use crate::driver::FerriteDrmDriver;

/// State of one open file.
#[pin_data]
pub(crate) struct FileData {}

impl drm::file::DriverFile for FileData {
    type Driver = FerriteDrmDriver;

    fn open(_dev: &drm::Device<Self::Driver>) -> Result<Pin<KBox<Self>>> {
        KBox::try_pin_init(try_pin_init!(Self {}), GFP_KERNEL)
    }
}
