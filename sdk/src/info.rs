//! [`Info`]: the plugin's self-description.

/// What a plugin says about itself; shown by `dagrun plugin inspect`.
///
/// ```
/// use dagrun_sdk::Info;
///
/// let _info = Info::new("double", env!("CARGO_PKG_VERSION"))
///     .description("Multiplies every number in a CSV file by `factor`.")
///     .params_schema(r#"{"type": "object", "properties": {"factor": {"type": "number"}}}"#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) description: String,
    pub(crate) params_schema: String,
}

impl Info {
    /// A plugin called `name` at `version` (use `env!("CARGO_PKG_VERSION")`), with an empty
    /// description and the params schema `{}`.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Self { name: name.into(), version: version.into(), description: String::new(), params_schema: "{}".to_owned() }
    }

    /// One or a few sentences saying what the task does.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// The [JSON Schema](https://json-schema.org) of the task's `params`, as a JSON string.
    pub fn params_schema(mut self, json: impl Into<String>) -> Self {
        self.params_schema = json.into();
        self
    }
}
