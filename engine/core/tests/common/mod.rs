//! A workspace in a temporary folder, stages built in code, and the
//! scheduler run to completion on a runtime of its own.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gourd_core::graph::{Dag, GraphError};
use gourd_core::model::{Command, Executor, Output, OutputKind, Pipeline, Resources, Stage};
use gourd_core::path::WsPath;
use gourd_core::run::{Event, RunOptions, StageReport, Summary};
use gourd_core::workspace::Workspace;
use tokio::sync::watch;

pub fn stage(name: &str, cmd: &str, deps: &[&str], outs: &[&str]) -> Stage {
    Stage {
        name: name.to_string(),
        cmd: Command::Shell(cmd.to_string()),
        deps: deps.iter().map(|d| WsPath::new(d).unwrap()).collect(),
        outs: outs
            .iter()
            .map(|o| Output { path: WsPath::new(o).unwrap(), kind: OutputKind::Data, cache: true, persist: false })
            .collect(),
        metrics: vec![],
        params: serde_json::json!({}),
        env: Default::default(),
        secrets: vec![],
        executor: Executor::Local,
        resources: Resources { cpus: 1, gpus: 0 },
        wdir: WsPath::root(),
        always_run: false,
        frozen: false,
        cpu_fallback: false,
        remote: false,
        timeout: None,
        desc: None,
    }
}

pub fn shell(cmd: &str) -> Command {
    Command::Shell(cmd.to_string())
}

pub fn pipeline(stages: &[Stage]) -> Pipeline {
    let mut stages = stages.to_vec();
    stages.sort_by(|a, b| a.name.cmp(&b.name));
    Pipeline { stages, remote: None, registry: Default::default(), plots: vec![], link: Default::default() }
}

/// Options with no cancel sender: use [`options_with_cancel`] to stop a run.
pub fn options() -> RunOptions {
    let (sender, options) = options_with_cancel();
    // A dropped sender reads as a cancel; this one lives as long as the test.
    std::mem::forget(sender);
    options
}

pub fn options_with_cancel() -> (watch::Sender<bool>, RunOptions) {
    let (sender, cancel) = watch::channel(false);
    let options = RunOptions {
        jobs: 4,
        targets: vec![],
        force: Default::default(),
        keep_going: false,
        cancel,
        step_runner: None,
        gpu_probe: None,
        remote: None,
        remote_writable: true,
        remote_required: false,
        remote_executor: None,
        placement: Default::default(),
        remote_jobs: 4,
        run_token: None,
    };
    (sender, options)
}

pub struct Fixture {
    _dir: tempfile::TempDir,
    pub ws: Arc<Workspace>,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let ws = Arc::new(Workspace::open(dir.path()).unwrap());
        Fixture { _dir: dir, ws }
    }

    pub fn root(&self) -> &Path {
        &self.ws.root
    }

    pub fn write(&self, path: &str, text: &str) {
        let path = self.root().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    pub fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// The stage names in the order the scheduler considers them.
    pub fn order(&self, stages: &[Stage]) -> Vec<String> {
        let pipeline = pipeline(stages);
        let dag = Dag::build(&pipeline).unwrap();
        dag.order().iter().map(|&i| pipeline.stages[i].name.clone()).collect()
    }

    pub fn try_run(&self, stages: &[Stage], options: RunOptions) -> Result<(Summary, Vec<String>), GraphError> {
        let pipeline = Arc::new(pipeline(stages));
        let dag = Dag::build(&pipeline)?;
        let mut events = Vec::new();
        let mut on_event = |event: Event<'_>| {
            events.push(match event {
                Event::Started { stage } => format!("started {stage}"),
                Event::Finished(report) => format!("finished {} {}", report.stage, report.outcome.as_str()),
            })
        };
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let summary =
            runtime.block_on(gourd_core::run::run(self.ws.clone(), pipeline.clone(), &dag, options, &mut on_event))?;
        Ok((summary, events))
    }

    pub fn run(&self, stages: &[Stage], options: RunOptions) -> (Summary, Vec<String>) {
        self.try_run(stages, options).unwrap()
    }

    pub fn report<'a>(&self, summary: &'a Summary, stage: &str) -> &'a StageReport {
        summary.reports.iter().find(|r| r.stage == stage).unwrap_or_else(|| panic!("no report for {stage}"))
    }
}

/// Waits (a minute at most) until `ready` holds.
pub fn wait_until(mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < Duration::from_secs(60), "waited a minute in vain");
        std::thread::sleep(Duration::from_millis(20));
    }
}
