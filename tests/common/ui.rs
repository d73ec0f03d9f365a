//! A running `dagrun ui` for the tests: started on port 0 (its address and token read from its
//! stderr), asked over plain HTTP (every header the test's choice), stopped on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::Duration;

use super::Sandbox;

/// A running `dagrun ui`, stopped on drop.
pub struct Ui {
    child: Child,
    pub addr: String,
    pub token: String,
}

impl Ui {
    pub fn start(s: &Sandbox, args: &[&str]) -> Ui {
        let mut all = vec!["ui"];
        if !args.contains(&"--addr") {
            all.extend(["--addr", "127.0.0.1:0"]);
        }
        all.extend_from_slice(args);
        Ui::spawn(s.cmd(&all))
    }

    /// Starts `cmd` (a `dagrun ui` command line) and reads its address and token.
    pub fn spawn(mut cmd: std::process::Command) -> Ui {
        let mut child = cmd.stderr(Stdio::piped()).spawn().unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let (mut addr, mut token) = (None, None);
        while addr.is_none() || token.is_none() {
            let line = lines.next().unwrap_or_else(|| panic!("dagrun ui ended before it listened")).unwrap();
            if let Some(rest) = line.strip_prefix("listening on http://") {
                addr = Some(rest.split('/').next().unwrap().to_owned());
            }
            if let Some(rest) = line.strip_prefix("token: ") {
                token = Some(rest.split(' ').next().unwrap().to_owned());
            }
        }
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Ui { child, addr: addr.unwrap(), token: token.unwrap() }
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        self.request("GET", path, &[], "")
    }

    /// A POST from this UI's own page (same origin), with `form` as its body.
    pub fn post(&self, path: &str, headers: &[(&str, &str)], form: &str) -> (u16, String) {
        let mut all = vec![("Content-Type", "application/x-www-form-urlencoded")];
        all.extend_from_slice(headers);
        self.request("POST", path, &all, form)
    }

    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
        let mut c = TcpStream::connect(&self.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", self.addr);
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        c.write_all(req.as_bytes()).unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        let status = out.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        (status, out)
    }
}

impl Drop for Ui {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
