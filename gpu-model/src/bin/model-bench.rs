// SPDX-License-Identifier: GPL-2.0
//! Benchmark of the device model, printed as ratios measured in one run:
//! COPY bandwidth against the host's memcpy, and the per-command cost of
//! NOP and fence (WRITE64) commands.

use std::hint::black_box;
use std::time::Instant;

use ferrite_gpu_model::regs::{cache, write64};
use ferrite_gpu_model::testbed::*;

const VA: u64 = 0x4000_0000;
const COPY_BYTES: u64 = 16 << 20;

fn host_memcpy_gbps() -> f64 {
    let src = vec![0x5au8; COPY_BYTES as usize];
    let mut dst = vec![0u8; COPY_BYTES as usize];
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        dst.copy_from_slice(black_box(&src));
        black_box(&mut dst);
        best = best.min(t.elapsed().as_secs_f64());
    }
    COPY_BYTES as f64 / best / 1e9
}

fn main() {
    let mut g = Gpu::new();
    // One 1 GiB block over all of guest memory.
    g.map(0, VA, 0, 1, false, false);
    g.enable_as(0, false);
    g.setup_queue(0, 0);
    let (src, dst) = (VA + DATA_PA, VA + DATA_PA + COPY_BYTES);

    // Warm up (allocate cache lines), then time COPY alone.
    g.submit(0, &copy(dst, src, COPY_BYTES));
    g.wait_idle(0);
    let mut best = f64::MAX;
    for _ in 0..5 {
        g.clean_cache();
        let t = Instant::now();
        g.submit(0, &copy(dst, src, COPY_BYTES));
        g.wait_idle(0);
        best = best.min(t.elapsed().as_secs_f64());
    }
    let copy_gbps = COPY_BYTES as f64 / best / 1e9;
    let memcpy_gbps = host_memcpy_gbps();

    let per_cmd = |g: &mut Gpu, cmd: &[u32], n: usize| {
        let t = Instant::now();
        let batch = (RING_SIZE as usize / 4 - 1) / cmd.len();
        let mut done = 0;
        while done < n {
            let k = batch.min(n - done);
            g.submit_batch(0, &cmd.repeat(k));
            g.wait_idle(0);
            done += k;
        }
        t.elapsed().as_secs_f64() / n as f64 * 1e9
    };
    let nop_ns = per_cmd(&mut g, &nop(1), 200_000);
    let fence_ns = per_cmd(&mut g, &write64(VA + DATA_PA, 1, write64::SEQNO), 100_000);
    g.w32(ferrite_gpu_model::regs::CACHE_CMD, cache::CLEAN);

    println!(
        "model COPY {} MiB: {copy_gbps:.2} GB/s; host memcpy: {memcpy_gbps:.2} GB/s",
        COPY_BYTES >> 20
    );
    println!(
        "ratio copy/memcpy: {:.2} (goal >= 0.5)",
        copy_gbps / memcpy_gbps
    );
    println!("per NOP command: {nop_ns:.0} ns (goal < 2000)");
    println!("per fence (WRITE64) command: {fence_ns:.0} ns (goal < 2000)");
}
