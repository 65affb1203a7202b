// SPDX-License-Identifier: GPL-2.0
//! The device cache: write-back, write-allocate, 4 KiB lines keyed by bus
//! address. GPU writes reach memory only when the line is cleaned (a
//! flush) or evicted. Lines stay cached after a clean, so GPU reads of them
//! return what the GPU last wrote even if the CPU changed memory since,
//! until the line is invalidated. Reads of lines not in the cache stream
//! from memory without allocating.

use std::collections::VecDeque;

use crate::dma::{DmaError, DmaSpace};
use crate::fxhash::FxHashMap;

pub const LINE: u64 = 4096;
const LINE_USIZE: usize = LINE as usize;

struct Line {
    data: Box<[u8]>,
    dirty: bool,
}

/// Statistics the device exposes as counters.
#[derive(Default, Debug, Clone, Copy)]
pub struct CacheStats {
    pub pages_written_back: u64,
}

pub struct Cache {
    capacity: usize,
    lines: FxHashMap<u64, Line>,
    order: VecDeque<u64>,
    /// Buffers of dropped lines, reused to avoid allocation.
    pool: Vec<Box<[u8]>>,
    pub stats: CacheStats,
}

impl Cache {
    /// A cache of `capacity` lines.
    pub fn new(capacity: usize) -> Self {
        Cache {
            capacity: capacity.max(1),
            lines: FxHashMap::default(),
            order: VecDeque::new(),
            pool: Vec::new(),
            stats: CacheStats::default(),
        }
    }

    /// The line for `page`, allocated (and filled from memory unless
    /// `whole` says the caller overwrites all of it) if missing.
    fn line(&mut self, mem: &DmaSpace, page: u64, whole: bool) -> Result<&mut Line, DmaError> {
        if !self.lines.contains_key(&page) {
            let mut data = self
                .pool
                .pop()
                .unwrap_or_else(|| vec![0u8; LINE_USIZE].into_boxed_slice());
            if whole {
                // Still check the page exists: a write to nowhere is a bus fault.
                mem.read(page, &mut [0u8; 1])?;
            } else if let Err(e) = mem.read(page, &mut data) {
                self.pool.push(data);
                return Err(e);
            }
            self.evict_for_one(mem);
            self.lines.insert(page, Line { data, dirty: false });
            self.order.push_back(page);
        }
        Ok(self.lines.get_mut(&page).expect("line was just inserted"))
    }

    fn evict_for_one(&mut self, mem: &DmaSpace) {
        while self.lines.len() >= self.capacity {
            let Some(old) = self.order.pop_front() else {
                return;
            };
            if let Some(l) = self.lines.remove(&old) {
                if l.dirty && mem.write(old, &l.data).is_ok() {
                    self.stats.pages_written_back += 1;
                }
                self.pool.push(l.data);
            }
        }
    }

    /// Read: cached lines from the cache, others from memory.
    pub fn read(&mut self, mem: &DmaSpace, mut pa: u64, buf: &mut [u8]) -> Result<(), DmaError> {
        let mut done = 0;
        while done < buf.len() {
            let page = pa & !(LINE - 1);
            let off = (pa - page) as usize;
            let n = (buf.len() - done).min(LINE_USIZE - off);
            match self.lines.get(&page) {
                Some(l) => buf[done..done + n].copy_from_slice(&l.data[off..off + n]),
                None => mem.read(pa, &mut buf[done..done + n])?,
            }
            done += n;
            pa += n as u64;
        }
        Ok(())
    }

    /// Write into the cache (write-allocate).
    pub fn write(&mut self, mem: &DmaSpace, mut pa: u64, buf: &[u8]) -> Result<(), DmaError> {
        let mut done = 0;
        while done < buf.len() {
            let page = pa & !(LINE - 1);
            let off = (pa - page) as usize;
            let n = (buf.len() - done).min(LINE_USIZE - off);
            let line = self.line(mem, page, n == LINE_USIZE)?;
            line.data[off..off + n].copy_from_slice(&buf[done..done + n]);
            line.dirty = true;
            done += n;
            pa += n as u64;
        }
        Ok(())
    }

    /// Copy `n` bytes from bus address `src` to `dst` through the cache,
    /// line by line without an intermediate buffer where possible.
    pub fn copy(
        &mut self,
        mem: &DmaSpace,
        mut dst: u64,
        mut src: u64,
        n: usize,
    ) -> Result<(), DmaError> {
        let mut tmp = [0u8; LINE_USIZE];
        let mut done = 0;
        while done < n {
            let page = dst & !(LINE - 1);
            let off = (dst - page) as usize;
            let k = (n - done).min(LINE_USIZE - off);
            let src_page = src & !(LINE - 1);
            let src_cached = self.lines.contains_key(&src_page)
                || self
                    .lines
                    .contains_key(&((src + k as u64 - 1) & !(LINE - 1)));
            if src_cached {
                self.read(mem, src, &mut tmp[..k])?;
                let line = self.line(mem, page, k == LINE_USIZE)?;
                line.data[off..off + k].copy_from_slice(&tmp[..k]);
                line.dirty = true;
            } else {
                let line = self.line(mem, page, k == LINE_USIZE)?;
                mem.read(src, &mut line.data[off..off + k])?;
                line.dirty = true;
            }
            done += k;
            dst += k as u64;
            src += k as u64;
        }
        Ok(())
    }

    /// Read the freshest value: dirty cached data if any, else memory
    /// (used by WAIT, which polls).
    pub fn read_coherent(
        &mut self,
        mem: &DmaSpace,
        pa: u64,
        buf: &mut [u8],
    ) -> Result<(), DmaError> {
        let page = pa & !(LINE - 1);
        let off = (pa - page) as usize;
        if off + buf.len() <= LINE_USIZE {
            if let Some(l) = self.lines.get(&page) {
                if l.dirty {
                    buf.copy_from_slice(&l.data[off..off + buf.len()]);
                    return Ok(());
                }
            }
        }
        mem.read(pa, buf)
    }

    /// Write dirty lines back to memory, keeping them cached. Returns the
    /// number of pages written.
    pub fn clean(&mut self, mem: &DmaSpace) -> u64 {
        let mut n = 0;
        for (&page, l) in self.lines.iter_mut() {
            if l.dirty {
                // A line whose memory vanished (QEMU unmapped it) is dropped.
                let _ = mem.write(page, &l.data);
                l.dirty = false;
                n += 1;
            }
        }
        self.stats.pages_written_back += n;
        n
    }

    /// Drop every line; dirty data is lost.
    pub fn invalidate(&mut self) {
        for (_, l) in self.lines.drain() {
            if self.pool.len() < self.capacity {
                self.pool.push(l.data);
            }
        }
        self.order.clear();
    }

    pub fn dirty_lines(&self) -> usize {
        self.lines.values().filter(|l| l.dirty).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dma::tests::memfd;

    fn space() -> (DmaSpace, std::fs::File) {
        let mem = DmaSpace::default();
        let f = memfd(1 << 16);
        mem.map(0, 1 << 16, &f, 0).unwrap();
        (mem, f)
    }

    #[test]
    fn writes_reach_memory_only_on_clean() {
        let (mem, _f) = space();
        let mut c = Cache::new(16);
        c.write(&mem, 0x1ffe, &[1, 2, 3, 4]).unwrap();
        let mut m = [0u8; 4];
        mem.read(0x1ffe, &mut m).unwrap();
        assert_eq!(m, [0; 4]);
        let mut r = [0u8; 4];
        c.read(&mem, 0x1ffe, &mut r).unwrap();
        assert_eq!(r, [1, 2, 3, 4]);
        assert_eq!(c.dirty_lines(), 2);
        assert_eq!(c.clean(&mem), 2);
        mem.read(0x1ffe, &mut m).unwrap();
        assert_eq!(m, [1, 2, 3, 4]);
    }

    #[test]
    fn cleaned_lines_are_stale_until_invalidated() {
        let (mem, _f) = space();
        let mut c = Cache::new(16);
        c.write(&mem, 0x100, &[5]).unwrap();
        c.clean(&mem);
        mem.write(0x100, &[7]).unwrap();
        let mut r = [0u8; 1];
        c.read(&mem, 0x100, &mut r).unwrap();
        assert_eq!(r, [5]);
        c.invalidate();
        c.read(&mem, 0x100, &mut r).unwrap();
        assert_eq!(r, [7]);
    }

    #[test]
    fn copy_matches_memmove_semantics_for_disjoint_ranges() {
        let (mem, _f) = space();
        let data: Vec<u8> = (0..0x3000u32).map(|i| (i * 7) as u8).collect();
        mem.write(0x1000, &data).unwrap();
        let mut c = Cache::new(16);
        c.write(&mem, 0x1800, &[0xee]).unwrap(); // one source line cached, dirty
        c.copy(&mem, 0x8003, 0x1001, 0x2ffe).unwrap();
        c.clean(&mem);
        let mut out = vec![0u8; 0x2ffe];
        mem.read(0x8003, &mut out).unwrap();
        let mut want = data[1..0x2fff].to_vec();
        want[0x7ff] = 0xee;
        assert_eq!(out, want);
    }

    #[test]
    fn eviction_writes_back_and_unmapped_is_an_error() {
        let (mem, _f) = space();
        let mut c = Cache::new(2);
        for p in 0..3u64 {
            c.write(&mem, p * LINE, &[p as u8 + 1]).unwrap();
        }
        let mut m = [0u8; 1];
        mem.read(0, &mut m).unwrap();
        assert_eq!(m, [1]);
        assert!(c.write(&mem, 1 << 20, &[1]).is_err());
        assert!(c.write(&mem, 1 << 20, &[0u8; 4096]).is_err());
    }
}
