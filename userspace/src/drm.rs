// SPDX-License-Identifier: MIT
//! The generic DRM ioctls the library uses.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

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

const fn iow(nr: u64, size: usize) -> u64 {
    (1 << 30) | ((size as u64) << 16) | (DRM_IOCTL_BASE << 8) | nr
}

/// `struct drm_gem_close`.
#[repr(C)]
#[derive(Default)]
struct DrmGemClose {
    handle: u32,
    pad: u32,
}

/// `struct drm_syncobj_create`.
#[repr(C)]
#[derive(Default)]
struct DrmSyncobjCreate {
    handle: u32,
    flags: u32,
}

/// `struct drm_syncobj_destroy`.
#[repr(C)]
#[derive(Default)]
struct DrmSyncobjDestroy {
    handle: u32,
    pad: u32,
}

/// `struct drm_syncobj_handle`.
#[repr(C)]
#[derive(Default)]
struct DrmSyncobjHandle {
    handle: u32,
    flags: u32,
    fd: i32,
    pad: u32,
}

/// `struct drm_syncobj_wait`, with the `deadline_nsec` the kernel's header
/// has (libdrm's older copy stops at `pad`; the kernel accepts both sizes).
#[repr(C)]
#[derive(Default)]
struct DrmSyncobjWait {
    handles: u64,
    timeout_nsec: i64,
    count_handles: u32,
    flags: u32,
    first_signaled: u32,
    pad: u32,
    deadline_nsec: u64,
}

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

const DRM_IOCTL_VERSION: u64 = iowr(0x00, std::mem::size_of::<DrmVersion>());
const DRM_IOCTL_GEM_CLOSE: u64 = iow(0x09, std::mem::size_of::<DrmGemClose>());
const DRM_IOCTL_SYNCOBJ_CREATE: u64 = iowr(0xbf, std::mem::size_of::<DrmSyncobjCreate>());
const DRM_IOCTL_SYNCOBJ_DESTROY: u64 = iowr(0xc0, std::mem::size_of::<DrmSyncobjDestroy>());
const DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD: u64 = iowr(0xc1, std::mem::size_of::<DrmSyncobjHandle>());
const DRM_IOCTL_SYNCOBJ_WAIT: u64 = iowr(0xc3, std::mem::size_of::<DrmSyncobjWait>());
/// `_IOWR('>', 4, struct sync_file_info)`.
const SYNC_IOC_FILE_INFO: u64 =
    (3 << 30) | ((std::mem::size_of::<SyncFileInfo>() as u64) << 16) | ((b'>' as u64) << 8) | 4;

/// `DRM_SYNCOBJ_CREATE_SIGNALED`: create the sync object already signalled.
pub const SYNCOBJ_CREATE_SIGNALED: u32 = 1 << 0;
/// `DRM_SYNCOBJ_WAIT_FLAGS_WAIT_ALL`.
pub const SYNCOBJ_WAIT_ALL: u32 = 1 << 0;
/// `DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT`.
pub const SYNCOBJ_WAIT_FOR_SUBMIT: u32 = 1 << 1;
const SYNCOBJ_HANDLE_TO_FD_EXPORT_SYNC_FILE: u32 = 1 << 0;

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

/// `DRM_IOCTL_GEM_CLOSE`: release a GEM handle.
pub fn gem_close(fd: RawFd, handle: u32) -> io::Result<()> {
    let mut c = DrmGemClose { handle, pad: 0 };
    // SAFETY: c is a drm_gem_close.
    unsafe { ioctl(fd, DRM_IOCTL_GEM_CLOSE, &mut c) }
}

/// `struct drm_prime_handle`.
#[repr(C)]
#[derive(Default)]
struct DrmPrimeHandle {
    handle: u32,
    flags: u32,
    fd: i32,
}

const DRM_IOCTL_PRIME_HANDLE_TO_FD: u64 = iowr(0x2d, core::mem::size_of::<DrmPrimeHandle>());
const DRM_IOCTL_PRIME_FD_TO_HANDLE: u64 = iowr(0x2e, core::mem::size_of::<DrmPrimeHandle>());

/// `DRM_IOCTL_PRIME_HANDLE_TO_FD`: export a GEM object as a dma-buf
/// (close-on-exec, mappable read-write).
pub fn prime_handle_to_fd(fd: RawFd, handle: u32) -> io::Result<OwnedFd> {
    let mut p = DrmPrimeHandle {
        handle,
        flags: (libc::O_CLOEXEC | libc::O_RDWR) as u32,
        fd: -1,
    };
    // SAFETY: p is a drm_prime_handle.
    unsafe { ioctl(fd, DRM_IOCTL_PRIME_HANDLE_TO_FD, &mut p)? };
    // SAFETY: the kernel returned a new file descriptor that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(p.fd) })
}

/// `DRM_IOCTL_PRIME_FD_TO_HANDLE`: import a dma-buf; returns the handle.
pub fn prime_fd_to_handle(fd: RawFd, dmabuf: RawFd) -> io::Result<u32> {
    let mut p = DrmPrimeHandle {
        fd: dmabuf,
        ..Default::default()
    };
    // SAFETY: p is a drm_prime_handle.
    unsafe { ioctl(fd, DRM_IOCTL_PRIME_FD_TO_HANDLE, &mut p)? };
    Ok(p.handle)
}

/// `DRM_IOCTL_SYNCOBJ_CREATE`; `flags` is 0 or [`SYNCOBJ_CREATE_SIGNALED`].
pub fn syncobj_create(fd: RawFd, flags: u32) -> io::Result<u32> {
    let mut c = DrmSyncobjCreate { handle: 0, flags };
    // SAFETY: c is a drm_syncobj_create.
    unsafe { ioctl(fd, DRM_IOCTL_SYNCOBJ_CREATE, &mut c)? };
    Ok(c.handle)
}

/// `DRM_IOCTL_SYNCOBJ_DESTROY`.
pub fn syncobj_destroy(fd: RawFd, handle: u32) -> io::Result<()> {
    let mut d = DrmSyncobjDestroy { handle, pad: 0 };
    // SAFETY: d is a drm_syncobj_destroy.
    unsafe { ioctl(fd, DRM_IOCTL_SYNCOBJ_DESTROY, &mut d) }
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
pub fn syncobj_wait(fd: RawFd, handles: &[u32], deadline_ns: i64, flags: u32) -> io::Result<bool> {
    let mut w = DrmSyncobjWait {
        handles: handles.as_ptr() as u64,
        timeout_nsec: deadline_ns,
        count_handles: handles.len() as u32,
        flags,
        ..Default::default()
    };
    // SAFETY: w is a drm_syncobj_wait whose handle array outlives the call.
    match unsafe { ioctl(fd, DRM_IOCTL_SYNCOBJ_WAIT, &mut w) } {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ETIME) => Ok(false),
        Err(e) => Err(e),
    }
}

/// `DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD` with `EXPORT_SYNC_FILE`: a sync_file
/// holding the sync object's current fence.
pub fn syncobj_export_sync_file(fd: RawFd, handle: u32) -> io::Result<OwnedFd> {
    let mut h = DrmSyncobjHandle {
        handle,
        flags: SYNCOBJ_HANDLE_TO_FD_EXPORT_SYNC_FILE,
        fd: -1,
        pad: 0,
    };
    // SAFETY: h is a drm_syncobj_handle.
    unsafe { ioctl(fd, DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD, &mut h)? };
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

    #[test]
    fn ioctl_number_matches_the_kernel() {
        // DRM_IOCTL_VERSION on 64-bit: _IOWR('d', 0x00, struct drm_version)
        assert_eq!(DRM_IOCTL_VERSION, 0xc040_6400);
    }

    #[test]
    fn generic_ioctl_numbers_match_drm_h() {
        // _IOW('d', 0x09, struct drm_gem_close), 8 bytes.
        assert_eq!(DRM_IOCTL_GEM_CLOSE, 0x4008_6409);
        // _IOWR('d', 0xBF / 0xC0 / 0xC1 / 0xC3, ...): 8, 8, 16, 40 bytes.
        assert_eq!(DRM_IOCTL_SYNCOBJ_CREATE, 0xc008_64bf);
        assert_eq!(DRM_IOCTL_SYNCOBJ_DESTROY, 0xc008_64c0);
        assert_eq!(DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD, 0xc010_64c1);
        assert_eq!(DRM_IOCTL_SYNCOBJ_WAIT, 0xc028_64c3);
        // _IOWR('>', 4, struct sync_file_info), 56 bytes.
        assert_eq!(SYNC_IOC_FILE_INFO, 0xc038_3e04);
    }
}
