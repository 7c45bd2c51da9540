//! The model registry: versions and stages as GTO-format git tags, with
//! gourd's record of each move in the tag's message.

mod common;

use common::{Run, TestWorkspace};
use serde_json::Value;

/// A model built from `seed.txt`, and an evaluation of it that reports the
/// accuracy written in `acc.txt`.
const PIPELINE: &str = r#"{
  stages = {
    train = {
      cmd = "mkdir -p models && cat seed.txt > models/model.bin",
      deps = ["seed.txt"],
      outs = [{ path = "models/model.bin", kind = 'model }],
      params = { lr = 0.1 },
    },
    evaluate = {
      cmd = "mkdir -p metrics && printf '{\"accuracy\": %s}' $(cat acc.txt) > metrics/eval.json",
      deps = ["models/model.bin", "acc.txt"],
      metrics = ["metrics/eval.json"],
    },
    prepare = {
      cmd = "cat seed.txt > data.txt",
      deps = ["seed.txt"],
      outs = ["data.txt"],
    },
  },
}
"#;

/// 2026-11-30T12:00:00Z.
const T0: i64 = 1_796_040_000;

struct Registry {
    ws: TestWorkspace,
}

impl Registry {
    fn new() -> Registry {
        let ws = TestWorkspace::new(PIPELINE);
        ws.write(".gitignore", ".gourd/\nmodels/\nmetrics/\ndata.txt\n");
        Registry { ws }
    }

    /// Trains a model from `seed` evaluated at `accuracy`, and commits.
    fn build(&self, seed: &str, accuracy: &str) {
        self.ws.write("seed.txt", seed);
        self.ws.write("acc.txt", accuracy);
        self.ws.git(&["add", "-A"]);
        self.ws.git(&["commit", "-q", "-m", seed]);
        self.ws.gourd(&["run"]).success();
    }

    /// `gourd registry ARGS` at T0 + `seconds`.
    fn at(&self, seconds: i64, args: &[&str]) -> Run {
        let mut all = vec!["registry"];
        all.extend_from_slice(args);
        self.ws.gourd_env(&all, &[("GIT_COMMITTER_DATE", &format!("@{} +0000", T0 + seconds))])
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["registry"];
        all.extend_from_slice(args);
        all.push("--json");
        serde_json::from_str(&self.ws.gourd(&all).success().stdout).unwrap()
    }

    fn tags(&self) -> Vec<String> {
        self.ws.git(&["tag", "-l"]).lines().map(String::from).collect()
    }
}

#[test]
fn register_promote_demote_rollback_and_history() {
    let r = Registry::new();
    r.build("one", "0.91");
    let first = r.at(0, &["register", "pumpkin", "models/model.bin", "-m", "first model"]).success();
    assert_eq!(first.stdout, "pumpkin@v0.0.1\n");
    assert!(first.stderr.contains("Registered `models/model.bin` as pumpkin v0.0.1"), "{}", first.stderr);
    r.build("two", "0.93");
    r.at(10, &["register", "pumpkin", "models/model.bin"]).success();
    assert_eq!(
        r.at(20, &["promote", "pumpkin", "v0.0.1", "prod", "-m", "first in prod"]).success().stdout,
        "pumpkin#prod#1\n"
    );
    assert_eq!(
        r.at(30, &["promote", "pumpkin", "v0.0.2", "prod", "-m", "better"]).success().stdout,
        "pumpkin#prod!#2\npumpkin#prod#3\n",
        "the previous holder is unassigned, then the new one assigned"
    );
    r.at(40, &["promote", "pumpkin", "v0.0.2", "staging"]).success();
    r.at(50, &["demote", "pumpkin", "staging", "-m", "staging is for v0.0.3"]).success();
    // The rollback: the older version back into prod.
    r.at(60, &["promote", "pumpkin", "v0.0.1", "prod", "-m", "rollback: v0.0.2 misbehaves"]).success();
    // Promoting what a stage holds moves nothing.
    let again = r.at(70, &["promote", "pumpkin", "v0.0.1", "prod"]).success();
    assert_eq!(again.stdout, "");
    assert!(again.stderr.contains("is in `prod` already; nothing moved"));

    assert_eq!(
        r.tags(),
        [
            "pumpkin#prod!#2",
            "pumpkin#prod!#6",
            "pumpkin#prod#1",
            "pumpkin#prod#3",
            "pumpkin#prod#7",
            "pumpkin#staging!#5",
            "pumpkin#staging#4",
            "pumpkin@v0.0.1",
            "pumpkin@v0.0.2",
        ]
    );
    // Annotated tags on the commit each version was registered at.
    let v1_commit = r.ws.git(&["rev-parse", "HEAD~1"]).trim().to_string();
    assert_eq!(r.ws.git(&["rev-parse", "pumpkin#prod#7^{commit}"]).trim(), v1_commit);
    assert_eq!(r.ws.git(&["cat-file", "-t", "pumpkin#prod#7"]).trim(), "tag");
    let message = r.ws.git(&["tag", "-l", "--format=%(contents)", "pumpkin@v0.0.1"]);
    assert!(message.starts_with("first model\n\ngourd-record-v1: {"), "{message}");

    let show = r.json(&["show", "pumpkin"]);
    let artifact = &show["artifacts"][0];
    assert_eq!(artifact["latest"], "v0.0.2");
    assert_eq!(artifact["stages"], serde_json::json!({"prod": "v0.0.1"}));
    assert_eq!(artifact["versions"][1]["version"], "v0.0.1");
    assert_eq!(artifact["versions"][1]["commit"].as_str().unwrap(), v1_commit);
    let v1_digest = artifact["versions"][1]["digest"].as_str().unwrap().to_string();
    assert_eq!(v1_digest.len(), 64);

    // Every move, with who, when, why and the previous holder.
    let history = r.json(&["history", "pumpkin"]);
    let moves: Vec<(String, String, String)> = history["moves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let what = format!(
                "{} {} {}",
                m["action"].as_str().unwrap(),
                m["stage"].as_str().unwrap_or("-"),
                m["version"].as_str().unwrap()
            );
            (m["time"].as_str().unwrap().to_string(), what, m["previous"].as_str().unwrap_or("-").to_string())
        })
        .collect();
    let expected = [
        ("2026-11-30T12:00:00Z", "register - v0.0.1", "-"),
        ("2026-11-30T12:00:10Z", "register - v0.0.2", "-"),
        ("2026-11-30T12:00:20Z", "assign prod v0.0.1", "-"),
        ("2026-11-30T12:00:30Z", "unassign prod v0.0.1", "v0.0.1"),
        ("2026-11-30T12:00:30Z", "assign prod v0.0.2", "v0.0.1"),
        ("2026-11-30T12:00:40Z", "assign staging v0.0.2", "-"),
        ("2026-11-30T12:00:50Z", "unassign staging v0.0.2", "v0.0.2"),
        ("2026-11-30T12:01:00Z", "unassign prod v0.0.2", "v0.0.2"),
        ("2026-11-30T12:01:00Z", "assign prod v0.0.1", "v0.0.2"),
    ];
    let expected: Vec<(String, String, String)> =
        expected.iter().map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())).collect();
    assert_eq!(moves, expected);
    let rollback = &history["moves"][8];
    assert_eq!(rollback["who"], "Test");
    assert_eq!(rollback["email"], "test@example.com");
    assert_eq!(rollback["why"], "rollback: v0.0.2 misbehaves");
    assert_eq!(rollback["digest"].as_str().unwrap(), v1_digest);
    assert_eq!(history["moves"][7]["replaced_by"], "v0.0.1");

    // The text form folds each promotion's unassignment into it.
    insta::assert_snapshot!(r.ws.gourd(&["registry", "history", "pumpkin"]).success().stdout, @r"
    WHEN                  MOVE                       BY    WHY                                                         GATES
    2026-11-30T12:00:00Z  register v0.0.1            Test  first model
    2026-11-30T12:00:10Z  register v0.0.2            Test  Registering artifact pumpkin version v0.0.2
    2026-11-30T12:00:20Z  prod: (none) -> v0.0.1     Test  first in prod
    2026-11-30T12:00:30Z  prod: v0.0.1 -> v0.0.2     Test  better
    2026-11-30T12:00:40Z  staging: (none) -> v0.0.2  Test  Assigning stage staging to artifact pumpkin version v0.0.2
    2026-11-30T12:00:50Z  staging: v0.0.2 -> (none)  Test  staging is for v0.0.3
    2026-11-30T12:01:00Z  prod: v0.0.2 -> v0.0.1     Test  rollback: v0.0.2 misbehaves
    ");

    // What was in prod at any time.
    let prod_at = |at: &str| {
        let v = r.json(&["history", "pumpkin", "--stage", "prod", "--at", at]);
        v["stages"]["prod"]["version"].as_str().map(String::from)
    };
    assert_eq!(prod_at("2026-11-30T12:00:19Z"), None);
    assert_eq!(prod_at("2026-11-30T12:00:20Z").as_deref(), Some("v0.0.1"));
    assert_eq!(prod_at("2026-11-30T12:00:45Z").as_deref(), Some("v0.0.2"));
    assert_eq!(prod_at("2026-11-30T13:01:00+01:00").as_deref(), Some("v0.0.1"));
    assert_eq!(prod_at("2026-11-30").as_deref(), Some("v0.0.1"));
    let at = r.json(&["history", "pumpkin", "--at", "2026-11-30T12:00:45Z"]);
    assert_eq!(at["stages"]["staging"]["version"], "v0.0.2");
    assert_eq!(at["stages"]["prod"]["why"], "better");
    assert_eq!(at["stages"]["prod"]["since"], "2026-11-30T12:00:30Z");

    // resolve: the version and the digest.
    let resolved = r.ws.gourd(&["registry", "resolve", "pumpkin@prod"]).success().stdout;
    assert_eq!(resolved, format!("v0.0.1 {v1_digest}\n"));
    assert_eq!(r.ws.gourd(&["registry", "resolve", "pumpkin#prod"]).success().stdout, resolved);
    assert_eq!(r.ws.gourd(&["registry", "resolve", "pumpkin@v0.0.1"]).success().stdout, resolved);
    assert!(r.ws.gourd(&["registry", "resolve", "pumpkin@latest"]).success().stdout.starts_with("v0.0.2 "));
    // In any case, as no stage may be so named.
    for latest in ["pumpkin@LATEST", "pumpkin@Greatest"] {
        assert!(r.ws.gourd(&["registry", "resolve", latest]).success().stdout.starts_with("v0.0.2 "), "{latest}");
    }
    let then = r.ws.gourd(&["registry", "resolve", "pumpkin@prod", "--at", "2026-11-30T12:00:45Z"]).success();
    assert!(then.stdout.starts_with("v0.0.2 "));
    let missing = r.ws.gourd(&["registry", "resolve", "pumpkin@staging"]);
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.contains("`staging` held no version of pumpkin"), "{}", missing.stderr);

    // Deregistering a version in a stage needs --force; deprecating works.
    let refused = r.at(80, &["deprecate", "pumpkin", "v0.0.1"]);
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains("demote it first"), "{}", refused.stderr);
    assert_eq!(r.at(80, &["deprecate", "pumpkin", "v0.0.2"]).success().stdout, "pumpkin@v0.0.2!\n");
    assert_eq!(r.at(90, &["deprecate", "pumpkin"]).success().stdout, "pumpkin@deprecated#8\n");
    let show = r.json(&["show"]);
    assert_eq!(show["artifacts"][0]["deprecated"], true);
    assert_eq!(show["artifacts"][0]["latest"], "v0.0.1");
    insta::assert_snapshot!(r.ws.gourd(&["registry", "show"]).success().stdout, @r"
    NAME     LATEST               STAGES
    pumpkin  v0.0.1 (deprecated)  prod=v0.0.1
    ");
}

#[test]
fn registering_the_same_bytes_again_moves_nothing() {
    let r = Registry::new();
    r.build("one", "0.91");
    r.at(0, &["register", "pumpkin", "models/model.bin"]).success();
    let again = r.at(5, &["register", "pumpkin", "models/model.bin"]).success();
    assert_eq!(again.stdout, "pumpkin@v0.0.1\n");
    assert!(again.stderr.contains("holds these bytes already"), "{}", again.stderr);
    assert_eq!(r.tags(), ["pumpkin@v0.0.1"]);
    // An explicit version, and the next patch after it.
    r.build("two", "0.93");
    r.at(10, &["register", "pumpkin", "models/model.bin", "--version", "v1.4.0"]).success();
    r.build("three", "0.95");
    assert_eq!(r.at(20, &["register", "pumpkin", "models/model.bin"]).success().stdout, "pumpkin@v1.4.1\n");
}

#[test]
fn the_record_holds_digest_lineage_metrics_and_params() {
    let r = Registry::new();
    r.build("one", "0.91");
    r.at(0, &["register", "models/cv:pumpkin", "models/model.bin"]).success();
    assert_eq!(r.tags(), ["models/cv=pumpkin@v0.0.1"]);
    let message = r.ws.git(&["tag", "-l", "--format=%(contents)", "models/cv=pumpkin@v0.0.1"]);
    let line = message.lines().find_map(|l| l.strip_prefix("gourd-record-v1: ")).unwrap();
    let record: Value = serde_json::from_str(line).unwrap();
    assert_eq!(record["action"], "register");
    assert_eq!(record["path"], "models/model.bin");
    assert_eq!(record["kind"], "file");
    assert_eq!(record["lineage"]["stage"], "train");
    assert_eq!(record["lineage"]["key"].as_str().unwrap().len(), 64);
    assert_eq!(record["params"], serde_json::json!({"lr": 0.1}));
    assert_eq!(record["metrics"]["metrics/eval.json"]["accuracy"], 0.91, "the evaluation of these bytes");
    assert_eq!(record["inputs"].as_object().unwrap().keys().collect::<Vec<_>>(), ["seed.txt"]);
    assert_eq!(record["when"], "2026-11-30T12:00:00Z");
    let lineage = r.ws.gourd(&["log", "train", "--json"]).success().stdout;
    assert!(lineage.contains(record["lineage"]["key"].as_str().unwrap()));
    assert_eq!(r.ws.gourd(&["registry", "resolve", "models/cv:pumpkin@latest"]).success().stdout.len(), 7 + 64 + 1);
}

#[test]
fn what_cannot_be_registered_or_moved_is_refused_with_the_reason() {
    let r = Registry::new();
    r.build("one", "0.91");
    let data = r.at(0, &["register", "pumpkin", "data.txt"]);
    assert_eq!(data.code, 1);
    insta::assert_snapshot!(data.normalized(&r.ws), @r#"
    error: `data.txt` is a 'data output of stage `prepare`; the registry holds models

    hint: declare it as `{ path = "data.txt", kind = 'model }` in the stage's `outs`
    "#);
    r.ws.write("models/model.bin", "changed by hand");
    let by_hand = r.at(0, &["register", "pumpkin", "models/model.bin"]);
    insta::assert_snapshot!(by_hand.normalized(&r.ws), @r"
    error: the bytes at `models/model.bin` match no output gourd recorded

    hint: a version is a model a stage produced: run `gourd run`, then register what it wrote
    ");
    r.ws.gourd(&["run"]).success();
    r.at(0, &["register", "pumpkin", "models/model.bin"]).success();
    // Other bytes at the same commit: GTO finds a version by its commit.
    r.ws.write("seed.txt", "uncommitted");
    r.ws.gourd(&["run"]).success();
    let same_commit = r.at(5, &["register", "pumpkin", "models/model.bin"]);
    assert_eq!(same_commit.code, 1);
    assert!(same_commit.stderr.contains("holds pumpkin v0.0.1 already, with other bytes"), "{}", same_commit.stderr);
    let bad_name = r.at(5, &["register", "Pump kin", "models/model.bin"]);
    assert!(bad_name.stderr.contains("`Pump kin` is not a registry name"), "{}", bad_name.stderr);
    let no_version = r.at(5, &["promote", "pumpkin", "v9.9.9", "prod"]);
    insta::assert_snapshot!(no_version.normalized(&r.ws), @r"
    error: pumpkin has no version v9.9.9

    hint: its versions: v0.0.1
    ");
    let unknown = r.at(5, &["history", "pumpkn"]);
    insta::assert_snapshot!(unknown.normalized(&r.ws), @r"
    error: the registry has no artifact `pumpkn`

    hint: the registry has: `pumpkin`
    ");
    let bad_time = r.at(5, &["history", "pumpkin", "--at", "yesterday"]);
    assert!(bad_time.stderr.contains("`yesterday` is not a time"), "{}", bad_time.stderr);
    let empty = r.at(5, &["demote", "pumpkin", "prod"]);
    assert!(empty.stderr.contains("`prod` holds no version of pumpkin"), "{}", empty.stderr);
}

#[test]
fn tags_written_by_gto_are_read() {
    let r = Registry::new();
    r.build("one", "0.91");
    // As `gto register pumpkin` and `gto assign pumpkin --version v0.0.1 --stage prod` write them.
    let tag = |name: &str, message: &str, date: i64| {
        let mut git = std::process::Command::new("git");
        git.args(["tag", "-a", name, "-m", message])
            .current_dir(r.ws.root())
            .env("GIT_COMMITTER_DATE", format!("@{} +0000", T0 + date));
        assert!(git.status().unwrap().success());
    };
    tag("pumpkin@v0.0.1", "Registering artifact pumpkin version v0.0.1", 0);
    tag("pumpkin#prod#1", "Assigning stage prod to artifact pumpkin version v0.0.1", 10);
    tag("pumpkin#staging#2", "Assigning stage staging to artifact pumpkin version v0.0.1", 20);
    tag("pumpkin#staging!#3", "Unassigning stage 'staging' to artifact 'pumpkin' version 'v0.0.1'", 30);
    r.ws.git(&["tag", "unrelated-v1"]);
    let show = r.json(&["show"]);
    assert_eq!(show["artifacts"][0]["stages"], serde_json::json!({"prod": "v0.0.1"}));
    let resolved = r.ws.gourd(&["registry", "resolve", "pumpkin@prod"]).success();
    assert_eq!(resolved.stdout, "v0.0.1\n");
    assert!(resolved.stderr.contains("registered without gourd; its digest is unknown"));
    let history = r.json(&["history", "pumpkin"]);
    assert_eq!(history["moves"].as_array().unwrap().len(), 4);
    assert_eq!(history["moves"][3]["why"], "Unassigning stage 'staging' to artifact 'pumpkin' version 'v0.0.1'");
    // gourd's next move takes the next counter.
    r.at(40, &["promote", "pumpkin", "v0.0.1", "staging"]).success();
    assert!(r.tags().contains(&"pumpkin#staging#4".to_string()));
}

/// The pipeline above with its model in the registry, behind gates.
fn gated() -> Registry {
    let pipeline = PIPELINE.trim_end().trim_end_matches('}').to_string()
        + r#"  registry = {
    pumpkin = {
      path = "models/model.bin",
      gates = {
        prod = ["accuracy >= 0.9", "accuracy >= champion.accuracy"],
        staging = ["accuracy >= 0.5"],
      },
    },
  },
}
"#;
    let r = Registry::new();
    r.ws.write("gourd.ncl", &pipeline);
    r
}

#[test]
fn a_gate_that_fails_refuses_with_the_reason_and_force_is_recorded() {
    let r = gated();
    r.build("one", "0.93");
    // The path comes from the pipeline.
    r.at(0, &["register", "pumpkin"]).success();
    let first = r.at(10, &["promote", "pumpkin", "v0.0.1", "prod"]).success();
    assert!(first.stderr.contains("Gates: 2 of 2 passed."), "{}", first.stderr);
    r.build("two", "0.91");
    r.at(20, &["register", "pumpkin"]).success();
    // Worse than the champion: refused, saying by how much.
    let refused = r.at(30, &["promote", "pumpkin", "v0.0.2", "prod"]);
    assert_eq!(refused.code, 1);
    insta::assert_snapshot!(refused.normalized(&r.ws), @r"
    error: pumpkin v0.0.2 cannot enter `prod`: 1 of 2 gates failed
      passed  accuracy >= 0.9: 0.91 vs 0.9: passes by 0.01
      FAILED  accuracy >= champion.accuracy (champion v0.0.1): 0.91 vs 0.93: short by 0.02

    hint: `--force` promotes it anyway (for a rollback); history records the override and the evidence
    ");
    assert_eq!(r.tags().iter().filter(|t| t.contains('#')).count(), 1, "nothing moved");
    // Another stage's gates are its own.
    r.at(35, &["promote", "pumpkin", "v0.0.2", "staging"]).success();
    // --force overrides, and history keeps the evidence.
    let forced = r.at(40, &["promote", "pumpkin", "v0.0.2", "prod", "--force", "-m", "hotfix"]).success();
    assert!(forced.stderr.contains("1 of 2 gates failed; promoting anyway (--force)"), "{}", forced.stderr);
    let history = r.json(&["history", "pumpkin", "--stage", "prod"]);
    let last = history["moves"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["forced"], true);
    assert_eq!(last["previous"], "v0.0.1");
    assert_eq!(last["gates"][1]["gate"], "accuracy >= champion.accuracy");
    assert_eq!(last["gates"][1]["passed"], false);
    assert_eq!(last["gates"][1]["champion"], "v0.0.1");
    assert_eq!(last["gates"][1]["right"], 0.93);
    let text = r.ws.gourd(&["registry", "history", "pumpkin", "--stage", "prod"]).success().stdout;
    let line = text.lines().last().unwrap().split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(line.ends_with("prod: v0.0.1 -> v0.0.2 Test hotfix FORCED: 1 of 2 failed"), "{text}");
    // A gate with no metric to read fails, naming it.
    let missing = gated();
    missing.ws.write("gourd.ncl", &missing.ws.read("gourd.ncl").replace("accuracy >= 0.5", "f1 >= 0.5"));
    missing.build("one", "0.93");
    missing.at(0, &["register", "pumpkin"]).success();
    let no_metric = missing.at(5, &["promote", "pumpkin", "v0.0.1", "staging"]);
    assert!(no_metric.stderr.contains("FAILED  f1 >= 0.5: the candidate has no metric `f1`"), "{}", no_metric.stderr);
}

#[test]
fn promotions_at_once_are_decided_one_after_the_other() {
    let r = gated();
    r.build("one", "0.95");
    r.at(0, &["register", "pumpkin"]).success();
    r.build("two", "0.91");
    r.at(10, &["register", "pumpkin"]).success();
    // Each gate is checked against the champion the move replaces, so the
    // better model ends in `prod` whichever promotion comes first.
    for trial in 0..6 {
        let clone = TestWorkspace::clone_of(r.ws.root());
        let start = |version: &str| {
            let mut command = clone.command(&["registry", "promote", "pumpkin", version, "prod"]);
            command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap()
        };
        let (better, worse) = (start("v0.0.1"), start("v0.0.2"));
        let (better, worse) = (better.wait_with_output().unwrap(), worse.wait_with_output().unwrap());
        let worse_err = String::from_utf8_lossy(&worse.stderr);
        assert!(better.status.success(), "trial {trial}: {}", String::from_utf8_lossy(&better.stderr));
        let resolved = clone.gourd(&["registry", "resolve", "pumpkin#prod", "--json"]).success();
        let resolved: Value = serde_json::from_str(&resolved.stdout).unwrap();
        assert_eq!(resolved["version"], "v0.0.1", "trial {trial}: {worse_err}");
        let tags: Vec<String> = clone.git(&["tag", "-l"]).lines().map(String::from).collect();
        if worse.status.success() {
            // v0.0.2 came first, and v0.0.1 replaced it: GTO sees the move too.
            assert!(tags.iter().any(|t| t.starts_with("pumpkin#prod!#")), "trial {trial}: {tags:?}");
        } else {
            assert!(worse_err.contains("short by 0.04"), "trial {trial}: {worse_err}");
            assert_eq!(tags.iter().filter(|t| t.contains('#')).count(), 1, "trial {trial}: {tags:?}");
        }
    }
}

#[test]
fn names_git_refuses_and_reserved_stages_are_refused_before_anything_is_written() {
    let r = Registry::new();
    r.build("one", "0.91");
    for bad in ["a//b", "./m:p", "models/../x:p", "m/:p"] {
        let run = r.ws.gourd(&["registry", "register", bad, "models/model.bin"]);
        assert_eq!(run.code, 1, "{bad}: {}", run.stderr);
        assert!(run.stderr.contains(&format!("`{bad}` is not a registry name")), "{}", run.stderr);
    }
    r.at(0, &["register", "pumpkin", "models/model.bin"]).success();
    // A version that is not one is refused even where nothing would move.
    let bad_version = r.ws.gourd(&["registry", "register", "pumpkin", "models/model.bin", "--version", "v1.0.0!"]);
    assert_eq!(bad_version.code, 1, "{}", bad_version.stderr);
    assert!(bad_version.stderr.contains("`v1.0.0!` is not a version"), "{}", bad_version.stderr);
    for reserved in ["latest", "greatest", "Latest", "GREATEST"] {
        let run = r.ws.gourd(&["registry", "promote", "pumpkin", "v0.0.1", reserved]);
        assert_eq!(run.code, 1, "{}", run.stderr);
        assert!(run.stderr.contains(&format!("`{reserved}` is not a stage name")), "{}", run.stderr);
    }
    assert_eq!(r.tags(), ["pumpkin@v0.0.1"]);
}

#[test]
fn a_malformed_gate_is_an_error_in_the_pipeline() {
    let r = gated();
    r.ws.write("gourd.ncl", &r.ws.read("gourd.ncl").replace("accuracy >= 0.5", "accuracy => 0.5"));
    let check = r.ws.gourd(&["check"]);
    assert_eq!(check.code, 1);
    insta::assert_snapshot!(check.normalized(&r.ws), @"error: in `[WS]/gourd.ncl:25`: registry `pumpkin`: gate `accuracy => 0.5` of stage `staging`: `=>` is not a comparison: write `>=`");
}

#[test]
fn get_materialises_a_version_and_verifies_every_byte() {
    let r = Registry::new();
    r.build("one", "0.91");
    r.at(0, &["register", "pumpkin", "models/model.bin"]).success();
    r.at(5, &["promote", "pumpkin", "v0.0.1", "prod"]).success();
    r.build("two", "0.93");
    r.at(10, &["register", "pumpkin", "models/model.bin"]).success();
    // The workspace holds v0.0.2; prod is v0.0.1, from the cache.
    let got = r.ws.gourd(&["registry", "get", "pumpkin@prod", "-o", "out"]).success();
    assert_eq!(got.stdout, "out/model.bin\n");
    assert!(got.stderr.contains("Restored pumpkin v0.0.1 from the local cache to `out/model.bin`"), "{}", got.stderr);
    assert_eq!(r.ws.read("out/model.bin"), "one");
    // The same bytes again: nothing to do, and said so.
    let again = r.ws.gourd(&["registry", "get", "pumpkin@prod", "-o", "out"]).success();
    assert!(again.stderr.contains("pumpkin v0.0.1 is at `out/model.bin` already"), "{}", again.stderr);
    // Other bytes are in the way: refused, and nothing is touched.
    let refused = r.ws.gourd(&["registry", "get", "pumpkin@latest", "-o", "out"]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("`out/model.bin` holds something other than pumpkin v0.0.2 already; nothing was changed"),
        "{}",
        refused.stderr
    );
    assert_eq!(r.ws.read("out/model.bin"), "one", "left as it was");
    // A link to the same bytes is not the version: refused too.
    std::fs::create_dir_all(r.ws.path("linked")).unwrap();
    std::os::unix::fs::symlink(r.ws.path("out/model.bin"), r.ws.path("linked/model.bin")).unwrap();
    let linked = r.ws.gourd(&["registry", "get", "pumpkin@prod", "-o", "linked"]);
    assert_eq!(linked.code, 1, "{}", linked.stderr);
    r.ws.gourd(&["registry", "get", "pumpkin@prod", "-o", "linked", "--force"]).success();
    assert!(!std::fs::symlink_metadata(r.ws.path("linked/model.bin")).unwrap().file_type().is_symlink());
    assert_eq!(r.ws.read("out/model.bin"), "one", "not written through the link");
    // Nor is a folder of the user's own where the artifact would go.
    r.ws.write("mine/model.bin/notes.txt", "keep");
    assert_eq!(r.ws.gourd(&["registry", "get", "pumpkin@prod", "-o", "mine"]).code, 1);
    assert_eq!(r.ws.read("mine/model.bin/notes.txt"), "keep");
    let forced = r.ws.gourd(&["registry", "get", "pumpkin@latest", "-o", "out", "--force"]).success();
    assert_eq!(r.ws.read("out/model.bin"), "two", "replaced with --force");
    // What was there is moved aside, not lost.
    assert!(forced.stderr.contains("moved `out/model.bin` aside to `.gourd-displaced/"), "{}", forced.stderr);
    let kept = common::files_under(&r.ws.path(".gourd-displaced"));
    assert!(kept.iter().any(|p| std::fs::read_to_string(p).is_ok_and(|t| t == "one")), "{kept:?}");
    // A damaged cache object is found out, and nothing is written.
    let digest = r.json(&["resolve", "pumpkin@prod"])["digest"].as_str().unwrap().to_string();
    let object = r.ws.path(&format!(".gourd/cache-v1/objects/{}/{}", &digest[..2], &digest[2..]));
    let mut perms = std::fs::metadata(&object).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
    std::fs::set_permissions(&object, perms).unwrap();
    std::fs::write(&object, "tampered").unwrap();
    let corrupt = r.ws.gourd(&["registry", "get", "pumpkin@prod", "-o", "out", "--force"]);
    assert_eq!(corrupt.code, 2);
    assert!(corrupt.stderr.contains("is corrupt (its bytes do not match its digest)"), "{}", corrupt.stderr);
    assert_eq!(r.ws.read("out/model.bin"), "two", "left as it was");
    // A clone that never ran the pipeline, without a remote cache.
    let clone = TestWorkspace::clone_of(r.ws.root());
    let missing = clone.gourd(&["registry", "get", "pumpkin@prod", "-o", "out"]);
    assert_eq!(missing.code, 1);
    insta::assert_snapshot!(missing.normalized(&clone), @r"
    error: pumpkin v0.0.1 is not in the local cache, and no remote cache is configured

    hint: configure the pipeline's `remote` (or GOURD_REMOTE_*), or run `gourd run` at its commit
    ");
}

/// A version points at a commit: registering bytes that commit does not
/// build (its inputs changed since the run, without a new run) is said.
#[test]
fn registering_what_the_commit_does_not_build_is_warned_of() {
    let r = Registry::new();
    r.build("one", "0.91");
    let fine = r.at(0, &["register", "pumpkin", "models/model.bin"]).success();
    assert!(!fine.stderr.contains("warning"), "{}", fine.stderr);
    // The input changes and is committed; the model is not rebuilt.
    r.ws.write("seed.txt", "two");
    r.ws.git(&["commit", "-qam", "two"]);
    let stale = r.at(10, &["register", "other", "models/model.bin"]).success();
    assert!(
        stale.stderr.contains("warning: `models/model.bin` was built from other inputs than commit")
            && stale.stderr.contains("(stage `train` is stale)"),
        "{}",
        stale.stderr
    );
}

/// A tag is anyone's to push: a recorded path whose last part is `..` or
/// `.` would make `DIR/NAME` the folder above `DIR`, or `DIR` itself, and
/// `--force` would replace it.
#[test]
fn get_refuses_a_recorded_path_that_names_no_file() {
    let r = Registry::new();
    r.build("one", "0.91");
    r.at(0, &["register", "pumpkin", "models/model.bin"]).success();
    let message = r.ws.git(&["tag", "-l", "--format=%(contents)", "pumpkin@v0.0.1"]);
    assert!(message.contains(r#""path":"models/model.bin""#), "{message}");
    r.ws.write("victim/precious.txt", "keep");
    r.ws.write("victim/out/other.bin", "keep too");
    for (n, path) in ["x/..", ".", "models/.."].iter().enumerate() {
        let forged = message.replace(r#""path":"models/model.bin""#, &format!(r#""path":"{path}""#));
        let tag = format!("evil{n}@v0.0.1");
        r.ws.git(&["tag", "-a", &tag, "-m", &forged, "HEAD"]);
        for force in [false, true] {
            let mut args = vec!["registry", "get", tag.as_str(), "-o", "victim/out"];
            args.extend(force.then_some("--force"));
            let got = r.ws.gourd(&args);
            assert_eq!(got.code, 1, "{path}: {}", got.stderr);
            assert!(
                got.stderr.contains(&format!("its registration records the path `{path}`, which does not end in a file or folder name; nothing was changed")),
                "{}",
                got.stderr
            );
            assert_eq!(r.ws.read("victim/precious.txt"), "keep");
            assert_eq!(r.ws.read("victim/out/other.bin"), "keep too");
        }
    }
}

/// A bare repository as `origin` of `ws`, with `main` pushed.
fn with_origin(ws: &TestWorkspace) -> tempfile::TempDir {
    let bare = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("git")
        .args(["init", "-q", "--bare", "-b", "main"])
        .current_dir(bare.path())
        .status();
    assert!(status.unwrap().success());
    ws.git(&["remote", "add", "origin", bare.path().to_str().unwrap()]);
    ws.git(&["push", "-q", "origin", "main"]);
    bare
}

#[test]
fn push_and_pull_carry_the_registry_and_concurrent_promotions_both_survive() {
    let a = Registry::new();
    a.build("one", "0.91");
    a.at(0, &["register", "pumpkin", "models/model.bin"]).success();
    a.build("two", "0.93");
    a.at(10, &["register", "pumpkin", "models/model.bin"]).success();
    let origin = with_origin(&a.ws);
    let pushed = a.ws.gourd(&["push"]).success();
    assert!(pushed.stderr.contains("Pushed 2 registry tag(s) to `origin`."), "{}", pushed.stderr);
    let b = Registry { ws: TestWorkspace::clone_of(origin.path()) };
    b.ws.git(&["config", "user.name", "Bea"]);
    b.ws.git(&["config", "user.email", "bea@example.com"]);
    assert_eq!(b.json(&["show"])["artifacts"][0]["latest"], "v0.0.2", "a clone has the registry");
    // Both promote at once, each taking counter #1.
    a.at(100, &["promote", "pumpkin", "v0.0.1", "prod", "-m", "ours"]).success();
    b.at(110, &["promote", "pumpkin", "v0.0.2", "prod", "-m", "theirs"]).success();
    a.ws.gourd(&["push"]).success();
    let rejected = b.ws.gourd(&["push"]);
    assert_eq!(rejected.code, 1);
    assert!(
        rejected.stderr.contains("`origin` has other moves under the names of 1 of yours (`pumpkin#prod#1`)"),
        "{}",
        rejected.stderr
    );
    assert!(rejected.stderr.contains("`gourd pull origin` renumbers your moves"), "{}", rejected.stderr);
    let pulled = b.ws.gourd(&["pull"]).success();
    assert!(
        pulled.stderr.contains(
            "your move `pumpkin#prod#1` had the name of another move on `origin`; it is `pumpkin#prod#2` now"
        ),
        "{}",
        pulled.stderr
    );
    b.ws.gourd(&["push"]).success();
    a.ws.gourd(&["pull"]).success();
    // Both clones, and GTO's reading of the tags, agree: both moves are
    // there, in time order, and prod holds the later one.
    for clone in [&a, &b] {
        let history = clone.json(&["history", "pumpkin", "--stage", "prod"]);
        let moves: Vec<(&str, &str, &str)> = history["moves"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["tag"].as_str().unwrap(), m["who"].as_str().unwrap(), m["why"].as_str().unwrap()))
            .collect();
        assert_eq!(moves, [("pumpkin#prod#1", "Test", "ours"), ("pumpkin#prod#2", "Bea", "theirs")]);
        assert_eq!(clone.json(&["show"])["artifacts"][0]["stages"]["prod"], "v0.0.2");
    }
    let on_origin = std::process::Command::new("git").args(["tag", "-l"]).current_dir(origin.path()).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&on_origin.stdout),
        "pumpkin#prod#1\npumpkin#prod#2\npumpkin@v0.0.1\npumpkin@v0.0.2\n"
    );
    // Nothing is left of the fetch.
    assert_eq!(b.ws.git(&["for-each-ref", "refs/gourd-fetch"]), "");
}

/// Two clones replace the prod model at once: each writes an unassignment
/// and an assignment under the same counters. The pulled pair keeps its
/// order (unassignment first) and names as previous holder the version
/// that held prod once the other clone's move came first.
#[test]
fn a_pulled_replacement_keeps_its_order_and_names_the_real_previous_holder() {
    let a = Registry::new();
    for (n, (seed, accuracy)) in [("one", "0.91"), ("two", "0.92"), ("three", "0.93")].into_iter().enumerate() {
        a.build(seed, accuracy);
        a.at(n as i64, &["register", "pumpkin", "models/model.bin"]).success();
    }
    a.at(10, &["promote", "pumpkin", "v0.0.3", "prod"]).success();
    let origin = with_origin(&a.ws);
    a.ws.gourd(&["push"]).success();
    let b = Registry { ws: TestWorkspace::clone_of(origin.path()) };
    b.ws.git(&["config", "user.name", "Bea"]);
    b.ws.git(&["config", "user.email", "bea@example.com"]);
    a.at(100, &["promote", "pumpkin", "v0.0.2", "prod", "--force", "-m", "ours"]).success();
    b.at(110, &["promote", "pumpkin", "v0.0.1", "prod", "--force", "-m", "theirs"]).success();
    a.ws.gourd(&["push"]).success();
    b.ws.gourd(&["pull"]).success();
    let tags = b.tags();
    assert!(tags.contains(&"pumpkin#prod!#4".to_string()) && tags.contains(&"pumpkin#prod#5".to_string()), "{tags:?}");
    let history = b.json(&["history", "pumpkin", "--stage", "prod"]);
    let moves: Vec<(&str, &str, &str)> = history["moves"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["action"] == "assign")
        .map(|m| (m["tag"].as_str().unwrap(), m["version"].as_str().unwrap(), m["previous"].as_str().unwrap_or("-")))
        .collect();
    assert_eq!(
        moves,
        [
            ("pumpkin#prod#1", "v0.0.3", "-"),
            ("pumpkin#prod#3", "v0.0.2", "v0.0.3"),
            ("pumpkin#prod#5", "v0.0.1", "v0.0.2")
        ],
        "{history:#}"
    );
    assert_eq!(b.json(&["show"])["artifacts"][0]["stages"]["prod"], "v0.0.1");
    let text = b.ws.gourd(&["registry", "history", "pumpkin", "--stage", "prod"]).success().stdout;
    assert!(text.contains("prod: v0.0.2 -> v0.0.1"), "{text}");
}

/// The S3 test server's address (`tests/servers/s3-up.sh`).
fn s3_server() -> String {
    match std::env::var("GOURD_TEST_S3") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!("GOURD_TEST_S3 is not set: start the server with `eval \"$(tests/servers/s3-up.sh)\"`"),
    }
}

#[test]
#[ignore = "needs the S3 test server: eval \"$(tests/servers/s3-up.sh)\", then --ignored"]
fn get_on_a_clone_that_never_ran_fetches_from_the_remote_cache() {
    let url = s3_server();
    let bucket = format!("gourd-registry-{}", std::process::id());
    let made = std::process::Command::new("curl").args(["-sf", "-X", "PUT", &format!("{url}/{bucket}")]).status();
    assert!(made.unwrap().success());
    let r = Registry::new();
    let remote = format!("  remote = {{ kind = 's3, endpoint = \"{url}\", bucket = \"{bucket}\" }},\n}}\n");
    r.ws.write("gourd.ncl", &(PIPELINE.trim_end().trim_end_matches('}').to_string() + &remote));
    let aws =
        [("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"), ("AWS_DEFAULT_REGION", "us-east-1")];
    r.ws.write("seed.txt", "one");
    r.ws.write("acc.txt", "0.91");
    r.ws.git(&["add", "-A"]);
    r.ws.git(&["commit", "-q", "-m", "one"]);
    r.ws.gourd_env(&["run"], &aws).success();
    r.at(0, &["register", "pumpkin", "models/model.bin"]).success();
    r.at(5, &["promote", "pumpkin", "v0.0.1", "prod"]).success();
    // A newer run, so the registered one is no longer the stage's last run.
    r.ws.write("seed.txt", "two");
    r.ws.gourd_env(&["run"], &aws).success();
    let origin = with_origin(&r.ws);
    r.ws.gourd_env(&["push"], &aws).success();
    let clone = TestWorkspace::clone_of(origin.path());
    let got = clone.gourd_env(&["registry", "get", "pumpkin@prod", "-o", "served"], &aws).success();
    assert!(got.stderr.contains(&format!("from s3://{bucket}")), "{}", got.stderr);
    assert_eq!(clone.read("served/model.bin"), "one");
}

/// GTO (pip `gto`), from `scripts/setup-gto.sh`.
fn gto_bin() -> String {
    match std::env::var("GOURD_TEST_GTO") {
        Ok(path) if !path.is_empty() => path,
        _ => panic!("GOURD_TEST_GTO is not set: install GTO with `eval \"$(scripts/setup-gto.sh)\"`"),
    }
}

fn gto(ws: &TestWorkspace, args: &[&str]) -> String {
    let out = std::process::Command::new(gto_bin()).args(args).current_dir(ws.root()).output().unwrap();
    assert!(
        out.status.success(),
        "gto {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every move as (event, version, stage, tag), as GTO's `history --json`
/// and gourd's `registry history --json` list them.
fn gto_moves(ws: &TestWorkspace) -> Vec<(String, String, String, String)> {
    let history: Value = serde_json::from_str(&gto(ws, &["history", "pumpkin", "--json"])).unwrap();
    let mut moves: Vec<_> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let text = |k: &str| e[k].as_str().unwrap_or("-").to_string();
            (text("event"), text("version"), text("stage"), text("ref"))
        })
        .collect();
    moves.sort();
    moves
}

fn gourd_moves(r: &Registry) -> Vec<(String, String, String, String)> {
    let history = r.json(&["history", "pumpkin"]);
    let mut moves: Vec<_> = history["moves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let event = match m["action"].as_str().unwrap() {
                "register" => "registration",
                "deregister" => "deregistration",
                "assign" => "assignment",
                "unassign" => "unassignment",
                "deprecate" => "deprecation",
                other => panic!("{other}"),
            };
            let text = |k: &str| m[k].as_str().unwrap_or("-").to_string();
            (event.to_string(), text("version"), text("stage"), text("tag"))
        })
        .collect();
    moves.sort();
    moves
}

#[test]
#[ignore = "needs GTO: eval \"$(scripts/setup-gto.sh)\", then --include-ignored"]
fn gto_reads_the_registry_gourd_writes() {
    let r = Registry::new();
    r.build("one", "0.91");
    r.at(0, &["register", "pumpkin", "models/model.bin", "-m", "first"]).success();
    r.build("two", "0.93");
    r.at(10, &["register", "pumpkin", "models/model.bin"]).success();
    r.at(20, &["promote", "pumpkin", "v0.0.1", "prod"]).success();
    r.at(30, &["promote", "pumpkin", "v0.0.2", "prod"]).success();
    r.at(40, &["promote", "pumpkin", "v0.0.2", "staging"]).success();
    r.at(60, &["promote", "pumpkin", "v0.0.1", "prod", "-m", "rollback"]).success();
    let show: Value = serde_json::from_str(&gto(&r.ws, &["show", "--json"])).unwrap();
    assert_eq!(show["pumpkin"]["version"], "v0.0.2");
    assert_eq!(show["pumpkin"]["stage"], serde_json::json!({"prod": "v0.0.1", "staging": "v0.0.2"}), "{show}");
    assert_eq!(gto(&r.ws, &["show", "pumpkin#prod", "--version"]).trim(), "v0.0.1", "the rollback, as GTO reads it");
    assert_eq!(gto_moves(&r.ws), gourd_moves(&r));
    let registered: Value = serde_json::from_str(&gto(&r.ws, &["show", "pumpkin", "--json"])).unwrap();
    let first = registered.as_array().unwrap().iter().find(|v| v["version"] == "v0.0.1").unwrap().clone();
    assert!(first["message"].as_str().unwrap().starts_with("first"), "{first}");
    // A deregistered version leaves GTO's view too.
    r.at(70, &["deprecate", "pumpkin", "v0.0.2", "--force"]).success();
    let show: Value = serde_json::from_str(&gto(&r.ws, &["show", "--json"])).unwrap();
    assert_eq!(show["pumpkin"]["version"], "v0.0.1");
    assert_eq!(r.json(&["show"])["artifacts"][0]["latest"], "v0.0.1");
}

#[test]
#[ignore = "needs GTO: eval \"$(scripts/setup-gto.sh)\", then --include-ignored"]
fn gourd_reads_the_registry_gto_writes() {
    let r = Registry::new();
    let pause = || std::thread::sleep(std::time::Duration::from_millis(1100));
    r.build("one", "0.91");
    gto(&r.ws, &["register", "pumpkin"]);
    r.build("two", "0.93");
    gto(&r.ws, &["register", "pumpkin"]);
    pause();
    gto(&r.ws, &["assign", "pumpkin", "--version", "v0.0.1", "--stage", "prod"]);
    pause();
    gto(&r.ws, &["assign", "pumpkin", "--version", "v0.0.2", "--stage", "staging"]);
    pause();
    gto(&r.ws, &["deprecate", "pumpkin", "v0.0.1", "prod"]);
    pause();
    gto(&r.ws, &["assign", "pumpkin", "--version", "v0.0.2", "--stage", "prod"]);
    pause();
    let show: Value = serde_json::from_str(&gto(&r.ws, &["show", "--json"])).unwrap();
    let ours = r.json(&["show"]);
    assert_eq!(ours["artifacts"][0]["stages"], show["pumpkin"]["stage"]);
    assert_eq!(ours["artifacts"][0]["latest"], show["pumpkin"]["version"]);
    assert_eq!(gourd_moves(&r), gto_moves(&r.ws));
    let resolved = r.ws.gourd(&["registry", "resolve", "pumpkin@prod"]).success();
    assert_eq!(resolved.stdout, "v0.0.2\n");
    // The report shows GTO's moves too; its tags carry no digest.
    let md = r.ws.gourd(&["report", "--format", "md"]).success().stdout;
    let registry = &md[md.find("#### pumpkin").unwrap_or_else(|| panic!("{md}"))..];
    assert!(
        registry.contains("**prod** holds `v0.0.2`") && registry.contains("**staging** holds `v0.0.2`"),
        "{registry}"
    );
    let spans: Vec<Vec<String>> =
        registry.lines().filter(|l| l.starts_with("| prod ")).map(|l| cells(l)[..2].to_vec()).collect();
    assert_eq!(spans, [["prod", "v0.0.1"], ["prod", "v0.0.2"]], "{registry}");
    assert!(registry.lines().any(|l| l.starts_with("| v0.0.1 ") && cells(l)[3] == "`-`"), "{registry}");
    // gourd's next move (now, after GTO's) follows GTO's counter, and GTO
    // reads it.
    r.ws.gourd(&["registry", "promote", "pumpkin", "v0.0.1", "staging"]).success();
    let tags = r.tags();
    assert!(
        tags.contains(&"pumpkin#staging!#5".to_string()) && tags.contains(&"pumpkin#staging#6".to_string()),
        "{tags:?}"
    );
    assert_eq!(gto(&r.ws, &["show", "pumpkin#staging", "--version"]).trim(), "v0.0.1");
}

/// A stage given to a commit that no version names (as `gto assign NAME
/// HEAD --stage S` writes it) is listed by `show NAME`, as by `show`.
#[test]
fn show_lists_a_stage_held_by_a_bare_commit() {
    let r = Registry::new();
    r.build("one", "0.91");
    r.at(0, &["register", "pumpkin", "models/model.bin"]).success();
    r.ws.git(&["commit", "-q", "--allow-empty", "-m", "later"]);
    r.ws.git(&["tag", "-a", "pumpkin#staging#1", "-m", "Assigning stage staging to artifact pumpkin", "HEAD"]);
    let head = r.ws.git(&["rev-parse", "HEAD"]).trim().to_string();
    let show = r.ws.gourd(&["registry", "show", "pumpkin"]).success().stdout;
    let row = show.lines().find(|l| l.starts_with(&head)).unwrap_or_else(|| panic!("{show}"));
    assert!(row.contains("staging") && row.contains("(not registered)"), "{show}");
    assert_eq!(r.json(&["show"])["artifacts"][0]["stages"]["staging"], head.as_str());
}

#[test]
fn a_model_card_is_written_from_lineage() {
    let r = gated();
    let card = r#"      card = { license = "apache-2.0", library_name = "pytorch", base_model = ["google/vit-base-patch16-224"] },
    },
  },
}
"#;
    let pipeline = r.ws.read("gourd.ncl");
    let at = pipeline.rfind("    },\n  },\n}").unwrap();
    r.ws.write("gourd.ncl", &format!("{}{card}", &pipeline[..at]));
    r.build("one", "0.93");
    r.at(0, &["register", "pumpkin", "-m", "first of the season"]).success();
    r.at(10, &["promote", "pumpkin", "v0.0.1", "prod", "-m", "ship it"]).success();
    let card = r.ws.gourd(&["registry", "card", "pumpkin@v0.0.1"]).success().stdout;
    let front = card.strip_prefix("---\n").unwrap().split("\n---\n").next().unwrap();
    let yaml: serde_yaml::Value = serde_yaml::from_str(front).unwrap();
    assert_eq!(yaml["license"], "apache-2.0");
    assert_eq!(yaml["library_name"], "pytorch");
    assert_eq!(yaml["base_model"][0], "google/vit-base-patch16-224");
    assert_eq!(yaml["datasets"][0], "seed.txt", "the source lineage found");
    assert_eq!(yaml["metrics"][0], "accuracy");
    assert_eq!(yaml["model-index"][0]["results"][0]["metrics"][0]["value"].as_f64(), Some(0.93));
    let normalized = regex_lite::Regex::new(r"`[0-9a-f]{12}`").unwrap().replace_all(&card, "`[SHORT]`").into_owned();
    let normalized = normalized.replace(concat!("- gourd: ", env!("CARGO_PKG_VERSION")), "- gourd: [VERSION]");
    insta::assert_snapshot!(common::normalize(&normalized, &r.ws));
    r.ws.gourd(&["registry", "card", "pumpkin@prod", "-o", "models/README.md"]).success();
    assert_eq!(r.ws.read("models/README.md"), card);

    // `-o` of the card, a publish receipt and `get` never write into `.git`
    // or `.gourd` (even through a link), nor over the pipeline file.
    std::os::unix::fs::symlink(".git", r.ws.path("g")).unwrap();
    let (head, pipeline) = (r.ws.read(".git/HEAD"), r.ws.read("gourd.ncl"));
    let tags = r.ws.git(&["tag", "--list"]);
    for args in [
        &["registry", "card", "pumpkin@prod", "-o", ".git/HEAD"][..],
        &["registry", "card", "pumpkin@prod", "-o", "g/HEAD"],
        &["registry", "card", "pumpkin@prod", "-o", ".gourd/card.md"],
        &["registry", "card", "pumpkin@prod", "-o", "gourd.ncl"],
        &["registry", "publish", "pumpkin", "models/model.bin", "--to", "staging", "--receipt", ".git/config"],
        &["registry", "get", "pumpkin@prod", "-o", ".git/refs", "--force"],
        &["registry", "get", "pumpkin@prod", "-o", "g", "--force"],
    ] {
        let out = r.ws.gourd(args);
        assert_eq!(out.code, 1, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("lies in `.git` or `.gourd`") || out.stderr.contains("would replace a pipeline file"),
            "{args:?}: {}",
            out.stderr
        );
    }
    assert_eq!((r.ws.read(".git/HEAD"), r.ws.read("gourd.ncl")), (head, pipeline));
    assert_eq!(r.ws.git(&["tag", "--list"]), tags, "the refused publish moved nothing");
    assert!(!r.ws.exists(".git/refs/model.bin") && !r.ws.exists(".gourd/card.md"));
}

#[test]
fn registry_moves_as_pipeline_stages() {
    let r = gated();
    let pipeline = r.ws.read("gourd.ncl").replacen(
        "  stages = {\n",
        r#"  stages = {
    publish = gourd.registry_stage {
      name = "pumpkin",
      model = "models/model.bin",
      to = ["staging", "prod"],
      deps = ["metrics/eval.json"],
    },
"#,
        1,
    );
    r.ws.write("gourd.ncl", &format!("let gourd = import \"gourd-std.ncl\" in\n{pipeline}"));
    r.ws.write(".gitignore", ".gourd/\nmodels/\nmetrics/\ndata.txt\nregistry/\n");
    // The stage calls `gourd`: the binary under test goes first on PATH.
    let bin = std::path::Path::new(common::gourd_bin()).parent().unwrap().to_str().unwrap().to_string();
    let path = format!("{bin}:{}", std::env::var("PATH").unwrap_or_default());
    let run = |seed: &str, accuracy: &str| {
        r.ws.write("seed.txt", seed);
        r.ws.write("acc.txt", accuracy);
        r.ws.git(&["add", "-A"]);
        r.ws.git(&["commit", "-q", "-m", seed]);
        r.ws.gourd_env(&["run", "--json"], &[("PATH", &path)]).success()
    };
    let receipt = || -> Value { serde_json::from_str(&r.ws.read("registry/pumpkin.json")).unwrap() };

    let first = run("one", "0.93");
    assert_eq!(first.statuses()["publish"], "ran");
    assert_eq!(receipt()["version"], "v0.0.1");
    assert_eq!(receipt()["stages"]["prod"]["outcome"], "promoted");
    assert_eq!(r.tags(), ["pumpkin#prod#2", "pumpkin#staging#1", "pumpkin@v0.0.1"]);
    let history = r.json(&["history", "pumpkin"]);
    assert_eq!(history["moves"][2]["via"], "pipeline stage `publish`");
    assert_eq!(history["moves"][2]["gates"][0]["passed"], true);
    // The registered version's lineage is the run's own, read while it ran.
    let record = r.ws.git(&["tag", "-l", "--format=%(contents)", "pumpkin@v0.0.1"]);
    assert!(record.contains(r#""stage":"train""#) && record.contains(r#""accuracy":0.93"#), "{record}");

    // The same inputs again: only the registry stage runs, and moves nothing.
    let again = r.ws.gourd_env(&["run", "--json"], &[("PATH", &path)]).success();
    assert_eq!(again.summary()["ran"], 1);
    assert_eq!(r.tags().len(), 3);
    assert_eq!(receipt()["registered"], false);
    assert_eq!(receipt()["stages"]["prod"]["outcome"], "held already");

    // Other bytes at the same commit: not registered until committed.
    r.ws.write("seed.txt", "uncommitted");
    let dirty = r.ws.gourd_env(&["run", "--json"], &[("PATH", &path)]).success();
    assert_eq!(dirty.statuses()["publish"], "ran");
    assert!(receipt()["skipped"].as_str().unwrap().contains("holds v0.0.1 already, with other bytes: commit first"));
    assert_eq!(r.tags().len(), 3);
    // The same at a commit that holds no version yet: a version of these
    // bytes would point at a commit whose inputs do not build them.
    r.ws.write("notes.txt", "unrelated");
    r.ws.git(&["add", "notes.txt"]);
    r.ws.git(&["commit", "-q", "-m", "notes"]);
    let dirty = r.ws.gourd_env(&["run", "--json"], &[("PATH", &path)]).success();
    assert_eq!(dirty.statuses()["publish"], "ran");
    let skipped = receipt()["skipped"].as_str().unwrap().to_string();
    assert!(
        skipped.contains("tracked files have uncommitted changes") && skipped.ends_with("commit first"),
        "{skipped}"
    );
    assert_eq!(r.tags().len(), 3, "nothing registered");

    // A worse model: registered and staged; prod's gate keeps the champion.
    let worse = run("two", "0.91");
    assert_eq!(worse.statuses()["publish"], "ran");
    assert_eq!(receipt()["version"], "v0.0.2");
    assert_eq!(receipt()["stages"]["staging"]["outcome"], "promoted");
    assert_eq!(receipt()["stages"]["prod"]["outcome"], "refused");
    assert_eq!(receipt()["stages"]["prod"]["gates"][1]["reason"], "0.91 vs 0.93: short by 0.02");
    let show = r.json(&["show"]);
    assert_eq!(show["artifacts"][0]["stages"], serde_json::json!({"prod": "v0.0.1", "staging": "v0.0.2"}));

    // A better one goes all the way.
    run("three", "0.95");
    assert_eq!(receipt()["stages"]["prod"]["outcome"], "promoted");
    let show = r.json(&["show"]);
    assert_eq!(show["artifacts"][0]["stages"], serde_json::json!({"prod": "v0.0.3", "staging": "v0.0.3"}));

    // A file that is no input (a log a script leaves, `__pycache__`) and
    // that git neither tracks nor ignores does not keep a commit from
    // registering.
    r.ws.write("seed.txt", "four");
    r.ws.git(&["commit", "-q", "-am", "four"]);
    r.ws.write("wandb/run.log", "scratch");
    r.ws.gourd_env(&["run", "--json"], &[("PATH", &path)]).success();
    assert_eq!(receipt()["version"], "v0.0.4", "{}", receipt());
    // An input no commit holds does.
    r.ws.write("seed.txt", "five");
    r.ws.git(&["rm", "-q", "--cached", "seed.txt"]);
    r.ws.git(&["commit", "-q", "-m", "seed.txt no longer tracked"]);
    r.ws.gourd_env(&["run", "--json"], &[("PATH", &path)]).success();
    let skipped = receipt()["skipped"].as_str().unwrap().to_string();
    assert!(skipped.contains("input `seed.txt` is in no commit"), "{skipped}");
    assert_eq!(r.json(&["show"])["artifacts"][0]["latest"], "v0.0.4");
}

/// A row of a Markdown table as its cells, trimmed.
fn cells(line: &str) -> Vec<String> {
    line.trim().trim_matches('|').split(" | ").map(|c| c.trim().to_string()).collect()
}

#[test]
fn the_report_shows_versions_stages_and_who_held_each_stage_when() {
    let r = gated();
    r.build("one", "0.93");
    r.at(0, &["register", "pumpkin", "-m", "first model"]).success();
    r.at(10, &["promote", "pumpkin", "v0.0.1", "prod", "-m", "first in prod"]).success();
    r.build("two", "0.91");
    r.at(20, &["register", "pumpkin"]).success();
    r.at(30, &["promote", "pumpkin", "v0.0.2", "staging"]).success();
    r.at(40, &["promote", "pumpkin", "v0.0.2", "prod", "--force", "-m", "hotfix"]).success();
    r.at(50, &["demote", "pumpkin", "staging", "-m", "staging emptied"]).success();
    r.at(60, &["promote", "pumpkin", "v0.0.1", "prod", "-m", "rollback: v0.0.2 misbehaves"]).success();
    let show = r.json(&["show", "pumpkin"]);
    let digest = |i: usize| show["artifacts"][0]["versions"][i]["digest"].as_str().unwrap()[..12].to_string();
    let (v2_digest, v1_digest) = (digest(0), digest(1));
    let v1_commit = r.ws.git(&["rev-parse", "--short=12", "pumpkin@v0.0.1^{commit}"]).trim().to_string();

    let md = r.ws.gourd(&["report", "--format", "md"]).success().stdout;
    let registry = &md[md.find("### Registry").unwrap_or_else(|| panic!("no registry section:\n{md}"))..];
    let lines: Vec<&str> = registry.lines().collect();
    assert_eq!(lines[2], "#### pumpkin", "{registry}");
    assert_eq!(
        lines[4], "Now: **prod** holds `v0.0.1` since 2026-11-30T12:01:00Z (Test: rollback: v0.0.2 misbehaves).",
        "{registry}"
    );
    // Versions, greatest first, with commit, digest and metrics.
    let row = |prefix: &str| -> Vec<String> {
        cells(lines.iter().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no `{prefix}`:\n{registry}")))
    };
    assert_eq!(
        row("| v0.0.1 "),
        [
            "v0.0.1",
            "prod",
            &format!("`{v1_commit}`"),
            &format!("`{v1_digest}`"),
            "2026-11-30T12:00:00Z by Test",
            "accuracy 0.93"
        ]
    );
    assert_eq!(row("| v0.0.2 ")[..2], ["v0.0.2", "-"]);
    assert_eq!(row("| v0.0.2 ")[3], format!("`{v2_digest}`"));
    assert_eq!(row("| v0.0.2 ")[5], "accuracy 0.91");
    // Who held each stage over which span, and why; the override marked.
    let timeline: Vec<Vec<String>> =
        lines.iter().filter(|l| l.starts_with("| prod ") || l.starts_with("| staging ")).map(|l| cells(l)).collect();
    let expected = [
        ["prod", "v0.0.1", "2026-11-30T12:00:10Z", "2026-11-30T12:00:40Z", "Test", "first in prod", "2/2 passed"],
        [
            "prod",
            "v0.0.2",
            "2026-11-30T12:00:40Z",
            "2026-11-30T12:01:00Z",
            "Test",
            "hotfix",
            "**FORCED: 1 of 2 failed**",
        ],
        ["prod", "v0.0.1", "2026-11-30T12:01:00Z", "now", "Test", "rollback: v0.0.2 misbehaves", "2/2 passed"],
        [
            "staging",
            "v0.0.2",
            "2026-11-30T12:00:30Z",
            "2026-11-30T12:00:50Z",
            "Test",
            "Assigning stage staging to artifact pumpkin version v0.0.2",
            "1/1 passed",
        ],
    ];
    assert_eq!(timeline, expected, "{registry}");
    // The span holding any instant agrees with `history --at`.
    for (at, version) in [("2026-11-30T12:00:39Z", "v0.0.1"), ("2026-11-30T12:00:45Z", "v0.0.2")] {
        let held = r.json(&["history", "pumpkin", "--stage", "prod", "--at", at]);
        assert_eq!(held["stages"]["prod"]["version"], version);
        let span =
            timeline.iter().find(|t| t[0] == "prod" && t[2].as_str() <= at && (t[3] == "now" || at < t[3].as_str()));
        assert_eq!(span.unwrap()[1], version, "{at}");
    }
    // Every move, the forced one marked.
    let moves: Vec<Vec<String>> = lines.iter().filter(|l| l.starts_with("| 2026-")).map(|l| cells(l)).collect();
    let what: Vec<&str> = moves.iter().map(|m| m[1].as_str()).collect();
    assert_eq!(
        what,
        [
            "register v0.0.1",
            "prod: (none) → v0.0.1",
            "register v0.0.2",
            "staging: (none) → v0.0.2",
            "prod: v0.0.1 → v0.0.2",
            "staging: v0.0.2 → (none)",
            "prod: v0.0.2 → v0.0.1"
        ]
    );
    assert_eq!(moves[4][2..], ["Test", "hotfix", "**FORCED: 1 of 2 failed**"]);
    assert_eq!(moves[5][3], "staging emptied");

    // The HTML page holds the same, the override and the failed gate marked.
    r.ws.gourd(&["report", "-o", "report.html"]).success();
    let html = r.ws.read("report.html");
    let section = &html[html.find(r#"<div id="registry">"#).expect("a registry section")..];
    assert_eq!(section.matches("<tr><td>prod</td>").count(), 3, "{section}");
    assert!(section.contains(r#"<td class="forced"><details><summary>FORCED: 1 of 2 failed</summary>"#), "{section}");
    assert!(section.contains("FAILED accuracy &gt;= champion.accuracy: "), "{section}");
    assert!(section.contains(&format!(
        r#"<td class="mono" title="{}">{v1_commit}</td>"#,
        r.ws.git(&["rev-parse", "pumpkin@v0.0.1^{commit}"]).trim()
    )));
}

#[test]
fn a_report_without_registered_models_says_so() {
    let r = Registry::new();
    r.build("one", "0.9");
    r.ws.gourd(&["report", "-o", "report.html"]).success();
    assert!(r.ws.read("report.html").contains("No model is registered"));
    assert!(!r.ws.gourd(&["report", "--format", "md"]).success().stdout.contains("### Registry"));
}
