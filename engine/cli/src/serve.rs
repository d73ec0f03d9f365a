//! `dagrun serve`: parses the options, starts the service from `dagrun-serve`, prints its events,
//! and stops it cleanly on SIGTERM or Ctrl-C (exit 0 once the requests in flight are answered; a
//! second signal stops it at once, exit 130).

use std::time::Duration;

use dagrun_serve::{Event, LogOptions, ServeOptions, Server};
use dagrun_workflow::{duration, size};

use crate::args::ServeArgs;
use crate::commands::{Interrupts, error};
use crate::exit::Exit;
use crate::printer::errln;

pub fn serve(args: &ServeArgs) -> Result<Exit, Exit> {
    let mut options = options(args)?;
    let remote = crate::remote_registry::url(&args.registry)?;
    let every = parse_duration(&args.remote_poll).ok().filter(|d| !d.is_zero()).ok_or_else(|| {
        error(format!("--remote-poll {:?}: write a duration such as 2s", args.remote_poll), Exit::Usage)
    })?;
    let rt =
        dagrun_serve::runtime(&options).map_err(|e| error(format!("cannot start the runtime: {e}"), Exit::Internal))?;
    rt.block_on(async move {
        // An s3:// registry: served from a private mirror that a background task keeps in step.
        let _mirror = match &remote {
            Some(url) => {
                let m = crate::remote_registry::open(url).await?;
                options.registry = m.dir().to_owned();
                let follow = crate::remote_registry::follow(m.remote.clone(), args.names.clone(), every);
                tokio::spawn(follow);
                Some(m)
            }
            None => None,
        };
        let events: dagrun_serve::Events = std::sync::Arc::new(print_event);
        let server = Server::bind(options, events).await.map_err(|e| error(e, Exit::Usage))?;
        let mut interrupts =
            Interrupts::new().ok_or_else(|| error("cannot install signal handlers", Exit::Internal))?;
        server
            .run(async move {
                interrupts.next().await;
                // A second signal while the requests in flight finish: stop at once.
                tokio::spawn(async move {
                    if interrupts.next().await {
                        errln!("interrupted again: stopping without waiting for the requests in flight");
                        std::process::exit(Exit::Interrupted as i32);
                    }
                });
            })
            .await
            .map_err(|e| error(e, Exit::Internal))?;
        errln!("stopped");
        Ok(Exit::Success)
    })
}

fn options(args: &ServeArgs) -> Result<ServeOptions, Exit> {
    let usage = |flag: &str, value: &str, why: &str| error(format!("--{flag} {value:?}: {why}"), Exit::Usage);
    let mut o = ServeOptions::new(&args.registry, args.addr);
    o.names = args.names.clone();
    if let Some(w) = args.workers {
        o.workers = w;
    }
    if let Some(t) = args.threads {
        if !(1..=256).contains(&t) {
            return Err(error(format!("--threads {t}: from 1 to 256"), Exit::Usage));
        }
        o.threads = t;
    }
    o.max_batch = args.max_batch;
    o.max_wait = parse_duration(&args.max_wait).map_err(|why| usage("max-wait", &args.max_wait, why))?;
    o.poll = parse_duration(&args.poll).map_err(|why| usage("poll", &args.poll, why))?;
    if o.poll.is_zero() {
        return Err(usage("poll", &args.poll, "must be more than 0"));
    }
    o.body_limit = size::parse(&args.max_body).map_err(|why| usage("max-body", &args.max_body, why))? as usize;
    if !(0.0..=1.0).contains(&args.log_sample) {
        return Err(usage("log-sample", &args.log_sample.to_string(), "a share from 0 to 1"));
    }
    o.log = args.prediction_log.as_ref().map(|dir| LogOptions { dir: dir.clone(), sample: args.log_sample });
    Ok(o)
}

/// `0ms`, `5ms`, `1s` (a bare `0` too).
fn parse_duration(text: &str) -> Result<Duration, &'static str> {
    if text.trim().trim_end_matches(|c: char| c.is_ascii_alphabetic()) == "0" {
        Ok(Duration::ZERO)
    } else {
        duration::parse(text)
    }
}

fn print_event(event: Event) {
    match event {
        Event::Listening { addr } => {
            errln!("listening on http://{addr}  (POST /predict/{{name}}, /v2/models/{{name}}/infer, GET /metrics)")
        }
        Event::Serving { name, version, digest, replaced, load } => {
            let short = &digest[..digest.len().min(12)];
            let was = replaced.map(|r| format!(" (was {r})")).unwrap_or_default();
            let how = match load {
                Some(load) => format!("loaded in {}", duration::format(load)),
                None => "kept loaded since it was replaced".to_owned(),
            };
            errln!("serving {name} {version}{was}  digest {short}…  {how}");
        }
        Event::LoadFailed { name, version, reason, still_serving } => {
            let keep = match still_serving {
                Some(v) => format!("still serving {v}"),
                None => "nothing to serve yet".to_owned(),
            };
            errln!("warning: {name} {version} not served: {reason} ({keep})");
        }
        Event::LogFailed { path, reason } => {
            errln!(
                "warning: prediction log: cannot write {}: {reason} (rows are dropped and counted until it works again)",
                path.display()
            )
        }
        Event::Draining => errln!("shutting down: finishing requests in flight (signal again to stop at once)"),
    }
}
