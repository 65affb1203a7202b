// SPDX-License-Identifier: GPL-2.0

//! Per-open-file state of a Ferrite render node and the ioctls.

use kernel::{
    drm::{self, gem::BaseObject, Registered},
    prelude::*,
    transmute::AsBytes,
    uaccess::{UserPtr, UserSlice},
    uapi,
};

use crate::{
    driver::{FerriteDevice, FerriteDrmDriver, RegistrationData},
    gem,
};

/// State of one open file.
#[pin_data]
pub(crate) struct FileData {}

/// A DRM file of this driver.
pub(crate) type File = drm::File<FileData>;

impl drm::file::DriverFile for FileData {
    type Driver = FerriteDrmDriver;

    fn open(_dev: &drm::Device<Self::Driver>) -> Result<Pin<KBox<Self>>> {
        KBox::try_pin_init(try_pin_init!(Self {}), GFP_KERNEL)
    }

    fn show_fdinfo(&self, _file: &File, printer: &mut drm::Printer<'_>) {
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

/// Answer a DEV_QUERY: the size with a null pointer, else the bytes.
fn answer<T: AsBytes>(q: &mut uapi::drm_ferrite_dev_query, value: &T) -> Result<u32> {
    let bytes = value.as_bytes();
    if q.pointer == 0 {
        q.size = u32::try_from(bytes.len())?;
        return Ok(0);
    }
    let n = (q.size as usize).min(bytes.len());
    let ptr = UserPtr::from_addr(usize::try_from(q.pointer).map_err(|_| EFAULT)?);
    UserSlice::new(ptr, n).writer().write_slice(&bytes[..n])?;
    q.size = u32::try_from(n)?;
    Ok(0)
}

impl FileData {
    /// DRM_IOCTL_FERRITE_DEV_QUERY.
    pub(crate) fn dev_query(
        _dev: &FerriteDevice<Registered>,
        reg: &RegistrationData<'_>,
        q: &mut uapi::drm_ferrite_dev_query,
        _file: &File,
    ) -> Result<u32> {
        match q.type_ {
            uapi::drm_ferrite_dev_query_type_DRM_FERRITE_DEV_QUERY_INFO => {
                answer(q, &DevInfo(reg.dev_info()))
            }
            uapi::drm_ferrite_dev_query_type_DRM_FERRITE_DEV_QUERY_COUNTERS => {
                answer(q, &Counters(reg.counters()))
            }
            _ => Err(EINVAL),
        }
    }

    /// DRM_IOCTL_FERRITE_GEM_CREATE.
    pub(crate) fn gem_create(
        dev: &FerriteDevice<Registered>,
        _reg: &RegistrationData<'_>,
        req: &mut uapi::drm_ferrite_gem_create,
        file: &File,
    ) -> Result<u32> {
        if req.flags != 0 {
            return Err(EINVAL);
        }
        let bo = gem::create(dev, req.size)?;
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
            return Err(EINVAL);
        }
        let bo = gem::lookup(file, req.handle)?;
        req.offset = bo.create_mmap_offset()?;
        Ok(0)
    }
}
