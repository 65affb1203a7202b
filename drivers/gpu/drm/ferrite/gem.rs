// SPDX-License-Identifier: GPL-2.0

//! GEM buffer objects: shmem-backed, allocated on first use, never mapped
//! into the kernel's address space by the driver.

use kernel::{
    drm::gem::{self, shmem, BaseObject, IntoGEMObject},
    prelude::*,
    sync::{aref::ARef, Arc},
};

use crate::{
    driver::{FerriteDevice, FerriteDrmDriver},
    file::File,
    gpu::Gpu,
};

/// Driver data of a Ferrite buffer object.
#[pin_data(PinnedDrop)]
pub(crate) struct BoData {
    /// Name in debugfs.
    pub(crate) id: u64,
    /// The device's BO list, which lists this one.
    gpu: Option<Arc<Gpu>>,
}

impl gem::DriverObject for BoData {
    type Driver = FerriteDrmDriver;
    type Args = Option<Arc<Gpu>>;

    fn new(_dev: &FerriteDevice, size: usize, gpu: Self::Args) -> impl PinInit<Self, Error> {
        let id = gpu.as_ref().map_or(0, |g| g.new_id());
        if let Some(g) = gpu.as_ref() {
            // Best effort: a BO missing from debugfs is no error.
            let _ = g.bos.lock().push((id, size as u64), GFP_KERNEL);
        }
        try_pin_init!(Self { id, gpu })
    }
}

#[pinned_drop]
impl PinnedDrop for BoData {
    fn drop(self: Pin<&mut Self>) {
        if let Some(g) = self.gpu.as_ref() {
            g.bos.lock().retain(|(id, _)| *id != self.id);
        }
    }
}

/// A Ferrite buffer object.
pub(crate) type Bo = gem::shmem::Object<BoData>;

/// Largest buffer object userspace may create.
pub(crate) const MAX_BO_SIZE: u64 = 1 << 36;

/// Create a buffer object of at least `size` bytes (rounded up to pages).
pub(crate) fn create(dev: &FerriteDevice, gpu: Option<&Arc<Gpu>>, size: u64) -> Result<ARef<Bo>> {
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
        gpu.cloned(),
    )
}

/// Whether `bo` was imported from another device's dma-buf. The shmem
/// abstraction of Linux 7.3 treats such objects as if the driver owned
/// their pages (its DMA mapping would free the exporter's table at unbind),
/// so until import is done properly they are refused where the driver
/// would map them.
pub(crate) fn is_imported(bo: &Bo) -> bool {
    // SAFETY: the object is valid; `import_attach` is set when the object
    // is created and never changes.
    unsafe { !(*bo.as_raw()).import_attach.is_null() }
}

/// Look up a handle of `file`, refusing imported objects.
pub(crate) fn lookup_own(file: &File, handle: u32) -> Result<ARef<Bo>> {
    let bo = lookup(file, handle)?;
    if is_imported(&bo) {
        return Err(EOPNOTSUPP);
    }
    Ok(bo)
}

/// Look up a handle of `file`.
pub(crate) fn lookup(file: &File, handle: u32) -> Result<ARef<Bo>> {
    Bo::lookup_handle(file, handle)
}
