//! Plugin errors, each worded for the user: what happened, with the limit or location.

use std::time::Duration;

/// Why a plugin could not be loaded or a run failed.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The file is not a WASM component (e.g. a core module or garbage).
    #[error("{path} is not a WASM component: {message} (build plugins with `cargo build --target wasm32-wasip2`)")]
    NotAComponent {
        /// The plugin file.
        path: String,
        /// wasmtime's reason.
        message: String,
    },
    /// The plugin imports something the host does not provide (usually a newer SDK/WIT).
    #[error("{path} {message}")]
    Incompatible {
        /// The plugin file.
        path: String,
        /// Which import is missing.
        message: String,
    },
    /// The plugin asks for network access, which dagrun never grants.
    #[error("{path} imports `{import}` (network access), which dagrun plugins may not use")]
    NetworkImport {
        /// The plugin file.
        path: String,
        /// The import.
        import: String,
    },
    /// The run exceeded its wall-clock deadline.
    #[error("deadline exceeded: the plugin ran longer than its limit of {}", fmt_duration(*.0))]
    Deadline(Duration),
    /// The plugin tried to grow its memory past the cap.
    #[error("memory limit exceeded: the plugin tried to grow its memory to {} (limit {})", mib(*.wanted), mib(*.limit))]
    Memory {
        /// Bytes requested.
        wanted: u64,
        /// The cap.
        limit: u64,
    },
    /// The plugin panicked.
    #[error("plugin panicked at {file}:{line}: {message}")]
    Panic {
        /// Panic message.
        message: String,
        /// Source file.
        file: String,
        /// Line.
        line: u32,
    },
    /// The plugin trapped (a WASM runtime error).
    #[error("plugin trapped: {message}{}", backtrace_text(.backtrace))]
    Trap {
        /// The trap.
        message: String,
        /// The innermost frames.
        backtrace: Vec<String>,
    },
    /// The plugin rejected its params.
    #[error("invalid params: {0}")]
    InvalidParams(String),
    /// The plugin rejected an input.
    #[error("bad input: {0}")]
    BadInput(String),
    /// The plugin reported a failure.
    #[error("{0}")]
    Failed(String),
    /// A returned artifact is not a file inside the output directory.
    #[error("the plugin returned artifact `{name}` at {path}, which is not a file inside its output directory /out")]
    ArtifactOutside {
        /// Artifact name.
        name: String,
        /// Guest path.
        path: String,
    },
    /// Host-side I/O while preparing or collecting a run.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
    /// The run was interrupted (Ctrl-C).
    #[error("interrupted")]
    Cancelled,
    /// Anything else wasmtime reported.
    #[error("{0}")]
    Host(String),
}

impl PluginError {
    /// For [`PluginError::InvalidParams`], the param the plugin named: see [`invalid_param_name`].
    pub fn invalid_param(&self) -> Option<&str> {
        match self {
            PluginError::InvalidParams(message) => invalid_param_name(message),
            _ => None,
        }
    }
}

/// The param an invalid-params message (as the SDK writes it) is about, as a path for
/// `Workflow::param_location`: `columns` for ``param `columns`: invalid type: ...``,
/// `split.ratio` for ``param `split.ratio`: ...``, `facter` for a top-level
/// ``unknown field `facter`, expected ...``. `None` for other messages (e.g.
/// ``missing field `factor` ``, or a plugin's own text).
pub fn invalid_param_name(message: &str) -> Option<&str> {
    let quoted =
        |prefix: &str| message.strip_prefix(prefix).and_then(|rest| rest.split_once('`')).map(|(name, _)| name);
    match message.strip_prefix("param `") {
        Some(rest) => rest.split_once("`: ").map(|(path, _)| path),
        None => quoted("unknown field `"),
    }
    .filter(|name| !name.is_empty())
}

fn backtrace_text(frames: &[String]) -> String {
    if frames.is_empty() { String::new() } else { format!("\nwasm backtrace:\n  {}", frames.join("\n  ")) }
}

fn mib(bytes: u64) -> String {
    format!("{} MiB", bytes / (1024 * 1024))
}

fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_param_of_an_sdk_message() {
        let name = invalid_param_name;
        assert_eq!(name(r#"param `columns`: invalid type: string "charges", expected a sequence"#), Some("columns"));
        assert_eq!(name("param `split.ratio`: invalid type: string \"half\", expected f64"), Some("split.ratio"));
        assert_eq!(name("param `columns[1]`: invalid type: integer `2`, expected a string"), Some("columns[1]"));
        assert_eq!(name("param `split`: unknown field `seed`, expected `ratio`"), Some("split"));
        assert_eq!(name("unknown field `facter`, expected `factor` or `name`"), Some("facter"));
        assert_eq!(name("missing field `factor`"), None);
        assert_eq!(name("`factor` must be positive"), None);
        assert_eq!(name("param ``: x"), None);
        assert_eq!(name("param `x"), None);
    }

    #[test]
    fn invalid_params_error_names_its_param() {
        let e = PluginError::InvalidParams("param `columns`: invalid type: map, expected a sequence".into());
        assert_eq!(e.invalid_param(), Some("columns"));
        assert_eq!(e.to_string(), "invalid params: param `columns`: invalid type: map, expected a sequence");
        assert_eq!(PluginError::Failed("param `columns`: no".into()).invalid_param(), None);
    }
}
