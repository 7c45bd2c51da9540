//! A `gourd serve` child and a plain HTTP/1.1 client for the serving tests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{TestWorkspace, wait_until};

/// A running `gourd serve ARGS --port 0`, killed when dropped.
pub struct Server {
    pub child: Child,
    pub address: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    /// Starts it and waits until it says where it listens.
    pub fn start(ws: &TestWorkspace, args: &[&str]) -> Server {
        let mut all = vec!["serve"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--port", "0"]);
        let mut child = ws.command(&all).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let reader = BufReader::new(child.stderr.take().unwrap());
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in reader.lines().map_while(Result::ok) {
                let mut text = sink.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
        let mut address = None;
        wait_until("the server to listen", || {
            let text = stderr.lock().unwrap().clone();
            assert!(!text.contains("error:"), "{text}");
            address = text.split("on http://").nth(1).and_then(|rest| rest.split_whitespace().next()?.parse().ok());
            address.is_some()
        });
        Server { child, address: address.unwrap(), stderr }
    }

    /// What it has written to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// A metric's value from `/metrics` (0 when absent).
    pub fn metric(&self, name: &str) -> f64 {
        let text = http(self.address, "GET", "/metrics", b"").body;
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.parse().ok()))
            .unwrap_or(0.0)
    }

    /// The version `/v2/models/{name}` says answers.
    pub fn version(&self, name: &str) -> String {
        let meta = http(self.address, "GET", &format!("/v2/models/{name}"), b"").json();
        meta["versions"][0].as_str().unwrap_or_default().to_string()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// One request on its own connection.
pub fn http(address: SocketAddr, method: &str, path: &str, body: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Reply { status: head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0), body: body.to_string() }
}

pub fn post(address: SocketAddr, path: &str, body: &serde_json::Value) -> Reply {
    http(address, "POST", path, body.to_string().as_bytes())
}

/// An OIP request of image files, each the base64 of its bytes.
pub fn image_files(files: &[Vec<u8>]) -> serde_json::Value {
    use base64::Engine as _;
    let data: Vec<String> = files.iter().map(|f| base64::engine::general_purpose::STANDARD.encode(f)).collect();
    serde_json::json!({ "inputs": [{ "name": "input", "shape": [files.len()], "datatype": "BYTES", "data": data }] })
}
