//! The harness for end-to-end tests: a temporary git repository holding a
//! pipeline, and the real `gourd` binary run in it with a controlled
//! environment.
#![allow(dead_code)]

pub mod serving;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct TestWorkspace {
    dir: tempfile::TempDir,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Run {
        use std::os::unix::process::ExitStatusExt;
        Run {
            code: output.status.code().unwrap_or_else(|| 128 + output.status.signal().unwrap_or(0)),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    #[track_caller]
    pub fn success(self) -> Run {
        assert_eq!(self.code, 0, "gourd failed:\n--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr);
        self
    }

    /// The JSON events of `gourd run --json`.
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON: {line}: {e}")))
            .collect()
    }

    /// `stage → status` of a `--json` run.
    pub fn statuses(&self) -> std::collections::BTreeMap<String, String> {
        self.events()
            .into_iter()
            .filter(|e| e["event"] == "stage")
            .map(|e| (e["stage"].as_str().unwrap().to_string(), e["status"].as_str().unwrap().to_string()))
            .collect()
    }

    pub fn summary(&self) -> serde_json::Value {
        self.events().into_iter().find(|e| e["event"] == "summary").expect("a summary line")
    }

    /// stdout and stderr with times, digests and temp paths made stable.
    pub fn normalized(&self, ws: &TestWorkspace) -> String {
        normalize(&format!("{}{}", self.stdout, self.stderr), ws)
    }
}

pub fn normalize(text: &str, ws: &TestWorkspace) -> String {
    let root = ws.root().display().to_string();
    let mut text = text.replace(&root, "[WS]");
    let patterns = [
        (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "[TIMESTAMP]"),
        (r"[0-9a-f]{64}", "[DIGEST]"),
        (r"\d+\.\d+s\b", "[TIME]"),
        (r"\d+m\d\ds\b", "[TIME]"),
        (r"v1-[0-9a-f]{16}", "v1-[HASH]"),
        (r"pid \d+", "pid [PID]"),
        (r"\b\d+ ms\b", "[MS]"),
        (r"gourd-e2e-[A-Za-z0-9]+", "[WSNAME]"),
        (r"\b(at|lineage|commit) +[0-9a-f]{10,12}\b", "$1 [COMMIT]"),
        (r"workspace at `[0-9a-f]{12}`", "workspace at `[COMMIT]`"),
    ];
    for (pattern, replacement) in patterns {
        text = regex_lite::Regex::new(pattern).unwrap().replace_all(&text, replacement).into_owned();
    }
    // Line numbers in the standard library move whenever it changes; the
    // user's file is what the snapshots are about.
    let location = regex_lite::Regex::new(r"gourd-std\.ncl:\d+:\d+").unwrap();
    let gutter = regex_lite::Regex::new(r"^(\s*)\d+ │").unwrap();
    let mut in_stdlib = false;
    let mut lines = Vec::new();
    for line in text.split('\n') {
        if line.contains("┌─") {
            in_stdlib = line.contains("gourd-std.ncl:");
        }
        let line = location.replace_all(line, "gourd-std.ncl:[LINE]");
        lines.push(if in_stdlib { gutter.replace(&line, "$1[N] │").into_owned() } else { line.into_owned() });
    }
    lines.join("\n")
}

impl TestWorkspace {
    /// A fresh git repository with `gourd.ncl` holding `pipeline`.
    pub fn new(pipeline: &str) -> TestWorkspace {
        let ws = TestWorkspace::bare();
        ws.git(&["init", "-q", "-b", "main"]);
        ws.git(&["config", "user.email", "test@example.com"]);
        ws.git(&["config", "user.name", "Test"]);
        ws.write("gourd.ncl", pipeline);
        ws.write(".gitignore", ".gourd/\n");
        ws
    }

    /// An empty folder, not a git repository.
    pub fn bare() -> TestWorkspace {
        TestWorkspace { dir: tempfile::Builder::new().prefix("gourd-e2e-").tempdir().unwrap() }
    }

    /// A `git clone` of `from` (a workspace or a bare repository): a
    /// teammate's fresh checkout, without `.gourd/`.
    pub fn clone_of(from: &Path) -> TestWorkspace {
        let ws = TestWorkspace::bare();
        ws.git(&["clone", "-q", from.to_str().unwrap(), "."]);
        ws
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    pub fn write(&self, rel: &str, content: &str) {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
    }

    pub fn exists(&self, rel: &str) -> bool {
        self.path(rel).exists()
    }

    pub fn remove(&self, rel: &str) {
        let path = self.path(rel);
        if path.is_dir() {
            std::fs::remove_dir_all(path).unwrap();
        } else {
            std::fs::remove_file(path).unwrap();
        }
    }

    /// Lines appended to `runs.log` by stages (`echo NAME >> runs.log`).
    pub fn executions(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("runs.log")).unwrap_or_default().lines().map(String::from).collect()
    }

    pub fn clear_executions(&self) {
        let _ = std::fs::remove_file(self.path("runs.log"));
    }

    pub fn git(&self, args: &[&str]) -> String {
        let output = Command::new("git").args(args).current_dir(self.root()).output().unwrap();
        assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(gourd_bin());
        command
            .args(args)
            .current_dir(self.root())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.root())
            .env("NO_COLOR", "1")
            .env("GOURD_GPUS", "");
        command
    }

    pub fn gourd(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().unwrap())
    }

    pub fn gourd_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut command = self.command(args);
        for (k, v) in env {
            command.env(k, v);
        }
        Run::from(command.output().unwrap())
    }

    /// `gourd run --json` and the status of each stage.
    pub fn run_json(&self, extra: &[&str]) -> Run {
        let mut args = vec!["run", "--json"];
        args.extend_from_slice(extra);
        self.gourd(&args)
    }
}

pub fn gourd_bin() -> &'static str {
    env!("CARGO_BIN_EXE_gourd")
}

/// `{"a": "ran", ...}` from pairs.
pub fn expect(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

/// Waits until `done()` holds; fails the test, naming `what`, after a minute
/// (a bound on a hang, not a measurement).
#[track_caller]
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "timed out waiting: {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// `len` bytes that differ with `seed` and do not compress (xorshift).
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(len + 8);
    let mut x = seed | 1;
    while bytes.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// Every file under `dir`, recursively, without following symbolic links;
/// nothing when `dir` does not exist.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(files_under(&entry.path()));
        } else {
            out.push(entry.path());
        }
    }
    out
}

/// Whether `pid` is a live process: a zombie has finished.
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}
