//! `copy`: copies input `data` to output `out`. With param `factor` (default 1) every number in
//! the comma-separated input is multiplied by it. Summary: `{"bytes": <bytes written>}`.
//! Kept minimal: it is the plugin of the overhead benchmarks.

use dagrun_sdk::{Ctx, Error, Info, Task};
use serde::{Deserialize, Serialize};

struct Copy;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default = "one")]
    factor: f64,
}

fn one() -> f64 {
    1.0
}

#[derive(Serialize)]
struct Summary {
    bytes: u64,
}

impl Task for Copy {
    type Params = Params;
    type Output = Summary;

    fn describe() -> Info {
        Info::new("copy", env!("CARGO_PKG_VERSION")).description("Copies input `data` to output `out`.")
    }

    fn run(ctx: &mut Ctx, params: Params) -> Result<Summary, Error> {
        let input = ctx.input("data")?;
        let out = ctx.output("out");
        if params.factor == 1.0 {
            return Ok(Summary { bytes: std::fs::copy(input, out)? });
        }
        let text = std::fs::read_to_string(input)?;
        let mut result = String::with_capacity(text.len());
        for line in text.lines() {
            for (i, field) in line.split(',').enumerate() {
                if i > 0 {
                    result.push(',');
                }
                match field.trim().parse::<f64>() {
                    Ok(v) => result.push_str(&(v * params.factor).to_string()),
                    Err(_) => result.push_str(field),
                }
            }
            result.push('\n');
        }
        std::fs::write(out, &result)?;
        Ok(Summary { bytes: result.len() as u64 })
    }
}

dagrun_sdk::export_task!(Copy);
