//! A pipeline never harms what it does not own: outputs that would replace
//! the repository, the cache, the pipeline file or anything outside the
//! workspace are refused before anything runs, and again right before gourd
//! deletes or restores them. A stage whose deps change under it is not
//! cached. A run killed with SIGKILL leaves neither running processes, nor
//! wrong results, nor lost lineage behind.

mod common;

use common::{TestWorkspace, alive, files_under, wait_until};

/// `gourd run` is refused as a user error, before anything runs, and so is
/// `gourd check`; returns the normalised message.
fn refused(ws: &TestWorkspace) -> String {
    let run = ws.gourd(&["run"]);
    assert_eq!(run.code, 1, "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    assert!(!ws.exists("runs.log"), "a stage executed");
    let check = ws.gourd(&["check"]);
    assert_eq!(check.code, 1, "`gourd check` accepts it: {}", check.stdout);
    run.normalized(ws)
}

#[test]
fn an_output_named_git_is_refused_and_the_repository_survives() {
    let ws = TestWorkspace::new(
        "{\n  stages = {\n    a = {\n      cmd = \"echo a >> runs.log; mkdir .git\",\n      outs = [\".git\"],\n    },\n  },\n}\n",
    );
    ws.git(&["add", "gourd.ncl"]);
    ws.git(&["commit", "-qm", "pipeline"]);
    insta::assert_snapshot!(refused(&ws));
    assert_eq!(ws.git(&["log", "--format=%s"]).trim(), "pipeline");
}

#[test]
fn outputs_inside_git_or_the_cache_are_refused() {
    for out in [".git/hooks/pre-commit", "sub/.git", ".gourd/cache-v1", "./.gourd"] {
        let ws = TestWorkspace::new(&format!(
            "{{ stages = {{ a = {{ cmd = \"echo a >> runs.log\", outs = [\"{out}\"] }} }} }}\n"
        ));
        let message = refused(&ws);
        assert!(message.contains("which gourd never writes to"), "{out}: {message}");
        assert!(message.contains("field `outs`"), "{out}: {message}");
    }
}

#[test]
fn the_pipeline_file_and_its_imports_are_not_outputs() {
    let ws = TestWorkspace::new(
        "{\n  stages = {\n    a = {\n      cmd = \"echo a >> runs.log; exit 1\",\n      outs = [\"gourd.ncl\"],\n    },\n  },\n}\n",
    );
    let before = ws.read("gourd.ncl");
    insta::assert_snapshot!(refused(&ws));
    assert_eq!(ws.read("gourd.ncl"), before);

    let ws = TestWorkspace::new(
        "let p = import \"conf/params.ncl\" in\n{\n  stages = {\n    a = { cmd = \"echo a >> runs.log\", metrics = [\"conf\"] },\n  },\n}\n",
    );
    ws.write("conf/params.ncl", "{ lr = 1 }");
    let message = refused(&ws);
    assert!(message.contains("conf/params.ncl"), "{message}");
    assert!(message.contains("field `metrics`"), "{message}");
    assert!(message.contains(":4`"), "names the line: {message}");
    assert_eq!(ws.read("conf/params.ncl"), "{ lr = 1 }");

    // However the import is spelled: the files the evaluation read count.
    let ws = TestWorkspace::new(
        "let p = import # the params\n  \"conf/../conf/params.ncl\" in\n{ stages = { a = { cmd = \"echo a >> runs.log\", outs = [\"conf/params.ncl\"] } } }\n",
    );
    ws.write("conf/params.ncl", "{ lr = 1 }");
    let message = refused(&ws);
    assert!(message.contains("is a file the pipeline is read from"), "{message}");
    assert_eq!(ws.read("conf/params.ncl"), "{ lr = 1 }");
}

#[test]
fn a_symbolic_link_out_of_the_workspace_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("victim"), "precious").unwrap();
    let ws =
        TestWorkspace::new("{ stages = { a = { cmd = \"echo a >> runs.log; exit 1\", outs = [\"away/victim\"] } } }\n");
    std::os::unix::fs::symlink(outside.path(), ws.path("away")).unwrap();
    let message = refused(&ws);
    assert!(message.contains("symbolic link `away`"), "{message}");
    assert_eq!(std::fs::read_to_string(outside.path().join("victim")).unwrap(), "precious");

    // A link into `.git` would plant hooks: refused as well.
    let ws =
        TestWorkspace::new("{ stages = { a = { cmd = \"echo a >> runs.log\", outs = [\"hooks/pre-commit\"] } } }\n");
    std::os::unix::fs::symlink(ws.path(".git/hooks"), ws.path("hooks")).unwrap();
    let message = refused(&ws);
    assert!(message.contains("where gourd never writes"), "{message}");
}

/// While the pipeline is evaluated, gourd hashes ahead the files its
/// source names in plain strings (docs/running.md). A string that reaches
/// through a folder link must not lead it anywhere: `/proc/self/pagemap`
/// reads for hundreds of gigabytes, and `.git` is git's. The command ends,
/// and nothing there is read.
#[test]
fn strings_reaching_through_folder_links_are_not_read_ahead() {
    let ws = TestWorkspace::new(
        "let unused = [\"p/self/pagemap\", \"g/config\"] in\n\
         { stages = { a = { cmd = \"cat data/x.txt > out.txt\", deps = [\"data/x.txt\"], outs = [\"out.txt\"] } } }\n",
    );
    ws.write("data/x.txt", "x");
    std::os::unix::fs::symlink("/proc", ws.path("p")).unwrap();
    std::os::unix::fs::symlink(".git", ws.path("g")).unwrap();
    let mut child = ws.command(&["status"]).stdout(std::process::Stdio::null()).spawn().unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > std::time::Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(status.is_some_and(|s| s.success()), "`gourd status`: {status:?} (None: still running after 60 s)");
    let cache = std::fs::read_to_string(ws.path(".gourd/state-v1/stat-cache.json")).unwrap_or_default();
    assert!(!cache.contains("pagemap") && !cache.contains("config"), "{cache}");
}

#[test]
fn a_link_planted_by_an_earlier_stage_is_refused_at_run_time() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("victim"), "precious").unwrap();
    let pipeline = format!(
        r#"{{
  stages = {{
    plant = {{ cmd = "ln -s '{}' sneaky && echo done > marker", outs = ["marker"] }},
    harm = {{ cmd = "echo harm >> runs.log; echo evil > sneaky/victim", deps = ["marker"], outs = ["sneaky/victim"] }},
  }},
}}
"#,
        outside.path().display()
    );
    let ws = TestWorkspace::new(&pipeline);
    let run = ws.run_json(&[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.statuses()["harm"], "failed");
    assert!(run.stdout.contains("refusing to write"), "{}", run.stdout);
    assert!(!ws.exists("runs.log"), "the stage ran");
    assert_eq!(std::fs::read_to_string(outside.path().join("victim")).unwrap(), "precious");
}

#[test]
fn a_dep_changed_while_its_stage_ran_is_not_cached() {
    // The stage edits its own input after reading it: the outputs were made
    // from content that no longer exists.
    let ws = TestWorkspace::new(
        r#"{ stages = { a = { cmd = "echo a >> runs.log; cp in.txt out.txt; echo more >> in.txt", deps = ["in.txt"], outs = ["out.txt"] } } }"#,
    );
    ws.write("in.txt", "one\n");
    let run = ws.run_json(&[]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert_eq!(run.statuses()["a"], "failed");
    assert!(run.stdout.contains("dep `in.txt` changed while the stage ran"), "{}", run.stdout);
    assert!(files_under(&ws.path(".gourd/cache-v1/actions")).is_empty(), "a result was cached");
    // Nothing was cached, so the next run executes again.
    ws.clear_executions();
    ws.write(
        "gourd.ncl",
        r#"{ stages = { a = { cmd = "echo a >> runs.log; cp in.txt out.txt", deps = ["in.txt"], outs = ["out.txt"] } } }"#,
    );
    ws.gourd(&["run"]).success();
    assert_eq!(ws.executions(), ["a"]);
    assert_eq!(ws.read("out.txt"), ws.read("in.txt"));
}

#[test]
fn lineage_of_stages_finished_before_a_sigkill_is_recorded_by_the_next_run() {
    // `b` kills gourd itself with SIGKILL once `a` has finished.
    let ws = TestWorkspace::new(
        r#"{ stages = {
  a = { cmd = "echo a > a.txt", outs = ["a.txt"] },
  b = { cmd = "test -e armed && kill -9 $PPID; cp a.txt b.txt", deps = ["a.txt"], outs = ["b.txt"] },
} }"#,
    );
    ws.write("armed", "");
    let run = ws.gourd(&["run", "-j1"]);
    assert_eq!(run.code, 137, "gourd was killed: {} {}", run.stdout, run.stderr);
    assert!(ws.exists("a.txt"));
    ws.remove("armed");
    let run = ws.gourd(&["run"]).success();
    assert!(run.stderr.contains("recorded the lineage of 1 stage(s)"), "{}", run.stderr);
    let lineage = ws.gourd(&["lineage", "a.txt", "--json"]).success();
    let record: serde_json::Value = serde_json::from_str(&lineage.stdout).unwrap();
    assert_eq!(record["record"]["stage"], "a", "{}", lineage.stdout);
    // Only once: a third run has nothing left to recover.
    let run = ws.gourd(&["run"]).success();
    assert!(!run.stderr.contains("recorded the lineage"), "{}", run.stderr);
}

#[test]
fn processes_left_by_a_killed_run_are_stopped_before_the_next_one() {
    // The stage starts a writer in a session of its own (so its process
    // group is not the stage's), then kills gourd with SIGKILL.
    let ws = TestWorkspace::new(
        r#"{ stages = {
  a = { cmd = "setsid sh -c 'echo $$ > writer.pid; while true; do echo x >> out.txt; sleep 0.05; done' & while ! test -s writer.pid; do sleep 0.01; done; test -e armed && kill -9 $PPID; echo done > out.txt", outs = ["out.txt"] },
} }"#,
    );
    ws.write("armed", "");
    let run = ws.gourd(&["run"]);
    assert_eq!(run.code, 137, "gourd was killed: {} {}", run.stdout, run.stderr);
    let pid: i32 = ws.read("writer.pid").trim().parse().unwrap();
    assert!(alive(pid), "the writer outlived gourd, as it would without the next run's sweep");
    ws.remove("armed");
    ws.remove("writer.pid");
    let run = ws.gourd(&["run"]);
    assert!(run.stderr.contains("process(es) left running by an earlier `gourd run`"), "{}", run.stderr);
    wait_until("the writer is gone", || !alive(pid));
    // This run's own writer, in a session of its own, is stopped when the
    // run ends.
    let new_pid: i32 = ws.read("writer.pid").trim().parse().unwrap();
    assert_ne!(new_pid, pid);
    wait_until("this run's writer is gone", || !alive(new_pid));
}

/// About 20 stages: fans of generators whose grandchildren write parts of
/// folders and large files (one part late, after a pause), merges over
/// them, and a final report.
fn kill_test_pipeline() -> String {
    let mut stages = Vec::new();
    for i in 0..8 {
        stages.push(format!(
            r#"gen{i} = {{ cmd = "mkdir -p gen/{i} && (seq {i} 3 300000 > gen/{i}/big) & (sleep 0.0{i}; seq 1 {i}000 > gen/{i}/small; sleep 0.05; echo late-{i} >> gen/{i}/small) & wait", deps = ["src/seed{i}"], outs = ["gen/{i}"] }}"#
        ));
    }
    for i in 0..8 {
        let j = (i + 1) % 8;
        stages.push(format!(
            r#"mix{i} = {{ cmd = "mkdir -p mix && cat gen/{i}/small gen/{j}/big | sort > mix/{i}.txt", deps = ["gen/{i}", "gen/{j}"], outs = ["mix/{i}.txt"] }}"#
        ));
    }
    for half in 0..2 {
        let files: Vec<String> = (half * 4..half * 4 + 4).map(|i| format!("mix/{i}.txt")).collect();
        let deps: Vec<String> = files.iter().map(|f| format!("\"{f}\"")).collect();
        stages.push(format!(
            r#"half{half} = {{ cmd = "mkdir -p half && cat {} | wc -l > half/{half}.txt && sleep 0.02", deps = [{}], outs = ["half/{half}.txt"] }}"#,
            files.join(" "),
            deps.join(", ")
        ));
    }
    stages.push(
        r#"report = { cmd = "cat half/0.txt half/1.txt > report.txt", deps = ["half/0.txt", "half/1.txt"], outs = ["report.txt"] }"#
            .to_string(),
    );
    format!("{{ stages = {{\n  {}\n}} }}\n", stages.join(",\n  "))
}

/// Every output of [`kill_test_pipeline`], with the stage that makes it.
fn kill_test_outputs() -> Vec<(String, String)> {
    let mut outputs = Vec::new();
    for i in 0..8 {
        outputs.push((format!("gen/{i}"), format!("gen{i}")));
        outputs.push((format!("mix/{i}.txt"), format!("mix{i}")));
    }
    outputs.push(("half/0.txt".into(), "half0".into()));
    outputs.push(("half/1.txt".into(), "half1".into()));
    outputs.push(("report.txt".into(), "report".into()));
    outputs
}

fn kill_test_workspace() -> TestWorkspace {
    let ws = TestWorkspace::new(&kill_test_pipeline());
    for i in 0..8 {
        ws.write(&format!("src/seed{i}"), &format!("seed {i}\n"));
    }
    ws
}

/// The length and a fingerprint of a file, or of every file under a
/// folder, by relative path.
fn snapshot_of(path: &std::path::Path) -> Vec<(String, usize, u64)> {
    use std::hash::{Hash, Hasher};
    let summary = |file: &std::path::Path| {
        let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        bytes.hash(&mut hasher);
        (bytes.len(), hasher.finish())
    };
    let mut files: Vec<(String, usize, u64)> = if path.is_dir() {
        files_under(path)
            .into_iter()
            .map(|f| {
                let (len, hash) = summary(&f);
                (f.strip_prefix(path).unwrap().display().to_string(), len, hash)
            })
            .collect()
    } else {
        let (len, hash) = summary(path);
        vec![(String::new(), len, hash)]
    };
    files.sort();
    files
}

#[test]
fn sigkill_at_random_moments_never_leaves_a_wrong_result() {
    let clean = kill_test_workspace();
    let started = std::time::Instant::now();
    clean.gourd(&["run", "-j2"]).success();
    let clean_run = started.elapsed();

    let ws = kill_test_workspace();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let window = clean_run.as_millis().max(50) as u64;
    for round in 0..25 {
        // Now and then an input changes or outputs go, so that re-runs and
        // restores are interrupted too, not only first runs.
        if round % 5 == 4 {
            let i = next() % 8;
            ws.write(&format!("src/seed{i}"), &format!("seed {i} round {round}\n"));
            clean.write(&format!("src/seed{i}"), &format!("seed {i} round {round}\n"));
        }
        if round % 7 == 6 {
            let _ = std::fs::remove_dir_all(ws.path("gen"));
        }
        let mut child = ws
            .command(&["run", "-j2"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(next() % window));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    clean.gourd(&["run", "-j2"]).success();
    let run = ws.gourd(&["run", "-j2"]).success();
    assert!(run.stdout.contains("0 failed"), "{}", run.stdout);
    // A second run finds everything up to date: nothing was left half-made.
    let again = ws.run_json(&[]).success();
    assert!(again.statuses().values().all(|s| s == "up-to-date"), "{:?}", again.statuses());

    for (path, stage) in kill_test_outputs() {
        assert_eq!(snapshot_of(&ws.path(&path)), snapshot_of(&clean.path(&path)), "`{path}` differs from a clean run");
        let lineage = ws.gourd(&["lineage", &path, "--json"]).success();
        let record: serde_json::Value = serde_json::from_str(&lineage.stdout).unwrap();
        assert_eq!(record["record"]["stage"], stage.as_str(), "lineage of `{path}`: {}", lineage.stdout);
    }
    // No temporary file of gourd's is left among the outputs.
    for file in files_under(ws.root()) {
        let name = file.display().to_string();
        assert!(!name.contains(".gourd-tmp") || name.contains("/.gourd/"), "left behind: {name}");
    }
}

#[test]
fn a_missing_wdir_is_named_rather_than_blaming_sh() {
    let ws =
        TestWorkspace::new(r#"{ stages = { a = { cmd = "echo a >> runs.log", wdir = "nowhere", outs = ["x"] } } }"#);
    let run = ws.gourd(&["run"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(!ws.exists("runs.log"));
    let line = run.stderr.lines().find(|l| l.contains("failed")).unwrap_or_default().to_string();
    assert!(line.contains("its `wdir` `nowhere` is not a folder in the workspace"), "{}", run.stderr);
    assert!(!run.stderr.contains("cannot start `sh`"), "{}", run.stderr);
}

/// The folders under `.gourd-displaced` (one per `gourd run` that moved
/// something aside).
fn displaced(ws: &TestWorkspace) -> Vec<std::path::PathBuf> {
    match std::fs::read_dir(ws.path(".gourd-displaced")) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn what_a_first_run_finds_at_its_outputs_is_moved_aside_not_deleted() {
    let ws = TestWorkspace::new(
        "{ stages = { a = { cmd = \"echo a >> runs.log; mkdir -p data models; echo o > data/out; echo m > models/m\", outs = [\"data\", \"models\"] } } }\n",
    );
    // A tracked file, an untracked one and a nested repository, all where
    // the stage's outputs go, before it ever ran.
    ws.write("data/raw", "raw\n");
    ws.git(&["add", "data/raw"]);
    ws.git(&["commit", "-qm", "data"]);
    ws.write("data/untracked", "mine\n");
    ws.write("models/bert/weights", "w\n");
    ws.git(&["-C", "models/bert", "init", "-q"]);

    let run = ws.gourd(&["run"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("moved `data` aside to `.gourd-displaced/"), "{}", run.stdout);
    let status = ws.git(&["status", "--porcelain", "--untracked-files=all"]);
    assert!(!status.contains(".gourd-displaced"), "what was moved aside is not listed by git: {status}");
    assert_eq!(ws.read("data/out"), "o\n");
    let [aside] = &displaced(&ws)[..] else { panic!("one folder: {:?}", displaced(&ws)) };
    assert_eq!(std::fs::read_to_string(aside.join("data/raw")).unwrap(), "raw\n");
    assert_eq!(std::fs::read_to_string(aside.join("data/untracked")).unwrap(), "mine\n");
    assert_eq!(std::fs::read_to_string(aside.join("models/bert/weights")).unwrap(), "w\n");
    assert!(aside.join("models/bert/.git/HEAD").is_file(), "the nested repository is kept whole");

    // What gourd wrote itself is replaced without a copy: a forced run
    // moves nothing aside.
    let again = ws.gourd(&["run", "--force", "a"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(!again.stdout.contains("moved"), "{}", again.stdout);
    assert_eq!(displaced(&ws).len(), 1);
}

#[test]
fn a_hand_edited_output_is_moved_aside_before_a_restore_or_a_run_replaces_it() {
    let ws = TestWorkspace::new(
        "let n = 1 in { stages = { a = { cmd = \"echo a >> runs.log; echo %{std.to_string n} > out.txt\", outs = [\"out.txt\"] } } }\n",
    );
    assert_eq!(ws.gourd(&["run"]).code, 0);
    ws.write("out.txt", "edited by hand\n");
    // The key is the same: the cached result is restored over the edit.
    let restore = ws.gourd(&["run"]);
    assert!(restore.stdout.contains("restored a: moved `out.txt` aside"), "{}", restore.stdout);
    assert_eq!(ws.read("out.txt"), "1\n");
    // The key changed: the stage runs over it.
    ws.write("out.txt", "edited again\n");
    ws.write("gourd.ncl", &ws.read("gourd.ncl").replace("n = 1", "n = 2"));
    let run = ws.gourd(&["run"]);
    assert!(
        run.stdout.contains("ran a") && run.stdout.contains("it was not what gourd last wrote there"),
        "{}",
        run.stdout
    );
    assert_eq!(ws.read("out.txt"), "2\n");
    let mut kept: Vec<String> =
        displaced(&ws).iter().map(|aside| std::fs::read_to_string(aside.join("out.txt")).unwrap()).collect();
    kept.sort();
    assert_eq!(kept, ["edited again\n", "edited by hand\n"]);
}

#[test]
fn what_a_failed_run_left_is_the_stages_own_and_is_not_kept() {
    let ws = TestWorkspace::new(
        "{ stages = { a = { cmd = \"echo a >> runs.log; echo partial > out.txt; test -f ok\", outs = [\"out.txt\"] } } }\n",
    );
    for _ in 0..2 {
        assert_eq!(ws.gourd(&["run"]).code, 1);
    }
    ws.write("ok", "");
    assert_eq!(ws.gourd(&["run"]).code, 0);
    assert_eq!(ws.read("runs.log"), "a\na\na\n");
    assert!(displaced(&ws).is_empty(), "{:?}", displaced(&ws));
}

#[test]
fn deps_on_gourds_own_folders_and_outputs_it_writes_itself_are_refused() {
    for dep in [".", ".gourd", ".gourd/logs", ".git", "sub/.git/HEAD"] {
        let ws = TestWorkspace::new(&format!(
            "{{ stages = {{ a = {{ cmd = \"echo a >> runs.log\", deps = [\"{dep}\"], outs = [\"x\"] }} }} }}\n"
        ));
        let message = refused(&ws);
        assert!(message.contains("field `deps`") && message.contains("would never settle"), "{dep}: {message}");
    }
    // gourd keeps its ignore block in `.gitignore`.
    let ws = TestWorkspace::new("{ stages = { a = { cmd = \"echo a >> runs.log\", outs = [\".gitignore\"] } } }\n");
    ws.write(".gitignore", "secret.env\n");
    let message = refused(&ws);
    assert!(message.contains("`.gitignore` is where gourd keeps its ignore block"), "{message}");
    assert_eq!(ws.read(".gitignore"), "secret.env\n");
    // A newline in a path would be a line of its own in that block.
    let ws = TestWorkspace::new("{ stages = { a = { cmd = \"echo a >> runs.log\", outs = [\"o\\nsrc\"] } } }\n");
    let message = refused(&ws);
    assert!(message.contains("holds a control character"), "{message}");
    assert!(!ws.exists(".gitignore") || !ws.read(".gitignore").lines().any(|l| l == "src"));
}

#[test]
fn a_dep_that_is_a_pipe_or_a_device_is_named_instead_of_read_forever() {
    let ws =
        TestWorkspace::new("{ stages = { a = { cmd = \"echo a >> runs.log\", deps = [\"z\"], outs = [\"x\"] } } }\n");
    std::os::unix::fs::symlink("/dev/zero", ws.path("z")).unwrap();
    let run = ws.gourd(&["run"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("z` is a character device"), "{}", run.stderr);
    let status = ws.gourd(&["status"]);
    assert_eq!(status.code, 1, "{}", status.stderr);
    assert!(status.stderr.contains("z` is a character device"), "{}", status.stderr);

    std::fs::remove_file(ws.path("z")).unwrap();
    let fifo = std::ffi::CString::new(ws.path("z").into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let run = ws.gourd(&["run"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("z` is a named pipe"), "{}", run.stderr);
    assert!(!ws.exists("runs.log"));
}

#[test]
fn a_link_planted_at_a_stages_log_is_replaced_not_written_through() {
    let ws = TestWorkspace::new("{ stages = { s = { cmd = \"echo hello; echo s >> runs.log\" } } }\n");
    assert_eq!(ws.gourd(&["run"]).code, 0);
    let victim = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(victim.path(), "precious\n").unwrap();
    std::fs::remove_file(ws.path(".gourd/logs/s.log")).unwrap();
    std::os::unix::fs::symlink(victim.path(), ws.path(".gourd/logs/s.log")).unwrap();
    let run = ws.gourd(&["run", "--force", "s"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(victim.path()).unwrap(), "precious\n");
    let log = ws.path(".gourd/logs/s.log");
    assert!(!std::fs::symlink_metadata(&log).unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "hello\n");
}

#[test]
fn the_repositorys_own_folder_under_another_name_is_refused_as_an_output() {
    let ws = TestWorkspace::bare();
    let git_dir = ws.path("repo.git");
    ws.git(&["init", "-q", "--separate-git-dir", git_dir.to_str().unwrap()]);
    ws.git(&["-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "first"]);
    for out in ["repo.git", "repo.git/x"] {
        ws.write(
            "gourd.ncl",
            &format!(
                "{{ stages = {{ a = {{ cmd = \"echo a >> runs.log; mkdir -p repo.git\", outs = [\"{out}\"] }} }} }}\n"
            ),
        );
        let message = refused(&ws);
        assert!(message.contains("the folder git keeps this repository in"), "{out}: {message}");
    }
    assert_eq!(ws.git(&["log", "--format=%s"]).trim(), "first");
    // Through a link an earlier stage of the run plants: refused when the
    // later stage comes to run, before its output is moved aside.
    ws.write(
        "gourd.ncl",
        "{ stages = {\n  a = { cmd = \"ln -sfn repo.git P; echo a > a.txt\", outs = [\"a.txt\"] },\n  b = { cmd = \"echo b >> runs.log; exit 1\", deps = [\"a.txt\"], outs = [\"P/config\"] },\n} }\n",
    );
    let run = ws.run_json(&[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stdout.contains("refusing to write: `P/config` is, holds or lies in `repo.git`"), "{}", run.stdout);
    assert!(!ws.exists("runs.log"), "the stage ran");
    assert!(git_dir.join("config").exists(), "the repository's config is in place");
    assert_eq!(ws.git(&["log", "--format=%s"]).trim(), "first");
}

#[test]
fn a_pipeline_above_the_repository_or_owned_by_someone_else_is_not_run() {
    let shared = TestWorkspace::bare();
    shared.write("gourd.ncl", "{ stages = { evil = { cmd = \"echo evil >> runs.log\" } } }\n");
    // A project of ours, without a pipeline, in a folder below it.
    std::fs::create_dir_all(shared.path("proj/sub")).unwrap();
    let git = std::process::Command::new("git").args(["init", "-q"]).current_dir(shared.path("proj")).status();
    assert!(git.unwrap().success());
    let run = std::process::Command::new(common::gourd_bin())
        .arg("run")
        .current_dir(shared.path("proj/sub"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("or a parent folder up to its repository's root"), "{stderr}");
    assert!(!shared.exists("runs.log"));

    // Outside any repository the search goes on up, but a file someone
    // else owns is not run (a shared folder like /tmp).
    // SAFETY: geteuid has no failure mode.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: cannot give the pipeline file to another user here");
        return;
    }
    std::fs::create_dir_all(shared.path("other")).unwrap();
    std::os::unix::fs::chown(shared.path("gourd.ncl"), Some(65534), None).unwrap();
    let run =
        std::process::Command::new(common::gourd_bin()).arg("run").current_dir(shared.path("other")).output().unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("belongs to another user (uid 65534)"), "{stderr}");
    assert!(!shared.exists("runs.log"));
    // Named on purpose, it runs.
    let run = std::process::Command::new(common::gourd_bin())
        .args(["-C", "..", "run"])
        .current_dir(shared.path("other"))
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(shared.read("runs.log"), "evil\n");
}

#[test]
fn two_names_for_one_output_through_a_link_in_the_workspace_are_refused() {
    let ws = TestWorkspace::new(
        "{ stages = {\n  a = { cmd = \"echo A > x/y; echo a >> runs.log\", outs = [\"x/y\"] },\n  b = { cmd = \"echo B > xl/y; echo b >> runs.log\", outs = [\"xl/y\"] },\n} }\n",
    );
    std::fs::create_dir(ws.path("x")).unwrap();
    std::os::unix::fs::symlink("x", ws.path("xl")).unwrap();
    let message = refused(&ws);
    assert!(
        message.contains("stage `b`: output `xl/y` is `x/y` through a symbolic link, and stage `a` writes `x/y`"),
        "{message}"
    );
    // Two links to one folder.
    std::os::unix::fs::symlink("x", ws.path("xm")).unwrap();
    ws.write("gourd.ncl", &ws.read("gourd.ncl").replace("x/y", "xm/y"));
    let message = refused(&ws);
    assert!(message.contains("is `x/y` through a symbolic link, and stage"), "{message}");
    ws.write("gourd.ncl", &ws.read("gourd.ncl").replace("xm/y", "x/y"));
    // One name each, the link leading elsewhere: fine.
    ws.write("gourd.ncl", &ws.read("gourd.ncl").replace("xl/y", "xl/z"));
    assert_eq!(ws.gourd(&["run"]).code, 0);
    assert_eq!(ws.read("x/z"), "B\n");
}

/// A link that stays inside the workspace is another name for the
/// pipeline's own files: `P/gourd.ncl` through `P -> .` is the pipeline
/// file, which a failing stage's first run moved aside.
#[test]
fn the_pipelines_files_through_a_link_in_the_workspace_are_refused() {
    let pipeline = "{ stages = { a = { cmd = \"echo a >> runs.log; exit 1\", outs = [\"P/gourd.ncl\"] } } }\n";
    let ws = TestWorkspace::new(pipeline);
    std::os::unix::fs::symlink(".", ws.path("P")).unwrap();
    let message = refused(&ws);
    assert!(
        message.contains(
            "gourd.ncl:1`: stage `a`: field `outs`: `P/gourd.ncl` is `gourd.ncl` through a symbolic link, and `gourd.ncl` is a file the pipeline is read from"
        ),
        "{message}"
    );
    assert_eq!(ws.read("gourd.ncl"), pipeline);
    // A file the pipeline imports, through a link to its folder.
    ws.write("cfg/p.ncl", "{ lr = 1 }\n");
    std::os::unix::fs::symlink("cfg", ws.path("C")).unwrap();
    let pipeline = "{ stages = { a = { cmd = \"echo a >> runs.log; exit 1\", outs = [\"C/p.ncl\"], params = import \"cfg/p.ncl\" } } }\n";
    ws.write("gourd.ncl", pipeline);
    let message = refused(&ws);
    assert!(message.contains("`C/p.ncl` is `cfg/p.ncl` through a symbolic link"), "{message}");
    assert_eq!(ws.read("cfg/p.ncl"), "{ lr = 1 }\n");
    // The link planted by an earlier stage of the same run: refused when
    // the stage comes to run, before anything is moved.
    std::fs::remove_file(ws.path("P")).unwrap();
    let pipeline = "{ stages = {\n  plant = { cmd = \"ln -s . P && echo done > marker\", outs = [\"marker\"] },\n  harm = { cmd = \"echo harm >> runs.log; exit 1\", deps = [\"marker\"], outs = [\"P/gourd.ncl\"] },\n} }\n";
    ws.write("gourd.ncl", pipeline);
    let run = ws.run_json(&[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.statuses()["harm"], "failed");
    assert!(
        run.stdout.contains("refusing to write: `P/gourd.ncl` is `gourd.ncl` through a symbolic link"),
        "{}",
        run.stdout
    );
    assert!(!ws.exists("runs.log"), "the stage ran");
    assert_eq!(ws.read("gourd.ncl"), pipeline);
    assert!(displaced(&ws).is_empty(), "{:?}", displaced(&ws));
}

#[test]
fn after_a_failed_run_only_what_it_left_is_removed() {
    let ws = TestWorkspace::new(
        "{ stages = { a = { cmd = \"echo a >> runs.log; mkdir -p data; echo partial > data/x; test -f ok\", outs = [\"data\"] } } }\n",
    );
    assert_eq!(ws.gourd(&["run"]).code, 1);
    // The user puts their own file where the failed run left its folder.
    ws.write("data/labels.csv", "precious\n");
    assert_eq!(ws.gourd(&["run"]).code, 1);
    let [aside] = &displaced(&ws)[..] else { panic!("one folder: {:?}", displaced(&ws)) };
    assert_eq!(std::fs::read_to_string(aside.join("data/labels.csv")).unwrap(), "precious\n");
    // This run's leftovers, untouched since, are its own: removed.
    ws.write("ok", "");
    let run = ws.gourd(&["run"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stdout.contains("aside"), "{}", run.stdout);
    assert_eq!(displaced(&ws).len(), 1);
}

#[test]
fn an_output_that_is_a_link_into_the_repository_is_refused() {
    // The stage makes the link itself; or it was there, and persists.
    for (cmd, persist) in [("ln -s .git gl", false), ("true", true)] {
        let ws = TestWorkspace::new(&format!(
            "{{ stages = {{ b = {{ cmd = \"{cmd}\", outs = [{{ path = \"gl\", persist = {persist} }}] }} }} }}\n"
        ));
        ws.git(&["remote", "add", "origin", "https://user:hunter2@example.com/r.git"]);
        if persist {
            std::os::unix::fs::symlink(".git", ws.path("gl")).unwrap();
        }
        let run = ws.gourd(&["run"]);
        assert_eq!(run.code, 1, "{cmd}: {}", run.stdout);
        assert!(run.stderr.contains("refusing to store out `gl`: `gl` is a symbolic link to"), "{cmd}: {}", run.stderr);
        let leaked = files_under(&ws.path(".gourd"))
            .iter()
            .any(|f| std::fs::read(f).unwrap_or_default().windows(7).any(|w| w == b"hunter2"));
        assert!(!leaked, "{cmd}: the repository's config reached the cache");
    }

    // The same with the repository's folder under another name.
    let ws = TestWorkspace::bare();
    let git_dir = ws.path("meta.git");
    ws.git(&["init", "-q", "--separate-git-dir", git_dir.to_str().unwrap()]);
    ws.write(
        "gourd.ncl",
        "{ stages = { b = { cmd = \"echo b >> runs.log\", outs = [{ path = \"rg\", persist = true }] } } }\n",
    );
    std::os::unix::fs::symlink("meta.git", ws.path("rg")).unwrap();
    let message = refused(&ws);
    assert!(message.contains("the folder git keeps this repository in"), "{message}");
}

#[test]
fn after_gourd_is_deleted_its_own_outputs_are_known_from_lineage_and_not_moved_aside() {
    let ws = TestWorkspace::new(
        "{ stages = { a = { cmd = \"echo a >> runs.log; mkdir -p d; echo x > d/f; echo y > o.txt\", outs = [\"d\", \"o.txt\"] } } }\n",
    );
    ws.git(&["add", "gourd.ncl"]);
    ws.git(&["commit", "-qm", "pipeline"]);
    ws.gourd(&["run"]).success();
    // `.gourd` is safe to delete: it costs a re-run, and nothing piles up.
    std::fs::remove_dir_all(ws.path(".gourd")).unwrap();
    let run = ws.gourd(&["run"]).success();
    assert!(!run.stdout.contains("aside"), "{}", run.stdout);
    assert!(!ws.exists(".gourd-displaced"));
    assert_eq!(ws.read("runs.log"), "a\na\n");
}

/// A dep that leads into `.git` or `.gourd`, or to the workspace, through a
/// link on the way or inside a folder it names, never settles (lineage is
/// written to `.git` by every run): refused, by `status` as by `run`, and
/// nothing runs.
#[test]
fn deps_that_lead_where_gourd_and_git_write_through_links_are_refused() {
    let ws =
        TestWorkspace::new(r#"{ stages = { s = { cmd = "echo hi > o.txt", deps = ["gl/refs"], outs = ["o.txt"] } } }"#);
    std::os::unix::fs::symlink(".git", ws.path("gl")).unwrap();
    for command in ["status", "run"] {
        let refused = ws.gourd(&[command]);
        assert_eq!(refused.code, 1, "{command}: {}", refused.stderr);
        assert!(
            refused.stderr.contains("stage `s` depends on `gl/refs`, which is in `.git` through a symbolic link"),
            "{command}: {}",
            refused.stderr
        );
    }
    // A folder holding such a link.
    std::fs::create_dir_all(ws.path("data")).unwrap();
    std::os::unix::fs::symlink("../.git", ws.path("data/gl")).unwrap();
    ws.write("gourd.ncl", r#"{ stages = { s = { cmd = "echo hi > o.txt", deps = ["data"], outs = ["o.txt"] } } }"#);
    let refused = ws.gourd(&["run"]);
    assert_ne!(refused.code, 0, "{}", refused.stderr);
    assert!(refused.stderr.contains("data/gl` is `.git`, reached through a symbolic link"), "{}", refused.stderr);
    assert!(!ws.exists("o.txt"), "nothing ran");
}

/// A dep that reaches another stage's output through a link in the
/// workspace has no edge to that stage (the graph orders stages by the
/// paths they name): `b` would run before `a`, or keep a result built from
/// `a`'s old output. Refused, before and after the output exists (by
/// `status` once the link leads somewhere: it resolves folders only), and
/// the path to name instead is given.
#[test]
fn a_dep_that_reaches_an_output_through_a_link_is_refused() {
    let ws = TestWorkspace::new(
        r#"{ stages = { a = { cmd = "mkdir -p d; echo v1 > d/g", outs = ["d"] }, b = { cmd = "cat e/g > o", deps = ["e/g"], outs = ["o"] } } }"#,
    );
    std::os::unix::fs::symlink("d", ws.path("e")).unwrap();
    for (round, commands) in [("before `d` exists", &["run"][..]), ("after", &["run", "status"])] {
        for &command in commands {
            let refused = ws.gourd(&[command]);
            assert_eq!(refused.code, 1, "{round}, {command}: {}", refused.stderr);
            assert!(
                refused.stderr.contains(
                    "stage `b` depends on `e/g`, which is `d/g` through a symbolic link, written by stage `a`"
                ),
                "{round}, {command}: {}",
                refused.stderr
            );
            assert!(refused.stderr.contains("hint: name `d/g` in `deps` instead"), "{}", refused.stderr);
        }
        assert!(!ws.exists("o"), "nothing ran");
        ws.write("d/g", "v0");
    }
}

/// The other way round: an output named through a link, and a dep on where
/// it really is. No edge would order the two stages.
#[test]
fn an_output_named_through_a_link_and_read_by_its_real_name_is_refused() {
    let ws = TestWorkspace::new(
        r#"{ stages = { a = { cmd = "echo v1 > inl/o", outs = ["inl/o"] }, b = { cmd = "cat real/o > b", deps = ["real/o"], outs = ["b"] } } }"#,
    );
    std::fs::create_dir_all(ws.path("real")).unwrap();
    std::os::unix::fs::symlink("real", ws.path("inl")).unwrap();
    for command in ["check", "run"] {
        let refused = ws.gourd(&[command]);
        assert_eq!(refused.code, 1, "{command}: {}", refused.stderr);
        assert!(
            refused.stderr.contains(
                "stage `a`: output `inl/o` is `real/o` through a symbolic link, and stage `b` depends on `real/o`"
            ),
            "{command}: {}",
            refused.stderr
        );
    }
    assert!(!ws.exists("b") && !ws.exists("real/o"), "nothing ran");
}
