// SPDX-License-Identifier: MIT
//! Ioctl numbers and argument layouts the fuzzer needs beyond the library:
//! the DRM core ioctls a client uses, and the errno vocabulary.

use ferrite::uapi;

pub const IOC_WRITE: u64 = 1;
pub const IOC_READ: u64 = 2;

/// `_IOC(dir, 'd', nr, size)`.
pub const fn ioc(dir: u64, nr: u64, size: usize) -> u64 {
    (dir << 30) | ((size as u64 & 0x3fff) << 16) | ((b'd' as u64) << 8) | (nr & 0xff)
}

pub const fn iowr<T>(nr: u64) -> u64 {
    ioc(IOC_READ | IOC_WRITE, nr, std::mem::size_of::<T>())
}

pub const fn iow<T>(nr: u64) -> u64 {
    ioc(IOC_WRITE, nr, std::mem::size_of::<T>())
}

/// `struct drm_get_cap` / `struct drm_set_client_cap`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct Cap {
    pub capability: u64,
    pub value: u64,
}

/// `struct drm_gem_close`, `struct drm_syncobj_destroy`,
/// `struct drm_syncobj_create`, `struct drm_gem_change_handle`: two u32.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct TwoU32 {
    pub a: u32,
    pub b: u32,
}

/// `struct drm_prime_handle`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct PrimeHandle {
    pub handle: u32,
    pub flags: u32,
    pub fd: i32,
}

/// `struct drm_syncobj_handle` (with the timeline `point` of newer kernels;
/// older ones take the first 16 bytes).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct SyncobjHandle {
    pub handle: u32,
    pub flags: u32,
    pub fd: i32,
    pub pad: u32,
    pub point: u64,
}

/// `struct drm_version`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct Version {
    pub major: i32,
    pub minor: i32,
    pub patchlevel: i32,
    pub name_len: u64,
    pub name: u64,
    pub date_len: u64,
    pub date: u64,
    pub desc_len: u64,
    pub desc: u64,
}

/// `struct drm_syncobj_wait` (with `deadline_nsec`).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct SyncobjWait {
    pub handles: u64,
    pub timeout_nsec: i64,
    pub count_handles: u32,
    pub flags: u32,
    pub first_signaled: u32,
    pub pad: u32,
    pub deadline_nsec: u64,
}

/// `struct drm_syncobj_timeline_wait` (with `deadline_nsec`).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct SyncobjTimelineWait {
    pub handles: u64,
    pub points: u64,
    pub timeout_nsec: i64,
    pub count_handles: u32,
    pub flags: u32,
    pub first_signaled: u32,
    pub pad: u32,
    pub deadline_nsec: u64,
}

/// `struct drm_syncobj_array`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct SyncobjArray {
    pub handles: u64,
    pub count_handles: u32,
    pub pad: u32,
}

/// `struct drm_syncobj_timeline_array`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct SyncobjTimelineArray {
    pub handles: u64,
    pub points: u64,
    pub count_handles: u32,
    pub flags: u32,
}

/// `struct drm_syncobj_transfer`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct SyncobjTransfer {
    pub src_handle: u32,
    pub dst_handle: u32,
    pub src_point: u64,
    pub dst_point: u64,
    pub flags: u32,
    pub pad: u32,
}

/// `struct drm_syncobj_eventfd`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct SyncobjEventfd {
    pub handle: u32,
    pub flags: u32,
    pub point: u64,
    pub fd: i32,
    pub pad: u32,
}

/// `struct drm_set_client_name`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct SetClientName {
    pub name_len: u64,
    pub name: u64,
}

pub const DRM_IOCTL_VERSION: u64 = iowr::<Version>(0x00);
pub const DRM_IOCTL_GEM_CLOSE: u64 = iow::<TwoU32>(0x09);
pub const DRM_IOCTL_GET_CAP: u64 = iowr::<Cap>(0x0c);
pub const DRM_IOCTL_SET_CLIENT_CAP: u64 = iow::<Cap>(0x0d);
pub const DRM_IOCTL_PRIME_HANDLE_TO_FD: u64 = iowr::<PrimeHandle>(0x2d);
pub const DRM_IOCTL_PRIME_FD_TO_HANDLE: u64 = iowr::<PrimeHandle>(0x2e);
pub const DRM_IOCTL_SYNCOBJ_CREATE: u64 = iowr::<TwoU32>(0xbf);
pub const DRM_IOCTL_SYNCOBJ_DESTROY: u64 = iowr::<TwoU32>(0xc0);
pub const DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD: u64 = iowr::<SyncobjHandle>(0xc1);
pub const DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE: u64 = iowr::<SyncobjHandle>(0xc2);
pub const DRM_IOCTL_SYNCOBJ_WAIT: u64 = iowr::<SyncobjWait>(0xc3);
pub const DRM_IOCTL_SYNCOBJ_RESET: u64 = iowr::<SyncobjArray>(0xc4);
pub const DRM_IOCTL_SYNCOBJ_SIGNAL: u64 = iowr::<SyncobjArray>(0xc5);
pub const DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT: u64 = iowr::<SyncobjTimelineWait>(0xca);
pub const DRM_IOCTL_SYNCOBJ_QUERY: u64 = iowr::<SyncobjTimelineArray>(0xcb);
pub const DRM_IOCTL_SYNCOBJ_TRANSFER: u64 = iowr::<SyncobjTransfer>(0xcc);
pub const DRM_IOCTL_SYNCOBJ_TIMELINE_SIGNAL: u64 = iowr::<SyncobjTimelineArray>(0xcd);
pub const DRM_IOCTL_SYNCOBJ_EVENTFD: u64 = iowr::<SyncobjEventfd>(0xcf);
pub const DRM_IOCTL_SET_CLIENT_NAME: u64 = iowr::<SetClientName>(0xd1);
pub const DRM_IOCTL_GEM_CHANGE_HANDLE: u64 = iowr::<TwoU32>(0xd2);

pub const DRM_CAP_PRIME: u64 = 0x5;
pub const DRM_CAP_SYNCOBJ: u64 = 0x13;
pub const DRM_CAP_SYNCOBJ_TIMELINE: u64 = 0x14;

pub const SYNCOBJ_CREATE_SIGNALED: u32 = 1 << 0;
pub const SYNCOBJ_FD_IMPORT_SYNC_FILE: u32 = 1 << 0;
pub const SYNCOBJ_FD_EXPORT_SYNC_FILE: u32 = 1 << 0;
pub const SYNCOBJ_FD_TIMELINE: u32 = 1 << 1;
pub const SYNCOBJ_WAIT_ALL: u32 = 1 << 0;
pub const SYNCOBJ_WAIT_FOR_SUBMIT: u32 = 1 << 1;
pub const SYNCOBJ_WAIT_AVAILABLE: u32 = 1 << 2;
pub const SYNCOBJ_QUERY_LAST_SUBMITTED: u32 = 1 << 0;

/// `DRM_COMMAND_BASE`: the first driver ioctl number.
pub const COMMAND_BASE: u64 = uapi::DRM_COMMAND_BASE as u64;
/// Every Ferrite ioctl, in id order (DRM_IOCTL_FERRITE_*). A new ioctl
/// of the driver must be added here, or the "past the last ioctl" checks
/// report it as a finding.
pub const FERRITE_IOCTLS: [u64; 14] = [
    uapi::DRM_IOCTL_FERRITE_DEV_QUERY as u64,
    uapi::DRM_IOCTL_FERRITE_GEM_CREATE as u64,
    uapi::DRM_IOCTL_FERRITE_GEM_MMAP_OFFSET as u64,
    uapi::DRM_IOCTL_FERRITE_VM_CREATE as u64,
    uapi::DRM_IOCTL_FERRITE_VM_DESTROY as u64,
    uapi::DRM_IOCTL_FERRITE_VM_BIND as u64,
    uapi::DRM_IOCTL_FERRITE_QUEUE_CREATE as u64,
    uapi::DRM_IOCTL_FERRITE_QUEUE_DESTROY as u64,
    uapi::DRM_IOCTL_FERRITE_SUBMIT as u64,
    uapi::DRM_IOCTL_FERRITE_QUEUE_GET_STATE as u64,
    uapi::DRM_IOCTL_FERRITE_GEM_SYNC as u64,
    uapi::DRM_IOCTL_FERRITE_BO_SET_LABEL as u64,
    uapi::DRM_IOCTL_FERRITE_BO_QUERY_INFO as u64,
    uapi::DRM_IOCTL_FERRITE_VM_GET_STATE as u64,
];
/// Number of Ferrite ioctls.
pub const NUM_FERRITE_IOCTLS: u64 = FERRITE_IOCTLS.len() as u64;
/// `DRM_COMMAND_END`: the driver range is `COMMAND_BASE..COMMAND_END`.
pub const COMMAND_END: u64 = 0xa0;

/// The argument size an ioctl number encodes.
pub const fn ioc_size(req: u64) -> usize {
    ((req >> 16) & 0x3fff) as usize
}

/// Errors an ioctl may return on bad arguments or load without that being
/// a driver bug. Anything else is a finding.
pub const ALLOWED_ERRNOS: &[i32] = &[
    libc::EINVAL,
    libc::ENOENT,
    libc::EFAULT,
    libc::EBUSY,
    libc::ENOSPC,
    libc::ENOMEM,
    libc::ETIME,
    libc::ETIMEDOUT,
    libc::EINTR,
    libc::EAGAIN,
    libc::EPERM,
    libc::EACCES,
    libc::EOPNOTSUPP,
    libc::E2BIG,
    libc::EOVERFLOW,
    libc::ENODEV,
    libc::ECANCELED,
    libc::EBADF,
    libc::EMFILE,
    libc::ENFILE,
    libc::ENOTTY,
    libc::EDEADLK,
    libc::ERANGE,
];

pub fn errno_allowed(e: i32) -> bool {
    ALLOWED_ERRNOS.contains(&e)
}

/// The symbolic name of an errno value.
pub fn errno_name(e: i32) -> String {
    let n = match e {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::E2BIG => "E2BIG",
        libc::ENOEXEC => "ENOEXEC",
        libc::EBADF => "EBADF",
        libc::ECHILD => "ECHILD",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENODEV => "ENODEV",
        libc::EINVAL => "EINVAL",
        libc::ENFILE => "ENFILE",
        libc::EMFILE => "EMFILE",
        libc::ENOTTY => "ENOTTY",
        libc::EFBIG => "EFBIG",
        libc::ENOSPC => "ENOSPC",
        libc::ESPIPE => "ESPIPE",
        libc::ERANGE => "ERANGE",
        libc::EDEADLK => "EDEADLK",
        libc::ENOSYS => "ENOSYS",
        libc::ETIME => "ETIME",
        libc::EPROTO => "EPROTO",
        libc::EOVERFLOW => "EOVERFLOW",
        libc::EILSEQ => "EILSEQ",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ECANCELED => "ECANCELED",
        512 => "ERESTARTSYS",
        _ => return format!("E{e}"),
    };
    n.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_ioctl_numbers_match_drm_h() {
        assert_eq!(DRM_IOCTL_VERSION, 0xc040_6400);
        assert_eq!(DRM_IOCTL_GEM_CLOSE, 0x4008_6409);
        assert_eq!(DRM_IOCTL_GET_CAP, 0xc010_640c);
        assert_eq!(DRM_IOCTL_SET_CLIENT_CAP, 0x4010_640d);
        // struct drm_prime_handle is 12 bytes.
        assert_eq!(DRM_IOCTL_PRIME_HANDLE_TO_FD, 0xc00c_642d);
        assert_eq!(DRM_IOCTL_PRIME_FD_TO_HANDLE, 0xc00c_642e);
        assert_eq!(DRM_IOCTL_SYNCOBJ_CREATE, 0xc008_64bf);
        assert_eq!(DRM_IOCTL_SYNCOBJ_DESTROY, 0xc008_64c0);
        // struct drm_syncobj_handle with the timeline point: 24 bytes.
        assert_eq!(DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD, 0xc018_64c1);
        assert_eq!(DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE, 0xc018_64c2);
        assert_eq!(DRM_IOCTL_SYNCOBJ_WAIT, 0xc028_64c3);
        assert_eq!(DRM_IOCTL_SYNCOBJ_RESET, 0xc010_64c4);
        assert_eq!(DRM_IOCTL_SYNCOBJ_SIGNAL, 0xc010_64c5);
        assert_eq!(DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT, 0xc030_64ca);
        assert_eq!(DRM_IOCTL_SYNCOBJ_QUERY, 0xc018_64cb);
        assert_eq!(DRM_IOCTL_SYNCOBJ_TRANSFER, 0xc020_64cc);
        assert_eq!(DRM_IOCTL_SYNCOBJ_TIMELINE_SIGNAL, 0xc018_64cd);
        assert_eq!(DRM_IOCTL_SYNCOBJ_EVENTFD, 0xc018_64cf);
        assert_eq!(DRM_IOCTL_SET_CLIENT_NAME, 0xc010_64d1);
        assert_eq!(DRM_IOCTL_GEM_CHANGE_HANDLE, 0xc008_64d2);
    }

    #[test]
    fn ferrite_numbers_match_the_header() {
        for (i, &req) in FERRITE_IOCTLS.iter().enumerate() {
            // _IOWR('d', DRM_COMMAND_BASE + id, ...), ids in order.
            assert_eq!(req & 0xff, COMMAND_BASE + i as u64, "ioctl {i}");
            assert_eq!(req >> 30, IOC_READ | IOC_WRITE);
            assert_eq!((req >> 8) & 0xff, u64::from(b'd'));
        }
        assert_eq!(
            NUM_FERRITE_IOCTLS,
            uapi::drm_ferrite_ioctl_id_DRM_FERRITE_VM_GET_STATE as u64 + 1
        );
        assert_eq!(ioc_size(FERRITE_IOCTLS[5]), 40);
        assert_eq!(
            ioc_size(uapi::DRM_IOCTL_FERRITE_GEM_SYNC as u64),
            std::mem::size_of::<uapi::drm_ferrite_gem_sync>()
        );
    }

    #[test]
    fn errno_vocabulary() {
        assert!(errno_allowed(libc::EINVAL));
        assert!(errno_allowed(libc::ENOTTY));
        assert!(!errno_allowed(libc::EIO));
        assert!(!errno_allowed(0));
        assert_eq!(errno_name(libc::EFAULT), "EFAULT");
        assert_eq!(errno_name(9999), "E9999");
    }
}
