//! `newer-patch`: a plugin built against `dagrun:task@0.1.1` (its own copy of the WIT in `wit/`),
//! which adds the host import `host.new-feature: func()` and calls it.
//!
//! wasmtime's linker treats 0.1.1 as compatible with the host's 0.1.0 and then names the
//! missing function (measured with wasmtime 48):
//!
//! ```text
//! component imports instance `dagrun:task/host@0.1.1`, but a matching implementation was not
//! found in the linker: instance export `new-feature` has the wrong type: function
//! implementation is missing
//! ```
//!
//! A 0.1.1 plugin that does not call `new-feature` would load on the 0.1.0 host.

#![allow(clippy::too_many_arguments)] // in the generated bindings

wit_bindgen::generate!({ path: "wit", world: "plugin" });

use dagrun::task::host;

struct Plugin;

impl Guest for Plugin {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "newer-patch".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Needs dagrun:task@0.1.1 (host.new-feature).".into(),
            params_schema: "{}".into(),
        }
    }

    fn run(_ctx: Context) -> Result<TaskResult, TaskError> {
        host::new_feature();
        Ok(TaskResult { summary_json: "{}".into(), artifacts: Vec::new() })
    }
}

export!(Plugin);
