//! The scheduler with a remote cache and a remote execution service: what it
//! asks them, what it does with each answer, and when it stops asking. The
//! remote side is played by test doubles of the engine's traits (the real
//! ones, S3 and REAPI, are tested against real servers in `gourd-cli`): a
//! cache serving the results of another workspace, and an executor running
//! the command with `sh` in the workspace.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::common::{Fixture, options, stage};
use gourd_core::journal::Journal;
use gourd_core::model::{Command, Stage};
use gourd_core::remote::{BoxFuture, RemoteCache, RemoteExecution, RemoteExecutor, RemoteExit, RemoteFailure};
use gourd_core::run::{Outcome, Placement};
use gourd_core::store::{ActionResult, Store};
use gourd_core::workspace::Workspace;
use gourd_digest::Digest;

#[derive(Clone, Copy, PartialEq)]
enum CacheMode {
    /// Serves what the origin workspace holds.
    Serve,
    /// Answers with the result but without sending its objects.
    NoObjects,
    /// Names an output the stage does not declare.
    Foreign,
    Unavailable,
    Rejected,
    /// Serves, but refuses every publication as unreachable.
    PublishDown,
}

struct FakeCache {
    origin: Arc<Workspace>,
    mode: CacheMode,
    fetched: AtomicUsize,
    published: Mutex<Vec<Digest>>,
}

impl FakeCache {
    fn new(origin: &Fixture, mode: CacheMode) -> Arc<FakeCache> {
        Arc::new(FakeCache {
            origin: origin.ws.clone(),
            mode,
            fetched: AtomicUsize::new(0),
            published: Mutex::default(),
        })
    }

    fn fetched(&self) -> usize {
        self.fetched.load(Ordering::SeqCst)
    }
}

impl RemoteCache for FakeCache {
    fn describe(&self) -> String {
        "fake://cache".to_string()
    }

    fn fetch<'a>(
        &'a self,
        key: Digest,
        store: &'a Store,
    ) -> BoxFuture<'a, Result<Option<ActionResult>, RemoteFailure>> {
        Box::pin(async move {
            self.fetched.fetch_add(1, Ordering::SeqCst);
            match self.mode {
                CacheMode::Unavailable => return Err(RemoteFailure::Unavailable("connection refused".to_string())),
                CacheMode::Rejected => return Err(RemoteFailure::Rejected("object damaged".to_string())),
                _ => {}
            }
            let Some(mut action) = self.origin.store.action(&key) else { return Ok(None) };
            if self.mode != CacheMode::NoObjects {
                for record in action.outputs.values() {
                    let bytes = std::fs::read(self.origin.store.object_path(&record.digest)).unwrap();
                    store.put_object_bytes(&record.digest, &bytes).unwrap();
                }
            }
            if self.mode == CacheMode::Foreign {
                let record = action.outputs.values().next().unwrap().clone();
                action.outputs.insert(".git/config".to_string(), record);
            }
            Ok(Some(action))
        })
    }

    fn publish<'a>(&'a self, action: &'a ActionResult, _store: &'a Store) -> BoxFuture<'a, Result<(), RemoteFailure>> {
        Box::pin(async move {
            if self.mode == CacheMode::PublishDown {
                return Err(RemoteFailure::Unavailable("connection reset".to_string()));
            }
            self.published.lock().unwrap().push(action.key);
            Ok(())
        })
    }
}

fn pipeline() -> Vec<Stage> {
    vec![stage("a", "echo a > a.txt", &[], &["a.txt"]), stage("b", "cat a.txt a.txt > b.txt", &["a.txt"], &["b.txt"])]
}

/// A workspace where `pipeline()` has run: the cache's origin.
fn origin() -> Fixture {
    let fx = Fixture::new();
    let (summary, _) = fx.run(&pipeline(), options());
    assert_eq!(summary.ran, 2);
    fx
}

#[test]
fn results_in_the_remote_cache_are_restored_not_run() {
    let origin = origin();
    let cache = FakeCache::new(&origin, CacheMode::Serve);
    let fx = Fixture::new();
    let mut opts = options();
    opts.remote = Some(cache.clone());
    let (summary, _) = fx.run(&pipeline(), opts);
    assert_eq!((summary.restored, summary.ran), (2, 0), "{:?}", summary.reports);
    for report in &summary.reports {
        assert_eq!(report.message.as_deref(), Some("from fake://cache"));
        assert!(fx.ws.store.action(&report.key.unwrap()).is_some(), "recorded locally");
        assert_eq!(fx.ws.last_run(&report.stage).unwrap().status, "restored");
    }
    assert_eq!(fx.read("b.txt"), "a\na\n");
    assert_eq!(cache.fetched(), 2);
    assert!(cache.published.lock().unwrap().is_empty(), "a restored result is not published again");
    let journal: BTreeSet<String> = Journal::pending(&fx.ws.gourd_dir).into_iter().map(|e| e.status).collect();
    assert_eq!(journal, BTreeSet::from(["restored".to_string()]));
}

#[test]
fn what_runs_here_is_published_unless_the_remote_is_read_only() {
    let empty = Fixture::new();
    let cache = FakeCache::new(&empty, CacheMode::Serve);
    let fx = Fixture::new();
    let mut opts = options();
    opts.remote = Some(cache.clone());
    let (summary, _) = fx.run(&pipeline(), opts);
    assert_eq!(summary.ran, 2);
    assert!(summary.reports.iter().all(|r| r.message.is_none()), "{:?}", summary.reports);
    let published: BTreeSet<Digest> = cache.published.lock().unwrap().iter().copied().collect();
    let keys: BTreeSet<Digest> = summary.reports.iter().map(|r| r.key.unwrap()).collect();
    assert_eq!(published, keys);

    let cache = FakeCache::new(&empty, CacheMode::Serve);
    let fx = Fixture::new();
    let mut opts = options();
    opts.remote = Some(cache.clone());
    opts.remote_writable = false;
    let (summary, _) = fx.run(&pipeline(), opts);
    assert_eq!((summary.ran, cache.fetched()), (2, 2));
    assert!(cache.published.lock().unwrap().is_empty());
}

#[test]
fn forced_and_always_run_stages_do_not_ask_the_remote_cache() {
    let origin = origin();
    let cache = FakeCache::new(&origin, CacheMode::Serve);
    let fx = Fixture::new();
    let mut stages = pipeline();
    stages[1].always_run = true;
    let mut opts = options();
    opts.remote = Some(cache.clone());
    opts.force = BTreeSet::from(["a".to_string()]);
    let (summary, _) = fx.run(&stages, opts);
    assert_eq!(summary.ran, 2);
    assert_eq!(cache.fetched(), 0);
}

#[test]
fn an_unreachable_remote_cache_is_asked_once_and_the_stages_run_here() {
    let origin = origin();
    let cache = FakeCache::new(&origin, CacheMode::Unavailable);
    let fx = Fixture::new();
    let mut opts = options();
    opts.remote = Some(cache.clone());
    let (summary, _) = fx.run(&pipeline(), opts);
    assert_eq!(summary.ran, 2, "{:?}", summary.reports);
    assert_eq!(cache.fetched(), 1);
    assert_eq!(fx.report(&summary, "a").message.as_deref(), Some("remote cache: connection refused; ran locally"));
    assert_eq!(fx.report(&summary, "b").message.as_deref(), Some("remote cache unavailable; ran locally"));
    assert!(cache.published.lock().unwrap().is_empty(), "nothing is sent to a remote found down");
}

#[test]
fn a_required_remote_cache_that_is_unreachable_fails_the_stages() {
    let origin = origin();
    let cache = FakeCache::new(&origin, CacheMode::Unavailable);
    let fx = Fixture::new();
    let stages = vec![stage("a", "echo a > a.txt", &[], &["a.txt"]), stage("c", "echo c > c.txt", &[], &["c.txt"])];
    let mut opts = options();
    opts.remote = Some(cache.clone());
    opts.remote_required = true;
    opts.keep_going = true;
    opts.jobs = 1;
    let (summary, _) = fx.run(&stages, opts);
    assert_eq!(summary.failed, 2, "{:?}", summary.reports);
    let messages: BTreeSet<String> = summary.reports.iter().map(|r| r.message.clone().unwrap()).collect();
    assert_eq!(
        messages,
        BTreeSet::from(["remote cache: connection refused".to_string(), "remote cache unavailable".to_string()])
    );
    assert!(!fx.root().join("a.txt").exists() && !fx.root().join("c.txt").exists());
}

#[test]
fn a_rejected_answer_runs_the_stage_and_the_cache_is_asked_again() {
    let origin = origin();
    let cache = FakeCache::new(&origin, CacheMode::Rejected);
    let fx = Fixture::new();
    let mut opts = options();
    opts.remote = Some(cache.clone());
    opts.remote_required = true;
    let (summary, _) = fx.run(&pipeline(), opts);
    assert_eq!(summary.ran, 2, "{:?}", summary.reports);
    assert_eq!(cache.fetched(), 2);
    assert_eq!(fx.report(&summary, "b").message.as_deref(), Some("remote cache: object damaged; ran locally"));
    assert_eq!(cache.published.lock().unwrap().len(), 2);
}

#[test]
fn a_remote_result_naming_other_outputs_is_not_restored() {
    let origin = origin();
    let cache = FakeCache::new(&origin, CacheMode::Foreign);
    let fx = Fixture::new();
    let mut opts = options();
    opts.remote = Some(cache.clone());
    let (summary, _) = fx.run(&pipeline(), opts);
    assert_eq!(summary.ran, 2, "{:?}", summary.reports);
    assert_eq!(
        fx.report(&summary, "a").message.as_deref(),
        Some("the result in fake://cache names other outputs than the stage declares: rejected; ran locally")
    );
    assert!(!fx.root().join(".git/config").exists());
}

#[test]
fn a_remote_result_whose_objects_did_not_arrive_is_dropped_and_the_stage_runs() {
    let origin = origin();
    let cache = FakeCache::new(&origin, CacheMode::NoObjects);
    let fx = Fixture::new();
    let mut opts = options();
    opts.remote = Some(cache.clone());
    let (summary, _) = fx.run(&pipeline(), opts);
    assert_eq!(summary.ran, 2, "{:?}", summary.reports);
    let message = fx.report(&summary, "a").message.clone().unwrap();
    assert!(message.starts_with("the remote result could not be restored (cache object `"), "{message}");
    assert!(message.ends_with("` is missing); ran locally"), "{message}");
    assert_eq!(fx.read("a.txt"), "a\n");
}

#[test]
fn a_publication_that_fails_is_said_and_not_tried_again() {
    let empty = Fixture::new();
    let cache = FakeCache::new(&empty, CacheMode::PublishDown);
    let fx = Fixture::new();
    let mut opts = options();
    opts.remote = Some(cache.clone());
    opts.jobs = 1;
    let (summary, _) = fx.run(&pipeline(), opts);
    assert_eq!(summary.ran, 2);
    assert_eq!(fx.report(&summary, "a").message.as_deref(), Some("not published to fake://cache: connection reset"));
    // Found down by the first publication: `b` asks nothing.
    assert_eq!(fx.report(&summary, "b").message.as_deref(), Some("remote cache unavailable; ran locally"));
    assert_eq!(cache.fetched(), 1);
}

#[derive(Clone, PartialEq)]
enum ExecMode {
    Run,
    Cached,
    Unavailable,
    Failure(&'static str),
}

/// Runs the stage's shell command in the workspace, as a worker would.
struct FakeExecutor {
    mode: ExecMode,
    executed: Mutex<Vec<(String, bool, BTreeMap<String, String>)>>,
}

impl FakeExecutor {
    fn new(mode: ExecMode) -> Arc<FakeExecutor> {
        Arc::new(FakeExecutor { mode, executed: Mutex::default() })
    }

    fn executed(&self) -> Vec<String> {
        self.executed.lock().unwrap().iter().map(|(name, _, _)| name.clone()).collect()
    }
}

impl RemoteExecutor for FakeExecutor {
    fn describe(&self) -> String {
        "fake://exec".to_string()
    }

    fn execute<'a>(&'a self, request: RemoteExecution<'a>) -> BoxFuture<'a, Result<RemoteExit, RemoteFailure>> {
        Box::pin(async move {
            self.executed.lock().unwrap().push((request.stage.name.clone(), request.skip_cache, request.env.clone()));
            if self.mode == ExecMode::Unavailable {
                return Err(RemoteFailure::Unavailable("no service".to_string()));
            }
            let Command::Shell(script) = &request.stage.cmd else { panic!("only shell stages") };
            let status = tokio::process::Command::new("sh")
                .arg("-c")
                .arg(script)
                .current_dir(request.root)
                .env("REMOTE", "1")
                .status()
                .await
                .unwrap();
            std::fs::write(&request.log, "ran remotely\n").unwrap();
            Ok(RemoteExit {
                exit_code: status.code().unwrap(),
                worker: Some("w1".to_string()),
                cached: self.mode == ExecMode::Cached,
                failure: match self.mode {
                    ExecMode::Failure(why) => Some(why.to_string()),
                    _ => None,
                },
            })
        })
    }
}

/// Each stage writes where it ran.
fn where_stage(name: &str, remote: bool) -> Stage {
    let mut s = stage(name, &format!("echo ${{REMOTE:-here}} > {name}.txt"), &[], &[&format!("{name}.txt")]);
    s.remote = remote;
    s
}

#[test]
fn stages_marked_remote_execute_on_the_service() {
    let executor = FakeExecutor::new(ExecMode::Run);
    let fx = Fixture::new();
    let mut opts = options();
    opts.remote_executor = Some(executor.clone());
    let (summary, _) = fx.run(&[where_stage("r", true), where_stage("l", false)], opts);
    assert_eq!(summary.ran, 2, "{:?}", summary.reports);
    assert_eq!(executor.executed(), ["r"]);
    assert_eq!((fx.read("r.txt"), fx.read("l.txt")), ("1\n".to_string(), "here\n".to_string()));
    let r = fx.report(&summary, "r");
    assert_eq!(r.executed_by.as_deref(), Some("fake://exec on w1"));
    assert_eq!(r.message.as_deref(), Some("executed by fake://exec on w1"));
    assert_eq!(fx.report(&summary, "l").executed_by, None);
    let (_, skip_cache, env) = executor.executed.lock().unwrap()[0].clone();
    assert!(!skip_cache);
    assert_eq!(env["GOURD_STAGE"], "r");
    assert_eq!(env["GOURD_EXECUTOR"], "local");
    let noted: Vec<Option<String>> =
        Journal::pending(&fx.ws.gourd_dir).into_iter().filter(|e| e.stage == "r").map(|e| e.executed_by).collect();
    assert_eq!(noted, [Some("fake://exec on w1".to_string())]);
    // Its outputs are hashed and cached like a local run's.
    let action = r.action.as_ref().unwrap();
    assert!(fx.ws.store.object_path(&action.outputs["r.txt"].digest).exists());
}

#[test]
fn placement_decides_which_stages_execute_remotely() {
    let executor = FakeExecutor::new(ExecMode::Run);
    let fx = Fixture::new();
    let mut secret = where_stage("s", true);
    secret.secrets = vec!["TOKEN".to_string()];
    let mut opts = options();
    opts.remote_executor = Some(executor.clone());
    opts.placement = Placement::Everything;
    let (summary, _) = fx.run(&[where_stage("r", false), where_stage("l", false), secret.clone()], opts);
    assert_eq!(summary.ran, 3, "{:?}", summary.reports);
    let executed: BTreeSet<String> = executor.executed().into_iter().collect();
    assert_eq!(executed, BTreeSet::from(["l".to_string(), "r".to_string()]), "a stage with secrets stays here");
    assert_eq!(fx.read("s.txt"), "here\n");

    let executor = FakeExecutor::new(ExecMode::Run);
    let fx = Fixture::new();
    let mut opts = options();
    opts.remote_executor = Some(executor.clone());
    opts.placement = Placement::Nothing;
    let (summary, _) = fx.run(&[where_stage("r", true)], opts);
    assert_eq!(summary.ran, 1);
    assert!(executor.executed().is_empty());
    assert_eq!(fx.read("r.txt"), "here\n");

    // A built-in step never leaves the machine.
    let executor = FakeExecutor::new(ExecMode::Run);
    let fx = Fixture::new();
    let mut step = stage("st", "", &[], &["st.txt"]);
    step.cmd = Command::Step { name: "echo".to_string(), config: serde_json::json!({}) };
    step.remote = true;
    let mut opts = options();
    opts.remote_executor = Some(executor.clone());
    opts.step_runner = Some(|_| Some(["sh", "-c", "echo step > st.txt"].map(Into::into).to_vec()));
    let (summary, _) = fx.run(&[step], opts);
    assert_eq!(summary.ran, 1, "{:?}", summary.reports);
    assert!(executor.executed().is_empty());
}

#[test]
fn a_forced_stage_asks_the_service_to_skip_its_cache() {
    let executor = FakeExecutor::new(ExecMode::Run);
    let fx = Fixture::new();
    let mut opts = options();
    opts.remote_executor = Some(executor.clone());
    opts.force = BTreeSet::from(["r".to_string()]);
    fx.run(&[where_stage("r", true)], opts);
    assert!(executor.executed.lock().unwrap()[0].1);
}

#[test]
fn a_result_from_the_services_cache_is_said() {
    let executor = FakeExecutor::new(ExecMode::Cached);
    let fx = Fixture::new();
    let mut opts = options();
    opts.remote_executor = Some(executor.clone());
    let (summary, _) = fx.run(&[where_stage("r", true)], opts);
    assert_eq!(fx.report(&summary, "r").message.as_deref(), Some("executed by fake://exec on w1, from its cache"));
}

#[test]
fn a_stage_failing_remotely_fails() {
    let executor = FakeExecutor::new(ExecMode::Run);
    let fx = Fixture::new();
    let mut s = where_stage("r", true);
    s.cmd = Command::Shell("exit 3".to_string());
    let mut opts = options();
    opts.remote_executor = Some(executor.clone());
    let (summary, _) = fx.run(&[s], opts);
    let r = fx.report(&summary, "r");
    assert_eq!((r.outcome, r.message.as_deref()), (Outcome::Failed, Some("exited with code 3 (remotely on w1)")));

    let executor = FakeExecutor::new(ExecMode::Failure("deadline exceeded"));
    let fx = Fixture::new();
    let mut opts = options();
    opts.remote_executor = Some(executor.clone());
    let (summary, _) = fx.run(&[where_stage("r", true)], opts);
    let r = fx.report(&summary, "r");
    assert_eq!((r.outcome, r.message.as_deref()), (Outcome::Failed, Some("deadline exceeded (remotely on w1)")));
    assert!(fx.ws.last_run("r").is_none());
}

#[test]
fn an_unreachable_service_sends_the_stage_back_to_run_here() {
    let executor = FakeExecutor::new(ExecMode::Unavailable);
    let fx = Fixture::new();
    let mut opts = options();
    opts.remote_executor = Some(executor.clone());
    opts.jobs = 1;
    opts.remote_jobs = 1;
    let (summary, _) = fx.run(&[where_stage("r", true), where_stage("t", true)], opts);
    assert_eq!(summary.ran, 2, "{:?}", summary.reports);
    assert_eq!(summary.skipped, 0, "a stage sent back is not counted as skipped");
    assert_eq!(executor.executed().len(), 1, "the service is not asked again once found down");
    let first = &executor.executed()[0];
    let second = if first == "r" { "t" } else { "r" };
    assert_eq!(fx.report(&summary, first).message.as_deref(), Some("remote execution: no service; ran locally"));
    assert_eq!(fx.report(&summary, second).message, None);
    assert_eq!((fx.read("r.txt"), fx.read("t.txt")), ("here\n".to_string(), "here\n".to_string()));

    // Required, it fails instead.
    let executor = FakeExecutor::new(ExecMode::Unavailable);
    let fx = Fixture::new();
    let mut opts = options();
    opts.remote_executor = Some(executor.clone());
    opts.remote_required = true;
    let (summary, _) = fx.run(&[where_stage("r", true)], opts);
    let r = fx.report(&summary, "r");
    assert_eq!((r.outcome, r.message.as_deref()), (Outcome::Failed, Some("remote execution: no service")));
}

#[test]
fn remote_executions_take_remote_slots_not_local_jobs() {
    // Each waits until the other has started: both must be in flight at
    // once, although one local job would run them one after the other.
    let waiting = |me: &str, other: &str| {
        let mut s = stage(
            me,
            &format!(
                "touch {me}.started; i=0; while [ ! -e {other}.started ]; do i=$((i+1)); [ $i -gt 600 ] && exit 9; sleep 0.1; done; echo ok > {me}.txt"
            ),
            &[],
            &[&format!("{me}.txt")],
        );
        s.remote = true;
        s
    };
    let executor = FakeExecutor::new(ExecMode::Run);
    let fx = Fixture::new();
    let mut opts = options();
    opts.remote_executor = Some(executor.clone());
    opts.jobs = 1;
    opts.remote_jobs = 2;
    let (summary, _) = fx.run(&[waiting("x", "y"), waiting("y", "x")], opts);
    assert_eq!(summary.ran, 2, "{:?}", summary.reports);
    assert_eq!(executor.executed().len(), 2);

    // One remote slot: one at a time.
    let alone = |me: &str, other: &str| {
        let mut s = stage(
            me,
            &format!(
                "touch {me}.started; sleep 0.5; if [ -e {other}.started ] && [ ! -e {other}.done ]; then exit 7; fi; touch {me}.done; echo ok > {me}.txt"
            ),
            &[],
            &[&format!("{me}.txt")],
        );
        s.remote = true;
        s
    };
    let executor = FakeExecutor::new(ExecMode::Run);
    let fx = Fixture::new();
    let mut opts = options();
    opts.remote_executor = Some(executor.clone());
    opts.jobs = 4;
    opts.remote_jobs = 1;
    let (summary, _) = fx.run(&[alone("x", "y"), alone("y", "x")], opts);
    assert_eq!(summary.ran, 2, "{:?}", summary.reports);
}

#[test]
fn a_remote_execution_starts_while_the_only_local_job_is_taken() {
    // `local` holds the only job slot and waits for `remote` to start.
    let mut local = stage(
        "wait-for-remote",
        "i=0; while [ ! -e remote.started ]; do i=$((i+1)); [ $i -gt 300 ] && exit 9; sleep 0.1; done; echo ok > local.txt",
        &[],
        &["local.txt"],
    );
    local.remote = false;
    let mut remote = stage("remote", "touch remote.started; echo ok > remote.txt", &[], &["remote.txt"]);
    remote.remote = true;
    // Both orders: whichever the scheduler considers first.
    for pipeline in [[local.clone(), remote.clone()], [remote, local]] {
        let executor = FakeExecutor::new(ExecMode::Run);
        let fx = Fixture::new();
        let mut opts = options();
        opts.remote_executor = Some(executor.clone());
        opts.jobs = 1;
        opts.remote_jobs = 1;
        let (summary, _) = fx.run(&pipeline, opts);
        assert_eq!(summary.ran, 2, "{:?}", summary.reports);
        assert_eq!(executor.executed(), ["remote"]);
    }
}
