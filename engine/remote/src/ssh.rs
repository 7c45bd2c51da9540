//! A folder on another machine, reached with the system's `ssh` client, so
//! that `~/.ssh/config`, agents, keys, jump hosts and known hosts work as
//! they do for git. Each operation is one small POSIX shell command on the
//! server (`cat`, `ln`, `rm`, `find`); connections are shared through
//! OpenSSH's ControlMaster, so an operation costs a round trip, not a
//! handshake. `GOURD_SSH_COMMAND` replaces `ssh` (as `GIT_SSH_COMMAND` does).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use gourd_core::remote::RemoteFailure;
use tokio::io::AsyncWriteExt;

/// Exit status our scripts use for "no such entry".
const MISSING: i32 = 3;

pub struct SshStore {
    /// `[user@]host`.
    host: String,
    port: Option<u16>,
    /// The folder on the server.
    root: String,
    /// Where OpenSSH keeps the shared connection's socket: made on the
    /// first connection (`gourd check` makes none).
    control: std::sync::OnceLock<Option<PathBuf>>,
}

impl SshStore {
    /// `endpoint`: `[user@]host:/path` (scp's form) or
    /// `ssh://[user@]host[:port]/path`.
    pub fn new(endpoint: &str) -> Result<SshStore, String> {
        let (host, port, root) = parse(endpoint)?;
        Ok(SshStore { host, port, root, control: std::sync::OnceLock::new() })
    }

    pub fn describe(&self) -> String {
        match self.port {
            Some(port) => format!("ssh://{}:{port}{}", self.host, self.root),
            None => format!("{}:{}", self.host, self.root),
        }
    }

    fn path(&self, rel: &str) -> String {
        format!("{}/{rel}", self.root.trim_end_matches('/'))
    }

    fn command(&self, script: &str) -> tokio::process::Command {
        let mut args: Vec<String> = vec!["-o".into(), "BatchMode=yes".into(), "-o".into(), "ConnectTimeout=10".into()];
        if let Some(dir) = self.control.get_or_init(control_dir) {
            args.extend([
                "-o".into(),
                "ControlMaster=auto".into(),
                "-o".into(),
                format!("ControlPath={}/%C", dir.display()),
                "-o".into(),
                "ControlPersist=60".into(),
            ]);
        }
        if let Some(port) = self.port {
            args.extend(["-p".into(), port.to_string()]);
        }
        args.extend(["--".into(), self.host.clone(), script.to_string()]);
        let mut command = match std::env::var("GOURD_SSH_COMMAND").ok().filter(|c| !c.trim().is_empty()) {
            Some(ssh) => {
                let mut c = tokio::process::Command::new("/bin/sh");
                c.arg("-c").arg(format!("{ssh} \"$@\"")).arg("gourd-ssh").args(&args);
                c
            }
            None => {
                let mut c = tokio::process::Command::new("ssh");
                c.args(&args);
                c
            }
        };
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        command
    }

    /// Runs `script`, feeding it `input`; its stdout, or `None` when the
    /// script said the entry is missing.
    async fn run(&self, script: &str, input: Input<'_>) -> Result<Option<Vec<u8>>, RemoteFailure> {
        let mut command = self.command(script);
        match &input {
            Input::Nothing => {}
            Input::Bytes(_) => {
                command.stdin(Stdio::piped());
            }
            Input::File(path) => {
                command.stdin(Stdio::from(std::fs::File::open(path).map_err(local)?));
            }
        }
        let mut child = command.spawn().map_err(|e| unavailable(format!("cannot start ssh: {e}")))?;
        if let (Input::Bytes(bytes), Some(mut stdin)) = (&input, child.stdin.take()) {
            let bytes = bytes.to_vec();
            tokio::spawn(async move {
                let _ = stdin.write_all(&bytes).await;
            });
        }
        let output = tokio::time::timeout(Duration::from_secs(600), child.wait_with_output())
            .await
            .map_err(|_| unavailable(format!("{}: no answer in 600 s", self.describe())))?
            .map_err(|e| unavailable(e.to_string()))?;
        match output.status.code() {
            Some(0) => Ok(Some(output.stdout)),
            Some(MISSING) => Ok(None),
            // ssh's own failures (connection, authentication) are 255.
            Some(255) | None => {
                Err(unavailable(format!("{}: {}", self.describe(), String::from_utf8_lossy(&output.stderr).trim())))
            }
            Some(code) => Err(RemoteFailure::Rejected(format!(
                "{}: the server's shell failed (exit code {code}): {}",
                self.describe(),
                String::from_utf8_lossy(&output.stderr).trim()
            ))),
        }
    }

    pub async fn get(&self, rel: &str) -> Result<Option<Vec<u8>>, RemoteFailure> {
        let p = quote(&self.path(rel));
        self.run(&format!("test -f {p} || exit {MISSING}; exec cat -- {p}"), Input::Nothing).await
    }

    /// Streams an entry into `dest`, never whole in memory; `false` when it
    /// is missing.
    pub async fn get_to_file(&self, rel: &str, dest: &Path) -> Result<bool, RemoteFailure> {
        let p = quote(&self.path(rel));
        let mut command = self.command(&format!("test -f {p} || exit {MISSING}; exec cat -- {p}"));
        command.stdout(Stdio::from(std::fs::File::create(dest).map_err(local)?));
        // Not `output()`: it would pipe stdout away from the file.
        let child = command.spawn().map_err(|e| unavailable(format!("cannot start ssh: {e}")))?;
        let output = tokio::time::timeout(Duration::from_secs(3600), child.wait_with_output())
            .await
            .map_err(|_| unavailable(format!("{}: no answer in an hour", self.describe())))?
            .map_err(|e| unavailable(e.to_string()))?;
        match output.status.code() {
            Some(0) => Ok(true),
            Some(MISSING) => Ok(false),
            _ => Err(unavailable(format!("{}: {}", self.describe(), String::from_utf8_lossy(&output.stderr).trim()))),
        }
    }

    /// Writes an entry unless it exists: written beside its place, then
    /// linked into it, so no reader sees half of it and nothing is replaced.
    pub async fn put(&self, rel: &str, bytes: &[u8]) -> Result<(), RemoteFailure> {
        self.run(&self.put_script(rel), Input::Bytes(bytes)).await.map(|_| ())
    }

    pub async fn put_file(&self, rel: &str, file: &Path) -> Result<(), RemoteFailure> {
        self.run(&self.put_script(rel), Input::File(file)).await.map(|_| ())
    }

    fn put_script(&self, rel: &str) -> String {
        let full = self.path(rel);
        let dir = quote(full.rsplit_once('/').map_or(".", |(d, _)| d));
        let p = quote(&full);
        format!(
            "set -e; mkdir -p {dir}; t={dir}/.tmp.$$; cat > \"$t\"; \
             ln \"$t\" {p} 2>/dev/null || test -e {p} || mv \"$t\" {p}; rm -f \"$t\""
        )
    }

    pub async fn remove(&self, rel: &str) -> Result<(), RemoteFailure> {
        self.run(&format!("rm -f -- {}", quote(&self.path(rel))), Input::Nothing).await.map(|_| ())
    }

    /// The entries of one folder: name, size and when last written.
    pub async fn list(&self, rel: &str) -> Result<Vec<(String, u64, SystemTime)>, RemoteFailure> {
        let dir = quote(&self.path(rel));
        let script = format!(
            "cd {dir} 2>/dev/null || exit 0; find . -maxdepth 1 -type f ! -name '.tmp.*' -exec stat -c '%s %Y %n' {{}} +"
        );
        let out = self.run(&script, Input::Nothing).await?.unwrap_or_default();
        let mut entries = Vec::new();
        for line in String::from_utf8_lossy(&out).lines() {
            let mut parts = line.splitn(3, ' ');
            let (Some(size), Some(time), Some(name)) = (parts.next(), parts.next(), parts.next()) else { continue };
            let (Ok(size), Ok(time)) = (size.parse::<u64>(), time.parse::<u64>()) else { continue };
            let name = name.trim_start_matches("./").to_string();
            entries.push((name, size, SystemTime::UNIX_EPOCH + Duration::from_secs(time)));
        }
        Ok(entries)
    }
}

enum Input<'a> {
    Nothing,
    Bytes(&'a [u8]),
    File(&'a Path),
}

fn parse(endpoint: &str) -> Result<(String, Option<u16>, String), String> {
    let bad = || format!("ssh endpoint `{endpoint}`: expected `[user@]host:/path` or `ssh://[user@]host[:port]/path`");
    let (host, port, root) = if let Some(rest) = endpoint.strip_prefix("ssh://") {
        let (authority, path) = rest.split_once('/').ok_or_else(bad)?;
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port.parse::<u16>().map_err(|_| bad())?)),
            None => (authority, None),
        };
        (host.to_string(), port, format!("/{path}"))
    } else {
        let (host, path) = endpoint.split_once(':').ok_or_else(bad)?;
        (host.to_string(), None, path.to_string())
    };
    // A host starting with `-` would be read as an ssh option.
    if host.is_empty() || host.starts_with('-') || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    if root.trim_matches('/').is_empty() || root.chars().any(|c| c.is_control()) {
        return Err(format!("ssh endpoint `{endpoint}`: name the folder gourd may use, e.g. `host:/srv/gourd-cache`"));
    }
    Ok((host, port, root))
}

/// A private folder for connection sockets (short, as socket paths must be).
fn control_dir() -> Option<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let uid = unsafe { libc::getuid() };
    let dir = std::env::temp_dir().join(format!("gourd-ssh-{uid}"));
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
    // Only a folder that is ours and private: another user must not be able
    // to plant a socket there.
    let meta = std::fs::symlink_metadata(&dir).ok()?;
    (meta.is_dir() && meta.uid() == uid && meta.mode() & 0o077 == 0).then_some(dir)
}

/// `text` as one single-quoted word of a POSIX shell.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

fn unavailable(message: String) -> RemoteFailure {
    RemoteFailure::Unavailable(message)
}

fn local(err: impl std::fmt::Display) -> RemoteFailure {
    RemoteFailure::Rejected(err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_in_both_forms() {
        assert_eq!(parse("me@box:/srv/c").unwrap(), ("me@box".into(), None, "/srv/c".into()));
        assert_eq!(parse("box:cache").unwrap(), ("box".into(), None, "cache".into()));
        assert_eq!(parse("ssh://me@box:2222/srv/c").unwrap(), ("me@box".into(), Some(2222), "/srv/c".into()));
        for bad in ["box", "-oProxyCommand=x:/a", "ssh://box", "box:/", "ssh://box:port/a", "a b:/c"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(quote("/a b/it's"), "'/a b/it'\\''s'");
    }
}
