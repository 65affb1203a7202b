// SPDX-License-Identifier: MIT
//! Raw ioctls: random request numbers and argument bytes, numbers past
//! the last Ferrite ioctl, and a boundary sweep once per worker.

use super::*;

impl Worker<'_> {
    /// A Ferrite ioctl with random bytes, possibly the wrong size or
    /// direction; or a DRM core ioctl a render node must refuse.
    pub(super) fn op_raw(&mut self, f: &FileCtx) {
        let mut buf = vec![0u8; 1 << 14];
        if self.rng.chance(7, 10) {
            let id = self.rng.below(sys::NUM_FERRITE_IOCTLS);
            let right = sys::ioc_size(sys::FERRITE_IOCTLS[id as usize]);
            let size = match self.rng.below(10) {
                0..=6 => right,
                7 => self.rng.below(right as u64) as usize,
                8 => right + self.rng.range(1, 64) as usize,
                _ => self.rng.below(1 << 14) as usize,
            };
            let dir = if self.rng.chance(4, 5) {
                sys::IOC_READ | sys::IOC_WRITE
            } else {
                self.rng.below(4)
            };
            // Mostly zeros with a few random fields, or all random.
            let n = size.min(buf.len());
            if self.rng.chance(1, 2) {
                self.rng.fill(&mut buf[..n]);
            } else {
                for _ in 0..self.rng.range(1, 4) {
                    if n >= 8 {
                        let at = 4 * self.rng.index(n / 4 - 1);
                        let v = self.rng.interesting_u64().to_le_bytes();
                        buf[at..at + 8].copy_from_slice(&v);
                    }
                }
            }
            let read_back = dir & sys::IOC_READ != 0;
            match id {
                0 => {
                    // DEV_QUERY writes through its pointer: keep it harmless.
                    let kind = gen::out_ptr(&mut self.rng);
                    let p = self.place_out(f, 256, kind).ptr;
                    buf[8..16].copy_from_slice(&p.to_le_bytes());
                }
                12 => {
                    // BO_QUERY_INFO writes the label through its pointer:
                    // keep it harmless (at most 256 bytes).
                    let kind = gen::out_ptr(&mut self.rng);
                    let p = self.place_out(f, 256, kind).ptr;
                    buf[24..32].copy_from_slice(&p.to_le_bytes());
                    let n = u32::from_le_bytes(buf[32..36].try_into().unwrap()) % 257;
                    buf[32..36].copy_from_slice(&n.to_le_bytes());
                }
                1 => {
                    // A BO the fuzzer does not track may be bound or synced
                    // through a random handle, which allocates all of it:
                    // keep its size small (or invalid).
                    let size = u64::from_le_bytes(buf[0..8].try_into().unwrap());
                    if size > gen::MAX_KEPT_BO && size <= gen::MAX_BO_SIZE {
                        let small = size % gen::MAX_KEPT_BO + 1;
                        buf[0..8].copy_from_slice(&small.to_le_bytes());
                    }
                }
                _ => {}
            }
            let req = sys::ioc(dir, sys::COMMAND_BASE + id, size);
            // Creations and destructions of VMs and queues may change ids.
            if matches!(id, 3 | 4 | 6 | 7) {
                f.bump();
            }
            // A SUBMIT to a queue (or a VM_BIND MAP on a VM) that is
            // unusable: EIO.
            let ex = Expect {
                extra: if matches!(id, 5 | 8) { EIO_OK } else { &[] },
                ..Default::default()
            };
            let r = self.raw_call(f, "RAW_FERRITE", req, &mut buf, ex);
            // Release what a successful create made (when its id came back).
            let u32_at = |o: usize| u32::from_le_bytes(buf[o..o + 4].try_into().unwrap());
            if r.is_ok() && matches!(id, 4 | 7) && dir & sys::IOC_WRITE != 0 {
                // A VM_DESTROY or QUEUE_DESTROY that worked: the kernel read
                // the id from the first bytes (zeros past `size`).
                let mut b = [0u8; 4];
                let n = size.min(4);
                b[..n].copy_from_slice(&buf[..n]);
                if id == 4 {
                    self.forget_vm(f, u32::from_le_bytes(b));
                } else {
                    forget_queue(f, u32::from_le_bytes(b));
                }
            }
            if r.is_ok() && read_back {
                match id {
                    1 if size >= 16 => self.gem_close(f, u32_at(12)),
                    3 if size >= 8 => self.vm_destroy(f, u32_at(4)),
                    6 if size >= 16 => {
                        f.bump();
                        let mut d = uapi::drm_ferrite_queue_destroy {
                            queue_id: u32_at(12),
                            pad: 0,
                        };
                        let _ = self.ioctl(
                            f.raw(),
                            "QUEUE_DESTROY",
                            IOCTL_QUEUE_DESTROY,
                            &mut d,
                            Expect::default(),
                            &nothing,
                        );
                    }
                    _ => {}
                }
            }
        } else {
            // Not allowed on render nodes (or gone): must fail.
            const NRS: [u64; 10] = [0x01, 0x02, 0x07, 0x0a, 0x0b, 0x11, 0x1e, 0xa0, 0xb2, 0xc6];
            let nr = *self.rng.pick(&NRS).unwrap();
            let n = 256;
            self.rng.fill(&mut buf[..n]);
            let req = sys::ioc(sys::IOC_READ | sys::IOC_WRITE, nr, n);
            let _ = self.raw_call(f, "RAW_CORE", req, &mut buf, Expect::fail_if(true));
        }
    }

    pub(super) fn raw_call(
        &mut self,
        f: &FileCtx,
        name: &'static str,
        req: u64,
        buf: &mut [u8],
        ex: Expect,
    ) -> Result<i32, i32> {
        let size = sys::ioc_size(req);
        assert!(size <= buf.len());
        let before = buf[..size.min(64)].to_vec();
        self.count_call();
        // SAFETY: `buf` holds at least the size `req` encodes; the only
        // pointer the kernel writes through (DEV_QUERY's) was placed.
        let r = unsafe { drm::ioctl_raw(f.raw(), req, buf.as_mut_ptr().cast()) };
        self.check(name, r, ex, &|| {
            format!("req {req:#x}, first bytes {before:02x?}")
        });
        r
    }

    /// Ioctl numbers past the driver's last: ENOTTY or EINVAL, never success.
    pub(super) fn op_past_last(&mut self, f: &FileCtx) {
        let nr = if self.rng.chance(1, 5) {
            sys::COMMAND_END - 1
        } else {
            sys::COMMAND_BASE + sys::NUM_FERRITE_IOCTLS + self.rng.below(6)
        };
        let size = *self.rng.pick(&[0usize, 8, 16, 64, 256]).unwrap();
        let dir = self.rng.below(4);
        let mut buf = vec![0u8; 256];
        self.rng.fill(&mut buf);
        let ex = Expect {
            must_fail: true,
            only: Some(PAST_LAST_ERRNOS),
            ..Default::default()
        };
        let _ = self.raw_call(f, "PAST_LAST", sys::ioc(dir, nr, size), &mut buf, ex);
    }

    /// Once per worker: every number just past the last Ferrite ioctl, and
    /// GEM_CREATE at its size limit (in a file of its own, as the BO is
    /// allocated in full if anything binds it).
    pub(super) fn boundary_sweep(&mut self) {
        let f = self.env.file(0);
        let ex = Expect {
            must_fail: true,
            only: Some(PAST_LAST_ERRNOS),
            ..Default::default()
        };
        let mut buf = vec![0u8; 64];
        for nr in (sys::COMMAND_BASE + sys::NUM_FERRITE_IOCTLS
            ..sys::COMMAND_BASE + sys::NUM_FERRITE_IOCTLS + 4)
            .chain([sys::COMMAND_END - 1])
        {
            for (dir, size) in [(3, 16), (1, 8), (2, 64), (0, 0)] {
                let _ = self.raw_call(&f, "PAST_LAST", sys::ioc(dir, nr, size), &mut buf, ex);
            }
        }
        let dev = self.rng.index(self.env.devs.len());
        let Ok(own) = FileCtx::open(&self.env.devs, dev) else {
            return;
        };
        for (size, bad) in [
            (gen::MAX_BO_SIZE, false),
            (gen::MAX_BO_SIZE - page() + 1, false),
            (gen::MAX_BO_SIZE + 1, true),
            (u64::MAX, true),
        ] {
            let mut c = uapi::drm_ferrite_gem_create {
                size,
                ..Default::default()
            };
            let ex = Expect::fail_if(bad);
            let r = self.ioctl(
                own.raw(),
                "GEM_CREATE",
                IOCTL_GEM_CREATE,
                &mut c,
                ex,
                &nothing,
            );
            if r.is_ok() {
                if c.size != gen::MAX_BO_SIZE {
                    self.finding(
                        &format!("GEM_CREATE of {size:#x} bytes returned size {:#x}", c.size),
                        "",
                    );
                }
                self.gem_close(&own, c.handle);
            }
        }
    }
}
