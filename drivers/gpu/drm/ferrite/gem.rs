// SPDX-License-Identifier: GPL-2.0

//! GEM buffer objects: shmem-backed, allocated on first use, never mapped
//! into the kernel's address space by the driver.

use kernel::{
    device::{Bound, Device},
    drm::gem::{self, shmem, BaseObject},
    prelude::*,
    scatterlist::SGTable,
    sizes::SZ_4K,
    sync::{
        aref::ARef,
        atomic::{Atomic, Relaxed},
        Arc,
    },
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
    /// Whether the driver pinned and DMA-mapped the pages (first use).
    pinned: Atomic<bool>,
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
        try_pin_init!(Self {
            id,
            gpu,
            pinned: Atomic::new(false),
        })
    }

    fn import_args(dev: &FerriteDevice, _size: usize, sgt: &SGTable) -> Result<Self::Args> {
        check_import(dev, sgt)?;
        // Imported objects are not listed in debugfs: their pages are the
        // exporter's.
        Ok(None)
    }
}

/// Whether the GPU can map every piece of an imported buffer, which its
/// exporter mapped for it as `sgt`: 4 KiB-aligned pieces (the MMU's page
/// size), each within the device's address width and maximum segment size.
/// A buffer the device cannot use is refused before anything is mapped:
/// `EINVAL` for misaligned pieces, `ERANGE` for pieces out of reach.
fn check_import(dev: &FerriteDevice, sgt: &SGTable) -> Result {
    let page = SZ_4K as u64;
    let last = match dev.addr_bits {
        64.. => u64::MAX,
        bits => (1u64 << bits) - 1,
    };
    for seg in sgt.iter() {
        let (bus, len) = (seg.dma_address(), seg.dma_len());
        if bus % page != 0 || len % page != 0 || len == 0 {
            return Err(EINVAL);
        }
        if len > u64::from(dev.max_segment) || bus.checked_add(len - 1).is_none_or(|e| e > last) {
            return Err(ERANGE);
        }
    }
    Ok(())
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

/// The BO's DMA-mapped pages, pinned on first use. Pinning must leave the
/// system memory to work with: without swap, a GPU that pins most of
/// memory makes the OOM killer pick unrelated processes. So a first use
/// that would leave less than an eighth of the available memory (at least
/// 64 MiB) free fails with `ENOMEM` before allocating anything.
pub(crate) fn pinned_sgt<'a>(bo: &'a Bo, dev: &'a Device<Bound>) -> Result<&'a SGTable> {
    if !bo.is_imported() && !bo.pinned.load(Relaxed) {
        // SAFETY: reads the memory counters, callable from any context.
        let avail = unsafe { kernel::bindings::si_mem_available() }.max(0) as u64
            * kernel::page::PAGE_SIZE as u64;
        let keep = (avail / 8).max(64 << 20);
        if (bo.size() as u64).saturating_add(keep) > avail {
            return Err(ENOMEM);
        }
    }
    let sgt = bo.sg_table(dev)?;
    bo.pinned.store(true, Relaxed);
    Ok(sgt)
}

/// Look up a handle of `file`.
pub(crate) fn lookup(file: &File, handle: u32) -> Result<ARef<Bo>> {
    Bo::lookup_handle(file, handle)
}
