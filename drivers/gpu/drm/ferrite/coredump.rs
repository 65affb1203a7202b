// SPDX-License-Identifier: GPL-2.0

//! Devcoredumps: what userspace gets of a failed job.
//!
//! The failure path runs in a fence-signalling section, where nothing may
//! allocate: it only copies what the dump shows into a [`DumpInfo`] (no
//! allocation) held by the queue, signals the failed fence, and queues the
//! queue's dump work item, which formats the text (the record, the job, the
//! ring around it and the VM's mappings, never user memory) and hands it
//! to the devcoredump core.

use kernel::{
    prelude::*,
    sync::Arc, //
};

use crate::{
    queue::{
        Queue,
        Record, //
    },
    ring::JOB_BYTES, //
};

/// What a coredump shows, captured when the job failed.
pub(crate) struct DumpInfo {
    pub(crate) err: Error,
    pub(crate) rec: Record,
    pub(crate) ring: usize,
    pub(crate) seqno: u64,
    pub(crate) cmd_va: u64,
    pub(crate) cmd_size: u32,
    pub(crate) ring_off: usize,
    pub(crate) ring_dwords: [u32; JOB_BYTES / 4],
}

/// Text for a coredump.
struct DumpBuf(VVec<u8>);

impl core::fmt::Write for DumpBuf {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0
            .extend_from_slice(s.as_bytes(), GFP_KERNEL)
            .map_err(|_| core::fmt::Error)
    }
}

/// Write the coredump of `q`'s failure `info` (process context, after the
/// failed fence signalled).
pub(crate) fn write(q: &Arc<Queue>, info: &DumpInfo) {
    use core::fmt::Write;
    let gpu = &q.gpu;
    if gpu.is_dead() {
        return;
    }
    let mut d = DumpBuf(VVec::new());
    let rec = &info.rec;
    let _ = writeln!(d, "ferrite coredump");
    let _ = writeln!(d, "device: {}", gpu.dev.name().to_str().unwrap_or("?"));
    let _ = writeln!(
        d,
        "queue: {} ring: {} priority: {:?} error: {:?}",
        q.id, info.ring, q.prio, info.err
    );
    let _ = writeln!(
        d,
        "record: state {} q_error {} fault_addr {:#x} fault_status {:#x}",
        rec.state, rec.error, rec.fault_addr, rec.fault_status
    );
    let _ = writeln!(
        d,
        "job: seqno {} cmd_va {:#x} cmd_size {}",
        info.seqno, info.cmd_va, info.cmd_size
    );
    let _ = writeln!(d, "ring at {:#x}:", info.ring_off);
    for w in info.ring_dwords.iter() {
        let _ = writeln!(d, "  {:08x}", w);
    }
    let _ = writeln!(d, "vm {} mappings:", q.vm.id);
    // Written after the fence signalled: waiting for the VM's lock holds up
    // no fence. The mappings are those of now (the submitter may have
    // changed some since the failure).
    q.vm.for_each_mapping(|va, m| {
        let _ = m.write_line(&mut d, va);
    });
    // The core may vfree() what it is given: never an empty vector.
    if d.0.is_empty() {
        return;
    }
    // One dump at a time: the core keeps the first until it is read or
    // times out and drops the others, but its check is not atomic.
    let _one = gpu.dumps.lock();
    kernel::devcoredump::dev_coredump(&gpu.dev, d.0);
}
