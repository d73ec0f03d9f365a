//! Key inputs the monitoring kinds take from a model registry: the deployed model, the data it
//! was trained on (a drift reference) and the verdict that promoted it (a performance
//! baseline). Each is looked up once and hashed into the key, so a deploy or a rollback
//! changes the key.

use std::collections::BTreeMap;

use dagrun_cache::InputDigest;
use dagrun_workflow::{DataSource, DeployedDef, TaskKind, Workflow};

use crate::keys::{InputFile, KeyContext, KeyError, RegistryModel, deployed_input, resolve_path};

/// Name of the synthetic key input holding a `Drift` task's registry reference data.
pub const REFERENCE_INPUT: &str = "@reference";
/// Name of the synthetic key input holding a `Performance` task's registry baseline (the
/// deployed version's verdict).
pub const BASELINE_INPUT: &str = "@baseline";

/// What a monitoring task took from a registry.
#[derive(Debug, Clone, Default)]
pub(crate) struct FromRegistry {
    pub deployed: Option<RegistryModel>,
    pub reference: Option<InputFile>,
    pub baseline: Option<InputFile>,
}

/// Resolves the registry sources of a `Drift` or `Performance` task (nothing for other kinds).
pub(crate) fn monitor_inputs(
    ctx: &KeyContext<'_>,
    kind: &TaskKind,
    inputs: &mut BTreeMap<String, InputDigest>,
) -> Result<FromRegistry, KeyError> {
    let mut out = FromRegistry::default();
    match kind {
        TaskKind::Drift(d) => {
            if let DataSource::Deployed(r) = &d.reference {
                out.reference = Some(registry_file(ctx, r, REFERENCE_INPUT, inputs, reference_of)?);
            }
            if let Some(DataSource::Deployed(m)) = &d.model {
                out.deployed = Some(deployed_input(ctx, m, inputs)?);
            }
        }
        TaskKind::Performance(p) => {
            if let DataSource::Deployed(m) = &p.model {
                out.deployed = Some(deployed_input(ctx, m, inputs)?);
                if p.baseline.is_none() {
                    out.baseline = Some(registry_file(ctx, m, BASELINE_INPUT, inputs, verdict_of)?);
                }
            }
        }
        _ => {}
    }
    Ok(out)
}

/// The file `find` picks in the deployed version of `d`: (shown path, absolute path).
type Finder = fn(&Workflow, &DeployedDef, &str) -> Result<(String, std::path::PathBuf), KeyError>;

fn registry_file(
    ctx: &KeyContext<'_>,
    d: &DeployedDef,
    input: &str,
    inputs: &mut BTreeMap<String, InputDigest>,
    find: Finder,
) -> Result<InputFile, KeyError> {
    let (version, _) = crate::keys::deployed_model(ctx.workflow, d)?;
    let (shown, path) = find(ctx.workflow, d, &version)?;
    let (digest, _) =
        ctx.digest(&path).map_err(|source| KeyError::Input { input: input.to_owned(), path: shown.clone(), source })?;
    inputs.insert(input.to_owned(), InputDigest::Files(vec![(shown, digest)]));
    Ok(InputFile { path, digest })
}

fn reference_of(wf: &Workflow, d: &DeployedDef, version: &str) -> Result<(String, std::path::PathBuf), KeyError> {
    let registry = resolve_path(wf, &d.registry);
    let (path, meta) = dagrun_cache::registry::reference(&registry, &d.name, version).ok_or_else(|| {
        KeyError::Unsupported(format!(
            "model `{}` {version} in {} was deployed without its training data, so there is no reference to compare with; \
             give the deploy task a `reference` input (the training data) and deploy again, or name a reference input \
             (`reference: \"reference\"`)",
            d.name, d.registry
        ))
    })?;
    // Shown without the version: a new deploy with the same training data keeps the key.
    Ok((format!("{}/{}/{}", d.registry, d.name, meta.file), path))
}

fn verdict_of(wf: &Workflow, d: &DeployedDef, version: &str) -> Result<(String, std::path::PathBuf), KeyError> {
    let registry = resolve_path(wf, &d.registry);
    let path = dagrun_cache::registry::verdict_file(&registry, &d.name, version);
    Ok((format!("{}/{}/{}", d.registry, d.name, dagrun_cache::registry::VERDICT_FILE), path))
}
