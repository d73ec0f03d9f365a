//! The daemon that runs workflows by themselves: cron schedules with catch-up, files landing,
//! authenticated webhooks and other workflows' task outcomes, each written to a durable event
//! log before it is acted on, then run through the same engine as `dagrun run`. Also the
//! export of a workflow's schedule to the CI users already run.
//!
//! Layout: [`clock`] (real or manual time), [`log`] (the SQLite event log), [`ticks`] (cron
//! evaluation and catch-up), [`watch`] (file-landed detection), [`hooks`] (the HTTP server for
//! webhooks), [`daemon`] (the loop that ties them to the engine), [`export`] (CI files),
//! [`trigger`] (a manual event: queued for the daemon, or run here) and [`approve`] (a person's
//! decision on a parked run and its resumption: `dagrun approve/reject` and the web UI's buttons).

pub mod approve;
pub mod clock;
pub mod daemon;
pub mod export;
pub mod hooks;
pub mod log;
pub mod status;
pub mod ticks;
pub mod trigger;
pub mod watch;
