// SPDX-License-Identifier: GPL-2.0
//! The model's audit (`FERRITE_MODEL_AUDIT`): accesses into the null
//! aperture touch no memory and are no finding, while stale real
//! translations and writes into page-table pages still are; and each
//! device audits its own tables only.
//!
//! The findings are log lines caught by a process-wide logger: the tests
//! of this binary take turns.

use std::sync::{Mutex, MutexGuard, Once};

use ferrite_gpu_model::regs::*;
use ferrite_gpu_model::testbed::*;

const NULL: u64 = 1 << 47;
const VA: u64 = 0x1_0000_0000;
const NVA: u64 = 0x2_0000_0000;

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Catch;

impl log::Log for Catch {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Warn
    }

    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            LINES.lock().unwrap().push(r.args().to_string());
        }
    }

    fn flush(&self) {}
}

/// Catch the log, and take this binary's turn.
fn catch() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    static LOGGER: Once = Once::new();
    let turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    LOGGER.call_once(|| {
        log::set_logger(&Catch).unwrap();
        log::set_max_level(log::LevelFilter::Warn);
    });
    LINES.lock().unwrap().clear();
    turn
}

/// The audit findings logged since the last call.
fn findings() -> Vec<String> {
    std::mem::take(&mut *LINES.lock().unwrap())
        .into_iter()
        .filter(|l| l.starts_with("audit:"))
        .collect()
}

/// The level-3 table that maps `va` in slot 0.
fn level3_table(g: &Gpu, va: u64) -> u64 {
    let mut table = g.roots[0];
    for lvl in 0..3 {
        let d = g.pread64(table + ((va >> (39 - 9 * lvl)) & 0x1ff) * 8);
        table = d & 0x0000_ffff_ffff_f000;
    }
    table
}

fn ok(g: &Gpu) {
    let st = g.wait_idle(0);
    assert_eq!(
        st & (q_status::ERROR | q_status::FAULTED),
        0,
        "status {st:#x}"
    );
}

#[test]
fn the_audit_ignores_the_null_aperture_and_still_finds_the_rest() {
    let _turn = catch();
    let mut g = Gpu::new();
    g.dev.set_audit(true);
    g.map_range(0, VA, DATA_PA, 0x4000);
    for off in (0..0x4000).step_by(4096) {
        g.map(0, NVA + off, NULL | (NVA + off), 3, false, false);
    }
    g.enable_as(0, false);
    g.setup_queue(0, 0);

    // Null traffic, twice (walks, then TLB hits): no finding.
    for _ in 0..2 {
        g.submit(0, &fill(NVA, 0x4000, 0x1234_5678));
        g.submit(0, &copy(NVA + 0x10, VA, 0x3000));
        g.submit(0, &copy(VA, NVA + 0x20, 0x3000));
        g.submit(0, &checksum(NVA + 0x3ff8, NVA, 0x4000));
        g.submit(0, &write64(NVA + 0xffc, 1, write64::FLUSH | write64::SEQNO));
        ok(&g);
    }
    assert_eq!(findings(), Vec::<String>::new());

    // A stale null translation: NVA now maps real memory in the tables,
    // but the device still uses the null one until the range is flushed.
    // The access touches no memory: no finding.
    g.map(0, NVA, DATA_PA + 0x3000, 3, false, false);
    g.submit(0, &write64(NVA, 7, write64::FLUSH));
    ok(&g);
    assert_eq!(g.pread64(DATA_PA + 0x3000), 0);
    assert_eq!(findings(), Vec::<String>::new());
    g.flush_range(0, NVA, 0x1000);

    // A stale real translation, whose page the tables now send to the
    // null aperture: the device writes memory the driver unmapped.
    g.submit(0, &write64(VA + 0x1000, 1, 0));
    ok(&g);
    g.map(0, VA + 0x1000, NULL | (VA + 0x1000), 3, false, false);
    g.submit(0, &write64(VA + 0x1000, 2, 0));
    ok(&g);
    let f = findings();
    assert!(
        f.len() == 1 && f[0].contains(&format!("va {:#x}", VA + 0x1000)),
        "{f:?}"
    );
    g.flush_range(0, VA + 0x1000, 0x1000);

    // A write into a page-table page the walks read (VA's level-3 table,
    // mapped at VA + 0x2000 by mistake).
    let table = level3_table(&g, VA);
    g.map(0, VA + 0x2000, table, 3, false, false);
    g.flush_range(0, VA + 0x2000, 0x1000);
    g.submit(0, &write64(VA + 0x2000 + 0xff8, 0, 0));
    ok(&g);
    let f = findings();
    assert!(
        f.len() == 1 && f[0].contains(&format!("writes page-table page {:#x}", table + 0xff8)),
        "{f:?}"
    );
}

/// Two devices in one process, each with its guest memory at the same bus
/// addresses: a page one device walked as a table is plain memory to the
/// other. With the audit state shared by the process, the second device's
/// write into that page was a finding (when the two TLBs were in the same
/// generation, as here: each slot was enabled once).
#[test]
fn each_device_audits_its_own_tables() {
    const FAR: u64 = 0x40_0000_0000;
    let _turn = catch();

    // Device a walks the tables of VA and FAR; FAR's, allocated last, lie
    // beyond every table device b allocates.
    let mut a = Gpu::new();
    a.dev.set_audit(true);
    a.map_range(0, VA, DATA_PA, 0x4000);
    a.enable_as(0, false);
    a.setup_queue(0, 0);
    a.map(0, FAR, DATA_PA + 0x8000, 3, false, false);
    a.submit(0, &write64(VA, 1, 0));
    a.submit(0, &write64(FAR, 1, 0));
    ok(&a);
    let far_table = level3_table(&a, FAR);

    // Device b maps that page as data and writes it: no finding.
    let mut b = Gpu::new();
    b.dev.set_audit(true);
    b.map_range(0, VA, DATA_PA, 0x4000);
    b.map(0, VA + 0x4000, far_table, 3, false, false);
    b.map(0, VA + 0x5000, level3_table(&b, VA), 3, false, false);
    b.enable_as(0, false);
    b.setup_queue(0, 0);
    b.submit(0, &write64(VA, 1, 0));
    b.submit(0, &write64(VA + 0x4000, 2, 0));
    ok(&b);
    assert_eq!(findings(), Vec::<String>::new());

    // Each device still finds a write into its own tables.
    b.submit(0, &write64(VA + 0x5ff8, 0, 0));
    ok(&b);
    let f = findings();
    assert!(
        f.len() == 1 && f[0].contains("writes page-table page"),
        "{f:?}"
    );
    a.map(0, FAR + 0x1000, far_table, 3, false, false);
    a.submit(0, &write64(FAR + 0x1ff8, 0, 0));
    ok(&a);
    let f = findings();
    assert!(
        f.len() == 1 && f[0].contains(&format!("writes page-table page {:#x}", far_table + 0xff8)),
        "{f:?}"
    );

    // A device with the audit off finds nothing.
    a.dev.set_audit(false);
    a.submit(0, &write64(FAR + 0x1ff0, 0, 0));
    ok(&a);
    assert_eq!(findings(), Vec::<String>::new());
}
