// SPDX-License-Identifier: MIT
//! `ferrite bench`, shared virtual memory (mirror VMs, UAPI 0.7): what a
//! GPU page fault costs, from the device's own timestamps and split into
//! the driver's phases (debugfs `svm`); a 64 MiB GPU FILL of fresh memory
//! by faults against a userptr bind and a BO; and the pages the driver
//! holds (pins) meanwhile, which for faults must be none.
//!
//! A mirror queue's jobs signal no syncobj: each ends with a WRITE64 with
//! FLUSH of a sequence number to a page the CPU polls (a user fence),
//! reading QUEUE_GET_STATE meanwhile so that a failed job ends the wait.

use std::io;
use std::time::{Duration, Instant};

use serde::Serialize;

use ferrite::cmds::write64;
use ferrite::{uapi, Cmds, Device, SyncOp};

use super::bench::{debugfs_path, field, verdict};
use super::common::{va, Times};

/// Samples of each kind of fault.
const SAMPLES: usize = 50;
/// The FILL benchmark's size, and its rounds of each method (alternating).
const FILL_SIZE: u64 = 64 << 20;
const FILL_ROUNDS: usize = 3;
const FILL_PATTERN: u32 = 0x5f11_f111;
const SZ_2M: u64 = 2 << 20;
/// How long a job may run before the benchmark gives up on it (the
/// queues' job timeout is the longest the driver takes, 60 s).
const JOB_TIMEOUT: Duration = Duration::from_secs(60);
const QUEUE_TIMEOUT_MS: u32 = 60_000;
/// `MADV_COLLAPSE` (Linux 6.1), which the libc crate may not have.
const MADV_COLLAPSE: libc::c_int = 25;

/// Private anonymous memory, fresh (its pages come with their first use),
/// unmapped on drop.
struct Region {
    ptr: *mut u8,
    len: usize,
}

impl Region {
    /// `len` bytes at an address aligned to `align` (a power of two, a
    /// multiple of the CPU page) below `end`, the mirrored range's end:
    /// where the kernel puts them, or lower, with a hint and
    /// `MAP_FIXED_NOREPLACE`, where that is above `end` (arm64 with 48-bit
    /// addresses places mappings above the GPU's user range).
    fn new(len: usize, align: usize, end: u64) -> io::Result<Region> {
        let total = len + align;
        let p = super::bench::mmap_below(total, end, 0)?;
        let raw = p as usize;
        let start = (raw + align - 1) & !(align - 1);
        let tail = raw + total - (start + len);
        // SAFETY: the parts of the mapping just made outside
        // [start, start + len), not used.
        unsafe {
            if start > raw {
                libc::munmap(raw as *mut libc::c_void, start - raw);
            }
            if tail > 0 {
                libc::munmap((start + len) as *mut libc::c_void, tail);
            }
        }
        Ok(Region {
            ptr: start as *mut u8,
            len,
        })
    }

    fn addr(&self) -> u64 {
        self.ptr as u64
    }

    fn madvise(&self, off: usize, len: usize, advice: libc::c_int) -> io::Result<()> {
        assert!(off + len <= self.len);
        // SAFETY: advice on a range of the region's own mapping.
        if unsafe { libc::madvise(self.ptr.add(off).cast(), len, advice) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn mprotect(&self, off: usize, len: usize, prot: libc::c_int) -> io::Result<()> {
        assert!(off + len <= self.len);
        // SAFETY: a range of the region's own mapping, which nothing
        // accesses while it is not readable and writable.
        if unsafe { libc::mprotect(self.ptr.add(off).cast(), len, prot) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Write `byte` into every CPU page of [off, off + len), so that the
    /// pages are present.
    fn touch(&self, off: usize, len: usize, byte: u8) {
        assert!(off + len <= self.len);
        let page = ferrite::cpu_page_size() as usize;
        for o in (off..off + len).step_by(page) {
            // SAFETY: inside the region, readable and writable.
            unsafe { std::ptr::write_volatile(self.ptr.add(o), byte) };
        }
    }

    /// Read the u64 at `off`, which the GPU may have written.
    fn read_u64(&self, off: usize) -> u64 {
        assert!(off + 8 <= self.len && off & 7 == 0);
        // SAFETY: inside the region and aligned; a volatile read, as the
        // device writes the memory.
        unsafe { std::ptr::read_volatile(self.ptr.add(off).cast::<u64>()) }
    }

    fn read_u32(&self, off: usize) -> u32 {
        assert!(off + 4 <= self.len && off & 3 == 0);
        // SAFETY: as read_u64.
        unsafe { std::ptr::read_volatile(self.ptr.add(off).cast::<u32>()) }
    }

    fn write(&self, off: usize, src: &[u8]) {
        assert!(off + src.len() <= self.len);
        // SAFETY: inside the region, which `src` (a Rust borrow) cannot
        // overlap.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.add(off), src.len()) };
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: the region's own mapping, not used after this.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// A queue of a mirror VM, with its user fence and its command memory
/// (pages of their own: the device cache writes back whole 4 KiB lines,
/// so nothing the CPU writes shares a page with what a job writes).
struct MirrorQueue<'a> {
    d: &'a Device,
    id: u32,
    fence: Region,
    cmd: Region,
    seq: u64,
}

impl<'a> MirrorQueue<'a> {
    fn new(d: &'a Device, vm: u32, end: u64) -> io::Result<MirrorQueue<'a>> {
        let page = ferrite::cpu_page_size() as usize;
        let fence = Region::new(page, page, end)?;
        let cmd = Region::new(64 << 10, page, end)?;
        let id = d.queue_create(vm, QUEUE_TIMEOUT_MS)?;
        Ok(MirrorQueue {
            d,
            id,
            fence,
            cmd,
            seq: 0,
        })
    }

    /// Run `c`, ended with the user fence, and wait for it: the time from
    /// SUBMIT to the CPU seeing the fence.
    fn run(&mut self, c: &Cmds) -> io::Result<Duration> {
        let mut c = c.clone();
        self.seq += 1;
        c.write64(self.fence.addr(), self.seq, write64::FLUSH);
        let bytes = c.to_bytes();
        if bytes.len() > self.cmd.len {
            return Err(io::Error::other(
                "a mirror job longer than its command memory",
            ));
        }
        self.cmd.write(0, &bytes);
        let t = Instant::now();
        self.d
            .submit(self.id, self.cmd.addr(), c.size(), &[], &[])?;
        loop {
            for _ in 0..16 {
                if self.fence.read_u64(0) >= self.seq {
                    return Ok(t.elapsed());
                }
                // Nap rather than spin: the faults are served by kernel
                // work on the same (few) CPUs.
                std::thread::sleep(Duration::from_micros(50));
            }
            if self.d.queue_state(self.id, false)?.failed_jobs != 0 {
                let s = self.d.queue_state(self.id, true)?;
                return Err(io::Error::other(format!(
                    "a mirror VM job failed: queue state {}, error {}, fault at {:#x} (status {:#x})",
                    s.state, s.error, s.fault_addr, s.fault_status
                )));
            }
            if t.elapsed() > JOB_TIMEOUT {
                return Err(io::Error::other(format!(
                    "a mirror VM job wrote no user fence in {} s",
                    JOB_TIMEOUT.as_secs()
                )));
            }
        }
    }
}

impl Drop for MirrorQueue<'_> {
    fn drop(&mut self) {
        let _ = self.d.queue_destroy(self.id);
    }
}

/// The figures of debugfs `svm` this benchmark uses.
#[derive(Debug, Clone, Copy, Default)]
struct Svm {
    faults: u64,
    pages: u64,
    blocks_2m: u64,
    /// ns_dispatch, ns_get_pages, ns_map, ns_resume.
    ns: [u64; 4],
}

const NS_KEYS: [&str; 4] = ["ns_dispatch", "ns_get_pages", "ns_map", "ns_resume"];

fn svm_text(d: &Device) -> Option<String> {
    std::fs::read_to_string(debugfs_path(d, "svm")?).ok()
}

fn svm_stats(d: &Device) -> Option<Svm> {
    let t = svm_text(d)?;
    let mut s = Svm {
        faults: field(&t, "faults")? as u64,
        pages: field(&t, "pages")? as u64,
        blocks_2m: field(&t, "blocks_2m")? as u64,
        ns: [0; 4],
    };
    for (v, k) in s.ns.iter_mut().zip(NS_KEYS) {
        *v = field(&t, k)? as u64;
    }
    Some(s)
}

impl Svm {
    fn since(&self, b: &Svm) -> Svm {
        let mut ns = [0; 4];
        for (i, v) in ns.iter_mut().enumerate() {
            *v = self.ns[i].wrapping_sub(b.ns[i]);
        }
        Svm {
            faults: self.faults.wrapping_sub(b.faults),
            pages: self.pages.wrapping_sub(b.pages),
            blocks_2m: self.blocks_2m.wrapping_sub(b.blocks_2m),
            ns,
        }
    }

    fn add(&mut self, o: &Svm) {
        self.faults += o.faults;
        self.pages += o.pages;
        self.blocks_2m += o.blocks_2m;
        for (a, b) in self.ns.iter_mut().zip(o.ns) {
            *a += b;
        }
    }
}

/// Reset debugfs `svm`'s pages_held_peak to the pages held now, and
/// return those (`None` without debugfs).
fn reset_peak(d: &Device) -> io::Result<Option<u64>> {
    let Some(p) = debugfs_path(d, "svm") else {
        return Ok(None);
    };
    std::fs::write(&p, "0")
        .map_err(|e| io::Error::new(e.kind(), format!("writing to {}: {e}", p.display())))?;
    Ok(svm_text(d)
        .and_then(|t| field(&t, "pages_held"))
        .map(|v| v as u64))
}

/// The pages held at peak since `reset_peak` returned `held`, beyond those.
fn peak_held(d: &Device, held: Option<u64>) -> Option<u64> {
    let peak = field(&svm_text(d)?, "pages_held_peak")? as u64;
    Some(peak.saturating_sub(held?))
}

/// `nr_foll_pin_acquired` and `nr_foll_pin_released` of /proc/vmstat.
fn foll_pins() -> Option<(u64, u64)> {
    let t = std::fs::read_to_string("/proc/vmstat").ok()?;
    Some((
        field(&t, "nr_foll_pin_acquired")? as u64,
        field(&t, "nr_foll_pin_released")? as u64,
    ))
}

/// Pins taken, and pins taken minus pins released, between two readings.
fn pins_between(a: Option<(u64, u64)>, b: Option<(u64, u64)>) -> Option<(i64, i64)> {
    let ((a0, a1), (b0, b1)) = (a?, b?);
    let acquired = b0.wrapping_sub(a0) as i64;
    Some((acquired, acquired - b1.wrapping_sub(a1) as i64))
}

/// The AnonHugePages of the mapping holding `addr` in /proc/self/smaps, kB.
fn anon_huge_kb(addr: u64) -> Option<u64> {
    smaps_anon_huge_kb(&std::fs::read_to_string("/proc/self/smaps").ok()?, addr)
}

/// The AnonHugePages of the mapping holding `addr` in smaps `text`, kB.
fn smaps_anon_huge_kb(text: &str, addr: u64) -> Option<u64> {
    let mut inside = false;
    for line in text.lines() {
        let range = line.split(' ').next().unwrap_or("");
        if let Some((a, b)) = range.split_once('-') {
            if let (Ok(a), Ok(b)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) {
                inside = a <= addr && addr < b;
                continue;
            }
        }
        if inside {
            if let Some(v) = line.strip_prefix("AnonHugePages:") {
                return v.trim().trim_end_matches("kB").trim().parse().ok();
            }
        }
    }
    None
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// One CPU page alone in its VMA: the chunk is that page.
    Page,
    /// 2 MiB of 4 KiB pages (MADV_NOHUGEPAGE): one fault maps all 512.
    Pages2m,
    /// A 2 MiB transparent huge page: one fault maps one block.
    Thp,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Page => "4 KiB page (a 1-page VMA)",
            Kind::Pages2m => "2 MiB chunk of 4 KiB pages",
            Kind::Thp => "2 MiB THP (one 2 MiB block)",
        }
    }
}

/// One kind of fault's figures.
#[derive(Debug, Clone, Serialize)]
pub struct FaultLatency {
    pub kind: &'static str,
    pub samples: usize,
    /// Fault service latency (device time): TIMESTAMP b - TIMESTAMP a
    /// around the faulting WRITE64, minus the p50 of the same job on a
    /// mapped address; us.
    pub p50_us: f64,
    pub p90_us: f64,
    pub mean_us: f64,
    /// That job on a mapped address, p50, us.
    pub baseline_us: f64,
    /// Faults the driver resolved per sample (1 expected), CPU pages and
    /// 2 MiB blocks it mapped per fault; `None` without debugfs.
    pub faults_per_sample: Option<f64>,
    pub pages_per_fault: Option<f64>,
    pub blocks_per_fault: Option<f64>,
    /// Per resolved fault, us: IRQ to work, hmm_range_fault, DMA map and
    /// page table and TLB flush, RESUME; `None` without debugfs.
    pub split_us: Option<[f64; 4]>,
    /// Samples whose memory was a THP (smaps AnonHugePages), THP case.
    pub thp_samples: usize,
}

/// The target of one sample: a fresh region of `kind`, CPU-touched, and
/// the address the GPU writes first.
fn target(kind: Kind, end: u64) -> io::Result<(Region, u64, bool)> {
    let page = ferrite::cpu_page_size() as usize;
    match kind {
        Kind::Page => {
            let r = Region::new(3 * page, page, end)?;
            // Neighbours without access: the middle page is a VMA alone.
            r.mprotect(0, page, libc::PROT_NONE)?;
            r.mprotect(2 * page, page, libc::PROT_NONE)?;
            r.touch(page, page, 1);
            let a = r.addr() + page as u64 + 0x40;
            Ok((r, a, false))
        }
        Kind::Pages2m | Kind::Thp => {
            let r = Region::new(SZ_2M as usize, SZ_2M as usize, end)?;
            let advice = if kind == Kind::Thp {
                libc::MADV_HUGEPAGE
            } else {
                libc::MADV_NOHUGEPAGE
            };
            r.madvise(0, r.len, advice)?;
            r.touch(0, r.len, 1);
            let mut thp = false;
            if kind == Kind::Thp {
                thp = anon_huge_kb(r.addr()).is_some_and(|kb| kb >= 2048);
                if !thp && r.madvise(0, r.len, MADV_COLLAPSE).is_ok() {
                    thp = anon_huge_kb(r.addr()).is_some_and(|kb| kb >= 2048);
                }
            }
            let a = r.addr() + 0x40;
            Ok((r, a, thp))
        }
    }
}

/// TIMESTAMP ts; WRITE64 at `at`; TIMESTAMP ts + 8: the device time of
/// the WRITE64, in ns.
fn timed_write(q: &mut MirrorQueue<'_>, ts: &Region, at: u64) -> io::Result<f64> {
    let mut c = Cmds::new();
    c.timestamp(ts.addr())
        .write64(at, 1, 0)
        .timestamp(ts.addr() + 8);
    q.run(&c)?;
    Ok(ts.read_u64(8).wrapping_sub(ts.read_u64(0)) as f64)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// `SAMPLES` faults of `kind`, each on fresh memory, each beside the same
/// job on a mapped address (the baseline).
fn fault_latency(
    d: &Device,
    q: &mut MirrorQueue<'_>,
    ts: &Region,
    kind: Kind,
    end: u64,
) -> io::Result<FaultLatency> {
    let mapped = ts.addr() + 64;
    let (mut fault_ns, mut base_ns) = (Vec::new(), Vec::new());
    let mut svm: Option<Svm> = Some(Svm::default());
    let mut thp_samples = 0;
    for _ in 0..SAMPLES {
        let (r, at, thp) = target(kind, end)?;
        thp_samples += usize::from(thp);
        let before = svm_stats(d);
        let f = timed_write(q, ts, at)?;
        let after = svm_stats(d);
        match (before, after, svm.as_mut()) {
            (Some(b), Some(a), Some(s)) => s.add(&a.since(&b)),
            _ => svm = None,
        }
        fault_ns.push(f);
        base_ns.push(timed_write(q, ts, mapped)?);
        drop(r);
    }
    base_ns.sort_by(f64::total_cmp);
    let base = percentile(&base_ns, 0.5);
    let mut lat: Vec<f64> = fault_ns.iter().map(|f| (f - base) / 1000.0).collect();
    lat.sort_by(f64::total_cmp);
    let n = SAMPLES as f64;
    let per_fault = |s: &Svm, v: u64| {
        if s.faults == 0 {
            0.0
        } else {
            v as f64 / s.faults as f64
        }
    };
    Ok(FaultLatency {
        kind: kind.label(),
        samples: SAMPLES,
        p50_us: percentile(&lat, 0.5),
        p90_us: percentile(&lat, 0.9),
        mean_us: lat.iter().sum::<f64>() / n,
        baseline_us: base / 1000.0,
        faults_per_sample: svm.map(|s| s.faults as f64 / n),
        pages_per_fault: svm.map(|s| per_fault(&s, s.pages)),
        blocks_per_fault: svm.map(|s| per_fault(&s, s.blocks_2m)),
        split_us: svm.map(|s| s.ns.map(|ns| per_fault(&s, ns) / 1000.0)),
        thp_samples,
    })
}

/// The 64 MiB FILL three ways.
#[derive(Debug, Clone, Serialize)]
pub struct Fill {
    /// FILL of fresh memory in a mirror VM (SUBMIT to user fence).
    pub faults: Times,
    /// USERPTR bind of fresh memory + FILL in an ordinary VM (bind to
    /// fence).
    pub userptr: Times,
    /// BO create + bind + FILL (create to fence).
    pub bo: Times,
    /// debugfs `svm` pages_held_peak over the fills by faults and by
    /// userptr (the peak reset before each), beyond the pages held when
    /// it was reset (the largest of the rounds); `None` without debugfs.
    pub peak_held_faults: Option<u64>,
    pub peak_held_userptr: Option<u64>,
    /// /proc/vmstat nr_foll_pin_acquired over one fill, and acquired minus
    /// released (pins still held when the fill ended): by faults, by
    /// userptr (before its unbind).
    pub pins_faults: Option<(i64, i64)>,
    pub pins_userptr: Option<(i64, i64)>,
}

fn check_fill(r: &Region) -> io::Result<()> {
    let page = ferrite::cpu_page_size() as usize;
    for off in (0..r.len).step_by(page).chain([r.len - 4]) {
        let v = r.read_u32(off);
        if v != FILL_PATTERN {
            return Err(io::Error::other(format!(
                "the GPU's FILL left {v:#x} at {:#x}, expected {FILL_PATTERN:#x}",
                r.addr() + off as u64
            )));
        }
    }
    Ok(())
}

fn fill(d: &Device, q: &mut MirrorQueue<'_>, end: u64) -> io::Result<Fill> {
    let page = d.page_sizes()?.bind();
    let vm = d.vm_create()?;
    let queue = d.queue_create(vm, QUEUE_TIMEOUT_MS)?;
    let so = d.syncobj_create(false)?;
    let cbo = d.gem_create(page)?;
    let mut cmd = d.mmap(cbo)?;
    d.vm_map(vm, cbo, 0, va(4), page, uapi::DRM_FERRITE_VM_BIND_READONLY)?;
    // The job: one FILL (6 dwords), which each round writes into `cmd`.
    let run_ordinary = |d: &Device| -> io::Result<()> {
        d.submit(queue, va(4), 6 * 4, &[SyncOp::signal(so)], &[])?;
        if !d.syncobj_wait(&[so], JOB_TIMEOUT)? {
            return Err(io::Error::other("a 64 MiB FILL did not signal within 60 s"));
        }
        match d.syncobj_status(so)? {
            1 => Ok(()),
            e => Err(io::Error::other(format!("a 64 MiB FILL failed: {e}"))),
        }
    };
    let (mut tf, mut tu, mut tb) = (vec![], vec![], vec![]);
    let (mut peak_f, mut peak_u) = (Some(0u64), Some(0u64));
    let (mut pins_f, mut pins_u) = (None, None);
    for _ in 0..FILL_ROUNDS {
        // By faults: nothing bound, the pages come with the GPU's faults.
        let r = Region::new(FILL_SIZE as usize, SZ_2M as usize, end)?;
        let mut c = Cmds::new();
        c.fill(r.addr(), FILL_SIZE, FILL_PATTERN);
        let held = reset_peak(d)?;
        let p0 = foll_pins();
        tf.push(q.run(&c)?);
        let p1 = foll_pins();
        peak_f = peak_f.zip(peak_held(d, held)).map(|(a, b)| a.max(b));
        pins_f = pins_between(p0, p1);
        check_fill(&r)?;
        drop(r);

        // By userptr: the bind faults the pages in (and holds them).
        let r = Region::new(FILL_SIZE as usize, SZ_2M as usize, end)?;
        let mut c = Cmds::new();
        c.fill(r.addr(), FILL_SIZE, FILL_PATTERN);
        cmd.write(0, &c.to_bytes());
        let held = reset_peak(d)?;
        let p0 = foll_pins();
        let t = Instant::now();
        d.vm_map_user(vm, r.addr(), FILL_SIZE, 0)?;
        run_ordinary(d)?;
        tu.push(t.elapsed());
        let p1 = foll_pins();
        peak_u = peak_u.zip(peak_held(d, held)).map(|(a, b)| a.max(b));
        pins_u = pins_between(p0, p1);
        check_fill(&r)?;
        d.vm_unmap(vm, r.addr(), FILL_SIZE)?;
        drop(r);

        // By BO: create, bind (which allocates the pages), FILL.
        let mut c = Cmds::new();
        c.fill(va(16), FILL_SIZE, FILL_PATTERN);
        cmd.write(0, &c.to_bytes());
        let t = Instant::now();
        let bo = d.gem_create(FILL_SIZE)?;
        d.vm_map(vm, bo, 0, va(16), FILL_SIZE, 0)?;
        run_ordinary(d)?;
        tb.push(t.elapsed());
        d.vm_unmap(vm, va(16), FILL_SIZE)?;
        d.gem_close(bo)?;
    }
    d.vm_unmap(vm, va(4), page)?;
    drop(cmd);
    d.gem_close(cbo)?;
    d.syncobj_destroy(so)?;
    d.queue_destroy(queue)?;
    d.vm_destroy(vm)?;
    Ok(Fill {
        faults: Times::of(&tf),
        userptr: Times::of(&tu),
        bo: Times::of(&tb),
        peak_held_faults: peak_f,
        peak_held_userptr: peak_u,
        pins_faults: pins_f,
        pins_userptr: pins_u,
    })
}

/// The SVM section of the report.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SvmBench {
    /// Not measured: why.
    Skipped(String),
    /// Measuring failed: how (the run then exits with an error).
    Failed(String),
    Measured {
        latency: Vec<FaultLatency>,
        fill: Fill,
    },
}

fn measure_svm(d: &Device) -> io::Result<SvmBench> {
    let vm = d.vm_create_mirror()?;
    let result = (|| {
        let mut q = MirrorQueue::new(d, vm.id, vm.end)?;
        let page = ferrite::cpu_page_size() as usize;
        let ts = Region::new(page, page, vm.end)?;
        // Warm up: the command memory, the fence and the timestamps mapped.
        for _ in 0..5 {
            timed_write(&mut q, &ts, ts.addr() + 64)?;
        }
        let mut latency = Vec::new();
        for kind in [Kind::Page, Kind::Pages2m, Kind::Thp] {
            latency.push(fault_latency(d, &mut q, &ts, kind, vm.end)?);
        }
        let fill = fill(d, &mut q, vm.end)?;
        Ok(SvmBench::Measured { latency, fill })
    })();
    d.vm_destroy(vm.id)?;
    result
}

/// Measure, unless GPU 0 cannot mirror; a failure is reported, not
/// returned, so that the rest of the report still prints.
pub fn measure(d: &Device) -> io::Result<SvmBench> {
    if d.uapi_features()? & u64::from(uapi::DRM_FERRITE_UAPI_MIRROR) == 0 {
        return Ok(SvmBench::Skipped(
            "the GPU cannot mirror (DRM_FERRITE_UAPI_MIRROR clear: its DMA is bounced, \
             does not reach all memory or is not coherent, or the driver predates 0.7)"
                .into(),
        ));
    }
    Ok(measure_svm(d).unwrap_or_else(|e| SvmBench::Failed(e.to_string())))
}

fn opt(v: Option<f64>, prec: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.prec$}"))
}

pub fn print(s: &SvmBench) {
    println!();
    println!("shared virtual memory (mirror VMs, UAPI 0.7):");
    let (latency, f) = match s {
        SvmBench::Skipped(why) => {
            println!("  not measured: {why}");
            return;
        }
        SvmBench::Failed(e) => {
            println!("  FAILED: {e}");
            return;
        }
        SvmBench::Measured { latency, fill } => (latency, fill),
    };
    if let Some(l) = latency.first() {
        println!(
            "  GPU fault service latency, device time: TIMESTAMP; WRITE64 to memory the GPU never touched (the CPU did); TIMESTAMP,\n  minus the same job on a mapped address ({:.1} us p50); {} samples each, fresh memory each",
            l.baseline_us, l.samples
        );
    }
    println!(
        "  {:<30} {:>8} {:>8} {:>8} {:>7} {:>7} {:>7}   per fault, us: {:>8} {:>9} {:>7} {:>7}",
        "",
        "p50 us",
        "p90 us",
        "mean us",
        "faults",
        "pages",
        "blocks",
        "dispatch",
        "get_pages",
        "map",
        "resume"
    );
    for l in latency {
        let split = l
            .split_us
            .map(|s| format!("{:>8.1} {:>9.1} {:>7.1} {:>7.1}", s[0], s[1], s[2], s[3]))
            .unwrap_or_else(|| "(no debugfs svm)".into());
        println!(
            "  {:<30} {:>8.1} {:>8.1} {:>8.1} {:>7} {:>7} {:>7}                  {split}",
            l.kind,
            l.p50_us,
            l.p90_us,
            l.mean_us,
            opt(l.faults_per_sample, 2),
            opt(l.pages_per_fault, 0),
            opt(l.blocks_per_fault, 2),
        );
        if l.kind == Kind::Thp.label() && l.thp_samples < l.samples {
            println!(
                "    (only {} of {} samples were THPs, by smaps AnonHugePages)",
                l.thp_samples, l.samples
            );
        }
    }
    let ms = |t: &Times| t.mean / 1000.0;
    println!(
        "  GPU FILL of 64 MiB of fresh memory, mean (p50) of {FILL_ROUNDS}: by faults (mirror VM) {:.1} ms ({:.1}), userptr bind + FILL {:.1} ms ({:.1}), BO create + bind + FILL {:.1} ms ({:.1})",
        ms(&f.faults),
        f.faults.p50 / 1000.0,
        ms(&f.userptr),
        f.userptr.p50 / 1000.0,
        ms(&f.bo),
        f.bo.p50 / 1000.0
    );
    let ru = f.faults.mean / f.userptr.mean;
    println!(
        "  64 MiB FILL by faults <= 1.5x by userptr (bind included)   {ru:.2}x   {}",
        verdict(ru <= 1.5)
    );
    println!(
        "  64 MiB FILL by faults / by BO (create + bind included)      {:.2}x",
        f.faults.mean / f.bo.mean
    );
    match f.peak_held_faults {
        Some(p) => println!(
            "  pages held (pinned or referenced) by the driver at peak during the fill by faults == 0   {p}   {}",
            verdict(p == 0)
        ),
        None => println!("  pages held during the fill by faults: not measured (no debugfs svm)"),
    }
    let pins = |p: Option<(i64, i64)>| {
        p.map_or("not measured".into(), |(a, h)| {
            format!("{a} FOLL_PIN pins taken, {h} still held at the end")
        })
    };
    println!(
        "    for contrast, the userptr fill: {} pages held at peak; /proc/vmstat: faults {}, userptr {}",
        f.peak_held_userptr
            .map_or("not measured".into(), |p| p.to_string()),
        pins(f.pins_faults),
        pins(f.pins_userptr)
    );
    if let Some((a, _)) = f.pins_faults {
        println!(
            "  no FOLL_PIN pin taken by the fill by faults   {a}   {}",
            verdict(a == 0)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smaps_anon_huge_pages_of_the_mapping_holding_an_address() {
        let text = "\
7f0000000000-7f0000400000 rw-p 00000000 00:00 0 
Size:               4096 kB
AnonHugePages:      2048 kB
VmFlags: rd wr mr mw me ac hg
7f0000400000-7f0000600000 rw-p 00000000 00:00 0 
Size:               2048 kB
AnonHugePages:         0 kB
";
        assert_eq!(smaps_anon_huge_kb(text, 0x7f00_0020_0000), Some(2048));
        assert_eq!(smaps_anon_huge_kb(text, 0x7f00_0040_0000), Some(0));
        assert_eq!(smaps_anon_huge_kb(text, 0x7f00_0060_0000), None);
    }

    #[test]
    fn percentiles_of_sorted_samples() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 6.0);
        assert_eq!(percentile(&v, 0.9), 9.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn pins_taken_and_still_held() {
        assert_eq!(pins_between(Some((10, 4)), Some((30, 9))), Some((20, 15)));
        assert_eq!(pins_between(None, Some((1, 1))), None);
    }
}
