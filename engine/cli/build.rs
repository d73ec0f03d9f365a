//! Links `dagrun` with packed relative relocations (`-z pack-relative-relocs`, DT_RELR) where the
//! C toolchain and loader here support them.
//!
//! The binary is position-independent and holds ~110,000 relative relocations (vtables, panic
//! locations): as plain RELA entries they are 2.7 MB the loader reads at every start; packed,
//! 35 KB. Each run starts ~1 ms sooner and peaks ~4 MiB lower (docs/benchmarks.md). The probe
//! links and runs a tiny C program with the flag: an older linker or a glibc before 2.36 (which
//! would refuse to load the binary) leaves the default link unchanged. Cross builds are left
//! alone, as the probe could not run.

use std::path::PathBuf;
use std::process::{Command, Stdio};

const FLAG: &str = "-Wl,-z,pack-relative-relocs";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CC");
    if relr_works() {
        println!("cargo:rustc-link-arg-bins={FLAG}");
    }
}

/// Whether a PIE linked with [`FLAG`] links without a warning and runs here.
fn relr_works() -> bool {
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    if var("TARGET") != var("HOST") || var("CARGO_CFG_TARGET_OS") != "linux" || var("CARGO_CFG_TARGET_ENV") != "gnu" {
        return false;
    }
    let Some(out) = std::env::var_os("OUT_DIR").map(PathBuf::from) else { return false };
    let (src, exe) = (out.join("relr_probe.c"), out.join("relr_probe"));
    let probe = "static int x; int *p = &x; int main(void) { return *p; }\n";
    if std::fs::write(&src, probe).is_err() {
        return false;
    }
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let linked = Command::new(cc).args(["-fPIE", "-pie", FLAG, "-o"]).arg(&exe).arg(&src).stdin(Stdio::null()).output();
    // GNU ld only warns about a `-z` keyword it does not know.
    let linked = matches!(linked, Ok(o) if o.status.success() && !String::from_utf8_lossy(&o.stderr).contains("pack-relative-relocs"));
    linked && Command::new(&exe).stdin(Stdio::null()).status().is_ok_and(|s| s.success())
}
