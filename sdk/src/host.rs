//! Calls into the host. On wasm these are the WIT imports; on any other target (unit tests of
//! the SDK or of a plugin's own logic) they print to stderr instead, so code using [`Ctx`]
//! can run natively.
//!
//! [`Ctx`]: crate::Ctx

pub(crate) use crate::__private::bindings::dagrun::task::host::Level;

#[cfg(target_family = "wasm")]
mod imp {
    use super::Level;
    use crate::__private::bindings::dagrun::task::host;

    pub(crate) fn log(level: Level, message: &str) {
        host::log(level, message);
    }

    pub(crate) fn progress(done: u64, total: u64, message: &str) {
        host::progress(done, total, message);
    }

    pub(crate) fn report_panic(message: &str, file: &str, line: u32) {
        host::report_panic(message, file, line);
    }
}

#[cfg(not(target_family = "wasm"))]
mod imp {
    use super::Level;

    pub(crate) fn log(level: Level, message: &str) {
        let level = match level {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        eprintln!("[{level}] {message}");
    }

    pub(crate) fn progress(done: u64, total: u64, message: &str) {
        eprintln!("[progress] {done}/{total} {message}");
    }

    pub(crate) fn report_panic(message: &str, file: &str, line: u32) {
        eprintln!("[panic] {message} at {file}:{line}");
    }
}

pub(crate) use imp::*;

/// Installs (once) a panic hook that sends the panic's message and location to the host before
/// the guest traps: wasm32 aborts on panic, and the host would otherwise only see `unreachable`.
/// The previous hook runs afterwards, so the message also reaches stderr. Natively (tests), the
/// report is one more `[panic] ...` line on stderr.
pub(crate) fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let (file, line) = info.location().map_or(("<unknown>", 0), |l| (l.file(), l.line()));
            report_panic(panic_message(info.payload()), file, line);
            previous_hook(info);
        }));
    });
}

/// The text of a panic payload (`panic!("...")` gives a `&str` or a `String`).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "Box<dyn Any>"
    }
}
