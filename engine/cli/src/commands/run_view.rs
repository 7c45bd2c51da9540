//! What `gourd run` shows while it runs: a line per finished stage, and on a
//! terminal a live line with how many stages are done out of how many and
//! each running stage with its elapsed time. With `-v`, each executing
//! stage's output as it is written, each line prefixed with the stage's name
//! (plain lines when not a terminal, as in CI). The metrics the run
//! produced come before the summary line, which is the last.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Seek};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use gourd_core::run::{Event, Outcome, StageReport, Summary};
use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use serde_json::json;

use crate::ui::{self, Style};

// What a run prints, written without panicking: a reader that went away
// (`gourd run | head`) must not stop the run.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}
macro_rules! err {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr().lock(), $($arg)*);
    }};
}

/// How often followed logs are read.
const POLL: Duration = Duration::from_millis(100);
/// At most this much of a log is read per stage per poll.
const CHUNK: u64 = 1 << 20;

pub struct Printer {
    json: bool,
    root: PathBuf,
    gourd_dir: PathBuf,
    progress: Option<ProgressBar>,
    running: Arc<Mutex<Vec<(String, Instant)>>>,
    follower: Option<Follower>,
    /// Metrics files the run wrote or restored, by stage, in finishing order.
    metrics: Vec<(String, BTreeMap<String, serde_json::Value>)>,
}

impl Printer {
    /// `total`: the stages the run covers; `verbose`: stream stage output.
    pub fn new(json: bool, verbose: bool, root: PathBuf, gourd_dir: PathBuf, total: usize) -> Printer {
        let running: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
        let progress = (!json && std::io::stderr().is_terminal()).then(|| {
            let shown = running.clone();
            let style = ProgressStyle::with_template("{spinner} {pos}/{len} done {running}")
                .expect("valid template")
                .with_key("running", move |_: &ProgressState, out: &mut dyn std::fmt::Write| {
                    let running = shown.lock().unwrap();
                    let parts: Vec<String> = running
                        .iter()
                        .map(|(name, since)| format!("{name} {}", ui::duration_short(since.elapsed())))
                        .collect();
                    if !parts.is_empty() {
                        let _ = write!(out, "· running {}", parts.join(", "));
                    }
                });
            let bar = ProgressBar::new(total as u64).with_style(style);
            bar.enable_steady_tick(POLL);
            bar
        });
        let follower = (verbose && !json).then(|| Follower::start(progress.clone()));
        Printer { json, root, gourd_dir, progress, running, follower, metrics: Vec::new() }
    }

    pub fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Started { stage } => {
                self.running.lock().unwrap().push((stage.to_string(), Instant::now()));
                if let Some(follower) = &self.follower {
                    let log = self.gourd_dir.join("logs").join(format!("{stage}.log"));
                    follower.follow(stage, log);
                }
            }
            Event::Finished(report) => {
                self.running.lock().unwrap().retain(|(s, _)| s != &report.stage);
                if let Some(follower) = &self.follower {
                    follower.done(&report.stage);
                }
                if let Some(bar) = &self.progress {
                    bar.inc(1);
                }
                if matches!(report.outcome, Outcome::Ran | Outcome::Restored) {
                    if let Some(action) = report.action.as_ref().filter(|a| !a.metrics.is_empty()) {
                        self.metrics.push((report.stage.clone(), action.metrics.clone()));
                    }
                }
                let (line, log_tail) = self.render(report);
                // A failure is a diagnostic; every other line (and every
                // JSON event) is the run's data.
                let failed = !self.json && report.outcome == Outcome::Failed;
                match &self.progress {
                    Some(bar) => bar.suspend(|| emit(&line, log_tail.as_deref(), failed)),
                    None => emit(&line, log_tail.as_deref(), failed),
                }
            }
        }
    }

    fn render(&self, report: &StageReport) -> (String, Option<String>) {
        if self.json {
            let line = json!({
                "event": "stage",
                "stage": report.stage,
                "status": report.outcome.as_str(),
                "key": report.key.map(|k| k.to_string()),
                "duration_ms": report.duration.as_millis() as u64,
                "message": report.message,
                "executed_by": report.executed_by,
            });
            return (line.to_string(), None);
        }
        let style = match report.outcome {
            Outcome::Ran | Outcome::Restored => Style::Ok,
            Outcome::UpToDate => Style::Dim,
            Outcome::Failed => Style::Error,
            Outcome::Skipped => Style::Warn,
        };
        let word = ui::word(&format!("{:>10}", report.outcome.as_str()), style);
        let mut line = format!("{word} {}", report.stage);
        if matches!(report.outcome, Outcome::Ran) {
            line.push_str(&format!(" ({})", ui::duration(report.duration)));
        }
        if let Some(message) = &report.message {
            line.push_str(&format!(": {}", printable(message)));
        }
        let mut tail = None;
        if report.outcome == Outcome::Failed {
            if let Some(log) = &report.log {
                let shown = log.strip_prefix(&self.root).unwrap_or(log);
                line.push_str(&format!(" (log: `{}`)", shown.display()));
                // With -v the output was shown as it came.
                if self.follower.is_none() {
                    tail = log_tail(log, 10);
                }
            }
        }
        (line, tail)
    }

    pub fn finish(mut self, summary: &Summary, elapsed: Duration) {
        if let Some(follower) = self.follower.take() {
            follower.stop();
        }
        if let Some(bar) = &self.progress {
            bar.finish_and_clear();
        }
        if self.json {
            let mut line = json!({
                "event": "summary",
                "ran": summary.ran,
                "restored": summary.restored,
                "up_to_date": summary.up_to_date,
                "failed": summary.failed,
                "skipped": summary.skipped,
                "duration_ms": elapsed.as_millis() as u64,
            });
            if summary.interrupted {
                line["interrupted"] = json!(true);
            }
            if !self.metrics.is_empty() {
                let by_file: serde_json::Map<String, serde_json::Value> =
                    self.metrics.iter().flat_map(|(_, m)| m.clone()).collect();
                line["metrics"] = serde_json::Value::Object(by_file);
            }
            outln!("{line}");
            return;
        }
        if !self.metrics.is_empty() {
            outln!("Metrics:");
            for (stage, files) in &self.metrics {
                for (file, value) in files {
                    let mut leaves = Vec::new();
                    crate::table::flatten("", value, &mut leaves);
                    let scalars: Vec<String> = leaves
                        .iter()
                        .filter(|(_, v)| !v.is_array() && !v.is_object())
                        .map(|(name, v)| {
                            let name = if name.is_empty() { "value" } else { name.as_str() };
                            format!("{name} {}", crate::table::cell(Some(v)))
                        })
                        .collect();
                    if !scalars.is_empty() {
                        outln!("  {stage}  {file}  {}", printable(&scalars.join("  ")));
                    }
                }
            }
        }
        outln!(
            "{} ran, {} restored, {} up-to-date, {} failed, {} skipped in {}{}",
            summary.ran,
            summary.restored,
            summary.up_to_date,
            summary.failed,
            summary.skipped,
            ui::duration(elapsed),
            if summary.interrupted { " (interrupted)" } else { "" }
        );
    }
}

fn emit(line: &str, log_tail: Option<&str>, to_stderr: bool) {
    if to_stderr {
        errln!("{line}");
    } else {
        outln!("{line}");
    }
    if let Some(tail) = log_tail {
        err!("{tail}");
    }
}

/// Streams executing stages' logs, line by line, prefixed with the stage.
struct Follower {
    state: Arc<Mutex<Followed>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Followed {
    bar: Option<ProgressBar>,
    logs: BTreeMap<String, Log>,
}

struct Log {
    path: PathBuf,
    /// When the stage started: a log last changed before is the previous
    /// run's, not yet replaced.
    since: SystemTime,
    /// Where reading goes on; `None` until this run's log appears.
    offset: Option<u64>,
    partial: Vec<u8>,
}

impl Follower {
    fn start(bar: Option<ProgressBar>) -> Follower {
        let state = Arc::new(Mutex::new(Followed { bar, logs: BTreeMap::new() }));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(POLL);
                    let mut state = state.lock().unwrap();
                    let names: Vec<String> = state.logs.keys().cloned().collect();
                    for name in names {
                        state.pump(&name, false);
                    }
                }
            })
        };
        Follower { state, stop, thread: Some(thread) }
    }

    fn follow(&self, stage: &str, path: PathBuf) {
        // A little before now: file times are coarser than the clock.
        let since = SystemTime::now() - Duration::from_millis(20);
        let log = Log { path, since, offset: None, partial: Vec::new() };
        self.state.lock().unwrap().logs.insert(stage.to_string(), log);
    }

    /// The stage finished: what is left of its log is shown, then it is
    /// no longer followed.
    fn done(&self, stage: &str) {
        let mut state = self.state.lock().unwrap();
        state.pump(stage, true);
        state.logs.remove(stage);
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Followed {
    fn pump(&mut self, stage: &str, last: bool) {
        let Some(log) = self.logs.get_mut(stage) else { return };
        let Ok(meta) = std::fs::metadata(&log.path) else { return };
        if log.offset.is_none() {
            use std::os::unix::fs::MetadataExt;
            let changed = SystemTime::UNIX_EPOCH + Duration::new(meta.ctime().max(0) as u64, meta.ctime_nsec() as u32);
            if changed < log.since {
                return;
            }
            log.offset = Some(0);
        }
        let offset = log.offset.unwrap_or(0);
        if meta.len() < offset {
            // Replaced under us: start over.
            log.offset = Some(0);
            log.partial.clear();
        }
        let mut lines = Vec::new();
        loop {
            let offset = log.offset.unwrap_or(0);
            if meta.len() <= offset {
                break;
            }
            let Ok(mut file) = std::fs::File::open(&log.path) else { break };
            if file.seek(std::io::SeekFrom::Start(offset)).is_err() {
                break;
            }
            let mut chunk = Vec::new();
            let Ok(read) = file.take(CHUNK).read_to_end(&mut chunk) else { break };
            if read == 0 {
                break;
            }
            log.offset = Some(offset + read as u64);
            log.partial.extend_from_slice(&chunk);
            while let Some(end) = log.partial.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = log.partial.drain(..=end).collect();
                lines.push(line);
            }
            if !last {
                break;
            }
        }
        if last && !log.partial.is_empty() {
            lines.push(std::mem::take(&mut log.partial));
        }
        if lines.is_empty() {
            return;
        }
        let text: String = lines
            .iter()
            .map(|line| {
                let line = String::from_utf8_lossy(line);
                let line = line.trim_end_matches(['\n', '\r']);
                // A progress bar redraws its line after each `\r`.
                let shown = line.rsplit('\r').find(|part| !part.is_empty()).unwrap_or_default();
                format!("{} | {}\n", ui::word(stage, Style::Dim), printable(shown))
            })
            .collect();
        let print = || {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        };
        match &self.bar {
            Some(bar) => bar.suspend(print),
            None => print(),
        }
    }
}

/// The last `lines` lines of a stage's log, as a terminal can show them
/// safely: bytes that are not UTF-8 are replaced, and control characters are
/// escaped so that a stage's output cannot drive the terminal.
fn log_tail(log: &std::path::Path, lines: usize) -> Option<String> {
    let bytes = std::fs::read(log).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    if all.is_empty() {
        return None;
    }
    let start = all.len().saturating_sub(lines);
    let mut out = String::new();
    for line in &all[start..] {
        // A progress bar redraws its line after each `\r`: show what a
        // terminal would have been left showing.
        let shown = line.rsplit('\r').find(|part| !part.is_empty()).unwrap_or_default();
        out.push_str("  | ");
        out.push_str(&printable(shown));
        out.push('\n');
    }
    Some(out)
}

/// `text` with every control character but the tab written as an escape
/// (`\x1b`, `\u{9b}`), so that printing it cannot move the cursor, change
/// colours or retitle the terminal; and every bidirectional override or
/// isolate (`\u{202e}`), which would show the rest of a line reversed.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let hidden = |c: char| (c.is_control() && c != '\t') || is_bidi_control(c);
    if !text.chars().any(hidden) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            c if !hidden(c) => out.push(c),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.extend(c.escape_unicode()),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// The characters that reorder what follows them on screen: embeddings,
/// overrides and isolates, and the marks between them.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}
