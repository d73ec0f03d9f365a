//! Host bindings generated from the shared WIT file (`sdk/wit/dagrun.wit`).

wasmtime::component::bindgen!({
    path: "../../sdk/wit",
    world: "plugin",
});

pub use dagrun::task::host::Level;
pub use dagrun::task::types::NamedPath;
