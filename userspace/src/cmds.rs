// SPDX-License-Identifier: MIT
//! The Ferrite command encoding (Documentation/gpu/ferrite-hw.rst, "Queues
//! and commands") and the FNV-1a 64 hash the CHECKSUM command computes.

/// Command opcodes.
pub mod op {
    pub const NOP: u8 = 0x00;
    pub const FILL: u8 = 0x01;
    pub const COPY: u8 = 0x02;
    pub const CHECKSUM: u8 = 0x03;
    pub const WRITE64: u8 = 0x04;
    pub const WAIT: u8 = 0x05;
    pub const TIMESTAMP: u8 = 0x06;
    pub const FLUSH: u8 = 0x07;
    pub const CALL: u8 = 0x08;
}

/// Flags of FLUSH (as `CACHE_CMD`).
pub mod flush {
    /// Write dirty lines back to memory.
    pub const CLEAN: u8 = 1 << 0;
    /// Drop the cached lines.
    pub const INVALIDATE: u8 = 1 << 1;
}

/// Flags of WRITE64.
pub mod write64 {
    /// Set the queue's bit of `JOB_IRQ_STATUS` after the write.
    pub const IRQ: u8 = 1 << 0;
    /// Clean and invalidate the cache, then write through to memory.
    pub const FLUSH: u8 = 1 << 1;
    /// Latch the value into `Q_SEQNO`.
    pub const SEQNO: u8 = 1 << 2;
}

/// The header dword of a command: opcode in bits 7:0, flags in 15:8, the
/// length in dwords (header included) in 31:16.
pub const fn header(opcode: u8, flags: u8, len_dwords: u16) -> u32 {
    opcode as u32 | (flags as u32) << 8 | (len_dwords as u32) << 16
}

/// A command buffer under construction: little-endian dwords.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cmds {
    dw: Vec<u32>,
}

fn lo(v: u64) -> u32 {
    v as u32
}

fn hi(v: u64) -> u32 {
    (v >> 32) as u32
}

impl Cmds {
    pub fn new() -> Self {
        Self::default()
    }

    fn emit(&mut self, opcode: u8, flags: u8, args: &[u32]) -> &mut Self {
        let len = u16::try_from(1 + args.len()).expect("command longer than 65535 dwords");
        self.dw.push(header(opcode, flags, len));
        self.dw.extend_from_slice(args);
        self
    }

    /// NOP of `len_dwords` dwords (at least 1), the payload zeroed.
    pub fn nop(&mut self, len_dwords: u16) -> &mut Self {
        assert!(len_dwords >= 1, "a NOP is at least its header");
        self.emit(op::NOP, 0, &vec![0; usize::from(len_dwords) - 1])
    }

    /// FILL `size` bytes at `dst`: byte i becomes byte (i mod 4) of
    /// `pattern` (little-endian).
    pub fn fill(&mut self, dst: u64, size: u64, pattern: u32) -> &mut Self {
        self.emit(
            op::FILL,
            0,
            &[lo(dst), hi(dst), lo(size), hi(size), pattern],
        )
    }

    /// COPY `size` bytes from `src` to `dst`.
    pub fn copy(&mut self, dst: u64, src: u64, size: u64) -> &mut Self {
        let a = [lo(dst), hi(dst), lo(src), hi(src), lo(size), hi(size)];
        self.emit(op::COPY, 0, &a)
    }

    /// CHECKSUM: write the FNV-1a 64 hash of `size` bytes at `src` as a u64
    /// at `dst`.
    pub fn checksum(&mut self, dst: u64, src: u64, size: u64) -> &mut Self {
        let a = [lo(dst), hi(dst), lo(src), hi(src), lo(size), hi(size)];
        self.emit(op::CHECKSUM, 0, &a)
    }

    /// WRITE64 `value` at `dst`, with [`write64`] flags.
    pub fn write64(&mut self, dst: u64, value: u64, flags: u8) -> &mut Self {
        self.emit(
            op::WRITE64,
            flags,
            &[lo(dst), hi(dst), lo(value), hi(value)],
        )
    }

    /// WAIT until the u64 at `addr` is >= `value`.
    pub fn wait(&mut self, addr: u64, value: u64) -> &mut Self {
        self.emit(op::WAIT, 0, &[lo(addr), hi(addr), lo(value), hi(value)])
    }

    /// TIMESTAMP: write the device clock (ns) as a u64 at `dst`.
    pub fn timestamp(&mut self, dst: u64) -> &mut Self {
        self.emit(op::TIMESTAMP, 0, &[lo(dst), hi(dst)])
    }

    /// FLUSH the device cache, with [`flush`] flags.
    pub fn flush(&mut self, flags: u8) -> &mut Self {
        self.emit(op::FLUSH, flags, &[])
    }

    /// CALL the `size` bytes of commands at `ib` (nesting at most 4 deep).
    pub fn call(&mut self, ib: u64, size: u32) -> &mut Self {
        self.emit(op::CALL, 0, &[lo(ib), hi(ib), size])
    }

    /// Append dwords as they are: anything, valid commands or not.
    pub fn raw(&mut self, dw: &[u32]) -> &mut Self {
        self.dw.extend_from_slice(dw);
        self
    }

    pub fn dwords(&self) -> &[u32] {
        &self.dw
    }

    /// Size in bytes, what SUBMIT takes as `cmd_size`.
    pub fn size(&self) -> u32 {
        (self.dw.len() * 4) as u32
    }

    /// The buffer as little-endian bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.dw.iter().flat_map(|d| d.to_le_bytes()).collect()
    }
}

/// FNV-1a 64 of `data`, as the CHECKSUM command computes it.
pub fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The bytes a FILL with `pattern` writes over `len` bytes.
pub fn fill_bytes(pattern: u32, len: usize) -> impl Iterator<Item = u8> {
    pattern.to_le_bytes().into_iter().cycle().take(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout() {
        // opcode 7:0, flags 15:8, length 31:16.
        assert_eq!(header(0x04, 0x03, 5), 0x0005_0304);
        assert_eq!(header(op::NOP, 0, 1), 0x0001_0000);
        assert_eq!(header(0xff, 0xff, 0xffff), 0xffff_ffff);
    }

    #[test]
    fn command_lengths_match_the_spec() {
        let mut c = Cmds::new();
        c.nop(1);
        assert_eq!(c.dwords(), &[0x0001_0000]);
        let mut c = Cmds::new();
        c.nop(3);
        assert_eq!(c.dwords(), &[0x0003_0000, 0, 0]);

        let mut c = Cmds::new();
        c.fill(0x1_2345_6780, 0x1_0000_000c, 0xa1b2_c3d4);
        assert_eq!(
            c.dwords(),
            &[0x0006_0001, 0x2345_6780, 0x1, 0x0000_000c, 0x1, 0xa1b2_c3d4]
        );

        let mut c = Cmds::new();
        c.copy(0x2_0000_0000, 0x1_0000_1000, 0x10_0000);
        assert_eq!(c.dwords(), &[0x0007_0002, 0, 2, 0x1000, 1, 0x10_0000, 0]);

        let mut c = Cmds::new();
        c.checksum(0x3_0000_0008, 0x2_0000_0000, 4096);
        assert_eq!(c.dwords(), &[0x0007_0003, 8, 3, 0, 2, 4096, 0]);

        let mut c = Cmds::new();
        c.write64(0x3_0000_0010, 0x1234_5678_90ab_cdef, write64::FLUSH);
        assert_eq!(
            c.dwords(),
            &[0x0005_0204, 0x10, 3, 0x90ab_cdef, 0x1234_5678]
        );

        let mut c = Cmds::new();
        c.wait(0x40, 7);
        assert_eq!(c.dwords(), &[0x0005_0005, 0x40, 0, 7, 0]);

        let mut c = Cmds::new();
        c.timestamp(0x1_0000_0008);
        assert_eq!(c.dwords(), &[0x0003_0006, 8, 1]);

        let mut c = Cmds::new();
        c.flush(flush::CLEAN | flush::INVALIDATE);
        assert_eq!(c.dwords(), &[0x0001_0307]);

        let mut c = Cmds::new();
        c.call(0x2_0000_1000, 64);
        assert_eq!(c.dwords(), &[0x0004_0008, 0x1000, 2, 64]);

        let mut c = Cmds::new();
        c.raw(&[0xdead_beef, 7]).nop(1);
        assert_eq!(c.dwords(), &[0xdead_beef, 7, 0x0001_0000]);
    }

    #[test]
    fn builder_concatenates_and_sizes() {
        let mut c = Cmds::new();
        c.nop(1).write64(0, 1, 0).nop(2);
        assert_eq!(c.dwords().len(), 1 + 5 + 2);
        assert_eq!(c.size(), 32);
        let b = c.to_bytes();
        assert_eq!(b.len(), 32);
        assert_eq!(&b[4..8], &[0x04, 0x00, 0x05, 0x00]);
    }

    #[test]
    #[should_panic]
    fn empty_nop_is_rejected() {
        Cmds::new().nop(0);
    }

    #[test]
    fn fnv1a_known_vectors() {
        // Reference vectors of FNV-1a 64.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn fill_bytes_are_little_endian() {
        let v: Vec<u8> = fill_bytes(0xa1b2_c3d4, 6).collect();
        assert_eq!(v, [0xd4, 0xc3, 0xb2, 0xa1, 0xd4, 0xc3]);
    }
}
