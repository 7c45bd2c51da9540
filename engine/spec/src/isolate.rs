//! Evaluation in a child process, under a time and a memory limit.

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gourd_core::model::Pipeline;

use crate::SpecError;
use crate::cache::EvalCache;

#[derive(Debug, Clone)]
pub struct EvalLimits {
    pub timeout: Duration,
    /// Address-space limit of the evaluator, in bytes.
    pub memory: u64,
}

impl EvalLimits {
    /// Limits from `GOURD_EVAL_TIMEOUT` (seconds, default 60) and
    /// `GOURD_EVAL_MEMORY_MB` (default 4096).
    pub fn from_env() -> EvalLimits {
        let number = |name: &str, default: u64| {
            std::env::var(name).ok().and_then(|v| v.trim().parse::<u64>().ok()).filter(|&v| v > 0).unwrap_or(default)
        };
        EvalLimits {
            timeout: Duration::from_secs(number("GOURD_EVAL_TIMEOUT", 60)),
            memory: number("GOURD_EVAL_MEMORY_MB", 4096) << 20,
        }
    }
}

/// Evaluates and validates `file` by running `exe __eval FILE STDLIB_DIR`,
/// or takes the evaluation from `cache_dir` when none of the files it read
/// changed.
pub fn load(
    exe: &Path,
    file: &Path,
    stdlib_dir: &Path,
    cache_dir: Option<&Path>,
    limits: &EvalLimits,
    color: bool,
) -> Result<Pipeline, SpecError> {
    load_with_sources(exe, file, stdlib_dir, cache_dir, limits, color).map(|(pipeline, _)| pipeline)
}

/// Like [`load`], and also the files the evaluation read (the pipeline file
/// and everything it imports, as absolute paths), when they are known.
pub fn load_with_sources(
    exe: &Path,
    file: &Path,
    stdlib_dir: &Path,
    cache_dir: Option<&Path>,
    limits: &EvalLimits,
    color: bool,
) -> Result<(Pipeline, Option<Vec<PathBuf>>), SpecError> {
    let existing = |read: &[crate::sources::Source]| {
        read.iter().filter(|source| source.digest.is_some()).map(|source| source.path.clone()).collect()
    };
    let cache = cache_dir.map(|dir| EvalCache::new(dir.to_path_buf()));
    let slot = crate::cache::slot(file, stdlib_dir);
    if let Some((json, read)) = cache.as_ref().and_then(|cache| cache.get(&slot)) {
        if let Ok(pipeline) = crate::validate(&json, file) {
            return Ok((pipeline, Some(existing(&read))));
        }
    }
    // The fast evaluation, validated in Rust. Anything wrong is evaluated
    // again with the `Pipeline` contract, for Nickel's diagnostics.
    let fast = evaluate_isolated(exe, file, stdlib_dir, limits, color, false);
    let (evaluation, pipeline) = match fast {
        Err(err @ (SpecError::Crashed { .. } | SpecError::TimedOut { .. } | SpecError::Io { .. })) => return Err(err),
        Ok(wire) => {
            let evaluation = crate::Evaluation::from_wire(&wire);
            match crate::validate(&evaluation.export, file) {
                Ok(pipeline) => (evaluation, pipeline),
                // Said better than the contract can: the user's line and the
                // nearest field, rather than a frame in the standard library.
                Err(err @ SpecError::UnknownField { .. }) => return Err(err),
                Err(_) => checked(exe, file, stdlib_dir, limits, color)?,
            }
        }
        Err(_) => checked(exe, file, stdlib_dir, limits, color)?,
    };
    if let (Some(cache), Some(read)) = (&cache, &evaluation.read) {
        cache.put(&slot, read, &evaluation.export);
    }
    Ok((pipeline, evaluation.read.as_deref().map(existing)))
}

/// Evaluates with the `Pipeline` contract applied and validates the result.
fn checked(
    exe: &Path,
    file: &Path,
    stdlib_dir: &Path,
    limits: &EvalLimits,
    color: bool,
) -> Result<(crate::Evaluation, Pipeline), SpecError> {
    let evaluation = crate::Evaluation::from_wire(&evaluate_isolated(exe, file, stdlib_dir, limits, color, true)?);
    let pipeline = crate::validate(&evaluation.export, file)?;
    Ok((evaluation, pipeline))
}

fn evaluate_isolated(
    exe: &Path,
    file: &Path,
    stdlib_dir: &Path,
    limits: &EvalLimits,
    color: bool,
    checked: bool,
) -> Result<String, SpecError> {
    let io_err = |source| SpecError::Io { file: file.to_path_buf(), source };
    let mut command = Command::new(exe);
    command.arg("__eval").arg(file).arg(stdlib_dir);
    if color {
        command.arg("--color");
    }
    if checked {
        command.arg("--checked");
    }
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let memory = limits.memory;
    // SAFETY: setrlimit is async-signal-safe and touches no memory of ours.
    unsafe {
        command.pre_exec(move || {
            let limit = libc::rlimit { rlim_cur: memory, rlim_max: memory };
            libc::setrlimit(libc::RLIMIT_AS, &limit);
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = command.spawn().map_err(io_err)?;
    // Read both pipes on threads so a large export cannot block the child.
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        stdout.read_to_end(&mut buf).map(|_| buf)
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        stderr.read_to_end(&mut buf).map(|_| buf)
    });

    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(io_err)? {
            break status;
        }
        if started.elapsed() > limits.timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Err(SpecError::TimedOut { file: file.to_path_buf(), seconds: limits.timeout.as_secs() });
        }
        std::thread::sleep(Duration::from_millis(2).max(started.elapsed() / 50).min(Duration::from_millis(50)));
    };
    let stdout = out_reader.join().expect("reader").map_err(io_err)?;
    let stderr = String::from_utf8_lossy(&err_reader.join().expect("reader").map_err(io_err)?).into_owned();

    match status.code() {
        Some(0) => Ok(String::from_utf8_lossy(&stdout).into_owned()),
        Some(1) if !stderr.trim().is_empty() => {
            let (diagnostics, hints) = crate::diagnose::explain(&stderr, file, stdlib_dir);
            Err(SpecError::Nickel { diagnostics, hints })
        }
        _ => Err(SpecError::Crashed { file: file.to_path_buf(), reason: crash_reason(status, &stderr, limits) }),
    }
}

fn crash_reason(status: std::process::ExitStatus, stderr: &str, limits: &EvalLimits) -> String {
    let detail = if stderr.contains("overflowed its stack") {
        "stack overflow: the pipeline nests too deep or recurses without end".to_string()
    } else if stderr.contains("memory allocation") || stderr.contains("out of memory") {
        format!("out of memory: it used more than {} MiB", limits.memory >> 20)
    } else {
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
        if last.is_empty() { "no message".to_string() } else { last.to_string() }
    };
    match status.signal() {
        Some(signal) => format!("killed by signal {signal}; {detail}"),
        None => format!("exit code {}; {detail}", status.code().unwrap_or(-1)),
    }
}
