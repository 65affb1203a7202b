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
//! reported unusable (see `engine/mod.rs`). The process VM of a fuzz process
//! takes only asynchronous binds that wait for nothing, so it must never
//! be reported unusable.

mod devs;
mod engine;
mod gen;
mod opts;
mod procs;
mod report;
mod rng;
mod stats;
mod sys;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use engine::{Budget, DevDesc};
use report::Before;

fn main() -> ExitCode {
    let (o, mut run) = match opts::from_args() {
        Ok(v) => v,
        Err(code) => return ExitCode::from(code),
    };
    let t0 = Instant::now();
    let found = match devs::discover() {
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
    for (i, d) in devs.iter().enumerate() {
        if let Some(n @ 1..) = devs::injected_bind_failures(d) {
            // Any process VM may then be lost: not a finding.
            println!(
                "fuzz: gpu{i} has {n} injected bind failures pending (debugfs inject_bind_failure)"
            );
            run.inject_pending = true;
        }
    }
    let before = Before::take(&found, &devs);
    let aux = o.aux.unwrap_or(o.procs >= 2);
    report::header(&o, &run, &devs, aux);

    let shared = procs::shared_counters();
    let deadline = t0 + Duration::from_secs_f64(o.seconds);
    let budget = Budget {
        shared,
        limit: o.calls,
        deadline,
    };
    let running = match procs::spawn(&o, &run, &devs, budget, aux) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ferrite-fuzz: {e}");
            return ExitCode::from(2);
        }
    };
    let collected = procs::collect(running, &o, deadline);
    let leaks = (!collected.stuck).then(|| report::leak_check(&devs, &before, o.seed));
    let elapsed = t0.elapsed().as_secs_f64();
    report::summary(&o, &run, shared, &collected, leaks.as_ref(), elapsed)
}
