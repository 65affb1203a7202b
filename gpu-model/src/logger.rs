// SPDX-License-Identifier: GPL-2.0
//! A small `log` backend writing timestamped lines to a file or stderr.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

struct Logger {
    out: Mutex<Box<dyn Write + Send>>,
    start: Instant,
}

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &log::Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let t = self.start.elapsed().as_secs_f64();
        let mut o = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(o, "[{t:10.6}] {:5} {}", r.level(), r.args());
        let _ = o.flush();
    }

    fn flush(&self) {}
}

/// Log to `path` (stderr if `None`); `trace` enables per-access lines.
pub fn init(path: Option<&Path>, trace: bool) -> std::io::Result<()> {
    let out: Box<dyn Write + Send> = match path {
        Some(p) => Box::new(File::create(p)?),
        None => Box::new(std::io::stderr()),
    };
    let logger = Box::leak(Box::new(Logger {
        out: Mutex::new(out),
        start: Instant::now(),
    }));
    let _ = log::set_logger(logger);
    log::set_max_level(if trace {
        log::LevelFilter::Trace
    } else {
        log::LevelFilter::Info
    });
    Ok(())
}
