//! The `airlock` binary: a thin shell around the library (see `runner/lib.rs`).

fn main() -> std::process::ExitCode {
    airlock::cli::main()
}
