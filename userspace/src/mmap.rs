// SPDX-License-Identifier: MIT
//! CPU mappings of buffer objects.
//!
//! A BO's memory is shared with the GPU (and with every other mapping of
//! the BO), so it can change under the CPU while jobs run. The mapping is
//! therefore never handed out as a Rust slice: it is read and written by
//! copying, and the caller waits for the jobs that use the BO before it
//! relies on what it reads.

use std::io;
use std::os::fd::RawFd;
use std::ptr::NonNull;

/// A shared read/write mapping, unmapped on drop.
#[derive(Debug)]
pub struct Mmap {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory that no thread owns; every
// access goes through raw-pointer copies.
unsafe impl Send for Mmap {}
// SAFETY: as above; `&Mmap` only allows reads.
unsafe impl Sync for Mmap {}

impl Mmap {
    /// Map `len` bytes of `fd` at `offset`, shared, read/write.
    pub fn new(fd: RawFd, offset: u64, len: usize) -> io::Result<Mmap> {
        let offset = libc::off_t::try_from(offset)
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: a new mapping at an address the kernel chooses; nothing
        // existing is affected.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                offset,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast()).ok_or_else(|| io::Error::other("mmap returned NULL"))?;
        Ok(Mmap { ptr, len })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    fn check(&self, off: usize, n: usize) {
        assert!(
            off.checked_add(n).is_some_and(|e| e <= self.len),
            "access {off:#x}+{n:#x} outside a mapping of {:#x} bytes",
            self.len
        );
    }

    /// Copy `src` into the mapping at `off`.
    pub fn write(&mut self, off: usize, src: &[u8]) {
        self.check(off, src.len());
        // SAFETY: the range is inside the mapping (checked) and cannot
        // overlap `src`, a Rust borrow outside it.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.as_ptr().add(off), src.len()) };
    }

    /// Copy from the mapping at `off` into `dst`.
    pub fn read(&self, off: usize, dst: &mut [u8]) {
        self.check(off, dst.len());
        // SAFETY: as in `write`.
        unsafe {
            std::ptr::copy_nonoverlapping(self.as_ptr().add(off), dst.as_mut_ptr(), dst.len())
        };
    }

    /// The whole mapping, copied.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.len];
        self.read(0, &mut v);
        v
    }

    /// Set `n` bytes at `off` to `byte`.
    pub fn fill(&mut self, off: usize, n: usize, byte: u8) {
        self.check(off, n);
        // SAFETY: the range is inside the mapping (checked).
        unsafe { std::ptr::write_bytes(self.as_ptr().add(off), byte, n) };
    }

    /// Write one byte per page, so that every page is allocated.
    pub fn touch_pages(&mut self) {
        for off in (0..self.len).step_by(4096) {
            // SAFETY: off < len, inside the mapping.
            unsafe { self.as_ptr().add(off).write_volatile(0) };
        }
    }

    /// Volatile read of the little-endian u64 at `off` (8-byte aligned).
    pub fn read_u64(&self, off: usize) -> u64 {
        self.check(off, 8);
        assert_eq!(off % 8, 0, "unaligned u64 read");
        // SAFETY: in the mapping (checked), aligned (the mapping is page
        // aligned and off is a multiple of 8).
        u64::from_le(unsafe { self.as_ptr().add(off).cast::<u64>().read_volatile() })
    }

    /// Volatile write of a little-endian u64 at `off` (8-byte aligned).
    pub fn write_u64(&mut self, off: usize, v: u64) {
        self.check(off, 8);
        assert_eq!(off % 8, 0, "unaligned u64 write");
        // SAFETY: as in `read_u64`.
        unsafe {
            self.as_ptr()
                .add(off)
                .cast::<u64>()
                .write_volatile(v.to_le())
        };
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: this mapping was created by `new` with `len` bytes and is
        // unmapped only here.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn copies_through_a_shared_file_mapping() {
        let f = tempfile();
        f.set_len(8192).unwrap();
        let mut a = Mmap::new(f.as_raw_fd(), 0, 8192).unwrap();
        let b = Mmap::new(f.as_raw_fd(), 0, 8192).unwrap();
        a.write(4090, b"hello world");
        a.write_u64(16, 0x1122_3344_5566_7788);
        let mut out = [0u8; 11];
        b.read(4090, &mut out);
        assert_eq!(&out, b"hello world");
        assert_eq!(b.read_u64(16), 0x1122_3344_5566_7788);
        a.fill(0, 8, 0xab);
        assert_eq!(b.to_vec()[..8], [0xab; 8]);
    }

    #[test]
    #[should_panic]
    fn rejects_out_of_range() {
        let f = tempfile();
        f.set_len(4096).unwrap();
        let m = Mmap::new(f.as_raw_fd(), 0, 4096).unwrap();
        let mut out = [0u8; 2];
        m.read(4095, &mut out);
    }

    fn tempfile() -> std::fs::File {
        let p = std::env::temp_dir().join(format!(
            "ferrite-mmap-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&p)
            .unwrap();
        std::fs::remove_file(&p).unwrap();
        f
    }
}
