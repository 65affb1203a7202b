// SPDX-License-Identifier: GPL-2.0
//! Device state of the Ferrite GPU: registers, interrupts and the guest
//! memory it may reach by DMA.

use std::fs::File;
use std::io::Write;
use std::sync::Mutex;

use crate::dma::DmaSpace;
use crate::regs;

/// Options of one model process: the constraints it advertises.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Width of the bus addresses the device can emit.
    pub dma_addr_bits: u32,
    /// Largest DMA segment the device accepts, in bytes.
    pub dma_max_segment: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            dma_addr_bits: 48,
            dma_max_segment: 1 << 31,
        }
    }
}

struct Regs {
    scratch: u32,
    irq_status: u32,
    irq_mask: u32,
}

/// The device, shared between the vfio-user thread and (later) the
/// queue workers.
pub struct Device {
    pub opts: Options,
    regs: Mutex<Regs>,
    msix: Mutex<Vec<Option<File>>>,
    pub dma: DmaSpace,
}

impl Device {
    pub fn new(opts: Options) -> Self {
        Device {
            opts,
            regs: Mutex::new(Regs {
                scratch: 0,
                irq_status: 0,
                irq_mask: 0,
            }),
            msix: Mutex::new((0..regs::MSIX_VECTORS).map(|_| None).collect()),
            dma: DmaSpace::default(),
        }
    }

    fn lock_regs(&self) -> std::sync::MutexGuard<'_, Regs> {
        self.regs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A 32-bit read of BAR0. Unknown offsets read as zero.
    pub fn mmio_read(&self, offset: u32) -> u32 {
        let r = self.lock_regs();
        match offset {
            regs::ID => regs::FERRITE_ID,
            regs::VERSION => regs::FERRITE_VERSION,
            regs::FEATURES => 0,
            regs::DMA_ADDR_BITS => self.opts.dma_addr_bits,
            regs::DMA_MAX_SEGMENT => self.opts.dma_max_segment,
            regs::SCRATCH => r.scratch,
            regs::IRQ_STATUS => r.irq_status,
            regs::IRQ_MASK => r.irq_mask,
            _ => 0,
        }
    }

    /// A 32-bit write of BAR0. Writes to read-only or unknown offsets are
    /// ignored.
    pub fn mmio_write(&self, offset: u32, val: u32) {
        let mut r = self.lock_regs();
        match offset {
            regs::SCRATCH => r.scratch = val,
            // Write one to clear.
            regs::IRQ_STATUS => r.irq_status &= !val,
            regs::IRQ_MASK => r.irq_mask = val,
            regs::IRQ_RAISE => {
                r.irq_status |= val & regs::irq::SOFT;
                let pending = r.irq_status & r.irq_mask;
                drop(r);
                if pending & regs::irq::SOFT != 0 {
                    self.signal_vector(0);
                }
            }
            _ => {}
        }
    }

    /// Install (or remove, with `None`) the eventfd of an MSI-X vector.
    pub fn set_vector(&self, vector: u32, fd: Option<File>) {
        let mut v = self.msix.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = v.get_mut(vector as usize) {
            *slot = fd;
        }
    }

    /// Signal MSI-X vector `vector`; a vector the guest has not set up is
    /// dropped, as a masked vector would be.
    pub fn signal_vector(&self, vector: u32) -> bool {
        let mut v = self.msix.lock().unwrap_or_else(|e| e.into_inner());
        match v.get_mut(vector as usize) {
            Some(Some(fd)) => fd.write_all(&1u64.to_ne_bytes()).is_ok(),
            _ => false,
        }
    }

    /// Return to the reset state.
    pub fn reset(&self) {
        let mut r = self.lock_regs();
        r.scratch = 0;
        r.irq_status = 0;
        r.irq_mask = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_and_constraints() {
        let d = Device::new(Options {
            dma_addr_bits: 32,
            dma_max_segment: 65536,
        });
        assert_eq!(d.mmio_read(regs::ID), regs::FERRITE_ID);
        assert_eq!(d.mmio_read(regs::DMA_ADDR_BITS), 32);
        assert_eq!(d.mmio_read(regs::DMA_MAX_SEGMENT), 65536);
    }

    #[test]
    fn read_only_registers_ignore_writes() {
        let d = Device::new(Options::default());
        d.mmio_write(regs::ID, 0);
        d.mmio_write(regs::VERSION, 0);
        assert_eq!(d.mmio_read(regs::ID), regs::FERRITE_ID);
        assert_eq!(d.mmio_read(regs::VERSION), regs::FERRITE_VERSION);
        d.mmio_write(regs::SCRATCH, 0xdead_beef);
        assert_eq!(d.mmio_read(regs::SCRATCH), 0xdead_beef);
        d.reset();
        assert_eq!(d.mmio_read(regs::SCRATCH), 0);
    }

    #[test]
    fn soft_irq_latches_and_clears() {
        let d = Device::new(Options::default());
        d.mmio_write(regs::IRQ_RAISE, regs::irq::SOFT);
        assert_eq!(d.mmio_read(regs::IRQ_STATUS), regs::irq::SOFT);
        d.mmio_write(regs::IRQ_STATUS, regs::irq::SOFT);
        assert_eq!(d.mmio_read(regs::IRQ_STATUS), 0);
    }

    #[test]
    fn msix_signal_reaches_eventfd() {
        let d = Device::new(Options::default());
        // SAFETY: eventfd(2) with valid flags; the fd is owned by the File.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        assert!(fd >= 0);
        // SAFETY: fd is a fresh, owned file descriptor.
        let f = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        let mut reader = f.try_clone().unwrap();
        d.set_vector(0, Some(f));
        d.mmio_write(regs::IRQ_MASK, regs::irq::SOFT);
        d.mmio_write(regs::IRQ_RAISE, regs::irq::SOFT);
        let mut buf = [0u8; 8];
        std::io::Read::read_exact(&mut reader, &mut buf).unwrap();
        assert_eq!(u64::from_ne_bytes(buf), 1);
        assert!(!d.signal_vector(3));
    }
}
