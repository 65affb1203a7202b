// SPDX-License-Identifier: MIT
//! Helpers shared by `demo` and `bench`: GPU VAs, counter deltas, timing.

use std::io;
use std::time::Duration;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use ferrite::device::COUNTER_NAMES;
use ferrite::uapi::drm_ferrite_counters;
use ferrite::Device;

/// The n'th 256 MiB window from 4 GiB, as the IGT tests place their BOs.
pub fn va(n: u64) -> u64 {
    0x1_0000_0000 + n * 0x1000_0000
}

/// Check that the VAs the tool uses lie in the device's user range.
pub fn check_va_range(d: &Device, first: u64, end: u64) -> io::Result<()> {
    let info = d.info()?;
    if first < info.va_start || end > info.va_end {
        return Err(io::Error::other(format!(
            "VAs {first:#x}..{end:#x} outside the user range {:#x}..{:#x}",
            info.va_start, info.va_end
        )));
    }
    Ok(())
}

/// Counter changes between two DEV_QUERY COUNTERS snapshots.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Delta {
    /// By counter name in JSON.
    #[serde(serialize_with = "named_counters")]
    pub hw: [i64; 16],
    pub tlb_flushes: i64,
    pub jobs_submitted: i64,
    pub faults: i64,
}

fn named_counters<S: Serializer>(c: &[i64; 16], s: S) -> Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(Some(c.len()))?;
    for (n, v) in COUNTER_NAMES.iter().zip(c) {
        m.serialize_entry(n, v)?;
    }
    m.end()
}

pub const MMIO_READS: usize = 0;
pub const MMIO_WRITES: usize = 1;
pub const COMMANDS: usize = 2;
pub const BYTES_READ: usize = 3;
pub const BYTES_WRITTEN: usize = 4;
pub const TLB_HITS: usize = 5;
pub const TLB_MISSES: usize = 6;
pub const TLB_INVALIDATIONS: usize = 8;
pub const IRQS: usize = 11;
pub const DOORBELLS: usize = 12;

fn d(a: u64, b: u64) -> i64 {
    a.wrapping_sub(b) as i64
}

impl Delta {
    pub fn between(before: &drm_ferrite_counters, after: &drm_ferrite_counters) -> Delta {
        let mut hw = [0; 16];
        for (i, v) in hw.iter_mut().enumerate() {
            *v = d(after.hw[i], before.hw[i]);
        }
        Delta {
            hw,
            tlb_flushes: d(after.tlb_flushes, before.tlb_flushes),
            jobs_submitted: d(after.jobs_submitted, before.jobs_submitted),
            faults: d(after.faults, before.faults),
        }
    }

    /// `self - n * other`, element by element.
    pub fn minus(&self, other: &Delta, n: i64) -> Delta {
        let mut r = *self;
        for (a, b) in r.hw.iter_mut().zip(other.hw.iter()) {
            *a -= n * b;
        }
        r.tlb_flushes -= n * other.tlb_flushes;
        r.jobs_submitted -= n * other.jobs_submitted;
        r.faults -= n * other.faults;
        r
    }

    pub fn add(&mut self, other: &Delta) {
        for (a, b) in self.hw.iter_mut().zip(other.hw.iter()) {
            *a += b;
        }
        self.tlb_flushes += other.tlb_flushes;
        self.jobs_submitted += other.jobs_submitted;
        self.faults += other.faults;
    }

    fn min(&self, other: &Delta) -> Delta {
        let mut r = *self;
        for (a, b) in r.hw.iter_mut().zip(other.hw.iter()) {
            *a = (*a).min(*b);
        }
        r.tlb_flushes = r.tlb_flushes.min(other.tlb_flushes);
        r.jobs_submitted = r.jobs_submitted.min(other.jobs_submitted);
        r.faults = r.faults.min(other.faults);
        r
    }
}

/// What one DEV_QUERY COUNTERS adds to the counters it reports (its own
/// MMIO reads): the smallest delta of two back-to-back queries.
pub fn counters_query_cost(dev: &Device) -> io::Result<Delta> {
    let mut best: Option<Delta> = None;
    for _ in 0..5 {
        let a = dev.counters()?;
        let b = dev.counters()?;
        let x = Delta::between(&a, &b);
        best = Some(best.map_or(x, |m| m.min(&x)));
    }
    Ok(best.unwrap_or_default())
}

/// Mean, median and minimum of a set of durations, in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Times {
    pub mean: f64,
    pub p50: f64,
    pub min: f64,
}

impl Times {
    pub fn of(samples: &[Duration]) -> Times {
        if samples.is_empty() {
            return Times::default();
        }
        let mut us: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e6).collect();
        us.sort_by(|a, b| a.total_cmp(b));
        Times {
            mean: us.iter().sum::<f64>() / us.len() as f64,
            p50: us[us.len() / 2],
            min: us[0],
        }
    }
}

pub fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_mean_median_min() {
        let t = Times::of(&[3, 1, 2, 10].map(Duration::from_micros));
        assert_eq!((t.mean, t.p50, t.min), (4.0, 3.0, 1.0));
    }

    #[test]
    fn delta_arithmetic() {
        let mut a = drm_ferrite_counters::default();
        let mut b = drm_ferrite_counters::default();
        a.hw[0] = 100;
        b.hw[0] = 196;
        b.hw[1] = 3;
        b.tlb_flushes = 2;
        let x = Delta::between(&a, &b);
        assert_eq!((x.hw[0], x.hw[1], x.tlb_flushes), (96, 3, 2));
        let mut q = Delta::default();
        q.hw[0] = 32;
        let y = x.minus(&q, 3);
        assert_eq!(y.hw[0], 0);
        let mut s = y;
        s.add(&x);
        assert_eq!(s.hw[1], 6);
    }
}
