// SPDX-License-Identifier: MIT
//! `ferrite demo`: one job that fills, copies and checksums buffers through
//! the GPU's MMU, checked against what the CPU computes.

use std::io;
use std::time::{Duration, Instant};

use ferrite::cmds::fill_bytes;
use ferrite::{fnv1a, BoRef, Cmds, Device, SyncOp};

use super::common::{self, va, Delta};

const SIZE: u64 = 1 << 20;
/// What the FILL covers in A: from 4 KiB in, 64 KiB plus an odd tail.
const FILL_OFF: u64 = 4096;
const FILL_LEN: u64 = (64 << 10) + 12;
const PATTERN: u32 = 0xa1b2_c3d4;
const MARKER: u64 = 0x1234_5678_90ab_cdef;

/// The CPU's source pattern in A.
fn source_byte(i: usize) -> u8 {
    ((i as u32).wrapping_mul(2_654_435_761) >> 24) as u8 ^ (i as u8)
}

pub fn run(d: &Device) -> io::Result<()> {
    // The result and command BOs are one page: the CPU page, the granule
    // of BO sizes and binds (16 KiB on some arm64 kernels).
    let page = d.page_sizes()?.bind();
    let (va_a, va_b, va_r, va_c) = (va(1), va(2), va(3), va(4));
    common::check_va_range(d, va_a, va_c + page)?;
    let vm = d.vm_create()?;
    let queue = d.queue_create(vm, 0)?;
    let a = d.gem_create(SIZE)?;
    let b = d.gem_create(SIZE)?;
    let r = d.gem_create(page)?;
    let c = d.gem_create(page)?;
    let so = d.syncobj_create(false)?;

    // The CPU's half: the source pattern in A, the commands in C.
    let src: Vec<u8> = (0..SIZE as usize).map(source_byte).collect();
    let mut ma = d.mmap(a)?;
    ma.write(0, &src);
    let mb = d.mmap(b)?;
    let mr = d.mmap(r)?;
    let mut cmds = Cmds::new();
    cmds.fill(va_a + FILL_OFF, FILL_LEN, PATTERN)
        .copy(va_b, va_a, SIZE)
        .checksum(va_r, va_b, SIZE)
        .write64(va_r + 8, MARKER, 0);
    d.mmap(c)?.write(0, &cmds.to_bytes());

    let t = Instant::now();
    d.vm_map(vm, a, 0, va_a, SIZE, 0)?;
    d.vm_map(vm, b, 0, va_b, SIZE, 0)?;
    d.vm_map(vm, r, 0, va_r, page, 0)?;
    d.vm_map(
        vm,
        c,
        0,
        va_c,
        page,
        ferrite::uapi::DRM_FERRITE_VM_BIND_READONLY,
    )?;
    let t_bind = t.elapsed();

    let qcost = common::counters_query_cost(d)?;
    let before = d.counters()?;
    let t = Instant::now();
    d.submit(
        queue,
        va_c,
        cmds.size(),
        &[SyncOp::signal(so)],
        &[
            BoRef::write(a),
            BoRef::write(b),
            BoRef::write(r),
            BoRef::read(c),
        ],
    )?;
    let t_submit = t.elapsed();
    let signalled = d.syncobj_wait(&[so], Duration::from_secs(10))?;
    let t_job = t.elapsed();
    let after = d.counters()?;
    let delta = Delta::between(&before, &after).minus(&qcost, 1);
    if !signalled {
        return Err(io::Error::other("FAIL: the job did not signal within 10 s"));
    }
    let status = d.syncobj_status(so)?;
    let st = d.queue_state(queue, false)?;

    // The CPU's expectation.
    let t = Instant::now();
    let mut expect = src;
    let fill = FILL_OFF as usize..(FILL_OFF + FILL_LEN) as usize;
    for (e, p) in expect[fill]
        .iter_mut()
        .zip(fill_bytes(PATTERN, FILL_LEN as usize))
    {
        *e = p;
    }
    let want_sum = fnv1a(&expect);
    let t_cpu = t.elapsed();
    let got_a = ma.to_vec();
    let got_b = mb.to_vec();
    let got_sum = mr.read_u64(0);
    let got_marker = mr.read_u64(8);

    let bad_a = got_a.iter().zip(&expect).filter(|(x, y)| x != y).count();
    let bad_b = got_b.iter().zip(&expect).filter(|(x, y)| x != y).count();
    let first_bad_b = got_b.iter().zip(&expect).position(|(x, y)| x != y);
    println!(
        "gpu0 job: VM {vm}, queue {queue}; A and B {} KiB, result {} B, {} command dwords",
        SIZE >> 10,
        page,
        cmds.dwords().len()
    );
    println!(
        "  FILL A+{FILL_OFF:#x} {FILL_LEN} B with {PATTERN:#010x}; COPY A->B {SIZE} B; CHECKSUM B -> result; WRITE64 marker"
    );
    println!(
        "  fence status {status}, queue state {} (error {}, failed jobs {})",
        st.state, st.error, st.failed_jobs
    );
    println!(
        "  A: {bad_a} bytes differ; B: {bad_b} bytes differ{}",
        first_bad_b.map_or(String::new(), |i| format!(
            " (first at {i:#x}: {:#04x}, want {:#04x})",
            got_b[i], expect[i]
        ))
    );
    println!("  checksum GPU {got_sum:#018x}, CPU {want_sum:#018x}; marker {got_marker:#018x}");
    println!(
        "  timings: 4 binds {:.0} us; submit ioctl {:.0} us; submit->signal {:.0} us; CPU fill+FNV-1a {:.0} us",
        common::us(t_bind),
        common::us(t_submit),
        common::us(t_job),
        common::us(t_cpu)
    );
    println!(
        "  device counters over the job (one counters query subtracted): commands {}, bytes read {}, bytes written {}, TLB hits {}, TLB misses {}, MMIO reads {}, MMIO writes {}, irqs {}",
        delta.hw[common::COMMANDS],
        delta.hw[common::BYTES_READ],
        delta.hw[common::BYTES_WRITTEN],
        delta.hw[common::TLB_HITS],
        delta.hw[common::TLB_MISSES],
        delta.hw[common::MMIO_READS],
        delta.hw[common::MMIO_WRITES],
        delta.hw[common::IRQS],
    );

    drop((ma, mb, mr));
    d.vm_bind(
        vm,
        &[
            ferrite::BindOp::unmap(va_a, SIZE),
            ferrite::BindOp::unmap(va_b, SIZE),
            ferrite::BindOp::unmap(va_r, page),
            ferrite::BindOp::unmap(va_c, page),
        ],
        &[],
    )?;
    for bo in [a, b, r, c] {
        d.gem_close(bo)?;
    }
    d.syncobj_destroy(so)?;
    d.queue_destroy(queue)?;
    d.vm_destroy(vm)?;

    let ok = status == 1
        && st.state == 0
        && bad_a == 0
        && bad_b == 0
        && got_sum == want_sum
        && got_marker == MARKER;
    if !ok {
        println!("FAIL: gpu0 job results differ from the CPU's");
        return Err(io::Error::other("GPU results differ from the CPU's"));
    }
    println!(
        "PASS: gpu0 FILL {FILL_LEN} B + COPY {} KiB + CHECKSUM {} KiB match the CPU (checksum {want_sum:#018x}); submit->signal {:.0} us, GPU {:.1} MB/s",
        SIZE >> 10,
        SIZE >> 10,
        common::us(t_job),
        (delta.hw[common::BYTES_READ] + delta.hw[common::BYTES_WRITTEN]) as f64
            / t_job.as_secs_f64()
            / 1e6
    );
    Ok(())
}
