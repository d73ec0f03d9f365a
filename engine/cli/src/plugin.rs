//! `dagrun plugin new|build|inspect`: scaffolding, building and inspecting WASM task plugins.

use std::path::{Path, PathBuf};

use crate::args::PluginAction;
use crate::commands::error;
use crate::exit::Exit;

const CARGO_TOML: &str = include_str!("../templates/plugin/Cargo.toml.tmpl");
const LIB_RS: &str = include_str!("../templates/plugin/lib.rs.tmpl");
const README: &str = include_str!("../templates/plugin/README.md.tmpl");
const GITIGNORE: &str = include_str!("../templates/plugin/gitignore.tmpl");

/// The example workflow written next to a new plugin, so it runs out of the box.
const WORKFLOW: &str = r#"// Runs the `{{name}}` plugin on the example data: `dagrun run workflow.ron`.
Workflow(
    name: "{{name}}-example",
    tasks: [
        Task(
            name: "{{name}}",
            kind: Wasm(plugin: "."),
            inputs: {"data": File("data/example.csv")},
            outputs: {"out": "out/scaled.csv"},
            params: {"scale": 2.0},
        ),
    ],
)
"#;

const EXAMPLE_CSV: &str = "x,y\n1,2\n3,4.5\n";

/// Runs one `plugin` subcommand.
pub fn dispatch(action: PluginAction) -> Result<Exit, Exit> {
    match action {
        PluginAction::New { name, dir, sdk } => new(&name, dir, sdk),
        PluginAction::Build { path } => build(&path),
        PluginAction::Inspect { path, json } => inspect(&path, json),
    }
}

fn valid_name(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// The SDK: `--sdk`/`DAGRUN_SDK`, else the one beside the sources this dagrun was built from.
fn sdk_path(given: Option<PathBuf>) -> Result<PathBuf, Exit> {
    let candidate = given.unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk"));
    match candidate.canonicalize() {
        Ok(p) if p.join("Cargo.toml").is_file() => Ok(p),
        _ => Err(error(
            format!(
                "cannot find the dagrun SDK at {} (a directory with the dagrun-sdk Cargo.toml); \
                 pass --sdk PATH or set DAGRUN_SDK to the `sdk/` directory of a dagrun checkout",
                candidate.display()
            ),
            Exit::Usage,
        )),
    }
}

fn new(name: &str, dir: Option<PathBuf>, sdk: Option<PathBuf>) -> Result<Exit, Exit> {
    if !valid_name(name) {
        return Err(error(
            format!(
                "invalid plugin name `{name}`: use lower-case letters, digits, `-` and `_`, starting with a letter"
            ),
            Exit::Usage,
        ));
    }
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    if dir.exists() && std::fs::read_dir(&dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
        return Err(error(
            format!("{} already exists and is not empty; choose another --dir", dir.display()),
            Exit::Usage,
        ));
    }
    let sdk = sdk_path(sdk)?;
    for (rel, text) in new_plugin_files(name, &sdk) {
        let path = dir.join(rel);
        let written = path.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|()| std::fs::write(&path, text));
        written.map_err(|e| error(format!("cannot write {}: {e}", path.display()), Exit::Internal))?;
    }
    let shown = dir.display();
    println!("created plugin `{name}` in {shown}");
    println!("  {shown}/src/lib.rs      the task: edit it");
    println!("  {shown}/workflow.ron    an example workflow that runs it");
    println!("\nnext: dagrun run {shown}/workflow.ron   (builds the plugin, then runs it)");
    Ok(Exit::Success)
}

/// The files of a new plugin crate `name` using the SDK at `sdk`: (relative path, text).
fn new_plugin_files(name: &str, sdk: &Path) -> [(&'static str, String); 6] {
    let render = |t: &str| {
        t.replace("{{name}}", name)
            .replace("{{crate_ident}}", &name.replace('-', "_"))
            .replace("{{sdk_path}}", &sdk.display().to_string())
    };
    [
        ("Cargo.toml", render(CARGO_TOML)),
        ("src/lib.rs", render(LIB_RS)),
        ("README.md", render(README)),
        (".gitignore", render(GITIGNORE)),
        ("workflow.ron", render(WORKFLOW)),
        ("data/example.csv", EXAMPLE_CSV.to_owned()),
    ]
}

fn build(path: &Path) -> Result<Exit, Exit> {
    if !path.join("Cargo.toml").is_file() {
        return Err(error(format!("{} is not a plugin crate (no Cargo.toml)", path.display()), Exit::Usage));
    }
    let started = std::time::Instant::now();
    let wasm = dagrun_wasm::cargo_build(path).map_err(|e| error(e, Exit::TaskFailed))?;
    let bytes = std::fs::read(&wasm).map_err(|e| error(format!("{}: {e}", wasm.display()), Exit::Internal))?;
    println!("{}", wasm.display());
    println!(
        "  {} KiB, blake3 {}, built in {:.1}s",
        bytes.len() / 1024,
        &blake3::hash(&bytes).to_hex()[..16],
        started.elapsed().as_secs_f64()
    );
    Ok(Exit::Success)
}

fn inspect(path: &Path, json: bool) -> Result<Exit, Exit> {
    let wasm = if path.join("Cargo.toml").is_file() {
        dagrun_wasm::cargo_build(path).map_err(|e| error(e, Exit::TaskFailed))?
    } else {
        path.to_owned()
    };
    let cache = dagrun_wasm::compiled_cache_dir().unwrap_or_else(|| std::env::temp_dir().join("dagrun-wasm-cache"));
    let host = dagrun_wasm::PluginHost::new(&cache).map_err(|e| error(e, Exit::Internal))?;
    let plugin = host.load(&wasm).map_err(|e| error(e, Exit::TaskFailed))?;
    let info = host.describe(&plugin).map_err(|e| error(e, Exit::TaskFailed))?;
    let imports = host.imports(&plugin);
    if json {
        let v = serde_json::json!({"path": wasm, "info": info, "imports": imports});
        println!("{}", serde_json::to_string_pretty(&v).expect("serializes"));
        return Ok(Exit::Success);
    }
    println!("{} {}", info.name, info.version);
    if !info.description.is_empty() {
        println!("  {}", info.description);
    }
    println!("file: {}", wasm.display());
    let schema = serde_json::from_str::<serde_json::Value>(&info.params_schema)
        .map(|v| serde_json::to_string_pretty(&v).expect("serializes"))
        .unwrap_or(info.params_schema.clone());
    println!("params schema:\n{schema}");
    println!("imports:\n  {}", imports.join("\n  "));
    Ok(Exit::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readme(name: &str) -> String {
        let files = new_plugin_files(name, Path::new("/sdk"));
        files.into_iter().find(|(rel, _)| *rel == "README.md").map(|(_, text)| text).unwrap()
    }

    #[test]
    fn readme_names_the_new_plugin_and_its_task() {
        let text = readme("churn-score");
        assert!(text.starts_with("# churn-score\n"), "{text}");
        assert!(
            text.contains("    name: \"churn-score\",\n    kind: Wasm(plugin: \"plugins/churn-score\"),"),
            "{text}"
        );
        assert!(text.contains("target/wasm32-wasip2/release/churn_score.wasm"), "{text}");
        assert!(!text.contains("name: \"scale\""), "another task's name: {text}");
        assert!(!text.contains("{{"), "unrendered placeholder: {text}");
        assert!(!text.contains("example.invalid") && !text.contains("http"), "placeholder URL: {text}");
    }

    #[test]
    fn readme_says_where_a_panic_shows() {
        let text = readme("p");
        assert!(!text.contains("RUST_BACKTRACE"), "the sandbox has no environment variables: {text}");
        assert!(text.contains("plugin panicked at src/lib.rs:LINE: MESSAGE"), "{text}");
        assert!(text.contains("dagrun show last"), "{text}");
    }
}
