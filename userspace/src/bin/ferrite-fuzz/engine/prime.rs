// SPDX-License-Identifier: MIT
//! PRIME: dma-buf export and import.

use super::*;

impl Worker<'_> {
    pub(super) fn op_prime_export(&mut self, f: &FileCtx) {
        let bos = f.pools().bos.clone();
        let handles: Vec<u32> = bos.iter().map(|b| b.handle).collect();
        let handle = gen::handle(&mut self.rng, &handles);
        let size = bos
            .iter()
            .find(|b| b.handle == handle)
            .map_or(0, |b| b.size);
        let valid = (libc::O_CLOEXEC | libc::O_RDWR) as u32;
        let flags = if self.rng.chance(1, 12) {
            self.rng.interesting_u32()
        } else {
            self.rng.next_u32() & valid
        };
        let mut h = sys::PrimeHandle {
            handle,
            flags,
            fd: self.rng.next_u32() as i32,
        };
        if self
            .ioctl(
                f.raw(),
                "PRIME_HANDLE_TO_FD",
                sys::DRM_IOCTL_PRIME_HANDLE_TO_FD,
                &mut h,
                Expect::default(),
                &nothing,
            )
            .is_ok()
        {
            // The size from the dma-buf itself (the BO may be a stranger's).
            // SAFETY: lseek on a descriptor the kernel just returned.
            let end = unsafe { libc::lseek(h.fd, 0, libc::SEEK_END) };
            let size = if end > 0 { end as u64 } else { size };
            self.add_fd(h.fd, FdKind::DmaBuf, size);
        }
    }

    /// Import a dma-buf into file 0 or 1 (possibly of another device).
    pub(super) fn op_prime_import(&mut self) {
        let f = self.file();
        let f = &*f;
        let (fd, size) = self.pick_fd(f, FdKind::DmaBuf);
        let mut h = sys::PrimeHandle {
            handle: self.rng.next_u32(),
            flags: if self.rng.chance(1, 20) {
                self.rng.next_u32()
            } else {
                0
            },
            fd,
        };
        let ok = self
            .ioctl(
                f.raw(),
                "PRIME_FD_TO_HANDLE",
                sys::DRM_IOCTL_PRIME_FD_TO_HANDLE,
                &mut h,
                Expect::default(),
                &nothing,
            )
            .is_ok();
        if !ok {
            return;
        }
        let keep = {
            let mut p = f.pools();
            let known = p.bos.iter().any(|b| b.handle == h.handle);
            let keep = !known
                && size > 0
                && size <= gen::MAX_KEPT_BO
                && p.bos.len() < MAX_BOS
                && p.bo_bytes() + size <= MAX_BO_BYTES;
            if keep {
                p.bos.push(BoInfo {
                    handle: h.handle,
                    size,
                });
            }
            keep || known
        };
        if !keep {
            self.gem_close(f, h.handle);
        }
    }
}
