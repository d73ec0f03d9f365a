//! A loaded workflow's text, dropped once it is no longer needed ([`crate::Workflow::release_text`])
//! and read again, checked against its digest, when a diagnostic raised later needs it.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

/// What the dropped text was and where it was read from.
#[derive(Debug, Clone)]
pub(crate) struct Released {
    file: PathBuf,
    len: usize,
    digest: blake3::Hash,
    /// The text read again, on first use (`None`: the file changed since, or is gone).
    again: OnceLock<Option<Arc<str>>>,
}

impl Released {
    /// Remembers `text`, read from `file` (an absolute path).
    pub(crate) fn new(file: PathBuf, text: &str) -> Self {
        Released { file, len: text.len(), digest: blake3::hash(text.as_bytes()), again: OnceLock::new() }
    }

    /// The text as it was loaded, while the file still holds exactly that. Read once: a file
    /// found changed stays so for this workflow (a run goes on without locations).
    pub(crate) fn text(&self) -> Option<&Arc<str>> {
        self.again
            .get_or_init(|| {
                let bytes = std::fs::read(&self.file).ok()?;
                if bytes.len() != self.len || blake3::hash(&bytes) != self.digest {
                    return None;
                }
                String::from_utf8(bytes).ok().map(Arc::from)
            })
            .as_ref()
    }
}
