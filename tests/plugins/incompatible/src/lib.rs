//! `incompatible`: a plugin built against a newer contract, `dagrun:task@0.2.0` (its own copy of
//! the WIT in `wit/`), that adds the host import `host.new-feature: func()` and calls it.
//!
//! A 0.1.0 host cannot link it. Measured with wasmtime 48's component linker:
//!
//! ```text
//! component imports instance `dagrun:task/host@0.2.0`, but a matching implementation was not
//! found in the linker: instance export `new-feature` has the wrong type: function
//! implementation is missing
//! ```
//!
//! Note: for 0.x versions wasmtime treats a new *minor* as incompatible (0.2 never resolves to
//! 0.1), so this fails even for a 0.2.0 plugin that only uses functions 0.1.0 has (the message
//! then names `log`). A compatible addition is a *patch* bump: see `newer-patch`.

#![allow(clippy::too_many_arguments)] // in the generated bindings

wit_bindgen::generate!({ path: "wit", world: "plugin" });

use dagrun::task::host;

struct Plugin;

impl Guest for Plugin {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "incompatible".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Needs dagrun:task@0.2.0 (host.new-feature).".into(),
            params_schema: "{}".into(),
        }
    }

    fn run(_ctx: Context) -> Result<TaskResult, TaskError> {
        host::new_feature();
        Ok(TaskResult { summary_json: "{}".into(), artifacts: Vec::new() })
    }
}

export!(Plugin);
