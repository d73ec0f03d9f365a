//! The process-wide plugin host: engine, linker, epoch ticker, and loaded-plugin caches.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine};

use crate::bindings::{Plugin, PluginPre};
use crate::error::PluginError;
use crate::sandbox::State;

/// How often the epoch advances: deadlines are accurate to this.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Environment variable: where compiled plugins are cached (default: the user's cache
/// directory, `$XDG_CACHE_HOME/dagrun/wasm` or `~/.cache/dagrun/wasm`).
pub const COMPILED_CACHE_ENV: &str = "DAGRUN_WASM_CACHE";

/// The directory for compiled plugins shared by every workflow of this user, if one is known.
/// Entries are keyed by the wasm digest and the engine's compatibility hash, so sharing is safe.
pub fn compiled_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(COMPILED_CACHE_ENV) {
        return Some(PathBuf::from(dir));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("dagrun").join("wasm"))
}

/// What a plugin says about itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PluginInfo {
    /// Plugin name.
    pub name: String,
    /// Plugin version.
    pub version: String,
    /// One-paragraph description.
    pub description: String,
    /// JSON Schema of its params.
    pub params_schema: String,
}

/// A compiled, linked plugin, ready to instantiate.
pub struct LoadedPlugin {
    pub(crate) pre: PluginPre<State>,
    /// The plugin file it came from.
    pub path: PathBuf,
    /// Whether it was compiled now (false: loaded precompiled from the disk cache).
    pub compiled: bool,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin").field("path", &self.path).field("compiled", &self.compiled).finish()
    }
}

/// One per process.
pub struct PluginHost {
    pub(crate) engine: Engine,
    linker: Linker<State>,
    cache_dir: PathBuf,
    loaded: Mutex<HashMap<blake3::Hash, Arc<LoadedPlugin>>>,
    loading: Mutex<()>,
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost").field("cache_dir", &self.cache_dir).finish_non_exhaustive()
    }
}

impl PluginHost {
    /// Creates the engine; compiled components are cached in `cache_dir`.
    pub fn new(cache_dir: &Path) -> Result<PluginHost, PluginError> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        config.wasm_backtrace_details(wasmtime::WasmBacktraceDetails::Disable);
        let engine = Engine::new(&config).map_err(|e| PluginError::Host(format!("cannot start wasmtime: {e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| PluginError::Host(format!("cannot link WASI: {e:#}")))?;
        Plugin::add_to_linker::<_, HasSelf<State>>(&mut linker, |s| s)
            .map_err(|e| PluginError::Host(format!("cannot link the dagrun host interface: {e:#}")))?;
        crate::interrupt::link(&mut linker)
            .map_err(|e| PluginError::Host(format!("cannot link interruptible WASI polls: {e:#}")))?;
        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("dagrun-epoch".into())
            .spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(|e| PluginError::Host(format!("cannot start the epoch thread: {e}")))?;
        Ok(PluginHost {
            engine,
            linker,
            cache_dir: cache_dir.to_owned(),
            loaded: Mutex::new(HashMap::new()),
            loading: Mutex::new(()),
        })
    }

    fn compat_hash(&self) -> String {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        format!("{:016x}", h.finish())
    }

    /// Loads a plugin: from memory if already loaded, else the on-disk compiled cache, else
    /// compiles it (and caches the result). Refuses plugins that import network interfaces.
    pub fn load(&self, wasm_path: &Path) -> Result<Arc<LoadedPlugin>, PluginError> {
        let bytes = std::fs::read(wasm_path).map_err(|source| PluginError::Io {
            context: format!("cannot read plugin {}", wasm_path.display()),
            source,
        })?;
        let digest = blake3::hash(&bytes);
        if let Some(p) = self.loaded.lock().expect("lock").get(&digest) {
            return Ok(p.clone());
        }
        // One load at a time: tasks that start together wait for a single compile instead of
        // each compiling the same plugin (compilation is already parallel inside wasmtime).
        let _guard = self.loading.lock().expect("lock");
        if let Some(p) = self.loaded.lock().expect("lock").get(&digest) {
            return Ok(p.clone());
        }
        let shown = wasm_path.display().to_string();
        let cached = self.cache_dir.join(format!("{}-{}.cwasm", digest.to_hex(), self.compat_hash()));
        let (component, compiled) = match self.deserialize(&cached) {
            Some(c) => (c, false),
            None => {
                let c = Component::new(&self.engine, &bytes)
                    .map_err(|e| PluginError::NotAComponent { path: shown.clone(), message: format!("{e:#}") })?;
                if let Ok(serialized) = c.serialize() {
                    write_atomic(&cached, &serialized);
                }
                (c, true)
            }
        };
        let ty = component.component_type();
        for (name, _) in ty.imports(&self.engine) {
            if name.starts_with("wasi:sockets/") || name.starts_with("wasi:http/") {
                return Err(PluginError::NetworkImport { path: shown, import: name.to_owned() });
            }
        }
        let pre = self.linker.instantiate_pre(&component).map_err(|e| PluginError::Incompatible {
            path: shown.clone(),
            message: explain_link_error(&format!("{e:#}")),
        })?;
        let pre =
            PluginPre::new(pre).map_err(|e| PluginError::Incompatible { path: shown, message: format!("{e:#}") })?;
        let loaded = Arc::new(LoadedPlugin { pre, path: wasm_path.to_owned(), compiled });
        self.loaded.lock().expect("lock").insert(digest, loaded.clone());
        Ok(loaded)
    }

    #[allow(unsafe_code)]
    fn deserialize(&self, path: &Path) -> Option<Component> {
        if !path.is_file() {
            return None;
        }
        // SAFETY: the file was produced by `Component::serialize` of an engine with the same
        // compatibility hash (it is in the file name) and written atomically by this host into
        // dagrun's own state directory; wasmtime also validates its header before use.
        unsafe { Component::deserialize_file(&self.engine, path) }.ok()
    }

    /// The names of everything a plugin imports (WASI interfaces and the dagrun host API).
    pub fn imports(&self, plugin: &LoadedPlugin) -> Vec<String> {
        let mut names: Vec<String> = plugin
            .pre
            .instance_pre()
            .component()
            .component_type()
            .imports(&self.engine)
            .map(|(n, _)| n.to_owned())
            .collect();
        names.sort();
        names
    }

    /// Calls the plugin's `describe` export.
    pub fn describe(&self, plugin: &LoadedPlugin) -> Result<PluginInfo, PluginError> {
        let mut store = crate::sandbox::bare_store(self)?;
        store.set_epoch_deadline(
            u64::try_from(Duration::from_secs(10).as_millis() / EPOCH_TICK.as_millis()).unwrap_or(1000),
        );
        store.epoch_deadline_trap();
        let instance = plugin.pre.instantiate(&mut store).map_err(|e| PluginError::Host(format!("{e:#}")))?;
        let info = instance
            .call_describe(&mut store)
            .map_err(|e| crate::sandbox::classify(e, store.data(), Duration::from_secs(10)))?;
        Ok(PluginInfo {
            name: info.name,
            version: info.version,
            description: info.description,
            params_schema: info.params_schema,
        })
    }
}

/// Best-effort atomic write (temp file + rename); a failure only costs a recompile later.
fn write_atomic(path: &Path, bytes: &[u8]) {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    if std::fs::write(&tmp, bytes).is_ok() && std::fs::rename(&tmp, path).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// The WIT package version this host implements.
pub const WIT_VERSION: &str = "0.1.0";

/// Rewords wasmtime's "matching implementation was not found" for a plugin built against
/// another version of the dagrun interface.
fn explain_link_error(raw: &str) -> String {
    let between = |s: &str, start: &str| -> Option<String> {
        let rest = &s[s.find(start)? + start.len()..];
        Some(rest[..rest.find('`')?].to_owned())
    };
    let (Some(instance), Some(export)) = (between(raw, "imports instance `"), between(raw, "instance export `")) else {
        return format!("is incompatible with this dagrun: {raw}");
    };
    let Some((package, version)) = instance.split_once('@') else { return raw.to_owned() };
    let Some((namespace, interface)) = package.rsplit_once('/') else { return raw.to_owned() };
    if namespace != "dagrun:task" {
        return format!("needs `{export}` of `{instance}`, which dagrun does not provide to plugins");
    }
    let series = |v: &str| v.rsplit_once('.').map_or(v.to_owned(), |(s, _)| s.to_owned());
    if series(version) != series(WIT_VERSION) {
        return format!(
            "was built against {namespace}@{version}, but this dagrun provides {namespace}@{WIT_VERSION} \
             (plugins must use {namespace}@{}.x): rebuild the plugin with this dagrun's SDK, or use a matching dagrun",
            series(WIT_VERSION)
        );
    }
    format!(
        "was built against {namespace}@{version} and needs `{interface}.{export}`, which this dagrun \
         ({namespace}@{WIT_VERSION}) does not provide: rebuild the plugin with this dagrun's SDK, or upgrade dagrun"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The version in `package dagrun:task@X.Y.Z;` of a WIT file.
    fn wit_package_version(wit: &str) -> Option<&str> {
        let line = wit.lines().map(str::trim).find(|l| l.starts_with("package "))?;
        line.strip_prefix("package dagrun:task@")?.strip_suffix(';')
    }

    #[test]
    fn wit_version_is_the_shared_wit_files() {
        let wit = include_str!("../../../sdk/wit/dagrun.wit");
        assert_eq!(wit_package_version(wit), Some(WIT_VERSION));
        assert_eq!(wit_package_version("// x\npackage dagrun:task@0.2.0;\n"), Some("0.2.0"));
        assert_eq!(wit_package_version("package other:pkg@0.1.0;"), None);
    }

    #[test]
    fn explains_a_newer_interface() {
        let raw = "component imports instance `dagrun:task/host@0.1.1`, but a matching implementation was not \
                   found in the linker: instance export `new-feature` has the wrong type: function implementation is missing";
        assert_eq!(
            explain_link_error(raw),
            "was built against dagrun:task@0.1.1 and needs `host.new-feature`, which this dagrun (dagrun:task@0.1.0) \
             does not provide: rebuild the plugin with this dagrun's SDK, or upgrade dagrun"
        );
        let raw = raw.replace("0.1.1", "0.2.0").replace("new-feature", "log");
        assert_eq!(
            explain_link_error(&raw),
            "was built against dagrun:task@0.2.0, but this dagrun provides dagrun:task@0.1.0 (plugins must use \
             dagrun:task@0.1.x): rebuild the plugin with this dagrun's SDK, or use a matching dagrun"
        );
        assert_eq!(explain_link_error("odd"), "is incompatible with this dagrun: odd");
    }
}
