//! Exported pipelines turned into the engine's types (`validate`), the line
//! an error names, and the files an in-process evaluation read.

use std::path::{Path, PathBuf};

use gourd_spec::SpecError;

/// `text` written as `gourd.ncl` in a temporary folder, for the lines an
/// error names.
fn file(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("gourd.ncl");
    std::fs::write(&path, text).unwrap();
    path
}

fn invalid(result: Result<gourd_core::model::Pipeline, SpecError>) -> (Option<usize>, String) {
    match result {
        Err(SpecError::Invalid { line, message, .. }) => (line, message),
        other => panic!("expected an invalid pipeline, got {other:?}"),
    }
}

#[test]
fn an_s3_remote_gets_the_default_prefix_and_its_errors_name_the_remote_line() {
    let dir = tempfile::tempdir().unwrap();
    let f = file(dir.path(), "{}");
    let pipeline = gourd_spec::validate(r#"{"stages": {}, "remote": {"kind": "s3", "bucket": "b"}}"#, &f).unwrap();
    let remote = pipeline.remote.unwrap();
    assert_eq!((remote.prefix.as_str(), remote.bucket.as_deref()), ("gourd", Some("b")));
    let pipeline =
        gourd_spec::validate(r#"{"stages": {}, "remote": {"kind": "s3", "bucket": "b", "prefix": "team/cache"}}"#, &f)
            .unwrap();
    assert_eq!(pipeline.remote.unwrap().prefix, "team/cache");

    let f = file(dir.path(), "{\n  stages = {},\n\n  remote = { kind = 's3 },\n}\n");
    let (line, message) = invalid(gourd_spec::validate(r#"{"stages": {}, "remote": {"kind": "s3"}}"#, &f));
    assert_eq!(line, Some(4), "{message}");
    assert!(message.starts_with("field `remote`: an 's3 remote needs a `bucket`"), "{message}");
}

#[test]
fn stage_names_are_checked_as_the_standard_library_says() {
    let dir = tempfile::tempdir().unwrap();
    let f = file(dir.path(), "{}");
    let export = |name: &str| format!(r#"{{"stages": {{"{name}": {{"cmd": "true"}}}}}}"#);
    for good in ["a", "_a", "9", "train-0", "a.b_c-d", "A_1"] {
        let pipeline = gourd_spec::validate(&export(good), &f).unwrap_or_else(|e| panic!("`{good}`: {e}"));
        assert_eq!(pipeline.stages[0].name, good);
    }
    for bad in ["", "-a", ".a", "a b", "a/b", "é", "a:b"] {
        let (_, message) = invalid(gourd_spec::validate(&export(bad), &f));
        assert_eq!(message, format!("invalid stage name `{bad}`"));
    }
}

#[test]
fn errors_name_the_line_of_the_stage_not_of_a_name_that_contains_it() {
    // `train` ends `pretrain`, `pre_train`, `pre-train` and `pre'train`
    // (letters, `_`, `-` and `'` all make identifiers), starts `train_2`,
    // and is compared with `==`: only its own definition counts, written
    // plainly or quoted.
    let dir = tempfile::tempdir().unwrap();
    let text = "{\n  stages = {\n    pretrain = { outs = [\"m\"] },\n    pre_train = { outs = [\"m\"] },\n    pre-train = { outs = [\"m\"] },\n    pre'train = { outs = [\"m\"] },\n    train_2 = { outs = [\"m\"] },\n    check = if train == 1 then \"m\" else \"m\",\n    train = {\n      outs = [\"m\"],\n    },\n  },\n}\n";
    let f = file(dir.path(), text);
    assert_eq!(gourd_spec::line_of(&f, "train", Some("m")), Some(10));
    assert_eq!(gourd_spec::line_of(&f, "train", None), Some(9));
    assert_eq!(gourd_spec::line_of(&f, "pretrain", None), Some(3));
    assert_eq!(gourd_spec::line_of(&f, "pre-train", None), Some(5));
    let quoted = file(
        dir.path(),
        "{\n  stages = {\n    x = { outs = [\"m\"] },\n    \"train\" = { outs = [\"m\"] },\n  },\n}\n",
    );
    assert_eq!(gourd_spec::line_of(&quoted, "train", Some("m")), Some(4));
    // A name that only appears inside others: the literal's first line.
    let nowhere = file(dir.path(), "{\n  stages = {\n    pretrain = { outs = [\"m\"] },\n  },\n}\n");
    assert_eq!(gourd_spec::line_of(&nowhere, "train", Some("m")), Some(3));
    assert_eq!(gourd_spec::line_of(&nowhere, "train", None), None);
}

#[test]
fn an_evaluation_here_lists_the_files_it_read() {
    let dir = tempfile::tempdir().unwrap();
    let stdlib = gourd_spec::install_stdlib(&dir.path().join("stdlib")).unwrap();
    std::fs::write(dir.path().join("lr.ncl"), "0.5\n").unwrap();
    let f = file(dir.path(), "{ stages = { a = { cmd = \"true\", params = { lr = import \"lr.ncl\" } } } }\n");
    let evaluation = gourd_spec::evaluate_here(&f, &stdlib, false, false).unwrap();
    let export: serde_json::Value = serde_json::from_str(&evaluation.export).unwrap();
    assert_eq!(export["stages"]["a"]["params"]["lr"], 0.5);
    let read = evaluation.read.expect("the files read, unchanged while evaluating");
    for expected in [f.canonicalize().unwrap(), dir.path().join("lr.ncl").canonicalize().unwrap()] {
        let source = read.iter().find(|s| s.path.canonicalize().is_ok_and(|p| p == expected));
        let source = source.unwrap_or_else(|| panic!("`{}` is not among {read:?}", expected.display()));
        assert!(source.digest.is_some(), "{source:?}");
    }
}

#[test]
fn commands_and_timeouts_must_say_something() {
    let dir = tempfile::tempdir().unwrap();
    let f = file(dir.path(), "{}");
    let stage = |fields: &str| format!(r#"{{"stages": {{"s": {{{fields}}}}}}}"#);
    let pipeline = gourd_spec::validate(&stage(r#""cmd": ["echo", "hi"], "timeout": 0.5"#), &f).unwrap();
    assert_eq!(pipeline.stages[0].timeout, Some(std::time::Duration::from_millis(500)));
    let pipeline = gourd_spec::validate(&stage(r#""cmd": ["echo", "hi"], "timeout": 315360000"#), &f).unwrap();
    assert_eq!(pipeline.stages[0].timeout, Some(std::time::Duration::from_secs(315_360_000)));
    let cases = [
        (r#""cmd": "  ""#, "field `cmd`: the command is empty"),
        (r#""cmd": []"#, "field `cmd`: the command is empty"),
        (r#""cmd": ["", "x"]"#, "field `cmd`: the program (the first element of the array) is empty"),
        (r#""cmd": "true", "timeout": 0"#, "field `timeout`: expected a positive number of seconds"),
        (r#""cmd": "true", "timeout": -1"#, "field `timeout`: expected a positive number of seconds"),
        (
            r#""cmd": "true", "timeout": 1e20"#,
            "field `timeout`: more than ten years (315360000 s); leave `timeout` out for no limit",
        ),
        (
            r#""cmd": "true", "timeout": 315360000.5"#,
            "field `timeout`: more than ten years (315360000 s); leave `timeout` out for no limit",
        ),
    ];
    for (fields, expected) in cases {
        let (_, message) = invalid(gourd_spec::validate(&stage(fields), &f));
        assert_eq!(message, format!("stage `s`: {expected}"), "{fields}");
    }
}

#[test]
fn a_remote_timeout_must_be_positive_and_a_bucket_not_blank() {
    let dir = tempfile::tempdir().unwrap();
    let f = file(dir.path(), "{}");
    let remote = |fields: &str| format!(r#"{{"stages": {{}}, "remote": {{{fields}}}}}"#);
    let ok = gourd_spec::validate(&remote(r#""kind": "reapi", "endpoint": "grpc://h:1", "timeout": 2.5"#), &f).unwrap();
    assert_eq!(ok.remote.unwrap().timeout, std::time::Duration::from_millis(2500));
    for (fields, expected) in [
        (
            r#""kind": "reapi", "endpoint": "grpc://h:1", "timeout": 0"#,
            "`timeout`: expected a positive number of seconds",
        ),
        (r#""kind": "s3", "bucket": "b", "timeout": -2"#, "`timeout`: expected a positive number of seconds"),
        (
            r#""kind": "s3", "bucket": "b", "timeout": 1e300"#,
            "`timeout`: more than ten years (315360000 s); leave `timeout` out for no limit",
        ),
        (r#""kind": "s3", "bucket": "  ""#, "an 's3 remote needs a `bucket`"),
    ] {
        let (_, message) = invalid(gourd_spec::validate(&remote(fields), &f));
        assert_eq!(message, format!("field `remote`: {expected}"), "{fields}");
    }
}

#[test]
fn registry_names_are_checked_as_the_standard_library_says() {
    let dir = tempfile::tempdir().unwrap();
    let f = file(dir.path(), "{}");
    let export = |name: &str| format!(r#"{{"stages": {{}}, "registry": {{"{name}": {{"path": "model.bin"}}}}}}"#);
    for good in ["m", "model-2", "a/b_c-9", "dir/sub:my-model", "x_.y:z"] {
        let pipeline = gourd_spec::validate(&export(good), &f).unwrap_or_else(|e| panic!("`{good}`: {e}"));
        assert!(pipeline.registry.contains_key(good), "{good}");
    }
    for bad in ["", "-m", "m-", "m_", "_m", ":m", "d!r:m", "dir:", "a b", "m.v1", "a:b:c"] {
        let (_, message) = invalid(gourd_spec::validate(&export(bad), &f));
        assert!(message.ends_with(&format!("invalid registry name `{bad}`")), "`{bad}`: {message}");
    }
}

/// JSON has no enum tags, so the fast evaluation (no contract) looks for
/// them itself: a tag where a string belongs, or a string where a tag
/// belongs, sends the pipeline to the checked evaluation, whose contract
/// names the field.
#[test]
fn enum_tags_only_where_the_contract_takes_them() {
    let dir = tempfile::tempdir().unwrap();
    let stdlib = gourd_spec::install_stdlib(&dir.path().join("stdlib")).unwrap();
    let fast = |stage: &str, rest: &str| {
        let f = file(dir.path(), &format!("{{ stages = {{ a = {{ {stage} }} }}{rest} }}\n"));
        gourd_spec::evaluate_here(&f, &stdlib, false, false).map(|e| e.export)
    };
    for (stage, rest, at) in [
        ("cmd = 'hello", "", "stages.a.cmd"),
        ("cmd = ['echo, \"hi\"]", "", "stages.a.cmd.0"),
        ("cmd = \"true\", outs = ['x]", "", "stages.a.outs.0"),
        ("cmd = \"true\", outs = [{ path = 'x }]", "", "stages.a.outs.0.path"),
        ("cmd = \"true\", deps = ['x]", "", "stages.a.deps.0"),
        ("cmd = \"true\", env = { A = 'val }", "", "stages.a.env.A"),
        ("cmd = \"true\", wdir = 'sub", "", "stages.a.wdir"),
        ("cmd = \"true\", desc = 'sub", "", "stages.a.desc"),
        ("cmd = \"true\", executor = \"cuda\"", "", "stages.a.executor"),
        ("cmd = \"true\", outs = [{ path = \"m\", kind = \"model\" }]", "", "stages.a.outs.0.kind"),
        ("cmd = \"true\"", ", remote = { kind = \"folder\", path = \"/tmp\" }", "remote.kind"),
        ("cmd = \"true\"", ", cache = { link = \"hardlink\" }", "cache.link"),
        ("cmd = \"true\"", ", registry = { m = { path = 'm } }", "registry.m.path"),
    ] {
        let err = fast(stage, rest).expect_err(stage);
        assert!(err.starts_with(&format!("`{at}`: an enum tag")), "{stage}{rest}: {err}");
    }
    // Where the contract takes a tag, or anything.
    let fine = fast(
        "cmd = { step = \"drift\", config = { mode = 'strict } }, executor = 'cuda, \
         outs = [{ path = \"m\", kind = 'model }], params = { opt = 'adam, layers = ['a, 'b] }, \
         plots = [{ path = \"p.json\", template = 'linear }]",
        ", remote = { kind = 'folder, path = \"/tmp\" }, cache = { link = 'hardlink }, plots = { x = 'y }",
    )
    .unwrap();
    let export: serde_json::Value = serde_json::from_str(&fine).unwrap();
    assert_eq!(export["stages"]["a"]["params"]["opt"], "adam");
    assert_eq!(export["stages"]["a"]["executor"], "cuda");
    // A field the contract does not know is left to `validate`, which
    // names the nearest known one; so is a tag where a Bool belongs.
    assert!(fast("cmd = \"true\"", ", cache = { links = 'copy }").is_ok());
    assert!(fast("cmd = \"true\", always_run = 'yes", "").is_ok());
    assert!(fast("cmd = \"true\", dpes = ['x]", "").is_ok());
    // The checked evaluation takes what the fast one sent it.
    let f = file(dir.path(), "{ stages = { a = { cmd = \"true\", executor = 'cuda } } }\n");
    assert!(gourd_spec::evaluate_here(&f, &stdlib, false, true).is_ok());
}
