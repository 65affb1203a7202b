// SPDX-License-Identifier: MIT
//! The generic DRM ioctls the library uses, and the raw ioctl helpers its
//! driver-specific calls are built on.
//!
//! The generic ioctls go through the Smithay [`drm`](::drm) crate: its
//! [`::drm::Device`] trait for `DRM_IOCTL_VERSION` (a
//! [`crate::Device`] is a `drm::Device`), and the crate's own FFI layer,
//! `drm-ffi` (one copy, the version `drm` itself uses), for GEM_CLOSE,
//! PRIME and the sync-object ioctls. Those calls exist in `drm` only on
//! `drm::control::Device`, the modesetting trait, with typed handles a
//! render node's caller has no use for, and `drm` does not re-export its
//! FFI; `drm-ffi` has every sync-object ioctl (timeline wait, query,
//! signal and transfer, and `deadline_nsec` in `drm_syncobj_wait`) with the
//! structures of the kernel's current `<drm/drm.h>`. Neither crate
//! retries an ioctl that a signal interrupted, so [`retrying`] does, as
//! libdrm's `drmIoctl` (and this library before them) does. Both are pure
//! Rust over `rustix`'s raw system calls: nothing to link, nothing the
//! guest's root filesystem must provide.
//!
//! What stays here: `SYNC_IOC_FILE_INFO` (a sync_file ioctl, not DRM's),
//! [`ioctl`] and [`ioctl_raw`] for the Ferrite ioctls and the fuzzer, and
//! [`monotonic_ns`].

use std::io;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};

use drm_ffi as ffi;

/// `struct sync_file_info` from `<linux/sync_file.h>`.
#[repr(C)]
struct SyncFileInfo {
    name: [u8; 32],
    status: i32,
    flags: u32,
    num_fences: u32,
    pad: u32,
    sync_fence_info: u64,
}

/// `_IOWR('>', 4, struct sync_file_info)`.
const SYNC_IOC_FILE_INFO: u64 =
    (3 << 30) | ((std::mem::size_of::<SyncFileInfo>() as u64) << 16) | ((b'>' as u64) << 8) | 4;

/// `DRM_SYNCOBJ_CREATE_SIGNALED`: create the sync object already signalled.
pub const SYNCOBJ_CREATE_SIGNALED: u32 = ffi::DRM_SYNCOBJ_CREATE_SIGNALED;
/// `DRM_SYNCOBJ_WAIT_FLAGS_WAIT_ALL`.
pub const SYNCOBJ_WAIT_ALL: u32 = ffi::DRM_SYNCOBJ_WAIT_FLAGS_WAIT_ALL;
/// `DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT`.
pub const SYNCOBJ_WAIT_FOR_SUBMIT: u32 = ffi::DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT;

/// What `DRM_IOCTL_VERSION` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub major: i32,
    pub minor: i32,
    pub patchlevel: i32,
    pub name: String,
    pub desc: String,
}

/// Run `f`, one or more ioctls, again while it fails with EINTR or EAGAIN,
/// as libdrm's `drmIoctl` does.
pub fn retrying<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR) | Some(libc::EAGAIN)) => {}
            r => return r,
        }
    }
}

fn invalid() -> io::Error {
    io::Error::from_raw_os_error(libc::EINVAL)
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

/// Issue an ioctl exactly once, without the EINTR/EAGAIN retry of
/// [`ioctl`]: `Ok` with the return value, or `Err` with the errno. For
/// tools that check the error codes themselves (`ferrite-fuzz`), and that
/// pass arguments which need not match `req` at all.
///
/// # Safety
/// Whatever the kernel writes for `req` must land in memory the caller
/// owns: `arg` must point to at least `_IOC_SIZE(req)` writable bytes, and
/// every user pointer inside them that the kernel writes through must be
/// writable memory of the caller or an address that cannot be mapped.
pub unsafe fn ioctl_raw(fd: RawFd, req: u64, arg: *mut libc::c_void) -> Result<i32, i32> {
    // SAFETY: the caller's guarantees above.
    let r = unsafe { libc::ioctl(fd, req as _, arg) };
    if r >= 0 {
        Ok(r)
    } else {
        Err(io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}

/// `DRM_IOCTL_VERSION`, through [`::drm::Device::get_driver`].
pub fn version(dev: &impl ::drm::Device) -> io::Result<Version> {
    let d = retrying(|| dev.get_driver())?;
    Ok(Version {
        major: d.version.0,
        minor: d.version.1,
        patchlevel: d.version.2,
        name: d.name.to_string_lossy().into_owned(),
        desc: d.desc.to_string_lossy().into_owned(),
    })
}

/// `DRM_IOCTL_GEM_CLOSE`: release a GEM handle.
pub fn gem_close(fd: BorrowedFd<'_>, handle: u32) -> io::Result<()> {
    retrying(|| ffi::gem::close(fd, handle)).map(drop)
}

/// `DRM_IOCTL_PRIME_HANDLE_TO_FD`: export a GEM object as a dma-buf
/// (close-on-exec, mappable read-write).
pub fn prime_handle_to_fd(fd: BorrowedFd<'_>, handle: u32) -> io::Result<OwnedFd> {
    let p = retrying(|| ffi::gem::handle_to_fd(fd, handle, ffi::DRM_CLOEXEC | ffi::DRM_RDWR))?;
    // SAFETY: the kernel returned a new file descriptor that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(p.fd) })
}

/// `DRM_IOCTL_PRIME_FD_TO_HANDLE`: import a dma-buf; returns the handle.
pub fn prime_fd_to_handle(fd: BorrowedFd<'_>, dmabuf: BorrowedFd<'_>) -> io::Result<u32> {
    Ok(retrying(|| ffi::gem::fd_to_handle(fd, dmabuf))?.handle)
}

/// `DRM_IOCTL_SYNCOBJ_CREATE`; `flags` is 0 or [`SYNCOBJ_CREATE_SIGNALED`]
/// (any other bit: EINVAL, as from the kernel).
pub fn syncobj_create(fd: BorrowedFd<'_>, flags: u32) -> io::Result<u32> {
    if flags & !SYNCOBJ_CREATE_SIGNALED != 0 {
        return Err(invalid());
    }
    let signaled = flags & SYNCOBJ_CREATE_SIGNALED != 0;
    Ok(retrying(|| ffi::syncobj::create(fd, signaled))?.handle)
}

/// `DRM_IOCTL_SYNCOBJ_DESTROY`.
pub fn syncobj_destroy(fd: BorrowedFd<'_>, handle: u32) -> io::Result<()> {
    retrying(|| ffi::syncobj::destroy(fd, handle)).map(drop)
}

/// The current `CLOCK_MONOTONIC` time in nanoseconds, the clock of
/// sync-object timeouts.
pub fn monotonic_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// `DRM_IOCTL_SYNCOBJ_WAIT` on binary sync objects until the absolute
/// `CLOCK_MONOTONIC` time `deadline_ns`. `Ok(true)` when signalled (all of
/// them with [`SYNCOBJ_WAIT_ALL`], else any), `Ok(false)` on timeout.
/// `flags` are [`SYNCOBJ_WAIT_ALL`] and [`SYNCOBJ_WAIT_FOR_SUBMIT`] (any
/// other bit: EINVAL, as from the kernel).
pub fn syncobj_wait(
    fd: BorrowedFd<'_>,
    handles: &[u32],
    deadline_ns: i64,
    flags: u32,
) -> io::Result<bool> {
    if flags & !(SYNCOBJ_WAIT_ALL | SYNCOBJ_WAIT_FOR_SUBMIT) != 0 {
        return Err(invalid());
    }
    let all = flags & SYNCOBJ_WAIT_ALL != 0;
    let submit = flags & SYNCOBJ_WAIT_FOR_SUBMIT != 0;
    match retrying(|| ffi::syncobj::wait(fd, handles, deadline_ns, all, submit)) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ETIME) => Ok(false),
        Err(e) => Err(e),
    }
}

/// `DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD` with `EXPORT_SYNC_FILE`: a sync_file
/// holding the sync object's current fence.
pub fn syncobj_export_sync_file(fd: BorrowedFd<'_>, handle: u32) -> io::Result<OwnedFd> {
    let h = retrying(|| ffi::syncobj::handle_to_fd(fd, handle, true))?;
    // SAFETY: the kernel returned a new file descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(h.fd) })
}

/// `SYNC_IOC_FILE_INFO`: the status of a sync_file's fence: 1 signalled,
/// 0 pending, negative the error it signalled with.
pub fn sync_file_status(sync_file: RawFd) -> io::Result<i32> {
    let mut info = SyncFileInfo {
        name: [0; 32],
        status: 0,
        flags: 0,
        num_fences: 0,
        pad: 0,
        sync_fence_info: 0,
    };
    // SAFETY: info is a sync_file_info with num_fences 0 (no array).
    unsafe { ioctl(sync_file, SYNC_IOC_FILE_INFO, &mut info)? };
    Ok(info.status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::size_of;

    #[test]
    fn drm_ffi_structs_are_the_kernels() {
        // The sizes in the kernel's <drm/drm.h> (7.3), so that the ioctl
        // numbers drm-ffi derives from them are the kernel's:
        // drm_syncobj_wait with deadline_nsec, drm_syncobj_handle with
        // point.
        assert_eq!(size_of::<ffi::drm_version>(), 64);
        assert_eq!(size_of::<ffi::drm_gem_close>(), 8);
        assert_eq!(size_of::<ffi::drm_prime_handle>(), 12);
        assert_eq!(size_of::<ffi::drm_syncobj_create>(), 8);
        assert_eq!(size_of::<ffi::drm_syncobj_destroy>(), 8);
        assert_eq!(size_of::<ffi::drm_syncobj_handle>(), 24);
        assert_eq!(size_of::<ffi::drm_syncobj_wait>(), 40);
    }

    #[test]
    fn sync_file_info_ioctl_number() {
        // _IOWR('>', 4, struct sync_file_info), 56 bytes.
        assert_eq!(SYNC_IOC_FILE_INFO, 0xc038_3e04);
    }

    #[test]
    fn unknown_flags_are_refused_before_the_kernel() {
        // /dev/null: the flags are checked before any ioctl.
        let null = std::fs::File::open("/dev/null").unwrap();
        let fd = std::os::fd::AsFd::as_fd(&null);
        let einval = |r: io::Result<_>| r.err().and_then(|e| e.raw_os_error());
        assert_eq!(einval(syncobj_create(fd, 2).map(drop)), Some(libc::EINVAL));
        assert_eq!(
            einval(syncobj_wait(fd, &[1], 0, 1 << 2).map(drop)),
            Some(libc::EINVAL)
        );
    }

    #[test]
    fn retrying_repeats_eintr_only() {
        let mut n = 0;
        let r = retrying(|| {
            n += 1;
            match n {
                1 => Err(io::Error::from_raw_os_error(libc::EINTR)),
                2 => Err(io::Error::from_raw_os_error(libc::EAGAIN)),
                _ => Ok(n),
            }
        });
        assert_eq!(r.unwrap(), 3);
        let mut m = 0;
        let e = retrying(|| -> io::Result<()> {
            m += 1;
            Err(io::Error::from_raw_os_error(libc::ENOENT))
        });
        assert_eq!((m, e.unwrap_err().raw_os_error()), (1, Some(libc::ENOENT)));
    }
}
