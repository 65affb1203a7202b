// SPDX-License-Identifier: GPL-2.0
//! One step of a queue ([`Ctx::step`]): fetch the command at its position
//! (from the ring, privileged, or from an indirect buffer), execute it or
//! a chunk of it, and move the position on.

use log::trace;

use super::ctx::Ctx;
use super::{ring_ok, Done, Next, Res, Stop, CHUNK, STEP, STEP_USIZE};
use crate::bus::{Bus, QueueRegs};
use crate::command::Command;
use crate::context::{Frame, Latched, Position, CALL_BYTES};
use crate::regs::*;

impl<'a, B: Bus> Ctx<'a, B> {
    /// Execute one step of the command `dw`, the innermost command in
    /// progress at `pos`. `fresh`: the command was just fetched.
    fn execute(&mut self, dw: &[u32], pos: &mut Position, fresh: bool) -> Res<Done> {
        let cmd = Command::decode(dw);
        if pos.progress > 0 {
            // Restored inside this command: it must be a long command
            // with more to do.
            if !cmd.is_ok_and(|c| c.resumes_at(pos.progress, pos.partial)) {
                return Err(Stop::Error(q_error::BAD_CONTEXT));
            }
        } else if fresh {
            self.bus.count(counter::COMMANDS, 1);
            trace!(
                "queue {} op {:#x} flags {:#x} len {} depth {}",
                self.q,
                dw[0] & 0xff,
                (dw[0] >> 8) & 0xff,
                dw.len(),
                pos.depth
            );
        }
        match cmd.map_err(Stop::Error)? {
            Command::Nop => Ok(Done::Complete),
            Command::Fill { dst, size, pattern } => self.fill(dst, size, pattern, pos),
            Command::Copy { dst, src, size } => self.copy(dst, src, size, pos),
            Command::Checksum { dst, src, size } => self.checksum(dst, src, size, pos),
            Command::Write64 { dst, value, flags } => {
                if flags.flush {
                    let bus = self.bus;
                    bus.cache_cmd(self.s(), cache::CLEAN | cache::INVALIDATE);
                    // Written through, straight to memory (each page's
                    // part through its own translation: the value may
                    // straddle two pages, which need not be contiguous in
                    // memory, or both mapped).
                    self.write_direct(dst, &value.to_le_bytes())?;
                } else {
                    self.write_u64(dst, value)?;
                }
                let q = self.q;
                if flags.seqno {
                    self.s().queues[q].seqno = value;
                }
                if flags.irq {
                    let bus = self.bus;
                    bus.raise_job(self.s(), job_irq::FENCE + q as u32);
                }
                // Another queue may be waiting on this value.
                if self
                    .s()
                    .queues
                    .iter()
                    .any(|r| r.status & q_status::WAITING != 0)
                {
                    self.bus.wake_all();
                }
                Ok(Done::Complete)
            }
            Command::Wait { addr, value } => {
                if self.read_u64_coherent(addr)? >= value {
                    self.set_status(0, q_status::WAITING);
                    Ok(Done::Complete)
                } else {
                    self.set_status(q_status::WAITING, 0);
                    Ok(Done::Unsatisfied)
                }
            }
            Command::Timestamp { dst } => {
                let t = self.bus.timestamp();
                self.write_u64(dst, t)?;
                Ok(Done::Complete)
            }
            Command::Flush { flags } => {
                let bus = self.bus;
                bus.cache_cmd(self.s(), flags);
                Ok(Done::Complete)
            }
            Command::Call { ib, size } => {
                if pos.depth + 1 > MAX_CALL_DEPTH {
                    return Err(Stop::Error(q_error::CALL_DEPTH));
                }
                if size % 4 != 0 || size > RING_MAX {
                    return Err(Stop::Error(q_error::BAD_SIZE));
                }
                if size == 0 {
                    return Ok(Done::Complete);
                }
                // The indirect buffer, and everything it does, is
                // unprivileged: it reaches only pages with AP[1] set.
                pos.frames[pos.depth] = Frame {
                    ib,
                    size,
                    offset: 0,
                };
                pos.depth += 1;
                Ok(Done::Entered)
            }
        }
    }

    /// Fetch the ring command at `head` (privileged).
    fn fetch_ring(&mut self, r: &QueueRegs, head: u32) -> Res<Vec<u32>> {
        self.unpriv = false;
        let mask = r.ring_size - 1;
        let tail = r.tail & mask & !3;
        let avail = tail.wrapping_sub(head) & mask;
        let hdr = self.fetch(r.ring_base + u64::from(head))?;
        let len = hdr >> 16;
        if len == 0 || len * 4 > avail {
            return Err(Stop::Error(q_error::BAD_LENGTH));
        }
        let mut cmd = vec![0u32; len as usize];
        cmd[0] = hdr;
        // The rest of the command, in at most two spans if it wraps.
        let first = ((r.ring_size - ((head + 4) & mask)) / 4).min(len - 1) as usize;
        let start = r.ring_base + u64::from((head + 4) & mask);
        self.fetch_span(start, &mut cmd[1..1 + first])?;
        self.fetch_span(r.ring_base, &mut cmd[1 + first..])?;
        Ok(cmd)
    }

    /// Fetch the command at frame `f`'s offset (unprivileged).
    fn fetch_ib(&mut self, f: Frame) -> Res<Vec<u32>> {
        self.unpriv = true;
        let va = f.ib.wrapping_add(u64::from(f.offset));
        let hdr = self.fetch(va)?;
        let len = hdr >> 16;
        if len == 0 || f.offset + len * 4 > f.size {
            return Err(Stop::Error(q_error::BAD_LENGTH));
        }
        let mut cmd = vec![0u32; len as usize];
        cmd[0] = hdr;
        self.fetch_span(va.wrapping_add(4), &mut cmd[1..])?;
        Ok(cmd)
    }

    /// A restored position: the ring command at `head` and the command at
    /// each frame's offset but the innermost must be the CALLs of the
    /// frames.
    fn check_chain(&mut self, r: &QueueRegs, pos: &Position, head: u32) -> Res<()> {
        let bad = || Stop::Error(q_error::BAD_CONTEXT);
        let calls = |cmd: &[u32], f: &Frame| match Command::decode(cmd) {
            Ok(Command::Call { ib, size }) => ib == f.ib && size == f.size,
            _ => false,
        };
        let as_bad = |e: Stop| {
            if e == Stop::Error(q_error::BAD_LENGTH) {
                bad()
            } else {
                e
            }
        };
        if pos.depth == 0 {
            return Ok(());
        }
        let cmd = self.fetch_ring(r, head).map_err(as_bad)?;
        if !calls(&cmd, &pos.frames[0]) {
            return Err(bad());
        }
        for i in 0..pos.depth - 1 {
            let cmd = self.fetch_ib(pos.frames[i]).map_err(as_bad)?;
            if !calls(&cmd, &pos.frames[i + 1]) {
                return Err(bad());
            }
        }
        Ok(())
    }

    /// One step of the queue: (part of) the innermost command in progress,
    /// or the next one. Updates `pos` and `head`.
    pub(super) fn step(&mut self, r: &QueueRegs, pos: &mut Position, head: &mut u32) -> Res<Next> {
        if !ring_ok(r.ring_base, r.ring_size, r.as_slot) {
            return Err(Stop::Error(q_error::BAD_RING));
        }
        let mask = r.ring_size - 1;
        *head &= mask & !3;
        if pos.unchecked {
            self.check_chain(r, pos, *head)?;
            pos.unchecked = false;
        }
        pos.active = true;
        let (cmd, fresh) = match pos.latched {
            Some(l) => (l.dwords().to_vec(), false),
            None => {
                let c = if pos.depth == 0 {
                    self.fetch_ring(r, *head)
                } else {
                    self.fetch_ib(pos.frames[pos.depth - 1])
                };
                let c = c.map_err(|e| {
                    if pos.progress > 0 && e == Stop::Error(q_error::BAD_LENGTH) {
                        Stop::Error(q_error::BAD_CONTEXT)
                    } else {
                        e
                    }
                })?;
                (c, true)
            }
        };
        self.unpriv = pos.depth > 0;
        let len = cmd.len() as u32;
        match self.execute(&cmd, pos, fresh)? {
            Done::Complete => {
                advance(pos, head, mask, 4 * len);
                Ok(Next::Go)
            }
            Done::Entered => {
                pos.latched = None;
                Ok(Next::Go)
            }
            Done::More => {
                pos.latched = Latched::of(&cmd);
                Ok(Next::Go)
            }
            Done::Unsatisfied => {
                pos.latched = Latched::of(&cmd);
                Ok(Next::Poll)
            }
        }
    }

    /// FILL from `pos.progress` on, at most a chunk.
    fn fill(&mut self, dst: u64, size: u64, pattern: u32, pos: &mut Position) -> Res<Done> {
        let pat = pattern.to_le_bytes();
        let mut buf = [0u8; STEP_USIZE];
        for (i, b) in buf.iter_mut().enumerate() {
            *b = pat[i % 4];
        }
        self.steps(size, pos, false, |ctx, off, n, _| {
            ctx.write(dst.wrapping_add(off), &buf[..n as usize])
        })
    }

    /// COPY from `pos.progress` on, at most a chunk: mapping by mapping
    /// rather than step by step (fewer translations); a stall that ends in
    /// a suspend leaves the progress at the start of the step it is in.
    fn copy(&mut self, dst: u64, src: u64, size: u64, pos: &mut Position) -> Res<Done> {
        let end = pos.progress.saturating_add(CHUNK).min(size);
        let mut done = pos.progress;
        match self.copy_range(dst, src, end, &mut done) {
            Ok(()) if end >= size => Ok(Done::Complete),
            Ok(()) => {
                pos.progress = end;
                Ok(Done::More)
            }
            Err(e) => {
                pos.progress = done - done % STEP;
                Err(e)
            }
        }
    }

    /// CHECKSUM from `pos.progress` on (with `pos.partial` as the hash so
    /// far), at most a chunk. The last step writes the result.
    fn checksum(&mut self, dst: u64, src: u64, size: u64, pos: &mut Position) -> Res<Done> {
        let mut buf = vec![0u8; STEP_USIZE];
        self.steps(size, pos, true, |ctx, off, n, h| {
            let part = &mut buf[..n as usize];
            ctx.read(src.wrapping_add(off), part)?;
            *h = fnv1a(*h, part);
            if off + n >= size {
                ctx.write_u64(dst, *h)?;
            }
            Ok(())
        })
    }

    /// Run the steps of a long command of `size` bytes from `pos.progress`
    /// on, at most CHUNK bytes of them. `step(ctx, offset, len, hash)` does
    /// one; with `hashes` (CHECKSUM), `hash` is the running hash and the
    /// position records it. The position records each step done but the
    /// last one: a complete command moves past.
    fn steps(
        &mut self,
        size: u64,
        pos: &mut Position,
        hashes: bool,
        mut step: impl FnMut(&mut Self, u64, u64, &mut u64) -> Res<()>,
    ) -> Res<Done> {
        let mut h = match (hashes, pos.progress) {
            (false, _) => 0,
            (true, 0) => FNV_OFFSET,
            (true, _) => pos.partial,
        };
        let mut budget = CHUNK;
        loop {
            let off = pos.progress;
            let n = (size - off).min(STEP);
            step(self, off, n, &mut h)?;
            if off + n >= size {
                return Ok(Done::Complete);
            }
            pos.progress = off + n;
            pos.partial = h;
            budget -= n;
            if budget == 0 {
                return Ok(Done::More);
            }
        }
    }
}

/// The innermost command in progress at `pos` (`bytes` long) is complete:
/// move past it, and past the CALLs whose buffers it completes.
fn advance(pos: &mut Position, head: &mut u32, mask: u32, mut bytes: u32) {
    pos.progress = 0;
    pos.partial = 0;
    pos.latched = None;
    while pos.depth > 0 {
        let f = &mut pos.frames[pos.depth - 1];
        f.offset += bytes;
        if f.offset < f.size {
            return;
        }
        *f = Frame::default();
        pos.depth -= 1;
        bytes = CALL_BYTES;
    }
    *head = head.wrapping_add(bytes) & mask;
    pos.active = false;
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64 over `data`, continuing from `h`: the CHECKSUM command.
fn fnv1a(mut h: u64, data: &[u8]) -> u64 {
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}
