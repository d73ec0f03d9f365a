//! Links `dagrun` with packed relative relocations (`-z pack-relative-relocs`, DT_RELR) where the
//! toolchain and C library here support them.
//!
//! The binary is position-independent and holds ~110,000 relative relocations (vtables, panic
//! locations): as plain RELA entries they are 2.7 MB the loader reads at every start; packed,
//! 35 KB. Each run starts ~1 ms sooner and peaks ~4 MiB lower (docs/benchmarks.md). The probe
//! builds and runs a tiny Rust program with the flag, through the same `rustc`, linker and flags
//! as this build: an older linker, or a glibc before 2.36 (whose loader would refuse the binary),
//! leaves the link unchanged, as do cross builds (the probe could not run). A binary linked so
//! needs glibc 2.36 wherever it runs: set `DAGRUN_BUILD_NO_RELR=1` when building for remote
//! nodes with an older one (docs/remote-execution.md).

use std::path::PathBuf;
use std::process::{Command, Stdio};

const FLAG: &str = "-Wl,-z,pack-relative-relocs";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // What cargo was started with (a linker or flags set in `.cargo/config.toml` instead are
    // seen after `cargo clean -p dagrun`).
    let target = std::env::var("TARGET").unwrap_or_default().to_uppercase().replace('-', "_");
    let target_vars = [format!("CARGO_TARGET_{target}_LINKER"), format!("CARGO_TARGET_{target}_RUSTFLAGS")];
    for var in ["DAGRUN_BUILD_NO_RELR", "RUSTFLAGS", "CARGO_BUILD_RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    for var in &target_vars {
        println!("cargo:rerun-if-env-changed={var}");
    }
    if std::env::var_os("DAGRUN_BUILD_NO_RELR").is_none() && relr_works() {
        println!("cargo:rustc-link-arg-bins={FLAG}");
    }
}

/// Whether a program linked with [`FLAG`] links without a warning and runs here.
fn relr_works() -> bool {
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    if var("TARGET") != var("HOST") || var("CARGO_CFG_TARGET_OS") != "linux" || var("CARGO_CFG_TARGET_ENV") != "gnu" {
        return false;
    }
    let Some(out) = std::env::var_os("OUT_DIR").map(PathBuf::from) else { return false };
    let (src, exe) = (out.join("relr_probe.rs"), out.join("relr_probe"));
    if std::fs::write(&src, "fn main() { println!(\"{}\", std::env::args().count()); }\n").is_err() {
        return false;
    }
    let mut rustc = Command::new(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()));
    // As cargo orders them: its `-C linker` first, so that one in the flags wins.
    if let Some(linker) = std::env::var_os("RUSTC_LINKER") {
        rustc.arg("-C").arg(format!("linker={}", linker.to_string_lossy()));
    }
    let flags = var("CARGO_ENCODED_RUSTFLAGS");
    rustc.args(flags.split('\x1f').filter(|f| !f.is_empty()));
    rustc.args(["-C", &format!("link-arg={FLAG}"), "-o"]).arg(&exe).arg(&src);
    // Where cargo runs rustc (relative paths in the flags); profiles of an instrumented probe
    // land in OUT_DIR.
    let root = PathBuf::from(var("CARGO_MANIFEST_DIR")).join("../..");
    let linked = rustc.current_dir(&root).stdin(Stdio::null()).output();
    // GNU ld and lld only warn about a `-z` keyword they do not know.
    let linked = matches!(linked, Ok(o) if o.status.success() && !String::from_utf8_lossy(&o.stderr).contains("pack-relative-relocs"));
    let profiles = out.join("relr-probe-%p.profraw");
    linked
        && Command::new(&exe)
            .env("LLVM_PROFILE_FILE", profiles)
            .current_dir(&out)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}
