//! Builds the two static helpers `airlock` carries (`include_bytes!`) and puts into
//! containers whose image it doesn't control:
//! - `airlock-sweep` (runner/boundary/sweep/program.rs), which the boundary runs over the
//!   crossing volumes, imported as an image of one file;
//! - `airlock-forward` (runner/proxy/forward/program.rs), the agent phase's way to the egress
//!   proxy, copied into the agent's container.
//!
//! Static (glibc's `libc.a`, from libc6-dev, which any machine that builds Rust has) and of
//! `std` alone, so they need no library from whatever image they run in.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    build(
        "runner/boundary/sweep/program.rs",
        "airlock_sweep",
        "airlock-sweep",
    );
    build(
        "runner/proxy/forward/program.rs",
        "airlock_forward",
        "airlock-forward",
    );
}

fn build(src: &str, crate_name: &str, file: &str) {
    println!("cargo:rerun-if-changed={src}");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join(file);
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let target = std::env::var("TARGET").expect("TARGET");
    let status = Command::new(rustc)
        .args(["--edition=2021", "--crate-type=bin"])
        .arg(format!("--crate-name={crate_name}"))
        .args(["-C", "opt-level=2", "-C", "target-feature=+crt-static"])
        .args([
            "-C",
            "strip=symbols",
            "-C",
            "panic=abort",
            "--target",
            &target,
        ])
        .arg("-o")
        .arg(&out)
        .arg(src)
        .status()
        .unwrap_or_else(|e| panic!("running rustc for {file}: {e}"));
    assert!(
        status.success(),
        "building the static {file} failed: it needs glibc's static library (apt-get install libc6-dev)"
    );
}
