// SPDX-License-Identifier: GPL-2.0
//! The device model driven through its registers, as a driver would.

use ferrite_gpu_model::regs::*;
use ferrite_gpu_model::testbed::*;
use ferrite_gpu_model::Options;

const VA: u64 = 0x1_0000_0000;

fn gpu_with_data(len: u64) -> Gpu {
    let mut g = Gpu::new();
    g.map_range(0, VA, DATA_PA, len);
    g.enable_as(0, false);
    g.setup_queue(0, 0);
    g
}

#[test]
fn identity_and_constraints() {
    let g = Gpu::with(Options {
        dma_addr_bits: 32,
        dma_max_segment: 65536,
        ..Default::default()
    });
    assert_eq!(g.r32(ID), FERRITE_ID);
    assert_eq!(g.r32(VERSION), FERRITE_VERSION);
    assert_eq!(g.r32(DMA_ADDR_BITS), 32);
    assert_eq!(g.r32(DMA_MAX_SEGMENT), 65536);
    assert_eq!(g.r32(NUM_QUEUES_REG), 8);
    assert_eq!(g.r32(NUM_AS_REG), 16);
    g.w32(ID, 0);
    assert_eq!(g.r32(ID), FERRITE_ID);
}

/// `DMA_SEG_BOUNDARY_LO`/`_HI` (interface 1.3): all-ones by default, else
/// the option's mask, both halves read-only.
#[test]
fn seg_boundary_register() {
    const { assert!(FERRITE_VERSION & 0xffff >= VERSION_MINOR_SEG_BOUNDARY) };
    let g = Gpu::new();
    assert_eq!(g.r32(DMA_SEG_BOUNDARY_LO), u32::MAX);
    assert_eq!(g.r32(DMA_SEG_BOUNDARY_HI), u32::MAX);
    for mask in [0xfff, 0xffff, 0xffff_ffff, 0x1_ffff_ffff, u64::MAX >> 1] {
        let g = Gpu::with(Options {
            dma_seg_boundary: mask,
            ..Default::default()
        });
        g.w32(DMA_SEG_BOUNDARY_LO, 0);
        g.w32(DMA_SEG_BOUNDARY_HI, 0);
        assert_eq!(g.r32(DMA_SEG_BOUNDARY_LO), mask as u32, "{mask:#x}");
        assert_eq!(g.r32(DMA_SEG_BOUNDARY_HI), (mask >> 32) as u32, "{mask:#x}");
    }
    assert!(valid_seg_boundary(NO_SEG_BOUNDARY));
    for bad in [0, 1, 0x7ff, 0x1000, 0xfffe, 0x1_0000_0fff] {
        assert!(!valid_seg_boundary(bad), "{bad:#x}");
    }
}

/// The `--seg-boundary` option of the `ferrite-gpu` process: a mask it
/// cannot advertise is refused before anything starts; a valid one (hex or
/// decimal) is taken, and only the missing `--socket` is reported.
#[test]
fn seg_boundary_option() {
    let run = |v: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferrite-gpu"))
            .args(["--seg-boundary", v])
            .output()
            .expect("run ferrite-gpu");
        assert_eq!(out.status.code(), Some(2), "--seg-boundary {v}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    for bad in [
        "0", "0x7ff", "4096", "0xfffe", "-1", "0x", "ffff", "0x1_ffff",
    ] {
        let err = run(bad);
        assert!(err.contains("--seg-boundary"), "{bad}: {err}");
    }
    for good in ["0xffff", "65535", "0xffffffff", "18446744073709551615"] {
        let err = run(good);
        assert!(
            err.starts_with("usage:") && !err.contains(&format!("--seg-boundary {good}")),
            "{good}: {err}"
        );
    }
}

#[test]
fn fill_copy_checksum_through_the_mmu() {
    let mut g = gpu_with_data(0x4_0000);
    g.submit(0, &fill(VA, 0x1_0000, 0xa5a5_0102));
    g.submit(0, &copy(VA + 0x1_0000, VA + 2, 0x8000));
    g.submit(0, &checksum(VA + 0x3_0000, VA + 0x1_0000, 0x8000));
    g.submit(0, &flush(cache::CLEAN));
    assert_eq!(g.wait_idle(0) & (q_status::ERROR | q_status::FAULTED), 0);
    let mut a = vec![0u8; 0x1_0000];
    g.pread(DATA_PA, &mut a);
    let want: Vec<u8> = (0..0x1_0000)
        .map(|i| [0x02u8, 0x01, 0xa5, 0xa5][i % 4])
        .collect();
    assert_eq!(a, want);
    let mut b = vec![0u8; 0x8000];
    g.pread(DATA_PA + 0x1_0000, &mut b);
    assert_eq!(b[..], want[2..0x8002]);
    assert_eq!(g.pread64(DATA_PA + 0x3_0000), fnv(&b));
}

#[test]
fn writes_stay_in_the_cache_until_flushed() {
    let mut g = gpu_with_data(0x2000);
    g.submit(0, &fill(VA, 64, 0x1111_1111));
    g.wait_idle(0);
    assert_eq!(
        g.pread64(DATA_PA),
        0,
        "GPU write reached memory without a flush"
    );
    assert_eq!(g.r32(CACHE_DIRTY), 1);
    g.w32(CACHE_CMD, cache::CLEAN);
    assert_eq!(g.pread64(DATA_PA), 0x1111_1111_1111_1111);
    assert_eq!(g.r32(CACHE_DIRTY), 0);
    // A fence with FLUSH cleans first and writes through.
    g.submit(0, &fill(VA + 0x1000, 8, 0x2222_2222));
    g.submit(0, &write64(VA + 0x1008, 7, write64::FLUSH));
    g.wait_idle(0);
    assert_eq!(g.pread64(DATA_PA + 0x1000), 0x2222_2222_2222_2222);
    assert_eq!(g.pread64(DATA_PA + 0x1008), 7);
}

#[test]
fn cleaned_lines_are_stale_until_the_cache_is_invalidated() {
    let mut g = gpu_with_data(0x2000);
    g.submit(0, &fill(VA, 8, 0x0101_0101));
    g.submit(0, &flush(cache::CLEAN)); // written back, still cached
    g.wait_idle(0);
    assert_eq!(g.pread64(DATA_PA), 0x0101_0101_0101_0101);
    g.pwrite64(DATA_PA, 0x1234); // the CPU changes memory
    g.submit(0, &checksum(VA + 0x1000, VA, 8));
    g.submit(0, &flush(cache::CLEAN));
    g.wait_idle(0);
    assert_eq!(
        g.pread64(DATA_PA + 0x1000),
        fnv(&[1u8; 8]),
        "the cached line was not used"
    );
    g.submit(0, &flush(cache::INVALIDATE));
    g.submit(0, &checksum(VA + 0x1000, VA, 8));
    g.submit(0, &flush(cache::CLEAN | cache::INVALIDATE));
    g.wait_idle(0);
    assert_eq!(g.pread64(DATA_PA + 0x1000), fnv(&0x1234u64.to_le_bytes()));
}

#[test]
fn tlb_keeps_stale_translations_until_invalidated() {
    let mut g = gpu_with_data(0x1000);
    let other = DATA_PA + 0x10_0000;
    g.pwrite64(DATA_PA, 1);
    g.pwrite64(other, 2);
    g.map(0, VA + 0x1000, DATA_PA + 0x2000, 3, false, false);
    let out = VA + 0x1000;
    g.submit(0, &copy(out, VA, 8));
    g.submit(0, &flush(cache::CLEAN | cache::INVALIDATE));
    g.wait_idle(0);
    assert_eq!(g.pread64(DATA_PA + 0x2000), 1);
    // Rebind VA to another page without invalidating: the GPU still sees
    // the old page.
    g.map(0, VA, other, 3, false, false);
    g.submit(0, &copy(out, VA, 8));
    g.submit(0, &flush(cache::CLEAN | cache::INVALIDATE));
    g.wait_idle(0);
    assert_eq!(
        g.pread64(DATA_PA + 0x2000),
        1,
        "TLB entry was dropped without an invalidation"
    );
    let inv = g.counter(counter::TLB_INVALIDATIONS);
    g.flush_range(0, VA, 0x1000);
    assert_eq!(g.counter(counter::TLB_INVALIDATIONS), inv + 1);
    g.submit(0, &copy(out, VA, 8));
    g.submit(0, &flush(cache::CLEAN | cache::INVALIDATE));
    g.wait_idle(0);
    assert_eq!(g.pread64(DATA_PA + 0x2000), 2);
    assert!(g.counter(counter::TLB_HITS) > 0 && g.counter(counter::TLB_MISSES) > 0);
    assert!(g.counter(counter::PT_READS) >= 4);
}

#[test]
fn blocks_2m_and_1g() {
    let mut g = Gpu::new();
    g.map(0, 0x4000_0000, 0, 1, false, false); // 1G block over all of guest memory
    g.map(0, 0x20_0000, DATA_PA & !0x1f_ffff, 2, false, false);
    g.enable_as(0, false);
    g.setup_queue(0, 0);
    g.pwrite64(DATA_PA + 0x10, 0x55);
    g.submit(
        0,
        &copy(
            0x4000_0000 + DATA_PA + 0x100,
            0x20_0000 + (DATA_PA & 0x1f_ffff) + 0x10,
            8,
        ),
    );
    g.submit(0, &flush(cache::CLEAN));
    assert_eq!(g.wait_idle(0) & q_status::FAULTED, 0);
    assert_eq!(g.pread64(DATA_PA + 0x100), 0x55);
}

fn expect_fault(g: &mut Gpu, cmd: &[u32], kind: u32, addr: u64, write: bool) {
    g.submit(0, cmd);
    let st = g.wait_idle(0);
    assert_ne!(st & q_status::FAULTED, 0, "no fault: status {st:#x}");
    assert_eq!(g.r32(q_off(0, q_reg::ERROR)), q_error::MMU_FAULT);
    let fs = g.r32(as_off(0, as_reg::FAULTSTATUS));
    assert_eq!(fs & fault::TYPE_MASK, kind, "faultstatus {fs:#x}");
    assert_eq!(fs & fault::WRITE != 0, write);
    assert_ne!(fs & fault::VALID, 0);
    let fa = u64::from(g.r32(as_off(0, as_reg::FAULTADDR_LO)))
        | (u64::from(g.r32(as_off(0, as_reg::FAULTADDR_HI))) << 32);
    assert_eq!(fa, addr);
    assert_ne!(g.r32(MMU_IRQ_STATUS) & 1, 0);
    assert_ne!(g.r32(JOB_IRQ_STATUS) & (1 << 16), 0);
}

#[test]
fn translation_fault_stops_the_queue_and_reset_recovers_it() {
    let mut g = gpu_with_data(0x1000);
    expect_fault(
        &mut g,
        &fill(VA + 0x5000, 4, 0),
        fault::TRANSLATION,
        VA + 0x5000,
        true,
    );
    // The queue stays stopped until reset.
    g.w32(q_off(0, q_reg::CONTROL), q_control::RESET);
    assert_eq!(g.qstatus(0), 0);
    g.w32(MMU_IRQ_STATUS, 1);
    g.setup_queue(0, 0);
    g.submit(0, &write64(VA, 9, write64::FLUSH));
    assert_eq!(g.wait_idle(0) & q_status::FAULTED, 0);
    assert_eq!(g.pread64(DATA_PA), 9);
}

#[test]
fn permission_fault_on_read_only_page() {
    let mut g = gpu_with_data(0x1000);
    g.map(0, VA + 0x1000, DATA_PA + 0x1000, 3, true, false);
    g.submit(0, &copy(VA, VA + 0x1000, 8)); // reading is fine
    assert_eq!(g.wait_idle(0) & q_status::FAULTED, 0);
    expect_fault(
        &mut g,
        &fill(VA + 0x1000, 8, 1),
        fault::PERMISSION,
        VA + 0x1000,
        true,
    );
}

#[test]
fn a_write_through_straddling_pages_follows_each_translation() {
    let mut g = gpu_with_data(0x1000);
    // VA + 0x1000 maps DATA_PA + 0x3000: not contiguous with the first page.
    g.map(0, VA + 0x1000, DATA_PA + 0x3000, 3, false, false);
    g.submit(
        0,
        &write64(VA + 0xffc, 0x1122_3344_5566_7788, write64::FLUSH),
    );
    assert_eq!(g.wait_idle(0) & q_status::FAULTED, 0);
    let mut b = [0u8; 4];
    g.pread(DATA_PA + 0xffc, &mut b);
    assert_eq!(u32::from_le_bytes(b), 0x5566_7788);
    g.pread(DATA_PA + 0x3000, &mut b);
    assert_eq!(u32::from_le_bytes(b), 0x1122_3344);
    // The physically next page is not touched.
    assert_eq!(g.pread64(DATA_PA + 0x1000), 0);
    // Into an unmapped page: a fault at its first byte, nothing beyond.
    g.unmap(0, VA + 0x1000);
    g.flush_range(0, VA + 0x1000, 0x1000);
    expect_fault(
        &mut g,
        &write64(VA + 0xffe, u64::MAX, write64::FLUSH),
        fault::TRANSLATION,
        VA + 0x1000,
        true,
    );
    assert_eq!(g.pread64(DATA_PA + 0x1000), 0);
}

#[test]
fn privileged_pages_are_out_of_reach_of_indirect_buffers() {
    let mut g = gpu_with_data(0x2000);
    g.map_privileged(0, VA + 0x2000, DATA_PA + 0x2000);
    // From the ring: allowed.
    g.submit(0, &write64(VA + 0x2000, 7, write64::FLUSH));
    assert_eq!(g.wait_idle(0) & q_status::FAULTED, 0);
    assert_eq!(g.pread64(DATA_PA + 0x2000), 7);
    // From an indirect buffer: a permission fault, and memory unchanged.
    let ib = write64(VA + 0x2000, 9, write64::FLUSH);
    g.pwrite(
        DATA_PA,
        &ib.iter().flat_map(|d| d.to_le_bytes()).collect::<Vec<_>>(),
    );
    expect_fault(
        &mut g,
        &call(VA, 4 * ib.len() as u32),
        fault::PERMISSION,
        VA + 0x2000,
        true,
    );
    assert_eq!(g.pread64(DATA_PA + 0x2000), 7);
}

#[test]
fn no_execute_pages_cannot_hold_commands() {
    let mut g = gpu_with_data(0x1000);
    g.map(0, VA + 0x2000, DATA_PA + 0x2000, 3, false, true);
    g.pwrite(
        DATA_PA + 0x2000,
        &nop(1)
            .iter()
            .flat_map(|d| d.to_le_bytes())
            .collect::<Vec<_>>(),
    );
    expect_fault(
        &mut g,
        &call(VA + 0x2000, 4),
        fault::PERMISSION,
        VA + 0x2000,
        false,
    );
}

#[test]
fn address_size_faults() {
    let mut g = Gpu::with(Options {
        dma_addr_bits: 32,
        ..Default::default()
    });
    g.map_range(0, VA, DATA_PA, 0x1000);
    g.map(0, VA + 0x1000, 0x1_0000_0000, 3, false, false); // beyond 32 bits
    g.enable_as(0, false);
    g.setup_queue(0, 0);
    expect_fault(
        &mut g,
        &fill(VA + 0x1000, 4, 0),
        fault::ADDRESS_SIZE,
        VA + 0x1000,
        true,
    );
    g.w32(q_off(0, q_reg::CONTROL), q_control::RESET);
    g.setup_queue(0, 0);
    expect_fault(
        &mut g,
        &fill(1 << 48, 4, 0),
        fault::ADDRESS_SIZE,
        1 << 48,
        true,
    );
}

#[test]
fn bus_fault_outside_guest_memory() {
    let mut g = gpu_with_data(0x1000);
    g.map(0, VA + 0x1000, MEM + 0x1000, 3, false, false);
    expect_fault(
        &mut g,
        &copy(VA, VA + 0x1000, 8),
        fault::BUS,
        VA + 0x1000,
        false,
    );
}

#[test]
fn stall_resume_and_abort() {
    let mut g = Gpu::new();
    g.map_range(0, VA, DATA_PA, 0x1000);
    g.enable_as(0, true);
    g.setup_queue(0, 0);
    g.submit(0, &fill(VA + 0x1000, 8, 0x77));
    g.submit(0, &flush(cache::CLEAN));
    let st = g.wait_idle(0);
    assert_ne!(st & q_status::STALLED, 0);
    assert_ne!(g.r32(as_off(0, as_reg::STATUS)) & as_status::STALLED, 0);
    // Fix the page tables, then resume: the access is retried.
    g.map(0, VA + 0x1000, DATA_PA + 0x1000, 3, false, false);
    g.w32(as_off(0, as_reg::COMMAND), as_cmd::RESUME);
    let st = g.wait_idle(0);
    assert_eq!(
        st & (q_status::STALLED | q_status::FAULTED),
        0,
        "status {st:#x}"
    );
    assert_eq!(g.pread64(DATA_PA + 0x1000), 0x77_0000_0077);
    // Abort turns the stall into a fault.
    g.submit(0, &fill(VA + 0x9000, 8, 1));
    assert_ne!(g.wait_idle(0) & q_status::STALLED, 0);
    g.w32(as_off(0, as_reg::COMMAND), as_cmd::ABORT);
    let t0 = std::time::Instant::now();
    while g.qstatus(0) & q_status::FAULTED == 0 {
        assert!(t0.elapsed().as_secs() < 5);
        std::thread::yield_now();
    }
}

#[test]
fn fences_seqno_and_msix() {
    let mut g = gpu_with_data(0x1000);
    // SAFETY: eventfd(2); the fd is owned by the File.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    let ev = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    g.dev.set_vector(VECTOR_JOB, Some(ev.try_clone().unwrap()));
    g.w32(JOB_IRQ_MASK, 0xffff_ffff);
    g.submit(
        0,
        &write64(VA, 42, write64::IRQ | write64::SEQNO | write64::FLUSH),
    );
    g.wait_idle(0);
    assert_eq!(g.pread64(DATA_PA), 42);
    assert_eq!(g.r32(q_off(0, q_reg::SEQNO_LO)), 42);
    assert_eq!(g.r32(JOB_IRQ_STATUS) & 1, 1);
    assert_ne!(g.r32(IRQ_STATUS) & irq::JOB, 0);
    let mut b = [0u8; 8];
    std::io::Read::read_exact(&mut &ev, &mut b).unwrap();
    assert!(u64::from_ne_bytes(b) >= 1);
    g.w32(JOB_IRQ_STATUS, 1);
    assert_eq!(g.r32(JOB_IRQ_STATUS), 0);
}

#[test]
fn wait_syncs_two_queues() {
    let mut g = gpu_with_data(0x2000);
    g.setup_queue(1, 0);
    let sem = VA + 0x1000;
    g.submit(1, &wait(sem, 5));
    g.submit(1, &write64(VA, 0xabc, write64::FLUSH));
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_ne!(g.qstatus(1) & q_status::WAITING, 0);
    assert_eq!(g.pread64(DATA_PA), 0);
    g.submit(0, &write64(sem, 5, 0)); // another queue signals through the cache
    g.wait_idle(0);
    assert_eq!(g.wait_idle(1) & q_status::WAITING, 0);
    assert_eq!(g.pread64(DATA_PA), 0xabc);
    // The CPU can release a waiter too.
    g.submit(1, &wait(sem, 6));
    std::thread::sleep(std::time::Duration::from_millis(5));
    g.pwrite64(DATA_PA + 0x1000, 6);
    g.wait_idle(1);
}

#[test]
fn hang_then_queue_reset_and_global_reset() {
    let mut g = gpu_with_data(0x1000);
    g.submit(0, &wait(VA, u64::MAX)); // never satisfied
    std::thread::sleep(std::time::Duration::from_millis(10));
    assert_ne!(g.qstatus(0) & q_status::BUSY, 0);
    g.w32(q_off(0, q_reg::CONTROL), q_control::RESET);
    assert_eq!(g.qstatus(0), 0);
    assert_eq!(g.r32(q_off(0, q_reg::HEAD)), 0);
    g.setup_queue(0, 0);
    g.submit(0, &write64(VA, 3, write64::FLUSH));
    g.wait_idle(0);
    assert_eq!(g.pread64(DATA_PA), 3);
    g.submit(0, &wait(VA, u64::MAX));
    g.w32(SCRATCH, 5);
    g.w32(RESET, RESET_GLOBAL);
    assert_eq!(g.r32(RESET_COUNT), 1);
    assert_eq!(g.r32(SCRATCH), 0);
    assert_eq!(g.qstatus(0), 0);
    assert_eq!(g.r32(as_off(0, as_reg::STATUS)), 0);
}

#[test]
fn timestamp_call_and_errors() {
    let mut g = gpu_with_data(0x4000);
    // An indirect buffer with a FILL and a TIMESTAMP.
    let ib: Vec<u32> = [fill(VA + 0x2000, 4, 0x9), timestamp(VA + 0x2008)].concat();
    g.pwrite(
        DATA_PA + 0x1000,
        &ib.iter().flat_map(|d| d.to_le_bytes()).collect::<Vec<_>>(),
    );
    g.submit(0, &call(VA + 0x1000, (ib.len() * 4) as u32));
    g.submit(0, &flush(cache::CLEAN));
    assert_eq!(g.wait_idle(0) & (q_status::ERROR | q_status::FAULTED), 0);
    assert_eq!(g.pread64(DATA_PA + 0x2000) as u32, 9);
    assert_ne!(g.pread64(DATA_PA + 0x2008), 0);
    // A CALL of itself nests too deep.
    let selfcall = call(VA + 0x3000, 16);
    g.pwrite(
        DATA_PA + 0x3000,
        &selfcall
            .iter()
            .flat_map(|d| d.to_le_bytes())
            .collect::<Vec<_>>(),
    );
    g.submit(0, &selfcall);
    assert_ne!(g.wait_idle(0) & q_status::ERROR, 0);
    assert_eq!(g.r32(q_off(0, q_reg::ERROR)), q_error::CALL_DEPTH);
    g.w32(q_off(0, q_reg::CONTROL), q_control::RESET);
    g.setup_queue(0, 0);
    g.submit(0, &[0x00ff_0000 | 0x01ee]); // bad opcode, len 1... header says len 0xff
    assert_ne!(g.wait_idle(0) & q_status::ERROR, 0);
    assert_eq!(g.r32(q_off(0, q_reg::ERROR)), q_error::BAD_LENGTH);
    g.w32(q_off(0, q_reg::CONTROL), q_control::RESET);
    g.setup_queue(0, 0);
    g.submit(0, &[0x0001_00ee]);
    assert_ne!(g.wait_idle(0) & q_status::ERROR, 0);
    assert_eq!(g.r32(q_off(0, q_reg::ERROR)), q_error::BAD_OPCODE);
    assert_eq!(g.r32(q_off(0, q_reg::ERROR_OFFSET)), 0);
}

#[test]
fn ring_wraps_around() {
    let mut g = gpu_with_data(0x1000);
    for i in 0..1000u64 {
        g.submit(0, &write64(VA, i, 0));
        if i % 100 == 0 {
            g.wait_idle(0);
        }
    }
    g.submit(0, &flush(cache::CLEAN));
    assert_eq!(g.wait_idle(0) & q_status::ERROR, 0);
    assert_eq!(g.pread64(DATA_PA), 999);
}
