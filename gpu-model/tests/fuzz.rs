// SPDX-License-Identifier: GPL-2.0
//! Bounded fuzzing: random register writes, page tables and command
//! streams must never crash or wedge the model. Each case ends with a
//! global reset, after which the device must work normally again.
//!
//! FERRITE_FUZZ_CASES and FERRITE_FUZZ_SEED override the defaults; a
//! failure prints the seed so it replays.

use std::time::{Duration, Instant};

use ferrite_gpu_model::regs::*;
use ferrite_gpu_model::testbed::*;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// An address that is often interesting: mapped, near mapped, huge.
    fn addr(&mut self) -> u64 {
        match self.below(6) {
            0 => 0x1_0000_0000 + self.below(0x2_0000),
            1 => self.next(),
            2 => 1 << self.below(64),
            3 => RING_VA + self.below(0x8000),
            4 => self.below(MEM * 2),
            _ => 0x1_0000_0000 + (self.below(16) << 12),
        }
    }
}

fn random_command(r: &mut Rng) -> Vec<u32> {
    let mut size = || match r.below(4) {
        0 => r.below(64),
        1 => r.below(0x1_0000),
        2 => r.next(),
        _ => 8,
    };
    let s = size();
    let mut r2 = Rng(r.next() | 1);
    match r2.below(11) {
        0 => fill(r2.addr(), s, r2.next() as u32),
        1 => copy(r2.addr(), r2.addr(), s),
        2 => checksum(r2.addr(), r2.addr(), s),
        3 => write64(r2.addr(), r2.next(), r2.below(8) as u32),
        4 => wait(r2.addr(), r2.below(3)),
        5 => timestamp(r2.addr()),
        6 => flush(r2.below(4) as u32),
        7 => call(r2.addr(), (r2.below(64) * 4) as u32),
        8 => nop(1 + r2.below(8) as u32),
        9 => vec![r2.next() as u32],
        _ => (0..1 + r2.below(8)).map(|_| r2.next() as u32).collect(),
    }
}

fn run_case(seed: u64) {
    let mut r = Rng(seed | 1);
    let mut g = Gpu::new();
    g.map_range(0, 0x1_0000_0000, DATA_PA, 0x1_0000);
    // The descriptors of those pages, and of their level-3 table.
    let mut path = [0u64; 4];
    let mut table = g.roots[0];
    for (lvl, at) in path.iter_mut().enumerate() {
        *at = table + ((0x1_0000_0000u64 >> (39 - 9 * lvl)) & 0x1ff) * 8;
        table = g.pread64(*at) & 0x0000_ffff_ffff_f000;
    }
    // Random garbage in the page tables: loops, blocks, out-of-range.
    for _ in 0..r.below(8) {
        let pa = PT_POOL + r.below(16) * 4096 + r.below(512) * 8;
        let v = match r.below(3) {
            0 => r.next(),
            1 => (PT_POOL + r.below(16) * 4096) | 3, // table loops
            _ => (r.below(MEM * 4) & !0xfff) | 1 | (r.below(2) << 1),
        };
        g.pwrite64(pa, v);
    }
    // Random data for indirect buffers.
    for i in 0..64 {
        g.pwrite64(DATA_PA + i * 8 + r.below(0x1_0000) / 8 * 8, r.next());
    }
    g.enable_as(0, r.below(4) == 0);
    for q in 0..2 {
        g.setup_queue(q, 0);
    }
    // Some of those pages in the null aperture (reads zero, writes
    // dropped), and sometimes their level-3 table (an address size fault).
    // After the test bed's encoder has run (it follows table descriptors,
    // which the garbage above may loop through the pages of these), and
    // undone before it runs again.
    let mut nulled = Vec::new();
    if r.below(8) == 0 {
        nulled.push(path[2]);
    }
    for _ in 0..r.below(8) {
        nulled.push(path[3] + r.below(16) * 8);
    }
    let saved: Vec<(u64, u64)> = nulled.iter().map(|&at| (at, g.pread64(at))).collect();
    for &(at, d) in &saved {
        g.pwrite64(at, d | (1 << 47));
    }
    for _ in 0..r.below(12) {
        let q = r.below(2) as usize;
        let cmd = random_command(&mut r);
        if cmd.len() < RING_SIZE as usize / 8 {
            g.submit(q, &cmd);
        }
    }
    // Preemption: suspends and restores at random moments, with save
    // areas anywhere (mapped, unmapped, holding random data).
    for _ in 0..r.below(6) {
        let q = r.below(2) as usize;
        let ctx = r.addr() & !0x3f;
        if r.below(2) == 0 {
            // Sometimes a plausible context: a random head and frames.
            let mut b = [0u8; 128];
            b[..4].copy_from_slice(&0x5854_4346u32.to_le_bytes());
            b[4] = 1;
            for x in b[8..].iter_mut() {
                if r.below(4) == 0 {
                    *x = r.next() as u8;
                }
            }
            g.pwrite(DATA_PA + r.below(0x1_0000 - 128), &b);
        }
        g.w64(q_off(q, q_reg::CONTEXT_LO), ctx);
        let ctl = [
            q_control::ENABLE | q_control::SUSPEND,
            q_control::ENABLE | q_control::RESTORE,
            q_control::ENABLE | q_control::SUSPEND | q_control::RESTORE,
            r.next() as u32 & 0xf,
        ][r.below(4) as usize];
        g.w32(q_off(q, q_reg::CONTROL), ctl);
        std::thread::sleep(Duration::from_micros(r.below(300)));
    }
    // Random register writes, anywhere in BAR0 but RESET.
    for _ in 0..r.below(24) {
        let off = (r.below(BAR0_SIZE) as u32) & !3;
        if off != RESET {
            g.w32(off, r.next() as u32);
        }
    }
    std::thread::sleep(Duration::from_micros(r.below(2000)));
    for off in (0..0x2200).step_by(4) {
        g.r32(off);
    }
    // Whatever happened, a global reset brings the device back.
    g.w32(RESET, RESET_GLOBAL);
    for &(at, d) in saved.iter().rev() {
        g.pwrite64(at, d);
    }
    g.map_range(1, 0x1_0000_0000, DATA_PA, 0x1000);
    g.enable_as(1, false);
    g.setup_queue(3, 1);
    g.submit(3, &write64(0x1_0000_0000, seed, write64::FLUSH));
    let st = g.wait_idle(3);
    assert_eq!(
        st & (q_status::ERROR | q_status::FAULTED),
        0,
        "seed {seed:#x}: status {st:#x}"
    );
    assert_eq!(g.pread64(DATA_PA), seed, "seed {seed:#x}");
}

#[test]
fn fuzz_random_streams_and_tables() {
    let cases: u64 = std::env::var("FERRITE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let base: u64 = std::env::var("FERRITE_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed);
    let t0 = Instant::now();
    for i in 0..cases {
        let seed = base.wrapping_add(i).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let r = std::panic::catch_unwind(|| run_case(seed));
        assert!(r.is_ok(), "fuzz case {i} (seed {seed:#x}) failed; replay with FERRITE_FUZZ_SEED={} FERRITE_FUZZ_CASES=1", base.wrapping_add(i));
        if t0.elapsed() > Duration::from_secs(120) {
            eprintln!("fuzz: time bound reached after {} cases", i + 1);
            break;
        }
    }
}
