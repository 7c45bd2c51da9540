//! Evaluation in a child process, against a stand-in for `gourd __eval`: a
//! shell script that exits, fails, crashes or hangs as told, so that each
//! way a child can end is turned into the right result. (The real
//! evaluator's limits are tested end to end in tests/e2e/errors.rs.)

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gourd_spec::{EvalLimits, SpecError};

struct Fake {
    dir: tempfile::TempDir,
}

impl Fake {
    fn new() -> Fake {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("gourd.ncl"), "{ stages = {} }\n").unwrap();
        Fake { dir }
    }

    /// Loads the pipeline with an evaluator running `script` (`$@` holds
    /// `__eval FILE STDLIB [--checked]`; each call appends its arguments to
    /// `calls`).
    fn load(&self, script: &str, limits: &EvalLimits) -> Result<gourd_core::model::Pipeline, SpecError> {
        let exe = self.dir.path().join("fake-eval");
        let calls = self.dir.path().join("calls");
        std::fs::write(&exe, format!("#!/bin/sh\necho \"$*\" >> '{}'\n{script}\n", calls.display())).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        gourd_spec::load(&exe, &self.file(), self.dir.path(), None, limits, false)
    }

    fn file(&self) -> PathBuf {
        self.dir.path().join("gourd.ncl")
    }

    /// Whether each call was the checked evaluation.
    fn calls(&self) -> Vec<bool> {
        let text = std::fs::read_to_string(self.dir.path().join("calls")).unwrap_or_default();
        text.lines().map(|l| l.ends_with("--checked")).collect()
    }
}

fn limits() -> EvalLimits {
    EvalLimits { timeout: Duration::from_secs(20), memory: 256 << 20 }
}

/// The reason of a crash, or a panic naming what came instead.
fn crash(result: Result<gourd_core::model::Pipeline, SpecError>, file: &Path) -> String {
    match result {
        Err(SpecError::Crashed { file: f, reason }) => {
            assert_eq!(f, file);
            reason
        }
        other => panic!("expected a crash, got {other:?}"),
    }
}

#[test]
fn an_export_is_validated_and_an_invalid_one_evaluated_again_with_the_contract() {
    let fake = Fake::new();
    // The read files (none known), then the export.
    let pipeline = fake.load("printf 'null\\n{\"stages\": {}}'", &limits()).unwrap();
    assert!(pipeline.stages.is_empty());
    assert_eq!(fake.calls(), [false], "one fast evaluation");

    let fake = Fake::new();
    let result = fake.load("printf 'null\\n{\"stages\": 3}'", &limits());
    assert!(matches!(result, Err(SpecError::Invalid { .. })), "{result:?}");
    assert_eq!(fake.calls(), [false, true], "then one with the Pipeline contract");
}

#[test]
fn nickel_errors_are_diagnostics_and_other_deaths_are_crashes() {
    let fake = Fake::new();
    let result = fake.load("echo 'error: unbound identifier `x`' >&2; exit 1", &limits());
    match result {
        Err(SpecError::Nickel { diagnostics, .. }) => assert_eq!(diagnostics.trim(), "error: unbound identifier `x`"),
        other => panic!("expected Nickel's diagnostics, got {other:?}"),
    }
    assert_eq!(fake.calls(), [false, true], "the diagnostics come from the checked evaluation");

    let cases = [
        // Exit 1 with nothing said is not a diagnostic.
        ("exit 1", "exit code 1; no message"),
        ("exit 7", "exit code 7; no message"),
        ("printf 'first\\nlast words\\n\\n  \\n' >&2; exit 7", "exit code 7; last words"),
        (
            "echo 'memory allocation of 4096 bytes failed' >&2; exit 3",
            "exit code 3; out of memory: it used more than 256 MiB",
        ),
        (
            "echo 'fatal runtime error: out of memory' >&2; exit 3",
            "exit code 3; out of memory: it used more than 256 MiB",
        ),
        (
            "echo \"thread 'main' has overflowed its stack\" >&2; kill -ABRT $$",
            "killed by signal 6; stack overflow: the pipeline nests too deep or recurses without end",
        ),
        ("kill -KILL $$", "killed by signal 9; no message"),
    ];
    for (script, reason) in cases {
        let fake = Fake::new();
        assert_eq!(crash(fake.load(script, &limits()), &fake.file()), reason, "{script}");
        assert_eq!(fake.calls(), [false], "{script}: a crash is not evaluated again");
    }
}

#[test]
fn the_memory_limit_applies_to_the_evaluator() {
    let fake = Fake::new();
    // `ulimit -v` prints the address-space limit in KiB.
    let reason = crash(fake.load("ulimit -v >&2; exit 9", &limits()), &fake.file());
    assert_eq!(reason, format!("exit code 9; {}", 256 * 1024));
}

#[test]
fn an_evaluation_past_the_time_limit_is_stopped() {
    let fake = Fake::new();
    let started = Instant::now();
    let result = fake.load("exec sleep 30", &EvalLimits { timeout: Duration::from_secs(1), memory: 256 << 20 });
    let took = started.elapsed();
    match result {
        Err(SpecError::TimedOut { file, seconds }) => assert_eq!((file, seconds), (fake.file(), 1)),
        other => panic!("expected a time-out, got {other:?}"),
    }
    assert!(took >= Duration::from_secs(1) && took < Duration::from_secs(10), "stopped after {took:?}");
}

#[test]
fn limits_come_from_the_environment() {
    // The only test in this binary that reads these variables.
    let set = |timeout: Option<&str>, memory: Option<&str>| {
        for (name, value) in [("GOURD_EVAL_TIMEOUT", timeout), ("GOURD_EVAL_MEMORY_MB", memory)] {
            // SAFETY: no other thread of this test binary reads these variables.
            unsafe {
                match value {
                    Some(v) => std::env::set_var(name, v),
                    None => std::env::remove_var(name),
                }
            }
        }
        let limits = EvalLimits::from_env();
        (limits.timeout.as_secs(), limits.memory)
    };
    assert_eq!(set(None, None), (60, 4096 << 20), "the defaults");
    assert_eq!(set(Some("5"), Some("256")), (5, 256 << 20));
    assert_eq!(set(Some(" 7 "), Some("1")), (7, 1 << 20));
    // Zero, negative or not a number: the default.
    assert_eq!(set(Some("0"), Some("0")), (60, 4096 << 20));
    assert_eq!(set(Some("-3"), Some("lots")), (60, 4096 << 20));
    set(None, None);
}
