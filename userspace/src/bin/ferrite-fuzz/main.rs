// SPDX-License-Identifier: MIT
//! `ferrite-fuzz`: an ioctl fuzzer for Ferrite render nodes.
//!
//! Forked processes (each with its own files, threads sharing them) issue
//! random and structured sequences of every Ferrite ioctl and the DRM core
//! ioctls a client uses, check every result against the UAPI's rules and
//! the allowed errors, and report what does not fit as findings. After the
//! run, with every file closed, no bytes may stay bound in any GPU VM.
//!
//! Userptrs (DRM_FERRITE_VM_BIND_USERPTR, GPU VA == CPU VA): each process
//! keeps up to 16 regions of its own memory, 4 KiB to 256 KiB each, made as
//! one of: `PROT_READ` anonymous memory read once (the shared zero page),
//! anonymous memory written then made `PROT_READ`, written read/write
//! anonymous memory, untouched read/write anonymous memory, and
//! `PROT_READ` `MAP_SHARED` and `MAP_PRIVATE` mappings of a sealed memfd
//! (`F_SEAL_WRITE`, so nothing but a kernel bug can change it). The
//! operations (names for `--skip`):
//!
//! - `userptrbind`: bind a region (or whole pages of it) on the process VM
//!   of the file's device or on an explicit VM of the file: read-only
//!   mostly where the memory is read-only, and now and then writable,
//!   which must fail (`EFAULT`), as must any bind of `PROT_NONE` memory or
//!   (on the process VM) of a range that is bound already (`EEXIST`);
//! - `userptrunbind`: unbind a userptr, all of it (must succeed) or part of
//!   it, inside or across one end (must fail with `EINVAL`);
//! - `userptrmm`: munmap a region (or, while a writable userptr may still
//!   be registered on it, replace its pages by a `PROT_NONE` mapping, so
//!   that nothing else ever lands at those addresses), mprotect it
//!   (none, read, read/write), `MADV_DONTNEED` part of it, or read or write
//!   it from the CPU, whether bound or not;
//! - `userptrjob`: a job that checksums and copies a bound range into its
//!   command buffer's data BO and sometimes fills, copies into or writes
//!   it (faulting where it is read-only); the jobs of `submit` may also
//!   pick the bound ranges of their VM.
//!
//! The allowed errnos are the UAPI's for userptrs (`EFAULT`, `EEXIST`,
//! `EINVAL`, `ENOMEM`, and on explicit VMs `EPERM` and `ENOENT`, which a
//! forked child sharing the file or a destroyed VM explains); never `EIO`.
//! The fuzzer knows exactly what is bound on the process VM and holds the
//! kernel to it there. After each unbind of a read-only anonymous userptr,
//! and after each job writing one, a new read-only anonymous page must
//! read zeros (the zero page is intact); after each unbind of a file-backed
//! one, and when the process ends, the memfd must hold what was written.
//!
//! Asynchronous binds (UAPI 0.5): `vmbind` makes a third of its binds
//! asynchronous (DRM_FERRITE_VM_BIND_ASYNC) and mixes SYNC_ONLY ops (some
//! with a non-zero field: `EINVAL`), NULL MAPs (DRM_FERRITE_VM_BIND_NULL,
//! where DEV_QUERY FEATURES has DRM_FERRITE_UAPI_NULL_BIND; some with a
//! handle, an offset or USERPTR: `EINVAL`) and, in asynchronous binds,
//! userptr MAPs (`EINVAL`) into its random operations. The operations for
//! `--skip`:
//!
//! - `asyncbind`: an asynchronous bind of valid MAPs (of BOs and NULL
//!   ranges), UNMAPs and SYNC_ONLY ops, waiting for a job just submitted
//!   (which may fault) or another fence, signalling a new sync object,
//!   which must hold a fence when the call returns; now and then with a
//!   userptr MAP (`EINVAL` only), followed by a job that waits for it, or
//!   by a wait for its fence and the checks that follow: a bind whose WAIT
//!   fence failed carries an error, a failed bind leaves its VM unusable,
//!   and an unusable VM fails MAPs with `EIO` (synchronous or not) but
//!   takes UNMAPs;
//! - `vmstate`: VM_GET_STATE of the process VM, of the file's VMs and of
//!   unknown ids (`ENOENT`, required where no VM can exist), with a bad pad
//!   now and then (`EINVAL`).
//!
//! A VM of the file found unusable is soon destroyed, after its queues
//! (both must work), and made again, as a client would.
//!
//! An asynchronous bind that waits for a fence may leave its VM unusable
//! after the call: such binds go to explicit VMs and to the process VMs of
//! the short-lived processes (churn, forked children). The fuzzer asks
//! VM_GET_STATE before SUBMITs and binds on VMs that may be unusable (and
//! now and then on any), and after every `EIO` that only an unusable VM
//! explains: SUBMIT and MAPs must fail with `EIO` exactly when the VM is
//! reported unusable (see `engine.rs`). The process VM of a fuzz process
//! takes only asynchronous binds that wait for nothing, so it must never
//! be reported unusable.

mod engine;
mod gen;
mod rng;
mod stats;
mod sys;

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::ExitCode;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrite::Device;

use engine::{Budget, DevDesc, Env, FileCtx, MapEnt, RunOpts, Shared, Worker};
use gen::VaRange;
use rng::{stream_seed, Rng};
use stats::Stats;

const USAGE: &str = "usage: ferrite-fuzz [options]
  --calls N      total ioctl (and mmap, munmap, mprotect, madvise) count over
                 all processes (default 200000, about 2 minutes under TCG)
  --seconds S    wall-clock cap (default 120); whichever comes first ends the run
  --seed X       PRNG seed, decimal or 0x hex (default: from the clock)
  --threads N    threads per fuzz process, sharing its files (default 1)
  --procs N      fuzz processes, each with its own files (default 1); with
                 N >= 2 two more run: one opening and closing files over and
                 over, one forking children that use its inherited file
  --aux/--no-aux force or disable those two extra processes
  --trace        print every call
  --skip A,B     leave out these operations (to narrow a finding down); the
                 names: {OPS}
A run with --threads 1 --procs 1 replays exactly from its seed. The PRNG is
rand_xoshiro's Xoshiro256++: seeds printed before it replaced the fuzzer's own
SplitMix64 (November 2026) do not replay the same calls. Exit status:
0 without findings, 1 with findings, 2 on usage or setup errors.";

#[derive(Debug, Clone)]
struct Opts {
    calls: u64,
    seconds: f64,
    seed: u64,
    threads: u32,
    procs: u32,
    aux: Option<bool>,
    trace: bool,
    skip: Vec<String>,
}

fn parse_u64(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

fn parse_args(args: &[String]) -> Result<Opts, String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut o = Opts {
        calls: 200_000,
        seconds: 120.0,
        seed: rng::mix(now ^ u64::from(std::process::id())),
        threads: 1,
        procs: 1,
        aux: None,
        trace: false,
        skip: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--calls" => o.calls = parse_u64(&val(a)?).ok_or("--calls: not a number")?,
            "--seconds" => {
                o.seconds = val(a)?
                    .parse()
                    .ok()
                    .filter(|s: &f64| *s > 0.0)
                    .ok_or("--seconds: not a positive number")?
            }
            "--seed" => o.seed = parse_u64(&val(a)?).ok_or("--seed: not a u64")?,
            "--threads" => {
                o.threads = parse_u64(&val(a)?)
                    .filter(|&n| (1..=64).contains(&n))
                    .ok_or("--threads: 1..64")? as u32
            }
            "--procs" => {
                o.procs = parse_u64(&val(a)?)
                    .filter(|&n| (1..=64).contains(&n))
                    .ok_or("--procs: 1..64")? as u32
            }
            "--aux" => o.aux = Some(true),
            "--no-aux" => o.aux = Some(false),
            "--trace" => o.trace = true,
            "--skip" => o.skip.extend(
                val(a)?
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from),
            ),
            "-h" | "--help" => return Err(String::new()),
            _ => return Err(format!("unknown option {a}")),
        }
    }
    Ok(o)
}

/// Every Ferrite render node, with its VA range and its bound bytes.
fn discover() -> std::io::Result<Vec<(DevDesc, u64)>> {
    let mut out = Vec::new();
    for d in Device::all()? {
        let info = d.info()?;
        let c = d.counters()?;
        let features = d.uapi_features()?;
        let pci = d.pci_address().unwrap_or_default();
        out.push((
            DevDesc {
                path: d.path().to_path_buf(),
                range: VaRange {
                    start: info.va_start,
                    end: info.va_end,
                },
                debugfs: format!("/sys/kernel/debug/ferrite-{pci}").into(),
                features,
            },
            c.bytes_bound,
        ));
    }
    Ok(out)
}

/// Asynchronous binds that will fail, injected through debugfs
/// (`inject_bind_failure`) and not used yet, if readable.
fn injected_bind_failures(d: &DevDesc) -> Option<u64> {
    let s = std::fs::read_to_string(d.debugfs.join("inject_bind_failure")).ok()?;
    s.trim().parse().ok()
}

/// The BOs the driver lists in debugfs (`id size` lines), if readable.
fn debugfs_bos(d: &DevDesc) -> Option<Vec<String>> {
    let s = std::fs::read_to_string(d.debugfs.join("gem")).ok()?;
    Some(s.lines().skip(1).map(String::from).collect())
}

fn counters_of(devs: &[DevDesc]) -> Vec<Option<ferrite::uapi::drm_ferrite_counters>> {
    let all = Device::all().unwrap_or_default();
    devs.iter()
        .map(|d| {
            all.iter()
                .find(|a| a.path() == d.path)
                .and_then(|a| a.counters().ok())
        })
        .collect()
}

/// What a forked process does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// A fuzz process: `threads` threads on its two files.
    Fuzz(u32),
    /// Open a file, fuzz a little, close it; again and again.
    Churn(u32),
    /// Fuzz a file and fork children that use it and exit.
    ForkInherit(u32),
}

impl Role {
    fn label(&self) -> String {
        match self {
            Role::Fuzz(p) => format!("p{p}"),
            Role::Churn(p) => format!("churn(p{p})"),
            Role::ForkInherit(p) => format!("fork(p{p})"),
        }
    }
}

fn write_stats(pipe: &OwnedFd, s: &Stats) {
    let line = s.to_line();
    // One write: lines up to PIPE_BUF do not interleave.
    // SAFETY: writing a buffer we own to a descriptor we own.
    unsafe { libc::write(pipe.as_raw_fd(), line.as_ptr().cast(), line.len()) };
}

fn flush() {
    let _ = std::io::stdout().flush();
}

/// Wait for a forked child of an aux process and report how it ended.
fn reap_child(w: &mut Worker<'_>, pid: libc::pid_t, what: &str) {
    let mut status = 0;
    // SAFETY: waiting for our own child.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    if r != pid {
        w.finding(&format!("waitpid of {what} failed"), "");
    } else if libc::WIFSIGNALED(status) {
        w.finding(
            &format!("{what} was killed by signal {}", libc::WTERMSIG(status)),
            "",
        );
    } else if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) > 1 {
        w.finding(
            &format!("{what} exited with status {}", libc::WEXITSTATUS(status)),
            "",
        );
    }
}

fn open_or_report(devs: &[DevDesc], dev: usize, label: &str, shared: &Shared) -> Option<FileCtx> {
    match FileCtx::open(devs, dev) {
        Ok(f) => Some(f),
        Err(e) => {
            shared.findings.fetch_add(1, Relaxed);
            println!(
                "FINDING {label}: cannot open {}: {e}",
                devs[dev].path.display()
            );
            None
        }
    }
}

/// The body of a forked process; returns its exit status.
fn child_main(
    role: Role,
    o: &Opts,
    run: &RunOpts,
    devs: &[DevDesc],
    budget: Budget,
    pipe: &OwnedFd,
) -> i32 {
    let ndev = devs.len();
    let mut total = Stats::default();
    match role {
        Role::Fuzz(p) => {
            let mut prng = Rng::new(stream_seed(o.seed, p, u32::MAX));
            let dev1 = prng.index(ndev);
            let files = [p as usize % ndev, dev1]
                .iter()
                .map(|&d| open_or_report(devs, d, &role.label(), budget.shared))
                .collect::<Option<Vec<_>>>();
            let Some(files) = files else { return 3 };
            let env = Env::new(devs.to_vec(), files, budget, run);
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..o.threads)
                    .map(|t| {
                        let env = &env;
                        s.spawn(move || {
                            let mut w =
                                Worker::new(env, stream_seed(o.seed, p, t), format!("p{p}t{t}"));
                            w.run();
                            w.stats
                        })
                    })
                    .collect();
                for (t, h) in handles.into_iter().enumerate() {
                    match h.join() {
                        Ok(st) => total.merge(&st),
                        Err(_) => {
                            budget.shared.findings.fetch_add(1, Relaxed);
                            total.findings += 1;
                            println!(
                                "FINDING p{p}t{t} (stream seed {}): the fuzz thread panicked",
                                stream_seed(o.seed, p, t as u32)
                            );
                        }
                    }
                }
            });
        }
        Role::Churn(p) => {
            let mut prng = Rng::new(stream_seed(o.seed, p, u32::MAX));
            let mut kept: Vec<Arc<MapEnt>> = Vec::new();
            let mut it = 0u32;
            while !budget.done() {
                it += 1;
                let dev = prng.index(ndev);
                let Some(f) = open_or_report(devs, dev, &role.label(), budget.shared) else {
                    return 3;
                };
                let env = Env::new(devs.to_vec(), vec![f], budget, run);
                {
                    let mut w = Worker::new(&env, stream_seed(o.seed, p, it), format!("churn{it}"));
                    // Its process VM goes with the file.
                    w.pvm_expendable = true;
                    w.run_n(prng.range(5, 60));
                    total.merge(&w.stats);
                }
                if prng.chance(1, 3) {
                    if let Some(m) = env.take_mapping() {
                        kept.push(m);
                    }
                }
                // Closes the file; jobs may still run, mappings stay.
                drop(env);
                for m in &kept {
                    engine::touch(m);
                }
                if kept.len() > 4 {
                    kept.remove(0);
                }
            }
        }
        Role::ForkInherit(p) => {
            let mut prng = Rng::new(stream_seed(o.seed, p, u32::MAX));
            let Some(f) = open_or_report(devs, prng.index(ndev), &role.label(), budget.shared)
            else {
                return 3;
            };
            let env = Env::new(devs.to_vec(), vec![f], budget, run);
            let mut w = Worker::new(&env, stream_seed(o.seed, p, 0), "fork-parent".into());
            w.shares_file = true;
            let mut pending: Option<(libc::pid_t, u32)> = None;
            let mut n = 0u32;
            while !budget.done() {
                w.run_n(prng.range(20, 100));
                if let Some((pid, k)) = pending.take() {
                    reap_child(&mut w, pid, &format!("fork child {k}"));
                }
                n += 1;
                flush();
                // SAFETY: this process is single-threaded.
                let pid = unsafe { libc::fork() };
                if pid == 0 {
                    let mut c =
                        Worker::new(&env, stream_seed(o.seed, p, n), format!("fork-child{n}"));
                    // Its process VM is its own, and lives as long as it.
                    c.pvm_expendable = true;
                    c.shares_file = true;
                    let calls = c.rng.range(10, 100);
                    c.run_n(calls);
                    write_stats(pipe, &c.stats);
                    flush();
                    // SAFETY: leave without running the parent's destructors.
                    unsafe { libc::_exit(i32::from(c.stats.findings > 0)) };
                } else if pid < 0 {
                    w.finding("fork failed", "");
                    break;
                } else if prng.chance(1, 2) {
                    reap_child(&mut w, pid, &format!("fork child {n}"));
                } else {
                    pending = Some((pid, n));
                }
            }
            if let Some((pid, k)) = pending.take() {
                reap_child(&mut w, pid, &format!("fork child {k}"));
            }
            total.merge(&w.stats);
        }
    }
    write_stats(pipe, &total);
    i32::from(total.findings > 0)
}

/// The kernel stacks of a stuck process, for the report.
fn dump_stacks(pid: libc::pid_t) {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return;
    };
    for t in tasks.flatten() {
        let p = t.path();
        let rd = |n: &str| std::fs::read_to_string(p.join(n)).unwrap_or_default();
        println!(
            "  task {} ({}) state {} wchan {}\n{}",
            t.file_name().to_string_lossy(),
            rd("comm").trim(),
            rd("stat").split(' ').nth(2).unwrap_or("?"),
            rd("wchan"),
            rd("stack")
                .lines()
                .map(|l| format!("    {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

struct Child {
    pid: libc::pid_t,
    role: Role,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = || eprintln!("{}", USAGE.replace("{OPS}", &engine::op_names().join(" ")));
    let o = match parse_args(&args) {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("ferrite-fuzz: {e}");
            }
            usage();
            return ExitCode::from(2);
        }
    };
    let run = match engine::weights(&o.skip) {
        Ok(weights) => RunOpts {
            trace: o.trace,
            weights,
            replay_extra: if o.skip.is_empty() {
                String::new()
            } else {
                format!(" --skip {}", o.skip.join(","))
            },
            inject_pending: false,
        },
        Err(e) => {
            eprintln!("ferrite-fuzz: --skip: {e}");
            return ExitCode::from(2);
        }
    };
    let t0 = Instant::now();
    let found = match discover() {
        Ok(d) if !d.is_empty() => d,
        Ok(_) => {
            eprintln!("ferrite-fuzz: no Ferrite GPU found");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("ferrite-fuzz: cannot query the Ferrite GPUs: {e}");
            return ExitCode::from(2);
        }
    };
    let devs: Vec<DevDesc> = found.iter().map(|d| d.0.clone()).collect();
    let mut run = run;
    for (i, d) in devs.iter().enumerate() {
        if let Some(n @ 1..) = injected_bind_failures(d) {
            // Any process VM may then be lost: not a finding.
            println!(
                "fuzz: gpu{i} has {n} injected bind failures pending (debugfs inject_bind_failure)"
            );
            run.inject_pending = true;
        }
    }
    let bound_before: Vec<u64> = found.iter().map(|d| d.1).collect();
    let counters_before = counters_of(&devs);
    let bos_before: Vec<Option<Vec<String>>> = devs.iter().map(debugfs_bos).collect();
    let aux = o.aux.unwrap_or(o.procs >= 2);
    println!(
        "fuzz: seed={} calls={} seconds={} threads={} procs={} aux={}{} devices={} features={}",
        o.seed,
        o.calls,
        o.seconds,
        o.threads,
        o.procs,
        if aux { 2 } else { 0 },
        if o.skip.is_empty() {
            String::new()
        } else {
            format!(" skip={}", o.skip.join(","))
        },
        devs.iter()
            .map(|d| format!(
                "{} (va {:#x}..{:#x})",
                d.path.display(),
                d.range.start,
                d.range.end
            ))
            .collect::<Vec<_>>()
            .join(", "),
        devs.iter()
            .map(|d| format!("{:#x}", d.features))
            .collect::<Vec<_>>()
            .join(",")
    );
    println!(
        "fuzz: replay with: ferrite-fuzz --seed {} --threads 1 --procs 1 --calls {}{}",
        o.seed, o.calls, run.replay_extra
    );

    // Counters shared with every process.
    // SAFETY: a new shared anonymous mapping; zeroed memory is a valid Shared.
    let shared: &'static Shared = unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            std::mem::size_of::<Shared>(),
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert!(p != libc::MAP_FAILED, "cannot map the shared counters");
        &*(p as *const Shared)
    };
    let deadline = t0 + Duration::from_secs_f64(o.seconds);
    let budget = Budget {
        shared,
        limit: o.calls,
        deadline,
    };
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the array with two new descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        eprintln!("ferrite-fuzz: pipe: {}", std::io::Error::last_os_error());
        return ExitCode::from(2);
    }
    // SAFETY: both descriptors are new and ours.
    let (pipe_r, pipe_w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };

    let mut roles: Vec<Role> = (0..o.procs).map(Role::Fuzz).collect();
    if aux {
        roles.push(Role::Churn(o.procs));
        roles.push(Role::ForkInherit(o.procs + 1));
    }
    let mut children = Vec::new();
    for role in roles {
        flush();
        // SAFETY: the parent is single-threaded.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            drop(pipe_r);
            let code = child_main(role, &o, &run, &devs, budget, &pipe_w);
            flush();
            // SAFETY: leave without unwinding into the parent's state.
            unsafe { libc::_exit(code) };
        }
        if pid < 0 {
            eprintln!("ferrite-fuzz: fork: {}", std::io::Error::last_os_error());
            return ExitCode::from(2);
        }
        children.push(Child { pid, role });
    }
    drop(pipe_w);

    // Collect statistics and exit statuses.
    let mut total = Stats::default();
    let mut extra_findings = 0u64;
    let mut pending = String::new();
    let mut eof = false;
    let mut pipe = std::fs::File::from(pipe_r);
    let hard_deadline = deadline + Duration::from_secs(90);
    let mut killed_at: Option<Instant> = None;
    let mut reaped_at: Option<Instant> = None;
    let mut stuck = false;
    loop {
        if !eof {
            let mut pfd = libc::pollfd {
                fd: pipe.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let n = unsafe { libc::poll(&mut pfd, 1, 100) };
            if n > 0 {
                let mut buf = [0u8; 8192];
                match pipe.read(&mut buf) {
                    Ok(0) => eof = true,
                    Ok(k) => pending.push_str(&String::from_utf8_lossy(&buf[..k])),
                    Err(_) => {}
                }
                while let Some(i) = pending.find('\n') {
                    let line: String = pending.drain(..=i).collect();
                    if let Some(s) = Stats::from_line(&line) {
                        total.merge(&s);
                    }
                }
            }
        } else {
            std::thread::sleep(Duration::from_millis(100));
        }
        children.retain(|c| {
            let mut status = 0;
            // SAFETY: polling our own child.
            let r = unsafe { libc::waitpid(c.pid, &mut status, libc::WNOHANG) };
            if r == 0 {
                return true;
            }
            let label = c.role.label();
            let seed = match c.role {
                Role::Fuzz(p) => stream_seed(o.seed, p, 0),
                _ => o.seed,
            };
            if r < 0 {
                println!("FINDING {label}: waitpid failed");
                extra_findings += 1;
            } else if libc::WIFSIGNALED(status) {
                println!(
                    "FINDING {label} (seed {}, first stream seed {seed}): killed by signal {}",
                    o.seed,
                    libc::WTERMSIG(status)
                );
                extra_findings += 1;
            } else if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) > 1 {
                println!(
                    "FINDING {label} (seed {}): exited with status {}",
                    o.seed,
                    libc::WEXITSTATUS(status)
                );
                extra_findings += 1;
            }
            false
        });
        let now = Instant::now();
        if children.is_empty() {
            let t = *reaped_at.get_or_insert(now);
            if eof || now > t + Duration::from_secs(15) {
                break;
            }
        }
        if now > hard_deadline && killed_at.is_none() {
            for c in &children {
                println!(
                    "FINDING {} (seed {}): still running {:.0}s after the deadline; kernel stacks:",
                    c.role.label(),
                    o.seed,
                    (now - deadline).as_secs_f64()
                );
                dump_stacks(c.pid);
                extra_findings += 1;
                // SAFETY: killing our own child.
                unsafe { libc::kill(c.pid, libc::SIGKILL) };
            }
            killed_at = Some(now);
        }
        if killed_at.is_some_and(|t| now > t + Duration::from_secs(20)) && !children.is_empty() {
            println!(
                "fuzz: {} process(es) cannot be killed (stuck in the kernel); skipping the leak check",
                children.len()
            );
            stuck = true;
            break;
        }
    }

    // With every file closed, nothing may stay bound and no BO may stay
    // (the BOs only where debugfs is readable). Jobs finish first, so poll.
    let mut leaked = 0u64;
    let mut leaked_bos: Option<u64> = None;
    if !stuck {
        let wait_until = Instant::now() + Duration::from_secs(20);
        loop {
            let now_c = counters_of(&devs);
            leaked = now_c
                .iter()
                .zip(&bound_before)
                .map(|(c, b)| c.map_or(0, |c| c.bytes_bound.saturating_sub(*b)))
                .sum();
            let bos_now: Vec<Option<Vec<String>>> = devs.iter().map(debugfs_bos).collect();
            let new_bos: Vec<Vec<String>> = bos_now
                .iter()
                .zip(&bos_before)
                .map(|(now, before)| match (now, before) {
                    (Some(n), Some(b)) => n.iter().filter(|l| !b.contains(l)).cloned().collect(),
                    _ => Vec::new(),
                })
                .collect();
            let readable = bos_now
                .iter()
                .zip(&bos_before)
                .all(|(a, b)| a.is_some() && b.is_some());
            leaked_bos = readable.then(|| new_bos.iter().map(|v| v.len() as u64).sum());
            if (leaked == 0 && leaked_bos.unwrap_or(0) == 0) || Instant::now() > wait_until {
                for (i, (a, b)) in now_c.iter().zip(&counters_before).enumerate() {
                    if let (Some(a), Some(b)) = (a, b) {
                        println!(
                            "fuzz: gpu{i} {}: jobs_submitted +{} jobs_timedout +{} faults +{} tlb_flushes +{} \
                             bytes_bound {} (was {}) kmap_user_bytes {}",
                            devs[i].path.display(),
                            a.jobs_submitted - b.jobs_submitted,
                            a.jobs_timedout - b.jobs_timedout,
                            a.faults - b.faults,
                            a.tlb_flushes - b.tlb_flushes,
                            a.bytes_bound,
                            bound_before[i],
                            a.kmap_user_bytes
                        );
                    }
                    if !new_bos[i].is_empty() {
                        println!(
                            "fuzz: gpu{i}: BOs left (id size): {}",
                            new_bos[i].join(", ")
                        );
                        let vms = std::fs::read_to_string(devs[i].debugfs.join("vms"))
                            .unwrap_or_default();
                        println!("fuzz: gpu{i}: debugfs vms:\n{vms}");
                    }
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        if leaked != 0 {
            println!(
                "FINDING (seed {}): {leaked} bytes still bound after every file was closed",
                o.seed
            );
            extra_findings += 1;
        }
        if let Some(n @ 1..) = leaked_bos {
            println!(
                "FINDING (seed {}): {n} BOs still exist after every file was closed",
                o.seed
            );
            extra_findings += 1;
        }
    }

    let elapsed = t0.elapsed().as_secs_f64();
    let calls = shared.calls.load(Relaxed);
    let findings = shared.findings.load(Relaxed) + extra_findings;
    let mut per: Vec<(&String, &(u64, u64))> = total.per_call.iter().collect();
    per.sort_by_key(|b| std::cmp::Reverse(b.1 .0));
    println!(
        "fuzz: per call (calls/ok): {}",
        per.iter()
            .map(|(k, (c, ok))| format!("{k} {c}/{ok}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("fuzz: checks met: {}", total.events_line());
    println!("fuzz: {:.1} calls/s", calls as f64 / elapsed.max(1e-9));
    println!(
        "fuzz: calls={calls} errors_by_errno={} findings={findings} seed={} elapsed={elapsed:.1}s \
         leaked_bound_bytes={} leaked_bos={}",
        total.errors_by_errno(),
        o.seed,
        if stuck {
            "unknown".to_string()
        } else {
            leaked.to_string()
        },
        leaked_bos.map_or("unknown".to_string(), |n| n.to_string())
    );
    if findings > 0 {
        println!(
            "fuzz: replay with: ferrite-fuzz --seed {} --threads 1 --procs 1 --calls {}{}",
            o.seed, o.calls, run.replay_extra
        );
    }
    flush();
    if findings == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options() {
        let o = parse_args(&args(&["--seed", "0x10", "--calls", "5", "--threads", "2"])).unwrap();
        assert_eq!((o.seed, o.calls, o.threads, o.procs), (16, 5, 2, 1));
        assert_eq!(o.seconds, 120.0);
        let o = parse_args(&args(&[
            "--seed",
            "123",
            "--seconds",
            "1.5",
            "--procs",
            "3",
            "--no-aux",
        ]))
        .unwrap();
        assert_eq!(
            (o.seed, o.seconds, o.procs, o.aux),
            (123, 1.5, 3, Some(false))
        );
        assert!(parse_args(&args(&["--threads", "0"])).is_err());
        assert!(parse_args(&args(&["--seed"])).is_err());
        assert!(parse_args(&args(&["--bogus"])).is_err());
        assert!(parse_args(&args(&["--seconds", "-1"])).is_err());
    }
}
