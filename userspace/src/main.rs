// SPDX-License-Identifier: MIT
//! `ferrite`: command-line tool for Ferrite GPUs.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use ferrite::Device;

mod cli {
    pub mod bench;
    pub mod bench_bind;
    pub mod bench_svm;
    pub mod common;
    pub mod demo;
    pub mod info;
}

/// What `--version` prints after the name: the tool's version and the
/// interface it speaks ([`ferrite::UAPI_VERSION`], checked by a test).
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (Ferrite UAPI 0.7)");

/// Command-line tool for Ferrite GPUs.
#[derive(Debug, Parser)]
#[command(name = "ferrite", version = VERSION, arg_required_else_help = true)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// List the Ferrite GPUs and what their driver reports
    Info {
        /// Print one JSON document instead of text (without a GPU: an
        /// empty "gpus" list, and still exit status 1)
        #[arg(long)]
        json: bool,
    },
    /// Identify every GPU, check a buffer object on each, run one job on GPU 0
    ///
    /// Identify every GPU, create, map and check a buffer object on each
    /// and show the client's fdinfo keys; then run one job on GPU 0 (FILL,
    /// COPY, CHECKSUM) and check it against the CPU.
    Demo,
    /// Benchmark GPU 0: null-ioctl floor, VM_BIND, NOP submit, scheduler, SVM
    ///
    /// On GPU 0: null-ioctl floor, VM_BIND map/unmap of 4 KiB, 1 MiB and
    /// 32 MiB, NOP submit to fence, and MMIO/TLB counters per call (N floor
    /// and submit iterations, N/4 binds per size); N 4 KiB maps against the
    /// null ioctl with the driver's bind profile, asynchronous batches of
    /// 1,000 binds, another VM's binds against this VM's job latency; where
    /// the GPU mirrors, GPU page-fault latency and a 64 MiB FILL by faults
    /// against a userptr and a BO.
    Bench {
        /// Iterations of the floor and submit loops (binds: N/4 per size)
        #[arg(long, value_name = "N", default_value_t = 200, value_parser = positive)]
        iters: usize,
        /// Print the measurements as one JSON document instead of the report
        #[arg(long)]
        json: bool,
    },
}

impl Cmd {
    fn name(&self) -> &'static str {
        match self {
            Cmd::Info { .. } => "info",
            Cmd::Demo => "demo",
            Cmd::Bench { .. } => "bench",
        }
    }
}

fn positive(s: &str) -> Result<usize, String> {
    s.parse()
        .ok()
        .filter(|&v: &usize| v > 0)
        .ok_or_else(|| "needs a positive number".to_string())
}

/// The exit status of a command line clap refused, as before clap: 2
/// without a known command (usage), 1 for a known command's bad options.
fn refused_status(args: &[OsString]) -> u8 {
    let known = args
        .get(1)
        .and_then(|a| a.to_str())
        .is_some_and(|a| Cli::command().get_subcommands().any(|c| c.get_name() == a));
    if known {
        1
    } else {
        2
    }
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
    cli::info::run(false)?;
    for (i, d) in Device::all()?.iter().enumerate() {
        println!("gpu{i}:");
        bo_round_trip(d)?;
    }
    cli::demo::run(&Device::open(0)?)
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) => {
            // --help and --version print to stdout and succeed.
            let status = if e.use_stderr() {
                refused_status(&args)
            } else {
                0
            };
            let _ = e.print();
            return ExitCode::from(status);
        }
    };
    let r = match cli.cmd {
        Cmd::Info { json } => cli::info::run(json),
        Cmd::Demo => demo(),
        Cmd::Bench { iters, json } => {
            Device::open(0).and_then(|d| cli::bench::run(&d, cli::bench::Iters::new(iters), json))
        }
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferrite {}: {e}", cli.cmd.name());
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn version_names_the_librarys_uapi() {
        let (major, minor) = ferrite::UAPI_VERSION;
        assert!(VERSION.ends_with(&format!(" (Ferrite UAPI {major}.{minor})")));
    }

    #[test]
    fn bench_takes_iterations() {
        let c = Cli::try_parse_from(["ferrite", "bench", "--iters", "40", "--json"]).unwrap();
        assert!(matches!(
            c.cmd,
            Cmd::Bench {
                iters: 40,
                json: true
            }
        ));
        let c = Cli::try_parse_from(["ferrite", "bench"]).unwrap();
        assert!(matches!(
            c.cmd,
            Cmd::Bench {
                iters: 200,
                json: false
            }
        ));
        assert!(Cli::try_parse_from(["ferrite", "bench", "--iters", "0"]).is_err());
    }

    #[test]
    fn refused_command_lines_exit_as_before() {
        let args = |a: &[&str]| -> Vec<OsString> { a.iter().map(OsString::from).collect() };
        assert_eq!(refused_status(&args(&["ferrite"])), 2);
        assert_eq!(refused_status(&args(&["ferrite", "frobnicate"])), 2);
        assert_eq!(
            refused_status(&args(&["ferrite", "bench", "--iters", "x"])),
            1
        );
    }
}
