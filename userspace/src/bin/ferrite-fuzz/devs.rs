// SPDX-License-Identifier: MIT
//! The Ferrite GPUs found, and what the run reads of them before and after:
//! counters, debugfs BO lists, pending injected bind failures.

use ferrite::Device;

use crate::engine::DevDesc;
use crate::gen::VaRange;

/// Every Ferrite render node, with its VA range and its bound bytes.
pub fn discover() -> std::io::Result<Vec<(DevDesc, u64)>> {
    let mut out = Vec::new();
    for d in Device::all()? {
        let info = d.info()?;
        let c = d.counters()?;
        let features = d.uapi_features()?;
        let pci = d.pci_address().unwrap_or_default();
        out.push((
            DevDesc {
                path: d.path().to_path_buf(),
                range: VaRange {
                    start: info.va_start,
                    end: info.va_end,
                },
                debugfs: format!("/sys/kernel/debug/ferrite-{pci}").into(),
                features,
            },
            c.bytes_bound,
        ));
    }
    Ok(out)
}

/// Asynchronous binds that will fail, injected through debugfs
/// (`inject_bind_failure`) and not used yet, if readable.
pub fn injected_bind_failures(d: &DevDesc) -> Option<u64> {
    let s = std::fs::read_to_string(d.debugfs.join("inject_bind_failure")).ok()?;
    s.trim().parse().ok()
}

/// The BOs the driver lists in debugfs (`id size` lines), if readable.
pub fn debugfs_bos(d: &DevDesc) -> Option<Vec<String>> {
    let s = std::fs::read_to_string(d.debugfs.join("gem")).ok()?;
    Some(s.lines().skip(1).map(String::from).collect())
}

pub fn counters_of(devs: &[DevDesc]) -> Vec<Option<ferrite::uapi::drm_ferrite_counters>> {
    let all = Device::all().unwrap_or_default();
    devs.iter()
        .map(|d| {
            all.iter()
                .find(|a| a.path() == d.path)
                .and_then(|a| a.counters().ok())
        })
        .collect()
}
