// SPDX-License-Identifier: GPL-2.0
//! The null aperture (`FEATURES.NULL_APERTURE`, spec "The null aperture"):
//! leaf output addresses in `[1 << 47, 1 << 48)` read as zeros and drop
//! writes, without a fault, page by page; table descriptors into it are
//! address size faults; `DMA_ADDR_BITS` is at most 47. Driven through the
//! registers as a driver would, with tables the test bed encodes from the
//! spec, and checked against guest memory byte for byte.

use ferrite_gpu_model::regs::*;
use ferrite_gpu_model::testbed::*;
use ferrite_gpu_model::Options;

/// The start of the aperture, from the spec.
const NULL: u64 = 1 << 47;
/// Real data pages.
const VA: u64 = 0x1_0000_0000;
/// Null pages.
const NVA: u64 = 0x2_0000_0000;

/// Where a sparse-residency driver points a leaf for `va`: the same
/// offset in the aperture, so blocks keep their alignment.
fn null_pa(va: u64) -> u64 {
    NULL | (va & (NULL - 1))
}

/// A GPU with `len` bytes of real data at VA (DATA_PA), `nlen` bytes of
/// null 4 KiB pages at NVA, and queue 0 on slot 0.
fn gpu(len: u64, nlen: u64) -> Gpu {
    let mut g = Gpu::new();
    g.map_range(0, VA, DATA_PA, len);
    for off in (0..nlen).step_by(4096) {
        g.map(0, NVA + off, null_pa(NVA + off), 3, false, false);
    }
    g.enable_as(0, false);
    g.setup_queue(0, 0);
    g
}

/// All of guest memory.
fn snapshot(g: &Gpu) -> Vec<u8> {
    let mut m = vec![0u8; MEM as usize];
    g.pread(0, &mut m);
    m
}

/// Bytes of guest memory that differ between two snapshots (the first
/// few, for the message).
fn diff(a: &[u8], b: &[u8]) -> Vec<usize> {
    (0..a.len()).filter(|&i| a[i] != b[i]).take(8).collect()
}

/// Run `cmds` on queue 0 (with a final clean and invalidate of the cache)
/// and check that no byte of guest memory changed: the commands are
/// written to the ring while the queue is disabled, memory is taken
/// before it is enabled.
fn run_without_touching_memory(g: &mut Gpu, cmds: &[Vec<u32>]) {
    g.w32(q_off(0, q_reg::CONTROL), 0);
    for c in cmds {
        g.submit(0, c);
    }
    g.submit(0, &flush(cache::CLEAN | cache::INVALIDATE));
    let before = snapshot(g);
    let faults = g.counter(counter::FAULTS);
    g.w32(q_off(0, q_reg::CONTROL), q_control::ENABLE);
    let st = g.wait_idle(0);
    assert_eq!(
        st & (q_status::ERROR | q_status::FAULTED),
        0,
        "status {st:#x}"
    );
    assert_eq!(g.counter(counter::FAULTS), faults);
    assert_eq!(g.r32(MMU_IRQ_STATUS), 0);
    let after = snapshot(g);
    assert!(
        before == after,
        "memory changed at {:#x?}",
        diff(&before, &after)
    );
}

fn ok(g: &Gpu, q: usize) {
    let st = g.wait_idle(q);
    assert_eq!(
        st & (q_status::ERROR | q_status::FAULTED),
        0,
        "status {st:#x}"
    );
}

fn expect_fault(g: &mut Gpu, cmd: &[u32], kind: u32, addr: u64, write: bool) {
    g.submit(0, cmd);
    let st = g.wait_idle(0);
    assert_ne!(st & q_status::FAULTED, 0, "no fault: status {st:#x}");
    assert_eq!(g.r32(q_off(0, q_reg::ERROR)), q_error::MMU_FAULT);
    let fs = g.r32(as_off(0, as_reg::FAULTSTATUS));
    assert_eq!(fs & fault::TYPE_MASK, kind, "faultstatus {fs:#x}");
    assert_eq!(fs & fault::WRITE != 0, write);
    let fa = u64::from(g.r32(as_off(0, as_reg::FAULTADDR_LO)))
        | (u64::from(g.r32(as_off(0, as_reg::FAULTADDR_HI))) << 32);
    assert_eq!(fa, addr);
}

#[test]
fn features_version_and_dma_addr_bits() {
    let g = Gpu::new();
    assert_ne!(g.r32(FEATURES) & (1 << 5), 0, "FEATURES.NULL_APERTURE");
    assert_eq!(features::NULL_APERTURE, 1 << 5);
    assert_eq!(g.r32(FEATURES), 0x3f);
    // 1.2 added the null aperture; later minors keep it.
    assert!(g.r32(VERSION) >= 0x0001_0002);
    // The default option (48) and every other: the register is at most 47.
    assert_eq!(g.r32(DMA_ADDR_BITS), 47);
    drop(g);
    for bits in [32, 39, 46, 47, 48, 52, 63, 64] {
        let g = Gpu::with(Options {
            dma_addr_bits: bits,
            ..Default::default()
        });
        assert_eq!(g.r32(DMA_ADDR_BITS), bits.min(47), "--dma-bits {bits}");
    }
}

#[test]
fn reads_of_null_pages_return_zeros() {
    let mut g = gpu(0x8000, 0x4000);
    let pattern: Vec<u8> = (0..0x8000u32).map(|i| (i * 13 + 1) as u8).collect();
    g.pwrite(DATA_PA, &pattern);
    let (zr, zw) = g.dev.null_traffic();
    // COPY from three null pages (unaligned) over real data.
    g.submit(0, &copy(VA + 0x10, NVA + 0x123, 0x2ff0));
    // CHECKSUM over null pages: the hash of zeros.
    g.submit(0, &checksum(VA + 0x7000, NVA + 0x7, 0x3456));
    // WAIT reads zero: >= 0 is satisfied at once.
    g.submit(0, &wait(NVA + 0x3ff8, 0));
    g.submit(0, &flush(cache::CLEAN | cache::INVALIDATE));
    ok(&g, 0);
    let mut m = vec![0u8; 0x8000];
    g.pread(DATA_PA, &mut m);
    let mut want = pattern.clone();
    want[0x10..0x3000].fill(0);
    want[0x7000..0x7008].copy_from_slice(&fnv(&[0u8; 0x3456]).to_le_bytes());
    assert!(m == want, "memory differs at {:#x?}", diff(&m, &want));
    // The model counts what it read as zeros, and dropped nothing.
    assert_eq!(g.dev.null_traffic(), (zr + 0x2ff0 + 0x3456 + 8, zw));
}

#[test]
fn writes_to_null_pages_are_dropped() {
    let mut g = gpu(0x4000, 0x4000);
    let pattern: Vec<u8> = (0..0x4000u32).map(|i| (i * 7 + 3) as u8).collect();
    g.pwrite(DATA_PA, &pattern);
    let (_, zw) = g.dev.null_traffic();
    run_without_touching_memory(
        &mut g,
        &[
            fill(NVA + 0x3, 0x3ffa, 0xdead_beef),
            copy(NVA + 0x1001, VA + 0x11, 0x2000),
            checksum(NVA + 0x2ffc, VA, 0x4000),
            write64(NVA + 0x8, 0x1234, 0),
            write64(NVA + 0x10, 0x5678, write64::FLUSH),
            // A fence: the value is dropped, Q_SEQNO and the IRQ are not.
            write64(
                NVA + 0x18,
                42,
                write64::SEQNO | write64::IRQ | write64::FLUSH,
            ),
            timestamp(NVA + 0x20),
        ],
    );
    assert_eq!(g.r32(q_off(0, q_reg::SEQNO_LO)), 42);
    assert_ne!(g.r32(JOB_IRQ_STATUS) & 1, 0);
    // Nothing is kept anywhere, not in the cache either: no line is
    // dirty after a FILL without a flush, and the pages read as zeros.
    g.submit(0, &fill(NVA, 0x4000, 0xffff_ffff));
    ok(&g, 0);
    assert_eq!(g.r32(CACHE_DIRTY), 0);
    g.submit(0, &copy(VA, NVA, 0x4000));
    g.submit(0, &flush(cache::CLEAN | cache::INVALIDATE));
    ok(&g, 0);
    let mut m = vec![0u8; 0x4000];
    g.pread(DATA_PA, &mut m);
    assert!(m.iter().all(|&b| b == 0));
    // Every byte written was counted as dropped.
    let wrote = 0x3ffa + 0x2000 + 8 + 8 + 8 + 8 + 8 + 0x4000;
    assert_eq!(g.dev.null_traffic().1, zw + wrote);
}

#[test]
fn writes_through_the_cache_never_reach_memory_later() {
    // A write into a null page allocates no cache line: neither a clean
    // nor an eviction can write it anywhere.
    let mut g = Gpu::with(Options {
        cache_lines: 2,
        ..Default::default()
    });
    g.map_range(0, VA, DATA_PA, 0x4000);
    for off in (0..0x4000).step_by(4096) {
        g.map(0, NVA + off, null_pa(NVA + off), 3, false, false);
    }
    g.enable_as(0, false);
    g.setup_queue(0, 0);
    run_without_touching_memory(
        &mut g,
        &[
            fill(NVA, 0x4000, 0x0101_0101),
            fill(VA, 0x10, 0), // real zeros over zeros
            fill(NVA + 0x2000, 0x1000, 0x0202_0202),
        ],
    );
}

#[test]
fn blocks_2m_and_1g_in_the_null_aperture() {
    let mut g = Gpu::new();
    g.map_range(0, VA, DATA_PA, 0x4000);
    // A 2 MiB block and a 1 GiB block, one with its VA above 2^47.
    let b2m = 0x3_0060_0000;
    let b1g = 0xc000_4000_0000;
    g.map(0, b2m, null_pa(b2m), 2, false, false);
    g.map(0, b1g, null_pa(b1g), 1, false, false);
    assert_eq!(null_pa(b1g), b1g);
    g.enable_as(0, false);
    g.setup_queue(0, 0);
    let pattern: Vec<u8> = (0..0x4000u32).map(|i| (i * 5 + 9) as u8).collect();
    g.pwrite(DATA_PA, &pattern);
    let misses = g.counter(counter::TLB_MISSES);
    run_without_touching_memory(
        &mut g,
        &[
            fill(b2m + 0x8_0000, 0x10_0000, 0x5a5a_5a5a),
            fill(b1g + 0x3fff_f000, 0x1000, 7),
            copy(b2m + 0x1f_c000, VA, 0x4000),
            copy(b1g + 0x1234_5678, b2m + 0x10, 0x3000),
            write64(b2m + 0x1f_fff8, 1, write64::FLUSH),
            write64(b1g + 0x2000_0000, 2, write64::FLUSH),
        ],
    );
    // A walk per block, not per page: blocks are cached as blocks (the
    // ring's and data's pages take 5 more).
    let walks = g.counter(counter::TLB_MISSES) - misses;
    assert!(walks <= 8, "{walks} walks");
    g.submit(0, &copy(VA, b1g + 0x3fff_e000, 0x2000));
    g.submit(0, &checksum(VA + 0x2000, b2m + 0x1, 0x1f_ffff));
    g.submit(0, &flush(cache::CLEAN | cache::INVALIDATE));
    ok(&g, 0);
    let mut m = vec![0u8; 0x4000];
    g.pread(DATA_PA, &mut m);
    let mut want = pattern;
    want[..0x2000].fill(0);
    want[0x2000..0x2008].copy_from_slice(&fnv(&vec![0u8; 0x1f_ffff]).to_le_bytes());
    assert!(m == want, "memory differs at {:#x?}", diff(&m, &want));
}

#[test]
fn accesses_straddling_a_real_and_a_null_page() {
    // VA: real (DATA_PA), VA + 0x1000: null, VA + 0x2000: real, at
    // DATA_PA + 0x3000 (DATA_PA + 0x1000 and + 0x2000 are not mapped).
    let mut g = gpu(0x1000, 0);
    g.map(0, VA + 0x1000, null_pa(VA + 0x1000), 3, false, false);
    g.map(0, VA + 0x2000, DATA_PA + 0x3000, 3, false, false);
    g.map_range(0, VA + 0x10_0000, DATA_PA + 0x10_0000, 0x2000);
    let pattern: Vec<u8> = (0..0x4000u32).map(|i| (i * 3 + 1) as u8).collect();
    g.pwrite(DATA_PA, &pattern);
    let out = DATA_PA + 0x10_0000;
    g.pwrite(out, &[0xee; 0x2000]);
    // Writes: the real side is written, the null side dropped.
    g.submit(0, &fill(VA + 0xfe0, 0x40, 0x0102_0304));
    g.submit(0, &fill(VA + 0x1ff0, 0x20, 0x0506_0708));
    g.submit(
        0,
        &write64(VA + 0xffc, 0x1122_3344_5566_7788, write64::FLUSH),
    );
    g.submit(
        0,
        &write64(VA + 0x1ffc, 0x99aa_bbcc_ddee_ff00, write64::FLUSH),
    );
    // Reads: real bytes from the real side, zeros from the null side.
    g.submit(0, &copy(VA + 0x10_0000, VA + 0x800, 0x1000));
    g.submit(0, &copy(VA + 0x10_1000, VA + 0x1800, 0x1000));
    g.submit(0, &checksum(VA + 0x10_1ff0, VA + 0xf00, 0x1200));
    g.submit(0, &flush(cache::CLEAN | cache::INVALIDATE));
    ok(&g, 0);
    let mut want = pattern.clone();
    for i in 0xfe0..0x1000 {
        want[i] = [4, 3, 2, 1][i % 4];
    }
    for i in 0..0x10 {
        want[0x3000 + i] = [8, 7, 6, 5][i % 4];
    }
    want[0xffc..0x1000].copy_from_slice(&0x5566_7788u32.to_le_bytes());
    want[0x3000..0x3004].copy_from_slice(&0x99aa_bbccu32.to_le_bytes());
    let mut m = vec![0u8; 0x4000];
    g.pread(DATA_PA, &mut m);
    // The physically next pages (DATA_PA + 0x1000..0x3000) are untouched.
    assert!(m == want, "memory differs at {:#x?}", diff(&m, &want));
    let mut o = vec![0u8; 0x2000];
    g.pread(out, &mut o);
    let mut wo = vec![0u8; 0x2000];
    wo[..0x800].copy_from_slice(&want[0x800..0x1000]);
    wo[0x1800..].copy_from_slice(&want[0x3000..0x3800]);
    let mut hashed = want[0xf00..0x1000].to_vec();
    hashed.extend_from_slice(&[0u8; 0x1000]);
    hashed.extend_from_slice(&want[0x3000..0x3100]);
    wo[0x1ff0..0x1ff8].copy_from_slice(&fnv(&hashed).to_le_bytes());
    assert!(o == wo, "copies differ at {:#x?}", diff(&o, &wo));
}

#[test]
fn command_fetches_from_null_pages_read_zeros() {
    let mut g = gpu(0x1000, 0x1000);
    g.map(0, VA + 0x1000, null_pa(VA + 0x1000), 3, false, false);
    // A NOP of 4 dwords whose last two lie in a null page: its payload
    // (ignored) reads as zeros, and the CALL completes.
    g.pwrite_words(DATA_PA + 0xff8, &nop(4)[..2]);
    g.submit(0, &call(VA + 0xff8, 16));
    g.submit(0, &write64(VA, 5, write64::FLUSH));
    ok(&g, 0);
    assert_eq!(g.pread64(DATA_PA), 5);
    // A command in a null page is a zero header: length 0, BAD_LENGTH.
    g.submit(0, &call(NVA, 16));
    let st = g.wait_idle(0);
    assert_ne!(st & q_status::ERROR, 0, "status {st:#x}");
    assert_eq!(g.r32(q_off(0, q_reg::ERROR)), q_error::BAD_LENGTH);
    assert_eq!(g.r32(MMU_IRQ_STATUS), 0);
}

#[test]
fn null_pages_keep_their_permissions() {
    let mut g = gpu(0x1000, 0);
    g.map(0, NVA, null_pa(NVA), 3, true, true);
    // Reading a read-only null page is fine; writing it is a permission
    // fault, as for any read-only page; so is fetching from a no-execute
    // one.
    g.submit(0, &copy(VA, NVA, 8));
    ok(&g, 0);
    expect_fault(
        &mut g,
        &fill(NVA + 8, 4, 1),
        fault::PERMISSION,
        NVA + 8,
        true,
    );
    g.w32(q_off(0, q_reg::CONTROL), q_control::RESET);
    g.setup_queue(0, 0);
    expect_fault(&mut g, &call(NVA, 16), fault::PERMISSION, NVA, false);
}

#[test]
fn table_descriptors_into_the_null_aperture_are_address_size_faults() {
    let mut g = gpu(0x2000, 0);
    g.pwrite(DATA_PA, &[0x77; 0x2000]);
    // The level-2 table's descriptor of VA's level-3 table, moved into the
    // aperture (same offset): the table is not memory.
    let mut table = g.roots[0];
    for lvl in 0..2 {
        let d = g.pread64(table + ((VA >> (39 - 9 * lvl)) & 0x1ff) * 8);
        table = d & 0x0000_ffff_ffff_f000;
    }
    let at = table + ((VA >> 21) & 0x1ff) * 8;
    let d = g.pread64(at);
    g.pwrite64(at, d | NULL);
    g.flush_range(0, VA, 0x20_0000);
    let before = snapshot(&g);
    expect_fault(
        &mut g,
        &fill(VA + 0x1000, 8, 0),
        fault::ADDRESS_SIZE,
        VA + 0x1000,
        true,
    );
    // Nothing but the ring, which the test bed wrote, changed.
    let mut after = snapshot(&g);
    let ring = RING_PA as usize..RING_PA as usize + RING_SIZE as usize;
    after[ring.clone()].copy_from_slice(&before[ring]);
    assert!(
        before == after,
        "memory changed at {:#x?}",
        diff(&before, &after)
    );
    // Likewise the root (AS_TRANSTAB) in the aperture, on a 48-bit and a
    // 32-bit device.
    for bits in [48, 32] {
        let mut g = Gpu::with(Options {
            dma_addr_bits: bits,
            ..Default::default()
        });
        g.map_range(0, VA, DATA_PA, 0x1000);
        g.setup_queue(0, 0);
        g.roots[0] |= NULL;
        g.enable_as(0, false);
        // The ring fetch itself faults.
        expect_fault(&mut g, &nop(1), fault::ADDRESS_SIZE, RING_VA, false);
    }
}

#[test]
fn a_32_bit_device_reaches_the_null_aperture() {
    // The aperture is not memory, so the DMA reach does not apply to it: a
    // 32-bit device drops and zeroes as a 47-bit one does, and still faults
    // on real addresses beyond its reach.
    let mut g = Gpu::with(Options {
        dma_addr_bits: 32,
        ..Default::default()
    });
    g.map_range(0, VA, DATA_PA, 0x1000);
    g.map(0, NVA, null_pa(NVA), 2, false, false);
    g.map(0, VA + 0x1000, 1 << 40, 3, false, false);
    g.enable_as(0, false);
    g.setup_queue(0, 0);
    g.pwrite(DATA_PA, &[0x11; 0x1000]);
    g.submit(0, &fill(NVA, 0x1000, 0xffff_ffff));
    g.submit(0, &copy(VA, NVA, 0x800));
    g.submit(0, &flush(cache::CLEAN | cache::INVALIDATE));
    ok(&g, 0);
    let mut m = vec![0u8; 0x1000];
    g.pread(DATA_PA, &mut m);
    assert!(m[..0x800].iter().all(|&b| b == 0) && m[0x800..].iter().all(|&b| b == 0x11));
    expect_fault(
        &mut g,
        &fill(VA + 0x1000, 4, 0),
        fault::ADDRESS_SIZE,
        VA + 0x1000,
        true,
    );
}

#[test]
fn null_translations_are_cached_until_invalidated() {
    // Binding memory to a sparse range (a null page replaced by a real
    // one) is a change of the tables like any other: the device keeps
    // using the null translation until the range is flushed.
    let mut g = gpu(0x1000, 0x1000);
    g.pwrite64(DATA_PA, u64::MAX);
    g.submit(0, &write64(NVA, 1, write64::FLUSH));
    ok(&g, 0);
    g.map(0, NVA, DATA_PA + 0x1000, 3, false, false);
    g.submit(0, &write64(NVA, 2, write64::FLUSH));
    ok(&g, 0);
    assert_eq!(
        g.pread64(DATA_PA + 0x1000),
        0,
        "the TLB dropped a null entry"
    );
    g.flush_range(0, NVA, 0x1000);
    g.submit(0, &write64(NVA, 3, write64::FLUSH));
    ok(&g, 0);
    assert_eq!(g.pread64(DATA_PA + 0x1000), 3);
    // And back (unbinding): once flushed, writes are dropped again.
    g.map(0, NVA, null_pa(NVA), 3, false, false);
    g.flush_range(0, NVA, 0x1000);
    g.submit(0, &write64(NVA, 4, write64::FLUSH));
    g.submit(0, &copy(VA, NVA, 8));
    g.submit(0, &flush(cache::CLEAN | cache::INVALIDATE));
    ok(&g, 0);
    assert_eq!(g.pread64(DATA_PA + 0x1000), 3);
    assert_eq!(g.pread64(DATA_PA), 0);
}

#[test]
fn a_save_area_in_the_null_aperture_keeps_no_context() {
    // A suspend writes the context into the void (and succeeds); a
    // restore reads zeros: a malformed context.
    let mut g = gpu(0x1000, 0x1000);
    g.w64(q_off(0, q_reg::CONTEXT_LO), NVA + 0x40);
    g.submit(0, &write64(VA, 1, write64::FLUSH));
    ok(&g, 0);
    let (_, zw) = g.dev.null_traffic();
    g.suspend(0);
    let st = g.wait_suspended(0);
    assert_ne!(st & q_status::SUSPENDED, 0, "status {st:#x}");
    assert_ne!(g.r32(JOB_IRQ_STATUS) & (1 << 8), 0);
    assert_eq!(g.dev.null_traffic().1, zw + 128);
    g.restore_queue(0, 0, 0, NVA + 0x40);
    let st = g.wait_idle(0);
    assert_ne!(st & q_status::ERROR, 0, "status {st:#x}");
    assert_eq!(g.r32(q_off(0, q_reg::ERROR)), q_error::BAD_CONTEXT);
    assert_eq!(g.r32(MMU_IRQ_STATUS), 0);
}
