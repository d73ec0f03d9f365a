//! [`Error`] and [`ErrorKind`]: how a task reports a failure to the host.

use std::fmt;

/// Why a task run failed.
///
/// The host receives the [kind](Error::kind) and the [message](Error::message) and shows
/// them to the user, so write messages for a person: name the input, field or file concerned.
///
/// `?` converts [`std::io::Error`] and [`serde_json::Error`] into [`Error::failed`]; their
/// messages carry no context (e.g. `No such file or directory (os error 44)`), so prefer
/// `map_err` where the path matters:
///
/// ```
/// use dagrun_sdk::Error;
///
/// fn read(path: &std::path::Path) -> Result<String, Error> {
///     std::fs::read_to_string(path)
///         .map_err(|e| Error::bad_input(format!("cannot read {}: {e}", path.display())))
/// }
/// # assert!(read("/definitely/missing".as_ref()).unwrap_err().message().starts_with("cannot read /definitely/missing: "));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

/// The three kinds of failure a plugin can report (the WIT `task-error` variant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The task's `params` do not fit the plugin. The message names the field.
    InvalidParams,
    /// An input is missing or malformed.
    BadInput,
    /// Anything else.
    Failed,
}

impl Error {
    /// The task's `params` do not fit the plugin; `message` should name the field.
    ///
    /// The SDK already returns this when the params cannot be deserialized into
    /// [`Task::Params`](crate::Task::Params); use it for checks serde cannot express:
    ///
    /// ```
    /// # use dagrun_sdk::Error;
    /// # let factor = 2.0_f64;
    /// if factor <= 0.0 {
    ///     return Err(Error::invalid_params(format!("`factor` must be positive, got {factor}")));
    /// }
    /// # Ok::<(), Error>(())
    /// ```
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self { kind: ErrorKind::InvalidParams, message: message.into() }
    }

    /// An input is missing or malformed (e.g. a CSV without the expected column).
    pub fn bad_input(message: impl Into<String>) -> Self {
        Self { kind: ErrorKind::BadInput, message: message.into() }
    }

    /// Any other failure.
    pub fn failed(message: impl Into<String>) -> Self {
        Self { kind: ErrorKind::Failed, message: message.into() }
    }

    /// Which kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without the kind (this is exactly what the host receives).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::InvalidParams => "invalid params",
            ErrorKind::BadInput => "bad input",
            ErrorKind::Failed => "failed",
        })
    }
}

/// `<kind>: <message>`, e.g. ``invalid params: missing field `factor` at line 1 column 2``.
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for Error {}

/// Becomes [`Error::failed`] with the I/O error's text.
impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::failed(e.to_string())
    }
}

/// Becomes [`Error::failed`] with serde_json's text (which gives line and column).
impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::failed(e.to_string())
    }
}
