// SPDX-License-Identifier: MIT
//! `ferrite bench`, the binds of issue 15: a synchronous 4 KiB map against
//! a null ioctl with the driver's per-phase profile (debugfs
//! `bind_profile`), 1,000 4 KiB maps and unmaps in one asynchronous
//! VM_BIND, and what one VM's binds do to another VM's job latency.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use ferrite::{uapi, BindOp, Device, SyncOp};

use super::bench::{debugfs_path, field, nop_cmdbuf, submit_once, verdict};
use super::common::{va, Times};

/// Null ioctls timed before each synchronous 4 KiB map/unmap pair.
const FLOOR_PER_PAIR: usize = 2;

/// The operations of the asynchronous batch benchmark.
const BATCH_OPS: usize = 1000;

/// The phases of debugfs `bind_profile`, in its order.
const PHASES: [&str; 5] = ["parse", "wait", "record", "apply", "cleanup"];

/// Totals of debugfs `bind_profile`: synchronous VM_BIND calls and the
/// nanoseconds of each phase.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Profile {
    pub calls: u64,
    /// By phase name in JSON.
    #[serde(serialize_with = "named_phases")]
    pub ns: [u64; 5],
}

impl Profile {
    fn parse(text: &str) -> Option<Profile> {
        let mut p = Profile {
            calls: field(text, "calls")? as u64,
            ns: [0; 5],
        };
        for (ns, name) in p.ns.iter_mut().zip(PHASES) {
            *ns = field(text, name)? as u64;
        }
        Some(p)
    }

    fn since(&self, before: &Profile) -> Profile {
        let mut d = Profile {
            calls: self.calls.wrapping_sub(before.calls),
            ns: [0; 5],
        };
        for (i, ns) in d.ns.iter_mut().enumerate() {
            *ns = self.ns[i].wrapping_sub(before.ns[i]);
        }
        d
    }

    fn add(&mut self, o: &Profile) {
        self.calls += o.calls;
        for (a, b) in self.ns.iter_mut().zip(o.ns) {
            *a += b;
        }
    }

    fn total(&self) -> u64 {
        self.ns.iter().sum()
    }
}

/// Synchronous 4 KiB map and unmap against the null ioctl, interleaved.
#[derive(Serialize)]
pub struct Sync4k {
    pub floor: Times,
    pub map: Times,
    pub unmap: Times,
    /// `bind_profile` over the maps and over the unmaps; `None` without
    /// debugfs.
    #[serde(serialize_with = "map_unmap")]
    pub profile: Option<(Profile, Profile)>,
}

fn named_phases<S: Serializer>(ns: &[u64; 5], s: S) -> Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(Some(ns.len()))?;
    for (n, v) in PHASES.iter().zip(ns) {
        m.serialize_entry(n, v)?;
    }
    m.end()
}

fn map_unmap<S: Serializer>(p: &Option<(Profile, Profile)>, s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct MapUnmap<'a> {
        map: &'a Profile,
        unmap: &'a Profile,
    }
    p.as_ref()
        .map(|(map, unmap)| MapUnmap { map, unmap })
        .serialize(s)
}

fn read_profile(path: Option<&std::path::Path>) -> io::Result<Option<Profile>> {
    let Some(p) = path else { return Ok(None) };
    let text = std::fs::read_to_string(p)?;
    Profile::parse(&text)
        .map(Some)
        .ok_or_else(|| io::Error::other(format!("cannot parse bind_profile: {text:?}")))
}

/// `n` synchronous 4 KiB map/unmap pairs at one VA, each after
/// FLOOR_PER_PAIR null ioctls (TCG's speed drifts within a run), with
/// `bind_profile` read around each call (not timed).
pub fn sync_4k(d: &Device, vm: u32, n: usize) -> io::Result<Sync4k> {
    // One page: 4 KiB, or the CPU page where binds need a larger one.
    let page = d.page_sizes()?.bind();
    let bo = d.gem_create(page)?;
    d.mmap(bo)?.touch_pages();
    let at = va(8);
    for _ in 0..5 {
        d.info()?;
        d.vm_map(vm, bo, 0, at, page, 0)?;
        d.vm_unmap(vm, at, page)?;
    }
    let prof = debugfs_path(d, "bind_profile");
    if let Some(p) = &prof {
        std::fs::write(p, "0")
            .map_err(|e| io::Error::new(e.kind(), format!("writing 0 to {}: {e}", p.display())))?;
    }
    let prof = prof.as_deref();
    let (mut tf, mut tm, mut tu) = (vec![], vec![], vec![]);
    let (mut pm, mut pu) = (Profile::default(), Profile::default());
    for _ in 0..n {
        for _ in 0..FLOOR_PER_PAIR {
            let s = Instant::now();
            d.info()?;
            tf.push(s.elapsed());
        }
        let p0 = read_profile(prof)?;
        let s = Instant::now();
        d.vm_map(vm, bo, 0, at, page, 0)?;
        tm.push(s.elapsed());
        let p1 = read_profile(prof)?;
        let s = Instant::now();
        d.vm_unmap(vm, at, page)?;
        tu.push(s.elapsed());
        let p2 = read_profile(prof)?;
        if let (Some(p0), Some(p1), Some(p2)) = (p0, p1, p2) {
            pm.add(&p1.since(&p0));
            pu.add(&p2.since(&p1));
        }
    }
    d.gem_close(bo)?;
    Ok(Sync4k {
        floor: Times::of(&tf),
        map: Times::of(&tm),
        unmap: Times::of(&tu),
        profile: prof.map(|_| (pm, pu)),
    })
}

/// One asynchronous VM_BIND of BATCH_OPS 4 KiB MAPs, and one of as many
/// UNMAPs: the ioctl's time and the time until the SIGNAL sync object
/// signalled, per batch.
#[derive(Serialize)]
pub struct Batch {
    pub floor: Times,
    /// The same operations in one synchronous VM_BIND each, with
    /// `bind_profile` over those calls (`None` without debugfs).
    pub sync_map: Times,
    pub sync_unmap: Times,
    #[serde(serialize_with = "map_unmap")]
    pub sync_profile: Option<(Profile, Profile)>,
    pub map_ioctl: Times,
    pub map_signal: Times,
    pub unmap_ioctl: Times,
    pub unmap_signal: Times,
}

/// `VM_BIND` of `ops` with DRM_FERRITE_VM_BIND_ASYNC signalling `so`:
/// (ioctl time, time until `so` signalled). A fence that signals an error
/// is an error.
fn async_bind(d: &Device, vm: u32, ops: &[BindOp], so: u32) -> io::Result<(Duration, Duration)> {
    let s = Instant::now();
    d.vm_bind_async(vm, ops, &[SyncOp::signal(so)])
        .map_err(|e| io::Error::new(e.kind(), format!("asynchronous VM_BIND: {e}")))?;
    let t_ioctl = s.elapsed();
    if !d.syncobj_wait(&[so], Duration::from_secs(30))? {
        return Err(io::Error::other(
            "an asynchronous VM_BIND did not signal within 30 s",
        ));
    }
    let t_signal = s.elapsed();
    let st = d.syncobj_status(so)?;
    if st < 0 {
        return Err(io::Error::other(format!(
            "an asynchronous VM_BIND's fence signalled error {}",
            io::Error::from_raw_os_error(-st)
        )));
    }
    Ok((t_ioctl, t_signal))
}

/// `rounds` batches of BATCH_OPS MAPs then UNMAPs (one warm-up round
/// first), 50 null ioctls before each; `None` before interface 0.5.
pub fn async_batches(d: &Device, vm: u32, rounds: usize) -> io::Result<Option<Batch>> {
    let page = d.page_sizes()?.bind();
    if d.uapi_features()? & u64::from(uapi::DRM_FERRITE_UAPI_ASYNC_BIND) == 0 {
        return Ok(None);
    }
    let bo = d.gem_create(BATCH_OPS as u64 * page)?;
    d.mmap(bo)?.touch_pages();
    let base = va(9);
    let maps: Vec<BindOp> = (0..BATCH_OPS as u64)
        .map(|i| BindOp::map(bo, i * page, base + i * page, page, 0))
        .collect();
    let unmaps: Vec<BindOp> = (0..BATCH_OPS as u64)
        .map(|i| BindOp::unmap(base + i * page, page))
        .collect();
    let so = d.syncobj_create(false)?;
    let prof = debugfs_path(d, "bind_profile");
    let prof = prof.as_deref();
    let (mut tf, mut mi, mut ms, mut ui, mut us) = (vec![], vec![], vec![], vec![], vec![]);
    let (mut sm, mut su) = (vec![], vec![]);
    let (mut pm, mut pu) = (Profile::default(), Profile::default());
    for r in 0..rounds + 1 {
        for _ in 0..50 {
            let s = Instant::now();
            d.info()?;
            tf.push(s.elapsed());
        }
        let (a, b) = async_bind(d, vm, &maps, so)?;
        let (c, e) = async_bind(d, vm, &unmaps, so)?;
        // The same operations, synchronously.
        let p0 = read_profile(prof)?;
        let s = Instant::now();
        d.vm_bind(vm, &maps, &[])?;
        let f = s.elapsed();
        let p1 = read_profile(prof)?;
        let s = Instant::now();
        d.vm_bind(vm, &unmaps, &[])?;
        let g = s.elapsed();
        let p2 = read_profile(prof)?;
        if r > 0 {
            mi.push(a);
            ms.push(b);
            ui.push(c);
            us.push(e);
            sm.push(f);
            su.push(g);
            if let (Some(p0), Some(p1), Some(p2)) = (p0, p1, p2) {
                pm.add(&p1.since(&p0));
                pu.add(&p2.since(&p1));
            }
        }
    }
    if !d.vm_usable(vm)? {
        return Err(io::Error::other(
            "VM_GET_STATE reports the VM unusable after the asynchronous batches",
        ));
    }
    d.syncobj_destroy(so)?;
    d.gem_close(bo)?;
    Ok(Some(Batch {
        floor: Times::of(&tf),
        sync_map: Times::of(&sm),
        sync_unmap: Times::of(&su),
        sync_profile: prof.map(|_| (pm, pu)),
        map_ioctl: Times::of(&mi),
        map_signal: Times::of(&ms),
        unmap_ioctl: Times::of(&ui),
        unmap_signal: Times::of(&us),
    }))
}

/// What VM A's thread does while VM B's jobs are timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    /// Nothing: the baseline.
    Quiet,
    /// A loop in userspace without system calls: what a busy CPU alone
    /// costs B (the guest has 2 CPUs, TCG runs them on the host's 2).
    Spin,
    /// Synchronous 4 KiB map/unmap pairs.
    SyncPairs,
    /// Asynchronous VM_BINDs of ASYNC_OPS 4 KiB MAPs then as many UNMAPs
    /// (signalling a sync object), waiting for the second.
    AsyncBatches,
}

const LOADS: [Load; 4] = [Load::Quiet, Load::Spin, Load::SyncPairs, Load::AsyncBatches];

/// Operations in each asynchronous VM_BIND of [`Load::AsyncBatches`].
const ASYNC_OPS: usize = 64;

enum Ack {
    Started,
    /// Bind operations done, in how long.
    Stopped(u64, Duration),
    Failed(io::Error),
}

/// VM B's NOP submit -> signal under each [`Load`] of VM A, and the bind
/// operations per second A did meanwhile.
pub struct Interference {
    pub b: [Times; 4],
    pub ops_per_s: [f64; 4],
    pub samples: usize,
}

/// VM A's loads, in the order of [`Interference::b`], as the report
/// names them.
const LOAD_NAMES: [&str; 4] = [
    "nothing",
    "a CPU-bound loop (no ioctls)",
    "synchronous 4 KiB map/unmap pairs",
    "asynchronous batches of 64 maps + 64 unmaps",
];

/// In JSON: the samples per load, and per load its name, VM B's job
/// latency and A's bind operations per second.
impl Serialize for Interference {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct LoadJson<'a> {
            load: &'a str,
            job: &'a Times,
            ops_per_s: f64,
        }
        #[derive(Serialize)]
        struct Loads<'a> {
            samples: usize,
            loads: Vec<LoadJson<'a>>,
        }
        Loads {
            samples: self.samples,
            loads: (0..LOAD_NAMES.len())
                .map(|i| LoadJson {
                    load: LOAD_NAMES[i],
                    job: &self.b[i],
                    ops_per_s: self.ops_per_s[i],
                })
                .collect(),
        }
        .serialize(s)
    }
}

/// VM A: its own file (as another process would have), VM, a 4 KiB BO and
/// a BO of ASYNC_OPS pages; a NOP job put the VM in an address-space slot
/// so that its binds take the live path (LOCK, FLUSH_RANGE, UNLOCK).
struct VmA {
    d: Device,
    vm: u32,
    queue: u32,
    cbo: ferrite::Bo,
    bo: ferrite::Bo,
    big: ferrite::Bo,
    so: u32,
}

impl VmA {
    fn new() -> io::Result<VmA> {
        let d = Device::open(0)?;
        let vm = d.vm_create()?;
        let queue = d.queue_create(vm, 0)?;
        let so = d.syncobj_create(false)?;
        let (cbo, csize) = nop_cmdbuf(&d, vm)?;
        submit_once(&d, queue, csize, so)?;
        let page = d.page_sizes()?.bind();
        let bo = d.gem_create(page)?;
        d.mmap(bo)?.touch_pages();
        let big = d.gem_create(ASYNC_OPS as u64 * page)?;
        d.mmap(big)?.touch_pages();
        Ok(VmA {
            d,
            vm,
            queue,
            cbo,
            bo,
            big,
            so,
        })
    }

    fn close(self) -> io::Result<()> {
        let d = &self.d;
        d.queue_destroy(self.queue)?;
        d.vm_unmap(self.vm, va(4), d.page_sizes()?.bind())?;
        for b in [self.cbo, self.bo, self.big] {
            d.gem_close(b)?;
        }
        d.syncobj_destroy(self.so)?;
        d.vm_destroy(self.vm)
    }

    /// Run `load` until `stop`; the bind operations done.
    fn run(&self, load: Load, stop: &AtomicBool, async_ok: bool) -> io::Result<u64> {
        let (d, vm) = (&self.d, self.vm);
        let page = d.page_sizes()?.bind();
        let at = va(8);
        let base = va(9);
        let maps: Vec<BindOp> = (0..ASYNC_OPS as u64)
            .map(|i| BindOp::map(self.big, i * page, base + i * page, page, 0))
            .collect();
        let unmaps: Vec<BindOp> = (0..ASYNC_OPS as u64)
            .map(|i| BindOp::unmap(base + i * page, page))
            .collect();
        let mut ops = 0u64;
        let mut x = 1u64;
        while !stop.load(Ordering::Relaxed) {
            match load {
                Load::Quiet => std::thread::sleep(Duration::from_millis(1)),
                Load::Spin => {
                    for _ in 0..10_000 {
                        x = std::hint::black_box(
                            x.wrapping_mul(6364136223846793005).wrapping_add(1),
                        );
                    }
                }
                Load::SyncPairs => {
                    d.vm_map(vm, self.bo, 0, at, page, 0)?;
                    d.vm_unmap(vm, at, page)?;
                    ops += 2;
                }
                Load::AsyncBatches if async_ok => {
                    d.vm_bind_async(vm, &maps, &[])
                        .map_err(|e| io::Error::new(e.kind(), format!("VM A, async map: {e}")))?;
                    async_bind(d, vm, &unmaps, self.so)?;
                    ops += 2 * ASYNC_OPS as u64;
                }
                Load::AsyncBatches => std::thread::sleep(Duration::from_millis(1)),
            }
        }
        Ok(ops)
    }
}

/// VM B's NOP jobs (`queue`, its command buffer of `csize` bytes, sync
/// object `so`), `per` at a time under each load of VM A in turn, for
/// `rounds` rounds (the order of the loads rotating).
pub fn interference(
    d: &Device,
    queue: u32,
    csize: u32,
    so: u32,
    rounds: usize,
    per: usize,
) -> io::Result<Interference> {
    let async_ok = d.uapi_features()? & u64::from(uapi::DRM_FERRITE_UAPI_ASYNC_BIND) != 0;
    let a = VmA::new()?;
    let stop = AtomicBool::new(true);
    let (cmd_tx, cmd_rx) = mpsc::channel::<Option<Load>>();
    let (ack_tx, ack_rx) = mpsc::channel::<Ack>();
    let mut samples: [Vec<Duration>; 4] = Default::default();
    let mut ops = [0u64; 4];
    let mut busy = [Duration::ZERO; 4];
    let result = std::thread::scope(|s| {
        let (a, stop) = (&a, &stop);
        s.spawn(move || {
            while let Ok(Some(load)) = cmd_rx.recv() {
                let _ = ack_tx.send(Ack::Started);
                let t = Instant::now();
                match a.run(load, stop, async_ok) {
                    Ok(n) => {
                        let _ = ack_tx.send(Ack::Stopped(n, t.elapsed()));
                    }
                    Err(e) => {
                        let _ = ack_tx.send(Ack::Failed(e));
                        return;
                    }
                }
            }
        });
        let mut measure = || -> io::Result<()> {
            let lost = || io::Error::other("VM A's thread went away");
            // Warm up B's queue.
            for _ in 0..5 {
                submit_once(d, queue, csize, so)?;
            }
            for r in 0..rounds {
                for k in 0..LOADS.len() {
                    let i = (k + r) % LOADS.len();
                    stop.store(false, Ordering::Relaxed);
                    cmd_tx.send(Some(LOADS[i])).map_err(|_| lost())?;
                    match ack_rx.recv().map_err(|_| lost())? {
                        Ack::Started => {}
                        Ack::Failed(e) => return Err(e),
                        Ack::Stopped(..) => return Err(lost()),
                    }
                    // Let the load get going.
                    std::thread::sleep(Duration::from_millis(2));
                    for _ in 0..per {
                        samples[i].push(submit_once(d, queue, csize, so)?.1);
                    }
                    stop.store(true, Ordering::Relaxed);
                    match ack_rx.recv().map_err(|_| lost())? {
                        Ack::Stopped(n, t) => {
                            ops[i] += n;
                            busy[i] += t;
                        }
                        Ack::Failed(e) => return Err(e),
                        Ack::Started => return Err(lost()),
                    }
                }
            }
            Ok(())
        };
        let r = measure();
        stop.store(true, Ordering::Relaxed);
        let _ = cmd_tx.send(None);
        r
    });
    a.close()?;
    result?;
    let mut ops_per_s = [0.0; 4];
    for i in 0..4 {
        ops_per_s[i] = ops[i] as f64 / busy[i].as_secs_f64().max(1e-9);
    }
    if !async_ok {
        ops_per_s[3] = f64::NAN;
    }
    Ok(Interference {
        b: samples.each_ref().map(|v| Times::of(v)),
        ops_per_s,
        samples: rounds * per,
    })
}

/// Everything of issue 15's bind benchmark.
#[derive(Serialize)]
pub struct BindBench {
    pub sync: Sync4k,
    /// The same on a VM without queues (in no address-space slot: its
    /// binds touch no register).
    pub idle: Sync4k,
    pub batch: Option<Batch>,
    /// The 32 MiB map of the size benchmark.
    pub map32m: Times,
    pub interference: Interference,
}

fn pct(part: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        100.0 * part as f64 / total as f64
    }
}

fn print_profile(what: &str, p: &Profile, measured: &Times, floor: &Times) {
    if p.calls == 0 {
        println!("  bind_profile over the {what} calls: no calls counted");
        return;
    }
    let per = |ns: u64| ns as f64 / p.calls as f64;
    let parts: Vec<String> = PHASES
        .iter()
        .zip(p.ns)
        .map(|(n, ns)| format!("{n} {:.0} ns ({:.0}%)", per(ns), pct(ns, p.total())))
        .collect();
    println!(
        "  bind_profile per {what} ({} calls): {}",
        p.calls,
        parts.join(", ")
    );
    println!(
        "    phases sum to {:.1} us of the {:.1} us measured per call (mean); the rest, {:.1} us, is the ioctl's way in and out (a null ioctl: {:.1} us)",
        per(p.total()) / 1000.0,
        measured.mean,
        measured.mean - per(p.total()) / 1000.0,
        floor.mean
    );
}

pub fn print(b: &BindBench) {
    let s = &b.sync;
    let fl = &s.floor;
    println!();
    println!("binds (issue 15):");
    println!(
        "  null ioctl (DEV_QUERY INFO), {FLOOR_PER_PAIR} before each 4 KiB map/unmap pair: {:.1} us mean, {:.1} us p50",
        fl.mean, fl.p50
    );
    let (rm, rp) = (s.map.mean / fl.mean, s.map.p50 / fl.p50);
    println!(
        "  synchronous 4 KiB map / null ioctl <= 3x   {:.1} us mean ({rm:.1}x), {:.1} us p50 ({rp:.1}x)   {}",
        s.map.mean,
        s.map.p50,
        verdict(rm <= 3.0 && rp <= 3.0)
    );
    println!(
        "  synchronous 4 KiB unmap / null ioctl       {:.1} us mean ({:.1}x), {:.1} us p50 ({:.1}x)",
        s.unmap.mean,
        s.unmap.mean / fl.mean,
        s.unmap.p50,
        s.unmap.p50 / fl.p50
    );
    match &s.profile {
        Some((pm, pu)) => {
            print_profile("synchronous 4 KiB map", pm, &s.map, fl);
            print_profile("synchronous 4 KiB unmap", pu, &s.unmap, fl);
        }
        None => println!("  bind_profile: not measured (no debugfs bind_profile)"),
    }
    let i = &b.idle;
    println!(
        "  the same on a VM without queues (no address-space slot, no register access): map {:.1} us mean ({:.1}x), {:.1} us p50 ({:.1}x); unmap {:.1} us mean, {:.1} us p50; null ioctl alongside {:.1} us mean, {:.1} us p50",
        i.map.mean,
        i.map.mean / i.floor.mean,
        i.map.p50,
        i.map.p50 / i.floor.p50,
        i.unmap.mean,
        i.unmap.p50,
        i.floor.mean,
        i.floor.p50
    );
    if let Some((pm, pu)) = &i.profile {
        print_profile("4 KiB map on the VM without queues", pm, &i.map, &i.floor);
        print_profile(
            "4 KiB unmap on the VM without queues",
            pu,
            &i.unmap,
            &i.floor,
        );
    }
    match &b.batch {
        Some(bt) => {
            let f = &bt.floor;
            let n = BATCH_OPS as f64;
            println!(
                "  asynchronous VM_BIND of {BATCH_OPS} 4 KiB ops (one BO, distinct VAs, SIGNAL sync object); null ioctl alongside {:.1} us mean, {:.1} us p50",
                f.mean, f.p50
            );
            for (what, io, sig) in [
                ("MAP", &bt.map_ioctl, &bt.map_signal),
                ("UNMAP", &bt.unmap_ioctl, &bt.unmap_signal),
            ] {
                println!(
                    "    {what:<5} ioctl {:.0} us mean ({:.0} p50) = {:.2} us/op = {:.2} null ioctls/op; until signalled {:.0} us mean ({:.0} p50) = {:.2} us/op = {:.2} null ioctls/op (p50 {:.2})   {}",
                    io.mean,
                    io.p50,
                    io.mean / n,
                    io.mean / n / f.mean,
                    sig.mean,
                    sig.p50,
                    sig.mean / n,
                    sig.mean / n / f.mean,
                    sig.p50 / n / f.p50,
                    verdict(sig.mean / n <= f.mean)
                );
            }
            println!(
                "    (goal: <= 1 null ioctl per op, until signalled; {BATCH_OPS} synchronous 4 KiB maps would take {:.0} us)",
                n * s.map.mean
            );
            println!(
                "    the same {BATCH_OPS} ops in one synchronous VM_BIND: MAP {:.0} us mean ({:.0} p50) = {:.2} us/op, UNMAP {:.0} us mean ({:.0} p50) = {:.2} us/op",
                bt.sync_map.mean,
                bt.sync_map.p50,
                bt.sync_map.mean / n,
                bt.sync_unmap.mean,
                bt.sync_unmap.p50,
                bt.sync_unmap.mean / n
            );
            if let Some((pm, pu)) = &bt.sync_profile {
                print_profile(
                    &format!("synchronous VM_BIND of {BATCH_OPS} MAPs"),
                    pm,
                    &bt.sync_map,
                    f,
                );
                print_profile(
                    &format!("synchronous VM_BIND of {BATCH_OPS} UNMAPs"),
                    pu,
                    &bt.sync_unmap,
                    f,
                );
            }
        }
        None => println!("  asynchronous VM_BIND: not measured (interface older than 0.5)"),
    }
    println!(
        "  synchronous 32 MiB map <= 1 ms            {:.1} us mean, {:.1} us p50   {}",
        b.map32m.mean,
        b.map32m.p50,
        verdict(b.map32m.mean <= 1000.0)
    );
    let it = &b.interference;
    let q = &it.b[0];
    println!(
        "  bind interference: VM B's NOP submit -> signal while VM A (another file, a second thread) does (p50 / mean, {} jobs each, loads interleaved):",
        it.samples
    );
    for (i, name) in LOAD_NAMES.iter().enumerate() {
        let t = &it.b[i];
        let rate = if i >= 2 {
            format!(", A: {:.0} bind ops/s", it.ops_per_s[i])
        } else {
            String::new()
        };
        let goal = if i >= 2 {
            format!(
                "   <= 1.2x: {}",
                verdict(t.p50 / q.p50 <= 1.2 && t.mean / q.mean <= 1.2)
            )
        } else {
            String::new()
        };
        println!(
            "    {name:<45} {:>7.1} / {:>7.1} us = {:.2}x / {:.2}x{rate}{goal}",
            t.p50,
            t.mean,
            t.p50 / q.p50,
            t.mean / q.mean
        );
    }
    let sp = &it.b[1];
    println!(
        "    against the CPU-bound loop: sync pairs {:.2}x, async batches {:.2}x (p50)",
        it.b[2].p50 / sp.p50,
        it.b[3].p50 / sp.p50
    );
}
