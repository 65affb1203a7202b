// SPDX-License-Identifier: GPL-2.0
//! Guest memory as the device sees it: the regions QEMU maps with
//! `VFIO_USER_DMA_MAP`, each backed by a shared memory fd that the model
//! maps into its own address space.
//!
//! QEMU may map and unmap regions at any time, so every access takes the
//! region lock and copies; no reference into guest memory escapes.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::RwLock;

/// One mapped range of bus addresses.
struct Region {
    iova: u64,
    size: u64,
    ptr: *mut u8,
}

// SAFETY: `ptr` is a shared mapping owned by the region; it is only
// dereferenced under the `DmaSpace` lock.
unsafe impl Send for Region {}
// SAFETY: as above.
unsafe impl Sync for Region {}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`size` are exactly what mmap returned.
        unsafe { libc::munmap(self.ptr.cast(), self.size as usize) };
    }
}

/// Errors of a DMA access.
#[derive(Debug, PartialEq, Eq)]
pub enum DmaError {
    /// No region covers the bus address.
    Unmapped(u64),
}

/// All regions of guest memory the device can reach.
#[derive(Default)]
pub struct DmaSpace {
    regions: RwLock<Vec<Region>>,
}

impl DmaSpace {
    /// Map `size` bytes of `fd` at `offset` as bus addresses `iova..`.
    pub fn map(&self, iova: u64, size: u64, fd: &File, offset: u64) -> std::io::Result<()> {
        let len =
            usize::try_from(size).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
        if size == 0 || iova.checked_add(size).is_none() {
            return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
        }
        // SAFETY: a fresh shared mapping of a file QEMU handed us; the
        // kernel validates fd, length and offset.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                offset as libc::off_t,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let mut r = self.regions.write().unwrap_or_else(|e| e.into_inner());
        r.retain(|x| x.iova + x.size <= iova || iova + size <= x.iova);
        r.push(Region {
            iova,
            size,
            ptr: ptr.cast(),
        });
        Ok(())
    }

    /// Forget every region inside `iova..iova + size`.
    pub fn unmap(&self, iova: u64, size: u64) {
        let end = iova.saturating_add(size);
        let mut r = self.regions.write().unwrap_or_else(|e| e.into_inner());
        r.retain(|x| x.iova + x.size <= iova || end <= x.iova);
    }

    /// Forget all regions.
    pub fn clear(&self) {
        self.regions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    fn access(
        &self,
        mut addr: u64,
        len: usize,
        mut f: impl FnMut(*mut u8, usize, usize),
    ) -> Result<(), DmaError> {
        let r = self.regions.read().unwrap_or_else(|e| e.into_inner());
        let mut done = 0usize;
        while done < len {
            let reg = r
                .iter()
                .find(|x| addr >= x.iova && addr - x.iova < x.size)
                .ok_or(DmaError::Unmapped(addr))?;
            let off = (addr - reg.iova) as usize;
            let n = (len - done).min(reg.size as usize - off);
            // SAFETY: off + n lies within the region's mapping.
            f(unsafe { reg.ptr.add(off) }, done, n);
            done += n;
            addr += n as u64;
        }
        Ok(())
    }

    /// Copy guest memory at `addr` into `buf`.
    pub fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), DmaError> {
        let len = buf.len();
        let dst = buf.as_mut_ptr();
        self.access(addr, len, |p, at, n| {
            // SAFETY: p is valid for n bytes; dst + at for n bytes of buf.
            unsafe { std::ptr::copy_nonoverlapping(p, dst.add(at), n) }
        })
    }

    /// Copy `buf` into guest memory at `addr`.
    pub fn write(&self, addr: u64, buf: &[u8]) -> Result<(), DmaError> {
        let src = buf.as_ptr();
        self.access(addr, buf.len(), |p, at, n| {
            // SAFETY: p is valid for n bytes; src + at for n bytes of buf.
            unsafe { std::ptr::copy_nonoverlapping(src.add(at), p, n) }
        })
    }
}

/// The MMU's walker reads descriptors straight from memory.
impl crate::mmu::PhysRead for DmaSpace {
    fn read_u64(&self, pa: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        self.read(pa, &mut b).ok()?;
        Some(u64::from_le_bytes(b))
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    pub fn memfd(size: u64) -> File {
        // SAFETY: memfd_create with a valid name; the fd is owned by the File.
        let fd = unsafe { libc::memfd_create(c"dma-test".as_ptr(), libc::MFD_CLOEXEC) };
        assert!(fd >= 0);
        // SAFETY: fresh owned fd.
        let f = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        f.set_len(size).unwrap();
        f
    }

    #[test]
    fn read_write_across_regions() {
        let d = DmaSpace::default();
        let a = memfd(8192);
        let b = memfd(4096);
        d.map(0x10000, 4096, &a, 4096).unwrap();
        d.map(0x11000, 4096, &b, 0).unwrap();
        let data: Vec<u8> = (0..64).collect();
        d.write(0x10fe0, &data).unwrap();
        let mut back = vec![0u8; 64];
        d.read(0x10fe0, &mut back).unwrap();
        assert_eq!(back, data);
        assert_eq!(d.read(0x12000, &mut back), Err(DmaError::Unmapped(0x12000)));
        d.unmap(0x11000, 4096);
        assert_eq!(d.read(0x10fe0, &mut back), Err(DmaError::Unmapped(0x11000)));
    }
}
