//! `spin`: loops forever without calling the host (for the deadline test).

use dagrun_sdk::{Ctx, Error, Info, Task};

struct Spin;

impl Task for Spin {
    type Params = ();
    type Output = ();

    fn describe() -> Info {
        Info::new("spin", env!("CARGO_PKG_VERSION")).description("Never returns.")
    }

    fn run(_ctx: &mut Ctx, _params: ()) -> Result<(), Error> {
        let mut n = 0u64;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}

dagrun_sdk::export_task!(Spin);
