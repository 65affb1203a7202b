// SPDX-License-Identifier: GPL-2.0
//! The Ferrite GPU register file (BAR0), as specified in
//! `Documentation/gpu/ferrite-hw.rst`.
//!
//! [`REGISTERS`] is the one table both the model and the spec test read, so
//! the two cannot disagree about which registers exist.

/// Value of the `ID` register: "FeRr" in little-endian ASCII.
pub const FERRITE_ID: u32 = 0x7252_6546;
/// Hardware interface version: major in bits 31:16, minor in bits 15:0.
pub const FERRITE_VERSION: u32 = 0x0001_0000;

/// PCI identity.
pub const PCI_VENDOR_ID: u16 = 0x1234;
pub const PCI_DEVICE_ID: u16 = 0xfe01;
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

/// Access type of a register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    ReadOnly,
    ReadWrite,
    WriteOnly,
}

/// One 32-bit register of BAR0.
#[derive(Clone, Copy, Debug)]
pub struct Register {
    pub name: &'static str,
    pub offset: u32,
    pub access: Access,
}

macro_rules! registers {
    ($($name:ident = $off:expr, $acc:ident;)*) => {
        $(pub const $name: u32 = $off;)*
        /// Every register of BAR0, in offset order.
        pub const REGISTERS: &[Register] = &[
            $(Register { name: stringify!($name), offset: $off, access: Access::$acc },)*
        ];
    };
}

registers! {
    ID = 0x000, ReadOnly;
    VERSION = 0x004, ReadOnly;
    FEATURES = 0x008, ReadOnly;
    DMA_ADDR_BITS = 0x00c, ReadOnly;
    DMA_MAX_SEGMENT = 0x010, ReadOnly;
    SCRATCH = 0x014, ReadWrite;
    IRQ_STATUS = 0x020, ReadWrite;
    IRQ_MASK = 0x024, ReadWrite;
    IRQ_RAISE = 0x028, WriteOnly;
}

/// `IRQ_STATUS` / `IRQ_MASK` / `IRQ_RAISE` bits.
pub mod irq {
    /// Software-raised test interrupt (MSI-X vector 0).
    pub const SOFT: u32 = 1 << 0;
}

/// Look up a register by offset.
pub fn lookup(offset: u32) -> Option<&'static Register> {
    REGISTERS.iter().find(|r| r.offset == offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_aligned_and_unique() {
        for w in REGISTERS.windows(2) {
            assert!(w[0].offset < w[1].offset, "{} / {}", w[0].name, w[1].name);
        }
        for r in REGISTERS {
            assert_eq!(r.offset % 4, 0, "{}", r.name);
            assert!(u64::from(r.offset) < BAR0_SIZE);
        }
    }

    #[test]
    fn id_spells_ferr() {
        assert_eq!(&FERRITE_ID.to_le_bytes(), b"FeRr");
    }
}
