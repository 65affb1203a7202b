// SPDX-License-Identifier: GPL-2.0

//! Ferrite GPU registers (BAR0), see `Documentation/gpu/ferrite-hw.rst`.

#![allow(dead_code)]

use kernel::io::register;

/// PCI device ID (vendor: Red Hat, 0x1b36, as QEMU's virtual devices).
pub(crate) const PCI_DEVICE_ID: u32 = 0x00fe;

/// Size of the register BAR the driver maps.
pub(crate) const BAR0_SIZE: usize = 0x1_0000;

/// Value of [`ID`]: "FeRr" in little-endian ASCII.
pub(crate) const FERRITE_ID: u32 = 0x7252_6546;

/// Hardware interface major version this driver speaks.
pub(crate) const VERSION_MAJOR: u32 = 1;

register! {
    /// Identification register, reads [`FERRITE_ID`].
    pub(crate) ID(u32) @ 0x000 {
        31:0 id;
    }

    /// Hardware interface version.
    pub(crate) VERSION(u32) @ 0x004 {
        31:16 major;
        15:0 minor;
    }

    /// Optional features.
    pub(crate) FEATURES(u32) @ 0x008 {
        31:0 features;
    }

    /// Width of the bus addresses the device can emit.
    pub(crate) DMA_ADDR_BITS(u32) @ 0x00c {
        7:0 bits;
    }

    /// Largest DMA segment the device accepts, in bytes.
    pub(crate) DMA_MAX_SEGMENT(u32) @ 0x010 {
        31:0 bytes;
    }

    /// Free scratch register, for bring-up tests.
    pub(crate) SCRATCH(u32) @ 0x014 {
        31:0 value;
    }

    /// Number of hardware queues.
    pub(crate) NUM_QUEUES(u32) @ 0x018 {
        31:0 count;
    }

    /// Number of address-space slots.
    pub(crate) NUM_AS(u32) @ 0x01c {
        31:0 count;
    }

    /// Global interrupt status (write one to clear SOFT and ERROR).
    pub(crate) IRQ_STATUS(u32) @ 0x020 {
        31:0 status;
    }

    /// Global interrupt mask.
    pub(crate) IRQ_MASK(u32) @ 0x024 {
        31:0 mask;
    }

    /// Writing [`IRQ_SOFT`] raises a software interrupt.
    pub(crate) IRQ_RAISE(u32) @ 0x028 {
        31:0 bits;
    }

    /// Global reset: write [`RESET_GLOBAL`].
    pub(crate) RESET(u32) @ 0x030 {
        31:0 command;
    }

    /// Number of global resets since the PCI-level reset.
    pub(crate) RESET_COUNT(u32) @ 0x034 {
        31:0 count;
    }

    /// Device cache maintenance: [`CACHE_CLEAN`] | [`CACHE_INVALIDATE`].
    pub(crate) CACHE_CMD(u32) @ 0x040 {
        31:0 command;
    }

    /// Job interrupt status: bit q a fence IRQ of queue q, bit 16+q an
    /// error or fault of queue q (write one to clear).
    pub(crate) JOB_IRQ_STATUS(u32) @ 0x050 {
        31:0 status;
    }

    /// Job interrupt mask.
    pub(crate) JOB_IRQ_MASK(u32) @ 0x054 {
        31:0 mask;
    }

    /// MMU interrupt status: bit n a fault recorded by slot n.
    pub(crate) MMU_IRQ_STATUS(u32) @ 0x058 {
        31:0 status;
    }

    /// MMU interrupt mask.
    pub(crate) MMU_IRQ_MASK(u32) @ 0x05c {
        31:0 mask;
    }

    /// Device clock in nanoseconds, bits 31:0 (no latch: see
    /// [`crate::gpu::Gpu::timestamp_sample`]).
    pub(crate) TIMESTAMP_LO(u32) @ 0x060 {
        31:0 value;
    }

    /// Device clock, bits 63:32.
    pub(crate) TIMESTAMP_HI(u32) @ 0x064 {
        31:0 value;
    }

    /// Counter `i`, bits 31:0; reading it latches the high half.
    pub(crate) COUNTER_LO(u32)[16, stride = 8] @ 0x100 {
        31:0 value;
    }

    /// High half of the counter whose low half was read last.
    pub(crate) COUNTER_HI(u32)[16, stride = 8] @ 0x104 {
        31:0 value;
    }

    /// Slot n: root table bus address, bits 31:0.
    pub(crate) AS_TRANSTAB_LO(u32)[16, stride = 0x40] @ 0x1000 {
        31:0 value;
    }

    /// Slot n: root table bus address, bits 63:32.
    pub(crate) AS_TRANSTAB_HI(u32)[16, stride = 0x40] @ 0x1004 {
        31:0 value;
    }

    /// Slot n: MAIR, bits 31:0.
    pub(crate) AS_MEMATTR_LO(u32)[16, stride = 0x40] @ 0x1008 {
        31:0 value;
    }

    /// Slot n: MAIR, bits 63:32.
    pub(crate) AS_MEMATTR_HI(u32)[16, stride = 0x40] @ 0x100c {
        31:0 value;
    }

    /// Slot n: configuration, latched by UPDATE.
    pub(crate) AS_CONFIG(u32)[16, stride = 0x40] @ 0x1010 {
        9:9 stall => bool;
        8:8 enable => bool;
        5:0 va_bits;
    }

    /// Slot n: command ([`AS_CMD_UPDATE`] ...).
    pub(crate) AS_COMMAND(u32)[16, stride = 0x40] @ 0x1014 {
        31:0 command;
    }

    /// Slot n: start of the LOCK / FLUSH_RANGE range, bits 31:0.
    pub(crate) AS_LOCKADDR_LO(u32)[16, stride = 0x40] @ 0x1018 {
        31:0 value;
    }

    /// Slot n: start of the range, bits 63:32.
    pub(crate) AS_LOCKADDR_HI(u32)[16, stride = 0x40] @ 0x101c {
        31:0 value;
    }

    /// Slot n: size of the range, bits 31:0.
    pub(crate) AS_LOCKSIZE_LO(u32)[16, stride = 0x40] @ 0x1020 {
        31:0 value;
    }

    /// Slot n: size of the range, bits 63:32.
    pub(crate) AS_LOCKSIZE_HI(u32)[16, stride = 0x40] @ 0x1024 {
        31:0 value;
    }

    /// Slot n: last fault (type, direction, source queue, valid).
    pub(crate) AS_FAULTSTATUS(u32)[16, stride = 0x40] @ 0x102c {
        31:31 valid => bool;
        11:8 queue;
        4:4 write => bool;
        3:0 kind;
    }

    /// Slot n: GPU VA of the last fault, bits 31:0.
    pub(crate) AS_FAULTADDR_LO(u32)[16, stride = 0x40] @ 0x1030 {
        31:0 value;
    }

    /// Slot n: GPU VA of the last fault, bits 63:32.
    pub(crate) AS_FAULTADDR_HI(u32)[16, stride = 0x40] @ 0x1034 {
        31:0 value;
    }

    /// Queue q: ring GPU VA, bits 31:0.
    pub(crate) Q_RING_BASE_LO(u32)[8, stride = 0x40] @ 0x2000 {
        31:0 value;
    }

    /// Queue q: ring GPU VA, bits 63:32.
    pub(crate) Q_RING_BASE_HI(u32)[8, stride = 0x40] @ 0x2004 {
        31:0 value;
    }

    /// Queue q: ring size in bytes.
    pub(crate) Q_RING_SIZE(u32)[8, stride = 0x40] @ 0x2008 {
        31:0 bytes;
    }

    /// Queue q: address-space slot.
    pub(crate) Q_AS(u32)[8, stride = 0x40] @ 0x200c {
        31:0 slot;
    }

    /// Queue q: tail (the doorbell).
    pub(crate) Q_TAIL(u32)[8, stride = 0x40] @ 0x2014 {
        31:0 offset;
    }

    /// Queue q: control. SUSPEND asks the queue to save its context and
    /// stop at its next suspend point; ENABLE with RESTORE loads the
    /// context at `Q_CONTEXT` before executing.
    pub(crate) Q_CONTROL(u32)[8, stride = 0x40] @ 0x2018 {
        3:3 restore => bool;
        2:2 suspend => bool;
        1:1 reset => bool;
        0:0 enable => bool;
    }

    /// Queue q: state bits.
    pub(crate) Q_STATUS(u32)[8, stride = 0x40] @ 0x201c {
        6:6 suspended => bool;
        5:5 stalled => bool;
        4:4 error => bool;
        3:3 faulted => bool;
        2:2 waiting => bool;
        1:1 busy => bool;
        0:0 enabled => bool;
    }

    /// Queue q: why the queue stopped.
    pub(crate) Q_ERROR(u32)[8, stride = 0x40] @ 0x2028 {
        31:0 code;
    }

    /// Queue q: ring offset of the command that stopped the queue.
    pub(crate) Q_ERROR_OFFSET(u32)[8, stride = 0x40] @ 0x202c {
        31:0 offset;
    }

    /// Queue q: GPU VA of the context save area, bits 31:0.
    pub(crate) Q_CONTEXT_LO(u32)[8, stride = 0x40] @ 0x2030 {
        31:0 value;
    }

    /// Queue q: GPU VA of the context save area, bits 63:32.
    pub(crate) Q_CONTEXT_HI(u32)[8, stride = 0x40] @ 0x2034 {
        31:0 value;
    }
}

/// `IRQ_STATUS` bits.
pub(crate) const IRQ_SOFT: u32 = 1 << 0;
pub(crate) const IRQ_ERROR: u32 = 1 << 3;

/// Value of [`RESET`] that resets the whole device.
pub(crate) const RESET_GLOBAL: u32 = 1;

/// Number of hardware counters.
pub(crate) const NUM_COUNTERS: usize = 16;

/// `CACHE_CMD` bits.
pub(crate) const CACHE_CLEAN: u32 = 1 << 0;
pub(crate) const CACHE_INVALIDATE: u32 = 1 << 1;

/// `AS_COMMAND` values.
pub(crate) const AS_CMD_UPDATE: u32 = 1;
pub(crate) const AS_CMD_LOCK: u32 = 2;
pub(crate) const AS_CMD_UNLOCK: u32 = 3;
pub(crate) const AS_CMD_FLUSH_RANGE: u32 = 4;

/// `Q_ERROR` value of a queue stopped by an MMU fault.
pub(crate) const Q_ERROR_MMU_FAULT: u32 = 3;

/// `FEATURES` bit: output addresses with bit 47 set form the null aperture
/// (reads return zeros, writes are dropped).
pub(crate) const FEATURE_NULL_APERTURE: u32 = 1 << 5;
/// `FEATURES` bit: queues can be suspended and restored (interface 1.1).
pub(crate) const FEATURE_PREEMPT: u32 = 1 << 4;
/// The TIMESTAMP command and the TIMESTAMP_LO/HI registers.
pub(crate) const FEATURE_TIMESTAMP: u32 = 1 << 3;
/// Ticks of the device clock per second: it counts nanoseconds.
pub(crate) const TIMESTAMP_FREQUENCY: u64 = 1_000_000_000;

/// `Q_ERROR` value of a queue whose context could not be restored.
pub(crate) const Q_ERROR_BAD_CONTEXT: u32 = 8;

/// Bit of `JOB_IRQ_STATUS` for a completed suspend of queue `q`.
pub(crate) const fn job_irq_suspended(q: usize) -> u32 {
    1 << (8 + q)
}

/// Bit of `JOB_IRQ_STATUS` for an error of queue `q`.
pub(crate) const fn job_irq_error(q: usize) -> u32 {
    1 << (16 + q)
}

/// Command opcodes and flags (see "Queues and commands").
pub(crate) mod cmd {
    pub(crate) const CALL: u32 = 0x08;
    pub(crate) const WRITE64: u32 = 0x04;
    pub(crate) const W64_IRQ: u32 = 1 << 0;
    pub(crate) const W64_FLUSH: u32 = 1 << 1;
    pub(crate) const W64_SEQNO: u32 = 1 << 2;

    /// A command header.
    pub(crate) const fn header(opcode: u32, flags: u32, dwords: u32) -> u32 {
        opcode | (flags << 8) | (dwords << 16)
    }
}

/// Queues and slots the register map has room for.
pub(crate) const MAX_QUEUES: usize = 8;
pub(crate) const MAX_AS: usize = 16;
