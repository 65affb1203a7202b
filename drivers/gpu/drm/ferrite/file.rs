// SPDX-License-Identifier: GPL-2.0

//! Per-open-file state of a Ferrite render node and the ioctls.

use kernel::{
    bindings,
    device::{
        Bound,
        Device, //
    },
    dma::DataDirection,
    dma_fence::{
        Fence,
        FenceContext, //
    },
    dma_resv::{
        LockedResvs,
        Usage, //
    },
    drm::{
        self,
        gem::BaseObject,
        syncobj::{
            self,
            ChainNode,
            SyncObj, //
        },
        Registered, //
    },
    new_mutex,
    pci,
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc,
        Mutex, //
    },
    time::Instant,
    transmute::{
        AsBytes,
        FromBytes, //
    },
    uaccess::{
        UserPtr,
        UserSlice,
        UserSliceReader, //
    },
    uapi, //
};

use crate::{
    driver::{
        FerriteDevice,
        FerriteDrmDriver,
        RegistrationData,
        BIND_ALIGN,
        GPU_PAGE_SIZE,
        KERNEL_VA_END,
        KERNEL_VA_START,
        USER_VA_END,
        USER_VA_START,
        VA_BITS, //
    },
    gem::{
        self,
        Bo, //
    },
    gpu::{
        BindPhase,
        ProcessVmRef, //
    },
    queue::{
        Dep,
        FileStats,
        Job,
        Queue,
        MAX_TIMEOUT_MS, //
    },
    sched::Priority,
    vm::{
        BindOp,
        Vm, //
    }, //
};

/// Most VMs and queues one file may have (queues cost no ring, and an idle
/// one no DMA memory: see `Queue`).
const MAX_VMS: usize = 64;
pub(crate) const MAX_QUEUES: usize = 256;
/// Largest element stride userspace may pass.
const MAX_STRIDE: u32 = 4096;
/// Largest command buffer (the CALL command's limit).
const MAX_CMD_SIZE: u32 = 1 << 20;

/// Objects of a file, by id (index + 1).
struct Table<T> {
    slots: KVec<Option<Arc<T>>>,
    max: usize,
}

impl<T> Table<T> {
    const fn new(max: usize) -> Self {
        Self {
            slots: KVec::new(),
            max,
        }
    }

    fn insert(&mut self, obj: Arc<T>) -> Result<u32> {
        if let Some(i) = self.slots.iter().position(Option::is_none) {
            self.slots[i] = Some(obj);
            return Ok(i as u32 + 1);
        }
        if self.slots.len() >= self.max {
            return Err(ENOSPC);
        }
        self.slots.push(Some(obj), GFP_KERNEL)?;
        Ok(self.slots.len() as u32)
    }

    fn get(&self, id: u32) -> Result<Arc<T>> {
        let i = (id as usize).checked_sub(1).ok_or(ENOENT)?;
        self.slots.get(i).and_then(Clone::clone).ok_or(ENOENT)
    }

    fn remove(&mut self, id: u32) -> Result<Arc<T>> {
        let i = (id as usize).checked_sub(1).ok_or(ENOENT)?;
        self.slots.get_mut(i).and_then(Option::take).ok_or(ENOENT)
    }

    fn iter(&self) -> impl Iterator<Item = &Arc<T>> {
        self.slots.iter().flatten()
    }
}

/// State of one open file.
#[pin_data(PinnedDrop)]
pub(crate) struct FileData {
    #[pin]
    vms: Mutex<Table<Vm>>,
    #[pin]
    queues: Mutex<Table<Queue>>,
    /// The process VMs this file was used with, one per calling process.
    #[pin]
    process_vms: Mutex<KVec<ProcessVmRef>>,
    stats: Arc<FileStats>,
    /// Hardware rings of the device (fdinfo's engine capacity), as seen at
    /// the last QUEUE_CREATE.
    rings: Atomic<u32>,
}

#[pinned_drop]
impl PinnedDrop for FileData {
    fn drop(self: Pin<&mut Self>) {
        // Queues first: running jobs finish, queued ones are cancelled.
        let queues = core::mem::replace(&mut *self.queues.lock(), Table::new(0));
        for q in queues.iter() {
            q.close();
        }
    }
}

/// A DRM file of this driver.
pub(crate) type File = drm::File<FileData>;

impl drm::file::DriverFile for FileData {
    type Driver = FerriteDrmDriver;

    fn open(_dev: &drm::Device<Self::Driver>) -> Result<Pin<KBox<Self>>> {
        KBox::try_pin_init(
            try_pin_init!(Self {
                vms <- new_mutex!(Table::new(MAX_VMS)),
                queues <- new_mutex!(Table::new(MAX_QUEUES)),
                process_vms <- new_mutex!(KVec::new()),
                stats: FileStats::new()?,
                rings: Atomic::new(crate::regs::MAX_QUEUES as u32),
            }),
            GFP_KERNEL,
        )
    }

    fn show_fdinfo(&self, _file: &File, printer: &mut drm::Printer<'_>) {
        use core::fmt::Write;
        // One engine class: the queues (see Documentation/gpu/drm-usage-stats.rst).
        let ns = self.stats.engine_ns.load(kernel::sync::atomic::Relaxed);
        let _ = writeln!(printer, "drm-engine-queue:\t{ns} ns");
        let _ = writeln!(
            printer,
            "drm-engine-capacity-queue:\t{}",
            self.rings.load(Relaxed)
        );
        printer.memory_stats();
    }
}

/// `struct drm_ferrite_dev_info`, as bytes userspace may read.
#[repr(transparent)]
pub(crate) struct DevInfo(pub(crate) uapi::drm_ferrite_dev_info);

// SAFETY: all fields are integers and the layout has no padding (the UAPI
// header orders them so); every byte is initialized.
unsafe impl AsBytes for DevInfo {}

/// `struct drm_ferrite_counters`, as bytes userspace may read.
#[repr(transparent)]
pub(crate) struct Counters(pub(crate) uapi::drm_ferrite_counters);

// SAFETY: all fields are u64; no padding.
unsafe impl AsBytes for Counters {}

/// `struct drm_ferrite_sched_info`, as bytes userspace may read.
#[repr(transparent)]
pub(crate) struct SchedInfo(pub(crate) uapi::drm_ferrite_sched_info);

// SAFETY: all fields are u32; no padding.
unsafe impl AsBytes for SchedInfo {}

/// `struct drm_ferrite_timestamp_info`, as bytes userspace may read.
#[repr(transparent)]
pub(crate) struct TimestampInfo(pub(crate) uapi::drm_ferrite_timestamp_info);

// SAFETY: all fields are u64; no padding.
unsafe impl AsBytes for TimestampInfo {}

/// `struct drm_ferrite_memory_info`, as bytes userspace may read.
#[repr(transparent)]
pub(crate) struct MemoryInfo(pub(crate) uapi::drm_ferrite_memory_info);

// SAFETY: all fields are u64; no padding.
unsafe impl AsBytes for MemoryInfo {}

/// `struct drm_ferrite_mmu_info`, as bytes userspace may read.
#[repr(transparent)]
pub(crate) struct MmuInfo(pub(crate) uapi::drm_ferrite_mmu_info);

// SAFETY: two u32, five u64, then two u32 (56 bytes, a multiple of 8);
// no padding.
unsafe impl AsBytes for MmuInfo {}
static_assert!(core::mem::size_of::<uapi::drm_ferrite_mmu_info>() == 56);

/// `struct drm_ferrite_uapi_features`, as bytes userspace may read.
#[repr(transparent)]
pub(crate) struct UapiFeatures(pub(crate) uapi::drm_ferrite_uapi_features);

// SAFETY: one u64; no padding.
unsafe impl AsBytes for UapiFeatures {}

/// The additions to the interface since 0.1 this driver has
/// (DEV_QUERY_FEATURES).
const UAPI_FEATURES: u32 = uapi::DRM_FERRITE_UAPI_SCHED
    | uapi::DRM_FERRITE_UAPI_TIMESTAMP
    | uapi::DRM_FERRITE_UAPI_BO_LABEL
    | uapi::DRM_FERRITE_UAPI_NO_MMAP
    | uapi::DRM_FERRITE_UAPI_BO_QUERY_INFO
    | uapi::DRM_FERRITE_UAPI_MEMORY
    | uapi::DRM_FERRITE_UAPI_MMU
    | uapi::DRM_FERRITE_UAPI_VM_PRIVATE
    | uapi::DRM_FERRITE_UAPI_ASYNC_BIND
    | uapi::DRM_FERRITE_UAPI_PAGE_SIZES;

/// GEM_CREATE flags this driver knows.
const GEM_CREATE_FLAGS: u32 =
    uapi::DRM_FERRITE_GEM_CREATE_NO_MMAP | uapi::DRM_FERRITE_GEM_CREATE_VM_PRIVATE;

/// Longest BO label with its NUL (Mesa's cap).
const BO_LABEL_MAX: usize = uapi::DRM_FERRITE_BO_LABEL_MAX as usize;

/// The memory the device can use (DEV_QUERY_MEMORY): all of the system's
/// RAM, or what a device that addresses fewer than 64 bits reaches (its
/// BOs get pages within reach), and the pinning budget.
fn memory_info(dma_addr_bits: u32) -> uapi::drm_ferrite_memory_info {
    let mut si = core::mem::MaybeUninit::<bindings::sysinfo>::zeroed();
    // SAFETY: `si_meminfo()` fills the `sysinfo` it is given, which is
    // valid and writable.
    unsafe { bindings::si_meminfo(si.as_mut_ptr()) };
    // SAFETY: zeroed, then filled: every field (integers) is initialized.
    let si = unsafe { si.assume_init() };
    let mut total = (si.totalram as u64).saturating_mul(u64::from(si.mem_unit.max(1)));
    if dma_addr_bits < 64 {
        total = total.min(1u64 << dma_addr_bits);
    }
    uapi::drm_ferrite_memory_info {
        total,
        available: gem::pin_budget().min(total),
        max_bo_size: gem::MAX_BO_SIZE,
    }
}

fn mmu_info(reg: &RegistrationData<'_>) -> uapi::drm_ferrite_mmu_info {
    let info = reg.gpu.info.dev_info();
    uapi::drm_ferrite_mmu_info {
        va_bits: VA_BITS,
        // The CPU page, the larger: memory is bound in whole CPU pages.
        bind_alignment: BIND_ALIGN as u32,
        user_va_start: USER_VA_START,
        user_va_end: USER_VA_END,
        kernel_va_start: KERNEL_VA_START,
        kernel_va_end: KERNEL_VA_END,
        page_sizes: info.page_sizes,
        cpu_page_size: kernel::page::PAGE_SIZE as u32,
        gpu_page_size: GPU_PAGE_SIZE as u32,
    }
}

/// Whether the caller may use the privileged priorities: CAP_SYS_NICE, as
/// panthor asks (which also accepts DRM master: Ferrite has only a render
/// node, whose files are never master).
fn may_use_high_priority(_file: &File) -> bool {
    // SAFETY: `capable()` only reads the current task's credentials.
    unsafe { bindings::capable(bindings::CAP_SYS_NICE as i32) }
}

fn sched_info(reg: &RegistrationData<'_>, file: &File) -> uapi::drm_ferrite_sched_info {
    let (rings, preempt) = {
        let s = reg.gpu.sched.lock();
        (s.num_rings() as u32, s.can_preempt())
    };
    let mut prios = 0u32;
    for p in [
        Priority::Low,
        Priority::Normal,
        Priority::High,
        Priority::Realtime,
    ] {
        if !p.privileged() || may_use_high_priority(file) {
            prios |= 1 << p.to_uapi();
        }
    }
    uapi::drm_ferrite_sched_info {
        priorities: prios,
        num_rings: rings,
        max_queues_per_file: MAX_QUEUES as u32,
        timeslice_us: u32::try_from(crate::sched::timeslice().as_micros_ceil()).unwrap_or(u32::MAX),
        preempt: u32::from(preempt),
        pad: 0,
    }
}

/// Answer a DEV_QUERY: the size with a null pointer, else the bytes.
fn answer<T: AsBytes>(q: &mut uapi::drm_ferrite_dev_query, value: &T) -> Result<u32> {
    let bytes = value.as_bytes();
    if q.pointer == 0 {
        q.size = u32::try_from(bytes.len())?;
        return Ok(0);
    }
    let n = (q.size as usize).min(bytes.len());
    let unwritable = |e| {
        pr_debug!(
            "ferrite: DEV_QUERY: answer at {:#x} unwritable\n",
            q.pointer
        );
        e
    };
    let ptr = UserPtr::from_addr(usize::try_from(q.pointer).map_err(|_| unwritable(EFAULT))?);
    UserSlice::new(ptr, n)
        .writer()
        .write_slice(&bytes[..n])
        .map_err(unwritable)?;
    q.size = u32::try_from(n)?;
    Ok(0)
}

impl FileData {
    /// DRM_IOCTL_FERRITE_DEV_QUERY.
    pub(crate) fn dev_query(
        dev: &FerriteDevice<Registered>,
        reg: &RegistrationData<'_>,
        q: &mut uapi::drm_ferrite_dev_query,
        _file: &File,
    ) -> Result<u32> {
        match q.type_ {
            uapi::drm_ferrite_dev_query_type_DRM_FERRITE_DEV_QUERY_INFO => {
                answer(q, &DevInfo(reg.gpu.info.dev_info()))
            }
            uapi::drm_ferrite_dev_query_type_DRM_FERRITE_DEV_QUERY_COUNTERS => {
                // The driver never maps user memory into the kernel.
                answer(q, &Counters(reg.gpu.counters(0)))
            }
            uapi::drm_ferrite_dev_query_type_DRM_FERRITE_DEV_QUERY_SCHED => {
                answer(q, &SchedInfo(sched_info(reg, _file)))
            }
            uapi::drm_ferrite_dev_query_type_DRM_FERRITE_DEV_QUERY_TIMESTAMP => {
                if q.pointer == 0 {
                    // Only the size: no need to sample.
                    return answer(q, &TimestampInfo(Default::default()));
                }
                let ts = reg.gpu.timestamp_sample().inspect_err(|e| {
                    pr_debug!("ferrite: DEV_QUERY: no timestamp ({:?})\n", e);
                })?;
                answer(q, &TimestampInfo(ts))
            }
            uapi::drm_ferrite_dev_query_type_DRM_FERRITE_DEV_QUERY_MEMORY => {
                answer(q, &MemoryInfo(memory_info(reg.gpu.info.dma_addr_bits)))
            }
            uapi::drm_ferrite_dev_query_type_DRM_FERRITE_DEV_QUERY_MMU => {
                answer(q, &MmuInfo(mmu_info(reg)))
            }
            uapi::drm_ferrite_dev_query_type_DRM_FERRITE_DEV_QUERY_FEATURES => answer(
                q,
                &UapiFeatures(uapi::drm_ferrite_uapi_features {
                    features: u64::from(UAPI_FEATURES)
                        | if reg.gpu.info.features & crate::regs::FEATURE_NULL_APERTURE != 0 {
                            u64::from(uapi::DRM_FERRITE_UAPI_NULL_BIND)
                        } else {
                            0
                        }
                        | if crate::svm::can_mirror(&reg.gpu, bound(dev)) {
                            u64::from(uapi::DRM_FERRITE_UAPI_MIRROR)
                        } else {
                            0
                        },
                }),
            ),
            _ => {
                pr_debug!("ferrite: DEV_QUERY: unknown type {}\n", q.type_);
                Err(EINVAL)
            }
        }
    }

    /// DRM_IOCTL_FERRITE_GEM_CREATE.
    pub(crate) fn gem_create(
        dev: &FerriteDevice<Registered>,
        reg: &RegistrationData<'_>,
        req: &mut uapi::drm_ferrite_gem_create,
        file: &File,
    ) -> Result<u32> {
        if req.flags & !GEM_CREATE_FLAGS != 0 || req.pad != 0 {
            pr_debug!(
                "ferrite: GEM_CREATE: unknown flags {:#x} or pad {:#x}\n",
                req.flags,
                req.pad
            );
            return Err(EINVAL);
        }
        let vm = if req.flags & uapi::DRM_FERRITE_GEM_CREATE_VM_PRIVATE != 0 {
            Some(file.inner().vm(req.vm_id, dev, reg).inspect_err(|e| {
                pr_debug!("ferrite: GEM_CREATE: VM {}: {:?}\n", req.vm_id, e);
            })?)
        } else if req.vm_id != 0 {
            pr_debug!(
                "ferrite: GEM_CREATE: vm_id {} without VM_PRIVATE\n",
                req.vm_id
            );
            return Err(EINVAL);
        } else {
            None
        };
        let args = gem::BoArgs::User(req.flags, vm.as_ref().map_or(0, |v| v.id));
        let resv_of = vm.as_ref().map(|v| &*v.resv_obj);
        let bo = gem::create(dev, args, req.size, resv_of).inspect_err(|e| {
            pr_debug!("ferrite: GEM_CREATE: size {:#x}: {:?}\n", req.size, e);
        })?;
        req.handle = bo.create_handle(file)?;
        req.size = bo.size() as u64;
        Ok(0)
    }

    /// DRM_IOCTL_FERRITE_GEM_MMAP_OFFSET.
    pub(crate) fn gem_mmap_offset(
        _dev: &FerriteDevice<Registered>,
        _reg: &RegistrationData<'_>,
        req: &mut uapi::drm_ferrite_gem_mmap_offset,
        file: &File,
    ) -> Result<u32> {
        if req.flags != 0 {
            pr_debug!("ferrite: GEM_MMAP_OFFSET: flags {:#x}\n", req.flags);
            return Err(EINVAL);
        }
        let bo = gem::lookup(file, req.handle)
            .inspect_err(|_| pr_debug!("ferrite: GEM_MMAP_OFFSET: no handle {}\n", req.handle))?;
        if bo.meta.flags & uapi::DRM_FERRITE_GEM_CREATE_NO_MMAP != 0 {
            pr_debug!("ferrite: GEM_MMAP_OFFSET: BO {} is NO_MMAP\n", bo.meta.id);
            return Err(EPERM);
        }
        req.offset = bo.create_mmap_offset()?;
        Ok(0)
    }

    /// DRM_IOCTL_FERRITE_BO_SET_LABEL.
    pub(crate) fn bo_set_label(
        _dev: &FerriteDevice<Registered>,
        _reg: &RegistrationData<'_>,
        req: &mut uapi::drm_ferrite_bo_set_label,
        file: &File,
    ) -> Result<u32> {
        if req.pad != 0 {
            pr_debug!("ferrite: BO_SET_LABEL: pad {:#x}\n", req.pad);
            return Err(EINVAL);
        }
        let bo = gem::lookup(file, req.handle)
            .inspect_err(|_| pr_debug!("ferrite: BO_SET_LABEL: no handle {}\n", req.handle))?;
        let mut label = None;
        if req.label != 0 {
            // One byte more than the longest label with its NUL: a string
            // that fills it is too long.
            let mut buf = KVec::from_elem(0u8, BO_LABEL_MAX + 1, GFP_KERNEL)?;
            let ptr = UserPtr::from_addr(usize::try_from(req.label).map_err(|_| EFAULT)?);
            let s = UserSlice::new(ptr, buf.len())
                .reader()
                .strcpy_into_buf(&mut buf)
                .inspect_err(|_| pr_debug!("ferrite: BO_SET_LABEL: label unreadable\n"))?
                .to_bytes();
            if s.len() >= BO_LABEL_MAX {
                pr_debug!(
                    "ferrite: BO_SET_LABEL: label longer than {} bytes\n",
                    BO_LABEL_MAX - 1
                );
                return Err(E2BIG);
            }
            if !s.is_empty() {
                let mut v = KVec::with_capacity(s.len(), GFP_KERNEL)?;
                v.extend_from_slice(s, GFP_KERNEL)?;
                label = Some(Arc::new(v, GFP_KERNEL)?);
            }
        }
        bo.meta.set_label(label);
        Ok(0)
    }

    /// DRM_IOCTL_FERRITE_BO_QUERY_INFO.
    pub(crate) fn bo_query_info(
        _dev: &FerriteDevice<Registered>,
        _reg: &RegistrationData<'_>,
        req: &mut uapi::drm_ferrite_bo_query_info,
        file: &File,
    ) -> Result<u32> {
        if req.flags != 0 {
            pr_debug!("ferrite: BO_QUERY_INFO: flags {:#x}\n", req.flags);
            return Err(EINVAL);
        }
        let bo = gem::lookup(file, req.handle)
            .inspect_err(|_| pr_debug!("ferrite: BO_QUERY_INFO: no handle {}\n", req.handle))?;
        // A reference, so that no lock is held while user memory is written.
        let label = bo.meta.label();
        let label: &[u8] = label.as_deref().map(|l| &l[..]).unwrap_or(&[]);
        if req.label != 0 && req.label_size != 0 {
            let n = label.len().min(req.label_size as usize - 1);
            let ptr = UserPtr::from_addr(usize::try_from(req.label).map_err(|_| EFAULT)?);
            let mut w = UserSlice::new(ptr, n + 1).writer();
            w.write_slice(&label[..n])
                .and_then(|()| w.write_slice(&[0]))
                .inspect_err(|_| pr_debug!("ferrite: BO_QUERY_INFO: label unwritable\n"))?;
        }
        req.size = bo.size() as u64;
        req.create_flags = bo.meta.flags;
        req.import_kind = gem::import_kind(&bo);
        req.label_len = label.len() as u32;
        Ok(0)
    }
}

/// The bound parent device of a registered DRM device.
fn bound(dev: &FerriteDevice<Registered>) -> &Device<Bound> {
    let pdev: &pci::Device<Bound> = dev.as_ref();
    pdev.as_ref()
}

/// An element type of a `struct drm_ferrite_obj_array`: a UAPI structure,
/// read from userspace as it is laid out in the header.
trait ArrayElem: FromBytes + AsBytes + Default + Clone {
    /// Most elements of one array (the header's limit on `count`).
    const MAX: u32;
    /// What the array holds, for debug messages.
    const NAME: &'static str;
}

/// `struct drm_ferrite_vm_bind_op`, as read from userspace.
#[repr(transparent)]
#[derive(Default, Clone)]
struct VmBindOp(uapi::drm_ferrite_vm_bind_op);

// SAFETY: a bindgen'd C structure of integers only (four `__u32`, three
// `__u64`): every bit pattern is a valid value, and nothing in it has
// interior mutability.
unsafe impl FromBytes for VmBindOp {}

// SAFETY: four u32 then three u64: no padding (its size is checked
// below); every byte is initialized.
unsafe impl AsBytes for VmBindOp {}

static_assert!(core::mem::size_of::<VmBindOp>() == 40);

impl ArrayElem for VmBindOp {
    const MAX: u32 = 4096;
    const NAME: &'static str = "bind ops";
}

/// `struct drm_ferrite_sync_op`, as read from userspace.
#[repr(transparent)]
#[derive(Default, Clone)]
struct SyncOpArg(uapi::drm_ferrite_sync_op);

// SAFETY: a bindgen'd C structure of integers only (two `__u32`, one
// `__u64`): every bit pattern is a valid value, and nothing in it has
// interior mutability.
unsafe impl FromBytes for SyncOpArg {}

// SAFETY: two u32 then one u64: no padding (its size is checked below);
// every byte is initialized.
unsafe impl AsBytes for SyncOpArg {}

static_assert!(core::mem::size_of::<SyncOpArg>() == 16);

impl ArrayElem for SyncOpArg {
    const MAX: u32 = 64;
    const NAME: &'static str = "sync ops";
}

/// `struct drm_ferrite_bo_ref`, as read from userspace.
#[repr(transparent)]
#[derive(Default, Clone)]
struct BoRef(uapi::drm_ferrite_bo_ref);

// SAFETY: a bindgen'd C structure of two `__u32`: every bit pattern is a
// valid value, and nothing in it has interior mutability.
unsafe impl FromBytes for BoRef {}

// SAFETY: two u32: no padding (its size is checked below); every byte is
// initialized.
unsafe impl AsBytes for BoRef {}

static_assert!(core::mem::size_of::<BoRef>() == 8);

impl ArrayElem for BoRef {
    const MAX: u32 = 1024;
    const NAME: &'static str = "BO refs";
}

/// Where the bytes of an array come from: user memory, or a kernel buffer
/// in the KUnit tests.
trait ArraySource {
    /// Fill `out` with the next `out.len()` bytes; `EFAULT` if they cannot
    /// be read.
    fn read_slice(&mut self, out: &mut [u8]) -> Result;
}

impl ArraySource for UserSliceReader {
    fn read_slice(&mut self, out: &mut [u8]) -> Result {
        UserSliceReader::read_slice(self, out)
    }
}

/// Read the elements of a `struct drm_ferrite_obj_array` of `T`s from user
/// memory for the ioctl `ioctl`, as [`parse_array`] says.
fn read_array<T: ArrayElem>(ioctl: &str, arr: &uapi::drm_ferrite_obj_array) -> Result<KVec<T>> {
    parse_array(ioctl, arr, |total| {
        let ptr = UserPtr::from_addr(usize::try_from(arr.array).map_err(|_| EFAULT)?);
        Ok(UserSlice::new(ptr, total).reader())
    })
}

/// Parse the elements of a `struct drm_ferrite_obj_array` of `T`s for the
/// ioctl `ioctl` (named in debug messages), with the header's rules: at
/// most `T::MAX` of them; a `stride` that is a multiple of 4 from 4 to
/// 4096 (looked at only when `count` is not zero); of each element the
/// first `min(stride, size_of::<T>())` bytes are read, the fields beyond a
/// shorter `stride` are zero, and the bytes beyond a longer one (a later
/// version's fields) must be zero, else `EINVAL`. `open` gives the source
/// of the array's `count * stride` bytes; an `array` the kernel cannot
/// read fails with `EFAULT`.
fn parse_array<T: ArrayElem, S: ArraySource>(
    ioctl: &str,
    arr: &uapi::drm_ferrite_obj_array,
    open: impl FnOnce(usize) -> Result<S>,
) -> Result<KVec<T>> {
    let size = core::mem::size_of::<T>();
    if arr.count > T::MAX {
        pr_debug!(
            "ferrite: {}: {} {}, more than {}\n",
            ioctl,
            arr.count,
            T::NAME,
            T::MAX
        );
        return Err(EINVAL);
    }
    if arr.count == 0 {
        return Ok(KVec::new());
    }
    if arr.stride == 0 || arr.stride > MAX_STRIDE || arr.stride % 4 != 0 {
        pr_debug!(
            "ferrite: {}: {} stride {}: not a multiple of 4 from 4 to {}\n",
            ioctl,
            T::NAME,
            arr.stride,
            MAX_STRIDE
        );
        return Err(EINVAL);
    }
    let count = arr.count as usize;
    let stride = arr.stride as usize;
    let Some(total) = count.checked_mul(stride) else {
        pr_debug!("ferrite: {}: {} array size overflows\n", ioctl, T::NAME);
        return Err(EINVAL);
    };
    let unreadable = |e: Error| {
        pr_debug!(
            "ferrite: {}: {} array at {:#x} unreadable\n",
            ioctl,
            T::NAME,
            arr.array
        );
        e
    };
    let mut reader = open(total).map_err(unreadable)?;
    let mut out = KVec::from_elem(T::default(), count, GFP_KERNEL)?;
    if stride == size {
        // The common case: one copy from user memory for the whole array
        // (a SUBMIT may list a thousand BOs).
        reader.read_slice(out.as_bytes_mut()).map_err(unreadable)?;
        return Ok(out);
    }
    let known = stride.min(size);
    for (i, elem) in out.iter_mut().enumerate() {
        reader
            .read_slice(&mut elem.as_bytes_mut()[..known])
            .map_err(unreadable)?;
        let mut extra = stride - known;
        while extra > 0 {
            let mut buf = [0u8; 64];
            let n = extra.min(buf.len());
            reader.read_slice(&mut buf[..n]).map_err(unreadable)?;
            if buf[..n].iter().any(|b| *b != 0) {
                pr_debug!(
                    "ferrite: {}: {} element {}: non-zero bytes beyond the {} this kernel knows\n",
                    ioctl,
                    T::NAME,
                    i,
                    size
                );
                return Err(EINVAL);
            }
            extra -= n;
        }
    }
    Ok(out)
}

/// A validated `struct drm_ferrite_sync_op`.
struct SyncOp {
    signal: bool,
    handle: u32,
    point: u64,
}

impl SyncOp {
    /// Check sync op `i` of the ioctl `ioctl`: known flags, and a point
    /// exactly when the op is on a timeline.
    fn parse(ioctl: &str, i: usize, arg: &SyncOpArg) -> Result<Self> {
        let uapi::drm_ferrite_sync_op {
            flags,
            handle,
            point,
        } = arg.0;
        let known = uapi::DRM_FERRITE_SYNC_SIGNAL | uapi::DRM_FERRITE_SYNC_TIMELINE;
        let timeline = flags & uapi::DRM_FERRITE_SYNC_TIMELINE != 0;
        if flags & !known != 0 || (!timeline && point != 0) || (timeline && point == 0) {
            pr_debug!(
                "ferrite: {}: sync op {}: flags {:#x} with point {}\n",
                ioctl,
                i,
                flags,
                point
            );
            return Err(EINVAL);
        }
        Ok(SyncOp {
            signal: flags & uapi::DRM_FERRITE_SYNC_SIGNAL != 0,
            handle,
            point,
        })
    }
}

/// Read and check the sync ops of the ioctl `ioctl`.
fn parse_syncs(ioctl: &str, arr: &uapi::drm_ferrite_obj_array) -> Result<KVec<SyncOp>> {
    let raw = read_array::<SyncOpArg>(ioctl, arr)?;
    let mut out = KVec::with_capacity(raw.len(), GFP_KERNEL)?;
    for (i, s) in raw.iter().enumerate() {
        out.push(SyncOp::parse(ioctl, i, s)?, GFP_KERNEL)?;
    }
    Ok(out)
}

/// The fences the WAIT sync ops of the ioctl `ioctl` name.
fn wait_fences(ioctl: &str, file: &File, syncs: &[SyncOp]) -> Result<KVec<Dep>> {
    let mut out = KVec::new();
    for s in syncs.iter().filter(|s| !s.signal) {
        let fence = syncobj::find_fence(file, s.handle, s.point).inspect_err(|e| {
            pr_debug!(
                "ferrite: {}: WAIT on syncobj {} point {}: {:?}\n",
                ioctl,
                s.handle,
                s.point,
                e
            );
        })?;
        out.push(
            Dep {
                fence,
                explicit: true,
            },
            GFP_KERNEL,
        )?;
    }
    Ok(out)
}

/// SIGNAL sync ops, looked up and with their chain nodes, before the work
/// starts: after it, installing the fence cannot fail.
struct Signals(KVec<(SyncObj, Option<ChainNode>, u64)>);

impl Signals {
    fn prepare(ioctl: &str, file: &File, syncs: &[SyncOp]) -> Result<Self> {
        let mut out = KVec::new();
        for s in syncs.iter().filter(|s| s.signal) {
            let obj = SyncObj::lookup(file, s.handle).inspect_err(|e| {
                pr_debug!(
                    "ferrite: {}: SIGNAL of syncobj {}: {:?}\n",
                    ioctl,
                    s.handle,
                    e
                );
            })?;
            let chain = if s.point != 0 {
                Some(ChainNode::new()?)
            } else {
                None
            };
            out.push((obj, chain, s.point), GFP_KERNEL)?;
        }
        Ok(Self(out))
    }

    fn install(self, fence: &Fence) {
        for (obj, chain, point) in self.0 {
            match chain {
                Some(c) => obj.add_point(c, fence, point),
                None => obj.replace_fence(Some(fence)),
            }
        }
    }
}

/// Names of the fences of synchronous operations (VM_BIND).
/// A signalled fence, for operations done before the ioctl returns.
fn done_fence() -> Result<ARef<Fence>> {
    let f = FenceContext::<crate::bind::BindTimeline>::new().fence(1, GFP_KERNEL)?;
    let out = f.fence();
    f.signal();
    Ok(out)
}

/// Wait for `deps`, interruptibly; an explicit one that failed fails the
/// caller.
fn wait_all(deps: &[Dep]) -> Result {
    for d in deps {
        d.fence.wait(true, None)?;
        if d.explicit {
            d.fence.status()?;
        }
    }
    Ok(())
}

/// Check a VM_BIND range (of any operation: BO, userptr, NULL, UNMAP):
/// aligned to the bind granule (the CPU page, which a GPU-page alignment
/// does not satisfy where the CPU page is larger), not empty, inside the
/// user range.
fn check_va(va: u64, size: u64) -> Result {
    let Some(end) = va.checked_add(size) else {
        pr_debug!(
            "ferrite: VM_BIND: va {:#x} + size {:#x} overflows\n",
            va,
            size
        );
        return Err(EINVAL);
    };
    let align = BIND_ALIGN as u64;
    if va % align != 0 || size % align != 0 {
        pr_debug!(
            "ferrite: VM_BIND: range [{:#x}, {:#x}) not aligned to the CPU page ({:#x} bytes)\n",
            va,
            end,
            align
        );
        return Err(EINVAL);
    }
    if size == 0 || va < USER_VA_START || end > USER_VA_END {
        pr_debug!(
            "ferrite: VM_BIND: range [{:#x}, {:#x}) empty or outside the user range\n",
            va,
            end
        );
        return Err(EINVAL);
    }
    Ok(())
}

/// The page protection of a MAP's flags.
fn bind_prot(flags: u32) -> u32 {
    use kernel::iommu::pgtable::prot;
    let mut p = prot::READ;
    if flags & uapi::DRM_FERRITE_VM_BIND_READONLY == 0 {
        p |= prot::WRITE;
    }
    if flags & uapi::DRM_FERRITE_VM_BIND_NOEXEC != 0 {
        p |= prot::NOEXEC;
    }
    p
}

impl FileData {
    /// The VM `id` names: an explicit VM of this file, or for
    /// DRM_FERRITE_VM_PROCESS the calling process's VM on this device.
    fn vm(
        &self,
        id: u32,
        dev: &FerriteDevice<Registered>,
        reg: &RegistrationData<'_>,
    ) -> Result<Arc<Vm>> {
        if id != uapi::DRM_FERRITE_VM_PROCESS {
            return self.vms.lock().get(id);
        }
        let task = kernel::current!();
        let mm = task.mm().ok_or(EINVAL)?;
        let mut pvs = self.process_vms.lock();
        if let Some(r) = pvs.iter().find(|r| r.is_for(mm)) {
            return Ok(r.vm.clone());
        }
        let r = reg.gpu.process_vm(mm, dev, bound(dev))?;
        let vm = r.vm.clone();
        pvs.push(r, GFP_KERNEL)?;
        Ok(vm)
    }

    /// DRM_IOCTL_FERRITE_VM_CREATE.
    pub(crate) fn vm_create(
        dev: &FerriteDevice<Registered>,
        reg: &RegistrationData<'_>,
        req: &mut uapi::drm_ferrite_vm_create,
        file: &File,
    ) -> Result<u32> {
        if req.flags & !uapi::DRM_FERRITE_VM_CREATE_MIRROR != 0 {
            pr_debug!("ferrite: VM_CREATE: unknown flags {:#x}\n", req.flags);
            return Err(EINVAL);
        }
        // The VM belongs to the creating process (userptrs, mirroring).
        let task = kernel::current!();
        let mm = task.mm().map(|m| &**m);
        let mirror_end = if req.flags & uapi::DRM_FERRITE_VM_CREATE_MIRROR != 0 {
            if !crate::svm::can_mirror(&reg.gpu, bound(dev)) {
                pr_debug!(
                    "ferrite: VM_CREATE: this device cannot mirror (DMA bounced or not \
                     coherent, or no stall or preemption)\n"
                );
                return Err(EOPNOTSUPP);
            }
            let Some(mm) = mm else {
                pr_debug!("ferrite: VM_CREATE: mirror of a task without an mm\n");
                return Err(EFAULT);
            };
            Some(crate::svm::mirror_end(mm))
        } else {
            None
        };
        let vm = Vm::new(&reg.gpu, dev, bound(dev), mm, mirror_end)?;
        let (ms, me) = vm.mirror.as_ref().map_or((0, 0), |m| (m.start, m.end));
        req.vm_id = file.inner().vms.lock().insert(vm).inspect_err(|e| {
            pr_debug!("ferrite: VM_CREATE: {} VMs already: {:?}\n", MAX_VMS, e);
        })?;
        req.mirror_start = ms;
        req.mirror_end = me;
        Ok(0)
    }

    /// DRM_IOCTL_FERRITE_VM_DESTROY.
    pub(crate) fn vm_destroy(
        _dev: &FerriteDevice<Registered>,
        _reg: &RegistrationData<'_>,
        req: &mut uapi::drm_ferrite_vm_destroy,
        file: &File,
    ) -> Result<u32> {
        if req.pad != 0 || req.vm_id == uapi::DRM_FERRITE_VM_PROCESS {
            pr_debug!(
                "ferrite: VM_DESTROY: pad {:#x} or the process VM (id {})\n",
                req.pad,
                req.vm_id
            );
            return Err(EINVAL);
        }
        let data = file.inner();
        let queues = data.queues.lock();
        let mut vms = data.vms.lock();
        let vm = vms
            .get(req.vm_id)
            .inspect_err(|_| pr_debug!("ferrite: VM_DESTROY: no VM {}\n", req.vm_id))?;
        if queues.iter().any(|q| Arc::ptr_eq(&q.vm, &vm)) {
            pr_debug!("ferrite: VM_DESTROY: VM {} has queues\n", req.vm_id);
            return Err(EBUSY);
        }
        vms.remove(req.vm_id)?;
        Ok(0)
    }

    /// DRM_IOCTL_FERRITE_VM_BIND.
    pub(crate) fn vm_bind(
        dev: &FerriteDevice<Registered>,
        reg: &RegistrationData<'_>,
        req: &mut uapi::drm_ferrite_vm_bind,
        file: &File,
    ) -> Result<u32> {
        if req.flags & !uapi::DRM_FERRITE_VM_BIND_ASYNC != 0 {
            pr_debug!("ferrite: VM_BIND: unknown flags {:#x}\n", req.flags);
            return Err(EINVAL);
        }
        let async_ = req.flags & uapi::DRM_FERRITE_VM_BIND_ASYNC != 0;
        let mut lap = Instant::now();
        let null_ok = reg.gpu.info.features & crate::regs::FEATURE_NULL_APERTURE != 0;
        let vm = file.inner().vm(req.vm_id, dev, reg).inspect_err(|e| {
            pr_debug!("ferrite: VM_BIND: VM {}: {:?}\n", req.vm_id, e);
        })?;
        let raw = read_array::<VmBindOp>("VM_BIND", &req.ops)?;
        let mut ops = KVec::with_capacity(raw.len(), GFP_KERNEL)?;
        for b in raw.iter() {
            let uapi::drm_ferrite_vm_bind_op {
                op,
                flags,
                handle,
                pad,
                bo_offset,
                va,
                size,
            } = b.0;
            if pad != 0 {
                pr_debug!("ferrite: VM_BIND: non-zero pad\n");
                return Err(EINVAL);
            }
            if op == uapi::drm_ferrite_vm_bind_op_type_DRM_FERRITE_VM_BIND_OP_SYNC_ONLY {
                if flags != 0 || handle != 0 || bo_offset != 0 || va != 0 || size != 0 {
                    pr_debug!("ferrite: VM_BIND: SYNC_ONLY with non-zero fields\n");
                    return Err(EINVAL);
                }
                ops.push(BindOp::SyncOnly, GFP_KERNEL)?;
                continue;
            }
            check_va(va, size)?;
            let op = match op {
                uapi::drm_ferrite_vm_bind_op_type_DRM_FERRITE_VM_BIND_OP_MAP
                    if flags & uapi::DRM_FERRITE_VM_BIND_USERPTR != 0 =>
                {
                    let known = uapi::DRM_FERRITE_VM_BIND_READONLY
                        | uapi::DRM_FERRITE_VM_BIND_NOEXEC
                        | uapi::DRM_FERRITE_VM_BIND_USERPTR;
                    if flags & !known != 0 || handle != 0 || bo_offset != 0 {
                        pr_debug!(
                            "ferrite: VM_BIND: userptr with flags {:#x}, a handle or an offset\n",
                            flags
                        );
                        return Err(EINVAL);
                    }
                    if async_ {
                        pr_debug!("ferrite: VM_BIND: userptr in an asynchronous bind\n");
                        return Err(EINVAL);
                    }
                    BindOp::MapUser {
                        va,
                        size,
                        prot: bind_prot(flags),
                    }
                }
                uapi::drm_ferrite_vm_bind_op_type_DRM_FERRITE_VM_BIND_OP_MAP
                    if flags & uapi::DRM_FERRITE_VM_BIND_NULL != 0 =>
                {
                    let known = uapi::DRM_FERRITE_VM_BIND_READONLY
                        | uapi::DRM_FERRITE_VM_BIND_NOEXEC
                        | uapi::DRM_FERRITE_VM_BIND_NULL;
                    if flags & !known != 0 || handle != 0 || bo_offset != 0 || !null_ok {
                        pr_debug!(
                            "ferrite: VM_BIND: NULL with flags {:#x}, a handle or an offset, \
                             or no null aperture\n",
                            flags
                        );
                        return Err(EINVAL);
                    }
                    BindOp::MapNull {
                        va,
                        size,
                        prot: bind_prot(flags),
                    }
                }
                uapi::drm_ferrite_vm_bind_op_type_DRM_FERRITE_VM_BIND_OP_MAP => {
                    let known =
                        uapi::DRM_FERRITE_VM_BIND_READONLY | uapi::DRM_FERRITE_VM_BIND_NOEXEC;
                    if flags & !known != 0 {
                        pr_debug!("ferrite: VM_BIND: MAP with unknown flags {:#x}\n", flags);
                        return Err(EINVAL);
                    }
                    if bo_offset % BIND_ALIGN as u64 != 0 {
                        pr_debug!(
                            "ferrite: VM_BIND: BO offset {:#x} not CPU-page ({:#x}) aligned\n",
                            bo_offset,
                            BIND_ALIGN
                        );
                        return Err(EINVAL);
                    }
                    let bo = gem::lookup(file, handle)
                        .inspect_err(|_| pr_debug!("ferrite: VM_BIND: no handle {}\n", handle))?;
                    if bo.private_vm != 0 && bo.private_vm != vm.id {
                        pr_debug!(
                            "ferrite: VM_BIND: BO {} is private to VM {}, not {}\n",
                            bo.meta.id,
                            bo.private_vm,
                            vm.id
                        );
                        return Err(EINVAL);
                    }
                    let end = bo_offset.checked_add(size);
                    if end.is_none_or(|e| e > bo.size() as u64) {
                        pr_debug!(
                            "ferrite: VM_BIND: offset {:#x} + size {:#x} beyond the BO\n",
                            bo_offset,
                            size
                        );
                        return Err(EINVAL);
                    }
                    // Pinned now: recording the bind needs its pages' bus
                    // addresses.
                    gem::pinned_sgt(&bo, bound(dev))?;
                    BindOp::Map {
                        bo,
                        bo_offset,
                        va,
                        size,
                        prot: bind_prot(flags),
                    }
                }
                uapi::drm_ferrite_vm_bind_op_type_DRM_FERRITE_VM_BIND_OP_UNMAP => {
                    if flags != 0 || handle != 0 || bo_offset != 0 {
                        pr_debug!("ferrite: VM_BIND: UNMAP with flags, a handle or an offset\n");
                        return Err(EINVAL);
                    }
                    BindOp::Unmap { va, size }
                }
                _ => {
                    pr_debug!("ferrite: VM_BIND: unknown op {}\n", op);
                    return Err(EINVAL);
                }
            };
            if let Some(m) = vm.mirror.as_ref() {
                crate::svm::check_bind(m, &op)?;
            }
            ops.push(op, GFP_KERNEL)?;
        }
        let syncs = parse_syncs("VM_BIND", &req.syncs)?;
        let signals = Signals::prepare("VM_BIND", file, &syncs)?;
        let deps = wait_fences("VM_BIND", file, &syncs)?;
        let refused = |e: &Error| pr_debug!("ferrite: VM_BIND: VM {}: {:?}\n", vm.id, e);
        if async_ {
            let (fence, ret) = vm.bind_async(bound(dev), &ops, deps).inspect_err(refused)?;
            ret.inspect_err(refused)?;
            signals.install(&fence);
            return Ok(0);
        }
        let prof = &reg.gpu.stats.bind_profile;
        prof.lap(BindPhase::Parse, &mut lap);
        wait_all(&deps).inspect_err(|e| pr_debug!("ferrite: VM_BIND: a WAIT fence: {:?}\n", e))?;
        vm.bind(bound(dev), &ops, &mut lap).inspect_err(refused)?;
        prof.calls.add(1, Relaxed);
        if !signals.0.is_empty() {
            let done = done_fence()?;
            signals.install(&done);
        }
        Ok(0)
    }

    /// DRM_IOCTL_FERRITE_VM_GET_STATE.
    pub(crate) fn vm_get_state(
        dev: &FerriteDevice<Registered>,
        reg: &RegistrationData<'_>,
        req: &mut uapi::drm_ferrite_vm_get_state,
        file: &File,
    ) -> Result<u32> {
        if req.pad != 0 {
            pr_debug!("ferrite: VM_GET_STATE: non-zero pad\n");
            return Err(EINVAL);
        }
        let vm = file.inner().vm(req.vm_id, dev, reg).inspect_err(|e| {
            pr_debug!("ferrite: VM_GET_STATE: VM {}: {:?}\n", req.vm_id, e);
        })?;
        req.state = if vm.is_unusable() {
            uapi::drm_ferrite_vm_state_DRM_FERRITE_VM_STATE_UNUSABLE
        } else {
            uapi::drm_ferrite_vm_state_DRM_FERRITE_VM_STATE_USABLE
        };
        Ok(0)
    }

    /// DRM_IOCTL_FERRITE_QUEUE_CREATE.
    pub(crate) fn queue_create(
        dev: &FerriteDevice<Registered>,
        reg: &RegistrationData<'_>,
        req: &mut uapi::drm_ferrite_queue_create,
        file: &File,
    ) -> Result<u32> {
        if req.flags & !uapi::DRM_FERRITE_QUEUE_CREATE_ERRORS_FATAL != 0 || req.pad != 0 {
            pr_debug!(
                "ferrite: QUEUE_CREATE: unknown flags {:#x} or pad\n",
                req.flags
            );
            return Err(EINVAL);
        }
        if req.timeout_ms > MAX_TIMEOUT_MS {
            pr_debug!(
                "ferrite: QUEUE_CREATE: timeout {} ms too long\n",
                req.timeout_ms
            );
            return Err(EINVAL);
        }
        let prio = Priority::from_uapi(req.priority).inspect_err(|_| {
            pr_debug!("ferrite: QUEUE_CREATE: unknown priority {}\n", req.priority);
        })?;
        if prio.privileged() && !may_use_high_priority(file) {
            pr_debug!(
                "ferrite: QUEUE_CREATE: priority {:?} needs CAP_SYS_NICE\n",
                prio
            );
            return Err(EPERM);
        }
        let data = file.inner();
        let vm = data.vm(req.vm_id, dev, reg).inspect_err(|e| {
            pr_debug!("ferrite: QUEUE_CREATE: VM {}: {:?}\n", req.vm_id, e);
        })?;
        crate::svm::check_process(&vm, "QUEUE_CREATE")?;
        let mut queues = data.queues.lock();
        if queues.iter().count() >= MAX_QUEUES {
            pr_debug!("ferrite: QUEUE_CREATE: {} queues already\n", MAX_QUEUES);
            return Err(ENOSPC);
        }
        let fatal = req.flags & uapi::DRM_FERRITE_QUEUE_CREATE_ERRORS_FATAL != 0;
        data.rings
            .store(reg.gpu.sched.lock().num_rings() as u32, Relaxed);
        let q = Queue::new(&reg.gpu, &vm, &data.stats, prio, fatal, req.timeout_ms)?;
        match queues.insert(q.clone()) {
            Ok(id) => {
                req.queue_id = id;
                Ok(0)
            }
            Err(e) => {
                q.close();
                Err(e)
            }
        }
    }

    /// DRM_IOCTL_FERRITE_QUEUE_DESTROY.
    pub(crate) fn queue_destroy(
        _dev: &FerriteDevice<Registered>,
        _reg: &RegistrationData<'_>,
        req: &mut uapi::drm_ferrite_queue_destroy,
        file: &File,
    ) -> Result<u32> {
        if req.pad != 0 {
            pr_debug!("ferrite: QUEUE_DESTROY: pad {:#x}\n", req.pad);
            return Err(EINVAL);
        }
        let q = file
            .inner()
            .queues
            .lock()
            .remove(req.queue_id)
            .inspect_err(|_| pr_debug!("ferrite: QUEUE_DESTROY: no queue {}\n", req.queue_id))?;
        q.close();
        Ok(0)
    }

    /// DRM_IOCTL_FERRITE_SUBMIT.
    pub(crate) fn submit(
        dev: &FerriteDevice<Registered>,
        reg: &RegistrationData<'_>,
        req: &mut uapi::drm_ferrite_submit,
        file: &File,
    ) -> Result<u32> {
        if req.flags != 0 || req.pad != 0 {
            pr_debug!(
                "ferrite: SUBMIT: flags {:#x} or pad {:#x}\n",
                req.flags,
                req.pad
            );
            return Err(EINVAL);
        }
        let q = file
            .inner()
            .queues
            .lock()
            .get(req.queue_id)
            .inspect_err(|_| pr_debug!("ferrite: SUBMIT: no queue {}\n", req.queue_id))?;
        if q.vm.is_unusable() {
            pr_debug!("ferrite: SUBMIT: VM {} is unusable\n", q.vm.id);
            return Err(EIO);
        }
        if req.cmd_size == 0 || req.cmd_size % 4 != 0 || req.cmd_size > MAX_CMD_SIZE {
            pr_debug!(
                "ferrite: SUBMIT: cmd_size {:#x}: zero, unaligned or above {:#x}\n",
                req.cmd_size,
                MAX_CMD_SIZE
            );
            return Err(EINVAL);
        }
        let cmd_end = req.cmd_va.checked_add(u64::from(req.cmd_size));
        if req.cmd_va % 4 != 0
            || req.cmd_va < USER_VA_START
            || cmd_end.is_none_or(|e| e > USER_VA_END)
        {
            pr_debug!(
                "ferrite: SUBMIT: cmd_va {:#x} + {:#x}: unaligned or outside the user range\n",
                req.cmd_va,
                req.cmd_size
            );
            return Err(EINVAL);
        }
        let syncs = parse_syncs("SUBMIT", &req.syncs)?;
        if q.vm.mirror.is_some() {
            crate::svm::check_process(&q.vm, "SUBMIT")?;
            // Long-running: its fences stay in the kernel (see `crate::svm`).
            if syncs.iter().any(|s| s.signal) || req.bos.count != 0 {
                pr_debug!(
                    "ferrite: SUBMIT: a mirror VM's job takes no SIGNAL sync and no BO \
                     (its completion is a user fence)\n"
                );
                return Err(EINVAL);
            }
        }
        let signals = Signals::prepare("SUBMIT", file, &syncs)?;
        let mut deps = wait_fences("SUBMIT", file, &syncs)?;

        let raw = read_array::<BoRef>("SUBMIT", &req.bos)?;
        for (i, b) in raw.iter().enumerate() {
            if b.0.flags & !uapi::DRM_FERRITE_BO_REF_WRITE != 0 {
                pr_debug!(
                    "ferrite: SUBMIT: BO ref {}: unknown flags {:#x}\n",
                    i,
                    b.0.flags
                );
                return Err(EINVAL);
            }
        }
        // Room for every listed BO and the VM's reservation object: the
        // lookup runs under the file's handle table lock, one hold for the
        // whole list, and takes a reference only to the BOs the job keeps.
        let mut bos = KVec::with_capacity(raw.len() + 1, GFP_KERNEL)?;
        let mut writes = KVec::with_capacity(raw.len() + 1, GFP_KERNEL)?;
        // Whether a VM-private BO is listed, and whether one is written.
        let mut private: Option<bool> = None;
        let mut next = 0;
        gem::lookup_each(file, raw.iter().map(|b| b.0.handle), |_, bo| {
            let write = raw
                .get(next)
                .is_some_and(|b| b.0.flags & uapi::DRM_FERRITE_BO_REF_WRITE != 0);
            next += 1;
            if bo.private_vm != 0 {
                // Its reservation object is the VM's: counted once below.
                // The job keeps no reference to the BO: a job reaches
                // memory only through the VM's mappings (an unbind tears
                // them down before the pages go), and the VM's
                // reservation object lives as long as the job's VM.
                if bo.private_vm != q.vm.id {
                    pr_debug!(
                        "ferrite: SUBMIT: BO {} is private to VM {}, not {}\n",
                        bo.meta.id,
                        bo.private_vm,
                        q.vm.id
                    );
                    return Err(EINVAL);
                }
                private = Some(private.unwrap_or(false) | write);
                return Ok(());
            }
            // Cannot fail: room was made above.
            bos.push_within_capacity(ARef::from(bo))
                .map_err(|_| ENOMEM)?;
            writes.push_within_capacity(write).map_err(|_| ENOMEM)?;
            Ok(())
        })
        .inspect_err(|e| {
            if *e == ENOENT {
                pr_debug!("ferrite: SUBMIT: a BO handle names no BO\n");
            }
        })?;
        // The VM's reservation object, last and never waited for: every
        // job's fence goes there, as bookkeeping (userptr invalidations
        // wait for the VM's jobs through it), or for the VM's private BOs
        // as a read or a write (private BOs have no implicit sync between
        // jobs, but GEM_SYNC on them waits).
        let private_at = bos.len();
        bos.push_within_capacity(q.vm.resv_obj.clone())
            .map_err(|_| ENOMEM)?;
        writes
            .push_within_capacity(private.unwrap_or(false))
            .map_err(|_| ENOMEM)?;
        // What may allocate DMA memory or take the VM's lock comes before
        // the reservation locks: a job slot with its ring buffer, and the
        // userptrs whose pages changed, mapped again and given to the
        // device.
        let slot = q.prepare(bound(dev)).inspect_err(|e| {
            pr_debug!("ferrite: SUBMIT: queue {}: {:?}\n", req.queue_id, e);
        })?;
        // Read before the userptrs are leased: if an invalidation gives up
        // waiting for the VM's jobs after this, the job never starts.
        let gen = q.vm.hw.gen.load(Relaxed);
        let userptrs = q.vm.prepare_userptrs(bound(dev))?;
        let mut resvs = KVec::with_capacity(bos.len(), GFP_KERNEL)?;
        for bo in bos.iter() {
            resvs.push(gem::resv_of(bo), GFP_KERNEL)?;
        }
        // Every BO's reservation object locked at once: the conflicting
        // fences are read, and the job's fence published, under one hold,
        // so two SUBMITs that write one BO see each other.
        let mut locked = LockedResvs::lock(&resvs)?;
        for (i, write) in writes.iter().enumerate().take(private_at) {
            for f in locked.fences(i, Usage::wait_for(*write))? {
                let fence = ARef::from(f);
                // Already over, whatever its outcome: nothing to wait for.
                if !fence.is_signaled() {
                    deps.push(
                        Dep {
                            fence,
                            explicit: false,
                        },
                        GFP_KERNEL,
                    )?;
                }
            }
        }
        let slots = locked.reserve()?;
        let refs: KVec<ARef<Bo>> = {
            let mut v = KVec::with_capacity(bos.len(), GFP_KERNEL)?;
            for bo in bos.iter() {
                v.push(bo.clone(), GFP_KERNEL)?;
            }
            v
        };
        let job = Job {
            vm: q.vm.clone(),
            cmd_va: req.cmd_va,
            cmd_size: req.cmd_size,
            _bos: refs,
            userptrs,
            gen,
        };
        let (fence, run) = q.submit(slot, job, deps)?;
        // Cannot fail: the slots are reserved and the locks held.
        slots.publish(&fence, |i| {
            if i == private_at && private.is_none() {
                Usage::Bookkeep
            } else {
                Usage::rw(writes.get(i).copied().unwrap_or(true))
            }
        });
        drop(locked);
        if run {
            // The queue became runnable: give it a ring (or preempt for it)
            // now, in the submitter's context, rather than from a work item.
            crate::sched::schedule(&reg.gpu);
        }
        signals.install(&fence);
        Ok(0)
    }

    /// DRM_IOCTL_FERRITE_GEM_SYNC.
    pub(crate) fn gem_sync(
        dev: &FerriteDevice<Registered>,
        reg: &RegistrationData<'_>,
        req: &mut uapi::drm_ferrite_gem_sync,
        file: &File,
    ) -> Result<u32> {
        let begin = req.flags & uapi::DRM_FERRITE_GEM_SYNC_BEGIN != 0;
        let end = req.flags & uapi::DRM_FERRITE_GEM_SYNC_END != 0;
        let read = req.flags & uapi::DRM_FERRITE_GEM_SYNC_READ != 0;
        let write = req.flags & uapi::DRM_FERRITE_GEM_SYNC_WRITE != 0;
        let known = uapi::DRM_FERRITE_GEM_SYNC_BEGIN
            | uapi::DRM_FERRITE_GEM_SYNC_END
            | uapi::DRM_FERRITE_GEM_SYNC_READ
            | uapi::DRM_FERRITE_GEM_SYNC_WRITE;
        if req.flags & !known != 0 || begin == end || !(read || write) {
            pr_debug!(
                "ferrite: GEM_SYNC: flags {:#x}: unknown bits, not one of BEGIN and END, \
                 or neither READ nor WRITE\n",
                req.flags
            );
            return Err(EINVAL);
        }
        let bo = gem::lookup(file, req.handle)
            .inspect_err(|_| pr_debug!("ferrite: GEM_SYNC: no handle {}\n", req.handle))?;
        let dev = bound(dev);
        // The BO's DMA mapping (made on first use; mapping it now makes the
        // CPU's data visible to the device at once).
        let sgt = gem::pinned_sgt(&bo, dev)?;
        if begin {
            // The jobs that write the BO (for a CPU read), or that use it
            // at all (for a CPU write), must be done, failed or not: the
            // CPU takes the memory either way (a job's error is read from
            // its syncobj or QUEUE_GET_STATE).
            for f in gem::resv_of(&bo).fences(Usage::wait_for(write))?.iter() {
                f.wait(true, None)?;
            }
            // Write the GPU cache back to memory (jobs do so when they end;
            // this covers work that did not finish with a flush).
            reg.gpu.clean_cache()?;
            let dir = if read {
                DataDirection::FromDevice
            } else {
                DataDirection::ToDevice
            };
            // SAFETY: `sgt` is mapped for `dev` (bidirectionally) while
            // `dev` is bound, as it is here: by the shmem helper, or for an
            // imported BO by its exporter (the attachment's mapping, which
            // is this device's to sync; both unmapped at unbind); the
            // device does not use the BO (its jobs are done) until the
            // matching END.
            unsafe { sgt.dma_sync_for_cpu(dev, dir) };
        } else {
            let dir = if write {
                DataDirection::ToDevice
            } else {
                DataDirection::FromDevice
            };
            // SAFETY: as above; the CPU hands the BO back to the device.
            unsafe { sgt.dma_sync_for_device(dev, dir) };
        }
        Ok(0)
    }

    /// DRM_IOCTL_FERRITE_QUEUE_GET_STATE.
    pub(crate) fn queue_get_state(
        _dev: &FerriteDevice<Registered>,
        _reg: &RegistrationData<'_>,
        req: &mut uapi::drm_ferrite_queue_get_state,
        file: &File,
    ) -> Result<u32> {
        if req.flags & !uapi::DRM_FERRITE_QUEUE_STATE_CLEAR != 0 {
            pr_debug!("ferrite: QUEUE_GET_STATE: flags {:#x}\n", req.flags);
            return Err(EINVAL);
        }
        let q = file
            .inner()
            .queues
            .lock()
            .get(req.queue_id)
            .inspect_err(|_| pr_debug!("ferrite: QUEUE_GET_STATE: no queue {}\n", req.queue_id))?;
        let st = q.state(req.flags & uapi::DRM_FERRITE_QUEUE_STATE_CLEAR != 0);
        let r = st.rec;
        req.state = r.state;
        req.error = r.error;
        req.fault_addr = r.fault_addr;
        req.fault_status = r.fault_status;
        req.failed_jobs = r.failed_jobs;
        req.reset = r.reset;
        req.banned = u32::from(st.banned);
        req.faults = r.faults;
        req.preemptions = st.preemptions;
        req.ring_time_ns = st.ring_ns;
        Ok(0)
    }
}

#[kunit_tests(ferrite_args)]
mod tests {
    use super::*;

    /// The bytes of an array in kernel memory, read as a `UserSliceReader`
    /// of their length reads user memory: `EFAULT` past their end.
    struct Bytes<'a>(&'a [u8]);

    impl ArraySource for Bytes<'_> {
        fn read_slice(&mut self, out: &mut [u8]) -> Result {
            if out.len() > self.0.len() {
                return Err(EFAULT);
            }
            let (head, rest) = self.0.split_at(out.len());
            out.copy_from_slice(head);
            self.0 = rest;
            Ok(())
        }
    }

    fn obj_array(count: u32, stride: u32) -> uapi::drm_ferrite_obj_array {
        uapi::drm_ferrite_obj_array {
            count,
            stride,
            array: 0x1000,
        }
    }

    /// Parse `count` elements of `stride` bytes from `bytes`, which must be
    /// as long as the array (else `ERANGE`).
    fn parse<T: ArrayElem>(count: u32, stride: u32, bytes: &[u8]) -> Result<KVec<T>> {
        parse_array("TEST", &obj_array(count, stride), |total| {
            if total != bytes.len() {
                return Err(ERANGE);
            }
            Ok(Bytes(bytes))
        })
    }

    /// The bytes of `words`, each of `size` (4 or 8) bytes, in native
    /// order (as userspace lays the structure out).
    fn bytes_of(words: &[(usize, u64)]) -> Result<KVec<u8>> {
        let mut out = KVec::new();
        for &(size, v) in words {
            match size {
                4 => out.extend_from_slice(&(v as u32).to_ne_bytes(), GFP_KERNEL)?,
                _ => out.extend_from_slice(&v.to_ne_bytes(), GFP_KERNEL)?,
            }
        }
        Ok(out)
    }

    fn zeros(n: usize) -> Result<KVec<u8>> {
        Ok(KVec::from_elem(0u8, n, GFP_KERNEL)?)
    }

    #[test]
    fn array_at_the_element_size() -> Result {
        let bytes = bytes_of(&[(4, 1), (4, 0), (4, 2), (4, 1), (4, 3), (4, 0)])?;
        let refs = parse::<BoRef>(3, 8, &bytes)?;
        assert_eq!(refs.len(), 3);
        for (i, r) in refs.iter().enumerate() {
            assert_eq!(r.0.handle, i as u32 + 1);
            assert_eq!(r.0.flags, (i % 2) as u32);
        }
        let op = [
            (4, 1),
            (4, 2),
            (4, 3),
            (4, 0),
            (8, 0x5000),
            (8, 0x10_0000),
            (8, 0x2000),
        ];
        let ops = parse::<VmBindOp>(1, 40, &bytes_of(&op)?)?;
        let o = &ops[0].0;
        assert_eq!((o.op, o.flags, o.handle, o.pad), (1, 2, 3, 0));
        assert_eq!((o.bo_offset, o.va, o.size), (0x5000, 0x10_0000, 0x2000));
        Ok(())
    }

    #[test]
    fn shorter_stride_leaves_later_fields_zero() -> Result {
        // An older VM_BIND op that ends after `bo_offset`, twice.
        let mut bytes = bytes_of(&[(4, 1), (4, 2), (4, 3), (4, 0), (8, 0x5000)])?;
        bytes.extend_from_slice(
            &bytes_of(&[(4, 2), (4, 0), (4, 0), (4, 0), (8, 0)])?,
            GFP_KERNEL,
        )?;
        let ops = parse::<VmBindOp>(2, 24, &bytes)?;
        let (a, b) = (&ops[0].0, &ops[1].0);
        assert_eq!((a.op, a.flags, a.handle, a.bo_offset), (1, 2, 3, 0x5000));
        assert_eq!((a.va, a.size), (0, 0));
        assert_eq!((b.op, b.va, b.size), (2, 0, 0));
        // A sync op without its point.
        let syncs = parse::<SyncOpArg>(1, 8, &bytes_of(&[(4, 1), (4, 7)])?)?;
        assert_eq!(
            (syncs[0].0.flags, syncs[0].0.handle, syncs[0].0.point),
            (1, 7, 0)
        );
        Ok(())
    }

    #[test]
    fn longer_stride_needs_a_zero_tail() -> Result {
        // Two sync ops of a later version, 8 bytes longer.
        let op = |handle: u64| bytes_of(&[(4, 3), (4, handle), (8, 9), (8, 0)]);
        let mut bytes = op(4)?;
        bytes.extend_from_slice(&op(5)?, GFP_KERNEL)?;
        let syncs = parse::<SyncOpArg>(2, 24, &bytes)?;
        assert_eq!((syncs[0].0.handle, syncs[1].0.handle), (4, 5));
        assert_eq!((syncs[1].0.flags, syncs[1].0.point), (3, 9));
        // A non-zero byte in the tail of the second element.
        bytes[47] = 1;
        assert_eq!(parse::<SyncOpArg>(2, 24, &bytes).err(), Some(EINVAL));
        // The longest stride: a tail read in several pieces, checked to its
        // last byte.
        let mut bytes = op(4)?;
        bytes.extend_from_slice(&zeros(4096 - 24)?, GFP_KERNEL)?;
        assert_eq!(parse::<SyncOpArg>(1, 4096, &bytes)?[0].0.handle, 4);
        bytes[4095] = 0x80;
        assert_eq!(parse::<SyncOpArg>(1, 4096, &bytes).err(), Some(EINVAL));
        Ok(())
    }

    #[test]
    fn counts_and_strides_out_of_range() -> Result {
        let mut opened = false;
        let mut shape = |count: u32, stride: u32| -> Result<usize> {
            parse_array::<SyncOpArg, _>("TEST", &obj_array(count, stride), |_| {
                opened = true;
                Ok(Bytes(&[]))
            })
            .map(|v| v.len())
        };
        // More than the header's limit, whatever the stride.
        assert_eq!(shape(65, 16), Err(EINVAL));
        assert_eq!(shape(u32::MAX, 0), Err(EINVAL));
        // No elements: the stride is not looked at, nothing is read.
        assert_eq!(shape(0, 0), Ok(0));
        assert_eq!(shape(0, 3), Ok(0));
        // Strides that are not a multiple of 4 from 4 to 4096.
        for stride in [0, 2, 6, 4097, 4100, u32::MAX] {
            assert_eq!(shape(1, stride), Err(EINVAL));
        }
        assert!(!opened);
        // The limits themselves.
        let bytes = zeros(1024 * 8)?;
        assert_eq!(parse::<BoRef>(1024, 8, &bytes)?.len(), 1024);
        assert_eq!(parse::<BoRef>(1025, 8, &bytes).err(), Some(EINVAL));
        assert_eq!(parse::<BoRef>(2, 4096, &bytes)?.len(), 2);
        assert_eq!(parse::<BoRef>(1024, 4, &bytes[..4096])?.len(), 1024);
        Ok(())
    }

    #[test]
    fn unreadable_array_fails_with_efault() -> Result {
        let bytes = zeros(40)?;
        let short = |stride: u32| {
            parse_array::<VmBindOp, _>("TEST", &obj_array(2, stride), |_| Ok(Bytes(&bytes))).err()
        };
        // Short at the element size (one copy), at a shorter and at a
        // longer stride (element by element).
        assert_eq!(short(40), Some(EFAULT));
        assert_eq!(short(24), Some(EFAULT));
        assert_eq!(short(48), Some(EFAULT));
        let fails = parse_array::<VmBindOp, Bytes<'_>>("TEST", &obj_array(1, 40), |_| Err(EFAULT));
        assert_eq!(fails.err(), Some(EFAULT));
        // User memory: nothing is mapped at address 0.
        let arr = uapi::drm_ferrite_obj_array {
            count: 1,
            stride: 16,
            array: 0,
        };
        assert_eq!(read_array::<SyncOpArg>("TEST", &arr).err(), Some(EFAULT));
        Ok(())
    }

    #[test]
    fn sync_ops_are_checked() {
        let sync = |flags: u32, point: u64| {
            SyncOp::parse(
                "TEST",
                0,
                &SyncOpArg(uapi::drm_ferrite_sync_op {
                    flags,
                    handle: 7,
                    point,
                }),
            )
            .map(|s| (s.signal, s.handle, s.point))
        };
        let (wait, signal, timeline) = (
            uapi::DRM_FERRITE_SYNC_WAIT,
            uapi::DRM_FERRITE_SYNC_SIGNAL,
            uapi::DRM_FERRITE_SYNC_TIMELINE,
        );
        assert_eq!(sync(wait, 0), Ok((false, 7, 0)));
        assert_eq!(sync(signal, 0), Ok((true, 7, 0)));
        assert_eq!(sync(wait | timeline, 3), Ok((false, 7, 3)));
        assert_eq!(sync(signal | timeline, u64::MAX), Ok((true, 7, u64::MAX)));
        // A point exactly with a timeline; no unknown flag.
        assert_eq!(sync(signal, 3), Err(EINVAL));
        assert_eq!(sync(timeline, 0), Err(EINVAL));
        assert_eq!(sync(1 << 2, 0), Err(EINVAL));
        assert_eq!(sync(u32::MAX, 1), Err(EINVAL));
    }

    #[test]
    fn bind_ranges_are_checked() {
        let page = BIND_ALIGN as u64;
        let gpu_page = GPU_PAGE_SIZE as u64;
        assert_eq!(page, (kernel::page::PAGE_SIZE as u64).max(gpu_page));
        // A GPU page is not enough where the CPU page is larger.
        let gpu_only = if page > gpu_page { Err(EINVAL) } else { Ok(()) };
        assert_eq!(check_va(USER_VA_START + gpu_page, page), gpu_only);
        assert_eq!(check_va(USER_VA_START, page + gpu_page), gpu_only);
        assert_eq!(check_va(USER_VA_START, gpu_page), gpu_only);
        assert_eq!(check_va(USER_VA_START, page), Ok(()));
        assert_eq!(check_va(USER_VA_END - page, page), Ok(()));
        assert_eq!(check_va(USER_VA_START, USER_VA_END - USER_VA_START), Ok(()));
        // Empty, unaligned, outside the user range, overflowing.
        assert_eq!(check_va(USER_VA_START, 0), Err(EINVAL));
        assert_eq!(check_va(USER_VA_START + 8, page), Err(EINVAL));
        assert_eq!(check_va(USER_VA_START, page + 8), Err(EINVAL));
        assert_eq!(check_va(USER_VA_START - page, page), Err(EINVAL));
        assert_eq!(check_va(USER_VA_END - page, 2 * page), Err(EINVAL));
        assert_eq!(check_va(KERNEL_VA_START, page), Err(EINVAL));
        assert_eq!(check_va(u64::MAX - page + 1, page), Err(EINVAL));
    }

    #[test]
    fn bind_flags_give_the_protection() {
        use kernel::iommu::pgtable::prot;
        let (ro, noexec) = (
            uapi::DRM_FERRITE_VM_BIND_READONLY,
            uapi::DRM_FERRITE_VM_BIND_NOEXEC,
        );
        assert_eq!(bind_prot(0), prot::READ | prot::WRITE);
        assert_eq!(bind_prot(ro), prot::READ);
        assert_eq!(bind_prot(noexec), prot::READ | prot::WRITE | prot::NOEXEC);
        assert_eq!(bind_prot(ro | noexec), prot::READ | prot::NOEXEC);
    }
}
