//! `escape`: tries ONE way out of the sandbox, chosen by param `attempt`:
//!
//! | `attempt`         | what it does                                                        |
//! |-------------------|---------------------------------------------------------------------|
//! | `read-etc-passwd` | reads `/etc/passwd`                                                 |
//! | `traverse`        | reads `<dir of input data>/../../etc/passwd`                        |
//! | `write-input`     | opens input `data` for writing (without changing it)                |
//! | `write-mount`     | creates a file in mount `ro` (granted read-only)                    |
//! | `list-root`       | lists `/`                                                           |
//! | `symlink-out`     | creates `/out/link` pointing at `/etc/passwd`                       |
//! | `artifact-dir`    | returns a directory of `/out` as its artifact `out`                 |
//! | `artifact-link`   | returns a (relative) symlink in `/out` as its artifact `out`        |
//! | `env`             | reads every environment variable it can see                         |
//!
//! Denied: the run fails with `<attempt> denied: <OS error>` (`failed`), or for `env`
//! succeeds with `{"home": null}`; the artifact attempts are refused by dagrun after `run`
//! returns. Escaped: it succeeds with `{"escaped": true}`, or for `env` fails with `bad-input`
//! `environment visible: NAME=value, ...`.

use std::path::{Path, PathBuf};

use dagrun_sdk::{Ctx, Error, Info, Task};
use serde::{Deserialize, Serialize};

struct Escape;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    attempt: String,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Summary {
    Escaped { escaped: bool },
    NoEnv { home: Option<String> },
}

const ESCAPED: Summary = Summary::Escaped { escaped: true };

const ATTEMPTS: &str = "`read-etc-passwd`, `traverse`, `write-input`, `write-mount`, `list-root`, `symlink-out`, \
                        `artifact-dir`, `artifact-link`, `env`";

impl Task for Escape {
    type Params = Params;
    type Output = Summary;

    fn describe() -> Info {
        Info::new("escape", env!("CARGO_PKG_VERSION")).description("Tries to get out of the sandbox.")
    }

    fn run(ctx: &mut Ctx, params: Params) -> Result<Summary, Error> {
        let attempt = params.attempt.as_str();
        let denied = |e: std::io::Error| Error::failed(format!("{attempt} denied: {e}"));
        match attempt {
            "read-etc-passwd" => {
                std::fs::read("/etc/passwd").map_err(denied)?;
            }
            "traverse" => {
                let path = input_dir(ctx)?.join("../../etc/passwd");
                ctx.log_info(format!("reading {}", path.display()));
                std::fs::read(&path).map_err(denied)?;
            }
            "write-input" => {
                let input = ctx.input("data")?;
                // Opening for writing (no truncation) is enough to prove access; nothing is written.
                std::fs::OpenOptions::new().write(true).open(&input).map_err(denied)?;
            }
            "write-mount" => {
                std::fs::write(ctx.mount("ro")?.join("escaped.txt"), "escaped\n").map_err(denied)?;
            }
            "list-root" => {
                std::fs::read_dir("/").map_err(denied)?;
            }
            "symlink-out" => {
                let link = ctx.output("link");
                symlink("/etc/passwd", &link).map_err(denied)?;
            }
            "artifact-dir" => {
                std::fs::create_dir_all(ctx.output("out").join("inside")).map_err(denied)?;
            }
            "artifact-link" => {
                let out = ctx.output("out");
                std::fs::write(out.with_file_name("real.txt"), "real\n").map_err(denied)?;
                symlink("real.txt", &out).map_err(denied)?;
            }
            "env" => return env(),
            other => {
                return Err(Error::invalid_params(format!("unknown attempt `{other}`; expected one of {ATTEMPTS}")));
            }
        }
        Ok(ESCAPED)
    }
}

/// Fails on any environment variable the plugin can see, whatever its name.
fn env() -> Result<Summary, Error> {
    let visible: Vec<String> =
        std::env::vars_os().map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy())).collect();
    if visible.is_empty() {
        Ok(Summary::NoEnv { home: None })
    } else {
        Err(Error::bad_input(format!("environment visible: {}", visible.join(", "))))
    }
}

/// A symbolic link at `link` to `target`. On WASI, std's `symlink_path` is unstable, so this calls
/// wasi-libc's `symlink` (what std would); natively (for lints), a Unix symlink.
fn symlink(target: &str, link: &Path) -> std::io::Result<()> {
    #[cfg(target_os = "wasi")]
    {
        unsafe extern "C" {
            fn symlink(target: *const std::ffi::c_char, link: *const std::ffi::c_char) -> std::ffi::c_int;
        }
        let c = |s: &str| std::ffi::CString::new(s).map_err(std::io::Error::other);
        let (target, link) = (c(target)?, c(&link.to_string_lossy())?);
        // SAFETY: both are NUL-terminated strings that live across the call.
        if unsafe { symlink(target.as_ptr(), link.as_ptr()) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
    #[cfg(not(target_os = "wasi"))]
    std::os::unix::fs::symlink(target, link)
}

/// The directory holding input `data` (the input itself when it is a directory).
fn input_dir(ctx: &Ctx) -> Result<PathBuf, Error> {
    let input = ctx.input("data")?;
    if input.is_dir() {
        return Ok(input);
    }
    Ok(input.parent().map_or_else(|| PathBuf::from("/"), Path::to_path_buf))
}

dagrun_sdk::export_task!(Escape);
