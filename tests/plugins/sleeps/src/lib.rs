//! `sleeps`: sleeps 60 s inside one host call (`std::thread::sleep`, a WASI monotonic-clock
//! poll), for the tests that a deadline and Ctrl-C interrupt a blocked plugin.

use dagrun_sdk::{Ctx, Error, Info, Task};

struct Sleeps;

impl Task for Sleeps {
    type Params = ();
    type Output = ();

    fn describe() -> Info {
        Info::new("sleeps", env!("CARGO_PKG_VERSION")).description("Sleeps for a minute.")
    }

    fn run(ctx: &mut Ctx, _params: ()) -> Result<(), Error> {
        ctx.log_info("going to sleep");
        std::thread::sleep(std::time::Duration::from_secs(60));
        Ok(())
    }
}

dagrun_sdk::export_task!(Sleeps);
