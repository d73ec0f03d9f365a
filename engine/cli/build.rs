//! Links `dagrun` leaner where the toolchain allows it: packed relative relocations, and (in
//! release builds) the code a run executes placed side by side.
//!
//! - **Packed relative relocations** (`-z pack-relative-relocs`, DT_RELR). The binary is
//!   position-independent and holds ~110,000 relative relocations (vtables, panic locations): as
//!   plain RELA entries they are 2.7 MB the loader reads at every start; packed, 35 KB. Each run
//!   starts ~1 ms sooner and peaks ~4 MiB lower (docs/benchmarks.md). A binary linked so needs
//!   glibc 2.36 wherever it runs: set `DAGRUN_BUILD_NO_RELR=1` when building for remote nodes
//!   with an older one (docs/remote-execution.md).
//! - **Symbol ordering** (`--symbol-ordering-file=symbol-order.txt`, release builds only). The
//!   kernel maps code in 64 KiB pieces around each page that runs: the ~2 MB of functions a run
//!   executes, spread over 40 MB of code, cost 9.4 MiB of its memory; side by side, 2.6 MiB.
//!   The list names the functions of a release build of this repository (its toolchain, lock file
//!   and profile); `scripts/symbol-order.sh` regenerates it, `DAGRUN_BUILD_NO_SYMBOL_ORDER=1`
//!   turns it off: needed with a linker given other than through cargo's configuration (e.g.
//!   `cargo rustc -- -C link-arg=-fuse-ld=bfd`), which the probe cannot see.
//!
//! Each is used only when a probe (a tiny Rust program built with the flag through the same
//! `rustc`, linker and flags as this build) links without a warning and runs: an older linker,
//! one without the option (GNU ld has no symbol ordering), or a glibc before 2.36 (whose loader
//! would refuse the binary) leaves the link unchanged, as do cross builds (the probe could not run).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const RELR: &str = "-Wl,-z,pack-relative-relocs";
/// Tells the linker not to list the names it does not define (most, for the probe).
const QUIET: &str = "--no-warn-symbol-ordering";
const ORDER_FILE: &str = "symbol-order.txt";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={ORDER_FILE}");
    // What cargo was started with (a linker or flags set in `.cargo/config.toml` instead are
    // seen after `cargo clean -p dagrun`).
    let target = std::env::var("TARGET").unwrap_or_default().to_uppercase().replace('-', "_");
    let target_vars = [format!("CARGO_TARGET_{target}_LINKER"), format!("CARGO_TARGET_{target}_RUSTFLAGS")];
    for var in [
        "DAGRUN_BUILD_NO_RELR",
        "DAGRUN_BUILD_NO_SYMBOL_ORDER",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    for var in &target_vars {
        println!("cargo:rerun-if-env-changed={var}");
    }
    if std::env::var_os("DAGRUN_BUILD_NO_RELR").is_none() && probe("relr", &[RELR], "pack-relative-relocs") {
        println!("cargo:rustc-link-arg-bins={RELR}");
    }
    if let Some(order) = symbol_order() {
        // Through `-Xlinker`, unsplit: `-Wl,` would cut a path at its commas.
        for arg in ["-Xlinker", &order, "-Xlinker", QUIET] {
            println!("cargo:rustc-link-arg-bins={arg}");
        }
    }
}

/// The linker option that orders the binary's functions by [`ORDER_FILE`], for a release build
/// whose linker takes it. (A debug build gains nothing: its functions are not the ones listed.)
fn symbol_order() -> Option<String> {
    if std::env::var("PROFILE").ok()? != "release" || std::env::var_os("DAGRUN_BUILD_NO_SYMBOL_ORDER").is_some() {
        return None;
    }
    let source = Path::new(&std::env::var_os("CARGO_MANIFEST_DIR")?).join(ORDER_FILE);
    // Linked from a copy in OUT_DIR, which lives as long as this script's output: a target
    // directory shared by several checkouts (a worktree since removed) may reuse that output.
    let file = PathBuf::from(std::env::var_os("OUT_DIR")?).join(ORDER_FILE);
    std::fs::copy(&source, &file).ok()?;
    let arg = format!("--symbol-ordering-file={}", file.to_str()?);
    probe("order", &["-Xlinker", &arg, "-Xlinker", QUIET], "symbol-ordering").then_some(arg)
}

/// Whether a program linked with `link_args` links (without a warning that mentions `warning`)
/// and runs here.
fn probe(name: &str, link_args: &[&str], warning: &str) -> bool {
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    if var("TARGET") != var("HOST") || var("CARGO_CFG_TARGET_OS") != "linux" || var("CARGO_CFG_TARGET_ENV") != "gnu" {
        return false;
    }
    let Some(out) = std::env::var_os("OUT_DIR").map(PathBuf::from) else { return false };
    let (src, exe) = (out.join(format!("{name}_probe.rs")), out.join(format!("{name}_probe")));
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
    for arg in link_args {
        rustc.args(["-C", &format!("link-arg={arg}")]);
    }
    rustc.arg("-o").arg(&exe).arg(&src);
    // Where cargo runs rustc (relative paths in the flags); profiles of an instrumented probe
    // land in OUT_DIR.
    let root = PathBuf::from(var("CARGO_MANIFEST_DIR")).join("../..");
    let linked = rustc.current_dir(&root).stdin(Stdio::null()).output();
    // GNU ld and lld only warn about a `-z` keyword they do not know.
    let linked = matches!(linked, Ok(o) if o.status.success() && !String::from_utf8_lossy(&o.stderr).contains(warning));
    let profiles = out.join(format!("{name}-probe-%p.profraw"));
    linked
        && Command::new(&exe)
            .env("LLVM_PROFILE_FILE", profiles)
            .current_dir(&out)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}
