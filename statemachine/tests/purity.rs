//! The state machine must stay pure: no async runtime, no clock, no randomness, no I/O.
//! This test reads the crate's dependency tree and its sources and fails on any of them.

use std::path::PathBuf;
use std::process::Command;

/// Crates whose presence means a runtime, a clock or randomness.
const FORBIDDEN_CRATES: &[&str] = &[
    "tokio",
    "async-std",
    "smol",
    "futures",
    "mio",
    "rand",
    "rand_core",
    "getrandom",
    "fastrand",
    "chrono",
    "time",
    "uuid",
    "libc",
    "rocksdb",
    "openraft",
    "tonic",
];

/// Source patterns that read a clock, draw randomness or do I/O.
const FORBIDDEN_SOURCE: &[&str] = &[
    "SystemTime",
    "Instant",
    "std::time",
    "std::fs",
    "std::net",
    "std::env",
    "std::thread",
    "std::process",
    "thread_rng",
    "println!",
    "eprintln!",
];

/// The crate's directory as `cargo test` reports it when it runs the test, not as it was
/// when the binary was compiled: a build directory shared between clones may hand this
/// binary to a clone at another path.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

#[test]
fn statemachine_depends_on_no_runtime_clock_or_randomness_crate() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "tree",
            "-p",
            "holdfast-statemachine",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .current_dir(manifest_dir())
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tree = String::from_utf8(output.stdout).unwrap();
    let crates: Vec<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert!(
        crates.contains(&"holdfast-statemachine"),
        "unexpected cargo tree output: {tree}"
    );
    for forbidden in FORBIDDEN_CRATES {
        assert!(
            !crates.contains(forbidden),
            "holdfast-statemachine depends on {forbidden}:\n{tree}"
        );
    }
}

#[test]
fn statemachine_sources_read_no_clock_and_do_no_io() {
    let source_dir = manifest_dir().join("src");
    let mut checked = 0;
    for entry in std::fs::read_dir(&source_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|extension| extension != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for pattern in FORBIDDEN_SOURCE {
            assert!(!text.contains(pattern), "{} uses {pattern}", path.display());
        }
        checked += 1;
    }
    assert!(
        checked >= 10,
        "expected the crate's modules, found {checked} files"
    );
}
