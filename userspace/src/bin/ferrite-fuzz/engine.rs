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
use crate::gen::{MIB, PAGE};
use crate::rng::Rng;
use crate::stats::Stats;
use crate::sys::{self, errno_name, TwoU32};

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
    for off in (0..m.map.len()).step_by(PAGE as usize) {
        // SAFETY: off < len, inside the mapping; volatile, as the memory is
        // shared with the device.
        unsafe {
            let p = m.map.as_ptr().add(off);
            p.write_volatile(p.read_volatile());
        }
    }
}

/// Read one byte of each page of a readable region (faulting it in).
fn read_pages(r: &Region) {
    for off in (0..r.size).step_by(PAGE as usize) {
        // SAFETY: inside a region mapped readable.
        unsafe { ((r.va + off) as *const u8).read_volatile() };
    }
}

/// Write a word into each page of a writable region.
fn write_pages(r: &Region, v: u64) {
    for off in (0..r.size).step_by(PAGE as usize) {
        // SAFETY: inside a region mapped writable.
        unsafe { ((r.va + off) as *mut u64).write_volatile(v ^ off) };
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

/// A userptr binding of (part of) a region.
#[derive(Debug, Clone)]
struct UBinding {
    /// The file it was made through (its explicit VMs die with it).
    file: Weak<FileCtx>,
    /// Its device: the process VM of a device is one for all its files.
    dev: usize,
    vm: u32,
    va: u64,
    size: u64,
    readonly: bool,
}

impl UBinding {
    /// Whether it is in `vm` as `f` names it.
    fn in_vm(&self, f: &FileCtx, vm: u32) -> bool {
        self.vm == vm
            && if vm == uapi::DRM_FERRITE_VM_PROCESS {
                self.dev == f.dev
            } else {
                std::ptr::eq(self.file.as_ptr(), f)
            }
    }

    fn overlaps(&self, va: u64, size: u64) -> bool {
        self.va < va.saturating_add(size) && va < self.va + self.size
    }
}

/// A region of the process's memory for userptr binds.
#[derive(Debug)]
struct Region {
    kind: MemKind,
    va: u64,
    size: u64,
    /// Where in the userptr file a file-backed region starts.
    file_off: u64,
    /// Its protection (PROT_*), while mapped.
    prot: i32,
    /// False once munmapped: its addresses are then never touched or bound
    /// again; it stays listed until its bindings are gone.
    mapped: bool,
    /// A writable binding of it was forgotten (its file closed) and may
    /// still be registered in a VM that lives on.
    lost_writable: bool,
    bindings: Vec<UBinding>,
    /// The process that made it (a forked child leaves its parent's alone).
    owner: u32,
}

impl Region {
    /// Whether a writable userptr may still be registered on it: then it is
    /// never munmapped (the userptr would map whatever the process puts at
    /// those addresses next, writable), but its pages are replaced by a
    /// PROT_NONE mapping, which keeps the addresses.
    fn maybe_bound_writable(&self) -> bool {
        self.lost_writable || self.bindings.iter().any(|b| !b.readonly)
    }
}

/// The userptr regions of a process and the file the file-backed ones map.
#[derive(Default)]
struct UserMem {
    regions: Vec<Region>,
    /// Regions a worker has taken out of `regions` (or is making).
    out: usize,
    /// A sealed memfd of [`gen::USER_FILE_SIZE`] bytes of
    /// [`gen::user_file_byte`], and the process that made it.
    file: Option<(OwnedFd, u32)>,
    file_failed: bool,
}

impl UserMem {
    /// Forget the bindings made through closed files and the munmapped
    /// regions without bindings.
    fn prune(&mut self) {
        for r in &mut self.regions {
            r.lost_writable |= r
                .bindings
                .iter()
                .any(|b| !b.readonly && b.file.strong_count() == 0);
            r.bindings.retain(|b| b.file.strong_count() > 0);
        }
        self.regions.retain(|r| r.mapped || !r.bindings.is_empty());
    }

    fn owned_by(&self, pid: u32) -> usize {
        self.regions.iter().filter(|r| r.owner == pid).count()
    }
}

impl Drop for UserMem {
    /// Runs after the files are closed (the field comes last in [`Env`]),
    /// so no job can start on these addresses once they are given back.
    fn drop(&mut self) {
        let me = std::process::id();
        for r in self.regions.iter().filter(|r| r.owner == me && r.mapped) {
            // SAFETY: a region this process mapped and still has mapped;
            // nothing refers to its memory any more.
            unsafe { libc::munmap(r.va as *mut libc::c_void, r.size as usize) };
        }
    }
}

/// Read `len` bytes of the userptr file at `off` and compare them with
/// what was written; a description of the first difference.
fn user_file_diff(fd: RawFd, off: u64, len: u64) -> Option<String> {
    let mut buf = vec![0u8; len as usize];
    let mut got = 0usize;
    while got < buf.len() {
        // SAFETY: reading into the rest of our own buffer.
        let n = unsafe {
            libc::pread(
                fd,
                buf[got..].as_mut_ptr().cast(),
                buf.len() - got,
                (off + got as u64) as libc::off_t,
            )
        };
        if n <= 0 {
            return Some(format!(
                "reading the userptr file at {:#x} failed: {}",
                off + got as u64,
                std::io::Error::last_os_error()
            ));
        }
        got += n as usize;
    }
    let i = (0..buf.len()).find(|&i| buf[i] != gen::user_file_byte(off + i as u64))?;
    let at = off + i as u64;
    Some(format!(
        "the read-only userptr file changed: byte {at:#x} is {:#04x}, was written {:#04x}",
        buf[i],
        gen::user_file_byte(at)
    ))
}

/// The sealed memfd the file-backed regions map: written once, then no
/// write, shrink or growth possible, so only the kernel can change it.
fn make_user_file() -> std::io::Result<OwnedFd> {
    // SAFETY: a new memfd; the name is a valid C string.
    let fd = unsafe {
        libc::memfd_create(
            c"ferrite-fuzz-userptr".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the descriptor was just created and is ours.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let data: Vec<u8> = (0..gen::USER_FILE_SIZE).map(gen::user_file_byte).collect();
    let mut done = 0usize;
    while done < data.len() {
        // SAFETY: writing from our own buffer.
        let n = unsafe {
            libc::pwrite(
                fd.as_raw_fd(),
                data[done..].as_ptr().cast(),
                data.len() - done,
                done as libc::off_t,
            )
        };
        if n <= 0 {
            return Err(std::io::Error::last_os_error());
        }
        done += n as usize;
    }
    let seals = libc::F_SEAL_WRITE | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
    // SAFETY: fcntl on our descriptor.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd)
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

/// Scratch memory of a worker: a read/write area for arguments, a guard
/// page after it and a read-only page after that. Short arrays end right
/// at the guard page.
struct Scratch {
    base: *mut u8,
    used: usize,
    short_used: bool,
}

const SCRATCH_RW: usize = 1 << 20;
/// The end of the read/write area holds short (truncated) arrays.
const SHORT_MAX: usize = 256 << 10;

impl Scratch {
    fn new() -> Scratch {
        let len = SCRATCH_RW + 2 * PAGE as usize;
        // SAFETY: a new private anonymous mapping; nothing else is affected.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert!(p != libc::MAP_FAILED, "cannot map scratch memory");
        let p = p.cast::<u8>();
        // SAFETY: both pages lie inside the mapping just created.
        unsafe {
            libc::mprotect(p.add(SCRATCH_RW).cast(), PAGE as usize, libc::PROT_NONE);
            libc::mprotect(
                p.add(SCRATCH_RW + PAGE as usize).cast(),
                PAGE as usize,
                libc::PROT_READ,
            );
        }
        Scratch {
            base: p,
            used: 0,
            short_used: false,
        }
    }

    fn reset(&mut self) {
        self.used = 0;
        self.short_used = false;
    }

    fn rw_end(&self) -> u64 {
        self.base as u64 + SCRATCH_RW as u64
    }

    fn guard(&self) -> u64 {
        self.rw_end()
    }

    fn read_only(&self) -> u64 {
        self.rw_end() + PAGE
    }

    fn alloc(&mut self, n: usize) -> Option<*mut u8> {
        let at = self.used.next_multiple_of(8);
        if at + n > SCRATCH_RW - SHORT_MAX {
            return None;
        }
        self.used = at + n;
        // SAFETY: at + n is inside the read/write area.
        Some(unsafe { self.base.add(at) })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped only here.
        unsafe { libc::munmap(self.base.cast(), SCRATCH_RW + 2 * PAGE as usize) };
    }
}

/// Where an argument was put, and how many bytes of it the kernel can
/// access (for reads: that are mapped; for writes: that are writable).
#[derive(Debug, Clone, Copy)]
struct Placed {
    ptr: u64,
    accessible: u64,
    /// In a BO mapping that other threads or jobs may change.
    shared: bool,
}

/// An array argument as passed, and whether the UAPI requires failure
/// because of it.
struct Arr {
    arr: drm_ferrite_obj_array,
    layout: Layout,
    bad: bool,
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

    // ---- argument placement -------------------------------------------

    fn bo_mapping(&mut self, f: &FileCtx, n: usize) -> Option<Arc<MapEnt>> {
        let m = {
            let p = f.pools();
            let fit: Vec<&Arc<MapEnt>> = p.maps.iter().filter(|m| m.map.len() >= n).collect();
            self.rng.pick(&fit).map(|m| (*m).clone())
        }?;
        self.hold.push(m.clone());
        Some(m)
    }

    fn place_short(&mut self, bytes: &[u8]) -> Placed {
        if self.scratch.short_used {
            return Placed {
                ptr: self.scratch.guard(),
                accessible: 0,
                shared: false,
            };
        }
        self.scratch.short_used = true;
        let present = if bytes.is_empty() {
            0
        } else {
            self.rng.below(bytes.len().min(SHORT_MAX) as u64) as usize
        };
        let ptr = self.scratch.rw_end() - present as u64;
        // SAFETY: [ptr, ptr + present) is the end of the scratch area.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr as *mut u8, present) };
        Placed {
            ptr,
            accessible: present as u64,
            shared: false,
        }
    }

    fn place_valid(&mut self, bytes: &[u8], claimed: u64) -> Placed {
        match self.scratch.alloc(bytes.len()) {
            Some(p) => {
                // SAFETY: `alloc` returned bytes.len() bytes of scratch.
                unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len()) };
                Placed {
                    ptr: p as u64,
                    accessible: claimed,
                    shared: false,
                }
            }
            None => self.place_short(bytes),
        }
    }

    /// Put an input array (the kernel reads `claimed` bytes) as `kind` says.
    fn place_in(&mut self, f: &FileCtx, bytes: &[u8], claimed: u64, kind: Ptr) -> Placed {
        let kind = match kind {
            Ptr::Wild(_) => kind,
            _ if claimed > bytes.len() as u64 => Ptr::Short,
            k => k,
        };
        match kind {
            Ptr::Wild(p) => Placed {
                ptr: p,
                accessible: 0,
                shared: false,
            },
            Ptr::Short => self.place_short(bytes),
            Ptr::BoMapping => match self.bo_mapping(f, bytes.len()) {
                Some(m) => {
                    m.write(0, bytes);
                    Placed {
                        ptr: m.map.as_ptr() as u64,
                        accessible: claimed,
                        shared: true,
                    }
                }
                None => self.place_valid(bytes, claimed),
            },
            Ptr::Valid | Ptr::ReadOnly => self.place_valid(bytes, claimed),
        }
    }

    /// Memory the kernel writes `n` bytes to, as `kind` says.
    fn place_out(&mut self, f: &FileCtx, n: u64, kind: Ptr) -> Placed {
        let wild = |ptr| Placed {
            ptr,
            accessible: 0,
            shared: false,
        };
        match kind {
            Ptr::Wild(p) => wild(p),
            Ptr::ReadOnly => wild(self.scratch.read_only()),
            Ptr::Short => {
                if self.scratch.short_used || n == 0 {
                    return wild(self.scratch.guard());
                }
                self.scratch.short_used = true;
                let present = self.rng.below(n.min(SHORT_MAX as u64));
                Placed {
                    ptr: self.scratch.rw_end() - present,
                    accessible: present,
                    shared: false,
                }
            }
            Ptr::BoMapping => match usize::try_from(n).ok().and_then(|n| self.bo_mapping(f, n)) {
                Some(m) => Placed {
                    ptr: m.map.as_ptr() as u64,
                    accessible: n,
                    shared: true,
                },
                None => self.place_out(f, n, Ptr::Valid),
            },
            Ptr::Valid => match usize::try_from(n).ok().and_then(|n| self.scratch.alloc(n)) {
                Some(p) => Placed {
                    ptr: p as u64,
                    accessible: n,
                    shared: false,
                },
                None => self.place_out(f, n, Ptr::Short),
            },
        }
    }

    /// Encode and place a Ferrite array of `size`-byte elements.
    fn array<T: Element>(
        &mut self,
        f: &FileCtx,
        elems: &[T],
        size: u32,
        bad: impl Fn(&T) -> bool,
    ) -> Arr {
        let layout = gen::layout(&mut self.rng, size);
        let (count, absurd) = gen::count(&mut self.rng, elems.len() as u32);
        let bytes = gen::encode(&mut self.rng, elems, layout);
        let claimed = u64::from(count) * u64::from(layout.stride);
        let kind = gen::in_ptr(&mut self.rng);
        let p = self.place_in(f, &bytes, claimed, kind);
        let elems_bad =
            !absurd && count > 0 && elems.iter().any(|e| gen::element_bad(e, layout, &bad));
        Arr {
            arr: drm_ferrite_obj_array {
                count,
                stride: layout.stride,
                array: p.ptr,
            },
            layout,
            bad: !p.shared && (claimed > p.accessible || elems_bad),
        }
    }

    /// A core handle array (u32 each); returns (count, pointer, handles).
    fn handle_array(&mut self, f: &FileCtx, live: &[u32], max: u64) -> (u32, u64, Vec<u32>) {
        let n = if self.rng.chance(1, 30) {
            0
        } else {
            self.rng.range(1, max)
        };
        let hs: Vec<u32> = (0..n).map(|_| gen::handle(&mut self.rng, live)).collect();
        let (count, absurd) = gen::count(&mut self.rng, hs.len() as u32);
        // The DRM core allocates the arrays with kmalloc and no
        // __GFP_NOWARN: counts whose arrays exceed 4 MiB WARN in the page
        // allocator (a core issue, not the driver's). Stay below that.
        let count = if absurd { count.min(0x4_0000) } else { count };
        let bytes: Vec<u8> = hs.iter().flat_map(|h| h.to_le_bytes()).collect();
        let kind = gen::in_ptr(&mut self.rng);
        let p = self.place_in(f, &bytes, u64::from(count) * 4, kind);
        (count, p.ptr, hs)
    }

    /// A u64 array of `count` points (placed like an input).
    fn point_array(&mut self, f: &FileCtx, points: &[u64], count: u32) -> u64 {
        let bytes: Vec<u8> = points.iter().flat_map(|p| p.to_le_bytes()).collect();
        let kind = gen::in_ptr(&mut self.rng);
        self.place_in(f, &bytes, u64::from(count) * 8, kind).ptr
    }

    /// Between 0 and `max` sync ops, waits and signals.
    fn sync_ops(&mut self, syncs: &[SyncInfo], max: u64, signal_bias: u64) -> Vec<SyncOp> {
        let n = match self.rng.below(20) {
            0..=11 => 0,
            12..=16 => 1,
            _ => self.rng.range(2, max),
        };
        (0..n)
            .map(|_| {
                let signal = self.rng.chance(signal_bias, 4);
                gen::sync_op(&mut self.rng, syncs, signal)
            })
            .collect()
    }

    fn deadline_ns(&mut self) -> i64 {
        let now = drm::monotonic_ns();
        match self.rng.below(20) {
            0..=15 => now + self.rng.range(0, 50_000_000) as i64,
            16 => 0,
            17 => now - 1_000_000_000,
            18 => -1,
            _ => now + self.rng.range(50_000_000, 100_000_000) as i64,
        }
    }

    // ---- Ferrite ioctls -----------------------------------------------

    fn op_dev_query(&mut self, f: &FileCtx) {
        const INFO_LEN: u32 = std::mem::size_of::<drm_ferrite_dev_info>() as u32;
        let ty = match self.rng.below(14) {
            0..=4 => INFO,
            5..=7 => COUNTERS,
            8 => SCHED,
            9 => TIMESTAMP,
            10 => *self.rng.pick(&[MEMORY, MMU, FEATURES]).unwrap(),
            _ => self.rng.interesting_u32(),
        };
        let len = query_len(ty);
        let before_ns = drm::monotonic_ns();
        let full = len.unwrap_or(64);
        let size = match self.rng.below(10) {
            0..=6 => full,
            7 => self.rng.below(u64::from(full)) as u32,
            8 => full + 8 * self.rng.range(1, 8) as u32,
            _ => self.rng.interesting_u32(),
        };
        let null = self.rng.chance(1, 10);
        let kind = gen::out_ptr(&mut self.rng);
        let n = u64::from(len.map_or(0, |l| size.min(l)));
        let p = if null {
            Placed {
                ptr: 0,
                accessible: 0,
                shared: false,
            }
        } else {
            self.place_out(f, n, kind)
        };
        let known = len.is_some();
        let plain = null || matches!(kind, Ptr::Valid | Ptr::BoMapping);
        let ex = Expect {
            must_fail: known && p.ptr != 0 && p.accessible < n,
            must_succeed: known && plain && (p.ptr == 0 || p.accessible >= n),
            ..Default::default()
        };
        let mut q = uapi::drm_ferrite_dev_query {
            type_: ty,
            size,
            pointer: p.ptr,
        };
        let r = self.ioctl(f.raw(), "DEV_QUERY", IOCTL_DEV_QUERY, &mut q, ex, &nothing);
        let Some(full_len) = len else { return };
        if r.is_err() {
            return;
        }
        let want = if p.ptr == 0 { full_len } else { n as u32 };
        if q.size != want {
            self.finding(
                &format!(
                    "DEV_QUERY type {ty} with size {size} and pointer {:#x} reported size {}, expected {want}",
                    p.ptr, q.size
                ),
                "",
            );
        }
        if ty == TIMESTAMP && kind == Ptr::Valid && !null && Some(n as u32) == len {
            let after_ns = drm::monotonic_ns();
            // SAFETY: the kernel wrote a drm_ferrite_timestamp_info at this scratch address.
            let t = unsafe {
                std::ptr::read_unaligned(p.ptr as *const uapi::drm_ferrite_timestamp_info)
            };
            let mono = t.cpu_monotonic_ns as i64;
            if t.timestamp_frequency != 1_000_000_000 || mono < before_ns || mono > after_ns {
                self.finding(
                    &format!(
                        "DEV_QUERY TIMESTAMP: frequency {}, monotonic {mono} outside the call's {before_ns}..{after_ns}",
                        t.timestamp_frequency
                    ),
                    "",
                );
            }
        }
        if ty == INFO && kind == Ptr::Valid && !null && n == u64::from(INFO_LEN) {
            // SAFETY: the kernel wrote a drm_ferrite_dev_info at this scratch address.
            let info = unsafe { std::ptr::read_unaligned(p.ptr as *const drm_ferrite_dev_info) };
            if info.va_start != f.range.start
                || info.va_end != f.range.end
                || info.va_start >= info.va_end
            {
                self.finding(
                    &format!(
                        "DEV_QUERY INFO changed: va {:#x}..{:#x}, was {:#x}..{:#x}",
                        info.va_start, info.va_end, f.range.start, f.range.end
                    ),
                    "",
                );
            }
        }
    }

    fn gem_close(&mut self, f: &FileCtx, handle: u32) {
        let mut a = TwoU32 { a: handle, b: 0 };
        let _ = self.ioctl(
            f.raw(),
            "GEM_CLOSE",
            sys::DRM_IOCTL_GEM_CLOSE,
            &mut a,
            Expect::default(),
            &nothing,
        );
    }

    /// GEM_CREATE with valid arguments; the BO is not added to the pool.
    fn create_bo(&mut self, f: &FileCtx, size: u64) -> Option<BoInfo> {
        let mut c = uapi::drm_ferrite_gem_create {
            size,
            ..Default::default()
        };
        self.ioctl(
            f.raw(),
            "GEM_CREATE",
            IOCTL_GEM_CREATE,
            &mut c,
            Expect::default(),
            &nothing,
        )
        .ok()?;
        Some(BoInfo {
            handle: c.handle,
            size: c.size,
        })
    }

    fn op_gem_create(&mut self, f: &FileCtx) {
        let size = gen::bo_size(&mut self.rng);
        let fl = gen::flags(
            &mut self.rng,
            uapi::DRM_FERRITE_GEM_CREATE_NO_MMAP | uapi::DRM_FERRITE_GEM_CREATE_VM_PRIVATE,
        );
        let private = fl.v & uapi::DRM_FERRITE_GEM_CREATE_VM_PRIVATE != 0;
        // A private BO's VM: the process VM, one of the file's, or any id
        // (ENOENT if it names none); without VM_PRIVATE a non-zero id fails.
        let (vm_id, vm_bad) = match (private, self.rng.below(4)) {
            (true, 0) => (self.rng.next_u32(), false),
            (true, 1) => (f.pools().vms.first().copied().unwrap_or(0), false),
            (false, 0) if self.rng.chance(1, 5) => (self.rng.next_u32().max(1), true),
            _ => (0, false),
        };
        let pad = gen::pad32(&mut self.rng);
        let mut c = uapi::drm_ferrite_gem_create {
            size: size.v,
            flags: fl.v,
            handle: self.rng.next_u32(),
            vm_id,
            pad: pad.v,
        };
        let ex = Expect {
            extra: &[libc::ENOENT],
            ..Expect::fail_if(size.bad || fl.bad || vm_bad || pad.bad)
        };
        if self
            .ioctl(
                f.raw(),
                "GEM_CREATE",
                IOCTL_GEM_CREATE,
                &mut c,
                ex,
                &nothing,
            )
            .is_err()
        {
            return;
        }
        if c.handle == 0
            || !c.size.is_multiple_of(PAGE)
            || (size.v > 0 && (c.size < size.v || c.size - size.v >= PAGE))
        {
            self.finding(
                &format!(
                    "GEM_CREATE of {:#x} bytes returned size {:#x}, handle {}",
                    size.v, c.size, c.handle
                ),
                "",
            );
        }
        let keep = {
            let mut p = f.pools();
            // Private BOs are created and closed: the model's binds,
            // exports and SUBMITs treat every kept BO as shareable.
            let keep = !private
                && c.size <= gen::MAX_KEPT_BO
                && c.size > 0
                && p.bos.len() < MAX_BOS
                && p.bo_bytes() + c.size <= MAX_BO_BYTES;
            if keep {
                p.bos.push(BoInfo {
                    handle: c.handle,
                    size: c.size,
                });
            }
            keep
        };
        if !keep {
            self.gem_close(f, c.handle);
        }
    }

    fn op_gem_close(&mut self, f: &FileCtx) {
        let taken = self.rng.take(&mut f.pools().bos, 9, 10);
        let h = match taken {
            Some(b) => b.handle,
            None => gen::handle(&mut self.rng, &[]),
        };
        let pad = if self.rng.chance(1, 30) {
            self.rng.next_u32()
        } else {
            0
        };
        let mut a = TwoU32 { a: h, b: pad };
        let r = self.ioctl(
            f.raw(),
            "GEM_CLOSE",
            sys::DRM_IOCTL_GEM_CLOSE,
            &mut a,
            Expect::default(),
            &nothing,
        );
        if let (Err(e), Some(b)) = (r, taken) {
            if e != libc::ENOENT {
                f.pools().bos.push(b);
            }
        }
    }

    fn op_mmap(&mut self, f: &FileCtx) {
        let bo = {
            let p = f.pools();
            self.rng.pick(&p.bos).copied()
        };
        let (h, size) = match bo {
            Some(b) if self.rng.chance(19, 20) => (b.handle, b.size),
            _ => (gen::handle(&mut self.rng, &[]), PAGE),
        };
        let fl = gen::flags(&mut self.rng, 0);
        let mut m = uapi::drm_ferrite_gem_mmap_offset {
            handle: h,
            flags: fl.v,
            offset: self.rng.next_u64(),
        };
        let ex = Expect::fail_if(fl.bad);
        if self
            .ioctl(
                f.raw(),
                "GEM_MMAP_OFFSET",
                IOCTL_GEM_MMAP_OFFSET,
                &mut m,
                ex,
                &nothing,
            )
            .is_err()
        {
            return;
        }
        if !m.offset.is_multiple_of(PAGE) || m.offset == 0 {
            self.finding(
                &format!(
                    "GEM_MMAP_OFFSET of handle {h} returned offset {:#x}",
                    m.offset
                ),
                "",
            );
            return;
        }
        let pages = (size / PAGE).max(1);
        if self.rng.chance(4, 5) {
            // A mapping as a client makes it: all of the BO or its start.
            let len = if self.rng.chance(1, 2) {
                size
            } else {
                PAGE * self.rng.range(1, pages)
            };
            self.count_call();
            match Mmap::new(f.raw(), m.offset, len as usize) {
                Ok(map) => {
                    self.check("mmap", Ok(0), Expect::default(), &nothing);
                    let ent = Arc::new(MapEnt { handle: h, map });
                    touch(&ent);
                    let mut p = f.pools();
                    if p.maps.len() >= MAX_MAPS {
                        let i = self.rng.index(p.maps.len());
                        p.maps.swap_remove(i);
                    }
                    p.maps.push(ent);
                }
                Err(e) => {
                    let e = e.raw_os_error().unwrap_or(0);
                    let off = m.offset;
                    self.check("mmap", Err(e), Expect::default(), &|| {
                        format!("handle {h} offset {off:#x} len {len:#x}")
                    });
                }
            }
            return;
        }
        // A mapping a client should not make: too long, at an offset past
        // the start, private, executable, empty. Never touched.
        let (mut len, mut off) = (size, m.offset);
        let (mut prot, mut flags) = (libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED);
        match self.rng.below(7) {
            0 => len = size + PAGE,
            1 => off += PAGE * self.rng.range(1, pages),
            2 => off = off.wrapping_sub(PAGE),
            3 => flags = libc::MAP_PRIVATE,
            4 => prot |= libc::PROT_EXEC,
            5 => len = 0,
            _ => off = self.rng.next_u64() & !(PAGE - 1) & (i64::MAX as u64),
        }
        if self.rng.chance(1, 4) {
            len = len.min(PAGE);
        }
        self.count_call();
        // SAFETY: a new mapping at an address the kernel picks; nothing
        // existing is replaced (no MAP_FIXED).
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len as usize,
                prot,
                flags,
                f.raw(),
                off as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            self.check("mmap", Err(e), Expect::default(), &|| {
                format!("handle {h} offset {off:#x} len {len:#x} prot {prot:#x} flags {flags:#x}")
            });
        } else {
            self.check("mmap", Ok(0), Expect::default(), &nothing);
            // SAFETY: the mapping just made, of `len` bytes.
            unsafe { libc::munmap(p, len as usize) };
        }
    }

    fn op_vm_create(&mut self, f: &FileCtx) {
        let fl = gen::flags(&mut self.rng, 0);
        let mut c = uapi::drm_ferrite_vm_create {
            flags: fl.v,
            vm_id: self.rng.next_u32(),
        };
        let ex = Expect::fail_if(fl.bad);
        f.bump();
        if self
            .ioctl(f.raw(), "VM_CREATE", IOCTL_VM_CREATE, &mut c, ex, &nothing)
            .is_err()
        {
            return;
        }
        if c.vm_id == uapi::DRM_FERRITE_VM_PROCESS {
            self.finding("VM_CREATE returned the process VM id 0", "");
            return;
        }
        let full = {
            let mut p = f.pools();
            let full = p.vms.len() >= MAX_VMS;
            if !full {
                p.vms.push(c.vm_id);
            }
            full
        };
        if full {
            self.vm_destroy(f, c.vm_id);
        }
    }

    fn vm_destroy(&mut self, f: &FileCtx, vm: u32) {
        f.bump();
        let mut d = uapi::drm_ferrite_vm_destroy { vm_id: vm, pad: 0 };
        let _ = self.ioctl(
            f.raw(),
            "VM_DESTROY",
            IOCTL_VM_DESTROY,
            &mut d,
            Expect::default(),
            &nothing,
        );
    }

    fn op_vm_destroy(&mut self, f: &FileCtx) {
        let taken = self.rng.take(&mut f.pools().vms, 9, 10);
        let vm = taken.unwrap_or_else(|| gen::handle(&mut self.rng, &[]));
        let pad = gen::pad32(&mut self.rng);
        let mut d = uapi::drm_ferrite_vm_destroy {
            vm_id: vm,
            pad: pad.v,
        };
        let ex = Expect::fail_if(pad.bad || vm == uapi::DRM_FERRITE_VM_PROCESS);
        f.bump();
        let r = self.ioctl(
            f.raw(),
            "VM_DESTROY",
            IOCTL_VM_DESTROY,
            &mut d,
            ex,
            &nothing,
        );
        if r.is_ok() {
            self.forget_vm(f, vm);
        }
        let mut p = f.pools();
        match r {
            Ok(_) => {
                p.bound.retain(|b| b.0 != vm);
                p.cmdbufs.retain(|c| c.vm != vm);
                p.risky.retain(|&v| v != vm);
                p.unusable.retain(|&v| v != vm);
            }
            Err(e) => {
                if let (Some(vm), true) = (taken, e != libc::ENOENT) {
                    p.vms.push(vm);
                }
            }
        }
    }

    /// VM_BIND of random operations: synchronous mostly, asynchronous a
    /// third of the time (UAPI 0.5), now and then with an unknown flag.
    fn op_vm_bind(&mut self, f: &FileCtx) {
        let range = f.range;
        let g0 = f.gen();
        let fl = match self.rng.below(100) {
            0..=61 => Val::ok(0),
            62..=95 => Val {
                v: ASYNC,
                bad: !f.async_ok,
            },
            _ => gen::flags(&mut self.rng, ASYNC),
        };
        let async_ = fl.v & ASYNC != 0;
        let fl = Val {
            bad: fl.bad || (async_ && !f.async_ok),
            ..fl
        };
        let (vm, ops, syncs) = {
            let p = f.pools();
            let vm = gen::vm_id(&mut self.rng, &p.vms);
            let bound = p.bound_in(vm);
            let ctx = gen::BindCtx {
                range,
                bos: &p.bos,
                bound: &bound,
                null_ok: f.null_ok,
                async_,
            };
            let n = match self.rng.below(200) {
                0..=119 => 1,
                120..=149 => 2,
                150..=179 => self.rng.range(3, 8),
                180..=189 => 0,
                190..=198 => self.rng.range(9, 64),
                _ => self.rng.range(65, 4097),
            };
            let ops: Vec<BindOp> = (0..n).map(|_| gen::bind_op(&mut self.rng, &ctx)).collect();
            let mut syncs = self.sync_ops(&p.syncs, 3, 2);
            if async_ && !self.may_lose(vm) {
                // Waiting for a fence that fails would leave the VM unusable.
                syncs.retain(|s| s.flags & SIGNAL != 0);
            }
            (vm, ops, syncs)
        };
        let sa = self.array(f, &syncs, 16, gen::sync_op_bad);
        let waits = waits_for_fence(kernel_view(&syncs, &sa).as_deref());
        if async_ && waits && !fl.bad && !self.may_lose(vm) {
            // Only an array whose count reads past its elements gets here.
            return;
        }
        let oa = self.array(f, &ops, 40, |o| {
            gen::bind_op_bad(o, range, async_, f.null_ok)
        });
        let maps = kernel_view(&ops, &oa).is_none_or(|v| v.iter().any(|o| o.op == MAP));
        let pre = self.pre_state(f, vm);
        if async_ && waits {
            self.mark_risky(f, vm);
        }
        let mut b = uapi::drm_ferrite_vm_bind {
            vm_id: vm,
            flags: fl.v,
            ops: oa.arr,
            syncs: sa.arr,
        };
        // A synchronous bind returns a failed WAIT fence's error (EIO for
        // the fence of a bind that failed on an unusable VM). Any sync op
        // counts: a replay (seed 4653931437219714294, stride 4) got EIO
        // from a VM VM_GET_STATE then called usable, where this model saw
        // no WAIT.
        let fence_error = !async_ && (waits || sa.arr.count > 0);
        let ex = Expect {
            must_fail: fl.bad || oa.bad || sa.bad,
            extra: if maps || fence_error {
                BIND_EIO_EXTRA
            } else {
                BIND_EXTRA
            },
            ..Default::default()
        };
        let (ol, sl) = (oa.layout, sa.layout);
        let describe = || {
            format!(
                "\n  vm {vm} flags {:#x}\n  ops {ol:?}: {}\n  syncs {sl:?}: {}",
                fl.v,
                head(&ops, 8),
                head(&syncs, 8)
            )
        };
        let name = if async_ { "VM_BIND_ASYNC" } else { "VM_BIND" };
        let r = self.ioctl(f.raw(), name, IOCTL_VM_BIND, &mut b, ex, &describe);
        if maps && pre == Some(true) && r.is_err() {
            self.stats.event("map_on_unusable_refused");
        }
        match r {
            Err(libc::EIO) if !fence_error => self.bind_eio(f, vm, g0, name, &describe),
            Ok(_) if maps && pre == Some(true) => self.bind_on_unusable(f, vm, g0, name, &describe),
            _ => {}
        }
        if r.is_err() {
            return;
        }
        let mut p = f.pools();
        for o in ops.iter().take(b.ops.count as usize) {
            let o = gen::as_kernel_sees(o, oa.layout.stride);
            match o.op {
                MAP => p.add_bound(vm, o.va, o.size),
                UNMAP => p.remove_bound(vm, o.va, o.size),
                _ => {}
            }
        }
        let syncs: Vec<SyncOp> = syncs
            .iter()
            .map(|s| gen::as_kernel_sees(s, sa.layout.stride))
            .collect();
        p.signalled(&syncs);
    }

    fn op_queue_create(&mut self, f: &FileCtx, vm: Option<u32>) {
        let vm = vm.unwrap_or_else(|| {
            let p = f.pools();
            gen::vm_id(&mut self.rng, &p.vms)
        });
        // Never ERRORS_FATAL (bit 0): a banned queue would fail SUBMITs the
        // model expects to succeed; a bad value always has an unknown bit.
        let fl = gen::flags(&mut self.rng, 0);
        let flags = if fl.bad { fl.v | 2 } else { 0 };
        let pad = gen::pad32(&mut self.rng);
        // Every priority (the fuzzer runs as root), and rarely a bad one.
        let (priority, bad_prio) = if self.rng.chance(1, 16) {
            (self.rng.next_u32() | 4, true)
        } else {
            (self.rng.below(4) as u32, false)
        };
        let mut c = uapi::drm_ferrite_queue_create {
            vm_id: vm,
            flags,
            timeout_ms: gen::timeout_ms(&mut self.rng),
            queue_id: self.rng.next_u32(),
            priority,
            pad: pad.v,
        };
        let ex = Expect::fail_if(fl.bad || pad.bad || bad_prio);
        f.bump();
        if self
            .ioctl(
                f.raw(),
                "QUEUE_CREATE",
                IOCTL_QUEUE_CREATE,
                &mut c,
                ex,
                &nothing,
            )
            .is_err()
        {
            return;
        }
        if c.queue_id == 0 {
            self.finding("QUEUE_CREATE returned queue id 0", "");
        }
        let full = {
            let mut p = f.pools();
            let full = p.queues.len() >= MAX_QUEUES;
            if !full {
                p.queues.push(QueueEnt { id: c.queue_id, vm });
            }
            full
        };
        if full {
            f.bump();
            let mut d = uapi::drm_ferrite_queue_destroy {
                queue_id: c.queue_id,
                pad: 0,
            };
            let _ = self.ioctl(
                f.raw(),
                "QUEUE_DESTROY",
                IOCTL_QUEUE_DESTROY,
                &mut d,
                Expect::default(),
                &nothing,
            );
        }
    }

    fn op_queue_destroy(&mut self, f: &FileCtx) {
        let taken = self.rng.take(&mut f.pools().queues, 9, 10);
        let id = taken.map_or_else(|| gen::handle(&mut self.rng, &[]), |q| q.id);
        let pad = gen::pad32(&mut self.rng);
        let mut d = uapi::drm_ferrite_queue_destroy {
            queue_id: id,
            pad: pad.v,
        };
        f.bump();
        let r = self.ioctl(
            f.raw(),
            "QUEUE_DESTROY",
            IOCTL_QUEUE_DESTROY,
            &mut d,
            Expect::fail_if(pad.bad),
            &nothing,
        );
        match (r, taken) {
            (Err(e), Some(q)) if e != libc::ENOENT => f.pools().queues.push(q),
            // A random id named a queue of the pool: it is gone (its id may
            // come back on another VM), and SUBMIT checks rely on the pool.
            (Ok(_), None) => forget_queue(f, id),
            _ => {}
        }
    }

    fn op_queue_state(&mut self, f: &FileCtx, queue: Option<u32>) {
        let id = match queue {
            Some(q) => q,
            None => {
                let live: Vec<u32> = f.pools().queues.iter().map(|q| q.id).collect();
                gen::handle(&mut self.rng, &live)
            }
        };
        let fl = gen::flags(&mut self.rng, uapi::DRM_FERRITE_QUEUE_STATE_CLEAR);
        let mut s = uapi::drm_ferrite_queue_get_state {
            queue_id: id,
            flags: fl.v,
            state: self.rng.next_u32(),
            ..Default::default()
        };
        let ok = self
            .ioctl(
                f.raw(),
                "QUEUE_GET_STATE",
                IOCTL_QUEUE_GET_STATE,
                &mut s,
                Expect::fail_if(fl.bad),
                &nothing,
            )
            .is_ok();
        if ok && s.state > uapi::drm_ferrite_queue_state_DRM_FERRITE_QUEUE_STATE_TIMEDOUT {
            self.finding(
                &format!("QUEUE_GET_STATE returned state {}", s.state),
                &format!("{s:?}"),
            );
        }
    }

    fn op_gem_sync(&mut self, f: &FileCtx) {
        const BEGIN: u32 = uapi::DRM_FERRITE_GEM_SYNC_BEGIN;
        const END: u32 = uapi::DRM_FERRITE_GEM_SYNC_END;
        const READ: u32 = uapi::DRM_FERRITE_GEM_SYNC_READ;
        const WRITE: u32 = uapi::DRM_FERRITE_GEM_SYNC_WRITE;
        let handles: Vec<u32> = f.pools().bos.iter().map(|b| b.handle).collect();
        let handle = gen::handle(&mut self.rng, &handles);
        let dir = *self.rng.pick(&[READ, WRITE, READ | WRITE]).unwrap();
        let begin = self.rng.chance(1, 2);
        let mut flags = if begin { BEGIN } else { END } | dir;
        if self.rng.chance(1, 8) {
            flags = match self.rng.below(4) {
                0 => BEGIN | END | dir,
                1 => dir,
                2 => flags & !(READ | WRITE),
                _ => gen::flags(&mut self.rng, BEGIN | END | READ | WRITE).v,
            };
        }
        let known = BEGIN | END | READ | WRITE;
        let bad = flags & !known != 0
            || (flags & BEGIN != 0) == (flags & END != 0)
            || flags & (READ | WRITE) == 0;
        let mut a = uapi::drm_ferrite_gem_sync { handle, flags };
        // BEGIN waits for the BO's jobs: their errors may come back.
        let ex = Expect {
            must_fail: bad,
            extra: EIO_OK,
            ..Default::default()
        };
        let req = uapi::DRM_IOCTL_FERRITE_GEM_SYNC as u64;
        let ok = self
            .ioctl(f.raw(), "GEM_SYNC", req, &mut a, ex, &nothing)
            .is_ok();
        if ok && begin && flags == BEGIN | dir && self.rng.chance(1, 2) {
            // The CPU access, then END with the same direction.
            let m = {
                let p = f.pools();
                let ms: Vec<&Arc<MapEnt>> = p.maps.iter().filter(|m| m.handle == handle).collect();
                self.rng.pick(&ms).map(|m| (*m).clone())
            };
            if let Some(m) = m {
                touch(&m);
            }
            let mut a = uapi::drm_ferrite_gem_sync {
                handle,
                flags: END | dir,
            };
            let _ = self.ioctl(
                f.raw(),
                "GEM_SYNC",
                req,
                &mut a,
                Expect::default(),
                &nothing,
            );
        }
    }

    /// Create a command buffer in `vm` (or a random VM): a commands BO
    /// mapped for the CPU and a data BO, bound at one of the slots.
    fn op_cmdbuf_setup(&mut self, f: &FileCtx, vm: Option<u32>) {
        let vm = vm.unwrap_or_else(|| {
            let p = f.pools();
            match self.rng.pick(&p.vms) {
                Some(&v) if self.rng.chance(1, 2) => v,
                _ => uapi::DRM_FERRITE_VM_PROCESS,
            }
        });
        let slot = self.rng.below(8);
        let cmd_size = if self.rng.chance(1, 10) {
            MIB
        } else {
            64 << 10
        };
        let data_size = 64 << 10;
        // Make room among the BOs.
        let evict = {
            let mut p = f.pools();
            let mut out = Vec::new();
            while !p.bos.is_empty()
                && (p.bos.len() + 2 > MAX_BOS || p.bo_bytes() + cmd_size + data_size > MAX_BO_BYTES)
            {
                let i = self.rng.index(p.bos.len());
                out.push(p.bos.swap_remove(i).handle);
            }
            out
        };
        for h in evict {
            self.gem_close(f, h);
        }
        let Some(cmd) = self.create_bo(f, cmd_size) else {
            return;
        };
        let Some(data) = self.create_bo(f, data_size) else {
            self.gem_close(f, cmd.handle);
            return;
        };
        let mut m = uapi::drm_ferrite_gem_mmap_offset {
            handle: cmd.handle,
            ..Default::default()
        };
        let mapped = self
            .ioctl(
                f.raw(),
                "GEM_MMAP_OFFSET",
                IOCTL_GEM_MMAP_OFFSET,
                &mut m,
                Expect::default(),
                &nothing,
            )
            .ok()
            .and_then(|_| {
                self.count_call();
                match Mmap::new(f.raw(), m.offset, cmd.size as usize) {
                    Ok(map) => {
                        self.check("mmap", Ok(0), Expect::default(), &nothing);
                        Some(map)
                    }
                    Err(e) => {
                        self.check(
                            "mmap",
                            Err(e.raw_os_error().unwrap_or(0)),
                            Expect::default(),
                            &nothing,
                        );
                        None
                    }
                }
            });
        let va = f.range.cmd_slot(slot);
        let data_va = va + 4 * MIB;
        let ops = [
            BindOp {
                op: MAP,
                handle: cmd.handle,
                va,
                size: cmd.size,
                ..Default::default()
            },
            BindOp {
                op: MAP,
                flags: if self.rng.chance(1, 10) {
                    uapi::DRM_FERRITE_VM_BIND_READONLY
                } else {
                    0
                },
                handle: data.handle,
                va: data_va,
                size: data.size,
                ..Default::default()
            },
        ];
        let bytes: Vec<u8> = ops.iter().flat_map(|o| o.to_bytes()).collect();
        let p = self.place_valid(&bytes, bytes.len() as u64);
        let mut b = uapi::drm_ferrite_vm_bind {
            vm_id: vm,
            flags: 0,
            ops: drm_ferrite_obj_array {
                count: 2,
                stride: 40,
                array: p.ptr,
            },
            syncs: drm_ferrite_obj_array::default(),
        };
        // EIO: the VM is unusable (asked after).
        let g0 = f.gen();
        let ex = Expect {
            extra: EIO_OK,
            ..Default::default()
        };
        let r = self.ioctl(f.raw(), "VM_BIND", IOCTL_VM_BIND, &mut b, ex, &nothing);
        if r == Err(libc::EIO) {
            self.bind_eio(f, vm, g0, "VM_BIND (command buffer)", &|| {
                format!(" vm {vm}")
            });
        }
        let bound = r.is_ok();
        let (Some(map), true) = (mapped, bound) else {
            self.gem_close(f, cmd.handle);
            self.gem_close(f, data.handle);
            return;
        };
        let map = Arc::new(MapEnt {
            handle: cmd.handle,
            map,
        });
        let mut p = f.pools();
        p.bos.push(cmd);
        p.bos.push(data);
        p.add_bound(vm, va, cmd.size);
        p.add_bound(vm, data_va, data.size);
        p.cmdbufs.retain(|c| !(c.vm == vm && c.cmd_va == va));
        if p.cmdbufs.len() >= MAX_CMDBUFS {
            p.cmdbufs.remove(0);
        }
        p.cmdbufs.push(CmdBuf {
            vm,
            cmd_va: va,
            cmd_size: cmd.size,
            map,
            data_va,
            data_size: data.size,
        });
    }

    fn op_submit(&mut self, f: &FileCtx) {
        let range = f.range;
        // Read before the queue is picked: see `submit_vm_check`.
        let g0 = f.gen();
        // Pick a queue and a command buffer of its VM.
        let pick = {
            let p = f.pools();
            let q = match self.rng.pick(&p.queues) {
                Some(&q) if self.rng.chance(19, 20) => Some(q),
                _ => None,
            };
            let cb = q.and_then(|q| {
                let cbs: Vec<&CmdBuf> = p.cmdbufs.iter().filter(|c| c.vm == q.vm).collect();
                self.rng.pick(&cbs).map(|c| {
                    (
                        c.map.clone(),
                        (c.cmd_va, c.cmd_size),
                        (c.data_va, c.data_size),
                    )
                })
            });
            let bound = q.map(|q| p.bound_in(q.vm)).unwrap_or_default();
            (
                q,
                cb,
                bound,
                p.syncs.clone(),
                p.bos.clone(),
                p.queues.is_empty(),
            )
        };
        let (q, cb, mut bound, syncs_pool, bos_pool, no_queues) = pick;
        if let Some(q) = q {
            bound.extend(self.user_ranges(f, q.vm));
        }
        if no_queues && self.rng.chance(3, 4) {
            return self.op_queue_create(f, None);
        }
        if let (Some(q), None) = (q, &cb) {
            if self.rng.chance(3, 4) {
                return self.op_cmdbuf_setup(f, Some(q.vm));
            }
        }
        let queue_id = q.map_or_else(|| gen::handle(&mut self.rng, &[]), |q| q.id);

        // The commands, written into the command buffer.
        let plain_cmd = cb.is_some();
        let (mut cmd_va, mut cmd_size) = match &cb {
            Some((map, cmd, data)) => {
                let ctx = gen::CmdCtx {
                    range,
                    data: *data,
                    cmd: *cmd,
                    bound,
                    allow_hang: self.rng.chance(1, 25),
                };
                let max_dw = (cmd.1 / 4).min(1024) as usize;
                let mut dw = gen::commands(&mut self.rng, &ctx, max_dw);
                dw.truncate((cmd.1 / 4) as usize);
                let len = dw.len() as u64 * 4;
                let off = 64 * self.rng.below((cmd.1 - len) / 64 + 1);
                let bytes: Vec<u8> = dw.iter().flat_map(|d| d.to_le_bytes()).collect();
                map.write(off as usize, &bytes);
                (cmd.0 + off, len as u32)
            }
            None => (
                gen::plausible_va(&mut self.rng, range, PAGE),
                4 * self.rng.range(1, 64) as u32,
            ),
        };
        let mutated = self.rng.chance(1, 12);
        if mutated {
            match self.rng.below(9) {
                0 => cmd_size = 0,
                1 => cmd_size += self.rng.range(1, 3) as u32,
                2 => cmd_size += 4 * self.rng.range(1, 256) as u32,
                3 => cmd_size = 1 << 20,
                4 => cmd_size = (1 << 20) + 4,
                5 => cmd_size = u32::MAX,
                6 => cmd_va += self.rng.range(1, 3),
                7 => cmd_va = gen::wild_va(&mut self.rng, range),
                _ => cmd_va = range.end.wrapping_add(self.rng.below(64) * PAGE),
            }
        }

        let syncs = self.sync_ops(&syncs_pool, 4, 3);
        let nbos = match self.rng.below(10) {
            0..=5 => 0,
            6..=8 => self.rng.range(1, 4),
            _ => self.rng.range(5, 40),
        };
        let bos: Vec<BoRef> = (0..nbos)
            .map(|_| gen::bo_ref(&mut self.rng, &bos_pool))
            .collect();
        let fl = gen::flags(&mut self.rng, 0);
        let pad = gen::pad32(&mut self.rng);
        let sa = self.array(f, &syncs, 16, gen::sync_op_bad);
        let ba = self.array(f, &bos, 8, gen::bo_ref_bad);
        let mut s = uapi::drm_ferrite_submit {
            queue_id,
            flags: fl.v,
            cmd_va,
            cmd_size,
            pad: pad.v,
            syncs: sa.arr,
            bos: ba.arr,
        };
        let stateless_bad = fl.bad || pad.bad || cmd_size % 4 != 0 || sa.bad || ba.bad;
        // EIO: the queue's VM is unusable (asked before or after).
        let pre = q.and_then(|q| self.pre_state(f, q.vm));
        let ex = Expect {
            must_fail: stateless_bad,
            extra: EIO_OK,
            ..Default::default()
        };
        let (sl, bl) = (sa.layout, ba.layout);
        let describe = || {
            format!(
                " queue {queue_id} ({q:?})\n  syncs {sl:?}: {}\n  bos {bl:?}: {}",
                head(&syncs, 8),
                head(&bos, 8)
            )
        };
        let r = self.ioctl(f.raw(), "SUBMIT", IOCTL_SUBMIT, &mut s, ex, &describe);
        // Nothing but the VM's state can fail a SUBMIT of valid commands
        // with no sync ops or BOs.
        let clean = !stateless_bad && plain_cmd && !mutated && syncs.is_empty() && bos.is_empty();
        if let Some(q) = q {
            self.submit_vm_check(f, q, r, pre == Some(true), clean, g0, &describe);
        }
        if r.is_err() {
            return;
        }
        let syncs: Vec<SyncOp> = syncs
            .iter()
            .map(|s| gen::as_kernel_sees(s, sa.layout.stride))
            .collect();
        f.pools().signalled(&syncs);
        // Sometimes wait a little for the job, or read the queue's state.
        if let Some(sig) = syncs.iter().find(|s| s.flags & SIGNAL != 0) {
            if self.rng.chance(3, 10) {
                self.op_sync_wait(f, Some((sig.handle, sig.point)));
            }
        }
        if self.rng.chance(1, 10) {
            self.op_queue_state(f, Some(queue_id));
        }
    }

    // ---- VM state and asynchronous binds (UAPI 0.5) --------------------

    /// Whether `vm` may be lost to an asynchronous bind that fails: any
    /// explicit VM, and the process VM of a short-lived process.
    fn may_lose(&self, vm: u32) -> bool {
        vm != PVM || self.pvm_expendable
    }

    /// Whether `vm` of `f` may be unusable, as far as this process knows.
    fn maybe_unusable(&self, f: &FileCtx, vm: u32) -> bool {
        f.pools().risky.contains(&vm)
    }

    /// An asynchronous bind that waits for a fence is about to be made on
    /// `vm`.
    fn mark_risky(&self, f: &FileCtx, vm: u32) {
        let mut p = f.pools();
        if !p.risky.contains(&vm) {
            p.risky.push(vm);
        }
    }

    /// VM_GET_STATE of `vm` through `f`: Some(true) if unusable, Some(false)
    /// if usable, None if that cannot be told (the VM is gone).
    fn vm_state(&mut self, f: &FileCtx, vm: u32) -> Option<bool> {
        let mut s = uapi::drm_ferrite_vm_get_state {
            vm_id: vm,
            state: self.rng.next_u32(),
            pad: 0,
        };
        let ex = Expect {
            only: Some(if vm == PVM { STATE_PVM } else { STATE_VM }),
            ..Default::default()
        };
        self.ioctl(
            f.raw(),
            "VM_GET_STATE",
            IOCTL_VM_GET_STATE,
            &mut s,
            ex,
            &nothing,
        )
        .ok()?;
        self.state_answer(f, vm, s.state)
    }

    /// Check a state VM_GET_STATE returned for `vm` and note an unusable VM.
    fn state_answer(&mut self, f: &FileCtx, vm: u32, state: u32) -> Option<bool> {
        match state {
            VM_USABLE => {
                let mut p = f.pools();
                p.risky.retain(|&v| v != vm);
                p.unusable.retain(|&v| v != vm);
                Some(false)
            }
            VM_UNUSABLE => {
                self.stats.event("vm_reported_unusable");
                {
                    let mut p = f.pools();
                    if !p.risky.contains(&vm) {
                        p.risky.push(vm);
                    }
                    if vm != PVM && p.vms.contains(&vm) && !p.unusable.contains(&vm) {
                        p.unusable.push(vm);
                    }
                }
                if vm == PVM
                    && !self.pvm_expendable
                    && !self.env.inject_pending
                    && !self.pvm_reported
                {
                    self.pvm_reported = true;
                    self.finding(
                        "VM_GET_STATE reports the process VM unusable, though none of the \
                         process's asynchronous binds on it waited for a fence (none could fail)",
                        "",
                    );
                }
                Some(true)
            }
            _ => {
                self.finding(
                    &format!("VM_GET_STATE of VM {vm} returned state {state}"),
                    "",
                );
                None
            }
        }
    }

    /// The state of `vm` before a call that an unusable VM fails, asked
    /// when it may be unusable and now and then anyway. (The caller reads
    /// the generation of `f`'s ids before it picks the ids it uses.)
    fn pre_state(&mut self, f: &FileCtx, vm: u32) -> Option<bool> {
        if self.maybe_unusable(f, vm) || self.rng.chance(1, 16) {
            self.vm_state(f, vm)
        } else {
            None
        }
    }

    /// Whether the VM id `vm` named one VM since the generation `g0` was
    /// read: the process VM always does; an explicit one unless this
    /// process created or destroyed VMs or queues meanwhile, or another
    /// process uses the file.
    fn vm_id_stable(&self, f: &FileCtx, vm: u32, g0: u64) -> bool {
        vm == PVM || (!self.shares_file && f.gen() == g0)
    }

    /// `what`, a bind with a MAP on `vm`, returned EIO, which only an
    /// unusable VM explains: VM_GET_STATE must say so.
    fn bind_eio(&mut self, f: &FileCtx, vm: u32, g0: u64, what: &str, d: &dyn Fn() -> String) {
        self.stats.event("bind_eio_checked");
        if self.vm_state(f, vm) == Some(false) && self.vm_id_stable(f, vm, g0) {
            self.finding(
                &format!("{what} returned EIO, but VM_GET_STATE reports VM {vm} usable"),
                &d(),
            );
        }
    }

    /// `what`, a bind with a MAP on `vm`, succeeded though VM_GET_STATE
    /// reported the VM unusable before: if it still does, the MAP should
    /// have failed with EIO.
    fn bind_on_unusable(
        &mut self,
        f: &FileCtx,
        vm: u32,
        g0: u64,
        what: &str,
        d: &dyn Fn() -> String,
    ) {
        self.stats.event("bind_on_unusable_ok_checked");
        if self.vm_state(f, vm) == Some(true) && self.vm_id_stable(f, vm, g0) {
            self.finding(
                &format!(
                    "{what} with a MAP succeeded on VM {vm}, which VM_GET_STATE reports unusable \
                     (before and after): expected EIO"
                ),
                &d(),
            );
        }
    }

    /// After a SUBMIT on queue `q` (as the pool had it): EIO only on an
    /// unusable VM (asked now); and if its VM was reported unusable just
    /// before (`unusable`), it must have failed, with EIO if nothing else
    /// was wrong (`clean`). Not where ids may have changed unseen: the pool
    /// forgets every queue destroyed through the file (so each entry names
    /// its queue, whose VM cannot go while it lives), and `g0`, read before
    /// `q` was picked, voids the checks when another thread created or
    /// destroyed queues or VMs meanwhile.
    #[allow(clippy::too_many_arguments)]
    fn submit_vm_check(
        &mut self,
        f: &FileCtx,
        q: QueueEnt,
        r: Result<i32, i32>,
        unusable: bool,
        clean: bool,
        g0: u64,
        d: &dyn Fn() -> String,
    ) {
        if self.shares_file {
            return;
        }
        match r {
            Err(libc::EIO) => self.stats.event("submit_eio_checked"),
            Err(_) if unusable => self.stats.event("submit_on_unusable_refused"),
            _ => {}
        }
        // EIO: asked now.
        let eio_on_usable = r == Err(libc::EIO) && self.vm_state(f, q.vm) == Some(false);
        match r {
            Err(libc::EIO) if eio_on_usable && f.gen() == g0 => self.finding(
                &format!(
                    "SUBMIT returned EIO, but VM_GET_STATE reports VM {} of queue {} usable",
                    q.vm, q.id
                ),
                &d(),
            ),
            Ok(_) if unusable && f.gen() == g0 => self.finding(
                &format!(
                    "SUBMIT on queue {} succeeded, but VM_GET_STATE reported its VM {} unusable \
                     just before: expected EIO",
                    q.id, q.vm
                ),
                &d(),
            ),
            Err(e) if unusable && clean && !SUBMIT_UNUSABLE.contains(&e) && f.gen() == g0 => self
                .finding(
                    &format!(
                        "SUBMIT on queue {} of unusable VM {} returned {}, expected EIO",
                        q.id,
                        q.vm,
                        errno_name(e)
                    ),
                    &d(),
                ),
            _ => {}
        }
    }

    /// What a client does with an unusable VM: destroy its queues, then the
    /// VM (both must work), and forget what was bound there.
    fn recycle_vm(&mut self, f: &FileCtx, vm: u32) {
        if vm == PVM {
            return;
        }
        let queues: Vec<u32> = {
            let mut p = f.pools();
            p.gen = p.gen.wrapping_add(1);
            let ids = p
                .queues
                .iter()
                .filter(|q| q.vm == vm)
                .map(|q| q.id)
                .collect();
            p.queues.retain(|q| q.vm != vm);
            p.cmdbufs.retain(|c| c.vm != vm);
            p.bound.retain(|b| b.0 != vm);
            p.vms.retain(|&v| v != vm);
            p.unusable.retain(|&v| v != vm);
            ids
        };
        for id in queues {
            let mut d = uapi::drm_ferrite_queue_destroy {
                queue_id: id,
                pad: 0,
            };
            let ex = Expect {
                only: Some(STATE_VM),
                ..Default::default()
            };
            let _ = self.ioctl(
                f.raw(),
                "QUEUE_DESTROY",
                IOCTL_QUEUE_DESTROY,
                &mut d,
                ex,
                &nothing,
            );
        }
        let mut d = uapi::drm_ferrite_vm_destroy { vm_id: vm, pad: 0 };
        let ex = Expect {
            only: Some(RECYCLE_DESTROY),
            ..Default::default()
        };
        let r = self.ioctl(f.raw(), "VM_DESTROY", IOCTL_VM_DESTROY, &mut d, ex, &|| {
            format!(" unusable vm {vm}")
        });
        match r {
            Ok(_) => {
                self.stats.event("vm_recycled");
                self.forget_vm(f, vm);
                f.pools().risky.retain(|&v| v != vm);
            }
            Err(libc::EBUSY) => {
                let mut p = f.pools();
                if p.vms.len() < MAX_VMS {
                    p.vms.push(vm);
                }
            }
            Err(_) => {}
        }
    }

    /// VM_GET_STATE: of the process VM, a VM of the file or an unknown id
    /// (ENOENT), with a bad pad now and then (EINVAL).
    fn op_vm_state(&mut self, f: &FileCtx) {
        if !f.async_ok {
            return;
        }
        let live = f.pools().vms.clone();
        let vm = match self.rng.below(10) {
            0..=2 => PVM,
            3..=7 if !live.is_empty() => *self.rng.pick(&live).unwrap(),
            8 => VM_ID_NEVER + self.rng.below(u64::from(u32::MAX - VM_ID_NEVER)) as u32,
            _ => gen::handle(&mut self.rng, &[]),
        };
        let pad = if self.rng.chance(1, 12) {
            Val::bad(self.rng.interesting_u64().max(1))
        } else {
            Val::ok(0)
        };
        let mut s = uapi::drm_ferrite_vm_get_state {
            vm_id: vm,
            state: self.rng.next_u32(),
            pad: pad.v,
        };
        let ex = if pad.bad {
            Expect {
                must_fail: true,
                only: Some(EINVAL_ONLY),
                ..Default::default()
            }
        } else {
            Expect {
                must_fail: vm >= VM_ID_NEVER,
                only: Some(if vm == PVM { STATE_PVM } else { STATE_VM }),
                ..Default::default()
            }
        };
        let r = self.ioctl(
            f.raw(),
            "VM_GET_STATE",
            IOCTL_VM_GET_STATE,
            &mut s,
            ex,
            &nothing,
        );
        if r.is_ok() && !pad.bad {
            self.state_answer(f, vm, s.state);
        }
    }

    /// A new binary sync object, not in the pool (the caller destroys it).
    fn own_syncobj(&mut self, f: &FileCtx) -> Option<u32> {
        let mut c = TwoU32 { a: 0, b: 0 };
        self.ioctl(
            f.raw(),
            "SYNCOBJ_CREATE",
            sys::DRM_IOCTL_SYNCOBJ_CREATE,
            &mut c,
            Expect::default(),
            &nothing,
        )
        .ok()?;
        Some(c.a)
    }

    /// Export the fence of sync object `h` as a sync_file (EINVAL: it has
    /// none, which `ex` decides about).
    fn export_fence(&mut self, f: &FileCtx, h: u32, ex: Expect) -> Option<OwnedFd> {
        let mut e = sys::SyncobjHandle {
            handle: h,
            flags: sys::SYNCOBJ_FD_EXPORT_SYNC_FILE,
            fd: -1,
            pad: 0,
            point: 0,
        };
        self.ioctl(
            f.raw(),
            "SYNCOBJ_HANDLE_TO_FD",
            sys::DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD,
            &mut e,
            ex,
            &|| format!(" export of sync object {h}"),
        )
        .ok()?;
        if e.fd < 0 {
            self.finding(&format!("an ioctl returned success with fd {}", e.fd), "");
            return None;
        }
        // SAFETY: the kernel just returned this new descriptor to us.
        Some(unsafe { OwnedFd::from_raw_fd(e.fd) })
    }

    /// A job of random commands (which may fault or hang) with the sync
    /// ops `syncs`, on a queue of the file (of `vm`, if given) that has a
    /// command buffer; its queue's VM if it was submitted.
    fn job(&mut self, f: &FileCtx, vm: Option<u32>, syncs: &[SyncOp]) -> Option<u32> {
        let range = f.range;
        let g0 = f.gen();
        let (q, map, cmd, data, bound) = {
            let p = f.pools();
            let cands: Vec<(QueueEnt, &CmdBuf)> = p
                .queues
                .iter()
                .filter(|q| vm.is_none_or(|v| v == q.vm))
                .flat_map(|q| {
                    p.cmdbufs
                        .iter()
                        .filter(move |c| c.vm == q.vm)
                        .map(move |c| (*q, c))
                })
                .collect();
            let (q, c) = self.rng.pick(&cands)?;
            (
                *q,
                c.map.clone(),
                (c.cmd_va, c.cmd_size),
                (c.data_va, c.data_size),
                p.bound_in(q.vm),
            )
        };
        let mut bound = bound;
        bound.extend(self.user_ranges(f, q.vm));
        let ctx = gen::CmdCtx {
            range,
            data,
            cmd,
            bound,
            allow_hang: self.rng.chance(1, 25),
        };
        let max_dw = (cmd.1 / 4).min(1024) as usize;
        let mut dw = gen::commands(&mut self.rng, &ctx, max_dw);
        dw.truncate((cmd.1 / 4) as usize);
        let len = dw.len() as u64 * 4;
        let off = 64 * self.rng.below((cmd.1 - len) / 64 + 1);
        let bytes: Vec<u8> = dw.iter().flat_map(|d| d.to_le_bytes()).collect();
        map.write(off as usize, &bytes);
        let sb: Vec<u8> = syncs.iter().flat_map(|s| s.to_bytes()).collect();
        let sp = self.place_valid(&sb, sb.len() as u64);
        let mut s = uapi::drm_ferrite_submit {
            queue_id: q.id,
            flags: 0,
            cmd_va: cmd.0 + off,
            cmd_size: len as u32,
            pad: 0,
            syncs: drm_ferrite_obj_array {
                count: syncs.len() as u32,
                stride: 16,
                array: sp.ptr,
            },
            bos: drm_ferrite_obj_array::default(),
        };
        let pre = self.pre_state(f, q.vm);
        let ex = Expect {
            extra: EIO_OK,
            ..Default::default()
        };
        let describe = || format!(" job on queue {} of vm {}, syncs {syncs:?}", q.id, q.vm);
        let r = self.ioctl(f.raw(), "SUBMIT", IOCTL_SUBMIT, &mut s, ex, &describe);
        self.submit_vm_check(f, q, r, pre == Some(true), false, g0, &describe);
        r.ok().map(|_| q.vm)
    }

    /// An asynchronous VM_BIND as a client makes it (UAPI 0.5): MAPs of BOs
    /// and of NULL ranges, UNMAPs and SYNC_ONLY ops (or SYNC_ONLY ops
    /// alone), waiting for a job just submitted (which may fault) or a
    /// fenced sync object, signalling a new sync object, which must hold a
    /// fence when the call returns; now and then with a userptr MAP, which
    /// an asynchronous bind refuses (EINVAL). Then now and then a job that
    /// waits for the bind, and a wait for the bind's fence and the checks
    /// that follow: a bind whose WAIT fence failed fails, a failed bind
    /// leaves its VM unusable, an unusable VM refuses MAPs (EIO) and takes
    /// UNMAPs; and the VM is made again.
    fn op_async_bind(&mut self, f: &FileCtx) {
        if !f.async_ok {
            return self.op_vm_bind(f);
        }
        let range = f.range;
        let (vm, ops, fenced) = {
            let p = f.pools();
            let vm = match self.rng.pick(&p.vms) {
                Some(&v) if self.rng.chance(3, 4) => v,
                _ => PVM,
            };
            let bound = p.bound_in(vm);
            let ctx = gen::BindCtx {
                range,
                bos: &p.bos,
                bound: &bound,
                null_ok: f.null_ok,
                async_: true,
            };
            let n = self.rng.range(1, 8);
            let ops = gen::valid_bind_ops(&mut self.rng, &ctx, n);
            let fenced: Vec<u32> = p
                .syncs
                .iter()
                .filter(|s| s.fenced)
                .map(|s| s.handle)
                .collect();
            (vm, ops, fenced)
        };
        let mut ops = ops;
        let userptr = self.rng.chance(1, 16);
        if userptr {
            let size = gen::plausible_size(&mut self.rng, 16 * PAGE);
            let at = self.rng.index(ops.len() + 1);
            ops.insert(
                at,
                BindOp {
                    op: MAP,
                    flags: USERPTR | uapi::DRM_FERRITE_VM_BIND_READONLY,
                    va: gen::plausible_va(&mut self.rng, range, size),
                    size,
                    ..Default::default()
                },
            );
        }
        let maps = ops.iter().any(|o| o.op == MAP);
        let mut own: Vec<u32> = Vec::new();
        // The fence to wait for: of a job just submitted, or of a sync object
        // of the pool (a job's or a bind's, which may have failed), or none.
        let mut dep: Option<u32> = None;
        let mut dep_fd: Option<OwnedFd> = None;
        if self.may_lose(vm) {
            match self.rng.below(8) {
                0..=3 => {
                    if let Some(h) = self.own_syncobj(f) {
                        own.push(h);
                        let sig = SyncOp {
                            flags: SIGNAL,
                            handle: h,
                            point: 0,
                        };
                        if self.job(f, None, &[sig]).is_some() {
                            dep = Some(h);
                            // The very fence the bind waits for.
                            dep_fd = self.export_fence(f, h, Expect::default());
                        }
                    }
                }
                4..=5 => dep = self.rng.pick(&fenced).copied(),
                _ => {}
            }
        }
        let Some(sig) = self.own_syncobj(f) else {
            return self.destroy_own(f, own);
        };
        own.push(sig);
        let mut syncs = vec![SyncOp {
            flags: SIGNAL,
            handle: sig,
            point: 0,
        }];
        // And now and then the next point of a timeline of the pool.
        let point = {
            let p = f.pools();
            match self.rng.pick(&p.syncs) {
                Some(s) if self.rng.chance(1, 3) => Some((s.handle, s.point + 1)),
                _ => None,
            }
        };
        if let Some((handle, point)) = point {
            syncs.push(SyncOp {
                flags: SIGNAL | TIMELINE,
                handle,
                point,
            });
        }
        if let Some(h) = dep {
            syncs.insert(
                self.rng.index(2),
                SyncOp {
                    flags: 0,
                    handle: h,
                    point: 0,
                },
            );
        }
        let (pre, g0) = {
            let g0 = f.gen();
            (self.vm_state(f, vm), g0)
        };
        if dep.is_some() {
            self.mark_risky(f, vm);
        }
        let ob: Vec<u8> = ops.iter().flat_map(|o| o.to_bytes()).collect();
        let sb: Vec<u8> = syncs.iter().flat_map(|s| s.to_bytes()).collect();
        let op_ptr = self.place_valid(&ob, ob.len() as u64).ptr;
        let sync_ptr = self.place_valid(&sb, sb.len() as u64).ptr;
        let mut b = uapi::drm_ferrite_vm_bind {
            vm_id: vm,
            flags: ASYNC,
            ops: drm_ferrite_obj_array {
                count: ops.len() as u32,
                stride: 40,
                array: op_ptr,
            },
            syncs: drm_ferrite_obj_array {
                count: syncs.len() as u32,
                stride: 16,
                array: sync_ptr,
            },
        };
        let ex = if userptr {
            let maybe = pre != Some(false) || self.maybe_unusable(f, vm);
            Expect {
                must_fail: true,
                only: Some(if maybe {
                    ASYNC_USERPTR_EIO
                } else {
                    ASYNC_USERPTR
                }),
                ..Default::default()
            }
        } else {
            Expect {
                extra: if maps { BIND_EIO_EXTRA } else { BIND_EXTRA },
                ..Default::default()
            }
        };
        let describe = || {
            format!(
                "\n  vm {vm} (state before {pre:?})\n  ops: {}\n  syncs: {}",
                head(&ops, 8),
                head(&syncs, 8)
            )
        };
        let r = self.ioctl(
            f.raw(),
            "VM_BIND_ASYNC",
            IOCTL_VM_BIND,
            &mut b,
            ex,
            &describe,
        );
        match r {
            Err(libc::EIO) if maps => self.bind_eio(f, vm, g0, "VM_BIND_ASYNC", &describe),
            Ok(_) if maps && pre == Some(true) => {
                self.bind_on_unusable(f, vm, g0, "VM_BIND_ASYNC", &describe)
            }
            _ => {}
        }
        if r.is_err() {
            return self.destroy_own(f, own);
        }
        {
            let mut p = f.pools();
            for o in &ops {
                match o.op {
                    MAP => p.add_bound(vm, o.va, o.size),
                    UNMAP => p.remove_bound(vm, o.va, o.size),
                    _ => {}
                }
            }
            p.signalled(&syncs);
        }
        // The SIGNAL sync object holds the bind's fence once VM_BIND returns.
        let ex = Expect {
            only: Some(EXPORT_FENCED),
            ..Default::default()
        };
        let bind_fd = self.export_fence(f, sig, ex);
        // A job that waits for the bind sees its mappings (reads of NULL
        // ranges give zeros, writes are dropped).
        if self.rng.chance(1, 3) {
            let wait = SyncOp {
                flags: 0,
                handle: sig,
                point: 0,
            };
            let _ = self.job(f, Some(vm), &[wait]);
        }
        // A timeline point added to the same sync object wraps the fence in
        // a chain, whose status does not carry the bind's error (ferrite.rst:
        // timeline points do not carry errors): then only the bind's own
        // ending is checked, not that a failed WAIT failed it.
        let chained = syncs
            .iter()
            .any(|s| s.handle == sig && s.flags & SIGNAL != 0 && s.flags & TIMELINE != 0);
        let dep_fd = dep_fd.filter(|_| !chained);
        if let Some(bind_fd) = bind_fd.filter(|_| self.rng.chance(1, 3)) {
            self.check_bind_fence(f, vm, g0, &bind_fd, dep_fd.as_ref(), &describe);
        } else if self.rng.chance(1, 2) {
            // Later WAITs (of jobs and binds) on the bind's fence.
            let mut p = f.pools();
            if p.syncs.len() < MAX_SYNCOBJS {
                p.syncs.push(SyncInfo {
                    handle: sig,
                    fenced: true,
                    point: 0,
                });
                own.retain(|&h| h != sig);
            }
        }
        self.destroy_own(f, own);
    }

    /// Wait (up to 3 s) for an asynchronous bind's fence, then check what
    /// follows from how it ended: its WAIT fence `dep` failed, so must it;
    /// it failed, so its VM is unusable; an unusable VM refuses MAPs and
    /// takes UNMAPs, and is made again.
    fn check_bind_fence(
        &mut self,
        f: &FileCtx,
        vm: u32,
        g0: u64,
        bind: &OwnedFd,
        dep: Option<&OwnedFd>,
        d: &dyn Fn() -> String,
    ) {
        let mut pfd = libc::pollfd {
            fd: bind.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, 3000) };
        if n <= 0 {
            return;
        }
        let Ok(b) = drm::sync_file_status(bind.as_raw_fd()) else {
            return;
        };
        let dstat = dep.and_then(|fd| drm::sync_file_status(fd.as_raw_fd()).ok());
        self.stats
            .event(match (b < 0, dstat.is_some_and(|d| d < 0)) {
                (false, _) => "bind_fence_ok",
                (true, true) => "bind_fence_failed_after_failed_wait",
                (true, false) => "bind_fence_failed",
            });
        if b == 0 {
            self.finding(
                "the fence of an asynchronous VM_BIND polls signalled but reports pending",
                &d(),
            );
            return;
        }
        if let Some(e @ ..=-1) = dstat {
            if b > 0 {
                self.finding(
                    &format!(
                        "an asynchronous VM_BIND whose WAIT fence failed ({}) signalled without error",
                        errno_name(-e)
                    ),
                    &d(),
                );
            }
        }
        let st = self.vm_state(f, vm);
        if b < 0 && st == Some(false) && self.vm_id_stable(f, vm, g0) {
            self.finding(
                &format!(
                    "an asynchronous VM_BIND failed ({}) after it returned, but VM_GET_STATE \
                     reports VM {vm} usable",
                    errno_name(-b)
                ),
                &d(),
            );
        }
        if st == Some(true) {
            self.exercise_unusable(f, vm, g0);
        }
    }

    /// On a VM VM_GET_STATE just reported unusable: a MAP (synchronous or
    /// not) fails with EIO, an UNMAP works.
    fn exercise_unusable(&mut self, f: &FileCtx, vm: u32, g0: u64) {
        let range = f.range;
        let bo = {
            let p = f.pools();
            self.rng.pick(&p.bos).copied()
        };
        let (map, only) = match bo {
            Some(bo) if !f.null_ok || self.rng.chance(1, 3) => (
                BindOp {
                    op: MAP,
                    handle: bo.handle,
                    va: gen::plausible_va(&mut self.rng, range, PAGE),
                    size: PAGE,
                    ..Default::default()
                },
                UNUSABLE_BO_MAP,
            ),
            _ if f.null_ok => (gen::null_op(&mut self.rng, range), UNUSABLE_NULL_MAP),
            _ => return,
        };
        let (wbase, wsize) = range.fuzz_window();
        let unmap = BindOp {
            op: UNMAP,
            va: wbase,
            size: PAGE * self.rng.range(1, wsize / PAGE),
            ..Default::default()
        };
        for (o, only) in [(map, only), (unmap, UNUSABLE_UNMAP)] {
            let async_ = self.rng.chance(1, 2);
            let bytes = o.to_bytes();
            let p = self.place_valid(&bytes, bytes.len() as u64);
            let mut b = uapi::drm_ferrite_vm_bind {
                vm_id: vm,
                flags: if async_ { ASYNC } else { 0 },
                ops: drm_ferrite_obj_array {
                    count: 1,
                    stride: 40,
                    array: p.ptr,
                },
                syncs: drm_ferrite_obj_array::default(),
            };
            let ex = Expect {
                only: Some(only),
                ..Default::default()
            };
            let name = if async_ { "VM_BIND_ASYNC" } else { "VM_BIND" };
            let describe = || format!(" on unusable vm {vm}: {o:?}");
            let r = self.ioctl(f.raw(), name, IOCTL_VM_BIND, &mut b, ex, &describe);
            if r.is_err() && o.op == MAP {
                self.stats.event("unusable_map_refused");
            }
            if r.is_ok() && o.op == UNMAP {
                self.stats.event("unusable_unmap_ok");
            }
            if o.op == MAP && r.is_ok() {
                self.bind_on_unusable(f, vm, g0, name, &describe);
            }
            if o.op == UNMAP && r.is_ok() {
                f.pools().remove_bound(vm, o.va, o.size);
            }
        }
    }

    fn destroy_own(&mut self, f: &FileCtx, own: Vec<u32>) {
        for h in own {
            self.sync_destroy(f, h);
        }
    }

    // ---- sync objects -------------------------------------------------

    fn op_sync_create(&mut self, f: &FileCtx) {
        let flags = match self.rng.below(10) {
            0..=4 => 0,
            5..=8 => sys::SYNCOBJ_CREATE_SIGNALED,
            _ => self.rng.interesting_u32(),
        };
        let mut c = TwoU32 {
            a: self.rng.next_u32(),
            b: flags,
        };
        if self
            .ioctl(
                f.raw(),
                "SYNCOBJ_CREATE",
                sys::DRM_IOCTL_SYNCOBJ_CREATE,
                &mut c,
                Expect::default(),
                &nothing,
            )
            .is_err()
        {
            return;
        }
        let full = {
            let mut p = f.pools();
            let full = p.syncs.len() >= MAX_SYNCOBJS;
            if !full {
                p.syncs.push(SyncInfo {
                    handle: c.a,
                    fenced: flags & sys::SYNCOBJ_CREATE_SIGNALED != 0,
                    point: 0,
                });
            }
            full
        };
        if full {
            self.sync_destroy(f, c.a);
        }
    }

    fn sync_destroy(&mut self, f: &FileCtx, h: u32) {
        let mut d = TwoU32 { a: h, b: 0 };
        let _ = self.ioctl(
            f.raw(),
            "SYNCOBJ_DESTROY",
            sys::DRM_IOCTL_SYNCOBJ_DESTROY,
            &mut d,
            Expect::default(),
            &nothing,
        );
    }

    fn op_sync_destroy(&mut self, f: &FileCtx) {
        let taken = self.rng.take(&mut f.pools().syncs, 9, 10);
        let h = taken.map_or_else(|| gen::handle(&mut self.rng, &[]), |s| s.handle);
        let pad = gen::pad32(&mut self.rng);
        let mut d = TwoU32 { a: h, b: pad.v };
        let r = self.ioctl(
            f.raw(),
            "SYNCOBJ_DESTROY",
            sys::DRM_IOCTL_SYNCOBJ_DESTROY,
            &mut d,
            Expect::default(),
            &nothing,
        );
        if let (Err(e), Some(s)) = (r, taken) {
            if e != libc::ENOENT {
                f.pools().syncs.push(s);
            }
        }
    }

    fn wait_flags(&mut self) -> u32 {
        if self.rng.chance(1, 15) {
            self.rng.interesting_u32()
        } else {
            self.rng.below(16) as u32
        }
    }

    /// SYNCOBJ_WAIT, on `only` (a handle just signalled by a job, waited
    /// for binary or at its point) or on random handles.
    fn op_sync_wait(&mut self, f: &FileCtx, only: Option<(u32, u64)>) {
        if let Some((h, point)) = only {
            if point != 0 {
                return self.timeline_wait(f, &[h], &[point]);
            }
            let hs = [h];
            let p = self.place_valid(&h.to_le_bytes(), 4);
            let mut w = sys::SyncobjWait {
                handles: p.ptr,
                timeout_nsec: drm::monotonic_ns() + self.rng.range(1_000_000, 100_000_000) as i64,
                count_handles: 1,
                flags: sys::SYNCOBJ_WAIT_ALL | sys::SYNCOBJ_WAIT_FOR_SUBMIT,
                ..Default::default()
            };
            let _ = self.ioctl(
                f.raw(),
                "SYNCOBJ_WAIT",
                sys::DRM_IOCTL_SYNCOBJ_WAIT,
                &mut w,
                Expect::default(),
                &|| format!(" handles {hs:?}"),
            );
            return;
        }
        let live = f.pools().sync_handles();
        let (count, ptr, hs) = self.handle_array(f, &live, 4);
        let flags = self.wait_flags();
        let mut w = sys::SyncobjWait {
            handles: ptr,
            timeout_nsec: self.deadline_ns(),
            count_handles: count,
            flags,
            first_signaled: self.rng.next_u32(),
            pad: if self.rng.chance(1, 20) { 1 } else { 0 },
            deadline_nsec: drm::monotonic_ns() as u64 + self.rng.below(10_000_000),
        };
        let _ = self.ioctl(
            f.raw(),
            "SYNCOBJ_WAIT",
            sys::DRM_IOCTL_SYNCOBJ_WAIT,
            &mut w,
            Expect::default(),
            &|| format!(" handles {hs:?}"),
        );
    }

    fn timeline_wait(&mut self, f: &FileCtx, hs: &[u32], points: &[u64]) {
        let hb: Vec<u8> = hs.iter().flat_map(|h| h.to_le_bytes()).collect();
        let hp = self.place_valid(&hb, hb.len() as u64);
        let pp = self.point_array(f, points, hs.len() as u32);
        let mut w = sys::SyncobjTimelineWait {
            handles: hp.ptr,
            points: pp,
            timeout_nsec: drm::monotonic_ns() + self.rng.range(1_000_000, 100_000_000) as i64,
            count_handles: hs.len() as u32,
            flags: sys::SYNCOBJ_WAIT_ALL | sys::SYNCOBJ_WAIT_FOR_SUBMIT,
            ..Default::default()
        };
        let _ = self.ioctl(
            f.raw(),
            "SYNCOBJ_TIMELINE_WAIT",
            sys::DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT,
            &mut w,
            Expect::default(),
            &nothing,
        );
    }

    /// Points for `hs`: at or below what each has, or beyond, or wild.
    fn points_for(&mut self, f: &FileCtx, hs: &[u32], next: bool) -> Vec<u64> {
        let p = f.pools();
        hs.iter()
            .map(|h| {
                let cur = p
                    .syncs
                    .iter()
                    .find(|s| s.handle == *h)
                    .map_or(0, |s| s.point);
                match self.rng.below(12) {
                    0 => 0,
                    1 => self.rng.interesting_u64(),
                    _ if next => cur + self.rng.range(1, 3),
                    _ => self.rng.range(1, cur.max(1)),
                }
            })
            .collect()
    }

    fn op_sync_timeline_wait(&mut self, f: &FileCtx) {
        let live = f.pools().sync_handles();
        let (count, hptr, hs) = self.handle_array(f, &live, 4);
        let next = self.rng.chance(1, 4);
        let points = self.points_for(f, &hs, next);
        let pptr = self.point_array(f, &points, count);
        let mut w = sys::SyncobjTimelineWait {
            handles: hptr,
            points: pptr,
            timeout_nsec: self.deadline_ns(),
            count_handles: count,
            flags: self.wait_flags(),
            first_signaled: 0,
            pad: if self.rng.chance(1, 20) { 1 } else { 0 },
            deadline_nsec: drm::monotonic_ns() as u64,
        };
        let _ = self.ioctl(
            f.raw(),
            "SYNCOBJ_TIMELINE_WAIT",
            sys::DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT,
            &mut w,
            Expect::default(),
            &|| format!(" handles {hs:?} points {points:?}"),
        );
    }

    /// SYNCOBJ_SIGNAL, or SYNCOBJ_RESET.
    fn op_sync_array(&mut self, f: &FileCtx, reset: bool) {
        let live = f.pools().sync_handles();
        let (count, ptr, hs) = self.handle_array(f, &live, 4);
        let mut a = sys::SyncobjArray {
            handles: ptr,
            count_handles: count,
            pad: if self.rng.chance(1, 20) {
                self.rng.next_u32()
            } else {
                0
            },
        };
        let (name, req) = if reset {
            ("SYNCOBJ_RESET", sys::DRM_IOCTL_SYNCOBJ_RESET)
        } else {
            ("SYNCOBJ_SIGNAL", sys::DRM_IOCTL_SYNCOBJ_SIGNAL)
        };
        if self
            .ioctl(f.raw(), name, req, &mut a, Expect::default(), &|| {
                format!(" handles {hs:?}")
            })
            .is_ok()
        {
            let mut p = f.pools();
            for h in hs.iter().take(count as usize) {
                if let Some(s) = p.sync_mut(*h) {
                    s.fenced = !reset;
                }
            }
        }
    }

    /// SYNCOBJ_TIMELINE_SIGNAL, or SYNCOBJ_QUERY (which writes the points).
    fn op_sync_timeline_array(&mut self, f: &FileCtx, query: bool) {
        let live = f.pools().sync_handles();
        let (count, hptr, hs) = self.handle_array(f, &live, 4);
        let (points, pptr) = if query {
            let kind = gen::out_ptr(&mut self.rng);
            (
                Vec::new(),
                self.place_out(f, u64::from(count) * 8, kind).ptr,
            )
        } else {
            let points = self.points_for(f, &hs, true);
            let ptr = self.point_array(f, &points, count);
            (points, ptr)
        };
        let flags = match self.rng.below(10) {
            0..=5 => 0,
            6..=8 if query => sys::SYNCOBJ_QUERY_LAST_SUBMITTED,
            _ => self.rng.interesting_u32(),
        };
        let mut a = sys::SyncobjTimelineArray {
            handles: hptr,
            points: pptr,
            count_handles: count,
            flags,
        };
        let (name, req) = if query {
            ("SYNCOBJ_QUERY", sys::DRM_IOCTL_SYNCOBJ_QUERY)
        } else {
            (
                "SYNCOBJ_TIMELINE_SIGNAL",
                sys::DRM_IOCTL_SYNCOBJ_TIMELINE_SIGNAL,
            )
        };
        let ok = self
            .ioctl(f.raw(), name, req, &mut a, Expect::default(), &|| {
                format!(" handles {hs:?} points {points:?}")
            })
            .is_ok();
        if ok && !query {
            let mut p = f.pools();
            for (h, pt) in hs.iter().zip(&points).take(count as usize) {
                if let Some(s) = p.sync_mut(*h) {
                    s.fenced = true;
                    s.point = s.point.max(*pt);
                }
            }
        }
    }

    fn op_sync_transfer(&mut self, f: &FileCtx) {
        let (live, syncs) = {
            let p = f.pools();
            (p.sync_handles(), p.syncs.clone())
        };
        let src = gen::handle(&mut self.rng, &live);
        let dst = gen::handle(&mut self.rng, &live);
        let point_of = |h: u32| syncs.iter().find(|s| s.handle == h).map_or(0, |s| s.point);
        let src_point = if self.rng.chance(1, 2) {
            0
        } else {
            self.rng.range(1, point_of(src).max(1))
        };
        let dst_point = if self.rng.chance(1, 2) {
            0
        } else {
            point_of(dst) + 1
        };
        // Never WAIT_FOR_SUBMIT: that waits up to 5 s in the kernel.
        let flags = if self.rng.chance(1, 10) {
            self.rng.interesting_u32() & !sys::SYNCOBJ_WAIT_FOR_SUBMIT
        } else {
            0
        };
        let mut t = sys::SyncobjTransfer {
            src_handle: src,
            dst_handle: dst,
            src_point,
            dst_point,
            flags,
            pad: if self.rng.chance(1, 20) { 1 } else { 0 },
        };
        if self
            .ioctl(
                f.raw(),
                "SYNCOBJ_TRANSFER",
                sys::DRM_IOCTL_SYNCOBJ_TRANSFER,
                &mut t,
                Expect::default(),
                &nothing,
            )
            .is_ok()
        {
            if let Some(s) = f.pools().sync_mut(dst) {
                s.fenced = true;
                s.point = s.point.max(dst_point);
            }
        }
    }

    fn add_fd(&mut self, fd: i32, kind: FdKind, size: u64) {
        if fd < 0 {
            self.finding(&format!("an ioctl returned success with fd {fd}"), "");
            return;
        }
        // SAFETY: the kernel just returned this new descriptor to us.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut fds = self.env.fds();
        if fds.len() >= MAX_EXT_FDS {
            let i = self.rng.index(fds.len());
            fds.swap_remove(i);
        }
        fds.push(ExtFd { fd, kind, size });
    }

    /// A descriptor to import: one of the kind wanted, another kind, or a
    /// bad number. Returns the number and the dma-buf size, if any.
    fn pick_fd(&mut self, f: &FileCtx, want: FdKind) -> (i32, u64) {
        let fds = self.env.fds();
        let good: Vec<(i32, u64)> = fds
            .iter()
            .filter(|e| e.kind == want)
            .map(|e| (e.fd.as_raw_fd(), e.size))
            .collect();
        let any: Vec<(i32, u64)> = fds.iter().map(|e| (e.fd.as_raw_fd(), e.size)).collect();
        drop(fds);
        match self.rng.below(20) {
            0..=14 if !good.is_empty() => *self.rng.pick(&good).unwrap(),
            15 | 16 if !any.is_empty() => *self.rng.pick(&any).unwrap(),
            17 => (f.raw(), 0),
            18 => (-1, 0),
            _ => (self.rng.range(0, 1100) as i32, 0),
        }
    }

    fn op_sync_to_fd(&mut self, f: &FileCtx) {
        let (live, syncs) = {
            let p = f.pools();
            (p.sync_handles(), p.syncs.clone())
        };
        let handle = gen::handle(&mut self.rng, &live);
        let point = syncs
            .iter()
            .find(|s| s.handle == handle)
            .map_or(0, |s| s.point);
        let flags = match self.rng.below(10) {
            0..=4 => 0,
            5..=7 => sys::SYNCOBJ_FD_EXPORT_SYNC_FILE,
            8 => sys::SYNCOBJ_FD_EXPORT_SYNC_FILE | sys::SYNCOBJ_FD_TIMELINE,
            _ => self.rng.interesting_u32(),
        };
        let mut h = sys::SyncobjHandle {
            handle,
            flags,
            fd: self.rng.next_u32() as i32,
            pad: if self.rng.chance(1, 20) { 1 } else { 0 },
            point: if flags & sys::SYNCOBJ_FD_TIMELINE != 0 {
                point
            } else {
                0
            },
        };
        if self
            .ioctl(
                f.raw(),
                "SYNCOBJ_HANDLE_TO_FD",
                sys::DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD,
                &mut h,
                Expect::default(),
                &nothing,
            )
            .is_ok()
        {
            let kind = if flags & sys::SYNCOBJ_FD_EXPORT_SYNC_FILE != 0 {
                FdKind::SyncFile
            } else {
                FdKind::Syncobj
            };
            self.add_fd(h.fd, kind, 0);
        }
    }

    fn op_sync_from_fd(&mut self, f: &FileCtx) {
        let live = f.pools().sync_handles();
        let sync_file = self.rng.chance(1, 2);
        let (fd, _) = self.pick_fd(
            f,
            if sync_file {
                FdKind::SyncFile
            } else {
                FdKind::Syncobj
            },
        );
        let flags = match self.rng.below(10) {
            0..=8 if sync_file => sys::SYNCOBJ_FD_IMPORT_SYNC_FILE,
            0..=8 => 0,
            _ => self.rng.interesting_u32(),
        };
        let mut h = sys::SyncobjHandle {
            handle: if sync_file {
                gen::handle(&mut self.rng, &live)
            } else {
                self.rng.next_u32()
            },
            flags,
            fd,
            pad: if self.rng.chance(1, 20) { 1 } else { 0 },
            point: 0,
        };
        let ok = self
            .ioctl(
                f.raw(),
                "SYNCOBJ_FD_TO_HANDLE",
                sys::DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE,
                &mut h,
                Expect::default(),
                &nothing,
            )
            .is_ok();
        if ok && flags == 0 {
            let full = {
                let mut p = f.pools();
                let full = p.syncs.len() >= MAX_SYNCOBJS;
                if !full {
                    p.syncs.push(SyncInfo {
                        handle: h.handle,
                        fenced: false,
                        point: 0,
                    });
                }
                full
            };
            if full {
                self.sync_destroy(f, h.handle);
            }
        }
    }

    fn op_sync_eventfd(&mut self, f: &FileCtx) {
        let (live, syncs) = {
            let p = f.pools();
            (p.sync_handles(), p.syncs.clone())
        };
        let (mut fd, _) = self.pick_fd(f, FdKind::Eventfd);
        if self.rng.chance(1, 3) {
            // SAFETY: plain syscall; the result is checked.
            let e = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
            if e >= 0 {
                self.add_fd(e, FdKind::Eventfd, 0);
                fd = e;
            }
        }
        let handle = gen::handle(&mut self.rng, &live);
        let point = syncs
            .iter()
            .find(|s| s.handle == handle)
            .map_or(0, |s| s.point);
        let mut e = sys::SyncobjEventfd {
            handle,
            flags: match self.rng.below(10) {
                0..=5 => 0,
                6..=8 => sys::SYNCOBJ_WAIT_AVAILABLE,
                _ => self.rng.interesting_u32(),
            },
            point: match self.rng.below(4) {
                0 => 0,
                1 => point,
                2 => point + 1,
                _ => self.rng.interesting_u64(),
            },
            fd,
            pad: if self.rng.chance(1, 20) { 1 } else { 0 },
        };
        let _ = self.ioctl(
            f.raw(),
            "SYNCOBJ_EVENTFD",
            sys::DRM_IOCTL_SYNCOBJ_EVENTFD,
            &mut e,
            Expect::default(),
            &nothing,
        );
    }

    // ---- PRIME --------------------------------------------------------

    fn op_prime_export(&mut self, f: &FileCtx) {
        let bos = f.pools().bos.clone();
        let handles: Vec<u32> = bos.iter().map(|b| b.handle).collect();
        let handle = gen::handle(&mut self.rng, &handles);
        let size = bos
            .iter()
            .find(|b| b.handle == handle)
            .map_or(0, |b| b.size);
        let valid = (libc::O_CLOEXEC | libc::O_RDWR) as u32;
        let flags = if self.rng.chance(1, 12) {
            self.rng.interesting_u32()
        } else {
            self.rng.next_u32() & valid
        };
        let mut h = sys::PrimeHandle {
            handle,
            flags,
            fd: self.rng.next_u32() as i32,
        };
        if self
            .ioctl(
                f.raw(),
                "PRIME_HANDLE_TO_FD",
                sys::DRM_IOCTL_PRIME_HANDLE_TO_FD,
                &mut h,
                Expect::default(),
                &nothing,
            )
            .is_ok()
        {
            // The size from the dma-buf itself (the BO may be a stranger's).
            // SAFETY: lseek on a descriptor the kernel just returned.
            let end = unsafe { libc::lseek(h.fd, 0, libc::SEEK_END) };
            let size = if end > 0 { end as u64 } else { size };
            self.add_fd(h.fd, FdKind::DmaBuf, size);
        }
    }

    /// Import a dma-buf into file 0 or 1 (possibly of another device).
    fn op_prime_import(&mut self) {
        let f = self.file();
        let f = &*f;
        let (fd, size) = self.pick_fd(f, FdKind::DmaBuf);
        let mut h = sys::PrimeHandle {
            handle: self.rng.next_u32(),
            flags: if self.rng.chance(1, 20) {
                self.rng.next_u32()
            } else {
                0
            },
            fd,
        };
        let ok = self
            .ioctl(
                f.raw(),
                "PRIME_FD_TO_HANDLE",
                sys::DRM_IOCTL_PRIME_FD_TO_HANDLE,
                &mut h,
                Expect::default(),
                &nothing,
            )
            .is_ok();
        if !ok {
            return;
        }
        let keep = {
            let mut p = f.pools();
            let known = p.bos.iter().any(|b| b.handle == h.handle);
            let keep = !known
                && size > 0
                && size <= gen::MAX_KEPT_BO
                && p.bos.len() < MAX_BOS
                && p.bo_bytes() + size <= MAX_BO_BYTES;
            if keep {
                p.bos.push(BoInfo {
                    handle: h.handle,
                    size,
                });
            }
            keep || known
        };
        if !keep {
            self.gem_close(f, h.handle);
        }
    }

    // ---- other DRM core ioctls ----------------------------------------

    fn op_core(&mut self, f: &FileCtx) {
        match self.rng.below(5) {
            0 => {
                let mut lens = [0u64; 3];
                let mut ptrs = [0u64; 3];
                for i in 0..3 {
                    lens[i] = match self.rng.below(6) {
                        0 => 0,
                        1 => self.rng.interesting_u64(),
                        _ => self.rng.range(1, 256),
                    };
                    let kind = gen::out_ptr(&mut self.rng);
                    ptrs[i] = self.place_out(f, lens[i].min(1 << 16), kind).ptr;
                }
                // A huge length with a scratch pointer could let the kernel
                // write past the scratch area: clamp to what was placed.
                for i in 0..3 {
                    if lens[i] > 1 << 16 && ptrs[i] > 0xfff && ptrs[i] < 0x0000_8000_0000_0000 {
                        lens[i] = 1 << 16;
                    }
                }
                let mut v = sys::Version {
                    name_len: lens[0],
                    name: ptrs[0],
                    date_len: lens[1],
                    date: ptrs[1],
                    desc_len: lens[2],
                    desc: ptrs[2],
                    ..Default::default()
                };
                let _ = self.ioctl(
                    f.raw(),
                    "VERSION",
                    sys::DRM_IOCTL_VERSION,
                    &mut v,
                    Expect::default(),
                    &nothing,
                );
            }
            1 => {
                let cap = match self.rng.below(4) {
                    0 => sys::DRM_CAP_PRIME,
                    1 => sys::DRM_CAP_SYNCOBJ,
                    2 => sys::DRM_CAP_SYNCOBJ_TIMELINE,
                    _ => self.rng.interesting_u64(),
                };
                let mut c = sys::Cap {
                    capability: cap,
                    value: self.rng.next_u64(),
                };
                let ok = self
                    .ioctl(
                        f.raw(),
                        "GET_CAP",
                        sys::DRM_IOCTL_GET_CAP,
                        &mut c,
                        Expect::default(),
                        &nothing,
                    )
                    .is_ok();
                if ok
                    && (cap == sys::DRM_CAP_SYNCOBJ || cap == sys::DRM_CAP_SYNCOBJ_TIMELINE)
                    && c.value != 1
                {
                    self.finding(
                        &format!("GET_CAP {cap:#x} = {}, the driver has the feature", c.value),
                        "",
                    );
                }
            }
            2 => {
                let mut c = sys::Cap {
                    capability: self.rng.range(0, 8),
                    value: self.rng.below(3),
                };
                let _ = self.ioctl(
                    f.raw(),
                    "SET_CLIENT_CAP",
                    sys::DRM_IOCTL_SET_CLIENT_CAP,
                    &mut c,
                    Expect::default(),
                    &nothing,
                );
            }
            3 => {
                let names: [&[u8]; 5] = [
                    b"ferrite-fuzz",
                    b"",
                    b"with space",
                    b"\x01\x02",
                    &[b'x'; 80],
                ];
                let name = *self.rng.pick(&names).unwrap();
                let kind = gen::in_ptr(&mut self.rng);
                let p = self.place_in(f, name, name.len() as u64, kind);
                let mut n = sys::SetClientName {
                    name_len: if self.rng.chance(1, 10) {
                        self.rng.interesting_u64()
                    } else {
                        name.len() as u64
                    },
                    name: p.ptr,
                };
                // Lengths past what was placed read beyond it: clamp them
                // for scratch pointers (reads only, but keep them in bounds).
                if n.name_len > name.len() as u64
                    && !p.shared
                    && p.ptr > 0xfff
                    && p.ptr < 0x0000_8000_0000_0000
                {
                    n.name_len = n.name_len.min(64);
                }
                let _ = self.ioctl(
                    f.raw(),
                    "SET_CLIENT_NAME",
                    sys::DRM_IOCTL_SET_CLIENT_NAME,
                    &mut n,
                    Expect::default(),
                    &nothing,
                );
            }
            _ => {
                let handles: Vec<u32> = f.pools().bos.iter().map(|b| b.handle).collect();
                let old = gen::handle(&mut self.rng, &handles);
                let new = self.rng.range(1, 200) as u32;
                let mut c = TwoU32 { a: old, b: new };
                if self
                    .ioctl(
                        f.raw(),
                        "GEM_CHANGE_HANDLE",
                        sys::DRM_IOCTL_GEM_CHANGE_HANDLE,
                        &mut c,
                        Expect::default(),
                        &nothing,
                    )
                    .is_ok()
                {
                    let mut p = f.pools();
                    for b in p.bos.iter_mut().filter(|b| b.handle == old) {
                        b.handle = new;
                    }
                }
            }
        }
    }

    /// BO_SET_LABEL: set, clear, too long, bad pointer or pad.
    fn op_bo_label(&mut self, f: &FileCtx) {
        let live: Vec<u32> = f.pools().bos.iter().map(|b| b.handle).collect();
        let handle = gen::handle(&mut self.rng, &live);
        let pad = gen::pad32(&mut self.rng);
        let (ptr, too_long) = match self.rng.below(10) {
            0 => (0, false),
            1 => {
                // No NUL in the first LABEL_MAX bytes: E2BIG.
                let n = LABEL_MAX + self.rng.below(64) as usize;
                // In the scratch area only: the must-fail expectation is the
                // length's, not the pointer's (a random kind made it fail or
                // not for reasons the model did not follow: one finding in
                // 100k calls, not replayed).
                let bytes: Vec<u8> = (0..n).map(|_| self.rng.range(1, 255) as u8).collect();
                let p = self.place_in(f, &bytes, n as u64, gen::Ptr::Valid);
                (p.ptr, true)
            }
            _ => {
                let n = match self.rng.below(10) {
                    0 => 0,
                    1 => LABEL_MAX - 1,
                    _ => self.rng.below(64) as usize,
                };
                let mut bytes: Vec<u8> = (0..n).map(|_| self.rng.range(1, 255) as u8).collect();
                bytes.push(0);
                let kind = gen::in_ptr(&mut self.rng);
                let claimed = bytes.len() as u64;
                (self.place_in(f, &bytes, claimed, kind).ptr, false)
            }
        };
        let mut l = uapi::drm_ferrite_bo_set_label {
            handle,
            pad: pad.v,
            label: ptr,
        };
        let ex = Expect::fail_if(pad.bad || too_long);
        let _ = self.ioctl(
            f.raw(),
            "BO_SET_LABEL",
            IOCTL_BO_SET_LABEL,
            &mut l,
            ex,
            &nothing,
        );
    }

    /// BO_QUERY_INFO, reading the label back into buffers of any size.
    fn op_bo_query_info(&mut self, f: &FileCtx) {
        let live: Vec<u32> = f.pools().bos.iter().map(|b| b.handle).collect();
        let handle = gen::handle(&mut self.rng, &live);
        let fl = gen::flags(&mut self.rng, 0);
        let label_size = match self.rng.below(6) {
            0 => 0,
            1 => 1,
            2 => LABEL_MAX as u32,
            _ => self.rng.range(1, 80) as u32,
        };
        let ptr = if self.rng.chance(1, 5) {
            0
        } else {
            let kind = gen::out_ptr(&mut self.rng);
            self.place_out(f, u64::from(label_size), kind).ptr
        };
        let mut q = uapi::drm_ferrite_bo_query_info {
            handle,
            flags: fl.v,
            label: ptr,
            label_size,
            ..Default::default()
        };
        let ex = Expect::fail_if(fl.bad);
        if self
            .ioctl(
                f.raw(),
                "BO_QUERY_INFO",
                IOCTL_BO_QUERY_INFO,
                &mut q,
                ex,
                &nothing,
            )
            .is_err()
        {
            return;
        }
        let known = uapi::DRM_FERRITE_GEM_CREATE_NO_MMAP;
        if q.size == 0
            || !q.size.is_multiple_of(PAGE)
            || q.create_flags & !known != 0
            || q.import_kind > uapi::drm_ferrite_bo_import_DRM_FERRITE_BO_IMPORT_OTHER
            || q.label_len as usize >= LABEL_MAX
        {
            self.finding(
                &format!(
                    "BO_QUERY_INFO of handle {handle}: size {:#x}, flags {:#x}, import {}, label_len {}",
                    q.size, q.create_flags, q.import_kind, q.label_len
                ),
                "",
            );
        }
    }

    // ---- raw ioctls ---------------------------------------------------

    /// A Ferrite ioctl with random bytes, possibly the wrong size or
    /// direction; or a DRM core ioctl a render node must refuse.
    fn op_raw(&mut self, f: &FileCtx) {
        let mut buf = vec![0u8; 1 << 14];
        if self.rng.chance(7, 10) {
            let id = self.rng.below(sys::NUM_FERRITE_IOCTLS);
            let right = sys::ioc_size(sys::FERRITE_IOCTLS[id as usize]);
            let size = match self.rng.below(10) {
                0..=6 => right,
                7 => self.rng.below(right as u64) as usize,
                8 => right + self.rng.range(1, 64) as usize,
                _ => self.rng.below(1 << 14) as usize,
            };
            let dir = if self.rng.chance(4, 5) {
                sys::IOC_READ | sys::IOC_WRITE
            } else {
                self.rng.below(4)
            };
            // Mostly zeros with a few random fields, or all random.
            let n = size.min(buf.len());
            if self.rng.chance(1, 2) {
                self.rng.fill(&mut buf[..n]);
            } else {
                for _ in 0..self.rng.range(1, 4) {
                    if n >= 8 {
                        let at = 4 * self.rng.index(n / 4 - 1);
                        let v = self.rng.interesting_u64().to_le_bytes();
                        buf[at..at + 8].copy_from_slice(&v);
                    }
                }
            }
            let read_back = dir & sys::IOC_READ != 0;
            match id {
                0 => {
                    // DEV_QUERY writes through its pointer: keep it harmless.
                    let kind = gen::out_ptr(&mut self.rng);
                    let p = self.place_out(f, 256, kind).ptr;
                    buf[8..16].copy_from_slice(&p.to_le_bytes());
                }
                12 => {
                    // BO_QUERY_INFO writes the label through its pointer:
                    // keep it harmless (at most 256 bytes).
                    let kind = gen::out_ptr(&mut self.rng);
                    let p = self.place_out(f, 256, kind).ptr;
                    buf[24..32].copy_from_slice(&p.to_le_bytes());
                    let n = u32::from_le_bytes(buf[32..36].try_into().unwrap()) % 257;
                    buf[32..36].copy_from_slice(&n.to_le_bytes());
                }
                1 => {
                    // A BO the fuzzer does not track may be bound or synced
                    // through a random handle, which allocates all of it:
                    // keep its size small (or invalid).
                    let size = u64::from_le_bytes(buf[0..8].try_into().unwrap());
                    if size > gen::MAX_KEPT_BO && size <= gen::MAX_BO_SIZE {
                        let small = size % gen::MAX_KEPT_BO + 1;
                        buf[0..8].copy_from_slice(&small.to_le_bytes());
                    }
                }
                _ => {}
            }
            let req = sys::ioc(dir, sys::COMMAND_BASE + id, size);
            // Creations and destructions of VMs and queues may change ids.
            if matches!(id, 3 | 4 | 6 | 7) {
                f.bump();
            }
            // A SUBMIT to a queue (or a VM_BIND MAP on a VM) that is
            // unusable: EIO.
            let ex = Expect {
                extra: if matches!(id, 5 | 8) { EIO_OK } else { &[] },
                ..Default::default()
            };
            let r = self.raw_call(f, "RAW_FERRITE", req, &mut buf, ex);
            // Release what a successful create made (when its id came back).
            let u32_at = |o: usize| u32::from_le_bytes(buf[o..o + 4].try_into().unwrap());
            if r.is_ok() && matches!(id, 4 | 7) && dir & sys::IOC_WRITE != 0 {
                // A VM_DESTROY or QUEUE_DESTROY that worked: the kernel read
                // the id from the first bytes (zeros past `size`).
                let mut b = [0u8; 4];
                let n = size.min(4);
                b[..n].copy_from_slice(&buf[..n]);
                if id == 4 {
                    self.forget_vm(f, u32::from_le_bytes(b));
                } else {
                    forget_queue(f, u32::from_le_bytes(b));
                }
            }
            if r.is_ok() && read_back {
                match id {
                    1 if size >= 16 => self.gem_close(f, u32_at(12)),
                    3 if size >= 8 => self.vm_destroy(f, u32_at(4)),
                    6 if size >= 16 => {
                        f.bump();
                        let mut d = uapi::drm_ferrite_queue_destroy {
                            queue_id: u32_at(12),
                            pad: 0,
                        };
                        let _ = self.ioctl(
                            f.raw(),
                            "QUEUE_DESTROY",
                            IOCTL_QUEUE_DESTROY,
                            &mut d,
                            Expect::default(),
                            &nothing,
                        );
                    }
                    _ => {}
                }
            }
        } else {
            // Not allowed on render nodes (or gone): must fail.
            const NRS: [u64; 10] = [0x01, 0x02, 0x07, 0x0a, 0x0b, 0x11, 0x1e, 0xa0, 0xb2, 0xc6];
            let nr = *self.rng.pick(&NRS).unwrap();
            let n = 256;
            self.rng.fill(&mut buf[..n]);
            let req = sys::ioc(sys::IOC_READ | sys::IOC_WRITE, nr, n);
            let _ = self.raw_call(f, "RAW_CORE", req, &mut buf, Expect::fail_if(true));
        }
    }

    fn raw_call(
        &mut self,
        f: &FileCtx,
        name: &'static str,
        req: u64,
        buf: &mut [u8],
        ex: Expect,
    ) -> Result<i32, i32> {
        let size = sys::ioc_size(req);
        assert!(size <= buf.len());
        let before = buf[..size.min(64)].to_vec();
        self.count_call();
        // SAFETY: `buf` holds at least the size `req` encodes; the only
        // pointer the kernel writes through (DEV_QUERY's) was placed.
        let r = unsafe { drm::ioctl_raw(f.raw(), req, buf.as_mut_ptr().cast()) };
        self.check(name, r, ex, &|| {
            format!("req {req:#x}, first bytes {before:02x?}")
        });
        r
    }

    /// Ioctl numbers past the driver's last: ENOTTY or EINVAL, never success.
    fn op_past_last(&mut self, f: &FileCtx) {
        let nr = if self.rng.chance(1, 5) {
            sys::COMMAND_END - 1
        } else {
            sys::COMMAND_BASE + sys::NUM_FERRITE_IOCTLS + self.rng.below(6)
        };
        let size = *self.rng.pick(&[0usize, 8, 16, 64, 256]).unwrap();
        let dir = self.rng.below(4);
        let mut buf = vec![0u8; 256];
        self.rng.fill(&mut buf);
        let ex = Expect {
            must_fail: true,
            only: Some(PAST_LAST_ERRNOS),
            ..Default::default()
        };
        let _ = self.raw_call(f, "PAST_LAST", sys::ioc(dir, nr, size), &mut buf, ex);
    }

    /// Once per worker: every number just past the last Ferrite ioctl, and
    /// GEM_CREATE at its size limit (in a file of its own, as the BO is
    /// allocated in full if anything binds it).
    fn boundary_sweep(&mut self) {
        let f = self.env.file(0);
        let ex = Expect {
            must_fail: true,
            only: Some(PAST_LAST_ERRNOS),
            ..Default::default()
        };
        let mut buf = vec![0u8; 64];
        for nr in (sys::COMMAND_BASE + sys::NUM_FERRITE_IOCTLS
            ..sys::COMMAND_BASE + sys::NUM_FERRITE_IOCTLS + 4)
            .chain([sys::COMMAND_END - 1])
        {
            for (dir, size) in [(3, 16), (1, 8), (2, 64), (0, 0)] {
                let _ = self.raw_call(&f, "PAST_LAST", sys::ioc(dir, nr, size), &mut buf, ex);
            }
        }
        let dev = self.rng.index(self.env.devs.len());
        let Ok(own) = FileCtx::open(&self.env.devs, dev) else {
            return;
        };
        for (size, bad) in [
            (gen::MAX_BO_SIZE, false),
            (gen::MAX_BO_SIZE - PAGE + 1, false),
            (gen::MAX_BO_SIZE + 1, true),
            (u64::MAX, true),
        ] {
            let mut c = uapi::drm_ferrite_gem_create {
                size,
                ..Default::default()
            };
            let ex = Expect::fail_if(bad);
            let r = self.ioctl(
                own.raw(),
                "GEM_CREATE",
                IOCTL_GEM_CREATE,
                &mut c,
                ex,
                &nothing,
            );
            if r.is_ok() {
                if c.size != gen::MAX_BO_SIZE {
                    self.finding(
                        &format!("GEM_CREATE of {size:#x} bytes returned size {:#x}", c.size),
                        "",
                    );
                }
                self.gem_close(&own, c.handle);
            }
        }
    }

    // ---- userptrs -----------------------------------------------------

    /// The (va, size) of this process's userptr bindings in `vm` as `f`
    /// names it (the ranges of regions no worker has taken out).
    fn user_ranges(&self, f: &FileCtx, vm: u32) -> Vec<(u64, u64)> {
        let me = self.pid;
        let u = self.env.user();
        u.regions
            .iter()
            .filter(|r| r.owner == me)
            .flat_map(|r| r.bindings.iter())
            .filter(|b| b.file.strong_count() > 0 && b.in_vm(f, vm))
            .map(|b| (b.va, b.size))
            .collect()
    }

    /// VM `vm` of `f` was destroyed: its userptrs went with it.
    fn forget_vm(&self, f: &FileCtx, vm: u32) {
        if vm == PVM {
            return;
        }
        let mut u = self.env.user();
        for r in &mut u.regions {
            r.bindings.retain(|b| !b.in_vm(f, vm));
        }
    }

    /// With probability `num / den`, take one of this process's regions
    /// that `ok` accepts out of the list, so that no other thread works on
    /// it; give it back with [`Self::put_region`].
    fn take_region(&mut self, ok: impl Fn(&Region) -> bool, num: u64, den: u64) -> Option<Region> {
        let env = self.env;
        let me = self.pid;
        let mut u = env.user();
        u.prune();
        let idx: Vec<usize> = (0..u.regions.len())
            .filter(|&i| u.regions[i].owner == me && ok(&u.regions[i]))
            .collect();
        if idx.is_empty() || !self.rng.chance(num, den) {
            return None;
        }
        let i = idx[self.rng.index(idx.len())];
        u.out += 1;
        Some(u.regions.swap_remove(i))
    }

    /// Give back a region taken out (or made); one munmapped and no longer
    /// bound anywhere is forgotten.
    fn put_region(&mut self, r: Region) {
        let mut u = self.env.user();
        u.out = u.out.saturating_sub(1);
        if r.mapped || !r.bindings.is_empty() {
            u.regions.push(r);
        }
    }

    /// A new region, if the process has fewer than the most it keeps.
    fn new_region(&mut self) -> Option<Region> {
        {
            let mut u = self.env.user();
            if u.owned_by(self.pid) + u.out >= gen::MAX_USER_REGIONS {
                return None;
            }
            u.out += 1;
        }
        let kind = gen::mem_kind(&mut self.rng);
        let size = gen::user_region_size(&mut self.rng);
        let r = self.map_region(kind, size);
        if r.is_none() {
            let mut u = self.env.user();
            u.out = u.out.saturating_sub(1);
        }
        r
    }

    /// The descriptor of the process's sealed userptr file, made on first
    /// use.
    fn user_file(&mut self) -> Option<RawFd> {
        let made = {
            let mut u = self.env.user();
            if let Some((fd, _)) = &u.file {
                return Some(fd.as_raw_fd());
            }
            if u.file_failed {
                return None;
            }
            match make_user_file() {
                Ok(fd) => {
                    let raw = fd.as_raw_fd();
                    u.file = Some((fd, self.pid));
                    Ok(raw)
                }
                Err(e) => {
                    u.file_failed = true;
                    Err(e)
                }
            }
        };
        match made {
            Ok(fd) => Some(fd),
            Err(e) => {
                self.finding(&format!("cannot make the userptr file (memfd): {e}"), "");
                None
            }
        }
    }

    /// Count a libc call on a region (`ret` 0, or -1 with errno) and check
    /// it: on the process's own memory only ENOMEM may happen.
    fn region_call(&mut self, name: &'static str, ret: i32, r: &Region) -> bool {
        let res = if ret == 0 {
            Ok(0)
        } else {
            Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
        };
        self.count_call();
        let ex = Expect {
            only: Some(ENOMEM_ONLY),
            ..Default::default()
        };
        let what = format!(
            " userptr region {:?} at {:#x}+{:#x} prot {:#x}",
            r.kind, r.va, r.size, r.prot
        );
        self.check(name, res, ex, &|| what.clone());
        ret == 0
    }

    /// Map a region of `kind` and put its pages in the state the kind
    /// says.
    fn map_region(&mut self, kind: MemKind, size: u64) -> Option<Region> {
        let file = if kind.is_file() {
            Some(self.user_file()?)
        } else {
            None
        };
        let file_off = match file {
            Some(_) => PAGE * self.rng.below((gen::USER_FILE_SIZE - size) / PAGE + 1),
            None => 0,
        };
        let prot = match kind {
            MemKind::ZeroPage | MemKind::FileShared | MemKind::FilePrivate => libc::PROT_READ,
            _ => libc::PROT_READ | libc::PROT_WRITE,
        };
        let flags = match kind {
            MemKind::FileShared => libc::MAP_SHARED,
            MemKind::FilePrivate => libc::MAP_PRIVATE,
            _ => libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
        };
        // SAFETY: a new mapping at an address the kernel picks; nothing
        // existing is replaced (no MAP_FIXED).
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size as usize,
                prot,
                flags,
                file.unwrap_or(-1),
                file_off as libc::off_t,
            )
        };
        let mut r = Region {
            kind,
            va: p as u64,
            size,
            file_off,
            prot,
            mapped: p != libc::MAP_FAILED,
            lost_writable: false,
            bindings: Vec::new(),
            owner: self.pid,
        };
        if !self.region_call("mmap", if r.mapped { 0 } else { -1 }, &r) {
            return None;
        }
        match kind {
            // Read faults on never-written anonymous memory: the zero page.
            MemKind::ZeroPage => read_pages(&r),
            MemKind::AnonRw => write_pages(&r, self.rng.next_u64()),
            MemKind::AnonRo => {
                write_pages(&r, self.rng.next_u64());
                // SAFETY: the region just mapped.
                let ret = unsafe { libc::mprotect(p, size as usize, libc::PROT_READ) };
                if self.region_call("mprotect", ret, &r) {
                    r.prot = libc::PROT_READ;
                } else {
                    self.region_reserve(&mut r);
                }
            }
            MemKind::FileShared | MemKind::FilePrivate if self.rng.chance(1, 2) => read_pages(&r),
            _ => {}
        }
        Some(r)
    }

    /// Replace a region's pages as munmap would, but keep its addresses
    /// (a fresh PROT_NONE anonymous mapping over them): what a region on
    /// which writable userptrs may still be registered gets instead of a
    /// munmap. If even that fails, the region is given up (never touched
    /// or bound again).
    fn region_reserve(&mut self, r: &mut Region) {
        let va = r.va as *mut libc::c_void;
        // SAFETY: MAP_FIXED over exactly this region, which only this
        // worker uses now.
        let p = unsafe {
            libc::mmap(
                va,
                r.size as usize,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if self.region_call("mmap", if p == va { 0 } else { -1 }, r) {
            r.prot = libc::PROT_NONE;
            r.kind = MemKind::AnonUntouched;
            r.file_off = 0;
        } else {
            r.mapped = false;
        }
    }

    /// The shared zero page still reads zeros: check a new read-only
    /// anonymous page.
    fn check_zero_page(&mut self, after: &str) {
        let len = PAGE as usize;
        // SAFETY: a new private anonymous page at an address the kernel
        // picks.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return;
        }
        let words = p.cast::<u64>().cast_const();
        // SAFETY: reading inside the page just mapped readable.
        let bad = (0..len / 8).find_map(|i| match unsafe { words.add(i).read_volatile() } {
            0 => None,
            v => Some((i * 8, v)),
        });
        // SAFETY: the page mapped above.
        unsafe { libc::munmap(p, len) };
        if let Some((at, v)) = bad {
            self.finding(
                &format!(
                    "the shared zero page is not zero after {after}: a new read-only \
                     anonymous page has {v:#x} at {at:#x}"
                ),
                "",
            );
        }
    }

    /// VM_BIND with the single operation `o` and no sync ops.
    fn vm_bind_one(&mut self, fd: RawFd, vm: u32, o: BindOp, ex: Expect) -> Result<i32, i32> {
        let bytes = o.to_bytes();
        let p = self.place_valid(&bytes, bytes.len() as u64);
        let mut b = uapi::drm_ferrite_vm_bind {
            vm_id: vm,
            flags: 0,
            ops: drm_ferrite_obj_array {
                count: 1,
                stride: bytes.len() as u32,
                array: p.ptr,
            },
            syncs: drm_ferrite_obj_array::default(),
        };
        self.ioctl(fd, "VM_BIND_USERPTR", IOCTL_VM_BIND, &mut b, ex, &|| {
            format!("\n  op {o:?}")
        })
    }

    /// Bind (part of) a region, made now or one of the process's, on the
    /// process VM or an explicit VM of `f`: read-only or not, as the
    /// memory allows, and now and then writable where it must fail.
    fn op_userptr_bind(&mut self, fa: &Arc<FileCtx>) {
        let f = &**fa;
        let vm = {
            let p = f.pools();
            match self.rng.pick(&p.vms) {
                Some(&v) if self.rng.chance(1, 4) => v,
                _ => PVM,
            }
        };
        let r = match self.take_region(|r| r.mapped, 3, 4) {
            Some(r) => Some(r),
            None => self.new_region(),
        };
        let Some(mut r) = r else { return };
        let (va, size) = gen::user_bind_range(&mut self.rng, r.va, r.size);
        let fl = gen::user_bind_flags(
            &mut self.rng,
            r.prot & libc::PROT_READ != 0,
            r.prot & libc::PROT_WRITE != 0,
        );
        let pvm = vm == PVM;
        let ex = if !f.range.allows(va, size) {
            Expect {
                must_fail: true,
                only: Some(UP_RANGE),
                ..Default::default()
            }
        } else {
            Expect {
                // An overlap is not certain even in the process VM: the
                // generic VM_BIND ops (and other threads of the process,
                // which share its VM) may have unmapped the userptr since.
                must_fail: fl.bad,
                only: Some(match (pvm, fl.bad) {
                    (true, true) => UP_FAIL_PVM,
                    (true, false) => UP_MAP_PVM,
                    (false, true) => UP_FAIL,
                    (false, false) => UP_MAP,
                }),
                ..Default::default()
            }
        };
        let o = BindOp {
            op: MAP,
            flags: fl.v,
            va,
            size,
            ..Default::default()
        };
        let g0 = f.gen();
        let res = self.vm_bind_one(f.raw(), vm, o, ex);
        if res == Err(libc::EIO) {
            self.bind_eio(f, vm, g0, "VM_BIND_USERPTR", &|| {
                format!(" vm {vm} op {o:?}")
            });
        }
        if res.is_ok() {
            let readonly = fl.v & uapi::DRM_FERRITE_VM_BIND_READONLY != 0;
            r.bindings
                .retain(|b| !(b.in_vm(f, vm) && b.overlaps(va, size)));
            r.bindings.push(UBinding {
                file: Arc::downgrade(fa),
                dev: f.dev,
                vm,
                va,
                size,
                readonly,
            });
        }
        self.put_region(r);
    }

    /// Unbind a userptr: all of it, which must work, or part of it, which
    /// must fail with EINVAL. After a read-only anonymous one the zero page
    /// must still be zeros, after a file-backed one the file unchanged.
    fn op_userptr_unbind(&mut self) {
        let Some(mut r) = self.take_region(|r| !r.bindings.is_empty(), 1, 1) else {
            return;
        };
        let i = self.rng.index(r.bindings.len());
        let b = r.bindings[i].clone();
        let Some(bf) = b.file.upgrade() else {
            r.lost_writable |= !b.readonly;
            r.bindings.swap_remove(i);
            return self.put_region(r);
        };
        let partial = if self.rng.chance(1, 3) {
            gen::partial_range(&mut self.rng, b.va, b.size)
        } else {
            None
        };
        let (va, size) = partial.unwrap_or((b.va, b.size));
        let pvm = b.vm == PVM;
        let ex = Expect {
            // Not certain either: a generic UNMAP may have removed the
            // whole userptr behind the model's back, and then a "partial"
            // unmap covers nothing and succeeds.
            must_fail: false,
            only: Some(match (partial.is_some(), pvm) {
                (true, true) => UP_PARTIAL_PVM,
                (true, false) => UP_PARTIAL,
                (false, true) => UP_UNMAP_PVM,
                (false, false) => UP_UNMAP,
            }),
            ..Default::default()
        };
        let o = BindOp {
            op: UNMAP,
            va,
            size,
            ..Default::default()
        };
        let res = self.vm_bind_one(bf.raw(), b.vm, o, ex);
        drop(bf);
        // Gone: unbound, or (explicit VMs) the VM with it.
        if res.is_ok() || res == Err(libc::ENOENT) {
            r.bindings.swap_remove(i);
        }
        if res.is_ok() && partial.is_none() {
            if b.readonly && !r.kind.is_file() {
                self.check_zero_page("unbinding a read-only anonymous userptr");
            }
            if r.kind.is_file() {
                let fd = self.env.user().file.as_ref().map(|f| f.0.as_raw_fd());
                let off = r.file_off + (b.va - r.va);
                if let Some(d) = fd.and_then(|fd| user_file_diff(fd, off, b.size)) {
                    self.finding(
                        &format!(
                            "after unbinding a userptr of the file at {off:#x}+{:#x}: {d}",
                            b.size
                        ),
                        "",
                    );
                }
            }
        }
        self.put_region(r);
    }

    /// Change a region under its userptrs: munmap it, mprotect it,
    /// MADV_DONTNEED part of it, or read or write it from the CPU.
    fn op_userptr_mm(&mut self) {
        let Some(mut r) = self.take_region(|r| r.mapped, 1, 1) else {
            return;
        };
        let (va, len) = (r.va as *mut libc::c_void, r.size as usize);
        match self.rng.below(12) {
            0..=2 if r.maybe_bound_writable() => self.region_reserve(&mut r),
            0..=2 => {
                // SAFETY: the region, which only this worker uses now; its
                // addresses are never touched again.
                let ret = unsafe { libc::munmap(va, len) };
                if self.region_call("munmap", ret, &r) {
                    r.mapped = false;
                }
            }
            3..=5 => {
                const NONE: i32 = libc::PROT_NONE;
                const RO: i32 = libc::PROT_READ;
                const RW: i32 = libc::PROT_READ | libc::PROT_WRITE;
                // The sealed file cannot be mapped shared and writable.
                let choices: &[i32] = if r.kind == MemKind::FileShared {
                    &[NONE, RO]
                } else {
                    &[NONE, RO, RW]
                };
                let prot = *self.rng.pick(choices).unwrap();
                // SAFETY: the region, which only this worker uses now.
                let ret = unsafe { libc::mprotect(va, len, prot) };
                if self.region_call("mprotect", ret, &r) {
                    r.prot = prot;
                } else {
                    // Maybe changed in part: start again from known state.
                    self.region_reserve(&mut r);
                }
            }
            6..=7 => {
                let (at, n) = gen::user_bind_range(&mut self.rng, r.va, r.size);
                // SAFETY: part of the region, which only this worker uses
                // now; dropping its pages is what is tested.
                let ret = unsafe {
                    libc::madvise(at as *mut libc::c_void, n as usize, libc::MADV_DONTNEED)
                };
                self.region_call("madvise", ret, &r);
            }
            8..=9 => {
                if r.prot & libc::PROT_READ != 0 {
                    read_pages(&r);
                }
            }
            _ => {
                if r.prot & libc::PROT_WRITE != 0 {
                    let off = 8 * self.rng.below(r.size / 8);
                    let v = self.rng.next_u64();
                    // SAFETY: inside the region, which is writable.
                    unsafe { ((r.va + off) as *mut u64).write_volatile(v) };
                }
            }
        }
        self.put_region(r);
    }

    /// A job on a userptr bound in a VM of `f`: reads of it and sometimes
    /// writes to it (which fault where it is read-only); then maybe a wait
    /// for it, and the zero-page check after a write to a read-only
    /// anonymous one.
    fn op_userptr_job(&mut self, f: &FileCtx) {
        let me = self.pid;
        let cands: Vec<(u32, u64, u64, bool, bool)> = {
            let u = self.env.user();
            u.regions
                .iter()
                .filter(|r| r.owner == me)
                .flat_map(|r| r.bindings.iter().map(move |b| (r, b)))
                .filter(|(_, b)| b.file.strong_count() > 0 && b.in_vm(f, b.vm))
                .map(|(r, b)| (b.vm, b.va, b.size, b.readonly, !r.kind.is_file()))
                .collect()
        };
        let Some(&(vm, va, size, readonly, anon)) = self.rng.pick(&cands) else {
            return;
        };
        // Read before the queue is picked: see `submit_vm_check`.
        let g0 = f.gen();
        let (queue, cb, syncs) = {
            let p = f.pools();
            let qs: Vec<u32> = p
                .queues
                .iter()
                .filter(|q| q.vm == vm)
                .map(|q| q.id)
                .collect();
            let q = self.rng.pick(&qs).copied();
            let cbs: Vec<&CmdBuf> = p.cmdbufs.iter().filter(|c| c.vm == vm).collect();
            let cb = self.rng.pick(&cbs).map(|c| {
                (
                    c.map.clone(),
                    (c.cmd_va, c.cmd_size),
                    (c.data_va, c.data_size),
                )
            });
            (q, cb, p.sync_handles())
        };
        let Some(queue_id) = queue else {
            return self.op_queue_create(f, Some(vm));
        };
        let Some((map, cmd, data)) = cb else {
            return self.op_cmdbuf_setup(f, Some(vm));
        };
        let write = self.rng.chance(1, 3);
        let dw = gen::userptr_commands(&mut self.rng, (va, size), data, write);
        let len = dw.len() as u64 * 4;
        if len > cmd.1 {
            return;
        }
        let off = 64 * self.rng.below((cmd.1 - len) / 64 + 1);
        let bytes: Vec<u8> = dw.iter().flat_map(|d| d.to_le_bytes()).collect();
        map.write(off as usize, &bytes);
        let sig = match self.rng.pick(&syncs) {
            Some(&h) if self.rng.chance(2, 3) => Some(h),
            _ => None,
        };
        let so = SyncOp {
            flags: SIGNAL,
            handle: sig.unwrap_or(0),
            point: 0,
        };
        let sb = so.to_bytes();
        let sp = self.place_valid(&sb, sb.len() as u64);
        let mut s = uapi::drm_ferrite_submit {
            queue_id,
            flags: 0,
            cmd_va: cmd.0 + off,
            cmd_size: len as u32,
            pad: 0,
            syncs: drm_ferrite_obj_array {
                count: u32::from(sig.is_some()),
                stride: sb.len() as u32,
                array: sp.ptr,
            },
            bos: drm_ferrite_obj_array::default(),
        };
        let pre = self.pre_state(f, vm);
        let ex = Expect {
            extra: EIO_OK,
            ..Default::default()
        };
        let describe = || format!(" userptr job on {va:#x}+{size:#x} in vm {vm} (writes {write})");
        let r = self.ioctl(f.raw(), "SUBMIT", IOCTL_SUBMIT, &mut s, ex, &describe);
        let q = QueueEnt { id: queue_id, vm };
        self.submit_vm_check(f, q, r, pre == Some(true), false, g0, &describe);
        if r.is_err() {
            return;
        }
        if let Some(h) = sig {
            f.pools().signalled(&[so]);
            if self.rng.chance(1, 2) {
                self.op_sync_wait(f, Some((h, 0)));
            }
        }
        if write && readonly && anon {
            self.check_zero_page("a GPU write to a read-only anonymous userptr");
        }
    }

    // ---- files --------------------------------------------------------

    /// Close file 1 (once nothing uses it) and open a new one, maybe on
    /// another device.
    fn op_reopen_peer(&mut self) {
        if self.env.files.len() < 2 {
            return;
        }
        let dev = self.rng.index(self.env.devs.len());
        match FileCtx::open(&self.env.devs, dev) {
            Ok(nf) => {
                let old = {
                    let mut w = self.env.files[1].write().unwrap_or_else(|e| e.into_inner());
                    std::mem::replace(&mut *w, Arc::new(nf))
                };
                drop(old);
            }
            Err(e) => self.finding(
                &format!("cannot reopen {}: {e}", self.env.devs[dev].path.display()),
                "",
            ),
        }
    }

    fn op_close_fd(&mut self) {
        let mut fds = self.env.fds();
        if !fds.is_empty() {
            let i = self.rng.index(fds.len());
            fds.swap_remove(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_disables_operations() {
        let names = op_names();
        assert_eq!(names.len(), OPS.len());
        assert!(names.contains(&"vmbind".to_string()));
        assert!(names.contains(&"vmstate".to_string()));
        assert!(names.contains(&"asyncbind".to_string()));
        assert!(names.contains(&"primeimport".to_string()));
        let all = weights(&[]).unwrap();
        assert!(all.iter().all(|&w| w > 0));
        let w = weights(&["vmbind".into(), "submit".into()]).unwrap();
        for (i, n) in names.iter().enumerate() {
            let skipped = n == "vmbind" || n == "submit";
            assert_eq!(w[i] == 0, skipped, "{n}");
        }
        assert!(weights(&["nosuchop".into()]).is_err());
        assert!(weights(&names).is_err());
    }

    #[test]
    fn pools_track_bindings_and_signals() {
        let mut p = Pools::default();
        p.add_bound(1, 0x10000, 0x4000);
        p.add_bound(1, 0x20000, 0x1000);
        p.add_bound(2, 0x10000, 0x1000);
        // A MAP over an old range replaces it.
        p.add_bound(1, 0x12000, 0x1000);
        assert_eq!(p.bound_in(1), vec![(0x20000, 0x1000), (0x12000, 0x1000)]);
        p.remove_bound(1, 0x0, u64::MAX);
        assert!(p.bound_in(1).is_empty());
        assert_eq!(p.bound_in(2).len(), 1);
        for i in 0..(MAX_BOUND as u64 + 5) {
            p.add_bound(3, 0x10000 + i * 0x1000, 0x1000);
        }
        assert_eq!(p.bound.len(), MAX_BOUND);

        p.syncs.push(SyncInfo {
            handle: 7,
            fenced: false,
            point: 2,
        });
        p.signalled(&[
            SyncOp {
                flags: SIGNAL | uapi::DRM_FERRITE_SYNC_TIMELINE,
                handle: 7,
                point: 5,
            },
            SyncOp {
                flags: 0,
                handle: 7,
                point: 9,
            },
        ]);
        assert_eq!(
            p.syncs[0],
            SyncInfo {
                handle: 7,
                fenced: true,
                point: 5
            }
        );
    }

    fn test_file(dev: usize) -> Arc<FileCtx> {
        let null = std::fs::File::open("/dev/null").unwrap();
        Arc::new(FileCtx {
            fd: null.into(),
            range: VaRange {
                start: 0x1_0000,
                end: (1 << 48) - (1 << 32),
            },
            dev,
            async_ok: true,
            null_ok: true,
            pools: Mutex::default(),
        })
    }

    #[test]
    fn kernel_views_of_sync_arrays() {
        let w = SyncOp {
            flags: 0,
            handle: 5,
            point: 0,
        };
        let sig = SyncOp {
            flags: SIGNAL,
            handle: 6,
            point: 0,
        };
        let arr = |count, stride| Arr {
            arr: drm_ferrite_obj_array {
                count,
                stride,
                array: 0,
            },
            layout: Layout {
                stride,
                nonzero_tail: false,
            },
            bad: false,
        };
        let v = kernel_view(&[sig, w], &arr(2, 16)).unwrap();
        assert!(waits_for_fence(Some(&v)));
        assert!(!waits_for_fence(
            kernel_view(&[sig], &arr(1, 16)).as_deref()
        ));
        assert!(!waits_for_fence(
            kernel_view(&[sig, w], &arr(1, 16)).as_deref()
        ));
        // A count past the elements: the kernel reads what follows.
        assert!(kernel_view(&[sig], &arr(0x1_0000, 16)).is_none());
        assert!(waits_for_fence(None));
        // A stride of 4: the kernel sees the flags, and handle 0, which no
        // sync object has; of 0: a WAIT, of handle 0 too.
        assert!(!waits_for_fence(
            kernel_view(&[sig, w], &arr(2, 4)).as_deref()
        ));
        assert!(!waits_for_fence(kernel_view(&[sig], &arr(1, 0)).as_deref()));
        let v = kernel_view(&[sig], &arr(1, 0)).unwrap();
        assert_eq!((v[0].flags, v[0].handle), (0, 0));
    }

    #[test]
    fn userptr_bindings_follow_vms_and_files() {
        let (a, b, c) = (test_file(0), test_file(0), test_file(1));
        let bind = |f: &Arc<FileCtx>, vm| UBinding {
            file: Arc::downgrade(f),
            dev: f.dev,
            vm,
            va: 0x7f00_0000_0000,
            size: 2 * PAGE,
            readonly: true,
        };
        // The process VM of a device is one for all its files.
        assert!(bind(&a, PVM).in_vm(&b, PVM));
        assert!(!bind(&a, PVM).in_vm(&c, PVM));
        // An explicit VM is its file's.
        assert!(bind(&a, 1).in_vm(&a, 1));
        assert!(!bind(&a, 1).in_vm(&b, 1));
        assert!(!bind(&a, 1).in_vm(&a, 2));
        assert!(bind(&a, 1).overlaps(0x7f00_0000_1000, PAGE));
        assert!(!bind(&a, 1).overlaps(0x7f00_0000_2000, PAGE));
        let region = |mapped, bindings| Region {
            kind: MemKind::ZeroPage,
            va: 0x7f00_0000_0000,
            size: 2 * PAGE,
            file_off: 0,
            prot: libc::PROT_READ,
            mapped,
            lost_writable: false,
            bindings,
            owner: 0,
        };
        let mut u = UserMem::default();
        u.regions
            .push(region(true, vec![bind(&a, PVM), bind(&c, 3)]));
        u.regions.push(region(false, vec![bind(&c, PVM)]));
        u.regions.push(region(false, vec![bind(&a, 1)]));
        drop(c);
        u.prune();
        // The bindings through the closed file are forgotten, and with
        // them the munmapped region bound only through it.
        assert_eq!(u.regions.len(), 2);
        assert_eq!(u.regions[0].bindings.len(), 1);
        assert_eq!(u.owned_by(0), 2);
        // Not unmapped by the drop: the addresses are not ours.
        u.regions.clear();
    }

    #[test]
    fn userptr_regions_under_mm_ops() {
        let shared: &'static Shared = Box::leak(Box::new(Shared {
            calls: AtomicU64::new(0),
            findings: AtomicU64::new(0),
        }));
        let budget = Budget {
            shared,
            limit: u64::MAX,
            deadline: Instant::now() + std::time::Duration::from_secs(3600),
        };
        let opts = RunOpts {
            trace: false,
            weights: weights(&[]).unwrap(),
            replay_extra: String::new(),
            inject_pending: false,
        };
        let file = Arc::into_inner(test_file(0)).unwrap();
        let env = Env::new(Vec::new(), vec![file], budget, &opts);
        let mut w = Worker::new(&env, 7, "test".into());
        let (mut made, mut files) = (0, 0);
        for i in 0..3000 {
            w.rng = Rng::new(crate::rng::step_seed(7, i));
            if w.rng.chance(1, 3) {
                if let Some(mut r) = w.new_region() {
                    made += 1;
                    files += u32::from(r.kind.is_file());
                    // As if a writable binding had been forgotten (no
                    // device here): the region is then never munmapped.
                    r.lost_writable = w.rng.chance(1, 20);
                    w.put_region(r);
                }
            } else {
                w.op_userptr_mm();
            }
            if i % 100 == 0 {
                w.check_zero_page("a test step");
            }
            let u = env.user();
            assert!(u.owned_by(w.pid) <= gen::MAX_USER_REGIONS);
            assert_eq!(u.out, 0);
        }
        assert_eq!(w.stats.findings, 0);
        assert!(
            made > 60 && files > 10,
            "{made} regions, {files} of the file"
        );
        // The file is sealed: what was written stays.
        let fd = env.user().file.as_ref().unwrap().0.as_raw_fd();
        assert_eq!(user_file_diff(fd, 0, gen::USER_FILE_SIZE), None);
        // SAFETY: a write attempt from a local buffer.
        let r = unsafe { libc::pwrite(fd, [1u8].as_ptr().cast(), 1, 0) };
        assert_eq!(r, -1);
        drop(w);
        drop(env);
        assert_eq!(shared.findings.load(Relaxed), 0);
    }

    #[test]
    fn scratch_layout() {
        let mut s = Scratch::new();
        let a = s.alloc(100).unwrap() as u64;
        let b = s.alloc(8).unwrap() as u64;
        assert_eq!(b, a + 104);
        assert!(s.alloc(SCRATCH_RW).is_none());
        assert_eq!(s.guard(), s.rw_end());
        assert_eq!(s.read_only(), s.rw_end() + PAGE);
        // The read/write area is writable up to its end.
        // SAFETY: the last byte of the read/write area.
        unsafe { ((s.rw_end() - 1) as *mut u8).write(1) };
        s.reset();
        assert_eq!(s.alloc(1).unwrap() as u64, a);
    }
}
