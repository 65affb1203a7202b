// SPDX-License-Identifier: MIT
//! Asynchronous binds (UAPI 0.5): DRM_FERRITE_VM_BIND_ASYNC waiting for
//! jobs and fences, their fences, and what a failed one leaves.

use super::*;

impl Worker<'_> {
    /// A new binary sync object, not in the pool (the caller destroys it).
    pub(super) fn own_syncobj(&mut self, f: &FileCtx) -> Option<u32> {
        let mut c = TwoU32 { a: 0, b: 0 };
        self.ioctl(
            f.raw(),
            "SYNCOBJ_CREATE",
            sys::DRM_IOCTL_SYNCOBJ_CREATE,
            &mut c,
            Expect::default(),
            &nothing,
        )
        .ok()?;
        Some(c.a)
    }

    /// Export the fence of sync object `h` as a sync_file (EINVAL: it has
    /// none, which `ex` decides about).
    pub(super) fn export_fence(&mut self, f: &FileCtx, h: u32, ex: Expect) -> Option<OwnedFd> {
        let mut e = sys::SyncobjHandle {
            handle: h,
            flags: sys::SYNCOBJ_FD_EXPORT_SYNC_FILE,
            fd: -1,
            pad: 0,
            point: 0,
        };
        self.ioctl(
            f.raw(),
            "SYNCOBJ_HANDLE_TO_FD",
            sys::DRM_IOCTL_SYNCOBJ_HANDLE_TO_FD,
            &mut e,
            ex,
            &|| format!(" export of sync object {h}"),
        )
        .ok()?;
        if e.fd < 0 {
            self.finding(&format!("an ioctl returned success with fd {}", e.fd), "");
            return None;
        }
        // SAFETY: the kernel just returned this new descriptor to us.
        Some(unsafe { OwnedFd::from_raw_fd(e.fd) })
    }

    /// A job of random commands (which may fault or hang) with the sync
    /// ops `syncs`, on a queue of the file (of `vm`, if given) that has a
    /// command buffer; its queue's VM if it was submitted.
    pub(super) fn job(&mut self, f: &FileCtx, vm: Option<u32>, syncs: &[SyncOp]) -> Option<u32> {
        let range = f.range;
        let g0 = f.gen();
        let (q, map, cmd, data, bound) = {
            let p = f.pools();
            let cands: Vec<(QueueEnt, &CmdBuf)> = p
                .queues
                .iter()
                .filter(|q| vm.is_none_or(|v| v == q.vm))
                .flat_map(|q| {
                    p.cmdbufs
                        .iter()
                        .filter(move |c| c.vm == q.vm)
                        .map(move |c| (*q, c))
                })
                .collect();
            let (q, c) = self.rng.pick(&cands)?;
            (
                *q,
                c.map.clone(),
                (c.cmd_va, c.cmd_size),
                (c.data_va, c.data_size),
                p.bound_in(q.vm),
            )
        };
        let mut bound = bound;
        bound.extend(self.user_ranges(f, q.vm));
        let ctx = gen::CmdCtx {
            range,
            data,
            cmd,
            bound,
            allow_hang: self.rng.chance(1, 25),
        };
        let (cmd_va, len) = self.write_commands(&ctx, &map, cmd);
        let sb: Vec<u8> = syncs.iter().flat_map(|s| s.to_bytes()).collect();
        let sp = self.place_valid(&sb, sb.len() as u64);
        let mut s = uapi::drm_ferrite_submit {
            queue_id: q.id,
            flags: 0,
            cmd_va,
            cmd_size: len as u32,
            pad: 0,
            syncs: drm_ferrite_obj_array {
                count: syncs.len() as u32,
                stride: 16,
                array: sp.ptr,
            },
            bos: drm_ferrite_obj_array::default(),
        };
        let pre = self.pre_state(f, q.vm);
        let ex = Expect {
            extra: EIO_OK,
            ..Default::default()
        };
        let describe = || format!(" job on queue {} of vm {}, syncs {syncs:?}", q.id, q.vm);
        let r = self.ioctl(f.raw(), "SUBMIT", IOCTL_SUBMIT, &mut s, ex, &describe);
        self.submit_vm_check(f, q, r, pre == Some(true), false, g0, &describe);
        r.ok().map(|_| q.vm)
    }

    /// An asynchronous VM_BIND as a client makes it (UAPI 0.5): MAPs of BOs
    /// and of NULL ranges, UNMAPs and SYNC_ONLY ops (or SYNC_ONLY ops
    /// alone), waiting for a job just submitted (which may fault) or a
    /// fenced sync object, signalling a new sync object, which must hold a
    /// fence when the call returns; now and then with a userptr MAP, which
    /// an asynchronous bind refuses (EINVAL). Then now and then a job that
    /// waits for the bind, and a wait for the bind's fence and the checks
    /// that follow: a bind whose WAIT fence failed fails, a failed bind
    /// leaves its VM unusable, an unusable VM refuses MAPs (EIO) and takes
    /// UNMAPs; and the VM is made again.
    pub(super) fn op_async_bind(&mut self, f: &FileCtx) {
        if !f.async_ok {
            return self.op_vm_bind(f);
        }
        let range = f.range;
        let (vm, ops, fenced) = {
            let p = f.pools();
            let vm = match self.rng.pick(&p.vms) {
                Some(&v) if self.rng.chance(3, 4) => v,
                _ => PVM,
            };
            let bound = p.bound_in(vm);
            let ctx = gen::BindCtx {
                range,
                bos: &p.bos,
                bound: &bound,
                null_ok: f.null_ok,
                async_: true,
            };
            let n = self.rng.range(1, 8);
            let ops = gen::valid_bind_ops(&mut self.rng, &ctx, n);
            let fenced: Vec<u32> = p
                .syncs
                .iter()
                .filter(|s| s.fenced)
                .map(|s| s.handle)
                .collect();
            (vm, ops, fenced)
        };
        let mut ops = ops;
        let userptr = self.rng.chance(1, 16);
        if userptr {
            let size = gen::plausible_size(&mut self.rng, 16 * page());
            let at = self.rng.index(ops.len() + 1);
            ops.insert(
                at,
                BindOp {
                    op: MAP,
                    flags: USERPTR | uapi::DRM_FERRITE_VM_BIND_READONLY,
                    va: gen::plausible_va(&mut self.rng, range, size),
                    size,
                    ..Default::default()
                },
            );
        }
        let maps = ops.iter().any(|o| o.op == MAP);
        let mut own: Vec<u32> = Vec::new();
        // The fence to wait for: of a job just submitted, or of a sync object
        // of the pool (a job's or a bind's, which may have failed), or none.
        let mut dep: Option<u32> = None;
        let mut dep_fd: Option<OwnedFd> = None;
        if self.may_lose(vm) {
            match self.rng.below(8) {
                0..=3 => {
                    if let Some(h) = self.own_syncobj(f) {
                        own.push(h);
                        let sig = SyncOp {
                            flags: SIGNAL,
                            handle: h,
                            point: 0,
                        };
                        if self.job(f, None, &[sig]).is_some() {
                            dep = Some(h);
                            // The very fence the bind waits for.
                            dep_fd = self.export_fence(f, h, Expect::default());
                        }
                    }
                }
                4..=5 => dep = self.rng.pick(&fenced).copied(),
                _ => {}
            }
        }
        let Some(sig) = self.own_syncobj(f) else {
            return self.destroy_own(f, own);
        };
        own.push(sig);
        let mut syncs = vec![SyncOp {
            flags: SIGNAL,
            handle: sig,
            point: 0,
        }];
        // And now and then the next point of a timeline of the pool.
        let point = {
            let p = f.pools();
            match self.rng.pick(&p.syncs) {
                Some(s) if self.rng.chance(1, 3) => Some((s.handle, s.point + 1)),
                _ => None,
            }
        };
        if let Some((handle, point)) = point {
            syncs.push(SyncOp {
                flags: SIGNAL | TIMELINE,
                handle,
                point,
            });
        }
        if let Some(h) = dep {
            syncs.insert(
                self.rng.index(2),
                SyncOp {
                    flags: 0,
                    handle: h,
                    point: 0,
                },
            );
        }
        let (pre, g0) = {
            let g0 = f.gen();
            (self.vm_state(f, vm), g0)
        };
        if dep.is_some() {
            self.mark_risky(f, vm);
        }
        let ob: Vec<u8> = ops.iter().flat_map(|o| o.to_bytes()).collect();
        let sb: Vec<u8> = syncs.iter().flat_map(|s| s.to_bytes()).collect();
        let op_ptr = self.place_valid(&ob, ob.len() as u64).ptr;
        let sync_ptr = self.place_valid(&sb, sb.len() as u64).ptr;
        let mut b = uapi::drm_ferrite_vm_bind {
            vm_id: vm,
            flags: ASYNC,
            ops: drm_ferrite_obj_array {
                count: ops.len() as u32,
                stride: 40,
                array: op_ptr,
            },
            syncs: drm_ferrite_obj_array {
                count: syncs.len() as u32,
                stride: 16,
                array: sync_ptr,
            },
        };
        let ex = if userptr {
            let maybe = pre != Some(false) || self.maybe_unusable(f, vm);
            Expect {
                must_fail: true,
                only: Some(if maybe {
                    ASYNC_USERPTR_EIO
                } else {
                    ASYNC_USERPTR
                }),
                ..Default::default()
            }
        } else {
            Expect {
                extra: if maps { BIND_EIO_EXTRA } else { BIND_EXTRA },
                ..Default::default()
            }
        };
        let describe = || {
            format!(
                "\n  vm {vm} (state before {pre:?})\n  ops: {}\n  syncs: {}",
                head(&ops, 8),
                head(&syncs, 8)
            )
        };
        let r = self.ioctl(
            f.raw(),
            "VM_BIND_ASYNC",
            IOCTL_VM_BIND,
            &mut b,
            ex,
            &describe,
        );
        match r {
            Err(libc::EIO) if maps => self.bind_eio(f, vm, g0, "VM_BIND_ASYNC", &describe),
            Ok(_) if maps && pre == Some(true) => {
                self.bind_on_unusable(f, vm, g0, "VM_BIND_ASYNC", &describe)
            }
            _ => {}
        }
        if r.is_err() {
            return self.destroy_own(f, own);
        }
        {
            let mut p = f.pools();
            for o in &ops {
                match o.op {
                    MAP => p.add_bound(vm, o.va, o.size),
                    UNMAP => p.remove_bound(vm, o.va, o.size),
                    _ => {}
                }
            }
            p.signalled(&syncs);
        }
        // The SIGNAL sync object holds the bind's fence once VM_BIND returns.
        let ex = Expect {
            only: Some(EXPORT_FENCED),
            ..Default::default()
        };
        let bind_fd = self.export_fence(f, sig, ex);
        // A job that waits for the bind sees its mappings (reads of NULL
        // ranges give zeros, writes are dropped).
        if self.rng.chance(1, 3) {
            let wait = SyncOp {
                flags: 0,
                handle: sig,
                point: 0,
            };
            let _ = self.job(f, Some(vm), &[wait]);
        }
        // A timeline point added to the same sync object wraps the fence in
        // a chain, whose status does not carry the bind's error (ferrite.rst:
        // timeline points do not carry errors): then only the bind's own
        // ending is checked, not that a failed WAIT failed it.
        let chained = syncs
            .iter()
            .any(|s| s.handle == sig && s.flags & SIGNAL != 0 && s.flags & TIMELINE != 0);
        let dep_fd = dep_fd.filter(|_| !chained);
        if let Some(bind_fd) = bind_fd.filter(|_| self.rng.chance(1, 3)) {
            self.check_bind_fence(f, vm, g0, &bind_fd, dep_fd.as_ref(), &describe);
        } else if self.rng.chance(1, 2) {
            // Later WAITs (of jobs and binds) on the bind's fence.
            let mut p = f.pools();
            if p.syncs.len() < MAX_SYNCOBJS {
                p.syncs.push(SyncInfo {
                    handle: sig,
                    fenced: true,
                    point: 0,
                });
                own.retain(|&h| h != sig);
            }
        }
        self.destroy_own(f, own);
    }

    /// Wait (up to 3 s) for an asynchronous bind's fence, then check what
    /// follows from how it ended: its WAIT fence `dep` failed, so must it;
    /// it failed, so its VM is unusable; an unusable VM refuses MAPs and
    /// takes UNMAPs, and is made again.
    pub(super) fn check_bind_fence(
        &mut self,
        f: &FileCtx,
        vm: u32,
        g0: u64,
        bind: &OwnedFd,
        dep: Option<&OwnedFd>,
        d: &dyn Fn() -> String,
    ) {
        let mut pfd = libc::pollfd {
            fd: bind.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, 3000) };
        if n <= 0 {
            return;
        }
        let Ok(b) = drm::sync_file_status(bind.as_raw_fd()) else {
            return;
        };
        let dstat = dep.and_then(|fd| drm::sync_file_status(fd.as_raw_fd()).ok());
        self.stats
            .event(match (b < 0, dstat.is_some_and(|d| d < 0)) {
                (false, _) => "bind_fence_ok",
                (true, true) => "bind_fence_failed_after_failed_wait",
                (true, false) => "bind_fence_failed",
            });
        if b == 0 {
            self.finding(
                "the fence of an asynchronous VM_BIND polls signalled but reports pending",
                &d(),
            );
            return;
        }
        // Only on a file no other thread or process uses: their SIGNAL,
        // RESET or DESTROY of a random handle may hit the WAIT's or the
        // SIGNAL's sync object between this thread's export of the job's
        // fence and the bind's lookup (or the bind's SIGNAL and its
        // export), so that the bind waited for, or the export read, some
        // other fence (seen about once in 100k calls, from a fork child and
        // from a sibling thread, each time with handle 1 among the bind's
        // sync objects: a bind that waited for a job that failed signalled
        // without error). ferrite_bind's unusable-vm checks that property
        // deterministically.
        let alone = !self.shares_file && !self.sibling_threads;
        if let Some(e @ ..=-1) = dstat.filter(|_| alone) {
            if b > 0 {
                self.finding(
                    &format!(
                        "an asynchronous VM_BIND whose WAIT fence failed ({}) signalled without error",
                        errno_name(-e)
                    ),
                    &d(),
                );
            }
        }
        let st = self.vm_state(f, vm);
        if b < 0 && st == Some(false) && self.vm_id_stable(f, vm, g0) {
            self.finding(
                &format!(
                    "an asynchronous VM_BIND failed ({}) after it returned, but VM_GET_STATE \
                     reports VM {vm} usable",
                    errno_name(-b)
                ),
                &d(),
            );
        }
        if st == Some(true) {
            self.exercise_unusable(f, vm, g0);
        }
    }

    /// On a VM VM_GET_STATE just reported unusable: a MAP (synchronous or
    /// not) fails with EIO, an UNMAP works.
    pub(super) fn exercise_unusable(&mut self, f: &FileCtx, vm: u32, g0: u64) {
        let range = f.range;
        let bo = {
            let p = f.pools();
            self.rng.pick(&p.bos).copied()
        };
        let (map, only) = match bo {
            Some(bo) if !f.null_ok || self.rng.chance(1, 3) => (
                BindOp {
                    op: MAP,
                    handle: bo.handle,
                    va: gen::plausible_va(&mut self.rng, range, page()),
                    size: page(),
                    ..Default::default()
                },
                UNUSABLE_BO_MAP,
            ),
            _ if f.null_ok => (gen::null_op(&mut self.rng, range), UNUSABLE_NULL_MAP),
            _ => return,
        };
        let (wbase, wsize) = range.fuzz_window();
        let unmap = BindOp {
            op: UNMAP,
            va: wbase,
            size: page() * self.rng.range(1, wsize / page()),
            ..Default::default()
        };
        for (o, only) in [(map, only), (unmap, UNUSABLE_UNMAP)] {
            let async_ = self.rng.chance(1, 2);
            let bytes = o.to_bytes();
            let p = self.place_valid(&bytes, bytes.len() as u64);
            let mut b = uapi::drm_ferrite_vm_bind {
                vm_id: vm,
                flags: if async_ { ASYNC } else { 0 },
                ops: drm_ferrite_obj_array {
                    count: 1,
                    stride: 40,
                    array: p.ptr,
                },
                syncs: drm_ferrite_obj_array::default(),
            };
            let ex = Expect {
                only: Some(only),
                ..Default::default()
            };
            let name = if async_ { "VM_BIND_ASYNC" } else { "VM_BIND" };
            let describe = || format!(" on unusable vm {vm}: {o:?}");
            let r = self.ioctl(f.raw(), name, IOCTL_VM_BIND, &mut b, ex, &describe);
            if r.is_err() && o.op == MAP {
                self.stats.event("unusable_map_refused");
            }
            if r.is_ok() && o.op == UNMAP {
                self.stats.event("unusable_unmap_ok");
            }
            if o.op == MAP && r.is_ok() {
                self.bind_on_unusable(f, vm, g0, name, &describe);
            }
            if o.op == UNMAP && r.is_ok() {
                f.pools().remove_bound(vm, o.va, o.size);
            }
        }
    }

    pub(super) fn destroy_own(&mut self, f: &FileCtx, own: Vec<u32>) {
        for h in own {
            self.sync_destroy(f, h);
        }
    }
}
