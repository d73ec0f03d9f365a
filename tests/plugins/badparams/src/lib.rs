//! `badparams`: requires params `{"factor": <number>, "name": <string>}` and nothing else;
//! on success the summary echoes them. For the invalid-params tests.

use dagrun_sdk::{Ctx, Error, Info, Task};
use serde::{Deserialize, Serialize};

struct BadParams;

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Params {
    factor: f64,
    name: String,
}

impl Task for BadParams {
    type Params = Params;
    type Output = Params;

    fn describe() -> Info {
        Info::new("badparams", env!("CARGO_PKG_VERSION"))
            .description("Requires `factor` (number) and `name` (string).")
            .params_schema(
                r#"{"type":"object","required":["factor","name"],"additionalProperties":false,"properties":{"factor":{"type":"number"},"name":{"type":"string"}}}"#,
            )
    }

    fn run(_ctx: &mut Ctx, params: Params) -> Result<Params, Error> {
        Ok(params)
    }
}

dagrun_sdk::export_task!(BadParams);
