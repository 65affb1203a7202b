// SPDX-License-Identifier: GPL-2.0

//! debugfs: `/sys/kernel/debug/ferrite-<pci device>/` with `gem` (buffer
//! objects, own and imported, with their labels), `vms` (VMs, their slot
//! and mappings, with their BOs' labels), `sched` (the hardware
//! rings and their queues, the runnable queues, the scheduler's counts),
//! `slots`, `dma` (the DMA constraints the driver gave the DMA API:
//! `addr_bits N`, `max_segment BYTES`, `seg_boundary 0xMASK`, one a line),
//! `recover` (writing `1` resets the whole GPU and recovers, as
//! after a hang: for tests of robustness), `irq_roundtrip` (the time of a
//! register write and an interrupt back: the benchmark's floor) and
//! `inject_bind_failure` (writing N makes the next N asynchronous binds
//! fail when applied, with `ENOMEM`, as if their reservation had been
//! short: for tests of unusable VMs; reading gives the number left),
//! `inject_pt_failure` (the same for the next N page-table updates,
//! synchronous binds' included: for tests of that error path) and
//! `bind_profile` (where synchronous VM_BIND calls spend their time, per
//! phase; writing `0` starts again).

use core::fmt;

use kernel::{
    debugfs::{
        Dir,
        File, //
    },
    prelude::*,
    str::CString,
    sync::{
        atomic::Relaxed,
        Arc, //
    },
    uaccess::UserSliceReader, //
};

use crate::{
    gem::LabelFmt,
    gpu::Gpu, //
};

/// The debugfs directory of a device; its files go with it.
#[pin_data]
pub(crate) struct Debugfs {
    _dir: Dir,
    #[pin]
    gem: File<Arc<Gpu>>,
    #[pin]
    vms: File<Arc<Gpu>>,
    #[pin]
    sched: File<Arc<Gpu>>,
    #[pin]
    slots: File<Arc<Gpu>>,
    #[pin]
    dma: File<Arc<Gpu>>,
    #[pin]
    recover: File<Arc<Gpu>>,
    #[pin]
    irq_roundtrip: File<Arc<Gpu>>,
    #[pin]
    inject_bind_failure: File<Arc<Gpu>>,
    #[pin]
    inject_pt_failure: File<Arc<Gpu>>,
    #[pin]
    svm: File<Arc<Gpu>>,
    #[pin]
    bind_profile: File<Arc<Gpu>>,
}

/// Where synchronous VM_BIND calls spent their time: `calls N`, then one
/// `phase total_ns` line per phase. Writing `0` starts again.
fn bind_profile_read(gpu: &Arc<Gpu>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let p = &gpu.stats.bind_profile;
    writeln!(f, "calls {}", p.calls.load(Relaxed))?;
    for (name, ns) in crate::gpu::BIND_PHASES.iter().zip(p.ns.iter()) {
        writeln!(f, "{name} {}", ns.load(Relaxed))?;
    }
    Ok(())
}

fn bind_profile_write(gpu: &Arc<Gpu>, r: &mut UserSliceReader) -> Result {
    let mut b = [0u8; 1];
    r.read_slice(&mut b)?;
    if b[0] != b'0' {
        return Err(EINVAL);
    }
    let p = &gpu.stats.bind_profile;
    p.calls.store(0, Relaxed);
    for ns in p.ns.iter() {
        ns.store(0, Relaxed);
    }
    Ok(())
}

fn inject_read(gpu: &Arc<Gpu>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(f, "{}", gpu.stats.inject_bind_failure.load(Relaxed))
}

fn inject_write(gpu: &Arc<Gpu>, r: &mut UserSliceReader) -> Result {
    gpu.stats.inject_bind_failure.store(read_count(r)?, Relaxed);
    Ok(())
}

fn inject_pt_read(gpu: &Arc<Gpu>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(f, "{}", gpu.stats.inject_pt_failure.load(Relaxed))
}

fn inject_pt_write(gpu: &Arc<Gpu>, r: &mut UserSliceReader) -> Result {
    gpu.stats.inject_pt_failure.store(read_count(r)?, Relaxed);
    Ok(())
}

/// A count written to an injection file, in decimal.
fn read_count(r: &mut UserSliceReader) -> Result<u32> {
    let mut b = [0u8; 12];
    let n = r.len().min(b.len());
    r.read_slice(&mut b[..n])?;
    let text = core::str::from_utf8(&b[..n]).map_err(|_| EINVAL)?;
    text.trim().parse().map_err(|_| EINVAL)
}

/// One line per BO: id, size, creation flags, whether it was imported
/// (`own` or `imported`) and its label (`-` for none).
fn gem(gpu: &Arc<Gpu>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(f, "id size flags origin label")?;
    let mut ret = Ok(());
    gpu.bos.for_each(|m| {
        ret = ret.and_then(|()| {
            let origin = if m.imported { "imported" } else { "own" };
            write!(f, "{} {} {:#x} {origin} ", m.id, m.size, m.flags)?;
            m.with_label(|l| {
                if l.is_empty() {
                    writeln!(f, "-")
                } else {
                    writeln!(f, "{}", LabelFmt(l))
                }
            })
        });
    });
    ret
}

fn vms(gpu: &Arc<Gpu>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let mut ret = Ok(());
    gpu.vms.lock().for_each(|id, vm| {
        let slot = vm.hw.slot().map_or(-1, |s| s as i64);
        ret = ret.and_then(|()| {
            writeln!(
                f,
                "vm {id}: slot {slot}, {} bytes bound",
                vm.bytes_bound.load(Relaxed)
            )
        });
        vm.for_each_mapping(|va, m| {
            ret = ret.and_then(|()| m.write_line(f, va));
        });
    });
    ret
}

fn sched(gpu: &Arc<Gpu>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    crate::sched::describe(gpu, f)
}

/// The platform's floor for a job: 64 round trips of one register write
/// and one interrupt back to a threaded handler (the MSI-X self-test).
fn irq_roundtrip(gpu: &Arc<Gpu>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    const N: usize = 64;
    let mut ns = [0i64; N];
    for t in ns.iter_mut() {
        match crate::irq::self_test(gpu) {
            Ok(d) => *t = d.as_nanos(),
            Err(e) => return writeln!(f, "error {e:?}"),
        }
    }
    ns.sort_unstable();
    let mean = ns.iter().sum::<i64>() / N as i64;
    writeln!(
        f,
        "roundtrips {N} mean_ns {mean} p50_ns {} min_ns {}",
        ns[N / 2],
        ns[0]
    )
}

fn recover(gpu: &Arc<Gpu>, r: &mut UserSliceReader) -> Result {
    let mut b = [0u8; 1];
    r.read_slice(&mut b)?;
    if b[0] != b'1' {
        return Err(EINVAL);
    }
    crate::recovery::recover(gpu)
}

fn slots(gpu: &Arc<Gpu>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let s = gpu.slots.lock();
    writeln!(f, "evictions {}", s.evictions)?;
    drop(s);
    let mut ret = Ok(());
    gpu.vms.lock().for_each(|id, vm| {
        if let Some(slot) = vm.hw.slot() {
            ret = ret.and_then(|()| writeln!(f, "slot {slot}: vm {id}"));
        }
    });
    ret
}

/// The DMA constraints probe read from the device and set in its
/// `dma_parms` (the mask, the maximum segment, the segment boundary), and
/// whether firmware describes its DMA as cache-coherent.
fn dma(gpu: &Arc<Gpu>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let i = &gpu.info;
    writeln!(f, "addr_bits {}", i.dma_addr_bits)?;
    writeln!(f, "max_segment {}", i.dma_max_segment)?;
    writeln!(f, "seg_boundary {:#x}", i.dma_seg_boundary)?;
    writeln!(f, "coherent {}", u8::from(i.dma_coherent))
}

/// Mirror VMs' figures ([`crate::svm`]) and the pages the driver holds.
fn svm_read(gpu: &Arc<Gpu>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let s = &gpu.stats.svm;
    let mut chunks = 0;
    gpu.vms.lock().for_each(|_, vm| {
        if let Some(m) = vm.mirror.as_ref() {
            chunks += m.mapped();
        }
    });
    writeln!(f, "faults {}", s.faults.load(Relaxed))?;
    writeln!(f, "aborts {}", s.aborts.load(Relaxed))?;
    writeln!(f, "last_abort_errno {}", s.last_abort_errno.load(Relaxed))?;
    writeln!(f, "pages {}", s.pages.load(Relaxed))?;
    writeln!(f, "blocks_2m {}", s.blocks_2m.load(Relaxed))?;
    writeln!(f, "chunks {}", chunks)?;
    writeln!(f, "invalidations {}", s.invalidations.load(Relaxed))?;
    writeln!(f, "yields {}", gpu.sched.lock().stats.stall_yields)?;
    writeln!(f, "ns_dispatch {}", s.ns_dispatch.load(Relaxed))?;
    writeln!(f, "ns_get_pages {}", s.ns_get_pages.load(Relaxed))?;
    writeln!(f, "ns_map {}", s.ns_map.load(Relaxed))?;
    writeln!(f, "ns_resume {}", s.ns_resume.load(Relaxed))?;
    writeln!(f, "pages_held {}", gpu.stats.pages_held.load(Relaxed))?;
    writeln!(
        f,
        "pages_held_peak {}",
        gpu.stats.pages_held_peak.load(Relaxed)
    )
}

/// Writing anything resets the peak of held pages to what is held now.
fn svm_write(gpu: &Arc<Gpu>, _r: &mut UserSliceReader) -> Result {
    let now = gpu.stats.pages_held.load(Relaxed);
    gpu.stats.pages_held_peak.store(now, Relaxed);
    Ok(())
}

impl Debugfs {
    pub(crate) fn new(name: &CStr, gpu: Arc<Gpu>) -> Result<impl PinInit<Self, Error>> {
        let dir_name = CString::try_from_fmt(fmt!("ferrite-{}", name.to_str().unwrap_or("gpu")))?;
        let dir = Dir::new(&dir_name);
        Ok(try_pin_init!(Self {
            gem <- dir.read_callback_file(c"gem", gpu.clone(), &gem),
            vms <- dir.read_callback_file(c"vms", gpu.clone(), &vms),
            sched <- dir.read_callback_file(c"sched", gpu.clone(), &sched),
            slots <- dir.read_callback_file(c"slots", gpu.clone(), &slots),
            dma <- dir.read_callback_file(c"dma", gpu.clone(), &dma),
            recover <- dir.write_callback_file(c"recover", gpu.clone(), &recover),
            irq_roundtrip <- dir.read_callback_file(c"irq_roundtrip", gpu.clone(), &irq_roundtrip),
            bind_profile <- dir.read_write_callback_file(
                c"bind_profile",
                gpu.clone(),
                &bind_profile_read,
                &bind_profile_write
            ),
            inject_bind_failure <- dir.read_write_callback_file(
                c"inject_bind_failure",
                gpu.clone(),
                &inject_read,
                &inject_write
            ),
            svm <- dir.read_write_callback_file(c"svm", gpu.clone(), &svm_read, &svm_write),
            inject_pt_failure <- dir.read_write_callback_file(
                c"inject_pt_failure",
                gpu,
                &inject_pt_read,
                &inject_pt_write
            ),
            _dir: dir,
        }))
    }
}
