// SPDX-License-Identifier: GPL-2.0
//! Preemption: suspending a queue inside a job, saving its context and
//! restoring it, on the same queue or another one, driven through the
//! registers as a driver would. The context save area is parsed here from
//! the offsets of the spec, independently of the model.

use std::time::{Duration, Instant};

use ferrite_gpu_model::regs::*;
use ferrite_gpu_model::testbed::*;

const VA: u64 = 0x1_0000_0000;
/// The context save area: a privileged page (jobs cannot reach it).
const CTX_VA: u64 = 0x2_0000_0000;
const CTX_PA: u64 = 0x80_0000;

/// A GPU with `len` bytes of data at VA, the save-area page and queue 0.
fn gpu(len: u64) -> Gpu {
    gpu_with(len, false)
}

fn gpu_with(len: u64, stall: bool) -> Gpu {
    let mut g = Gpu::new();
    g.map_range(0, VA, DATA_PA, len);
    g.map_privileged(0, CTX_VA, CTX_PA);
    g.enable_as(0, stall);
    g.setup_queue(0, 0);
    g.w64(q_off(0, q_reg::CONTEXT_LO), CTX_VA);
    g
}

/// The context save area, decoded from the spec's layout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Saved {
    magic: u32,
    version: u32,
    head: u32,
    depth: u32,
    progress: u64,
    partial: u64,
    seqno: u64,
    suspends: u32,
    reserved: u32,
    request_ts: u64,
    saved_ts: u64,
    frames: [(u64, u32, u32); 4],
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn read_ctx(g: &Gpu) -> Saved {
    let mut b = [0u8; 128];
    g.pread(CTX_PA, &mut b);
    let mut frames = [(0, 0, 0); 4];
    for (i, f) in frames.iter_mut().enumerate() {
        let at = 0x40 + 16 * i;
        *f = (le64(&b, at), le32(&b, at + 8), le32(&b, at + 12));
    }
    Saved {
        magic: le32(&b, 0x00),
        version: le32(&b, 0x04),
        head: le32(&b, 0x08),
        depth: le32(&b, 0x0c),
        progress: le64(&b, 0x10),
        partial: le64(&b, 0x18),
        seqno: le64(&b, 0x20),
        suspends: le32(&b, 0x28),
        reserved: le32(&b, 0x2c),
        request_ts: le64(&b, 0x30),
        saved_ts: le64(&b, 0x38),
        frames,
    }
}

fn write_ctx(g: &Gpu, c: &Saved) {
    let mut b = [0u8; 128];
    b[0x00..0x04].copy_from_slice(&c.magic.to_le_bytes());
    b[0x04..0x08].copy_from_slice(&c.version.to_le_bytes());
    b[0x08..0x0c].copy_from_slice(&c.head.to_le_bytes());
    b[0x0c..0x10].copy_from_slice(&c.depth.to_le_bytes());
    b[0x10..0x18].copy_from_slice(&c.progress.to_le_bytes());
    b[0x18..0x20].copy_from_slice(&c.partial.to_le_bytes());
    b[0x20..0x28].copy_from_slice(&c.seqno.to_le_bytes());
    b[0x28..0x2c].copy_from_slice(&c.suspends.to_le_bytes());
    b[0x2c..0x30].copy_from_slice(&c.reserved.to_le_bytes());
    b[0x30..0x38].copy_from_slice(&c.request_ts.to_le_bytes());
    b[0x38..0x40].copy_from_slice(&c.saved_ts.to_le_bytes());
    for (i, f) in c.frames.iter().enumerate() {
        let at = 0x40 + 16 * i;
        b[at..at + 8].copy_from_slice(&f.0.to_le_bytes());
        b[at + 8..at + 12].copy_from_slice(&f.1.to_le_bytes());
        b[at + 12..at + 16].copy_from_slice(&f.2.to_le_bytes());
    }
    g.pwrite(CTX_PA, &b);
}

/// "At ring offset `head`, nothing in progress".
fn fresh_ctx(head: u32) -> Saved {
    Saved {
        magic: 0x5854_4346,
        version: 1,
        head,
        ..Default::default()
    }
}

fn bytes_of(words: &[u32]) -> u32 {
    4 * words.len() as u32
}

fn r64(g: &Gpu, q: usize, lo: u32) -> u64 {
    u64::from(g.r32(q_off(q, lo))) | (u64::from(g.r32(q_off(q, lo + 4))) << 32)
}

/// Wait until `cond` holds on Q_STATUS of q.
fn wait_status(g: &Gpu, q: usize, what: &str, cond: impl Fn(u32) -> bool) -> u32 {
    let t0 = Instant::now();
    loop {
        let st = g.qstatus(q);
        if cond(st) {
            return st;
        }
        assert!(
            st & (q_status::ERROR | q_status::FAULTED) == 0,
            "queue {q} stopped waiting for {what}: status {st:#x} error {}",
            g.r32(q_off(q, q_reg::ERROR))
        );
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "queue {q}: no {what}: status {st:#x}"
        );
        std::thread::sleep(Duration::from_micros(50));
    }
}

/// Suspend q, wait for it and check what every suspend must give.
fn suspend_and_check(g: &Gpu, q: usize) -> Saved {
    g.suspend(q);
    let st = g.wait_suspended(q);
    assert_eq!(
        st & (q_status::SUSPENDED
            | q_status::ENABLED
            | q_status::BUSY
            | q_status::WAITING
            | q_status::STALLED
            | q_status::ERROR
            | q_status::FAULTED),
        q_status::SUSPENDED,
        "status {st:#x}"
    );
    assert_ne!(g.r32(JOB_IRQ_STATUS) & (1 << (8 + q)), 0);
    assert_eq!(
        g.r32(q_off(q, q_reg::CONTROL)),
        0,
        "ENABLE and SUSPEND clear"
    );
    let c = read_ctx(g);
    assert_eq!((c.magic, c.version, c.reserved), (0x5854_4346, 1, 0));
    assert!(c.request_ts <= c.saved_ts, "{c:?}");
    assert!(c.saved_ts <= g.dev.timestamp());
    assert_eq!(c.head, g.r32(q_off(q, q_reg::HEAD)));
    assert_eq!(c.seqno, r64(g, q, q_reg::SEQNO_LO));
    assert_eq!(c.progress % 4096, 0);
    for f in &c.frames[c.depth as usize..] {
        assert_eq!(*f, (0, 0, 0));
    }
    g.w32(JOB_IRQ_STATUS, 1 << (8 + q));
    c
}

fn fnv_n(mut h: u64, n: usize) -> u64 {
    for _ in 0..n {
        h = fnv(&h.to_le_bytes());
    }
    h
}

/// Pseudo-random bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

#[test]
fn identity_is_version_1_1_or_later_with_preempt() {
    let g = Gpu::new();
    let v = g.r32(VERSION);
    assert!(v >> 16 == 1 && v & 0xffff >= 1, "VERSION {v:#x}");
    assert_ne!(g.r32(FEATURES) & (1 << 4), 0);
    // Q_CONTEXT is RW, 64-byte aligned.
    g.w64(q_off(2, q_reg::CONTEXT_LO), 0x1234_5678_9abc_deff);
    assert_eq!(r64(&g, 2, q_reg::CONTEXT_LO), 0x1234_5678_9abc_dec0);
    g.w32(q_off(2, q_reg::CONTROL), q_control::RESET);
    assert_eq!(r64(&g, 2, q_reg::CONTEXT_LO), 0);
}

#[test]
fn suspend_inside_nested_calls() {
    let mut g = gpu(0x1_0000);
    let (h, sem, done) = (VA, VA + 0x100, VA + 0x200);
    let h0 = 0x0123_4567_89ab_cdefu64;
    g.pwrite64(DATA_PA, h0);
    // Depth 3: a hash step, a WAIT, another hash step and a marker.
    let ib_c: Vec<u32> = [
        checksum(h, h, 8),
        wait(sem, 1),
        checksum(h, h, 8),
        write64(done, 0xc, 0),
    ]
    .concat();
    let (ib_c_va, ib_b_va, ib_a_va) = (VA + 0x3000, VA + 0x2000, VA + 0x1000);
    let ib_b: Vec<u32> = [nop(2), call(ib_c_va, bytes_of(&ib_c)), checksum(h, h, 8)].concat();
    let ib_a: Vec<u32> = [checksum(h, h, 8), call(ib_b_va, bytes_of(&ib_b)), nop(1)].concat();
    g.pwrite_words(DATA_PA + 0x3000, &ib_c);
    g.pwrite_words(DATA_PA + 0x2000, &ib_b);
    g.pwrite_words(DATA_PA + 0x1000, &ib_a);
    g.submit(0, &write64(VA + 0x300, 5, write64::SEQNO));
    let call_at = g.tail(0);
    g.submit_batch(
        0,
        &[
            call(ib_a_va, bytes_of(&ib_a)),
            flush(cache::CLEAN),
            write64(VA + 0x308, 6, write64::SEQNO),
        ]
        .concat(),
    );
    wait_status(&g, 0, "WAITING", |st| st & q_status::WAITING != 0);
    let c = suspend_and_check(&g, 0);
    assert_eq!((c.head, c.depth, c.progress, c.partial), (call_at, 3, 0, 0));
    assert_eq!(c.seqno, 5);
    assert_eq!(c.suspends, 1);
    assert_eq!(c.frames[0], (ib_a_va, bytes_of(&ib_a), 28));
    assert_eq!(c.frames[1], (ib_b_va, bytes_of(&ib_b), 8));
    assert_eq!(c.frames[2], (ib_c_va, bytes_of(&ib_c), 28));
    // The suspend cleaned the cache: two hash steps are in memory.
    assert_eq!(g.pread64(DATA_PA), fnv_n(h0, 2));
    // Suspended: nothing runs, ENABLE alone is ignored.
    g.pwrite64(DATA_PA + 0x100, 1);
    g.w32(q_off(0, q_reg::CONTROL), q_control::ENABLE);
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(g.qstatus(0), q_status::SUSPENDED);
    assert_eq!(g.pread64(DATA_PA + 0x200), 0);
    // Resume where it stopped, on the same queue.
    g.w32(
        q_off(0, q_reg::CONTROL),
        q_control::ENABLE | q_control::RESTORE,
    );
    let st = g.wait_idle(0);
    assert_eq!(st & (q_status::ERROR | q_status::FAULTED), 0, "{st:#x}");
    g.clean_cache();
    assert_eq!(
        g.pread64(DATA_PA),
        fnv_n(h0, 4),
        "a hash step lost or repeated"
    );
    assert_eq!(g.pread64(DATA_PA + 0x200), 0xc);
    assert_eq!(r64(&g, 0, q_reg::SEQNO_LO), 6);
    // The save area keeps its count; a restore does not change it.
    assert_eq!(read_ctx(&g).suspends, 1);
}

#[test]
fn suspend_inside_wait_and_resume_on_another_queue() {
    let mut g = gpu(0x1_0000);
    let (h, sem, fence) = (VA, VA + 0x100, VA + 0x200);
    let h0 = 42u64;
    g.pwrite64(DATA_PA, h0);
    g.submit(0, &write64(VA + 0x300, 3, write64::SEQNO));
    g.submit(0, &checksum(h, h, 8));
    let wait_at = g.tail(0);
    g.submit(0, &wait(sem, 5));
    g.submit(0, &checksum(h, h, 8));
    g.submit(0, &write64(fence, 7, write64::FLUSH | write64::SEQNO));
    wait_status(&g, 0, "WAITING", |st| st & q_status::WAITING != 0);
    let c = suspend_and_check(&g, 0);
    assert_eq!((c.head, c.depth, c.progress), (wait_at, 0, 0));
    assert_eq!(c.seqno, 3);
    // The queue that suspended is free: reset it.
    g.w32(q_off(0, q_reg::CONTROL), q_control::RESET);
    assert_eq!(g.qstatus(0), 0);
    // Resume on queue 5: the WAIT is evaluated again, and still waits.
    g.pwrite64(DATA_PA + 0x100, 4);
    g.restore_queue(5, 0, 0, CTX_VA);
    wait_status(&g, 5, "WAITING", |st| st & q_status::WAITING != 0);
    assert_eq!(g.r32(q_off(5, q_reg::HEAD)), wait_at);
    assert_eq!(r64(&g, 5, q_reg::SEQNO_LO), 3);
    assert_eq!(g.r32(q_off(5, q_reg::CONTROL)), q_control::ENABLE);
    g.pwrite64(DATA_PA + 0x100, 5);
    let st = g.wait_idle(5);
    assert_eq!(st & (q_status::ERROR | q_status::FAULTED), 0);
    g.clean_cache();
    assert_eq!(g.pread64(DATA_PA + 0x200), 7);
    assert_eq!(g.pread64(DATA_PA), fnv_n(h0, 2));
    assert_eq!(r64(&g, 5, q_reg::SEQNO_LO), 7);
    assert_eq!(g.qstatus(0), 0, "queue 0 did nothing after its reset");
}

#[test]
fn suspend_inside_a_long_copy() {
    const SIZE: u64 = 16 << 20;
    let mut g = Gpu::new();
    // 2 MiB blocks over the data: the copy is long, the setup short.
    for off in (0..2 * SIZE).step_by(2 << 20) {
        g.map(0, VA + off, DATA_PA + off, 2, false, false);
    }
    g.map_privileged(0, CTX_VA, CTX_PA);
    g.enable_as(0, false);
    g.setup_queue(0, 0);
    g.w64(q_off(0, q_reg::CONTEXT_LO), CTX_VA);
    let src = Rng(7).bytes(SIZE as usize);
    g.pwrite(DATA_PA, &src);
    let copy_at = g.tail(0);
    g.submit(0, &copy(VA + SIZE, VA, SIZE));
    wait_status(&g, 0, "BUSY", |st| st & q_status::BUSY != 0);
    let c = suspend_and_check(&g, 0);
    assert_eq!((c.head, c.depth, c.partial), (copy_at, 0, 0));
    assert!(
        c.progress > 0 && c.progress < SIZE && c.progress.is_multiple_of(4096),
        "progress {:#x}",
        c.progress
    );
    // Everything before `progress` is in memory, nothing after it.
    let mut dst = vec![0u8; SIZE as usize];
    g.pread(DATA_PA + SIZE, &mut dst);
    let p = c.progress as usize;
    assert!(dst[..p] == src[..p], "the steps done are not in memory");
    assert!(
        dst[p..].iter().all(|&b| b == 0),
        "a step after progress ran"
    );
    g.w32(q_off(0, q_reg::CONTROL), q_control::RESET);
    g.restore_queue(2, 0, 0, CTX_VA);
    let st = g.wait_idle(2);
    assert_eq!(st & (q_status::ERROR | q_status::FAULTED), 0);
    g.clean_cache();
    g.pread(DATA_PA + SIZE, &mut dst);
    assert!(dst == src, "the copy is not exact");
}

#[test]
fn suspend_inside_a_long_checksum_repeatedly() {
    const SIZE: u64 = 12 << 20;
    let mut g = Gpu::new();
    for off in (0..SIZE + (2 << 20)).step_by(2 << 20) {
        g.map(0, VA + off, DATA_PA + off, 2, false, false);
    }
    g.map_privileged(0, CTX_VA, CTX_PA);
    g.enable_as(0, false);
    g.setup_queue(0, 0);
    g.w64(q_off(0, q_reg::CONTEXT_LO), CTX_VA);
    let src = Rng(11).bytes(SIZE as usize);
    g.pwrite(DATA_PA, &src);
    let out = VA + SIZE;
    g.submit(0, &checksum(out, VA, SIZE));
    g.submit(0, &write64(out + 8, 1, write64::FLUSH));
    let mut q = 0;
    let mut inside = 0;
    let mut last_progress = 0;
    for n in 1.. {
        // At least one step after the restore (or the end).
        let t = g.tail(q);
        wait_status(&g, q, "BUSY", |st| {
            st & q_status::BUSY != 0 || g.r32(q_off(q, q_reg::HEAD)) == t
        });
        let c = suspend_and_check(&g, q);
        assert_eq!(c.suspends, n);
        if c.progress == 0 {
            break; // done (or between the two commands)
        }
        inside += 1;
        assert!(c.progress > last_progress && c.progress < SIZE);
        assert_eq!(c.partial, fnv(&src[..c.progress as usize]), "partial hash");
        last_progress = c.progress;
        g.w32(q_off(q, q_reg::CONTROL), q_control::RESET);
        q = (q + 3) % NUM_QUEUES;
        g.restore_queue(q, 0, 0, CTX_VA);
    }
    assert!(inside >= 2, "only {inside} suspends inside the CHECKSUM");
    g.w32(
        q_off(q, q_reg::CONTROL),
        q_control::ENABLE | q_control::RESTORE,
    );
    let st = g.wait_idle(q);
    assert_eq!(st & (q_status::ERROR | q_status::FAULTED), 0);
    g.clean_cache();
    assert_eq!(
        g.pread64(DATA_PA + SIZE),
        fnv(&src),
        "the hash is not exact"
    );
    assert_eq!(g.pread64(DATA_PA + SIZE + 8), 1);
}

#[test]
fn suspend_in_a_stall_redoes_the_stalled_step() {
    let mut g = gpu_with(0x1_0000, true);
    // src = VA.., dst = VA + 0x10000.. with its 6th page missing.
    let dst_va = VA + 0x1_0000;
    for p in 0..8u64 {
        if p != 5 {
            let (va, pa) = (dst_va + p * 4096, DATA_PA + 0x1_0000 + p * 4096);
            g.map(0, va, pa, 3, false, false);
        }
    }
    let src = Rng(3).bytes(0x8000);
    g.pwrite(DATA_PA, &src);
    let copy_at = g.tail(0);
    g.submit(0, &copy(dst_va, VA, 0x8000));
    g.submit(0, &write64(VA + 0xc000, 9, write64::FLUSH));
    wait_status(&g, 0, "STALLED", |st| st & q_status::STALLED != 0);
    let c = suspend_and_check(&g, 0);
    assert_eq!((c.head, c.depth, c.progress), (copy_at, 0, 5 * 4096));
    // The slot is still stalled: the driver fixes the tables and resumes it.
    assert_ne!(g.r32(as_off(0, as_reg::STATUS)) & as_status::STALLED, 0);
    g.map(0, dst_va + 0x5000, DATA_PA + 0x1_5000, 3, false, false);
    g.w32(as_off(0, as_reg::COMMAND), as_cmd::RESUME);
    assert_eq!(g.r32(as_off(0, as_reg::STATUS)) & as_status::STALLED, 0);
    g.w32(q_off(0, q_reg::CONTROL), q_control::RESET);
    g.restore_queue(1, 0, 0, CTX_VA);
    let st = g.wait_idle(1);
    assert_eq!(
        st & (q_status::ERROR | q_status::FAULTED | q_status::STALLED),
        0
    );
    g.clean_cache();
    let mut dst = vec![0u8; 0x8000];
    g.pread(DATA_PA + 0x1_0000, &mut dst);
    assert!(dst == src);
    assert_eq!(g.pread64(DATA_PA + 0xc000), 9);
}

#[test]
fn suspend_of_an_idle_ring() {
    let mut g = gpu(0x1000);
    g.submit(0, &write64(VA, 11, write64::SEQNO));
    g.wait_idle(0);
    let c = suspend_and_check(&g, 0);
    assert_eq!(
        (c.head, c.depth, c.progress, c.partial),
        (g.tail(0), 0, 0, 0)
    );
    assert_eq!((c.seqno, c.suspends), (11, 1));
    // A suspended queue does nothing, even with new work and ENABLE.
    g.submit(0, &write64(VA + 8, 12, write64::FLUSH));
    g.w32(q_off(0, q_reg::CONTROL), q_control::ENABLE);
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(g.qstatus(0), q_status::SUSPENDED);
    assert_eq!(g.pread64(DATA_PA + 8), 0);
    // Restored, it runs what was submitted since.
    g.w32(
        q_off(0, q_reg::CONTROL),
        q_control::ENABLE | q_control::RESTORE,
    );
    g.wait_idle(0);
    assert_eq!(g.pread64(DATA_PA + 8), 12);
    assert_eq!(g.qstatus(0) & q_status::SUSPENDED, 0);
    // Suspended again at once: the count goes on in the same area.
    let c = suspend_and_check(&g, 0);
    assert_eq!((c.head, c.suspends), (g.tail(0), 2));
}

#[test]
fn suspend_is_ignored_by_disabled_and_stopped_queues() {
    let mut g = gpu(0x1000);
    // Disabled: no context, no interrupt.
    g.w32(q_off(0, q_reg::CONTROL), 0);
    g.w32(q_off(0, q_reg::CONTROL), q_control::SUSPEND);
    g.w32(
        q_off(0, q_reg::CONTROL),
        q_control::ENABLE | q_control::SUSPEND,
    );
    // (the second write enabled it: that one suspends)
    g.wait_suspended(0);
    assert_eq!(read_ctx(&g).suspends, 1);
    g.w32(q_off(0, q_reg::CONTROL), q_control::RESET);
    g.w32(JOB_IRQ_STATUS, u32::MAX);
    g.setup_queue(0, 0);
    g.w64(q_off(0, q_reg::CONTEXT_LO), CTX_VA);
    g.w32(q_off(0, q_reg::CONTROL), q_control::SUSPEND); // ENABLE clear
    std::thread::sleep(Duration::from_millis(2));
    assert_eq!(g.qstatus(0) & q_status::SUSPENDED, 0);
    assert_eq!(read_ctx(&g).suspends, 1);
    // Stopped: the same.
    g.w32(q_off(0, q_reg::CONTROL), q_control::ENABLE);
    g.submit(0, &[0x0001_00ee]);
    assert_ne!(g.wait_idle(0) & q_status::ERROR, 0);
    g.suspend(0);
    std::thread::sleep(Duration::from_millis(2));
    assert_eq!(g.qstatus(0) & q_status::SUSPENDED, 0);
    assert_eq!(g.r32(q_off(0, q_reg::CONTROL)) & q_control::SUSPEND, 0);
    assert_eq!(g.r32(JOB_IRQ_STATUS) & (1 << 8), 0);
    assert_eq!(read_ctx(&g).suspends, 1);
}

#[test]
fn discard_a_saved_state() {
    let mut g = gpu(0x1_0000);
    let (sem, marker) = (VA + 0x100, VA + 0x200);
    let ib: Vec<u32> = [
        write64(marker, 1, write64::FLUSH),
        wait(sem, 1),
        write64(marker, 2, write64::FLUSH),
    ]
    .concat();
    g.pwrite_words(DATA_PA + 0x1000, &ib);
    g.submit(0, &call(VA + 0x1000, bytes_of(&ib)));
    g.submit(0, &write64(marker + 8, 3, write64::FLUSH));
    wait_status(&g, 0, "WAITING", |st| st & q_status::WAITING != 0);
    let c = suspend_and_check(&g, 0);
    assert_eq!(c.depth, 1);
    // Discard: reset the queue, never restore.
    g.w32(
        q_off(0, q_reg::CONTROL),
        q_control::RESET | q_control::ENABLE,
    );
    assert_eq!(g.qstatus(0), 0);
    assert_eq!(g.r32(q_off(0, q_reg::CONTROL)), 0);
    assert_eq!(r64(&g, 0, q_reg::CONTEXT_LO), 0);
    g.pwrite64(DATA_PA + 0x100, 1);
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(g.pread64(DATA_PA + 0x200), 1);
    assert_eq!(g.pread64(DATA_PA + 0x208), 0);
    // The queue is reusable.
    g.setup_queue(0, 0);
    g.submit(0, &write64(VA + 0x300, 4, write64::FLUSH));
    assert_eq!(g.wait_idle(0) & (q_status::ERROR | q_status::FAULTED), 0);
    assert_eq!(g.pread64(DATA_PA + 0x300), 4);
    assert_eq!(g.pread64(DATA_PA + 0x200), 1);
    assert_eq!(g.pread64(DATA_PA + 0x208), 0);
}

/// Restore `c` on queue 1 (running queue 0's ring) and expect BAD_CONTEXT.
fn expect_bad_context(g: &mut Gpu, c: Option<&Saved>, ctx_va: u64, what: &str) {
    if let Some(c) = c {
        write_ctx(g, c);
    }
    g.w32(JOB_IRQ_STATUS, u32::MAX);
    g.restore_queue(1, 0, 0, ctx_va);
    let st = g.wait_idle(1);
    assert_ne!(st & q_status::ERROR, 0, "{what}: status {st:#x}");
    assert_eq!(
        g.r32(q_off(1, q_reg::ERROR)),
        q_error::BAD_CONTEXT,
        "{what}"
    );
    assert_ne!(g.r32(JOB_IRQ_STATUS) & (1 << 17), 0, "{what}");
    assert_eq!(g.r32(JOB_IRQ_STATUS) & (1 << 9), 0, "{what}");
    g.w32(q_off(1, q_reg::CONTROL), q_control::RESET);
}

#[test]
fn malformed_contexts_are_bad_context() {
    let mut g = gpu(0x1_0000);
    // Queue 0's ring: a NOP, then CALL(A); A: NOP, CALL(B); B: WRITE64s.
    let marker = VA + 0x100;
    let ib_b: Vec<u32> = [write64(marker, 1, 0), write64(marker, 2, 0)].concat();
    let ib_a: Vec<u32> = [nop(1), call(VA + 0x2000, bytes_of(&ib_b))].concat();
    g.pwrite_words(DATA_PA + 0x2000, &ib_b);
    g.pwrite_words(DATA_PA + 0x1000, &ib_a);
    g.w32(q_off(0, q_reg::CONTROL), 0); // only the ring is used
    g.submit(0, &nop(1));
    let call_at = g.tail(0);
    g.submit(0, &call(VA + 0x1000, bytes_of(&ib_a)));
    g.submit(0, &fill(VA + 0x3000, 0x4000, 0x5a5a_5a5a));
    let good = Saved {
        depth: 2,
        frames: [
            (VA + 0x1000, bytes_of(&ib_a), 4),
            (VA + 0x2000, bytes_of(&ib_b), 20),
            (0, 0, 0),
            (0, 0, 0),
        ],
        ..fresh_ctx(call_at)
    };
    let cases: Vec<(&str, Saved)> = vec![
        (
            "bad magic",
            Saved {
                magic: 0x5854_4347,
                ..good
            },
        ),
        ("version 2", Saved { version: 2, ..good }),
        ("depth 5", Saved { depth: 5, ..good }),
        (
            "frame offset not a multiple of 4",
            Saved {
                frames: [good.frames[0], (VA + 0x2000, 40, 18), (0, 0, 0), (0, 0, 0)],
                ..good
            },
        ),
        (
            "frame offset beyond its size",
            Saved {
                frames: [good.frames[0], (VA + 0x2000, 40, 40), (0, 0, 0), (0, 0, 0)],
                ..good
            },
        ),
        (
            "frame 0 not the CALL at head",
            Saved {
                head: call_at - 4,
                ..good
            },
        ),
        (
            "frame 0's offset not at the CALL of frame 1",
            Saved {
                frames: [
                    (VA + 0x1000, bytes_of(&ib_a), 0),
                    good.frames[1],
                    (0, 0, 0),
                    (0, 0, 0),
                ],
                ..good
            },
        ),
        (
            "frame 1 not the buffer the CALL names",
            Saved {
                frames: [good.frames[0], (VA + 0x2004, 36, 16), (0, 0, 0), (0, 0, 0)],
                ..good
            },
        ),
        ("a frame beyond depth", Saved { depth: 1, ..good }),
        (
            "head beyond the ring",
            Saved {
                head: RING_SIZE,
                ..good
            },
        ),
        (
            "progress not a multiple of 4096",
            Saved {
                depth: 0,
                head: call_at + 16,
                progress: 100,
                frames: [(0, 0, 0); 4],
                ..good
            },
        ),
        (
            "progress beyond the FILL",
            Saved {
                depth: 0,
                head: call_at + 16,
                progress: 0x4000,
                frames: [(0, 0, 0); 4],
                ..good
            },
        ),
        (
            "progress inside a WRITE64",
            Saved {
                progress: 4096,
                ..good
            },
        ),
        (
            "a partial hash for a FILL",
            Saved {
                depth: 0,
                head: call_at + 16,
                progress: 4096,
                partial: 1,
                frames: [(0, 0, 0); 4],
                ..good
            },
        ),
        (
            "reserved not zero",
            Saved {
                reserved: 1,
                ..good
            },
        ),
    ];
    for (what, c) in &cases {
        expect_bad_context(&mut g, Some(c), CTX_VA, what);
    }
    // Nothing ran.
    g.clean_cache();
    assert_eq!(g.pread64(DATA_PA + 0x100), 0);
    // An unreadable context: BAD_CONTEXT, and the fault is recorded.
    g.w32(MMU_IRQ_STATUS, u32::MAX);
    expect_bad_context(&mut g, None, CTX_VA + 0x10_0000, "unmapped context");
    let fs = g.r32(as_off(0, as_reg::FAULTSTATUS));
    assert_eq!(fs & (fault::TYPE_MASK | fault::WRITE), fault::TRANSLATION);
    assert_eq!((fs >> fault::QUEUE_SHIFT) & 0xf, 1);
    let fa = u64::from(g.r32(as_off(0, as_reg::FAULTADDR_LO)))
        | (u64::from(g.r32(as_off(0, as_reg::FAULTADDR_HI))) << 32);
    assert_eq!(fa, CTX_VA + 0x10_0000);
    assert_ne!(g.r32(MMU_IRQ_STATUS) & 1, 0);
    // A context from a FILL in progress resumes it: only the last step.
    write_ctx(
        &g,
        &Saved {
            progress: 0x3000,
            ..fresh_ctx(call_at + 16)
        },
    );
    g.restore_queue(1, 0, 0, CTX_VA);
    assert_eq!(g.wait_idle(1) & (q_status::ERROR | q_status::FAULTED), 0);
    g.clean_cache();
    assert_eq!(g.pread64(DATA_PA + 0x100), 0);
    assert_eq!(g.pread64(DATA_PA + 0x5ff8), 0, "a step before progress ran");
    assert_eq!(g.pread64(DATA_PA + 0x6000), 0x5a5a_5a5a_5a5a_5a5a);
    // The good context resumes the CALLs where it says: the second WRITE64.
    write_ctx(&g, &good);
    g.restore_queue(1, 0, 0, CTX_VA);
    assert_eq!(g.wait_idle(1) & (q_status::ERROR | q_status::FAULTED), 0);
    g.clean_cache();
    assert_eq!(g.pread64(DATA_PA + 0x100), 2);
    assert_eq!(g.pread64(DATA_PA + 0x3000), 0x5a5a_5a5a_5a5a_5a5a);
}

#[test]
fn a_fault_writing_the_context_stops_the_queue() {
    let mut g = gpu(0x1000);
    g.w64(q_off(0, q_reg::CONTEXT_LO), CTX_VA + 0x1000); // unmapped
    g.submit(0, &wait(VA, 1));
    wait_status(&g, 0, "WAITING", |st| st & q_status::WAITING != 0);
    g.suspend(0);
    let st = g.wait_suspended(0);
    assert_eq!(
        st & (q_status::ERROR | q_status::SUSPENDED),
        q_status::ERROR
    );
    assert_eq!(g.r32(q_off(0, q_reg::ERROR)), q_error::BAD_CONTEXT);
    assert_ne!(g.r32(JOB_IRQ_STATUS) & (1 << 16), 0);
    assert_eq!(g.r32(JOB_IRQ_STATUS) & (1 << 8), 0);
    assert_ne!(g.r32(MMU_IRQ_STATUS) & 1, 0);
}

/// One generated job: its commands (in a ring CALL and nested buffers),
/// how many commands it executes, the hash it must leave, and its gates.
struct Job {
    ring: Vec<u32>,
    commands: u64,
    hash: u64,
    gates: u64,
}

/// Data layout of the long job, relative to VA / DATA_PA.
const H: u64 = 0x0; // the running hash, S right after it
const S: u64 = 0x8;
const K: u64 = 0x1_0000; // per-command constants
const SEM: u64 = 0x4_0000; // stays 0: WAIT(SEM, 0) is satisfied at once
const GATE: u64 = 0x4_0100; // gate i: WAIT(GATE, i), opened by the test
const IBS: u64 = 0x10_0000;
const BIG_SRC: u64 = 0x40_0000;
const BIG_LEN: u64 = 0x20_0000;
const H2: u64 = 0x80_0000 - 8; // a second hash, right before BIG_DST
const BIG_DST: u64 = 0x80_0000;
const JOB_MEM: u64 = 0xa0_0000;

struct Builder<'a> {
    g: &'a Gpu,
    rng: Rng,
    next_ib: u64,
    h: u64,
    h2: u64,
    s: u64,
    big_src: Vec<u8>,
    big_dst: Vec<u8>,
    commands: u64,
    k: u64,
    gates: u64,
    gate_every: u64,
    next_gate: u64,
}

impl Builder<'_> {
    fn hash_h(&mut self, with_s: bool) -> Vec<u32> {
        let mut b = self.h.to_le_bytes().to_vec();
        if with_s {
            b.extend_from_slice(&self.s.to_le_bytes());
        }
        self.h = fnv(&b);
        self.commands += 1;
        checksum(VA + H, VA + H, if with_s { 16 } else { 8 })
    }

    /// A few commands whose repetition or loss changes the hash.
    fn ops(&mut self) -> Vec<u32> {
        let mut v = Vec::new();
        match self.rng.below(16) {
            0..=5 => v.extend(self.hash_h(false)),
            6..=8 => {
                let i = self.k;
                self.k += 1;
                let val = self.rng.next();
                self.g.pwrite64(DATA_PA + K + 8 * i, val);
                v.extend(copy(VA + S, VA + K + 8 * i, 8));
                self.s = val;
                self.commands += 1;
                v.extend(self.hash_h(true));
            }
            9 | 10 => {
                let pat = self.rng.next() as u32;
                v.extend(fill(VA + S, 8, pat));
                self.s = u64::from(pat) | (u64::from(pat) << 32);
                self.commands += 1;
                v.extend(self.hash_h(true));
            }
            11 | 12 => {
                let val = self.rng.next();
                v.extend(write64(VA + S, val, 0));
                self.s = val;
                self.commands += 1;
                v.extend(self.hash_h(true));
            }
            13 => {
                v.extend(wait(VA + SEM, 0));
                self.commands += 1;
                v.extend(nop(1 + self.rng.below(3) as u32));
                self.commands += 1;
            }
            _ => v.extend(self.hash_h(false)),
        }
        v
    }

    /// A long COPY into BIG_DST and a long CHECKSUM of it, mixed into H.
    fn long_ops(&mut self) -> Vec<u32> {
        let len = (1 << 20) + 4096 * self.rng.below(64) + self.rng.below(4096);
        let off = self.rng.below(BIG_LEN - len);
        let mut v = copy(VA + BIG_DST, VA + BIG_SRC + off, len);
        let (o, l) = (off as usize, len as usize);
        self.big_dst[..l].copy_from_slice(&self.big_src[o..o + l]);
        let mut b = self.h2.to_le_bytes().to_vec();
        b.extend_from_slice(&self.big_dst);
        self.h2 = fnv(&b);
        v.extend(checksum(VA + H2, VA + H2, 8 + BIG_LEN));
        v.extend(copy(VA + S, VA + H2, 8));
        self.s = self.h2;
        self.commands += 3;
        v.extend(self.hash_h(true));
        v
    }

    /// Place an indirect buffer; returns the CALL to it.
    fn ib(&mut self, words: &[u32]) -> Vec<u32> {
        let at = self.next_ib;
        self.next_ib += (bytes_of(words) as u64).next_multiple_of(64);
        assert!(self.next_ib <= BIG_SRC, "indirect buffers overflow");
        self.g.pwrite_words(DATA_PA + at, words);
        self.commands += 1;
        call(VA + at, bytes_of(words))
    }

    /// A buffer at `depth` (1..=4) with about `n` commands.
    fn buffer(&mut self, depth: u32, n: u64) -> Vec<u32> {
        let mut v = Vec::new();
        let start = self.commands;
        while self.commands - start < n {
            if self.commands >= self.next_gate {
                self.gates += 1;
                self.next_gate += self.gate_every;
                self.commands += 1;
                v.extend(wait(VA + GATE, self.gates));
            }
            let r = self.rng.below(100);
            if depth < 4 && r < 4 + depth as u64 {
                let inner = self.buffer(depth + 1, n / 8 + 1);
                v.extend(self.ib(&inner));
            } else {
                v.extend(self.ops());
            }
        }
        v
    }
}

fn build_job(g: &Gpu, seed: u64, n: u64, long: usize, gates: u64) -> Job {
    let mut rng = Rng(seed | 1);
    let big_src = rng.bytes(BIG_LEN as usize);
    g.pwrite(DATA_PA + BIG_SRC, &big_src);
    let h0 = rng.next();
    g.pwrite64(DATA_PA + H, h0);
    let mut b = Builder {
        g,
        rng,
        next_ib: IBS,
        h: h0,
        h2: 0,
        s: 0,
        big_src,
        big_dst: vec![0; BIG_LEN as usize],
        commands: 0,
        k: 0,
        gates: 0,
        gate_every: n / (gates + 1),
        next_gate: n / (gates + 1),
    };
    // Ring: CALL(top), FLUSH, fence. The top buffer: slices of small
    // commands in nested buffers, with long commands among them.
    let mut top = Vec::new();
    for _ in 0..long {
        let inner = b.buffer(2, n / long as u64);
        top.extend(b.ib(&inner));
        let l = b.long_ops();
        top.extend(l);
    }
    let mut ring = b.ib(&top);
    ring.extend(flush(cache::CLEAN));
    ring.extend(write64(VA + 0x30, 0xfe, write64::FLUSH | write64::SEQNO));
    b.commands += 2;
    Job {
        ring,
        commands: b.commands,
        hash: b.h,
        gates: b.gates,
    }
}

#[test]
fn repeated_suspend_restore_of_one_job() {
    let seed: u64 = std::env::var("FERRITE_PREEMPT_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_cafe);
    let mut g = gpu(JOB_MEM);
    let job = build_job(&g, seed, 10_000, 6, 25);
    assert!(job.commands >= 10_000, "{} commands", job.commands);
    assert!(job.gates >= 20, "{} gates", job.gates);
    g.w32(COUNTER_RESET, 1);
    g.submit_batch(0, &job.ring);
    let tail = g.tail(0);
    let mut rng = Rng(seed ^ 0x1234_5678);
    let (mut q, mut n, mut inside, mut in_long, mut at_wait) = (0usize, 0u32, 0u32, 0u32, 0u64);
    let mut at_depth = [0u32; 5];
    let t0 = Instant::now();
    // Open the gates one by one; between two gates, suspend at one or two
    // random moments (the job cannot run past the next gate, however slow
    // or busy the machine: each stretch has its suspends).
    'job: for gate in 1..=job.gates + 1 {
        g.pwrite64(DATA_PA + GATE, gate);
        for _ in 0..1 + rng.below(2) {
            let t = Instant::now();
            let d = Duration::from_micros(rng.below(1500));
            while t.elapsed() < d {
                std::hint::spin_loop();
            }
            let c = suspend_and_check(&g, q);
            n += 1;
            assert_eq!(c.suspends, n, "suspends");
            assert!(c.depth <= 4 && c.head.is_multiple_of(4), "{c:?}");
            if c.head == tail && c.depth == 0 {
                break 'job; // the job is complete
            }
            inside += 1;
            in_long += u32::from(c.progress > 0);
            at_depth[c.depth as usize] += 1;
            if c.depth > 0 {
                // At a WAIT (a gate, or one that never waits)? It may have
                // started: a restore evaluates it again, and counts it again.
                let (ib, _, off) = c.frames[c.depth as usize - 1];
                let mut hdr = [0u8; 4];
                g.pread(DATA_PA + (ib - VA) + u64::from(off), &mut hdr);
                at_wait += u64::from(u32::from_le_bytes(hdr) & 0xff == op::WAIT);
            }
            g.w32(q_off(q, q_reg::CONTROL), q_control::RESET);
            q = rng.below(NUM_QUEUES as u64) as usize;
            g.restore_queue(q, 0, 0, CTX_VA);
        }
    }
    if g.qstatus(q) & q_status::SUSPENDED == 0 {
        let st = g.wait_idle(q);
        assert_eq!(st & (q_status::ERROR | q_status::FAULTED), 0, "{st:#x}");
    }
    eprintln!(
        "{} commands, {} gates, {n} suspends ({inside} inside the job, {in_long} inside long \
         commands, {at_wait} at a WAIT, by depth {at_depth:?}) in {:?}",
        job.commands,
        job.gates,
        t0.elapsed()
    );
    assert!(inside >= 20, "only {inside} suspends inside the job");
    g.clean_cache();
    assert_eq!(g.pread64(DATA_PA + 0x30), 0xfe, "the fence");
    assert_eq!(
        g.pread64(DATA_PA + H),
        job.hash,
        "a command was lost or repeated"
    );
    // Each command started once, but a WAIT in progress at a suspend.
    let started = g.counter(counter::COMMANDS);
    assert!(
        (job.commands..=job.commands + at_wait).contains(&started),
        "{started} commands started, {} in the job, {at_wait} suspends at a WAIT",
        job.commands
    );
}

#[test]
fn the_same_job_without_preemption_gives_the_same_hash() {
    let mut g = gpu(JOB_MEM);
    let job = build_job(&g, 0x5eed_cafe, 2_000, 2, 3);
    g.pwrite64(DATA_PA + GATE, u64::MAX);
    g.w32(COUNTER_RESET, 1);
    g.submit_batch(0, &job.ring);
    let st = g.wait_idle(0);
    assert_eq!(st & (q_status::ERROR | q_status::FAULTED), 0);
    g.clean_cache();
    assert_eq!(g.pread64(DATA_PA + H), job.hash);
    assert_eq!(g.counter(counter::COMMANDS), job.commands);
}
