// SPDX-License-Identifier: MIT
//! Userptrs (DRM_FERRITE_VM_BIND_USERPTR): the process's memory regions,
//! their binds and unbinds, mm operations on them and jobs using them.

use super::*;

/// Read one byte of each page of a readable region (faulting it in).
pub(super) fn read_pages(r: &Region) {
    for off in (0..r.size).step_by(page() as usize) {
        // SAFETY: inside a region mapped readable.
        unsafe { ((r.va + off) as *const u8).read_volatile() };
    }
}

/// Write a word into each page of a writable region.
pub(super) fn write_pages(r: &Region, v: u64) {
    for off in (0..r.size).step_by(page() as usize) {
        // SAFETY: inside a region mapped writable.
        unsafe { ((r.va + off) as *mut u64).write_volatile(v ^ off) };
    }
}
/// A userptr binding of (part of) a region.
#[derive(Debug, Clone)]
pub(super) struct UBinding {
    /// The file it was made through (its explicit VMs die with it).
    pub(super) file: Weak<FileCtx>,
    /// Its device: the process VM of a device is one for all its files.
    pub(super) dev: usize,
    pub(super) vm: u32,
    pub(super) va: u64,
    pub(super) size: u64,
    pub(super) readonly: bool,
}

impl UBinding {
    /// Whether it is in `vm` as `f` names it.
    pub(super) fn in_vm(&self, f: &FileCtx, vm: u32) -> bool {
        self.vm == vm
            && if vm == uapi::DRM_FERRITE_VM_PROCESS {
                self.dev == f.dev
            } else {
                std::ptr::eq(self.file.as_ptr(), f)
            }
    }

    pub(super) fn overlaps(&self, va: u64, size: u64) -> bool {
        self.va < va.saturating_add(size) && va < self.va + self.size
    }
}

/// A region of the process's memory for userptr binds.
#[derive(Debug)]
pub(super) struct Region {
    pub(super) kind: MemKind,
    pub(super) va: u64,
    pub(super) size: u64,
    /// Where in the userptr file a file-backed region starts.
    pub(super) file_off: u64,
    /// Its protection (PROT_*), while mapped.
    pub(super) prot: i32,
    /// False once munmapped: its addresses are then never touched or bound
    /// again; it stays listed until its bindings are gone.
    pub(super) mapped: bool,
    /// A writable binding of it was forgotten (its file closed) and may
    /// still be registered in a VM that lives on.
    pub(super) lost_writable: bool,
    pub(super) bindings: Vec<UBinding>,
    /// The process that made it (a forked child leaves its parent's alone).
    pub(super) owner: u32,
}

impl Region {
    /// Whether a writable userptr may still be registered on it: then it is
    /// never munmapped (the userptr would map whatever the process puts at
    /// those addresses next, writable), but its pages are replaced by a
    /// PROT_NONE mapping, which keeps the addresses.
    pub(super) fn maybe_bound_writable(&self) -> bool {
        self.lost_writable || self.bindings.iter().any(|b| !b.readonly)
    }
}

/// The userptr regions of a process and the file the file-backed ones map.
#[derive(Default)]
pub(super) struct UserMem {
    pub(super) regions: Vec<Region>,
    /// Regions a worker has taken out of `regions` (or is making).
    pub(super) out: usize,
    /// A sealed memfd of [`gen::USER_FILE_SIZE`] bytes of
    /// [`gen::user_file_byte`], and the process that made it.
    pub(super) file: Option<(OwnedFd, u32)>,
    pub(super) file_failed: bool,
}

impl UserMem {
    /// Forget the bindings made through closed files and the munmapped
    /// regions without bindings.
    pub(super) fn prune(&mut self) {
        for r in &mut self.regions {
            r.lost_writable |= r
                .bindings
                .iter()
                .any(|b| !b.readonly && b.file.strong_count() == 0);
            r.bindings.retain(|b| b.file.strong_count() > 0);
        }
        self.regions.retain(|r| r.mapped || !r.bindings.is_empty());
    }

    pub(super) fn owned_by(&self, pid: u32) -> usize {
        self.regions.iter().filter(|r| r.owner == pid).count()
    }
}

impl Drop for UserMem {
    /// Runs after the files are closed (the field comes last in [`Env`]),
    /// so no job can start on these addresses once they are given back.
    fn drop(&mut self) {
        let me = std::process::id();
        for r in self.regions.iter().filter(|r| r.owner == me && r.mapped) {
            // SAFETY: a region this process mapped and still has mapped;
            // nothing refers to its memory any more.
            unsafe { libc::munmap(r.va as *mut libc::c_void, r.size as usize) };
        }
    }
}

/// Read `len` bytes of the userptr file at `off` and compare them with
/// what was written; a description of the first difference.
pub(super) fn user_file_diff(fd: RawFd, off: u64, len: u64) -> Option<String> {
    let mut buf = vec![0u8; len as usize];
    let mut got = 0usize;
    while got < buf.len() {
        // SAFETY: reading into the rest of our own buffer.
        let n = unsafe {
            libc::pread(
                fd,
                buf[got..].as_mut_ptr().cast(),
                buf.len() - got,
                (off + got as u64) as libc::off_t,
            )
        };
        if n <= 0 {
            return Some(format!(
                "reading the userptr file at {:#x} failed: {}",
                off + got as u64,
                std::io::Error::last_os_error()
            ));
        }
        got += n as usize;
    }
    let i = (0..buf.len()).find(|&i| buf[i] != gen::user_file_byte(off + i as u64))?;
    let at = off + i as u64;
    Some(format!(
        "the read-only userptr file changed: byte {at:#x} is {:#04x}, was written {:#04x}",
        buf[i],
        gen::user_file_byte(at)
    ))
}

/// The sealed memfd the file-backed regions map: written once, then no
/// write, shrink or growth possible, so only the kernel can change it.
pub(super) fn make_user_file() -> std::io::Result<OwnedFd> {
    // SAFETY: a new memfd; the name is a valid C string.
    let fd = unsafe {
        libc::memfd_create(
            c"ferrite-fuzz-userptr".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the descriptor was just created and is ours.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let data: Vec<u8> = (0..gen::USER_FILE_SIZE).map(gen::user_file_byte).collect();
    let mut done = 0usize;
    while done < data.len() {
        // SAFETY: writing from our own buffer.
        let n = unsafe {
            libc::pwrite(
                fd.as_raw_fd(),
                data[done..].as_ptr().cast(),
                data.len() - done,
                done as libc::off_t,
            )
        };
        if n <= 0 {
            return Err(std::io::Error::last_os_error());
        }
        done += n as usize;
    }
    let seals = libc::F_SEAL_WRITE | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
    // SAFETY: fcntl on our descriptor.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd)
}

impl Worker<'_> {
    /// The (va, size) of this process's userptr bindings in `vm` as `f`
    /// names it (the ranges of regions no worker has taken out).
    pub(super) fn user_ranges(&self, f: &FileCtx, vm: u32) -> Vec<(u64, u64)> {
        let me = self.pid;
        let u = self.env.user();
        u.regions
            .iter()
            .filter(|r| r.owner == me)
            .flat_map(|r| r.bindings.iter())
            .filter(|b| b.file.strong_count() > 0 && b.in_vm(f, vm))
            .map(|b| (b.va, b.size))
            .collect()
    }

    /// VM `vm` of `f` was destroyed: its userptrs went with it.
    pub(super) fn forget_vm(&self, f: &FileCtx, vm: u32) {
        if vm == PVM {
            return;
        }
        let mut u = self.env.user();
        for r in &mut u.regions {
            r.bindings.retain(|b| !b.in_vm(f, vm));
        }
    }

    /// With probability `num / den`, take one of this process's regions
    /// that `ok` accepts out of the list, so that no other thread works on
    /// it; give it back with [`Self::put_region`].
    pub(super) fn take_region(
        &mut self,
        ok: impl Fn(&Region) -> bool,
        num: u64,
        den: u64,
    ) -> Option<Region> {
        let env = self.env;
        let me = self.pid;
        let mut u = env.user();
        u.prune();
        let idx: Vec<usize> = (0..u.regions.len())
            .filter(|&i| u.regions[i].owner == me && ok(&u.regions[i]))
            .collect();
        if idx.is_empty() || !self.rng.chance(num, den) {
            return None;
        }
        let i = idx[self.rng.index(idx.len())];
        u.out += 1;
        Some(u.regions.swap_remove(i))
    }

    /// Give back a region taken out (or made); one munmapped and no longer
    /// bound anywhere is forgotten.
    pub(super) fn put_region(&mut self, r: Region) {
        let mut u = self.env.user();
        u.out = u.out.saturating_sub(1);
        if r.mapped || !r.bindings.is_empty() {
            u.regions.push(r);
        }
    }

    /// A new region, if the process has fewer than the most it keeps.
    pub(super) fn new_region(&mut self) -> Option<Region> {
        {
            let mut u = self.env.user();
            if u.owned_by(self.pid) + u.out >= gen::MAX_USER_REGIONS {
                return None;
            }
            u.out += 1;
        }
        let kind = gen::mem_kind(&mut self.rng);
        let size = gen::user_region_size(&mut self.rng);
        let r = self.map_region(kind, size);
        if r.is_none() {
            let mut u = self.env.user();
            u.out = u.out.saturating_sub(1);
        }
        r
    }

    /// The descriptor of the process's sealed userptr file, made on first
    /// use.
    pub(super) fn user_file(&mut self) -> Option<RawFd> {
        let made = {
            let mut u = self.env.user();
            if let Some((fd, _)) = &u.file {
                return Some(fd.as_raw_fd());
            }
            if u.file_failed {
                return None;
            }
            match make_user_file() {
                Ok(fd) => {
                    let raw = fd.as_raw_fd();
                    u.file = Some((fd, self.pid));
                    Ok(raw)
                }
                Err(e) => {
                    u.file_failed = true;
                    Err(e)
                }
            }
        };
        match made {
            Ok(fd) => Some(fd),
            Err(e) => {
                self.finding(&format!("cannot make the userptr file (memfd): {e}"), "");
                None
            }
        }
    }

    /// Count a libc call on a region (`ret` 0, or -1 with errno) and check
    /// it: on the process's own memory only ENOMEM may happen.
    pub(super) fn region_call(&mut self, name: &'static str, ret: i32, r: &Region) -> bool {
        let res = if ret == 0 {
            Ok(0)
        } else {
            Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
        };
        self.count_call();
        let ex = Expect {
            only: Some(ENOMEM_ONLY),
            ..Default::default()
        };
        let what = format!(
            " userptr region {:?} at {:#x}+{:#x} prot {:#x}",
            r.kind, r.va, r.size, r.prot
        );
        self.check(name, res, ex, &|| what.clone());
        ret == 0
    }

    /// Map a region of `kind` and put its pages in the state the kind
    /// says.
    pub(super) fn map_region(&mut self, kind: MemKind, size: u64) -> Option<Region> {
        let file = if kind.is_file() {
            Some(self.user_file()?)
        } else {
            None
        };
        let file_off = match file {
            Some(_) => page() * self.rng.below((gen::USER_FILE_SIZE - size) / page() + 1),
            None => 0,
        };
        let prot = match kind {
            MemKind::ZeroPage | MemKind::FileShared | MemKind::FilePrivate => libc::PROT_READ,
            _ => libc::PROT_READ | libc::PROT_WRITE,
        };
        let flags = match kind {
            MemKind::FileShared => libc::MAP_SHARED,
            MemKind::FilePrivate => libc::MAP_PRIVATE,
            _ => libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
        };
        // SAFETY: a new mapping at an address the kernel picks; nothing
        // existing is replaced (no MAP_FIXED).
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size as usize,
                prot,
                flags,
                file.unwrap_or(-1),
                file_off as libc::off_t,
            )
        };
        let mut r = Region {
            kind,
            va: p as u64,
            size,
            file_off,
            prot,
            mapped: p != libc::MAP_FAILED,
            lost_writable: false,
            bindings: Vec::new(),
            owner: self.pid,
        };
        if !self.region_call("mmap", if r.mapped { 0 } else { -1 }, &r) {
            return None;
        }
        match kind {
            // Read faults on never-written anonymous memory: the zero page.
            MemKind::ZeroPage => read_pages(&r),
            MemKind::AnonRw => write_pages(&r, self.rng.next_u64()),
            MemKind::AnonRo => {
                write_pages(&r, self.rng.next_u64());
                // SAFETY: the region just mapped.
                let ret = unsafe { libc::mprotect(p, size as usize, libc::PROT_READ) };
                if self.region_call("mprotect", ret, &r) {
                    r.prot = libc::PROT_READ;
                } else {
                    self.region_reserve(&mut r);
                }
            }
            MemKind::FileShared | MemKind::FilePrivate if self.rng.chance(1, 2) => read_pages(&r),
            _ => {}
        }
        Some(r)
    }

    /// Replace a region's pages as munmap would, but keep its addresses
    /// (a fresh PROT_NONE anonymous mapping over them): what a region on
    /// which writable userptrs may still be registered gets instead of a
    /// munmap. If even that fails, the region is given up (never touched
    /// or bound again).
    pub(super) fn region_reserve(&mut self, r: &mut Region) {
        let va = r.va as *mut libc::c_void;
        // SAFETY: MAP_FIXED over exactly this region, which only this
        // worker uses now.
        let p = unsafe {
            libc::mmap(
                va,
                r.size as usize,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if self.region_call("mmap", if p == va { 0 } else { -1 }, r) {
            r.prot = libc::PROT_NONE;
            r.kind = MemKind::AnonUntouched;
            r.file_off = 0;
        } else {
            r.mapped = false;
        }
    }

    /// The shared zero page still reads zeros: check a new read-only
    /// anonymous page.
    pub(super) fn check_zero_page(&mut self, after: &str) {
        let len = page() as usize;
        // SAFETY: a new private anonymous page at an address the kernel
        // picks.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return;
        }
        let words = p.cast::<u64>().cast_const();
        // SAFETY: reading inside the page just mapped readable.
        let bad = (0..len / 8).find_map(|i| match unsafe { words.add(i).read_volatile() } {
            0 => None,
            v => Some((i * 8, v)),
        });
        // SAFETY: the page mapped above.
        unsafe { libc::munmap(p, len) };
        if let Some((at, v)) = bad {
            self.finding(
                &format!(
                    "the shared zero page is not zero after {after}: a new read-only \
                     anonymous page has {v:#x} at {at:#x}"
                ),
                "",
            );
        }
    }

    /// VM_BIND with the single operation `o` and no sync ops.
    pub(super) fn vm_bind_one(
        &mut self,
        fd: RawFd,
        vm: u32,
        o: BindOp,
        ex: Expect,
    ) -> Result<i32, i32> {
        let bytes = o.to_bytes();
        let p = self.place_valid(&bytes, bytes.len() as u64);
        let mut b = uapi::drm_ferrite_vm_bind {
            vm_id: vm,
            flags: 0,
            ops: drm_ferrite_obj_array {
                count: 1,
                stride: bytes.len() as u32,
                array: p.ptr,
            },
            syncs: drm_ferrite_obj_array::default(),
        };
        self.ioctl(fd, "VM_BIND_USERPTR", IOCTL_VM_BIND, &mut b, ex, &|| {
            format!("\n  op {o:?}")
        })
    }

    /// Bind (part of) a region, made now or one of the process's, on the
    /// process VM or an explicit VM of `f`: read-only or not, as the
    /// memory allows, and now and then writable where it must fail.
    pub(super) fn op_userptr_bind(&mut self, fa: &Arc<FileCtx>) {
        let f = &**fa;
        let vm = {
            let p = f.pools();
            match self.rng.pick(&p.vms) {
                Some(&v) if self.rng.chance(1, 4) => v,
                _ => PVM,
            }
        };
        let r = match self.take_region(|r| r.mapped, 3, 4) {
            Some(r) => Some(r),
            None => self.new_region(),
        };
        let Some(mut r) = r else { return };
        let (va, size) = gen::user_bind_range(&mut self.rng, r.va, r.size);
        let fl = gen::user_bind_flags(
            &mut self.rng,
            r.prot & libc::PROT_READ != 0,
            r.prot & libc::PROT_WRITE != 0,
        );
        let pvm = vm == PVM;
        let ex = if !f.range.allows(va, size) {
            Expect {
                must_fail: true,
                only: Some(UP_RANGE),
                ..Default::default()
            }
        } else {
            Expect {
                // An overlap is not certain even in the process VM: the
                // generic VM_BIND ops (and other threads of the process,
                // which share its VM) may have unmapped the userptr since.
                must_fail: fl.bad,
                only: Some(match (pvm, fl.bad) {
                    (true, true) => UP_FAIL_PVM,
                    (true, false) => UP_MAP_PVM,
                    (false, true) => UP_FAIL,
                    (false, false) => UP_MAP,
                }),
                ..Default::default()
            }
        };
        let o = BindOp {
            op: MAP,
            flags: fl.v,
            va,
            size,
            ..Default::default()
        };
        let g0 = f.gen();
        let res = self.vm_bind_one(f.raw(), vm, o, ex);
        if res == Err(libc::EIO) {
            self.bind_eio(f, vm, g0, "VM_BIND_USERPTR", &|| {
                format!(" vm {vm} op {o:?}")
            });
        }
        if res.is_ok() {
            let readonly = fl.v & uapi::DRM_FERRITE_VM_BIND_READONLY != 0;
            r.bindings
                .retain(|b| !(b.in_vm(f, vm) && b.overlaps(va, size)));
            r.bindings.push(UBinding {
                file: Arc::downgrade(fa),
                dev: f.dev,
                vm,
                va,
                size,
                readonly,
            });
        }
        self.put_region(r);
    }

    /// Unbind a userptr: all of it, which must work, or part of it, which
    /// must fail with EINVAL. After a read-only anonymous one the zero page
    /// must still be zeros, after a file-backed one the file unchanged.
    pub(super) fn op_userptr_unbind(&mut self) {
        let Some(mut r) = self.take_region(|r| !r.bindings.is_empty(), 1, 1) else {
            return;
        };
        let i = self.rng.index(r.bindings.len());
        let b = r.bindings[i].clone();
        let Some(bf) = b.file.upgrade() else {
            r.lost_writable |= !b.readonly;
            r.bindings.swap_remove(i);
            return self.put_region(r);
        };
        let partial = if self.rng.chance(1, 3) {
            gen::partial_range(&mut self.rng, b.va, b.size)
        } else {
            None
        };
        let (va, size) = partial.unwrap_or((b.va, b.size));
        let pvm = b.vm == PVM;
        let ex = Expect {
            // Not certain either: a generic UNMAP may have removed the
            // whole userptr behind the model's back, and then a "partial"
            // unmap covers nothing and succeeds.
            must_fail: false,
            only: Some(match (partial.is_some(), pvm) {
                (true, true) => UP_PARTIAL_PVM,
                (true, false) => UP_PARTIAL,
                (false, true) => UP_UNMAP_PVM,
                (false, false) => UP_UNMAP,
            }),
            ..Default::default()
        };
        let o = BindOp {
            op: UNMAP,
            va,
            size,
            ..Default::default()
        };
        let res = self.vm_bind_one(bf.raw(), b.vm, o, ex);
        drop(bf);
        // Gone: unbound, or (explicit VMs) the VM with it.
        if res.is_ok() || res == Err(libc::ENOENT) {
            r.bindings.swap_remove(i);
        }
        if res.is_ok() && partial.is_none() {
            if b.readonly && !r.kind.is_file() {
                self.check_zero_page("unbinding a read-only anonymous userptr");
            }
            if r.kind.is_file() {
                let fd = self.env.user().file.as_ref().map(|f| f.0.as_raw_fd());
                let off = r.file_off + (b.va - r.va);
                if let Some(d) = fd.and_then(|fd| user_file_diff(fd, off, b.size)) {
                    self.finding(
                        &format!(
                            "after unbinding a userptr of the file at {off:#x}+{:#x}: {d}",
                            b.size
                        ),
                        "",
                    );
                }
            }
        }
        self.put_region(r);
    }

    /// Change a region under its userptrs: munmap it, mprotect it,
    /// MADV_DONTNEED part of it, or read or write it from the CPU.
    pub(super) fn op_userptr_mm(&mut self) {
        let Some(mut r) = self.take_region(|r| r.mapped, 1, 1) else {
            return;
        };
        let (va, len) = (r.va as *mut libc::c_void, r.size as usize);
        match self.rng.below(12) {
            0..=2 if r.maybe_bound_writable() => self.region_reserve(&mut r),
            0..=2 => {
                // SAFETY: the region, which only this worker uses now; its
                // addresses are never touched again.
                let ret = unsafe { libc::munmap(va, len) };
                if self.region_call("munmap", ret, &r) {
                    r.mapped = false;
                }
            }
            3..=5 => {
                const NONE: i32 = libc::PROT_NONE;
                const RO: i32 = libc::PROT_READ;
                const RW: i32 = libc::PROT_READ | libc::PROT_WRITE;
                // The sealed file cannot be mapped shared and writable.
                let choices: &[i32] = if r.kind == MemKind::FileShared {
                    &[NONE, RO]
                } else {
                    &[NONE, RO, RW]
                };
                let prot = *self.rng.pick(choices).unwrap();
                // SAFETY: the region, which only this worker uses now.
                let ret = unsafe { libc::mprotect(va, len, prot) };
                if self.region_call("mprotect", ret, &r) {
                    r.prot = prot;
                } else {
                    // Maybe changed in part: start again from known state.
                    self.region_reserve(&mut r);
                }
            }
            6..=7 => {
                let (at, n) = gen::user_bind_range(&mut self.rng, r.va, r.size);
                // SAFETY: part of the region, which only this worker uses
                // now; dropping its pages is what is tested.
                let ret = unsafe {
                    libc::madvise(at as *mut libc::c_void, n as usize, libc::MADV_DONTNEED)
                };
                self.region_call("madvise", ret, &r);
            }
            8..=9 => {
                if r.prot & libc::PROT_READ != 0 {
                    read_pages(&r);
                }
            }
            _ => {
                if r.prot & libc::PROT_WRITE != 0 {
                    let off = 8 * self.rng.below(r.size / 8);
                    let v = self.rng.next_u64();
                    // SAFETY: inside the region, which is writable.
                    unsafe { ((r.va + off) as *mut u64).write_volatile(v) };
                }
            }
        }
        self.put_region(r);
    }

    /// A job on a userptr bound in a VM of `f`: reads of it and sometimes
    /// writes to it (which fault where it is read-only); then maybe a wait
    /// for it, and the zero-page check after a write to a read-only
    /// anonymous one.
    pub(super) fn op_userptr_job(&mut self, f: &FileCtx) {
        let me = self.pid;
        let cands: Vec<(u32, u64, u64, bool, bool)> = {
            let u = self.env.user();
            u.regions
                .iter()
                .filter(|r| r.owner == me)
                .flat_map(|r| r.bindings.iter().map(move |b| (r, b)))
                .filter(|(_, b)| b.file.strong_count() > 0 && b.in_vm(f, b.vm))
                .map(|(r, b)| (b.vm, b.va, b.size, b.readonly, !r.kind.is_file()))
                .collect()
        };
        let Some(&(vm, va, size, readonly, anon)) = self.rng.pick(&cands) else {
            return;
        };
        // Read before the queue is picked: see `submit_vm_check`.
        let g0 = f.gen();
        let (queue, cb, syncs) = {
            let p = f.pools();
            let qs: Vec<u32> = p
                .queues
                .iter()
                .filter(|q| q.vm == vm)
                .map(|q| q.id)
                .collect();
            let q = self.rng.pick(&qs).copied();
            let cbs: Vec<&CmdBuf> = p.cmdbufs.iter().filter(|c| c.vm == vm).collect();
            let cb = self.rng.pick(&cbs).map(|c| {
                (
                    c.map.clone(),
                    (c.cmd_va, c.cmd_size),
                    (c.data_va, c.data_size),
                )
            });
            (q, cb, p.sync_handles())
        };
        let Some(queue_id) = queue else {
            return self.op_queue_create(f, Some(vm));
        };
        let Some((map, cmd, data)) = cb else {
            return self.op_cmdbuf_setup(f, Some(vm));
        };
        let write = self.rng.chance(1, 3);
        let dw = gen::userptr_commands(&mut self.rng, (va, size), data, write);
        let len = dw.len() as u64 * 4;
        if len > cmd.1 {
            return;
        }
        let off = 64 * self.rng.below((cmd.1 - len) / 64 + 1);
        let bytes: Vec<u8> = dw.iter().flat_map(|d| d.to_le_bytes()).collect();
        map.write(off as usize, &bytes);
        let sig = match self.rng.pick(&syncs) {
            Some(&h) if self.rng.chance(2, 3) => Some(h),
            _ => None,
        };
        let so = SyncOp {
            flags: SIGNAL,
            handle: sig.unwrap_or(0),
            point: 0,
        };
        let sb = so.to_bytes();
        let sp = self.place_valid(&sb, sb.len() as u64);
        let mut s = uapi::drm_ferrite_submit {
            queue_id,
            flags: 0,
            cmd_va: cmd.0 + off,
            cmd_size: len as u32,
            pad: 0,
            syncs: drm_ferrite_obj_array {
                count: u32::from(sig.is_some()),
                stride: sb.len() as u32,
                array: sp.ptr,
            },
            bos: drm_ferrite_obj_array::default(),
        };
        let pre = self.pre_state(f, vm);
        let ex = Expect {
            extra: EIO_OK,
            ..Default::default()
        };
        let describe = || format!(" userptr job on {va:#x}+{size:#x} in vm {vm} (writes {write})");
        let r = self.ioctl(f.raw(), "SUBMIT", IOCTL_SUBMIT, &mut s, ex, &describe);
        let q = QueueEnt { id: queue_id, vm };
        self.submit_vm_check(f, q, r, pre == Some(true), false, g0, &describe);
        if r.is_err() {
            return;
        }
        if let Some(h) = sig {
            f.pools().signalled(&[so]);
            if self.rng.chance(1, 2) {
                self.op_sync_wait(f, Some((h, 0)));
            }
        }
        if write && readonly && anon {
            self.check_zero_page("a GPU write to a read-only anonymous userptr");
        }
    }
}
