//! A user's ordinary day: cleaning the cache (`gc` and its scopes), sharing
//! results through a folder, and the files gourd keeps in order for git.

mod common;

use common::{TestWorkspace, files_under};

/// One stage writing a model whose bytes depend on `seed`.
fn model_pipeline(seed: u32, remote: &str) -> String {
    format!(
        r#"{{
  {remote}
  stages = {{
    train = {{
      cmd = "echo train >> runs.log && head -c 200000 /dev/zero | tr '\\0' 'x' > model.bin && echo $GOURD_PARAMS >> model.bin",
      params = {{ seed = {seed} }},
      outs = [{{ path = "model.bin", kind = 'model }}],
    }},
  }},
}}
"#
    )
}

fn objects(ws: &TestWorkspace) -> usize {
    files_under(&ws.path(".gourd/cache-v1/objects")).len()
}

fn results(ws: &TestWorkspace) -> usize {
    files_under(&ws.path(".gourd/cache-v1/actions")).len()
}

/// Three commits, each with its own model, recorded in lineage.
fn three_models() -> TestWorkspace {
    let ws = TestWorkspace::new(&model_pipeline(1, ""));
    ws.write(".gitignore", ".gourd/\nruns.log\nmodel.bin\n");
    ws.git(&["add", "-A"]);
    ws.git(&["commit", "-qm", "seed 1"]);
    ws.gourd(&["run"]).success();
    ws.git(&["tag", "first"]);
    for seed in [2, 3] {
        ws.write("gourd.ncl", &model_pipeline(seed, ""));
        ws.git(&["commit", "-qam", &format!("seed {seed}")]);
        ws.gourd(&["run"]).success();
    }
    assert_eq!(results(&ws), 3);
    ws
}

#[test]
fn gc_in_a_git_repository_frees_what_the_workspace_no_longer_uses() {
    let ws = three_models();
    let dry = ws.gourd(&["gc", "--dry-run"]).success().stdout;
    assert!(dry.contains("Would remove 2 results"), "{dry}");
    assert_eq!(dry.matches("model.bin").count(), 2, "each result going is listed: {dry}");
    assert!(dry.contains("KiB"), "sizes are shown: {dry}");
    assert_eq!(results(&ws), 3, "a dry run removes nothing");

    let before = objects(&ws);
    let out = ws.gourd(&["gc"]).success().stdout;
    assert!(out.contains("Removed 2 results"), "{out}");
    assert_eq!(results(&ws), 1);
    assert_eq!(objects(&ws), before - 2, "{out}");
    // The workspace's result stays: nothing re-runs.
    ws.clear_executions();
    ws.gourd(&["run"]).success();
    assert!(ws.executions().is_empty());
    // An old state's result is gone: going back re-runs it.
    ws.git(&["checkout", "-q", "first", "--", "gourd.ncl"]);
    ws.gourd(&["run"]).success();
    assert_eq!(ws.executions(), ["train"]);
}

/// Back on a branch after running another: the stage below one that would
/// be restored has a known key, so `gc` keeps its result and `run` restores
/// it, as `run --dry-run` says it will.
#[test]
fn gc_after_switching_back_keeps_what_every_stage_of_the_workspace_would_restore() {
    let ws = TestWorkspace::new(
        r#"let p = import "p.json" in { stages = {
  a = { cmd = "echo $GOURD_PARAM_A > oa", params = { a = p.a }, outs = ["oa"] },
  b = { cmd = "cat oa > ob; echo trained >> ob", deps = ["oa"], outs = ["ob"] },
} }
"#,
    );
    ws.write(".gitignore", ".gourd/\noa\nob\n");
    ws.write("p.json", r#"{"a": 1}"#);
    ws.git(&["add", "-A"]);
    ws.git(&["commit", "-qm", "one"]);
    ws.gourd(&["run"]).success();
    ws.git(&["checkout", "-qb", "feature"]);
    ws.write("p.json", r#"{"a": 2}"#);
    ws.git(&["commit", "-qam", "two"]);
    ws.gourd(&["run"]).success();
    ws.git(&["checkout", "-q", "-"]);
    let dry = ws.gourd(&["run", "--dry-run"]).success().stdout;
    assert!(dry.contains("would-restore b"), "{dry}");
    assert!(dry.contains("0 would run, 2 would be restored"), "{dry}");
    let gc = ws.gourd(&["gc"]).success().stdout;
    // The feature branch's two stay too: they are the last runs here.
    assert!(gc.contains("Removed 0 results") && gc.contains("kept 4 results"), "{gc}");
    ws.clear_executions();
    let run = ws.gourd(&["run"]).success().stdout;
    assert!(run.contains("0 ran, 2 restored"), "{run}");
    assert!(ws.executions().is_empty(), "{:?}", ws.executions());
    assert_eq!(ws.read("ob"), "1\ntrained\n");
}

#[test]
fn gc_scopes_keep_branches_tags_commits_and_the_last_runs() {
    let ws = three_models();
    let going = |args: &[&str]| {
        let mut all = vec!["gc", "--dry-run"];
        all.extend_from_slice(args);
        let out = ws.gourd(&all).success().stdout;
        let n = out.split("Would remove ").nth(1).and_then(|s| s.split(' ').next()).unwrap().to_string();
        n.parse::<usize>().unwrap_or_else(|_| panic!("{out}"))
    };
    assert_eq!(going(&[]), 2);
    assert_eq!(going(&["--workspace"]), 2);
    assert_eq!(going(&["--all-tags"]), 1, "the tag `first` keeps seed 1");
    assert_eq!(going(&["--all-commits"]), 0);
    assert_eq!(going(&["--keep-last", "2"]), 1);
    assert_eq!(going(&["--keep-last", "3"]), 0);
    ws.git(&["branch", "old", "HEAD~1"]);
    assert_eq!(going(&["--all-branches"]), 1, "branch `old` keeps seed 2");
    assert_eq!(going(&["--all-branches", "--all-tags"]), 0);

    ws.gourd(&["gc", "--all-tags"]).success();
    ws.git(&["checkout", "-q", "first", "--", "gourd.ncl"]);
    ws.gourd(&["run"]).success();
    assert!(ws.executions().len() == 3, "seed 1 was kept, so restored: {:?}", ws.executions());
}

/// A tracked source is raw data nothing can build again: the versions the
/// commits in scope record are kept (`-A`: every commit's), so a checkout
/// of an older commit gets its data back.
#[test]
fn gc_keeps_the_tracked_sources_of_the_commits_in_scope() {
    let ws = TestWorkspace::new(
        "{ stages = { prep = { cmd = \"echo p >> runs.log; mkdir -p out && cat data/raw/* > out/all.txt\", deps = [\"data/raw\"], outs = [\"out\"] } } }\n",
    );
    ws.write("data/raw/a.txt", "a\n");
    ws.gourd(&["add", "data/raw"]).success();
    ws.gourd(&["run"]).success();
    ws.git(&["add", "-A"]);
    ws.git(&["commit", "-qm", "v1"]);
    ws.write("data/raw/a.txt", "a2\n");
    ws.gourd(&["add", "data/raw"]).success();
    ws.git(&["commit", "-qam", "v2"]);
    ws.gourd(&["gc", "--all-commits"]).success();
    ws.git(&["checkout", "-q", "HEAD~1"]);
    // The data on disk is still v2's: said, not taken for v1's.
    let status = ws.gourd(&["status"]).success();
    assert!(
        status.stderr.contains("source `data/raw` differs from what `gourd.sources.json` records"),
        "{}",
        status.stderr
    );
    std::fs::remove_dir_all(ws.path("data/raw")).unwrap();
    let run = ws.gourd_env(&["run"], &[("GOURD_REMOTE", "off")]).success();
    assert!(!run.stderr.contains("is missing"), "{}", run.stderr);
    assert_eq!(ws.read("data/raw/a.txt"), "a\n", "v1's data, back from the cache");
    assert_eq!(ws.read("out/all.txt"), "a\n");
    assert!(!ws.gourd(&["status"]).success().stderr.contains("differs"));
}

#[test]
fn gc_keeps_the_sources_of_a_sources_file_in_a_merge_conflict_and_of_a_stash() {
    let ws = TestWorkspace::new("{ stages = {} }\n");
    ws.write("raw.csv", "base\n");
    ws.gourd(&["add", "raw.csv"]).success();
    ws.git(&["add", "-A"]);
    ws.git(&["commit", "-qm", "base"]);
    ws.git(&["checkout", "-qb", "feat"]);
    ws.write("raw.csv", "feat only\n");
    ws.gourd(&["add", "raw.csv"]).success();
    ws.git(&["commit", "-qam", "feat"]);
    ws.git(&["checkout", "-q", "main"]);
    std::fs::remove_file(ws.path("raw.csv")).unwrap();
    ws.gourd(&["run"]).success();
    ws.write("raw.csv", "main only\n");
    ws.gourd(&["add", "raw.csv"]).success();
    ws.git(&["commit", "-qam", "main"]);
    // Both sides changed the record: git leaves its conflict markers in it.
    let merge =
        std::process::Command::new("git").args(["merge", "-q", "feat"]).current_dir(ws.root()).output().unwrap();
    assert!(!merge.status.success(), "the merge was meant to conflict");
    assert!(ws.read("gourd.sources.json").contains("<<<<<<<"));
    let gc = ws.gourd(&["gc"]).success();
    assert!(gc.stderr.contains("cannot be read as a sources file"), "{}", gc.stderr);
    ws.git(&["checkout", "--theirs", "gourd.sources.json"]);
    ws.git(&["add", "gourd.sources.json"]);
    ws.git(&["commit", "-qm", "merged"]);
    std::fs::remove_file(ws.path("raw.csv")).unwrap();
    ws.gourd_env(&["run"], &[("GOURD_REMOTE", "off")]).success();
    assert_eq!(ws.read("raw.csv"), "feat only\n", "the other side's data, still in the cache");

    // A version kept only in a stash: `git stash list` still has it.
    ws.write("raw.csv", "stashed\n");
    ws.gourd(&["add", "raw.csv"]).success();
    ws.git(&["stash", "-q"]);
    std::fs::remove_file(ws.path("raw.csv")).unwrap();
    ws.gourd(&["run"]).success();
    ws.gourd(&["gc", "--all-commits"]).success();
    ws.git(&["stash", "pop", "-q"]);
    std::fs::remove_file(ws.path("raw.csv")).unwrap();
    ws.gourd_env(&["run"], &[("GOURD_REMOTE", "off")]).success();
    assert_eq!(ws.read("raw.csv"), "stashed\n");
}

#[test]
fn gc_keeps_the_sources_of_a_sources_file_that_is_not_utf8() {
    let ws = TestWorkspace::new("{ stages = {} }\n");
    ws.write("raw.csv", "only copy\n");
    ws.gourd(&["add", "raw.csv"]).success();
    let mut bytes = std::fs::read(ws.path("gourd.sources.json")).unwrap();
    bytes.splice(0..0, *b"\xe9");
    std::fs::write(ws.path("gourd.sources.json"), &bytes).unwrap();
    let gc = ws.gourd(&["gc"]).success();
    assert!(gc.stderr.contains("cannot be read as a sources file"), "{}", gc.stderr);
    assert!(gc.stdout.contains("Removed 0 results"), "{}", gc.stdout);
}

#[test]
fn import_force_checks_everything_before_it_replaces_and_moves_edits_aside() {
    let upstream = TestWorkspace::new("{ stages = {} }\n");
    upstream.write("d/f.csv", "upstream\n");
    upstream.git(&["add", "-A"]);
    upstream.git(&["commit", "-qm", "data"]);
    let repo = upstream.root().display().to_string();
    let ws = TestWorkspace::new("{ stages = {} }\n");
    ws.write("src/main.py", "code\n");
    ws.git(&["add", "-A"]);
    ws.git(&["commit", "-qm", "code"]);
    ws.write("src/main.py", "code\nuncommitted work\n");
    let pipeline = ws.read("gourd.ncl");
    for (dest, said) in [("src", "is tracked by git"), ("gourd.ncl", "gourd's own file")] {
        let out = ws.gourd(&["import", &repo, "d", "-o", dest, "--force"]);
        assert_eq!(out.code, 1, "{dest}: {}", out.stderr);
        assert!(out.stderr.contains(said), "{dest}: {}", out.stderr);
    }
    assert_eq!(ws.read("src/main.py"), "code\nuncommitted work\n", "nothing was touched");
    assert_eq!(ws.read("gourd.ncl"), pipeline);

    // The documented update: `--force` again. What was there besides the
    // imported version (a file added by hand) is moved aside, not lost.
    ws.gourd(&["import", &repo, "d", "-o", "data"]).success();
    ws.gourd(&["import", &repo, "d", "-o", "data", "--force"]).success();
    ws.write("data/notes.txt", "mine\n");
    let out = ws.gourd(&["import", &repo, "d", "-o", "data", "--force"]).success();
    assert!(out.stderr.contains("moved `data` aside to `.gourd-displaced/"), "{}", out.stderr);
    let kept = files_under(&ws.path(".gourd-displaced"));
    assert!(kept.iter().any(|p| p.ends_with("data/notes.txt")), "{kept:?}");
    assert!(!ws.exists("data/notes.txt"));
    assert_eq!(ws.read("data/f.csv"), "upstream\n");

    // Into a folder that is a source: refused before anything is written.
    ws.write("raw/a.csv", "mine\n");
    ws.gourd(&["add", "raw"]).success();
    let url = format!("file://{}", upstream.path("d/f.csv").display());
    for args in [&["import-url", &url, "raw/new.csv"][..], &["import-url", &url, "raw/a.csv", "--force"]] {
        let out = ws.gourd(args);
        assert_eq!(out.code, 1, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains("lies inside the source `raw`"), "{args:?}: {}", out.stderr);
    }
    assert!(!ws.exists("raw/new.csv"));
    assert_eq!(ws.read("raw/a.csv"), "mine\n");
    // A folder to import holding a link: refused before the old is removed.
    std::os::unix::fs::symlink("f.csv", upstream.path("d/link")).unwrap();
    upstream.git(&["add", "-A"]);
    upstream.git(&["commit", "-qm", "a link"]);
    let out = ws.gourd(&["import", &repo, "d", "-o", "data", "--force"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("is a symbolic link"), "{}", out.stderr);
    assert_eq!(ws.read("data/f.csv"), "upstream\n", "the imported version is still there");
    // A local folder is no file to download.
    let out = ws.gourd(&["import-url", &format!("file://{}", upstream.path("d").display()), "x"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("is a folder"), "{}", out.stderr);
    assert!(!ws.exists("x"));

    // The recorded version, when no cache here holds it (a clone given the
    // data by hand), is moved aside rather than deleted.
    std::fs::remove_dir_all(ws.path(".gourd")).unwrap();
    let out = ws.gourd(&["import-url", &url, "raw/a.csv"]);
    assert_eq!(out.code, 1);
    let before = files_under(&ws.path(".gourd-displaced")).len();
    let out = ws.gourd(&["import", &repo, "d/f.csv", "-o", "single.csv"]).success();
    assert!(!out.stderr.contains("moved"), "{}", out.stderr);
    std::fs::remove_dir_all(ws.path(".gourd")).unwrap();
    let out = ws.gourd(&["import", &repo, "d/f.csv", "-o", "single.csv", "--force"]).success();
    assert!(out.stderr.contains("moved `single.csv` aside"), "{}", out.stderr);
    assert_eq!(files_under(&ws.path(".gourd-displaced")).len(), before + 1);
}

#[test]
fn gc_scopes_beyond_the_workspace_need_git() {
    let ws = TestWorkspace::bare();
    ws.write("gourd.ncl", &model_pipeline(1, ""));
    ws.gourd(&["run"]).success();
    let out = ws.gourd(&["gc", "--all-commits"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("git repository"), "{}", out.stderr);
    assert!(ws.gourd(&["gc"]).success().stdout.contains("Removed 0 results"));
}

fn folder_remote(dir: &std::path::Path) -> String {
    format!("remote = {{ kind = 'folder, path = \"{}\" }},", dir.display())
}

#[test]
fn a_folder_remote_shares_results_between_clones() {
    let shared = tempfile::tempdir().unwrap();
    let origin = TestWorkspace::new(&model_pipeline(1, &folder_remote(shared.path())));
    origin.write(".gitignore", ".gourd/\nruns.log\nmodel.bin\n");
    origin.git(&["add", "-A"]);
    origin.git(&["commit", "-qm", "pipeline"]);
    origin.gourd(&["run"]).success();
    assert!(!files_under(&shared.path().join("cas")).is_empty());
    assert!(!files_under(&shared.path().join("ac")).is_empty());

    let clone = TestWorkspace::clone_of(origin.root());
    clone.gourd(&["run"]).success();
    assert!(clone.executions().is_empty(), "restored from the folder, not executed");
    assert_eq!(clone.read("model.bin"), origin.read("model.bin"));

    // A damaged object is refused, and the stage runs here instead.
    let poisoned = TestWorkspace::clone_of(origin.root());
    for object in files_under(&shared.path().join("cas")) {
        std::fs::write(object, "poison").unwrap();
    }
    let run = poisoned.gourd(&["run"]).success();
    assert_eq!(poisoned.executions(), ["train"], "{}", run.stderr);
    assert!(!poisoned.read("model.bin").contains("poison"));
    assert!(run.stdout.contains("and removed from there so that a push can replace it"), "{}", run.stdout);
    assert!(files_under(&shared.path().join("cas")).iter().all(|o| std::fs::read(o).unwrap() != b"poison"));
}

/// A private file (an output, a tracked source) stays private on every
/// clone that gets it through a remote, which keeps no permissions.
#[test]
fn private_files_stay_private_through_a_remote() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let shared = tempfile::tempdir().unwrap();
    let pipeline = format!(
        "{{ {} stages = {{ s = {{ cmd = \"umask 077; echo secret > p.bin; echo open > o.bin; chmod 644 o.bin\", outs = [\"p.bin\", \"o.bin\"] }} }} }}",
        folder_remote(shared.path())
    );
    let origin = TestWorkspace::new(&pipeline);
    origin.write("src.csv", "raw\n");
    std::fs::set_permissions(origin.path("src.csv"), std::fs::Permissions::from_mode(0o600)).unwrap();
    origin.gourd(&["add", "src.csv"]).success();
    origin.gourd(&["run"]).success();
    origin.gourd(&["push"]).success();
    // gourd's `.gitignore` block keeps the outputs and the source out of git.
    origin.git(&["add", "-A"]);
    origin.git(&["commit", "-qm", "pipeline"]);
    assert_eq!(mode(&origin.path("p.bin")), 0o600);

    let clone = TestWorkspace::clone_of(origin.root());
    assert!(!clone.exists("p.bin") && !clone.exists("src.csv"), "not in git");
    let run = clone.run_json(&[]);
    assert_eq!(run.statuses()["s"], "restored", "{}", run.stderr);
    assert_eq!(clone.read("p.bin"), "secret\n");
    assert_eq!((mode(&clone.path("p.bin")), mode(&clone.path("src.csv"))), (0o600, 0o600));
    assert_eq!(mode(&clone.path("o.bin")), 0o644);
    let objects = files_under(&clone.path(".gourd/cache-v1/objects"));
    let secret = objects.iter().find(|o| std::fs::read(o).unwrap() == b"secret\n").unwrap();
    assert_eq!(mode(secret), 0o400, "the clone's cache keeps the bytes private too");
}

/// An output the cache never holds (`cache = false`), deleted, makes the
/// stage run: no remote result is fetched for it, and no missing object is
/// reported (none was ever stored).
#[test]
fn a_deleted_uncached_output_runs_the_stage_without_a_remote_lookup() {
    let shared = tempfile::tempdir().unwrap();
    let ws = TestWorkspace::new(&format!(
        "{{ {} stages = {{ s = {{ cmd = \"echo s >> runs.log; echo 1 > kept.txt; echo 2 > big.txt\", outs = [\"kept.txt\", {{ path = \"big.txt\", cache = false }}] }} }} }}",
        folder_remote(shared.path())
    ));
    ws.gourd(&["run"]).success();
    std::fs::remove_file(ws.path("big.txt")).unwrap();
    let run = ws.run_json(&[]);
    assert_eq!(run.statuses()["s"], "ran", "{}", run.stderr);
    assert!(
        !run.stderr.contains("could not be restored") && !run.stdout.contains("could not be restored"),
        "{}{}",
        run.stdout,
        run.stderr
    );
    assert_eq!(ws.read("big.txt"), "2\n");
}

/// A read-only remote (`GOURD_REMOTE_PUSH=0`, or `push = false` in the
/// pipeline) restores but never publishes.
#[test]
fn a_read_only_remote_restores_but_never_publishes() {
    let shared = tempfile::tempdir().unwrap();
    let published = || files_under(&shared.path().join("ac")).len();
    let ws = TestWorkspace::new(&model_pipeline(1, &folder_remote(shared.path())));
    ws.gourd_env(&["run"], &[("GOURD_REMOTE_PUSH", "0")]).success();
    assert_eq!((ws.executions().len(), published()), (1, 0));
    let read_only = format!("remote = {{ kind = 'folder, path = \"{}\", push = false }},", shared.path().display());
    ws.write("gourd.ncl", &model_pipeline(2, &read_only));
    ws.gourd(&["run"]).success();
    assert_eq!((ws.executions().len(), published()), (2, 0));
    // Overridden by the environment, and writable by default.
    ws.write("gourd.ncl", &model_pipeline(3, &read_only));
    ws.gourd_env(&["run"], &[("GOURD_REMOTE_PUSH", "1")]).success();
    assert_eq!((ws.executions().len(), published()), (3, 1));
    ws.write("gourd.ncl", &model_pipeline(4, &folder_remote(shared.path())));
    ws.gourd(&["run"]).success();
    assert_eq!((ws.executions().len(), published()), (4, 2));
    // What is there is still restored by a read-only run.
    let other = TestWorkspace::new(&model_pipeline(4, &read_only));
    other.gourd(&["run"]).success();
    assert!(other.executions().is_empty(), "restored, not executed");
    assert_eq!(published(), 2);
    // A damaged object is rejected, and stays: a read-only user never
    // writes the remote, removals included.
    let objects = files_under(&shared.path().join("cas"));
    for object in &objects {
        let mut permissions = std::fs::metadata(object).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o644);
        std::fs::set_permissions(object, permissions).unwrap();
        std::fs::write(object, "damaged").unwrap();
    }
    let third = TestWorkspace::new(&model_pipeline(4, &read_only));
    let run = third.gourd(&["run"]).success();
    assert_eq!(third.executions().len(), 1, "the damaged result is not restored: {}", run.stdout);
    assert!(run.stdout.contains("does not match its digest: rejected"), "{}", run.stdout);
    assert!(!run.stdout.contains("removed from there"), "{}", run.stdout);
    assert_eq!(files_under(&shared.path().join("cas")), objects, "nothing was removed");
    assert_eq!(published(), 2);
}

/// The key a stage has now (`gourd status --json`).
fn key_now(ws: &TestWorkspace) -> String {
    let status: serde_json::Value = serde_json::from_str(&ws.gourd(&["status", "--json"]).success().stdout).unwrap();
    status["stages"][0]["key"].as_str().unwrap().to_string()
}

/// A result is only ever used for the key it names: a valid result filed
/// under another key (by a bug, a hand, or a hostile remote) is refused,
/// here and from a remote, and the stage runs.
#[test]
fn a_result_filed_under_another_key_is_never_restored() {
    let ws = TestWorkspace::new(&model_pipeline(1, ""));
    ws.gourd(&["run"]).success();
    let (first, model) = (key_now(&ws), ws.read("model.bin"));
    ws.write("gourd.ncl", &model_pipeline(2, ""));
    let second = key_now(&ws);
    assert_ne!(first, second);
    let action = |key: &str| ws.path(&format!(".gourd/cache-v1/actions/{}/{}.json", &key[..2], &key[2..]));
    std::fs::create_dir_all(action(&second).parent().unwrap()).unwrap();
    std::fs::copy(action(&first), action(&second)).unwrap();
    let run = ws.run_json(&[]);
    assert_eq!(run.statuses()["train"], "ran", "{}", run.stderr);
    assert_eq!(ws.executions().len(), 2);
    assert_ne!(ws.read("model.bin"), model);

    let shared = tempfile::tempdir().unwrap();
    let origin = TestWorkspace::new(&model_pipeline(1, &folder_remote(shared.path())));
    origin.write(".gitignore", ".gourd/\nruns.log\nmodel.bin\n");
    origin.git(&["add", "-A"]);
    origin.git(&["commit", "-qm", "seed 1"]);
    origin.gourd(&["run"]).success();
    let first = key_now(&origin);
    origin.write("gourd.ncl", &model_pipeline(2, &folder_remote(shared.path())));
    origin.git(&["commit", "-qam", "seed 2"]);
    let second = key_now(&origin);
    std::fs::copy(shared.path().join("ac").join(&first), shared.path().join("ac").join(&second)).unwrap();
    let clone = TestWorkspace::clone_of(origin.root());
    let run = clone.run_json(&[]);
    assert_eq!(run.statuses()["train"], "ran", "{}", run.stderr);
    assert_eq!(clone.executions(), ["train"]);
}

/// Writes to a remote never overwrite, so a damaged object would stay
/// damaged for good: the clone that finds it removes it, and its own run of
/// the stage (the same bytes) writes it again; the next clone restores.
#[test]
fn a_damaged_remote_object_is_replaced_by_the_next_run_that_builds_it() {
    let shared = tempfile::tempdir().unwrap();
    let origin = TestWorkspace::new(&format!(
        "{{ {} stages = {{ train = {{ cmd = \"echo train >> runs.log; echo model > model.bin\", outs = [\"model.bin\"] }} }} }}\n",
        folder_remote(shared.path())
    ));
    origin.write(".gitignore", ".gourd/\nruns.log\nmodel.bin\n");
    origin.git(&["add", "-A"]);
    origin.git(&["commit", "-qm", "pipeline"]);
    origin.gourd(&["run"]).success();
    for object in files_under(&shared.path().join("cas")) {
        let mut perms = std::fs::metadata(&object).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
        std::fs::set_permissions(&object, perms).unwrap();
        std::fs::write(object, "poison").unwrap();
    }
    let finder = TestWorkspace::clone_of(origin.root());
    finder.gourd(&["run"]).success();
    assert_eq!(finder.executions(), ["train"]);
    let after = TestWorkspace::clone_of(origin.root());
    after.gourd(&["run"]).success();
    assert!(after.executions().is_empty(), "{:?}", after.executions());
    assert_eq!(after.read("model.bin"), "model\n");
}

/// A stage whose bytes differ from run to run (most training): its result
/// on the remote names an object that is lost or damaged, so nothing the
/// next run builds can replace that object. The result itself goes too,
/// and the next run publishes its own. A damaged folder listing is removed
/// like a damaged object.
#[test]
fn a_result_whose_objects_are_lost_or_damaged_is_replaced_by_the_next_run() {
    let shared = tempfile::tempdir().unwrap();
    let origin = TestWorkspace::new(&format!(
        "{{ {} stages = {{ train = {{ cmd = \"echo train >> runs.log; mkdir -p m; od -An -N16 -tx8 /dev/urandom > m/w.bin; echo fixed > m/conf\", outs = [\"m\"] }} }} }}\n",
        folder_remote(shared.path())
    ));
    origin.write(".gitignore", ".gourd/\nruns.log\nm/\n");
    origin.git(&["add", "-A"]);
    origin.git(&["commit", "-qm", "pipeline"]);
    origin.gourd(&["run"]).success();
    let results = || files_under(&shared.path().join("ac"));
    let [result] = &results()[..] else { panic!("one result: {:?}", results()) };
    let weights = std::fs::read_to_string(origin.path("m/w.bin")).unwrap();

    // A damaged folder listing: removed, and the run that builds the stage
    // again publishes a whole new result.
    let trees = files_under(&shared.path().join("trees"));
    let [tree] = &trees[..] else { panic!("one listing: {trees:?}") };
    let mut perms = std::fs::metadata(tree).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
    std::fs::set_permissions(tree, perms).unwrap();
    // In a form this gourd cannot read (a newer gourd's): refused, but left
    // for whoever can read it.
    std::fs::write(tree, r#"[{"name": "w.bin", "kind": "socket", "digest": "x"}]"#).unwrap();
    let newer = TestWorkspace::clone_of(origin.root());
    let run = newer.gourd(&["run"]).success();
    assert!(run.stdout.contains("in a form this gourd does not read"), "{}", run.stdout);
    assert!(std::fs::read_to_string(tree).unwrap().contains("socket"), "left alone");
    assert_eq!(results(), [result.clone()]);
    std::fs::write(tree, "[]").unwrap();
    let finder = TestWorkspace::clone_of(origin.root());
    let run = finder.gourd(&["run"]).success();
    assert_eq!(finder.executions(), ["train"], "{}", run.stdout);
    assert!(run.stdout.contains("folder listing") && run.stdout.contains("removed from there"), "{}", run.stdout);
    assert!(run.stdout.contains("its result was removed from there, for the next run to publish"), "{}", run.stdout);
    assert_ne!(finder.read("m/w.bin"), weights, "other bytes this run");
    let after = TestWorkspace::clone_of(origin.root());
    after.gourd(&["run"]).success();
    assert!(after.executions().is_empty(), "restored from the new result: {:?}", after.executions());
    assert_eq!(after.read("m/w.bin"), finder.read("m/w.bin"));
    assert_eq!(results(), [result.clone()], "the new result, filed under the same key");

    // A lost object: the same.
    for object in files_under(&shared.path().join("cas")) {
        if std::fs::read_to_string(&object).is_ok_and(|text| text == finder.read("m/w.bin")) {
            std::fs::remove_file(object).unwrap();
        }
    }
    let loser = TestWorkspace::clone_of(origin.root());
    let run = loser.gourd(&["run"]).success();
    assert_eq!(loser.executions(), ["train"], "{}", run.stdout);
    assert!(run.stdout.contains("(evicted?); its result was removed from there"), "{}", run.stdout);
    let last = TestWorkspace::clone_of(origin.root());
    last.gourd(&["run"]).success();
    assert!(last.executions().is_empty(), "{:?}", last.executions());
    assert_eq!(last.read("m/w.bin"), loser.read("m/w.bin"));
}

/// `gourd pull` passes over a result it cannot use and pulls the others:
/// one damaged object must not keep a clone from every other result.
#[test]
fn pull_passes_over_a_damaged_result_and_takes_the_others() {
    let shared = tempfile::tempdir().unwrap();
    let origin = TestWorkspace::new(&format!(
        "{{ {} stages = {{\n  a = {{ cmd = \"echo a >> runs.log; echo one > a.txt\", outs = [\"a.txt\"] }},\n  b = {{ cmd = \"echo b >> runs.log; echo two > b.txt\", outs = [\"b.txt\"] }},\n}} }}\n",
        folder_remote(shared.path())
    ));
    origin.write(".gitignore", ".gourd/\nruns.log\na.txt\nb.txt\n");
    origin.git(&["add", "-A"]);
    origin.git(&["commit", "-qm", "pipeline"]);
    origin.gourd(&["run"]).success();
    for object in files_under(&shared.path().join("cas")) {
        if std::fs::read_to_string(&object).is_ok_and(|text| text == "one\n") {
            let mut perms = std::fs::metadata(&object).unwrap().permissions();
            std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
            std::fs::set_permissions(&object, perms).unwrap();
            std::fs::write(&object, "poison\n").unwrap();
        }
    }
    let clone = TestWorkspace::clone_of(origin.root());
    let pull = clone.gourd(&["pull"]).success();
    assert!(pull.stderr.contains("Pulled 1 results"), "{}", pull.stderr);
    assert!(pull.stderr.contains("warning: a result was not pulled: object"), "{}", pull.stderr);
    let run = clone.gourd_env(&["run", "--json"], &[("GOURD_REMOTE", "off")]).success();
    assert_eq!(run.statuses()["b"], "restored", "{}", run.stdout);
    assert_eq!(clone.executions(), ["a"]);
    assert_eq!(clone.read("a.txt"), "one\n");
}

#[test]
fn a_folder_remote_is_configured_from_the_environment_and_relative_to_the_workspace() {
    let ws = TestWorkspace::new(&model_pipeline(1, ""));
    ws.gourd_env(&["run"], &[("GOURD_REMOTE_KIND", "folder"), ("GOURD_REMOTE_PATH", "../gourd-shared")]).success();
    let shared = ws.root().parent().unwrap().join("gourd-shared");
    let published = files_under(&shared.join("ac")).len();
    let _ = std::fs::remove_dir_all(&shared);
    assert_eq!(published, 1);

    let bad = TestWorkspace::new(&model_pipeline(1, "remote = { kind = 'folder },"));
    let out = bad.gourd(&["check"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("needs a `path`"), "{}", out.stderr);
    bad.write("a-file", "");
    bad.write("gourd.ncl", &model_pipeline(1, "remote = { kind = 'folder, path = \"a-file\" },"));
    let out = bad.gourd(&["run"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("a-file`: it is a file, not a folder"), "{}", out.stderr);
}

#[test]
fn check_refuses_the_remote_settings_run_refuses_and_creates_nothing() {
    let ws = TestWorkspace::new(&model_pipeline(1, "remote = { kind = 'folder, path = \"../not-yet\" },"));
    ws.gourd(&["check"]).success();
    assert!(!ws.root().parent().unwrap().join("not-yet").exists(), "check created the remote's folder");
    // Nor an ssh remote's folder for connection sockets (made on the first
    // connection).
    let tmp = tempfile::tempdir().unwrap();
    ws.write("gourd.ncl", &model_pipeline(1, "remote = { kind = 'ssh, endpoint = \"cache.example:/srv/gourd\" },"));
    ws.gourd_env(&["check"], &[("TMPDIR", tmp.path().to_str().unwrap())]).success();
    assert!(files_under(tmp.path()).is_empty() && std::fs::read_dir(tmp.path()).unwrap().next().is_none());

    for (remote, said) in [
        ("remote = { kind = 'folder, path = \".gourd/shared\" },", "lies in `.gourd` or `.git`"),
        ("remote = { kind = 'folder, path = \".git/shared\" },", "lies in `.gourd` or `.git`"),
        ("remote = { kind = 'folder, path = \"a-file\" },", "a-file`: it is a file, not a folder"),
        ("remote = { kind = 'folder, path = \"a-file/sub\" },", "Not a directory"),
        ("remote = { kind = 'ssh, endpoint = \"-oProxyCommand=touch pwned:/srv/x\" },", "expected `[user@]host:/path`"),
        ("remote = { kind = 'reapi, endpoint = \"grpc://bad host\" },", "not a valid endpoint"),
    ] {
        ws.write("a-file", "");
        ws.write("gourd.ncl", &model_pipeline(1, remote));
        let check = ws.gourd(&["check"]);
        let run = ws.gourd(&["run"]);
        for (what, out) in [("check", &check), ("run", &run)] {
            assert_eq!(out.code, 1, "{what} with {remote}: {}", out.stderr);
            assert!(out.stderr.contains(said), "{what} with {remote}: {}", out.stderr);
        }
        assert!(!ws.path(".gourd/shared").exists() && !ws.path(".git/shared").exists());
        assert!(!ws.path("pwned").exists() && !ws.path("runs.log").exists());
    }
    // The environment's settings too, as `run` reads them.
    ws.write("gourd.ncl", &model_pipeline(1, ""));
    let out = ws.gourd_env(&["check"], &[("GOURD_REMOTE_KIND", "nfs")]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("`nfs` is not a remote kind"), "{}", out.stderr);
}

/// A workspace with two commits, each run, publishing to a folder remote:
/// two results there.
fn two_results_on_a_folder_remote() -> (tempfile::TempDir, TestWorkspace) {
    let shared = tempfile::tempdir().unwrap();
    let remote = folder_remote(shared.path());
    let ws = TestWorkspace::new(&model_pipeline(1, &remote));
    ws.write(".gitignore", ".gourd/\nruns.log\nmodel.bin\n");
    ws.git(&["add", "-A"]);
    ws.git(&["commit", "-qm", "seed 1"]);
    ws.gourd(&["run"]).success();
    ws.write("gourd.ncl", &model_pipeline(2, &remote));
    ws.git(&["commit", "-qam", "seed 2"]);
    ws.gourd(&["run"]).success();
    (shared, ws)
}

/// Everything in `dir` written two hours ago: past `gc --remote`'s hour.
fn age_by_two_hours(dir: &std::path::Path) {
    let aged = std::process::Command::new("find")
        .args([dir.to_str().unwrap(), "-type", "f", "-exec", "touch", "-d", "2 hours ago", "{}", "+"])
        .status()
        .unwrap();
    assert!(aged.success());
}

#[test]
fn gc_remote_keeps_what_lineage_names_unless_forced() {
    let (shared, ws) = two_results_on_a_folder_remote();
    let results = || files_under(&shared.path().join("ac")).len();
    assert_eq!(results(), 2);

    let kept = ws.gourd(&["gc", "--remote"]).success().stdout;
    assert!(kept.contains("Removed 0 results"), "lineage names both: {kept}");
    // Written just now: a clone may be publishing it, and its lineage may
    // not have reached anyone yet, so it stays for an hour, --force or not.
    let forced = ws.gourd(&["gc", "--remote", "--force"]).success().stdout;
    assert!(forced.contains("Removed 0 results, 0 objects"), "{forced}");
    age_by_two_hours(shared.path());
    let swept = ws.gourd(&["gc", "--remote", "--force"]).success().stdout;
    assert!(swept.contains("Removed 1 results, 1 objects"), "{swept}");
    assert_eq!(results(), 1);

    // What is left still restores everything the workspace needs.
    let clone = TestWorkspace::clone_of(ws.root());
    clone.gourd(&["run"]).success();
    assert!(clone.executions().is_empty());
}

/// A fresh clone that never pulled keeps what the other clones' lineage
/// names: `gc --remote` fetches the git remotes' lineage first.
#[test]
fn gc_remote_in_a_fresh_clone_keeps_what_other_clones_lineage_names() {
    let (shared, ws) = two_results_on_a_folder_remote();
    let results = || files_under(&shared.path().join("ac")).len();
    assert_eq!(results(), 2);
    age_by_two_hours(shared.path());

    let clone = TestWorkspace::clone_of(ws.root());
    let kept = clone.gourd(&["gc", "--remote"]).success().stdout;
    assert!(kept.contains("Removed 0 results"), "the other clone's lineage names both: {kept}");
    assert_eq!(results(), 2);
    // The clone's own lineage is as it was: nothing was merged into it.
    assert!(clone.git(&["for-each-ref", "refs/gourd/lineage"]).is_empty());
    // Remotes whose names would nest one ref under another both fetch.
    for name in ["team", "team/lineage"] {
        clone.git(&["remote", "add", name, ws.root().to_str().unwrap()]);
    }
    let both = clone.gourd(&["gc", "--remote"]).success();
    assert!(!both.stderr.contains("could not fetch"), "{}", both.stderr);
    assert!(both.stdout.contains("Removed 0 results"), "{}", both.stdout);
    // A git remote that cannot be read (gone, offline), or whose name reads
    // as an option, is said and passed over; what its lineage named when
    // last fetched is still kept.
    clone.git(&["remote", "set-url", "origin", "/nonexistent/repo.git"]);
    let kept = clone.gourd(&["gc", "--remote"]).success();
    assert!(kept.stderr.contains("could not fetch the lineage of git remote `origin`"), "{}", kept.stderr);
    assert!(kept.stdout.contains("Removed 0 results"), "{}", kept.stdout);
    assert_eq!(results(), 2);
    // One never fetched (its clones' runs unknown here) stops it, whatever
    // its name; nothing is removed.
    clone.git(&["remote", "add", "--", "-x", "/nonexistent/other.git"]);
    let refused = clone.gourd(&["gc", "--remote"]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(refused.stderr.contains("git remote `-x`"), "{}", refused.stderr);
    assert!(refused.stderr.contains("and it was never fetched"), "{}", refused.stderr);
    assert!(refused.stderr.contains("`git remote remove -- -x`"), "{}", refused.stderr);
    assert!(!refused.stderr.contains("usage:"), "{}", refused.stderr);
    assert_eq!(results(), 2);
}

/// `gourd pull` takes only results that hold the outputs their lineage
/// record names: one that also claims `gourd.ncl` is passed over, said, and
/// never reaches the local cache.
#[test]
fn pull_passes_over_a_result_naming_other_outputs() {
    let shared = tempfile::tempdir().unwrap();
    let ws = TestWorkspace::new(&model_pipeline(1, &folder_remote(shared.path())));
    ws.write(".gitignore", ".gourd/\nruns.log\nmodel.bin\n");
    ws.git(&["add", "-A"]);
    ws.git(&["commit", "-qm", "seed 1"]);
    ws.gourd(&["run"]).success();
    let results = files_under(&shared.path().join("ac"));
    assert_eq!(results.len(), 1);
    let mut result: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&results[0]).unwrap()).unwrap();
    result["outputs"]["gourd.ncl"] = result["outputs"]["model.bin"].clone();
    let mut permissions = std::fs::metadata(&results[0]).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o644);
    std::fs::set_permissions(&results[0], permissions).unwrap();
    std::fs::write(&results[0], result.to_string()).unwrap();

    let clone = TestWorkspace::clone_of(ws.root());
    let pulled = clone.gourd(&["pull"]).success();
    assert!(pulled.stderr.contains("Pulled 0 results"), "{}", pulled.stderr);
    assert!(pulled.stderr.contains("names other outputs than its lineage record"), "{}", pulled.stderr);
    assert!(files_under(&clone.path(".gourd/cache-v1/actions")).is_empty());
    let before = clone.read("gourd.ncl");
    clone.gourd(&["run"]).success();
    assert_eq!(clone.read("gourd.ncl"), before);
    assert_eq!(clone.executions().len(), 1, "the stage ran");
}

const BEGIN: &str = "# >>> gourd: outputs of gourd.ncl";

#[test]
fn outputs_are_ignored_by_git_so_lineage_records_clean_commits() {
    let ws = TestWorkspace::new(&model_pipeline(1, ""));
    ws.write(".gitignore", "*.pyc\nruns.log\n");
    ws.gourd(&["run"]).success();
    let ignore = ws.read(".gitignore");
    assert!(ignore.starts_with("*.pyc\nruns.log\n"), "the user's lines stay: {ignore}");
    assert!(ignore.contains(BEGIN) && ignore.contains("/.gourd/\n/model.bin\n# <<< gourd\n"), "{ignore}");
    assert!(!ws.git(&["status", "--porcelain"]).contains("model.bin"));
    ws.git(&["add", "-A"]);
    ws.git(&["commit", "-qm", "pipeline"]);
    // Right after a commit, a run records a clean workspace.
    ws.write("gourd.ncl", &model_pipeline(2, ""));
    ws.git(&["commit", "-qam", "seed 2"]);
    ws.gourd(&["run"]).success();
    let record: serde_json::Value =
        serde_json::from_str(&ws.git(&["show", "refs/gourd/lineage:stages/train.json"])).unwrap();
    assert_eq!(record["workspace_dirty"], false, "{record}");
    assert_eq!(ws.git(&["status", "--porcelain"]), "");

    // A new stage's outputs join the block; lines after it stay too.
    ws.write(".gitignore", &format!("{}notes/\n", ws.read(".gitignore")));
    ws.write(
        "gourd.ncl",
        &model_pipeline(2, "").replace(
            "stages = {",
            r#"stages = {
    report = { cmd = "mkdir -p out && cp model.bin 'out/a*b.bin' && echo '{}' > m.json", deps = ["model.bin"], outs = ["out"], metrics = ["m.json"] },"#,
        ),
    );
    ws.gourd(&["run"]).success();
    let ignore = ws.read(".gitignore");
    assert!(ignore.contains("/.gourd/\n/m.json\n/model.bin\n/out\n# <<< gourd\nnotes/\n"), "{ignore}");
    let status = ws.git(&["status", "--porcelain", "--untracked-files=all"]);
    assert_eq!(
        status.lines().filter(|l| !l.ends_with(".gitignore") && !l.ends_with("gourd.ncl")).count(),
        0,
        "{status}"
    );
}

/// Two pipeline files in one folder: each run keeps its own block, so
/// neither drops the other's outputs from `.gitignore` (they showed up in
/// `git status`, ready for a careless `git add -A`).
#[test]
fn two_pipeline_files_in_one_folder_keep_a_block_each() {
    let ws = TestWorkspace::new(r#"{ stages = { a = { cmd = "echo a > a.txt", outs = ["a.txt"] } } }"#);
    ws.write("other.ncl", r#"{ stages = { b = { cmd = "echo b > b.txt", outs = ["b.txt"] } } }"#);
    ws.gourd(&["run"]).success();
    ws.gourd(&["--file", "other.ncl", "run"]).success();
    ws.gourd(&["run"]).success();
    let ignore = ws.read(".gitignore");
    assert!(
        ignore.contains(&format!("{BEGIN}, kept")) && ignore.contains("/.gourd/\n/a.txt\n# <<< gourd\n"),
        "{ignore}"
    );
    assert!(
        ignore.contains("# >>> gourd: outputs of other.ncl, kept")
            && ignore.contains("/.gourd/\n/b.txt\n# <<< gourd\n"),
        "{ignore}"
    );
    let status = ws.git(&["status", "--porcelain", "--untracked-files=all"]);
    assert!(!status.contains("a.txt") && !status.contains("b.txt"), "{status}");
    // Lineage counts a change to either block as no change to the work
    // tree: here the other file's block changes, the pipeline committed.
    ws.git(&["add", "-A"]);
    ws.git(&["commit", "-qm", "pipelines"]);
    ws.write(
        "other.ncl",
        r#"{ stages = { b = { cmd = "echo b > b.txt && echo c > c.txt", outs = ["b.txt", "c.txt"] } } }"#,
    );
    ws.git(&["commit", "-qm", "c", "other.ncl"]);
    ws.gourd(&["--file", "other.ncl", "run"]).success();
    assert!(ws.read(".gitignore").contains("/.gourd/\n/b.txt\n/c.txt\n# <<< gourd\n"));
    assert!(ws.git(&["status", "--porcelain"]).contains(".gitignore"), "the block changed");
    let record: serde_json::Value =
        serde_json::from_str(&ws.git(&["show", "refs/gourd/lineage:stages/b.json"])).unwrap();
    assert_eq!(record["workspace_dirty"], false, "{record}");
}

#[test]
fn init_on_an_existing_pipeline_keeps_it_and_repairs_the_ignore_file() {
    let ws = TestWorkspace::new(&model_pipeline(7, ""));
    ws.write(".gitignore", "build/\n");
    let out = ws.gourd(&["init"]).success();
    assert!(out.stderr.contains("exists; kept it"), "{}", out.stderr);
    assert_eq!(ws.read("gourd.ncl"), model_pipeline(7, ""));
    let ignore = ws.read(".gitignore");
    assert!(ignore.starts_with("build/\n") && ignore.contains("/.gourd/\n/model.bin\n"), "{ignore}");
    // Again: nothing to change.
    ws.gourd(&["init"]).success();
    assert_eq!(ws.read(".gitignore"), ignore);
}

#[test]
fn a_gitignore_that_is_a_link_is_left_alone() {
    let ws = TestWorkspace::new(&model_pipeline(1, ""));
    let elsewhere = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(elsewhere.path(), "precious\n").unwrap();
    std::fs::remove_file(ws.path(".gitignore")).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), ws.path(".gitignore")).unwrap();
    let run = ws.gourd(&["run"]).success();
    assert!(run.stderr.contains("is not a plain file"), "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(elsewhere.path()).unwrap(), "precious\n");
    assert!(std::fs::symlink_metadata(ws.path(".gitignore")).unwrap().file_type().is_symlink());
}

/// `.gourd` may be a link to a faster or larger disk; `.gitignore` is kept
/// all the same, though no rename reaches from there.
#[test]
fn gitignore_is_kept_when_gourd_lives_on_another_file_system() {
    let ws = TestWorkspace::new(&model_pipeline(1, ""));
    let elsewhere = tempfile::tempdir_in("/dev/shm").unwrap();
    let _ = std::fs::remove_dir_all(ws.path(".gourd"));
    std::os::unix::fs::symlink(elsewhere.path(), ws.path(".gourd")).unwrap();
    let run = ws.gourd(&["run"]).success();
    assert!(!run.stderr.contains("could not update .gitignore"), "{}", run.stderr);
    assert!(ws.read(".gitignore").contains("/model.bin\n"), "{}", ws.read(".gitignore"));
    let left: Vec<_> = std::fs::read_dir(ws.root()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(!left.iter().any(|name| name.to_string_lossy().starts_with(".gitignore.")), "{left:?}");
}

#[test]
fn an_out_that_is_not_cached_is_left_to_git() {
    let ws = TestWorkspace::new(
        r#"{ stages = { s = { cmd = "echo a > kept.csv && echo b > cached.csv", outs = [{ path = "kept.csv", cache = false }, "cached.csv"] } } }"#,
    );
    ws.gourd(&["run"]).success();
    let ignore = ws.read(".gitignore");
    assert!(ignore.contains("/cached.csv\n") && !ignore.contains("kept.csv"), "{ignore}");
}

#[test]
fn gitignore_upkeep_can_be_turned_off() {
    let ws = TestWorkspace::new(&model_pipeline(1, ""));
    ws.gourd_env(&["run"], &[("GOURD_GITIGNORE", "0")]).success();
    assert_eq!(ws.read(".gitignore"), ".gourd/\n");
}

/// A built-in step's configuration is its params: `params diff` sees a
/// changed learning rate (no libtorch needed to compare revisions).
#[test]
fn a_built_in_steps_configuration_shows_as_params() {
    let pipeline = |lr: &str| {
        format!(
            r#"let gourd = import "gourd-std.ncl" in
{{
  stages = {{
    train = gourd.steps.train {{ dataset = "data.pt", output = "model.pt", lr = {lr}, epochs = 3, layers = [] }},
  }},
}}
"#
        )
    };
    let ws = TestWorkspace::new(&pipeline("0.1"));
    ws.write("data.pt", "tensors");
    ws.git(&["add", "-A"]);
    ws.git(&["commit", "-qm", "lr 0.1"]);
    ws.write("gourd.ncl", &pipeline("0.05"));
    ws.git(&["commit", "-qam", "lr 0.05"]);
    let diff: serde_json::Value =
        serde_json::from_str(&ws.gourd(&["params", "diff", "HEAD~1", "HEAD", "--json"]).success().stdout).unwrap();
    let rows = diff["params"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{diff}");
    assert_eq!((rows[0]["stage"].as_str(), rows[0]["param"].as_str()), (Some("train"), Some("lr")), "{diff}");
    assert_eq!((rows[0]["a"].as_f64(), rows[0]["b"].as_f64()), (Some(0.1), Some(0.05)), "{diff}");
    let all: serde_json::Value =
        serde_json::from_str(&ws.gourd(&["params", "diff", "HEAD~1", "HEAD", "--json", "--all"]).success().stdout)
            .unwrap();
    assert!(all["params"].as_array().unwrap().iter().any(|r| r["param"] == "epochs" && r["a"] == 3), "{all}");
}

const TWO_STAGES: &str = r#"{
  stages = {
    first = { cmd = "echo hello && echo world >&2 && printf 'no newline'", outs = [] },
    second = {
      cmd = "echo '{\"accuracy\": 0.5, \"curve\": [1, 2], \"nested\": {\"loss\": 0.25}}' > m.json",
      deps = ["gourd.ncl"],
      metrics = ["m.json"],
    },
  },
}
"#;

#[test]
fn verbose_runs_stream_each_stages_output_prefixed_with_its_name() {
    let ws = TestWorkspace::new(TWO_STAGES);
    let out = ws.gourd(&["run", "-v", "-j1"]).success().stdout;
    let hello = out.find("first | hello\n").unwrap_or_else(|| panic!("{out}"));
    let world = out.find("first | world\n").unwrap_or_else(|| panic!("{out}"));
    let last = out.find("first | no newline\n").unwrap_or_else(|| panic!("{out}"));
    let ran = out.find("ran first").unwrap_or_else(|| panic!("{out}"));
    assert!(hello < world && world < last && last < ran, "output before the stage's line: {out}");
    // Without -v, nothing of it.
    let quiet = ws.gourd(&["run", "--force", "first"]).success().stdout;
    assert!(!quiet.contains("hello"), "{quiet}");
}

#[test]
fn the_summary_shows_the_metrics_the_run_produced() {
    let ws = TestWorkspace::new(TWO_STAGES);
    let out = ws.gourd(&["run"]).success().stdout;
    let metrics = out.split("Metrics:\n").nth(1).unwrap_or_else(|| panic!("{out}"));
    // The summary stays the last line (SPEC: the run ends with it).
    assert!(out.lines().last().is_some_and(|l| l.starts_with("2 ran, 0 restored")), "{out}");
    assert!(metrics.contains("second  m.json  accuracy 0.5  nested.loss 0.25"), "{out}");
    assert!(!metrics.contains("curve"), "arrays belong to plots: {out}");
    let json = ws.gourd(&["run", "--json", "--force", "second"]).success().stdout;
    let summary: serde_json::Value = serde_json::from_str(json.lines().last().unwrap()).unwrap();
    assert_eq!(summary["metrics"]["m.json"]["accuracy"], 0.5, "{summary}");
    // Nothing ran: no metrics line.
    let again = ws.gourd(&["run"]).success().stdout;
    assert!(!again.contains("Metrics:"), "{again}");
    // `metrics show` tables hold scalars; arrays stay in --json.
    let shown = ws.gourd(&["metrics", "show"]).success();
    assert!(shown.stdout.contains("accuracy") && !shown.stdout.contains("curve"), "{}", shown.stdout);
    assert!(shown.stderr.contains("1 metric(s) holding arrays are not shown"), "{}", shown.stderr);
    let json = ws.gourd(&["metrics", "show", "--json"]).success().stdout;
    assert!(json.contains("curve"), "{json}");
}

/// On a terminal, a live line counts stages done out of all and names each
/// running stage with its elapsed time.
#[test]
fn on_a_terminal_the_live_line_counts_stages_and_times_the_running_ones() {
    let ws = TestWorkspace::new(
        r#"{ stages = { slow = { cmd = "sleep 2.5", outs = [] }, after = { cmd = "true", deps = ["gourd.ncl"], outs = [] } } }"#,
    );
    // `script` gives gourd a pseudo-terminal and records what it drew.
    let typescript = ws.path("typescript");
    let status = std::process::Command::new("script")
        .args(["-qfec", &format!("{} run -j1", common::gourd_bin()), typescript.to_str().unwrap()])
        .current_dir(ws.root())
        .env("NO_COLOR", "1")
        .env("GOURD_GPUS", "")
        .env("TERM", "xterm")
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let drawn = std::fs::read_to_string(&typescript).unwrap();
    assert!(drawn.contains("/2 done"), "{drawn}");
    assert!(drawn.contains("running slow 1s") || drawn.contains("running slow 2s"), "{drawn}");
}

/// On a terminal, statuses are coloured; with `NO_COLOR` set, nothing is
/// (SPEC: `NO_COLOR` is honoured).
#[test]
fn no_color_turns_colours_off_on_a_terminal() {
    let colours = |no_color: bool| {
        let ws = TestWorkspace::new(
            r#"{ stages = { ok = { cmd = "true", outs = [] }, bad = { cmd = "exit 3", outs = [] } } }"#,
        );
        let typescript = ws.path("typescript");
        let mut script = std::process::Command::new("script");
        script
            .args(["-qfec", &format!("{} run", common::gourd_bin()), typescript.to_str().unwrap()])
            .current_dir(ws.root())
            .env_remove("NO_COLOR")
            .env("TERM", "xterm")
            .stdout(std::process::Stdio::null());
        if no_color {
            script.env("NO_COLOR", "1");
        }
        script.status().unwrap();
        let drawn = std::fs::read_to_string(&typescript).unwrap();
        assert!(drawn.contains("bad: exited with code 3"), "{drawn}");
        let sgr = regex_lite::Regex::new("\x1b\\[[0-9;]*m").unwrap();
        sgr.find_iter(&drawn).map(|m| m.as_str().to_string()).collect::<std::collections::BTreeSet<_>>()
    };
    assert!(colours(true).is_empty(), "{:?}", colours(true));
    assert!(colours(false).iter().any(|c| c.contains("31")), "a failure in red: {:?}", colours(false));
}

/// A real OpenSSH server on loopback, for this test only, with its own host
/// key and a client key it accepts; killed on drop.
struct SshServer {
    child: std::process::Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl SshServer {
    fn start() -> SshServer {
        let sshd = ["/usr/sbin/sshd", "/usr/bin/sshd"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("sshd is not installed (Debian: openssh-server); .ci/run installs it");
        let dir = tempfile::tempdir().unwrap();
        let keygen = |name: &str| {
            let status = std::process::Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(dir.path().join(name))
                .status()
                .unwrap();
            assert!(status.success());
        };
        keygen("host_key");
        keygen("client_key");
        std::fs::copy(dir.path().join("client_key.pub"), dir.path().join("authorized_keys")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let d = dir.path().display();
        std::fs::write(
            dir.path().join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n\
                 PidFile {d}/sshd.pid\nStrictModes no\nUsePAM no\nPasswordAuthentication no\nPermitRootLogin prohibit-password\n"
            ),
        )
        .unwrap();
        let _ = std::fs::create_dir_all("/run/sshd");
        let child = std::process::Command::new(sshd)
            .args(["-D", "-e", "-f"])
            .arg(dir.path().join("sshd_config"))
            .stderr(std::fs::File::create(dir.path().join("sshd.log")).unwrap())
            .spawn()
            .unwrap();
        common::wait_until("sshd listening", || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        SshServer { child, dir, port }
    }

    /// `GOURD_SSH_COMMAND`: this server's client key, no known-hosts file.
    fn ssh_command(&self) -> String {
        format!(
            "ssh -i {}/client_key -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
            self.dir.path().display()
        )
    }

    fn endpoint(&self, folder: &std::path::Path) -> String {
        let user = std::env::var("USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| {
            String::from_utf8(std::process::Command::new("id").arg("-un").output().unwrap().stdout)
                .unwrap()
                .trim()
                .to_string()
        });
        format!("ssh://{user}@127.0.0.1:{}{}", self.port, folder.display())
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[ignore = "needs sshd (openssh-server); .ci/run runs it with --ignored"]
fn an_ssh_remote_shares_results_checks_them_and_is_collected() {
    let server = SshServer::start();
    let shared = tempfile::tempdir().unwrap();
    let remote = format!("remote = {{ kind = 'ssh, endpoint = \"{}\" }},", server.endpoint(shared.path()));
    let env = [("GOURD_SSH_COMMAND", server.ssh_command())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let origin = TestWorkspace::new(&model_pipeline(1, &remote));
    origin.write(".gitignore", ".gourd/\nruns.log\nmodel.bin\n");
    origin.git(&["add", "-A"]);
    origin.git(&["commit", "-qm", "pipeline"]);
    let run = origin.gourd_env(&["run"], &env).success();
    assert!(!run.stderr.contains("remote"), "{}", run.stderr);
    assert_eq!(files_under(&shared.path().join("ac")).len(), 1);
    assert!(!files_under(&shared.path().join("cas")).is_empty());

    let clone = TestWorkspace::clone_of(origin.root());
    let run = clone.gourd_env(&["run"], &env).success();
    assert!(clone.executions().is_empty(), "restored over ssh, not executed: {}", run.stderr);
    assert_eq!(clone.read("model.bin"), origin.read("model.bin"));

    // A damaged object is refused; the stage runs here.
    for object in files_under(&shared.path().join("cas")) {
        let mut perms = std::fs::metadata(&object).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perms.set_readonly(false);
        std::fs::set_permissions(&object, perms).unwrap();
        std::fs::write(object, "poison").unwrap();
    }
    let poisoned = TestWorkspace::clone_of(origin.root());
    let run = poisoned.gourd_env(&["run"], &env).success();
    assert_eq!(poisoned.executions(), ["train"], "{}", run.stderr);
    assert!(run.stdout.contains("does not match its digest"), "{}", run.stdout);

    // gc --remote over ssh: a second result, then the first forced out.
    origin.write("gourd.ncl", &model_pipeline(2, &remote));
    origin.gourd_env(&["run"], &env).success();
    assert_eq!(files_under(&shared.path().join("ac")).len(), 2);
    // Written in the last hour, both stay whatever names them; aged, the
    // first goes.
    let young = origin.gourd_env(&["gc", "--remote", "--force"], &env).success().stdout;
    assert!(young.contains("Removed 0 results"), "{young}");
    age_by_two_hours(shared.path());
    let forced = origin.gourd_env(&["gc", "--remote", "--force"], &env).success().stdout;
    assert!(forced.contains("Removed 1 results"), "{forced}");
    assert_eq!(files_under(&shared.path().join("ac")).len(), 1);

    // A server that is down: the stage runs here and says why.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let down = format!("remote = {{ kind = 'ssh, endpoint = \"ssh://nobody@127.0.0.1:{closed}/tmp/x\" }},");
    let offline = TestWorkspace::new(&model_pipeline(1, &down));
    let run = offline.gourd_env(&["run"], &env).success();
    assert_eq!(offline.executions(), ["train"]);
    assert!(run.stdout.contains(&format!("ssh://nobody@127.0.0.1:{closed}")), "{}", run.stdout);
}

/// Metrics in YAML and TOML as DVC reads them, and a metrics file inside
/// the stage's own out folder.
#[test]
fn metrics_in_yaml_toml_and_inside_an_out_folder() {
    let ws = TestWorkspace::new(
        r#"{
  stages = {
    evaluate = {
      cmd = "mkdir -p eval && printf 'accuracy: 0.75\nloss: 0.5\n' > eval/metrics.yaml && printf 'auc = 0.875\n' > scores.toml && echo plot > eval/roc.csv",
      outs = ["eval"],
      metrics = ["eval/metrics.yaml", "scores.toml"],
    },
  },
}
"#,
    );
    ws.gourd(&["check"]).success();
    ws.gourd(&["run"]).success();
    let shown: serde_json::Value =
        serde_json::from_str(&ws.gourd(&["metrics", "show", "--json"]).success().stdout).unwrap();
    assert_eq!(shown["metrics"]["eval/metrics.yaml"]["accuracy"], 0.75, "{shown}");
    assert_eq!(shown["metrics"]["scores.toml"]["auc"], 0.875, "{shown}");
    // Both restore from the cache, the folder and the file inside it.
    ws.remove("eval");
    ws.remove("scores.toml");
    let run = ws.run_json(&[]).success();
    assert_eq!(run.statuses(), common::expect(&[("evaluate", "restored")]));
    assert_eq!(ws.read("eval/metrics.yaml"), "accuracy: 0.75\nloss: 0.5\n");
    assert_eq!(ws.read("eval/roc.csv"), "plot\n");

    // A broken YAML file fails the stage and says which format it expected.
    ws.write("gourd.ncl", r#"{ stages = { bad = { cmd = "printf 'a: [1,' > m.yaml", metrics = ["m.yaml"] } } }"#);
    let out = ws.gourd(&["run"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("`m.yaml` is not valid YAML"), "{}", out.stderr);
}

/// DVC's params: selected keys of params.yaml, as nested params and as
/// environment variables; an unrelated change to the file re-runs nothing.
#[test]
fn params_from_a_params_file_reach_shell_stages_as_variables() {
    let ws = TestWorkspace::new(
        r#"let gourd = import "gourd-std.ncl" in
let p = import "params.yaml" in
{
  stages = {
    train = {
      cmd = "echo $GOURD_PARAM_TRAIN_N_EST $GOURD_PARAM_TRAIN_LR $GOURD_PARAM_TRAIN_NAME >> runs.log && echo model > model.bin",
      params = gourd.params p ["train.n_est", "train.lr", "train.name"],
      outs = ["model.bin"],
    },
  },
}
"#,
    );
    ws.write("params.yaml", "# knobs\ntrain:\n  n_est: 50\n  lr: 0.1\n  name: forest a\nprepare:\n  split: 0.2\n");
    ws.gourd(&["run"]).success();
    assert_eq!(ws.executions(), ["50 0.1 forest a"]);
    // A comment and an unselected key change: nothing re-runs.
    ws.write(
        "params.yaml",
        "# knobs, tuned\ntrain:\n  n_est: 50\n  lr: 0.1\n  name: forest a\nprepare:\n  split: 0.3\n",
    );
    ws.gourd(&["run"]).success();
    assert_eq!(ws.executions().len(), 1);
    ws.write("params.yaml", "train:\n  n_est: 80\n  lr: 0.1\n  name: forest a\nprepare:\n  split: 0.3\n");
    ws.gourd(&["run"]).success();
    assert_eq!(ws.executions(), ["50 0.1 forest a", "80 0.1 forest a"]);

    ws.write("params.yaml", "train:\n  lr: 0.1\n  name: x\n");
    let out = ws.gourd(&["check"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("no key `train.n_est`"), "{}", out.stderr);
}

/// A teammate's `git clone`: no data, no outputs. Commands that read the
/// pipeline and history still answer.
#[test]
fn read_only_commands_work_on_a_clone_without_data() {
    let origin = TestWorkspace::new(
        r#"{
  stages = {
    prepare = { cmd = "cp data/raw.txt clean.txt", deps = ["data/raw.txt"], outs = ["clean.txt"], params = { split = 0.2 } },
    evaluate = { cmd = "echo '{\"accuracy\": 0.5}' > m.json", deps = ["clean.txt"], metrics = ["m.json"] },
  },
}
"#,
    );
    origin.write(".gitignore", ".gourd/\ndata/\n");
    origin.write("data/raw.txt", "raw\n");
    origin.gourd(&["run"]).success();
    origin.git(&["add", "-A"]);
    origin.git(&["commit", "-qm", "one"]);
    origin.gourd(&["run"]).success();
    origin.write("gourd.ncl", &origin.read("gourd.ncl").replace("0.2", "0.3"));
    origin.git(&["commit", "-qam", "two"]);
    origin.gourd(&["run"]).success();

    let clone = TestWorkspace::clone_of(origin.root());
    assert!(!clone.exists("data/raw.txt"));
    clone.git(&["fetch", "-q", "origin", "refs/gourd/lineage:refs/gourd/lineage"]);
    for args in [
        &["dag"][..],
        &["report", "--format", "md"],
        &["metrics", "show"],
        &["metrics", "diff", "HEAD~1", "HEAD"],
        &["params", "diff", "HEAD~1", "HEAD"],
        &["log"],
        &["status"],
        &["gc", "--dry-run"],
    ] {
        let out = clone.gourd(args);
        assert_eq!(out.code, 0, "gourd {args:?}: {}", out.stderr);
    }
    let params = clone.gourd(&["params", "diff", "HEAD~1", "HEAD"]).success().stdout;
    assert!(params.contains("split"), "{params}");
    // Without lineage nothing is known, which is not "nothing differs".
    let bare = TestWorkspace::clone_of(origin.root());
    let diff = bare.gourd(&["metrics", "diff", "HEAD~1", "HEAD"]).success();
    assert!(diff.stdout.contains("No metrics are known at HEAD~1 or HEAD."), "{}", diff.stdout);
    assert!(diff.stderr.contains("no lineage yet"), "{}", diff.stderr);
    // `run` and `check` still say what is missing.
    let run = clone.gourd(&["run"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("data/raw.txt"), "{}", run.stderr);
}

/// `run --set` overrides a param for one run; `exp show` puts the runs side
/// by side with their params and metrics, sortable.
#[test]
fn experiments_with_set_and_exp_show() {
    let ws = TestWorkspace::new(
        r#"let gourd = import "gourd-std.ncl" in
let p = import "params.yaml" in
{
  stages = {
    train = {
      cmd = "echo \"{\\\"score\\\": $GOURD_PARAM_TRAIN_LR, \\\"epochs\\\": $GOURD_PARAM_TRAIN_EPOCHS}\" > m.json",
      params = gourd.params p ["train.lr", "train.epochs"],
      metrics = ["m.json"],
    },
  },
}
"#,
    );
    ws.write("params.yaml", "train:\n  lr: 0.1\n  epochs: 3\n");
    ws.git(&["add", "-A"]);
    ws.git(&["commit", "-qm", "pipeline"]);
    ws.gourd(&["run"]).success();
    let set = ws.gourd(&["run", "--set", "train.lr=0.3"]).success();
    assert!(set.stderr.contains("Set `train.lr` to 0.3 in `params.yaml`."), "{}", set.stderr);
    ws.git(&["commit", "-qam", "lr 0.3"]);
    ws.gourd(&["run", "-S", "train.train.lr=0.2"]).success();
    // A key of params.yaml is written there, as `dvc exp run -S` does; a
    // STAGE.NAME key holds for its run only.
    assert_eq!(ws.read("params.yaml"), "train:\n  lr: 0.3\n  epochs: 3\n");
    let record: serde_json::Value =
        serde_json::from_str(&ws.git(&["show", "refs/gourd/lineage:stages/train.json"])).unwrap();
    assert_eq!(record["params"]["train"]["lr"], 0.2, "{record}");
    // A value set for one run only is not what the commit says.
    assert_eq!(record["workspace_dirty"], true, "{record}");

    let shown: serde_json::Value =
        serde_json::from_str(&ws.gourd(&["exp", "show", "--json"]).success().stdout).unwrap();
    let lrs: Vec<f64> =
        shown["runs"].as_array().unwrap().iter().map(|r| r["values"]["train:train.lr"].as_f64().unwrap()).collect();
    assert_eq!(lrs, [0.2, 0.3, 0.1], "newest first: {shown}");
    let sorted = ws.gourd(&["exp", "show", "--sort-by", "m.json:score"]).success().stdout;
    let order: Vec<&str> = sorted.lines().skip(1).map(|l| l.split_whitespace().nth(3).unwrap()).collect();
    assert_eq!(order, ["0.3", "0.2", "0.1"], "{sorted}");
    // By the metric's own name too, as DVC takes it, when no other column has it.
    assert_eq!(ws.gourd(&["exp", "show", "--sort-by", "score"]).success().stdout, sorted);
    // A name two columns share (a metric and a param, `epochs`) is asked about.
    let both = ws.gourd(&["exp", "show", "--sort-by", "epochs"]);
    assert_eq!(both.code, 1, "{}", both.stderr);
    assert!(
        both.stderr.contains("`epochs` names several columns: `m.json:epochs`, `train:train.epochs`"),
        "{}",
        both.stderr
    );
    assert!(!sorted.contains("epochs"), "columns that never change are left out: {sorted}");
    assert!(ws.gourd(&["exp", "show", "--md", "--all-columns"]).success().stdout.contains("| train\\:train.epochs |"));

    let bad = ws.gourd(&["run", "--set", "train.lrr=1"]);
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("no stage has a param `train.lrr`"), "{}", bad.stderr);
    assert!(bad.stderr.contains("did you mean `train.lr`?"), "{}", bad.stderr);
    let bad = ws.gourd(&["exp", "show", "--sort-by", "m.json:scor"]);
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("did you mean `m.json:score`?"), "{}", bad.stderr);
}

/// A param whose name holds a dot is set by its whole name, alone or after
/// its stage's.
#[test]
fn set_names_a_param_with_a_dot_in_its_name() {
    let ws = TestWorkspace::new(
        r#"{ stages = { s = { cmd = "cat $GOURD_PARAMS > out.json", params = { "a.b" = 1, c = { d = 2 } }, outs = ["out.json"] } } }"#,
    );
    for (set, expected) in [("a.b=5", 5), ("s.a.b=6", 6)] {
        ws.gourd(&["run", "--set", set]).success();
        let params: serde_json::Value = serde_json::from_str(&ws.read("out.json")).unwrap();
        assert_eq!(params["a.b"], expected, "--set {set}: {params}");
        assert_eq!(params["c"]["d"], 2);
    }
    ws.gourd(&["run", "--set", "c.d=7"]).success();
    let params: serde_json::Value = serde_json::from_str(&ws.read("out.json")).unwrap();
    assert_eq!((params["a.b"].clone(), params["c"]["d"].clone()), (serde_json::json!(1), serde_json::json!(7)));
    // Inside a table, and a table whose name holds a dot.
    ws.write(
        "gourd.ncl",
        r#"{ stages = { s = { cmd = "cat $GOURD_PARAMS > out.json", params = { x = { "y.z" = 8 }, "p.q" = { r = 1 } }, outs = ["out.json"] } } }"#,
    );
    ws.gourd(&["run", "--set", "s.x.y.z=10", "--set", "p.q.r=2"]).success();
    let params: serde_json::Value = serde_json::from_str(&ws.read("out.json")).unwrap();
    assert_eq!(params, serde_json::json!({ "x": { "y.z": 10 }, "p.q": { "r": 2 } }));
}

/// A file a stage writes is never edited by `--set`, even when named like a
/// params file (`params.json` as an output): refused, and left as it was.
#[test]
fn set_never_edits_a_stage_output() {
    let ws = TestWorkspace::new(
        r#"{ stages = { s = { cmd = "cat $GOURD_PARAMS > params.json", params = { c = { d = 2 } }, outs = ["params.json"] } } }"#,
    );
    ws.gourd(&["run"]).success();
    let before = ws.read("params.json");
    let refused = ws.gourd(&["run", "--set", "c.d=7"]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(refused.stderr.contains("--set `c.d`: `params.json` is an output of stage `s`"), "{}", refused.stderr);
    assert_eq!(ws.read("params.json"), before, "put back as it was");
    assert!(!ws.exists(".gourd-displaced"), "{}", refused.stderr);
    ws.gourd(&["run", "--set", "s.c.d=7"]).success();
    let params: serde_json::Value = serde_json::from_str(&ws.read("params.json")).unwrap();
    assert_eq!(params["c"]["d"], 7);
}

/// A param holding a list is a column of `exp show` like any other.
#[test]
fn exp_show_shows_params_that_are_lists() {
    let ws = TestWorkspace::new(
        r#"let gourd = import "gourd-std.ncl" in
{ stages = { train = { cmd = "grep layers params.yaml > model.txt", params = gourd.params (import "params.yaml") ["train.layers"], outs = ["model.txt"] } } }
"#,
    );
    ws.write("params.yaml", "train:\n  layers: [16, 32]\n");
    ws.gourd(&["run"]).success();
    ws.gourd(&["run", "-S", "train.layers=[8,8]"]).success();
    assert_eq!(ws.read("params.yaml"), "train:\n  layers: [8,8]\n");
    let shown: serde_json::Value =
        serde_json::from_str(&ws.gourd(&["exp", "show", "--json"]).success().stdout).unwrap();
    let layers: Vec<&serde_json::Value> =
        shown["runs"].as_array().unwrap().iter().map(|r| &r["values"]["train:train.layers"]).collect();
    assert_eq!(layers, [&serde_json::json!([8, 8]), &serde_json::json!([16, 32])], "{shown}");
    let table = ws.gourd(&["exp", "show"]).success().stdout;
    assert!(table.contains("train:train.layers") && table.contains("[8,8]") && table.contains("[16,32]"), "{table}");
}

/// `--set` on a key of another params file the pipeline imports writes it
/// there: set for one run only, a script reading the file would not see it,
/// and its result would be cached under params it was not made with (then
/// taken as up to date once the file really said so).
#[test]
fn set_writes_the_params_file_that_has_the_key() {
    let ws = TestWorkspace::new(
        r#"let gourd = import "gourd-std.ncl" in
{
  stages = {
    train = { cmd = "grep opt custom.yaml > model.txt", params = gourd.params (import "custom.yaml") ["opt"], outs = ["model.txt"] },
    other = { cmd = "grep seed src/params.yaml > seed.txt", params = gourd.params (import "src/params.yaml") ["seed"], outs = ["seed.txt"] },
  },
}
"#,
    );
    ws.write("custom.yaml", "lr: 0.1\nopt: adam  # the optimiser\n");
    ws.write("src/params.yaml", "seed: 1\nopt: adam\n");
    ws.gourd(&["run"]).success();
    // Two files have `opt`: which one is asked.
    let both = ws.gourd(&["run", "-S", "opt=sgd"]);
    assert_eq!(both.code, 1, "{}", both.stderr);
    assert!(
        both.stderr.contains("`opt` is in `custom.yaml` and `src/params.yaml`: name the file, as `custom.yaml:opt=…`"),
        "{}",
        both.stderr
    );
    assert_eq!(ws.read("custom.yaml"), "lr: 0.1\nopt: adam  # the optimiser\n");
    let set = ws.gourd(&["run", "-S", "custom.yaml:opt=sgd"]).success();
    assert!(set.stderr.contains("Set `custom.yaml:opt` to \"sgd\" in `custom.yaml`."), "{}", set.stderr);
    assert_eq!(ws.read("custom.yaml"), "lr: 0.1\nopt: \"sgd\"  # the optimiser\n");
    assert_eq!(ws.read("model.txt"), "opt: \"sgd\"  # the optimiser\n", "the script saw the value");
    // A run that does not start, and a dry run, leave the files as they
    // were: a later `-S` refused, an unknown stage, `-j 0`.
    for args in [
        &["run", "-S", "seed=5", "-S", "opt=x"][..],
        &["run", "nosuch", "-S", "seed=5"],
        &["run", "-j", "0", "-S", "seed=5"],
        &["run", "--dry-run", "-S", "seed=5"],
    ] {
        let out = ws.gourd(args);
        assert_eq!(out.code, if args.contains(&"--dry-run") { 0 } else { 1 }, "{args:?}: {}", out.stderr);
        assert_eq!(ws.read("src/params.yaml"), "seed: 1\nopt: adam\n", "{args:?}: {}", out.stderr);
    }
    let dry = ws.gourd(&["run", "--dry-run", "-S", "seed=5"]).success();
    assert!(dry.stdout.contains("would-run other  param `seed` changed"), "what the value would run: {}", dry.stdout);
    // One file has `seed`: that one is written.
    ws.gourd(&["run", "-S", "seed=7"]).success();
    assert_eq!(ws.read("src/params.yaml"), "seed: 7\nopt: adam\n");
    assert_eq!(ws.read("seed.txt"), "seed: 7\n");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = || std::fs::metadata(ws.path("src/params.yaml")).unwrap().permissions().mode() & 0o777;
        std::fs::set_permissions(ws.path("src/params.yaml"), std::fs::Permissions::from_mode(0o600)).unwrap();
        ws.gourd(&["run", "--dry-run", "-S", "seed=8"]).success();
        assert_eq!(mode(), 0o600, "put back with its mode");
        assert!(!ws.gourd(&["run", "-S", "seed=8"]).success().stderr.contains("warning"));
        assert_eq!(mode(), 0o600, "edited with its mode");
    }
    // A key of the file that no stage's params hold: written, and said to
    // make nothing run again (`lr` is in custom.yaml; `train` takes `opt`).
    let unused = ws.gourd(&["run", "-S", "custom.yaml:lr=0.5"]).success();
    assert!(unused.stderr.contains("warning: no stage's params hold `lr`"), "{}", unused.stderr);
    assert!(ws.read("custom.yaml").starts_with("lr: 0.5\n"));
    // A file without the key, or no such file: nothing written.
    let missing = ws.gourd(&["run", "-S", "custom.yaml:nope=1"]);
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.contains("`custom.yaml` has no `nope`"), "{}", missing.stderr);
    let missing = ws.gourd(&["run", "-S", "gone.yaml:opt=1"]);
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("`gone.yaml` (in `gone.yaml:opt`) is not a file of the workspace"),
        "{}",
        missing.stderr
    );
    // Only params files of the workspace that the pipeline imports.
    std::fs::write(ws.root().parent().unwrap().join("outside.yaml"), "opt: adam\n").unwrap();
    for (named, why) in [
        ("../outside.yaml:opt=x", "is not a file of the workspace"),
        ("/etc/hostname:opt=x", "is not a file of the workspace"),
        (".git/config:opt=x", "lies in `.git` or `.gourd`"),
        ("gourd.ncl:opt=x", "is not a params file the pipeline imports"),
    ] {
        let refused = ws.gourd(&["run", "-S", named]);
        assert_eq!(refused.code, 1, "{named}: {}", refused.stderr);
        assert!(refused.stderr.contains(why), "{named}: {}", refused.stderr);
    }
    assert_eq!(std::fs::read_to_string(ws.root().parent().unwrap().join("outside.yaml")).unwrap(), "opt: adam\n");
    // A params file that is a link: the file it leads to is edited, the
    // link stays; one leading out of the workspace is refused.
    ws.write("configs/exp1.yaml", "seed: 1\nopt: adam\n");
    std::fs::remove_file(ws.path("src/params.yaml")).unwrap();
    std::os::unix::fs::symlink("../configs/exp1.yaml", ws.path("src/params.yaml")).unwrap();
    ws.gourd(&["run", "-S", "seed=9"]).success();
    assert!(std::fs::symlink_metadata(ws.path("src/params.yaml")).unwrap().file_type().is_symlink());
    assert_eq!(ws.read("configs/exp1.yaml"), "seed: 9\nopt: adam\n");
    std::fs::remove_file(ws.path("src/params.yaml")).unwrap();
    std::os::unix::fs::symlink(ws.root().parent().unwrap().join("outside.yaml"), ws.path("src/params.yaml")).unwrap();
    ws.write("src/params.yaml.keep", "");
    let out = ws.gourd(&["run", "-S", "src/params.yaml:opt=sgd"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("is outside the workspace"), "{}", out.stderr);
    std::fs::remove_file(ws.path("src/params.yaml")).unwrap();
    ws.write("src/params.yaml", "seed: 7\nopt: adam\n");
    // A file that cannot be edited in place: refused, not set for one run.
    ws.write("custom.yaml", "{lr: 0.1, opt: sgd}\n");
    let flow = ws.gourd(&["run", "-S", "custom.yaml:opt=adam"]);
    assert_eq!(flow.code, 1, "{}", flow.stderr);
    assert!(flow.stderr.contains("cannot edit `opt` in place"), "{}", flow.stderr);
    assert_eq!(ws.read("custom.yaml"), "{lr: 0.1, opt: sgd}\n");
}

/// DVC's `frozen`: the stage's last result stands whatever its deps say.
#[test]
fn a_frozen_stage_keeps_its_result_and_never_runs_again() {
    let pipeline = |frozen: bool| {
        format!(
            r#"{{ stages = {{
  fetch = {{ cmd = "echo fetch >> runs.log && cp origin.txt data.txt", deps = ["origin.txt"], outs = ["data.txt"], frozen = {frozen} }},
  use = {{ cmd = "echo use >> runs.log && cp data.txt out.txt", deps = ["data.txt"], outs = ["out.txt"] }},
}} }}"#
        )
    };
    let ws = TestWorkspace::new(&pipeline(true));
    ws.write("origin.txt", "v1\n");
    ws.gourd(&["run"]).success();
    assert_eq!(ws.executions(), ["fetch", "use"], "frozen before its first run: it runs once");
    ws.write("origin.txt", "v2\n");
    let status = ws.gourd(&["status"]).success().stdout;
    assert!(status.contains("fetch") && !status.contains("stale"), "{status}");
    ws.gourd(&["run"]).success();
    assert_eq!(ws.executions().len(), 2, "nothing re-ran");
    // Its origin may even be gone; a lost output is restored from its result.
    ws.remove("origin.txt");
    ws.remove("data.txt");
    let run = ws.run_json(&[]).success();
    assert_eq!(run.statuses()["fetch"], "restored");
    assert_eq!(ws.read("data.txt"), "v1\n");
    // --force runs it (and fails here: its origin is gone).
    let forced = ws.gourd(&["run", "--force", "fetch"]);
    assert_eq!(forced.code, 1);
    // Unfrozen, it follows its deps again.
    ws.write("origin.txt", "v3\n");
    ws.write("gourd.ncl", &pipeline(false));
    ws.gourd(&["run"]).success();
    assert_eq!(ws.read("out.txt"), "v3\n");
}

/// `gourd add`: raw data under gourd's control, back on a fresh clone with
/// `gourd pull`, as `dvc add` and `dvc pull` do.
#[test]
fn tracked_sources_travel_through_the_remote_cache_to_a_fresh_clone() {
    let shared = tempfile::tempdir().unwrap();
    let hub = tempfile::tempdir().unwrap();
    let git = |dir: &std::path::Path, args: &[&str]| {
        let status = std::process::Command::new("git").args(args).current_dir(dir).output().unwrap();
        assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    };
    git(hub.path(), &["init", "-q", "--bare", "-b", "main"]);
    let pipeline = format!(
        r#"{{
  {}
  stages = {{
    prepare = {{ cmd = "echo prepare >> runs.log && wc -l < data/raw/rows.csv > count.txt", deps = ["data/raw"], outs = ["count.txt"] }},
  }},
}}
"#,
        folder_remote(shared.path())
    );
    let origin = TestWorkspace::new(&pipeline);
    origin.write("data/raw/rows.csv", "a\nb\nc\n");
    let added = origin.gourd(&["add", "data/raw"]).success();
    assert!(added.stdout.contains("Added `data/raw` (dir"), "{}", added.stdout);
    let sources: serde_json::Value = serde_json::from_str(&origin.read("gourd.sources.json")).unwrap();
    assert_eq!(sources["sources"]["data/raw"]["kind"], "dir", "{sources}");
    assert!(origin.read(".gitignore").contains("/data/raw\n"), "the data is not committed to git");
    origin.gourd(&["run"]).success();
    origin.write(".gitignore", &format!("{}runs.log\n", origin.read(".gitignore")));
    origin.git(&["add", "-A"]);
    origin.git(&["commit", "-qm", "data and pipeline"]);
    assert!(!origin.git(&["ls-files"]).contains("rows.csv"));
    origin.git(&["remote", "add", "origin", hub.path().to_str().unwrap()]);
    origin.git(&["push", "-q", "origin", "main"]);
    origin.gourd(&["push"]).success();

    let clone = TestWorkspace::clone_of(hub.path());
    assert!(!clone.exists("data/raw/rows.csv"));
    // The pipeline still checks: the missing data is tracked.
    clone.gourd(&["check"]).success();
    let pulled = clone.gourd(&["pull"]).success();
    assert!(pulled.stderr.contains("Restored 1 source(s): data/raw"), "{}", pulled.stderr);
    assert_eq!(clone.read("data/raw/rows.csv"), "a\nb\nc\n");
    clone.gourd(&["run"]).success();
    assert!(clone.executions().is_empty(), "restored, not executed");
    assert_eq!(clone.read("count.txt").trim(), "3");
    // Lost again: the next run brings it back by itself.
    clone.remove("data/raw");
    clone.gourd(&["run"]).success();
    assert_eq!(clone.read("data/raw/rows.csv"), "a\nb\nc\n");

    // New data is a new version once added again.
    origin.write("data/raw/rows.csv", "a\nb\nc\nd\n");
    origin.gourd(&["add", "data/raw"]).success();
    let again: serde_json::Value = serde_json::from_str(&origin.read("gourd.sources.json")).unwrap();
    assert_ne!(again["sources"]["data/raw"]["digest"], sources["sources"]["data/raw"]["digest"]);
}

#[test]
fn a_stage_output_over_a_tracked_source_is_an_error_in_the_pipeline() {
    let ws = TestWorkspace::new("{ stages = {} }\n");
    ws.write("data/r.csv", "raw\n");
    ws.gourd(&["add", "data/r.csv"]).success();
    for (field, outs) in [
        ("outs", "\"data/r.csv\""),
        ("outs", "\"data\""),
        ("outs", "{ path = \"data/r.csv\", kind = 'model }"),
        ("plots", "\"data/r.csv\""),
    ] {
        ws.write(
            "gourd.ncl",
            &format!("{{ stages = {{\n  s = {{ cmd = \"echo x > data/r.csv\", {field} = [{outs}] }},\n}} }}\n"),
        );
        for command in ["check", "run"] {
            let out = ws.gourd(&[command]);
            assert_eq!(out.code, 1, "{command} {outs}: {}", out.stderr);
            let said = format!("gourd.ncl:2`: stage `s`: field `{field}`");
            assert!(out.stderr.contains(&said), "{command} {outs}: {}", out.stderr);
            assert!(out.stderr.contains("overlaps `data/r.csv`, a tracked source"), "{command} {outs}: {}", out.stderr);
        }
        assert_eq!(ws.read("data/r.csv"), "raw\n");
        assert!(!ws.exists(".gourd-displaced"));
    }
}

#[test]
fn add_refuses_outputs_reserved_folders_and_missing_paths() {
    let ws = TestWorkspace::new(&model_pipeline(1, ""));
    for (path, why) in [
        ("model.bin", "overlaps output `model.bin` of stage `train`"),
        (".git", ".git"),
        ("nothing-here.csv", "does not exist"),
        ("gourd.ncl", "gourd's own file"),
    ] {
        let out = ws.gourd(&["add", path]);
        assert_eq!(out.code, 1, "{path}: {}", out.stderr);
        assert!(out.stderr.contains(why), "{path}: {}", out.stderr);
    }
    assert!(!ws.exists("gourd.sources.json"));
    // What the pipeline imports stays in git, where a clone reads it before
    // anything is pulled: alone, or in a folder added whole.
    ws.write("conf/params.yaml", "seed: 1\n");
    ws.write("conf/notes.txt", "x\n");
    ws.write("gourd.ncl", &model_pipeline(1, "").replacen("{", "let p = import \"conf/params.yaml\" in {", 1));
    ws.gourd(&["check"]).success();
    for path in ["conf/params.yaml", "conf", "./conf/"] {
        let out = ws.gourd(&["add", path]);
        assert_eq!(out.code, 1, "{path}: {}", out.stderr);
        assert!(out.stderr.contains("holds `conf/params.yaml`, which the pipeline reads"), "{path}: {}", out.stderr);
    }
    assert!(!ws.exists("gourd.sources.json"));
    ws.gourd(&["add", "conf/notes.txt"]).success();
    // Data git keeps already, alone or in a folder: kept twice, and the
    // ignore block would not take it out of git.
    ws.write("raw/table.csv", "a,b\n");
    ws.git(&["add", "raw/table.csv"]);
    ws.git(&["commit", "-qm", "table"]);
    for path in ["raw/table.csv", "raw"] {
        let out = ws.gourd(&["add", path]);
        assert_eq!(out.code, 1, "{path}: {}", out.stderr);
        assert!(out.stderr.contains(&format!("`{path}` is tracked by git")), "{path}: {}", out.stderr);
        assert!(out.stderr.contains("git rm -r --cached"), "{}", out.stderr);
    }
}

/// A plain `git clone` carries no lineage: `metrics diff` says how to get
/// it, and after `gourd pull` it answers.
#[test]
fn metrics_diff_on_a_plain_clone_points_to_gourd_pull() {
    let origin = TestWorkspace::new(
        r#"{ stages = { s = { cmd = "echo \"{\\\"score\\\": $(cat n.txt)}\" > m.json", deps = ["n.txt"], metrics = ["m.json"] } } }"#,
    );
    origin.write("n.txt", "1");
    origin.gourd(&["run"]).success();
    origin.git(&["add", "-A"]);
    origin.git(&["commit", "-qm", "one"]);
    origin.write("n.txt", "2");
    origin.gourd(&["run"]).success();
    origin.git(&["commit", "-qam", "two"]);
    let clone = TestWorkspace::clone_of(origin.root());
    let before = clone.gourd(&["metrics", "diff", "HEAD~1", "HEAD"]).success();
    assert!(before.stderr.contains("`gourd pull` fetches lineage"), "{}", before.stderr);
    clone.gourd(&["pull"]).success();
    let after = clone.gourd(&["metrics", "diff", "HEAD~1", "HEAD", "--json"]).success();
    let diff: serde_json::Value = serde_json::from_str(&after.stdout).unwrap();
    assert_eq!(diff["metrics"][0]["a"], 1, "{diff}");
    assert_eq!(diff["metrics"][0]["b"], 2, "{diff}");
    assert!(!after.stderr.contains("no lineage"), "{}", after.stderr);
}

/// A DVC habit: paths relative to `wdir`. gourd's are relative to the
/// workspace, and the error says so with the path meant.
#[test]
fn a_dep_written_relative_to_wdir_is_pointed_out() {
    let ws = TestWorkspace::new(
        r#"{ stages = { train = { cmd = "cat train.py > ../model.txt", wdir = "src", deps = ["train.py"], outs = ["model.txt"] } } }"#,
    );
    ws.write("src/train.py", "print(1)\n");
    let out = ws.gourd(&["check"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("did you mean `src/train.py`?"), "{}", out.stderr);
    assert!(out.stderr.contains("relative to the workspace, not to `wdir` (`src`)"), "{}", out.stderr);
    ws.write("gourd.ncl", &ws.read("gourd.ncl").replace(r#"["train.py"]"#, r#"["src/train.py"]"#));
    ws.gourd(&["run"]).success();
    assert_eq!(ws.read("model.txt"), "print(1)\n");
}

/// `gourd push` in a repository with no git remote yet: the results go to
/// the remote cache, and lineage waits, with a note rather than an error.
#[test]
fn push_without_a_git_remote_shares_results_and_says_lineage_waits() {
    let shared = tempfile::tempdir().unwrap();
    let ws = TestWorkspace::new(&model_pipeline(1, &folder_remote(shared.path())));
    ws.write("gourd.ncl", &model_pipeline(1, ""));
    ws.gourd(&["run"]).success();
    // The remote configured after the run: push sends what the run made.
    ws.write("gourd.ncl", &model_pipeline(1, &folder_remote(shared.path())));
    assert!(files_under(&shared.path().join("ac")).is_empty());
    let push = ws.gourd(&["push"]).success();
    assert!(push.stderr.contains("Pushed 1 results"), "{}", push.stderr);
    assert!(push.stderr.contains("no git remote `origin`"), "{}", push.stderr);
    assert_eq!(files_under(&shared.path().join("ac")).len(), 1);
    // `pull` likewise: a note, not git's error.
    let pull = ws.gourd(&["pull"]).success();
    assert!(pull.stderr.contains("no git remote `origin`: there is no lineage or registry to pull"), "{}", pull.stderr);
    assert!(!pull.stderr.contains("fatal"), "{}", pull.stderr);
    // A remote that is named but missing is still an error.
    ws.git(&["remote", "add", "upstream", "/nonexistent/repo"]);
    assert_eq!(ws.gourd(&["push", "elsewhere"]).code, 1);
    assert_eq!(ws.gourd(&["pull", "elsewhere"]).code, 1);
}

/// `gourd import` and `gourd import-url`: data from elsewhere as tracked
/// sources, their origin recorded.
#[test]
fn imports_from_a_repository_and_a_url_record_their_origin() {
    // A data registry: one file in git, one folder tracked by gourd.
    let shared = tempfile::tempdir().unwrap();
    let registry = TestWorkspace::new(&format!("{{ {} stages = {{}} }}", folder_remote(shared.path())));
    registry.write("labels.csv", "id,label\n1,pumpkin\n");
    registry.write("photos/a.txt", "photo a\n");
    registry.gourd(&["add", "photos"]).success();
    registry.git(&["add", "-A"]);
    registry.git(&["commit", "-qm", "data"]);
    registry.gourd(&["push"]).success();
    let head = registry.git(&["rev-parse", "HEAD"]).trim().to_string();

    let ws = TestWorkspace::new(&model_pipeline(1, ""));
    let repo = registry.root().to_str().unwrap();
    let out = ws.gourd(&["import", repo, "labels.csv", "-o", "data/labels.csv"]).success();
    assert!(out.stdout.contains("Imported `data/labels.csv` (file"), "{}", out.stdout);
    assert_eq!(ws.read("data/labels.csv"), "id,label\n1,pumpkin\n");
    ws.gourd(&["import", repo, "photos", "-o", "data/photos"]).success();
    assert_eq!(ws.read("data/photos/a.txt"), "photo a\n");
    let sources: serde_json::Value = serde_json::from_str(&ws.read("gourd.sources.json")).unwrap();
    assert_eq!(sources["sources"]["data/labels.csv"]["origin"], format!("{repo}@{head}:labels.csv"), "{sources}");
    assert_eq!(sources["sources"]["data/photos"]["origin"], format!("{repo}@{head}:photos"), "{sources}");

    let url = format!("file://{}", registry.path("labels.csv").display());
    ws.gourd(&["import-url", &url, "data/copy.csv"]).success();
    let sources: serde_json::Value = serde_json::from_str(&ws.read("gourd.sources.json")).unwrap();
    assert_eq!(sources["sources"]["data/copy.csv"]["origin"], url.as_str());

    // Mistakes: a path the repository lacks, an escape, a destination taken.
    let missing = ws.gourd(&["import", repo, "nothing.csv"]);
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.contains("has no `nothing.csv`"), "{}", missing.stderr);
    assert_eq!(ws.gourd(&["import", repo, "../etc"]).code, 1);
    let taken = ws.gourd(&["import-url", &url, "data/copy.csv"]);
    assert_eq!(taken.code, 1);
    assert!(taken.stderr.contains("`data/copy.csv` exists"), "{}", taken.stderr);
    assert_eq!(ws.gourd(&["import-url", "ftp://example.org/x", "x"]).code, 1);
}

/// A hostile `gourd.sources.json` (it comes with the repository) cannot
/// make a restore write into `.git` or through a link out of the workspace.
#[test]
fn a_sources_file_naming_git_or_a_link_out_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    let ws = TestWorkspace::new(&model_pipeline(1, ""));
    ws.write("data.csv", "a\n");
    ws.gourd(&["add", "data.csv"]).success();
    let good: serde_json::Value = serde_json::from_str(&ws.read("gourd.sources.json")).unwrap();
    let entry = good["sources"]["data.csv"].clone();
    std::os::unix::fs::symlink(outside.path(), ws.path("out-link")).unwrap();
    for evil in [".git/hooks/pre-commit", "out-link/planted.csv"] {
        let forged = serde_json::json!({ "gourd_sources": 1, "sources": { evil: entry } });
        ws.write("gourd.sources.json", &forged.to_string());
        let run = ws.gourd(&["run"]);
        assert_eq!(run.code, 1, "{evil}: {}", run.stderr);
        assert!(run.stderr.contains(&format!("source `{evil}`")), "{}", run.stderr);
    }
    assert!(!ws.exists(".git/hooks/pre-commit"));
    assert!(!outside.path().join("planted.csv").exists());
    assert!(ws.executions().is_empty(), "nothing ran");
}

#[test]
fn add_counts_what_a_link_leads_to_and_refuses_the_whole_workspace() {
    let ws = TestWorkspace::new("{ stages = { a = { cmd = \"true\" } } }\n");
    ws.write("elsewhere/table.csv", &"row\n".repeat(100));
    std::os::unix::fs::symlink("elsewhere/table.csv", ws.path("table.csv")).unwrap();
    ws.gourd(&["add", "table.csv"]).success();
    let sources: serde_json::Value = serde_json::from_str(&ws.read("gourd.sources.json")).unwrap();
    // The bytes cached are the file's 400, not the link's 19 of text.
    assert_eq!(sources["sources"]["table.csv"]["size"], 400, "{sources}");
    let whole = ws.gourd(&["add", "."]);
    assert_eq!(whole.code, 1, "{}", whole.stderr);
    assert!(whole.stderr.contains("`.` is the whole workspace"), "{}", whole.stderr);
    // A link out of the workspace would put outside files in the cache and,
    // at `gourd push`, on the remote; one to a stage's output is the output.
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "s3cr3t").unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret.txt"), ws.path("lsec")).unwrap();
    let out = ws.gourd(&["add", "lsec"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("`lsec` is a symbolic link out of the workspace"), "{}", out.stderr);
    ws.write("gourd.ncl", "{ stages = { a = { cmd = \"mkdir -p out; echo o > out/o\", outs = [\"out\"] } } }\n");
    ws.gourd(&["run"]).success();
    std::os::unix::fs::symlink("out", ws.path("lout")).unwrap();
    let out = ws.gourd(&["add", "lout"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("`lout` overlaps output `out` of stage `a`"), "{}", out.stderr);
    let sources: serde_json::Value = serde_json::from_str(&ws.read("gourd.sources.json")).unwrap();
    assert_eq!(sources["sources"].as_object().unwrap().len(), 1, "{sources}");
}

/// `import-url file://` of a private file keeps it private, as `gourd add`
/// does (curl writes its copy by the umask).
#[test]
fn a_private_local_file_imported_by_url_stays_private() {
    use std::os::unix::fs::PermissionsExt;
    let ws = TestWorkspace::new("{ stages = {} }\n");
    let outside = tempfile::tempdir().unwrap();
    let private = outside.path().join("priv.txt");
    std::fs::write(&private, "S\n").unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
    ws.gourd(&["import-url", &format!("file://{}", private.display()), "priv.txt"]).success();
    let mode = std::fs::metadata(ws.path("priv.txt")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
    assert_eq!(ws.read("priv.txt"), "S\n");
}

/// `gourd import` takes a repository, never an option for `git clone`.
#[test]
fn import_refuses_a_repository_that_reads_as_an_option() {
    let ws = TestWorkspace::new("{ stages = {} }\n");
    let marker = ws.path("pwned");
    let repo = format!("--upload-pack=touch {};git-upload-pack", marker.display());
    let out = ws.gourd(&["import", "--", &repo, "data/f.txt"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("a repository, not an option"), "{}", out.stderr);
    assert!(!marker.exists());
}
