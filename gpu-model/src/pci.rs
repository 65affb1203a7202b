// SPDX-License-Identifier: GPL-2.0
//! PCI configuration space of the Ferrite GPU.
//!
//! QEMU's vfio code emulates the BARs and the MSI-X capability on its side;
//! the device still has to describe them (BAR types, capability list) and
//! keep the command register.

use crate::regs;

pub const CONFIG_SIZE: usize = 256;
const MSIX_CAP: usize = 0x40;
const PCI_CAP_ID_MSIX: u8 = 0x11;
const PCI_STATUS_CAP_LIST: u16 = 1 << 4;
/// 64-bit, non-prefetchable memory BAR.
const BAR_MEM64: u32 = 0b100;

/// The configuration space: the bytes and which bits the guest may write.
pub struct ConfigSpace {
    bytes: [u8; CONFIG_SIZE],
    wmask: [u8; CONFIG_SIZE],
}

impl Default for ConfigSpace {
    fn default() -> Self {
        Self::new()
    }
}

impl ConfigSpace {
    pub fn new() -> Self {
        let mut c = ConfigSpace {
            bytes: [0; CONFIG_SIZE],
            wmask: [0; CONFIG_SIZE],
        };
        c.put16(0x00, regs::PCI_VENDOR_ID);
        c.put16(0x02, regs::PCI_DEVICE_ID);
        c.put16(0x06, PCI_STATUS_CAP_LIST);
        c.bytes[0x08] = regs::PCI_REVISION;
        c.bytes[0x09] = regs::PCI_CLASS as u8;
        c.bytes[0x0a] = (regs::PCI_CLASS >> 8) as u8;
        c.bytes[0x0b] = (regs::PCI_CLASS >> 16) as u8;
        c.put32(0x10, BAR_MEM64); // BAR0: registers
        c.put32(0x18, BAR_MEM64); // BAR2: MSI-X table and PBA
        c.put16(0x2c, regs::PCI_VENDOR_ID); // subsystem vendor
        c.put16(0x2e, regs::PCI_DEVICE_ID); // subsystem
        c.bytes[0x34] = MSIX_CAP as u8;
        // MSI-X: table size N-1, table and PBA in BAR2.
        c.bytes[MSIX_CAP] = PCI_CAP_ID_MSIX;
        c.bytes[MSIX_CAP + 1] = 0;
        c.put16(MSIX_CAP + 2, (regs::MSIX_VECTORS - 1) as u16);
        c.put32(MSIX_CAP + 4, regs::MSIX_TABLE_OFFSET | 2);
        c.put32(MSIX_CAP + 8, regs::MSIX_PBA_OFFSET | 2);
        // Command: I/O, memory, bus master, INTx disable.
        c.wmask[0x04] = 0x07;
        c.wmask[0x05] = 0x04;
        // MSI-X enable and function mask.
        c.wmask[MSIX_CAP + 3] = 0xc0;
        c
    }

    fn put16(&mut self, off: usize, v: u16) {
        self.bytes[off..off + 2].copy_from_slice(&v.to_le_bytes());
    }

    fn put32(&mut self, off: usize, v: u32) {
        self.bytes[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }

    /// Read `data.len()` bytes at `offset`; bytes past the end read as zero.
    pub fn read(&self, offset: u64, data: &mut [u8]) {
        for (i, b) in data.iter_mut().enumerate() {
            *b = usize::try_from(offset)
                .ok()
                .and_then(|o| o.checked_add(i))
                .and_then(|o| self.bytes.get(o).copied())
                .unwrap_or(0);
        }
    }

    /// Write, keeping read-only bits; writes past the end are ignored.
    pub fn write(&mut self, offset: u64, data: &[u8]) {
        for (i, b) in data.iter().enumerate() {
            let Some(o) = usize::try_from(offset).ok().and_then(|o| o.checked_add(i)) else {
                return;
            };
            if o >= CONFIG_SIZE {
                return;
            }
            let m = self.wmask[o];
            self.bytes[o] = (self.bytes[o] & !m) | (b & m);
        }
    }

    /// Whether the guest enabled bus mastering (DMA). The device does not
    /// look at it.
    #[cfg(test)]
    fn bus_master(&self) -> bool {
        self.bytes[0x04] & 0x04 != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rd32(c: &ConfigSpace, off: u64) -> u32 {
        let mut b = [0u8; 4];
        c.read(off, &mut b);
        u32::from_le_bytes(b)
    }

    #[test]
    fn identity() {
        let c = ConfigSpace::new();
        assert_eq!(rd32(&c, 0), 0x00fe_1b36);
        assert_eq!(rd32(&c, 8) >> 8, 0x03_02_00);
    }

    #[test]
    fn msix_capability_is_listed() {
        let c = ConfigSpace::new();
        let mut p = [0u8; 1];
        c.read(0x34, &mut p);
        let cap = u64::from(p[0]);
        let v = rd32(&c, cap);
        assert_eq!(v & 0xff, 0x11);
        assert_eq!((v >> 16) & 0x7ff, regs::MSIX_VECTORS - 1);
    }

    #[test]
    fn read_only_bits_stay() {
        let mut c = ConfigSpace::new();
        c.write(0, &[0xff; 8]);
        assert_eq!(rd32(&c, 0), 0x00fe_1b36);
        assert!(c.bus_master());
        c.write(0x1000, &[1]);
        let mut far = [0xaau8; 4];
        c.read(254, &mut far);
        assert_eq!(far, [0, 0, 0, 0]);
    }
}
