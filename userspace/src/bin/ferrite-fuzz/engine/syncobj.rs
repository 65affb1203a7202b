// SPDX-License-Identifier: MIT
//! Sync objects: the DRM core's syncobj ioctls (create, destroy, waits,
//! signal, reset, timelines, transfer, sync_file and fd conversion,
//! eventfd).

use super::*;

impl Worker<'_> {
    pub(super) fn op_sync_create(&mut self, f: &FileCtx) {
        let flags = match self.rng.below(10) {
            0..=4 => 0,
            5..=8 => sys::SYNCOBJ_CREATE_SIGNALED,
            _ => self.rng.interesting_u32(),
        };
        let mut c = TwoU32 {
            a: self.rng.next_u32(),
            b: flags,
        };
        if self
            .ioctl(
                f.raw(),
                "SYNCOBJ_CREATE",
                sys::DRM_IOCTL_SYNCOBJ_CREATE,
                &mut c,
                Expect::default(),
                &nothing,
            )
            .is_err()
        {
            return;
        }
        let full = {
            let mut p = f.pools();
            let full = p.syncs.len() >= MAX_SYNCOBJS;
            if !full {
                p.syncs.push(SyncInfo {
                    handle: c.a,
                    fenced: flags & sys::SYNCOBJ_CREATE_SIGNALED != 0,
                    point: 0,
                });
            }
            full
        };
        if full {
            self.sync_destroy(f, c.a);
        }
    }

    pub(super) fn sync_destroy(&mut self, f: &FileCtx, h: u32) {
        let mut d = TwoU32 { a: h, b: 0 };
        let _ = self.ioctl(
            f.raw(),
            "SYNCOBJ_DESTROY",
            sys::DRM_IOCTL_SYNCOBJ_DESTROY,
            &mut d,
            Expect::default(),
            &nothing,
        );
    }

    pub(super) fn op_sync_destroy(&mut self, f: &FileCtx) {
        let taken = self.rng.take(&mut f.pools().syncs, 9, 10);
        let h = taken.map_or_else(|| gen::handle(&mut self.rng, &[]), |s| s.handle);
        let pad = gen::pad32(&mut self.rng);
        let mut d = TwoU32 { a: h, b: pad.v };
        let r = self.ioctl(
            f.raw(),
            "SYNCOBJ_DESTROY",
            sys::DRM_IOCTL_SYNCOBJ_DESTROY,
            &mut d,
            Expect::default(),
            &nothing,
        );
        if let (Err(e), Some(s)) = (r, taken) {
            if e != libc::ENOENT {
                f.pools().syncs.push(s);
            }
        }
    }

    pub(super) fn wait_flags(&mut self) -> u32 {
        if self.rng.chance(1, 15) {
            self.rng.interesting_u32()
        } else {
            self.rng.below(16) as u32
        }
    }

    /// SYNCOBJ_WAIT, on `only` (a handle just signalled by a job, waited
    /// for binary or at its point) or on random handles.
    pub(super) fn op_sync_wait(&mut self, f: &FileCtx, only: Option<(u32, u64)>) {
        if let Some((h, point)) = only {
            if point != 0 {
                return self.timeline_wait(f, &[h], &[point]);
            }
            let hs = [h];
            let p = self.place_valid(&h.to_le_bytes(), 4);
            let mut w = sys::SyncobjWait {
                handles: p.ptr,
                timeout_nsec: drm::monotonic_ns() + self.rng.range(1_000_000, 100_000_000) as i64,
                count_handles: 1,
                flags: sys::SYNCOBJ_WAIT_ALL | sys::SYNCOBJ_WAIT_FOR_SUBMIT,
                ..Default::default()
            };
            let _ = self.ioctl(
                f.raw(),
                "SYNCOBJ_WAIT",
                sys::DRM_IOCTL_SYNCOBJ_WAIT,
                &mut w,
                Expect::default(),
                &|| format!(" handles {hs:?}"),
            );
            return;
        }
        let live = f.pools().sync_handles();
        let (count, ptr, hs) = self.handle_array(f, &live, 4);
        let flags = self.wait_flags();
        let mut w = sys::SyncobjWait {
            handles: ptr,
            timeout_nsec: self.deadline_ns(),
            count_handles: count,
            flags,
            first_signaled: self.rng.next_u32(),
            pad: if self.rng.chance(1, 20) { 1 } else { 0 },
            deadline_nsec: drm::monotonic_ns() as u64 + self.rng.below(10_000_000),
        };
        let _ = self.ioctl(
            f.raw(),
            "SYNCOBJ_WAIT",
            sys::DRM_IOCTL_SYNCOBJ_WAIT,
            &mut w,
            Expect::default(),
            &|| format!(" handles {hs:?}"),
        );
    }

    pub(super) fn timeline_wait(&mut self, f: &FileCtx, hs: &[u32], points: &[u64]) {
        let hb: Vec<u8> = hs.iter().flat_map(|h| h.to_le_bytes()).collect();
        let hp = self.place_valid(&hb, hb.len() as u64);
        let pp = self.point_array(f, points, hs.len() as u32);
        let mut w = sys::SyncobjTimelineWait {
            handles: hp.ptr,
            points: pp,
            timeout_nsec: drm::monotonic_ns() + self.rng.range(1_000_000, 100_000_000) as i64,
            count_handles: hs.len() as u32,
            flags: sys::SYNCOBJ_WAIT_ALL | sys::SYNCOBJ_WAIT_FOR_SUBMIT,
            ..Default::default()
        };
        let _ = self.ioctl(
            f.raw(),
            "SYNCOBJ_TIMELINE_WAIT",
            sys::DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT,
            &mut w,
            Expect::default(),
            &nothing,
        );
    }

    /// Points for `hs`: at or below what each has, or beyond, or wild.
    pub(super) fn points_for(&mut self, f: &FileCtx, hs: &[u32], next: bool) -> Vec<u64> {
        let p = f.pools();
        hs.iter()
            .map(|h| {
                let cur = p
                    .syncs
                    .iter()
                    .find(|s| s.handle == *h)
                    .map_or(0, |s| s.point);
                match self.rng.below(12) {
                    0 => 0,
                    1 => self.rng.interesting_u64(),
                    _ if next => cur + self.rng.range(1, 3),
                    _ => self.rng.range(1, cur.max(1)),
                }
            })
            .collect()
    }

    pub(super) fn op_sync_timeline_wait(&mut self, f: &FileCtx) {
        let live = f.pools().sync_handles();
        let (count, hptr, hs) = self.handle_array(f, &live, 4);
        let next = self.rng.chance(1, 4);
        let points = self.points_for(f, &hs, next);
        let pptr = self.point_array(f, &points, count);
        let mut w = sys::SyncobjTimelineWait {
            handles: hptr,
            points: pptr,
            timeout_nsec: self.deadline_ns(),
            count_handles: count,
            flags: self.wait_flags(),
            first_signaled: 0,
            pad: if self.rng.chance(1, 20) { 1 } else { 0 },
            deadline_nsec: drm::monotonic_ns() as u64,
        };
        let _ = self.ioctl(
            f.raw(),
            "SYNCOBJ_TIMELINE_WAIT",
            sys::DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT,
            &mut w,
            Expect::default(),
            &|| format!(" handles {hs:?} points {points:?}"),
        );
    }

    /// SYNCOBJ_SIGNAL, or SYNCOBJ_RESET.
    pub(super) fn op_sync_array(&mut self, f: &FileCtx, reset: bool) {
        let live = f.pools().sync_handles();
        let (count, ptr, hs) = self.handle_array(f, &live, 4);
        let mut a = sys::SyncobjArray {
            handles: ptr,
            count_handles: count,
            pad: if self.rng.chance(1, 20) {
                self.rng.next_u32()
            } else {
                0
            },
        };
        let (name, req) = if reset {
            ("SYNCOBJ_RESET", sys::DRM_IOCTL_SYNCOBJ_RESET)
        } else {
            ("SYNCOBJ_SIGNAL", sys::DRM_IOCTL_SYNCOBJ_SIGNAL)
        };
        if self
            .ioctl(f.raw(), name, req, &mut a, Expect::default(), &|| {
                format!(" handles {hs:?}")
            })
            .is_ok()
        {
            let mut p = f.pools();
            for h in hs.iter().take(count as usize) {
                if let Some(s) = p.sync_mut(*h) {
                    s.fenced = !reset;
                }
            }
        }
    }

    /// SYNCOBJ_TIMELINE_SIGNAL, or SYNCOBJ_QUERY (which writes the points).
    pub(super) fn op_sync_timeline_array(&mut self, f: &FileCtx, query: bool) {
        let live = f.pools().sync_handles();
        let (count, hptr, hs) = self.handle_array(f, &live, 4);
        let (points, pptr) = if query {
            let kind = gen::out_ptr(&mut self.rng);
            (
                Vec::new(),
                self.place_out(f, u64::from(count) * 8, kind).ptr,
            )
        } else {
            let points = self.points_for(f, &hs, true);
            let ptr = self.point_array(f, &points, count);
            (points, ptr)
        };
        let flags = match self.rng.below(10) {
            0..=5 => 0,
            6..=8 if query => sys::SYNCOBJ_QUERY_LAST_SUBMITTED,
            _ => self.rng.interesting_u32(),
        };
        let mut a = sys::SyncobjTimelineArray {
            handles: hptr,
            points: pptr,
            count_handles: count,
            flags,
        };
        let (name, req) = if query {
            ("SYNCOBJ_QUERY", sys::DRM_IOCTL_SYNCOBJ_QUERY)
        } else {
            (
                "SYNCOBJ_TIMELINE_SIGNAL",
                sys::DRM_IOCTL_SYNCOBJ_TIMELINE_SIGNAL,
            )
        };
        let ok = self
            .ioctl(f.raw(), name, req, &mut a, Expect::default(), &|| {
                format!(" handles {hs:?} points {points:?}")
            })
            .is_ok();
        if ok && !query {
            let mut p = f.pools();
            for (h, pt) in hs.iter().zip(&points).take(count as usize) {
                if let Some(s) = p.sync_mut(*h) {
                    s.fenced = true;
                    s.point = s.point.max(*pt);
                }
            }
        }
    }

    pub(super) fn op_sync_transfer(&mut self, f: &FileCtx) {
        let (live, syncs) = {
            let p = f.pools();
            (p.sync_handles(), p.syncs.clone())
        };
        let src = gen::handle(&mut self.rng, &live);
        let dst = gen::handle(&mut self.rng, &live);
        let point_of = |h: u32| syncs.iter().find(|s| s.handle == h).map_or(0, |s| s.point);
        let src_point = if self.rng.chance(1, 2) {
            0
        } else {
            self.rng.range(1, point_of(src).max(1))
        };
        let dst_point = if self.rng.chance(1, 2) {
            0
        } else {
            point_of(dst) + 1
        };
        // Never WAIT_FOR_SUBMIT: that waits up to 5 s in the kernel.
        let flags = if self.rng.chance(1, 10) {
            self.rng.interesting_u32() & !sys::SYNCOBJ_WAIT_FOR_SUBMIT
        } else {
            0
        };
        let mut t = sys::SyncobjTransfer {
            src_handle: src,
            dst_handle: dst,
            src_point,
            dst_point,
            flags,
            pad: if self.rng.chance(1, 20) { 1 } else { 0 },
        };
        if self
            .ioctl(
                f.raw(),
                "SYNCOBJ_TRANSFER",
                sys::DRM_IOCTL_SYNCOBJ_TRANSFER,
                &mut t,
                Expect::default(),
                &nothing,
            )
            .is_ok()
        {
            if let Some(s) = f.pools().sync_mut(dst) {
                s.fenced = true;
                s.point = s.point.max(dst_point);
            }
        }
    }

    pub(super) fn add_fd(&mut self, fd: i32, kind: FdKind, size: u64) {
        if fd < 0 {
            self.finding(&format!("an ioctl returned success with fd {fd}"), "");
            return;
        }
        // SAFETY: the kernel just returned this new descriptor to us.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut fds = self.env.fds();
        if fds.len() >= MAX_EXT_FDS {
            let i = self.rng.index(fds.len());
            fds.swap_remove(i);
        }
        fds.push(ExtFd { fd, kind, size });
    }

    /// A descriptor to import: one of the kind wanted, another kind, or a
    /// bad number. Returns the number and the dma-buf size, if any.
    pub(super) fn pick_fd(&mut self, f: &FileCtx, want: FdKind) -> (i32, u64) {
        let fds = self.env.fds();
        let good: Vec<(i32, u64)> = fds
            .iter()
            .filter(|e| e.kind == want)
            .map(|e| (e.fd.as_raw_fd(), e.size))
            .collect();
        let any: Vec<(i32, u64)> = fds.iter().map(|e| (e.fd.as_raw_fd(), e.size)).collect();
        drop(fds);
        match self.rng.below(20) {
            0..=14 if !good.is_empty() => *self.rng.pick(&good).unwrap(),
            15 | 16 if !any.is_empty() => *self.rng.pick(&any).unwrap(),
            17 => (f.raw(), 0),
            18 => (-1, 0),
            _ => (self.rng.range(0, 1100) as i32, 0),
        }
    }

    pub(super) fn op_sync_to_fd(&mut self, f: &FileCtx) {
        let (live, syncs) = {
            let p = f.pools();
            (p.sync_handles(), p.syncs.clone())
        };
        let handle = gen::handle(&mut self.rng, &live);
        let point = syncs
            .iter()
            .find(|s| s.handle == handle)
            .map_or(0, |s| s.point);
        let flags = match self.rng.below(10) {
            0..=4 => 0,
            5..=7 => sys::SYNCOBJ_FD_EXPORT_SYNC_FILE,
            8 => sys::SYNCOBJ_FD_EXPORT_SYNC_FILE | sys::SYNCOBJ_FD_TIMELINE,
            _ => self.rng.interesting_u32(),
        };
        let mut h = sys::SyncobjHandle {
            handle,
            flags,
            fd: self.rng.next_u32() as i32,
            pad: if self.rng.chance(1, 20) { 1 } else { 0 },
            point: if flags & sys::SYNCOBJ_FD_TIMELINE != 0 {
                point
            } else {
                0
            },
        };
        if self
            .ioctl(
                f.raw(),
                "SYNCOBJ_HANDLE_TO_FD",
                sys::DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD,
                &mut h,
                Expect::default(),
                &nothing,
            )
            .is_ok()
        {
            let kind = if flags & sys::SYNCOBJ_FD_EXPORT_SYNC_FILE != 0 {
                FdKind::SyncFile
            } else {
                FdKind::Syncobj
            };
            self.add_fd(h.fd, kind, 0);
        }
    }

    pub(super) fn op_sync_from_fd(&mut self, f: &FileCtx) {
        let live = f.pools().sync_handles();
        let sync_file = self.rng.chance(1, 2);
        let (fd, _) = self.pick_fd(
            f,
            if sync_file {
                FdKind::SyncFile
            } else {
                FdKind::Syncobj
            },
        );
        let flags = match self.rng.below(10) {
            0..=8 if sync_file => sys::SYNCOBJ_FD_IMPORT_SYNC_FILE,
            0..=8 => 0,
            _ => self.rng.interesting_u32(),
        };
        let mut h = sys::SyncobjHandle {
            handle: if sync_file {
                gen::handle(&mut self.rng, &live)
            } else {
                self.rng.next_u32()
            },
            flags,
            fd,
            pad: if self.rng.chance(1, 20) { 1 } else { 0 },
            point: 0,
        };
        let ok = self
            .ioctl(
                f.raw(),
                "SYNCOBJ_FD_TO_HANDLE",
                sys::DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE,
                &mut h,
                Expect::default(),
                &nothing,
            )
            .is_ok();
        if ok && flags == 0 {
            let full = {
                let mut p = f.pools();
                let full = p.syncs.len() >= MAX_SYNCOBJS;
                if !full {
                    p.syncs.push(SyncInfo {
                        handle: h.handle,
                        fenced: false,
                        point: 0,
                    });
                }
                full
            };
            if full {
                self.sync_destroy(f, h.handle);
            }
        }
    }

    pub(super) fn op_sync_eventfd(&mut self, f: &FileCtx) {
        let (live, syncs) = {
            let p = f.pools();
            (p.sync_handles(), p.syncs.clone())
        };
        let (mut fd, _) = self.pick_fd(f, FdKind::Eventfd);
        if self.rng.chance(1, 3) {
            // SAFETY: plain syscall; the result is checked.
            let e = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
            if e >= 0 {
                self.add_fd(e, FdKind::Eventfd, 0);
                fd = e;
            }
        }
        let handle = gen::handle(&mut self.rng, &live);
        let point = syncs
            .iter()
            .find(|s| s.handle == handle)
            .map_or(0, |s| s.point);
        let mut e = sys::SyncobjEventfd {
            handle,
            flags: match self.rng.below(10) {
                0..=5 => 0,
                6..=8 => sys::SYNCOBJ_WAIT_AVAILABLE,
                _ => self.rng.interesting_u32(),
            },
            point: match self.rng.below(4) {
                0 => 0,
                1 => point,
                2 => point + 1,
                _ => self.rng.interesting_u64(),
            },
            fd,
            pad: if self.rng.chance(1, 20) { 1 } else { 0 },
        };
        let _ = self.ioctl(
            f.raw(),
            "SYNCOBJ_EVENTFD",
            sys::DRM_IOCTL_SYNCOBJ_EVENTFD,
            &mut e,
            Expect::default(),
            &nothing,
        );
    }
}
