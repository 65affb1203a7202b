// SPDX-License-Identifier: MIT
//! Finding and opening Ferrite GPUs, and the driver's ioctls.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use crate::drm;
use crate::mmap::Mmap;
use crate::uapi;

/// Driver name the Ferrite kernel driver reports.
pub const DRIVER_NAME: &str = "ferrite";

/// The two page sizes of a device (see "CPU pages and GPU pages" in
/// Documentation/gpu/ferrite.rst).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSizes {
    /// The CPU page: BO sizes, mmap, VM_BIND addresses, sizes, offsets.
    pub cpu: u64,
    /// The GPU page: the MMU's granule (4096).
    pub gpu: u64,
}

impl PageSizes {
    /// The granule of VM_BIND (`bind_alignment`): the larger page.
    pub fn bind(&self) -> u64 {
        self.cpu.max(self.gpu)
    }
}

/// An open Ferrite render node.
pub struct Device {
    file: File,
    path: PathBuf,
}

/// `_IOWR('d', DRM_COMMAND_BASE + nr, T)`: the ioctl numbers are checked
/// against the header's DRM_IOCTL_FERRITE_* values in the tests.
pub(crate) const fn iowr<T>(nr: u32) -> u64 {
    (3 << 30)
        | ((std::mem::size_of::<T>() as u64) << 16)
        | ((uapi::DRM_IOCTL_BASE as u64) << 8)
        | (uapi::DRM_COMMAND_BASE as u64 + nr as u64)
}

pub const IOCTL_DEV_QUERY: u64 =
    iowr::<uapi::drm_ferrite_dev_query>(uapi::drm_ferrite_ioctl_id_DRM_FERRITE_DEV_QUERY);
pub const IOCTL_GEM_CREATE: u64 =
    iowr::<uapi::drm_ferrite_gem_create>(uapi::drm_ferrite_ioctl_id_DRM_FERRITE_GEM_CREATE);
pub const IOCTL_GEM_MMAP_OFFSET: u64 = iowr::<uapi::drm_ferrite_gem_mmap_offset>(
    uapi::drm_ferrite_ioctl_id_DRM_FERRITE_GEM_MMAP_OFFSET,
);
pub const IOCTL_BO_SET_LABEL: u64 =
    iowr::<uapi::drm_ferrite_bo_set_label>(uapi::drm_ferrite_ioctl_id_DRM_FERRITE_BO_SET_LABEL);
pub const IOCTL_BO_QUERY_INFO: u64 =
    iowr::<uapi::drm_ferrite_bo_query_info>(uapi::drm_ferrite_ioctl_id_DRM_FERRITE_BO_QUERY_INFO);

/// Where an imported BO comes from (`enum drm_ferrite_bo_import`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoImport {
    /// Not imported: created on this device.
    None,
    /// Exported by another Ferrite device.
    Ferrite,
    /// Exported by another DRM driver's GEM object.
    Drm,
    /// Any other exporter (udmabuf, dma-buf heaps, ...).
    Other,
}

/// What BO_QUERY_INFO reports of a buffer object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoInfo {
    pub size: u64,
    /// `DRM_FERRITE_GEM_CREATE_*` flags it was created with.
    pub create_flags: u32,
    pub import: BoImport,
    /// The label's bytes (without NUL), if it has one.
    pub label: Option<Vec<u8>>,
}

/// A buffer object handle of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bo {
    pub handle: u32,
    pub size: u64,
}

impl Device {
    /// Open the `index`'th Ferrite render node.
    pub fn open(index: usize) -> io::Result<Device> {
        Self::all()?.into_iter().nth(index).ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("no Ferrite GPU #{index}"))
        })
    }

    /// Every Ferrite render node, in minor order.
    pub fn all() -> io::Result<Vec<Device>> {
        let mut out = Vec::new();
        for minor in 128..192 {
            let path = PathBuf::from(format!("/dev/dri/renderD{minor}"));
            let Ok(file) = OpenOptions::new().read(true).write(true).open(&path) else {
                continue;
            };
            let d = Device { file, path };
            if d.version().is_ok_and(|v| v.name == DRIVER_NAME) {
                out.push(d);
            }
        }
        Ok(out)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    pub fn fd(&self) -> std::os::fd::RawFd {
        self.file.as_raw_fd()
    }

    /// DRM_IOCTL_VERSION (through the `drm` crate's [`::drm::Device`]).
    pub fn version(&self) -> io::Result<drm::Version> {
        drm::version(self)
    }

    /// The sysfs directory of the PCI function behind this node.
    pub fn sysfs_dir(&self) -> io::Result<PathBuf> {
        let rdev = self.file.metadata()?.rdev();
        let (maj, min) = (libc::major(rdev), libc::minor(rdev));
        std::fs::canonicalize(format!("/sys/dev/char/{maj}:{min}/device"))
    }

    /// The PCI address (domain:bus:dev.fn) of the GPU.
    pub fn pci_address(&self) -> io::Result<String> {
        Ok(self
            .sysfs_dir()?
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default())
    }

    fn query<T: Default>(&self, ty: u32) -> io::Result<T> {
        let mut v = T::default();
        let mut q = uapi::drm_ferrite_dev_query {
            type_: ty,
            size: std::mem::size_of::<T>() as u32,
            pointer: &mut v as *mut T as u64,
        };
        // SAFETY: q is a drm_ferrite_dev_query pointing at a T that outlives the call.
        unsafe { drm::ioctl(self.fd(), IOCTL_DEV_QUERY, &mut q)? };
        Ok(v)
    }

    /// DEV_QUERY INFO.
    pub fn info(&self) -> io::Result<uapi::drm_ferrite_dev_info> {
        self.query(uapi::drm_ferrite_dev_query_type_DRM_FERRITE_DEV_QUERY_INFO)
    }

    /// DEV_QUERY COUNTERS.
    pub fn counters(&self) -> io::Result<uapi::drm_ferrite_counters> {
        self.query(uapi::drm_ferrite_dev_query_type_DRM_FERRITE_DEV_QUERY_COUNTERS)
    }

    /// DEV_QUERY SCHED (interface 0.2).
    pub fn sched_info(&self) -> io::Result<uapi::drm_ferrite_sched_info> {
        self.query(uapi::drm_ferrite_dev_query_type_DRM_FERRITE_DEV_QUERY_SCHED)
    }

    /// DEV_QUERY TIMESTAMP (0.3): the GPU clock's frequency and one sample
    /// of it with CLOCK_MONOTONIC and CLOCK_MONOTONIC_RAW.
    pub fn timestamp(&self) -> io::Result<uapi::drm_ferrite_timestamp_info> {
        self.query(uapi::drm_ferrite_dev_query_type_DRM_FERRITE_DEV_QUERY_TIMESTAMP)
    }

    /// DEV_QUERY MEMORY (0.3): the memory the GPU can use and the budget.
    pub fn memory(&self) -> io::Result<uapi::drm_ferrite_memory_info> {
        self.query(uapi::drm_ferrite_dev_query_type_DRM_FERRITE_DEV_QUERY_MEMORY)
    }

    /// DEV_QUERY MMU (0.3): VA bits, ranges, page sizes. A kernel older
    /// than 0.6 leaves `cpu_page_size` and `gpu_page_size` zero (it writes
    /// the first 48 bytes only).
    pub fn mmu(&self) -> io::Result<uapi::drm_ferrite_mmu_info> {
        self.query(uapi::drm_ferrite_dev_query_type_DRM_FERRITE_DEV_QUERY_MMU)
    }

    /// The page sizes the driver works in: the CPU page (the granule of BO
    /// sizes, mmap and binds) and the GPU page (the MMU's, 4 KiB). From
    /// DEV_QUERY MMU on 0.6 and later; before, the CPU page is
    /// `bind_alignment` (0.3) or the process's page size.
    pub fn page_sizes(&self) -> io::Result<PageSizes> {
        let m = match self.mmu() {
            Ok(m) => m,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                return Ok(PageSizes {
                    cpu: crate::cpu_page_size(),
                    gpu: crate::GPU_PAGE_SIZE,
                })
            }
            Err(e) => return Err(e),
        };
        let cpu = match (m.cpu_page_size, m.bind_alignment) {
            (0, 0) => crate::cpu_page_size(),
            (0, b) => u64::from(b),
            (c, _) => u64::from(c),
        };
        let gpu = match m.gpu_page_size {
            0 => crate::GPU_PAGE_SIZE,
            g => u64::from(g),
        };
        Ok(PageSizes { cpu, gpu })
    }

    /// DEV_QUERY FEATURES (0.3): the `DRM_FERRITE_UAPI_*` bits; 0 from a
    /// kernel older than 0.3 (which does not know the query).
    pub fn uapi_features(&self) -> io::Result<u64> {
        match self.query::<uapi::drm_ferrite_uapi_features>(
            uapi::drm_ferrite_dev_query_type_DRM_FERRITE_DEV_QUERY_FEATURES,
        ) {
            Ok(f) => Ok(f.features),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// GEM_CREATE.
    pub fn gem_create(&self, size: u64) -> io::Result<Bo> {
        self.gem_create_flags(size, 0)
    }

    /// GEM_CREATE with `DRM_FERRITE_GEM_CREATE_*` flags.
    pub fn gem_create_flags(&self, size: u64, flags: u32) -> io::Result<Bo> {
        let mut c = uapi::drm_ferrite_gem_create {
            size,
            flags,
            ..Default::default()
        };
        // SAFETY: c is a drm_ferrite_gem_create.
        unsafe { drm::ioctl(self.fd(), IOCTL_GEM_CREATE, &mut c)? };
        Ok(Bo {
            handle: c.handle,
            size: c.size,
        })
    }

    /// GEM_CREATE of a BO private to `vm` (`DRM_FERRITE_GEM_CREATE_VM_PRIVATE`,
    /// interface 0.4): it shares the VM's reservation object, binds only
    /// into it and cannot be exported.
    pub fn gem_create_private(&self, size: u64, vm: u32, flags: u32) -> io::Result<Bo> {
        let mut c = uapi::drm_ferrite_gem_create {
            size,
            flags: flags | uapi::DRM_FERRITE_GEM_CREATE_VM_PRIVATE,
            vm_id: vm,
            ..Default::default()
        };
        // SAFETY: c is a drm_ferrite_gem_create.
        unsafe { drm::ioctl(self.fd(), IOCTL_GEM_CREATE, &mut c)? };
        Ok(Bo {
            handle: c.handle,
            size: c.size,
        })
    }

    /// GEM_MMAP_OFFSET.
    pub fn gem_mmap_offset(&self, bo: Bo) -> io::Result<u64> {
        let mut m = uapi::drm_ferrite_gem_mmap_offset {
            handle: bo.handle,
            ..Default::default()
        };
        // SAFETY: m is a drm_ferrite_gem_mmap_offset.
        unsafe { drm::ioctl(self.fd(), IOCTL_GEM_MMAP_OFFSET, &mut m)? };
        Ok(m.offset)
    }

    /// BO_SET_LABEL: label `bo` (at most 4095 bytes, no NUL), or with
    /// `None` clear its label.
    pub fn bo_set_label(&self, bo: Bo, label: Option<&[u8]>) -> io::Result<()> {
        let owned = match label {
            Some(l) => Some(
                std::ffi::CString::new(l)
                    .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?,
            ),
            None => None,
        };
        let mut a = uapi::drm_ferrite_bo_set_label {
            handle: bo.handle,
            pad: 0,
            label: owned.as_ref().map_or(0, |c| c.as_ptr() as u64),
        };
        // SAFETY: a is a drm_ferrite_bo_set_label whose string outlives the call.
        unsafe { drm::ioctl(self.fd(), IOCTL_BO_SET_LABEL, &mut a) }
    }

    /// BO_QUERY_INFO, with the label.
    pub fn bo_query_info(&self, bo: Bo) -> io::Result<BoInfo> {
        let mut buf = vec![0u8; uapi::DRM_FERRITE_BO_LABEL_MAX as usize];
        let mut q = uapi::drm_ferrite_bo_query_info {
            handle: bo.handle,
            label: buf.as_mut_ptr() as u64,
            label_size: buf.len() as u32,
            ..Default::default()
        };
        // SAFETY: q is a drm_ferrite_bo_query_info whose label buffer of
        // label_size bytes outlives the call.
        unsafe { drm::ioctl(self.fd(), IOCTL_BO_QUERY_INFO, &mut q)? };
        let len = (q.label_len as usize).min(buf.len() - 1);
        buf.truncate(len);
        Ok(BoInfo {
            size: q.size,
            create_flags: q.create_flags,
            import: match q.import_kind {
                uapi::drm_ferrite_bo_import_DRM_FERRITE_BO_IMPORT_NONE => BoImport::None,
                uapi::drm_ferrite_bo_import_DRM_FERRITE_BO_IMPORT_FERRITE => BoImport::Ferrite,
                uapi::drm_ferrite_bo_import_DRM_FERRITE_BO_IMPORT_DRM => BoImport::Drm,
                _ => BoImport::Other,
            },
            label: (q.label_len > 0).then_some(buf),
        })
    }

    /// Map the whole BO into the CPU's address space.
    pub fn mmap(&self, bo: Bo) -> io::Result<Mmap> {
        let len =
            usize::try_from(bo.size).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        Mmap::new(self.fd(), self.gem_mmap_offset(bo)?, len)
    }

    /// Export `bo` as a dma-buf.
    pub fn prime_export(&self, bo: Bo) -> io::Result<std::os::fd::OwnedFd> {
        drm::prime_handle_to_fd(self.as_fd(), bo.handle)
    }

    /// Import a dma-buf of `size` bytes as a BO of this device.
    pub fn prime_import(&self, dmabuf: std::os::fd::BorrowedFd<'_>, size: u64) -> io::Result<Bo> {
        let handle = drm::prime_fd_to_handle(self.as_fd(), dmabuf)?;
        Ok(Bo { handle, size })
    }

    /// GEM_CLOSE: release the handle (the BO goes when nothing else uses it).
    pub fn gem_close(&self, bo: Bo) -> io::Result<()> {
        drm::gem_close(self.as_fd(), bo.handle)
    }
}

impl AsFd for Device {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// The generic DRM interface of the `drm` crate (`get_driver`,
/// `get_driver_capability`, ...) on a Ferrite render node.
impl ::drm::Device for Device {}

/// Names of the device counters, in the order of `drm_ferrite_counters.hw`.
pub const COUNTER_NAMES: [&str; 16] = [
    "mmio_reads",
    "mmio_writes",
    "commands",
    "bytes_read",
    "bytes_written",
    "tlb_hits",
    "tlb_misses",
    "pt_reads",
    "tlb_invalidations",
    "cache_flushes",
    "faults",
    "irqs",
    "doorbells",
    "pages_written_back",
    "queue_resets",
    "global_resets",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_the_header() {
        assert_eq!(IOCTL_DEV_QUERY, uapi::DRM_IOCTL_FERRITE_DEV_QUERY as u64);
        assert_eq!(IOCTL_GEM_CREATE, uapi::DRM_IOCTL_FERRITE_GEM_CREATE as u64);
        assert_eq!(
            IOCTL_GEM_MMAP_OFFSET,
            uapi::DRM_IOCTL_FERRITE_GEM_MMAP_OFFSET as u64
        );
        assert_eq!(
            IOCTL_BO_SET_LABEL,
            uapi::DRM_IOCTL_FERRITE_BO_SET_LABEL as u64
        );
        assert_eq!(
            IOCTL_BO_QUERY_INFO,
            uapi::DRM_IOCTL_FERRITE_BO_QUERY_INFO as u64
        );
    }
}
