// SPDX-License-Identifier: GPL-2.0
//! A test bed that drives the device model the way a driver would:
//! through registers, page tables in guest memory and rings. Used by the
//! tests, the fuzz target and the benchmark.

use std::fs::File;
use std::os::fd::FromRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::device::{Device, Options};
use crate::mmu::desc;
use crate::regs::*;

/// Guest memory size: bus addresses 0..MEM.
pub const MEM: u64 = 64 << 20;
pub const PT_POOL: u64 = 0x10_0000;
pub const RING_PA: u64 = 0x40_0000;
pub const RING_SIZE: u32 = 0x1000;
pub const RING_VA: u64 = 0x7000_0000_0000;
pub const DATA_PA: u64 = 0x100_0000;

fn memfd(size: u64) -> File {
    // SAFETY: memfd_create with a valid name; the fd is owned by the File.
    let fd = unsafe { libc::memfd_create(c"guest".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0);
    // SAFETY: fresh owned fd.
    let f = unsafe { File::from_raw_fd(fd) };
    f.set_len(size).unwrap();
    f
}

/// A device with [`MEM`] bytes of guest memory at bus address 0, its
/// queue workers running, and a root table for each slot.
pub struct Gpu {
    pub dev: Arc<Device>,
    /// Guest memory, mapped at bus address 0.
    _mem: File,
    next_pt: u64,
    /// The root table of each slot.
    pub roots: [u64; NUM_AS],
    va_bits: u32,
    tails: [u32; NUM_QUEUES],
}

impl Drop for Gpu {
    fn drop(&mut self) {
        self.dev.stop();
    }
}

pub fn as_off(slot: usize, reg: u32) -> u32 {
    AS_BASE + AS_STRIDE * slot as u32 + reg
}

pub fn q_off(q: usize, reg: u32) -> u32 {
    QUEUE_BASE + QUEUE_STRIDE * q as u32 + reg
}

/// Memory an LPAE table encoder writes into.
pub(crate) trait TableMem {
    fn read_desc(&mut self, pa: u64) -> u64;
    fn write_desc(&mut self, pa: u64, desc: u64);
    /// A zeroed page for a new table.
    fn alloc_table(&mut self) -> u64;
}

impl TableMem for Gpu {
    fn read_desc(&mut self, pa: u64) -> u64 {
        self.pread64(pa)
    }

    fn write_desc(&mut self, pa: u64, desc: u64) {
        self.pwrite64(pa, desc)
    }

    fn alloc_table(&mut self) -> u64 {
        self.alloc_pt()
    }
}

/// An LPAE stage-1 encoder written from the spec, independently of the
/// model's walker: map `va` -> `pa` with a leaf at `level` (3 = 4K page,
/// 2 = 2M block, 1 = 1G block) in the tables rooted at `root`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn encode_map(
    m: &mut impl TableMem,
    root: u64,
    va_bits: u32,
    va: u64,
    pa: u64,
    level: u32,
    ro: bool,
    xn: bool,
) {
    let mut table = root;
    let mut lvl = 4 - (va_bits - 12).div_ceil(9);
    while lvl < level {
        let idx = (va >> (12 + 9 * (3 - lvl))) & 0x1ff;
        let d = m.read_desc(table + idx * 8);
        table = if d & 3 == 3 {
            d & desc::ADDR_MASK
        } else {
            let t = m.alloc_table();
            m.write_desc(table + idx * 8, t | 3);
            t
        };
        lvl += 1;
    }
    let idx = (va >> (12 + 9 * (3 - lvl))) & 0x1ff;
    let mut d = pa | desc::AF | desc::AP_UNPRIV | if lvl == 3 { 3 } else { 1 };
    if ro {
        d |= desc::AP_RDONLY;
    }
    if xn {
        d |= desc::XN;
    }
    m.write_desc(table + idx * 8, d);
}

impl Default for Gpu {
    fn default() -> Self {
        Self::new()
    }
}

impl Gpu {
    pub fn new() -> Gpu {
        Self::with(Options::default())
    }

    pub fn with(opts: Options) -> Gpu {
        let dev = Arc::new(Device::new(opts));
        let mem = memfd(MEM);
        dev.memory().map(0, MEM, &mem, 0).unwrap();
        dev.start();
        let mut g = Gpu {
            dev,
            _mem: mem,
            next_pt: PT_POOL,
            roots: [0; NUM_AS],
            va_bits: 48,
            tails: [0; NUM_QUEUES],
        };
        for s in 0..NUM_AS {
            g.roots[s] = g.alloc_pt();
        }
        g
    }

    pub fn r32(&self, off: u32) -> u32 {
        self.dev.mmio_read(off)
    }

    pub fn w32(&self, off: u32, v: u32) {
        self.dev.mmio_write(off, v)
    }

    pub fn w64(&self, off: u32, v: u64) {
        self.w32(off, v as u32);
        self.w32(off + 4, (v >> 32) as u32);
    }

    pub fn counter(&self, i: usize) -> u64 {
        let lo = self.r32(COUNTER_BASE + 8 * i as u32);
        u64::from(lo) | (u64::from(self.r32(COUNTER_BASE + 8 * i as u32 + 4)) << 32)
    }

    pub fn alloc_pt(&mut self) -> u64 {
        let p = self.next_pt;
        self.next_pt += 4096;
        assert!(self.next_pt <= RING_PA);
        p
    }

    pub fn pread(&self, pa: u64, buf: &mut [u8]) {
        self.dev.memory().read(pa, buf).unwrap();
    }

    pub fn pwrite(&self, pa: u64, buf: &[u8]) {
        self.dev.memory().write(pa, buf).unwrap();
    }

    pub fn pread64(&self, pa: u64) -> u64 {
        let mut b = [0u8; 8];
        self.pread(pa, &mut b);
        u64::from_le_bytes(b)
    }

    pub fn pwrite64(&self, pa: u64, v: u64) {
        self.pwrite(pa, &v.to_le_bytes());
    }

    /// Map va -> pa in slot's table with a leaf at `level` (3 = 4K page,
    /// 2 = 2M block, 1 = 1G block).
    pub fn map(&mut self, slot: usize, va: u64, pa: u64, level: u32, ro: bool, xn: bool) {
        let (root, va_bits) = (self.roots[slot], self.va_bits);
        encode_map(self, root, va_bits, va, pa, level, ro, xn);
    }

    /// Map `len` bytes of 4K pages.
    pub fn map_range(&mut self, slot: usize, va: u64, pa: u64, len: u64) {
        for off in (0..len).step_by(4096) {
            self.map(slot, va + off, pa + off, 3, false, false);
        }
    }

    /// Map a 4K page for privileged (ring) accesses only: AP[1] clear.
    pub fn map_privileged(&mut self, slot: usize, va: u64, pa: u64) {
        self.map(slot, va, pa, 3, false, true);
        let mut table = self.roots[slot];
        for lvl in 0..4 {
            let at = table + ((va >> (12 + 9 * (3 - lvl))) & 0x1ff) * 8;
            let d = self.pread64(at);
            if lvl == 3 {
                self.pwrite64(at, d & !desc::AP_UNPRIV);
                return;
            }
            table = d & desc::ADDR_MASK;
        }
    }

    pub fn unmap(&mut self, slot: usize, va: u64) {
        let mut table = self.roots[slot];
        for lvl in 0..4 {
            let idx = (va >> (12 + 9 * (3 - lvl))) & 0x1ff;
            let d = self.pread64(table + idx * 8);
            if lvl == 3 || d & 3 != 3 {
                self.pwrite64(table + idx * 8, 0);
                return;
            }
            table = d & desc::ADDR_MASK;
        }
    }

    pub fn enable_as(&self, slot: usize, stall: bool) {
        self.w64(as_off(slot, as_reg::TRANSTAB_LO), self.roots[slot]);
        let cfg = self.va_bits | as_config::ENABLE | if stall { as_config::STALL } else { 0 };
        self.w32(as_off(slot, as_reg::CONFIG), cfg);
        self.w32(as_off(slot, as_reg::COMMAND), as_cmd::UPDATE);
    }

    pub fn flush_range(&self, slot: usize, va: u64, len: u64) {
        self.w64(as_off(slot, as_reg::LOCKADDR_LO), va);
        self.w64(as_off(slot, as_reg::LOCKSIZE_LO), len);
        self.w32(as_off(slot, as_reg::COMMAND), as_cmd::FLUSH_RANGE);
    }

    /// Set up queue q on slot with its ring at RING_VA + q pages.
    pub fn setup_queue(&mut self, q: usize, slot: usize) {
        let va = RING_VA + (q as u64) * 0x1000;
        let pa = RING_PA + (q as u64) * 0x1000;
        self.map(slot, va, pa, 3, false, false);
        self.w64(q_off(q, q_reg::RING_BASE_LO), va);
        self.w32(q_off(q, q_reg::RING_SIZE), RING_SIZE);
        self.w32(q_off(q, q_reg::AS), slot as u32);
        self.tails[q] = 0;
        self.w32(q_off(q, q_reg::CONTROL), q_control::ENABLE);
    }

    /// Append a command to queue q's ring and ring the doorbell.
    pub fn submit(&mut self, q: usize, cmd: &[u32]) {
        let pa = RING_PA + (q as u64) * 0x1000;
        for &d in cmd {
            self.pwrite(pa + u64::from(self.tails[q]), &d.to_le_bytes());
            self.tails[q] = (self.tails[q] + 4) % RING_SIZE;
        }
        self.w32(q_off(q, q_reg::TAIL), self.tails[q]);
    }

    /// Append several commands with one write of ring memory and one
    /// doorbell, as a driver submits a job.
    pub fn submit_batch(&mut self, q: usize, cmds: &[u32]) {
        let pa = RING_PA + (q as u64) * 0x1000;
        let mut buf = Vec::with_capacity(cmds.len() * 4);
        let start = self.tails[q];
        for &d in cmds {
            buf.extend_from_slice(&d.to_le_bytes());
        }
        let first = ((RING_SIZE - start) as usize).min(buf.len());
        self.pwrite(pa + u64::from(start), &buf[..first]);
        self.pwrite(pa, &buf[first..]);
        self.tails[q] = ((start as usize + buf.len()) % RING_SIZE as usize) as u32;
        self.w32(q_off(q, q_reg::TAIL), self.tails[q]);
    }

    pub fn qstatus(&self, q: usize) -> u32 {
        self.r32(q_off(q, q_reg::STATUS))
    }

    /// Wait until q consumed its ring or stopped; returns Q_STATUS.
    pub fn wait_idle(&self, q: usize) -> u32 {
        let t0 = Instant::now();
        loop {
            let st = self.qstatus(q);
            let head = self.r32(q_off(q, q_reg::HEAD));
            if st & (q_status::FAULTED | q_status::ERROR | q_status::STALLED | q_status::SUSPENDED)
                != 0
                || (head == self.tails[q] && st & q_status::BUSY == 0)
            {
                return st;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "queue {q} did not go idle: status {st:#x}"
            );
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// The TAIL the test bed last wrote for queue q.
    pub fn tail(&self, q: usize) -> u32 {
        self.tails[q]
    }

    /// Write queue q's TAIL (and remember it for `wait_idle`).
    pub fn set_tail(&mut self, q: usize, tail: u32) {
        self.tails[q] = tail;
        self.w32(q_off(q, q_reg::TAIL), tail);
    }

    /// Write dwords to guest memory (an indirect buffer).
    pub fn pwrite_words(&self, pa: u64, words: &[u32]) {
        let b: Vec<u8> = words.iter().flat_map(|d| d.to_le_bytes()).collect();
        self.pwrite(pa, &b);
    }

    /// Request a suspend of queue q.
    pub fn suspend(&self, q: usize) {
        self.w32(
            q_off(q, q_reg::CONTROL),
            q_control::ENABLE | q_control::SUSPEND,
        );
    }

    /// Wait until q is suspended or stopped; returns Q_STATUS.
    pub fn wait_suspended(&self, q: usize) -> u32 {
        let t0 = Instant::now();
        loop {
            let st = self.qstatus(q);
            if st & (q_status::SUSPENDED | q_status::FAULTED | q_status::ERROR) != 0 {
                return st;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "queue {q} did not suspend: status {st:#x}"
            );
            std::thread::sleep(Duration::from_micros(50));
        }
    }

    /// Reset queue q, program it with the ring of queue `ring` (its
    /// addresses in the test bed, and the TAIL last written for it), slot
    /// `slot` and the context at `ctx_va`, and restore it.
    pub fn restore_queue(&mut self, q: usize, ring: usize, slot: usize, ctx_va: u64) {
        self.w32(q_off(q, q_reg::CONTROL), q_control::RESET);
        self.w64(
            q_off(q, q_reg::RING_BASE_LO),
            RING_VA + (ring as u64) * 0x1000,
        );
        self.w32(q_off(q, q_reg::RING_SIZE), RING_SIZE);
        self.w32(q_off(q, q_reg::AS), slot as u32);
        self.w64(q_off(q, q_reg::CONTEXT_LO), ctx_va);
        let tail = self.tails[ring];
        self.set_tail(q, tail);
        self.w32(
            q_off(q, q_reg::CONTROL),
            q_control::ENABLE | q_control::RESTORE,
        );
    }

    pub fn clean_cache(&self) {
        self.w32(CACHE_CMD, cache::CLEAN | cache::INVALIDATE);
    }
}

fn hdr(op: u32, flags: u32, len: u32) -> u32 {
    op | (flags << 8) | (len << 16)
}

fn lo(v: u64) -> u32 {
    v as u32
}

fn hi(v: u64) -> u32 {
    (v >> 32) as u32
}

pub fn nop(len: u32) -> Vec<u32> {
    let mut v = vec![hdr(op::NOP, 0, len)];
    v.resize(len as usize, 0);
    v
}

pub fn fill(dst: u64, size: u64, pat: u32) -> Vec<u32> {
    vec![
        hdr(op::FILL, 0, 6),
        lo(dst),
        hi(dst),
        lo(size),
        hi(size),
        pat,
    ]
}

/// A command with the (dst, src, size) operands of COPY and CHECKSUM.
fn dst_src_size(op: u32, dst: u64, src: u64, size: u64) -> Vec<u32> {
    vec![
        hdr(op, 0, 7),
        lo(dst),
        hi(dst),
        lo(src),
        hi(src),
        lo(size),
        hi(size),
    ]
}

pub fn copy(dst: u64, src: u64, size: u64) -> Vec<u32> {
    dst_src_size(op::COPY, dst, src, size)
}

pub fn checksum(dst: u64, src: u64, size: u64) -> Vec<u32> {
    dst_src_size(op::CHECKSUM, dst, src, size)
}

pub fn write64(dst: u64, val: u64, flags: u32) -> Vec<u32> {
    vec![
        hdr(op::WRITE64, flags, 5),
        lo(dst),
        hi(dst),
        lo(val),
        hi(val),
    ]
}

pub fn wait(addr: u64, val: u64) -> Vec<u32> {
    vec![hdr(op::WAIT, 0, 5), lo(addr), hi(addr), lo(val), hi(val)]
}

pub fn timestamp(dst: u64) -> Vec<u32> {
    vec![hdr(op::TIMESTAMP, 0, 3), lo(dst), hi(dst)]
}

pub fn flush(flags: u32) -> Vec<u32> {
    vec![hdr(op::FLUSH, flags, 1)]
}

pub fn call(ib: u64, size: u32) -> Vec<u32> {
    vec![hdr(op::CALL, 0, 4), lo(ib), hi(ib), size]
}

/// FNV-1a 64, computed independently of the model.
pub fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}
