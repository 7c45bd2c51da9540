//! `cache.link`: how outputs are restored from the cache (docs/cache.md),
//! against the real binary.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use common::{TestWorkspace, files_under};

/// One stage writing a folder (a plain file, an executable one, a private
/// one, a nested one) and a single file, with `cache` set as given.
fn workspace(cache: &str) -> TestWorkspace {
    TestWorkspace::new(&format!(
        r#"{{
  {cache}
  stages = {{
    s = {{
      cmd = "echo s >> runs.log && mkdir -p out/nested && echo precious > out/data.txt && echo deep > out/nested/x.txt && printf '#!/bin/sh\necho hi\n' > out/tool.sh && chmod 755 out/tool.sh && echo secret > out/key.pem && chmod 600 out/key.pem && echo model > model.bin",
      outs = ["out", "model.bin"],
    }},
  }},
}}
"#
    ))
}

const FILES: [&str; 5] = ["out/data.txt", "out/nested/x.txt", "out/tool.sh", "out/key.pem", "model.bin"];

fn mode(ws: &TestWorkspace, rel: &str) -> u32 {
    std::fs::metadata(ws.path(rel)).unwrap().permissions().mode() & 0o777
}

fn object_inodes(ws: &TestWorkspace) -> Vec<u64> {
    files_under(&ws.path(".gourd/cache-v1/objects")).iter().map(|p| std::fs::metadata(p).unwrap().ino()).collect()
}

/// Runs, deletes the outputs, runs again: the outputs come back restored,
/// not executed, byte for byte, and the next status and run find them up to
/// date. Returns the contents and modes the stage first wrote.
fn restore_round_trip(ws: &TestWorkspace) -> Vec<(String, u32)> {
    ws.gourd(&["run"]).success();
    let written: Vec<(String, u32)> = FILES.iter().map(|f| (ws.read(f), mode(ws, f))).collect();
    ws.remove("out");
    ws.remove("model.bin");
    let run = ws.run_json(&[]).success();
    assert_eq!(run.statuses()["s"], "restored", "{}", run.stdout);
    assert_eq!(ws.executions(), vec!["s"], "executed once");
    for (file, (content, _)) in FILES.iter().zip(&written) {
        assert_eq!(&ws.read(file), content, "`{file}` restored with other bytes");
    }
    ws.gourd(&["status", "--exit-code"]).success();
    assert_eq!(ws.run_json(&[]).success().statuses()["s"], "up-to-date");
    written
}

#[test]
fn copy_restores_files_of_their_own() {
    let ws = workspace("cache = { link = 'copy },");
    let written = restore_round_trip(&ws);
    let objects = object_inodes(&ws);
    for (file, (_, mode_written)) in FILES.iter().zip(&written) {
        let meta = std::fs::metadata(ws.path(file)).unwrap();
        assert_eq!(meta.nlink(), 1, "`{file}` has another name");
        assert!(!objects.contains(&meta.ino()), "`{file}` is a cache object");
        assert_eq!(mode(&ws, file), *mode_written, "`{file}`");
    }
}

#[test]
fn hardlink_restores_read_only_links_to_the_cache_objects() {
    let ws = workspace("cache = { link = 'hardlink },");
    restore_round_trip(&ws);
    let objects = object_inodes(&ws);
    for file in ["out/data.txt", "out/nested/x.txt", "model.bin"] {
        let meta = std::fs::metadata(ws.path(file)).unwrap();
        assert!(objects.contains(&meta.ino()), "`{file}` is not a link to its cache object");
        assert_eq!(meta.nlink(), 2, "`{file}`");
        assert_eq!(mode(&ws, file), 0o444, "`{file}` is not read-only");
    }
    // A private file stays private: the link is to an owner-only object.
    let key = std::fs::metadata(ws.path("out/key.pem")).unwrap();
    assert!(objects.contains(&key.ino()));
    assert_eq!(mode(&ws, "out/key.pem"), 0o400);
    // An executable file is copied: the object is not executable.
    let tool = std::fs::metadata(ws.path("out/tool.sh")).unwrap();
    assert_eq!(tool.nlink(), 1);
    assert_eq!(mode(&ws, "out/tool.sh"), 0o755);
    assert!(!ws.path("out/tool.sh").symlink_metadata().unwrap().file_type().is_symlink());
}

#[test]
fn hardlink_restores_persisted_outputs_by_copy() {
    let ws = TestWorkspace::new(
        r#"{ cache = { link = 'hardlink }, stages = { s = { cmd = "echo s >> runs.log && echo line >> log.txt", outs = [{ path = "log.txt", persist = true }] } } }"#,
    );
    ws.gourd(&["run"]).success();
    ws.remove("log.txt");
    assert_eq!(ws.run_json(&[]).success().statuses()["s"], "restored");
    let meta = std::fs::metadata(ws.path("log.txt")).unwrap();
    assert_eq!(meta.nlink(), 1, "a persisted output is written to again: never a link");
    assert!(!object_inodes(&ws).contains(&meta.ino()));
}

#[test]
fn reflink_restores_clones_or_fails_clearly_keeping_the_result() {
    let ws = workspace("cache = { link = 'reflink },");
    // Whether this file system clones files, asked of coreutils.
    std::fs::write(ws.path("probe"), "probe").unwrap();
    let clones = std::process::Command::new("cp")
        .args(["--reflink=always", "probe", "probe.clone"])
        .current_dir(ws.root())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
        .success();
    if clones {
        restore_round_trip(&ws);
        let objects = object_inodes(&ws);
        for file in FILES {
            assert!(!objects.contains(&std::fs::metadata(ws.path(file)).unwrap().ino()), "`{file}`");
        }
        return;
    }
    ws.gourd(&["run"]).success();
    ws.remove("model.bin");
    let run = ws.run_json(&[]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.statuses()["s"], "failed");
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(all.contains("`cache.link` is 'reflink"), "{all}");
    assert!(all.contains("model.bin"), "{all}");
    assert!(!ws.exists("model.bin"));
    assert_eq!(ws.executions(), vec!["s"], "the stage did not run again");
    // The result was kept: with copies allowed it is restored, not run.
    ws.write("gourd.ncl", &ws.read("gourd.ncl").replace("'reflink", "'copy"));
    assert_eq!(ws.run_json(&[]).success().statuses()["s"], "restored");
    assert_eq!(ws.read("model.bin"), "model\n");
    assert_eq!(ws.executions(), vec!["s"]);
}

#[test]
fn a_bad_link_is_an_error_naming_the_field() {
    let ws = TestWorkspace::new("{\n  cache = { link = 'symlink },\n  stages = {},\n}\n");
    let run = ws.gourd(&["check"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("link"), "{}", run.stderr);
    assert!(run.stderr.contains("gourd.ncl:2"), "{}", run.stderr);

    ws.write("gourd.ncl", "{\n  cache = { links = 'copy },\n  stages = {},\n}\n");
    let run = ws.gourd(&["check"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("no field `links`"), "{}", run.stderr);
    assert!(run.stderr.contains("link"), "{}", run.stderr);
}

/// A user who makes a hard-linked output writable and writes to it writes
/// to the cache object: the next run finds the object's bytes do not match
/// its digest, drops it and runs the stage, and never restores the edit.
#[test]
fn a_write_through_a_hard_link_is_caught_by_the_cache_check() {
    use std::io::Write;
    let ws = workspace("cache = { link = 'hardlink },");
    restore_round_trip(&ws);
    let path = ws.path("out/data.txt");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().write_all(b"EDITED").unwrap();

    ws.clear_executions();
    let run = ws.run_json(&[]).success();
    assert_eq!(run.statuses()["s"], "ran", "{}", run.stdout);
    assert_eq!(ws.executions(), vec!["s"]);
    assert_eq!(ws.read("out/data.txt"), "precious\n");

    // The cache holds the right bytes again, and restores them.
    ws.remove("out");
    ws.clear_executions();
    assert_eq!(ws.run_json(&[]).success().statuses()["s"], "restored");
    assert_eq!(ws.read("out/data.txt"), "precious\n");
    assert!(ws.executions().is_empty());
}

/// `gourd gc` removes objects that restored outputs still link to: the
/// outputs keep their bytes, and the results it keeps still restore.
#[test]
fn gc_works_with_hard_linked_outputs() {
    let pipeline = |word: &str| {
        format!(
            r#"{{ cache = {{ link = 'hardlink }}, stages = {{ s = {{ cmd = "echo s >> runs.log && echo {word} > model.bin", outs = ["model.bin"] }} }} }}"#
        )
    };
    let ws = TestWorkspace::new(&pipeline("one"));
    ws.gourd(&["run"]).success();
    ws.remove("model.bin");
    ws.gourd(&["run"]).success();
    assert_eq!(std::fs::metadata(ws.path("model.bin")).unwrap().nlink(), 2);

    ws.write("gourd.ncl", &pipeline("two"));
    ws.gourd(&["run"]).success();
    ws.remove("model.bin");
    ws.gourd(&["run"]).success();
    let gc = ws.gourd(&["gc"]).success();
    let said = format!("{}{}", gc.stdout, gc.stderr);
    assert!(said.contains("Removed 1 results, 1 objects"), "{said}");
    assert_eq!(object_inodes(&ws).len(), 1);
    assert_eq!(ws.read("model.bin"), "two\n");
    ws.remove("model.bin");
    ws.clear_executions();
    assert_eq!(ws.run_json(&[]).success().statuses()["s"], "restored");
    assert_eq!(ws.read("model.bin"), "two\n");
    assert!(ws.executions().is_empty());
}
