//! The stage graph: edges, lookups, what the errors say, and which deps
//! `check_sources` finds missing and what it suggests instead.

use std::fs;

use crate::common::{pipeline, stage};
use gourd_core::graph::{Dag, GraphError, Suggestion};
use gourd_core::model::Stage;
use gourd_core::path::WsPath;

fn build(stages: &[Stage]) -> Result<Dag, GraphError> {
    Dag::build(&pipeline(stages))
}

#[test]
fn edges_and_neighbours() {
    // Sorted by name: a=0, b=1, c=2, d=3.
    let stages = [
        stage("a", "", &[], &["raw"]),
        stage("b", "", &["raw/part"], &["feat"]),
        stage("c", "", &["raw", "feat"], &["model"]),
        stage("d", "", &[], &["other"]),
    ];
    let dag = build(&stages).unwrap();
    assert_eq!(dag.edge_count(), 3);
    assert_eq!(dag.edges(), [(0, 1), (0, 2), (1, 2)]);
    assert_eq!(dag.upstream(2), [0, 1]);
    assert_eq!(dag.upstream(0), Vec::<usize>::new());
    assert_eq!(dag.downstream(0), [1, 2]);
    assert_eq!(dag.downstream(3), Vec::<usize>::new());
    let position = |i: usize| dag.order().iter().position(|&s| s == i).unwrap();
    assert!(position(0) < position(1) && position(1) < position(2));
    assert_eq!(dag.order().len(), 4);

    let path = |p: &str| WsPath::new(p).unwrap();
    assert_eq!(dag.producer(&path("raw")), Some(0));
    assert_eq!(dag.producer(&path("raw/deep/file")), Some(0));
    assert_eq!(dag.producer(&path("model")), Some(2));
    assert_eq!(dag.producer(&path("rawer")), None);
    assert_eq!(dag.producer(&path("src")), None);

    let p = pipeline(&stages);
    assert_eq!(dag.select(&p, &[]).unwrap().into_iter().collect::<Vec<_>>(), [0, 1, 2, 3]);
    assert_eq!(dag.select(&p, &["c".into(), "d".into()]).unwrap().into_iter().collect::<Vec<_>>(), [0, 1, 2, 3]);
    assert_eq!(dag.select(&p, &["b".into()]).unwrap().into_iter().collect::<Vec<_>>(), [0, 1]);
}

#[test]
fn a_dep_on_the_whole_workspace_follows_every_output() {
    let dag =
        build(&[stage("a", "", &[], &["x"]), stage("b", "", &[], &["y/z"]), stage("c", "", &["."], &[])]).unwrap();
    assert_eq!(dag.edges(), [(0, 2), (1, 2)]);
}

#[test]
fn a_metrics_file_may_sit_in_its_own_stages_out_folder_only() {
    let mut own = stage("a", "", &[], &["eval"]);
    own.metrics = vec![WsPath::new("eval/metrics.json").unwrap()];
    let dag = build(&[own.clone()]).unwrap();
    assert_eq!(dag.edge_count(), 0);

    // Someone else's metrics inside `a`'s folder.
    let mut other = stage("b", "", &[], &[]);
    other.metrics = vec![WsPath::new("eval/metrics.json").unwrap()];
    let err = build(&[stage("a", "", &[], &["eval"]), other]).unwrap_err();
    assert_eq!(err.to_string(), "output `eval/metrics.json` of stage `b` lies inside output `eval` of stage `a`");
    // An out (not a metrics file) in its own stage's folder.
    let err = build(&[stage("a", "", &[], &["eval", "eval/inner"])]).unwrap_err();
    assert_eq!(err.to_string(), "output `eval/inner` of stage `a` lies inside output `eval` of stage `a`");
}

#[test]
fn what_the_errors_say() {
    let cycle = build(&[
        stage("a", "", &["z"], &["x"]),
        stage("b", "", &["x"], &["y"]),
        stage("c", "", &["y"], &["z"]),
        stage("d", "", &["x"], &["w"]),
    ])
    .unwrap_err();
    assert_eq!(cycle.to_string(), "the stages `a`, `b`, `c` form a cycle");
    let twice = build(&[stage("a", "", &[], &["x", "x"])]).unwrap_err();
    assert_eq!(twice.to_string(), "stage `a` lists the output `x` twice");
    let duplicate = build(&[stage("a", "", &[], &["x"]), stage("b", "", &[], &["x"])]).unwrap_err();
    assert_eq!(duplicate.to_string(), "stages `a` and `b` both write `x`");
    let own = build(&[stage("a", "", &["x"], &["x/y"])]).unwrap_err();
    assert_eq!(own.to_string(), "stage `a` depends on `x`, which overlaps its own output `x/y`");
    let p = pipeline(&[stage("train", "", &[], &[]), stage("eval", "", &[], &[])]);
    let dag = Dag::build(&p).unwrap();
    let unknown = dag.select(&p, &["trian".into()]).unwrap_err();
    assert_eq!(unknown, GraphError::UnknownStage { name: "trian".into(), suggestion: Some("train".into()) });
    assert_eq!(unknown.to_string(), "no stage is named `trian`");
    assert_eq!(
        GraphError::unknown_stage(&p, "zzzzzz"),
        GraphError::UnknownStage { name: "zzzzzz".into(), suggestion: None }
    );
}

fn check(stages: &[Stage], root: &std::path::Path, tracked: &[&str]) -> Result<(), GraphError> {
    let p = pipeline(stages);
    let tracked: Vec<WsPath> = tracked.iter().map(|t| WsPath::new(t).unwrap()).collect();
    Dag::build(&p).unwrap().check_sources(&p, root, &tracked)
}

#[test]
fn missing_deps_and_what_they_were_probably_meant_to_be() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("data")).unwrap();
    fs::write(root.join("data/train.csv"), "x").unwrap();
    fs::create_dir_all(root.join(".gourd")).unwrap();

    // Present, produced, or tracked (at, above or under the dep): fine.
    let ok =
        [stage("a", "", &["data/train.csv", "data"], &["prepared"]), stage("b", "", &["prepared/part"], &["model"])];
    check(&ok, root, &[]).unwrap();
    check(&[stage("a", "", &["src/x.py"], &[])], root, &["src/x.py"]).unwrap();
    check(&[stage("a", "", &["src/x.py"], &[])], root, &["src"]).unwrap();
    check(&[stage("a", "", &["src"], &[])], root, &["src/x.py"]).unwrap();
    let mut frozen = stage("a", "", &["gone"], &[]);
    frozen.frozen = true;
    check(&[frozen], root, &[]).unwrap();

    let missing = |stages: &[Stage], tracked: &[&str]| match check(stages, root, tracked).unwrap_err() {
        GraphError::MissingDep { stage, dep, suggestion } => (stage, dep, suggestion),
        other => panic!("{other:?}"),
    };
    // Not tracked: a path that only shares a prefix with a tracked one.
    assert_eq!(missing(&[stage("a", "", &["srcx"], &[])], &["src"]).1, "srcx");
    assert_eq!(missing(&[stage("a", "", &["src"], &[])], &["srcx/y"]).1, "src");
    // The nearest output, named with its stage.
    let (stage_name, dep, suggestion) =
        missing(&[stage("a", "", &[], &["prepared"]), stage("b", "", &["prepraed"], &[])], &[]);
    assert_eq!((stage_name.as_str(), dep.as_str()), ("b", "prepraed"));
    assert_eq!(suggestion, Some(Suggestion::Output { path: "prepared".into(), stage: "a".into() }));
    // The nearest file in the folder it names.
    let (_, _, suggestion) = missing(&[stage("a", "", &["data/trian.csv"], &[])], &[]);
    assert_eq!(suggestion, Some(Suggestion::Existing { path: "data/train.csv".into() }));
    let (_, _, suggestion) = missing(&[stage("a", "", &["dat"], &[])], &[]);
    assert_eq!(suggestion, Some(Suggestion::Existing { path: "data".into() }));
    // Never gourd's own folder.
    let (_, _, suggestion) = missing(&[stage("a", "", &[".gourdd"], &[])], &[]);
    assert_eq!(suggestion, None);
    // Nothing near at all.
    let (_, _, suggestion) = missing(&[stage("a", "", &["nothing/like/it"], &[])], &[]);
    assert_eq!(suggestion, None);
    // Relative to the stage's wdir, as DVC has it.
    let mut in_data = stage("a", "", &["train.csv"], &[]);
    in_data.wdir = WsPath::new("data").unwrap();
    let (_, _, suggestion) = missing(&[in_data], &[]);
    assert_eq!(suggestion, Some(Suggestion::UnderWdir { path: "data/train.csv".into(), wdir: "data".into() }));
    // Not there either: no such suggestion.
    let mut in_data = stage("a", "", &["absent.csv"], &[]);
    in_data.wdir = WsPath::new("data").unwrap();
    assert_eq!(missing(&[in_data], &[]).2, None);
    // A dep under a file.
    let (_, dep, _) = missing(&[stage("a", "", &["data/train.csv/x"], &[])], &[]);
    assert_eq!(dep, "data/train.csv/x");
    let err = check(&[stage("a", "", &["nope"], &[])], root, &[]).unwrap_err();
    assert_eq!(err.to_string(), "stage `a` depends on `nope`, which does not exist and no stage writes");
}

#[test]
fn deps_that_cannot_be_looked_at() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
    let err = check(&[stage("a", "", &["loop"], &[])], root, &[]).unwrap_err();
    assert_eq!(err, GraphError::DepIsLinkLoop { stage: "a".into(), dep: "loop".into() });
    assert_eq!(err.to_string(), "stage `a` depends on `loop`, a symbolic link that loops back on itself");
    // Where gourd and git write while stages run, reached through a link.
    std::fs::create_dir(root.join(".git")).unwrap();
    std::fs::create_dir(root.join(".gourd")).unwrap();
    std::fs::create_dir_all(root.join(".git/refs")).unwrap();
    std::fs::create_dir_all(root.join(".git/objects")).unwrap();
    std::fs::create_dir_all(root.join("data")).unwrap();
    let workspace = "the whole workspace (which holds `.gourd`), or a folder above it";
    for (link, target) in [
        ("gl", ".git"),
        ("gg", ".gourd"),
        ("self", "."),
        ("up", ".."),
        ("go", ".git/objects"),
        ("data/gl", "../.git"),
        ("chain", "gl"),
    ] {
        std::os::unix::fs::symlink(target, root.join(link)).unwrap();
    }
    for (dep, what) in [
        ("gl", "in `.git`"),
        ("gg", "in `.gourd`"),
        ("self", workspace),
        ("up", workspace),
        ("go", "in `.git`"),
        ("gl/refs", "in `.git`"),
        ("data/gl", "in `.git`"),
        ("chain", "in `.git`"),
    ] {
        let err = check(&[stage("a", "", &[dep], &[])], root, &[]).unwrap_err();
        assert_eq!(err, GraphError::DepIsReserved { stage: "a".into(), dep: dep.into(), what }, "{dep}");
        // `gourd status`'s cheaper check resolves only the folders deps lie
        // in (a dep that is a link itself is refused when it is hashed),
        // and leaves missing deps to the caller.
        let p = pipeline(&[stage("a", "", &["nothing", dep], &[])]);
        let links = Dag::build(&p).unwrap().check_dep_links(&p, root);
        if dep == "gl/refs" {
            assert_eq!(
                links.unwrap_err(),
                GraphError::DepIsReserved { stage: "a".into(), dep: dep.into(), what: "in `.git`" }
            );
        } else {
            links.unwrap();
        }
    }
    assert!(check(&[stage("a", "", &["gl"], &[])], root, &[]).unwrap_err().to_string().contains("would never settle"));
    // A link to anything else is a dep like any other, outside the
    // workspace too (data kept elsewhere, linked in).
    std::fs::write(root.join("data/x"), "x").unwrap();
    std::os::unix::fs::symlink("data", root.join("d")).unwrap();
    check(&[stage("a", "", &["d", "d/x"], &[])], root, &[]).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::write(elsewhere.path().join("y"), "y").unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), root.join("far")).unwrap();
    check(&[stage("a", "", &["far", "far/y"], &[])], root, &[]).unwrap();
    let long = "x".repeat(300);
    let err = check(&[stage("a", "", &[&long], &[])], root, &[]).unwrap_err();
    let GraphError::DepUnreadable { stage, dep, reason } = &err else { panic!("{err:?}") };
    assert_eq!((stage.as_str(), dep.as_str()), ("a", long.as_str()));
    assert!(reason.contains("too long"), "{reason}");
}
