//! `membomb`: allocates memory in 16 MiB chunks, writing every byte, until the host stops it
//! (for the memory cap test). Logs `allocated <n> MiB` (debug) after each chunk.

use dagrun_sdk::{Ctx, Error, Info, Task};

struct MemBomb;

const CHUNK: usize = 16 << 20;

impl Task for MemBomb {
    type Params = ();
    type Output = ();

    fn describe() -> Info {
        Info::new("membomb", env!("CARGO_PKG_VERSION")).description("Allocates memory until stopped.")
    }

    fn run(ctx: &mut Ctx, _params: ()) -> Result<(), Error> {
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        loop {
            let mut chunk = Vec::with_capacity(CHUNK);
            chunk.resize(CHUNK, 0xA5); // touches every page
            chunks.push(std::hint::black_box(chunk));
            ctx.log_debug(format!("allocated {} MiB", chunks.len() * 16));
        }
    }
}

dagrun_sdk::export_task!(MemBomb);
