//! What the `dagrun serve` tests share: registries built from the ONNX fixtures, and a running
//! `dagrun serve` on a free loopback port whose events (stderr) are kept for checks.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dagrun_contracts::registry;

/// `tests/fixtures/onnx/<name>/model.onnx`.
pub fn fixture_model(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/onnx").join(name).join("model.onnx")
}

/// The fixture's test CSV (`tests/fixtures/onnx/<name>/<data>` as its expected_metrics.json says).
pub fn fixture_data(name: &str) -> PathBuf {
    let dir = fixture_model(name).parent().unwrap().to_path_buf();
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("expected_metrics.json")).unwrap()).unwrap();
    dir.join(expected["data"].as_str().unwrap())
}

/// `model` with `features` (a JSON array of names) added to its metadata, as dagrun's train plugin
/// records them: appending a `metadata_props` field (14) to a serialized ModelProto is valid protobuf.
pub fn with_feature_names(model: &[u8], names: &[&str]) -> Vec<u8> {
    fn field(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
        out.push(tag);
        let mut n = bytes.len();
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                break;
            }
            out.push(b | 0x80);
        }
        out.extend_from_slice(bytes);
    }
    let json = serde_json::to_string(names).unwrap();
    let mut entry = Vec::new();
    field(&mut entry, 0x0a, b"features");
    field(&mut entry, 0x12, json.as_bytes());
    let mut out = model.to_vec();
    field(&mut out, 0x72, &entry);
    out
}

/// Writes `<registry>/<name>/<version>/model.onnx` and a `metadata.json` recording its digest
/// (without moving `current`).
pub fn add_version(registry_dir: &Path, name: &str, version: &str, model: &[u8]) {
    let dir = registry::version_dir(registry_dir, name, version);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(registry::MODEL_FILE), model).unwrap();
    let digest = blake3::hash(model).to_hex().to_string();
    std::fs::write(dir.join(registry::METADATA_FILE), registry::Metadata::new(name, version, &digest).to_json())
        .unwrap();
}

/// Points `current` at `version` the way deploys and rollbacks do.
pub fn set_current(registry_dir: &Path, name: &str, version: &str) {
    registry::set_current(registry_dir, name, version).unwrap();
}

/// A running `dagrun serve`.
pub struct Serve {
    pub child: Child,
    pub addr: std::net::SocketAddr,
    /// Every stderr line so far.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Serve {
    /// `dagrun serve --registry REGISTRY --addr 127.0.0.1:0 ARGS`, once it listens (panics after 30 s).
    pub fn start(registry_dir: &Path, args: &[&str]) -> Serve {
        let mut cmd = Command::new(super::BIN);
        cmd.arg("serve").arg("--registry").arg(registry_dir).args(["--addr", "127.0.0.1:0"]).args(args);
        Serve::spawn(cmd, Duration::from_secs(30))
    }

    /// Spawns `cmd` (a `dagrun serve` on port 0), keeping its stderr lines; returns once it says
    /// where it listens (panics after `timeout`, with what it printed).
    pub fn spawn(mut cmd: Command, timeout: Duration) -> Serve {
        let mut child =
            cmd.env("NO_COLOR", "1").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("listening on http://") {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or_default().to_owned());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(timeout) {
            Ok(a) => a.parse().unwrap(),
            Err(_) => {
                let _ = child.kill();
                panic!("dagrun serve did not start: {:?}", log.lock().unwrap());
            }
        };
        Serve { child, addr, log }
    }

    /// `http://ADDR{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The stderr lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Waits (at most `timeout`) for a stderr line containing `text`.
    pub fn wait_for_line(&self, text: &str, timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            if let Some(l) = self.lines().into_iter().find(|l| l.contains(text)) {
                return l;
            }
            assert!(start.elapsed() < timeout, "no line with {text:?} within {timeout:?}: {:?}", self.lines());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits (at most 30 s) for the exit code.
    pub fn terminate(mut self) -> Option<i32> {
        #[allow(unsafe_code)]
        // SAFETY: sends a signal to our own child process.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(start.elapsed() < Duration::from_secs(30), "dagrun serve did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
