//! Planning: the petgraph task graph, selection, sharded partitions, cache keys with explanations,
//! and graph rendering.

mod graph;
mod instances;
mod keys;
mod plan;
mod registry_inputs;
mod render;
mod select;
mod shard;

pub use graph::TaskGraph;
pub use instances::{Instance, Instances, PartitionError, PartitionSelection, Source};
pub use keys::{
    CHAMPION_INPUT, DEPLOYED_INPUT, InputFile, KeyContext, KeyError, Probe, RegistryModel, Resolved, ResolvedInput,
    code_digest, deployed_model, explain_miss, instance_outputs, instance_params, key_inputs, last_run_name, probe,
    resolve_path,
};
pub use plan::{Decision, PlannedTask, plan};
pub use registry_inputs::{BASELINE_INPUT, REFERENCE_INPUT};
pub use render::{dot, mermaid};
pub use select::{Force, Selection, UnknownTask};
pub use shard::{Shard, ShardError};
