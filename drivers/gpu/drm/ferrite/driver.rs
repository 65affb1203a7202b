// SPDX-License-Identifier: GPL-2.0

//! PCI driver and DRM device of the Ferrite GPU.

use kernel::{
    device::{
        Core,
        DeviceContext, //
    },
    dma::{
        Device as DmaDevice,
        DmaMask, //
    },
    drm::{
        self,
        ioctl, //
    },
    io::Io,
    page::PAGE_SIZE,
    pci::{
        self,
        IrqType,
        IrqTypes,
        IrqVectorRegistration, //
    },
    prelude::*,
    sizes::SZ_4K,
    sync::Arc,
    uapi, //
};

use crate::{
    debugfs::Debugfs,
    file::FileData,
    gem::{
        Bo,
        BoList, //
    },
    gpu::{
        Bar0,
        Gpu, //
    },
    irq::{
        self,
        Irqs, //
    },
    regs, //
};

/// Version of the UAPI (`include/uapi/drm/ferrite_drm.h`): major, minor.
pub(crate) const UAPI_MAJOR: u32 = 0;
pub(crate) const UAPI_MINOR: u32 = 7;

/// The GPU page: the granule of the GPU MMU (AArch64 LPAE, 4 KiB granule),
/// whatever the CPU's `PAGE_SIZE`. The GPU page tables, the driver's own
/// GPU mappings (rings, fence pages) and the pieces of imported buffers
/// are in GPU pages; memory (a BO's shmem pages or folios, a userptr's
/// pages, CPU mappings) comes in CPU pages, each a whole number of GPU
/// pages, mapped with as many GPU page entries (or blocks).
pub(crate) const GPU_PAGE_SIZE: usize = SZ_4K;

/// The granule of VM_BIND addresses, sizes and BO offsets
/// (`bind_alignment`): the larger of the CPU page and the GPU page. Memory
/// is bound in whole CPU pages, so it is the CPU page.
pub(crate) const BIND_ALIGN: usize = if PAGE_SIZE > GPU_PAGE_SIZE {
    PAGE_SIZE
} else {
    GPU_PAGE_SIZE
};

// A CPU page is a whole number of GPU pages (4, 16 or 64 KiB CPU pages).
static_assert!(PAGE_SIZE % GPU_PAGE_SIZE == 0);

/// GPU virtual address range userspace may bind: above the first 64 KiB
/// (so that a NULL-based pointer faults), below the top 4 GiB of the
/// 48-bit space, which the driver keeps for its own objects (rings).
pub(crate) const VA_BITS: u32 = 48;
pub(crate) const USER_VA_START: u64 = 0x1_0000;
pub(crate) const USER_VA_END: u64 = (1 << VA_BITS) - (1 << 32);
/// The driver's region of every VM: queue rings and fence pages.
pub(crate) const KERNEL_VA_START: u64 = USER_VA_END;
pub(crate) const KERNEL_VA_END: u64 = 1 << VA_BITS;

/// The DRM driver.
pub(crate) struct FerriteDrmDriver;

/// The DRM device of a Ferrite GPU.
pub(crate) type FerriteDevice<Ctx = drm::Normal> = drm::Device<FerriteDrmDriver, Ctx>;

/// What probe learns from the hardware.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GpuInfo {
    pub(crate) version_major: u32,
    pub(crate) version_minor: u32,
    pub(crate) features: u32,
    pub(crate) dma_addr_bits: u32,
    pub(crate) dma_max_segment: u32,
    /// No DMA segment may cross a multiple of `dma_seg_boundary + 1`
    /// ([`regs::NO_SEG_BOUNDARY`]: no boundary).
    pub(crate) dma_seg_boundary: u64,
    /// Whether the device's DMA is coherent with the CPU's caches (what
    /// firmware says of it, read at probe): if not, the CPU cleans each
    /// page-table update to the point of coherency before the device may
    /// walk it.
    pub(crate) dma_coherent: bool,
    pub(crate) num_queues: u32,
    pub(crate) num_as: u32,
}

/// Data owned by the DRM registration, reachable from ioctls.
#[pin_data]
pub(crate) struct RegistrationData<'a> {
    pub(crate) pdev: &'a pci::Device,
    pub(crate) gpu: Arc<Gpu>,
}

impl GpuInfo {
    /// What DEV_QUERY_INFO reports.
    pub(crate) fn dev_info(&self) -> uapi::drm_ferrite_dev_info {
        let i = self;
        uapi::drm_ferrite_dev_info {
            hw_version: (i.version_major << 16) | i.version_minor,
            uapi_version: (UAPI_MAJOR << 16) | UAPI_MINOR,
            features: i.features,
            dma_addr_bits: i.dma_addr_bits,
            dma_max_segment: i.dma_max_segment,
            num_queues: i.num_queues,
            num_as: i.num_as,
            va_bits: VA_BITS,
            va_start: USER_VA_START,
            va_end: USER_VA_END,
            // GPU pages, 2 MiB and 1 GiB blocks, whatever the CPU page.
            page_sizes: GPU_PAGE_SIZE as u64 | (1 << 21) | (1 << 30),
        }
    }
}

/// Stops the hardware and fails every job when the device is unbound,
/// after userspace lost access and before the interrupts go.
pub(crate) struct Shutdown(Arc<Gpu>);

impl Drop for Shutdown {
    fn drop(&mut self) {
        self.0.shutdown();
    }
}

/// The PCI driver.
pub(crate) struct FerritePciDriver;

/// Per-device driver data, alive while the device is bound.
///
/// Fields drop in declaration order: the DRM device goes first (no new
/// ioctls), then the interrupt handlers, then the MSI-X vectors they use.
#[pin_data]
pub(crate) struct DeviceData<'a> {
    _reg: drm::Registration<'a, FerriteDrmDriver>,
    #[pin]
    _debugfs: Debugfs,
    _shutdown: Shutdown,
    #[pin]
    irqs: Irqs<'a>,
    vectors: IrqVectorRegistration<'a>,
}

kernel::pci_device_table!(
    PCI_TABLE,
    <FerritePciDriver as pci::Driver>::IdInfo,
    [(
        pci::DeviceId::from_id(pci::Vendor::REDHAT, regs::PCI_DEVICE_ID),
        ()
    )]
);

/// Reset the whole device to a known state; the reset is complete when the
/// register write completes, which RESET_COUNT confirms.
fn reset(pdev: &pci::Device<Core<'_>>, bar: &Bar0<'_>) -> Result {
    let before = bar.read(regs::RESET_COUNT).count();
    bar.write_reg(regs::RESET::global());
    if bar.read(regs::RESET_COUNT).count() == before {
        dev_err!(pdev, "device did not reset\n");
        return Err(EIO);
    }
    Ok(())
}

fn read_info(pdev: &pci::Device<Core<'_>>, bar: &Bar0<'_>) -> Result<GpuInfo> {
    let id = bar.read(regs::ID).id();
    if id != regs::FERRITE_ID {
        dev_err!(pdev, "unexpected ID register {:#x}\n", id);
        return Err(ENODEV);
    }
    let version = bar.read(regs::VERSION);
    let version_minor: u32 = version.minor().into();
    // Interface 1.3 added the segment boundary; before, there is none.
    let dma_seg_boundary = if version_minor >= regs::VERSION_MINOR_SEG_BOUNDARY {
        let lo: u32 = bar.read(regs::DMA_SEG_BOUNDARY_LO).mask().into();
        let hi: u32 = bar.read(regs::DMA_SEG_BOUNDARY_HI).mask().into();
        (u64::from(hi) << 32) | u64::from(lo)
    } else {
        regs::NO_SEG_BOUNDARY
    };
    let info = GpuInfo {
        version_major: version.major().into(),
        version_minor,
        features: bar.read(regs::FEATURES).features().into(),
        dma_addr_bits: bar.read(regs::DMA_ADDR_BITS).bits().into(),
        dma_max_segment: bar.read(regs::DMA_MAX_SEGMENT).bytes().into(),
        dma_seg_boundary,
        dma_coherent: pdev.dma_is_coherent(),
        num_queues: bar.read(regs::NUM_QUEUES_REG).count().into(),
        num_as: bar.read(regs::NUM_AS_REG).count().into(),
    };
    if info.version_major != regs::VERSION_MAJOR {
        dev_err!(
            pdev,
            "unsupported hardware interface {}.{}\n",
            info.version_major,
            info.version_minor
        );
        return Err(ENODEV);
    }
    Ok(info)
}

/// What probe sets up before the pinned per-device data.
struct Early {
    gpu: Arc<Gpu>,
    unreg: drm::UnregisteredDevice<FerriteDrmDriver>,
}

fn probe_early(pdev: &pci::Device<Core<'_>>) -> Result<Early> {
    pdev.enable_device_mem()?;
    pdev.set_master();

    let bar = pdev.iomap_region_sized::<{ regs::BAR0_SIZE }>(0, c"ferrite")?;
    let info = read_info(pdev, &bar)?;
    reset(pdev, &bar)?;

    // SAFETY: no DMA allocation or mapping exists yet for this device, which
    // is still being probed.
    unsafe { pdev.dma_set_mask_and_coherent(DmaMask::try_new(info.dma_addr_bits)?)? };
    // A CPU page is never split between DMA segments: a device whose
    // segments are shorter (the hardware allows 4 KiB) cannot be driven
    // by a kernel with larger pages.
    if (info.dma_max_segment as usize) < PAGE_SIZE {
        dev_err!(
            pdev,
            "DMA segments of {} bytes are shorter than a CPU page ({} bytes)\n",
            info.dma_max_segment,
            PAGE_SIZE
        );
        return Err(ENODEV);
    }
    // SAFETY: as above, nothing is mapped yet.
    unsafe { pdev.dma_set_max_seg_size(info.dma_max_segment) };
    // Nor may a CPU page cross the segment boundary: the DMA layer cannot
    // split a page. The boundary is all-ones (none) or a power of two, at
    // least a CPU page, less one.
    let boundary = info.dma_seg_boundary;
    let window = boundary.wrapping_add(1);
    if boundary != regs::NO_SEG_BOUNDARY && (!window.is_power_of_two() || window < PAGE_SIZE as u64)
    {
        dev_err!(
            pdev,
            "invalid DMA segment boundary mask {:#x} (CPU page: {} bytes)\n",
            boundary,
            PAGE_SIZE
        );
        return Err(ENODEV);
    }
    // SAFETY: as above, nothing is mapped yet.
    unsafe { pdev.dma_set_seg_boundary(boundary)? };

    dev_info!(
        pdev,
        "Ferrite GPU {}.{}: {}-bit {}coherent DMA, max segment {} bytes, \
         segment boundary mask {:#x}\n",
        info.version_major,
        info.version_minor,
        info.dma_addr_bits,
        if info.dma_coherent { "" } else { "non-" },
        info.dma_max_segment,
        boundary
    );

    let dev: &kernel::device::Device = pdev.as_ref();
    let gpu = Gpu::new(dev.into(), bar.into_devres()?, info)?;
    let limits = DmaLimits {
        addr_bits: info.dma_addr_bits,
        max_segment: info.dma_max_segment,
        seg_boundary: info.dma_seg_boundary,
        bos: gpu.bos.clone(),
    };
    let unreg = drm::UnregisteredDevice::<FerriteDrmDriver>::new(pdev, Ok(limits))?;
    // Large BOs in 2 MiB folios, which VM_BIND maps with block entries.
    if let Err(e) = unreg.huge_mnt_create(c"within_size") {
        dev_warn!(pdev, "no huge-page GEM mount ({:?}): CPU pages only\n", e);
    }
    Ok(Early { gpu, unreg })
}

impl pci::Driver for FerritePciDriver {
    type IdInfo = ();
    type Data<'a> = DeviceData<'a>;

    const ID_TABLE: pci::IdTable<Self::IdInfo> = &PCI_TABLE;

    fn probe<'a>(
        pdev: &'a pci::Device<Core<'_>>,
        _info: Option<&'a Self::IdInfo>,
    ) -> impl PinInit<Self::Data<'a>, Error> + 'a {
        pin_init::pin_init_scope(move || {
            let Early { gpu, unreg } = probe_early(pdev)?;

            Ok(try_pin_init!(DeviceData {
                vectors: pdev.alloc_irq_vectors(
                    irq::NUM_VECTORS,
                    irq::NUM_VECTORS,
                    IrqTypes::default().with(IrqType::MsiX),
                )?,
                // SAFETY: `vectors` is initialized before this expression is
                // evaluated (`try_pin_init!()` initializes fields in the order
                // written here), lives at a pinned, stable address and is
                // dropped after `irqs` (declaration order). `irqs` is a field
                // of `DeviceData`, dropped when the device is unbound and
                // never forgotten.
                irqs <- unsafe { Irqs::new(&*core::ptr::from_ref(vectors), &gpu) },
                _shutdown: Shutdown(gpu.clone()),
                _debugfs <- Debugfs::new(pdev.as_ref().name(), gpu.clone())?,
                _reg: {
                    // The global vector's handler (registered above) counts it.
                    irq::self_test(&gpu)
                        .inspect_err(|_| dev_err!(pdev, "MSI-X self-test failed\n"))?;
                    gpu.enable_irqs()?;
                    let reg_data = try_pin_init!(RegistrationData { pdev, gpu });
                    // SAFETY: the registration is stored in `DeviceData`, dropped
                    // when the device is unbound, and never forgotten.
                    unsafe { drm::Registration::new(pdev.as_ref(), unreg, reg_data, 0)? }
                },
            }))
        })
    }
}

/// The DMA constraints the GPU advertises, kept with its DRM device (for
/// checking imported buffers), and its BO list (which imported buffers,
/// created by the DRM core, join).
pub(crate) struct DmaLimits {
    /// Width of the bus addresses the device generates.
    pub(crate) addr_bits: u32,
    /// Longest DMA segment the device takes, in bytes.
    pub(crate) max_segment: u32,
    /// The device's segment boundary mask: no DMA segment may cross a
    /// multiple of `seg_boundary + 1` ([`regs::NO_SEG_BOUNDARY`]: none).
    pub(crate) seg_boundary: u64,
    /// The device's BO list (it holds no reference to the device).
    pub(crate) bos: Arc<BoList>,
}

const INFO: drm::DriverInfo = drm::DriverInfo {
    major: UAPI_MAJOR as i32,
    minor: UAPI_MINOR as i32,
    patchlevel: 0,
    name: c"ferrite",
    desc: c"Ferrite GPU",
};

#[vtable]
impl drm::Driver for FerriteDrmDriver {
    type Data = DmaLimits;
    type RegistrationData<'a> = RegistrationData<'a>;
    type File = FileData;
    type Object = Bo;
    type ParentDevice<Ctx: DeviceContext> = pci::Device<Ctx>;

    const INFO: drm::DriverInfo = INFO;
    const FEAT_RENDER: bool = true;
    const FEAT_SYNCOBJ: bool = true;
    const FEAT_SYNCOBJ_TIMELINE: bool = true;

    kernel::declare_drm_ioctls! {
        (FERRITE_DEV_QUERY, drm_ferrite_dev_query, ioctl::RENDER_ALLOW, FileData::dev_query),
        (FERRITE_GEM_CREATE, drm_ferrite_gem_create, ioctl::RENDER_ALLOW, FileData::gem_create),
        (FERRITE_GEM_MMAP_OFFSET, drm_ferrite_gem_mmap_offset, ioctl::RENDER_ALLOW,
            FileData::gem_mmap_offset),
        (FERRITE_VM_CREATE, drm_ferrite_vm_create, ioctl::RENDER_ALLOW, FileData::vm_create),
        (FERRITE_VM_DESTROY, drm_ferrite_vm_destroy, ioctl::RENDER_ALLOW, FileData::vm_destroy),
        (FERRITE_VM_BIND, drm_ferrite_vm_bind, ioctl::RENDER_ALLOW, FileData::vm_bind),
        (FERRITE_QUEUE_CREATE, drm_ferrite_queue_create, ioctl::RENDER_ALLOW,
            FileData::queue_create),
        (FERRITE_QUEUE_DESTROY, drm_ferrite_queue_destroy, ioctl::RENDER_ALLOW,
            FileData::queue_destroy),
        (FERRITE_SUBMIT, drm_ferrite_submit, ioctl::RENDER_ALLOW, FileData::submit),
        (FERRITE_QUEUE_GET_STATE, drm_ferrite_queue_get_state, ioctl::RENDER_ALLOW,
            FileData::queue_get_state),
        (FERRITE_GEM_SYNC, drm_ferrite_gem_sync, ioctl::RENDER_ALLOW, FileData::gem_sync),
        (FERRITE_BO_SET_LABEL, drm_ferrite_bo_set_label, ioctl::RENDER_ALLOW,
            FileData::bo_set_label),
        (FERRITE_BO_QUERY_INFO, drm_ferrite_bo_query_info, ioctl::RENDER_ALLOW,
            FileData::bo_query_info),
        (FERRITE_VM_GET_STATE, drm_ferrite_vm_get_state, ioctl::RENDER_ALLOW,
            FileData::vm_get_state),
    }
}
