//! A workspace's folders, paths and state: what `Workspace::open` makes,
//! where things go, and what reaches the disk when.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use gourd_core::path::WsPath;
use gourd_core::workspace::{LastRun, Workspace};
use gourd_digest::{DigestAlgorithm, Hasher};

#[test]
fn opening_makes_the_folders_private_where_they_may_hold_private_data() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("link");
    fs::create_dir(dir.path().join("real")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("real"), &link).unwrap();
    let ws = Workspace::open(&link).unwrap();
    let real = fs::canonicalize(dir.path().join("real")).unwrap();
    assert_eq!(ws.root, real);
    assert_eq!(ws.gourd_dir, real.join(".gourd"));
    for private in ["logs", "params", "steps", "state-v1"] {
        let mode = fs::metadata(ws.gourd_dir.join(private)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{private}");
    }
    assert!(ws.gourd_dir.join("cache-v1/objects").is_dir());
    assert_eq!(ws.algorithm(), DigestAlgorithm::Blake3);
    assert!(Workspace::open(&dir.path().join("missing")).is_err());
}

#[test]
fn paths_in_the_workspace() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::open(dir.path()).unwrap();
    assert_eq!(ws.abs(&WsPath::new("data/x.csv").unwrap()), ws.root.join("data/x.csv"));
    assert_eq!(ws.log_path("train"), ws.gourd_dir.join("logs/train.log"));

    let params = ws.params_path("{\"lr\": 1}");
    assert_eq!(params, ws.params_path("{\"lr\": 1}"));
    assert_ne!(params, ws.params_path("{\"lr\": 2}"));
    assert_eq!(params.parent().unwrap(), ws.gourd_dir.join("params"));
    let digest = Hasher::digest_bytes(DigestAlgorithm::Blake3, b"{\"lr\": 1}").to_string();
    assert_eq!(params.file_name().unwrap().to_str().unwrap(), format!("{}.json", &digest[..32]));
    let step = ws.step_config_path("{\"lr\": 1}");
    assert_eq!(step, ws.gourd_dir.join("steps").join(params.file_name().unwrap()));
}

#[test]
fn hashing_paths_and_deps() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::open(dir.path()).unwrap();
    fs::write(ws.root.join("a"), "same").unwrap();
    fs::write(ws.root.join("b"), "same").unwrap();
    fs::write(ws.root.join("c"), "other").unwrap();
    let path = |p: &str| WsPath::new(p).unwrap();
    let hash = |p: &str| ws.hash(&path(p)).unwrap().map(|t| t.digest());
    assert_eq!(hash("a"), hash("b"));
    assert_ne!(hash("a"), hash("c"));
    assert!(hash("a").is_some());
    assert_eq!(hash("missing"), None);

    let deps = ws.hash_deps(&[path("a"), path("c")]).unwrap().unwrap();
    assert_eq!(deps.len(), 2);
    assert_eq!(Some(deps[&path("c")]), hash("c"));
    let missing = ws.hash_deps(&[path("a"), path("gone"), path("also-gone")]).unwrap().unwrap_err();
    assert_eq!(missing, path("gone"));
}

#[test]
fn last_runs_reach_the_disk_when_saved_and_only_when_changed() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::open(dir.path()).unwrap();
    assert!(ws.last_run("train").is_none());
    let key = Hasher::digest_bytes(DigestAlgorithm::Blake3, b"key");
    let last = LastRun { key, status: "ran".into(), finished_at: "2026-01-01T00:00:00.000Z".into() };
    ws.record_last_run("train", last.clone());
    assert_eq!(ws.last_run("train"), Some(last.clone()));
    assert!(ws.last_run("eval").is_none());
    let other = Hasher::digest_bytes(DigestAlgorithm::Blake3, b"other");
    ws.record_last_run("another", LastRun { key: other, ..last.clone() });
    assert_eq!(ws.last_run_keys(), [other, key], "by name");
    assert!(Workspace::open(dir.path()).unwrap().last_run("train").is_none(), "not saved yet");
    ws.save_state().unwrap();
    assert_eq!(Workspace::open(dir.path()).unwrap().last_run("train"), Some(last.clone()));
    assert_eq!(Workspace::open(dir.path()).unwrap().last_run_keys(), [other, key]);

    // The same record again changes nothing: nothing is written.
    let file = ws.gourd_dir.join("state-v1/last-runs.json");
    fs::remove_file(&file).unwrap();
    ws.record_last_run("train", last.clone());
    ws.save_state().unwrap();
    assert!(!file.exists());
    // A different one is written.
    let newer = LastRun { status: "restored".into(), ..last };
    ws.record_last_run("train", newer.clone());
    ws.save_state().unwrap();
    assert_eq!(Workspace::open(dir.path()).unwrap().last_run("train"), Some(newer));

    // A damaged file reads as no runs.
    let mut bytes = fs::read(&file).unwrap();
    let last_byte = bytes.len() - 2;
    bytes[last_byte] ^= 1;
    fs::write(&file, bytes).unwrap();
    assert!(Workspace::open(dir.path()).unwrap().last_run("train").is_none());
}

#[test]
fn what_failed_runs_left_reaches_the_disk_when_saved_and_only_when_changed() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::open(dir.path()).unwrap();
    let file = ws.gourd_dir.join("state-v1/cleared.json");
    let left = Hasher::digest_bytes(DigestAlgorithm::Blake3, b"partial");
    ws.mark_cleared("train");
    assert!(ws.clearing("train"));
    ws.note_leftovers("train", [("model.bin".to_string(), Some(left))].into());
    assert!(!ws.clearing("train"), "noted: no longer under way");
    ws.save_state().unwrap();
    let again = Workspace::open(dir.path()).unwrap();
    assert_eq!(again.leftovers("train")["model.bin"], Some(left));

    // A run that marks and then succeeds leaves the note as read: nothing
    // is written.
    fs::remove_file(&file).unwrap();
    again.mark_cleared("eval");
    again.record_last_run("eval", LastRun { key: left, status: "ran".into(), finished_at: String::new() });
    again.save_state().unwrap();
    assert!(!file.exists());
    // Success of the stage that failed forgets what it left.
    again.record_last_run("train", LastRun { key: left, status: "ran".into(), finished_at: String::new() });
    again.save_state().unwrap();
    assert!(Workspace::open(dir.path()).unwrap().leftovers("train").is_empty());

    // A damaged file reads as nothing noted.
    ws.note_leftovers("train", [("model.bin".to_string(), Some(left))].into());
    ws.save_state().unwrap();
    let mut bytes = fs::read(&file).unwrap();
    let last_byte = bytes.len() - 2;
    bytes[last_byte] ^= 1;
    fs::write(&file, bytes).unwrap();
    assert!(Workspace::open(dir.path()).unwrap().leftovers("train").is_empty());
}
