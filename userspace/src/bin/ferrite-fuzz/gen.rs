// SPDX-License-Identifier: MIT
//! Argument generators: mostly plausible values (live handles, page-aligned
//! VAs in the user range, small sizes) with a fraction of mutations, and
//! the UAPI rules that say when an ioctl must fail whatever the state.
//!
//! Everything here is a pure function of the PRNG and its inputs, so the
//! generators are unit-tested without a device.

use ferrite::cmds::{header, op, write64, Cmds};
use ferrite::uapi;

use crate::rng::Rng;

/// The CPU page: the granule of BO sizes, mmap and VM_BIND (the driver's
/// `bind_alignment`), 4 KiB or larger (16 KiB on some arm64 kernels); the
/// GPU's own 4 KiB page never shows in the rules the fuzzer checks.
pub fn page() -> u64 {
    static PAGE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *PAGE.get_or_init(ferrite::cpu_page_size)
}
pub const MIB: u64 = 1 << 20;
/// GEM_CREATE's documented limit.
pub const MAX_BO_SIZE: u64 = 64 << 30;
/// The largest BO the fuzzer keeps (and so binds and maps).
pub const MAX_KEPT_BO: u64 = 4 * MIB;
/// Sizes above 4 GiB are a BAD_SIZE command error.
pub const CMD_MAX_SIZE: u64 = 4 << 30;

/// The GPU VA range userspace may bind (DEV_QUERY INFO va_start..va_end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VaRange {
    pub start: u64,
    pub end: u64,
}

impl VaRange {
    /// The window random binds mostly use: 64 MiB from 4 GiB (or from the
    /// start of the range), so that they overlap, split and merge often.
    pub fn fuzz_window(&self) -> (u64, u64) {
        let base = align_up(self.start.max(1 << 32), 2 * MIB);
        (base, 64 * MIB)
    }

    /// Where command buffers live: slot `i` is 16 MiB at the middle of the
    /// range, the commands at +0 and the data at +4 MiB.
    pub fn cmd_slot(&self, slot: u64) -> u64 {
        let mid = self.start + (self.end - self.start) / 2;
        align_up(mid, 1 << 30) + slot * 16 * MIB
    }

    /// Whether `[va, va + size)` satisfies VM_BIND's rules: page aligned,
    /// not empty, inside the range, no overflow.
    pub fn allows(&self, va: u64, size: u64) -> bool {
        va.is_multiple_of(page())
            && size.is_multiple_of(page())
            && size != 0
            && va >= self.start
            && va.checked_add(size).is_some_and(|e| e <= self.end)
    }
}

pub fn align_up(v: u64, a: u64) -> u64 {
    v.div_ceil(a) * a
}

/// A value and whether the UAPI says the ioctl must fail because of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Val<T> {
    pub v: T,
    pub bad: bool,
}

impl<T> Val<T> {
    pub fn ok(v: T) -> Self {
        Val { v, bad: false }
    }

    pub fn bad(v: T) -> Self {
        Val { v, bad: true }
    }
}

/// A flags word: usually a subset of `known`, sometimes with an unknown bit.
pub fn flags(rng: &mut Rng, known: u32) -> Val<u32> {
    if rng.chance(1, 14) {
        let unknown = !known;
        let v = match rng.below(3) {
            0 => 1 << rng.below(32),
            1 => rng.next_u32(),
            _ => u32::MAX,
        };
        let v = if v & unknown == 0 {
            v | (unknown & unknown.wrapping_neg())
        } else {
            v
        };
        return Val::bad(v);
    }
    Val::ok(rng.next_u32() & known)
}

/// A pad field: zero, or rarely not (which must fail).
pub fn pad32(rng: &mut Rng) -> Val<u32> {
    if rng.chance(1, 20) {
        Val::bad(rng.interesting_u32().max(1))
    } else {
        Val::ok(0)
    }
}

/// A handle: mostly a live one, else 0, a stale or random one.
pub fn handle(rng: &mut Rng, live: &[u32]) -> u32 {
    if !live.is_empty() && rng.chance(9, 10) {
        return *rng.pick(live).unwrap();
    }
    match rng.below(5) {
        0 => 0,
        1 => rng.range(1, 80) as u32,
        2 => live.iter().max().map_or(1, |m| m.wrapping_add(1)),
        3 => u32::MAX - rng.below(2) as u32,
        _ => rng.interesting_u32(),
    }
}

/// A VM id: the process VM, an explicit live one, or a bad one.
pub fn vm_id(rng: &mut Rng, live: &[u32]) -> u32 {
    match rng.below(20) {
        0..=6 => uapi::DRM_FERRITE_VM_PROCESS,
        7..=18 if !live.is_empty() => *rng.pick(live).unwrap(),
        _ => handle(rng, &[]),
    }
}

/// A GEM_CREATE size: valid ones stay at most [`MAX_KEPT_BO`], invalid
/// ones are past the 64 GiB limit.
pub fn bo_size(rng: &mut Rng) -> Val<u64> {
    match rng.below(100) {
        0..=39 => Val::ok(page() * rng.range(1, 16)),
        40..=59 => Val::ok(page() * (1 << rng.below(9))),
        60..=74 => Val::ok(rng.range(1, 64 * page())),
        75..=84 => Val::ok(MIB),
        85..=87 => Val::ok(MAX_KEPT_BO / (1 << rng.below(2))),
        88..=89 => Val::ok(0),
        90..=91 => Val::bad(MAX_BO_SIZE + 1 + rng.below(page())),
        92 => Val::bad(u64::MAX - rng.below(page())),
        93 => Val::bad(1 << rng.range(37, 63)),
        // Valid sizes up to the limit are tried once per worker, in a file
        // of their own (a BO others can reach through a random handle is
        // allocated in full when bound).
        _ => Val::ok(rng.range(1, 2 * MIB)),
    }
}

/// A page-aligned VA that is usually usable for `size` bytes.
pub fn plausible_va(rng: &mut Rng, r: VaRange, size: u64) -> u64 {
    let (wbase, wsize) = r.fuzz_window();
    let span = |lo: u64, hi: u64, rng: &mut Rng| -> u64 {
        if hi <= lo {
            lo
        } else {
            lo + page() * rng.below((hi - lo) / page())
        }
    };
    match rng.below(12) {
        0..=6 => span(wbase, wbase + wsize.saturating_sub(size), rng),
        7 => wbase + 2 * MIB * rng.below(wsize / (2 * MIB)),
        8 => span(r.start, r.start + 256 * page(), rng),
        9 => span(
            r.end.saturating_sub(size + 256 * page()),
            r.end.saturating_sub(size),
            rng,
        ),
        10 => r.cmd_slot(rng.below(8)) + page() * rng.below(2 * 1024),
        _ => span(r.start, r.end.saturating_sub(size), rng),
    }
}

/// A VA that breaks a rule (or sits on an edge): unaligned, outside the
/// range, in the driver's top 4 GiB, overflowing.
pub fn wild_va(rng: &mut Rng, r: VaRange) -> u64 {
    match rng.below(11) {
        0 => 0,
        1 => r.start.saturating_sub(page()),
        2 => r.end,
        3 => r.end - page(),
        4 => plausible_va(rng, r, page()) + rng.range(1, page() - 1),
        5 => !(page() - 1),
        6 => 1 << 47,
        7 => 1 << 48,
        8 => r.end + page() * rng.below(64),
        9 => rng.next_u64() & !(page() - 1),
        _ => rng.interesting_u64(),
    }
}

/// A size for a range of at most `max` bytes (page multiple, not zero).
pub fn plausible_size(rng: &mut Rng, max: u64) -> u64 {
    let pages = (max / page()).max(1);
    match rng.below(6) {
        0..=2 => page() * rng.range(1, pages.min(4)),
        3 => page() * pages,
        4 => page() * rng.range(1, pages),
        _ => page() * (1 << rng.below(64 - u64::from(pages.leading_zeros()))).min(pages),
    }
}

pub fn wild_size(rng: &mut Rng) -> u64 {
    match rng.below(9) {
        0 => 0,
        1 => rng.range(1, page() - 1),
        2 => page() + 1,
        3 => u64::MAX,
        4 => u64::MAX - page() + 1,
        5 => 1 << 36,
        6 => 1 << 47,
        7 => 4 * MIB + page(),
        _ => rng.interesting_u64(),
    }
}

/// What the fuzzer knows of a live BO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoInfo {
    pub handle: u32,
    pub size: u64,
}

/// State a bind operation is generated from.
#[derive(Debug, Clone, Copy)]
pub struct BindCtx<'a> {
    pub range: VaRange,
    pub bos: &'a [BoInfo],
    /// Recent (va, size) bindings of the VM, for unmaps.
    pub bound: &'a [(u64, u64)],
    /// The device maps NULL ranges (DRM_FERRITE_UAPI_NULL_BIND).
    pub null_ok: bool,
    /// The bind is asynchronous: userptr MAPs (which it refuses) are
    /// generated too. Never in synchronous binds: a userptr of whatever
    /// the process has at a random address could let jobs write it.
    pub async_: bool,
}

pub type BindOp = uapi::drm_ferrite_vm_bind_op;
pub type SyncOp = uapi::drm_ferrite_sync_op;
pub type BoRef = uapi::drm_ferrite_bo_ref;

pub const MAP: u32 = uapi::drm_ferrite_vm_bind_op_type_DRM_FERRITE_VM_BIND_OP_MAP;
pub const UNMAP: u32 = uapi::drm_ferrite_vm_bind_op_type_DRM_FERRITE_VM_BIND_OP_UNMAP;
pub const SYNC_ONLY: u32 = uapi::drm_ferrite_vm_bind_op_type_DRM_FERRITE_VM_BIND_OP_SYNC_ONLY;
const BIND_FLAGS: u32 = uapi::DRM_FERRITE_VM_BIND_READONLY | uapi::DRM_FERRITE_VM_BIND_NOEXEC;
const READONLY: u32 = uapi::DRM_FERRITE_VM_BIND_READONLY;
const NOEXEC: u32 = uapi::DRM_FERRITE_VM_BIND_NOEXEC;
const USERPTR: u32 = uapi::DRM_FERRITE_VM_BIND_USERPTR;
pub const NULL: u32 = uapi::DRM_FERRITE_VM_BIND_NULL;

/// A size for a NULL range: like a BO's mostly, sometimes large (no
/// memory backs it), up to the whole fuzz window.
pub fn null_size(rng: &mut Rng) -> u64 {
    match rng.below(10) {
        0..=7 => plausible_size(rng, 2 * MIB),
        8 => 2 * MIB * rng.range(1, 8),
        _ => 32 * MIB,
    }
}

/// A valid NULL MAP (DRM_FERRITE_VM_BIND_NULL) in the usual places.
pub fn null_op(rng: &mut Rng, r: VaRange) -> BindOp {
    let size = null_size(rng);
    BindOp {
        op: MAP,
        flags: NULL
            | if rng.chance(1, 4) {
                rng.next_u32() & BIND_FLAGS
            } else {
                0
            },
        va: plausible_va(rng, r, size),
        size,
        ..Default::default()
    }
}

/// One VM_BIND operation: a plausible MAP of a live BO or UNMAP of a
/// recent range, a NULL MAP, a SYNC_ONLY, or (asynchronous binds only) a
/// userptr MAP; with each field mutated now and then.
pub fn bind_op(rng: &mut Rng, c: &BindCtx<'_>) -> BindOp {
    let mut o = BindOp::default();
    let kind = rng.below(100);
    if kind < 5 {
        // SYNC_ONLY: every field zero, or (a quarter of them) one not.
        o.op = SYNC_ONLY;
        if rng.chance(1, 4) {
            match rng.below(5) {
                0 => o.flags = 1 << rng.below(4),
                1 => o.handle = c.bos.first().map_or(1, |b| b.handle),
                2 => o.bo_offset = page(),
                3 => o.va = plausible_va(rng, c.range, page()),
                _ => o.size = page(),
            }
        }
    } else if kind < 15 {
        // NULL: valid mostly; with a handle, an offset or USERPTR not.
        o = null_op(rng, c.range);
        if rng.chance(1, 6) {
            match rng.below(3) {
                0 => o.handle = c.bos.first().map_or(1, |b| b.handle),
                1 => o.bo_offset = page() * rng.range(1, 16),
                _ => o.flags |= USERPTR,
            }
        }
    } else if kind < 18 && c.async_ {
        // A userptr MAP, which an asynchronous bind refuses (-EINVAL).
        o.op = MAP;
        o.flags = USERPTR | (rng.next_u32() & BIND_FLAGS);
        o.size = plausible_size(rng, 64 * page());
        o.va = plausible_va(rng, c.range, o.size);
    } else if rng.chance(3, 5) && !c.bos.is_empty() {
        let bo = *rng.pick(c.bos).unwrap();
        o = bo_map_op(rng, c.range, bo);
    } else {
        o = unmap_op(rng, c);
    }
    // Mutations.
    if rng.chance(1, 8) {
        match rng.below(11) {
            10 => o.op = SYNC_ONLY,
            0 => o.op = rng.interesting_u32(),
            1 => o.flags = flags(rng, BIND_FLAGS).v,
            2 => o.handle = handle(rng, &[]),
            3 => o.pad = rng.interesting_u32(),
            4 => o.bo_offset = rng.interesting_u64(),
            5 => o.bo_offset += rng.range(1, page() - 1),
            6 => o.va = wild_va(rng, c.range),
            7 => o.size = wild_size(rng),
            8 => {
                // A size reaching past the end of the BO.
                o.size = c.bos.iter().map(|b| b.size).max().unwrap_or(page()) + page();
            }
            _ => {
                o.op = if o.op == MAP { UNMAP } else { MAP };
            }
        }
    }
    // A mutated NULL op may have become a userptr MAP: never a valid one in
    // a synchronous bind (a userptr of whatever the process has there).
    if !c.async_ && o.op == MAP && o.flags & USERPTR != 0 && o.handle == 0 && o.bo_offset == 0 {
        o.handle = 1;
    }
    o
}

/// A valid MAP of (part of) `bo` at a plausible VA.
pub fn bo_map_op(rng: &mut Rng, r: VaRange, bo: BoInfo) -> BindOp {
    let pages = (bo.size / page()).max(1);
    let off_pages = if rng.chance(1, 2) {
        0
    } else {
        rng.below(pages)
    };
    let size = plausible_size(rng, (pages - off_pages) * page());
    BindOp {
        op: MAP,
        flags: if rng.chance(1, 4) {
            rng.next_u32() & BIND_FLAGS
        } else {
            0
        },
        handle: bo.handle,
        bo_offset: off_pages * page(),
        va: plausible_va(rng, r, size),
        size,
        ..Default::default()
    }
}

/// A valid UNMAP: of (a piece of) a recent binding mostly, else anywhere.
pub fn unmap_op(rng: &mut Rng, c: &BindCtx<'_>) -> BindOp {
    let mut o = BindOp {
        op: UNMAP,
        ..Default::default()
    };
    if let (true, Some(&(va, size))) = (rng.chance(2, 3), rng.pick(c.bound)) {
        // All of it, or a piece (which splits the mapping).
        let pages = (size / page()).max(1);
        let first = rng.below(pages);
        o.va = va + if rng.chance(1, 2) { 0 } else { first * page() };
        o.size = if rng.chance(1, 2) {
            size - (o.va - va)
        } else {
            page() * rng.range(1, pages)
        };
    } else {
        o.size = plausible_size(rng, MIB);
        o.va = plausible_va(rng, c.range, o.size);
    }
    o
}

/// `n` valid operations for a structured bind: MAPs of live BOs (inside
/// them), NULL MAPs (where the device has them), UNMAPs of recent ranges
/// and SYNC_ONLYs; or (one bind in eight) SYNC_ONLYs alone.
pub fn valid_bind_ops(rng: &mut Rng, c: &BindCtx<'_>, n: u64) -> Vec<BindOp> {
    let sync_only = BindOp {
        op: SYNC_ONLY,
        ..Default::default()
    };
    if rng.chance(1, 8) {
        return vec![sync_only; n.min(3) as usize];
    }
    (0..n)
        .map(|_| match rng.below(10) {
            0..=3 if !c.bos.is_empty() => {
                let bo = *rng.pick(c.bos).unwrap();
                bo_map_op(rng, c.range, bo)
            }
            4..=5 if c.null_ok => null_op(rng, c.range),
            9 => sync_only,
            _ => unmap_op(rng, c),
        })
        .collect()
}

/// Whether the UAPI requires VM_BIND to fail because of this operation,
/// whatever the state (handles may change under a concurrent run, so only
/// the stateless rules count), in a bind that is asynchronous or not
/// (`async_`) on a device with or without NULL mappings (`null_ok`).
pub fn bind_op_bad(o: &BindOp, r: VaRange, async_: bool, null_ok: bool) -> bool {
    if o.pad != 0 {
        return true;
    }
    if o.op == SYNC_ONLY {
        // Every other field zero (no range to check).
        return o.flags != 0 || o.handle != 0 || o.bo_offset != 0 || o.va != 0 || o.size != 0;
    }
    if !r.allows(o.va, o.size) {
        return true;
    }
    match o.op {
        // A userptr MAP (handle and offset zero) succeeds or not depending
        // on what the process has mapped at `va`: only its form counts;
        // asynchronous binds refuse it.
        MAP if o.flags & USERPTR != 0 => {
            o.flags & !(BIND_FLAGS | USERPTR) != 0 || o.handle != 0 || o.bo_offset != 0 || async_
        }
        MAP if o.flags & NULL != 0 => {
            o.flags & !(BIND_FLAGS | NULL) != 0 || o.handle != 0 || o.bo_offset != 0 || !null_ok
        }
        MAP => {
            o.flags & !BIND_FLAGS != 0
                || !o.bo_offset.is_multiple_of(page())
                || o.handle == 0
                || o.bo_offset.checked_add(o.size).is_none()
                || o.bo_offset.saturating_add(o.size) > MAX_BO_SIZE
        }
        UNMAP => o.flags != 0 || o.handle != 0 || o.bo_offset != 0,
        _ => true,
    }
}

/// What the fuzzer knows of a live sync object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncInfo {
    pub handle: u32,
    /// It holds a fence (created signalled, or a job/bind signals it).
    pub fenced: bool,
    /// Highest timeline point given to it so far.
    pub point: u64,
}

const SYNC_SIGNAL: u32 = uapi::DRM_FERRITE_SYNC_SIGNAL;
const SYNC_TIMELINE: u32 = uapi::DRM_FERRITE_SYNC_TIMELINE;

/// A sync op that signals (or waits on) one of `syncs`.
pub fn sync_op(rng: &mut Rng, syncs: &[SyncInfo], signal: bool) -> SyncOp {
    let mut s = SyncOp::default();
    let fenced: Vec<SyncInfo> = syncs.iter().filter(|s| s.fenced).copied().collect();
    let pool = if signal || fenced.is_empty() {
        syncs
    } else {
        &fenced[..]
    };
    let info = rng.pick(pool).copied();
    s.handle = match info {
        Some(i) if rng.chance(19, 20) => i.handle,
        _ => handle(rng, &[]),
    };
    let point = info.map_or(0, |i| i.point);
    let timeline = rng.chance(2, 5);
    s.flags = if signal { SYNC_SIGNAL } else { 0 };
    if timeline {
        s.flags |= SYNC_TIMELINE;
        s.point = if signal {
            point + rng.range(1, 3)
        } else if point > 0 {
            rng.range(1, point)
        } else {
            1
        };
    }
    if rng.chance(1, 12) {
        match rng.below(4) {
            0 => s.flags = flags(rng, SYNC_SIGNAL | SYNC_TIMELINE).v,
            1 => s.point = rng.interesting_u64(),
            2 => s.flags &= !SYNC_TIMELINE,
            _ => s.flags ^= SYNC_SIGNAL,
        }
    }
    s
}

/// Whether the UAPI requires the ioctl to fail because of this sync op.
pub fn sync_op_bad(s: &SyncOp) -> bool {
    s.flags & !(SYNC_SIGNAL | SYNC_TIMELINE) != 0 || (s.flags & SYNC_TIMELINE == 0 && s.point != 0)
}

const BO_REF_WRITE: u32 = uapi::DRM_FERRITE_BO_REF_WRITE;

pub fn bo_ref(rng: &mut Rng, bos: &[BoInfo]) -> BoRef {
    let handles: Vec<u32> = bos.iter().map(|b| b.handle).collect();
    BoRef {
        handle: handle(rng, &handles),
        flags: if rng.chance(1, 20) {
            flags(rng, BO_REF_WRITE).v
        } else {
            rng.next_u32() & BO_REF_WRITE
        },
    }
}

pub fn bo_ref_bad(b: &BoRef) -> bool {
    b.flags & !BO_REF_WRITE != 0
}

/// The view of a struct as bytes, for array encoding.
pub trait Element: Copy {
    fn to_bytes(&self) -> Vec<u8>;
    fn from_bytes(b: &[u8]) -> Self;
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}

impl Element for BindOp {
    fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(40);
        for x in [self.op, self.flags, self.handle, self.pad] {
            v.extend_from_slice(&x.to_le_bytes());
        }
        for x in [self.bo_offset, self.va, self.size] {
            v.extend_from_slice(&x.to_le_bytes());
        }
        v
    }

    fn from_bytes(b: &[u8]) -> Self {
        BindOp {
            op: u32_at(b, 0),
            flags: u32_at(b, 4),
            handle: u32_at(b, 8),
            pad: u32_at(b, 12),
            bo_offset: u64_at(b, 16),
            va: u64_at(b, 24),
            size: u64_at(b, 32),
        }
    }
}

impl Element for SyncOp {
    fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(16);
        v.extend_from_slice(&self.flags.to_le_bytes());
        v.extend_from_slice(&self.handle.to_le_bytes());
        v.extend_from_slice(&self.point.to_le_bytes());
        v
    }

    fn from_bytes(b: &[u8]) -> Self {
        SyncOp {
            flags: u32_at(b, 0),
            handle: u32_at(b, 4),
            point: u64_at(b, 8),
        }
    }
}

impl Element for BoRef {
    fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(8);
        v.extend_from_slice(&self.handle.to_le_bytes());
        v.extend_from_slice(&self.flags.to_le_bytes());
        v
    }

    fn from_bytes(b: &[u8]) -> Self {
        BoRef {
            handle: u32_at(b, 0),
            flags: u32_at(b, 4),
        }
    }
}

/// How an array's elements are laid out: the stride userspace claims and
/// whether the bytes past the kernel's struct are zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub stride: u32,
    pub nonzero_tail: bool,
}

/// A stride for elements of `n` bytes: mostly `n`, sometimes longer (zero
/// tail, or not), shorter, odd, zero or huge.
pub fn layout(rng: &mut Rng, n: u32) -> Layout {
    let longer = |rng: &mut Rng| match rng.below(4) {
        0 => n + 4 * rng.range(1, 8) as u32,
        1 => n + 64,
        2 => 4096,
        _ => 2 * n,
    };
    let (stride, nonzero_tail) = match rng.below(100) {
        0..=76 => (n, false),
        77..=85 => (longer(rng), false),
        86..=89 => (longer(rng), true),
        90..=92 => (n - 4 * rng.range(1, u64::from(n / 4 - 1)) as u32, false),
        93..=94 => (*rng.pick(&[n + 1, n - 1, 3, 1]).unwrap(), false),
        95 => (0, false),
        _ => (
            *rng.pick(&[4100, 65536, 0x8000_0000, u32::MAX]).unwrap(),
            false,
        ),
    };
    Layout {
        stride,
        nonzero_tail,
    }
}

/// The most bytes [`encode`] produces: arrays claiming more (huge strides
/// or counts) are passed truncated, ending at a guard page.
pub const ENCODE_CAP: usize = 1 << 20;

/// Encode `elems` with `l.stride` bytes each: the first `min(stride, len)`
/// bytes of the element, then the tail (zeros, or one nonzero byte). Stops
/// at [`ENCODE_CAP`] bytes.
pub fn encode<T: Element>(rng: &mut Rng, elems: &[T], l: Layout) -> Vec<u8> {
    let stride = l.stride as usize;
    let mut out = Vec::new();
    for e in elems {
        let b = e.to_bytes();
        let known = stride.min(b.len());
        let tail = stride - known;
        if out.len() + known > ENCODE_CAP {
            break;
        }
        out.extend_from_slice(&b[..known]);
        let at = out.len();
        let tail_here = tail.min(ENCODE_CAP - at);
        out.resize(at + tail_here, 0);
        if l.nonzero_tail && tail_here > 0 {
            out[at + rng.index(tail_here)] = rng.range(1, 255) as u8;
        }
        if tail_here < tail {
            break;
        }
    }
    out
}

/// The element as the kernel reads it: bytes past the stride are zero.
pub fn as_kernel_sees<T: Element>(e: &T, stride: u32) -> T {
    let mut b = e.to_bytes();
    for x in b.iter_mut().skip(stride as usize) {
        *x = 0;
    }
    T::from_bytes(&b)
}

/// Whether an element of an array with this layout breaks the UAPI's
/// array rules (a nonzero tail), or its content does (`bad`, on the
/// element as the kernel reads it).
pub fn element_bad<T: Element>(e: &T, l: Layout, bad: impl Fn(&T) -> bool) -> bool {
    let n = e.to_bytes().len() as u32;
    (l.nonzero_tail && l.stride > n) || bad(&as_kernel_sees(e, l.stride))
}

/// Count of an array: mostly `n`, sometimes absurd. `None` for the absurd
/// ones, whose elements the caller does not generate.
pub fn count(rng: &mut Rng, n: u32) -> (u32, bool) {
    if rng.chance(1, 40) {
        let c = *rng
            .pick(&[0x1_0000, 0x10_0000, 0x8000_0000, u32::MAX, 0x0fff_ffff])
            .unwrap();
        (c, true)
    } else {
        (n, false)
    }
}

/// Where a user pointer points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ptr {
    /// Memory of the right size.
    Valid,
    /// Only a random prefix is mapped; a guard page follows.
    Short,
    /// Into a CPU mapping of a BO (the copy faults on the BO's pages).
    BoMapping,
    /// A page the kernel may read but not write.
    ReadOnly,
    /// One of the addresses no access may succeed at.
    Wild(u64),
}

/// Addresses that can never be accessed from the kernel for userspace:
/// null and the zero page, the top of the address space, kernel addresses,
/// non-canonical and just past the user half.
pub const WILD_POINTERS: [u64; 8] = [
    0,
    8,
    0xffc,
    0xffff_ffff_ffff_f000,
    0xffff_8880_0000_0000,
    0x8000_0000_0000_0000,
    0x0000_8000_0000_0000,
    0xffff_ffff_ffff_fffc,
];

/// A pointer kind for an input array (ReadOnly is for outputs only).
pub fn in_ptr(rng: &mut Rng) -> Ptr {
    match rng.below(100) {
        0..=87 => Ptr::Valid,
        88..=91 => Ptr::Short,
        92..=94 => Ptr::BoMapping,
        _ => Ptr::Wild(*rng.pick(&WILD_POINTERS).unwrap()),
    }
}

/// A pointer kind for memory the kernel writes.
pub fn out_ptr(rng: &mut Rng) -> Ptr {
    match rng.below(100) {
        0..=84 => Ptr::Valid,
        85..=88 => Ptr::Short,
        89..=90 => Ptr::BoMapping,
        91..=94 => Ptr::ReadOnly,
        _ => Ptr::Wild(*rng.pick(&WILD_POINTERS).unwrap()),
    }
}

/// A QUEUE_CREATE timeout: short (so hanging jobs end fast), sometimes
/// the default or out of range.
pub fn timeout_ms(rng: &mut Rng) -> u32 {
    match rng.below(40) {
        0 => 0,
        1 => 60_001,
        2 => u32::MAX,
        _ => rng.range(20, 200) as u32,
    }
}

/// Where commands may point.
#[derive(Debug, Clone)]
pub struct CmdCtx {
    pub range: VaRange,
    /// The data buffer of the command buffer's slot.
    pub data: (u64, u64),
    /// The command area itself (CALL targets, self-modifying writes).
    pub cmd: (u64, u64),
    /// Other bound ranges of the VM.
    pub bound: Vec<(u64, u64)>,
    /// Whether a WAIT may wait forever (the job then times out).
    pub allow_hang: bool,
}

fn lo(v: u64) -> u32 {
    v as u32
}

fn hi(v: u64) -> u32 {
    (v >> 32) as u32
}

/// An address for a command operand that needs `len` bytes.
pub fn cmd_addr(rng: &mut Rng, c: &CmdCtx, len: u64) -> u64 {
    let inside = |rng: &mut Rng, (va, size): (u64, u64)| -> u64 {
        let room = size.saturating_sub(len) / 8;
        va + 8 * rng.below(room + 1)
    };
    match rng.below(20) {
        0..=11 => inside(rng, c.data),
        12 => inside(rng, c.cmd),
        13 | 14 => match rng.pick(&c.bound) {
            Some(&b) => inside(rng, b),
            None => inside(rng, c.data),
        },
        15 => plausible_va(rng, c.range, page()),
        // The driver's top 4 GiB: the rings and fence pages of the queues.
        16 => c.range.end + page() * rng.below(80) + 8 * rng.below(512),
        17 => c.data.0 + c.data.1 - rng.range(1, 8),
        _ => rng.interesting_u64(),
    }
}

fn cmd_size(rng: &mut Rng, c: &CmdCtx) -> u64 {
    match rng.below(20) {
        0..=9 => rng.range(1, 256),
        10..=14 => rng.range(1, c.data.1.max(1)),
        15 => 0,
        16 => CMD_MAX_SIZE,
        17 => CMD_MAX_SIZE + 1,
        18 => u64::MAX,
        _ => rng.interesting_u64(),
    }
}

/// One command (or a few random dwords), appended to `out`.
pub fn command(rng: &mut Rng, c: &CmdCtx, out: &mut Vec<u32>) {
    let mut emit = |opcode: u8, flags: u8, args: &[u32]| {
        out.push(header(opcode, flags, 1 + args.len() as u16));
        out.extend_from_slice(args);
    };
    match rng.below(100) {
        0..=9 => {
            let n = rng.range(0, 6) as usize;
            emit(op::NOP, 0, &vec![0; n]);
        }
        10..=21 => {
            let size = cmd_size(rng, c);
            let dst = cmd_addr(rng, c, size);
            emit(
                op::FILL,
                0,
                &[lo(dst), hi(dst), lo(size), hi(size), rng.next_u32()],
            );
        }
        22..=31 => {
            let size = cmd_size(rng, c);
            let (dst, src) = (cmd_addr(rng, c, size), cmd_addr(rng, c, size));
            emit(
                op::COPY,
                0,
                &[lo(dst), hi(dst), lo(src), hi(src), lo(size), hi(size)],
            );
        }
        32..=39 => {
            let size = cmd_size(rng, c);
            let (dst, src) = (cmd_addr(rng, c, 8), cmd_addr(rng, c, size));
            emit(
                op::CHECKSUM,
                0,
                &[lo(dst), hi(dst), lo(src), hi(src), lo(size), hi(size)],
            );
        }
        40..=54 => {
            let dst = cmd_addr(rng, c, 8);
            let v = rng.interesting_u64();
            let flags = if rng.chance(1, 10) {
                rng.next_u32() as u8
            } else {
                rng.below(8) as u8
            };
            emit(op::WRITE64, flags, &[lo(dst), hi(dst), lo(v), hi(v)]);
        }
        55..=61 => {
            let addr = cmd_addr(rng, c, 8);
            // 0 is always reached; the rest may never be.
            let v = if c.allow_hang && rng.chance(1, 2) {
                u64::MAX - rng.below(2)
            } else {
                0
            };
            emit(op::WAIT, 0, &[lo(addr), hi(addr), lo(v), hi(v)]);
        }
        62..=67 => {
            let dst = cmd_addr(rng, c, 8);
            emit(op::TIMESTAMP, 0, &[lo(dst), hi(dst)]);
        }
        68..=73 => {
            let n = if rng.chance(1, 8) { 256 } else { 4 };
            emit(op::FLUSH, rng.below(n) as u8, &[]);
        }
        74..=81 => {
            // Into the command area (itself: nesting runs out), the data,
            // or anywhere; sizes valid or not.
            let ib = match rng.below(4) {
                0 | 1 => c.cmd.0 + 4 * rng.below(c.cmd.1 / 4 / 16 + 1),
                2 => cmd_addr(rng, c, 4),
                _ => c.data.0,
            };
            let size = match rng.below(8) {
                0 => 0,
                1 => rng.next_u32(),
                2 => (1 << 20) + 4,
                3 => rng.range(1, 64) as u32 * 4 + 1,
                _ => 4 * rng.range(1, 64) as u32,
            };
            emit(op::CALL, 0, &[lo(ib), hi(ib), size]);
        }
        82..=87 => {
            // A known opcode with the wrong length, or an unknown opcode.
            let opcode = if rng.chance(1, 2) {
                rng.range(0, 8) as u8
            } else {
                rng.range(9, 255) as u8
            };
            let len = *rng.pick(&[0u16, 2, 3, 6, 0xffff]).unwrap();
            out.push(header(opcode, rng.next_u32() as u8, len));
            for _ in 0..rng.below(4) {
                out.push(rng.next_u32());
            }
        }
        _ => {
            for _ in 0..rng.range(1, 8) {
                out.push(rng.next_u32());
            }
        }
    }
}

/// A command buffer of at most about `max_dwords` dwords.
pub fn commands(rng: &mut Rng, c: &CmdCtx, max_dwords: usize) -> Vec<u32> {
    let mut out = Vec::new();
    if rng.chance(1, 30) {
        for _ in 0..rng.range(1, max_dwords.min(64) as u64) {
            out.push(rng.next_u32());
        }
        return out;
    }
    let n = rng.range(1, 12);
    for _ in 0..n {
        if out.len() + 8 > max_dwords {
            break;
        }
        command(rng, c, &mut out);
    }
    if out.is_empty() {
        out.push(header(op::NOP, 0, 1));
    }
    out
}

// ---- userptrs ---------------------------------------------------------

/// The most memory regions one process keeps for userptr binds.
pub const MAX_USER_REGIONS: usize = 16;
/// The largest such region.
pub const MAX_USER_REGION: u64 = 256 << 10;
/// The size of the sealed file the file-backed regions map.
pub const USER_FILE_SIZE: u64 = 512 << 10;

/// What memory a userptr region is, when it is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemKind {
    /// Anonymous, PROT_READ, read once: every page is the shared zero page.
    ZeroPage,
    /// Anonymous, written, then made PROT_READ: its own read-only pages.
    AnonRo,
    /// Anonymous, PROT_READ | PROT_WRITE, written.
    AnonRw,
    /// Anonymous, PROT_READ | PROT_WRITE, never touched: a read-only bind
    /// gets the zero page, a writable one fresh pages.
    AnonUntouched,
    /// A PROT_READ MAP_SHARED mapping of the sealed file.
    FileShared,
    /// A PROT_READ MAP_PRIVATE mapping of the file (made writable by
    /// mprotect, its pages become the process's copies).
    FilePrivate,
}

impl MemKind {
    pub fn is_file(self) -> bool {
        matches!(self, MemKind::FileShared | MemKind::FilePrivate)
    }
}

pub fn mem_kind(rng: &mut Rng) -> MemKind {
    match rng.below(16) {
        0..=3 => MemKind::ZeroPage,
        4..=5 => MemKind::AnonRo,
        6..=8 => MemKind::AnonRw,
        9 => MemKind::AnonUntouched,
        10..=12 => MemKind::FileShared,
        _ => MemKind::FilePrivate,
    }
}

/// The size of a new region: 4 KiB to [`MAX_USER_REGION`], mostly small.
pub fn user_region_size(rng: &mut Rng) -> u64 {
    let max = MAX_USER_REGION / page();
    page()
        * match rng.below(10) {
            0..=3 => rng.range(1, 4),
            4..=6 => 1 << rng.below(u64::from(max.trailing_zeros()) + 1),
            _ => rng.range(1, max),
        }
}

/// The byte at `off` of the file the file-backed regions map.
pub fn user_file_byte(off: u64) -> u8 {
    (off.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8 ^ (off >> 12) as u8
}

/// The piece of a region `[va, va + size)` to bind: all of it mostly, else
/// whole pages of it.
pub fn user_bind_range(rng: &mut Rng, va: u64, size: u64) -> (u64, u64) {
    let pages = size / page();
    if pages < 2 || rng.chance(3, 4) {
        return (va, size);
    }
    let first = rng.below(pages);
    (va + first * page(), page() * rng.range(1, pages - first))
}

/// The flags of a userptr MAP of memory the process can read (`readable`)
/// and write (`writable`): read-only mostly for read-only memory, and now
/// and then not, which the UAPI says must fail (-EFAULT), as must any bind
/// of memory the process cannot read.
pub fn user_bind_flags(rng: &mut Rng, readable: bool, writable: bool) -> Val<u32> {
    let ro = if writable {
        rng.chance(1, 3)
    } else {
        !rng.chance(1, 6)
    };
    let mut f = USERPTR | if ro { READONLY } else { 0 };
    if rng.chance(1, 4) {
        f |= NOEXEC;
    }
    Val {
        v: f,
        bad: !readable || (!ro && !writable),
    }
}

/// A range that overlaps the userptr `[va, va + size)` without covering
/// all of it, which an UNMAP must refuse (-EINVAL): inside it, or across
/// one of its ends. None for a single page.
pub fn partial_range(rng: &mut Rng, va: u64, size: u64) -> Option<(u64, u64)> {
    let pages = size / page();
    if pages < 2 {
        return None;
    }
    Some(match rng.below(3) {
        0 => {
            let first = rng.below(pages);
            let max = if first == 0 { pages - 1 } else { pages - first };
            (va + first * page(), page() * rng.range(1, max))
        }
        1 => {
            let before = page() * rng.range(1, 2);
            (va - before, before + page() * rng.range(1, pages - 1))
        }
        _ => {
            let first = rng.range(1, pages - 1);
            (
                va + first * page(),
                size - first * page() + page() * rng.range(1, 2),
            )
        }
    })
}

/// A job on the userptr range `user` (bound in the job's VM), with `data`
/// the command buffer's data area: reads of the range (checksums and
/// copies into the data area) and, with `write`, writes to it (fills,
/// copies from the data area, WRITE64s), which fault where it is bound
/// read-only. Ends with a flushing WRITE64 into the data area.
pub fn userptr_commands(
    rng: &mut Rng,
    user: (u64, u64),
    data: (u64, u64),
    write: bool,
) -> Vec<u32> {
    let mut c = Cmds::new();
    // An 8-byte aligned piece of the range, of at most `max` bytes.
    let piece = |rng: &mut Rng, max: u64| -> (u64, u64) {
        let len = match rng.below(3) {
            0 => user.1,
            1 => page(),
            _ => 8 * rng.range(1, user.1 / 8),
        }
        .min(max)
        .min(user.1);
        (user.0 + 8 * rng.below((user.1 - len) / 8 + 1), len)
    };
    let data_at = |rng: &mut Rng| data.0 + 8 * rng.below(data.1 / 8 - 1);
    for _ in 0..rng.range(1, 4) {
        match rng.below(if write { 6 } else { 3 }) {
            0 => {
                let (src, len) = piece(rng, u64::MAX);
                c.checksum(data_at(rng), src, len);
            }
            1 => {
                let (src, len) = piece(rng, data.1);
                c.copy(data.0, src, len);
            }
            2 => {
                c.checksum(data_at(rng), user.0, user.1);
            }
            3 => {
                let (dst, len) = piece(rng, u64::MAX);
                c.fill(dst, len, rng.next_u32());
            }
            4 => {
                let (dst, len) = piece(rng, data.1);
                c.copy(dst, data.0, len);
            }
            _ => {
                let (dst, _) = piece(rng, 8);
                c.write64(dst, rng.next_u64(), write64::FLUSH);
            }
        }
    }
    c.write64(data.0 + data.1 - 8, 1, write64::FLUSH);
    c.dwords().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: VaRange = VaRange {
        start: 0x1_0000,
        end: (1 << 48) - (1 << 32),
    };

    #[test]
    fn range_rules() {
        assert!(R.allows(0x1_0000, page()));
        assert!(R.allows(R.end - page(), page()));
        assert!(!R.allows(R.end - page(), 2 * page()));
        assert!(!R.allows(0, page()));
        assert!(!R.allows(0x1_0000, 0));
        assert!(!R.allows(0x1_0001, page()));
        assert!(!R.allows(0x1_0000, page() + 1));
        assert!(!R.allows(!(page() - 1), page()));
        let (w, s) = R.fuzz_window();
        assert!(R.allows(w, s));
        for slot in 0..8 {
            assert!(R.allows(R.cmd_slot(slot), 16 * MIB));
            assert!(R.cmd_slot(slot) >= w + s);
        }
    }

    #[test]
    fn generators_are_deterministic() {
        let bos = [BoInfo {
            handle: 3,
            size: 64 << 10,
        }];
        let bound = [(0x1_0000_0000, 8 * page())];
        let c = BindCtx {
            range: R,
            bos: &bos,
            bound: &bound,
            null_ok: true,
            async_: true,
        };
        let run = |seed| {
            let mut r = Rng::new(seed);
            (0..200)
                .map(|_| bind_op(&mut r, &c).to_bytes())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(11), run(11));
        assert_ne!(run(11), run(12));
    }

    #[test]
    fn plausible_values_are_valid() {
        let mut r = Rng::new(77);
        for _ in 0..5000 {
            let size = plausible_size(&mut r, 64 << 10);
            assert!(
                size.is_multiple_of(page()) && size > 0 && size <= 64 << 10,
                "{size:#x}"
            );
            let va = plausible_va(&mut r, R, size);
            assert!(R.allows(va, size), "{va:#x}+{size:#x}");
        }
    }

    #[test]
    fn bind_ops_are_mostly_valid_and_sometimes_not() {
        let bos = [
            BoInfo {
                handle: 1,
                size: page(),
            },
            BoInfo {
                handle: 2,
                size: MIB,
            },
        ];
        let bound = [(0x1_0000_0000, 16 * page()), (0x1_0020_0000, page())];
        for async_ in [false, true] {
            let c = BindCtx {
                range: R,
                bos: &bos,
                bound: &bound,
                null_ok: true,
                async_,
            };
            let mut r = Rng::new(5);
            let (mut good, mut bad, mut maps, mut unmaps, mut in_bo) = (0, 0, 0, 0, 0);
            let (mut nulls, mut bad_nulls, mut syncs, mut bad_syncs, mut users) = (0, 0, 0, 0, 0);
            for _ in 0..10_000 {
                let o = bind_op(&mut r, &c);
                let is_null = o.op == MAP && o.flags & NULL != 0 && o.flags & USERPTR == 0;
                if o.flags & USERPTR != 0 && o.op == MAP {
                    users += 1;
                    // Never valid in an asynchronous bind; never made for
                    // a synchronous one (unless a mutation sets the bit,
                    // with a handle: not valid either).
                    assert!(async_ || bind_op_bad(&o, R, false, true), "{o:?}");
                    assert!(!async_ || bind_op_bad(&o, R, true, true), "{o:?}");
                }
                if bind_op_bad(&o, R, async_, true) {
                    bad += 1;
                    bad_nulls += u32::from(is_null);
                    bad_syncs += u32::from(o.op == SYNC_ONLY);
                    continue;
                }
                good += 1;
                match o.op {
                    MAP if o.flags & NULL != 0 => {
                        nulls += 1;
                        assert_eq!((o.handle, o.bo_offset), (0, 0));
                        // Without the null aperture: refused.
                        assert!(bind_op_bad(&o, R, async_, false));
                    }
                    MAP => {
                        maps += 1;
                        // Unmutated maps use a live BO and stay inside it.
                        if let Some(bo) = bos.iter().find(|b| b.handle == o.handle) {
                            in_bo += u32::from(o.bo_offset + o.size <= bo.size);
                        }
                    }
                    UNMAP => unmaps += 1,
                    SYNC_ONLY => {
                        syncs += 1;
                        assert_eq!(
                            BindOp { op: 0, ..o }.to_bytes(),
                            BindOp::default().to_bytes()
                        );
                    }
                    _ => unreachable!(),
                }
            }
            assert!(good > 7500, "{good} good");
            assert!(bad > 300, "{bad} bad");
            assert!(maps > 3000 && unmaps > 2000, "{maps} maps {unmaps} unmaps");
            assert!(
                in_bo > maps * 9 / 10,
                "{in_bo} of {maps} maps inside their BO"
            );
            assert!(nulls > 500 && bad_nulls > 50, "{nulls} {bad_nulls}");
            assert!(syncs > 250 && bad_syncs > 50, "{syncs} {bad_syncs}");
            if async_ {
                assert!(users > 200, "{users}");
            }
        }
    }

    #[test]
    fn synchronous_binds_get_no_valid_userptr() {
        let bos = [BoInfo {
            handle: 3,
            size: page(),
        }];
        let c = BindCtx {
            range: R,
            bos: &bos,
            bound: &[],
            null_ok: true,
            async_: false,
        };
        let mut r = Rng::new(99);
        for _ in 0..200_000 {
            let o = bind_op(&mut r, &c);
            if o.op == MAP && o.flags & USERPTR != 0 {
                assert!(o.handle != 0 || o.bo_offset != 0, "{o:?}");
            }
        }
    }

    #[test]
    fn valid_bind_ops_are_valid() {
        let bos = [BoInfo {
            handle: 4,
            size: 16 * page(),
        }];
        let bound = [(0x1_0000_0000, 8 * page())];
        let mut r = Rng::new(41);
        let mut kinds = std::collections::BTreeSet::new();
        for null_ok in [false, true] {
            let c = BindCtx {
                range: R,
                bos: &bos,
                bound: &bound,
                null_ok,
                async_: true,
            };
            for _ in 0..2000 {
                let n = r.range(1, 8);
                let ops = valid_bind_ops(&mut r, &c, n);
                assert!(!ops.is_empty() && ops.len() as u64 <= n);
                for o in &ops {
                    assert!(!bind_op_bad(o, R, true, null_ok), "{o:?}");
                    if o.op == MAP && o.flags & NULL == 0 {
                        assert!(o.handle == 4 && o.bo_offset + o.size <= 16 * page());
                    }
                    assert!(null_ok || o.flags & NULL == 0);
                    kinds.insert((o.op, o.flags & NULL));
                }
            }
        }
        assert_eq!(kinds.len(), 4, "{kinds:?}");
    }

    #[test]
    fn bind_op_rules() {
        let bad = |o: &BindOp| bind_op_bad(o, R, false, true);
        let ok = BindOp {
            op: MAP,
            handle: 1,
            va: 0x1_0000_0000,
            size: page(),
            ..Default::default()
        };
        assert!(!bad(&ok));
        assert!(bad(&BindOp { pad: 1, ..ok }));
        assert!(bad(&BindOp { flags: 4, ..ok }));
        assert!(bad(&BindOp { flags: 16, ..ok }));
        // A userptr: handle and offset zero, else it must fail.
        let up = BindOp {
            flags: USERPTR | READONLY,
            handle: 0,
            ..ok
        };
        assert!(!bad(&up));
        // Asynchronous binds take no userptr.
        assert!(bind_op_bad(&up, R, true, true));
        assert!(bad(&BindOp { handle: 1, ..up }));
        assert!(bad(&BindOp {
            bo_offset: page(),
            ..up
        }));
        assert!(bad(&BindOp {
            flags: up.flags | NULL,
            ..up
        }));
        assert!(bad(&BindOp { bo_offset: 1, ..ok }));
        assert!(bad(&BindOp { handle: 0, ..ok }));
        assert!(bad(&BindOp { op: 3, ..ok }));
        assert!(bad(&BindOp { va: R.end, ..ok }));
        assert!(bad(&BindOp {
            size: u64::MAX - page() + 1,
            ..ok
        }));
        let un = BindOp {
            op: UNMAP,
            handle: 0,
            ..ok
        };
        assert!(!bad(&un));
        assert!(!bind_op_bad(&un, R, true, false));
        assert!(bad(&BindOp { handle: 1, ..un }));
        assert!(bad(&BindOp { flags: 1, ..un }));
        assert!(bad(&BindOp {
            bo_offset: page(),
            ..un
        }));
        // NULL: no handle, no offset, no USERPTR; READONLY and NOEXEC go.
        let null = BindOp {
            flags: NULL | READONLY | NOEXEC,
            handle: 0,
            ..ok
        };
        assert!(!bad(&null));
        assert!(!bind_op_bad(&null, R, true, true));
        assert!(bind_op_bad(&null, R, false, false));
        assert!(bad(&BindOp { handle: 1, ..null }));
        assert!(bad(&BindOp {
            bo_offset: page(),
            ..null
        }));
        assert!(bad(&BindOp {
            flags: NULL | USERPTR,
            ..null
        }));
        assert!(bad(&BindOp { va: R.end, ..null }));
        // SYNC_ONLY: every other field zero, the range not checked.
        let so = BindOp {
            op: SYNC_ONLY,
            ..Default::default()
        };
        assert!(!bad(&so));
        assert!(!bind_op_bad(&so, R, true, false));
        for o in [
            BindOp { flags: 1, ..so },
            BindOp { handle: 1, ..so },
            BindOp { pad: 1, ..so },
            BindOp {
                bo_offset: page(),
                ..so
            },
            BindOp { va: page(), ..so },
            BindOp { size: page(), ..so },
        ] {
            assert!(bad(&o), "{o:?}");
        }
        // Valid NULL ops stay in the range.
        let mut r = Rng::new(31);
        for _ in 0..2000 {
            let o = null_op(&mut r, R);
            assert!(!bad(&o), "{o:?}");
        }
    }

    #[test]
    fn sync_ops() {
        let syncs = [
            SyncInfo {
                handle: 4,
                fenced: true,
                point: 3,
            },
            SyncInfo {
                handle: 5,
                fenced: false,
                point: 0,
            },
        ];
        let mut r = Rng::new(8);
        let mut bad = 0;
        for _ in 0..5000 {
            let signal = r.chance(1, 2);
            let s = sync_op(&mut r, &syncs, signal);
            if sync_op_bad(&s) {
                bad += 1;
                continue;
            }
            if s.flags & SYNC_TIMELINE == 0 {
                assert_eq!(s.point, 0);
            }
        }
        assert!(bad > 50 && bad < 1000, "{bad}");
        // Waits use fenced objects unless mutated.
        let waits = (0..1000)
            .map(|_| sync_op(&mut r, &syncs, false))
            .filter(|s| s.handle == 5)
            .count();
        assert_eq!(waits, 0);
        assert!(sync_op_bad(&SyncOp {
            flags: 4,
            handle: 1,
            point: 0
        }));
        assert!(sync_op_bad(&SyncOp {
            flags: 0,
            handle: 1,
            point: 2
        }));
        assert!(!sync_op_bad(&SyncOp {
            flags: 3,
            handle: 1,
            point: 2
        }));
    }

    #[test]
    fn element_encoding_round_trips() {
        let o = BindOp {
            op: 1,
            flags: 2,
            handle: 3,
            pad: 4,
            bo_offset: 5,
            va: 6,
            size: 7,
        };
        let b = o.to_bytes();
        assert_eq!(b.len(), std::mem::size_of::<BindOp>());
        assert_eq!(BindOp::from_bytes(&b).to_bytes(), b);
        let s = SyncOp {
            flags: 1,
            handle: 2,
            point: 3,
        };
        assert_eq!(s.to_bytes().len(), std::mem::size_of::<SyncOp>());
        assert_eq!(SyncOp::from_bytes(&s.to_bytes()).point, 3);
        let r = BoRef {
            handle: 9,
            flags: 1,
        };
        assert_eq!(r.to_bytes(), [9, 0, 0, 0, 1, 0, 0, 0]);
    }

    #[test]
    fn array_layouts() {
        let mut r = Rng::new(1);
        let elems = [SyncOp {
            flags: 1,
            handle: 7,
            point: 0,
        }; 3];
        let l = Layout {
            stride: 16,
            nonzero_tail: false,
        };
        assert_eq!(encode(&mut r, &elems, l).len(), 48);
        let l = Layout {
            stride: 24,
            nonzero_tail: false,
        };
        let b = encode(&mut r, &elems, l);
        assert_eq!(b.len(), 72);
        assert!(b[16..24].iter().all(|&x| x == 0));
        assert_eq!(b[24..28], [1, 0, 0, 0]);
        let l = Layout {
            stride: 24,
            nonzero_tail: true,
        };
        let b = encode(&mut r, &elems, l);
        for e in 0..3 {
            assert!(b[e * 24 + 16..e * 24 + 24].iter().any(|&x| x != 0));
        }
        assert!(element_bad(&elems[0], l, sync_op_bad));
        // A short stride: the kernel sees zeros past it.
        let l = Layout {
            stride: 8,
            nonzero_tail: false,
        };
        assert_eq!(encode(&mut r, &elems, l).len(), 24);
        let s = SyncOp {
            flags: 0,
            handle: 7,
            point: 5,
        };
        assert!(sync_op_bad(&s));
        assert!(!element_bad(&s, l, sync_op_bad));
        // A nonzero tail does not count when the stride is not longer.
        let l = Layout {
            stride: 16,
            nonzero_tail: true,
        };
        assert!(!element_bad(&elems[0], l, sync_op_bad));
        let mut strides = std::collections::BTreeSet::new();
        for _ in 0..2000 {
            strides.insert(layout(&mut r, 40).stride);
        }
        assert!(strides.contains(&40) && strides.contains(&0) && strides.len() > 10);
    }

    #[test]
    fn flags_and_pads() {
        let mut r = Rng::new(2);
        let (mut bad, mut total) = (0, 0);
        for _ in 0..5000 {
            let f = flags(&mut r, 0b11);
            total += 1;
            assert_eq!(f.bad, f.v & !0b11 != 0, "{f:?}");
            bad += u32::from(f.bad);
            let p = pad32(&mut r);
            assert_eq!(p.bad, p.v != 0);
        }
        assert!(bad > 100 && bad < total / 4);
        // Flags with no known bit: every mutation has an unknown bit.
        for _ in 0..1000 {
            let f = flags(&mut r, 0);
            assert_eq!(f.bad, f.v != 0);
        }
    }

    #[test]
    fn bo_sizes() {
        let mut r = Rng::new(3);
        for _ in 0..5000 {
            let s = bo_size(&mut r);
            assert_eq!(s.bad, s.v > MAX_BO_SIZE, "{s:?}");
            assert!(s.bad || s.v <= MAX_KEPT_BO, "{s:?}");
        }
    }

    #[test]
    fn handles_prefer_live_ones() {
        let mut r = Rng::new(4);
        let live = [10, 11];
        let n = (0..1000)
            .filter(|_| live.contains(&handle(&mut r, &live)))
            .count();
        assert!(n > 850, "{n}");
        let ids: Vec<u32> = (0..1000).map(|_| vm_id(&mut r, &[7])).collect();
        assert!(ids.contains(&0) && ids.contains(&7));
    }

    #[test]
    fn command_buffers() {
        let c = CmdCtx {
            range: R,
            data: (0x8000_0040_0000, 64 << 10),
            cmd: (0x8000_0000_0000, 64 << 10),
            bound: vec![(0x1_0000_0000, page())],
            allow_hang: false,
        };
        let mut r = Rng::new(6);
        let mut seen = [0u32; 256];
        for _ in 0..2000 {
            let b = commands(&mut r, &c, 1024);
            assert!(!b.is_empty() && b.len() <= 1024 + 16);
            seen[(b[0] & 0xff) as usize] += 1;
            // Without hangs allowed, every WAIT waits for 0.
            let mut i = 0;
            while i < b.len() {
                let h = b[i];
                let len = (h >> 16) as usize;
                if h & 0xff == u32::from(op::WAIT)
                    && len == 5
                    && i + 5 <= b.len()
                    && header(op::WAIT, 0, 5) == h
                {
                    assert_eq!((b[i + 3], b[i + 4]), (0, 0));
                }
                i += len.max(1);
            }
        }
        for opc in [op::NOP, op::FILL, op::COPY, op::WRITE64, op::WAIT, op::CALL] {
            assert!(seen[opc as usize] > 0, "opcode {opc} never first");
        }
        let a = commands(&mut Rng::new(9), &c, 256);
        let b = commands(&mut Rng::new(9), &c, 256);
        assert_eq!(a, b);
    }

    #[test]
    fn userptr_regions_and_binds() {
        let mut r = Rng::new(21);
        let mut kinds = std::collections::BTreeSet::new();
        for _ in 0..2000 {
            kinds.insert(format!("{:?}", mem_kind(&mut r)));
            let size = user_region_size(&mut r);
            assert!(size.is_multiple_of(page()) && (page()..=MAX_USER_REGION).contains(&size));
            let va = 0x7f00_0000_0000;
            let (bva, bsize) = user_bind_range(&mut r, va, size);
            assert!(bva >= va && bsize > 0 && bva + bsize <= va + size);
            assert!(bva.is_multiple_of(page()) && bsize.is_multiple_of(page()));
            match partial_range(&mut r, va, size) {
                None => assert_eq!(size, page()),
                Some((pva, psize)) => {
                    assert!(pva.is_multiple_of(page()) && psize.is_multiple_of(page()));
                    assert!(psize > 0, "{pva:#x}+{psize:#x}");
                    // Overlaps the userptr without covering it.
                    assert!(pva < va + size && va < pva + psize, "{pva:#x}+{psize:#x}");
                    assert!(pva > va || pva + psize < va + size, "{pva:#x}+{psize:#x}");
                }
            }
        }
        assert_eq!(kinds.len(), 6, "{kinds:?}");
        // Read-only memory bound writable, or unreadable memory: must fail.
        let (mut ro_bad, mut n) = (0, 0);
        for _ in 0..1000 {
            let f = user_bind_flags(&mut r, true, false);
            assert_eq!(f.bad, f.v & READONLY == 0);
            assert_ne!(f.v & USERPTR, 0);
            ro_bad += u32::from(f.bad);
            n += 1;
            assert!(!user_bind_flags(&mut r, true, true).bad);
            assert!(user_bind_flags(&mut r, false, false).bad);
        }
        assert!(ro_bad > 50 && ro_bad < n / 3, "{ro_bad}");
        assert_ne!(user_file_byte(0), user_file_byte(page()));
    }

    #[test]
    fn userptr_jobs_stay_in_their_ranges() {
        let user = (0x7f00_0001_0000, 3 * page());
        let data = (0x8000_0040_0000, 64 << 10);
        let inside = |a: u64, len: u64, (va, size): (u64, u64)| a >= va && a + len <= va + size;
        let mut r = Rng::new(22);
        let mut wrote = 0;
        for i in 0..2000 {
            let write = i % 2 == 0;
            let dw = userptr_commands(&mut r, user, data, write);
            let mut k = 0;
            let arg = |k: usize, n: usize| u64::from(dw[k + n]) | u64::from(dw[k + n + 1]) << 32;
            while k < dw.len() {
                let h = dw[k];
                let len = (h >> 16) as usize;
                let (dst, src, size) = match (h & 0xff) as u8 {
                    op::CHECKSUM => (arg(k, 1), Some(arg(k, 3)), 8),
                    op::COPY => (arg(k, 1), Some(arg(k, 3)), arg(k, 5)),
                    op::FILL => (arg(k, 1), None, arg(k, 3)),
                    op::WRITE64 => (arg(k, 1), None, 8),
                    o => panic!("opcode {o}"),
                };
                if let Some(src) = src {
                    let n = if h & 0xff == u32::from(op::CHECKSUM) {
                        arg(k, 5)
                    } else {
                        size
                    };
                    assert!(inside(src, n, user) || inside(src, n, data), "{dw:x?}");
                }
                if inside(dst, size, user) {
                    assert!(write, "a write to the userptr: {dw:x?}");
                    wrote += 1;
                } else {
                    assert!(inside(dst, size, data), "{dw:x?}");
                }
                k += len;
            }
            assert_eq!(k, dw.len());
        }
        assert!(wrote > 300, "{wrote}");
        let a = userptr_commands(&mut Rng::new(5), user, data, true);
        assert_eq!(a, userptr_commands(&mut Rng::new(5), user, data, true));
    }

    #[test]
    fn wild_pointers_are_not_user_memory() {
        for p in WILD_POINTERS {
            // Below the first page, or at/after the end of the 47-bit user half.
            assert!(!(0x1000..0x0000_8000_0000_0000).contains(&p), "{p:#x}");
        }
    }
}
