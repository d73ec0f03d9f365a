//! `net`: tries a TCP connection. Using `std::net` makes the component import `wasi:sockets`,
//! which the host must refuse at load time; if it ever runs, a refused connect fails with
//! `connect denied: <OS error>` and a successful one returns `{"connected": true}`.

use dagrun_sdk::{Ctx, Error, Info, Task};
use serde::Serialize;

struct Net;

#[derive(Serialize)]
struct Summary {
    connected: bool,
}

impl Task for Net {
    type Params = ();
    type Output = Summary;

    fn describe() -> Info {
        Info::new("net", env!("CARGO_PKG_VERSION")).description("Tries to open a TCP connection.")
    }

    fn run(_ctx: &mut Ctx, _params: ()) -> Result<Summary, Error> {
        match std::net::TcpStream::connect("127.0.0.1:9") {
            Ok(_) => Ok(Summary { connected: true }),
            Err(e) => Err(Error::failed(format!("connect denied: {e}"))),
        }
    }
}

dagrun_sdk::export_task!(Net);
