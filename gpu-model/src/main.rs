// SPDX-License-Identifier: GPL-2.0
//! `ferrite-gpu`: the Ferrite GPU as a vfio-user server process.
//!
//! One process is one GPU. It listens on a unix socket, serves one QEMU
//! connection and exits when QEMU closes it.

use ferrite_gpu_model::{logger, regs, vfio, Device, Options};

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

const USAGE: &str = "usage: ferrite-gpu --socket PATH [--log FILE] [--trace]
       [--dma-bits 32..=64] [--max-segment BYTES] [--seg-boundary MASK]
(DMA_ADDR_BITS reports min(--dma-bits, 47): the null aperture is above;
MASK, decimal or 0x-prefixed hex, is all-ones for no boundary (the default)
or one less than a power of two of at least 4096)";

struct Args {
    socket: PathBuf,
    log: Option<PathBuf>,
    trace: bool,
    opts: Options,
}

fn parse_args() -> Result<Args, String> {
    let mut socket = None;
    let mut log = None;
    let mut trace = false;
    let mut opts = Options::default();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--socket" => socket = Some(PathBuf::from(val()?)),
            "--log" => log = Some(PathBuf::from(val()?)),
            "--trace" => trace = true,
            "--dma-bits" => {
                let v = val()?;
                opts.dma_addr_bits = v.parse().map_err(|_| format!("bad --dma-bits {v}"))?;
                if !(32..=64).contains(&opts.dma_addr_bits) {
                    return Err(format!("--dma-bits {v} is outside 32..=64"));
                }
            }
            "--max-segment" => {
                let v = val()?;
                opts.dma_max_segment = v.parse().map_err(|_| format!("bad --max-segment {v}"))?;
                if opts.dma_max_segment < 4096 {
                    return Err(format!("--max-segment {v} is below 4096"));
                }
            }
            "--seg-boundary" => {
                let v = val()?;
                let mask = match v.strip_prefix("0x") {
                    Some(h) => u64::from_str_radix(h, 16),
                    None => v.parse(),
                };
                opts.dma_seg_boundary = mask.map_err(|_| format!("bad --seg-boundary {v}"))?;
                if !regs::valid_seg_boundary(opts.dma_seg_boundary) {
                    return Err(format!(
                        "--seg-boundary {v}: not all-ones, nor one less than a power of two >= 4096"
                    ));
                }
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            _ => return Err(format!("unknown argument {a}\n{USAGE}")),
        }
    }
    Ok(Args {
        socket: socket.ok_or(USAGE)?,
        log,
        trace,
        opts,
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = logger::init(args.log.as_deref(), args.trace) {
        eprintln!("cannot open log: {e}");
        return ExitCode::FAILURE;
    }
    log::info!(
        "ferrite-gpu: socket {} options {:?}",
        args.socket.display(),
        args.opts
    );

    let dev = Arc::new(Device::new(args.opts));
    dev.start();
    let server = match vfio_user::Server::new(&args.socket, true, vfio::irqs(), vfio::regions()) {
        Ok(s) => s,
        Err(e) => {
            log::error!("cannot listen on {}: {e:?}", args.socket.display());
            eprintln!("cannot listen on {}: {e:?}", args.socket.display());
            return ExitCode::FAILURE;
        }
    };
    let mut backend = vfio::Backend::new(dev.clone());
    let r = server.run(&mut backend);
    dev.stop();
    let (null_read, null_written) = dev.null_traffic();
    log::info!(
        "null aperture: {null_read} bytes read as zeros, {null_written} bytes of writes dropped"
    );
    dev.unmap_all();
    match r {
        Ok(()) => {
            log::info!("client closed the connection; exiting");
            ExitCode::SUCCESS
        }
        Err(e) => {
            log::error!("server stopped: {e:?}");
            ExitCode::FAILURE
        }
    }
}
