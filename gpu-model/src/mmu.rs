// SPDX-License-Identifier: GPL-2.0
//! The device MMU: AArch64 LPAE stage-1 page-table walks (4 KiB granule,
//! up to 48-bit VA, 2 MiB and 1 GiB blocks) and a TLB that keeps
//! translations until they are invalidated. Leaves whose output address
//! lies in the null aperture (`[1 << 47, 1 << 48)`) translate to no
//! memory: see [`NULL_APERTURE`].

use std::collections::VecDeque;

use crate::fxhash::FxHashMap;

use crate::regs::fault;

/// Reads descriptors from bus addresses (the walker bypasses the cache).
pub trait PhysRead {
    fn read_u64(&self, pa: u64) -> Option<u64>;
}

/// Why a translation failed (`AS_FAULTSTATUS.TYPE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// No valid descriptor maps the address.
    Translation,
    /// The descriptor forbids the access (write to read-only, command
    /// fetch from no-execute).
    Permission,
    /// The address is wider than the slot's VA size, or a descriptor
    /// points beyond the device's DMA address width (a table descriptor
    /// into the null aperture among them).
    AddressSize,
    /// A descriptor or the data lies outside guest memory.
    Bus,
}

impl FaultKind {
    pub fn code(self) -> u32 {
        match self {
            FaultKind::Translation => fault::TRANSLATION,
            FaultKind::Permission => fault::PERMISSION,
            FaultKind::AddressSize => fault::ADDRESS_SIZE,
            FaultKind::Bus => fault::BUS,
        }
    }
}

/// The kind of access being translated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    /// Command fetch (ring and indirect buffers).
    Exec,
}

/// One cached translation: a page or block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub va_base: u64,
    pub size: u64,
    pub pa_base: u64,
    pub writable: bool,
    pub executable: bool,
    /// AP[1]: unprivileged (indirect-buffer) accesses are allowed.
    pub user: bool,
}

impl Mapping {
    pub fn pa(&self, va: u64) -> u64 {
        self.pa_base + (va - self.va_base)
    }

    /// The page or block translates into the null aperture: reads of it
    /// return zeros, writes to it are dropped.
    pub fn is_null(&self) -> bool {
        is_null(self.pa_base)
    }

    /// Whether `access` is allowed; `unprivileged` accesses (from an
    /// indirect buffer) need AP[1].
    pub fn permits(&self, access: Access, unprivileged: bool) -> bool {
        if unprivileged && !self.user {
            return false;
        }
        match access {
            Access::Read => true,
            Access::Write => self.writable,
            Access::Exec => self.executable,
        }
    }
}

/// Descriptor bits (VMSAv8-64 stage 1, as io-pgtable-arm writes them).
pub mod desc {
    pub const VALID: u64 = 1 << 0;
    pub const TABLE: u64 = 1 << 1;
    /// AP[2]: read-only.
    pub const AP_RDONLY: u64 = 1 << 7;
    /// AP[1]: accessible to unprivileged accesses (indirect buffers).
    pub const AP_UNPRIV: u64 = 1 << 6;
    pub const AF: u64 = 1 << 10;
    /// XN / UXN. (PXN, bit 53, is ignored by the device.)
    pub const XN: u64 = 1 << 54;
    /// Output address bits 47:12.
    pub const ADDR_MASK: u64 = 0x0000_ffff_ffff_f000;
}

pub const PAGE_SHIFT: u32 = 12;
pub const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;

/// Log2 of the start of the null aperture, and the widest DMA reach of a
/// device that has it (`DMA_ADDR_BITS` reports at most this).
pub const NULL_APERTURE_SHIFT: u32 = 47;
/// The null aperture (`FEATURES.NULL_APERTURE`): leaf output addresses
/// that no memory answers. A translation into it reads zeros and drops
/// writes, without a fault; a table descriptor into it is an address size
/// fault (tables must be memory). It is the upper half of the 48-bit
/// output address space, so a block keeps its alignment when a driver
/// points it at `NULL_APERTURE.start | (va & (NULL_APERTURE.start - 1))`
/// (Vulkan's sparse residency).
pub const NULL_APERTURE: std::ops::Range<u64> = 1 << NULL_APERTURE_SHIFT..1 << 48;

/// Whether bus address `pa` lies in the null aperture. Only leaf output
/// addresses can: the walker makes every other translation land below it.
pub fn is_null(pa: u64) -> bool {
    NULL_APERTURE.contains(&pa)
}

fn level_shift(level: u32) -> u32 {
    PAGE_SHIFT + 9 * (3 - level)
}

/// The level a walk starts at for a VA size (4 KiB granule).
pub fn start_level(va_bits: u32) -> u32 {
    let levels = (va_bits - PAGE_SHIFT).div_ceil(9);
    4 - levels
}

/// Statistics of one walk.
#[derive(Default, Debug, Clone, Copy)]
pub struct WalkStats {
    pub descriptor_reads: u64,
    /// The tables the walk read, root first.
    pub tables: [u64; 4],
    pub ntables: usize,
}

/// Walk the table at `root` for `va`. `va_bits` is the slot's VA size
/// (32..=48), `oas_bits` the device's DMA address width. Tables must lie
/// below both `1 << oas_bits` and the null aperture; a leaf must lie below
/// `1 << oas_bits` or inside the null aperture (whatever `oas_bits`).
pub fn walk(
    mem: &dyn PhysRead,
    root: u64,
    va_bits: u32,
    oas_bits: u32,
    va: u64,
    stats: &mut WalkStats,
) -> Result<Mapping, FaultKind> {
    if !(32..=48).contains(&va_bits) || va >> va_bits != 0 {
        return Err(FaultKind::AddressSize);
    }
    let oas_limit = if oas_bits >= 64 {
        u64::MAX
    } else {
        (1u64 << oas_bits) - 1
    };
    let mut table = root & desc::ADDR_MASK;
    let mut level = start_level(va_bits);
    loop {
        // A table in the null aperture is beyond the device's reach, as
        // any table beyond its DMA address width.
        if table > oas_limit || is_null(table) {
            return Err(FaultKind::AddressSize);
        }
        let shift = level_shift(level);
        let idx = (va >> shift) & 0x1ff;
        if stats.ntables < stats.tables.len() {
            stats.tables[stats.ntables] = table;
            stats.ntables += 1;
        }
        let d = mem.read_u64(table + idx * 8).ok_or(FaultKind::Bus)?;
        stats.descriptor_reads += 1;
        if d & desc::VALID == 0 {
            return Err(FaultKind::Translation);
        }
        let is_table = d & desc::TABLE != 0;
        if level < 3 && is_table {
            table = d & desc::ADDR_MASK;
            level += 1;
            continue;
        }
        // A page at level 3 has TABLE set; a block at level 1 or 2 has it clear.
        let leaf_ok = (level == 3 && is_table) || ((level == 1 || level == 2) && !is_table);
        if !leaf_ok {
            return Err(FaultKind::Translation);
        }
        let size = 1u64 << shift;
        let pa_base = d & desc::ADDR_MASK & !(size - 1);
        // A block is either all in the null aperture or all below it: the
        // aperture is aligned to its size, larger than any block.
        if !is_null(pa_base)
            && pa_base
                .checked_add(size - 1)
                .is_none_or(|end| end > oas_limit)
        {
            return Err(FaultKind::AddressSize);
        }
        return Ok(Mapping {
            va_base: va & !(size - 1),
            size,
            pa_base,
            writable: d & desc::AP_RDONLY == 0,
            executable: d & desc::XN == 0,
            user: d & desc::AP_UNPRIV != 0,
        });
    }
}

/// A bounded TLB shared by all address-space slots. Entries stay until
/// invalidated or evicted, whatever happens to the page tables.
pub struct Tlb {
    /// Bumped by every invalidation, so that cached copies of entries (the
    /// queues' micro-TLBs) know when to drop them.
    pub gen: u64,
    capacity: usize,
    entries: FxHashMap<(usize, u64, u64), Mapping>,
    order: VecDeque<(usize, u64, u64)>,
}

/// The block sizes a TLB lookup tries, smallest first.
const SIZES: [u64; 3] = [PAGE_SIZE, 1 << 21, 1 << 30];

impl Tlb {
    pub fn new(capacity: usize) -> Self {
        Tlb {
            gen: 0,
            capacity,
            entries: FxHashMap::default(),
            order: VecDeque::new(),
        }
    }

    pub fn lookup(&self, slot: usize, va: u64) -> Option<Mapping> {
        SIZES
            .iter()
            .find_map(|&s| self.entries.get(&(slot, va & !(s - 1), s)).copied())
    }

    pub fn insert(&mut self, slot: usize, m: Mapping) {
        let key = (slot, m.va_base, m.size);
        if self.entries.insert(key, m).is_none() {
            self.order.push_back(key);
        }
        while self.entries.len() > self.capacity {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            self.entries.remove(&old);
            self.gen += 1;
        }
    }

    /// Drop the entries of `slot` that overlap `start..end`; returns how many.
    pub fn invalidate_range(&mut self, slot: usize, start: u64, end: u64) -> usize {
        self.gen += 1;
        let before = self.entries.len();
        self.entries.retain(|&(s, base, size), _| {
            s != slot || base.saturating_add(size) <= start || base >= end
        });
        self.order.retain(|k| self.entries.contains_key(k));
        before - self.entries.len()
    }

    /// Drop every entry of `slot`.
    pub fn invalidate_slot(&mut self, slot: usize) -> usize {
        self.invalidate_range(slot, 0, u64::MAX)
    }

    pub fn clear(&mut self) {
        self.gen += 1;
        self.entries.clear();
        self.order.clear();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    /// Guest memory for walker tests: a sparse map of 8-byte words.
    #[derive(Default)]
    pub struct FakeMem {
        pub words: RefCell<BTreeMap<u64, u64>>,
        pub limit: u64,
    }

    impl PhysRead for FakeMem {
        fn read_u64(&self, pa: u64) -> Option<u64> {
            if pa >= self.limit {
                return None;
            }
            Some(self.words.borrow().get(&pa).copied().unwrap_or(0))
        }
    }

    /// Tables in a [`FakeMem`], encoded by the test bed's encoder,
    /// allocating table pages from `next`.
    pub struct Builder<'a> {
        pub mem: &'a FakeMem,
        pub root: u64,
        pub next: u64,
        pub va_bits: u32,
    }

    impl crate::testbed::TableMem for Builder<'_> {
        fn read_desc(&mut self, pa: u64) -> u64 {
            self.mem.read_u64(pa).unwrap()
        }

        fn write_desc(&mut self, pa: u64, desc: u64) {
            self.mem.words.borrow_mut().insert(pa, desc);
        }

        fn alloc_table(&mut self) -> u64 {
            let p = self.next;
            self.next += 4096;
            p
        }
    }

    impl<'a> Builder<'a> {
        /// Tables rooted at `root`, further tables allocated after it.
        pub fn new(mem: &'a FakeMem, root: u64, va_bits: u32) -> Self {
            Builder {
                mem,
                root,
                next: root + 4096,
                va_bits,
            }
        }

        /// Map `va` -> `pa` with a leaf at `leaf_level` (3 page, 2 = 2M, 1 = 1G).
        pub fn map(&mut self, va: u64, pa: u64, leaf_level: u32, ro: bool, xn: bool) {
            let (root, va_bits) = (self.root, self.va_bits);
            crate::testbed::encode_map(self, root, va_bits, va, pa, leaf_level, ro, xn);
        }
    }

    fn setup() -> (FakeMem, u64) {
        let mem = FakeMem {
            limit: 1 << 40,
            ..Default::default()
        };
        (mem, 0x10_0000)
    }

    #[test]
    fn start_levels() {
        assert_eq!(start_level(48), 0);
        assert_eq!(start_level(40), 0);
        assert_eq!(start_level(39), 1);
        assert_eq!(start_level(32), 1);
    }

    #[test]
    fn walks_pages_and_blocks() {
        let (mem, root) = setup();
        let mut b = Builder::new(&mem, root, 48);
        b.map(0x7fff_1234_5000, 0x8000_3000, 3, false, false);
        b.map(0x0000_4020_0000, 0x4060_0000, 2, true, false);
        b.map(0x0080_4000_0000, 0xc000_0000, 1, false, true);
        let mut st = WalkStats::default();
        let m = walk(&mem, root, 48, 48, 0x7fff_1234_5abc, &mut st).unwrap();
        assert_eq!(m.pa(0x7fff_1234_5abc), 0x8000_3abc);
        assert_eq!((m.size, m.writable, m.executable), (4096, true, true));
        assert_eq!(st.descriptor_reads, 4);
        let m = walk(&mem, root, 48, 48, 0x4020_1234 + 0x10_0000, &mut st).unwrap();
        assert_eq!((m.size, m.writable), (2 << 20, false));
        assert_eq!(m.pa(0x4030_1234), 0x4070_1234);
        let m = walk(&mem, root, 48, 48, 0x0080_4abc_def0, &mut st).unwrap();
        assert_eq!((m.size, m.executable), (1 << 30, false));
        assert_eq!(m.pa(0x0080_4abc_def0), 0xcabc_def0);
    }

    #[test]
    fn faults() {
        let (mem, root) = setup();
        let mut b = Builder::new(&mem, root, 48);
        b.map(0x1000, 0x2000, 3, false, false);
        let mut st = WalkStats::default();
        assert_eq!(
            walk(&mem, root, 48, 48, 0x3000, &mut st),
            Err(FaultKind::Translation)
        );
        assert_eq!(
            walk(&mem, root, 48, 48, 1 << 48, &mut st),
            Err(FaultKind::AddressSize)
        );
        assert_eq!(
            walk(&mem, root, 39, 48, 1 << 40, &mut st),
            Err(FaultKind::AddressSize)
        );
        // A page beyond a 32-bit device's reach.
        b.map(0x5000, 0x1_0000_0000, 3, false, false);
        assert_eq!(
            walk(&mem, root, 48, 32, 0x5000, &mut st),
            Err(FaultKind::AddressSize)
        );
        assert!(walk(&mem, root, 48, 33, 0x5000, &mut st).is_ok());
        // A table outside guest memory.
        assert_eq!(
            walk(&mem, 1 << 41, 48, 48, 0x1000, &mut st),
            Err(FaultKind::Bus)
        );
        // A block descriptor at level 0 or a "block" at level 3 is invalid.
        mem.words.borrow_mut().insert(root + 8 * 5, 0x4000_0000 | 1);
        assert_eq!(
            walk(&mem, root, 48, 48, 5 << 39, &mut st),
            Err(FaultKind::Translation)
        );
    }

    #[test]
    fn leaves_into_the_null_aperture_are_null_mappings() {
        let (mem, root) = setup();
        let mut b = Builder::new(&mem, root, 48);
        let null = NULL_APERTURE.start;
        b.map(0x1000, null | 0x1000, 3, false, false);
        b.map(0x20_0000, null | 0x20_0000, 2, false, false);
        b.map(0x4000_0000, null | 0x4000_0000, 1, true, true);
        b.map(0x2000, (null - 1) & !0xfff, 3, false, false);
        let mut st = WalkStats::default();
        // Whatever the device's DMA reach: the aperture is not memory.
        for oas in [32, 47, 48, 64] {
            let m = walk(&mem, root, 48, oas, 0x1abc, &mut st).unwrap();
            assert!(m.is_null() && m.pa(0x1abc) == null | 0x1abc);
            let m = walk(&mem, root, 48, oas, 0x3f_fff8, &mut st).unwrap();
            assert_eq!((m.size, m.is_null()), (2 << 20, true));
            assert_eq!(m.pa(0x3f_fff8), null | 0x3f_fff8);
            let m = walk(&mem, root, 48, oas, 0x7fff_fff8, &mut st).unwrap();
            assert_eq!((m.size, m.is_null(), m.writable), (1 << 30, true, false));
        }
        // The page just below the aperture is memory, within a 47-bit reach.
        let m = walk(&mem, root, 48, 47, 0x2000, &mut st).unwrap();
        assert!(!m.is_null());
        assert_eq!(
            walk(&mem, root, 48, 46, 0x2000, &mut st),
            Err(FaultKind::AddressSize)
        );
    }

    #[test]
    fn tables_in_the_null_aperture_are_address_size_faults() {
        let (mem, root) = setup();
        let mut b = Builder::new(&mem, root, 48);
        b.map(0x1000, 0x9000, 3, false, false);
        let mut st = WalkStats::default();
        // The root.
        for oas in [47, 48, 64] {
            assert_eq!(
                walk(&mem, NULL_APERTURE.start | root, 48, oas, 0x1000, &mut st),
                Err(FaultKind::AddressSize)
            );
        }
        // The level-2 table's descriptor of the level-3 table.
        let t1 = mem.read_u64(root).unwrap() & desc::ADDR_MASK;
        let t2 = mem.read_u64(t1).unwrap() & desc::ADDR_MASK;
        let d = mem.read_u64(t2).unwrap();
        mem.words.borrow_mut().insert(t2, d | NULL_APERTURE.start);
        for oas in [32, 47, 48, 64] {
            st = WalkStats::default();
            assert_eq!(
                walk(&mem, root, 48, oas, 0x1000, &mut st),
                Err(FaultKind::AddressSize)
            );
            assert_eq!(st.descriptor_reads, 3, "the walk stops at the bad table");
        }
    }

    #[test]
    fn va_bits_39_starts_at_level_1() {
        let (mem, root) = setup();
        let mut b = Builder::new(&mem, root, 39);
        b.map(0x40_1234_5000, 0x9000, 3, false, false);
        let mut st = WalkStats::default();
        let m = walk(&mem, root, 39, 48, 0x40_1234_5008, &mut st).unwrap();
        assert_eq!(m.pa(0x40_1234_5008), 0x9008);
        assert_eq!(st.descriptor_reads, 3);
    }

    #[test]
    fn tlb_keeps_stale_entries_until_invalidated() {
        let mut t = Tlb::new(4);
        let m = Mapping {
            va_base: 0x1000,
            size: 4096,
            pa_base: 0xa000,
            writable: true,
            executable: true,
            user: true,
        };
        t.insert(0, m);
        assert_eq!(t.lookup(0, 0x1abc), Some(m));
        assert_eq!(t.lookup(1, 0x1abc), None);
        assert_eq!(t.invalidate_range(0, 0x2000, 0x3000), 0);
        assert_eq!(t.lookup(0, 0x1abc), Some(m));
        assert_eq!(t.invalidate_range(0, 0x1fff, 0x2000), 1);
        assert_eq!(t.lookup(0, 0x1abc), None);
        let blk = Mapping {
            va_base: 0x20_0000,
            size: 2 << 20,
            pa_base: 0x40_0000,
            writable: false,
            executable: true,
            user: true,
        };
        t.insert(2, blk);
        assert_eq!(t.lookup(2, 0x3f_ffff), Some(blk));
        for i in 0..8 {
            t.insert(
                3,
                Mapping {
                    va_base: i << 12,
                    ..m
                },
            );
        }
        assert_eq!(t.len(), 4);
        assert_eq!(t.invalidate_slot(3), 4);
        assert!(t.is_empty());
    }
}
