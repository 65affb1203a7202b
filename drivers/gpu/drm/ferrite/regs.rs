// SPDX-License-Identifier: GPL-2.0

//! Ferrite GPU registers (BAR0), see `Documentation/gpu/ferrite-hw.rst`.
//!
//! Every register of the specification is defined here, under its name
//! there; commands and field values are types ([`AsCommand`],
//! [`QueueError`], bit fields as `bool`s). Array registers are reached with
//! [`CheckedArray::checked_at`], which reports an index out of range (a
//! driver bug) instead of dropping the access. The host test
//! `gpu-model/tests/spec.rs` reads this file and checks it against the
//! specification's register tables and the device model's: names, offsets,
//! instances, fields and values.

// Registers and fields the driver does not use are defined nevertheless, so
// that this table is the whole register map.
#![allow(dead_code)]

use kernel::{
    io::{
        register,
        register::{
            RegisterArray,
            RegisterArrayLoc, //
        }, //
    },
    num::Bounded,
    prelude::*, //
};

/// PCI device ID (vendor: Red Hat, 0x1b36, as QEMU's virtual devices).
pub(crate) const PCI_DEVICE_ID: u32 = 0x00fe;

/// Size of the register BAR the driver maps.
pub(crate) const BAR0_SIZE: usize = 0x1_0000;

/// Value of [`ID`]: "FeRr" in little-endian ASCII.
pub(crate) const FERRITE_ID: u32 = 0x7252_6546;

/// Hardware interface major version this driver speaks.
pub(crate) const VERSION_MAJOR: u32 = 1;

/// The first minor version with [`DMA_SEG_BOUNDARY_LO`] and
/// [`DMA_SEG_BOUNDARY_HI`]; an older device has no segment boundary.
pub(crate) const VERSION_MINOR_SEG_BOUNDARY: u32 = 3;

/// The segment boundary mask of a device without one (all-ones).
pub(crate) const NO_SEG_BOUNDARY: u64 = u64::MAX;

/// Queues and slots the register map has room for.
pub(crate) const MAX_QUEUES: usize = 8;
pub(crate) const MAX_AS: usize = 16;

/// Number of hardware counters.
pub(crate) const NUM_COUNTERS: usize = 16;

/// Bytes between two counters' registers.
pub(crate) const COUNTER_STRIDE: usize = 8;
/// Bytes between two address-space slots' register blocks.
pub(crate) const AS_STRIDE: usize = 0x40;
/// Bytes between two queues' register blocks.
pub(crate) const QUEUE_STRIDE: usize = 0x40;

/// Array registers reached with an index known only at run time.
pub(crate) trait CheckedArray: RegisterArray {
    /// The location of instance `idx` of this register.
    ///
    /// Every index the driver uses is below the register map's bounds (a
    /// ring below [`MAX_QUEUES`], a slot below [`MAX_AS`]): one out of range
    /// is a driver bug. It is reported with a warning and fails with
    /// `EINVAL`, so that the caller's access fails visibly instead of being
    /// dropped.
    fn checked_at(idx: usize) -> Result<RegisterArrayLoc<Self>> {
        RegisterArrayLoc::try_new(idx).ok_or_else(|| {
            pr_err!(
                "{}[{}]: no such register ({} instances)\n",
                core::any::type_name::<Self>(),
                idx,
                Self::SIZE
            );
            kernel::warn_on!(true);
            EINVAL
        })
    }
}

impl<T: RegisterArray> CheckedArray for T {}

/// Defines the values of a register field as an enum, converted from the
/// field (`EINVAL` for a value the enum does not have) and to it.
macro_rules! field_values {
    (
        $(#[$attr:meta])*
        $vis:vis enum $name:ident: $bits:literal {
            $($(#[$vattr:meta])* $variant:ident = $value:literal,)*
        }
    ) => {
        $(#[$attr])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(u32)]
        $vis enum $name {
            $($(#[$vattr])* $variant = $value,)*
        }

        impl TryFrom<Bounded<u32, $bits>> for $name {
            type Error = Error;

            fn try_from(v: Bounded<u32, $bits>) -> Result<Self> {
                match v.get() {
                    $($value => Ok(Self::$variant),)*
                    _ => Err(EINVAL),
                }
            }
        }

        impl From<$name> for Bounded<u32, $bits> {
            fn from(v: $name) -> Self {
                match v {
                    $($name::$variant => Bounded::<u32, $bits>::new::<$value>(),)*
                }
            }
        }
    };
}

field_values! {
    /// The commands of [`RESET`].
    pub(crate) enum ResetCommand: 32 {
        /// Reset the whole device (see "Reset").
        Global = 1,
    }
}

field_values! {
    /// The commands of [`AS_COMMAND`].
    pub(crate) enum AsCommand: 32 {
        /// Latch TRANSTAB and CONFIG, clear the fault record and invalidate
        /// the slot's TLB entries.
        Update = 1,
        /// Make the slot's accesses to the LOCKADDR/LOCKSIZE range wait.
        Lock = 2,
        /// End a LOCK.
        Unlock = 3,
        /// Invalidate the TLB entries overlapping the LOCKADDR/LOCKSIZE range.
        FlushRange = 4,
        /// Invalidate the slot's TLB entries.
        FlushAll = 5,
        /// Let a stalled slot go on.
        Resume = 6,
        /// Fail a stalled slot's access.
        Abort = 7,
    }
}

field_values! {
    /// The kind of a fault recorded in [`AS_FAULTSTATUS`].
    pub(crate) enum FaultKind: 4 {
        /// No valid descriptor.
        Translation = 1,
        /// The descriptor does not allow the access.
        Permission = 2,
        /// The address is wider than the slot's VA bits.
        AddressSize = 3,
        /// The output address is beyond the device's DMA reach.
        Bus = 4,
    }
}

field_values! {
    /// Why a queue stopped ([`Q_ERROR`]).
    pub(crate) enum QueueError: 32 {
        /// An unknown opcode.
        BadOpcode = 1,
        /// A length that does not match the opcode, or exceeds TAIL.
        BadLength = 2,
        /// A translation fault of the queue's slot.
        MmuFault = 3,
        /// CALLs nested deeper than the device allows.
        CallDepth = 4,
        /// Ring registers the device cannot use.
        BadRing = 5,
        /// ABORT of a stalled slot.
        Aborted = 6,
        /// A size above 4 GiB.
        BadSize = 7,
        /// A context that cannot be read, written or used.
        BadContext = 8,
    }
}

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

    /// Optional features ([`FEATURE_TIMESTAMP`] ...).
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
    pub(crate) NUM_QUEUES_REG(u32) @ 0x018 {
        31:0 count;
    }

    /// Number of address-space slots.
    pub(crate) NUM_AS_REG(u32) @ 0x01c {
        31:0 count;
    }

    /// Global interrupt status (write one to clear `soft` and `error`).
    pub(crate) IRQ_STATUS(u32) @ 0x020 {
        /// A global error (reserved).
        3:3 error => bool;
        /// Summary: some unmasked bit of [`MMU_IRQ_STATUS`] is set.
        2:2 mmu => bool;
        /// Summary: some unmasked bit of [`JOB_IRQ_STATUS`] is set.
        1:1 job => bool;
        /// A software interrupt ([`IRQ_RAISE`]).
        0:0 soft => bool;
    }

    /// Global interrupt mask: the [`IRQ_STATUS`] bits that raise vector 0.
    pub(crate) IRQ_MASK(u32) @ 0x024 {
        3:3 error => bool;
        2:2 mmu => bool;
        1:1 job => bool;
        0:0 soft => bool;
    }

    /// Raises interrupts, for a self-test.
    pub(crate) IRQ_RAISE(u32) @ 0x028 {
        /// Set `IRQ_STATUS.soft`.
        0:0 soft => bool;
    }

    /// Global reset: see [`RESET::global`].
    pub(crate) RESET(u32) @ 0x030 {
        31:0 command ?=> ResetCommand;
    }

    /// Number of global resets since the PCI-level reset.
    pub(crate) RESET_COUNT(u32) @ 0x034 {
        31:0 count;
    }

    /// DMA segment boundary mask, bits 31:0 (interface 1.3, see
    /// [`VERSION_MINOR_SEG_BOUNDARY`]).
    pub(crate) DMA_SEG_BOUNDARY_LO(u32) @ 0x038 {
        31:0 mask;
    }

    /// DMA segment boundary mask, bits 63:32.
    pub(crate) DMA_SEG_BOUNDARY_HI(u32) @ 0x03c {
        31:0 mask;
    }

    /// Device cache maintenance, complete when the write completes.
    pub(crate) CACHE_CMD(u32) @ 0x040 {
        /// Drop every line (after the clean if `clean` is also set).
        1:1 invalidate => bool;
        /// Write dirty lines back to memory.
        0:0 clean => bool;
    }

    /// Number of dirty lines in the device cache.
    pub(crate) CACHE_DIRTY(u32) @ 0x044 {
        31:0 lines;
    }

    /// Job interrupt status (write one to clear); bit `q` of each field is
    /// queue `q`'s.
    pub(crate) JOB_IRQ_STATUS(u32) @ 0x050 {
        /// The queue stopped with an error or a fault.
        23:16 stopped;
        /// The queue suspended: its context is saved.
        15:8 suspended;
        /// The queue executed a WRITE64 with the IRQ flag.
        7:0 fence;
    }

    /// Job interrupt mask.
    pub(crate) JOB_IRQ_MASK(u32) @ 0x054 {
        31:0 mask;
    }

    /// MMU interrupt status (write one to clear).
    pub(crate) MMU_IRQ_STATUS(u32) @ 0x058 {
        /// Bit `n`: slot `n` recorded a fault.
        15:0 slots;
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
    pub(crate) COUNTER_LO(u32)[NUM_COUNTERS, stride = COUNTER_STRIDE] @ 0x100 {
        31:0 value;
    }

    /// High half of the counter whose low half was read last.
    pub(crate) COUNTER_HI(u32)[NUM_COUNTERS, stride = COUNTER_STRIDE] @ 0x104 {
        31:0 value;
    }

    /// Any write zeroes every counter.
    pub(crate) COUNTER_RESET(u32) @ 0x180 {
        31:0 value;
    }

    /// Slot n: root table bus address, bits 31:0.
    pub(crate) AS_TRANSTAB_LO(u32)[MAX_AS, stride = AS_STRIDE] @ 0x1000 {
        31:0 value;
    }

    /// Slot n: root table bus address, bits 63:32.
    pub(crate) AS_TRANSTAB_HI(u32)[MAX_AS, stride = AS_STRIDE] @ 0x1004 {
        31:0 value;
    }

    /// Slot n: MAIR, bits 31:0.
    pub(crate) AS_MEMATTR_LO(u32)[MAX_AS, stride = AS_STRIDE] @ 0x1008 {
        31:0 value;
    }

    /// Slot n: MAIR, bits 63:32.
    pub(crate) AS_MEMATTR_HI(u32)[MAX_AS, stride = AS_STRIDE] @ 0x100c {
        31:0 value;
    }

    /// Slot n: configuration, latched by UPDATE.
    pub(crate) AS_CONFIG(u32)[MAX_AS, stride = AS_STRIDE] @ 0x1010 {
        9:9 stall => bool;
        8:8 enable => bool;
        5:0 va_bits;
    }

    /// Slot n: command.
    pub(crate) AS_COMMAND(u32)[MAX_AS, stride = AS_STRIDE] @ 0x1014 {
        31:0 command ?=> AsCommand;
    }

    /// Slot n: start of the LOCK / FLUSH_RANGE range, bits 31:0.
    pub(crate) AS_LOCKADDR_LO(u32)[MAX_AS, stride = AS_STRIDE] @ 0x1018 {
        31:0 value;
    }

    /// Slot n: start of the range, bits 63:32.
    pub(crate) AS_LOCKADDR_HI(u32)[MAX_AS, stride = AS_STRIDE] @ 0x101c {
        31:0 value;
    }

    /// Slot n: size of the range, bits 31:0.
    pub(crate) AS_LOCKSIZE_LO(u32)[MAX_AS, stride = AS_STRIDE] @ 0x1020 {
        31:0 value;
    }

    /// Slot n: size of the range, bits 63:32.
    pub(crate) AS_LOCKSIZE_HI(u32)[MAX_AS, stride = AS_STRIDE] @ 0x1024 {
        31:0 value;
    }

    /// Slot n: state bits.
    pub(crate) AS_STATUS(u32)[MAX_AS, stride = AS_STRIDE] @ 0x1028 {
        3:3 enabled => bool;
        /// A fault was recorded since UPDATE.
        2:2 faulted => bool;
        1:1 stalled => bool;
        0:0 locked => bool;
    }

    /// Slot n: last fault (type, direction, source queue, valid).
    pub(crate) AS_FAULTSTATUS(u32)[MAX_AS, stride = AS_STRIDE] @ 0x102c {
        31:31 valid => bool;
        11:8 queue;
        /// A write (else a read or a fetch).
        4:4 write => bool;
        3:0 kind ?=> FaultKind;
    }

    /// Slot n: GPU VA of the last fault, bits 31:0.
    pub(crate) AS_FAULTADDR_LO(u32)[MAX_AS, stride = AS_STRIDE] @ 0x1030 {
        31:0 value;
    }

    /// Slot n: GPU VA of the last fault, bits 63:32.
    pub(crate) AS_FAULTADDR_HI(u32)[MAX_AS, stride = AS_STRIDE] @ 0x1034 {
        31:0 value;
    }

    /// Queue q: ring GPU VA, bits 31:0.
    pub(crate) Q_RING_BASE_LO(u32)[MAX_QUEUES, stride = QUEUE_STRIDE] @ 0x2000 {
        31:0 value;
    }

    /// Queue q: ring GPU VA, bits 63:32.
    pub(crate) Q_RING_BASE_HI(u32)[MAX_QUEUES, stride = QUEUE_STRIDE] @ 0x2004 {
        31:0 value;
    }

    /// Queue q: ring size in bytes.
    pub(crate) Q_RING_SIZE(u32)[MAX_QUEUES, stride = QUEUE_STRIDE] @ 0x2008 {
        31:0 bytes;
    }

    /// Queue q: address-space slot.
    pub(crate) Q_AS(u32)[MAX_QUEUES, stride = QUEUE_STRIDE] @ 0x200c {
        31:0 slot;
    }

    /// Queue q: ring offset of the next command to execute.
    pub(crate) Q_HEAD(u32)[MAX_QUEUES, stride = QUEUE_STRIDE] @ 0x2010 {
        31:0 offset;
    }

    /// Queue q: tail (the doorbell).
    pub(crate) Q_TAIL(u32)[MAX_QUEUES, stride = QUEUE_STRIDE] @ 0x2014 {
        31:0 offset;
    }

    /// Queue q: control. SUSPEND asks the queue to save its context and
    /// stop at its next suspend point; ENABLE with RESTORE loads the
    /// context at `Q_CONTEXT` before executing.
    pub(crate) Q_CONTROL(u32)[MAX_QUEUES, stride = QUEUE_STRIDE] @ 0x2018 {
        3:3 restore => bool;
        2:2 suspend => bool;
        1:1 reset => bool;
        0:0 enable => bool;
    }

    /// Queue q: state bits.
    pub(crate) Q_STATUS(u32)[MAX_QUEUES, stride = QUEUE_STRIDE] @ 0x201c {
        6:6 suspended => bool;
        5:5 stalled => bool;
        4:4 error => bool;
        3:3 faulted => bool;
        2:2 waiting => bool;
        1:1 busy => bool;
        0:0 enabled => bool;
    }

    /// Queue q: value of the last WRITE64 with the SEQNO flag, bits 31:0.
    pub(crate) Q_SEQNO_LO(u32)[MAX_QUEUES, stride = QUEUE_STRIDE] @ 0x2020 {
        31:0 value;
    }

    /// Queue q: bits 63:32 of the same.
    pub(crate) Q_SEQNO_HI(u32)[MAX_QUEUES, stride = QUEUE_STRIDE] @ 0x2024 {
        31:0 value;
    }

    /// Queue q: why the queue stopped.
    pub(crate) Q_ERROR(u32)[MAX_QUEUES, stride = QUEUE_STRIDE] @ 0x2028 {
        31:0 code ?=> QueueError;
    }

    /// Queue q: ring offset of the command that stopped the queue.
    pub(crate) Q_ERROR_OFFSET(u32)[MAX_QUEUES, stride = QUEUE_STRIDE] @ 0x202c {
        31:0 offset;
    }

    /// Queue q: GPU VA of the context save area, bits 31:0.
    pub(crate) Q_CONTEXT_LO(u32)[MAX_QUEUES, stride = QUEUE_STRIDE] @ 0x2030 {
        31:0 value;
    }

    /// Queue q: GPU VA of the context save area, bits 63:32.
    pub(crate) Q_CONTEXT_HI(u32)[MAX_QUEUES, stride = QUEUE_STRIDE] @ 0x2034 {
        31:0 value;
    }
}

impl RESET {
    /// The command that resets the whole device.
    pub(crate) fn global() -> Self {
        Self::zeroed().with_command(ResetCommand::Global)
    }
}

impl CACHE_CMD {
    /// Write the cache back to memory and drop it.
    pub(crate) fn clean_invalidate() -> Self {
        Self::zeroed().with_clean(true).with_invalidate(true)
    }
}

impl JOB_IRQ_MASK {
    /// Every job interrupt of every queue.
    pub(crate) fn all() -> Self {
        Self::zeroed().with_mask(u32::MAX)
    }
}

impl MMU_IRQ_MASK {
    /// Every slot's fault interrupt.
    pub(crate) fn all() -> Self {
        Self::zeroed().with_mask(u32::MAX)
    }
}

/// Whether bit `q` of the per-queue field `bits` is set.
fn queue_bit(bits: Bounded<u32, 8>, q: usize) -> bool {
    q < MAX_QUEUES && bits.get() & (1 << q) != 0
}

impl JOB_IRQ_STATUS {
    /// Queue `q` executed a WRITE64 with the IRQ flag.
    pub(crate) fn fenced(self, q: usize) -> bool {
        queue_bit(self.fence(), q)
    }

    /// Queue `q` suspended.
    pub(crate) fn suspended_queue(self, q: usize) -> bool {
        queue_bit(self.suspended(), q)
    }

    /// Queue `q` stopped with an error or a fault.
    pub(crate) fn stopped_queue(self, q: usize) -> bool {
        queue_bit(self.stopped(), q)
    }
}

impl Q_CONTROL {
    /// Abandon whatever the queue runs and clear its registers.
    pub(crate) fn reset_queue() -> Self {
        Self::zeroed().with_reset(true)
    }

    /// Run from the context at `Q_CONTEXT`.
    pub(crate) fn restore_and_run() -> Self {
        Self::zeroed().with_enable(true).with_restore(true)
    }

    /// Save the context and stop at the next suspend point.
    pub(crate) fn request_suspend() -> Self {
        Self::zeroed().with_enable(true).with_suspend(true)
    }
}

/// `FEATURES` bit: output addresses with bit 47 set form the null aperture
/// (reads return zeros, writes are dropped).
pub(crate) const FEATURE_NULL_APERTURE: u32 = 1 << 5;
/// `FEATURES` bit: queues can be suspended and restored (interface 1.1).
pub(crate) const FEATURE_PREEMPT: u32 = 1 << 4;
/// `FEATURES` bit: a slot can stall a faulting access until RESUME or
/// ABORT (`AS_CONFIG.STALL`).
pub(crate) const FEATURE_STALL: u32 = 1 << 0;
/// `FEATURES` bit: the TIMESTAMP command and the TIMESTAMP_LO/HI registers.
pub(crate) const FEATURE_TIMESTAMP: u32 = 1 << 3;
/// Ticks of the device clock per second: it counts nanoseconds.
pub(crate) const TIMESTAMP_FREQUENCY: u64 = 1_000_000_000;

/// Ring commands (see "Queues and commands"): not registers, but dwords in
/// memory that the device decodes like them.
pub(crate) mod cmd {
    use kernel::{
        bitfield,
        num::Bounded,
        prelude::*, //
    };

    field_values! {
        /// The opcodes of the commands the driver writes.
        pub(crate) enum Opcode: 8 {
            /// Write a u64 (a fence).
            Write64 = 0x04,
            /// Execute an indirect buffer.
            Call = 0x08,
        }
    }

    bitfield! {
        /// The first dword of a command.
        pub(crate) struct Header(u32) {
            /// Length in dwords, the header included.
            31:16 dwords;
            /// The opcode's flags ([`Write64Flags`]).
            15:8 flags;
            7:0 opcode ?=> Opcode;
        }
    }

    bitfield! {
        /// The flags of a WRITE64 command.
        pub(crate) struct Write64Flags(u8) {
            /// Also latch the value into `Q_SEQNO`.
            2:2 seqno => bool;
            /// Clean and invalidate the device cache first; the write goes
            /// to memory.
            1:1 flush => bool;
            /// Set the queue's bit of `JOB_IRQ_STATUS.fence` after the write.
            0:0 irq => bool;
        }
    }

    impl Header {
        /// The header of CALL: execute `size` bytes at `ib` (its operands).
        pub(crate) fn call() -> u32 {
            Self::zeroed()
                .with_opcode(Opcode::Call)
                .with_const_dwords::<4>()
                .into_raw()
        }

        /// The header of WRITE64 with `flags`: write `value` at `dst` (its
        /// operands).
        pub(crate) fn write64(flags: Write64Flags) -> u32 {
            Self::zeroed()
                .with_opcode(Opcode::Write64)
                .with_flags(flags.into_raw())
                .with_const_dwords::<5>()
                .into_raw()
        }
    }
}
