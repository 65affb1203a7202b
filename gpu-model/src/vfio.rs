// SPDX-License-Identifier: GPL-2.0
//! The vfio-user side: regions and interrupts as QEMU sees them, forwarded
//! to the [`Device`].

use std::fs::File;
use std::io::{Error, ErrorKind};
use std::mem::size_of;
use std::sync::Arc;

use log::{debug, info, warn};
use vfio_bindings::bindings::vfio::{
    vfio_region_info, VFIO_IRQ_INFO_EVENTFD, VFIO_IRQ_SET_ACTION_TRIGGER,
    VFIO_IRQ_SET_DATA_EVENTFD, VFIO_IRQ_SET_DATA_NONE, VFIO_PCI_BAR0_REGION_INDEX,
    VFIO_PCI_BAR2_REGION_INDEX, VFIO_PCI_CONFIG_REGION_INDEX, VFIO_PCI_MSIX_IRQ_INDEX,
    VFIO_PCI_NUM_IRQS, VFIO_PCI_NUM_REGIONS, VFIO_REGION_INFO_FLAG_READ,
    VFIO_REGION_INFO_FLAG_WRITE,
};
use vfio_user::{DmaMapFlags, DmaUnmapFlags, IrqInfo, ServerBackend, ServerRegion};

use crate::device::Device;
use crate::pci::{ConfigSpace, CONFIG_SIZE};
use crate::regs;

/// The backend the vfio-user server thread calls.
pub struct Backend {
    dev: Arc<Device>,
    config: ConfigSpace,
}

impl Backend {
    pub fn new(dev: Arc<Device>) -> Self {
        Backend {
            dev,
            config: ConfigSpace::new(),
        }
    }
}

fn einval() -> Error {
    Error::from_raw_os_error(libc::EINVAL)
}

impl ServerBackend for Backend {
    fn region_read(&mut self, region: u32, offset: u64, data: &mut [u8]) -> Result<(), Error> {
        match region {
            VFIO_PCI_CONFIG_REGION_INDEX => self.config.read(offset, data),
            VFIO_PCI_BAR0_REGION_INDEX => {
                // Registers are 32 bits wide; other widths read the
                // containing registers' bytes. Each register is read once
                // per access (reads have side effects: counters, latches).
                let end = offset.checked_add(data.len() as u64).ok_or_else(einval)?;
                if end > regs::BAR0_SIZE {
                    return Err(einval());
                }
                let mut reg = None;
                for (i, b) in data.iter_mut().enumerate() {
                    let a = offset + i as u64;
                    let off = (a & !3) as u32;
                    let v = match reg {
                        Some((o, v)) if o == off => v,
                        _ => self.dev.mmio_read(off),
                    };
                    reg = Some((off, v));
                    *b = (v >> ((a & 3) * 8)) as u8;
                }
                debug!("mmio read {offset:#x} len {}", data.len());
            }
            // The MSI-X table and PBA are emulated by QEMU.
            VFIO_PCI_BAR2_REGION_INDEX => data.fill(0),
            _ => return Err(einval()),
        }
        Ok(())
    }

    fn region_write(&mut self, region: u32, offset: u64, data: &[u8]) -> Result<(), Error> {
        match region {
            VFIO_PCI_CONFIG_REGION_INDEX => self.config.write(offset, data),
            VFIO_PCI_BAR0_REGION_INDEX => {
                if data.len() != 4 || !offset.is_multiple_of(4) || offset >= regs::BAR0_SIZE {
                    warn!("mmio write {offset:#x} of {} bytes ignored", data.len());
                    return Ok(());
                }
                let v = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
                debug!("mmio write {offset:#x} = {v:#x}");
                self.dev.mmio_write(offset as u32, v);
            }
            VFIO_PCI_BAR2_REGION_INDEX => {}
            _ => return Err(einval()),
        }
        Ok(())
    }

    fn dma_map(
        &mut self,
        flags: DmaMapFlags,
        offset: u64,
        address: u64,
        size: u64,
        fd: Option<File>,
    ) -> Result<(), Error> {
        info!(
            "dma map {address:#x}+{size:#x} flags {flags:?} fd {}",
            fd.is_some()
        );
        match fd {
            Some(fd) => self.dev.memory().map(address, size, &fd, offset),
            // Without an fd the range is reachable only through DMA_READ /
            // DMA_WRITE messages, which this server does not speak: such
            // ranges (firmware ROMs, VGA) are invisible to the device.
            None => Ok(()),
        }
    }

    fn dma_unmap(&mut self, _flags: DmaUnmapFlags, address: u64, size: u64) -> Result<(), Error> {
        info!("dma unmap {address:#x}+{size:#x}");
        self.dev.memory().unmap(address, size);
        Ok(())
    }

    fn reset(&mut self) -> Result<(), Error> {
        info!("device reset");
        self.dev.reset();
        Ok(())
    }

    fn set_irqs(
        &mut self,
        index: u32,
        flags: u32,
        start: u32,
        count: u32,
        fds: Vec<File>,
    ) -> Result<(), Error> {
        info!(
            "set_irqs index {index} flags {flags:#x} start {start} count {count} fds {}",
            fds.len()
        );
        if index != VFIO_PCI_MSIX_IRQ_INDEX {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "only MSI-X is supported",
            ));
        }
        let end = start.checked_add(count).ok_or_else(einval)?;
        if end > regs::MSIX_VECTORS {
            return Err(einval());
        }
        if flags & VFIO_IRQ_SET_ACTION_TRIGGER == 0 {
            // Mask/unmask: QEMU handles masking itself for eventfd vectors.
            return Ok(());
        }
        if flags & VFIO_IRQ_SET_DATA_EVENTFD != 0 {
            if fds.len() != count as usize {
                return Err(einval());
            }
            for (v, fd) in (start..end).zip(fds) {
                self.dev.set_vector(v, Some(fd));
            }
        } else if flags & VFIO_IRQ_SET_DATA_NONE != 0 {
            let (s, e) = if count == 0 {
                (0, regs::MSIX_VECTORS)
            } else {
                (start, end)
            };
            for v in s..e {
                self.dev.set_vector(v, None);
            }
        }
        Ok(())
    }
}

/// The regions the server announces.
pub fn regions() -> Vec<ServerRegion> {
    (0..VFIO_PCI_NUM_REGIONS)
        .map(|index| {
            let size = match index {
                VFIO_PCI_CONFIG_REGION_INDEX => CONFIG_SIZE as u64,
                VFIO_PCI_BAR0_REGION_INDEX => regs::BAR0_SIZE,
                VFIO_PCI_BAR2_REGION_INDEX => regs::BAR2_SIZE,
                _ => 0,
            };
            let flags = if size != 0 {
                VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE
            } else {
                0
            };
            ServerRegion {
                region_info: vfio_region_info {
                    argsz: size_of::<vfio_region_info>() as u32,
                    index,
                    size,
                    flags,
                    ..Default::default()
                },
                sparse_areas: Vec::new(),
                mmap_fd: None,
            }
        })
        .collect()
}

/// The interrupts the server announces: MSI-X only.
pub fn irqs() -> Vec<IrqInfo> {
    (0..VFIO_PCI_NUM_IRQS)
        .map(|index| IrqInfo {
            index,
            count: if index == VFIO_PCI_MSIX_IRQ_INDEX {
                regs::MSIX_VECTORS
            } else {
                0
            },
            flags: if index == VFIO_PCI_MSIX_IRQ_INDEX {
                VFIO_IRQ_INFO_EVENTFD
            } else {
                0
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::Options;
    use crate::regs::counter;

    #[test]
    fn a_32_bit_access_reads_the_register_once() {
        let mut b = Backend::new(Arc::new(Device::new(Options::default())));
        let mut v = [0u8; 4];
        b.region_read(VFIO_PCI_BAR0_REGION_INDEX, u64::from(regs::ID), &mut v)
            .unwrap();
        assert_eq!(u32::from_le_bytes(v), regs::FERRITE_ID);
        assert_eq!(b.dev.counter(counter::MMIO_READS), 1);
        let mut w = [0u8; 8];
        b.region_read(VFIO_PCI_BAR0_REGION_INDEX, u64::from(regs::ID), &mut w)
            .unwrap();
        assert_eq!(b.dev.counter(counter::MMIO_READS), 3);
        assert!(b
            .region_read(VFIO_PCI_BAR0_REGION_INDEX, regs::BAR0_SIZE - 2, &mut v)
            .is_err());
    }
}
