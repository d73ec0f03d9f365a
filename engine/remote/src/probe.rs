//! `dagrun doctor`'s look at a remote: reachable and signed in, writable, and honouring the
//! create-only put that publishing entries relies on (a server that ignores `If-None-Match`
//! would let a second writer replace a published entry).

use object_store::path::Path as Key;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::{Connection, RemoteError};

/// What the probe found; each step only runs when the one before passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// A listing answered (the bucket exists and the credentials are accepted).
    pub reachable: bool,
    /// A test object could be written, read back identical, and deleted.
    pub writable: bool,
    /// A second create-only put of the same name was refused.
    pub conditional_put: bool,
}

/// Probes `conn` with a scratch object under `<prefix>/v1/doctor/` (removed afterwards).
pub async fn probe(conn: &Connection) -> Result<Probe, RemoteError> {
    let url = conn.url.to_string();
    let failed = |op: &str| {
        let (url, op) = (url.clone(), op.to_owned());
        move |source| RemoteError::Request { url, op, source: Box::new(source) }
    };
    let mut found = Probe { reachable: false, writable: false, conditional_put: false };
    let prefix = Key::from(conn.url.key("v1"));
    conn.store.list_with_delimiter(Some(&prefix)).await.map_err(failed("listing the bucket"))?;
    found.reachable = true;
    let name = Key::from(conn.url.key(&format!("v1/doctor/{}-{}", std::process::id(), nanos())));
    let bytes = format!("dagrun doctor {}", nanos()).into_bytes();
    let create = || PutOptions { mode: PutMode::Create, ..PutOptions::default() };
    conn.store
        .put_opts(&name, PutPayload::from(bytes.clone()), create())
        .await
        .map_err(failed("writing a test object"))?;
    let back = conn.store.get(&name).await.map_err(failed("reading the test object back"))?;
    let back = back.bytes().await.map_err(failed("reading the test object back"))?;
    found.writable = back.as_ref() == bytes.as_slice();
    let second = conn.store.put_opts(&name, PutPayload::from(b"second writer".to_vec()), create()).await;
    found.conditional_put =
        matches!(second, Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }));
    conn.store.delete(&name).await.map_err(failed("deleting the test object"))?;
    Ok(found)
}

fn nanos() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}
