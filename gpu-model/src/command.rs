// SPDX-License-Identifier: GPL-2.0
//! Commands, decoded from their dwords (see "Queues and commands" in
//! `Documentation/gpu/ferrite-hw.rst`) into the [`Command`] the queue
//! engine executes.
//!
//! Decoding checks what the dwords alone decide: the opcode, the length,
//! the size of FILL, COPY and CHECKSUM. What depends on the queue (the
//! CALL depth, then the CALL's size, in that order) is checked when the
//! command executes.

use crate::regs::{op, q_error, write64, MAX_COMMAND_BYTES};

/// A command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Command {
    Nop,
    Fill {
        dst: u64,
        size: u64,
        pattern: u32,
    },
    Copy {
        dst: u64,
        src: u64,
        size: u64,
    },
    Checksum {
        dst: u64,
        src: u64,
        size: u64,
    },
    Write64 {
        dst: u64,
        value: u64,
        flags: Write64Flags,
    },
    Wait {
        addr: u64,
        value: u64,
    },
    Timestamp {
        dst: u64,
    },
    /// `flags`: `regs::cache` bits, as `CACHE_CMD`.
    Flush {
        flags: u32,
    },
    /// `size` is as written: not checked by decoding.
    Call {
        ib: u64,
        size: u32,
    },
}

/// The flags of WRITE64 (`regs::write64`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Write64Flags {
    /// Raise the queue's fence bit in `JOB_IRQ_STATUS` after the write.
    pub irq: bool,
    /// Clean and invalidate the cache, then write through to memory.
    pub flush: bool,
    /// Latch the value into `Q_SEQNO`.
    pub seqno: bool,
}

fn u64_of(lo: u32, hi: u32) -> u64 {
    u64::from(lo) | (u64::from(hi) << 32)
}

impl Command {
    /// Decode the command `dw`, header first, all of its length. An error
    /// is a `Q_ERROR` code: BAD_OPCODE, BAD_LENGTH (a length that does not
    /// match the opcode), BAD_SIZE (FILL, COPY or CHECKSUM above
    /// [`MAX_COMMAND_BYTES`]).
    pub fn decode(dw: &[u32]) -> Result<Command, u32> {
        let hdr = dw.first().copied().ok_or(q_error::BAD_LENGTH)?;
        let flags = (hdr >> 8) & 0xff;
        let need = |n: usize| {
            if dw.len() == n {
                Ok(())
            } else {
                Err(q_error::BAD_LENGTH)
            }
        };
        let size = |lo: u32, hi: u32| {
            let s = u64_of(lo, hi);
            if s <= MAX_COMMAND_BYTES {
                Ok(s)
            } else {
                Err(q_error::BAD_SIZE)
            }
        };
        Ok(match hdr & 0xff {
            op::NOP => Command::Nop,
            op::FILL => {
                need(6)?;
                Command::Fill {
                    dst: u64_of(dw[1], dw[2]),
                    size: size(dw[3], dw[4])?,
                    pattern: dw[5],
                }
            }
            op::COPY => {
                need(7)?;
                Command::Copy {
                    dst: u64_of(dw[1], dw[2]),
                    src: u64_of(dw[3], dw[4]),
                    size: size(dw[5], dw[6])?,
                }
            }
            op::CHECKSUM => {
                need(7)?;
                Command::Checksum {
                    dst: u64_of(dw[1], dw[2]),
                    src: u64_of(dw[3], dw[4]),
                    size: size(dw[5], dw[6])?,
                }
            }
            op::WRITE64 => {
                need(5)?;
                Command::Write64 {
                    dst: u64_of(dw[1], dw[2]),
                    value: u64_of(dw[3], dw[4]),
                    flags: Write64Flags {
                        irq: flags & write64::IRQ != 0,
                        flush: flags & write64::FLUSH != 0,
                        seqno: flags & write64::SEQNO != 0,
                    },
                }
            }
            op::WAIT => {
                need(5)?;
                Command::Wait {
                    addr: u64_of(dw[1], dw[2]),
                    value: u64_of(dw[3], dw[4]),
                }
            }
            op::TIMESTAMP => {
                need(3)?;
                Command::Timestamp {
                    dst: u64_of(dw[1], dw[2]),
                }
            }
            op::FLUSH => {
                need(1)?;
                Command::Flush { flags }
            }
            op::CALL => {
                need(4)?;
                Command::Call {
                    ib: u64_of(dw[1], dw[2]),
                    size: dw[3],
                }
            }
            _ => return Err(q_error::BAD_OPCODE),
        })
    }

    /// Whether a queue restored `progress` bytes (whole steps, more than
    /// none) into this command, with `partial` as the hash so far, can go
    /// on with it: it is a FILL, COPY or CHECKSUM with more to do, and
    /// only a CHECKSUM has a hash.
    pub fn resumes_at(&self, progress: u64, partial: u64) -> bool {
        match *self {
            Command::Fill { size, .. } | Command::Copy { size, .. } => {
                progress < size && partial == 0
            }
            Command::Checksum { size, .. } => progress < size,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(op: u32, flags: u32, len: u32) -> u32 {
        op | (flags << 8) | (len << 16)
    }

    #[test]
    fn decodes_each_opcode() {
        let d = |v: &[u32]| Command::decode(v);
        assert_eq!(d(&[hdr(op::NOP, 0xff, 3), 1, 2]), Ok(Command::Nop));
        assert_eq!(
            d(&[hdr(op::FILL, 0, 6), 0x1000, 0x2, 0x30, 0, 0xabcd]),
            Ok(Command::Fill {
                dst: 0x2_0000_1000,
                size: 0x30,
                pattern: 0xabcd
            })
        );
        assert_eq!(
            d(&[hdr(op::COPY, 0, 7), 1, 2, 3, 4, 5, 0]),
            Ok(Command::Copy {
                dst: 0x2_0000_0001,
                src: 0x4_0000_0003,
                size: 5
            })
        );
        assert_eq!(
            d(&[hdr(op::CHECKSUM, 0, 7), 1, 0, 3, 0, 0, 1]),
            Ok(Command::Checksum {
                dst: 1,
                src: 3,
                size: MAX_COMMAND_BYTES
            })
        );
        assert_eq!(
            d(&[hdr(op::WRITE64, 0b101, 5), 8, 0, 7, 1]),
            Ok(Command::Write64 {
                dst: 8,
                value: 0x1_0000_0007,
                flags: Write64Flags {
                    irq: true,
                    flush: false,
                    seqno: true
                }
            })
        );
        assert_eq!(
            d(&[hdr(op::WAIT, 0, 5), 8, 0, 9, 0]),
            Ok(Command::Wait { addr: 8, value: 9 })
        );
        assert_eq!(
            d(&[hdr(op::TIMESTAMP, 0, 3), 0, 1]),
            Ok(Command::Timestamp { dst: 1 << 32 })
        );
        assert_eq!(d(&[hdr(op::FLUSH, 3, 1)]), Ok(Command::Flush { flags: 3 }));
        // A CALL's size is the engine's to check, after the depth.
        assert_eq!(
            d(&[hdr(op::CALL, 0, 4), 0x1000, 0, 3]),
            Ok(Command::Call {
                ib: 0x1000,
                size: 3
            })
        );
    }

    #[test]
    fn errors() {
        let d = |v: &[u32]| Command::decode(v);
        assert_eq!(d(&[]), Err(q_error::BAD_LENGTH));
        assert_eq!(d(&[hdr(0x09, 0, 1)]), Err(q_error::BAD_OPCODE));
        assert_eq!(d(&[hdr(0xff, 0, 2), 0]), Err(q_error::BAD_OPCODE));
        assert_eq!(d(&[hdr(op::FLUSH, 0, 2), 0]), Err(q_error::BAD_LENGTH));
        assert_eq!(d(&[hdr(op::WAIT, 0, 4), 0, 0, 0]), Err(q_error::BAD_LENGTH));
        // The length is checked before the size.
        assert_eq!(
            d(&[hdr(op::FILL, 0, 5), 0, 0, 0, 2]),
            Err(q_error::BAD_LENGTH)
        );
        assert_eq!(
            d(&[hdr(op::FILL, 0, 6), 0, 0, 1, 1, 0]),
            Err(q_error::BAD_SIZE)
        );
        assert_eq!(
            d(&[hdr(op::COPY, 0, 7), 0, 0, 0, 0, 0, 2]),
            Err(q_error::BAD_SIZE)
        );
    }

    #[test]
    fn resumes_only_inside_long_commands() {
        let fill = Command::Fill {
            dst: 0,
            size: 8192,
            pattern: 0,
        };
        let sum = Command::Checksum {
            dst: 0,
            src: 0,
            size: 8192,
        };
        assert!(fill.resumes_at(4096, 0));
        assert!(!fill.resumes_at(8192, 0));
        assert!(!fill.resumes_at(4096, 1), "only a CHECKSUM has a hash");
        assert!(sum.resumes_at(4096, 1));
        assert!(!sum.resumes_at(8192, 1));
        assert!(!Command::Nop.resumes_at(4096, 0));
        assert!(!Command::Wait { addr: 0, value: 0 }.resumes_at(4096, 0));
    }
}
