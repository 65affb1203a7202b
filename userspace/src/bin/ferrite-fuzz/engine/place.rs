// SPDX-License-Identifier: MIT
//! Argument placement: scratch memory, where an ioctl's arguments and
//! arrays are put (valid, short, at a guard page, read-only, in a BO
//! mapping) and what of them the kernel can reach.

use super::*;

/// Scratch memory of a worker: a read/write area for arguments, a guard
/// page after it and a read-only page after that. Short arrays end right
/// at the guard page.
pub(super) struct Scratch {
    pub(super) base: *mut u8,
    pub(super) used: usize,
    pub(super) short_used: bool,
}

pub(super) const SCRATCH_RW: usize = 1 << 20;
/// The end of the read/write area holds short (truncated) arrays.
pub(super) const SHORT_MAX: usize = 256 << 10;

impl Scratch {
    pub(super) fn new() -> Scratch {
        let len = SCRATCH_RW + 2 * page() as usize;
        // SAFETY: a new private anonymous mapping; nothing else is affected.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert!(p != libc::MAP_FAILED, "cannot map scratch memory");
        let p = p.cast::<u8>();
        // SAFETY: both pages lie inside the mapping just created.
        unsafe {
            libc::mprotect(p.add(SCRATCH_RW).cast(), page() as usize, libc::PROT_NONE);
            libc::mprotect(
                p.add(SCRATCH_RW + page() as usize).cast(),
                page() as usize,
                libc::PROT_READ,
            );
        }
        Scratch {
            base: p,
            used: 0,
            short_used: false,
        }
    }

    pub(super) fn reset(&mut self) {
        self.used = 0;
        self.short_used = false;
    }

    pub(super) fn rw_end(&self) -> u64 {
        self.base as u64 + SCRATCH_RW as u64
    }

    pub(super) fn guard(&self) -> u64 {
        self.rw_end()
    }

    pub(super) fn read_only(&self) -> u64 {
        self.rw_end() + page()
    }

    pub(super) fn alloc(&mut self, n: usize) -> Option<*mut u8> {
        let at = self.used.next_multiple_of(8);
        if at + n > SCRATCH_RW - SHORT_MAX {
            return None;
        }
        self.used = at + n;
        // SAFETY: at + n is inside the read/write area.
        Some(unsafe { self.base.add(at) })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped only here.
        unsafe { libc::munmap(self.base.cast(), SCRATCH_RW + 2 * page() as usize) };
    }
}

/// Where an argument was put, and how many bytes of it the kernel can
/// access (for reads: that are mapped; for writes: that are writable).
#[derive(Debug, Clone, Copy)]
pub(super) struct Placed {
    pub(super) ptr: u64,
    pub(super) accessible: u64,
    /// In a BO mapping that other threads or jobs may change.
    pub(super) shared: bool,
}

/// An array argument as passed, and whether the UAPI requires failure
/// because of it.
pub(super) struct Arr {
    pub(super) arr: drm_ferrite_obj_array,
    pub(super) layout: Layout,
    pub(super) bad: bool,
}

impl Worker<'_> {
    pub(super) fn bo_mapping(&mut self, f: &FileCtx, n: usize) -> Option<Arc<MapEnt>> {
        let m = {
            let p = f.pools();
            let fit: Vec<&Arc<MapEnt>> = p.maps.iter().filter(|m| m.map.len() >= n).collect();
            self.rng.pick(&fit).map(|m| (*m).clone())
        }?;
        self.hold.push(m.clone());
        Some(m)
    }

    pub(super) fn place_short(&mut self, bytes: &[u8]) -> Placed {
        if self.scratch.short_used {
            return Placed {
                ptr: self.scratch.guard(),
                accessible: 0,
                shared: false,
            };
        }
        self.scratch.short_used = true;
        let present = if bytes.is_empty() {
            0
        } else {
            self.rng.below(bytes.len().min(SHORT_MAX) as u64) as usize
        };
        let ptr = self.scratch.rw_end() - present as u64;
        // SAFETY: [ptr, ptr + present) is the end of the scratch area.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr as *mut u8, present) };
        Placed {
            ptr,
            accessible: present as u64,
            shared: false,
        }
    }

    pub(super) fn place_valid(&mut self, bytes: &[u8], claimed: u64) -> Placed {
        match self.scratch.alloc(bytes.len()) {
            Some(p) => {
                // SAFETY: `alloc` returned bytes.len() bytes of scratch.
                unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len()) };
                Placed {
                    ptr: p as u64,
                    accessible: claimed,
                    shared: false,
                }
            }
            None => self.place_short(bytes),
        }
    }

    /// Put an input array (the kernel reads `claimed` bytes) as `kind` says.
    pub(super) fn place_in(
        &mut self,
        f: &FileCtx,
        bytes: &[u8],
        claimed: u64,
        kind: Ptr,
    ) -> Placed {
        let kind = match kind {
            Ptr::Wild(_) => kind,
            _ if claimed > bytes.len() as u64 => Ptr::Short,
            k => k,
        };
        match kind {
            Ptr::Wild(p) => Placed {
                ptr: p,
                accessible: 0,
                shared: false,
            },
            Ptr::Short => self.place_short(bytes),
            Ptr::BoMapping => match self.bo_mapping(f, bytes.len()) {
                Some(m) => {
                    m.write(0, bytes);
                    Placed {
                        ptr: m.map.as_ptr() as u64,
                        accessible: claimed,
                        shared: true,
                    }
                }
                None => self.place_valid(bytes, claimed),
            },
            Ptr::Valid | Ptr::ReadOnly => self.place_valid(bytes, claimed),
        }
    }

    /// Memory the kernel writes `n` bytes to, as `kind` says.
    pub(super) fn place_out(&mut self, f: &FileCtx, n: u64, kind: Ptr) -> Placed {
        let wild = |ptr| Placed {
            ptr,
            accessible: 0,
            shared: false,
        };
        match kind {
            Ptr::Wild(p) => wild(p),
            Ptr::ReadOnly => wild(self.scratch.read_only()),
            Ptr::Short => {
                if self.scratch.short_used || n == 0 {
                    return wild(self.scratch.guard());
                }
                self.scratch.short_used = true;
                let present = self.rng.below(n.min(SHORT_MAX as u64));
                Placed {
                    ptr: self.scratch.rw_end() - present,
                    accessible: present,
                    shared: false,
                }
            }
            Ptr::BoMapping => match usize::try_from(n).ok().and_then(|n| self.bo_mapping(f, n)) {
                Some(m) => Placed {
                    ptr: m.map.as_ptr() as u64,
                    accessible: n,
                    shared: true,
                },
                None => self.place_out(f, n, Ptr::Valid),
            },
            Ptr::Valid => match usize::try_from(n).ok().and_then(|n| self.scratch.alloc(n)) {
                Some(p) => Placed {
                    ptr: p as u64,
                    accessible: n,
                    shared: false,
                },
                None => self.place_out(f, n, Ptr::Short),
            },
        }
    }

    /// Encode and place a Ferrite array of `size`-byte elements.
    pub(super) fn array<T: Element>(
        &mut self,
        f: &FileCtx,
        elems: &[T],
        size: u32,
        bad: impl Fn(&T) -> bool,
    ) -> Arr {
        let layout = gen::layout(&mut self.rng, size);
        let (count, absurd) = gen::count(&mut self.rng, elems.len() as u32);
        let bytes = gen::encode(&mut self.rng, elems, layout);
        let claimed = u64::from(count) * u64::from(layout.stride);
        let kind = gen::in_ptr(&mut self.rng);
        let p = self.place_in(f, &bytes, claimed, kind);
        let elems_bad =
            !absurd && count > 0 && elems.iter().any(|e| gen::element_bad(e, layout, &bad));
        Arr {
            arr: drm_ferrite_obj_array {
                count,
                stride: layout.stride,
                array: p.ptr,
            },
            layout,
            bad: !p.shared && (claimed > p.accessible || elems_bad),
        }
    }

    /// A core handle array (u32 each); returns (count, pointer, handles).
    pub(super) fn handle_array(
        &mut self,
        f: &FileCtx,
        live: &[u32],
        max: u64,
    ) -> (u32, u64, Vec<u32>) {
        let n = if self.rng.chance(1, 30) {
            0
        } else {
            self.rng.range(1, max)
        };
        let hs: Vec<u32> = (0..n).map(|_| gen::handle(&mut self.rng, live)).collect();
        let (count, absurd) = gen::count(&mut self.rng, hs.len() as u32);
        // The DRM core allocates the arrays with kmalloc and no
        // __GFP_NOWARN: counts whose arrays exceed 4 MiB WARN in the page
        // allocator (a core issue, not the driver's). Stay below that.
        let count = if absurd { count.min(0x4_0000) } else { count };
        let bytes: Vec<u8> = hs.iter().flat_map(|h| h.to_le_bytes()).collect();
        let kind = gen::in_ptr(&mut self.rng);
        let p = self.place_in(f, &bytes, u64::from(count) * 4, kind);
        (count, p.ptr, hs)
    }

    /// A u64 array of `count` points (placed like an input).
    pub(super) fn point_array(&mut self, f: &FileCtx, points: &[u64], count: u32) -> u64 {
        let bytes: Vec<u8> = points.iter().flat_map(|p| p.to_le_bytes()).collect();
        let kind = gen::in_ptr(&mut self.rng);
        self.place_in(f, &bytes, u64::from(count) * 8, kind).ptr
    }

    /// Between 0 and `max` sync ops, waits and signals.
    pub(super) fn sync_ops(
        &mut self,
        syncs: &[SyncInfo],
        max: u64,
        signal_bias: u64,
    ) -> Vec<SyncOp> {
        let n = match self.rng.below(20) {
            0..=11 => 0,
            12..=16 => 1,
            _ => self.rng.range(2, max),
        };
        (0..n)
            .map(|_| {
                let signal = self.rng.chance(signal_bias, 4);
                gen::sync_op(&mut self.rng, syncs, signal)
            })
            .collect()
    }

    pub(super) fn deadline_ns(&mut self) -> i64 {
        let now = drm::monotonic_ns();
        match self.rng.below(20) {
            0..=15 => now + self.rng.range(0, 50_000_000) as i64,
            16 => 0,
            17 => now - 1_000_000_000,
            18 => -1,
            _ => now + self.rng.range(50_000_000, 100_000_000) as i64,
        }
    }
}
