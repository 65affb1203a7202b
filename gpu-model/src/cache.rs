// SPDX-License-Identifier: GPL-2.0
//! The device cache: write-back, write-allocate, read-allocate, 4 KiB
//! lines keyed by bus address. GPU writes reach memory only when the line
//! is cleaned (a flush) or evicted; GPU reads may return data cached before
//! the CPU changed memory, until the line is invalidated.

use std::collections::{HashMap, VecDeque};

use crate::dma::{DmaError, DmaSpace};

pub const LINE: u64 = 4096;

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
    lines: HashMap<u64, Line>,
    order: VecDeque<u64>,
    pub stats: CacheStats,
}

impl Cache {
    /// A cache of `capacity` lines.
    pub fn new(capacity: usize) -> Self {
        Cache {
            capacity,
            lines: HashMap::new(),
            order: VecDeque::new(),
            stats: CacheStats::default(),
        }
    }

    fn fill(&mut self, mem: &DmaSpace, page: u64) -> Result<&mut Line, DmaError> {
        if !self.lines.contains_key(&page) {
            let mut data = vec![0u8; LINE as usize].into_boxed_slice();
            mem.read(page, &mut data)?;
            self.evict_for_one(mem);
            self.lines.insert(page, Line { data, dirty: false });
            self.order.push_back(page);
        }
        Ok(self.lines.get_mut(&page).expect("line was just inserted"))
    }

    fn evict_for_one(&mut self, mem: &DmaSpace) {
        while self.lines.len() >= self.capacity {
            let Some(old) = self.order.pop_front() else { return };
            if let Some(l) = self.lines.remove(&old) {
                if l.dirty && mem.write(old, &l.data).is_ok() {
                    self.stats.pages_written_back += 1;
                }
            }
        }
    }

    /// Read through the cache.
    pub fn read(&mut self, mem: &DmaSpace, mut pa: u64, buf: &mut [u8]) -> Result<(), DmaError> {
        let mut done = 0;
        while done < buf.len() {
            let page = pa & !(LINE - 1);
            let off = (pa - page) as usize;
            let n = (buf.len() - done).min(LINE as usize - off);
            let line = self.fill(mem, page)?;
            buf[done..done + n].copy_from_slice(&line.data[off..off + n]);
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
            let n = (buf.len() - done).min(LINE as usize - off);
            let line = self.fill(mem, page)?;
            line.data[off..off + n].copy_from_slice(&buf[done..done + n]);
            line.dirty = true;
            done += n;
            pa += n as u64;
        }
        Ok(())
    }

    /// Read the freshest value without allocating: dirty cached data if
    /// any, else memory (used by WAIT, which polls).
    pub fn read_coherent(&mut self, mem: &DmaSpace, pa: u64, buf: &mut [u8]) -> Result<(), DmaError> {
        let page = pa & !(LINE - 1);
        let off = (pa - page) as usize;
        if off + buf.len() <= LINE as usize {
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
        self.lines.clear();
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

    #[test]
    fn writes_reach_memory_only_on_clean() {
        let mem = DmaSpace::default();
        mem.map(0, 1 << 16, &memfd(1 << 16), 0).unwrap();
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
    fn reads_are_stale_until_invalidated() {
        let mem = DmaSpace::default();
        mem.map(0, 1 << 16, &memfd(1 << 16), 0).unwrap();
        let mut c = Cache::new(16);
        let mut r = [0u8; 1];
        c.read(&mem, 0x100, &mut r).unwrap();
        mem.write(0x100, &[7]).unwrap();
        c.read(&mem, 0x100, &mut r).unwrap();
        assert_eq!(r, [0]);
        c.invalidate();
        c.read(&mem, 0x100, &mut r).unwrap();
        assert_eq!(r, [7]);
    }

    #[test]
    fn eviction_writes_back_and_unmapped_is_an_error() {
        let mem = DmaSpace::default();
        mem.map(0, 1 << 16, &memfd(1 << 16), 0).unwrap();
        let mut c = Cache::new(2);
        for p in 0..3u64 {
            c.write(&mem, p * LINE, &[p as u8 + 1]).unwrap();
        }
        let mut m = [0u8; 1];
        mem.read(0, &mut m).unwrap();
        assert_eq!(m, [1]);
        assert!(c.write(&mem, 1 << 20, &[1]).is_err());
    }
}
