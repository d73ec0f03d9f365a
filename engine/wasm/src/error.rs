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
