//! `escape`: tries ONE way out of the sandbox, chosen by param `attempt`:
//!
//! | `attempt`         | what it does                                               |
//! |-------------------|------------------------------------------------------------|
//! | `read-etc-passwd` | reads `/etc/passwd`                                        |
//! | `traverse`        | reads `<dir of input data>/../../etc/passwd`               |
//! | `write-input`     | opens input `data` for writing (without changing it)       |
//! | `env`             | reads the environment variables `HOME` and `PATH`          |
//!
//! Denied: the run fails with `<attempt> denied: <OS error>` (`failed`), or for `env`
//! succeeds with `{"home": null}`. Escaped: it succeeds with `{"escaped": true}`, or for `env`
//! fails with `bad-input` `environment visible: HOME=..., PATH=...`.

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
                Ok(ESCAPED)
            }
            "traverse" => {
                let path = input_dir(ctx)?.join("../../etc/passwd");
                ctx.log_info(format!("reading {}", path.display()));
                std::fs::read(&path).map_err(denied)?;
                Ok(ESCAPED)
            }
            "write-input" => {
                let input = ctx.input("data")?;
                // Opening for writing (no truncation) is enough to prove access; nothing is written.
                std::fs::OpenOptions::new().write(true).open(&input).map_err(denied)?;
                Ok(ESCAPED)
            }
            "env" => {
                let visible: Vec<String> =
                    ["HOME", "PATH"].iter().filter_map(|k| std::env::var(k).ok().map(|v| format!("{k}={v}"))).collect();
                if visible.is_empty() {
                    Ok(Summary::NoEnv { home: None })
                } else {
                    Err(Error::bad_input(format!("environment visible: {}", visible.join(", "))))
                }
            }
            other => Err(Error::invalid_params(format!(
                "unknown attempt `{other}`; expected one of `read-etc-passwd`, `traverse`, `write-input`, `env`"
            ))),
        }
    }
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
