//! Publishing what a deploy or a rollback changed in a registry's mirror: new versions
//! create-only (`metadata.json` first: it claims the number), then `current` by a conditional
//! write on the ETag the last sync saw. Losing either race is [`RemoteError::LostRace`].

use std::path::Path;

use dagrun_contracts::registry as layout;
use object_store::{PutMode, PutOptions, PutPayload, UpdateVersion};

use super::{Moved, Record, RemoteRegistry, unquote};
use crate::RemoteError;

impl RemoteRegistry {
    /// Sends every change made in the mirror since the last sync: versions the remote does
    /// not have, then each moved `current`. Returns the pointers moved. When another writer got
    /// there first nothing of this change is overwritten: the mirror is re-synced and the error
    /// is [`RemoteError::LostRace`], naming what is current now.
    pub async fn publish(&self) -> Result<Vec<Moved>, RemoteError> {
        let mut record = self.load();
        let mut moved = Vec::new();
        for name in layout::names(&self.mirror) {
            let sent = self.publish_model(&name, &mut record, &mut moved).await;
            self.save(&record)?;
            match sent {
                Ok(()) => {}
                Err(RemoteError::LostRace { url, name, ours, .. }) => {
                    let resync = self.sync().await.err().map(|e| e.to_string());
                    let current = self.load().models.get(&name).and_then(|p| p.remote.clone());
                    return Err(RemoteError::LostRace { url, name, ours, current, resync });
                }
                Err(e) => return Err(e),
            }
        }
        Ok(moved)
    }

    async fn publish_model(&self, name: &str, record: &mut Record, moved: &mut Vec<Moved>) -> Result<(), RemoteError> {
        for v in layout::versions(&self.mirror, name) {
            let prefix = format!("{name}/{}/", v.version);
            if record.files.keys().any(|k| k.starts_with(&prefix)) || v.dir.join(super::UNUSABLE_FILE).exists() {
                continue;
            }
            self.upload_version(name, &v.version, &v.dir, record).await?;
        }
        let path = layout::current_file(&self.mirror, name);
        let local = layout::read_current(&self.mirror, name)
            .map_err(|e| self.local(&path)(std::io::Error::other(e.to_string())))?;
        let entry = record.models.entry(name.to_owned()).or_default();
        let Some(version) = local.filter(|l| Some(l) != entry.local.as_ref()) else { return Ok(()) };
        let mode = match &entry.e_tag {
            Some(t) => PutMode::Update(UpdateVersion { e_tag: Some(t.clone()), version: None }),
            None => PutMode::Create,
        };
        let key = self.key(&format!("{name}/{}", layout::CURRENT_FILE));
        let payload = PutPayload::from(format!("{version}\n").into_bytes());
        match self.conn.store.put_opts(&key, payload, PutOptions { mode, ..PutOptions::default() }).await {
            Ok(r) => {
                moved.push(Moved { name: name.to_owned(), from: entry.remote.clone(), to: version.clone() });
                entry.e_tag = r.e_tag;
                entry.remote = Some(version.clone());
                entry.local = Some(version);
                Ok(())
            }
            Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {
                Err(self.lost(name, format!("{version} as current")))
            }
            Err(e) => Err(self.failed(format!("moving `{name}`'s current to {version}"))(e)),
        }
    }

    /// Uploads a version made in the mirror, after checking it as a reader would: its
    /// metadata first (create-only: whoever creates it owns the number), then its other files.
    async fn upload_version(
        &self,
        name: &str,
        version: &str,
        dir: &Path,
        record: &mut Record,
    ) -> Result<(), RemoteError> {
        let model = layout::model_file(&self.mirror, name, version);
        let bytes = std::fs::read(&model).map_err(self.local(&model))?;
        let digest = blake3::hash(&bytes).to_hex().to_string();
        layout::check_version(&self.mirror, name, version, &digest)
            .map_err(|e| self.local(dir)(std::io::Error::other(e.to_string())))?;
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .map_err(self.local(dir))?
            .flatten()
            .filter(|e| e.path().is_file())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|f| !f.starts_with('.'))
            .collect();
        files.sort_by_key(|f| (f != layout::METADATA_FILE, f.clone()));
        for file in files {
            let path = dir.join(&file);
            let bytes = std::fs::read(&path).map_err(self.local(&path))?;
            let rel = format!("{name}/{version}/{file}");
            let create = PutOptions { mode: PutMode::Create, ..PutOptions::default() };
            let op = || format!("uploading {rel}");
            let tag = match self.conn.store.put_opts(&self.key(&rel), PutPayload::from(bytes.clone()), create).await {
                Ok(r) => r.e_tag,
                Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {
                    // Ours from an attempt cut short keeps the number; anything else is another
                    // writer's version under the same number.
                    let (there, tag) = self.get(&rel).await?;
                    if there[..] != bytes[..] {
                        return Err(self.lost(name, format!("version {version}")));
                    }
                    tag
                }
                Err(e) => return Err(self.failed(op())(e)),
            };
            record.files.insert(rel, tag.as_deref().map(unquote).unwrap_or_default());
        }
        Ok(())
    }

    fn lost(&self, name: &str, ours: String) -> RemoteError {
        RemoteError::LostRace {
            url: self.conn.url.to_string(),
            name: name.to_owned(),
            ours,
            current: None,
            resync: None,
        }
    }
}
