//! Test plugin: recurses until the WASM call stack is exhausted (a trap that is not a panic),
//! so the host must report the trap with a backtrace.

use dagrun_sdk::{Ctx, Error, Info, Task};

struct Overflow;

/// Recurses `n` levels; `black_box` keeps the optimiser from turning it into a loop.
#[inline(never)]
pub fn deep_recursion(n: u64) -> u64 {
    if n == 0 { 0 } else { std::hint::black_box(deep_recursion(std::hint::black_box(n) - 1)) + 1 }
}

impl Task for Overflow {
    type Params = ();
    type Output = u64;

    fn describe() -> Info {
        Info::new("overflow", "0.1.0").description("Exhausts the call stack.")
    }

    fn run(_ctx: &mut Ctx, _params: ()) -> Result<u64, Error> {
        Ok(deep_recursion(u64::MAX))
    }
}

dagrun_sdk::export_task!(Overflow);
