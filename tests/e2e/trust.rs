//! End-to-end tests of what gourd trusts: nothing it reads back from
//! `.gourd/` (cache objects, action results, state files, evaluated
//! pipelines) is used unchecked, digests tell every file name apart, and
//! private outputs stay private in the cache and when restored.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use common::{TestWorkspace, expect, files_under};

#[test]
fn status_does_not_call_a_corrupt_cache_object_restorable() {
    let ws = TestWorkspace::new(
        r#"{ stages = { s = { cmd = "echo s >> runs.log && echo precious > out.txt", outs = ["out.txt"] } } }"#,
    );
    ws.gourd(&["run"]).success();
    let objects = files_under(&ws.path(".gourd/cache-v1/objects"));
    assert_eq!(objects.len(), 1);
    std::fs::set_permissions(&objects[0], std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(&objects[0], "rotten!\n").unwrap(); // same size
    ws.remove("out.txt");

    let status = ws.gourd(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let stage = &status["stages"][0];
    assert_eq!(stage["state"], "stale", "{status}");
    assert_eq!(stage["restorable"], false, "{status}");
    let reasons = stage["reasons"].to_string();
    assert!(reasons.contains("cache object of out `out.txt` is corrupt"), "{reasons}");
    assert!(!objects[0].exists(), "the corrupt object was removed");

    assert_eq!(ws.run_json(&[]).success().statuses()["s"], "ran");
    assert_eq!(ws.read("out.txt"), "precious\n");
}

#[test]
fn an_edited_stat_cache_is_not_believed() {
    let ws = TestWorkspace::new(
        r#"{ stages = { s = { cmd = "echo s >> runs.log && cp in.txt out.txt", deps = ["in.txt"], outs = ["out.txt"] } } }"#,
    );
    let old = std::time::SystemTime::now() - Duration::from_secs(3600);
    let set_old_mtime =
        || std::fs::File::options().write(true).open(ws.path("in.txt")).unwrap().set_modified(old).unwrap();
    ws.write("in.txt", "before\n");
    set_old_mtime();
    ws.gourd(&["run"]).success();

    // Same size, same mtime; then the stat cache is edited to claim that
    // the file's new stat data goes with its old digest.
    ws.write("in.txt", "after!\n");
    set_old_mtime();
    let cache = ws.path(".gourd/state-v1/stat-cache.json");
    let text = std::fs::read_to_string(&cache).unwrap();
    let (seal, body) = text.split_once('\n').unwrap();
    let mut forged: serde_json::Value = serde_json::from_str(body).unwrap();
    let (path, entry) =
        forged["entries"].as_object_mut().unwrap().iter_mut().find(|(p, _)| p.ends_with("/in.txt")).unwrap();
    let meta = std::fs::metadata(path).unwrap();
    use std::os::unix::fs::MetadataExt;
    entry["size"] = meta.len().into();
    entry["mtime_ns"] = (meta.mtime() * 1_000_000_000 + meta.mtime_nsec()).into();
    entry["ctime_ns"] = (meta.ctime() * 1_000_000_000 + meta.ctime_nsec()).into();
    entry["inode"] = meta.ino().into();
    std::fs::write(&cache, format!("{seal}\n{forged}")).unwrap();

    let run = ws.run_json(&[]).success();
    assert_eq!(run.statuses()["s"], "ran", "the forged entry hid the change");
    assert_eq!(ws.read("out.txt"), "after!\n");
}

#[test]
fn a_file_name_that_is_not_utf8_is_refused_by_its_path() {
    let ws = TestWorkspace::new(
        r#"{ stages = { s = { cmd = "mkdir -p out && echo 1 > \"out/caf$(printf '\\351')\"", outs = ["out"] } } }"#,
    );
    let run = ws.gourd(&["run"]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("out/caf\\xe9` has a file name that is not valid UTF-8"), "{}", run.stderr);
    assert!(files_under(&ws.path(".gourd/cache-v1/actions")).is_empty(), "nothing was recorded");
}

#[test]
fn private_outputs_stay_private_in_the_cache_and_when_restored() {
    let ws = TestWorkspace::new(
        r#"{ stages = { s = {
      cmd = "echo s >> runs.log && (umask 077 && echo token > token.txt) && mkdir -p keys && echo k > keys/id && chmod 600 keys/id && echo pub > keys/id.pub && cp -L link-to-secret copied.txt",
      deps = ["link-to-secret"],
      outs = ["token.txt", "keys", "copied.txt"],
    } } }"#,
    );
    ws.write("secret.txt", "from a private file\n");
    std::fs::set_permissions(ws.path("secret.txt"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink("secret.txt", ws.path("link-to-secret")).unwrap();
    ws.gourd(&["run"]).success();
    let mode = |rel: &str| std::fs::metadata(ws.path(rel)).unwrap().permissions().mode() & 0o777;

    // Every object holding a private file's bytes is owner-only.
    let objects: Vec<_> = files_under(&ws.path(".gourd/cache-v1/objects"));
    let private_bytes: Vec<&[u8]> = vec![b"token\n", b"k\n", b"from a private file\n"];
    for object in &objects {
        let bytes = std::fs::read(object).unwrap();
        let object_mode = std::fs::metadata(object).unwrap().permissions().mode() & 0o777;
        let expected = if private_bytes.contains(&bytes.as_slice()) { 0o400 } else { 0o444 };
        assert_eq!(object_mode, expected, "{}: {:?}", object.display(), String::from_utf8_lossy(&bytes));
    }
    assert_eq!(objects.len(), 4);
    assert_eq!(mode(".gourd/logs") & 0o077, 0, "logs are the owner's");

    for out in ["token.txt", "keys", "copied.txt"] {
        ws.remove(out);
    }
    ws.clear_executions();
    assert_eq!(ws.run_json(&[]).success().statuses(), expect(&[("s", "restored")]));
    assert!(ws.executions().is_empty());
    assert_eq!(mode("token.txt"), 0o600);
    assert_eq!(mode("keys/id"), 0o600);
    assert_eq!(mode("keys/id.pub"), 0o644);
    assert_eq!(mode("copied.txt"), 0o600);
    assert_eq!(ws.read("copied.txt"), "from a private file\n");
    assert_eq!(ws.run_json(&[]).success().statuses(), expect(&[("s", "up-to-date")]));
}

#[test]
fn the_files_of_a_folder_closed_to_others_are_private_in_the_cache_and_when_restored() {
    let ws = TestWorkspace::new(
        r#"{ stages = { s = {
      cmd = "echo s >> runs.log && mkdir -m 700 vault && mkdir vault/inner && echo TOPSECRET > vault/f && echo deeper > vault/inner/g",
      outs = ["vault"],
    } } }"#,
    );
    ws.gourd(&["run"]).success();
    // The files' own modes are 0644: the closed folder is what keeps them.
    let mode = |rel: &str| std::fs::metadata(ws.path(rel)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("vault/f"), 0o644);
    let objects = files_under(&ws.path(".gourd/cache-v1/objects"));
    assert_eq!(objects.len(), 2);
    for object in &objects {
        let object_mode = std::fs::metadata(object).unwrap().permissions().mode() & 0o777;
        assert_eq!(object_mode, 0o400, "{}", object.display());
    }
    ws.remove("vault");
    ws.clear_executions();
    assert_eq!(ws.run_json(&[]).success().statuses(), expect(&[("s", "restored")]));
    assert!(ws.executions().is_empty());
    assert_eq!(ws.read("vault/f"), "TOPSECRET\n");
    assert_eq!((mode("vault/f"), mode("vault/inner/g")), (0o600, 0o600));
    // Closed again: nobody else lists the names of what it holds.
    assert_eq!((mode("vault") & 0o077, mode("vault/inner") & 0o077), (0, 0));
    assert_eq!(ws.run_json(&[]).success().statuses(), expect(&[("s", "up-to-date")]));
}

#[test]
fn a_folder_holding_files_others_may_read_comes_back_open_to_them() {
    let ws = TestWorkspace::new(
        r#"{ stages = { s = {
      cmd = "echo s >> runs.log && mkdir -p out/keys && echo pub > out/keys/id.pub && echo secret > out/keys/id && chmod 600 out/keys/id",
      outs = ["out"],
    } } }"#,
    );
    ws.gourd(&["run"]).success();
    ws.remove("out");
    assert_eq!(ws.run_json(&[]).success().statuses(), expect(&[("s", "restored")]));
    let mode = |rel: &str| std::fs::metadata(ws.path(rel)).unwrap().permissions().mode() & 0o777;
    assert_eq!((mode("out") & 0o055, mode("out/keys") & 0o055), (0o055, 0o055));
    assert_eq!((mode("out/keys/id"), mode("out/keys/id.pub")), (0o600, 0o644));
    assert_eq!(ws.run_json(&[]).success().statuses(), expect(&[("s", "up-to-date")]));
}

#[test]
fn names_holding_newlines_are_cached_and_restored_exactly() {
    let ws = TestWorkspace::new(
        r#"{ stages = { s = { cmd = "echo s >> runs.log && mkdir -p out && printf 1 > 'out/a\nf - x b' && printf 2 > out/a", outs = ["out"] } } }"#,
    );
    ws.gourd(&["run"]).success();
    ws.remove("out");
    ws.clear_executions();
    assert_eq!(ws.run_json(&[]).success().statuses(), expect(&[("s", "restored")]));
    assert_eq!(ws.read("out/a\nf - x b"), "1");
    assert_eq!(ws.read("out/a"), "2");
    assert_eq!(ws.run_json(&[]).success().statuses(), expect(&[("s", "up-to-date")]));
}

/// The one entry of the evaluation cache.
fn eval_entry(ws: &TestWorkspace) -> PathBuf {
    let entries = files_under(&ws.path(".gourd/state-v1/eval"));
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries.into_iter().next().unwrap()
}

#[test]
fn an_edited_evaluation_cache_entry_is_not_used() {
    let ws = TestWorkspace::new(
        r#"{ stages = { s = { cmd = "echo s >> runs.log && echo real > out.txt", outs = ["out.txt"] } } }"#,
    );
    ws.gourd(&["run"]).success();
    let entry = eval_entry(&ws);
    let text = std::fs::read_to_string(&entry).unwrap();
    assert!(text.contains("echo real"), "{text}");
    std::fs::write(&entry, text.replace("echo real", "echo fake")).unwrap();

    let run = ws.run_json(&[]).success();
    assert_eq!(run.statuses(), expect(&[("s", "up-to-date")]), "the pipeline was evaluated again");
    assert_eq!(ws.read("out.txt"), "real\n");
    assert!(std::fs::read_to_string(&entry).unwrap().contains("echo real"), "the entry was rewritten");
}

#[test]
fn imports_are_tracked_however_they_are_written() {
    let ws = TestWorkspace::new(
        r#"let imported = import # the stages live apart
  "stages.ncl" in
let message = import "m\u{73}g.txt" as 'Text in
{ stages = imported & { s.cmd = "echo s >> runs.log && echo '%{message}' > out.txt" } }"#,
    );
    ws.write("stages.ncl", r#"{ s = { cmd | default = "unused", outs = ["out.txt"] } }"#);
    ws.write("msg.txt", "one");
    ws.gourd(&["run"]).success();
    assert_eq!(ws.read("out.txt"), "one\n");

    ws.write("msg.txt", "two");
    assert_eq!(ws.run_json(&[]).success().statuses(), expect(&[("s", "ran")]));
    assert_eq!(ws.read("out.txt"), "two\n");

    ws.write("stages.ncl", r#"{ s = { cmd | default = "unused", outs = ["out.txt"], params = { v = 2 } } }"#);
    assert_eq!(ws.run_json(&[]).success().statuses(), expect(&[("s", "ran")]), "an edit two lines past `import`");
    assert_eq!(ws.run_json(&[]).success().statuses(), expect(&[("s", "up-to-date")]));
}

#[test]
fn a_restore_under_a_closed_umask_settles() {
    let ws = TestWorkspace::new(
        "{ stages = { a = { cmd = \"mkdir -p d; echo x > d/f; echo a >> runs.log\", outs = [\"d\"] } } }\n",
    );
    ws.gourd(&["run"]).success();
    ws.remove("d");
    // The restore runs under umask 077 (a user who keeps their files closed).
    let under_umask = |args: &str| {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("umask 077 && exec \"$0\" {args}"))
            .arg(common::gourd_bin())
            .current_dir(ws.root())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(under_umask("run").contains("restored a"));
    for _ in 0..2 {
        let again = under_umask("run");
        assert!(again.contains("up-to-date a"), "{again}");
    }
    assert!(!ws.exists(".gourd-displaced"));
    assert_eq!(ws.read("runs.log"), "a\n");
}
