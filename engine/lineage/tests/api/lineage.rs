//! Lineage on `refs/gourd/lineage`: the layout of its commits, reading it
//! back at any point, workspaces in subfolders, the workspace's state,
//! pulls from another clone, and what happens when git refuses.

use std::collections::BTreeSet;
use std::path::Path;

use gourd_lineage::{GITIGNORE_BEGIN, GITIGNORE_END, Integration, LINEAGE_REF, Lineage, LineageError, Record, RunInfo};

use crate::common::{commit, empty_repo, git, git_env, record, repo, run_info};

fn open(dir: &Path) -> Lineage {
    Lineage::open(dir).unwrap().expect("a repository")
}

fn show<T: serde::de::DeserializeOwned>(dir: &Path, what: &str) -> T {
    serde_json::from_str(&git(dir, &["show", what])).unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn tip(dir: &Path) -> String {
    git(dir, &["rev-parse", LINEAGE_REF])
}

fn keys(records: &std::collections::BTreeMap<String, Record>) -> Vec<(&str, &str)> {
    records.iter().map(|(stage, r)| (stage.as_str(), r.key.as_str())).collect()
}

#[test]
fn a_run_is_a_commit_holding_run_json_and_a_record_per_stage() {
    let dir = repo();
    let head = git(dir.path(), &["rev-parse", "HEAD"]);
    let lineage = open(dir.path());
    let run = RunInfo { workspace_commit: Some(head.clone()), workspace_dirty: false, ..run_info(&["a", "b"]) };
    let (a, b) = (record("a", "k1", "t1"), record("b", "k2", "t2"));
    let id = lineage.record(&run, &[a.clone(), b.clone()]).unwrap();
    assert_eq!(id, tip(dir.path()));
    assert_eq!(show::<RunInfo>(dir.path(), &format!("{LINEAGE_REF}:run.json")), run);
    assert_eq!(show::<Record>(dir.path(), &format!("{LINEAGE_REF}:stages/a.json")), a);
    assert_eq!(show::<Record>(dir.path(), &format!("{LINEAGE_REF}:stages/b.json")), b);
    assert_eq!(
        git(dir.path(), &["ls-tree", "-r", "--name-only", LINEAGE_REF]),
        "run.json\nstages/a.json\nstages/b.json"
    );
    let message = git(dir.path(), &["log", "-1", "--format=%B", LINEAGE_REF]);
    assert_eq!(message, format!("gourd run: a, b\n\nworkspace commit: {head}"));
    // HEAD, the branch, the index and the working tree stay as they were.
    assert_eq!(git(dir.path(), &["rev-parse", "HEAD"]), head);
    assert_eq!(git(dir.path(), &["status", "--porcelain"]), "");
    assert_eq!(lineage.latest().unwrap(), [("a".to_string(), a), ("b".to_string(), b)].into());
}

#[test]
fn the_commit_message_summarises_the_run() {
    let dir = empty_repo();
    let lineage = open(dir.path());
    let message = |stages: &[&str]| {
        let records: Vec<Record> = stages.iter().map(|s| record(s, "k", "t")).collect();
        lineage.record(&run_info(stages), &records).unwrap();
        git(dir.path(), &["log", "-1", "--format=%B", LINEAGE_REF])
    };
    assert_eq!(message(&[]), "gourd run: nothing\n\nworkspace commit: (none) (dirty)");
    assert_eq!(message(&["a"]), "gourd run: a\n\nworkspace commit: (none) (dirty)");
    assert_eq!(message(&["a", "b", "c", "d"]), "gourd run: a, b, c, d\n\nworkspace commit: (none) (dirty)");
    assert_eq!(
        message(&["a", "b", "c", "d", "e"]),
        "gourd run: a, b, c, … (5 stages)\n\nworkspace commit: (none) (dirty)"
    );
}

#[test]
fn each_run_replaces_only_its_stages_and_history_reads_every_run() {
    let dir = empty_repo();
    let lineage = open(dir.path());
    assert!(lineage.latest().unwrap().is_empty(), "no lineage yet");
    assert!(lineage.history().unwrap().is_empty());
    let first = lineage.record(&run_info(&["a"]), &[record("a", "k1", "t")]).unwrap();
    let second = lineage.record(&run_info(&["b"]), &[record("b", "k2", "t")]).unwrap();
    let third = lineage.record(&run_info(&["a"]), &[record("a", "k3", "t")]).unwrap();
    assert_eq!(keys(&lineage.latest().unwrap()), [("a", "k3"), ("b", "k2")]);
    assert_eq!(keys(&lineage.records_at(&first).unwrap()), [("a", "k1")]);
    assert_eq!(keys(&lineage.records_at(&second).unwrap()), [("a", "k1"), ("b", "k2")]);
    let history = lineage.history().unwrap();
    let ids: Vec<&str> = history.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, [&third, &second, &first]);
    let runs: Vec<Vec<(&str, &str)>> =
        history.iter().map(|c| c.records.iter().map(|r| (r.stage.as_str(), r.key.as_str())).collect()).collect();
    assert_eq!(
        runs,
        [vec![("a", "k3")], vec![("b", "k2")], vec![("a", "k1")]],
        "each commit: the records its run wrote"
    );
    assert_eq!(history[1].run.as_ref().unwrap(), &run_info(&["b"]));
    assert_eq!(lineage.commit_info(&third).unwrap().0, [second.as_str()]);
    assert_eq!(lineage.commit_info(&first).unwrap().0, Vec::<String>::new());
    assert!(lineage.records_at("0123").is_err());
}

#[test]
fn workspaces_in_subfolders_keep_their_own_records_side_by_side() {
    let dir = empty_repo();
    for sub in ["ml/one", "ml/two"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
    }
    let (one, two, root) = (open(&dir.path().join("ml/one")), open(&dir.path().join("ml/two")), open(dir.path()));
    one.record(&run_info(&["a"]), &[record("a", "one-1", "t")]).unwrap();
    two.record(&run_info(&["a"]), &[record("a", "two-1", "t")]).unwrap();
    root.record(&run_info(&["a"]), &[record("a", "root-1", "t")]).unwrap();
    one.record(&run_info(&["b"]), &[record("b", "one-2", "t")]).unwrap();
    assert_eq!(
        git(dir.path(), &["ls-tree", "-r", "--name-only", LINEAGE_REF]),
        "ml/one/run.json\nml/one/stages/a.json\nml/one/stages/b.json\nml/two/run.json\nml/two/stages/a.json\nrun.json\nstages/a.json"
    );
    assert_eq!(keys(&one.latest().unwrap()), [("a", "one-1"), ("b", "one-2")]);
    assert_eq!(keys(&two.latest().unwrap()), [("a", "two-1")]);
    assert_eq!(keys(&root.latest().unwrap()), [("a", "root-1")]);
    assert_eq!(show::<RunInfo>(dir.path(), &format!("{LINEAGE_REF}:ml/one/run.json")), run_info(&["b"]));
    let history = one.history().unwrap();
    assert_eq!(history[0].run.as_ref().unwrap().stages, ["b"]);
    assert_eq!(history[0].records.len(), 1);
    // Many records at once (written as one pack, no loose object) land in
    // the same places.
    let many: Vec<Record> = (0..70).map(|i| record(&format!("s{i:03}"), &format!("k{i}"), "t")).collect();
    let names: Vec<String> = many.iter().map(|r| r.stage.clone()).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let counts = || {
        let text = git(dir.path(), &["count-objects", "-v"]);
        let field =
            |name: &str| -> u64 { text.lines().find_map(|l| l.strip_prefix(name)).unwrap().trim().parse().unwrap() };
        (field("count:"), field("packs:"))
    };
    let (loose, packs) = counts();
    two.record(&run_info(&names), &many).unwrap();
    assert_eq!(counts(), (loose, packs + 1), "one new pack and no loose object");
    let fsck = std::process::Command::new("git").args(["fsck", "--strict"]).current_dir(dir.path()).output().unwrap();
    assert!(fsck.status.success(), "{}", String::from_utf8_lossy(&fsck.stderr));
    assert_eq!(show::<Record>(dir.path(), &format!("{LINEAGE_REF}:ml/two/stages/s042.json")).key, "k42");
    assert_eq!(show::<RunInfo>(dir.path(), &format!("{LINEAGE_REF}:ml/two/run.json")).stages.len(), 70);
    assert_eq!(two.latest().unwrap().len(), 71);
    assert_eq!(keys(&one.latest().unwrap()), [("a", "one-1"), ("b", "one-2")]);
    assert_eq!(keys(&root.latest().unwrap()), [("a", "root-1")]);
    assert_eq!(two.history().unwrap()[0].records.len(), 70);
    assert_eq!(one.workdir().canonicalize().unwrap(), dir.path().canonicalize().unwrap());
}

#[test]
fn a_bare_repository_has_no_lineage_and_a_broken_one_is_an_error() {
    let bare = tempfile::tempdir().unwrap();
    git(bare.path(), &["init", "-q", "--bare"]);
    assert!(Lineage::open(bare.path()).unwrap().is_none());
    let broken = tempfile::tempdir().unwrap();
    std::fs::write(broken.path().join(".git"), "not a gitdir line\n").unwrap();
    assert!(matches!(Lineage::open(broken.path()), Err(LineageError::Git(_))));
}

fn write(dir: &Path, path: &str, text: &str) {
    let path = dir.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn the_workspace_is_dirty_when_anything_but_gourds_gitignore_block_changed() {
    let dir = repo();
    let head = git(dir.path(), &["rev-parse", "HEAD"]);
    let block = |lines: &str| format!("{GITIGNORE_BEGIN}\n{lines}{GITIGNORE_END}\n");
    let root = format!("*.log\n{}", block("/out\n"));
    write(dir.path(), ".gitignore", &root);
    write(dir.path(), "sub/.gitignore", &block("/x\n"));
    git(dir.path(), &["add", ".gitignore", "sub/.gitignore"]);
    git(dir.path(), &["commit", "-q", "-m", "ignore"]);
    let head2 = git(dir.path(), &["rev-parse", "HEAD"]);
    assert_ne!(head, head2);
    let lineage = open(dir.path());
    let dirty = || {
        let (commit, dirty) = lineage.workspace_state().unwrap();
        assert_eq!(commit.as_deref(), Some(head2.as_str()));
        dirty
    };
    assert!(!dirty());
    write(dir.path(), "a.log", "ignored");
    assert!(!dirty(), "an ignored file");
    for (text, expected, why) in [
        (format!("*.log\n{}", block("/out\n/more/and/more\n")), false, "only the block changed"),
        (format!("*.log\n{}\n\n", block("/out\n")), false, "blank lines at the end"),
        ("*.log\n".to_string(), false, "the block removed"),
        (format!("*.log\n*.tmp\n{}", block("/out\n")), true, "a line before the block"),
        (format!("*.log\n{}*.tmp\n", block("/out\n")), true, "a line after the block"),
        (format!("*.log\n{}{GITIGNORE_END}\n", block("/out\n")), true, "a stray end line"),
        (block("/out\n"), true, "a line removed"),
    ] {
        write(dir.path(), ".gitignore", &text);
        assert_eq!(dirty(), expected, "{why}");
    }
    write(dir.path(), ".gitignore", &root);
    assert!(!dirty());
    write(dir.path(), "sub/.gitignore", &block("/x\n/y\n"));
    assert!(!dirty(), "only the block of sub/.gitignore changed");
    write(dir.path(), "sub/.gitignore", &format!("/z\n{}", block("/x\n")));
    assert!(dirty(), "sub/.gitignore changed outside the block");
    write(dir.path(), "sub/.gitignore", &block("/x\n"));
    assert!(!dirty());
    write(dir.path(), "file", "changed, and longer");
    assert!(dirty(), "a tracked file changed");
    write(dir.path(), "file", "one");
    assert!(!dirty());
    write(dir.path(), "new.gitignore", "");
    assert!(dirty(), "an untracked file");
    std::fs::remove_file(dir.path().join("new.gitignore")).unwrap();
    // A .gitignore new to the repository holding only the block, as
    // gourd writes it: nothing the user changed.
    let fresh = repo();
    write(fresh.path(), ".gitignore", &block("/out\n"));
    assert!(!open(fresh.path()).workspace_state().unwrap().1);
    write(fresh.path(), ".gitignore", &format!("/x\n{}", block("/out\n")));
    assert!(open(fresh.path()).workspace_state().unwrap().1);
}

/// `text` written at `path` and committed.
fn committed(dir: &Path, path: &str, text: &str) {
    write(dir, path, text);
    git(dir, &["add", path]);
    git(dir, &["commit", "-q", "-m", path]);
}

/// The workspace's state against `git status` itself, in work trees where
/// gourd's blocks list outputs (which the state finds by lookup, not by
/// git's matching) and where a rule could take a listed path back.
#[test]
fn untracked_files_count_exactly_as_git_status_shows_them() {
    let block = |lines: &str| format!("{GITIGNORE_BEGIN}\n{lines}{GITIGNORE_END}\n");
    let root = format!("*.log\n{}", block("/.gourd/\n/out/a.txt\n/out/b.txt\n/models\n/out/we\\*ird\\#.txt\n"));
    type Setup = fn(&Path);
    let cases: Vec<(&str, Setup)> = vec![
        ("only listed outputs", |d| {
            write(d, "out/a.txt", "a");
            write(d, "out/b.txt", "b");
            write(d, "models/m/w.bin", "w");
            write(d, ".gourd/cache/x", "x");
        }),
        ("an output gourd does not list", |d| write(d, "out/c.txt", "c")),
        ("an escaped name", |d| write(d, "out/we*ird#.txt", "w")),
        ("a name the escaped pattern does not match", |d| write(d, "out/weXird#.txt", "w")),
        ("a file the user ignores", |d| write(d, "notes.log", "n")),
        ("an empty folder", |d| std::fs::create_dir_all(d.join("empty/deeper")).unwrap()),
        ("a folder of ignored files", |d| write(d, "logs/x.log", "x")),
        ("a folder with one file git shows", |d| {
            write(d, "logs/x.log", "x");
            write(d, "logs/deep/y.txt", "y");
        }),
        ("another repository inside", |d| {
            git(d, &["init", "-q", "nested"]);
        }),
        ("a symlink", |d| std::os::unix::fs::symlink("file", d.join("link")).unwrap()),
        ("an untracked file in a tracked folder", |d| write(d, "sub/new.txt", "n")),
        ("a negation after the block", |d| {
            write(d, "out/a.txt", "a");
            let text = std::fs::read_to_string(d.join(".gitignore")).unwrap();
            committed(d, ".gitignore", &format!("{text}!out/a.txt\n"));
        }),
        ("a negation below the block", |d| {
            write(d, "out/a.txt", "a");
            committed(d, "out/.gitignore", "!a.txt\n");
        }),
        ("a negation before the block", |d| {
            write(d, "out/a.txt", "a");
            let text = std::fs::read_to_string(d.join(".gitignore")).unwrap();
            committed(d, ".gitignore", &format!("!out/a.txt\n{text}"));
        }),
        ("a workspace in a subfolder", |d| {
            committed(d, "ws/.gitignore", &format!("{GITIGNORE_BEGIN}\n/out/a.txt\n{GITIGNORE_END}\n"));
            write(d, "ws/out/a.txt", "a");
        }),
        ("a subfolder's block does not reach its parent", |d| {
            committed(d, "ws/.gitignore", &format!("{GITIGNORE_BEGIN}\n/out/a.txt\n{GITIGNORE_END}\n"));
            write(d, "out/a.txt", "a");
            write(d, "ws/a.txt", "a");
        }),
    ];
    for (why, setup) in cases {
        let dir = repo();
        write(dir.path(), ".gitignore", &root);
        write(dir.path(), "sub/kept.txt", "k");
        git(dir.path(), &["add", ".gitignore", "sub/kept.txt"]);
        git(dir.path(), &["commit", "-q", "-m", "ignore"]);
        setup(dir.path());
        let shown = git(dir.path(), &["status", "--porcelain", "--untracked-files=all"]);
        let dirty = open(dir.path()).workspace_state().unwrap().1;
        if why == "a negation below the block" {
            // Where a rule could take a listed path back, libgit2's status
            // decides, and libgit2 does not let a deeper `!` rule take back
            // what a parent folder's rule ignores (git does).
            let repo = git2::Repository::open(dir.path()).unwrap();
            let mut options = git2::StatusOptions::new();
            options.include_untracked(true);
            let statuses = repo.statuses(Some(&mut options)).unwrap();
            assert_eq!(dirty, !statuses.is_empty(), "{why}: libgit2 finds {} entries", statuses.len());
            assert!(!shown.trim().is_empty(), "{why}: git status shows it");
            continue;
        }
        assert_eq!(dirty, !shown.trim().is_empty(), "{why}: git status shows {shown:?}");
    }
}

#[test]
fn revisions_commits_and_files_at_a_revision() {
    let dir = empty_repo();
    let at = |date: &str, what: &str| {
        write(dir.path(), "file", what);
        write(dir.path(), "sub/x.txt", &format!("x {what}"));
        git(dir.path(), &["add", "file", "sub/x.txt"]);
        let env = [("GIT_COMMITTER_DATE", date), ("GIT_AUTHOR_DATE", date)];
        git_env(dir.path(), &["commit", "-q", "-m", what], &env);
        git(dir.path(), &["rev-parse", "HEAD"])
    };
    let c1 = at("2026-11-30T12:00:00Z", "one");
    let c2 = at("@1000000000 +0000", "two");
    git(dir.path(), &["tag", "-a", "t1", "-m", "t1", &c1]);
    let lineage = open(dir.path());
    assert_eq!(lineage.resolve("HEAD").unwrap(), c2);
    assert_eq!(lineage.resolve("main").unwrap(), c2);
    assert_eq!(lineage.resolve("t1").unwrap(), c1, "a tag, peeled");
    assert_eq!(lineage.resolve(&c1[..8]).unwrap(), c1);
    for bad in ["nope", "HEAD^{tree}", "HEAD~5"] {
        let err = lineage.resolve(bad).unwrap_err();
        assert!(matches!(&err, LineageError::UnknownRevision(r) if r == bad), "{bad}: {err}");
    }
    assert_eq!(lineage.commit_info(&c1).unwrap(), (vec![], 1_796_040_000));
    assert_eq!(lineage.commit_info(&c2).unwrap(), (vec![c1.clone()], 1_000_000_000));
    let merge = git(dir.path(), &["commit-tree", "HEAD^{tree}", "-p", &c2, "-p", &c1, "-m", "merge"]);
    assert_eq!(lineage.commit_info(&merge).unwrap().0, [c2.clone(), c1.clone()]);
    assert!(lineage.commit_info("not a commit").is_err());
    assert_eq!(lineage.file_at("HEAD~1", "file").unwrap().as_deref(), Some(&b"one"[..]));
    assert_eq!(lineage.file_at("HEAD", "file").unwrap().as_deref(), Some(&b"two"[..]));
    assert_eq!(lineage.file_at("t1", "sub/x.txt").unwrap().as_deref(), Some(&b"x one"[..]));
    assert_eq!(lineage.file_at("HEAD", "missing").unwrap(), None);
    assert_eq!(lineage.file_at("HEAD", "sub").unwrap(), None, "a folder is not a file");
    assert!(matches!(lineage.file_at("nope", "file"), Err(LineageError::UnknownRevision(_))));
    let sub = open(&dir.path().join("sub"));
    assert_eq!(sub.file_at("HEAD", "x.txt").unwrap().as_deref(), Some(&b"x two"[..]), "relative to the workspace");
    assert_eq!(sub.file_at("HEAD", "file").unwrap(), None);
}

/// A lineage whose local and other sides diverged after `base`.
struct Diverged {
    dir: tempfile::TempDir,
    base: String,
    ours: String,
    theirs: String,
}

const THEIRS: &str = "refs/gourd-fetch/origin/lineage";

fn diverged() -> Diverged {
    let dir = repo();
    let lineage = open(dir.path());
    let base = lineage.record(&run_info(&["a"]), &[record("a", "base", "2026-01-01T00:00:00.000Z")]).unwrap();
    let ours = lineage
        .record(
            &run_info(&["a", "b", "d", "e"]),
            &[
                record("a", "a-ours", "2026-01-03T00:00:00.000Z"),
                record("b", "b-ours", "2026-01-03T00:00:00.000Z"),
                record("d", "d-ours", "2026-01-05T00:00:00.000Z"),
                record("e", "e-ours", "2026-01-01T00:00:00.000Z"),
            ],
        )
        .unwrap();
    git(dir.path(), &["update-ref", LINEAGE_REF, &base]);
    let theirs = lineage
        .record(
            &run_info(&["a", "c", "d", "e"]),
            &[
                record("a", "a-theirs", "2026-01-02T00:00:00.000Z"),
                record("c", "c-theirs", "2026-01-02T00:00:00.000Z"),
                record("d", "d-theirs", "2026-01-05T00:00:00.000Z"),
                record("e", "e-theirs", "2026-01-09T00:00:00.000Z"),
            ],
        )
        .unwrap();
    git(dir.path(), &["update-ref", THEIRS, &theirs]);
    git(dir.path(), &["update-ref", LINEAGE_REF, &ours]);
    Diverged { dir, base, ours, theirs }
}

#[test]
fn pulling_lineage_merges_keeping_the_record_that_finished_last() {
    let Diverged { dir, base, ours, theirs } = diverged();
    let lineage = open(dir.path());
    assert_eq!(lineage.integrate(THEIRS).unwrap(), Integration::Merged);
    let merged = tip(dir.path());
    assert_eq!(
        git(dir.path(), &["log", "-1", "--format=%P%n%B", &merged]),
        format!("{ours} {theirs}\ngourd pull: merge lineage")
    );
    assert_eq!(
        keys(&lineage.latest().unwrap()),
        [("a", "a-ours"), ("b", "b-ours"), ("c", "c-theirs"), ("d", "d-ours"), ("e", "e-theirs")],
        "the later finish wins; a tie keeps ours"
    );
    let run: RunInfo = show(dir.path(), &format!("{merged}:run.json"));
    assert!(run.stages.is_empty());
    assert_eq!(run.workspace_commit, Some(git(dir.path(), &["rev-parse", "HEAD"])));
    assert!(!run.workspace_dirty);
    assert_eq!(run.gourd_version, "0.1.0");
    let times = git(dir.path(), &["log", "-1", "--format=%ct", &ours])
        .max(git(dir.path(), &["log", "-1", "--format=%ct", &theirs]));
    assert_eq!(run.recorded_at, gourd_lineage::registry::time::format_instant(times.parse().unwrap()));
    let history = lineage.history().unwrap();
    assert!(history[0].records.is_empty(), "the merge ran nothing");
    // Both sides, each once, the base last: the other clone's runs are
    // history too (`lineage`, `registry register` and `gc` read it).
    let ids: Vec<&str> = history.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids.len(), 4, "{ids:?}");
    assert_eq!((ids[0], ids[3]), (merged.as_str(), base.as_str()));
    assert!(ids.contains(&ours.as_str()) && ids.contains(&theirs.as_str()), "{ids:?}");
    let recorded: Vec<&str> = history.iter().flat_map(|c| c.records.iter().map(|r| r.key.as_str())).collect();
    for key in ["a-ours", "a-theirs", "d-theirs", "base"] {
        assert!(recorded.contains(&key), "{key}: {recorded:?}");
    }
    let all = lineage.all_keys().unwrap();
    assert!(all.contains("a-theirs") && all.contains("d-theirs") && all.contains("base"), "{all:?}");
    // Again, and an ancestor: nothing to do.
    assert_eq!(lineage.integrate(THEIRS).unwrap(), Integration::UpToDate);
    git(dir.path(), &["update-ref", "refs/gourd-fetch/base", &base]);
    assert_eq!(lineage.integrate("refs/gourd-fetch/base").unwrap(), Integration::UpToDate);
    assert_eq!(tip(dir.path()), merged);
    assert!(lineage.integrate("refs/gourd-fetch/none").is_err());
}

#[test]
fn pulling_lineage_fast_forwards_or_creates_it() {
    let Diverged { dir, base, ours, .. } = diverged();
    let lineage = open(dir.path());
    git(dir.path(), &["update-ref", LINEAGE_REF, &base]);
    git(dir.path(), &["update-ref", "refs/gourd-fetch/ours", &ours]);
    assert_eq!(lineage.integrate("refs/gourd-fetch/ours").unwrap(), Integration::FastForward);
    assert_eq!(tip(dir.path()), ours);
    assert_eq!(lineage.integrate("refs/gourd-fetch/ours").unwrap(), Integration::UpToDate);
    git(dir.path(), &["update-ref", "-d", LINEAGE_REF]);
    assert_eq!(lineage.integrate(THEIRS).unwrap(), Integration::Created);
    assert_eq!(tip(dir.path()), git(dir.path(), &["rev-parse", THEIRS]));
}

#[test]
fn a_lineage_ref_locked_by_git_is_retried_then_given_up() {
    let Diverged { dir, .. } = diverged();
    let lineage = open(dir.path());
    let before = tip(dir.path());
    let lock = dir.path().join(".git/refs/gourd/lineage.lock");
    std::fs::write(&lock, "").unwrap();
    let err = lineage.integrate(THEIRS).unwrap_err();
    assert!(matches!(err, LineageError::Contended(20)), "{err}");
    assert_eq!(err.to_string(), "the lineage ref kept moving; gave up after 20 attempts");
    let err = lineage.record(&run_info(&["a"]), &[record("a", "k", "t")]).unwrap_err();
    assert!(matches!(err, LineageError::Contended(20)), "{err}");
    std::fs::remove_file(&lock).unwrap();
    assert_eq!(tip(dir.path()), before);
    // Without a local lineage, creating the ref fails at once: no race to lose.
    git(dir.path(), &["update-ref", "-d", LINEAGE_REF]);
    std::fs::write(&lock, "").unwrap();
    let err = lineage.integrate(THEIRS).unwrap_err();
    assert!(matches!(&err, LineageError::Git(e) if e.code() == git2::ErrorCode::Locked), "{err}");
}

#[test]
fn a_damaged_lineage_ref_is_an_error_never_an_empty_lineage() {
    let Diverged { dir, .. } = diverged();
    let lineage = open(dir.path());
    std::fs::write(dir.path().join(".git/refs/gourd/lineage"), "damaged\n").unwrap();
    let damaged = |err: LineageError| matches!(&err, LineageError::Git(e) if e.message().contains("corrupted"));
    assert!(damaged(lineage.latest().unwrap_err()));
    assert!(damaged(lineage.history().unwrap_err()));
    assert!(damaged(lineage.record(&run_info(&["a"]), &[record("a", "k", "t")]).unwrap_err()));
    assert!(damaged(lineage.integrate(THEIRS).unwrap_err()));
    assert_eq!(std::fs::read_to_string(dir.path().join(".git/refs/gourd/lineage")).unwrap(), "damaged\n");
}

#[test]
fn a_ref_that_cannot_be_written_is_reported_at_once() {
    let dir = repo();
    let head = git(dir.path(), &["rev-parse", "HEAD"]);
    // A ref named `refs/gourd` leaves no room for `refs/gourd/lineage`.
    std::fs::create_dir_all(dir.path().join(".git/refs")).unwrap();
    std::fs::write(dir.path().join(".git/refs/gourd"), format!("{head}\n")).unwrap();
    let err = open(dir.path()).record(&run_info(&["a"]), &[record("a", "k", "t")]).unwrap_err();
    assert!(matches!(&err, LineageError::Git(e) if e.code() == git2::ErrorCode::GenericError), "{err}");
}

#[test]
fn a_record_that_is_not_json_names_its_commit_and_path() {
    let dir = repo();
    let repo = git2::Repository::open(dir.path()).unwrap();
    let blob = repo.blob(b"{not json").unwrap();
    let mut stages = repo.treebuilder(None).unwrap();
    stages.insert("a.json", blob, 0o100644).unwrap();
    let stages = stages.write().unwrap();
    let mut root = repo.treebuilder(None).unwrap();
    root.insert("stages", stages, 0o040000).unwrap();
    let tree = repo.find_tree(root.write().unwrap()).unwrap();
    let who = git2::Signature::now("t", "t@x").unwrap();
    let id = repo.commit(Some(LINEAGE_REF), &who, &who, "bad", &tree, &[]).unwrap().to_string();
    let lineage = open(dir.path());
    for err in [lineage.latest().unwrap_err(), lineage.records_at(&id).unwrap_err(), lineage.history().unwrap_err()] {
        assert!(
            matches!(&err, LineageError::BadRecord { commit, path, .. } if *commit == id && path == "stages/a.json"),
            "{err}"
        );
        assert!(err.to_string().starts_with(&format!("lineage record `stages/a.json` in commit {id} is not valid: ")));
    }
}

#[test]
fn every_key_any_lineage_ref_ever_named() {
    let dir = empty_repo();
    let lineage = open(dir.path());
    assert!(lineage.all_keys().unwrap().is_empty());
    lineage.record(&run_info(&["a"]), &[record("a", "k1", "t")]).unwrap();
    let fork = lineage.record(&run_info(&["a", "b"]), &[record("a", "k2", "t"), record("b", "kb", "t")]).unwrap();
    let side = lineage.record(&run_info(&["a"]), &[record("a", "k3", "t")]).unwrap();
    git(dir.path(), &["update-ref", "refs/gourd/side", &side]);
    git(dir.path(), &["update-ref", LINEAGE_REF, &fork]);
    lineage.record(&run_info(&["a"]), &[record("a", "k4", "t")]).unwrap();
    git(dir.path(), &["update-ref", "refs/heads/elsewhere", &side]);
    let keys = lineage.all_keys().unwrap();
    assert_eq!(keys, BTreeSet::from(["k1", "k2", "k3", "k4", "kb"].map(String::from)));
}

#[test]
fn tips_and_every_reachable_commit() {
    let dir = repo();
    let c1 = git(dir.path(), &["rev-parse", "HEAD"]);
    let c2 = commit(dir.path(), "two");
    let new = |parent: &str, what: &str| git(dir.path(), &["commit-tree", "HEAD^{tree}", "-p", parent, "-m", what]);
    let (tagged, remote, detached, unreachable) = (new(&c1, "t"), new(&c1, "r"), new(&c2, "d"), new(&c2, "u"));
    git(dir.path(), &["branch", "same", &c2]);
    git(dir.path(), &["branch", "old", &c1]);
    git(dir.path(), &["tag", "-a", "annotated", "-m", "a", &tagged]);
    git(dir.path(), &["tag", "light", &c1]);
    git(dir.path(), &["update-ref", "refs/remotes/origin/x", &remote]);
    let lineage = open(dir.path());
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(lineage.tips("refs/heads/*").unwrap(), sorted(vec![c1.clone(), c2.clone()]), "deduplicated");
    assert_eq!(lineage.tips("refs/tags/*").unwrap(), sorted(vec![c1.clone(), tagged.clone()]), "peeled");
    assert!(lineage.tips("refs/nothing/*").unwrap().is_empty());
    git(dir.path(), &["update-ref", "--no-deref", "HEAD", &detached]);
    let all = lineage.all_commits().unwrap();
    let expected: std::collections::HashSet<String> =
        [c1.clone(), c2.clone(), tagged.clone(), remote.clone(), detached.clone()].into();
    assert_eq!(all, expected);
    assert!(!all.contains(&unreachable));

    // As `git rev-list --all` and `git gc` see them: any other ref, the
    // stash and the older stashes its reflog holds, and the HEAD of another
    // worktree; never the lineage ref's history.
    let (custom, in_worktree, lineage_run) = (new(&c1, "c"), new(&c2, "w"), new(&c1, "lineage"));
    git(dir.path(), &["update-ref", "refs/custom/keep", &custom]);
    git(dir.path(), &["update-ref", LINEAGE_REF, &lineage_run]);
    git(dir.path(), &["checkout", "-q", "main"]);
    let mut stashes = Vec::new();
    for text in ["stashed first", "stashed second"] {
        std::fs::write(dir.path().join("file"), text).unwrap();
        git(dir.path(), &["stash", "-q"]);
        stashes.push(git(dir.path(), &["rev-parse", "refs/stash"]));
    }
    let worktree = tempfile::tempdir().unwrap();
    let worktree = worktree.path().join("wt");
    git(dir.path(), &["worktree", "add", "-q", "--detach", worktree.to_str().unwrap(), &in_worktree]);
    let all = lineage.all_commits().unwrap();
    for (what, commit) in [("custom ref", &custom), ("worktree HEAD", &in_worktree)]
        .into_iter()
        .chain(stashes.iter().map(|s| ("stash", s)))
    {
        assert!(all.contains(commit), "{what} {commit} left out");
    }
    assert!(!all.contains(&lineage_run), "lineage history is not the workspace's");
    assert!(!all.contains(&unreachable));

    // A commit amended away: only the branch's reflog names it. And, asked
    // from the linked worktree, the main worktree's detached HEAD.
    std::fs::write(dir.path().join("file"), "to amend").unwrap();
    git(dir.path(), &["commit", "-qam", "first wording"]);
    let amended = git(dir.path(), &["rev-parse", "HEAD"]);
    git(dir.path(), &["commit", "-q", "--amend", "-m", "second wording"]);
    let main_detached = new(&c1, "main detached");
    git(dir.path(), &["checkout", "-q", "--detach", &main_detached]);
    // A commit the linked worktree left: only its own HEAD reflog names it.
    std::fs::write(worktree.join("file"), "in the worktree").unwrap();
    git(&worktree, &["commit", "-qam", "worktree only"]);
    let left_in_worktree = git(&worktree, &["rev-parse", "HEAD"]);
    git(&worktree, &["checkout", "-q", "--detach", &in_worktree]);
    let from_worktree = open(&worktree).all_commits().unwrap();
    let from_main = lineage.all_commits().unwrap();
    for (what, commit) in [
        ("amended", &amended),
        ("main worktree HEAD", &main_detached),
        ("stash", &stashes[0]),
        ("left in the linked worktree", &left_in_worktree),
    ] {
        assert!(from_worktree.contains(commit), "{what} {commit} left out, asked from the linked worktree");
        assert!(from_main.contains(commit), "{what} {commit} left out, asked from the main worktree");
    }
    assert!(!from_worktree.contains(&lineage_run) && !from_worktree.contains(&unreachable));
}

#[test]
fn the_repositorys_folders_are_found_whatever_their_name() {
    use gourd_lineage::Lineage;
    // The usual `.git` folder: no question for libgit2.
    let plain = crate::common::repo();
    let dot_git = plain.path().join(".git").canonicalize().unwrap();
    assert_eq!(Lineage::git_dirs(plain.path()), [dot_git]);
    // `--separate-git-dir` inside the workspace, and from a subfolder.
    let outer = tempfile::tempdir().unwrap();
    let ws = outer.path().join("ws");
    std::fs::create_dir_all(ws.join("sub")).unwrap();
    std::fs::create_dir_all(ws.join("meta")).unwrap();
    let separate = ws.join("meta/repo.git");
    let status = std::process::Command::new("git")
        .args(["init", "-q", "--separate-git-dir"])
        .arg(&separate)
        .arg(&ws)
        .status()
        .unwrap();
    assert!(status.success());
    let separate = separate.canonicalize().unwrap();
    assert_eq!(Lineage::git_dirs(&ws), [separate]);
    // A workspace in a subfolder: the repository's folder is above it.
    assert!(Lineage::git_dirs(&ws.join("sub")).is_empty());
    // Outside any repository: none.
    let nowhere = tempfile::tempdir().unwrap();
    assert!(Lineage::git_dirs(nowhere.path()).is_empty());
}
