//! Repositories in temporary folders, driven with the `git` command.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use gourd_lineage::{Record, RunInfo};

/// Runs git in `dir`; its standard output, trimmed.
pub fn git(dir: &Path, args: &[&str]) -> String {
    git_env(dir, args, &[])
}

pub fn git_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new("git").args(args).current_dir(dir).envs(env.iter().copied()).output().unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A repository with one commit (`file` holding "one") on `main`.
pub fn repo() -> tempfile::TempDir {
    let dir = empty_repo();
    commit(dir.path(), "one");
    dir
}

/// A repository with no commit.
pub fn empty_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    git(dir.path(), &["init", "-q", "-b", "main"]);
    git(dir.path(), &["config", "user.email", "t@example.com"]);
    git(dir.path(), &["config", "user.name", "T"]);
    dir
}

/// Writes `what` to `file`, commits it; the new commit.
pub fn commit(dir: &Path, what: &str) -> String {
    std::fs::write(dir.join("file"), what).unwrap();
    git(dir, &["add", "file"]);
    git(dir, &["commit", "-q", "-m", what]);
    git(dir, &["rev-parse", "HEAD"])
}

pub fn record(stage: &str, key: &str, finished_at: &str) -> Record {
    Record {
        stage: stage.into(),
        key: key.into(),
        cmd: serde_json::json!({"shell": "true"}),
        deps: BTreeMap::from([("in".into(), "d1".into())]),
        outs: BTreeMap::from([("out".into(), "d2".into())]),
        out_kinds: BTreeMap::new(),
        params: serde_json::json!({}),
        metrics: BTreeMap::new(),
        env: BTreeMap::new(),
        executor: "local".into(),
        executed_by: None,
        started_at: "2026-11-30T12:00:00.000Z".into(),
        finished_at: finished_at.into(),
        duration_ms: 1,
        exit_code: 0,
        status: "ran".into(),
        workspace_commit: None,
        workspace_dirty: true,
        gourd_version: "0.1.0".into(),
        desc: None,
    }
}

pub fn run_info(stages: &[&str]) -> RunInfo {
    RunInfo {
        stages: stages.iter().map(|s| s.to_string()).collect(),
        recorded_at: "2026-11-30T12:00:00.000Z".into(),
        workspace_commit: None,
        workspace_dirty: true,
        gourd_version: "0.1.0".into(),
    }
}
