// SPDX-License-Identifier: MIT
//! `ferrite info`: the Ferrite GPUs and what their driver reports, as the
//! text it always printed or (`--json`) as one JSON document for scripts.

use std::io;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use ferrite::device::COUNTER_NAMES;
use ferrite::Device;

/// A `major.minor` version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MajorMinor {
    pub major: u32,
    pub minor: u32,
}

impl MajorMinor {
    /// From the `major << 16 | minor` encoding of DEV_QUERY INFO.
    fn packed(v: u32) -> MajorMinor {
        MajorMinor {
            major: v >> 16,
            minor: v & 0xffff,
        }
    }
}

/// What `DRM_IOCTL_VERSION` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Driver {
    pub name: String,
    pub major: i32,
    pub minor: i32,
    pub patchlevel: i32,
    pub desc: String,
}

/// DEV_QUERY MEMORY (interface 0.3), in bytes.
#[derive(Debug, Clone, Serialize)]
pub struct Memory {
    pub total: u64,
    pub available: u64,
    pub max_bo_size: u64,
}

/// DEV_QUERY TIMESTAMP (interface 0.3): one sample of the GPU clock.
#[derive(Debug, Clone, Serialize)]
pub struct Timestamp {
    pub frequency_hz: u64,
    pub gpu_timestamp: u64,
    pub cpu_monotonic_ns: u64,
    pub sample_window_ns: u64,
}

/// Everything `ferrite info` reports of one GPU. The queries of interface
/// 0.3 are `None` when an older driver lacks them.
#[derive(Debug, Clone, Serialize)]
pub struct Gpu {
    pub index: usize,
    pub node: String,
    pub pci: String,
    pub driver: Driver,
    pub hw_version: MajorMinor,
    pub uapi_version: MajorMinor,
    pub features: u32,
    pub dma_addr_bits: u32,
    pub dma_max_segment: u32,
    pub num_queues: u32,
    pub num_as: u32,
    pub va_bits: u32,
    pub va_start: u64,
    pub va_end: u64,
    pub page_sizes: u64,
    pub uapi_features: Option<u64>,
    pub memory: Option<Memory>,
    pub timestamp: Option<Timestamp>,
    /// The device counters by name, in `COUNTER_NAMES` order.
    #[serde(serialize_with = "named_counters")]
    pub counters: [u64; 16],
    pub kmap_user_bytes: u64,
    pub kmap_kernel_bytes: u64,
}

/// `ferrite info --json`: the tool's version, the interface it speaks and
/// every Ferrite GPU found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub version: &'static str,
    pub uapi_version: MajorMinor,
    pub gpus: Vec<Gpu>,
}

fn named_counters<S: Serializer>(c: &[u64; 16], s: S) -> Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(Some(c.len()))?;
    for (n, v) in COUNTER_NAMES.iter().zip(c) {
        m.serialize_entry(n, v)?;
    }
    m.end()
}

impl Gpu {
    /// Query GPU `index` through `d`.
    pub fn query(index: usize, d: &Device) -> io::Result<Gpu> {
        let v = d.version()?;
        let pci = d.pci_address()?;
        let info = d.info()?;
        let uapi_features = d.uapi_features().ok();
        let memory = d.memory().ok().map(|m| Memory {
            total: m.total,
            available: m.available,
            max_bo_size: m.max_bo_size,
        });
        let timestamp = d.timestamp().ok().map(|t| Timestamp {
            frequency_hz: t.timestamp_frequency,
            gpu_timestamp: t.gpu_timestamp,
            cpu_monotonic_ns: t.cpu_monotonic_ns,
            sample_window_ns: t.sample_window_ns,
        });
        let c = d.counters()?;
        Ok(Gpu {
            index,
            node: d.path().display().to_string(),
            pci,
            driver: Driver {
                name: v.name,
                major: v.major,
                minor: v.minor,
                patchlevel: v.patchlevel,
                desc: v.desc,
            },
            hw_version: MajorMinor::packed(info.hw_version),
            uapi_version: MajorMinor::packed(info.uapi_version),
            features: info.features,
            dma_addr_bits: info.dma_addr_bits,
            dma_max_segment: info.dma_max_segment,
            num_queues: info.num_queues,
            num_as: info.num_as,
            va_bits: info.va_bits,
            va_start: info.va_start,
            va_end: info.va_end,
            page_sizes: info.page_sizes,
            uapi_features,
            memory,
            timestamp,
            counters: c.hw,
            kmap_user_bytes: c.kmap_user_bytes,
            kmap_kernel_bytes: c.kmap_kernel_bytes,
        })
    }

    /// The text `ferrite info` prints for this GPU.
    pub fn text(&self) -> String {
        use std::fmt::Write;
        let mut o = String::new();
        let (v, hw, ua) = (&self.driver, self.hw_version, self.uapi_version);
        // (Writing to a String cannot fail.)
        let _ = writeln!(
            o,
            "gpu{}: {} at PCI {}: driver {} {}.{}.{} ({})",
            self.index, self.node, self.pci, v.name, v.major, v.minor, v.patchlevel, v.desc
        );
        let _ = writeln!(
            o,
            "  hw {}.{}, uapi {}.{}, features {:#x}",
            hw.major, hw.minor, ua.major, ua.minor, self.features
        );
        let _ = writeln!(
            o,
            "  constraints: {}-bit DMA, max segment {} bytes; {} queues, {} address spaces",
            self.dma_addr_bits, self.dma_max_segment, self.num_queues, self.num_as
        );
        let _ = writeln!(
            o,
            "  GPU VA: {} bits, user range {:#x}..{:#x}, page sizes {:#x}",
            self.va_bits, self.va_start, self.va_end, self.page_sizes
        );
        if let Some(f) = self.uapi_features {
            let _ = writeln!(o, "  uapi features {f:#x}");
        }
        if let Some(m) = &self.memory {
            let _ = writeln!(
                o,
                "  memory: {} MiB usable, budget {} MiB, BOs up to {} GiB",
                m.total >> 20,
                m.available >> 20,
                m.max_bo_size >> 30
            );
        }
        if let Some(t) = &self.timestamp {
            let _ = writeln!(
                o,
                "  GPU clock: {} Hz, at {} (CLOCK_MONOTONIC {} ns, sampled within {} ns)",
                t.frequency_hz, t.gpu_timestamp, t.cpu_monotonic_ns, t.sample_window_ns
            );
        }
        let hw: Vec<String> = COUNTER_NAMES
            .iter()
            .zip(self.counters.iter())
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        let _ = writeln!(o, "  counters: {}", hw.join(" "));
        let _ = writeln!(
            o,
            "  kernel mappings: user {} bytes, kernel {} bytes",
            self.kmap_user_bytes, self.kmap_kernel_bytes
        );
        o
    }
}

fn no_gpu() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "no Ferrite GPU found")
}

/// `ferrite info [--json]`. Without a GPU it fails (exit status 1) in
/// both forms; `--json` still prints its document, with no GPUs in it.
pub fn run(json: bool) -> io::Result<()> {
    let devs = Device::all()?;
    if !json {
        if devs.is_empty() {
            return Err(no_gpu());
        }
        for (i, d) in devs.iter().enumerate() {
            print!("{}", Gpu::query(i, d)?.text());
        }
        return Ok(());
    }
    let gpus = devs
        .iter()
        .enumerate()
        .map(|(i, d)| Gpu::query(i, d))
        .collect::<io::Result<Vec<_>>>()?;
    let report = Report {
        version: env!("CARGO_PKG_VERSION"),
        uapi_version: MajorMinor {
            major: ferrite::UAPI_VERSION.0,
            minor: ferrite::UAPI_VERSION.1,
        },
        gpus,
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&report).map_err(io::Error::other)?
    );
    if report.gpus.is_empty() {
        return Err(no_gpu());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Gpu {
        let mut counters = [0; 16];
        counters[0] = 7;
        counters[15] = 1;
        Gpu {
            index: 1,
            node: "/dev/dri/renderD129".into(),
            pci: "0000:00:03.0".into(),
            driver: Driver {
                name: "ferrite".into(),
                major: 0,
                minor: 5,
                patchlevel: 0,
                desc: "Ferrite GPU".into(),
            },
            hw_version: MajorMinor::packed(0x0001_0002),
            uapi_version: MajorMinor::packed(5),
            features: 0x3,
            dma_addr_bits: 32,
            dma_max_segment: 65536,
            num_queues: 8,
            num_as: 16,
            va_bits: 48,
            va_start: 0x1_0000,
            va_end: 0xffff_0000_0000,
            page_sizes: 0x4020_1000,
            uapi_features: Some(0x3ff),
            memory: Some(Memory {
                total: 3 << 30,
                available: 1 << 30,
                max_bo_size: 2 << 30,
            }),
            timestamp: None,
            counters,
            kmap_user_bytes: 0,
            kmap_kernel_bytes: 8192,
        }
    }

    #[test]
    fn text_is_the_tools_format() {
        let t = sample().text();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "gpu1: /dev/dri/renderD129 at PCI 0000:00:03.0: driver ferrite 0.5.0 (Ferrite GPU)"
        );
        assert_eq!(lines[1], "  hw 1.2, uapi 0.5, features 0x3");
        assert_eq!(
            lines[2],
            "  constraints: 32-bit DMA, max segment 65536 bytes; 8 queues, 16 address spaces"
        );
        assert_eq!(
            lines[3],
            "  GPU VA: 48 bits, user range 0x10000..0xffff00000000, page sizes 0x40201000"
        );
        assert_eq!(lines[4], "  uapi features 0x3ff");
        assert_eq!(
            lines[5],
            "  memory: 3072 MiB usable, budget 1024 MiB, BOs up to 2 GiB"
        );
        assert!(lines[6].starts_with("  counters: mmio_reads=7 mmio_writes=0 "));
        assert!(lines[6].ends_with(" global_resets=1"));
        assert_eq!(
            lines[7],
            "  kernel mappings: user 0 bytes, kernel 8192 bytes"
        );
        assert_eq!(lines.len(), 8);
    }

    #[test]
    fn json_names_every_field() {
        let r = Report {
            version: "0.1.0",
            uapi_version: MajorMinor { major: 0, minor: 5 },
            gpus: vec![sample()],
        };
        let v: serde_json::Value =
            serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        let g = &v["gpus"][0];
        assert_eq!(g["driver"]["name"], "ferrite");
        assert_eq!(g["uapi_version"]["minor"], 5);
        assert_eq!(g["va_end"], 0xffff_0000_0000u64);
        assert_eq!(g["memory"]["total"], 3u64 << 30);
        assert!(g["timestamp"].is_null());
        assert_eq!(g["counters"]["mmio_reads"], 7);
        assert_eq!(g["counters"]["global_resets"], 1);
        assert_eq!(g["counters"].as_object().unwrap().len(), 16);
    }
}
