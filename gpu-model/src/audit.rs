// SPDX-License-Identifier: GPL-2.0
//! The audit of the driver (`FERRITE_MODEL_AUDIT`), a debugging aid that
//! `make test` runs in every boot: the queue engines report, as `audit:`
//! warnings in the log,
//!
//! - a cached translation (TLB or micro-TLB) the page tables no longer
//!   give: the driver changed a mapping without invalidating it, and,
//!   outside a LOCKed range, the device uses a stale entry;
//! - a write into a page a walk read as a page table since the last TLB
//!   invalidation: the driver mapped a page it also uses, or freed, as a
//!   table.
//!
//! Accesses into the null aperture touch no memory: they are not checked.
//!
//! The state is per device ([`crate::bus::State::audit`], under the device
//! lock): host tests run many devices in one process, each with its own
//! tables in its own guest memory, and one device's table pages are
//! nothing to another.

use std::collections::HashSet;

use crate::dma::DmaSpace;
use crate::mmu::{self, Mapping, WalkStats};

/// What the audit of one device remembers.
#[derive(Default)]
pub(crate) struct Audit {
    /// The TLB generation (`Tlb::gen`) `tables` belongs to.
    gen: u64,
    /// The page-table pages the walks of that generation read.
    tables: HashSet<u64>,
}

impl Audit {
    /// The audit, if `FERRITE_MODEL_AUDIT` is set.
    pub fn from_env() -> Option<Audit> {
        std::env::var_os("FERRITE_MODEL_AUDIT").map(|_| Audit::default())
    }

    /// A walk in TLB generation `gen` read the tables `tables`.
    pub fn walked(&mut self, gen: u64, tables: &[u64]) {
        if self.gen != gen {
            self.gen = gen;
            self.tables.clear();
        }
        self.tables.extend(tables.iter().copied());
    }

    /// Whether a write of `len` bytes at bus address `pa`, in TLB
    /// generation `gen`, touches a page a walk of that generation read as
    /// a table.
    pub fn writes_table(&self, gen: u64, pa: u64, len: u64) -> bool {
        self.gen == gen
            && (pa & !0xfff..pa + len.max(1))
                .step_by(4096)
                .any(|p| self.tables.contains(&(p & !0xfff)))
    }
}

/// The translation of `va` the tables at `root` (`va_bits`, `oas` bits of
/// output) give now, if it differs from the cached `m` (in its output
/// address, write or unprivileged permission); `None` if they agree.
pub(crate) fn stale(
    mem: &DmaSpace,
    root: u64,
    va_bits: u32,
    oas: u32,
    va: u64,
    m: &Mapping,
) -> Option<Result<Mapping, mmu::FaultKind>> {
    let mut st = WalkStats::default();
    let fresh = mmu::walk(mem, root, va_bits, oas, va, &mut st);
    let same = match fresh {
        Ok(f) => f.pa(va) == m.pa(va) && f.writable == m.writable && f.user == m.user,
        Err(_) => false,
    };
    (!same).then_some(fresh)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_belong_to_one_generation() {
        let mut a = Audit::default();
        assert!(!a.writes_table(0, 0x1000, 8));
        a.walked(3, &[0x1000, 0x5000]);
        assert!(a.writes_table(3, 0x1ff8, 8));
        assert!(
            a.writes_table(3, 0x4ffc, 8),
            "a write straddling into a table"
        );
        assert!(!a.writes_table(3, 0x2000, 0x1000));
        assert!(!a.writes_table(4, 0x1000, 8), "invalidated since");
        a.walked(4, &[0x2000]);
        assert!(!a.writes_table(4, 0x1000, 8));
        assert!(a.writes_table(4, 0x2000, 0));
    }
}
