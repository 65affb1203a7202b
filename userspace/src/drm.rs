// SPDX-License-Identifier: MIT
//! The generic DRM ioctls the library uses.

use std::io;
use std::os::fd::RawFd;

/// `struct drm_version` from `<drm/drm.h>`.
#[repr(C)]
#[derive(Default)]
struct DrmVersion {
    version_major: libc::c_int,
    version_minor: libc::c_int,
    version_patchlevel: libc::c_int,
    name_len: libc::size_t,
    name: u64,
    date_len: libc::size_t,
    date: u64,
    desc_len: libc::size_t,
    desc: u64,
}

const DRM_IOCTL_BASE: u64 = b'd' as u64;

const fn iowr(nr: u64, size: usize) -> u64 {
    (3 << 30) | ((size as u64) << 16) | (DRM_IOCTL_BASE << 8) | nr
}

const DRM_IOCTL_VERSION: u64 = iowr(0x00, std::mem::size_of::<DrmVersion>());

/// What `DRM_IOCTL_VERSION` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub major: i32,
    pub minor: i32,
    pub patchlevel: i32,
    pub name: String,
    pub desc: String,
}

/// Issue an ioctl, retrying on EINTR/EAGAIN as libdrm does.
///
/// # Safety
/// `arg` must point to the structure `req` expects.
pub unsafe fn ioctl<T>(fd: RawFd, req: u64, arg: *mut T) -> io::Result<()> {
    loop {
        // SAFETY: the caller guarantees `arg` matches `req`.
        let r = unsafe { libc::ioctl(fd, req as _, arg) };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) | Some(libc::EAGAIN) => continue,
            _ => return Err(e),
        }
    }
}

/// `DRM_IOCTL_VERSION`.
pub fn version(fd: RawFd) -> io::Result<Version> {
    let mut name = [0u8; 64];
    let mut desc = [0u8; 128];
    let mut v = DrmVersion {
        name_len: name.len(),
        name: name.as_mut_ptr() as u64,
        desc_len: desc.len(),
        desc: desc.as_mut_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: `v` is a drm_version whose buffers outlive the call.
    unsafe { ioctl(fd, DRM_IOCTL_VERSION, &mut v)? };
    let s = |b: &[u8], n: usize| String::from_utf8_lossy(&b[..n.min(b.len())]).into_owned();
    Ok(Version {
        major: v.version_major,
        minor: v.version_minor,
        patchlevel: v.version_patchlevel,
        name: s(&name, v.name_len),
        desc: s(&desc, v.desc_len),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_number_matches_the_kernel() {
        // DRM_IOCTL_VERSION on 64-bit: _IOWR('d', 0x00, struct drm_version)
        assert_eq!(DRM_IOCTL_VERSION, 0xc040_6400);
    }
}
