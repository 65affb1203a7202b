// SPDX-License-Identifier: MIT
//! `ferrite`: command-line tool for Ferrite GPUs.

use std::process::ExitCode;

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
