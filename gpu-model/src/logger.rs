// SPDX-License-Identifier: GPL-2.0
//! The model's `log` backend: `env_logger`, writing timestamped lines
//! (`[   12.345678] INFO  message`: seconds since start, the level padded
//! to five columns) to a file or stderr, each flushed as it is written.
//!
//! The level is `info`, or `trace` with `--trace` (per-access lines; what
//! `scripts/vm.sh` passes when `FERRITE_TRACE` is set). `FERRITE_MODEL_LOG`,
//! if set, adds `env_logger` filter directives after that default, e.g.
//! `FERRITE_MODEL_LOG=info,ferrite_gpu_model::mmu=trace` to trace one
//! module; `RUST_LOG` is not read, so a variable meant for another program
//! cannot silence the model's findings.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use env_logger::{Builder, Target};

/// The environment variable with extra filter directives.
pub const FILTER_ENV: &str = "FERRITE_MODEL_LOG";

/// The logger: `trace` or `info`, then [`FILTER_ENV`]'s directives, if any.
fn builder(trace: bool, filters: Option<&str>) -> Builder {
    let mut b = Builder::new();
    b.filter_level(if trace {
        log::LevelFilter::Trace
    } else {
        log::LevelFilter::Info
    });
    if let Some(f) = filters {
        b.parse_filters(f);
    }
    let start = Instant::now();
    b.format(move |out, r| {
        let t = start.elapsed().as_secs_f64();
        writeln!(out, "[{t:10.6}] {:5} {}", r.level(), r.args())
    });
    b
}

/// Log to `path` (stderr if `None`); `trace` enables per-access lines.
pub fn init(path: Option<&Path>, trace: bool) -> std::io::Result<()> {
    let target = match path {
        Some(p) => Target::Pipe(Box::new(File::create(p)?)),
        None => Target::Stderr,
    };
    let filters = std::env::var(FILTER_ENV).ok();
    let mut b = builder(trace, filters.as_deref());
    b.target(target);
    // A logger set before (a test's) stays.
    let _ = b.try_init();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use log::Log;
    use std::sync::{Arc, Mutex};

    /// A `Write` whose bytes the test reads back.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines(trace: bool, filters: Option<&str>) -> Vec<String> {
        let sink = Sink::default();
        let mut b = builder(trace, filters);
        b.target(Target::Pipe(Box::new(sink.clone())));
        let l = b.build();
        for (level, target, msg) in [
            (log::Level::Info, "ferrite_gpu_model::device", "reset"),
            (log::Level::Warn, "vfio_user", "short read"),
            (log::Level::Trace, "ferrite_gpu_model::mmu", "walk 0x1000"),
        ] {
            let args = format_args!("{msg}");
            let rec = log::Record::builder()
                .level(level)
                .target(target)
                .args(args)
                .build();
            if l.enabled(rec.metadata()) {
                l.log(&rec);
            }
        }
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        text.lines().map(str::to_owned).collect()
    }

    #[test]
    fn lines_keep_the_models_format() {
        let l = lines(false, None);
        assert_eq!(l.len(), 2, "{l:?}");
        // "[" + seconds right-aligned in 10 columns, 6 decimals + "] ".
        let (t, rest) = l[0].split_at(13);
        assert!(t.starts_with('[') && t.ends_with("] "), "{t:?}");
        assert_eq!(t.len(), 13);
        assert!(t[1..11].trim_start().parse::<f64>().is_ok(), "{t:?}");
        assert_eq!(rest, "INFO  reset");
        assert_eq!(&l[1][13..], "WARN  short read");
    }

    #[test]
    fn trace_and_filters() {
        let l = lines(true, None);
        assert_eq!(l.len(), 3, "{l:?}");
        assert_eq!(&l[2][13..], "TRACE walk 0x1000");
        // One module traced, the rest at info.
        let l = lines(false, Some("info,ferrite_gpu_model::mmu=trace"));
        assert_eq!(l.len(), 3, "{l:?}");
        // Everything but warnings off.
        let l = lines(false, Some("warn"));
        assert_eq!(l.len(), 1, "{l:?}");
    }
}
