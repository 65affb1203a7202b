// SPDX-License-Identifier: MIT
//! The fuzzing engine: per-file object pools, per-thread workers that
//! issue one random operation after another, and the checks on every
//! result.
//!
//! A worker never holds a pool lock across an ioctl: it picks arguments
//! under the lock, calls without it and records what was created after,
//! so threads sharing a file race on the same objects.
//!
//! Userptrs: each process keeps up to [`gen::MAX_USER_REGIONS`] regions of
//! its own memory (see [`gen::MemKind`]) that it binds at GPU VA == CPU VA,
//! munmaps, mprotects, madvises, reads and writes, unbinds and runs jobs
//! on. A worker takes a region out of the process's list while it works on
//! it, so the fuzzer knows which regions are bound where, and holds the
//! kernel to the UAPI's errnos for them. That knowledge is exact on the
//! process VM (which nothing else of the process can destroy); on explicit
//! VMs, which a forked child sharing the file or a raw VM_DESTROY may
//! destroy (and a later VM_CREATE reuse the id), outcomes that only a
//! vanished VM explains are tolerated.
//!
//! Asynchronous binds and unusable VMs (UAPI 0.5): an asynchronous
//! VM_BIND that waits for a fence which may fail (a job's, which may fault;
//! another bind's) may leave its VM unusable for good, after the call
//! returned. The fuzzer does not predict that: it asks VM_GET_STATE. Before
//! a SUBMIT or a bind on a VM that may be unusable (one such bind was made
//! on it, and now and then on any VM) it asks, and a VM reported unusable
//! must then refuse the SUBMIT and every bind that MAPs (`EIO`); after any
//! `EIO` that only an unusable VM explains, it asks again, and the VM must
//! be reported unusable. UNMAP-only binds never get `EIO` from an unusable
//! VM. Ids another thread may have reused meanwhile (a generation count of
//! the VM and queue creations and destructions of the file) void both
//! checks, and so does sharing the file with other processes (a forked
//! child), except for the process VM, whose id always names the caller's.
//! Such binds are made on the explicit VMs (recreated once found unusable)
//! and on the process VMs of short-lived processes (the churn and fork
//! children): the process VM of a process that keeps it takes only
//! asynchronous binds that wait for nothing, which cannot fail, so it must
//! stay usable.
//!
//! This module holds the shared state (pools, files, the process's
//! environment, the operation table, the allowed errnos) and the worker's
//! dispatch and checks; the operations live in one module per ioctl
//! family: [`query`], [`gem`], [`vm_bind`], [`submit`], [`vm_state`],
//! [`async_bind`], [`syncobj`], [`prime`], [`drm_core`], [`raw`],
//! [`userptr`] and [`files`], with argument placement in [`place`].

use std::fmt::Debug;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::Instant;

use ferrite::device::{
    IOCTL_BO_QUERY_INFO, IOCTL_BO_SET_LABEL, IOCTL_DEV_QUERY, IOCTL_GEM_CREATE,
    IOCTL_GEM_MMAP_OFFSET,
};
use ferrite::exec::{
    IOCTL_QUEUE_CREATE, IOCTL_QUEUE_DESTROY, IOCTL_QUEUE_GET_STATE, IOCTL_SUBMIT, IOCTL_VM_BIND,
    IOCTL_VM_CREATE, IOCTL_VM_DESTROY, IOCTL_VM_GET_STATE,
};
use ferrite::uapi::{self, drm_ferrite_counters, drm_ferrite_dev_info, drm_ferrite_obj_array};
use ferrite::{drm, Mmap};

use crate::gen::{
    self, BindOp, BoInfo, BoRef, Element, Layout, MemKind, Ptr, SyncInfo, SyncOp, VaRange, Val,
};
use crate::gen::{page, MIB};
use crate::rng::Rng;
use crate::stats::Stats;
use crate::sys::{self, errno_name, TwoU32};

mod async_bind;
mod drm_core;
mod files;
mod gem;
mod place;
mod prime;
mod query;
mod raw;
mod submit;
mod syncobj;
#[cfg(test)]
mod tests;
mod userptr;
mod vm_bind;
mod vm_state;

use place::{Arr, Placed, Scratch};
use userptr::{user_file_diff, UserMem};

/// Counters shared by every fuzz process (in a MAP_SHARED page).
#[repr(C)]
pub struct Shared {
    pub calls: AtomicU64,
    pub findings: AtomicU64,
}

/// When to stop: a total call count over all processes, or a deadline.
#[derive(Clone, Copy)]
pub struct Budget {
    pub shared: &'static Shared,
    pub limit: u64,
    pub deadline: Instant,
}

impl Budget {
    pub fn done(&self) -> bool {
        self.shared.calls.load(Relaxed) >= self.limit || Instant::now() >= self.deadline
    }
}

/// A Ferrite render node and its user VA range.
#[derive(Debug, Clone)]
pub struct DevDesc {
    pub path: PathBuf,
    pub range: VaRange,
    /// The driver's debugfs directory of the device (readable as root).
    pub debugfs: PathBuf,
    /// DEV_QUERY FEATURES: the `DRM_FERRITE_UAPI_*` bits.
    pub features: u64,
}

// Bounds of what one file keeps.
const MAX_BOS: usize = 64;
const MAX_BO_BYTES: u64 = 48 * MIB;
const MAX_VMS: usize = 8;
const MAX_QUEUES: usize = 4;
const MAX_SYNCOBJS: usize = 32;
const MAX_BOUND: usize = 128;
const MAX_CMDBUFS: usize = 8;
const MAX_MAPS: usize = 8;
const MAX_EXT_FDS: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct QueueEnt {
    id: u32,
    vm: u32,
}

/// A CPU mapping of a BO.
pub struct MapEnt {
    handle: u32,
    map: Mmap,
}

impl MapEnt {
    /// Copy `src` into the mapping at `off` (in range).
    fn write(&self, off: usize, src: &[u8]) {
        assert!(off + src.len() <= self.map.len());
        // SAFETY: inside the mapping (asserted); the mapping is shared
        // memory that no Rust reference covers.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.map.as_ptr().add(off), src.len())
        };
    }
}

/// A command buffer: commands BO mapped for the CPU and bound at a slot of
/// a VM, with a data BO next to it.
struct CmdBuf {
    vm: u32,
    cmd_va: u64,
    cmd_size: u64,
    map: Arc<MapEnt>,
    data_va: u64,
    data_size: u64,
}

/// The objects of one file the fuzzer knows about.
#[derive(Default)]
struct Pools {
    bos: Vec<BoInfo>,
    vms: Vec<u32>,
    queues: Vec<QueueEnt>,
    syncs: Vec<SyncInfo>,
    /// (vm, va, size) of recent successful MAPs.
    bound: Vec<(u32, u64, u64)>,
    cmdbufs: Vec<CmdBuf>,
    maps: Vec<Arc<MapEnt>>,
    /// VMs an asynchronous bind that waits for a fence was made on since
    /// VM_GET_STATE last reported them usable, or reported unusable: asked
    /// about before each use. (Only a hint: no check depends on it.)
    risky: Vec<u32>,
    /// Explicit VMs VM_GET_STATE reported unusable, to destroy and make
    /// again.
    unusable: Vec<u32>,
    /// Bumped before every VM and queue creation and destruction through
    /// the file: unchanged over a check, the ids it used named the same
    /// objects throughout (as far as this process goes).
    gen: u64,
}

impl Pools {
    fn bo_bytes(&self) -> u64 {
        self.bos.iter().map(|b| b.size).sum()
    }

    fn sync_handles(&self) -> Vec<u32> {
        self.syncs.iter().map(|s| s.handle).collect()
    }

    fn bound_in(&self, vm: u32) -> Vec<(u64, u64)> {
        self.bound
            .iter()
            .filter(|b| b.0 == vm)
            .map(|b| (b.1, b.2))
            .collect()
    }

    fn add_bound(&mut self, vm: u32, va: u64, size: u64) {
        self.remove_bound(vm, va, size);
        if self.bound.len() >= MAX_BOUND {
            self.bound.remove(0);
        }
        self.bound.push((vm, va, size));
    }

    fn remove_bound(&mut self, vm: u32, va: u64, size: u64) {
        let end = va.saturating_add(size);
        self.bound
            .retain(|b| !(b.0 == vm && b.1 < end && va < b.1.saturating_add(b.2)));
    }

    fn sync_mut(&mut self, h: u32) -> Option<&mut SyncInfo> {
        self.syncs.iter_mut().find(|s| s.handle == h)
    }

    /// Note the SIGNAL ops of a successful VM_BIND or SUBMIT.
    fn signalled(&mut self, syncs: &[SyncOp]) {
        for s in syncs {
            if s.flags & uapi::DRM_FERRITE_SYNC_SIGNAL == 0 {
                continue;
            }
            if let Some(i) = self.sync_mut(s.handle) {
                i.fenced = true;
                if s.flags & uapi::DRM_FERRITE_SYNC_TIMELINE != 0 {
                    i.point = i.point.max(s.point);
                }
            }
        }
    }
}

/// One open render node and the objects created through it.
pub struct FileCtx {
    pub fd: OwnedFd,
    pub range: VaRange,
    /// The device (index into [`Env::devs`]): files of one device share
    /// the process VM.
    pub dev: usize,
    /// The device takes asynchronous binds, SYNC_ONLY and VM_GET_STATE
    /// (DRM_FERRITE_UAPI_ASYNC_BIND).
    pub async_ok: bool,
    /// The device maps NULL ranges (DRM_FERRITE_UAPI_NULL_BIND).
    pub null_ok: bool,
    pools: Mutex<Pools>,
}

impl FileCtx {
    pub fn open(devs: &[DevDesc], dev: usize) -> std::io::Result<FileCtx> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&devs[dev].path)?;
        let features = devs[dev].features;
        Ok(FileCtx {
            fd: f.into(),
            range: devs[dev].range,
            dev,
            async_ok: features & u64::from(uapi::DRM_FERRITE_UAPI_ASYNC_BIND) != 0,
            null_ok: features & u64::from(uapi::DRM_FERRITE_UAPI_NULL_BIND) != 0,
            pools: Mutex::default(),
        })
    }

    fn pools(&self) -> MutexGuard<'_, Pools> {
        self.pools.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Note a VM or queue creation or destruction about to be made.
    fn bump(&self) {
        let mut p = self.pools();
        p.gen = p.gen.wrapping_add(1);
    }

    fn gen(&self) -> u64 {
        self.pools().gen
    }

    /// Keep a CPU mapping alive past the file (to touch after close).
    pub fn take_mapping(&self) -> Option<Arc<MapEnt>> {
        self.pools().maps.pop()
    }
}

/// Touch every page of a mapping: read, then write the byte back.
pub fn touch(m: &MapEnt) {
    for off in (0..m.map.len()).step_by(page() as usize) {
        // SAFETY: off < len, inside the mapping; volatile, as the memory is
        // shared with the device.
        unsafe {
            let p = m.map.as_ptr().add(off);
            p.write_volatile(p.read_volatile());
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FdKind {
    DmaBuf,
    SyncFile,
    Syncobj,
    Eventfd,
}

/// A file descriptor an ioctl returned (or an eventfd), with its kind.
struct ExtFd {
    fd: OwnedFd,
    kind: FdKind,
    /// The dma-buf's size.
    size: u64,
}

/// What the threads of one process share.
pub struct Env {
    pub devs: Vec<DevDesc>,
    /// File 0 is the main one; file 1 (if any) is reopened now and then.
    pub files: Vec<RwLock<Arc<FileCtx>>>,
    fds: Mutex<Vec<ExtFd>>,
    pub budget: Budget,
    pub trace: bool,
    /// Weight of each operation of [`OPS`].
    pub weights: Vec<u32>,
    replay_extra: String,
    /// Injected bind failures were pending when the run began (debugfs
    /// `inject_bind_failure`): any asynchronous bind may fail.
    inject_pending: bool,
    /// Userptr regions; last, so that they are unmapped after the files
    /// are closed.
    user: Mutex<UserMem>,
}

impl Drop for Env {
    /// Unbind the userptrs still bound and check that the read-only file
    /// is what was written to it.
    fn drop(&mut self) {
        let me = std::process::id();
        let u = self.user.get_mut().unwrap_or_else(|e| e.into_inner());
        for r in u.regions.iter().filter(|r| r.owner == me) {
            for b in &r.bindings {
                let Some(f) = b.file.upgrade() else { continue };
                let op = BindOp {
                    op: UNMAP,
                    va: b.va,
                    size: b.size,
                    ..Default::default()
                };
                let bytes = op.to_bytes();
                let mut arg = uapi::drm_ferrite_vm_bind {
                    vm_id: b.vm,
                    flags: 0,
                    ops: drm_ferrite_obj_array {
                        count: 1,
                        stride: bytes.len() as u32,
                        array: bytes.as_ptr() as u64,
                    },
                    syncs: drm_ferrite_obj_array::default(),
                };
                // SAFETY: the argument and the op array it points to are
                // ours and alive for the call.
                let _ = unsafe {
                    drm::ioctl_raw(
                        f.raw(),
                        IOCTL_VM_BIND,
                        (&mut arg as *mut uapi::drm_ferrite_vm_bind).cast(),
                    )
                };
            }
        }
        if let Some((fd, owner)) = &u.file {
            if *owner == me {
                if let Some(d) = user_file_diff(fd.as_raw_fd(), 0, gen::USER_FILE_SIZE) {
                    self.budget.shared.findings.fetch_add(1, Relaxed);
                    println!("FINDING pid {me} at the end of its run: {d}");
                }
            }
        }
    }
}

impl Env {
    pub fn new(devs: Vec<DevDesc>, files: Vec<FileCtx>, budget: Budget, opts: &RunOpts) -> Env {
        Env {
            devs,
            files: files
                .into_iter()
                .map(|f| RwLock::new(Arc::new(f)))
                .collect(),
            fds: Mutex::default(),
            budget,
            trace: opts.trace,
            weights: opts.weights.clone(),
            replay_extra: opts.replay_extra.clone(),
            inject_pending: opts.inject_pending,
            user: Mutex::default(),
        }
    }

    fn user(&self) -> MutexGuard<'_, UserMem> {
        self.user.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn file(&self, i: usize) -> Arc<FileCtx> {
        self.files[i]
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Take a CPU mapping of file 0's BOs out of its pool, to keep it
    /// past the file.
    pub fn take_mapping(&self) -> Option<Arc<MapEnt>> {
        self.file(0).take_mapping()
    }

    fn fds(&self) -> MutexGuard<'_, Vec<ExtFd>> {
        self.fds.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Options of the workers of a run.
#[derive(Debug, Clone)]
pub struct RunOpts {
    pub trace: bool,
    pub weights: Vec<u32>,
    /// Options a replay needs besides the seed (`--skip ...`).
    pub replay_extra: String,
    /// Injected bind failures were pending (debugfs `inject_bind_failure`
    /// of a device read non-zero) when the run began.
    pub inject_pending: bool,
}

/// The names of the operations (for --skip): the Op names in lower case.
pub fn op_names() -> Vec<String> {
    OPS.iter()
        .map(|(op, _)| format!("{op:?}").to_lowercase())
        .collect()
}

/// Operation weights with the operations named in `skip` disabled.
pub fn weights(skip: &[String]) -> Result<Vec<u32>, String> {
    let names = op_names();
    for s in skip {
        if !names.contains(s) {
            return Err(format!(
                "unknown operation {s} (known: {})",
                names.join(" ")
            ));
        }
    }
    let w: Vec<u32> = OPS
        .iter()
        .zip(&names)
        .map(|((_, w), n)| if skip.contains(n) { 0 } else { *w })
        .collect();
    if w.iter().all(|&w| w == 0) {
        return Err("every operation is skipped".into());
    }
    Ok(w)
}

/// What a call must do.
#[derive(Debug, Clone, Copy, Default)]
pub struct Expect {
    /// The UAPI says it fails (a rule violation independent of state).
    pub must_fail: bool,
    /// Nothing can make it fail.
    pub must_succeed: bool,
    /// Errors allowed here beyond the global set.
    pub extra: &'static [i32],
    /// If set, the only errors allowed.
    pub only: Option<&'static [i32]>,
}

impl Expect {
    fn fail_if(b: bool) -> Expect {
        Expect {
            must_fail: b,
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    DevQuery,
    GemCreate,
    GemClose,
    Mmap,
    VmCreate,
    VmDestroy,
    VmBind,
    QueueCreate,
    QueueDestroy,
    QueueState,
    GemSync,
    Submit,
    CmdBufSetup,
    SyncCreate,
    SyncDestroy,
    SyncWait,
    SyncTimelineWait,
    SyncSignal,
    SyncTimelineSignal,
    SyncReset,
    SyncQuery,
    SyncTransfer,
    SyncToFd,
    SyncFromFd,
    SyncEventfd,
    PrimeExport,
    PrimeImport,
    Core,
    Raw,
    PastLast,
    ReopenPeer,
    CloseFd,
    UserptrBind,
    UserptrUnbind,
    UserptrMm,
    UserptrJob,
    BoLabel,
    BoQueryInfo,
    VmState,
    AsyncBind,
}

/// Operations and their weights (in tenths).
const OPS: [(Op, u32); 40] = [
    (Op::DevQuery, 30),
    (Op::GemCreate, 60),
    (Op::GemClose, 30),
    (Op::Mmap, 40),
    (Op::VmCreate, 20),
    (Op::VmDestroy, 10),
    (Op::VmBind, 140),
    (Op::QueueCreate, 30),
    (Op::QueueDestroy, 10),
    (Op::QueueState, 20),
    (Op::GemSync, 20),
    (Op::Submit, 120),
    (Op::CmdBufSetup, 15),
    (Op::SyncCreate, 30),
    (Op::SyncDestroy, 20),
    (Op::SyncWait, 30),
    (Op::SyncTimelineWait, 20),
    (Op::SyncSignal, 10),
    (Op::SyncTimelineSignal, 10),
    (Op::SyncReset, 10),
    (Op::SyncQuery, 10),
    (Op::SyncTransfer, 10),
    (Op::SyncToFd, 15),
    (Op::SyncFromFd, 15),
    (Op::SyncEventfd, 8),
    (Op::PrimeExport, 15),
    (Op::PrimeImport, 15),
    (Op::Core, 15),
    (Op::Raw, 30),
    (Op::PastLast, 8),
    (Op::ReopenPeer, 2),
    (Op::CloseFd, 10),
    (Op::UserptrBind, 40),
    (Op::UserptrUnbind, 25),
    (Op::UserptrMm, 25),
    (Op::UserptrJob, 25),
    (Op::BoLabel, 15),
    (Op::BoQueryInfo, 15),
    (Op::VmState, 15),
    (Op::AsyncBind, 30),
];

const EIO_OK: &[i32] = &[libc::EIO];
/// VM_BIND: a MAP over a userptr is refused with EEXIST; EIO comes from a
/// MAP on an unusable VM (checked with VM_GET_STATE) or, in a synchronous
/// bind with WAIT sync ops, is a failed fence's error.
const BIND_EXTRA: &[i32] = &[libc::EEXIST];
const BIND_EIO_EXTRA: &[i32] = &[libc::EEXIST, libc::EIO];
/// SUBMIT on a queue whose VM VM_GET_STATE reported unusable just before,
/// with nothing else wrong: EIO (ENOENT if another thread destroyed the
/// queue meanwhile; EINTR while the BOs are locked; ENOMEM).
const SUBMIT_UNUSABLE: &[i32] = &[libc::EIO, libc::ENOENT, libc::EINTR, libc::ENOMEM];
/// VM_GET_STATE: of an explicit VM, ENOENT once it is gone; of the process
/// VM (made on first use), ENOMEM.
const STATE_VM: &[i32] = &[libc::ENOENT];
const STATE_PVM: &[i32] = &[libc::ENOMEM];
const EINVAL_ONLY: &[i32] = &[libc::EINVAL];
/// An asynchronous bind with a userptr MAP: EINVAL (ENOENT: the VM or a BO
/// of an earlier op is gone; ENOMEM: pinning a BO of an earlier op).
const ASYNC_USERPTR: &[i32] = &[libc::EINVAL, libc::ENOENT, libc::ENOMEM];
const ASYNC_USERPTR_EIO: &[i32] = &[libc::EINVAL, libc::ENOENT, libc::ENOMEM, libc::EIO];
/// A NULL MAP on an unusable VM: EIO (ENOENT: the VM is gone; ENOMEM).
const UNUSABLE_NULL_MAP: &[i32] = &[libc::EIO, libc::ENOENT, libc::ENOMEM];
/// A BO MAP on an unusable VM: EIO, or the BO's errors (its handle closed,
/// or reused for a smaller BO, by another thread; pinning it).
const UNUSABLE_BO_MAP: &[i32] = &[libc::EIO, libc::ENOENT, libc::EINVAL, libc::ENOMEM];
/// An UNMAP of a range without userptrs on an unusable VM: it works
/// (ENOENT: the VM is gone; ENOMEM: splitting a mapping).
const UNUSABLE_UNMAP: &[i32] = &[libc::ENOENT, libc::ENOMEM];
/// Destroying an unusable VM after its queues: EBUSY only for queues the
/// fuzzer does not know of (a forked child's), ENOENT if it is gone.
const RECYCLE_DESTROY: &[i32] = &[libc::EBUSY, libc::ENOENT];
/// Exporting the sync object an asynchronous bind just signalled: it holds
/// a fence (ENOENT: destroyed by another thread through a random handle;
/// EINVAL: reset by another thread through a random handle, leaving no
/// fence to export, as a debug-boot run found).
const EXPORT_FENCED: &[i32] = &[
    libc::ENOMEM,
    libc::EMFILE,
    libc::ENFILE,
    libc::ENOENT,
    libc::EINVAL,
];
// The errors userptr VM_BINDs may return (ferrite_drm.h,
// DRM_FERRITE_VM_BIND_USERPTR), on the process VM (`_PVM`, which is the
// caller's and cannot be destroyed: no EPERM or ENOENT) and on explicit
// VMs (a forked child's VMs are its parent's: EPERM; destroyed: ENOENT).
// EIO only on an unusable VM (checked with VM_GET_STATE): no userptr
// VM_BIND waits for a fence.
/// A MAP that must fail: read-only memory bound writable, or unreadable
/// memory (EFAULT); or a range that is bound already (EEXIST).
const UP_FAIL_PVM: &[i32] = &[libc::EFAULT, libc::EEXIST, libc::ENOMEM, libc::EIO];
const UP_FAIL: &[i32] = &[
    libc::EFAULT,
    libc::EEXIST,
    libc::EPERM,
    libc::ENOENT,
    libc::ENOMEM,
    libc::EIO,
];
/// A MAP of memory the process may map so: EEXIST only where a userptr
/// the fuzzer forgot (its file closed, the VM living on through another)
/// or one of memory since unmapped is still there.
const UP_MAP_PVM: &[i32] = &[libc::EEXIST, libc::ENOMEM, libc::EIO];
const UP_MAP: &[i32] = &[
    libc::EEXIST,
    libc::EPERM,
    libc::ENOENT,
    libc::ENOMEM,
    libc::EIO,
];
/// An UNMAP of part of a userptr: EINVAL.
const UP_PARTIAL_PVM: &[i32] = &[libc::EINVAL];
const UP_PARTIAL: &[i32] = &[libc::EINVAL, libc::ENOENT];
/// An UNMAP of a whole userptr.
const UP_UNMAP_PVM: &[i32] = &[libc::ENOMEM];
const UP_UNMAP: &[i32] = &[libc::ENOENT, libc::ENOMEM];
/// A range outside the VA range userspace may bind.
const UP_RANGE: &[i32] = &[libc::EINVAL];
/// mmap, munmap, mprotect, madvise of the process's own regions.
const ENOMEM_ONLY: &[i32] = &[libc::ENOMEM];
const PAST_LAST_ERRNOS: &[i32] = &[libc::ENOTTY, libc::EINVAL];
const INFO: u32 = uapi::drm_ferrite_dev_query_type_DRM_FERRITE_DEV_QUERY_INFO;
const COUNTERS: u32 = uapi::drm_ferrite_dev_query_type_DRM_FERRITE_DEV_QUERY_COUNTERS;
const SCHED: u32 = uapi::drm_ferrite_dev_query_type_DRM_FERRITE_DEV_QUERY_SCHED;
const TIMESTAMP: u32 = uapi::drm_ferrite_dev_query_type_DRM_FERRITE_DEV_QUERY_TIMESTAMP;
const MEMORY: u32 = uapi::drm_ferrite_dev_query_type_DRM_FERRITE_DEV_QUERY_MEMORY;
const MMU: u32 = uapi::drm_ferrite_dev_query_type_DRM_FERRITE_DEV_QUERY_MMU;
const FEATURES: u32 = uapi::drm_ferrite_dev_query_type_DRM_FERRITE_DEV_QUERY_FEATURES;
/// The size of each DEV_QUERY answer.
fn query_len(ty: u32) -> Option<u32> {
    let n = match ty {
        INFO => std::mem::size_of::<drm_ferrite_dev_info>(),
        COUNTERS => std::mem::size_of::<drm_ferrite_counters>(),
        SCHED => std::mem::size_of::<uapi::drm_ferrite_sched_info>(),
        TIMESTAMP => std::mem::size_of::<uapi::drm_ferrite_timestamp_info>(),
        MEMORY => std::mem::size_of::<uapi::drm_ferrite_memory_info>(),
        MMU => std::mem::size_of::<uapi::drm_ferrite_mmu_info>(),
        FEATURES => std::mem::size_of::<uapi::drm_ferrite_uapi_features>(),
        _ => return None,
    };
    Some(n as u32)
}
/// The longest BO label with its NUL.
const LABEL_MAX: usize = uapi::DRM_FERRITE_BO_LABEL_MAX as usize;
const SIGNAL: u32 = uapi::DRM_FERRITE_SYNC_SIGNAL;
const TIMELINE: u32 = uapi::DRM_FERRITE_SYNC_TIMELINE;
const MAP: u32 = gen::MAP;
const UNMAP: u32 = gen::UNMAP;
const ASYNC: u32 = uapi::DRM_FERRITE_VM_BIND_ASYNC;
const USERPTR: u32 = uapi::DRM_FERRITE_VM_BIND_USERPTR;
const PVM: u32 = uapi::DRM_FERRITE_VM_PROCESS;
const VM_USABLE: u32 = uapi::drm_ferrite_vm_state_DRM_FERRITE_VM_STATE_USABLE;
const VM_UNUSABLE: u32 = uapi::drm_ferrite_vm_state_DRM_FERRITE_VM_STATE_UNUSABLE;
/// VM ids no file can reach (each VM holds page tables): VM_GET_STATE of
/// one must fail with ENOENT.
const VM_ID_NEVER: u32 = 1 << 24;

fn nothing() -> String {
    String::new()
}

/// The elements of an array placed by [`Worker::array`] as the kernel
/// reads them; None when its count is not theirs (it reads past them).
fn kernel_view<T: Element>(elems: &[T], a: &Arr) -> Option<Vec<T>> {
    let n = a.arr.count as usize;
    (n <= elems.len()).then(|| {
        elems[..n]
            .iter()
            .map(|e| gen::as_kernel_sees(e, a.layout.stride))
            .collect()
    })
}

/// Queue `id` of `f` was destroyed: forget it, so that every queue of the
/// pool names the queue (and so the VM) it says.
fn forget_queue(f: &FileCtx, id: u32) {
    f.pools().queues.retain(|q| q.id != id);
}

/// Whether sync ops (as the kernel reads them) wait for a fence: a WAIT on
/// a handle that may exist.
fn waits_for_fence(syncs: Option<&[SyncOp]>) -> bool {
    syncs.is_none_or(|v| v.iter().any(|s| s.flags & SIGNAL == 0 && s.handle != 0))
}

/// At most `n` elements of a list, for messages.
fn head<T: Debug>(v: &[T], n: usize) -> String {
    if v.len() <= n {
        format!("{v:?}")
    } else {
        format!("{:?} ... ({} in all)", &v[..n], v.len())
    }
}

/// One thread's fuzzer.
pub struct Worker<'e> {
    env: &'e Env,
    pub rng: Rng,
    seed: u64,
    label: String,
    pub stats: Stats,
    scratch: Scratch,
    hold: Vec<Arc<MapEnt>>,
    ncalls: u64,
    steps: u64,
    /// The process the worker runs in (userptr regions are per process).
    pid: u32,
    /// Its process VMs may become unusable: a short-lived process (churn,
    /// forked child), whose asynchronous binds on them may wait for fences
    /// that fail. Elsewhere they must stay usable.
    pub pvm_expendable: bool,
    /// Other processes use its files (the fork parent and its children):
    /// ids of explicit VMs and of queues may change under it unseen.
    pub shares_file: bool,
    /// Other threads of its process use its files: their operations on
    /// random handles may hit the sync objects it made for itself.
    pub sibling_threads: bool,
    /// The process VM was reported unusable where it must not be (once).
    pvm_reported: bool,
}

impl<'e> Worker<'e> {
    pub fn new(env: &'e Env, seed: u64, label: String) -> Worker<'e> {
        Worker {
            env,
            rng: Rng::new(seed),
            seed,
            label,
            stats: Stats::default(),
            scratch: Scratch::new(),
            hold: Vec::new(),
            ncalls: 0,
            steps: 0,
            pid: std::process::id(),
            pvm_expendable: false,
            shares_file: false,
            sibling_threads: false,
            pvm_reported: false,
        }
    }

    /// Fuzz until the budget is spent.
    pub fn run(&mut self) {
        self.boundary_sweep();
        while !self.env.budget.done() {
            self.step();
        }
    }

    /// Up to `n` operations (fewer if the budget runs out).
    pub fn run_n(&mut self, n: u64) {
        for _ in 0..n {
            if self.env.budget.done() {
                break;
            }
            self.step();
        }
    }

    /// Report a finding.
    pub fn finding(&mut self, what: &str, detail: &str) {
        self.stats.findings += 1;
        self.env.budget.shared.findings.fetch_add(1, Relaxed);
        let detail = if detail.is_empty() {
            String::new()
        } else {
            format!("\n  args: {detail}")
        };
        println!(
            "FINDING {} call #{} (stream seed {}): {what}{detail}\n  replay this stream alone: \
             ferrite-fuzz --seed {} --threads 1 --procs 1 --calls {}{}",
            self.label, self.ncalls, self.seed, self.seed, self.ncalls, self.env.replay_extra
        );
    }

    fn count_call(&mut self) {
        self.env.budget.shared.calls.fetch_add(1, Relaxed);
        self.ncalls += 1;
    }

    /// Record a result and check it against `ex` and the allowed errors.
    fn check(
        &mut self,
        name: &'static str,
        r: Result<i32, i32>,
        ex: Expect,
        describe: &dyn Fn() -> String,
    ) {
        self.stats.record(name, r);
        if self.env.trace {
            let res = match r {
                Ok(v) => format!("ok {v}"),
                Err(e) => errno_name(e),
            };
            println!("{} #{} {name} -> {res}", self.label, self.ncalls);
        }
        let problem = match r {
            Ok(_) if ex.must_fail => {
                Some("succeeded, but the UAPI requires it to fail".to_string())
            }
            Ok(_) => None,
            Err(e) if ex.must_succeed => {
                Some(format!("failed with {} but must succeed", errno_name(e)))
            }
            Err(e) if ex.only.is_some_and(|o| !o.contains(&e)) => Some(format!(
                "returned {}, expected one of {:?}",
                errno_name(e),
                ex.only
                    .unwrap()
                    .iter()
                    .map(|&e| errno_name(e))
                    .collect::<Vec<_>>()
            )),
            // `only` names the errors allowed here, in place of the global set.
            Err(_) if ex.only.is_some() => None,
            Err(e) if !sys::errno_allowed(e) && !ex.extra.contains(&e) => Some(format!(
                "returned {} ({e}), not an allowed error",
                errno_name(e)
            )),
            Err(_) => None,
        };
        if let Some(p) = problem {
            self.finding(&format!("{name} {p}"), &describe());
        }
    }

    /// Issue an ioctl whose argument is `arg`, check the result.
    fn ioctl<T: Copy + Debug>(
        &mut self,
        fd: RawFd,
        name: &'static str,
        req: u64,
        arg: &mut T,
        ex: Expect,
        ctx: &dyn Fn() -> String,
    ) -> Result<i32, i32> {
        debug_assert!(((req >> 16) & 0x3fff) as usize <= std::mem::size_of::<T>());
        let before = *arg;
        self.count_call();
        // SAFETY: `arg` is a T of at least the size `req` encodes, and the
        // user pointers in it point to the scratch area, BO mappings or
        // addresses no access can succeed at (gen::WILD_POINTERS).
        let r = unsafe { drm::ioctl_raw(fd, req, (arg as *mut T).cast()) };
        self.check(name, r, ex, &|| format!("{before:?}{}", ctx()));
        r
    }

    fn file(&mut self) -> Arc<FileCtx> {
        let i = if self.env.files.len() > 1 && self.rng.chance(1, 6) {
            1
        } else {
            0
        };
        self.env.file(i)
    }

    /// One random operation.
    pub fn step(&mut self) {
        self.steps += 1;
        self.rng = Rng::new(crate::rng::step_seed(self.seed, self.steps));
        self.scratch.reset();
        self.hold.clear();
        let op = OPS[self.rng.weighted(&self.env.weights)].0;
        let fa = self.file();
        let f = &*fa;
        match op {
            Op::DevQuery => self.op_dev_query(f),
            Op::GemCreate => self.op_gem_create(f),
            Op::GemClose => self.op_gem_close(f),
            Op::Mmap => self.op_mmap(f),
            Op::VmCreate => self.op_vm_create(f),
            Op::VmDestroy => self.op_vm_destroy(f),
            Op::VmBind => self.op_vm_bind(f),
            Op::QueueCreate => self.op_queue_create(f, None),
            Op::QueueDestroy => self.op_queue_destroy(f),
            Op::QueueState => self.op_queue_state(f, None),
            Op::GemSync => self.op_gem_sync(f),
            Op::Submit => self.op_submit(f),
            Op::CmdBufSetup => self.op_cmdbuf_setup(f, None),
            Op::SyncCreate => self.op_sync_create(f),
            Op::SyncDestroy => self.op_sync_destroy(f),
            Op::SyncWait => self.op_sync_wait(f, None),
            Op::SyncTimelineWait => self.op_sync_timeline_wait(f),
            Op::SyncSignal => self.op_sync_array(f, false),
            Op::SyncReset => self.op_sync_array(f, true),
            Op::SyncTimelineSignal => self.op_sync_timeline_array(f, false),
            Op::SyncQuery => self.op_sync_timeline_array(f, true),
            Op::SyncTransfer => self.op_sync_transfer(f),
            Op::SyncToFd => self.op_sync_to_fd(f),
            Op::SyncFromFd => self.op_sync_from_fd(f),
            Op::SyncEventfd => self.op_sync_eventfd(f),
            Op::PrimeExport => self.op_prime_export(f),
            Op::PrimeImport => self.op_prime_import(),
            Op::Core => self.op_core(f),
            Op::Raw => self.op_raw(f),
            Op::PastLast => self.op_past_last(f),
            Op::ReopenPeer => self.op_reopen_peer(),
            Op::CloseFd => self.op_close_fd(),
            Op::UserptrBind => self.op_userptr_bind(&fa),
            Op::UserptrUnbind => self.op_userptr_unbind(),
            Op::UserptrMm => self.op_userptr_mm(),
            Op::UserptrJob => self.op_userptr_job(f),
            Op::BoLabel => self.op_bo_label(f),
            Op::BoQueryInfo => self.op_bo_query_info(f),
            Op::VmState => self.op_vm_state(f),
            Op::AsyncBind => self.op_async_bind(f),
        }
        // A client destroys a VM it found unusable and makes a new one.
        let unusable = f.pools().unusable.first().copied();
        if let Some(vm) = unusable.filter(|_| self.rng.chance(1, 2)) {
            self.recycle_vm(f, vm);
        }
    }
}
