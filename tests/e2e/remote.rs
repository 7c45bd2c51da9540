//! The S3 remote cache against a real S3-compatible server (moto, started by
//! `tests/servers/s3-up.sh`, which sets `GOURD_TEST_S3`).

mod common;

use std::process::Command;

use common::{TestWorkspace, expect, noise, wait_until};

/// The server's address. The tests that need it are `#[ignore]`d, so that a
/// plain `cargo test` lists them as ignored; run with `--ignored` (as
/// `.ci/run` does), they fail without it.
fn server() -> String {
    match std::env::var("GOURD_TEST_S3") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!("GOURD_TEST_S3 is not set: start the server with `eval \"$(tests/servers/s3-up.sh)\"`"),
    }
}

fn bucket(url: &str) -> String {
    let name = format!("gourd-test-{}-{}", std::process::id(), rand_suffix());
    let status = Command::new("curl").args(["-sf", "-X", "PUT", &format!("{url}/{name}")]).status().unwrap();
    assert!(status.success(), "creating bucket {name}");
    name
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 % 1_000_000_007
}

fn pipeline(endpoint: &str, bucket: &str, extra: &str) -> String {
    format!(
        r#"{{
  remote = {{ kind = 's3, endpoint = "{endpoint}", bucket = "{bucket}"{extra} }},
  stages = {{
    prepare = {{ cmd = "echo prepare >> runs.log && mkdir -p data/clean && cp data/raw.txt data/clean/", deps = ["data/raw.txt"], outs = ["data/clean"] }},
    train = {{ cmd = "echo train >> runs.log && cat data/clean/raw.txt data/clean/raw.txt > model.bin", deps = ["data/clean"], outs = ["model.bin"] }},
  }},
}}
"#
    )
}

fn origin(pipeline: &str) -> TestWorkspace {
    let ws = TestWorkspace::new(pipeline);
    ws.write("data/raw.txt", "pumpkins\n");
    ws.write(".gitignore", ".gourd/\nruns.log\ndata/clean/\nmodel.bin\n");
    ws.git(&["add", "-A"]);
    ws.git(&["commit", "-qm", "pipeline"]);
    ws
}

fn s3_env(ws: &TestWorkspace, args: &[&str], extra: &[(&str, &str)]) -> common::Run {
    let mut env = vec![
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ];
    env.extend_from_slice(extra);
    ws.gourd_env(args, &env)
}

/// Runs `body` in Python, with `s3` a boto3 client of the server at `url`
/// and `bucket` set; returns what it prints.
fn boto(url: &str, bucket: &str, body: &str) -> String {
    let python = std::env::var("GOURD_TEST_S3_PYTHON").expect("GOURD_TEST_S3_PYTHON (tests/servers/s3-up.sh)");
    let script = format!(
        "import boto3\ns3 = boto3.client('s3', endpoint_url='{url}', aws_access_key_id='testing', aws_secret_access_key='testing', region_name='us-east-1')\nbucket = '{bucket}'\n{body}"
    );
    let output = Command::new(python).args(["-c", &script]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Every key in the bucket, sorted.
fn keys(url: &str, bucket: &str) -> Vec<String> {
    let listed = boto(
        url,
        bucket,
        "for page in s3.get_paginator('list_objects_v2').paginate(Bucket=bucket):\n    for o in page.get('Contents', []):\n        print(o['Key'])\n",
    );
    let mut keys: Vec<String> = listed.lines().map(String::from).collect();
    keys.sort();
    keys
}

/// The bucket key of the object holding `path`'s bytes in `ws`'s local cache.
fn object_key(ws: &TestWorkspace, path: &str) -> String {
    let lineage = ws.gourd(&["lineage", path, "--json"]).success();
    let record: serde_json::Value = serde_json::from_str(&lineage.stdout).unwrap();
    let digest = record["record"]["outs"][path].as_str().unwrap_or_else(|| panic!("{}", lineage.stdout));
    format!("gourd/cas/{digest}")
}

/// The run's event for `stage`.
fn event(run: &common::Run, stage: &str) -> serde_json::Value {
    run.events().into_iter().find(|e| e["stage"] == stage).unwrap_or_else(|| panic!("no `{stage}`: {}", run.stdout))
}

#[test]
#[ignore = "needs the S3 test server: eval \"$(tests/servers/s3-up.sh)\", then cargo test --test remote -- --ignored"]
fn two_clones_share_results_through_s3() {
    let url = server();
    let bucket = bucket(&url);
    let alice = origin(&pipeline(&url, &bucket, ""));
    let run = s3_env(&alice, &["run", "--json"], &[]).success();
    assert_eq!(run.statuses(), expect(&[("prepare", "ran"), ("train", "ran")]));

    let bob = TestWorkspace::clone_of(alice.root());
    let run = s3_env(&bob, &["run", "--json"], &[]).success();
    assert_eq!(run.statuses(), expect(&[("prepare", "restored"), ("train", "restored")]), "{}", run.stdout);
    assert!(bob.executions().is_empty(), "bob executed {:?}", bob.executions());
    assert_eq!(bob.read("model.bin"), "pumpkins\npumpkins\n");
    assert!(run.stdout.contains(&format!("from s3://{bucket}/gourd")));
}

#[test]
#[ignore = "needs the S3 test server: eval \"$(tests/servers/s3-up.sh)\", then cargo test --test remote -- --ignored"]
fn a_corrupted_remote_object_is_rejected_and_the_stage_runs() {
    let url = server();
    let bucket = bucket(&url);
    let alice = origin(&pipeline(&url, &bucket, ""));
    s3_env(&alice, &["run"], &[]).success();
    // Poison every file object in the bucket (a signed overwrite, with boto3).
    let objects = alice.path(".gourd/cache-v1/objects");
    let mut keys = Vec::new();
    for shard in std::fs::read_dir(objects).unwrap() {
        let shard = shard.unwrap();
        for object in std::fs::read_dir(shard.path()).unwrap() {
            let name = object.unwrap().file_name();
            keys.push(format!("gourd/cas/{}{}", shard.file_name().to_string_lossy(), name.to_string_lossy()));
        }
    }
    let python = std::env::var("GOURD_TEST_S3_PYTHON").expect("GOURD_TEST_S3_PYTHON (tests/servers/s3-up.sh)");
    let script = format!(
        "import boto3\ns3 = boto3.client('s3', endpoint_url='{url}', aws_access_key_id='testing', aws_secret_access_key='testing', region_name='us-east-1')\nfor k in {keys:?}:\n    s3.put_object(Bucket='{bucket}', Key=k, Body=b'poison')\n"
    );
    let status = Command::new(python).args(["-c", &script]).status().unwrap();
    assert!(status.success());
    let bob = TestWorkspace::clone_of(alice.root());
    let run = s3_env(&bob, &["run", "--json"], &[]).success();
    assert_eq!(run.statuses()["prepare"], "ran", "{}", run.stdout);
    assert!(run.stdout.contains("does not match its digest: rejected"), "{}", run.stdout);
    assert_eq!(bob.read("model.bin"), "pumpkins\npumpkins\n");
}

#[test]
fn a_server_that_is_down_means_running_locally_unless_the_remote_is_required() {
    // Nothing listens on port 9 of loopback.
    let dead = "http://127.0.0.1:9";
    let ws = origin(&pipeline(dead, "nowhere", ""));
    let run = s3_env(&ws, &["run", "--json"], &[]).success();
    assert_eq!(run.statuses(), expect(&[("prepare", "ran"), ("train", "ran")]));
    assert!(run.stdout.contains("remote cache:"), "{}", run.stdout);
    assert!(!run.stdout.contains("testing"), "credentials never appear in messages");
    assert_eq!(ws.gourd(&["status", "--exit-code"]).code, 0, "the workspace is consistent");

    let required = origin(&pipeline(dead, "nowhere", ", required = true"));
    let run = s3_env(&required, &["run", "--json"], &[]);
    assert_eq!(run.code, 1);
    assert_eq!(run.statuses(), expect(&[("prepare", "failed"), ("train", "skipped")]));
    let off = s3_env(&required, &["run", "--json"], &[("GOURD_REMOTE", "off")]).success();
    assert_eq!(off.statuses()["train"], "ran");
}

#[test]
#[ignore = "needs the S3 test server: eval \"$(tests/servers/s3-up.sh)\", then cargo test --test remote -- --ignored"]
fn push_then_pull_on_a_fresh_clone_executes_nothing() {
    let url = server();
    let bucket = bucket(&url);
    let remote = TestWorkspace::bare();
    remote.git(&["init", "-q", "--bare", "-b", "main"]);
    let alice = origin(&pipeline(&url, &bucket, ", push = false"));
    alice.git(&["remote", "add", "origin", remote.root().to_str().unwrap()]);
    alice.git(&["push", "-q", "origin", "main"]);
    s3_env(&alice, &["run"], &[]).success();
    let pushed = s3_env(&alice, &["push"], &[]).success();
    assert!(pushed.stderr.contains("Pushed 2 results"), "{}", pushed.stderr);

    let bob = TestWorkspace::clone_of(remote.root());
    let pulled = s3_env(&bob, &["pull"], &[]).success();
    assert!(pulled.stderr.contains("Pulled 2 results"), "{}", pulled.stderr);
    // Even with the remote off, everything is in the local cache now.
    let run = s3_env(&bob, &["run", "--json"], &[("GOURD_REMOTE", "off")]).success();
    assert_eq!(run.statuses(), expect(&[("prepare", "restored"), ("train", "restored")]));
    assert!(bob.executions().is_empty());
}

#[test]
#[ignore = "needs the S3 test server: eval \"$(tests/servers/s3-up.sh)\", then cargo test --test remote -- --ignored"]
fn a_server_stopped_mid_run_leaves_the_workspace_consistent() {
    server();
    // A server of this test's own, to stop.
    let python = std::env::var("GOURD_TEST_S3_PYTHON").expect("GOURD_TEST_S3_PYTHON");
    let moto = std::path::Path::new(&python).with_file_name("moto_server");
    let port = 20000 + std::process::id() % 20000;
    let url = format!("http://127.0.0.1:{port}");
    let mut server = Command::new(moto)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until("moto to start", || {
        Command::new("curl").args(["-sf", "-o", "/dev/null", &format!("{url}/")]).status().unwrap().success()
    });
    let bucket = bucket(&url);
    let ws = origin(&format!(
        r#"{{
  remote = {{ kind = 's3, endpoint = "{url}", bucket = "{bucket}" }},
  stages = {{
    first = {{ cmd = "echo first > first.txt", outs = ["first.txt"] }},
    second = {{ cmd = "touch started; while [ ! -e go ]; do sleep 0.05; done; cp first.txt second.txt", deps = ["first.txt"], outs = ["second.txt"] }},
  }},
}}
"#
    ));
    let mut command = ws.command(&["run", "--json"]);
    command
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_DEFAULT_REGION", "us-east-1");
    let run = command.stdout(std::process::Stdio::piped()).spawn().unwrap();
    wait_until("the stage to start", || ws.exists("started"));
    server.kill().unwrap();
    server.wait().unwrap();
    ws.write("go", "");
    let output = run.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("not published to"), "{stdout}");
    assert_eq!(ws.read("second.txt"), "first\n");
    assert_eq!(ws.gourd(&["status", "--exit-code"]).code, 0, "the workspace is consistent");
    let again = s3_env(&ws, &["run", "--json"], &[]).success();
    assert_eq!(again.statuses(), expect(&[("first", "up-to-date"), ("second", "up-to-date")]));
}

#[test]
#[ignore = "needs the S3 test server: eval \"$(tests/servers/s3-up.sh)\", then cargo test --test remote -- --ignored"]
fn large_objects_travel_in_parts() {
    let url = server();
    let bucket = bucket(&url);
    let alice = origin(&format!(
        r#"{{
  remote = {{ kind = 's3, endpoint = "{url}", bucket = "{bucket}" }},
  stages = {{
    copy = {{ cmd = "echo copy >> runs.log && cp big.bin model.bin", deps = ["big.bin"], outs = ["model.bin"] }},
  }},
}}
"#
    ));
    // 20 MiB, over the 16 MiB multipart threshold.
    let big = noise(20 << 20, rand_suffix());
    std::fs::write(alice.path("big.bin"), &big).unwrap();
    alice.git(&["add", "big.bin"]);
    alice.git(&["commit", "-qm", "data"]);
    s3_env(&alice, &["run"], &[]).success();
    // An object uploaded in parts has an ETag ending in `-PARTS`.
    let key = object_key(&alice, "model.bin");
    let etag = boto(&url, &bucket, &format!("print(s3.head_object(Bucket=bucket, Key='{key}')['ETag'])"));
    let parts = etag.trim().trim_matches('"').rsplit_once('-').map(|(_, n)| n.parse::<u32>().unwrap());
    assert!(parts.is_some_and(|n| n >= 2), "`{key}` was not uploaded in parts: ETag {etag}");
    let bob = TestWorkspace::clone_of(alice.root());
    let run = s3_env(&bob, &["run", "--json"], &[]).success();
    assert_eq!(run.statuses()["copy"], "restored", "{}", run.stdout);
    assert!(std::fs::read(bob.path("model.bin")).unwrap() == big, "the object came back whole");
    assert!(bob.executions().is_empty());

    // Cut short (still over the threshold, so it is received in chunks):
    // rejected, and the stage runs.
    boto(
        &url,
        &bucket,
        &format!(
            "body = s3.get_object(Bucket=bucket, Key='{key}')['Body'].read()\ns3.put_object(Bucket=bucket, Key='{key}', Body=body[:18 << 20])\n"
        ),
    );
    let carol = TestWorkspace::clone_of(alice.root());
    let run = s3_env(&carol, &["run", "--json"], &[]).success();
    assert_eq!(run.statuses()["copy"], "ran", "{}", run.stdout);
    assert!(event(&run, "copy")["message"].as_str().unwrap().contains("does not match its digest: rejected"));
    assert!(std::fs::read(carol.path("model.bin")).unwrap() == big);
    assert_eq!(carol.executions(), ["copy"]);
}

#[test]
#[ignore = "needs the S3 test server: eval \"$(tests/servers/s3-up.sh)\", then cargo test --test remote -- --ignored"]
fn read_only_runs_restore_but_never_publish() {
    let url = server();
    let bucket = bucket(&url);
    let alice = origin(&pipeline(&url, &bucket, ""));
    let run = s3_env(&alice, &["run", "--json"], &[("GOURD_REMOTE_PUSH", "0")]).success();
    assert_eq!(run.statuses(), expect(&[("prepare", "ran"), ("train", "ran")]));
    assert_eq!(keys(&url, &bucket), Vec::<String>::new(), "a read-only run published");

    // What a writable run publishes, a read-only one restores.
    let bob = TestWorkspace::clone_of(alice.root());
    s3_env(&bob, &["run"], &[]).success();
    assert_eq!(keys(&url, &bucket).iter().filter(|k| k.starts_with("gourd/ac/")).count(), 2);
    let carol = TestWorkspace::clone_of(alice.root());
    let run = s3_env(&carol, &["run", "--json"], &[("GOURD_REMOTE_PUSH", "0")]).success();
    assert_eq!(run.statuses(), expect(&[("prepare", "restored"), ("train", "restored")]));
    assert!(carol.executions().is_empty());
}

#[test]
#[ignore = "needs the S3 test server: eval \"$(tests/servers/s3-up.sh)\", then cargo test --test remote -- --ignored"]
fn a_result_naming_other_outputs_is_rejected() {
    let url = server();
    let bucket = bucket(&url);
    let alice = origin(&pipeline(&url, &bucket, ""));
    let run = s3_env(&alice, &["run", "--json"], &[]).success();
    // `train`'s published result also claims `gourd.ncl`, with the model's bytes.
    let key = event(&run, "train")["key"].as_str().unwrap().to_string();
    boto(
        &url,
        &bucket,
        &format!(
            "import json\nk = 'gourd/ac/{key}'\nresult = json.loads(s3.get_object(Bucket=bucket, Key=k)['Body'].read())\nresult['outputs']['gourd.ncl'] = result['outputs']['model.bin']\ns3.put_object(Bucket=bucket, Key=k, Body=json.dumps(result).encode())\n"
        ),
    );
    let bob = TestWorkspace::clone_of(alice.root());
    let before = bob.read("gourd.ncl");
    let run = s3_env(&bob, &["run", "--json"], &[]).success();
    assert_eq!(run.statuses(), expect(&[("prepare", "restored"), ("train", "ran")]), "{}", run.stdout);
    assert!(event(&run, "train")["message"].as_str().unwrap().contains("names other outputs"), "{}", run.stdout);
    assert_eq!(bob.read("gourd.ncl"), before, "nothing outside the stage's outputs is written");
    assert_eq!(bob.read("model.bin"), "pumpkins\npumpkins\n");
}

#[test]
#[ignore = "needs the S3 test server: eval \"$(tests/servers/s3-up.sh)\", then cargo test --test remote -- --ignored"]
fn an_evicted_object_means_running_again() {
    let url = server();
    let bucket = bucket(&url);
    let alice = origin(&pipeline(&url, &bucket, ""));
    s3_env(&alice, &["run"], &[]).success();
    let key = object_key(&alice, "model.bin");
    boto(&url, &bucket, &format!("s3.delete_object(Bucket=bucket, Key='{key}')\n"));
    let bob = TestWorkspace::clone_of(alice.root());
    let run = s3_env(&bob, &["run", "--json"], &[]).success();
    assert_eq!(run.statuses(), expect(&[("prepare", "restored"), ("train", "ran")]), "{}", run.stdout);
    let message = event(&run, "train")["message"].as_str().unwrap().to_string();
    assert!(message.contains("is missing from") && message.contains("(evicted?)"), "{message}");
    assert_eq!(bob.read("model.bin"), "pumpkins\npumpkins\n");
    assert_eq!(bob.executions(), ["train"]);
}
