//! The input log: one JSON object per input row, appended by a thread of its
//! own to `DIR/inputs.jsonl`, which is rotated to `inputs-<unix ms>.jsonl`
//! when it passes its size. The drift step reads these files as JSON lines
//! (docs/serving.md, "The input log").
//!
//! Inputs can be sensitive: the folder is created private (0700), files are
//! 0600, and a file that is a symbolic link is never written through.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

use crate::LogOptions;
use crate::metrics::Metrics;

pub const LOG_FILE: &str = "inputs.jsonl";

/// What the log records of an image besides the model's answer: its size and
/// the colour of its original pixels.
pub fn image_fields(width: u32, height: u32, rgb_mean: [f32; 3], contrast: f32) -> Vec<(String, f64)> {
    let mut fields = vec![("width".to_string(), f64::from(width)), ("height".to_string(), f64::from(height))];
    for (c, name) in ["red", "green", "blue"].iter().enumerate() {
        fields.push((name.to_string(), f64::from(rgb_mean[c])));
    }
    let brightness = rgb_mean.iter().map(|v| f64::from(*v)).sum::<f64>() / 3.0;
    fields.push(("brightness".to_string(), brightness));
    fields.push(("contrast".to_string(), f64::from(contrast)));
    fields
}

/// One row of the log as a JSON line: `head` (time, model, version, label,
/// confidence…), then `fields`, then the embedding as `emb_0`, `emb_1`, ….
pub fn line(
    mut head: serde_json::Map<String, serde_json::Value>,
    fields: &[(String, f64)],
    embedding: Option<&[f32]>,
) -> String {
    for (name, value) in fields {
        head.insert(name.clone(), serde_json::json!(value));
    }
    if let Some(embedding) = embedding {
        for (j, value) in embedding.iter().enumerate() {
            head.insert(format!("emb_{j}"), serde_json::json!(value));
        }
    }
    let mut text = serde_json::Value::Object(head).to_string();
    text.push('\n');
    text
}

/// Lines waiting to be written; past this, lines are dropped (and counted)
/// rather than slowing requests down.
const BACKLOG: usize = 4096;

pub struct Log {
    sender: SyncSender<String>,
    metrics: Arc<Metrics>,
}

impl Log {
    pub fn start(options: LogOptions, metrics: Arc<Metrics>) -> io::Result<(Log, JoinHandle<()>)> {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&options.dir)?;
        let writer = Writer::open(options)?;
        let (sender, receiver) = sync_channel(BACKLOG);
        let handle = std::thread::Builder::new().name("gourd-serve-log".into()).spawn(move || writer.run(receiver))?;
        Ok((Log { sender, metrics }, handle))
    }

    pub fn append(&self, lines: String) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.sender.try_send(lines) {
            self.metrics.log_dropped.inc();
        }
    }
}

struct Writer {
    options: LogOptions,
    file: BufWriter<File>,
    size: u64,
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).mode(0o600).custom_flags(libc::O_NOFOLLOW).open(path)
}

impl Writer {
    fn open(options: LogOptions) -> io::Result<Writer> {
        let path = options.dir.join(LOG_FILE);
        let file = open_append(&path).map_err(|e| io::Error::new(e.kind(), format!("`{}`: {e}", path.display())))?;
        let size = file.metadata()?.len();
        Ok(Writer { options, file: BufWriter::new(file), size })
    }

    fn run(mut self, receiver: Receiver<String>) {
        while let Ok(lines) = receiver.recv() {
            let mut result = self.write(&lines);
            // Flush once the backlog is written, not after every line.
            while result.is_ok() {
                match receiver.try_recv() {
                    Ok(more) => result = self.write(&more),
                    Err(_) => break,
                }
            }
            if let Err(err) = result.and_then(|()| self.file.flush()) {
                eprintln!("serve: the input log `{}`: {err}", self.options.dir.display());
            }
        }
        let _ = self.file.flush();
    }

    fn write(&mut self, lines: &str) -> io::Result<()> {
        if self.size > 0 && self.size + lines.len() as u64 > self.options.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(lines.as_bytes())?;
        self.size += lines.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let current = self.options.dir.join(LOG_FILE);
        let mut rotated = self.options.dir.join(format!("inputs-{millis:015}.jsonl"));
        let mut suffix = 1;
        while rotated.exists() {
            rotated = self.options.dir.join(format!("inputs-{millis:015}-{suffix}.jsonl"));
            suffix += 1;
        }
        std::fs::rename(&current, &rotated)?;
        self.file = BufWriter::new(open_append(&current)?);
        self.size = 0;
        let mut old: Vec<PathBuf> = std::fs::read_dir(&self.options.dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("inputs-") && n.ends_with(".jsonl"))
            })
            .collect();
        old.sort();
        let excess = old.len().saturating_sub(self.options.keep);
        for path in &old[..excess] {
            std::fs::remove_file(path)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(dir: &Path, max_bytes: u64, keep: usize) -> LogOptions {
        LogOptions { dir: dir.to_path_buf(), max_bytes, keep }
    }

    #[test]
    fn rotates_past_its_size_and_keeps_the_newest_files() {
        let tmp = tempfile::tempdir().unwrap();
        let mut writer = Writer::open(options(tmp.path(), 100, 2)).unwrap();
        for i in 0..10 {
            writer.write(&format!("{{\"row\": {i}, \"pad\": \"{}\"}}\n", "x".repeat(30))).unwrap();
        }
        writer.file.flush().unwrap();
        let mut names: Vec<String> =
            std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names.len(), 3, "{names:?}");
        assert_eq!(names[2], LOG_FILE);
        // Every line of the newest files is whole, and the last row is in the current file.
        let current = std::fs::read_to_string(tmp.path().join(LOG_FILE)).unwrap();
        assert!(current.lines().last().unwrap().contains("\"row\": 9"), "{current}");
        for name in &names {
            for line in std::fs::read_to_string(tmp.path().join(name)).unwrap().lines() {
                serde_json::from_str::<serde_json::Value>(line).unwrap();
            }
        }
        assert!(std::fs::metadata(tmp.path().join(LOG_FILE)).unwrap().len() <= 100);
    }

    #[test]
    fn never_writes_through_a_link_and_keeps_files_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("elsewhere");
        std::fs::write(&target, "precious\n").unwrap();
        let dir = tmp.path().join("log");
        std::fs::create_dir(&dir).unwrap();
        std::os::unix::fs::symlink(&target, dir.join(LOG_FILE)).unwrap();
        assert!(Writer::open(options(&dir, 1 << 20, 2)).is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");

        let fresh = tmp.path().join("fresh");
        let (log, handle) = Log::start(options(&fresh, 1 << 20, 2), Arc::new(Metrics::new())).unwrap();
        log.append("{}\n".into());
        drop(log);
        handle.join().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&fresh), 0o700);
        assert_eq!(mode(&fresh.join(LOG_FILE)), 0o600);
        assert_eq!(std::fs::read_to_string(fresh.join(LOG_FILE)).unwrap(), "{}\n");
    }
}
