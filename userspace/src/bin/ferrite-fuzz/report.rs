// SPDX-License-Identifier: MIT
//! What the run prints at its start and end: the settings and devices,
//! the leak check once every file is closed, and the summary.

use std::process::ExitCode;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use crate::devs::{counters_of, debugfs_bos};
use crate::engine::{DevDesc, RunOpts, Shared};
use crate::opts::Opts;
use crate::procs::{flush, Collected};

/// What the devices held before the run.
pub struct Before {
    bound: Vec<u64>,
    counters: Vec<Option<ferrite::uapi::drm_ferrite_counters>>,
    bos: Vec<Option<Vec<String>>>,
}

impl Before {
    /// `found`: each device with its bound bytes, from the discovery.
    pub fn take(found: &[(DevDesc, u64)], devs: &[DevDesc]) -> Before {
        Before {
            bound: found.iter().map(|d| d.1).collect(),
            counters: counters_of(devs),
            bos: devs.iter().map(debugfs_bos).collect(),
        }
    }
}

/// The first lines: the settings, the devices and how to replay.
pub fn header(o: &Opts, run: &RunOpts, devs: &[DevDesc], aux: bool) {
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
}

/// What stayed after every file was closed.
pub struct Leaks {
    /// Bytes still bound, over all devices.
    pub bytes: u64,
    /// BOs left, where debugfs is readable.
    pub bos: Option<u64>,
    /// Findings: one for bound bytes, one for BOs.
    pub findings: u64,
}

/// With every file closed, nothing may stay bound and no BO may stay
/// (the BOs only where debugfs is readable). Jobs finish first, so poll.
/// Prints each device's counters over the run.
pub fn leak_check(devs: &[DevDesc], before: &Before, seed: u64) -> Leaks {
    let mut leaked;
    let mut leaked_bos: Option<u64>;
    let mut findings = 0;
    let wait_until = Instant::now() + Duration::from_secs(20);
    loop {
        let now_c = counters_of(devs);
        leaked = now_c
            .iter()
            .zip(&before.bound)
            .map(|(c, b)| c.map_or(0, |c| c.bytes_bound.saturating_sub(*b)))
            .sum();
        let bos_now: Vec<Option<Vec<String>>> = devs.iter().map(debugfs_bos).collect();
        let new_bos: Vec<Vec<String>> = bos_now
            .iter()
            .zip(&before.bos)
            .map(|(now, before)| match (now, before) {
                (Some(n), Some(b)) => n.iter().filter(|l| !b.contains(l)).cloned().collect(),
                _ => Vec::new(),
            })
            .collect();
        let readable = bos_now
            .iter()
            .zip(&before.bos)
            .all(|(a, b)| a.is_some() && b.is_some());
        leaked_bos = readable.then(|| new_bos.iter().map(|v| v.len() as u64).sum());
        if (leaked == 0 && leaked_bos.unwrap_or(0) == 0) || Instant::now() > wait_until {
            for (i, (a, b)) in now_c.iter().zip(&before.counters).enumerate() {
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
                        before.bound[i],
                        a.kmap_user_bytes
                    );
                }
                if !new_bos[i].is_empty() {
                    println!(
                        "fuzz: gpu{i}: BOs left (id size): {}",
                        new_bos[i].join(", ")
                    );
                    let vms =
                        std::fs::read_to_string(devs[i].debugfs.join("vms")).unwrap_or_default();
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
            seed
        );
        findings += 1;
    }
    if let Some(n @ 1..) = leaked_bos {
        println!(
            "FINDING (seed {}): {n} BOs still exist after every file was closed",
            seed
        );
        findings += 1;
    }
    Leaks {
        bytes: leaked,
        bos: leaked_bos,
        findings,
    }
}

/// The last lines (per-call counts, checks met, rate, totals) and the exit
/// status. `leaks` is None when the leak check was skipped.
pub fn summary(
    o: &Opts,
    run: &RunOpts,
    shared: &Shared,
    c: &Collected,
    leaks: Option<&Leaks>,
    elapsed: f64,
) -> ExitCode {
    let calls = shared.calls.load(Relaxed);
    let findings =
        shared.findings.load(Relaxed) + c.extra_findings + leaks.map_or(0, |l| l.findings);
    let mut per: Vec<(&String, &(u64, u64))> = c.total.per_call.iter().collect();
    per.sort_by_key(|b| std::cmp::Reverse(b.1 .0));
    println!(
        "fuzz: per call (calls/ok): {}",
        per.iter()
            .map(|(k, (c, ok))| format!("{k} {c}/{ok}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("fuzz: checks met: {}", c.total.events_line());
    println!("fuzz: {:.1} calls/s", calls as f64 / elapsed.max(1e-9));
    println!(
        "fuzz: calls={calls} errors_by_errno={} findings={findings} seed={} elapsed={elapsed:.1}s \
         leaked_bound_bytes={} leaked_bos={}",
        c.total.errors_by_errno(),
        o.seed,
        leaks.map_or("unknown".to_string(), |l| l.bytes.to_string()),
        leaks
            .and_then(|l| l.bos)
            .map_or("unknown".to_string(), |n| n.to_string())
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
