//! Builds `airlock-sweep` (runner/boundary/sweep/program.rs), the static helper the boundary
//! runs over the crossing volumes, so that `airlock` can carry it (`include_bytes!`) and
//! import it as an image of one file. Static (glibc's `libc.a`, from libc6-dev, which any
//! machine that builds Rust has) so it needs no library from whatever image it runs beside.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "runner/boundary/sweep/program.rs";
    println!("cargo:rerun-if-changed={src}");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("airlock-sweep");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let target = std::env::var("TARGET").expect("TARGET");
    let status = Command::new(rustc)
        .args([
            "--edition=2021",
            "--crate-type=bin",
            "--crate-name=airlock_sweep",
        ])
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
        .expect("running rustc for airlock-sweep");
    assert!(
        status.success(),
        "building the static airlock-sweep failed: it needs glibc's static library (apt-get install libc6-dev)"
    );
}
