// SPDX-License-Identifier: MIT
//! The `ferrite` command line on the host, where no Ferrite GPU exists:
//! `--help`, `--version`, the exit status of refused command lines, and
//! `info --json`'s document (with no GPU in it here; the guest's GPUs are
//! listed by the same code, whose text and JSON forms the unit tests in
//! `src/cli/info.rs` check).

use std::process::{Command, Output};

fn ferrite(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrite"))
        .args(args)
        .output()
        .expect("cannot run the ferrite binary")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("stdout is not UTF-8")
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).expect("stderr is not UTF-8")
}

#[test]
fn help_lists_every_command() {
    let o = ferrite(&["--help"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    for cmd in ["info", "demo", "bench", "--version", "--help"] {
        assert!(out.contains(cmd), "--help does not mention {cmd}:\n{out}");
    }
    let o = ferrite(&["bench", "--help"]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    assert!(
        out.contains("--iters <N>") && out.contains("--json"),
        "{out}"
    );
    let o = ferrite(&["info", "--help"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("--json"));
}

#[test]
fn version_names_the_uapi() {
    let o = ferrite(&["--version"]);
    assert_eq!(o.status.code(), Some(0));
    let (major, minor) = ferrite::UAPI_VERSION;
    assert_eq!(
        stdout(&o).trim_end(),
        format!(
            "ferrite {} (Ferrite UAPI {major}.{minor})",
            env!("CARGO_PKG_VERSION")
        )
    );
}

#[test]
fn refused_command_lines_exit_as_before_clap() {
    // No command, or an unknown one: usage on stderr, exit status 2.
    for args in [&[][..], &["frobnicate"][..]] {
        let o = ferrite(args);
        assert_eq!(o.status.code(), Some(2), "ferrite {args:?}");
        assert!(o.stdout.is_empty());
        assert!(stderr(&o).contains("Usage: ferrite"), "{}", stderr(&o));
    }
    // A known command's bad option: exit status 1, before any device is
    // opened.
    for args in [&["bench", "--iters", "0"][..], &["bench", "--frob"][..]] {
        let o = ferrite(args);
        assert_eq!(o.status.code(), Some(1), "ferrite {args:?}");
        assert!(stderr(&o).starts_with("error: "), "{}", stderr(&o));
    }
}

#[test]
fn info_json_parses() {
    let o = ferrite(&["info", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("info --json printed no JSON ({e}):\n{}", stdout(&o)));
    let (major, minor) = ferrite::UAPI_VERSION;
    assert_eq!(doc["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(doc["uapi_version"]["major"], major);
    assert_eq!(doc["uapi_version"]["minor"], minor);
    let gpus = doc["gpus"].as_array().expect("no gpus array");
    if gpus.is_empty() {
        // As `ferrite info` without a GPU: the error, exit status 1.
        assert_eq!(o.status.code(), Some(1));
        assert_eq!(stderr(&o), "ferrite info: no Ferrite GPU found\n");
    } else {
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        for g in gpus {
            assert_eq!(g["driver"]["name"], "ferrite");
        }
    }
    // The text form fails alike.
    let t = ferrite(&["info"]);
    assert_eq!(t.status.code(), o.status.code());
}
