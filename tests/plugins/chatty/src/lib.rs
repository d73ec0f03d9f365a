//! `chatty`: produces `mib` MiB of one kind of text, for the tests of the log cap and of the
//! bounds on error texts and summaries. `what`: `log` (host `log` calls), `stdout`, `panic`
//! (the panic message), `fail` (the error message) or `summary`.

use dagrun_sdk::{Ctx, Error, Info, Task};
use serde::Deserialize;

struct Chatty;

#[derive(Deserialize)]
struct Params {
    what: String,
    mib: usize,
}

impl Task for Chatty {
    type Params = Params;
    type Output = String;

    fn describe() -> Info {
        Info::new("chatty", env!("CARGO_PKG_VERSION")).description("Writes a lot of text.")
    }

    fn run(ctx: &mut Ctx, p: Params) -> Result<String, Error> {
        let line = "y".repeat(1023);
        let text = || "x".repeat(p.mib << 20);
        match p.what.as_str() {
            "log" => (0..p.mib << 10).for_each(|_| ctx.log_info(&line)),
            "stdout" => (0..p.mib << 10).for_each(|_| println!("{line}")),
            "panic" => panic!("{}", text()),
            "fail" => return Err(Error::failed(text())),
            "summary" => return Ok(text()),
            other => return Err(Error::invalid_params(format!("unknown `what`: {other}"))),
        }
        Ok("done".to_owned())
    }
}

dagrun_sdk::export_task!(Chatty);
