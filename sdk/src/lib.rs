//! Write dagrun task plugins in plain Rust.
//!
//! A plugin is a WebAssembly component that runs one task of a workflow in a sandbox: it
//! reads its inputs, writes its outputs into an output directory and returns a JSON summary.
//! With this crate you implement [`Task`] for a type and call [`export_task!`]; the WIT
//! contract, the component ABI and `unsafe` stay hidden.
//!
//! # Example
//!
//! `Cargo.toml`:
//!
//! ```toml
//! [package]
//! name = "double"
//! version = "0.1.0"
//! edition = "2024"
//!
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! dagrun-sdk = { path = "../sdk" }
//! serde = { version = "1", features = ["derive"] }
//!
//! [profile.release]
//! opt-level = "s"
//! strip = "debuginfo"
//! ```
//!
//! `src/lib.rs`:
//!
//! ```
//! use dagrun_sdk::{Ctx, Error, Info, Task};
//! use serde::{Deserialize, Serialize};
//!
//! struct Double;
//!
//! /// The task's `params` in the workflow, e.g. `params: {"factor": 2.0}`.
//! #[derive(Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Params {
//!     #[serde(default = "one")]
//!     factor: f64,
//! }
//! fn one() -> f64 {
//!     1.0
//! }
//!
//! /// The run's summary (any `Serialize` type; it becomes JSON).
//! #[derive(Serialize)]
//! struct Summary {
//!     rows: usize,
//! }
//!
//! impl Task for Double {
//!     type Params = Params;
//!     type Output = Summary;
//!
//!     fn describe() -> Info {
//!         Info::new("double", env!("CARGO_PKG_VERSION"))
//!             .description("Multiplies every number of a one-column CSV file by `factor`.")
//!             .params_schema(r#"{"type":"object","properties":{"factor":{"type":"number"}}}"#)
//!     }
//!
//!     fn run(ctx: &mut Ctx, params: Params) -> Result<Summary, Error> {
//!         let text = std::fs::read_to_string(ctx.input("data")?)?;
//!         let mut out = String::new();
//!         let mut rows = 0;
//!         for line in text.lines() {
//!             let value: f64 = line
//!                 .trim()
//!                 .parse()
//!                 .map_err(|_| Error::bad_input(format!("not a number: {line:?}")))?;
//!             out.push_str(&format!("{}\n", value * params.factor));
//!             rows += 1;
//!         }
//!         std::fs::write(ctx.output("doubled"), out)?;
//!         ctx.log_info(format!("doubled {rows} rows"));
//!         Ok(Summary { rows })
//!     }
//! }
//!
//! dagrun_sdk::export_task!(Double);
//! # fn main() {}
//! ```
//!
//! Build it with `cargo build --target wasm32-wasip2 --release` and use
//! `target/wasm32-wasip2/release/double.wasm` from a workflow:
//!
//! ```text
//! Task(
//!     name: "double",
//!     kind: Wasm(plugin: "plugins/double"),
//!     inputs: {"data": File("data.csv")},
//!     outputs: {"doubled": "out/doubled.csv"},
//!     params: {"factor": 2.0},
//! )
//! ```
//!
//! # What the SDK does around [`Task::run`]
//!
//! 1. Installs a panic hook that reports the panic message and its `file:line` to the host
//!    (a panic still ends the run: wasm32 aborts on panic).
//! 2. Deserializes the task's `params` (a JSON object) into [`Task::Params`]; on failure the
//!    run fails with [`ErrorKind::InvalidParams`] and serde's message, preceded by the path of
//!    the param it concerns, e.g. ``param `factor`: invalid type: string "x", expected f64``
//!    or ``param `split.ratio`: ...``, ``param `columns[1]`: ...`` for nested values (an error
//!    about the params object itself, such as ``missing field `factor` ``, has no prefix).
//!    A task without params can use `type Params = ();`.
//! 3. Calls [`Task::run`].
//! 4. On `Ok`, serializes the output as the run's JSON summary and returns every output
//!    registered with [`Ctx::output`] / [`Ctx::output_file`]; one that was never written fails
//!    the run with ``output `x` was registered but never written (<path>)``.
//!
//! # Testing
//!
//! The crate also builds for your machine's own target, where logging prints to stderr, so
//! the logic of a task can be unit-tested with a plain `cargo test` (keep it in functions that
//! do not need a [`Ctx`]).

#![warn(missing_docs)]

extern crate self as dagrun_sdk;

mod ctx;
mod error;
mod host;
mod info;
mod params;

pub use ctx::Ctx;
pub use error::{Error, ErrorKind};
pub use info::Info;

/// A task a plugin can run. Implement it for a unit struct and pass that to [`export_task!`].
///
/// See the [crate documentation](crate) for a complete plugin.
pub trait Task {
    /// The task's `params`, deserialized from the JSON object given in the workflow.
    ///
    /// Usually a `#[derive(Deserialize)]` struct; `#[serde(default)]` gives optional fields,
    /// `#[serde(deny_unknown_fields)]` catches misspelled ones. Use `()` for no params.
    type Params: serde::de::DeserializeOwned;

    /// The run's summary: any `Serialize` value, stored as JSON in the run history.
    type Output: serde::Serialize;

    /// Describes the plugin (name, version, description, params schema).
    fn describe() -> Info;

    /// Runs the task once.
    fn run(ctx: &mut Ctx, params: Self::Params) -> Result<Self::Output, Error>;
}

/// Exports a [`Task`] as the plugin's implementation. Use it once, at the crate's top level:
///
/// ```
/// # use dagrun_sdk::{Ctx, Error, Info, Task};
/// struct Hello;
///
/// impl Task for Hello {
///     type Params = ();
///     type Output = String;
///
///     fn describe() -> Info {
///         Info::new("hello", "0.1.0")
///     }
///
///     fn run(ctx: &mut Ctx, _params: ()) -> Result<String, Error> {
///         std::fs::write(ctx.output("greeting"), "hello\n")?;
///         Ok(format!("greeted from task {}", ctx.task()))
///     }
/// }
///
/// dagrun_sdk::export_task!(Hello);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! export_task {
    ($task:ty) => {
        const _: () = {
            struct __DagrunTaskExport;

            impl $crate::__private::bindings::Guest for __DagrunTaskExport {
                fn describe() -> $crate::__private::bindings::PluginInfo {
                    $crate::__private::describe::<$task>()
                }

                fn run(
                    ctx: $crate::__private::bindings::Context,
                ) -> ::core::result::Result<
                    $crate::__private::bindings::TaskResult,
                    $crate::__private::bindings::TaskError,
                > {
                    $crate::__private::run::<$task>(ctx)
                }
            }

            $crate::__private::bindings::__dagrun_export_plugin!(
                __DagrunTaskExport with_types_in $crate::__private::bindings
            );
        };
    };
}

/// Implementation details used by [`export_task!`]; not part of the API.
#[doc(hidden)]
pub mod __private {
    use std::path::PathBuf;

    use crate::{Ctx, Error, ErrorKind, Task};

    pub use wit_bindgen;

    #[allow(missing_docs, unsafe_op_in_unsafe_fn, clippy::all)]
    pub mod bindings {
        wit_bindgen::generate!({
            path: "wit",
            world: "plugin",
            pub_export_macro: true,
            export_macro_name: "__dagrun_export_plugin",
            default_bindings_module: "dagrun_sdk::__private::bindings",
            runtime_path: "dagrun_sdk::__private::wit_bindgen::rt",
        });
    }

    use bindings::dagrun::task::types::{Artifact, NamedPath};
    use bindings::{Context, PluginInfo, TaskError, TaskResult};

    /// The exported `describe`.
    pub fn describe<T: Task>() -> PluginInfo {
        crate::host::install_panic_hook();
        let info = T::describe();
        PluginInfo {
            name: info.name,
            version: info.version,
            description: info.description,
            params_schema: info.params_schema,
        }
    }

    /// The exported `run`.
    pub fn run<T: Task>(ctx: Context) -> Result<TaskResult, TaskError> {
        crate::host::install_panic_hook();
        run_task::<T>(ctx).map_err(|e| {
            let message = e.message().to_owned();
            match e.kind() {
                ErrorKind::InvalidParams => TaskError::InvalidParams(message),
                ErrorKind::BadInput => TaskError::BadInput(message),
                ErrorKind::Failed => TaskError::Failed(message),
            }
        })
    }

    fn run_task<T: Task>(ctx: Context) -> Result<TaskResult, Error> {
        let params = parse_params::<T::Params>(&ctx.params_json)?;
        let paths = |list: Vec<NamedPath>| list.into_iter().map(|p| (p.name, PathBuf::from(p.path))).collect();
        let mut task_ctx = Ctx::new(
            ctx.task,
            ctx.run_id,
            ctx.partition,
            paths(ctx.inputs),
            paths(ctx.mounts),
            PathBuf::from(ctx.output_dir),
        );
        let output = T::run(&mut task_ctx, params)?;
        let summary_json = serde_json::to_string(&output)
            .map_err(|e| Error::failed(format!("cannot serialize the task's output as JSON: {e}")))?;
        let artifacts = task_ctx
            .into_outputs()?
            .into_iter()
            .map(|(name, path)| Artifact { name, path: path.to_string_lossy().into_owned() })
            .collect();
        Ok(TaskResult { summary_json, artifacts })
    }

    /// Deserializes the params; `{}` (or nothing) also fits a params type that wants `null`,
    /// such as `()` or `Option<T>`.
    pub(crate) fn parse_params<P: serde::de::DeserializeOwned>(json: &str) -> Result<P, Error> {
        let json = if json.trim().is_empty() { "{}" } else { json };
        serde_json::from_str::<P>(json).or_else(|e| {
            let empty = matches!(serde_json::from_str::<serde_json::Value>(json),
                Ok(serde_json::Value::Object(ref m)) if m.is_empty());
            match empty {
                true => serde_json::from_str::<P>("null").map_err(|_| e),
                false => Err(e),
            }
            .map_err(|e| Error::invalid_params(crate::params::invalid_params_message(json, &e)))
        })
    }
}

#[cfg(test)]
mod tests;
