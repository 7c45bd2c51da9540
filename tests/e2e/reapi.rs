//! Remote execution and the shared action cache against a real Remote
//! Execution API server: BuildGrid on PostgreSQL with a worker, started by
//! `tests/servers/reapi-up.sh`, which sets `GOURD_TEST_REAPI`.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bazel_remote_apis::build::bazel::remote::execution::v2 as re;
use common::{TestWorkspace, expect, noise, wait_until};

/// The server's address. The tests that need it are `#[ignore]`d, so that a
/// plain `cargo test` lists them as ignored; run with `--ignored` (as
/// `.ci/run` does), they fail without it.
fn server() -> String {
    match std::env::var("GOURD_TEST_REAPI") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!("GOURD_TEST_REAPI is not set: start the server with `eval \"$(tests/servers/reapi-up.sh)\"`"),
    }
}

/// A pipeline whose `train` stage executes remotely, between two local ones.
/// Every command embeds `salt`, so that each test has actions of its own on
/// the shared server.
fn pipeline(endpoint: &str, salt: &str, remote_extra: &str) -> String {
    format!(
        r#"{{
  remote = {{ kind = 'reapi, endpoint = "{endpoint}", timeout = 60{remote_extra} }},
  stages = {{
    prepare = {{
      cmd = "echo prepare >> runs.log && mkdir -p data/clean/nested && cp data/raw.txt data/clean/ && echo {salt} > data/clean/nested/salt.txt",
      deps = ["data/raw.txt"],
      outs = ["data/clean"],
    }},
    train = {{
      cmd = "mkdir -p models/extra && cat clean/raw.txt clean/raw.txt > models/model.bin && cp \"$GOURD_PARAMS\" models/params.json && pwd > models/where.txt && echo $GOURD_STAGE > models/extra/stage.txt && echo trained {salt} >&2",
      deps = ["data/clean"],
      wdir = "data",
      outs = ["data/models"],
      params = {{ lr = 0.5 }},
      remote = true,
    }},
    report = {{
      cmd = "echo report >> runs.log && wc -c < data/models/model.bin > report.txt",
      deps = ["data/models"],
      outs = ["report.txt"],
    }},
  }},
}}
"#
    )
}

fn salt() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{}-{nanos}", std::process::id())
}

fn origin(pipeline: &str) -> TestWorkspace {
    let ws = TestWorkspace::new(pipeline);
    ws.write("data/raw.txt", "pumpkins\n");
    ws.write(".gitignore", ".gourd/\nruns.log\ndata/clean/\ndata/models/\nreport.txt\n");
    ws.git(&["add", "-A"]);
    ws.git(&["commit", "-qm", "pipeline"]);
    ws
}

fn message(run: &common::Run, stage: &str) -> String {
    run.events()
        .iter()
        .find(|e| e["stage"] == stage)
        .and_then(|e| e["message"].as_str().map(String::from))
        .unwrap_or_default()
}

fn key(run: &common::Run, stage: &str) -> String {
    run.events().iter().find(|e| e["stage"] == stage).unwrap()["key"].as_str().unwrap().to_string()
}

/// The action digest a remote execution logged (`[gourd] action HASH/SIZE`).
fn logged_action(ws: &TestWorkspace, stage: &str) -> (String, i64) {
    let log = ws.read(&format!(".gourd/logs/{stage}.log"));
    let line = log.lines().find(|l| l.starts_with("[gourd] action ")).expect("an action line in the log");
    let (hash, size) = line.split_whitespace().nth(2).unwrap().split_once('/').unwrap();
    (hash.to_string(), size.parse().unwrap())
}

/// An operation on a service, as `ListOperations` shows it.
#[derive(Debug)]
struct Operation {
    done: bool,
    /// The code of the operation's error or of its execution's status
    /// (1: cancelled).
    error: i32,
}

/// The operations on the service at `endpoint` whose command mentions
/// `salt`, finished or not.
fn operations(endpoint: &str, salt: &str) -> Vec<Operation> {
    const LIST: &str = r#"
import sys, grpc
from buildgrid._protos.build.bazel.remote.execution.v2 import remote_execution_pb2 as re
from buildgrid._protos.google.longrunning import operations_pb2 as ops, operations_pb2_grpc as ops_grpc
operations = ops_grpc.OperationsStub(grpc.insecure_channel(sys.argv[1]))
token = ""
while True:
    page = operations.ListOperations(ops.ListOperationsRequest(filter="command=" + sys.argv[2], page_token=token))
    for listed in page.operations:
        op = operations.GetOperation(ops.GetOperationRequest(name=listed.name))
        response = re.ExecuteResponse()
        op.response.Unpack(response)
        print(int(op.done), op.error.code or response.status.code)
    token = page.next_page_token
    if not token:
        break
"#;
    let python = std::env::var("GOURD_TEST_REAPI_PYTHON").expect("GOURD_TEST_REAPI_PYTHON");
    let target = endpoint.trim_start_matches("grpc://");
    let output = Command::new(python).args(["-c", LIST, target, salt]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            let (done, error) = line.split_once(' ').unwrap();
            Operation { done: done == "1", error: error.parse().unwrap() }
        })
        .collect()
}

fn sha256_digest(bytes: &[u8]) -> re::Digest {
    use sha2::Digest as _;
    let hash = sha2::Sha256::digest(bytes);
    re::Digest { hash: hash.iter().map(|b| format!("{b:02x}")).collect(), size_bytes: bytes.len() as i64 }
}

/// Rewrites the cached result of `action` on the server with `edit`, which
/// may add blobs to upload.
fn tamper(endpoint: &str, action: (String, i64), edit: impl FnOnce(&mut re::ActionResult) -> Vec<Vec<u8>>) {
    let url = endpoint.replace("grpc://", "http://");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(url).unwrap().connect().await.unwrap();
        let mut ac = re::action_cache_client::ActionCacheClient::new(channel.clone());
        let action_digest = re::Digest { hash: action.0, size_bytes: action.1 };
        let mut result = ac
            .get_action_result(re::GetActionResultRequest {
                action_digest: Some(action_digest.clone()),
                ..Default::default()
            })
            .await
            .expect("a cached result to tamper with")
            .into_inner();
        let blobs = edit(&mut result);
        let requests = blobs
            .into_iter()
            .map(|data| re::batch_update_blobs_request::Request {
                digest: Some(sha256_digest(&data)),
                data,
                compressor: 0,
            })
            .collect();
        let mut cas = re::content_addressable_storage_client::ContentAddressableStorageClient::new(channel);
        cas.batch_update_blobs(re::BatchUpdateBlobsRequest { requests, ..Default::default() }).await.unwrap();
        ac.update_action_result(re::UpdateActionResultRequest {
            action_digest: Some(action_digest),
            action_result: Some(result),
            ..Default::default()
        })
        .await
        .unwrap();
    });
}

#[test]
#[ignore = "needs the REAPI test server: eval \"$(tests/servers/reapi-up.sh)\", then cargo test --test reapi -- --ignored"]
fn a_stage_executes_remotely_and_its_outputs_land_locally() {
    let url = server();
    let ws = origin(&pipeline(&url, &salt(), ""));
    let run = ws.run_json(&[]).success();
    assert_eq!(run.statuses(), expect(&[("prepare", "ran"), ("report", "ran"), ("train", "ran")]), "{}", run.stdout);
    assert!(message(&run, "train").contains("executed by grpc://"), "{}", run.stdout);
    // The command ran in the worker's input root, in `wdir`, with its params.
    let remote_dir = ws.read("data/models/where.txt");
    assert!(remote_dir.trim_end().ends_with("/data"), "{remote_dir}");
    assert!(!remote_dir.starts_with(ws.root().to_str().unwrap()), "ran remotely, not in {remote_dir}");
    assert_eq!(ws.read("data/models/model.bin"), "pumpkins\npumpkins\n");
    assert_eq!(ws.read("data/models/extra/stage.txt"), "train\n");
    let params: serde_json::Value = serde_json::from_str(&ws.read("data/models/params.json")).unwrap();
    assert_eq!(params["lr"], 0.5);
    assert_eq!(ws.read("report.txt").trim(), "18");
    assert!(ws.read(".gourd/logs/train.log").contains("trained"), "stderr reaches the log");
    assert_eq!(ws.executions(), ["prepare", "report"], "the local stages ran here");
    let lineage = ws.gourd(&["lineage", "data/models/model.bin"]).success();
    assert!(lineage.stdout.contains("executed   remotely by grpc://"), "{}", lineage.stdout);

    // The outputs are in the local cache like any others.
    assert_eq!(ws.gourd(&["status", "--exit-code"]).code, 0);
    let again = ws.run_json(&[]).success();
    assert_eq!(
        again.statuses(),
        expect(&[("prepare", "up-to-date"), ("report", "up-to-date"), ("train", "up-to-date")])
    );
    ws.remove("data/models");
    let restored = ws.run_json(&[]).success();
    assert_eq!(restored.statuses()["train"], "restored");
    assert_eq!(ws.read("data/models/model.bin"), "pumpkins\npumpkins\n");

    // A changed input executes again, remotely.
    ws.write("data/raw.txt", "gourds\n");
    let changed = ws.run_json(&[]).success();
    assert_eq!(changed.statuses()["train"], "ran");
    assert_eq!(ws.read("data/models/model.bin"), "gourds\ngourds\n");
}

#[test]
#[ignore = "needs the REAPI test server: eval \"$(tests/servers/reapi-up.sh)\", then cargo test --test reapi -- --ignored"]
fn two_clones_share_results_through_the_action_cache() {
    let url = server();
    let alice = origin(&pipeline(&url, &salt(), ""));
    alice.run_json(&[]).success();

    let bob = TestWorkspace::clone_of(alice.root());
    let run = bob.run_json(&[]).success();
    assert_eq!(
        run.statuses(),
        expect(&[("prepare", "restored"), ("report", "restored"), ("train", "restored")]),
        "{}",
        run.stdout
    );
    assert!(bob.executions().is_empty(), "bob executed {:?}", bob.executions());
    assert_eq!(bob.read("data/models/model.bin"), "pumpkins\npumpkins\n");
    assert_eq!(bob.read("data/clean/nested/salt.txt"), alice.read("data/clean/nested/salt.txt"));
    assert!(message(&run, "prepare").contains("from grpc://"), "{}", run.stdout);
}

/// A file the stage leaves private on the worker (0600), alone or in a
/// folder, lands 0600 here, and a clone restores it so.
#[test]
#[ignore = "needs the REAPI test server: eval \"$(tests/servers/reapi-up.sh)\", then cargo test --test reapi -- --ignored"]
fn a_private_file_made_remotely_stays_private() {
    use std::os::unix::fs::PermissionsExt;
    let url = server();
    let salt = salt();
    let alice = origin(&format!(
        r#"{{
  remote = {{ kind = 'reapi, endpoint = "{url}", timeout = 60 }},
  stages = {{
    keygen = {{
      cmd = "umask 077 && echo {salt} > api.key && mkdir -p keys && echo {salt} > keys/one.key && echo open > keys/readme.txt && chmod 644 keys/readme.txt",
      outs = ["api.key", "keys"],
      remote = true,
    }},
  }},
}}
"#
    ));
    let mode = |ws: &TestWorkspace, path: &str| std::fs::metadata(ws.path(path)).unwrap().permissions().mode() & 0o777;
    let run = alice.run_json(&[]).success();
    assert!(message(&run, "keygen").contains("executed by"), "{}", run.stdout);
    assert_eq!((mode(&alice, "api.key"), mode(&alice, "keys/one.key")), (0o600, 0o600));
    assert_eq!(mode(&alice, "keys/readme.txt"), 0o644);

    let bob = TestWorkspace::clone_of(alice.root());
    let run = bob.run_json(&[]).success();
    assert_eq!(run.statuses(), expect(&[("keygen", "restored")]), "{}", run.stdout);
    assert_eq!((mode(&bob, "api.key"), mode(&bob, "keys/one.key")), (0o600, 0o600));
    assert_eq!(bob.read("api.key"), format!("{salt}\n"));
}

#[test]
#[ignore = "needs the REAPI test server: eval \"$(tests/servers/reapi-up.sh)\", then cargo test --test reapi -- --ignored"]
fn a_poisoned_result_is_rejected_and_the_stage_runs() {
    let url = server();
    let alice = origin(&pipeline(&url, &salt(), ""));
    let run = alice.run_json(&[]).success();
    // Point the cached `report.txt` at other bytes (a valid blob, the wrong content).
    let action = gourd_remote::stage_key_action(&key(&run, "report").parse().unwrap());
    tamper(&url, action, |result| {
        let file = result.output_files.iter_mut().find(|f| f.path == "report.txt").unwrap();
        file.digest = Some(sha256_digest(b"999\n"));
        vec![b"999\n".to_vec()]
    });
    let bob = TestWorkspace::clone_of(alice.root());
    let run = bob.run_json(&[]).success();
    assert_eq!(run.statuses()["report"], "ran", "{}", run.stdout);
    assert!(message(&run, "report").contains("does not match the recorded digest"), "{}", run.stdout);
    assert_eq!(bob.read("report.txt").trim(), "18");
    assert_eq!(bob.executions(), ["report"]);
}

#[test]
#[ignore = "needs the REAPI test server: eval \"$(tests/servers/reapi-up.sh)\", then cargo test --test reapi -- --ignored"]
fn an_evicted_blob_in_a_cached_result_means_executing_again() {
    let url = server();
    // Only the service's own cache of the executed action is in play here.
    let ws = origin(&pipeline(&url, &salt(), ", cache = false"));
    ws.run_json(&[]).success();
    let action = logged_action(&ws, "train");
    tamper(&url, action, |result| {
        let models = result.output_directories.iter_mut().find(|d| d.path == "data/models").unwrap();
        // A tree the server never had, as if evicted.
        models.tree_digest = Some(sha256_digest(b"evicted"));
        vec![]
    });
    ws.remove(".gourd/cache-v1");
    ws.remove("data/models");
    let run = ws.run_json(&[]).success();
    assert_eq!(run.statuses()["train"], "ran", "{}", run.stdout);
    let note = message(&run, "train");
    assert!(note.contains("executed by") && !note.contains("from its cache"), "{note}");
    // BuildGrid notices the missing tree itself and answers with a miss, so
    // the worker executes the action afresh (for a service that hands such
    // a result over, see the next test).
    let log = ws.read(".gourd/logs/train.log");
    assert!(!log.contains("from the service's cache") && !log.contains("executing again"), "{log}");
    assert_eq!(ws.read("data/models/model.bin"), "pumpkins\npumpkins\n");
}

#[test]
#[ignore = "needs the REAPI test server: eval \"$(tests/servers/reapi-up.sh)\", then cargo test --test reapi -- --ignored"]
fn a_cached_result_whose_blobs_the_service_lacks_is_executed_again() {
    let url = server();
    // The action runs once on the main server, which caches its result.
    let salt = salt();
    let ws = origin(&pipeline(&url, &salt, ", cache = false"));
    ws.run_json(&[]).success();
    // A server of this test's own, with its own CAS and worker, but whose
    // action cache is the main server's: it hands over that result, whose
    // blobs are in the other CAS, without noticing.
    let main = url.trim_start_matches("grpc://").to_string();
    let spare = spare_server(2, |config| {
        let (before, rest) = config.split_once("caches:\n").unwrap();
        let (_, after) = rest.split_once("schedulers:\n").unwrap();
        format!("{before}caches:\n  - !remote-action-cache &ac\n    url: http://{main}\n\nschedulers:\n{after}")
            .replace("/bgd_spare", "/bgd_evict")
    });
    let _bot = bot(&spare.url);
    ws.write("gourd.ncl", &ws.read("gourd.ncl").replace(&url, &spare.url));
    ws.remove(".gourd/cache-v1");
    ws.remove("data/models");
    let run = ws.run_json(&[]).success();
    assert_eq!(run.statuses()["train"], "ran", "{}", run.stdout);
    let log = ws.read(".gourd/logs/train.log");
    assert!(log.contains("which it no longer has (evicted?): executing again"), "{log}");
    assert!(message(&run, "train").contains(&format!("executed by {}", spare.url)), "{}", run.stdout);
    assert_eq!(ws.read("data/models/model.bin"), "pumpkins\npumpkins\n");
}

/// A worker for the server at `endpoint`, stopped when dropped.
struct Bot(std::process::Child);

impl Drop for Bot {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn bot(endpoint: &str) -> Bot {
    let python = std::env::var("GOURD_TEST_REAPI_PYTHON").expect("GOURD_TEST_REAPI_PYTHON");
    let script = std::env::var("GOURD_TEST_REAPI_BOT").expect("GOURD_TEST_REAPI_BOT");
    let name = format!("gourd-test-bot-{}", std::process::id());
    let child = Command::new(python)
        .args([script.as_str(), endpoint.trim_start_matches("grpc://"), "", name.as_str()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Bot(child)
}

#[test]
#[ignore = "needs the REAPI test server: eval \"$(tests/servers/reapi-up.sh)\", then cargo test --test reapi -- --ignored"]
fn a_failing_or_timed_out_remote_stage_fails_with_its_log() {
    let url = server();
    let salt = salt();
    let ws = origin(&format!(
        r#"{{
  remote = {{ kind = 'reapi, endpoint = "{url}", timeout = 60 }},
  stages = {{
    broken = {{ cmd = "echo {salt} broke >&2; exit 3", outs = ["b.txt"], remote = true }},
    slow = {{ cmd = "echo {salt}; sleep 30; touch s.txt", outs = ["s.txt"], remote = true, timeout = 1 }},
    lazy = {{ cmd = "echo {salt} forgot", outs = ["l.txt"], remote = true }},
  }},
}}
"#
    ));
    let started = Instant::now();
    let run = ws.run_json(&["-k"]);
    assert_eq!(run.code, 1);
    assert!(started.elapsed() < Duration::from_secs(25), "the worker enforced the stage's timeout");
    assert_eq!(run.statuses(), expect(&[("broken", "failed"), ("lazy", "failed"), ("slow", "failed")]));
    assert!(message(&run, "broken").contains("exited with code 3 (remotely on"), "{}", run.stdout);
    assert!(ws.read(".gourd/logs/broken.log").contains(&format!("{salt} broke")));
    assert!(message(&run, "slow").contains("timed out after 1s on the worker"), "{}", run.stdout);
    assert!(message(&run, "lazy").contains("did not create declared out `l.txt`"), "{}", run.stdout);
    assert!(ws.path(".gourd/cache-v1/actions").read_dir().unwrap().next().is_none(), "nothing cached");
}

#[test]
#[ignore = "needs the REAPI test server: eval \"$(tests/servers/reapi-up.sh)\", then cargo test --test reapi -- --ignored"]
fn the_command_line_chooses_where_stages_execute() {
    let url = server();
    let salt = salt();
    let ws = origin(&format!(
        r#"{{
  remote = {{ kind = 'reapi, endpoint = "{url}", timeout = 60, cache = false }},
  stages = {{
    here = {{ cmd = "echo {salt} > here.txt && pwd >> here.txt", outs = ["here.txt"] }},
    there = {{ cmd = "echo {salt} > there.txt && pwd >> there.txt", outs = ["there.txt"], remote = true }},
  }},
}}
"#
    ));
    let root = ws.root().to_str().unwrap().to_string();
    ws.run_json(&["--local"]).success();
    assert!(ws.read("there.txt").contains(&root), "--local keeps a remote stage here");
    ws.run_json(&["--remote-exec", "--force", "here", "--force", "there"]).success();
    assert!(!ws.read("here.txt").contains(&root), "--remote-exec sends every stage");
    assert!(!ws.read("there.txt").contains(&root));
}

#[test]
fn a_server_that_is_down_means_executing_locally_unless_the_remote_is_required() {
    // Nothing listens on port 9 of loopback.
    let dead = "grpc://127.0.0.1:9";
    let ws = origin(&pipeline(dead, "down", ""));
    let run = ws.run_json(&[]).success();
    assert_eq!(run.statuses(), expect(&[("prepare", "ran"), ("report", "ran"), ("train", "ran")]));
    assert!(message(&run, "prepare").contains("cannot connect to grpc://127.0.0.1:9"), "{}", run.stdout);
    assert!(ws.read("data/models/where.txt").starts_with(ws.root().to_str().unwrap()), "train ran here");
    assert_eq!(ws.gourd(&["status", "--exit-code"]).code, 0, "the workspace is consistent");

    let required = origin(&pipeline(dead, "down", ", required = true"));
    let run = required.run_json(&[]);
    assert_eq!(run.code, 1);
    assert_eq!(run.statuses(), expect(&[("prepare", "failed"), ("report", "skipped"), ("train", "skipped")]));
    let off = required.gourd_env(&["run", "--json"], &[("GOURD_REMOTE", "off")]).success();
    assert_eq!(off.statuses()["report"], "ran");
}

/// A BuildGrid server of a test's own, with no worker, on the spare
/// database; `edit` may change its configuration. Stopped when dropped.
struct Spare {
    child: std::process::Child,
    url: String,
    _config: TestWorkspace,
}

impl Drop for Spare {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spare_server(n: u32, edit: impl FnOnce(String) -> String) -> Spare {
    let bgd = std::env::var("GOURD_TEST_REAPI_BGD").expect("GOURD_TEST_REAPI_BGD");
    let template = std::env::var("GOURD_TEST_REAPI_SPARE").expect("GOURD_TEST_REAPI_SPARE");
    let port = 30000 + (std::process::id() % 10000) * 2 + n;
    let scratch = TestWorkspace::bare();
    let config = scratch.path("server.yml");
    let text = edit(std::fs::read_to_string(template).unwrap().replace("@PORT@", &port.to_string()));
    std::fs::write(&config, text).unwrap();
    let child = Command::new(bgd)
        .args(["server", "start", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("BuildGrid to start", || std::net::TcpStream::connect(("127.0.0.1", port as u16)).is_ok());
    Spare { child, url: format!("grpc://127.0.0.1:{port}"), _config: scratch }
}

#[test]
#[ignore = "needs the REAPI test server: eval \"$(tests/servers/reapi-up.sh)\", then cargo test --test reapi -- --ignored"]
fn a_server_stopped_mid_run_leaves_the_workspace_consistent() {
    server();
    // A server of this test's own (with no worker: the action stays queued), to stop.
    let mut spare = spare_server(0, |config| config);
    let url = spare.url.clone();
    let salt = salt();
    let ws = origin(&format!(
        r#"{{
  remote = {{ kind = 'reapi, endpoint = "{url}", timeout = 60 }},
  stages = {{
    first = {{ cmd = "echo first > first.txt", outs = ["first.txt"] }},
    second = {{ cmd = "echo {salt} > /dev/null && cp first.txt second.txt", deps = ["first.txt"], outs = ["second.txt"], remote = true }},
  }},
}}
"#
    ));
    let run = ws.command(&["run", "--json"]).stdout(Stdio::piped()).spawn().unwrap();
    // `first` ran and published; then `second` is queued on the server.
    wait_until("`second` to be queued on the server", || !operations(&url, &salt).is_empty());
    spare.child.kill().unwrap();
    spare.child.wait().unwrap();
    let output = run.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("remote execution:") && stdout.contains("ran locally"), "{stdout}");
    assert_eq!(ws.read("second.txt"), "first\n");
    assert_eq!(ws.gourd(&["status", "--exit-code"]).code, 0, "the workspace is consistent");
    let again = ws.run_json(&[]).success();
    assert_eq!(again.statuses(), expect(&[("first", "up-to-date"), ("second", "up-to-date")]));
}

#[test]
fn a_reapi_remote_needs_an_endpoint() {
    let ws = origin("{ remote = { kind = 'reapi }, stages = { a = { cmd = \"true\" } } }\n");
    let run = ws.gourd(&["check"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("gourd.ncl:1") && run.stderr.contains("needs an `endpoint`"), "{}", run.stderr);
    let ws = origin("{ remote = { kind = 'reapi, endpoint = \"tcp://x:1\" }, stages = { a = { cmd = \"true\" } } }\n");
    let run = ws.gourd(&["check"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("expected `grpc://host:port`"), "{}", run.stderr);
    let ws = origin("{ stages = { a = { cmd = \"true\" } } }\n");
    let run = ws.gourd(&["run", "--remote-exec"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("needs a remote execution service"), "{}", run.stderr);
}

#[test]
#[ignore = "needs the REAPI test server: eval \"$(tests/servers/reapi-up.sh)\", then cargo test --test reapi -- --ignored"]
fn large_files_travel_by_bytestream() {
    let url = server();
    let salt = salt();
    let alice = origin(&format!(
        r#"{{
  remote = {{ kind = 'reapi, endpoint = "{url}", timeout = 60 }},
  stages = {{
    copy = {{ cmd = "echo {salt} > /dev/null && cp big.bin copy.bin && mkdir -p dir/sub && cp big.bin dir/sub/inner.bin && echo small > dir/small.txt", deps = ["big.bin"], outs = ["copy.bin", "dir"], remote = true }},
  }},
}}
"#
    ));
    // 6 MiB, over the 4 MiB batch limit, and different in every test run.
    let big = noise(6 << 20, salt.bytes().fold(17u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64)));
    std::fs::write(alice.path("big.bin"), &big).unwrap();
    alice.git(&["add", "big.bin"]);
    alice.git(&["commit", "-qm", "data"]);
    let run = alice.run_json(&[]).success();
    assert!(message(&run, "copy").contains("executed by"), "{}", run.stdout);
    assert!(std::fs::read(alice.path("copy.bin")).unwrap() == big, "the copy came back whole");
    assert!(std::fs::read(alice.path("dir/sub/inner.bin")).unwrap() == big, "so did the one in a folder");
    assert_eq!(alice.read("dir/small.txt"), "small\n");
    let scratch = std::fs::read_dir(alice.path(".gourd")).unwrap().flatten();
    assert!(!scratch.into_iter().any(|e| e.file_name().to_string_lossy().starts_with("remote-")), "no scratch left");

    let bob = TestWorkspace::clone_of(alice.root());
    let run = bob.run_json(&[]).success();
    assert_eq!(run.statuses()["copy"], "restored", "{}", run.stdout);
    assert!(std::fs::read(bob.path("copy.bin")).unwrap() == big);
    assert!(std::fs::read(bob.path("dir/sub/inner.bin")).unwrap() == big);
    assert_eq!(bob.read("dir/small.txt"), "small\n");
}

#[test]
#[ignore = "needs the REAPI test server: eval \"$(tests/servers/reapi-up.sh)\", then cargo test --test reapi -- --ignored"]
fn push_then_pull_on_a_fresh_clone_executes_nothing() {
    let url = server();
    let remote = TestWorkspace::bare();
    remote.git(&["init", "-q", "--bare", "-b", "main"]);
    let alice = origin(&pipeline(&url, &salt(), ", push = false"));
    alice.git(&["remote", "add", "origin", remote.root().to_str().unwrap()]);
    alice.git(&["push", "-q", "origin", "main"]);
    alice.run_json(&[]).success();
    let pushed = alice.gourd(&["push"]).success();
    assert!(pushed.stderr.contains("Pushed 3 results"), "{}", pushed.stderr);

    let bob = TestWorkspace::clone_of(remote.root());
    let pulled = bob.gourd(&["pull"]).success();
    assert!(pulled.stderr.contains("Pulled 3 results"), "{}", pulled.stderr);
    let run = bob.gourd_env(&["run", "--json"], &[("GOURD_REMOTE", "off")]).success();
    assert_eq!(run.statuses(), expect(&[("prepare", "restored"), ("report", "restored"), ("train", "restored")]));
    assert!(bob.executions().is_empty());
}

#[test]
#[ignore = "needs the REAPI test server: eval \"$(tests/servers/reapi-up.sh)\", then cargo test --test reapi -- --ignored"]
fn the_environment_configures_the_service() {
    let url = server();
    let salt = salt();
    let ws = origin(&format!(
        "{{ stages = {{ a = {{ cmd = \"echo {salt} > a.txt && pwd >> a.txt\", outs = [\"a.txt\"], remote = true }} }} }}\n"
    ));
    let env = [("GOURD_REMOTE_KIND", "reapi"), ("GOURD_REMOTE_ENDPOINT", url.as_str())];
    let run = ws.gourd_env(&["run", "--json"], &env).success();
    assert!(message(&run, "a").contains("executed by"), "{}", run.stdout);
    assert!(!ws.read("a.txt").contains(ws.root().to_str().unwrap()));

    let dead = [("GOURD_REMOTE_KIND", "reapi"), ("GOURD_REMOTE_ENDPOINT", "grpc://127.0.0.1:9")];
    let local = ws.gourd_env(&["run", "--json", "--force", "a"], &dead).success();
    assert!(message(&local, "a").contains("ran locally"), "{}", local.stdout);
    let required = [dead[0], dead[1], ("GOURD_REMOTE_REQUIRED", "1")];
    let failed = ws.gourd_env(&["run", "--json", "--force", "a"], &required);
    assert_eq!(failed.code, 1);
    assert_eq!(failed.statuses()["a"], "failed");
    let secret = "Bearer s3cr\u{1}t";
    let bad = ws.gourd_env(&["run"], &[env[0], env[1], ("GOURD_REMOTE_HEADERS", &format!("authorization={secret}"))]);
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("header `authorization` is not valid"), "{}", bad.stderr);
    assert!(!bad.stderr.contains("s3cr"), "a header's value is never shown");
    // The live service, with execution alone turned off.
    let no_exec = [env[0], env[1], ("GOURD_REMOTE_EXECUTE", "0")];
    let here = ws.gourd_env(&["run", "--json", "--force", "a"], &no_exec).success();
    assert_eq!(here.statuses()["a"], "ran");
    assert!(!message(&here, "a").contains("executed by"), "{}", here.stdout);
    assert!(ws.read("a.txt").contains(ws.root().to_str().unwrap()), "executed here");
}

#[test]
#[ignore = "needs the REAPI test server: eval \"$(tests/servers/reapi-up.sh)\", then cargo test --test reapi -- --ignored"]
fn ctrl_c_stops_a_remote_execution() {
    let url = server();
    let salt = salt();
    // The worker runs on this host: the command says when it has started.
    let meeting = TestWorkspace::bare();
    let started = meeting.path("long.started");
    let ws = origin(&format!(
        r#"{{
  remote = {{ kind = 'reapi, endpoint = "{url}", timeout = 60 }},
  stages = {{
    first = {{ cmd = "echo first {salt} > first.txt", outs = ["first.txt"] }},
    long = {{ cmd = "echo {salt}; touch {}; sleep 3; touch long.txt", deps = ["first.txt"], outs = ["long.txt"], remote = true }},
  }},
}}
"#,
        started.display()
    ));
    let child = ws.command(&["run", "--json"]).stdout(Stdio::piped()).spawn().unwrap();
    wait_until("`long` to be executing on the worker", || started.exists());
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(130), "{stdout}");
    assert!(stdout.contains(r#""stage":"long""#) && stdout.contains("interrupted"), "{stdout}");
    assert!(!ws.exists("long.txt"));
    assert!(ws.gourd(&["status", "--json"]).stdout.contains("long"), "long is still to run");
    // gourd cancelled the operation on the service before exiting.
    let ops = operations(&url, &salt);
    assert_eq!(ops.len(), 1, "{ops:?}");
    assert!(ops[0].done && ops[0].error == 1, "the operation was not cancelled: {ops:?}");
}

#[test]
#[ignore = "needs the REAPI test server: eval \"$(tests/servers/reapi-up.sh)\", then cargo test --test reapi -- --ignored"]
fn a_result_naming_other_outputs_is_rejected() {
    let url = server();
    let alice = origin(&pipeline(&url, &salt(), ""));
    let run = alice.run_json(&[]).success();
    // Add `gourd.ncl` to the outputs of `report`'s recorded result.
    let action = gourd_remote::stage_key_action(&key(&run, "report").parse().unwrap());
    let stored = std::fs::read_to_string(alice.path(&format!(
        ".gourd/cache-v1/actions/{0}/{1}.json",
        &key(&run, "report")[..2],
        &key(&run, "report")[2..]
    )))
    .unwrap();
    // Past the seal (format, length, digest) that starts a stored result.
    let (_seal, body) = stored.split_once('\n').unwrap();
    let mut record: serde_json::Value = serde_json::from_str(body).unwrap();
    let report = record["outputs"]["report.txt"].clone();
    record["outputs"]["gourd.ncl"] = report;
    let bytes = serde_json::to_vec(&record).unwrap();
    let forged = bytes.clone();
    tamper(&url, action, move |result| {
        let file = result.output_files.iter_mut().find(|f| f.path == ".gourd/result.json").unwrap();
        file.digest = Some(sha256_digest(&forged));
        let copy = result.output_files.iter().find(|f| f.path == "report.txt").unwrap().clone();
        result.output_files.push(re::OutputFile { path: "gourd.ncl".into(), ..copy });
        vec![forged]
    });
    let bob = TestWorkspace::clone_of(alice.root());
    let pipeline_before = bob.read("gourd.ncl");
    let run = bob.run_json(&[]).success();
    assert_eq!(run.statuses()["report"], "ran", "{}", run.stdout);
    assert!(message(&run, "report").contains("names other outputs"), "{}", run.stdout);
    assert_eq!(bob.read("gourd.ncl"), pipeline_before, "nothing outside the stage's outputs is written");
}

#[test]
#[ignore = "needs the REAPI test server: eval \"$(tests/servers/reapi-up.sh)\", then cargo test --test reapi -- --ignored"]
fn a_platform_the_service_refuses_means_running_locally() {
    let url = server();
    let ws = origin(&pipeline(&url, &salt(), ", platform = { no-such-property = \"x\" }"));
    let run = ws.run_json(&[]).success();
    assert_eq!(run.statuses()["train"], "ran");
    let note = message(&run, "train");
    assert!(note.contains("no-such-property") && note.contains("ran locally"), "{note}");
    assert!(ws.read("data/models/where.txt").starts_with(ws.root().to_str().unwrap()), "train ran here");
}

#[test]
#[ignore = "needs the REAPI test server: eval \"$(tests/servers/reapi-up.sh)\", then cargo test --test reapi -- --ignored"]
fn remote_stages_run_side_by_side_beyond_local_jobs() {
    let url = server();
    // Two workers on this host: each stage waits, bounded, for the other to
    // have started, which only happens when both execute at once, although
    // `-j 1` allows one local stage at a time.
    let meeting = TestWorkspace::bare();
    let dir = meeting.root().to_str().unwrap();
    let salt = salt();
    let wait = |me: &str, other: &str| {
        format!(
            "echo {salt}; touch {dir}/{me}; i=0; while [ ! -e {dir}/{other} ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; test -e {dir}/{other} && echo met > {me}.txt"
        )
    };
    let ws = origin(&format!(
        r#"{{
  remote = {{ kind = 'reapi, endpoint = "{url}", timeout = 120 }},
  stages = {{
    a = {{ cmd = "{}", outs = ["a.txt"], remote = true }},
    b = {{ cmd = "{}", outs = ["b.txt"], remote = true }},
  }},
}}
"#,
        wait("a", "b"),
        wait("b", "a")
    ));
    let run = ws.run_json(&["-j", "1"]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(run.statuses(), expect(&[("a", "ran"), ("b", "ran")]));
    assert_eq!(ws.read("a.txt"), "met\n");
    assert_eq!(ws.read("b.txt"), "met\n");
}

#[test]
#[ignore = "needs the REAPI test server: eval \"$(tests/servers/reapi-up.sh)\", then cargo test --test reapi -- --ignored"]
fn a_cache_only_read_only_service_runs_stages_here() {
    server();
    // No execution service, and an action cache that takes no updates.
    let spare = spare_server(1, |config| {
        config
            .replace("      - !execution\n        scheduler: *sched\n", "")
            .replace("allow-updates: true", "allow-updates: false")
    });
    let ws = origin(&pipeline(&spare.url, &salt(), ""));
    let run = ws.run_json(&[]).success();
    assert_eq!(run.statuses(), expect(&[("prepare", "ran"), ("report", "ran"), ("train", "ran")]));
    let note = message(&run, "train");
    assert!(note.contains("does not execute actions") && note.contains("ran locally"), "{note}");
    assert!(ws.read("data/models/where.txt").starts_with(ws.root().to_str().unwrap()), "train ran here");
    assert!(message(&run, "prepare").contains("takes no results from clients"), "{}", run.stdout);
}

#[test]
#[ignore = "needs the REAPI test server: eval \"$(tests/servers/reapi-up.sh)\", then cargo test --test reapi -- --ignored"]
fn the_service_deadline_cancels_and_runs_the_stage_here() {
    let url = server();
    let salt = salt();
    let ws = origin(&format!(
        r#"{{
  remote = {{ kind = 'reapi, endpoint = "{url}", timeout = 1 }},
  stages = {{
    slow = {{ cmd = "echo {salt}; sleep 4; echo done > slow.txt", outs = ["slow.txt"], remote = true }},
  }},
}}
"#
    ));
    let run = ws.run_json(&[]).success();
    let note = message(&run, "slow");
    assert!(note.contains("no result within 1s") && note.contains("ran locally"), "{note}");
    assert_eq!(ws.read("slow.txt"), "done\n");
}

#[test]
#[ignore = "needs the REAPI test server: eval \"$(tests/servers/reapi-up.sh)\", then cargo test --test reapi -- --ignored"]
fn a_symbolic_link_from_the_service_is_refused() {
    let url = server();
    let ws = origin(&pipeline(&url, &salt(), ", cache = false"));
    ws.run_json(&[]).success();
    // The service's cached result for `train` now holds a link out of the workspace.
    tamper(&url, logged_action(&ws, "train"), |result| {
        let models = result.output_directories.iter_mut().find(|d| d.path == "data/models").unwrap();
        let tree = re::Tree {
            root: Some(re::Directory {
                symlinks: vec![re::SymlinkNode {
                    name: "model.bin".into(),
                    target: "/etc/passwd".into(),
                    node_properties: None,
                }],
                ..Default::default()
            }),
            children: vec![],
        };
        let bytes = prost::Message::encode_to_vec(&tree);
        models.tree_digest = Some(sha256_digest(&bytes));
        vec![bytes]
    });
    ws.remove(".gourd/cache-v1");
    ws.remove("data/models");
    let run = ws.run_json(&[]).success();
    assert_eq!(run.statuses()["train"], "ran");
    let note = message(&run, "train");
    assert!(note.contains("symbolic link") && note.contains("ran locally"), "{note}");
    assert!(!ws.path("data/models/model.bin").is_symlink());
    assert_eq!(ws.read("data/models/model.bin"), "pumpkins\npumpkins\n");
}
