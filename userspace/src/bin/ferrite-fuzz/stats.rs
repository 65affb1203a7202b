// SPDX-License-Identifier: MIT
//! Call statistics of a worker, merged per process and sent to the parent
//! as one text line over a pipe.

use std::collections::BTreeMap;

use crate::sys::errno_name;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    pub calls: u64,
    pub ok: u64,
    pub findings: u64,
    /// Failed calls by errno.
    pub errnos: BTreeMap<i32, u64>,
    /// Calls and successes by ioctl name.
    pub per_call: BTreeMap<String, (u64, u64)>,
    /// How often each check of the model met the case it checks (no call).
    pub events: BTreeMap<String, u64>,
}

impl Stats {
    pub fn record(&mut self, name: &str, r: Result<i32, i32>) {
        self.calls += 1;
        let e = self.per_call.entry(name.to_string()).or_default();
        e.0 += 1;
        match r {
            Ok(_) => {
                self.ok += 1;
                e.1 += 1;
            }
            Err(errno) => *self.errnos.entry(errno).or_default() += 1,
        }
    }

    /// Count an event (a name without spaces, commas or colons).
    pub fn event(&mut self, name: &str) {
        *self.events.entry(name.to_string()).or_default() += 1;
    }

    /// `name n, ...`; `none` without events.
    pub fn events_line(&self) -> String {
        if self.events.is_empty() {
            return "none".into();
        }
        self.events
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn merge(&mut self, o: &Stats) {
        self.calls += o.calls;
        self.ok += o.ok;
        self.findings += o.findings;
        for (k, v) in &o.errnos {
            *self.errnos.entry(*k).or_default() += v;
        }
        for (k, (c, ok)) in &o.per_call {
            let e = self.per_call.entry(k.clone()).or_default();
            e.0 += c;
            e.1 += ok;
        }
        for (k, v) in &o.events {
            *self.events.entry(k.clone()).or_default() += v;
        }
    }

    /// `EINVAL:12,ENOENT:3`, most frequent first; `none` without errors.
    pub fn errors_by_errno(&self) -> String {
        let mut v: Vec<(i32, u64)> = self.errnos.iter().map(|(k, v)| (*k, *v)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        if v.is_empty() {
            return "none".into();
        }
        v.iter()
            .map(|(e, n)| format!("{}:{n}", errno_name(*e)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// One line: `STATS calls ok findings errno:n,... name:calls:ok,...
    /// event:n,...`.
    pub fn to_line(&self) -> String {
        let errnos: Vec<String> = self
            .errnos
            .iter()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect();
        let per: Vec<String> = self
            .per_call
            .iter()
            .map(|(k, (c, ok))| format!("{k}:{c}:{ok}"))
            .collect();
        let events: Vec<String> = self
            .events
            .iter()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect();
        format!(
            "STATS {} {} {} {} {} {}\n",
            self.calls,
            self.ok,
            self.findings,
            if errnos.is_empty() {
                "-".into()
            } else {
                errnos.join(",")
            },
            if per.is_empty() {
                "-".into()
            } else {
                per.join(",")
            },
            if events.is_empty() {
                "-".into()
            } else {
                events.join(",")
            },
        )
    }

    pub fn from_line(line: &str) -> Option<Stats> {
        let mut it = line.trim_end().split(' ');
        if it.next()? != "STATS" {
            return None;
        }
        let mut s = Stats {
            calls: it.next()?.parse().ok()?,
            ok: it.next()?.parse().ok()?,
            findings: it.next()?.parse().ok()?,
            ..Default::default()
        };
        let errnos = it.next()?;
        if errnos != "-" {
            for kv in errnos.split(',') {
                let (k, v) = kv.split_once(':')?;
                s.errnos.insert(k.parse().ok()?, v.parse().ok()?);
            }
        }
        let per = it.next()?;
        if per != "-" {
            for kv in per.split(',') {
                let mut p = kv.split(':');
                let name = p.next()?.to_string();
                let c = p.next()?.parse().ok()?;
                let ok = p.next()?.parse().ok()?;
                s.per_call.insert(name, (c, ok));
            }
        }
        let events = it.next()?;
        if events != "-" {
            for kv in events.split(',') {
                let (k, v) = kv.split_once(':')?;
                s.events.insert(k.to_string(), v.parse().ok()?);
            }
        }
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_round_trip_and_merge() {
        let mut a = Stats::default();
        a.record("VM_BIND", Ok(0));
        a.record("VM_BIND", Err(libc::EINVAL));
        a.record("SUBMIT", Err(libc::ENOENT));
        a.event("vm_unusable");
        a.event("vm_unusable");
        a.findings = 1;
        let b = Stats::from_line(&a.to_line()).unwrap();
        assert_eq!(a, b);
        let mut m = a.clone();
        m.merge(&b);
        assert_eq!(m.calls, 6);
        assert_eq!(m.per_call["VM_BIND"], (4, 2));
        assert_eq!(m.events["vm_unusable"], 4);
        assert_eq!(m.events_line(), "vm_unusable 4");
        // Equal counts: by errno value (ENOENT 2 before EINVAL 22).
        assert_eq!(m.errors_by_errno(), "ENOENT:2,EINVAL:2");
        assert_eq!(Stats::default().errors_by_errno(), "none");
        let e = Stats::from_line(&Stats::default().to_line()).unwrap();
        assert_eq!(e, Stats::default());
        assert_eq!(Stats::from_line("garbage"), None);
    }
}
