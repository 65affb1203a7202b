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

    /// Counter `i`, bits 31:0; reading it latches the high half.
    pub(crate) COUNTER_LO(u32)[16, stride = 8] @ 0x100 {
        31:0 value;
    }

    /// High half of the counter whose low half was read last.
    pub(crate) COUNTER_HI(u32)[16, stride = 8] @ 0x104 {
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
