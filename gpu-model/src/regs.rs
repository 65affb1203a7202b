// SPDX-License-Identifier: GPL-2.0
//! The Ferrite GPU register file (BAR0), as specified in
//! `Documentation/gpu/ferrite-hw.rst`.
//!
//! [`REGISTERS`] is the one table both the model and the spec test read, so
//! the two cannot disagree about which registers exist.

/// Value of the `ID` register: "FeRr" in little-endian ASCII.
pub const FERRITE_ID: u32 = 0x7252_6546;
/// Hardware interface version: major in bits 31:16, minor in bits 15:0.
/// 1.1 added preemption, 1.2 the null aperture, 1.3 the DMA segment
/// boundary (`DMA_SEG_BOUNDARY_LO`/`_HI`: a constraint, so no `FEATURES`
/// bit; a driver reads it from 1.3 on and assumes no boundary before).
pub const FERRITE_VERSION: u32 = 0x0001_0003;
/// The first minor version with `DMA_SEG_BOUNDARY_LO`/`_HI`.
pub const VERSION_MINOR_SEG_BOUNDARY: u32 = 3;

/// PCI identity.
pub const PCI_VENDOR_ID: u16 = 0x1b36;
pub const PCI_DEVICE_ID: u16 = 0x00fe;
pub const PCI_REVISION: u8 = 0x01;
/// Display controller / 3D controller.
pub const PCI_CLASS: u32 = 0x03_02_00;

/// Size of BAR0 (registers).
pub const BAR0_SIZE: u64 = 0x1_0000;
/// Size of BAR2 (MSI-X table and PBA).
pub const BAR2_SIZE: u64 = 0x1000;
pub const MSIX_TABLE_OFFSET: u32 = 0x000;
pub const MSIX_PBA_OFFSET: u32 = 0x800;
/// Number of MSI-X vectors.
pub const MSIX_VECTORS: u32 = 4;
/// MSI-X vector of `IRQ_STATUS.SOFT` and `IRQ_STATUS.ERROR`.
pub const VECTOR_GLOBAL: u32 = 0;
/// MSI-X vector of job interrupts (`JOB_IRQ_STATUS`).
pub const VECTOR_JOB: u32 = 1;
/// MSI-X vector of MMU faults (`MMU_IRQ_STATUS`).
pub const VECTOR_MMU: u32 = 2;

/// Number of hardware queues.
pub const NUM_QUEUES: usize = 8;
/// Number of address-space slots.
pub const NUM_AS: usize = 16;
/// Number of 64-bit counters.
pub const NUM_COUNTERS: usize = 16;

/// Base and stride of the address-space slot blocks.
pub const AS_BASE: u32 = 0x1000;
pub const AS_STRIDE: u32 = 0x40;
/// Base and stride of the queue blocks.
pub const QUEUE_BASE: u32 = 0x2000;
pub const QUEUE_STRIDE: u32 = 0x40;
/// Base of the counter block.
pub const COUNTER_BASE: u32 = 0x100;

/// Access type of a register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read-only: writes are ignored.
    ReadOnly,
    /// Read-write.
    ReadWrite,
    /// Write-one-to-clear: reads return the bits, writing 1 clears them.
    ReadWrite1Clear,
    /// Write-only: reads return zero.
    WriteOnly,
}

/// One 32-bit register of BAR0.
#[derive(Clone, Copy, Debug)]
pub struct Register {
    pub name: &'static str,
    pub offset: u32,
    pub access: Access,
    /// Number of instances (slots or queues), each `stride` bytes apart.
    pub count: u32,
    pub stride: u32,
}

macro_rules! registers {
    (
        global { $($g:ident = $goff:expr, $gacc:ident;)* }
        as_slot { $($a:ident = $aoff:expr, $aacc:ident;)* }
        queue { $($q:ident = $qoff:expr, $qacc:ident;)* }
    ) => {
        $(pub const $g: u32 = $goff;)*
        /// Offsets within an address-space slot block.
        pub mod as_reg { $(pub const $a: u32 = $aoff;)* }
        /// Offsets within a queue block.
        pub mod q_reg { $(pub const $q: u32 = $qoff;)* }
        /// Every register of BAR0.
        pub const REGISTERS: &[Register] = &[
            $(Register { name: stringify!($g), offset: $goff, access: Access::$gacc, count: 1, stride: 0 },)*
            $(Register { name: concat!("AS_", stringify!($a)), offset: AS_BASE + $aoff,
                access: Access::$aacc, count: NUM_AS as u32, stride: AS_STRIDE },)*
            $(Register { name: concat!("Q_", stringify!($q)), offset: QUEUE_BASE + $qoff,
                access: Access::$qacc, count: NUM_QUEUES as u32, stride: QUEUE_STRIDE },)*
        ];
    };
}

registers! {
    global {
        ID = 0x000, ReadOnly;
        VERSION = 0x004, ReadOnly;
        FEATURES = 0x008, ReadOnly;
        DMA_ADDR_BITS = 0x00c, ReadOnly;
        DMA_MAX_SEGMENT = 0x010, ReadOnly;
        SCRATCH = 0x014, ReadWrite;
        NUM_QUEUES_REG = 0x018, ReadOnly;
        NUM_AS_REG = 0x01c, ReadOnly;
        IRQ_STATUS = 0x020, ReadWrite1Clear;
        IRQ_MASK = 0x024, ReadWrite;
        IRQ_RAISE = 0x028, WriteOnly;
        RESET = 0x030, WriteOnly;
        RESET_COUNT = 0x034, ReadOnly;
        DMA_SEG_BOUNDARY_LO = 0x038, ReadOnly;
        DMA_SEG_BOUNDARY_HI = 0x03c, ReadOnly;
        CACHE_CMD = 0x040, WriteOnly;
        CACHE_DIRTY = 0x044, ReadOnly;
        JOB_IRQ_STATUS = 0x050, ReadWrite1Clear;
        JOB_IRQ_MASK = 0x054, ReadWrite;
        MMU_IRQ_STATUS = 0x058, ReadWrite1Clear;
        MMU_IRQ_MASK = 0x05c, ReadWrite;
        TIMESTAMP_LO = 0x060, ReadOnly;
        TIMESTAMP_HI = 0x064, ReadOnly;
        COUNTER_LO = 0x100, ReadOnly;
        COUNTER_HI = 0x104, ReadOnly;
        COUNTER_RESET = 0x180, WriteOnly;
    }
    as_slot {
        TRANSTAB_LO = 0x00, ReadWrite;
        TRANSTAB_HI = 0x04, ReadWrite;
        MEMATTR_LO = 0x08, ReadWrite;
        MEMATTR_HI = 0x0c, ReadWrite;
        CONFIG = 0x10, ReadWrite;
        COMMAND = 0x14, WriteOnly;
        LOCKADDR_LO = 0x18, ReadWrite;
        LOCKADDR_HI = 0x1c, ReadWrite;
        LOCKSIZE_LO = 0x20, ReadWrite;
        LOCKSIZE_HI = 0x24, ReadWrite;
        STATUS = 0x28, ReadOnly;
        FAULTSTATUS = 0x2c, ReadOnly;
        FAULTADDR_LO = 0x30, ReadOnly;
        FAULTADDR_HI = 0x34, ReadOnly;
    }
    queue {
        RING_BASE_LO = 0x00, ReadWrite;
        RING_BASE_HI = 0x04, ReadWrite;
        RING_SIZE = 0x08, ReadWrite;
        AS = 0x0c, ReadWrite;
        HEAD = 0x10, ReadOnly;
        TAIL = 0x14, ReadWrite;
        CONTROL = 0x18, ReadWrite;
        STATUS = 0x1c, ReadOnly;
        SEQNO_LO = 0x20, ReadOnly;
        SEQNO_HI = 0x24, ReadOnly;
        ERROR = 0x28, ReadOnly;
        ERROR_OFFSET = 0x2c, ReadOnly;
        CONTEXT_LO = 0x30, ReadWrite;
        CONTEXT_HI = 0x34, ReadWrite;
    }
}

/// `FEATURES` bits.
pub mod features {
    /// The MMU can stall a faulting queue until RESUME or ABORT.
    pub const STALL: u32 = 1 << 0;
    /// 2 MiB block descriptors at level 2.
    pub const BLOCK_2M: u32 = 1 << 1;
    /// 1 GiB block descriptors at level 1.
    pub const BLOCK_1G: u32 = 1 << 2;
    /// The TIMESTAMP command and register.
    pub const TIMESTAMP: u32 = 1 << 3;
    /// Queue suspend and restore (`Q_CONTROL.SUSPEND`, `RESTORE`).
    pub const PREEMPT: u32 = 1 << 4;
    /// Leaf output addresses in `[1 << 47, 1 << 48)` read as zeros and
    /// drop writes (`mmu::NULL_APERTURE`); `DMA_ADDR_BITS` is at most 47.
    pub const NULL_APERTURE: u32 = 1 << 5;
    pub const ALL: u32 = STALL | BLOCK_2M | BLOCK_1G | TIMESTAMP | PREEMPT | NULL_APERTURE;
}

/// `DMA_SEG_BOUNDARY_LO`/`_HI` of a device without a segment boundary.
pub const NO_SEG_BOUNDARY: u64 = u64::MAX;

/// Whether `mask` is a segment boundary mask the device may advertise:
/// all-ones (no boundary), or `mask + 1` a power of two of at least 4096.
pub fn valid_seg_boundary(mask: u64) -> bool {
    mask == NO_SEG_BOUNDARY || ((mask + 1).is_power_of_two() && mask + 1 >= 4096)
}

/// `IRQ_STATUS` / `IRQ_MASK` bits.
pub mod irq {
    /// Software-raised interrupt (`IRQ_RAISE`), vector 0.
    pub const SOFT: u32 = 1 << 0;
    /// Summary: some unmasked bit of `JOB_IRQ_STATUS` is set (read-only).
    pub const JOB: u32 = 1 << 1;
    /// Summary: some unmasked bit of `MMU_IRQ_STATUS` is set (read-only).
    pub const MMU: u32 = 1 << 2;
    /// A global error (reserved), vector 0.
    pub const ERROR: u32 = 1 << 3;
}

/// `RESET` values.
pub const RESET_GLOBAL: u32 = 1;

/// `CACHE_CMD` values and `FLUSH` command flags.
pub mod cache {
    /// Write dirty lines back to memory; keep them cached (clean).
    pub const CLEAN: u32 = 1 << 0;
    /// Drop every line (after a clean if `CLEAN` is also set; dirty data
    /// of a pure invalidate is lost, as on hardware).
    pub const INVALIDATE: u32 = 1 << 1;
}

/// `AS_CONFIG` fields.
pub mod as_config {
    pub const VA_BITS_MASK: u32 = 0x3f;
    pub const ENABLE: u32 = 1 << 8;
    pub const STALL: u32 = 1 << 9;
}

/// `AS_COMMAND` values.
pub mod as_cmd {
    pub const UPDATE: u32 = 1;
    pub const LOCK: u32 = 2;
    pub const UNLOCK: u32 = 3;
    pub const FLUSH_RANGE: u32 = 4;
    pub const FLUSH_ALL: u32 = 5;
    pub const RESUME: u32 = 6;
    pub const ABORT: u32 = 7;
}

/// `AS_STATUS` bits.
pub mod as_status {
    pub const LOCKED: u32 = 1 << 0;
    pub const STALLED: u32 = 1 << 1;
    pub const FAULTED: u32 = 1 << 2;
    pub const ENABLED: u32 = 1 << 3;
}

/// `AS_FAULTSTATUS` fields.
pub mod fault {
    pub const TYPE_MASK: u32 = 0xf;
    pub const TRANSLATION: u32 = 1;
    pub const PERMISSION: u32 = 2;
    pub const ADDRESS_SIZE: u32 = 3;
    pub const BUS: u32 = 4;
    pub const WRITE: u32 = 1 << 4;
    pub const QUEUE_SHIFT: u32 = 8;
    pub const VALID: u32 = 1 << 31;
}

/// `Q_CONTROL` bits.
pub mod q_control {
    pub const ENABLE: u32 = 1 << 0;
    pub const RESET: u32 = 1 << 1;
    /// Request a suspend at the next suspend point (written with ENABLE).
    pub const SUSPEND: u32 = 1 << 2;
    /// Restore the context at `Q_CONTEXT` (written with ENABLE).
    pub const RESTORE: u32 = 1 << 3;
}

/// `Q_STATUS` bits.
pub mod q_status {
    pub const ENABLED: u32 = 1 << 0;
    pub const BUSY: u32 = 1 << 1;
    pub const WAITING: u32 = 1 << 2;
    pub const FAULTED: u32 = 1 << 3;
    pub const ERROR: u32 = 1 << 4;
    pub const STALLED: u32 = 1 << 5;
    /// The context is saved; nothing runs until RESET or RESTORE.
    pub const SUSPENDED: u32 = 1 << 6;
}

/// `Q_ERROR` codes.
pub mod q_error {
    pub const NONE: u32 = 0;
    pub const BAD_OPCODE: u32 = 1;
    pub const BAD_LENGTH: u32 = 2;
    pub const MMU_FAULT: u32 = 3;
    pub const CALL_DEPTH: u32 = 4;
    pub const BAD_RING: u32 = 5;
    pub const ABORTED: u32 = 6;
    pub const BAD_SIZE: u32 = 7;
    pub const BAD_CONTEXT: u32 = 8;
}

/// `JOB_IRQ_STATUS` bit shifts (add the queue number).
pub mod job_irq {
    /// A WRITE64 with the IRQ flag.
    pub const FENCE: u32 = 0;
    /// The queue suspended: its context is saved.
    pub const SUSPENDED: u32 = 8;
    /// The queue stopped with an error or a fault.
    pub const STOPPED: u32 = 16;
}

/// The context save area of a queue (`Q_CONTEXT`), see "Preemption".
pub mod save_area {
    /// "FCTX" in little-endian ASCII.
    pub const MAGIC: u32 = 0x5854_4346;
    pub const VERSION: u32 = 1;
    /// Size and alignment in bytes.
    pub const SIZE: usize = 128;
    pub const ALIGN: u64 = 64;
    /// The unit of FILL/COPY/CHECKSUM `progress`.
    pub const STEP: u64 = 4096;
    /// Field offsets.
    pub const OFF_MAGIC: usize = 0x00;
    pub const OFF_VERSION: usize = 0x04;
    pub const OFF_HEAD: usize = 0x08;
    pub const OFF_DEPTH: usize = 0x0c;
    pub const OFF_PROGRESS: usize = 0x10;
    pub const OFF_PARTIAL: usize = 0x18;
    pub const OFF_SEQNO: usize = 0x20;
    pub const OFF_SUSPENDS: usize = 0x28;
    pub const OFF_RESERVED: usize = 0x2c;
    pub const OFF_REQUEST_TS: usize = 0x30;
    pub const OFF_SAVED_TS: usize = 0x38;
    /// Frame i is at `OFF_FRAMES + FRAME_SIZE * i`: u64 ib, u32 size, u32 offset.
    pub const OFF_FRAMES: usize = 0x40;
    pub const FRAME_SIZE: usize = 16;
}

/// Counter indices (`COUNTER_LO + 8 * i`).
pub mod counter {
    pub const MMIO_READS: usize = 0;
    pub const MMIO_WRITES: usize = 1;
    pub const COMMANDS: usize = 2;
    pub const BYTES_READ: usize = 3;
    pub const BYTES_WRITTEN: usize = 4;
    pub const TLB_HITS: usize = 5;
    pub const TLB_MISSES: usize = 6;
    pub const PT_READS: usize = 7;
    pub const TLB_INVALIDATIONS: usize = 8;
    pub const CACHE_FLUSHES: usize = 9;
    pub const FAULTS: usize = 10;
    pub const IRQS: usize = 11;
    pub const DOORBELLS: usize = 12;
    pub const PAGES_WRITTEN_BACK: usize = 13;
    pub const QUEUE_RESETS: usize = 14;
    pub const GLOBAL_RESETS: usize = 15;
    pub const NAMES: [&str; super::NUM_COUNTERS] = [
        "mmio_reads",
        "mmio_writes",
        "commands",
        "bytes_read",
        "bytes_written",
        "tlb_hits",
        "tlb_misses",
        "pt_reads",
        "tlb_invalidations",
        "cache_flushes",
        "faults",
        "irqs",
        "doorbells",
        "pages_written_back",
        "queue_resets",
        "global_resets",
    ];
}

/// Command opcodes (bits 7:0 of a command header).
pub mod op {
    pub const NOP: u32 = 0x00;
    pub const FILL: u32 = 0x01;
    pub const COPY: u32 = 0x02;
    pub const CHECKSUM: u32 = 0x03;
    pub const WRITE64: u32 = 0x04;
    pub const WAIT: u32 = 0x05;
    pub const TIMESTAMP: u32 = 0x06;
    pub const FLUSH: u32 = 0x07;
    pub const CALL: u32 = 0x08;
}

/// `WRITE64` flags (bits 15:8 of the header).
pub mod write64 {
    /// Raise the queue's bit in `JOB_IRQ_STATUS` after the write.
    pub const IRQ: u32 = 1 << 0;
    /// Clean and invalidate the device cache first; the write goes to memory.
    pub const FLUSH: u32 = 1 << 1;
    /// Also latch the value into `Q_SEQNO`.
    pub const SEQNO: u32 = 1 << 2;
}

/// Largest size of one FILL/COPY/CHECKSUM command.
pub const MAX_COMMAND_BYTES: u64 = 1 << 32;
/// Deepest nesting of CALL.
pub const MAX_CALL_DEPTH: usize = 4;
/// Ring sizes allowed (bytes, power of two).
pub const RING_MIN: u32 = 4096;
pub const RING_MAX: u32 = 1 << 20;

/// Look up a register by offset; returns it and its instance number.
pub fn lookup(offset: u32) -> Option<(&'static Register, u32)> {
    REGISTERS.iter().find_map(|r| {
        if r.count == 1 {
            (r.offset == offset).then_some((r, 0))
        } else {
            let base = r.offset;
            let rel = offset.checked_sub(base)?;
            (rel % r.stride == 0 && rel / r.stride < r.count).then_some((r, rel / r.stride))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_aligned_unique_and_inside_bar0() {
        let mut all = Vec::new();
        for r in REGISTERS {
            assert_eq!(r.offset % 4, 0, "{}", r.name);
            for i in 0..r.count {
                let off = r.offset + i * r.stride;
                assert!(u64::from(off) < BAR0_SIZE, "{}", r.name);
                all.push(off);
            }
        }
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n, "two registers share an offset");
    }

    #[test]
    fn blocks_fit_their_stride() {
        for r in REGISTERS.iter().filter(|r| r.count > 1) {
            let rel = r.offset
                - if r.name.starts_with("AS_") {
                    AS_BASE
                } else {
                    QUEUE_BASE
                };
            assert!(rel < r.stride, "{}", r.name);
        }
        assert!(AS_BASE + AS_STRIDE * NUM_AS as u32 <= QUEUE_BASE);
    }

    #[test]
    fn lookup_finds_instances() {
        let (r, n) = lookup(QUEUE_BASE + 3 * QUEUE_STRIDE + q_reg::TAIL).unwrap();
        assert_eq!((r.name, n), ("Q_TAIL", 3));
        let (r, n) = lookup(AS_BASE + 15 * AS_STRIDE + as_reg::COMMAND).unwrap();
        assert_eq!((r.name, n), ("AS_COMMAND", 15));
        assert!(lookup(0xfffc).is_none());
    }

    #[test]
    fn id_spells_ferr() {
        assert_eq!(&FERRITE_ID.to_le_bytes(), b"FeRr");
    }
}
