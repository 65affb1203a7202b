// SPDX-License-Identifier: MIT
//! Other DRM core ioctls a client uses: VERSION, GET_CAP, SET_CLIENT_CAP,
//! SET_CLIENT_NAME, GEM_CHANGE_HANDLE.

use super::*;

impl Worker<'_> {
    pub(super) fn op_core(&mut self, f: &FileCtx) {
        match self.rng.below(5) {
            0 => {
                let mut lens = [0u64; 3];
                let mut ptrs = [0u64; 3];
                for i in 0..3 {
                    lens[i] = match self.rng.below(6) {
                        0 => 0,
                        1 => self.rng.interesting_u64(),
                        _ => self.rng.range(1, 256),
                    };
                    let kind = gen::out_ptr(&mut self.rng);
                    ptrs[i] = self.place_out(f, lens[i].min(1 << 16), kind).ptr;
                }
                // A huge length with a scratch pointer could let the kernel
                // write past the scratch area: clamp to what was placed.
                for i in 0..3 {
                    if lens[i] > 1 << 16 && ptrs[i] > 0xfff && ptrs[i] < 0x0000_8000_0000_0000 {
                        lens[i] = 1 << 16;
                    }
                }
                let mut v = sys::Version {
                    name_len: lens[0],
                    name: ptrs[0],
                    date_len: lens[1],
                    date: ptrs[1],
                    desc_len: lens[2],
                    desc: ptrs[2],
                    ..Default::default()
                };
                let _ = self.ioctl(
                    f.raw(),
                    "VERSION",
                    sys::DRM_IOCTL_VERSION,
                    &mut v,
                    Expect::default(),
                    &nothing,
                );
            }
            1 => {
                let cap = match self.rng.below(4) {
                    0 => sys::DRM_CAP_PRIME,
                    1 => sys::DRM_CAP_SYNCOBJ,
                    2 => sys::DRM_CAP_SYNCOBJ_TIMELINE,
                    _ => self.rng.interesting_u64(),
                };
                let mut c = sys::Cap {
                    capability: cap,
                    value: self.rng.next_u64(),
                };
                let ok = self
                    .ioctl(
                        f.raw(),
                        "GET_CAP",
                        sys::DRM_IOCTL_GET_CAP,
                        &mut c,
                        Expect::default(),
                        &nothing,
                    )
                    .is_ok();
                if ok
                    && (cap == sys::DRM_CAP_SYNCOBJ || cap == sys::DRM_CAP_SYNCOBJ_TIMELINE)
                    && c.value != 1
                {
                    self.finding(
                        &format!("GET_CAP {cap:#x} = {}, the driver has the feature", c.value),
                        "",
                    );
                }
            }
            2 => {
                let mut c = sys::Cap {
                    capability: self.rng.range(0, 8),
                    value: self.rng.below(3),
                };
                let _ = self.ioctl(
                    f.raw(),
                    "SET_CLIENT_CAP",
                    sys::DRM_IOCTL_SET_CLIENT_CAP,
                    &mut c,
                    Expect::default(),
                    &nothing,
                );
            }
            3 => {
                let names: [&[u8]; 5] = [
                    b"ferrite-fuzz",
                    b"",
                    b"with space",
                    b"\x01\x02",
                    &[b'x'; 80],
                ];
                let name = *self.rng.pick(&names).unwrap();
                let kind = gen::in_ptr(&mut self.rng);
                let p = self.place_in(f, name, name.len() as u64, kind);
                let mut n = sys::SetClientName {
                    name_len: if self.rng.chance(1, 10) {
                        self.rng.interesting_u64()
                    } else {
                        name.len() as u64
                    },
                    name: p.ptr,
                };
                // Lengths past what was placed read beyond it: clamp them
                // for scratch pointers (reads only, but keep them in bounds).
                if n.name_len > name.len() as u64
                    && !p.shared
                    && p.ptr > 0xfff
                    && p.ptr < 0x0000_8000_0000_0000
                {
                    n.name_len = n.name_len.min(64);
                }
                let _ = self.ioctl(
                    f.raw(),
                    "SET_CLIENT_NAME",
                    sys::DRM_IOCTL_SET_CLIENT_NAME,
                    &mut n,
                    Expect::default(),
                    &nothing,
                );
            }
            _ => {
                let handles: Vec<u32> = f.pools().bos.iter().map(|b| b.handle).collect();
                let old = gen::handle(&mut self.rng, &handles);
                let new = self.rng.range(1, 200) as u32;
                let mut c = TwoU32 { a: old, b: new };
                if self
                    .ioctl(
                        f.raw(),
                        "GEM_CHANGE_HANDLE",
                        sys::DRM_IOCTL_GEM_CHANGE_HANDLE,
                        &mut c,
                        Expect::default(),
                        &nothing,
                    )
                    .is_ok()
                {
                    let mut p = f.pools();
                    for b in p.bos.iter_mut().filter(|b| b.handle == old) {
                        b.handle = new;
                    }
                }
            }
        }
    }
}
