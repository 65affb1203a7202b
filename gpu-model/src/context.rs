// SPDX-License-Identifier: GPL-2.0
//! Where a queue is inside the ring command at its HEAD, and the context
//! save area that carries it across a suspend and a restore (see
//! "Preemption" in `Documentation/gpu/ferrite-hw.rst`).

use crate::regs::save_area::*;
use crate::regs::{MAX_CALL_DEPTH, RING_MAX};

/// Bytes of a CALL command: the amount a frame's parent advances by when
/// the frame's buffer is done.
pub const CALL_BYTES: u32 = 16;

/// A CALL in progress: its indirect buffer and the byte offset in it of
/// the command in progress (or of the next one).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Frame {
    pub ib: u64,
    pub size: u32,
    pub offset: u32,
}

/// A multi-step command (FILL, COPY, CHECKSUM, WAIT) latched when it
/// started, so later steps do not fetch it again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Latched {
    pub dw: [u32; 7],
    pub len: u8,
}

impl Latched {
    pub fn of(cmd: &[u32]) -> Option<Self> {
        let mut l = Latched {
            len: u8::try_from(cmd.len()).ok()?,
            ..Default::default()
        };
        l.dw.get_mut(..cmd.len())?.copy_from_slice(cmd);
        Some(l)
    }

    pub fn dwords(&self) -> &[u32] {
        &self.dw[..usize::from(self.len)]
    }
}

/// The position of a queue inside the ring command at HEAD: everything a
/// suspend saves besides HEAD and SEQNO.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Position {
    /// The ring command at HEAD has started and is not complete.
    pub active: bool,
    /// CALL frames in progress; `frames[depth..]` are zero.
    pub depth: usize,
    pub frames: [Frame; MAX_CALL_DEPTH],
    /// Bytes of the innermost FILL/COPY/CHECKSUM done (whole steps).
    pub progress: u64,
    /// The running hash of a CHECKSUM over those bytes.
    pub partial: u64,
    /// Restored from a context: the CALLs it names are checked against
    /// the commands before the queue resumes them.
    pub unchecked: bool,
    /// The innermost command, if it is a multi-step one that started.
    pub latched: Option<Latched>,
}

/// The context save area, decoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Context {
    pub magic: u32,
    pub version: u32,
    pub head: u32,
    pub depth: u32,
    pub progress: u64,
    pub partial: u64,
    pub seqno: u64,
    pub suspends: u32,
    pub reserved: u32,
    pub request_ts: u64,
    pub saved_ts: u64,
    pub frames: [Frame; MAX_CALL_DEPTH],
}

fn get32(b: &[u8; SIZE], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn get64(b: &[u8; SIZE], at: usize) -> u64 {
    u64::from(get32(b, at)) | (u64::from(get32(b, at + 4)) << 32)
}

fn put32(b: &mut [u8; SIZE], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put64(b: &mut [u8; SIZE], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

impl Context {
    /// The context of a queue at `head` with `pos` in progress.
    pub fn capture(head: u32, seqno: u64, pos: &Position) -> Self {
        Context {
            magic: MAGIC,
            version: VERSION,
            head,
            depth: pos.depth as u32,
            progress: pos.progress,
            partial: pos.partial,
            seqno,
            frames: pos.frames,
            ..Default::default()
        }
    }

    /// The position a restore of this context resumes.
    pub fn position(&self) -> Position {
        let active = self.depth > 0 || self.progress > 0;
        Position {
            active,
            depth: self.depth as usize,
            frames: self.frames,
            progress: self.progress,
            partial: self.partial,
            unchecked: active,
            latched: None,
        }
    }

    pub fn from_bytes(b: &[u8; SIZE]) -> Self {
        let mut frames = [Frame::default(); MAX_CALL_DEPTH];
        for (i, f) in frames.iter_mut().enumerate() {
            let at = OFF_FRAMES + FRAME_SIZE * i;
            *f = Frame {
                ib: get64(b, at),
                size: get32(b, at + 8),
                offset: get32(b, at + 12),
            };
        }
        Context {
            magic: get32(b, OFF_MAGIC),
            version: get32(b, OFF_VERSION),
            head: get32(b, OFF_HEAD),
            depth: get32(b, OFF_DEPTH),
            progress: get64(b, OFF_PROGRESS),
            partial: get64(b, OFF_PARTIAL),
            seqno: get64(b, OFF_SEQNO),
            suspends: get32(b, OFF_SUSPENDS),
            reserved: get32(b, OFF_RESERVED),
            request_ts: get64(b, OFF_REQUEST_TS),
            saved_ts: get64(b, OFF_SAVED_TS),
            frames,
        }
    }

    pub fn to_bytes(self) -> [u8; SIZE] {
        let mut b = [0u8; SIZE];
        put32(&mut b, OFF_MAGIC, self.magic);
        put32(&mut b, OFF_VERSION, self.version);
        put32(&mut b, OFF_HEAD, self.head);
        put32(&mut b, OFF_DEPTH, self.depth);
        put64(&mut b, OFF_PROGRESS, self.progress);
        put64(&mut b, OFF_PARTIAL, self.partial);
        put64(&mut b, OFF_SEQNO, self.seqno);
        put32(&mut b, OFF_SUSPENDS, self.suspends);
        put32(&mut b, OFF_RESERVED, self.reserved);
        put64(&mut b, OFF_REQUEST_TS, self.request_ts);
        put64(&mut b, OFF_SAVED_TS, self.saved_ts);
        for (i, f) in self.frames.iter().enumerate() {
            let at = OFF_FRAMES + FRAME_SIZE * i;
            put64(&mut b, at, f.ib);
            put32(&mut b, at + 8, f.size);
            put32(&mut b, at + 12, f.offset);
        }
        b
    }

    /// The checks of a restore that need no fetch: the fields are well
    /// formed for a ring of `ring_size` bytes.
    pub fn is_well_formed(&self, ring_size: u32) -> bool {
        let d = self.depth as usize;
        self.magic == MAGIC
            && self.version == VERSION
            && self.head < ring_size
            && self.head.is_multiple_of(4)
            && d <= MAX_CALL_DEPTH
            && self.frames[..d].iter().all(|f| {
                f.size.is_multiple_of(4)
                    && f.size <= RING_MAX
                    && f.offset < f.size
                    && f.offset.is_multiple_of(4)
            })
            && self.frames[d..].iter().all(|f| *f == Frame::default())
            && self.reserved == 0
            && self.progress.is_multiple_of(STEP)
            && (self.progress > 0 || self.partial == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_round_trips() {
        assert_eq!(OFF_FRAMES + FRAME_SIZE * MAX_CALL_DEPTH, SIZE);
        let c = Context {
            magic: MAGIC,
            version: VERSION,
            head: 0x40,
            depth: 2,
            progress: 8192,
            partial: 0x1234_5678_9abc_def0,
            seqno: 77,
            suspends: 3,
            reserved: 0,
            request_ts: 10,
            saved_ts: 20,
            frames: [
                Frame {
                    ib: 0x1_0000_1000,
                    size: 64,
                    offset: 16,
                },
                Frame {
                    ib: 0x1_0000_2000,
                    size: 128,
                    offset: 32,
                },
                Frame::default(),
                Frame::default(),
            ],
        };
        let b = c.to_bytes();
        assert_eq!(&b[0..4], b"FCTX");
        assert_eq!(Context::from_bytes(&b), c);
        assert!(c.is_well_formed(4096));
        assert!(!c.is_well_formed(0x40));
        let p = c.position();
        assert!(p.active && p.unchecked);
        assert_eq!(Context::capture(0x40, 77, &p).frames, c.frames);
    }

    #[test]
    fn malformed_fields() {
        let ok = Context {
            magic: MAGIC,
            version: VERSION,
            ..Default::default()
        };
        assert!(ok.is_well_formed(4096));
        let bad = [
            Context { magic: 0, ..ok },
            Context { version: 2, ..ok },
            Context { head: 2, ..ok },
            Context { depth: 5, ..ok },
            Context { depth: 1, ..ok },
            Context { reserved: 1, ..ok },
            Context {
                progress: 100,
                ..ok
            },
            Context { partial: 1, ..ok },
        ];
        for c in bad {
            assert!(!c.is_well_formed(4096), "{c:?}");
        }
        let mut f = ok;
        f.frames[1].size = 4; // beyond depth: must be zero
        assert!(!f.is_well_formed(4096));
    }
}
