//! `gourd serve` refusing what it cannot serve, in the default build (no
//! libtorch needed): each refusal exits 1, names the problem, and starts
//! nothing.

mod common;

use common::TestWorkspace;

fn refused(ws: &TestWorkspace, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut all = vec!["serve"];
    all.extend_from_slice(args);
    let run = ws.gourd_env(&all, env);
    assert_eq!(run.code, 1, "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    run.normalized(ws)
}

#[test]
fn what_is_neither_a_model_folder_nor_a_reference_is_named() {
    let ws = TestWorkspace::new("{ stages = {} }");
    insta::assert_snapshot!(refused(&ws, &["models/nothing"], &[]), @r"
    error: `models/nothing` is neither a model folder nor a registry reference

    hint: give the folder a built-in `train` or `select` step wrote (`models/best`), or `NAME@STAGE` (`pumpkin@prod`)
    ");
    ws.write("models/best/weights.bin", "not a model");
    insta::assert_snapshot!(refused(&ws, &["models/best"], &[]), @r"
    error: `models/best` is not a model folder: it has no `model.json`

    hint: serve the folder a built-in `train` or `select` step wrote (`models/best`)
    ");
}

#[test]
fn a_reference_the_registry_does_not_hold_is_named() {
    let ws = TestWorkspace::new("{ stages = {} }");
    let message = refused(&ws, &["pumpkin@prod"], &[]);
    assert!(message.contains("pumpkin"), "{message}");
    // Nothing fetched is left behind.
    assert!(common::files_under(&ws.path(".gourd/serve")).is_empty());
}

#[test]
fn serving_without_gourd_step_says_how_to_get_it() {
    let ws = TestWorkspace::new("{ stages = {} }");
    ws.write("models/best/model.json", r#"{"input": [3, 8, 8], "labels": ["a", "b"], "layers": []}"#);
    ws.write("models/best/model.safetensors", "");
    insta::assert_snapshot!(refused(&ws, &["models/best"], &[("GOURD_STEP", "/nonexistent/gourd-step")]), @r#"
    error: `gourd serve` runs models on libtorch, but `gourd-step` was not found beside `gourd` (or at `GOURD_STEP`)

    hint: install gourd with its torch extra (`pip install "gourd-ml[torch]"`), or build it with `--features torch` (see docs/torch.md)
    "#);
}

#[test]
fn bad_settings_are_refused_before_anything_starts() {
    let ws = TestWorkspace::new("{ stages = {} }");
    for (args, expected) in [
        (vec!["models/best", "--max-batch-size", "0"], "`--max-batch-size` must be at least 1"),
        (vec!["models/best", "--queue-size", "0"], "`--queue-size` must be at least 1"),
        (vec!["models/best", "--max-request-rows", "0"], "`--max-request-rows` must be at least 1"),
        (vec!["models/best", "--timeout-ms", "0"], "`--timeout-ms` must be at least 1"),
        (vec!["models/best", "--max-body-bytes", "0"], "`--max-body-bytes` must be at least 1"),
        (vec!["models/best", "--poll", "0"], "`--poll` must be a positive number"),
        (vec!["models/best", "--max-queue-delay-ms=-1"], "`--max-queue-delay-ms` must be zero or more"),
        (vec!["models/best", "--max-queue-delay-ms", "1e300"], "is not below `--timeout-ms 30000`"),
        (vec!["models/best", "--max-queue-delay-ms", "500", "--timeout-ms", "500"], "is not below `--timeout-ms 500`"),
        (vec!["models/best", "--threads", "0"], "`--threads` must be at least 1"),
        (vec!["models/best", "--log-dir", ".git/inputs"], "is inside `.git` or `.gourd`"),
        (vec!["models/best", "--log-dir", "sub/../.gourd"], "is inside `.git` or `.gourd`"),
    ] {
        let message = refused(&ws, &args, &[]);
        assert!(message.contains(expected), "{args:?}: {message}");
    }
}

/// A server killed outright leaves its scratch folder (the model versions
/// it fetched); the next `gourd serve` removes it, and only it.
#[test]
fn folders_left_by_killed_servers_are_removed_and_live_ones_kept() {
    let ws = TestWorkspace::new("{ stages = {} }");
    ws.write(".gourd/serve/serve-killed/.alive", "");
    ws.write(".gourd/serve/serve-killed/pumpkin-3/model.pt", "weights");
    ws.write(".gourd/serve/serve-live/.alive", "");
    ws.write(".gourd/serve/serve-unknown/model.pt", "no .alive: not known to be a server's");
    ws.write("elsewhere/keep.txt", "kept");
    std::os::unix::fs::symlink(ws.path("elsewhere"), ws.path(".gourd/serve/serve-link")).unwrap();
    let live = std::fs::File::open(ws.path(".gourd/serve/serve-live/.alive")).unwrap();
    live.lock().unwrap();
    refused(&ws, &["models/nothing"], &[]);
    assert!(!ws.path(".gourd/serve/serve-killed").exists(), "the killed server's folder is removed");
    assert!(ws.path(".gourd/serve/serve-live/.alive").exists(), "a running server's folder stays");
    assert!(ws.path(".gourd/serve/serve-unknown/model.pt").exists(), "a folder without `.alive` stays");
    assert!(ws.path("elsewhere/keep.txt").exists(), "a link is not followed");
    assert!(std::fs::symlink_metadata(ws.path(".gourd/serve/serve-link")).is_ok());
    drop(live);
    refused(&ws, &["models/nothing"], &[]);
    assert!(!ws.path(".gourd/serve/serve-live").exists(), "once its server is gone, it goes");
}

/// `.gourd/serve` as a link out of the workspace: gourd neither puts its
/// scratch folder there nor removes anything it finds there.
#[test]
fn a_link_at_gourd_serve_is_not_followed() {
    let ws = TestWorkspace::new("{ stages = {} }");
    ws.write("outside/serve-notes/.alive", "");
    ws.write("outside/serve-notes/notes.txt", "the user's");
    std::fs::create_dir_all(ws.path(".gourd")).unwrap();
    std::os::unix::fs::symlink(ws.path("outside"), ws.path(".gourd/serve")).unwrap();
    refused(&ws, &["models/nothing"], &[]);
    assert!(ws.path("outside/serve-notes/notes.txt").exists(), "nothing removed through the link");
    assert_eq!(std::fs::read_dir(ws.path("outside")).unwrap().count(), 1, "nothing made through the link");
}
