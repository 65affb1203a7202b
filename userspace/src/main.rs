// SPDX-License-Identifier: MIT
//! `ferrite`: command-line tool for Ferrite GPUs.

use std::process::ExitCode;

use ferrite::device::COUNTER_NAMES;
use ferrite::Device;

mod cli {
    pub mod bench;
    pub mod bench_bind;
    pub mod common;
    pub mod demo;
}

const USAGE: &str = "usage: ferrite <command>
commands:
  info     list the Ferrite GPUs and what their driver reports
  demo     identify every GPU, create, map and check a buffer object on
           each and show the client's fdinfo keys; then run one job on
           GPU 0 (FILL, COPY, CHECKSUM) and check it against the CPU
  bench [--iters N]
           on GPU 0: null-ioctl floor, VM_BIND map/unmap of 4 KiB, 1 MiB
           and 32 MiB, NOP submit to fence, and MMIO/TLB counters per
           call (N floor and submit iterations, N/4 binds per size;
           default 200); N 4 KiB maps against the null ioctl with the
           driver's bind profile, asynchronous batches of 1,000 binds,
           another VM's binds against this VM's job latency";

fn info() -> std::io::Result<()> {
    let devs = Device::all()?;
    if devs.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no Ferrite GPU found",
        ));
    }
    for (i, d) in devs.iter().enumerate() {
        let v = d.version()?;
        println!(
            "gpu{i}: {} at PCI {}: driver {} {}.{}.{} ({})",
            d.path().display(),
            d.pci_address()?,
            v.name,
            v.major,
            v.minor,
            v.patchlevel,
            v.desc
        );
        let info = d.info()?;
        println!(
            "  hw {}.{}, uapi {}.{}, features {:#x}",
            info.hw_version >> 16,
            info.hw_version & 0xffff,
            info.uapi_version >> 16,
            info.uapi_version & 0xffff,
            info.features
        );
        println!(
            "  constraints: {}-bit DMA, max segment {} bytes; {} queues, {} address spaces",
            info.dma_addr_bits, info.dma_max_segment, info.num_queues, info.num_as
        );
        println!(
            "  GPU VA: {} bits, user range {:#x}..{:#x}, page sizes {:#x}",
            info.va_bits, info.va_start, info.va_end, info.page_sizes
        );
        // Interface 0.3's queries; an older driver lacks them.
        if let Ok(f) = d.uapi_features() {
            println!("  uapi features {f:#x}");
        }
        if let Ok(m) = d.memory() {
            println!(
                "  memory: {} MiB usable, budget {} MiB, BOs up to {} GiB",
                m.total >> 20,
                m.available >> 20,
                m.max_bo_size >> 30
            );
        }
        if let Ok(t) = d.timestamp() {
            println!(
                "  GPU clock: {} Hz, at {} (CLOCK_MONOTONIC {} ns, sampled within {} ns)",
                t.timestamp_frequency, t.gpu_timestamp, t.cpu_monotonic_ns, t.sample_window_ns
            );
        }
        let c = d.counters()?;
        let hw: Vec<String> = COUNTER_NAMES
            .iter()
            .zip(c.hw.iter())
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        println!("  counters: {}", hw.join(" "));
        println!(
            "  kernel mappings: user {} bytes, kernel {} bytes",
            c.kmap_user_bytes, c.kmap_kernel_bytes
        );
    }
    Ok(())
}

/// Create a BO, fill it through one CPU mapping, check it through another,
/// and show what fdinfo reports for this client.
fn bo_round_trip(d: &Device) -> std::io::Result<()> {
    const SIZE: usize = 1 << 20;
    let bo = d.gem_create(SIZE as u64)?;
    let words = SIZE / 4;
    let data: Vec<u8> = (0..words as u32)
        .flat_map(|i| (i ^ 0x5a5a_5a5a).to_ne_bytes())
        .collect();
    let mut a = d.mmap(bo)?;
    a.write(0, &data);
    let b = d.mmap(bo)?;
    let got = b.to_vec();
    let bad = got
        .chunks_exact(4)
        .zip(data.chunks_exact(4))
        .filter(|(x, y)| x != y)
        .count();
    drop((a, b));
    println!(
        "  BO {} ({} KiB): written through one mapping, {} of {words} words differ through another",
        bo.handle,
        bo.size >> 10,
        bad
    );
    let fdinfo = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", d.fd()))?;
    for l in fdinfo.lines().filter(|l| l.starts_with("drm-")) {
        println!("  fdinfo {l}");
    }
    d.gem_close(bo)?;
    if bad != 0 {
        return Err(std::io::Error::other("buffer object contents differ"));
    }
    Ok(())
}

fn demo() -> std::io::Result<()> {
    info()?;
    for (i, d) in Device::all()?.iter().enumerate() {
        println!("gpu{i}:");
        bo_round_trip(d)?;
    }
    cli::demo::run(&Device::open(0)?)
}

fn bench(args: &[String]) -> std::io::Result<()> {
    let mut n = 200;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--iters" => {
                n = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&v: &usize| v > 0)
                    .ok_or_else(|| std::io::Error::other("--iters needs a positive number"))?;
            }
            _ => return Err(std::io::Error::other(format!("unknown option {a}"))),
        }
    }
    cli::bench::run(&Device::open(0)?, cli::bench::Iters::new(n))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cmd = args.first().cloned().unwrap_or_default();
    let r = match cmd.as_str() {
        "info" => info(),
        "demo" => demo(),
        "bench" => bench(&args[1..]),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferrite {cmd}: {e}");
            ExitCode::FAILURE
        }
    }
}
