// SPDX-License-Identifier: MIT
//! Queues and jobs: QUEUE_CREATE, QUEUE_DESTROY, QUEUE_GET_STATE,
//! command buffers and SUBMIT.

use super::*;

impl Worker<'_> {
    /// Generate commands for `ctx` and write them into the command area
    /// `cmd` (VA, size) of the command buffer mapped at `map`, at a random
    /// 64-byte aligned offset: their VA and length in bytes.
    pub(super) fn write_commands(
        &mut self,
        ctx: &gen::CmdCtx,
        map: &MapEnt,
        cmd: (u64, u64),
    ) -> (u64, u64) {
        let max_dw = (cmd.1 / 4).min(1024) as usize;
        let mut dw = gen::commands(&mut self.rng, ctx, max_dw);
        dw.truncate((cmd.1 / 4) as usize);
        let len = dw.len() as u64 * 4;
        let off = 64 * self.rng.below((cmd.1 - len) / 64 + 1);
        let bytes: Vec<u8> = dw.iter().flat_map(|d| d.to_le_bytes()).collect();
        map.write(off as usize, &bytes);
        (cmd.0 + off, len)
    }

    pub(super) fn op_queue_create(&mut self, f: &FileCtx, vm: Option<u32>) {
        let vm = vm.unwrap_or_else(|| {
            let p = f.pools();
            gen::vm_id(&mut self.rng, &p.vms)
        });
        // Never ERRORS_FATAL (bit 0): a banned queue would fail SUBMITs the
        // model expects to succeed; a bad value always has an unknown bit.
        let fl = gen::flags(&mut self.rng, 0);
        let flags = if fl.bad { fl.v | 2 } else { 0 };
        let pad = gen::pad32(&mut self.rng);
        // Every priority (the fuzzer runs as root), and rarely a bad one.
        let (priority, bad_prio) = if self.rng.chance(1, 16) {
            (self.rng.next_u32() | 4, true)
        } else {
            (self.rng.below(4) as u32, false)
        };
        let mut c = uapi::drm_ferrite_queue_create {
            vm_id: vm,
            flags,
            timeout_ms: gen::timeout_ms(&mut self.rng),
            queue_id: self.rng.next_u32(),
            priority,
            pad: pad.v,
        };
        let ex = Expect::fail_if(fl.bad || pad.bad || bad_prio);
        f.bump();
        if self
            .ioctl(
                f.raw(),
                "QUEUE_CREATE",
                IOCTL_QUEUE_CREATE,
                &mut c,
                ex,
                &nothing,
            )
            .is_err()
        {
            return;
        }
        if c.queue_id == 0 {
            self.finding("QUEUE_CREATE returned queue id 0", "");
        }
        let full = {
            let mut p = f.pools();
            let full = p.queues.len() >= MAX_QUEUES;
            if !full {
                p.queues.push(QueueEnt { id: c.queue_id, vm });
            }
            full
        };
        if full {
            f.bump();
            let mut d = uapi::drm_ferrite_queue_destroy {
                queue_id: c.queue_id,
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
    }

    pub(super) fn op_queue_destroy(&mut self, f: &FileCtx) {
        let taken = self.rng.take(&mut f.pools().queues, 9, 10);
        let id = taken.map_or_else(|| gen::handle(&mut self.rng, &[]), |q| q.id);
        let pad = gen::pad32(&mut self.rng);
        let mut d = uapi::drm_ferrite_queue_destroy {
            queue_id: id,
            pad: pad.v,
        };
        f.bump();
        let r = self.ioctl(
            f.raw(),
            "QUEUE_DESTROY",
            IOCTL_QUEUE_DESTROY,
            &mut d,
            Expect::fail_if(pad.bad),
            &nothing,
        );
        match (r, taken) {
            (Err(e), Some(q)) if e != libc::ENOENT => f.pools().queues.push(q),
            // A random id named a queue of the pool: it is gone (its id may
            // come back on another VM), and SUBMIT checks rely on the pool.
            (Ok(_), None) => forget_queue(f, id),
            _ => {}
        }
    }

    pub(super) fn op_queue_state(&mut self, f: &FileCtx, queue: Option<u32>) {
        let id = match queue {
            Some(q) => q,
            None => {
                let live: Vec<u32> = f.pools().queues.iter().map(|q| q.id).collect();
                gen::handle(&mut self.rng, &live)
            }
        };
        let fl = gen::flags(&mut self.rng, uapi::DRM_FERRITE_QUEUE_STATE_CLEAR);
        let mut s = uapi::drm_ferrite_queue_get_state {
            queue_id: id,
            flags: fl.v,
            state: self.rng.next_u32(),
            ..Default::default()
        };
        let ok = self
            .ioctl(
                f.raw(),
                "QUEUE_GET_STATE",
                IOCTL_QUEUE_GET_STATE,
                &mut s,
                Expect::fail_if(fl.bad),
                &nothing,
            )
            .is_ok();
        if ok && s.state > uapi::drm_ferrite_queue_state_DRM_FERRITE_QUEUE_STATE_TIMEDOUT {
            self.finding(
                &format!("QUEUE_GET_STATE returned state {}", s.state),
                &format!("{s:?}"),
            );
        }
    }

    /// Create a command buffer in `vm` (or a random VM): a commands BO
    /// mapped for the CPU and a data BO, bound at one of the slots.
    pub(super) fn op_cmdbuf_setup(&mut self, f: &FileCtx, vm: Option<u32>) {
        let vm = vm.unwrap_or_else(|| {
            let p = f.pools();
            match self.rng.pick(&p.vms) {
                Some(&v) if self.rng.chance(1, 2) => v,
                _ => uapi::DRM_FERRITE_VM_PROCESS,
            }
        });
        let slot = self.rng.below(8);
        let cmd_size = if self.rng.chance(1, 10) {
            MIB
        } else {
            64 << 10
        };
        let data_size = 64 << 10;
        // Make room among the BOs.
        let evict = {
            let mut p = f.pools();
            let mut out = Vec::new();
            while !p.bos.is_empty()
                && (p.bos.len() + 2 > MAX_BOS || p.bo_bytes() + cmd_size + data_size > MAX_BO_BYTES)
            {
                let i = self.rng.index(p.bos.len());
                out.push(p.bos.swap_remove(i).handle);
            }
            out
        };
        for h in evict {
            self.gem_close(f, h);
        }
        let Some(cmd) = self.create_bo(f, cmd_size) else {
            return;
        };
        let Some(data) = self.create_bo(f, data_size) else {
            self.gem_close(f, cmd.handle);
            return;
        };
        let mut m = uapi::drm_ferrite_gem_mmap_offset {
            handle: cmd.handle,
            ..Default::default()
        };
        let mapped = self
            .ioctl(
                f.raw(),
                "GEM_MMAP_OFFSET",
                IOCTL_GEM_MMAP_OFFSET,
                &mut m,
                Expect::default(),
                &nothing,
            )
            .ok()
            .and_then(|_| {
                self.count_call();
                match Mmap::new(f.raw(), m.offset, cmd.size as usize) {
                    Ok(map) => {
                        self.check("mmap", Ok(0), Expect::default(), &nothing);
                        Some(map)
                    }
                    Err(e) => {
                        self.check(
                            "mmap",
                            Err(e.raw_os_error().unwrap_or(0)),
                            Expect::default(),
                            &nothing,
                        );
                        None
                    }
                }
            });
        let va = f.range.cmd_slot(slot);
        let data_va = va + 4 * MIB;
        let ops = [
            BindOp {
                op: MAP,
                handle: cmd.handle,
                va,
                size: cmd.size,
                ..Default::default()
            },
            BindOp {
                op: MAP,
                flags: if self.rng.chance(1, 10) {
                    uapi::DRM_FERRITE_VM_BIND_READONLY
                } else {
                    0
                },
                handle: data.handle,
                va: data_va,
                size: data.size,
                ..Default::default()
            },
        ];
        let bytes: Vec<u8> = ops.iter().flat_map(|o| o.to_bytes()).collect();
        let p = self.place_valid(&bytes, bytes.len() as u64);
        let mut b = uapi::drm_ferrite_vm_bind {
            vm_id: vm,
            flags: 0,
            ops: drm_ferrite_obj_array {
                count: 2,
                stride: 40,
                array: p.ptr,
            },
            syncs: drm_ferrite_obj_array::default(),
        };
        // EIO: the VM is unusable (asked after).
        let g0 = f.gen();
        let ex = Expect {
            extra: EIO_OK,
            ..Default::default()
        };
        let r = self.ioctl(f.raw(), "VM_BIND", IOCTL_VM_BIND, &mut b, ex, &nothing);
        if r == Err(libc::EIO) {
            self.bind_eio(f, vm, g0, "VM_BIND (command buffer)", &|| {
                format!(" vm {vm}")
            });
        }
        let bound = r.is_ok();
        let (Some(map), true) = (mapped, bound) else {
            self.gem_close(f, cmd.handle);
            self.gem_close(f, data.handle);
            return;
        };
        let map = Arc::new(MapEnt {
            handle: cmd.handle,
            map,
        });
        let mut p = f.pools();
        p.bos.push(cmd);
        p.bos.push(data);
        p.add_bound(vm, va, cmd.size);
        p.add_bound(vm, data_va, data.size);
        p.cmdbufs.retain(|c| !(c.vm == vm && c.cmd_va == va));
        if p.cmdbufs.len() >= MAX_CMDBUFS {
            p.cmdbufs.remove(0);
        }
        p.cmdbufs.push(CmdBuf {
            vm,
            cmd_va: va,
            cmd_size: cmd.size,
            map,
            data_va,
            data_size: data.size,
        });
    }

    pub(super) fn op_submit(&mut self, f: &FileCtx) {
        let range = f.range;
        // Read before the queue is picked: see `submit_vm_check`.
        let g0 = f.gen();
        // Pick a queue and a command buffer of its VM.
        let pick = {
            let p = f.pools();
            let q = match self.rng.pick(&p.queues) {
                Some(&q) if self.rng.chance(19, 20) => Some(q),
                _ => None,
            };
            let cb = q.and_then(|q| {
                let cbs: Vec<&CmdBuf> = p.cmdbufs.iter().filter(|c| c.vm == q.vm).collect();
                self.rng.pick(&cbs).map(|c| {
                    (
                        c.map.clone(),
                        (c.cmd_va, c.cmd_size),
                        (c.data_va, c.data_size),
                    )
                })
            });
            let bound = q.map(|q| p.bound_in(q.vm)).unwrap_or_default();
            (
                q,
                cb,
                bound,
                p.syncs.clone(),
                p.bos.clone(),
                p.queues.is_empty(),
            )
        };
        let (q, cb, mut bound, syncs_pool, bos_pool, no_queues) = pick;
        if let Some(q) = q {
            bound.extend(self.user_ranges(f, q.vm));
        }
        if no_queues && self.rng.chance(3, 4) {
            return self.op_queue_create(f, None);
        }
        if let (Some(q), None) = (q, &cb) {
            if self.rng.chance(3, 4) {
                return self.op_cmdbuf_setup(f, Some(q.vm));
            }
        }
        let queue_id = q.map_or_else(|| gen::handle(&mut self.rng, &[]), |q| q.id);

        // The commands, written into the command buffer.
        let plain_cmd = cb.is_some();
        let (mut cmd_va, mut cmd_size) = match &cb {
            Some((map, cmd, data)) => {
                let ctx = gen::CmdCtx {
                    range,
                    data: *data,
                    cmd: *cmd,
                    bound,
                    allow_hang: self.rng.chance(1, 25),
                };
                let (va, len) = self.write_commands(&ctx, map, *cmd);
                (va, len as u32)
            }
            None => (
                gen::plausible_va(&mut self.rng, range, page()),
                4 * self.rng.range(1, 64) as u32,
            ),
        };
        let mutated = self.rng.chance(1, 12);
        if mutated {
            match self.rng.below(9) {
                0 => cmd_size = 0,
                1 => cmd_size += self.rng.range(1, 3) as u32,
                2 => cmd_size += 4 * self.rng.range(1, 256) as u32,
                3 => cmd_size = 1 << 20,
                4 => cmd_size = (1 << 20) + 4,
                5 => cmd_size = u32::MAX,
                6 => cmd_va += self.rng.range(1, 3),
                7 => cmd_va = gen::wild_va(&mut self.rng, range),
                _ => cmd_va = range.end.wrapping_add(self.rng.below(64) * page()),
            }
        }

        let syncs = self.sync_ops(&syncs_pool, 4, 3);
        let nbos = match self.rng.below(10) {
            0..=5 => 0,
            6..=8 => self.rng.range(1, 4),
            _ => self.rng.range(5, 40),
        };
        let bos: Vec<BoRef> = (0..nbos)
            .map(|_| gen::bo_ref(&mut self.rng, &bos_pool))
            .collect();
        let fl = gen::flags(&mut self.rng, 0);
        let pad = gen::pad32(&mut self.rng);
        let sa = self.array(f, &syncs, 16, gen::sync_op_bad);
        let ba = self.array(f, &bos, 8, gen::bo_ref_bad);
        let mut s = uapi::drm_ferrite_submit {
            queue_id,
            flags: fl.v,
            cmd_va,
            cmd_size,
            pad: pad.v,
            syncs: sa.arr,
            bos: ba.arr,
        };
        let stateless_bad = fl.bad || pad.bad || cmd_size % 4 != 0 || sa.bad || ba.bad;
        // EIO: the queue's VM is unusable (asked before or after).
        let pre = q.and_then(|q| self.pre_state(f, q.vm));
        let ex = Expect {
            must_fail: stateless_bad,
            extra: EIO_OK,
            ..Default::default()
        };
        let (sl, bl) = (sa.layout, ba.layout);
        let describe = || {
            format!(
                " queue {queue_id} ({q:?})\n  syncs {sl:?}: {}\n  bos {bl:?}: {}",
                head(&syncs, 8),
                head(&bos, 8)
            )
        };
        let r = self.ioctl(f.raw(), "SUBMIT", IOCTL_SUBMIT, &mut s, ex, &describe);
        // Nothing but the VM's state can fail a SUBMIT of valid commands
        // with no sync ops or BOs.
        let clean = !stateless_bad && plain_cmd && !mutated && syncs.is_empty() && bos.is_empty();
        if let Some(q) = q {
            self.submit_vm_check(f, q, r, pre == Some(true), clean, g0, &describe);
        }
        if r.is_err() {
            return;
        }
        let syncs: Vec<SyncOp> = syncs
            .iter()
            .map(|s| gen::as_kernel_sees(s, sa.layout.stride))
            .collect();
        f.pools().signalled(&syncs);
        // Sometimes wait a little for the job, or read the queue's state.
        if let Some(sig) = syncs.iter().find(|s| s.flags & SIGNAL != 0) {
            if self.rng.chance(3, 10) {
                self.op_sync_wait(f, Some((sig.handle, sig.point)));
            }
        }
        if self.rng.chance(1, 10) {
            self.op_queue_state(f, Some(queue_id));
        }
    }
}
