//! Starting a `Command` task's shell with `posix_spawn` and waiting for it through a pidfd
//! (Linux). std's `Command` copies the whole environment at every spawn once any variable is
//! added (every task adds its `DAGRUN_*` ones): here the inherited part is copied once per
//! process, and each spawn only adds the task's variables to it. Elsewhere, or where the kernel
//! has no pidfds, [`spawn`] returns `None` and the caller starts the command through tokio.

use std::os::fd::BorrowedFd;
use std::path::Path;

/// What one spawn starts: `program -c script` in `cwd`, with the inherited environment plus
/// `vars` (a later one wins over an earlier one and over an inherited one of the same name),
/// stdin from `stdin` and stdout and stderr into `out`, leading its own process group.
#[derive(Debug)]
pub(crate) struct Spawn<'a> {
    pub program: &'a str,
    pub script: &'a str,
    pub cwd: &'a Path,
    pub vars: &'a [(String, String)],
    pub stdin: BorrowedFd<'a>,
    pub out: BorrowedFd<'a>,
}

#[cfg(target_os = "linux")]
pub(crate) use linux::{Child, spawn};

#[cfg(not(target_os = "linux"))]
pub(crate) use other::{Child, spawn};

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
mod linux {
    use std::ffi::{CString, OsStr};
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;
    use std::sync::OnceLock;

    use tokio::io::Interest;
    use tokio::io::unix::AsyncFd;

    use super::Spawn;

    /// One environment entry, `KEY=VALUE`.
    #[derive(Debug)]
    struct Var {
        entry: CString,
        /// The length of its key.
        key: usize,
    }

    impl Var {
        fn key(&self) -> &[u8] {
            &self.entry.as_bytes()[..self.key]
        }
    }

    /// `vars` as entries: the last of each name, in the order of those.
    fn last_of_each<'a>(vars: impl DoubleEndedIterator<Item = (&'a [u8], &'a [u8])>) -> io::Result<Vec<Var>> {
        let mut out: Vec<Var> = Vec::new();
        for (k, v) in vars.rev() {
            if !out.iter().any(|o| o.key() == k) {
                out.push(Var { entry: cstring(&[k, b"=", v].concat())?, key: k.len() });
            }
        }
        out.reverse();
        Ok(out)
    }

    /// The environment dagrun was started with (read once: nothing in dagrun changes its own
    /// environment).
    fn inherited() -> &'static [Var] {
        static ENV: OnceLock<Vec<Var>> = OnceLock::new();
        ENV.get_or_init(|| {
            let env: Vec<_> = std::env::vars_os().collect();
            let vars = env.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes()));
            // (An environment string cannot hold a NUL byte: C ends it with one.)
            last_of_each(vars.filter(|(k, v)| !k.contains(&0) && !v.contains(&0))).unwrap_or_default()
        })
    }

    /// `posix_spawn_file_actions_addchdir_np` (glibc 2.29), looked up at run time as std does, so
    /// that dagrun still builds and runs on an older glibc (it then starts commands through tokio).
    type AddChdir = unsafe extern "C" fn(*mut libc::posix_spawn_file_actions_t, *const libc::c_char) -> libc::c_int;

    fn add_chdir() -> Option<AddChdir> {
        static FN: OnceLock<Option<AddChdir>> = OnceLock::new();
        *FN.get_or_init(|| {
            // SAFETY: dlsym with a NUL-terminated name; a non-null result is that function, whose
            // signature is the one glibc declares (and `AddChdir` spells).
            let f = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"posix_spawn_file_actions_addchdir_np".as_ptr()) };
            // SAFETY: see above.
            (!f.is_null()).then(|| unsafe { std::mem::transmute::<*mut libc::c_void, AddChdir>(f) })
        })
    }

    /// Whether commands can be started here: pidfds (Linux 5.3) that the runtime can watch, and
    /// `addchdir_np`; probed once on this process (from within the runtime).
    fn supported() -> bool {
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| {
            add_chdir().is_some() && pidfd_open(std::process::id() as libc::pid_t).and_then(watch).is_ok()
        })
    }

    fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
        // SAFETY: pidfd_open(2) takes a pid and flags and returns a new descriptor (close-on-exec)
        // or -1; no memory is passed.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the descriptor was just returned to us and nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
    }

    /// Registers a pidfd with the runtime's reactor (it turns readable when the process ends).
    fn watch(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
        // SAFETY: the descriptor is owned by the `OwnedFd` the `AsyncFd` takes over: it stays
        // open, and the same, until the `AsyncFd` is dropped.
        unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.map_err(|e| e.into_parts().1)
    }

    fn cstring(bytes: &[u8]) -> io::Result<CString> {
        CString::new(bytes)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in the command or its environment"))
    }

    /// The task's own variables: the last of each name.
    fn own_vars(vars: &[(String, String)]) -> io::Result<Vec<Var>> {
        last_of_each(vars.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())))
    }

    /// The child's `envp` (null-terminated): the inherited environment without the names `own`
    /// sets, then `own`. It points into `own` and the inherited strings.
    fn envp(own: &[Var]) -> Vec<*mut libc::c_char> {
        let inherited = inherited().iter().filter(|e| !own.iter().any(|o| o.key() == e.key()));
        let mut envp: Vec<*mut libc::c_char> = inherited.chain(own).map(|v| v.entry.as_ptr().cast_mut()).collect();
        envp.push(std::ptr::null_mut());
        envp
    }

    /// Fails with the error `posix_spawn*` returned (they return it rather than set `errno`).
    fn check(rc: libc::c_int) -> io::Result<()> {
        if rc == 0 { Ok(()) } else { Err(io::Error::from_raw_os_error(rc)) }
    }

    /// Starts the command, or `None` (nothing started) where it is to be started another way:
    /// see [`supported`]; a standard descriptor (0–2) handed over, which the child's `dup2`s
    /// could overwrite before they read it; a shell found through `PATH` while the task sets
    /// `PATH` (std then searches the task's).
    pub(crate) fn spawn(s: &Spawn<'_>) -> io::Result<Option<Child>> {
        let searched = !s.program.contains('/');
        if !supported()
            || s.stdin.as_raw_fd() <= 2
            || s.out.as_raw_fd() <= 2
            || (searched && s.vars.iter().any(|(k, _)| k == "PATH"))
        {
            return Ok(None);
        }
        let add_chdir = add_chdir().expect("supported");
        let program = cstring(s.program.as_bytes())?;
        let args = [program.clone(), cstring(b"-c")?, cstring(s.script.as_bytes())?];
        let own = own_vars(s.vars)?;
        let envp = envp(&own);
        let cwd = cstring(OsStr::as_bytes(s.cwd.as_os_str()))?;
        let mut argv: Vec<*mut libc::c_char> = args.iter().map(|a| a.as_ptr().cast_mut()).collect();
        argv.push(std::ptr::null_mut());
        let mut pid: libc::pid_t = 0;
        // SAFETY: every pointer handed to posix_spawn points into the CStrings and vectors above
        // (and the inherited environment, which lives as long as the process), alive until it
        // returns; the file actions and attributes are initialised before
        // use and destroyed after, on every path; the descriptors are borrowed, so open.
        unsafe {
            let mut actions: libc::posix_spawn_file_actions_t = std::mem::zeroed();
            check(libc::posix_spawn_file_actions_init(&mut actions))?;
            let mut attr: libc::posix_spawnattr_t = std::mem::zeroed();
            if let Err(e) = check(libc::posix_spawnattr_init(&mut attr)) {
                libc::posix_spawn_file_actions_destroy(&mut actions);
                return Err(e);
            }
            let result = (|| {
                check(libc::posix_spawn_file_actions_adddup2(&mut actions, s.stdin.as_raw_fd(), 0))?;
                check(libc::posix_spawn_file_actions_adddup2(&mut actions, s.out.as_raw_fd(), 1))?;
                check(libc::posix_spawn_file_actions_adddup2(&mut actions, s.out.as_raw_fd(), 2))?;
                check(add_chdir(&mut actions, cwd.as_ptr()))?;
                // Its own process group; no signal blocked; SIGPIPE, which Rust ignores, back to
                // its default (as std does).
                let mut mask: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut mask);
                check(libc::posix_spawnattr_setsigmask(&mut attr, &mask))?;
                let mut default: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut default);
                libc::sigaddset(&mut default, libc::SIGPIPE);
                check(libc::posix_spawnattr_setsigdefault(&mut attr, &default))?;
                check(libc::posix_spawnattr_setpgroup(&mut attr, 0))?;
                let flags = libc::POSIX_SPAWN_SETPGROUP | libc::POSIX_SPAWN_SETSIGMASK | libc::POSIX_SPAWN_SETSIGDEF;
                check(libc::posix_spawnattr_setflags(&mut attr, flags as libc::c_short))?;
                let start = if searched { libc::posix_spawnp } else { libc::posix_spawn };
                check(start(&mut pid, program.as_ptr(), &actions, &attr, argv.as_ptr(), envp.as_ptr()))
            })();
            libc::posix_spawnattr_destroy(&mut attr);
            libc::posix_spawn_file_actions_destroy(&mut actions);
            result?;
        }
        // The child is ours until it is waited for (nothing else in dagrun waits for any child),
        // so its pid cannot be reused before this. Without its pidfd it is killed and reaped.
        let mut child = Child { pid, fd: None, reaped: false };
        child.fd = Some(pidfd_open(pid).and_then(watch)?);
        Ok(Some(child))
    }

    /// A started command. Dropped before [`Child::wait`] returned, its process group is killed
    /// and it is reaped on a thread of its own.
    #[derive(Debug)]
    pub(crate) struct Child {
        pid: libc::pid_t,
        /// Its pidfd, registered with the runtime.
        fd: Option<AsyncFd<OwnedFd>>,
        /// It was waited for.
        reaped: bool,
    }

    impl Child {
        /// Its pid, which is also its process group's id.
        pub(crate) fn id(&self) -> u32 {
            self.pid as u32
        }

        /// Waits for it to end (cancel-safe).
        pub(crate) async fn wait(&mut self) -> io::Result<ExitStatus> {
            loop {
                let fd = self.fd.as_ref().filter(|_| !self.reaped);
                let fd = fd.ok_or_else(|| io::Error::other("the command was already waited for"))?;
                let mut ready = fd.readable().await?;
                let reaped = reap(self.pid, libc::WNOHANG);
                if reaped.as_ref().is_ok_and(Option::is_none) {
                    ready.clear_ready();
                    continue;
                }
                // Ended, or (`ECHILD`) no longer ours to wait for or kill.
                let done = reaped.as_ref().map_or_else(|e| e.raw_os_error() == Some(libc::ECHILD), |_| true);
                drop(ready);
                if done {
                    self.reaped = true;
                    self.fd = None;
                }
                return reaped.map(|s| s.expect("ended"));
            }
        }
    }

    /// `waitpid`: the status once it ended (`None`: not yet, with `WNOHANG`).
    fn reap(pid: libc::pid_t, flags: libc::c_int) -> io::Result<Option<ExitStatus>> {
        let mut status = 0;
        loop {
            // SAFETY: waitpid(2) writes the status into the int we own.
            let rc = unsafe { libc::waitpid(pid, &mut status, flags) };
            match rc {
                0 => return Ok(None),
                r if r == pid => return Ok(Some(ExitStatus::from_raw(status))),
                _ => {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                }
            }
        }
    }

    impl Drop for Child {
        fn drop(&mut self) {
            if self.reaped {
                return;
            }
            crate::process::group::kill(Some(self.pid as u32));
            if !matches!(reap(self.pid, libc::WNOHANG), Ok(None)) {
                return;
            }
            // Killed: it ends at once. Reaped on a thread, or here when none can be started.
            let pid = self.pid;
            if std::thread::Builder::new().name("dagrun-reap".into()).spawn(move || reap(pid, 0)).is_err() {
                let _ = reap(pid, 0);
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use std::io::Read;
        use std::os::fd::AsFd;
        use std::path::Path;
        use std::time::{Duration, Instant};

        use super::*;

        /// Runs `script` in `cwd` with `vars`: its exit status, output, and pid.
        async fn run(script: &str, cwd: &Path, vars: &[(String, String)]) -> (ExitStatus, String, u32) {
            let null = std::fs::File::open("/dev/null").unwrap();
            let (mut reader, writer) = std::io::pipe().unwrap();
            let s = Spawn { program: "/bin/sh", script, cwd, vars, stdin: null.as_fd(), out: writer.as_fd() };
            let mut child = spawn(&s).unwrap().expect("pidfds on the test machine");
            drop(writer);
            let status = child.wait().await.unwrap();
            let mut out = String::new();
            reader.read_to_string(&mut out).unwrap();
            (status, out, child.id())
        }

        /// Starts `script` with `program` in `cwd`, its stdin and output `/dev/null`.
        fn spawn_quiet(program: &str, script: &str, cwd: &Path) -> io::Result<Option<Child>> {
            let null = std::fs::File::open("/dev/null").unwrap();
            spawn(&Spawn { program, script, cwd, vars: &[], stdin: null.as_fd(), out: null.as_fd() })
        }

        #[tokio::test]
        async fn the_shell_runs_in_its_directory_with_its_variables_in_a_group_of_its_own() {
            let dir = tempfile::tempdir().unwrap();
            let vars = [("DAGRUN_SPAWN_TEST".to_owned(), "it's \"quoted\" $HOME".to_owned())];
            let script = "printf '%s|' \"$DAGRUN_SPAWN_TEST\" \"$(pwd -P)\" \"$PATH\" \"$(readlink /proc/self/fd/0)\"; \
                          cut -d' ' -f5 /proc/$$/stat; grep '^SigIgn' /proc/self/status; echo err >&2; exit 3";
            // SIGPIPE is ignored here (as Rust does): the command gets it back at its default.
            let (status, out, pid) = run(script, dir.path(), &vars).await;
            assert_eq!(status.code(), Some(3));
            let real = dir.path().canonicalize().unwrap();
            let path = std::env::var("PATH").unwrap();
            let mut lines = out.lines();
            let first = format!("it's \"quoted\" $HOME|{}|{path}|/dev/null|{pid}", real.display());
            assert_eq!(lines.next(), Some(first.as_str()), "{out}");
            let mask = |line: Option<&str>, name: &str| {
                let hex = line.and_then(|l| l.strip_prefix(name)).expect(name).trim();
                u64::from_str_radix(hex, 16).unwrap()
            };
            assert_eq!(mask(lines.next(), "SigIgn:") & (1 << (libc::SIGPIPE - 1)), 0, "SIGPIPE not ignored");
            assert_eq!(lines.next(), Some("err"));
        }

        #[tokio::test]
        async fn a_signal_is_the_status_and_a_missing_program_an_error() {
            let dir = tempfile::tempdir().unwrap();
            let (status, _, _) = run("kill -9 $$", dir.path(), &[]).await;
            assert_eq!((status.code(), status.signal()), (None, Some(9)));
            assert_eq!(spawn_quiet("/no/such/sh", "true", dir.path()).unwrap_err().kind(), io::ErrorKind::NotFound);
        }

        /// Dropped unwaited (a run dropped mid-command): the whole group is killed and reaped.
        #[tokio::test]
        async fn a_child_dropped_unwaited_is_killed_with_its_group() {
            let dir = tempfile::tempdir().unwrap();
            let child = spawn_quiet("/bin/sh", "sleep 30 & echo $! > bg; wait", dir.path()).unwrap().unwrap();
            let pid = child.id();
            let bg = dir.path().join("bg");
            let start = Instant::now();
            while std::fs::read_to_string(&bg).map_or(true, |s| !s.ends_with('\n')) {
                assert!(start.elapsed() < Duration::from_secs(10), "the background sleep never started");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let bg: u32 = std::fs::read_to_string(&bg).unwrap().trim().parse().unwrap();
            drop(child);
            // The shell reaped too, no zombie left (we are its parent, so its pid is not reused);
            // the background command, now the init process's child, dead.
            // SAFETY: signal 0 only checks for existence.
            let reaped = |p: u32| unsafe { libc::kill(p as libc::pid_t, 0) } != 0;
            while !reaped(pid) || crate::process::group::alive(bg) {
                assert!(start.elapsed() < Duration::from_secs(10), "still running: {pid} or {bg}");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }

        #[test]
        fn the_last_of_a_name_wins_over_earlier_and_inherited_ones() {
            let inherited_name = std::env::vars_os().next().map(|(k, _)| k.to_string_lossy().into_owned());
            let name = inherited_name.expect("an environment");
            let vars = [
                ("A_DAGRUN_TEST".to_owned(), "1".to_owned()),
                (name.clone(), "ours".to_owned()),
                ("A_DAGRUN_TEST".to_owned(), "2".to_owned()),
            ];
            let own = own_vars(&vars).unwrap();
            let pointers = envp(&own);
            assert!(pointers.last().unwrap().is_null());
            // SAFETY: each pointer before the null one points into `own` or the inherited strings.
            let env: Vec<String> = pointers[..pointers.len() - 1]
                .iter()
                .map(|p| unsafe { std::ffi::CStr::from_ptr(*p) }.to_string_lossy().into_owned())
                .collect();
            let values = |key: &str| -> Vec<String> {
                env.iter().filter_map(|e| e.strip_prefix(&format!("{key}=")).map(str::to_owned)).collect()
            };
            assert_eq!(values("A_DAGRUN_TEST"), ["2"]);
            assert_eq!(values(&name), ["ours"]);
            assert_eq!(env.len(), inherited().len() + 1);
            let nul = [("X".to_owned(), "a\0b".to_owned())];
            let e = own_vars(&nul).unwrap_err();
            assert_eq!(
                (e.kind(), e.to_string()),
                (io::ErrorKind::InvalidInput, "a NUL byte in the command or its environment".into())
            );
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod other {
    use std::io;
    use std::process::ExitStatus;

    use super::Spawn;

    /// Never made here: [`spawn`] always leaves the command to tokio.
    #[derive(Debug)]
    pub(crate) enum Child {}

    impl Child {
        pub(crate) fn id(&self) -> u32 {
            match *self {}
        }

        pub(crate) async fn wait(&mut self) -> io::Result<ExitStatus> {
            match *self {}
        }
    }

    pub(crate) fn spawn(_s: &Spawn<'_>) -> io::Result<Option<Child>> {
        Ok(None)
    }
}
