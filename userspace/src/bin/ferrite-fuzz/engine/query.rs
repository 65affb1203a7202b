// SPDX-License-Identifier: MIT
//! DEV_QUERY: every query type and unknown ones, with short, long and
//! random sizes.

use super::*;

impl Worker<'_> {
    pub(super) fn op_dev_query(&mut self, f: &FileCtx) {
        const INFO_LEN: u32 = std::mem::size_of::<drm_ferrite_dev_info>() as u32;
        let ty = match self.rng.below(14) {
            0..=4 => INFO,
            5..=7 => COUNTERS,
            8 => SCHED,
            9 => TIMESTAMP,
            10 => *self.rng.pick(&[MEMORY, MMU, FEATURES]).unwrap(),
            _ => self.rng.interesting_u32(),
        };
        let len = query_len(ty);
        let before_ns = drm::monotonic_ns();
        let full = len.unwrap_or(64);
        let size = match self.rng.below(10) {
            0..=6 => full,
            7 => self.rng.below(u64::from(full)) as u32,
            8 => full + 8 * self.rng.range(1, 8) as u32,
            _ => self.rng.interesting_u32(),
        };
        let null = self.rng.chance(1, 10);
        let kind = gen::out_ptr(&mut self.rng);
        let n = u64::from(len.map_or(0, |l| size.min(l)));
        let p = if null {
            Placed {
                ptr: 0,
                accessible: 0,
                shared: false,
            }
        } else {
            self.place_out(f, n, kind)
        };
        let known = len.is_some();
        let plain = null || matches!(kind, Ptr::Valid | Ptr::BoMapping);
        let ex = Expect {
            must_fail: known && p.ptr != 0 && p.accessible < n,
            must_succeed: known && plain && (p.ptr == 0 || p.accessible >= n),
            ..Default::default()
        };
        let mut q = uapi::drm_ferrite_dev_query {
            type_: ty,
            size,
            pointer: p.ptr,
        };
        let r = self.ioctl(f.raw(), "DEV_QUERY", IOCTL_DEV_QUERY, &mut q, ex, &nothing);
        let Some(full_len) = len else { return };
        if r.is_err() {
            return;
        }
        let want = if p.ptr == 0 { full_len } else { n as u32 };
        if q.size != want {
            self.finding(
                &format!(
                    "DEV_QUERY type {ty} with size {size} and pointer {:#x} reported size {}, expected {want}",
                    p.ptr, q.size
                ),
                "",
            );
        }
        if ty == TIMESTAMP && kind == Ptr::Valid && !null && Some(n as u32) == len {
            let after_ns = drm::monotonic_ns();
            // SAFETY: the kernel wrote a drm_ferrite_timestamp_info at this scratch address.
            let t = unsafe {
                std::ptr::read_unaligned(p.ptr as *const uapi::drm_ferrite_timestamp_info)
            };
            let mono = t.cpu_monotonic_ns as i64;
            if t.timestamp_frequency != 1_000_000_000 || mono < before_ns || mono > after_ns {
                self.finding(
                    &format!(
                        "DEV_QUERY TIMESTAMP: frequency {}, monotonic {mono} outside the call's {before_ns}..{after_ns}",
                        t.timestamp_frequency
                    ),
                    "",
                );
            }
        }
        if ty == INFO && kind == Ptr::Valid && !null && n == u64::from(INFO_LEN) {
            // SAFETY: the kernel wrote a drm_ferrite_dev_info at this scratch address.
            let info = unsafe { std::ptr::read_unaligned(p.ptr as *const drm_ferrite_dev_info) };
            if info.va_start != f.range.start
                || info.va_end != f.range.end
                || info.va_start >= info.va_end
            {
                self.finding(
                    &format!(
                        "DEV_QUERY INFO changed: va {:#x}..{:#x}, was {:#x}..{:#x}",
                        info.va_start, info.va_end, f.range.start, f.range.end
                    ),
                    "",
                );
            }
        }
    }
}
