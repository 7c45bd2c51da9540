//! Staleness as `gourd status` and `gourd explain` report it: each state,
//! and the reason given for it.

use std::fs;

use crate::common::{Fixture, options, pipeline, stage};
use gourd_core::graph::Dag;
use gourd_core::model::{Output, OutputKind, Stage};
use gourd_core::path::WsPath;
use gourd_core::plan::{StageState, StageStatus, assess, status};

fn statuses(fx: &Fixture, stages: &[Stage]) -> Vec<StageStatus> {
    let p = pipeline(stages);
    let dag = Dag::build(&p).unwrap();
    let selected = dag.select(&p, &[]).unwrap();
    status(&fx.ws, &p, &dag, &selected).unwrap()
}

fn reasons_of(fx: &Fixture, stages: &[Stage], name: &str) -> (bool, bool, Vec<String>) {
    let s = statuses(fx, stages).into_iter().find(|s| s.name == name).unwrap();
    (s.fresh, s.restorable, s.reasons)
}

fn train(lr: u32) -> Stage {
    let mut s =
        stage("train", "cat in.txt > model.txt; echo \"$GOURD_PARAM_LR\" >> model.txt", &["in.txt"], &["model.txt"]);
    s.params = serde_json::json!({ "lr": lr });
    s
}

#[test]
fn never_run_then_fresh_then_what_changed() {
    let fx = Fixture::new();
    fx.write("in.txt", "1\n");
    let eval = stage("eval", "cat model.txt > score.txt", &["model.txt"], &["score.txt"]);
    let stages = [train(1), eval.clone()];
    let all = statuses(&fx, &stages);
    assert_eq!(all[0].name, "train");
    assert_eq!(all[0].reasons, ["never run"]);
    assert!(all[0].key.is_some());
    assert_eq!((all[1].fresh, all[1].restorable, all[1].key), (false, false, None));
    assert_eq!(all[1].reasons, ["upstream `train` is stale"]);

    fx.run(&stages, options());
    let all = statuses(&fx, &stages);
    assert!(all.iter().all(|s| s.fresh && !s.restorable && s.reasons.is_empty()), "{all:?}");

    // A param changed since the last run.
    assert_eq!(reasons_of(&fx, &[train(2)], "train"), (false, false, vec!["param `lr` changed".to_string()]));
    // A dep changed.
    fx.write("in.txt", "2\n");
    assert_eq!(reasons_of(&fx, &stages, "train").2, ["dep `in.txt` changed"]);
    fx.write("in.txt", "1\n");
    assert!(reasons_of(&fx, &stages, "train").0);

    // An output edited or gone: restorable from the cache.
    fx.write("model.txt", "edited\n");
    assert_eq!(reasons_of(&fx, &stages, "train"), (false, true, vec!["out `model.txt` was modified".to_string()]));
    fs::remove_file(fx.root().join("model.txt")).unwrap();
    assert_eq!(reasons_of(&fx, &stages, "train"), (false, true, vec!["out `model.txt` is missing".to_string()]));
    // Once `train` is restored, `eval` has nothing to do.
    assert_eq!(reasons_of(&fx, &stages, "eval"), (true, false, vec![]));
    // Below a stage that must run, nothing is known.
    fx.write("in.txt", "3\n");
    assert_eq!(reasons_of(&fx, &stages, "eval"), (false, false, vec!["upstream `train` is stale".to_string()]));
}

/// Back on a branch whose results are all cached: a stage below one that
/// would be restored is assessed on the restored outputs, as its result
/// recorded them, so that its key is known (`gc` keeps its result) and it
/// is said to be restorable (`run --dry-run`), as the run then finds.
#[test]
fn below_a_stage_that_would_be_restored_the_key_is_known() {
    let fx = Fixture::new();
    fx.write("in.txt", "1\n");
    let at = |lr| {
        vec![
            train(lr),
            stage("eval", "cat model.txt > score.txt", &["model.txt"], &["score.txt"]),
            stage(
                "report",
                "mkdir -p report; cat score.txt > report/score; echo r > report/other",
                &["score.txt"],
                &["report"],
            ),
            // In a restored folder, and the folder itself.
            stage("read", "cat report/score > read.txt", &["report/score"], &["read.txt"]),
            stage("whole", "cat report/* > whole.txt", &["report"], &["whole.txt"]),
            // Above a restored output: not known until it is restored.
            stage("top", "mkdir -p top; cat score.txt > top/s", &["score.txt"], &["top/s"]),
            stage("over", "ls top > over.txt", &["top"], &["over.txt"]),
        ]
    };
    fx.run(&at(1), options());
    let first = statuses(&fx, &at(1));
    fx.run(&at(2), options());
    let back = statuses(&fx, &at(1));
    for (now, then) in back.iter().zip(&first) {
        if now.name == "over" {
            assert_eq!((now.fresh, now.restorable, now.key), (false, false, None), "{now:?}");
            assert_eq!(now.reasons, ["upstream `top` is stale"]);
            continue;
        }
        assert_eq!((now.fresh, now.restorable), (false, true), "{now:?}");
        assert_eq!(now.key, then.key, "{}", now.name);
    }
    // A dep inside a restored folder whose listing the store lost.
    let report_key = back.iter().find(|s| s.name == "report").unwrap().key.unwrap();
    let folder = fx.ws.store.action(&report_key).unwrap().outputs["report"].digest.to_string();
    let listing = fx.root().join(format!(".gourd/cache-v1/trees/{}/{}.json", &folder[..2], &folder[2..]));
    assert!(listing.exists(), "{}", listing.display());
    fs::remove_file(&listing).unwrap();
    let all = statuses(&fx, &at(1));
    let read = all.iter().find(|s| s.name == "read").unwrap();
    assert_eq!((read.key, &read.reasons[..]), (None, &["upstream `report` is stale".to_string()][..]));
    let whole = all.iter().find(|s| s.name == "whole").unwrap();
    assert!(whole.restorable, "the folder itself is known by its digest: {whole:?}");
    // The run agrees: everything is restored but `report`, whose listing
    // is gone, and `over`, whose output is the same at both.
    let (summary, events) = fx.run(&at(1), options());
    assert_eq!((summary.ran, summary.restored, summary.up_to_date), (1, 5, 1), "{events:?}");
    assert!(events.contains(&"finished report ran".to_string()), "{events:?}");
}

#[test]
fn outputs_of_an_earlier_run_are_explained_by_what_changed_since() {
    let fx = Fixture::new();
    fx.write("in.txt", "1\n");
    fx.run(&[train(1)], options());
    fx.run(&[train(2)], options());
    // Back to lr = 1: its result is cached, the workspace holds lr = 2's.
    let (fresh, restorable, reasons) = reasons_of(&fx, &[train(1)], "train");
    assert_eq!((fresh, restorable), (false, true));
    assert_eq!(reasons, ["param `lr` changed"]);
    let assessment = assess(&fx.ws, &train(1), false).unwrap().unwrap();
    assert!(matches!(assessment.state, StageState::Restorable(..)));
    // A result no longer cached: what changed since the last run, or that
    // nothing is cached when nothing did.
    fx.ws.store.drop_action(&assessment.key);
    assert_eq!(reasons_of(&fx, &[train(1)], "train").2, ["param `lr` changed"]);
    let last = fx.ws.last_run("train").unwrap();
    fx.ws.store.drop_action(&last.key);
    assert_eq!(reasons_of(&fx, &[train(2)], "train").2, ["no cached result"]);
}

#[test]
fn a_folder_dep_says_how_many_files_changed_in_it() {
    let fx = Fixture::new();
    fx.write("data/a.csv", "1");
    fx.write("data/b.csv", "2");
    let s = stage("s", "ls data > list.txt", &["data"], &["list.txt"]);
    fx.run(&[s.clone()], options());
    fx.write("data/c.csv", "3");
    fx.write("data/d.csv", "4");
    fs::remove_file(fx.root().join("data/a.csv")).unwrap();
    assert_eq!(reasons_of(&fx, &[s.clone()], "s").2, ["dep `data` changed: 2 files added, 1 removed"]);
    fx.run(&[s.clone()], options());
    // A file made executable: the folder changed, no file was added,
    // removed or modified.
    fs::set_permissions(fx.root().join("data/b.csv"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    assert_eq!(reasons_of(&fx, &[s.clone()], "s").2, ["dep `data` changed"]);
    fx.write("data/a.csv", "1");
    // Without the old listing, only that it changed.
    fs::remove_dir_all(fx.ws.gourd_dir.join("cache-v1/trees")).unwrap();
    fs::create_dir(fx.ws.gourd_dir.join("cache-v1/trees")).unwrap();
    assert_eq!(reasons_of(&fx, &[s], "s").2, ["dep `data` changed"]);
}

#[test]
fn what_cannot_be_restored_must_run() {
    let fx = Fixture::new();
    let mut s = stage("s", "echo a > kept.txt; echo b > uncached.txt", &[], &["kept.txt"]);
    s.outs.push(Output {
        path: WsPath::new("uncached.txt").unwrap(),
        kind: OutputKind::Data,
        cache: false,
        persist: false,
    });
    fx.run(&[s.clone()], options());
    fs::remove_file(fx.root().join("uncached.txt")).unwrap();
    assert_eq!(reasons_of(&fx, &[s.clone()], "s"), (false, false, vec!["out `uncached.txt` is missing".to_string()]));
    fx.run(&[s.clone()], options());

    // A damaged cache object is found, removed, and said.
    let action = fx.ws.store.action(&fx.ws.last_run("s").unwrap().key).unwrap();
    let object = fx.ws.store.object_path(&action.outputs["kept.txt"].digest);
    fs::set_permissions(&object, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    fs::write(&object, "damaged").unwrap();
    fs::remove_file(fx.root().join("kept.txt")).unwrap();
    let (fresh, restorable, reasons) = reasons_of(&fx, &[s.clone()], "s");
    assert_eq!((fresh, restorable), (false, false));
    assert_eq!(reasons, ["out `kept.txt` is missing", "cache object of out `kept.txt` is corrupt (removed)"]);
    assert!(!object.exists());
    // And once removed, it is simply missing.
    assert_eq!(reasons_of(&fx, &[s], "s").2, ["out `kept.txt` is missing"]);
}

#[test]
fn forced_always_run_missing_deps_and_frozen_stages() {
    let fx = Fixture::new();
    fx.write("in.txt", "1\n");
    fx.run(&[train(1)], options());
    let forced = assess(&fx.ws, &train(1), true).unwrap().unwrap();
    assert!(matches!(&forced.state, StageState::Stale(r) if r == &["forced"]));
    let mut always = train(1);
    always.always_run = true;
    let StageState::Stale(reasons) = assess(&fx.ws, &always, false).unwrap().unwrap().state else { panic!() };
    assert_eq!(reasons, ["always_run is set"]);

    let missing = stage("m", "true", &["in.txt", "absent"], &["m.txt"]);
    assert_eq!(assess(&fx.ws, &missing, false).unwrap().unwrap_err(), WsPath::new("absent").unwrap());
    assert_eq!(reasons_of(&fx, &[missing], "m").2, ["dep `absent` is missing"]);

    // Frozen: its last result stands, deps unread.
    let mut frozen = train(1);
    frozen.frozen = true;
    fs::remove_file(fx.root().join("in.txt")).unwrap();
    assert!(matches!(assess(&fx.ws, &frozen, false).unwrap().unwrap().state, StageState::UpToDate(_)));
    fs::remove_file(fx.root().join("model.txt")).unwrap();
    assert!(matches!(assess(&fx.ws, &frozen, false).unwrap().unwrap().state, StageState::Restorable(..)));
    // Forced, it reads its deps again.
    assert!(assess(&fx.ws, &frozen, true).unwrap().is_err());
}

/// Stages are assessed wave by wave on all cores: the answers and their order
/// are those of assessing each stage in topological order, whatever the
/// shape: many independent stages, a diamond, and a stage below two stale ones.
#[test]
fn statuses_come_in_topological_order_with_each_stale_upstream_named() {
    let fx = Fixture::new();
    let mut stages = Vec::new();
    for i in 0..40 {
        fx.write(&format!("in{i}.txt"), &format!("{i}\n"));
        stages.push(stage(
            &format!("leaf{i:02}"),
            &format!("cat in{i}.txt > leaf{i}.txt"),
            &[&format!("in{i}.txt")],
            &[&format!("leaf{i}.txt")],
        ));
    }
    stages.push(stage("left", "cat leaf0.txt > left.txt", &["leaf0.txt"], &["left.txt"]));
    stages.push(stage("right", "cat leaf1.txt > right.txt", &["leaf1.txt"], &["right.txt"]));
    stages.push(stage("join", "cat left.txt right.txt > join.txt", &["left.txt", "right.txt"], &["join.txt"]));
    fx.run(&stages, options());
    let p = pipeline(&stages);
    let dag = Dag::build(&p).unwrap();
    let order: Vec<&str> = dag.order().iter().map(|&i| p.stages[i].name.as_str()).collect();
    let all = statuses(&fx, &stages);
    assert_eq!(all.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), order);
    assert!(all.iter().all(|s| s.fresh), "{all:?}");

    // Both sides of the diamond stale: the join names each, in order.
    fx.write("in0.txt", "changed\n");
    fx.write("in1.txt", "changed\n");
    fx.write("in7.txt", "changed\n");
    let all = statuses(&fx, &stages);
    assert_eq!(all.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), order);
    let stale: Vec<&str> = all.iter().filter(|s| !s.fresh).map(|s| s.name.as_str()).collect();
    assert_eq!(stale.len(), 6, "{all:?}");
    for name in ["leaf00", "leaf01", "leaf07", "left", "right", "join"] {
        assert!(stale.contains(&name), "{name} should be stale: {all:?}");
    }
    let join = all.iter().find(|s| s.name == "join").unwrap();
    assert_eq!(join.reasons, ["upstream `left` is stale", "upstream `right` is stale"]);
    assert_eq!(all.iter().find(|s| s.name == "left").unwrap().reasons, ["upstream `leaf00` is stale"]);

    // Only the join and what it needs.
    let selected = dag.select(&p, &["join".to_string()]).unwrap();
    let some = status(&fx.ws, &p, &dag, &selected).unwrap();
    let names: Vec<&str> = some.iter().map(|s| s.name.as_str()).collect();
    let expected: Vec<&str> =
        order.iter().copied().filter(|n| ["leaf00", "leaf01", "left", "right", "join"].contains(n)).collect();
    assert_eq!(names, expected);
}

#[test]
fn a_frozen_stage_never_run_here_with_its_outputs_there_is_fresh() {
    let fx = Fixture::new();
    fx.write("data.csv", "a\n");
    let mut fetch = stage("fetch", "exit 6", &["origin"], &["data.csv"]);
    fetch.frozen = true;
    let status = &statuses(&fx, std::slice::from_ref(&fetch))[0];
    assert!(status.fresh && status.reasons.is_empty() && status.key.is_none(), "{status:?}");
    fs::remove_file(fx.root().join("data.csv")).unwrap();
    let (fresh, _, reasons) = reasons_of(&fx, &[fetch], "fetch");
    assert!(!fresh, "{reasons:?}");
}

#[test]
fn a_stage_whose_runs_all_failed_is_not_said_never_run() {
    let fx = Fixture::new();
    let failing = stage("f", "exit 3", &[], &["f.txt"]);
    assert!(!fx.ws.attempted("f"));
    assert_eq!(reasons_of(&fx, std::slice::from_ref(&failing), "f").2, ["never run"]);
    fx.run(std::slice::from_ref(&failing), options());
    assert!(fx.ws.attempted("f"));
    assert_eq!(
        reasons_of(&fx, std::slice::from_ref(&failing), "f").2,
        ["never run to the end (its last run failed or was stopped)"]
    );
    // Once it succeeds, the note goes.
    let fixed = stage("f", "echo ok > f.txt", &[], &["f.txt"]);
    fx.run(std::slice::from_ref(&fixed), options());
    assert!(!fx.ws.attempted("f"));
}
