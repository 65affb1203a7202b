// SPDX-License-Identifier: MIT
//! `ferrite`: command-line tool for Ferrite GPUs.

use std::process::ExitCode;

use ferrite::device::COUNTER_NAMES;
use ferrite::Device;

const USAGE: &str = "usage: ferrite <command>
commands:
  info     list the Ferrite GPUs and what their driver reports
  demo     the walking-skeleton demo: find, open and identify every GPU";

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

fn main() -> ExitCode {
    let cmd = std::env::args().nth(1).unwrap_or_default();
    let r = match cmd.as_str() {
        "info" | "demo" => info(),
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
