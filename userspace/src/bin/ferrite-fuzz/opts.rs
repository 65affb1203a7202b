// SPDX-License-Identifier: MIT
//! Command-line options.

use crate::engine::{self, RunOpts};
use crate::rng;

pub const USAGE: &str = "usage: ferrite-fuzz [options]
  --calls N      total ioctl (and mmap, munmap, mprotect, madvise) count over
                 all processes (default 200000, about 2 minutes under TCG)
  --seconds S    wall-clock cap (default 120); whichever comes first ends the run
  --seed X       PRNG seed, decimal or 0x hex (default: from the clock)
  --threads N    threads per fuzz process, sharing its files (default 1)
  --procs N      fuzz processes, each with its own files (default 1); with
                 N >= 2 two more run: one opening and closing files over and
                 over, one forking children that use its inherited file
  --aux/--no-aux force or disable those two extra processes
  --trace        print every call
  --skip A,B     leave out these operations (to narrow a finding down); the
                 names: {OPS}
A run with --threads 1 --procs 1 replays exactly from its seed. The PRNG is
rand_xoshiro's Xoshiro256++: seeds printed before it replaced the fuzzer's own
SplitMix64 (November 2026) do not replay the same calls. Exit status:
0 without findings, 1 with findings, 2 on usage or setup errors.";

#[derive(Debug, Clone)]
pub struct Opts {
    pub calls: u64,
    pub seconds: f64,
    pub seed: u64,
    pub threads: u32,
    pub procs: u32,
    pub aux: Option<bool>,
    pub trace: bool,
    pub skip: Vec<String>,
}

fn parse_u64(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

pub fn parse_args(args: &[String]) -> Result<Opts, String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut o = Opts {
        calls: 200_000,
        seconds: 120.0,
        seed: rng::mix(now ^ u64::from(std::process::id())),
        threads: 1,
        procs: 1,
        aux: None,
        trace: false,
        skip: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--calls" => o.calls = parse_u64(&val(a)?).ok_or("--calls: not a number")?,
            "--seconds" => {
                o.seconds = val(a)?
                    .parse()
                    .ok()
                    .filter(|s: &f64| *s > 0.0)
                    .ok_or("--seconds: not a positive number")?
            }
            "--seed" => o.seed = parse_u64(&val(a)?).ok_or("--seed: not a u64")?,
            "--threads" => {
                o.threads = parse_u64(&val(a)?)
                    .filter(|&n| (1..=64).contains(&n))
                    .ok_or("--threads: 1..64")? as u32
            }
            "--procs" => {
                o.procs = parse_u64(&val(a)?)
                    .filter(|&n| (1..=64).contains(&n))
                    .ok_or("--procs: 1..64")? as u32
            }
            "--aux" => o.aux = Some(true),
            "--no-aux" => o.aux = Some(false),
            "--trace" => o.trace = true,
            "--skip" => o.skip.extend(
                val(a)?
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from),
            ),
            "-h" | "--help" => return Err(String::new()),
            _ => return Err(format!("unknown option {a}")),
        }
    }
    Ok(o)
}

/// The options and the engine's settings from the command line, or the
/// exit code after a usage error (the usage printed).
pub fn from_args() -> Result<(Opts, RunOpts), u8> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = || eprintln!("{}", USAGE.replace("{OPS}", &engine::op_names().join(" ")));
    let o = match parse_args(&args) {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("ferrite-fuzz: {e}");
            }
            usage();
            return Err(2);
        }
    };
    let run = match engine::weights(&o.skip) {
        Ok(weights) => RunOpts {
            trace: o.trace,
            weights,
            replay_extra: if o.skip.is_empty() {
                String::new()
            } else {
                format!(" --skip {}", o.skip.join(","))
            },
            inject_pending: false,
        },
        Err(e) => {
            eprintln!("ferrite-fuzz: --skip: {e}");
            return Err(2);
        }
    };
    Ok((o, run))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options() {
        let o = parse_args(&args(&["--seed", "0x10", "--calls", "5", "--threads", "2"])).unwrap();
        assert_eq!((o.seed, o.calls, o.threads, o.procs), (16, 5, 2, 1));
        assert_eq!(o.seconds, 120.0);
        let o = parse_args(&args(&[
            "--seed",
            "123",
            "--seconds",
            "1.5",
            "--procs",
            "3",
            "--no-aux",
        ]))
        .unwrap();
        assert_eq!(
            (o.seed, o.seconds, o.procs, o.aux),
            (123, 1.5, 3, Some(false))
        );
        assert!(parse_args(&args(&["--threads", "0"])).is_err());
        assert!(parse_args(&args(&["--seed"])).is_err());
        assert!(parse_args(&args(&["--bogus"])).is_err());
        assert!(parse_args(&args(&["--seconds", "-1"])).is_err());
    }
}
