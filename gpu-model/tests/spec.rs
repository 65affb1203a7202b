// SPDX-License-Identifier: GPL-2.0
//! The specification and the model agree: every register the spec lists
//! exists in the model's table with the same offset and access, and the
//! other way round; the identity registers' values are the spec's.

use std::collections::BTreeMap;

use ferrite_gpu_model::regs::{
    features, Access, AS_BASE, FEATURES, FERRITE_ID, FERRITE_VERSION, ID, QUEUE_BASE, REGISTERS,
    VERSION,
};
use ferrite_gpu_model::testbed::Gpu;

/// Each register of the spec's tables: offset, access and reset column.
fn spec_registers() -> BTreeMap<String, (u32, String, String)> {
    // At run time: a test binary reused from another checkout of the same
    // sources would otherwise read that checkout's spec.
    let dir = std::env::var("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string());
    let path = format!("{dir}/../Documentation/gpu/ferrite-hw.rst");
    let text = std::fs::read_to_string(&path).expect("the hardware spec");
    let lines: Vec<&str> = text.lines().collect();
    let mut out = BTreeMap::new();
    for (i, l) in lines.iter().enumerate() {
        let l = l.trim();
        let Some(name) = l.strip_prefix("* - ``").and_then(|r| r.strip_suffix("``")) else {
            continue;
        };
        let off = lines[i + 1]
            .trim()
            .strip_prefix("- 0x")
            .expect("offset row");
        let acc = lines[i + 2].trim().strip_prefix("- ").expect("access row");
        let reset = lines[i + 3].trim().strip_prefix("- ").expect("reset row");
        let mut off = u32::from_str_radix(off, 16).expect("hex offset");
        if name.starts_with("AS_") {
            off += AS_BASE;
        } else if name.starts_with("Q_") {
            off += QUEUE_BASE;
        }
        assert!(
            out.insert(name.to_string(), (off, acc.to_string(), reset.to_string()))
                .is_none(),
            "{name} twice"
        );
    }
    out
}

fn access_name(a: Access) -> &'static str {
    match a {
        Access::ReadOnly => "RO",
        Access::ReadWrite => "RW",
        Access::ReadWrite1Clear => "RW1C",
        Access::WriteOnly => "WO",
    }
}

#[test]
fn spec_and_model_list_the_same_registers() {
    let spec = spec_registers();
    assert!(spec.len() > 40, "parsed only {} registers", spec.len());
    for r in REGISTERS {
        let (off, acc, _) = spec
            .get(r.name)
            .unwrap_or_else(|| panic!("{} is not in the spec", r.name));
        assert_eq!(*off, r.offset, "{} offset", r.name);
        assert_eq!(acc, access_name(r.access), "{} access", r.name);
    }
    for name in spec.keys() {
        assert!(
            REGISTERS.iter().any(|r| r.name == name),
            "{name} is in the spec but not the model"
        );
    }
}

#[test]
fn identity_registers_read_what_the_spec_says() {
    let spec = spec_registers();
    let g = Gpu::new();
    for (name, reg, model) in [
        ("ID", ID, FERRITE_ID),
        ("VERSION", VERSION, FERRITE_VERSION),
        ("FEATURES", FEATURES, features::ALL),
    ] {
        let reset = &spec[name].2;
        let v = reset
            .strip_prefix("0x")
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .unwrap_or_else(|| panic!("{name}: reset {reset:?} is not hex"));
        assert_eq!(v, model, "{name}: the spec says {reset}");
        assert_eq!(g.r32(reg), v, "{name} reads");
    }
}
