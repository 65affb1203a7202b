// SPDX-License-Identifier: GPL-2.0
//! The specification, the model and the driver agree on the register map.
//!
//! The map exists three times: the spec's register tables
//! (`Documentation/gpu/ferrite-hw.rst`), the model's [`REGISTERS`] and the
//! driver's `register!` definitions (`drivers/gpu/drm/ferrite/regs.rs`,
//! read here as text). Every register the spec lists exists in the model's
//! table with the same offset and access, and in the driver's with the
//! same offset and instances, and the other way round; every field and
//! every command or code value the driver defines has the model's bits or
//! value and the spec's words for them. The identity registers' values are
//! the spec's.

use std::collections::BTreeMap;

use ferrite_gpu_model::regs::{
    as_cmd, as_config, as_status, cache, fault, features, irq, job_irq, op, q_control, q_error,
    q_status, write64, Access, Register, AS_BASE, AS_STRIDE, COUNTER_BASE, FEATURES, FERRITE_ID,
    FERRITE_VERSION, ID, NUM_AS, NUM_COUNTERS, NUM_QUEUES, QUEUE_BASE, QUEUE_STRIDE, REGISTERS,
    RESET_GLOBAL, VERSION,
};
use ferrite_gpu_model::testbed::Gpu;

/// The repository's root (at run time: a test binary reused from another
/// checkout of the same sources would otherwise read that checkout's files).
fn repo_file(path: &str) -> String {
    let dir = std::env::var("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string());
    let path = format!("{dir}/../{path}");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A register of the spec's tables.
struct SpecReg {
    offset: u32,
    access: String,
    reset: String,
    /// The description column, on one line, without markup.
    description: String,
}

/// `text` on one line: runs of white space made one space, `` `` `` gone.
fn one_line(text: &str) -> String {
    text.replace("``", "")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Each register of the spec's tables.
fn spec_registers() -> BTreeMap<String, SpecReg> {
    let text = repo_file("Documentation/gpu/ferrite-hw.rst");
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
        // The description: its first row, and the lines indented below it
        // up to the next row or the end of the table.
        let mut desc = lines[i + 4]
            .trim()
            .strip_prefix("- ")
            .expect("description row")
            .to_string();
        for more in &lines[i + 5..] {
            let t = more.trim();
            if t.is_empty() || t.starts_with("* - ") {
                break;
            }
            desc.push(' ');
            desc.push_str(t);
        }
        let mut off = u32::from_str_radix(off, 16).expect("hex offset");
        if name.starts_with("AS_") {
            off += AS_BASE;
        } else if name.starts_with("Q_") {
            off += QUEUE_BASE;
        }
        let reg = SpecReg {
            offset: off,
            access: acc.to_string(),
            reset: reset.to_string(),
            description: one_line(&desc),
        };
        assert!(out.insert(name.to_string(), reg).is_none(), "{name} twice");
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
        let reg = spec
            .get(r.name)
            .unwrap_or_else(|| panic!("{} is not in the spec", r.name));
        assert_eq!(reg.offset, r.offset, "{} offset", r.name);
        assert_eq!(reg.access, access_name(r.access), "{} access", r.name);
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
        let reset = &spec[name].reset;
        let v = reset
            .strip_prefix("0x")
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .unwrap_or_else(|| panic!("{name}: reset {reset:?} is not hex"));
        assert_eq!(v, model, "{name}: the spec says {reset}");
        assert_eq!(g.r32(reg), v, "{name} reads");
    }
}

/// A field of one of the driver's registers or bit fields.
#[derive(Debug)]
struct DriverField {
    name: String,
    hi: u32,
    lo: u32,
    /// The enum of a field converted to one (`?=> Enum`).
    values: Option<String>,
}

impl DriverField {
    fn mask(&self) -> u32 {
        let ones = if self.hi - self.lo == 31 {
            u32::MAX
        } else {
            (1 << (self.hi - self.lo + 1)) - 1
        };
        ones << self.lo
    }
}

/// A `register!` (with its offset and instances) or a `bitfield!` (without:
/// the ring commands' dwords) of the driver's `regs.rs`.
#[derive(Debug)]
struct DriverReg {
    offset: Option<u32>,
    /// Instances and the bytes between them; `(1, 0)` for one register.
    instances: (u32, u32),
    /// Bits of the storage type.
    bits: u32,
    fields: Vec<DriverField>,
}

/// The driver's register map: its registers and bit fields, and the values
/// of its `field_values!` enums.
struct Driver {
    regs: BTreeMap<String, DriverReg>,
    enums: BTreeMap<String, Vec<(String, u32)>>,
}

/// An integer literal of the driver (`0x1_0000`, `16`), or one of its
/// constants.
fn driver_int(s: &str, consts: &BTreeMap<String, u32>) -> u32 {
    let s = s.trim();
    int_literal(s)
        .or_else(|| consts.get(s).copied())
        .unwrap_or_else(|| panic!("driver regs.rs: {s:?} is not a number or a constant"))
}

/// An integer literal: `0x1_0000`, `16`.
fn int_literal(s: &str) -> Option<u32> {
    let s = s.replace('_', "");
    match s.strip_prefix("0x") {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// The driver's `regs.rs`, read as text: its constants, the headers of its
/// `register!` and `bitfield!` items (`pub(crate) NAME(u32)[N, stride = S]
/// @ 0xOFF {`, `pub(crate) struct NAME(u8) {`), their fields
/// (`hi:lo name ...;`) and the variants of its `field_values!` enums
/// (`pub(crate) enum NAME: bits {`, `Variant = value,`).
fn driver() -> Driver {
    let text = repo_file("drivers/gpu/drm/ferrite/regs.rs");
    let mut consts = BTreeMap::new();
    for l in text.lines() {
        let Some(rest) = l.trim().strip_prefix("pub(crate) const ") else {
            continue;
        };
        let Some((name, rest)) = rest.split_once(':') else {
            continue;
        };
        let Some(v) = rest
            .split_once('=')
            .and_then(|(_, v)| v.trim().strip_suffix(';'))
        else {
            continue;
        };
        if let Some(v) = int_literal(v) {
            consts.insert(name.trim().to_string(), v);
        }
    }

    enum Item {
        Reg(String),
        Enum(String),
    }
    let mut drv = Driver {
        regs: BTreeMap::new(),
        enums: BTreeMap::new(),
    };
    let mut cur: Option<Item> = None;
    for l in text.lines() {
        let l = l.trim();
        if l.starts_with("//") || l.is_empty() {
            continue;
        }
        if let Some(rest) = l.strip_prefix("pub(crate) ") {
            if let Some(e) = rest.strip_prefix("enum ") {
                let (name, _) = e.split_once(':').expect("enum NAME: bits {");
                drv.enums.insert(name.to_string(), Vec::new());
                cur = Some(Item::Enum(name.to_string()));
                continue;
            }
            let rest = rest.strip_prefix("struct ").unwrap_or(rest);
            let name_end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let (name, rest) = rest.split_at(name_end);
            let bits = if rest.starts_with("(u32)") {
                32
            } else if rest.starts_with("(u8)") {
                8
            } else {
                continue;
            };
            assert!(l.ends_with('{'), "driver regs.rs: {l}");
            let rest = &rest[rest.find(')').expect("(type)") + 1..];
            let mut instances = (1, 0);
            let mut after = rest;
            if let Some(arr) = rest.strip_prefix('[') {
                let (arr, tail) = arr.split_once(']').expect("[N, stride = S]");
                let (n, stride) = arr.split_once(", stride =").expect("[N, stride = S]");
                instances = (driver_int(n, &consts), driver_int(stride, &consts));
                after = tail;
            }
            let offset = after
                .trim()
                .strip_prefix("@ ")
                .map(|o| driver_int(o.trim_end_matches('{'), &consts));
            let reg = DriverReg {
                offset,
                instances,
                bits,
                fields: Vec::new(),
            };
            assert!(
                drv.regs.insert(name.to_string(), reg).is_none(),
                "driver: {name} twice"
            );
            cur = Some(Item::Reg(name.to_string()));
            continue;
        }
        if l == "}" {
            cur = None;
            continue;
        }
        match &cur {
            Some(Item::Reg(name)) => {
                let Some((range, rest)) = l.split_once(' ') else {
                    continue;
                };
                let Some((hi, lo)) = range.split_once(':') else {
                    continue;
                };
                let (Ok(hi), Ok(lo)) = (hi.parse(), lo.parse()) else {
                    continue;
                };
                let mut words = rest.trim_end_matches(';').split_whitespace();
                let field = words.next().expect("field name").to_string();
                let values = match (words.next(), words.next()) {
                    (Some("?=>"), Some(e)) => Some(e.to_string()),
                    _ => None,
                };
                let reg = drv.regs.get_mut(name).expect("current register");
                assert!(
                    hi >= lo && hi < reg.bits,
                    "driver: {name}.{field} {hi}:{lo}"
                );
                reg.fields.push(DriverField {
                    name: field,
                    hi,
                    lo,
                    values,
                });
            }
            Some(Item::Enum(name)) => {
                let Some((variant, value)) = l.trim_end_matches(',').split_once(" = ") else {
                    continue;
                };
                let value = driver_int(value, &consts);
                let e = drv.enums.get_mut(name).expect("current enum");
                e.push((variant.to_string(), value));
            }
            None => {}
        }
    }
    drv
}

/// The model's instances of register `r` and the bytes between them.
fn model_instances(r: &Register) -> (u32, u32) {
    match r.name {
        // The model's table has one entry per half; the device decodes the
        // 16 counters at `COUNTER_BASE + 8 * i`.
        "COUNTER_LO" | "COUNTER_HI" => (NUM_COUNTERS as u32, 8),
        _ if r.count == 1 => (1, 0),
        _ => (r.count, r.stride),
    }
}

/// The spec's instances of register `name`, from the prose above its table
/// ("Slot n (0..15) has its block at 0x1000 + 0x40*n") or its description
/// ("Counter i is at 0x100 + 8*i (i < 16)"): instances, stride, base.
fn spec_instances(name: &str, spec: &BTreeMap<String, SpecReg>) -> (u32, u32, u32) {
    let text = one_line(&repo_file("Documentation/gpu/ferrite-hw.rst"));
    let hex = |s: &str| u32::from_str_radix(s.trim_start_matches("0x"), 16).expect("hex");
    let block = |who: &str, var: &str| {
        let from = format!("{who} {var} (0..");
        let at = text.find(&from).unwrap_or_else(|| panic!("spec: {from}"));
        let rest = &text[at + from.len()..];
        let (last, rest) = rest
            .split_once(") has its block at ")
            .expect("block sentence");
        let (base, rest) = rest.split_once(" + ").expect("base + stride");
        let (stride, _) = rest.split_once('*').expect("stride*n");
        let last: u32 = last.parse().expect("last instance");
        (last + 1, hex(stride), hex(base))
    };
    if name.starts_with("AS_") {
        block("Slot", "n")
    } else if name.starts_with("Q_") {
        block("Queue", "q")
    } else if name == "COUNTER_LO" || name == "COUNTER_HI" {
        let d = &spec["COUNTER_LO"].description;
        let rest = d
            .strip_prefix("Counter i is at ")
            .expect("spec: Counter i is at");
        let (base, rest) = rest.split_once(" + ").expect("base + stride");
        let (stride, rest) = rest.split_once("*i (i < ").expect("stride*i (i < n)");
        let (n, _) = rest.split_once(')').expect("(i < n)");
        (
            n.parse().expect("counters"),
            stride.parse().expect("stride"),
            hex(base),
        )
    } else {
        (1, 0, 0)
    }
}

#[test]
fn spec_model_and_driver_list_the_same_registers() {
    let spec = spec_registers();
    let drv = driver();
    let driver_regs: Vec<_> = drv
        .regs
        .iter()
        .filter(|(_, r)| r.offset.is_some())
        .collect();
    assert!(
        driver_regs.len() > 40,
        "parsed only {} registers",
        driver_regs.len()
    );
    for (name, r) in &driver_regs {
        let offset = r.offset.expect("a register");
        let s = spec
            .get(name.as_str())
            .unwrap_or_else(|| panic!("{name} is in the driver but not the spec"));
        assert_eq!(offset, s.offset, "{name}: driver and spec offsets");
        let m = REGISTERS
            .iter()
            .find(|m| m.name == name.as_str())
            .unwrap_or_else(|| panic!("{name} is in the driver but not the model"));
        assert_eq!(offset, m.offset, "{name}: driver and model offsets");
        assert_eq!(r.bits, 32, "{name}: a 32-bit register");
        assert_eq!(
            r.instances,
            model_instances(m),
            "{name}: driver and model instances (count, stride)"
        );
        let (n, stride, base) = spec_instances(name, &spec);
        assert_eq!(
            r.instances,
            (n, stride),
            "{name}: driver and spec instances (count, stride)"
        );
        if n > 1 {
            assert!(
                offset >= base && offset - base < stride,
                "{name}: in its block"
            );
        }
    }
    for name in spec.keys() {
        assert!(
            drv.regs.get(name).is_some_and(|r| r.offset.is_some()),
            "{name} is in the spec but not the driver"
        );
    }
    // Blocks and counters: the model's geometry is the spec's.
    assert_eq!(
        spec_instances("AS_CONFIG", &spec),
        (NUM_AS as u32, AS_STRIDE, AS_BASE)
    );
    assert_eq!(
        spec_instances("Q_TAIL", &spec),
        (NUM_QUEUES as u32, QUEUE_STRIDE, QUEUE_BASE)
    );
    assert_eq!(
        spec_instances("COUNTER_LO", &spec),
        (NUM_COUNTERS as u32, 8, COUNTER_BASE)
    );
}

/// Words of the spec that state a field or value, searched in the
/// description of the register named (or the whole spec, for ""): `{lo}`
/// and `{hi}` stand for the driver's bits of the field, `{v}` and `{x}`
/// for the driver's value (decimal, and hex as `0x04`). A field's words
/// without `{lo}` state a field at bit 0 ("Bit q: queue q ...").
struct Says(&'static str, &'static str);

/// Each field the driver defines narrower than its register: the model's
/// bits for it (`None`: the model names no mask) and the spec's words.
#[rustfmt::skip]
const FIELDS: &[(&str, &str, Option<u32>, Says)] = &[
    ("VERSION", "major", None, Says("VERSION", "major in {hi}:{lo}")),
    ("VERSION", "minor", None, Says("VERSION", "minor in {hi}:{lo}")),
    ("DMA_ADDR_BITS", "bits", None, Says("DMA_ADDR_BITS", "(32..64)")),
    ("IRQ_STATUS", "error", Some(irq::ERROR), Says("IRQ_STATUS", "bit {lo} ERROR")),
    ("IRQ_STATUS", "mmu", Some(irq::MMU), Says("IRQ_STATUS", "bit {lo} MMU")),
    ("IRQ_STATUS", "job", Some(irq::JOB), Says("IRQ_STATUS", "Bit {lo} JOB")),
    ("IRQ_STATUS", "soft", Some(irq::SOFT), Says("IRQ_STATUS", "Bit {lo} SOFT")),
    // The mask's bits are the status's.
    ("IRQ_MASK", "error", Some(irq::ERROR), Says("IRQ_STATUS", "bit {lo} ERROR")),
    ("IRQ_MASK", "mmu", Some(irq::MMU), Says("IRQ_STATUS", "bit {lo} MMU")),
    ("IRQ_MASK", "job", Some(irq::JOB), Says("IRQ_STATUS", "Bit {lo} JOB")),
    ("IRQ_MASK", "soft", Some(irq::SOFT), Says("IRQ_STATUS", "Bit {lo} SOFT")),
    ("IRQ_RAISE", "soft", Some(irq::SOFT),
        Says("IRQ_RAISE", "Writing bit {lo} sets IRQ_STATUS.SOFT")),
    ("CACHE_CMD", "invalidate", Some(cache::INVALIDATE), Says("CACHE_CMD", "bit {lo} INVALIDATE")),
    ("CACHE_CMD", "clean", Some(cache::CLEAN), Says("CACHE_CMD", "Bit {lo} CLEAN")),
    ("JOB_IRQ_STATUS", "stopped", Some(QUEUE_BITS << job_irq::STOPPED),
        Says("JOB_IRQ_STATUS", "Bit {lo}+q: queue q stopped")),
    ("JOB_IRQ_STATUS", "suspended", Some(QUEUE_BITS << job_irq::SUSPENDED),
        Says("JOB_IRQ_STATUS", "Bit {lo}+q: queue q suspended")),
    ("JOB_IRQ_STATUS", "fence", Some(QUEUE_BITS << job_irq::FENCE),
        Says("JOB_IRQ_STATUS", "Bit q: queue q executed a WRITE64 with the IRQ flag")),
    ("MMU_IRQ_STATUS", "slots", Some((1 << NUM_AS) - 1),
        Says("MMU_IRQ_STATUS", "Bit n: slot n recorded a fault")),
    ("AS_CONFIG", "stall", Some(as_config::STALL), Says("AS_CONFIG", "bit {lo} STALL")),
    ("AS_CONFIG", "enable", Some(as_config::ENABLE), Says("AS_CONFIG", "bit {lo} ENABLE")),
    ("AS_CONFIG", "va_bits", Some(as_config::VA_BITS_MASK),
        Says("AS_CONFIG", "Bits {hi}:{lo} VA_BITS")),
    ("AS_STATUS", "enabled", Some(as_status::ENABLED), Says("AS_STATUS", "bit {lo} ENABLED")),
    ("AS_STATUS", "faulted", Some(as_status::FAULTED), Says("AS_STATUS", "bit {lo} FAULTED")),
    ("AS_STATUS", "stalled", Some(as_status::STALLED), Says("AS_STATUS", "bit {lo} STALLED")),
    ("AS_STATUS", "locked", Some(as_status::LOCKED), Says("AS_STATUS", "Bit {lo} LOCKED")),
    ("AS_FAULTSTATUS", "valid", Some(fault::VALID), Says("AS_FAULTSTATUS", "bit {lo} VALID")),
    ("AS_FAULTSTATUS", "queue", Some(0xf << fault::QUEUE_SHIFT),
        Says("AS_FAULTSTATUS", "bits {hi}:{lo} source queue")),
    ("AS_FAULTSTATUS", "write", Some(fault::WRITE), Says("AS_FAULTSTATUS", "bit {lo} WRITE")),
    ("AS_FAULTSTATUS", "kind", Some(fault::TYPE_MASK),
        Says("AS_FAULTSTATUS", "bits {hi}:{lo} type")),
    ("Q_CONTROL", "restore", Some(q_control::RESTORE), Says("Q_CONTROL", "bit {lo} RESTORE")),
    ("Q_CONTROL", "suspend", Some(q_control::SUSPEND), Says("Q_CONTROL", "Bit {lo} SUSPEND")),
    ("Q_CONTROL", "reset", Some(q_control::RESET), Says("Q_CONTROL", "bit {lo} RESET")),
    ("Q_CONTROL", "enable", Some(q_control::ENABLE), Says("Q_CONTROL", "Bit {lo} ENABLE")),
    ("Q_STATUS", "suspended", Some(q_status::SUSPENDED), Says("Q_STATUS", "{lo} SUSPENDED")),
    ("Q_STATUS", "stalled", Some(q_status::STALLED), Says("Q_STATUS", "{lo} STALLED")),
    ("Q_STATUS", "error", Some(q_status::ERROR), Says("Q_STATUS", "{lo} ERROR")),
    ("Q_STATUS", "faulted", Some(q_status::FAULTED), Says("Q_STATUS", "{lo} FAULTED")),
    ("Q_STATUS", "waiting", Some(q_status::WAITING), Says("Q_STATUS", "{lo} WAITING")),
    ("Q_STATUS", "busy", Some(q_status::BUSY), Says("Q_STATUS", "{lo} BUSY")),
    ("Q_STATUS", "enabled", Some(q_status::ENABLED), Says("Q_STATUS", "Bit {lo} ENABLED")),
    // Ring commands: the header and WRITE64's flags ("Queues and commands").
    ("Header", "dwords", None, Says("", "{hi}:{lo} length in dwords")),
    ("Header", "flags", None, Says("", "{hi}:{lo} flags")),
    ("Header", "opcode", None, Says("", "{hi}:{lo} opcode")),
    ("Write64Flags", "seqno", Some(write64::SEQNO), Says("", "bit {lo} SEQNO (latch value")),
    ("Write64Flags", "flush", Some(write64::FLUSH),
        Says("", "bit {lo} FLUSH (clean and invalidate")),
    ("Write64Flags", "irq", Some(write64::IRQ), Says("", "bit {lo} IRQ (set JOB_IRQ_STATUS")),
];

/// The bits of a per-queue field of `JOB_IRQ_STATUS`, from bit 0.
const QUEUE_BITS: u32 = (1 << NUM_QUEUES) - 1;

/// Each value of the driver's `field_values!` enums: the model's value and
/// the spec's words.
#[rustfmt::skip]
const VALUES: &[(&str, &str, u32, Says)] = &[
    ("ResetCommand", "Global", RESET_GLOBAL, Says("RESET", "Writing {v} resets the device")),
    ("AsCommand", "Update", as_cmd::UPDATE, Says("AS_COMMAND", "{v} UPDATE")),
    ("AsCommand", "Lock", as_cmd::LOCK, Says("AS_COMMAND", "{v} LOCK")),
    ("AsCommand", "Unlock", as_cmd::UNLOCK, Says("AS_COMMAND", "{v} UNLOCK")),
    ("AsCommand", "FlushRange", as_cmd::FLUSH_RANGE, Says("AS_COMMAND", "{v} FLUSH_RANGE")),
    ("AsCommand", "FlushAll", as_cmd::FLUSH_ALL, Says("AS_COMMAND", "{v} FLUSH_ALL")),
    ("AsCommand", "Resume", as_cmd::RESUME, Says("AS_COMMAND", "{v} RESUME")),
    ("AsCommand", "Abort", as_cmd::ABORT, Says("AS_COMMAND", "{v} ABORT")),
    ("FaultKind", "Translation", fault::TRANSLATION, Says("AS_FAULTSTATUS", "{v} TRANSLATION")),
    ("FaultKind", "Permission", fault::PERMISSION, Says("AS_FAULTSTATUS", "{v} PERMISSION")),
    ("FaultKind", "AddressSize", fault::ADDRESS_SIZE, Says("AS_FAULTSTATUS", "{v} ADDRESS_SIZE")),
    ("FaultKind", "Bus", fault::BUS, Says("AS_FAULTSTATUS", "{v} BUS")),
    ("QueueError", "BadOpcode", q_error::BAD_OPCODE, Says("Q_ERROR", "{v} BAD_OPCODE")),
    ("QueueError", "BadLength", q_error::BAD_LENGTH, Says("Q_ERROR", "{v} BAD_LENGTH")),
    ("QueueError", "MmuFault", q_error::MMU_FAULT, Says("Q_ERROR", "{v} MMU_FAULT")),
    ("QueueError", "CallDepth", q_error::CALL_DEPTH, Says("Q_ERROR", "{v} CALL_DEPTH")),
    ("QueueError", "BadRing", q_error::BAD_RING, Says("Q_ERROR", "{v} BAD_RING")),
    ("QueueError", "Aborted", q_error::ABORTED, Says("Q_ERROR", "{v} ABORTED")),
    ("QueueError", "BadSize", q_error::BAD_SIZE, Says("Q_ERROR", "{v} BAD_SIZE")),
    ("QueueError", "BadContext", q_error::BAD_CONTEXT, Says("Q_ERROR", "{v} BAD_CONTEXT")),
    ("Opcode", "Write64", op::WRITE64, Says("", "{x} WRITE64")),
    ("Opcode", "Call", op::CALL, Says("", "{x} CALL")),
];

/// Whether `text` has `words`, not as part of a longer word or number.
fn has_words(text: &str, words: &str) -> bool {
    let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    text.match_indices(words).any(|(i, _)| {
        !word(text[..i].chars().next_back()) && !word(text[i + words.len()..].chars().next())
    })
}

/// Check that the spec says `says` with `subst` made.
fn spec_says(
    spec: &BTreeMap<String, SpecReg>,
    whole: &str,
    says: &Says,
    subst: &[(&str, String)],
    what: &str,
) {
    let Says(reg, words) = says;
    let mut w = words.to_string();
    for (k, v) in subst {
        w = w.replace(k, v);
    }
    let text = if reg.is_empty() {
        whole
    } else {
        &spec
            .get(*reg)
            .unwrap_or_else(|| panic!("{what}: no register {reg} in the spec"))
            .description
    };
    assert!(
        has_words(text, &w),
        "{what}: the spec does not say {w:?} ({})",
        if reg.is_empty() { "anywhere" } else { reg }
    );
}

#[test]
fn spec_model_and_driver_agree_on_fields_and_values() {
    let spec = spec_registers();
    let whole = one_line(&repo_file("Documentation/gpu/ferrite-hw.rst"));
    let drv = driver();
    let mut fields = 0;
    for (reg, r) in &drv.regs {
        for f in r.fields.iter().filter(|f| f.hi - f.lo + 1 < r.bits) {
            fields += 1;
            let what = format!("{reg}.{}", f.name);
            let (_, _, model, says) = FIELDS
                .iter()
                .find(|(r, n, _, _)| r == reg && *n == f.name)
                .unwrap_or_else(|| {
                    panic!("{what}: not in FIELDS (add the model's bits and the spec's words)")
                });
            if let Some(m) = model {
                assert_eq!(
                    f.mask(),
                    *m,
                    "{what}: driver bits {}:{} and the model's {m:#x}",
                    f.hi,
                    f.lo
                );
            }
            if !says.1.contains("{lo}") {
                assert_eq!(f.lo, 0, "{what}: the spec's words state a field at bit 0");
            }
            let subst = [("{hi}", f.hi.to_string()), ("{lo}", f.lo.to_string())];
            spec_says(&spec, &whole, says, &subst, &what);
        }
    }
    assert!(fields > 30, "parsed only {fields} fields");
    for (reg, field, _, _) in FIELDS {
        assert!(
            drv.regs
                .get(*reg)
                .is_some_and(|r| r.fields.iter().any(|f| f.name == *field)),
            "FIELDS: {reg}.{field} is not in the driver"
        );
    }

    let mut values = 0;
    for (name, variants) in &drv.enums {
        for (variant, v) in variants {
            values += 1;
            let what = format!("{name}::{variant}");
            let (_, _, model, says) = VALUES
                .iter()
                .find(|(e, n, _, _)| e == name && n == variant)
                .unwrap_or_else(|| {
                    panic!("{what}: not in VALUES (add the model's value and the spec's words)")
                });
            assert_eq!(v, model, "{what}: driver and model values");
            assert!(
                says.1.contains("{v}") || says.1.contains("{x}"),
                "{what}: the spec's words must contain the value"
            );
            let subst = [("{v}", v.to_string()), ("{x}", format!("{v:#04x}"))];
            spec_says(&spec, &whole, says, &subst, &what);
        }
    }
    assert!(values > 20, "parsed only {values} values");
    for (e, variant, _, _) in VALUES {
        assert!(
            drv.enums
                .get(*e)
                .is_some_and(|vs| vs.iter().any(|(n, _)| n == variant)),
            "VALUES: {e}::{variant} is not in the driver"
        );
    }
    // Each enum is the values of one field, which the spec's words are of.
    for name in drv.enums.keys() {
        let of: Vec<_> = drv
            .regs
            .iter()
            .flat_map(|(reg, r)| r.fields.iter().map(move |f| (reg, r, f)))
            .filter(|(_, _, f)| f.values.as_deref() == Some(name.as_str()))
            .collect();
        let [(reg, r, f)] = of[..] else {
            panic!(
                "driver: {name} is the values of {} fields, not one",
                of.len()
            );
        };
        for (_, variant, _, Says(spec_reg, _)) in VALUES.iter().filter(|(e, ..)| e == name) {
            let at = if r.offset.is_some() { reg.as_str() } else { "" };
            assert_eq!(
                *spec_reg, at,
                "VALUES: {name}::{variant} is a value of {reg}.{}: the spec's words are {reg}'s",
                f.name
            );
        }
    }
}
