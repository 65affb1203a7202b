// SPDX-License-Identifier: GPL-2.0

//! The ring format and the hardware rings.
//!
//! A queue's jobs live in a *ring buffer* of its own ([`QueueMem`]): a
//! 16 KiB ring, read-only to the device, and a fence page that holds the
//! last completed seqno and the context the device saves when it suspends
//! the queue. Both are mapped privileged in the queue's VM, so the user's
//! command buffers cannot reach them. A job is two ring commands: CALL the
//! user's command buffer, then WRITE64 the job's seqno to the fence page
//! with IRQ | FLUSH | SEQNO, so the device cache is written back before the
//! fence signals and completion costs no register read.
//!
//! The device has a few *hardware rings* ([`HwRing`]): register blocks
//! that execute one ring buffer at a time. Putting a queue on a hardware
//! ring is pointing the block at the queue's ring buffer, slot and context
//! and restoring the context; taking it off is a suspend, which saves the
//! context (even in the middle of a job: see the hardware spec's
//! "Preemption"), or a reset when the queue has nothing in flight.
//!
//! Ring buffers are kept by their VM (they stay mapped there until it
//! goes) and lent to queues that have work: an idle queue holds none.

use kernel::{
    device::{
        Bound,
        Device, //
    },
    devres::Devres,
    dma::Coherent,
    io::Io,
    prelude::*,
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc, //
    }, //
};

use crate::{
    driver::GPU_PAGE_SIZE,
    gpu::{
        Bar0,
        Gpu, //
    },
    regs::{
        self,
        cmd::{
            Header,
            Write64Flags, //
        },
        CheckedArray, //
    },
    vm::Vm, //
};

/// Ring size: 16 KiB.
pub(crate) const RING_BYTES: usize = 16 * 1024;
/// The fence page: the fence word and the context save area, one GPU page
/// (its DMA allocation takes a whole CPU page, of which the VM maps this).
const FENCE_BYTES: usize = GPU_PAGE_SIZE;
/// Bytes of ring one job takes: CALL (4 dwords) + WRITE64 (5 dwords).
pub(crate) const JOB_BYTES: usize = 9 * 4;
/// Ring offset of the job after the one at ring offset `off`.
pub(crate) const fn next_job(off: usize) -> usize {
    (off + JOB_BYTES) % RING_BYTES
}

/// Ring offset of the oldest of the last `jobs` jobs written before ring
/// offset `tail` (fewer than fit in the ring).
pub(crate) const fn first_job(tail: usize, jobs: usize) -> usize {
    (tail + RING_BYTES - (jobs * JOB_BYTES) % RING_BYTES) % RING_BYTES
}

/// Index among the ring's dwords of the `i`-th dword from ring offset
/// `off`: a job that does not fit before the ring's end goes on at its
/// start.
const fn dword_index(off: usize, i: usize) -> usize {
    (off / 4 + i) % (RING_BYTES / 4)
}

/// The ring commands of a job: CALL the `cmd_size` bytes at `cmd_va`, then
/// WRITE64 `seqno` to the fence word at `fence_va` with IRQ | FLUSH |
/// SEQNO.
fn job_dwords(cmd_va: u64, cmd_size: u32, fence_va: u64, seqno: u64) -> [u32; JOB_BYTES / 4] {
    let (ib_lo, ib_hi) = Gpu::split(cmd_va);
    let (f_lo, f_hi) = Gpu::split(fence_va);
    let (s_lo, s_hi) = Gpu::split(seqno);
    let fence_flags = Write64Flags::zeroed()
        .with_irq(true)
        .with_flush(true)
        .with_seqno(true);
    [
        Header::call(),
        ib_lo,
        ib_hi,
        cmd_size,
        Header::write64(fence_flags),
        f_lo,
        f_hi,
        s_lo,
        s_hi,
    ]
}

/// Byte offset of the context save area in the fence page.
const CTX_OFFSET: usize = 256;
/// Size of the context save area.
const CTX_BYTES: usize = 128;
/// Context magic ("FCTX") and version.
const CTX_MAGIC: u32 = 0x5854_4346;
const CTX_VERSION: u32 = 1;

/// What the driver reads back from a saved context.
#[derive(Clone, Copy, Default)]
pub(crate) struct SavedContext {
    /// CALL frames in progress: the save was inside a command buffer.
    pub(crate) depth: u32,
    /// Device time of the suspend request and of the save (ns).
    pub(crate) request_ts: u64,
    pub(crate) saved_ts: u64,
}

/// A ring buffer, its fence word and context save area, mapped in a VM.
///
/// The DMA allocations are device resources: they are freed when the
/// device is unbound, even if a file still holds the VM.
pub(crate) struct QueueMem {
    gpu: Arc<Gpu>,
    ring: Devres<Coherent<[u32]>>,
    fence: Devres<Coherent<[u64]>>,
    ring_va: u64,
    fence_va: u64,
    /// Lent to a queue.
    in_use: Atomic<bool>,
}

impl QueueMem {
    /// A ring buffer of `vm` for a queue that has work: a free one of the
    /// VM's, or a new one.
    pub(crate) fn get(gpu: &Arc<Gpu>, vm: &Arc<Vm>, dev: &Device<Bound>) -> Result<Arc<Self>> {
        let mut objs = vm.kernel_objs.lock();
        if let Some(m) = objs
            .iter()
            .find(|m| m.in_use.cmpxchg(false, true, Relaxed).is_ok())
        {
            return Ok(m.clone());
        }
        objs.reserve(1, GFP_KERNEL)?;
        let ring = Coherent::<u32>::zeroed_slice(dev, RING_BYTES / 4, GFP_KERNEL)?;
        let fence = Coherent::<u64>::zeroed_slice(dev, FENCE_BYTES / 8, GFP_KERNEL)?;
        let (ring_bus, fence_bus) = (ring.dma_address(), fence.dma_address());
        let ring_va = vm.reserve_kernel_va(RING_BYTES as u64)?;
        let fence_va = vm.reserve_kernel_va(FENCE_BYTES as u64)?;
        let mem = Arc::new(
            QueueMem {
                gpu: gpu.clone(),
                ring: Devres::new(dev, ring)?,
                fence: Devres::new(dev, fence)?,
                ring_va,
                fence_va,
                in_use: Atomic::new(true),
            },
            GFP_KERNEL,
        )?;
        // Counted until `QueueMem::drop`.
        gpu.stats
            .kmap_kernel_bytes
            .add((RING_BYTES + FENCE_BYTES) as u64, Relaxed);
        // The VM keeps the memory alive until it goes, so that no entry of
        // the maps below (even of one that failed half-way) outlives it.
        objs.push_within_capacity(mem.clone()).map_err(|_| ENOMEM)?;
        drop(objs);
        vm.map_kernel(dev, ring_va, ring_bus, RING_BYTES as u64, false)?;
        vm.map_kernel(dev, fence_va, fence_bus, FENCE_BYTES as u64, true)?;
        Ok(mem)
    }

    /// Give the ring buffer back to its VM (no lock, no allocation).
    pub(crate) fn put(&self) {
        self.in_use.store(false, Relaxed);
    }

    fn fence_ptr(&self, byte: usize) -> Option<*mut u8> {
        self.fence
            .try_access()
            .map(|f| f.as_mut_ptr().cast::<u8>().wrapping_add(byte))
    }

    /// The last seqno the device wrote; 0 once the device is gone.
    pub(crate) fn fence_value(&self) -> u64 {
        self.fence_ptr(0).map_or(0, |p| {
            // SAFETY: the fence page is a live coherent allocation of
            // `FENCE_BYTES`; the device writes it, so read it volatile.
            unsafe { core::ptr::read_volatile(p.cast::<u64>()) }
        })
    }

    /// Start the fence word at `seqno` (a ring buffer lent to a queue that
    /// completed jobs up to `seqno` in another one).
    pub(crate) fn set_fence_value(&self, seqno: u64) {
        if let Some(p) = self.fence_ptr(0) {
            // SAFETY: as above; the device does not run this ring buffer.
            unsafe { core::ptr::write_volatile(p.cast::<u64>(), seqno) };
        }
    }

    fn ctx_u32(&self, off: usize) -> u32 {
        self.fence_ptr(CTX_OFFSET + off).map_or(0, |p| {
            // SAFETY: the context area lies within the fence page and `off`
            // is an aligned offset inside it.
            unsafe { core::ptr::read_volatile(p.cast::<u32>()) }
        })
    }

    fn ctx_u64(&self, off: usize) -> u64 {
        u64::from(self.ctx_u32(off)) | (u64::from(self.ctx_u32(off + 4)) << 32)
    }

    /// The context the device saved at its last suspend.
    pub(crate) fn saved_context(&self) -> SavedContext {
        SavedContext {
            depth: self.ctx_u32(0x0c),
            request_ts: self.ctx_u64(0x30),
            saved_ts: self.ctx_u64(0x38),
        }
    }

    /// Write a context that starts at ring offset `head` with nothing in
    /// progress.
    pub(crate) fn write_fresh_context(&self, head: usize, seqno: u64) {
        let Some(p) = self.fence_ptr(CTX_OFFSET) else {
            return;
        };
        let mut words = [0u32; CTX_BYTES / 4];
        words[0] = CTX_MAGIC;
        words[1] = CTX_VERSION;
        words[2] = head as u32;
        words[8] = seqno as u32;
        words[9] = (seqno >> 32) as u32;
        for (i, w) in words.iter().enumerate() {
            // SAFETY: the context area lies within the fence page; the
            // device does not run this ring buffer while the driver writes
            // its context.
            unsafe { core::ptr::write_volatile(p.cast::<u32>().add(i), *w) };
        }
    }

    /// The dword at ring offset `off`.
    pub(crate) fn read_ring(&self, off: usize) -> u32 {
        self.ring.try_access().map_or(0, |r| {
            let base = r.as_ptr().cast::<u32>();
            // SAFETY: `dword_index` is below the ring's length in dwords.
            unsafe { core::ptr::read_volatile(base.add(dword_index(off, 0))) }
        })
    }

    /// Write the ring commands of a job at ring offset `off`.
    pub(crate) fn write_job(&self, off: usize, cmd_va: u64, cmd_size: u32, seqno: u64) {
        let Some(r) = self.ring.try_access() else {
            return;
        };
        let dwords = job_dwords(cmd_va, cmd_size, self.fence_va, seqno);
        let base = r.as_mut_ptr().cast::<u32>();
        for (i, d) in dwords.iter().enumerate() {
            // SAFETY: `dword_index` is below the ring's length in dwords; only
            // the scheduler lock's holder writes the ring, and the device
            // reads it.
            unsafe { core::ptr::write_volatile(base.add(dword_index(off, i)), *d) };
        }
    }
}

impl Drop for QueueMem {
    fn drop(&mut self) {
        self.gpu
            .stats
            .kmap_kernel_bytes
            .fetch_sub((RING_BYTES + FENCE_BYTES) as u64, Relaxed);
    }
}

/// A hardware ring: the register block of one of the device's queues.
#[derive(Clone, Copy)]
pub(crate) struct HwRing(pub(crate) usize);

impl HwRing {
    fn control(self, bar: &Bar0<'_>, v: regs::Q_CONTROL) -> Result {
        bar.write(regs::Q_CONTROL::checked_at(self.0)?, v);
        Ok(())
    }

    /// Abandon whatever the ring runs and clear its registers.
    pub(crate) fn reset(self, bar: &Bar0<'_>) -> Result {
        self.control(bar, regs::Q_CONTROL::reset_queue())
    }

    /// Run `mem` on this ring with address-space slot `slot`, from the
    /// context in `mem`, up to ring offset `tail`.
    pub(crate) fn start(self, bar: &Bar0<'_>, mem: &QueueMem, slot: usize, tail: usize) -> Result {
        let q = self.0;
        let (lo, hi) = Gpu::split(mem.ring_va);
        let (clo, chi) = Gpu::split(mem.fence_va + CTX_OFFSET as u64);
        let (b0, b1, sz, r_as, c0, c1, t) = (
            regs::Q_RING_BASE_LO::checked_at(q)?,
            regs::Q_RING_BASE_HI::checked_at(q)?,
            regs::Q_RING_SIZE::checked_at(q)?,
            regs::Q_AS::checked_at(q)?,
            regs::Q_CONTEXT_LO::checked_at(q)?,
            regs::Q_CONTEXT_HI::checked_at(q)?,
            regs::Q_TAIL::checked_at(q)?,
        );
        self.reset(bar)?;
        bar.write(b0, regs::Q_RING_BASE_LO::zeroed().with_value(lo));
        bar.write(b1, regs::Q_RING_BASE_HI::zeroed().with_value(hi));
        bar.write(
            sz,
            regs::Q_RING_SIZE::zeroed().with_bytes(RING_BYTES as u32),
        );
        bar.write(r_as, regs::Q_AS::zeroed().with_slot(slot as u32));
        bar.write(c0, regs::Q_CONTEXT_LO::zeroed().with_value(clo));
        bar.write(c1, regs::Q_CONTEXT_HI::zeroed().with_value(chi));
        bar.write(t, regs::Q_TAIL::zeroed().with_offset(tail as u32));
        self.control(bar, regs::Q_CONTROL::restore_and_run())
    }

    /// Tell the ring that commands were written up to `tail`: the
    /// doorbell, the only register access of a submission.
    pub(crate) fn doorbell(self, bar: &Bar0<'_>, tail: usize) -> Result {
        bar.write(
            regs::Q_TAIL::checked_at(self.0)?,
            regs::Q_TAIL::zeroed().with_offset(tail as u32),
        );
        Ok(())
    }

    /// Ask the ring to save its context and stop at its next suspend
    /// point; `JOB_IRQ_STATUS` says when it did.
    pub(crate) fn suspend(self, bar: &Bar0<'_>) -> Result {
        self.control(bar, regs::Q_CONTROL::request_suspend())
    }
}

#[kunit_tests(ferrite_ring)]
mod tests {
    use super::*;
    use crate::queue::MAX_INFLIGHT;

    const DWORDS: usize = RING_BYTES / 4;

    #[test]
    fn next_job_goes_round_the_ring() {
        assert_eq!(next_job(0), JOB_BYTES);
        // The ring is not a multiple of a job: the job that crosses its end
        // goes on at its start.
        let last = RING_BYTES / JOB_BYTES * JOB_BYTES;
        assert_eq!(next_job(last - JOB_BYTES), last);
        assert_eq!(next_job(last), last + JOB_BYTES - RING_BYTES);
        // As many jobs as the ring has bytes fill a whole number of rings:
        // every offset on the way is dword-aligned and inside the ring, and
        // the last is the start.
        let mut off = 0;
        for _ in 0..RING_BYTES {
            off = next_job(off);
            assert!(off < RING_BYTES && off % 4 == 0);
        }
        assert_eq!(off, 0);
    }

    #[test]
    fn first_job_undoes_next_job() {
        let starts = [
            0,
            JOB_BYTES,
            RING_BYTES / 2,
            RING_BYTES - JOB_BYTES,
            RING_BYTES - JOB_BYTES + 8,
            RING_BYTES - 4,
        ];
        for start in starts {
            let mut tail = start;
            for jobs in 0..=MAX_INFLIGHT {
                assert_eq!(first_job(tail, jobs), start);
                tail = next_job(tail);
            }
        }
    }

    #[test]
    fn dwords_wrap_at_the_ring_end() {
        assert_eq!(dword_index(0, 0), 0);
        assert_eq!(dword_index(JOB_BYTES, 1), JOB_BYTES / 4 + 1);
        // A job starting two dwords before the end.
        let off = RING_BYTES - 8;
        let idx: [usize; JOB_BYTES / 4] = core::array::from_fn(|i| dword_index(off, i));
        assert_eq!(idx, [DWORDS - 2, DWORDS - 1, 0, 1, 2, 3, 4, 5, 6]);
        // Offsets past the end (as `read_ring` may be given) wrap too.
        assert_eq!(dword_index(RING_BYTES + 4, 0), 1);
    }

    #[test]
    fn job_is_a_call_then_a_fence_write() {
        use crate::regs::cmd::Opcode;
        let d = job_dwords(0x12_3456_7000, 0x180, 0xffff_0000_1000, 0x1_0000_0002);
        // The two commands' lengths add up to a job.
        let call = Header::from_raw(d[0]);
        assert_eq!(call.opcode(), Ok(Opcode::Call));
        assert_eq!(call.dwords().get(), 4);
        let write = Header::from_raw(d[4]);
        assert_eq!(write.opcode(), Ok(Opcode::Write64));
        assert_eq!(write.dwords().get(), 5);
        assert_eq!(4 + 5, JOB_BYTES / 4);
        let flags = Write64Flags::from_raw(write.flags().get() as u8);
        assert!(flags.irq() && flags.flush() && flags.seqno());
        // Operands: the command buffer, its size, the fence word, the seqno.
        assert_eq!(&d[1..4], &[0x3456_7000, 0x12, 0x180]);
        assert_eq!(&d[5..9], &[0x0000_1000, 0xffff, 2, 1]);
    }
}
