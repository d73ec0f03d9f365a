//! `describe`: a plugin with a complete `Info` (description and params schema), for
//! `dagrun plugin inspect`. Its task counts the lines of input `data` whose first field is at
//! least `threshold`, writes them to output `selected` and returns `{"selected": n, "total": m}`.

use dagrun_sdk::{Ctx, Error, Info, Task};
use serde::{Deserialize, Serialize};

struct Describe;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    threshold: f64,
    #[serde(default)]
    skip_header: bool,
}

#[derive(Serialize)]
struct Summary {
    selected: usize,
    total: usize,
}

pub const DESCRIPTION: &str = "Keeps the rows of a CSV file whose first column is at least `threshold`.";

pub const PARAMS_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["threshold"],
  "additionalProperties": false,
  "properties": {
    "threshold": {"type": "number", "description": "Smallest value kept."},
    "skip_header": {"type": "boolean", "default": false, "description": "Copy the first row as is."}
  }
}"#;

impl Task for Describe {
    type Params = Params;
    type Output = Summary;

    fn describe() -> Info {
        Info::new("describe", env!("CARGO_PKG_VERSION")).description(DESCRIPTION).params_schema(PARAMS_SCHEMA)
    }

    fn run(ctx: &mut Ctx, params: Params) -> Result<Summary, Error> {
        let text = std::fs::read_to_string(ctx.input("data")?)?;
        let mut lines = text.lines();
        let mut out = String::new();
        if params.skip_header
            && let Some(header) = lines.next()
        {
            out.push_str(header);
            out.push('\n');
        }
        let (mut selected, mut total) = (0, 0);
        for (i, line) in lines.enumerate() {
            total += 1;
            let first = line.split(',').next().unwrap_or("").trim();
            let value: f64 =
                first.parse().map_err(|_| Error::bad_input(format!("row {}: `{first}` is not a number", i + 1)))?;
            if value >= params.threshold {
                selected += 1;
                out.push_str(line);
                out.push('\n');
            }
        }
        std::fs::write(ctx.output("selected"), out)?;
        Ok(Summary { selected, total })
    }
}

dagrun_sdk::export_task!(Describe);
