// SPDX-License-Identifier: GPL-2.0

//! GEM buffer objects: shmem-backed, allocated on first use, never mapped
//! into the kernel's address space by the driver; their creation flags and
//! labels, and the device's list of them (debugfs).

use core::fmt;

use kernel::{
    bindings,
    device::{
        Bound,
        Device, //
    },
    drm::gem::{
        self,
        shmem,
        BaseObject,
        IntoGEMObject, //
    },
    new_mutex,
    prelude::*,
    scatterlist::SGTable,
    sync::{
        aref::ARef,
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc,
        Mutex, //
    },
    uapi, //
};

use crate::{
    driver::{
        FerriteDevice,
        FerriteDrmDriver,
        GPU_PAGE_SIZE, //
    },
    file::File, //
};

/// The buffer objects of a device, for debugfs, and the ids of its BOs and
/// VMs. Shared by the device ([`crate::gpu::Gpu`]) and its DRM device's
/// data, through which imported objects, which the DRM core creates, reach
/// it.
#[pin_data]
pub(crate) struct BoList {
    #[pin]
    list: Mutex<KVec<Arc<BoMeta>>>,
    next_id: Atomic<u64>,
}

impl BoList {
    pub(crate) fn new() -> Result<Arc<Self>> {
        Arc::pin_init(
            try_pin_init!(Self {
                list <- new_mutex!(KVec::new()),
                next_id: Atomic::new(1),
            }),
            GFP_KERNEL,
        )
    }

    /// A new id for a VM or BO (debugfs names).
    pub(crate) fn new_id(&self) -> u64 {
        self.next_id.fetch_add(1, Relaxed)
    }

    /// Run `f` on every listed BO, under the list's lock.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&BoMeta)) {
        for m in self.list.lock().iter() {
            f(m);
        }
    }
}

/// What the driver shows of a BO (debugfs, coredumps), shared by the BO,
/// its device's list and its mappings.
#[pin_data]
pub(crate) struct BoMeta {
    /// Name in debugfs.
    pub(crate) id: u64,
    pub(crate) size: u64,
    /// DRM_FERRITE_GEM_CREATE_* flags.
    pub(crate) flags: u32,
    pub(crate) imported: bool,
    /// BO_SET_LABEL's label, without its NUL. Nothing allocates or waits
    /// under the lock (it is taken under a VM's lock, by the mapping
    /// listings of debugfs and coredumps).
    #[pin]
    label: Mutex<Option<Arc<KVec<u8>>>>,
}

impl BoMeta {
    /// Replace the label (`None`: no label).
    pub(crate) fn set_label(&self, label: Option<Arc<KVec<u8>>>) {
        let old = core::mem::replace(&mut *self.label.lock(), label);
        // Freed outside the lock.
        drop(old);
    }

    /// The label, if the BO has one.
    pub(crate) fn label(&self) -> Option<Arc<KVec<u8>>> {
        self.label.lock().clone()
    }

    /// Run `f` on the label (empty: none), under its lock.
    pub(crate) fn with_label<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        f(self.label.lock().as_deref().map(|l| &l[..]).unwrap_or(&[]))
    }
}

/// A label as debugfs and coredumps show it: `"..."`, with what is not
/// printable UTF-8 escaped (`\n`, `\u{..}`, `\xNN` for bytes that are not
/// UTF-8), so that a label never breaks a line or a terminal.
pub(crate) struct LabelFmt<'a>(pub(crate) &'a [u8]);

impl fmt::Display for LabelFmt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for chunk in self.0.utf8_chunks() {
            write!(f, "{}", chunk.valid().escape_debug())?;
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        f.write_str("\"")
    }
}

/// How a BO comes to be: the arguments of [`BoData`].
pub(crate) enum BoArgs {
    /// The driver's own object (a VM's reservation object): not listed.
    Internal,
    /// GEM_CREATE with these flags, private to the VM of this id if it
    /// is not zero (DRM_FERRITE_GEM_CREATE_VM_PRIVATE).
    User(u32, u64),
    /// A dma-buf import.
    Imported,
}

/// Driver data of a Ferrite buffer object.
#[pin_data(PinnedDrop)]
pub(crate) struct BoData {
    pub(crate) meta: Arc<BoMeta>,
    /// The device's BO list, which lists this one (`None`: not listed).
    list: Option<Arc<BoList>>,
    /// Whether the driver pinned and DMA-mapped the pages (first use).
    pinned: Atomic<bool>,
    /// The id of the VM whose reservation object the BO shares
    /// (DRM_FERRITE_GEM_CREATE_VM_PRIVATE), zero if none: the only VM it
    /// may be bound into, and it cannot be exported.
    pub(crate) private_vm: u64,
}

impl BoData {
    fn meta(list: &BoList, size: usize, args: &BoArgs, listed: bool) -> Result<Arc<BoMeta>> {
        let (flags, imported) = match args {
            BoArgs::User(f, _) => (*f, false),
            BoArgs::Internal => (0, false),
            BoArgs::Imported => (0, true),
        };
        let meta = Arc::pin_init(
            try_pin_init!(BoMeta {
                id: if listed { list.new_id() } else { 0 },
                size: size as u64,
                flags,
                imported,
                label <- new_mutex!(None),
            }),
            GFP_KERNEL,
        )?;
        if listed {
            // Best effort: a BO missing from debugfs is no error.
            let _ = list.list.lock().push(meta.clone(), GFP_KERNEL);
        }
        Ok(meta)
    }
}

impl gem::DriverObject for BoData {
    type Driver = FerriteDrmDriver;
    type Args = BoArgs;

    fn new(dev: &FerriteDevice, size: usize, args: Self::Args) -> impl PinInit<Self, Error> {
        let list = dev.bos.clone();
        let listed = !matches!(args, BoArgs::Internal);
        let private_vm = match args {
            BoArgs::User(_, vm) => vm,
            _ => 0,
        };
        // The list is changed inside the initializer, which runs only once
        // the object's memory exists: `drop` undoes it.
        try_pin_init!(Self {
            meta: Self::meta(&list, size, &args, listed)?,
            list: listed.then_some(list),
            pinned: Atomic::new(false),
            private_vm,
        })
    }

    /// A VM-private BO shares its VM's reservation object: exporting it
    /// would let another device lock it and add fences to it.
    fn may_export(bo: &Bo) -> Result {
        if bo.private_vm != 0 {
            pr_debug!(
                "ferrite: PRIME export: BO {} is private to VM {}\n",
                bo.meta.id,
                bo.private_vm
            );
            return Err(EINVAL);
        }
        Ok(())
    }

    fn import_args(dev: &FerriteDevice, _size: usize, sgt: &SGTable) -> Result<Self::Args> {
        check_import(dev, sgt)?;
        Ok(BoArgs::Imported)
    }
}

/// Whether the GPU can map every piece of an imported buffer, which its
/// exporter mapped for it as `sgt`: pieces aligned to the GPU page (the
/// MMU's granule, which is all the page tables need, whatever the CPU page
/// size), each within the device's address width and maximum segment size,
/// none crossing its segment boundary. A buffer the device cannot use is
/// refused before anything is mapped: `EINVAL` for misaligned pieces,
/// `ERANGE` for pieces out of reach, too long or crossing the boundary.
fn check_import(dev: &FerriteDevice, sgt: &SGTable) -> Result {
    let page = GPU_PAGE_SIZE as u64;
    let last = match dev.addr_bits {
        64.. => u64::MAX,
        bits => (1u64 << bits) - 1,
    };
    for seg in sgt.iter() {
        let (bus, len) = (seg.dma_address(), seg.dma_len());
        if bus % page != 0 || len % page != 0 || len == 0 {
            pr_debug!(
                "ferrite: PRIME import: piece {:#x}+{:#x} empty or not GPU-page aligned\n",
                bus,
                len
            );
            return Err(EINVAL);
        }
        if len > u64::from(dev.max_segment) || bus.checked_add(len - 1).is_none_or(|e| e > last) {
            pr_debug!(
                "ferrite: PRIME import: piece {:#x}+{:#x} out of the device's reach\n",
                bus,
                len
            );
            return Err(ERANGE);
        }
        // In reach, so `bus + len - 1` does not overflow.
        if (bus ^ (bus + (len - 1))) & !dev.seg_boundary != 0 {
            pr_debug!(
                "ferrite: PRIME import: piece {:#x}+{:#x} crosses the DMA segment boundary (mask {:#x})\n",
                bus,
                len,
                dev.seg_boundary
            );
            return Err(ERANGE);
        }
    }
    Ok(())
}

#[pinned_drop]
impl PinnedDrop for BoData {
    fn drop(self: Pin<&mut Self>) {
        if let Some(l) = self.list.as_ref() {
            l.list.lock().retain(|m| !Arc::ptr_eq(m, &self.meta));
        }
    }
}

/// A Ferrite buffer object.
pub(crate) type Bo = gem::shmem::Object<BoData>;

/// The reservation object of `bo` (its own, its VM's for a VM-private BO,
/// or an imported buffer's).
pub(crate) fn resv_of(bo: &Bo) -> &kernel::dma_resv::Resv {
    // SAFETY: a GEM object's `resv` points to its reservation object,
    // valid as long as the object.
    unsafe { kernel::dma_resv::Resv::from_raw((*bo.as_raw()).resv) }
}

/// Largest buffer object userspace may create.
pub(crate) const MAX_BO_SIZE: u64 = 1 << 36;

/// Create a buffer object of at least `size` bytes, rounded up to CPU
/// pages (shmem allocates, and mmap() and VM_BIND work, in whole CPU pages;
/// GEM_CREATE and BO_QUERY_INFO report the rounded size), sharing the
/// reservation object of `resv_of` if given (a VM's, for a VM-private BO).
pub(crate) fn create(
    dev: &FerriteDevice,
    args: BoArgs,
    size: u64,
    resv_of: Option<&Bo>,
) -> Result<ARef<Bo>> {
    if size == 0 || size > MAX_BO_SIZE {
        return Err(EINVAL);
    }
    let size = usize::try_from(size)
        .ok()
        .and_then(|s| s.checked_next_multiple_of(kernel::page::PAGE_SIZE))
        .ok_or(EINVAL)?;
    let no_mmap =
        matches!(args, BoArgs::User(f, _) if f & uapi::DRM_FERRITE_GEM_CREATE_NO_MMAP != 0);
    let bo = Bo::new(
        dev,
        size,
        shmem::ObjectConfig {
            map_wc: false,
            parent_resv_obj: resv_of,
        },
        args,
    )?;
    if no_mmap {
        // The shmem helper gave the object a fake offset: without it, no
        // mmap() of the DRM file reaches the object.
        // SAFETY: the object is new and has no handle yet: nothing maps
        // it or looks its offset up.
        unsafe { bindings::drm_gem_free_mmap_offset(bo.as_raw()) };
    }
    Ok(bo)
}

/// The bytes of BOs that may be pinned now (first uses): the kernel's
/// estimate of available memory less what pinning must leave free, an
/// eighth of it and at least 64 MiB (DEV_QUERY_MEMORY's budget).
pub(crate) fn pin_budget() -> u64 {
    // SAFETY: reads the memory counters, callable from any context.
    let pages = unsafe { bindings::si_mem_available() }.max(0) as u64;
    let avail = pages * kernel::page::PAGE_SIZE as u64;
    let keep = (avail / 8).max(64 << 20);
    avail.saturating_sub(keep)
}

/// The BO's DMA-mapped pages, pinned on first use; an imported BO's are
/// its dma-buf attachment's, mapped at import. Either mapping belongs to
/// the device's binding: the shmem helper unmaps it at unbind, even while
/// a file still holds the BO (whose later ioctls fail with `ENODEV` before
/// they get here), and not again when the BO is freed.
///
/// Pinning must leave the system memory to work with: without swap, a GPU
/// that pins most of memory makes the OOM killer pick unrelated processes.
/// So a first use that would leave less than an eighth of the available
/// memory (at least 64 MiB) free fails with `ENOMEM` before allocating
/// anything.
pub(crate) fn pinned_sgt<'a>(bo: &'a Bo, dev: &'a Device<Bound>) -> Result<&'a SGTable> {
    if !bo.is_imported() && !bo.pinned.load(Relaxed) && bo.size() as u64 > pin_budget() {
        return Err(ENOMEM);
    }
    let sgt = bo.sg_table(dev)?;
    bo.pinned.store(true, Relaxed);
    Ok(sgt)
}

/// Look up a handle of `file`.
pub(crate) fn lookup(file: &File, handle: u32) -> Result<ARef<Bo>> {
    Bo::lookup_handle(file, handle)
}

/// Look up the BOs of `handles` under one hold of the file's handle
/// table lock; `f` gets each BO borrowed, must not sleep, and takes a
/// reference to keep one.
pub(crate) fn lookup_each(
    file: &File,
    handles: impl IntoIterator<Item = u32>,
    f: impl FnMut(u32, &Bo) -> Result,
) -> Result {
    Bo::lookup_handles(file, handles, f)
}

/// Where an imported BO's dma-buf comes from (`enum drm_ferrite_bo_import`).
pub(crate) fn import_kind(bo: &Bo) -> u32 {
    if !bo.is_imported() {
        return uapi::drm_ferrite_bo_import_DRM_FERRITE_BO_IMPORT_NONE;
    }
    // SAFETY: the object is imported: `import_attach` was set before it
    // was published and stays valid (with its dma-buf, which the
    // attachment holds a reference to) as long as the object.
    let dmabuf = unsafe { (*(*bo.as_raw()).import_attach).dmabuf };
    // SAFETY: as above, `dmabuf` is valid; `exp_name` is a static string
    // of the exporter (non-null: dma_buf_export() refuses a null one).
    let name = unsafe { CStr::from_char_ptr((*dmabuf).exp_name) };
    // DRM PRIME exports (drm_gem_prime_export(), which every GEM driver
    // that does not bring its own exporter uses, and the only exporter in
    // the "drm" module) carry the exported GEM object in `priv`.
    if name != c"drm" {
        return uapi::drm_ferrite_bo_import_DRM_FERRITE_BO_IMPORT_OTHER;
    }
    // SAFETY: a DRM PRIME dma-buf's `priv` is its GEM object, which it
    // holds a reference to; the object's `dev` is its DRM device, valid as
    // long as the object.
    let driver = unsafe { (*(*(*dmabuf).priv_.cast::<bindings::drm_gem_object>()).dev).driver };
    // SAFETY: `bo` is an object of a DRM device of this driver.
    let ours = unsafe { (*(*bo.as_raw()).dev).driver };
    if core::ptr::eq(driver, ours) {
        uapi::drm_ferrite_bo_import_DRM_FERRITE_BO_IMPORT_FERRITE
    } else {
        uapi::drm_ferrite_bo_import_DRM_FERRITE_BO_IMPORT_DRM
    }
}
