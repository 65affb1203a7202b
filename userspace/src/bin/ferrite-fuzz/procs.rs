// SPDX-License-Identifier: MIT
//! The fuzz processes: forked, each with its own files and threads (or a
//! churn or fork-inherit role), reporting their statistics through a pipe;
//! the parent collects them and each child's exit, and kills what is still
//! running long after the deadline.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::{self, Budget, DevDesc, Env, FileCtx, MapEnt, RunOpts, Shared, Worker};
use crate::opts::Opts;
use crate::rng::{stream_seed, Rng};
use crate::stats::Stats;

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

pub fn flush() {
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
                            w.sibling_threads = o.threads > 1;
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

/// The counters shared with every process, in a new shared anonymous page.
pub fn shared_counters() -> &'static Shared {
    // SAFETY: a new shared anonymous mapping; zeroed memory is a valid Shared.
    unsafe {
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
    }
}

/// The running fuzz processes and the read end of their statistics pipe.
pub struct Running {
    children: Vec<Child>,
    pipe_r: OwnedFd,
}

/// Fork the fuzz processes (and with `aux` the churn and fork-inherit ones).
pub fn spawn(
    o: &Opts,
    run: &RunOpts,
    devs: &[DevDesc],
    budget: Budget,
    aux: bool,
) -> Result<Running, String> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the array with two new descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("pipe: {}", std::io::Error::last_os_error()));
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
            let code = child_main(role, o, run, devs, budget, &pipe_w);
            flush();
            // SAFETY: leave without unwinding into the parent's state.
            unsafe { libc::_exit(code) };
        }
        if pid < 0 {
            return Err(format!("fork: {}", std::io::Error::last_os_error()));
        }
        children.push(Child { pid, role });
    }
    drop(pipe_w);
    Ok(Running { children, pipe_r })
}

/// What the processes reported, and how they ended.
pub struct Collected {
    /// Their statistics, merged.
    pub total: Stats,
    /// Findings of the parent: processes killed by a signal, failing or
    /// stuck.
    pub extra_findings: u64,
    /// Some process could not be killed (stuck in the kernel).
    pub stuck: bool,
}

/// Read the statistics until every process has exited; kill those still
/// running 90 s after `deadline`.
pub fn collect(r: Running, o: &Opts, deadline: Instant) -> Collected {
    let Running {
        mut children,
        pipe_r,
    } = r;
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
    Collected {
        total,
        extra_findings,
        stuck,
    }
}
