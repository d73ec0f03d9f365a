//! `panics`: panics with "boom: the model exploded" (for the panic report test: the host should
//! show this message with the file and line below).

use dagrun_sdk::{Ctx, Error, Info, Task};

struct Panics;

impl Task for Panics {
    type Params = ();
    type Output = ();

    fn describe() -> Info {
        Info::new("panics", env!("CARGO_PKG_VERSION")).description("Always panics.")
    }

    fn run(ctx: &mut Ctx, _params: ()) -> Result<(), Error> {
        ctx.log_info("about to panic");
        panic!("boom: the model exploded"); // panics/src/lib.rs:18
    }
}

dagrun_sdk::export_task!(Panics);
