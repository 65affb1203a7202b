// SPDX-License-Identifier: MIT
//! `ferrite`: command-line tool for Ferrite GPUs.

use std::process::ExitCode;

use ferrite::device::COUNTER_NAMES;
use ferrite::Device;

const USAGE: &str = "usage: ferrite <command>
commands:
  info     list the Ferrite GPUs and what their driver reports
  demo     identify every GPU, then create, map and check a buffer object
           on each and show the client's fdinfo keys";

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
    let map = |off: u64| -> std::io::Result<*mut u32> {
        // SAFETY: a fresh shared mapping of the DRM fd at the BO's fake offset.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                d.fd(),
                off as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(p.cast())
    };
    let off = d.gem_mmap_offset(bo)?;
    let a = map(off)?;
    let words = SIZE / 4;
    for i in 0..words {
        // SAFETY: i < words, inside the mapping.
        unsafe { a.add(i).write_volatile(i as u32 ^ 0x5a5a_5a5a) };
    }
    let b = map(off)?;
    // SAFETY: i < words, inside the second mapping.
    let bad = (0..words)
        .filter(|&i| unsafe { b.add(i).read_volatile() } != i as u32 ^ 0x5a5a_5a5a)
        .count();
    // SAFETY: both mappings were created above with SIZE bytes.
    unsafe {
        libc::munmap(a.cast(), SIZE);
        libc::munmap(b.cast(), SIZE);
    }
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
    Ok(())
}

fn main() -> ExitCode {
    let cmd = std::env::args().nth(1).unwrap_or_default();
    let r = match cmd.as_str() {
        "info" => info(),
        "demo" => demo(),
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
