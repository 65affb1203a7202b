// SPDX-License-Identifier: MIT
//! GPU address spaces, queues, job submission and sync objects.

use std::io;
use std::os::fd::AsFd;
use std::time::Duration;

use crate::device::{iowr, Bo, Device};
use crate::drm;
use crate::uapi;

pub const IOCTL_VM_CREATE: u64 =
    iowr::<uapi::drm_ferrite_vm_create>(uapi::drm_ferrite_ioctl_id_DRM_FERRITE_VM_CREATE);
pub const IOCTL_VM_DESTROY: u64 =
    iowr::<uapi::drm_ferrite_vm_destroy>(uapi::drm_ferrite_ioctl_id_DRM_FERRITE_VM_DESTROY);
pub const IOCTL_VM_BIND: u64 =
    iowr::<uapi::drm_ferrite_vm_bind>(uapi::drm_ferrite_ioctl_id_DRM_FERRITE_VM_BIND);
pub const IOCTL_QUEUE_CREATE: u64 =
    iowr::<uapi::drm_ferrite_queue_create>(uapi::drm_ferrite_ioctl_id_DRM_FERRITE_QUEUE_CREATE);
pub const IOCTL_QUEUE_DESTROY: u64 =
    iowr::<uapi::drm_ferrite_queue_destroy>(uapi::drm_ferrite_ioctl_id_DRM_FERRITE_QUEUE_DESTROY);
pub const IOCTL_SUBMIT: u64 =
    iowr::<uapi::drm_ferrite_submit>(uapi::drm_ferrite_ioctl_id_DRM_FERRITE_SUBMIT);
pub const IOCTL_QUEUE_GET_STATE: u64 = iowr::<uapi::drm_ferrite_queue_get_state>(
    uapi::drm_ferrite_ioctl_id_DRM_FERRITE_QUEUE_GET_STATE,
);
pub const IOCTL_VM_GET_STATE: u64 =
    iowr::<uapi::drm_ferrite_vm_get_state>(uapi::drm_ferrite_ioctl_id_DRM_FERRITE_VM_GET_STATE);

/// One VM_BIND operation (layout of `struct drm_ferrite_vm_bind_op`).
#[repr(transparent)]
#[derive(Debug, Clone, Copy)]
pub struct BindOp(pub uapi::drm_ferrite_vm_bind_op);

impl BindOp {
    /// Map `size` bytes of `bo` from `bo_offset` at `va`, with
    /// `DRM_FERRITE_VM_BIND_*` flags.
    pub fn map(bo: Bo, bo_offset: u64, va: u64, size: u64, flags: u32) -> Self {
        BindOp(uapi::drm_ferrite_vm_bind_op {
            op: uapi::drm_ferrite_vm_bind_op_type_DRM_FERRITE_VM_BIND_OP_MAP,
            flags,
            handle: bo.handle,
            bo_offset,
            va,
            size,
            ..Default::default()
        })
    }

    /// Map the caller's memory `[va, va + size)` at the same GPU VA
    /// (`DRM_FERRITE_VM_BIND_USERPTR`), with other `DRM_FERRITE_VM_BIND_*`
    /// flags.
    pub fn userptr(va: u64, size: u64, flags: u32) -> Self {
        BindOp(uapi::drm_ferrite_vm_bind_op {
            op: uapi::drm_ferrite_vm_bind_op_type_DRM_FERRITE_VM_BIND_OP_MAP,
            flags: flags | uapi::DRM_FERRITE_VM_BIND_USERPTR,
            va,
            size,
            ..Default::default()
        })
    }

    /// Map `[va, va + size)` to no memory (`DRM_FERRITE_VM_BIND_NULL`,
    /// interface 0.5): reads give zeros, writes are dropped.
    pub fn null(va: u64, size: u64, flags: u32) -> Self {
        BindOp(uapi::drm_ferrite_vm_bind_op {
            op: uapi::drm_ferrite_vm_bind_op_type_DRM_FERRITE_VM_BIND_OP_MAP,
            flags: flags | uapi::DRM_FERRITE_VM_BIND_NULL,
            va,
            size,
            ..Default::default()
        })
    }

    /// Unmap `[va, va + size)`.
    pub fn unmap(va: u64, size: u64) -> Self {
        BindOp(uapi::drm_ferrite_vm_bind_op {
            op: uapi::drm_ferrite_vm_bind_op_type_DRM_FERRITE_VM_BIND_OP_UNMAP,
            va,
            size,
            ..Default::default()
        })
    }

    /// Change nothing, only order the bind's sync ops
    /// (`DRM_FERRITE_VM_BIND_OP_SYNC_ONLY`, interface 0.5).
    pub fn sync_only() -> Self {
        BindOp(uapi::drm_ferrite_vm_bind_op {
            op: uapi::drm_ferrite_vm_bind_op_type_DRM_FERRITE_VM_BIND_OP_SYNC_ONLY,
            ..Default::default()
        })
    }
}

/// A sync object to wait on or signal (layout of `struct drm_ferrite_sync_op`).
#[repr(transparent)]
#[derive(Debug, Clone, Copy)]
pub struct SyncOp(pub uapi::drm_ferrite_sync_op);

impl SyncOp {
    /// Wait for the binary sync object `handle`.
    pub fn wait(handle: u32) -> Self {
        Self::new(uapi::DRM_FERRITE_SYNC_WAIT, handle, 0)
    }

    /// Signal the binary sync object `handle`.
    pub fn signal(handle: u32) -> Self {
        Self::new(uapi::DRM_FERRITE_SYNC_SIGNAL, handle, 0)
    }

    /// Wait for `point` of the timeline sync object `handle`.
    pub fn wait_point(handle: u32, point: u64) -> Self {
        Self::new(
            uapi::DRM_FERRITE_SYNC_WAIT | uapi::DRM_FERRITE_SYNC_TIMELINE,
            handle,
            point,
        )
    }

    /// Signal `point` of the timeline sync object `handle`.
    pub fn signal_point(handle: u32, point: u64) -> Self {
        Self::new(
            uapi::DRM_FERRITE_SYNC_SIGNAL | uapi::DRM_FERRITE_SYNC_TIMELINE,
            handle,
            point,
        )
    }

    fn new(flags: u32, handle: u32, point: u64) -> Self {
        SyncOp(uapi::drm_ferrite_sync_op {
            flags,
            handle,
            point,
        })
    }
}

/// A BO a job uses, for implicit sync (layout of `struct drm_ferrite_bo_ref`).
#[repr(transparent)]
#[derive(Debug, Clone, Copy)]
pub struct BoRef(pub uapi::drm_ferrite_bo_ref);

impl BoRef {
    /// The job only reads `bo`.
    pub fn read(bo: Bo) -> Self {
        BoRef(uapi::drm_ferrite_bo_ref {
            handle: bo.handle,
            flags: 0,
        })
    }

    /// The job writes `bo`.
    pub fn write(bo: Bo) -> Self {
        BoRef(uapi::drm_ferrite_bo_ref {
            handle: bo.handle,
            flags: uapi::DRM_FERRITE_BO_REF_WRITE,
        })
    }
}

/// A mirror VM: its id and the range of the process's addresses it mirrors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MirrorVm {
    pub id: u32,
    /// First mirrored address.
    pub start: u64,
    /// End (exclusive) of the mirrored range; BOs bind from here on.
    pub end: u64,
}

/// A queue's fault/error record (QUEUE_GET_STATE).
pub type QueueState = uapi::drm_ferrite_queue_get_state;

fn obj_array<T>(v: &[T]) -> uapi::drm_ferrite_obj_array {
    uapi::drm_ferrite_obj_array {
        count: v.len() as u32,
        stride: std::mem::size_of::<T>() as u32,
        array: if v.is_empty() { 0 } else { v.as_ptr() as u64 },
    }
}

impl Device {
    /// VM_CREATE: a new GPU address space; returns its id.
    pub fn vm_create(&self) -> io::Result<u32> {
        let mut c = uapi::drm_ferrite_vm_create::default();
        // SAFETY: c is a drm_ferrite_vm_create.
        unsafe { drm::ioctl(self.fd(), IOCTL_VM_CREATE, &mut c)? };
        Ok(c.vm_id)
    }

    /// VM_CREATE of a mirror VM (`DRM_FERRITE_VM_CREATE_MIRROR`, 0.7):
    /// the calling process's addresses from [`MirrorVm::start`] to
    /// [`MirrorVm::end`] are GPU addresses, mapped by GPU page faults;
    /// EOPNOTSUPP where the device cannot mirror.
    pub fn vm_create_mirror(&self) -> io::Result<MirrorVm> {
        let mut c = uapi::drm_ferrite_vm_create {
            flags: uapi::DRM_FERRITE_VM_CREATE_MIRROR,
            ..Default::default()
        };
        // SAFETY: c is a drm_ferrite_vm_create.
        unsafe { drm::ioctl(self.fd(), IOCTL_VM_CREATE, &mut c)? };
        Ok(MirrorVm {
            id: c.vm_id,
            start: c.mirror_start,
            end: c.mirror_end,
        })
    }

    /// VM_DESTROY (EBUSY while queues use the VM).
    pub fn vm_destroy(&self, vm: u32) -> io::Result<()> {
        let mut d = uapi::drm_ferrite_vm_destroy { vm_id: vm, pad: 0 };
        // SAFETY: d is a drm_ferrite_vm_destroy.
        unsafe { drm::ioctl(self.fd(), IOCTL_VM_DESTROY, &mut d) }
    }

    /// VM_BIND: apply `ops` in order once the WAIT `syncs` have signalled.
    pub fn vm_bind(&self, vm: u32, ops: &[BindOp], syncs: &[SyncOp]) -> io::Result<()> {
        self.vm_bind_flags(vm, 0, ops, syncs)
    }

    /// Asynchronous VM_BIND (`DRM_FERRITE_VM_BIND_ASYNC`, interface 0.5):
    /// checks `ops`, reserves their memory and returns; they are applied
    /// later, in order, and then the SIGNAL `syncs` signal.
    pub fn vm_bind_async(&self, vm: u32, ops: &[BindOp], syncs: &[SyncOp]) -> io::Result<()> {
        self.vm_bind_flags(vm, uapi::DRM_FERRITE_VM_BIND_ASYNC, ops, syncs)
    }

    /// VM_BIND with `drm_ferrite_vm_bind.flags`.
    pub fn vm_bind_flags(
        &self,
        vm: u32,
        flags: u32,
        ops: &[BindOp],
        syncs: &[SyncOp],
    ) -> io::Result<()> {
        let mut b = uapi::drm_ferrite_vm_bind {
            vm_id: vm,
            flags,
            ops: obj_array(ops),
            syncs: obj_array(syncs),
        };
        // SAFETY: b is a drm_ferrite_vm_bind whose arrays (of the UAPI
        // element layouts, by repr(transparent)) outlive the call.
        unsafe { drm::ioctl(self.fd(), IOCTL_VM_BIND, &mut b) }
    }

    /// Map `size` bytes of `bo` from `bo_offset` at `va`.
    pub fn vm_map(
        &self,
        vm: u32,
        bo: Bo,
        bo_offset: u64,
        va: u64,
        size: u64,
        flags: u32,
    ) -> io::Result<()> {
        self.vm_bind(vm, &[BindOp::map(bo, bo_offset, va, size, flags)], &[])
    }

    /// Map the caller's memory `[va, va + size)` at the same GPU VA.
    pub fn vm_map_user(&self, vm: u32, va: u64, size: u64, flags: u32) -> io::Result<()> {
        self.vm_bind(vm, &[BindOp::userptr(va, size, flags)], &[])
    }

    /// Unmap `[va, va + size)`.
    pub fn vm_unmap(&self, vm: u32, va: u64, size: u64) -> io::Result<()> {
        self.vm_bind(vm, &[BindOp::unmap(va, size)], &[])
    }

    /// VM_GET_STATE (interface 0.5): `true` while the VM is usable, `false`
    /// once an asynchronous bind failed after its VM_BIND returned.
    pub fn vm_usable(&self, vm: u32) -> io::Result<bool> {
        let mut s = uapi::drm_ferrite_vm_get_state {
            vm_id: vm,
            ..Default::default()
        };
        // SAFETY: s is a drm_ferrite_vm_get_state.
        unsafe { drm::ioctl(self.fd(), IOCTL_VM_GET_STATE, &mut s)? };
        Ok(s.state == uapi::drm_ferrite_vm_state_DRM_FERRITE_VM_STATE_USABLE)
    }

    /// QUEUE_CREATE on `vm`; `timeout_ms` 0 selects the driver's default.
    pub fn queue_create(&self, vm: u32, timeout_ms: u32) -> io::Result<u32> {
        self.queue_create_prio(
            vm,
            timeout_ms,
            uapi::drm_ferrite_queue_priority_DRM_FERRITE_QUEUE_PRIORITY_NORMAL,
        )
    }

    /// QUEUE_CREATE on `vm` with a priority (`enum drm_ferrite_queue_priority`).
    pub fn queue_create_prio(&self, vm: u32, timeout_ms: u32, priority: u32) -> io::Result<u32> {
        let mut c = uapi::drm_ferrite_queue_create {
            vm_id: vm,
            timeout_ms,
            priority,
            ..Default::default()
        };
        // SAFETY: c is a drm_ferrite_queue_create.
        unsafe { drm::ioctl(self.fd(), IOCTL_QUEUE_CREATE, &mut c)? };
        Ok(c.queue_id)
    }

    /// QUEUE_DESTROY.
    pub fn queue_destroy(&self, queue: u32) -> io::Result<()> {
        let mut d = uapi::drm_ferrite_queue_destroy {
            queue_id: queue,
            pad: 0,
        };
        // SAFETY: d is a drm_ferrite_queue_destroy.
        unsafe { drm::ioctl(self.fd(), IOCTL_QUEUE_DESTROY, &mut d) }
    }

    /// SUBMIT the `cmd_size` bytes of commands at `cmd_va` to `queue`.
    pub fn submit(
        &self,
        queue: u32,
        cmd_va: u64,
        cmd_size: u32,
        syncs: &[SyncOp],
        bos: &[BoRef],
    ) -> io::Result<()> {
        let mut s = uapi::drm_ferrite_submit {
            queue_id: queue,
            cmd_va,
            cmd_size,
            syncs: obj_array(syncs),
            bos: obj_array(bos),
            ..Default::default()
        };
        // SAFETY: s is a drm_ferrite_submit whose arrays outlive the call.
        unsafe { drm::ioctl(self.fd(), IOCTL_SUBMIT, &mut s) }
    }

    /// QUEUE_GET_STATE; `clear` resets the record after reading it.
    pub fn queue_state(&self, queue: u32, clear: bool) -> io::Result<QueueState> {
        let mut s = QueueState {
            queue_id: queue,
            flags: if clear {
                uapi::DRM_FERRITE_QUEUE_STATE_CLEAR
            } else {
                0
            },
            ..Default::default()
        };
        // SAFETY: s is a drm_ferrite_queue_get_state.
        unsafe { drm::ioctl(self.fd(), IOCTL_QUEUE_GET_STATE, &mut s)? };
        Ok(s)
    }

    /// A new binary sync object, unsignalled or signalled.
    pub fn syncobj_create(&self, signaled: bool) -> io::Result<u32> {
        let flags = if signaled {
            drm::SYNCOBJ_CREATE_SIGNALED
        } else {
            0
        };
        drm::syncobj_create(self.as_fd(), flags)
    }

    pub fn syncobj_destroy(&self, handle: u32) -> io::Result<()> {
        drm::syncobj_destroy(self.as_fd(), handle)
    }

    /// Wait up to `timeout` for every sync object of `handles` to signal;
    /// `Ok(false)` on timeout. Waits for a fence to be attached first, so a
    /// sync object whose job was not yet submitted does not fail the wait.
    pub fn syncobj_wait(&self, handles: &[u32], timeout: Duration) -> io::Result<bool> {
        let ns = i64::try_from(timeout.as_nanos()).unwrap_or(i64::MAX);
        let deadline = drm::monotonic_ns().saturating_add(ns);
        drm::syncobj_wait(
            self.as_fd(),
            handles,
            deadline,
            drm::SYNCOBJ_WAIT_ALL | drm::SYNCOBJ_WAIT_FOR_SUBMIT,
        )
    }

    /// The status of the fence in a sync object: 1 signalled, 0 pending,
    /// negative the error the job ended with (-EFAULT, -ETIMEDOUT, ...).
    pub fn syncobj_status(&self, handle: u32) -> io::Result<i32> {
        let f = drm::syncobj_export_sync_file(self.as_fd(), handle)?;
        drm::sync_file_status(std::os::fd::AsRawFd::as_raw_fd(&f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_the_header() {
        assert_eq!(IOCTL_VM_CREATE, uapi::DRM_IOCTL_FERRITE_VM_CREATE as u64);
        assert_eq!(IOCTL_VM_DESTROY, uapi::DRM_IOCTL_FERRITE_VM_DESTROY as u64);
        assert_eq!(IOCTL_VM_BIND, uapi::DRM_IOCTL_FERRITE_VM_BIND as u64);
        assert_eq!(
            IOCTL_QUEUE_CREATE,
            uapi::DRM_IOCTL_FERRITE_QUEUE_CREATE as u64
        );
        assert_eq!(
            IOCTL_QUEUE_DESTROY,
            uapi::DRM_IOCTL_FERRITE_QUEUE_DESTROY as u64
        );
        assert_eq!(IOCTL_SUBMIT, uapi::DRM_IOCTL_FERRITE_SUBMIT as u64);
        assert_eq!(
            IOCTL_QUEUE_GET_STATE,
            uapi::DRM_IOCTL_FERRITE_QUEUE_GET_STATE as u64
        );
        assert_eq!(
            IOCTL_VM_GET_STATE,
            uapi::DRM_IOCTL_FERRITE_VM_GET_STATE as u64
        );
    }

    #[test]
    fn wrappers_have_the_uapi_layout() {
        use std::mem::{align_of, size_of};
        assert_eq!(
            size_of::<BindOp>(),
            size_of::<uapi::drm_ferrite_vm_bind_op>()
        );
        assert_eq!(
            align_of::<BindOp>(),
            align_of::<uapi::drm_ferrite_vm_bind_op>()
        );
        assert_eq!(size_of::<SyncOp>(), 16);
        assert_eq!(size_of::<BoRef>(), 8);
        assert_eq!(size_of::<BindOp>(), 40);
        let a = obj_array(&[SyncOp::signal(3), SyncOp::wait(4)]);
        assert_eq!((a.count, a.stride), (2, 16));
        assert_eq!(obj_array::<BoRef>(&[]).array, 0);
    }

    #[test]
    fn op_constructors() {
        let bo = Bo {
            handle: 7,
            size: 8192,
        };
        let m = BindOp::map(
            bo,
            4096,
            0x1_0000_0000,
            4096,
            uapi::DRM_FERRITE_VM_BIND_READONLY,
        );
        assert_eq!((m.0.op, m.0.flags, m.0.handle), (0, 1, 7));
        assert_eq!(
            (m.0.bo_offset, m.0.va, m.0.size),
            (4096, 0x1_0000_0000, 4096)
        );
        let u = BindOp::unmap(0x2000, 0x1000);
        assert_eq!(
            (u.0.op, u.0.handle, u.0.va, u.0.size),
            (1, 0, 0x2000, 0x1000)
        );
        let n = BindOp::null(0x4000, 0x1000, 0);
        assert_eq!((n.0.op, n.0.flags, n.0.handle), (0, 8, 0));
        let s = BindOp::sync_only().0;
        assert_eq!((s.op, s.flags, s.va, s.size), (2, 0, 0, 0));
        assert_eq!(SyncOp::signal(5).0.flags, 1);
        assert_eq!(SyncOp::wait(5).0.flags, 0);
        let t = SyncOp::signal_point(5, 9).0;
        assert_eq!((t.flags, t.handle, t.point), (3, 5, 9));
        assert_eq!(BoRef::write(bo).0.flags, 1);
        assert_eq!(BoRef::read(bo).0.flags, 0);
    }
}
