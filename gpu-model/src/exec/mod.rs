// SPDX-License-Identifier: GPL-2.0
//! Queue execution: the worker thread of each queue fetches commands from
//! its ring through the MMU and executes them, one *step* at a time.
//!
//! A step is one command, one CHUNK of a FILL, COPY or CHECKSUM, or one
//! poll of a WAIT. Where the queue is inside the ring command at HEAD (the
//! CALL frames it is in, the progress of a long command) is explicit state,
//! [`Position`], kept in the queue's registers between steps. The worker
//! releases the device lock after each step, and at that point serves a
//! suspend request by writing HEAD, SEQNO and the position to the queue's
//! context save area; a restore reads them back (see "Preemption" in the
//! spec).
//!
//! The engine reaches the rest of the device (its lock, guest memory,
//! interrupts, the cache command, counters) only through
//! [`crate::bus::Bus`], and shares with it only [`crate::bus::State`]:
//! the register file starts the engines, the engines do not know it.
//!
//! This module is the queue's life: the worker loop, a step's bookkeeping,
//! suspend and restore, stopping on an error. `ctx` is the queue's hold on
//! the device while it runs (the lock, faults and stalls, translation, and
//! the memory accesses, split at mapping edges by one helper); `step`
//! fetches and executes the command at the queue's position.

mod ctx;
mod step;

use std::time::Duration;

use log::debug;

use crate::bus::{Bus, Guard, State};
use crate::context::{Context, Position};
use crate::mmu;
use crate::regs::*;
use ctx::Ctx;

/// How long WAIT sleeps between polls of memory.
const WAIT_POLL: Duration = Duration::from_micros(50);
/// Bytes of FILL, COPY or CHECKSUM done between two releases of the device
/// lock: a multiple of the step.
const CHUNK: u64 = 1 << 20;
/// The unit of a long command's progress: its suspend points are between
/// steps.
const STEP: u64 = save_area::STEP;
const STEP_USIZE: usize = STEP as usize;

/// Why a command stopped.
#[derive(Debug, PartialEq, Eq)]
enum Stop {
    /// The queue (or the device) was reset: abandon silently.
    Reset,
    /// An MMU fault (already recorded on the slot).
    Fault,
    /// A command error (`Q_ERROR` code).
    Error(u32),
    /// A suspend was requested while the queue was stalled: the stalled
    /// access is abandoned, and the step containing it is done again after
    /// a restore. The position holds the steps done before it.
    Suspend,
}

/// What a step of the queue leaves to do.
enum Next {
    /// Go on at once (after letting MMIO in).
    Go,
    /// A WAIT is not satisfied: poll again after a while.
    Poll,
}

/// What a command did in one step.
enum Done {
    /// Complete: the position moves past it.
    Complete,
    /// A CALL entered its indirect buffer.
    Entered,
    /// A FILL, COPY or CHECKSUM did a chunk and has more to do.
    More,
    /// A WAIT is not satisfied.
    Unsatisfied,
}

/// The last translations of a worker, kept from one step to the next for
/// the slot they were made in.
#[derive(Default)]
struct WorkerTlb {
    slot: usize,
    utlb: [Option<(u64, mmu::Mapping)>; 2],
}

type Res<T> = Result<T, Stop>;

/// Whether the ring registers describe a usable ring.
fn ring_ok(base: u64, size: u32, slot: u32) -> bool {
    size.is_power_of_two()
        && (RING_MIN..=RING_MAX).contains(&size)
        && base.is_multiple_of(u64::from(RING_MIN))
        && (slot as usize) < NUM_AS
}

/// Stop queue `q` with a fault or an error at HEAD.
fn stop_queue<B: Bus>(bus: &B, s: &mut State<B::Regs>, q: usize, stop: Stop) {
    let (status, code) = match stop {
        Stop::Fault => (q_status::FAULTED, q_error::MMU_FAULT),
        Stop::Error(c) => (q_status::ERROR, c),
        Stop::Reset | Stop::Suspend => return,
    };
    let cur = &mut s.queues[q];
    debug!(
        "queue {q} stopped: error {code} at ring offset {:#x}",
        cur.head
    );
    cur.status &= !(q_status::BUSY | q_status::WAITING | q_status::STALLED);
    cur.status |= status;
    cur.error = code;
    cur.error_offset = cur.head;
    cur.suspend_req = None;
    cur.restore_pending = false;
    bus.raise_job(s, job_irq::STOPPED + q as u32);
    bus.wake_all();
}

/// One step of queue `q`. Called with the lock held.
fn run_step<'a, B: Bus>(
    bus: &'a B,
    g: Guard<'a, B::Regs>,
    q: usize,
    wt: &mut WorkerTlb,
) -> (Guard<'a, B::Regs>, Next) {
    let r = g.queues[q];
    let mut ctx = Ctx::new(bus, g, q);
    if wt.slot == ctx.slot {
        ctx.utlb = wt.utlb;
    }
    ctx.set_status(q_status::BUSY, 0);
    let (mut pos, mut head) = (r.pos, r.head);
    let res = ctx.step(&r, &mut pos, &mut head);
    *wt = WorkerTlb {
        slot: ctx.slot,
        utlb: ctx.utlb,
    };
    let mut g = ctx.g.take().expect("the device lock is held after a step");
    let cur = &mut g.queues[q];
    if cur.gen != r.gen {
        return (g, Next::Go); // reset while running: the registers are already clean
    }
    cur.pos = pos;
    cur.head = head;
    match res {
        Ok(next) => {
            if !pos.active {
                cur.status &= !(q_status::BUSY | q_status::WAITING | q_status::STALLED);
            }
            (g, next)
        }
        Err(stop) => {
            stop_queue(bus, &mut g, q, stop);
            (g, Next::Go)
        }
    }
}

/// Read, check and apply the context at `Q_CONTEXT` (RESTORE).
fn restore<'a, B: Bus>(bus: &'a B, g: Guard<'a, B::Regs>, q: usize) -> Guard<'a, B::Regs> {
    let r = g.queues[q];
    let mut ctx = Ctx::new(bus, g, q);
    ctx.no_stall = true;
    let res = (|| -> Res<Context> {
        if !ring_ok(r.ring_base, r.ring_size, r.as_slot) {
            return Err(Stop::Error(q_error::BAD_RING));
        }
        let mut b = [0u8; save_area::SIZE];
        ctx.read_direct(r.context, &mut b).map_err(|e| match e {
            Stop::Fault => Stop::Error(q_error::BAD_CONTEXT),
            e => e,
        })?;
        let c = Context::from_bytes(&b);
        if !c.is_well_formed(r.ring_size) {
            debug!("queue {q}: malformed context {c:?}");
            return Err(Stop::Error(q_error::BAD_CONTEXT));
        }
        Ok(c)
    })();
    let mut g = ctx.g.take().expect("the device lock is held");
    let cur = &mut g.queues[q];
    if cur.gen != r.gen {
        return g;
    }
    cur.restore_pending = false;
    match res {
        Ok(c) => {
            debug!("queue {q}: restored {c:?}");
            cur.head = c.head;
            cur.seqno = c.seqno;
            cur.pos = c.position();
            if cur.pos.active {
                cur.status |= q_status::BUSY;
            }
        }
        Err(stop) => stop_queue(bus, &mut g, q, stop),
    }
    g
}

/// Serve a suspend request: save the context to `Q_CONTEXT`.
fn suspend<'a, B: Bus>(bus: &'a B, g: Guard<'a, B::Regs>, q: usize) -> Guard<'a, B::Regs> {
    let r = g.queues[q];
    let mut ctx = Ctx::new(bus, g, q);
    ctx.no_stall = true;
    let mut c = Context::capture(r.head, r.seqno, &r.pos);
    c.request_ts = r.suspend_req.unwrap_or_default();
    let res = (|| -> Res<()> {
        // As WRITE64 with FLUSH: what the job wrote is in memory, and no
        // cached line shadows the save area.
        bus.cache_cmd(ctx.s(), cache::CLEAN | cache::INVALIDATE);
        let mut n = [0u8; 4];
        let at = r.context.wrapping_add(save_area::OFF_SUSPENDS as u64);
        ctx.read_direct(at, &mut n)?;
        c.suspends = u32::from_le_bytes(n).wrapping_add(1);
        c.saved_ts = bus.timestamp();
        ctx.write_direct(r.context, &c.to_bytes())
    })();
    let mut g = ctx.g.take().expect("the device lock is held");
    let cur = &mut g.queues[q];
    if cur.gen != r.gen {
        return g;
    }
    match res {
        Ok(()) => {
            debug!("queue {q}: suspended {c:?}");
            cur.enabled = false;
            cur.status &= !(q_status::BUSY | q_status::WAITING | q_status::STALLED);
            cur.status |= q_status::SUSPENDED;
            cur.pos = Position::default();
            cur.suspend_req = None;
            bus.raise_job(&mut g, job_irq::SUSPENDED + q as u32);
        }
        Err(Stop::Reset) => {}
        Err(_) => stop_queue(bus, &mut g, q, Stop::Error(q_error::BAD_CONTEXT)),
    }
    g
}

/// The worker thread of queue `q`.
pub(crate) fn worker<B: Bus>(bus: &B, q: usize) {
    let mut wt = WorkerTlb::default();
    let mut g = bus.lock();
    loop {
        if g.shutdown {
            return;
        }
        let r = g.queues[q];
        let stopped = r.status & (q_status::FAULTED | q_status::ERROR | q_status::SUSPENDED) != 0;
        if r.restore_pending && !stopped {
            g = restore(bus, g, q);
            continue;
        }
        if r.suspend_req.is_some() {
            if !stopped && (r.enabled || r.pos.active) {
                g = suspend(bus, g, q);
            } else {
                g.queues[q].suspend_req = None;
            }
            continue;
        }
        let pending = if ring_ok(r.ring_base, r.ring_size, r.as_slot) {
            r.tail & (r.ring_size - 1) & !3 != r.head
        } else {
            r.tail != r.head
        };
        let runnable = !stopped && (r.pos.active || (r.enabled && pending));
        if runnable {
            let next;
            (g, next) = run_step(bus, g, q, &mut wt);
            match next {
                // Let MMIO in between steps.
                Next::Go => g = bus.let_mmio_in(g),
                Next::Poll => g = bus.wait(q, g, Some(WAIT_POLL)),
            }
        } else {
            g = bus.wait(q, g, None);
        }
    }
}
