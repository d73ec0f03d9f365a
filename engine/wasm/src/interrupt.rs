//! Blocking WASI host calls that stop on Ctrl-C and at the deadline.
//!
//! The epoch deadline is only checked while guest code runs; a guest blocked in a host call
//! (`std::thread::sleep` is `wasi:io/poll` on a monotonic-clock pollable) would only stop when
//! the call returns. This module shadows the two blocking entry points of `wasi:io/poll`
//! (`poll` and `pollable.block`) with versions that race the wait against the run's cancel
//! flag and deadline, checked every epoch tick, and trap with an interrupt when either fires.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use wasmtime::component::{Linker, Resource};
use wasmtime::{StoreContextMut, Trap};
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi_io::bindings::wasi::io::poll::{Host as _, HostPollable as _};

use crate::host::EPOCH_TICK;
use crate::sandbox::State;

/// The `wasi:io` version wasmtime-wasi links (guests importing any 0.2.x match it).
const WASI_IO_POLL: &str = "wasi:io/poll@0.2.12";

/// When a run must stop: its cancel flag and its deadline.
#[derive(Debug, Clone)]
pub(crate) struct Stop {
    pub cancel: Arc<AtomicBool>,
    pub deadline: Instant,
}

impl Stop {
    fn due(&self) -> bool {
        self.cancel.load(Ordering::Relaxed) || Instant::now() >= self.deadline
    }

    /// Resolves once the run is cancelled or past its deadline.
    async fn wait(&self) {
        while !self.due() {
            tokio::time::sleep(EPOCH_TICK).await;
        }
    }
}

/// Runs `wait` (a blocking WASI wait) until it finishes or the run must stop; then traps with
/// an interrupt, marking the state cancelled when that was the reason.
fn interruptible<R>(
    mut store: StoreContextMut<'_, State>,
    wait: impl AsyncFnOnce(&mut wasmtime::component::ResourceTable) -> wasmtime::Result<R>,
) -> wasmtime::Result<R> {
    let Some(stop) = store.data().stop.clone() else {
        return wasmtime_wasi::runtime::in_tokio(wait(&mut store.data_mut().table));
    };
    let table = &mut store.data_mut().table;
    let done = wasmtime_wasi::runtime::in_tokio(async {
        tokio::select! {
            r = wait(table) => Some(r),
            () = stop.wait() => None,
        }
    });
    match done {
        Some(r) => r,
        None => {
            if stop.cancel.load(Ordering::Relaxed) {
                store.data_mut().cancelled = true;
            }
            Err(Trap::Interrupt.into())
        }
    }
}

/// Replaces `wasi:io/poll`'s `poll` and `pollable.block` with interruptible versions.
pub(crate) fn link(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut poll = linker.instance(WASI_IO_POLL)?;
    poll.func_wrap("poll", |store: StoreContextMut<'_, State>, (list,): (Vec<Resource<DynPollable>>,)| {
        interruptible(store, async |t| t.poll(list).await).map(|r| (r,))
    })?;
    poll.func_wrap("[method]pollable.block", |store: StoreContextMut<'_, State>, (p,): (Resource<DynPollable>,)| {
        interruptible(store, async |t| t.block(p).await)
    })?;
    linker.allow_shadowing(false);
    Ok(())
}
