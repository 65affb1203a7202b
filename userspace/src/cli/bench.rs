// SPDX-License-Identifier: MIT
//! `ferrite bench`: ioctl floor, VM_BIND and NOP submit latency, and the
//! device-counter figures that do not depend on emulation speed.

use std::io;
use std::time::{Duration, Instant};

use serde::Serialize;

use ferrite::{uapi, BoRef, Cmds, Device, SyncOp};

use super::bench_bind;
use super::bench_svm;
use super::common::{self, va, Delta, Times};

const SIZES: [(u64, &str); 3] = [(4 << 10, "4 KiB"), (1 << 20, "1 MiB"), (32 << 20, "32 MiB")];

/// The label of a bind of one CPU page larger than 4 KiB.
fn page_label(page: u64) -> &'static str {
    match page {
        16384 => "16 KiB",
        65536 => "64 KiB",
        _ => "1 page",
    }
}

/// Iteration counts: `--iters N` sets the floor and submit loops; each bind
/// size runs N/4.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Iters {
    pub floor: usize,
    pub binds: usize,
    pub submits: usize,
}

impl Iters {
    pub fn new(n: usize) -> Iters {
        let n = n.max(1);
        Iters {
            floor: n,
            binds: (n / 4).max(1),
            submits: n,
        }
    }
}

#[derive(Serialize)]
struct BindResult {
    label: &'static str,
    size: u64,
    map: Times,
    unmap: Times,
    /// Per MAP and per UNMAP call, the query cost subtracted.
    map_ctr: Delta,
    unmap_ctr: Delta,
    n: usize,
}

#[derive(Serialize)]
struct SubmitResult {
    ioctl: Times,
    total: Times,
    ctr: Delta,
    n: usize,
}

fn floor(d: &Device, n: usize) -> io::Result<Times> {
    for _ in 0..10 {
        d.info()?;
    }
    let mut t = Vec::with_capacity(n);
    for _ in 0..n {
        let s = Instant::now();
        d.info()?;
        t.push(s.elapsed());
    }
    Ok(Times::of(&t))
}

fn bind(
    d: &Device,
    vm: u32,
    size: u64,
    label: &'static str,
    n: usize,
    qcost: &Delta,
) -> io::Result<BindResult> {
    let bo = d.gem_create(size)?;
    // Allocate every page before timing: binds pin and map existing pages.
    d.mmap(bo)?.touch_pages();
    let at = va(8);
    // One warm-up pair (page-table pages, first pin).
    d.vm_map(vm, bo, 0, at, size, 0)?;
    d.vm_unmap(vm, at, size)?;
    let (mut tm, mut tu) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut cm, mut cu) = (Delta::default(), Delta::default());
    for _ in 0..n {
        let c0 = d.counters()?;
        let s = Instant::now();
        d.vm_map(vm, bo, 0, at, size, 0)?;
        tm.push(s.elapsed());
        let c1 = d.counters()?;
        let s = Instant::now();
        d.vm_unmap(vm, at, size)?;
        tu.push(s.elapsed());
        let c2 = d.counters()?;
        cm.add(&Delta::between(&c0, &c1).minus(qcost, 1));
        cu.add(&Delta::between(&c1, &c2).minus(qcost, 1));
    }
    d.gem_close(bo)?;
    Ok(BindResult {
        label,
        size,
        map: Times::of(&tm),
        unmap: Times::of(&tu),
        map_ctr: cm,
        unmap_ctr: cu,
        n,
    })
}

/// Size of the dma-buf import benchmark's buffers.
const IMPORT_SIZE: u64 = 64 << 20;

/// `UDMABUF_CREATE`: `_IOW('u', 0x42, struct udmabuf_create)`.
const UDMABUF_CREATE: u64 = (1 << 30) | (24 << 16) | ((b'u' as u64) << 8) | 0x42;

/// `struct udmabuf_create` from `<linux/udmabuf.h>`.
#[repr(C)]
struct UdmabufCreate {
    memfd: u32,
    flags: u32,
    offset: u64,
    size: u64,
}

/// A 64 MiB dma-buf from the kernel's udmabuf exporter, over a memfd whose
/// pages exist (written once); `None` without `/dev/udmabuf`.
fn udmabuf(size: u64) -> io::Result<Option<std::os::fd::OwnedFd>> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let dev = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/udmabuf")
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    // SAFETY: a valid NUL-terminated name and flags.
    let memfd = unsafe { libc::memfd_create(c"ferrite-bench".as_ptr(), libc::MFD_ALLOW_SEALING) };
    if memfd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: memfd_create returned a new descriptor that we own.
    let memfd = unsafe { OwnedFd::from_raw_fd(memfd) };
    let file = std::fs::File::from(memfd);
    file.set_len(size)?;
    std::io::Write::write_all(&mut &file, &vec![0x5au8; size as usize])?;
    // SAFETY: plain fcntl on a descriptor we own.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, libc::F_SEAL_SHRINK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut c = UdmabufCreate {
        memfd: file.as_raw_fd() as u32,
        flags: 0,
        offset: 0,
        size,
    };
    // SAFETY: c is a struct udmabuf_create.
    let fd = unsafe { libc::ioctl(dev.as_raw_fd(), UDMABUF_CREATE as _, &mut c) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: UDMABUF_CREATE returned a new dma-buf descriptor that we own.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// Import + bind of a 64 MiB dma-buf against create + bind of a 64 MiB BO
/// (whose pages the bind allocates), `n` times each, alternating.
fn import_vs_create(d: &Device, vm: u32, n: usize) -> io::Result<Option<(Times, Times)>> {
    use std::os::fd::AsFd;
    let Some(dmabuf) = udmabuf(IMPORT_SIZE)? else {
        return Ok(None);
    };
    let at = va(16);
    let (mut ti, mut tc) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n + 1 {
        let s = Instant::now();
        let bo = d.prime_import(dmabuf.as_fd(), IMPORT_SIZE)?;
        d.vm_map(vm, bo, 0, at, IMPORT_SIZE, 0)?;
        let t_import = s.elapsed();
        d.vm_unmap(vm, at, IMPORT_SIZE)?;
        d.gem_close(bo)?;
        let s = Instant::now();
        let bo = d.gem_create(IMPORT_SIZE)?;
        d.vm_map(vm, bo, 0, at, IMPORT_SIZE, 0)?;
        let t_create = s.elapsed();
        d.vm_unmap(vm, at, IMPORT_SIZE)?;
        d.gem_close(bo)?;
        ti.push(t_import);
        tc.push(t_create);
    }
    // The first round warms up (page tables, the allocator).
    ti.remove(0);
    tc.remove(0);
    Ok(Some((Times::of(&ti), Times::of(&tc))))
}

/// A fresh private anonymous mapping of `len` bytes (with `extra` mmap
/// flags) that ends below `end`, the GPU's user range end (a userptr, or a
/// mirror VM's address, lies inside that range, GPU VA == CPU VA). The
/// kernel places a mapping top-down from the top of the CPU's user range,
/// which on arm64 with 48-bit addresses is in the driver's range: there the
/// mapping goes lower, with a hint and `MAP_FIXED_NOREPLACE`.
pub(crate) fn mmap_below(
    len: usize,
    end: u64,
    extra: libc::c_int,
) -> io::Result<*mut libc::c_void> {
    const STEP: u64 = 1 << 30;
    let map = |hint: u64, fixed: libc::c_int| {
        // SAFETY: a fresh private anonymous mapping, at an address the
        // kernel chooses or at `hint` only where nothing is mapped
        // (`MAP_FIXED_NOREPLACE`); no existing memory is affected.
        unsafe {
            libc::mmap(
                hint as *mut libc::c_void,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | extra | fixed,
                -1,
                0,
            )
        }
    };
    let mut p = map(0, 0);
    if p != libc::MAP_FAILED && p as u64 + len as u64 > end {
        // SAFETY: the mapping just made, not used.
        unsafe { libc::munmap(p, len) };
        p = libc::MAP_FAILED;
        let mut hint = end.saturating_sub((1 << 40) + len as u64) & !(STEP - 1);
        while hint > STEP {
            p = map(hint, libc::MAP_FIXED_NOREPLACE);
            if p != libc::MAP_FAILED
                || io::Error::last_os_error().raw_os_error() != Some(libc::EEXIST)
            {
                break;
            }
            hint -= STEP;
        }
    }
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(p)
}

/// 64 MiB of the process's memory (touched, so present) for the userptr
/// benchmark; unmapped on drop.
struct AnonMem(*mut u8, usize);

impl AnonMem {
    /// `len` bytes below `end`, the GPU's user range end (a userptr lies
    /// inside that range, GPU VA == CPU VA). The kernel places a mapping
    /// top-down from the top of the CPU's user range, which on arm64 with
    /// 48-bit addresses is in the driver's range: there the mapping goes
    /// lower, with a hint and `MAP_FIXED_NOREPLACE`.
    fn new(len: usize, end: u64) -> io::Result<AnonMem> {
        let p = mmap_below(len, end, libc::MAP_POPULATE)?;
        // SAFETY: the mapping is `len` bytes, readable and writable.
        unsafe { std::ptr::write_bytes(p.cast::<u8>(), 0x5a, len) };
        Ok(AnonMem(p.cast(), len))
    }
}

impl Drop for AnonMem {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unused after this.
        unsafe { libc::munmap(self.0.cast(), self.1) };
    }
}

#[derive(Serialize)]
struct UserptrResult {
    /// USERPTR bind of the memory where it is (GPU VA == CPU VA).
    userptr: Times,
    /// BO create + copy of the memory into it + bind.
    copy: Times,
    /// The first NOP job after a userptr bind (revalidation and the cache
    /// maintenance the bind skipped) and a NOP job without one.
    first_job: Times,
    nop_job: Times,
}

/// USERPTR bind of 64 MiB of malloc'd-like memory against copying it into a
/// new BO and binding that, `n` times each, alternating; and what the
/// maintenance deferred to the first job costs.
fn userptr_vs_copy(
    d: &Device,
    vm: u32,
    queue: u32,
    csize: u32,
    so: u32,
    n: usize,
) -> io::Result<UserptrResult> {
    let mem = AnonMem::new(IMPORT_SIZE as usize, d.mmu()?.user_va_end)?;
    let addr = mem.0 as u64;
    let at = va(16);
    let (mut tu, mut tc, mut tf, mut tn) = (vec![], vec![], vec![], vec![]);
    for _ in 0..n + 1 {
        let s = Instant::now();
        d.vm_map_user(vm, addr, IMPORT_SIZE, 0)?;
        tu.push(s.elapsed());
        tf.push(submit_once(d, queue, csize, so)?.1);
        d.vm_unmap(vm, addr, IMPORT_SIZE)?;
        tn.push(submit_once(d, queue, csize, so)?.1);

        let s = Instant::now();
        let bo = d.gem_create(IMPORT_SIZE)?;
        {
            let mut m = d.mmap(bo)?;
            // SAFETY: `mem` holds IMPORT_SIZE readable bytes.
            let src = unsafe { std::slice::from_raw_parts(mem.0, IMPORT_SIZE as usize) };
            m.write(0, src);
        }
        d.vm_map(vm, bo, 0, at, IMPORT_SIZE, 0)?;
        tc.push(s.elapsed());
        d.vm_unmap(vm, at, IMPORT_SIZE)?;
        d.gem_close(bo)?;
    }
    // The first round warms up.
    for v in [&mut tu, &mut tc, &mut tf, &mut tn] {
        v.remove(0);
    }
    Ok(UserptrResult {
        userptr: Times::of(&tu),
        copy: Times::of(&tc),
        first_job: Times::of(&tf),
        nop_job: Times::of(&tn),
    })
}

/// A one-NOP command buffer mapped at `va(4)`; returns its BO.
pub(super) fn nop_cmdbuf(d: &Device, vm: u32) -> io::Result<(ferrite::Bo, u32)> {
    let page = d.page_sizes()?.bind();
    let c = d.gem_create(page)?;
    let mut cmds = Cmds::new();
    cmds.nop(1);
    d.mmap(c)?.write(0, &cmds.to_bytes());
    d.vm_map(
        vm,
        c,
        0,
        va(4),
        page,
        ferrite::uapi::DRM_FERRITE_VM_BIND_READONLY,
    )?;
    Ok((c, cmds.size()))
}

pub(super) fn submit_once(
    d: &Device,
    queue: u32,
    size: u32,
    so: u32,
) -> io::Result<(Duration, Duration)> {
    let s = Instant::now();
    d.submit(queue, va(4), size, &[SyncOp::signal(so)], &[])?;
    let t_ioctl = s.elapsed();
    if !d.syncobj_wait(&[so], Duration::from_secs(10))? {
        return Err(io::Error::other("a NOP job did not signal within 10 s"));
    }
    Ok((t_ioctl, s.elapsed()))
}

fn submits(
    d: &Device,
    queue: u32,
    size: u32,
    so: u32,
    n: usize,
    qcost: &Delta,
) -> io::Result<SubmitResult> {
    let (mut ti, mut tt) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let before = d.counters()?;
    for _ in 0..n {
        let (i, t) = submit_once(d, queue, size, so)?;
        ti.push(i);
        tt.push(t);
    }
    let after = d.counters()?;
    Ok(SubmitResult {
        ioctl: Times::of(&ti),
        total: Times::of(&tt),
        ctr: Delta::between(&before, &after).minus(qcost, 1),
        n,
    })
}

/// BOs in a SUBMIT's list for the VM-private benchmark.
const LIST_BOS: usize = 1000;

/// SUBMIT of a NOP job listing 1,000 VM-private BOs, and listing 1,000
/// ordinary ones (issue 16's benchmark): the ioctl's time alone, the two
/// kinds alternating so that both see the same machine. `None` before
/// interface 0.4.
fn private_vs_ordinary(
    d: &Device,
    vm: u32,
    queue: u32,
    csize: u32,
    so: u32,
    n: usize,
) -> io::Result<Option<(Times, Times)>> {
    if d.uapi_features()? & u64::from(uapi::DRM_FERRITE_UAPI_VM_PRIVATE) == 0 {
        return Ok(None);
    }
    let page = d.page_sizes()?.bind();
    let mut private = Vec::with_capacity(LIST_BOS);
    let mut ordinary = Vec::with_capacity(LIST_BOS);
    for _ in 0..LIST_BOS {
        private.push(d.gem_create_private(page, vm, 0)?);
        ordinary.push(d.gem_create(page)?);
    }
    // Mesa lists most BOs for reading and a few for writing.
    let refs = |bos: &[ferrite::Bo]| -> Vec<BoRef> {
        bos.iter()
            .enumerate()
            .map(|(i, b)| {
                if i % 8 == 0 {
                    BoRef::write(*b)
                } else {
                    BoRef::read(*b)
                }
            })
            .collect()
    };
    let (pr, or) = (refs(&private), refs(&ordinary));
    let (mut tp, mut to) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n + 2 {
        for (list, out) in [(&pr, &mut tp), (&or, &mut to)] {
            let s = Instant::now();
            d.submit(queue, va(4), csize, &[SyncOp::signal(so)], list)?;
            let t = s.elapsed();
            if !d.syncobj_wait(&[so], Duration::from_secs(10))? {
                return Err(io::Error::other("a NOP job did not signal within 10 s"));
            }
            // The first two rounds warm up.
            if i >= 2 {
                out.push(t);
            }
        }
    }
    for b in private.into_iter().chain(ordinary) {
        d.gem_close(b)?;
    }
    Ok(Some((Times::of(&tp), Times::of(&to))))
}

/// The scheduler's figures (issue 14's benchmark).
#[derive(Serialize)]
struct SchedBench {
    /// One register write + one interrupt back, in the kernel: mean, p50 (us).
    #[serde(serialize_with = "mean_p50")]
    floor: Option<(f64, f64)>,
    /// NOP submit -> signal on an idle queue, measured with the floor.
    one: Times,
    /// NOP submit -> signal while 64 queues hold a job each that waits
    /// (blocked in WAIT): on a HIGH queue, and on a NORMAL one.
    busy_high: Times,
    busy_normal: Times,
    /// A REALTIME NOP job behind 16 busy LOW queues, in timeslices.
    rt: Times,
    tick_us: f64,
    /// debugfs `sched`: suspend request -> context saved, device time (us).
    suspend_avg_us: f64,
    suspend_max_us: f64,
    preemptions: u64,
    rotations: u64,
    /// What an idle queue costs the kernel (debugfs `sched`).
    queue_bytes: f64,
}

/// `/sys/kernel/debug/ferrite-<pci device>/<name>` of `d`, if it exists.
pub(super) fn debugfs_path(d: &Device, name: &str) -> Option<std::path::PathBuf> {
    let node = d.path().file_name()?.to_str()?.to_owned();
    let pci = std::fs::canonicalize(format!("/sys/class/drm/{node}/device")).ok()?;
    let pci = pci.file_name()?.to_str()?.to_owned();
    let p = std::path::PathBuf::from(format!("/sys/kernel/debug/ferrite-{pci}/{name}"));
    p.exists().then_some(p)
}

/// The contents of debugfs file `name` of `d`.
fn debugfs(d: &Device, name: &str) -> Option<String> {
    std::fs::read_to_string(debugfs_path(d, name)?).ok()
}

/// The number after `key ` in `text`.
pub(super) fn field(text: &str, key: &str) -> Option<f64> {
    let mut it = text.split_whitespace();
    while let Some(w) = it.next() {
        if w == key {
            return it.next()?.parse().ok();
        }
    }
    None
}

/// `n` jobs that WAIT for `va(6)` to become 1, on new queues of `prio`.
fn blocked_queues(d: &Device, vm: u32, n: usize, prio: u32, wsize: u32) -> io::Result<Vec<u32>> {
    let mut qs = Vec::with_capacity(n);
    for _ in 0..n {
        let q = d.queue_create_prio(vm, 60_000, prio)?;
        d.submit(q, va(7), wsize, &[], &[])?;
        qs.push(q);
    }
    Ok(qs)
}

/// Release the blocked jobs and let their queues go.
fn release(
    d: &Device,
    gate: &mut ferrite::Mmap,
    qs: Vec<u32>,
    csize: u32,
    so: u32,
) -> io::Result<()> {
    gate.write(0, &1u64.to_le_bytes());
    for q in qs {
        submit_once(d, q, csize, so)?;
        d.queue_destroy(q)?;
    }
    gate.write(0, &0u64.to_le_bytes());
    Ok(())
}

fn sched_bench(d: &Device, vm: u32, csize: u32, so: u32, n: usize) -> io::Result<SchedBench> {
    use ferrite::uapi;
    // The floor and a NOP job on an idle queue, interleaved (TCG's speed
    // drifts within a run): 5 rounds of 64 interrupt round trips and 10
    // NOP jobs.
    let one_q = d.queue_create(vm, 0)?;
    let (mut fl_mean, mut fl_p50, mut nops) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..5 {
        if let Some(t) = debugfs(d, "irq_roundtrip") {
            if let (Some(m), Some(p)) = (field(&t, "mean_ns"), field(&t, "p50_ns")) {
                fl_mean.push(m / 1000.0);
                fl_p50.push(p / 1000.0);
            }
        }
        for _ in 0..10 {
            nops.push(submit_once(d, one_q, csize, so)?.1);
        }
    }
    d.queue_destroy(one_q)?;
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    };
    let floor = match (median(&mut fl_mean), median(&mut fl_p50)) {
        (Some(m), Some(p)) => Some((m, p)),
        _ => None,
    };
    let one = Times::of(&nops);
    let info = debugfs(d, "sched").unwrap_or_default();
    let tick_us = field(&info, "timeslice_ms").unwrap_or(10.0) * 1000.0;
    // The gate (va 6) and the job that waits for it (va 7).
    let page = d.page_sizes()?.bind();
    let g = d.gem_create(page)?;
    d.vm_map(vm, g, 0, va(6), page, 0)?;
    let mut gate = d.mmap(g)?;
    gate.write(0, &0u64.to_le_bytes());
    let w = d.gem_create(page)?;
    let mut wc = Cmds::new();
    wc.wait(va(6), 1);
    d.mmap(w)?.write(0, &wc.to_bytes());
    d.vm_map(vm, w, 0, va(7), page, uapi::DRM_FERRITE_VM_BIND_READONLY)?;
    let normal = uapi::drm_ferrite_queue_priority_DRM_FERRITE_QUEUE_PRIORITY_NORMAL;
    let high = uapi::drm_ferrite_queue_priority_DRM_FERRITE_QUEUE_PRIORITY_HIGH;
    let low = uapi::drm_ferrite_queue_priority_DRM_FERRITE_QUEUE_PRIORITY_LOW;
    let rt = uapi::drm_ferrite_queue_priority_DRM_FERRITE_QUEUE_PRIORITY_REALTIME;
    let time_on = |q: u32, n: usize| -> io::Result<Times> {
        let mut t = Vec::with_capacity(n);
        for _ in 0..n {
            t.push(submit_once(d, q, csize, so)?.1);
        }
        Ok(Times::of(&t))
    };

    let before = debugfs(d, "sched").unwrap_or_default();
    // 64 queues each holding a job that waits: 8 on the rings, 56 runnable.
    let qs = blocked_queues(d, vm, 64, normal, wc.size())?;
    std::thread::sleep(Duration::from_millis(50));
    let hq = d.queue_create_prio(vm, 0, high)?;
    let busy_high = time_on(hq, n)?;
    let nq = d.queue_create_prio(vm, 0, normal)?;
    let busy_normal = time_on(nq, (n / 10).clamp(3, 20))?;
    release(d, &mut gate, qs, csize, so)?;

    // A REALTIME job behind 16 LOW queues that hold every ring.
    let qs = blocked_queues(d, vm, 16, low, wc.size())?;
    std::thread::sleep(Duration::from_millis(50));
    let rq = d.queue_create_prio(vm, 0, rt)?;
    let rt_t = time_on(rq, (n / 4).max(3))?;
    release(d, &mut gate, qs, csize, so)?;
    let after = debugfs(d, "sched").unwrap_or_default();
    for q in [hq, nq, rq] {
        d.queue_destroy(q)?;
    }
    d.vm_unmap(vm, va(6), page)?;
    d.vm_unmap(vm, va(7), page)?;
    d.gem_close(g)?;
    d.gem_close(w)?;
    let delta = |k: &str| field(&after, k).unwrap_or(0.0) - field(&before, k).unwrap_or(0.0);
    Ok(SchedBench {
        floor,
        one,
        busy_high,
        busy_normal,
        rt: rt_t,
        tick_us,
        suspend_avg_us: field(&after, "suspend_ns_avg").unwrap_or(0.0) / 1000.0,
        suspend_max_us: field(&after, "suspend_ns_max").unwrap_or(0.0) / 1000.0,
        preemptions: delta("preemptions") as u64,
        rotations: delta("rotations") as u64,
        queue_bytes: field(&after, "queue_bytes").unwrap_or(0.0),
    })
}

fn per(total: i64, n: usize) -> f64 {
    total as f64 / n as f64
}

pub(super) fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

/// What one `ferrite bench` run measured: the text report is printed from
/// it, and `--json` prints it as it is (times in microseconds; counter
/// deltas per call where the report shows them per call, else totals; a
/// `None` where the report says "not measured").
#[derive(Serialize)]
pub struct Report {
    pub device: String,
    pub iters: Iters,
    /// What one DEV_QUERY COUNTERS adds (subtracted from the deltas).
    pub query_cost: Delta,
    /// The null ioctl (DEV_QUERY INFO).
    pub floor: Times,
    /// VM_BIND map and unmap of 4 KiB, 1 MiB and 32 MiB; counters are
    /// totals over `n` calls.
    binds: Vec<BindResult>,
    /// NOP submit: the ioctl, and until its fence signalled; counters are
    /// totals over `n` jobs.
    submit: SubmitResult,
    pub queue_failed_jobs: u64,
    /// Issue 15's binds.
    pub bind: bench_bind::BindBench,
    /// 64 MiB dma-buf import + bind against BO create + bind.
    #[serde(serialize_with = "import_create")]
    pub import: Option<(Times, Times)>,
    userptr: UserptrResult,
    /// `kmap_user_bytes` before and after the userptr benchmark.
    pub kmap_user_bytes: [u64; 2],
    sched: SchedBench,
    /// SUBMIT listing VM-private BOs against ordinary ones.
    #[serde(serialize_with = "private_ordinary")]
    pub lists: Option<(Times, Times)>,
    /// Shared virtual memory (mirror VMs, 0.7).
    pub svm: bench_svm::SvmBench,
}

fn mean_p50<S: serde::Serializer>(p: &Option<(f64, f64)>, s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct MeanP50 {
        mean: f64,
        p50: f64,
    }
    p.map(|(mean, p50)| MeanP50 { mean, p50 }).serialize(s)
}

/// A pair of measurements, named.
fn named_pair<S: serde::Serializer>(
    p: &Option<(Times, Times)>,
    names: [&'static str; 2],
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    match p {
        None => s.serialize_none(),
        Some((a, b)) => {
            let mut m = s.serialize_map(Some(2))?;
            m.serialize_entry(names[0], a)?;
            m.serialize_entry(names[1], b)?;
            m.end()
        }
    }
}

fn import_create<S: serde::Serializer>(
    p: &Option<(Times, Times)>,
    s: S,
) -> Result<S::Ok, S::Error> {
    named_pair(p, ["import", "create"], s)
}

fn private_ordinary<S: serde::Serializer>(
    p: &Option<(Times, Times)>,
    s: S,
) -> Result<S::Ok, S::Error> {
    named_pair(p, ["private", "ordinary"], s)
}

/// `ferrite bench`: measure, then print the report or (`json`) the
/// measurements as one JSON document.
pub fn run(d: &Device, it: Iters, json: bool) -> io::Result<()> {
    let r = measure(d, it)?;
    if json {
        let text = serde_json::to_string_pretty(&r).map_err(io::Error::other)?;
        println!("{text}");
    } else {
        print(&r);
    }
    // The SVM section reports its failure in the report; the run fails too.
    match &r.svm {
        bench_svm::SvmBench::Failed(e) => Err(io::Error::other(format!("svm: {e}"))),
        _ => Ok(()),
    }
}

fn measure(d: &Device, it: Iters) -> io::Result<Report> {
    // va(9) holds the asynchronous batch benchmark's 1,000 pages.
    common::check_va_range(d, va(4), va(10))?;
    let vm = d.vm_create()?;
    let queue = d.queue_create(vm, 0)?;
    let so = d.syncobj_create(false)?;
    let (cbo, csize) = nop_cmdbuf(d, vm)?;
    // Warm up the queue; the first job also puts the VM in an address-space
    // slot, so that the binds below take the live-VM path (LOCK, update,
    // FLUSH_RANGE, UNLOCK).
    for _ in 0..5 {
        submit_once(d, queue, csize, so)?;
    }
    let qcost = common::counters_query_cost(d)?;

    let fl = floor(d, it.floor)?;
    let mut binds = Vec::new();
    // The smallest bind is one page: 4 KiB, or the CPU page where it is
    // larger (binds are in CPU pages).
    let page = d.page_sizes()?.bind();
    for (size, label) in SIZES {
        let (size, label) = if size < page {
            (page, page_label(page))
        } else {
            (size, label)
        };
        binds.push(bind(d, vm, size, label, it.binds, &qcost)?);
    }
    let sub = submits(d, queue, csize, so, it.submits, &qcost)?;
    // Issue 15's binds: 4 KiB map vs null ioctl with the driver's profile,
    // asynchronous batches, and binds of another VM against this VM's jobs.
    let sync4k = bench_bind::sync_4k(d, vm, it.floor)?;
    let idle_vm = d.vm_create()?;
    let idle4k = bench_bind::sync_4k(d, idle_vm, it.binds)?;
    d.vm_destroy(idle_vm)?;
    let batch = bench_bind::async_batches(d, vm, 5)?;
    let interference = bench_bind::interference(d, queue, csize, so, 6, 20)?;
    let import = import_vs_create(d, vm, (it.binds / 4).max(3))?;
    let kmap_before = d.counters()?.kmap_user_bytes;
    let user = userptr_vs_copy(d, vm, queue, csize, so, (it.binds / 4).max(3))?;
    let kmap_after = d.counters()?.kmap_user_bytes;
    let st = d.queue_state(queue, false)?;
    let sb = sched_bench(d, vm, csize, so, it.submits.min(50))?;
    let lists = private_vs_ordinary(d, vm, queue, csize, so, it.submits.min(40))?;
    let svm = bench_svm::measure(d)?;

    d.vm_unmap(vm, va(4), page)?;
    d.gem_close(cbo)?;
    d.syncobj_destroy(so)?;
    d.queue_destroy(queue)?;
    d.vm_destroy(vm)?;

    let map32m = binds[2].map;
    Ok(Report {
        device: d.path().display().to_string(),
        iters: it,
        query_cost: qcost,
        floor: fl,
        binds,
        submit: sub,
        queue_failed_jobs: st.failed_jobs.into(),
        bind: bench_bind::BindBench {
            sync: sync4k,
            idle: idle4k,
            batch,
            map32m,
            interference,
        },
        import,
        userptr: user,
        kmap_user_bytes: [kmap_before, kmap_after],
        sched: sb,
        lists,
        svm,
    })
}

fn print(r: &Report) {
    let Report {
        device,
        iters: it,
        query_cost: qcost,
        floor: fl,
        binds,
        submit: sub,
        queue_failed_jobs,
        bind,
        import,
        userptr: user,
        kmap_user_bytes: [kmap_before, kmap_after],
        sched: sb,
        lists,
        svm,
    } = r;
    let (kmap_before, kmap_after) = (*kmap_before, *kmap_after);
    println!(
        "ferrite bench on {} (iterations: floor {}, binds {} per size, submits {})",
        device, it.floor, it.binds, it.submits
    );
    println!(
        "one DEV_QUERY COUNTERS costs {} MMIO reads, {} MMIO writes (subtracted from every delta below)",
        qcost.hw[common::MMIO_READS],
        qcost.hw[common::MMIO_WRITES]
    );
    println!();
    println!(
        "{:<34} {:>10} {:>10} {:>10} {:>12}",
        "latency", "mean us", "p50 us", "min us", "us/4K page"
    );
    let row = |name: &str, t: &Times, pages: Option<u64>| {
        println!(
            "{:<34} {:>10.1} {:>10.1} {:>10.1} {:>12}",
            name,
            t.mean,
            t.p50,
            t.min,
            pages.map_or(String::new(), |p| format!("{:.3}", t.mean / p as f64))
        );
    };
    row("null ioctl (DEV_QUERY INFO)", fl, None);
    for b in binds {
        let pages = b.size / ferrite::GPU_PAGE_SIZE;
        row(&format!("VM_BIND map {}", b.label), &b.map, Some(pages));
        row(&format!("VM_BIND unmap {}", b.label), &b.unmap, Some(pages));
    }
    row("SUBMIT ioctl (NOP job)", &sub.ioctl, None);
    row("NOP submit -> fence signalled", &sub.total, None);

    println!();
    println!(
        "{:<22} {:>10} {:>10} {:>12} {:>12}",
        "counters per call", "MMIO rd", "MMIO wr", "hw TLB inv", "drv flushes"
    );
    for b in binds {
        for (what, c) in [("map", &b.map_ctr), ("unmap", &b.unmap_ctr)] {
            println!(
                "{:<22} {:>10.2} {:>10.2} {:>12.2} {:>12.2}",
                format!("{what} {}", b.label),
                per(c.hw[common::MMIO_READS], b.n),
                per(c.hw[common::MMIO_WRITES], b.n),
                per(c.hw[common::TLB_INVALIDATIONS], b.n),
                per(c.tlb_flushes, b.n)
            );
        }
    }
    let c = &sub.ctr;
    println!(
        "{:<22} {:>10.2} {:>10.2} {:>12.2} {:>12.2}",
        "NOP submit",
        per(c.hw[common::MMIO_READS], sub.n),
        per(c.hw[common::MMIO_WRITES], sub.n),
        per(c.hw[common::TLB_INVALIDATIONS], sub.n),
        per(c.tlb_flushes, sub.n)
    );
    let irqs = per(c.hw[common::IRQS], sub.n);
    let reads = per(c.hw[common::MMIO_READS], sub.n);
    println!(
        "NOP submit also: {:.2} doorbells, {:.2} irqs, {:.2} commands (CALL + NOP + fence WRITE64), jobs {:.2}, queue failed jobs {}",
        per(c.hw[common::DOORBELLS], sub.n),
        irqs,
        per(c.hw[common::COMMANDS], sub.n),
        per(c.jobs_submitted, sub.n),
        queue_failed_jobs
    );

    let b4k = &binds[0];
    let b32m = &binds[2];
    let ratio = b4k.map.mean / fl.mean;
    println!();
    println!("ratios:");
    println!(
        "  4 KiB map / null ioctl      {:.2}x (mean), {:.2}x (p50)",
        ratio,
        b4k.map.p50 / fl.p50
    );
    println!(
        "  4 KiB unmap / null ioctl    {:.2}x (mean)",
        b4k.unmap.mean / fl.mean
    );
    println!(
        "  32 MiB map / 4 KiB map      {:.1}x for {}x the pages",
        b32m.map.mean / b4k.map.mean,
        b32m.size / b4k.size
    );
    println!(
        "  NOP submit->signal / null   {:.1}x",
        sub.total.mean / fl.mean
    );

    // Goals.
    // A map into unmapped VA adds entries only: the TLB caches no invalid
    // translations, so it needs no invalidation. An unmap needs exactly one.
    let inv_ok = binds.iter().all(|b| {
        b.map_ctr.hw[common::TLB_INVALIDATIONS] == 0
            && b.map_ctr.tlb_flushes == 0
            && b.unmap_ctr.hw[common::TLB_INVALIDATIONS] == b.n as i64
            && b.unmap_ctr.tlb_flushes == b.n as i64
    });
    let inv_desc: Vec<String> = binds
        .iter()
        .map(|b| {
            format!(
                "{} map {:.2}/unmap {:.2}",
                b.label,
                per(b.map_ctr.hw[common::TLB_INVALIDATIONS], b.n),
                per(b.unmap_ctr.hw[common::TLB_INVALIDATIONS], b.n)
            )
        })
        .collect();
    let submit_path_reads = reads - irqs;
    println!();
    println!("goals:");
    println!("  (4 KiB and 32 MiB bind goals: see \"binds\" below)");
    println!(
        "  NOP submit->signal <= 20 us         {:>9.1} us            {}",
        sub.total.mean,
        verdict(sub.total.mean <= 20.0)
    );
    println!(
        "  <= 1 range invalidation per bind (1 per unmap, 0 per fresh map)\n      {}   {}",
        inv_desc.join(", "),
        verdict(inv_ok)
    );
    println!(
        "  zero MMIO reads on submit fast path {:>9.2} reads/submit  {}",
        submit_path_reads,
        verdict(submit_path_reads.abs() < 0.005)
    );
    println!(
        "    measured {reads:.2} MMIO reads per submit; {irqs:.2} per submit are the job IRQ handler's JOB_IRQ_STATUS read (one per interrupt), {submit_path_reads:.2} remain for the submit path"
    );
    match &import {
        Some((imp, cre)) => {
            let r = imp.mean / cre.mean;
            println!(
                "  64 MiB dma-buf import+bind <= 2x BO create+bind\n      import (udmabuf) + bind {:.1} us, create + bind {:.1} us: {:.2}x   {}",
                imp.mean,
                cre.mean,
                r,
                verdict(r <= 2.0)
            );
        }
        None => println!("  64 MiB dma-buf import+bind: not measured (no /dev/udmabuf)"),
    }
    let r = user.userptr.mean / user.copy.mean;
    println!(
        "  64 MiB userptr bind <= 0.1x copy into a BO + bind\n      userptr bind {:.1} us, BO create + copy + bind {:.1} us: {:.3}x   {}",
        user.userptr.mean,
        user.copy.mean,
        r,
        verdict(r <= 0.1)
    );
    println!(
        "  lazy cache maintenance: a userptr bind never used costs only the bind; the first job after it\n      pays {:.1} us more than a NOP job ({:.1} us vs {:.1} us: revalidation + dma_sync_sgtable_for_device of 64 MiB)",
        user.first_job.mean - user.nop_job.mean,
        user.first_job.mean,
        user.nop_job.mean
    );
    println!(
        "  kernel mappings of user memory during the userptr benchmark: {} -> {} bytes   {}",
        kmap_before,
        kmap_after,
        verdict(kmap_before == 0 && kmap_after == 0)
    );
    match &lists {
        Some((p, o)) => {
            let r = p.mean / o.mean;
            println!(
                "  SUBMIT listing {LIST_BOS} VM-private BOs <= 0.2x listing {LIST_BOS} ordinary BOs\n      private {:.1} us, ordinary {:.1} us (mean; p50 {:.1} vs {:.1}): {:.3}x   {}",
                p.mean,
                o.mean,
                p.p50,
                o.p50,
                r,
                verdict(r <= 0.2)
            );
        }
        None => println!("  SUBMIT with VM-private BOs: not measured (interface older than 0.4)"),
    }
    bench_bind::print(bind);
    println!();
    println!("scheduler:");
    let one = sb.one.p50;
    match sb.floor {
        Some((mean, p50)) => {
            let r = one / p50;
            println!(
                "  platform floor (1 register write + 1 interrupt to a threaded handler, debugfs irq_roundtrip, median of 5 rounds of 64): {mean:.1} us mean, {p50:.1} us p50"
            );
            println!(
                "  NOP submit -> signal / floor <= 1.5x   {:>9.2}x ({one:.1} us / {p50:.1} us, p50)   {}",
                r,
                verdict(r <= 1.5)
            );
        }
        None => println!("  platform floor: not measured (no debugfs)"),
    }
    let r = sb.busy_high.p50 / one;
    println!(
        "  NOP submit -> signal with 64 queues holding a job, HIGH queue / one queue <= 2x\n      {:.1} us vs {one:.1} us (p50): {r:.2}x   {}",
        sb.busy_high.p50,
        verdict(r <= 2.0)
    );
    println!(
        "  the same on a NORMAL queue (waits its turn behind 64 queues of its priority, {:.0} us timeslices): {:.1} us p50, {:.1} timeslices",
        sb.tick_us,
        sb.busy_normal.p50,
        sb.busy_normal.p50 / sb.tick_us
    );
    // The job interrupt's handler reads JOB_IRQ_STATUS and writes it back
    // (acknowledge) once per interrupt: the rest is the submission's.
    let mmio_w = per(c.hw[common::MMIO_WRITES], sub.n) - irqs;
    println!(
        "  device MMIO accesses per job on the submit fast path: {:.2} writes, {:.2} reads (goal: 1 write, 0 reads)   {}",
        mmio_w,
        submit_path_reads,
        verdict((mmio_w - 1.0).abs() < 0.005 && submit_path_reads.abs() < 0.005)
    );
    println!(
        "    plus, per interrupt, the handler's JOB_IRQ_STATUS read and acknowledging write ({irqs:.2} interrupts per job)"
    );
    println!(
        "  preemption latency (suspend request -> context saved, device time): {:.1} us mean, {:.1} us max",
        sb.suspend_avg_us, sb.suspend_max_us
    );
    println!(
        "  REALTIME NOP job behind 16 busy LOW queues: {:.1} us p50 = {:.3} timeslices",
        sb.rt.p50,
        sb.rt.p50 / sb.tick_us
    );
    println!(
        "  suspends for priority {} and at timeslice ends {} during these runs",
        sb.preemptions, sb.rotations
    );
    println!(
        "  an idle queue costs {:.0} bytes of kernel memory (no ring buffer, no DMA memory) <= 4096   {}",
        sb.queue_bytes,
        verdict(sb.queue_bytes > 0.0 && sb.queue_bytes <= 4096.0)
    );
    bench_svm::print(svm);
    println!(
        "  (latency goals are for real hardware / KVM; under TCG emulation compare the ratios and counters)"
    );
}
