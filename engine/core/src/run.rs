//! The scheduler: brings the selected stages up to date, running ready stages
//! concurrently within the job slots and the GPU pool.
//!
//! Each stage is decided only once all its upstream stages are done, by
//! hashing its deps as they are then: a re-run upstream that wrote the same
//! bytes leaves the downstream key unchanged (early cutoff).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use gourd_digest::Digest;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::exec::{ExecOutcome, ExecRequest};
use crate::gpu::GpuPool;
use crate::graph::Dag;
use crate::hash::Tree;
use crate::model::{Executor, Pipeline, Stage};
use crate::path::WsPath;
use crate::plan::{Assessment, StageState, assess};
use crate::remote::{RemoteCache, RemoteExecution, RemoteExecutor, RemoteFailure};
use crate::store::{ActionResult, OutputRecord};
use crate::time::rfc3339;
use crate::workspace::{LastRun, Leftovers, Workspace};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Ran,
    Restored,
    UpToDate,
    Failed,
    Skipped,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ran => "ran",
            Outcome::Restored => "restored",
            Outcome::UpToDate => "up-to-date",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone)]
pub struct StageReport {
    pub stage: String,
    pub outcome: Outcome,
    pub key: Option<Digest>,
    pub duration: Duration,
    /// Why a stage failed or was skipped.
    pub message: Option<String>,
    /// The log of an executed stage.
    pub log: Option<std::path::PathBuf>,
    /// The result recorded for a stage that ran, was restored or is up to date.
    pub action: Option<ActionResult>,
    /// Where a stage that ran remotely executed: the service, and its worker.
    pub executed_by: Option<String>,
    /// Set when remote execution failed and the stage goes back to the
    /// queue to run here, with local slots and GPUs (`message` says why).
    requeue: bool,
}

pub enum Event<'a> {
    /// A stage was taken off the ready queue and is being decided or run.
    Started {
        stage: &'a str,
    },
    Finished(&'a StageReport),
}

/// Finds the program (and its first arguments) that runs a built-in step.
pub type StepRunner = fn(&str) -> Option<Vec<std::ffi::OsString>>;

pub struct RunOptions {
    pub jobs: usize,
    pub targets: Vec<String>,
    /// Stages to run even if up to date.
    pub force: BTreeSet<String>,
    pub keep_going: bool,
    /// Set to `true` to stop: running stages are killed, nothing new starts.
    pub cancel: watch::Receiver<bool>,
    /// The command that runs a built-in step, by the step's name (the
    /// step's name and its configuration file are appended), or `None`
    /// when this installation cannot run it.
    pub step_runner: Option<StepRunner>,
    /// Counts GPUs when `GOURD_GPUS` is not set, before `nvidia-smi` is
    /// asked (a libtorch build knows its devices).
    pub gpu_probe: Option<fn() -> usize>,
    /// A shared cache consulted before executing, and published to after.
    pub remote: Option<Arc<dyn RemoteCache>>,
    /// Whether new results are published to the remote cache.
    pub remote_writable: bool,
    /// Fail a stage when the remote cannot be reached, instead of
    /// executing it locally.
    pub remote_required: bool,
    /// A remote execution service.
    pub remote_executor: Option<Arc<dyn RemoteExecutor>>,
    /// Which stages it executes.
    pub placement: Placement,
    /// Remote executions in flight at once; they take no local job slot.
    pub remote_jobs: usize,
    /// Marks every process a stage starts (see [`crate::orphans`]).
    pub run_token: Option<String>,
}

/// Which stages execute on the remote execution service (built-in steps
/// never do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Placement {
    /// Those marked `remote = true`.
    #[default]
    Marked,
    /// Every stage.
    Everything,
    /// None.
    Nothing,
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Summary {
    pub ran: usize,
    pub restored: usize,
    pub up_to_date: usize,
    pub failed: usize,
    pub skipped: usize,
    #[serde(skip)]
    pub interrupted: bool,
    #[serde(skip)]
    pub reports: Vec<StageReport>,
}

impl Summary {
    /// Whether the run wrote to the cache (a stage ran or was restored):
    /// then it ends with a flush.
    fn stored_anything(&self) -> bool {
        self.ran + self.restored > 0
    }

    fn add(&mut self, report: StageReport) {
        match report.outcome {
            Outcome::Ran => self.ran += 1,
            Outcome::Restored => self.restored += 1,
            Outcome::UpToDate => self.up_to_date += 1,
            Outcome::Failed => self.failed += 1,
            Outcome::Skipped => self.skipped += 1,
        }
        self.reports.push(report);
    }
}

struct Context {
    ws: Arc<Workspace>,
    pipeline: Arc<Pipeline>,
    step_runner: Option<StepRunner>,
    remote: Option<Arc<dyn RemoteCache>>,
    remote_writable: bool,
    remote_required: bool,
    remote_executor: Option<Arc<dyn RemoteExecutor>>,
    placement: Placement,
    /// Set after the remote could not be reached: the rest of the run does
    /// not wait for it again.
    remote_down: std::sync::atomic::AtomicBool,
    run_token: Option<String>,
    journal: Arc<crate::journal::Journal>,
    /// Started with the run's first process: a run that executes nothing
    /// starts no thread and no watchdog.
    spawner: std::sync::OnceLock<crate::exec::Spawner>,
    /// A stage's process has exited: its job slot and GPUs are free while
    /// its outputs are hashed and stored.
    exited: tokio::sync::mpsc::UnboundedSender<usize>,
}

impl Context {
    fn spawner(&self) -> io::Result<&crate::exec::Spawner> {
        if let Some(spawner) = self.spawner.get() {
            return Ok(spawner);
        }
        let started = crate::exec::Spawner::start()?;
        Ok(self.spawner.get_or_init(|| started))
    }

    /// The remote cache, unless it was found unreachable earlier in the run.
    fn live_remote(&self) -> Option<&Arc<dyn RemoteCache>> {
        self.remote.as_ref().filter(|_| !self.remote_down.load(std::sync::atomic::Ordering::SeqCst))
    }

    /// The remote executor, unless the remote was found unreachable.
    fn live_executor(&self) -> Option<&Arc<dyn RemoteExecutor>> {
        self.remote_executor.as_ref().filter(|_| !self.remote_down.load(std::sync::atomic::Ordering::SeqCst))
    }

    /// Whether `stage` is to execute remotely (it may still fall back).
    fn runs_remotely(&self, stage: &Stage) -> bool {
        self.remote_executor.is_some()
            && !matches!(stage.cmd, crate::model::Command::Step { .. })
            // An action's environment is part of its digest and the service's cache.
            && !stage.has_secrets()
            && match self.placement {
                Placement::Marked => stage.remote,
                Placement::Everything => true,
                Placement::Nothing => false,
            }
    }
}

struct Launch {
    index: usize,
    /// The stage's assessment, when it was made before the launch.
    assessment: Option<Assessment>,
    force: bool,
    devices: Vec<usize>,
    visible_devices: Option<String>,
    /// Execute on the remote execution service.
    remote: bool,
    /// Why a stage meant for the remote runs here (it was put back in the
    /// queue after the remote failed it).
    fallback: Option<String>,
    /// Why the stage cannot execute here (it needs more GPUs than there
    /// are): it is still restored from a cache, and fails only if it would
    /// have to run.
    no_gpu: Option<String>,
}

/// How often a run writes its state (last runs, cleared outputs, the stat
/// cache) while stages go on.
const SAVE_EVERY: Duration = Duration::from_secs(1);

/// Whether the state is to be written now: a second since the last save
/// began, and that save is done.
fn save_due(last_save: Instant, saving: Option<&tokio::task::JoinHandle<()>>) -> bool {
    last_save.elapsed() >= SAVE_EVERY && saving.is_none_or(|s| s.is_finished())
}

/// When the run's loop is to look at saving again, with no other event.
fn next_look(last_save: Instant, saving: Option<&tokio::task::JoinHandle<()>>) -> Instant {
    match saving {
        Some(save) if !save.is_finished() => Instant::now() + Duration::from_millis(100),
        _ => last_save + SAVE_EVERY,
    }
}

pub async fn run(
    ws: Arc<Workspace>,
    pipeline: Arc<Pipeline>,
    dag: &Dag,
    options: RunOptions,
    on_event: &mut dyn FnMut(Event<'_>),
) -> Result<Summary, crate::graph::GraphError> {
    let selected = dag.select(&pipeline, &options.targets)?;
    let jobs = options.jobs.max(1);
    let ws_dir = ws.gourd_dir.clone();
    let (exited, mut exits) = tokio::sync::mpsc::unbounded_channel();
    let context = Arc::new(Context {
        ws,
        pipeline: pipeline.clone(),
        step_runner: options.step_runner,
        remote: options.remote.clone(),
        remote_writable: options.remote_writable,
        remote_required: options.remote_required,
        remote_executor: options.remote_executor.clone(),
        placement: options.placement,
        remote_down: Default::default(),
        run_token: options.run_token.clone(),
        journal: Arc::new(crate::journal::Journal::new(&ws_dir)),
        spawner: std::sync::OnceLock::new(),
        exited,
    });
    let position: BTreeMap<usize, usize> = dag.order().iter().enumerate().map(|(p, &i)| (i, p)).collect();

    let mut waiting_on: BTreeMap<usize, usize> =
        selected.iter().map(|&i| (i, dag.upstream(i).into_iter().filter(|u| selected.contains(u)).count())).collect();
    let mut ready: BTreeSet<(usize, usize)> =
        waiting_on.iter().filter(|&(_, &n)| n == 0).map(|(&i, _)| (position[&i], i)).collect();
    let mut done: BTreeSet<usize> = BTreeSet::new();
    // Remote stages count too: they run here when the remote fails them.
    let needs_gpus = selected.iter().any(|&i| gpus_needed(&pipeline.stages[i]) > 0);
    let mut gpus = if needs_gpus { GpuPool::discover(options.gpu_probe) } else { GpuPool::new(vec![], "none") };
    // A stage that wants more GPUs than there are fails without a slot.
    let refusals_possible = selected.iter().any(|&i| {
        let stage = &pipeline.stages[i];
        gpus_needed(stage) > gpus.total() && !stage.cpu_fallback
    });
    let mut free_slots = jobs;
    let mut free_remote = options.remote_jobs.max(1);
    // Stages the remote failed, to run here, with why.
    let mut fallbacks: BTreeMap<usize, String> = BTreeMap::new();
    let mut running: JoinSet<(StageReport, usize)> = JoinSet::new();
    // What each launched stage holds: its local job slots (or its remote
    // slot: 0) and GPUs, given back when its process exits or, without a
    // process, when it finishes. Stages whose process exited and that are
    // still storing their outputs: no more than `jobs` at once.
    let mut held: BTreeMap<usize, (usize, Vec<usize>)> = BTreeMap::new();
    let mut storing = 0usize;
    let mut summary = Summary::default();
    let mut cancel = options.cancel.clone();
    let mut stop = false;
    // State is written in batches, not per stage, but often enough that a
    // killed run loses at most a second of it (it feeds the reasons
    // `gourd status` gives, and says which outputs gourd cleared).
    let mut last_save = Instant::now();
    let mut saving: Option<tokio::task::JoinHandle<()>> = None;

    // A no-op run should cost what `gourd status` costs. So stages whose
    // upstream stages are all done are first decided here, in order, on
    // this thread: an up-to-date one is finished at once, and the others
    // keep their assessment for the task that runs them (their deps are
    // final: everything upstream is done). The assessments themselves are
    // made beforehand on all cores, wave by wave (see `assess_up_front`).
    let mut up_front = assess_up_front(&context.ws, &pipeline, dag, &ready, &waiting_on, &options.force, &cancel);
    let mut assessed: BTreeMap<usize, Assessment> = BTreeMap::new();
    for &index in dag.order() {
        let stage = &pipeline.stages[index];
        if !ready.contains(&(position[&index], index)) || options.force.contains(&stage.name) || *cancel.borrow() {
            continue;
        }
        let Some((assessment, took)) = up_front.remove(&index) else { continue };
        let started = Instant::now().checked_sub(took).unwrap_or_else(Instant::now);
        if !matches!(assessment.state, StageState::UpToDate(_)) {
            assessed.insert(index, assessment);
            continue;
        }
        let StageState::UpToDate(action) = assessment.state else { unreachable!("matched above") };
        ready.remove(&(position[&index], index));
        on_event(Event::Started { stage: &stage.name });
        let _ = record_last_run(&context.ws, stage, &action, Outcome::UpToDate);
        let report = success(stage, Outcome::UpToDate, action, started);
        finish(&pipeline, report, index, dag, &selected, &mut done, &mut summary, on_event);
        for down in dag.downstream(index) {
            if let Some(n) = waiting_on.get_mut(&down) {
                *n -= 1;
                if *n == 0 && !done.contains(&down) {
                    ready.insert((position[&down], down));
                }
            }
        }
    }

    loop {
        // On a thread of its own: writing the stat cache of a large
        // workspace takes tens of milliseconds, in which this thread would
        // launch nothing.
        if save_due(last_save, saving.as_ref()) {
            let ws = context.ws.clone();
            saving = Some(tokio::task::spawn_blocking(move || drop(ws.save_state())));
            last_save = Instant::now();
        }
        // Also after a failure stopped the run: a stage that Ctrl-C killed
        // may be reported before the cancel is seen, as a failure.
        if !summary.interrupted && *cancel.borrow() {
            stop = true;
            summary.interrupted = true;
        }
        if !stop {
            let mut launched = Vec::new();
            let remote_free = free_remote > 0 && context.live_executor().is_some();
            for &(pos, index) in &ready {
                // Every slot taken: nothing more can start now, and
                // thousands of stages may be ready, each finish a pass.
                if (free_slots == 0 || storing >= jobs) && !remote_free && !refusals_possible {
                    break;
                }
                let stage = &pipeline.stages[index];
                // A remote stage takes a remote slot, no job slot here and no GPU.
                if !fallbacks.contains_key(&index) && context.runs_remotely(stage) && context.live_executor().is_some()
                {
                    if free_remote > 0 {
                        free_remote -= 1;
                        launched.push((pos, index, (0, Vec::new(), None), None));
                    }
                    continue;
                }
                let slots = (stage.resources.cpus.max(1) as usize).min(jobs);
                let mut want_gpus = gpus_needed(stage);
                let mut no_gpu = None;
                if want_gpus > gpus.total() {
                    // Not enough GPUs on this machine: run on the CPU where
                    // the stage allows it; else only a cached result will do.
                    if !stage.cpu_fallback {
                        no_gpu = Some(no_gpu_message(stage, &gpus));
                    }
                    want_gpus = 0;
                }
                if slots > free_slots || storing >= jobs {
                    continue;
                }
                let Some(devices) = gpus.take(want_gpus) else {
                    continue;
                };
                free_slots -= slots;
                let visible = (want_gpus > 0).then(|| gpus.visible_devices(&devices));
                launched.push((pos, index, (slots, devices, visible), no_gpu));
            }
            for (pos, index, (slots, devices, visible_devices), no_gpu) in launched {
                ready.remove(&(pos, index));
                let stage = &pipeline.stages[index];
                on_event(Event::Started { stage: &stage.name });
                let launch = Launch {
                    assessment: assessed.remove(&index),
                    index,
                    force: options.force.contains(&stage.name),
                    devices,
                    visible_devices,
                    remote: slots == 0,
                    fallback: fallbacks.get(&index).cloned(),
                    no_gpu,
                };
                let context = context.clone();
                let cancel = options.cancel.clone();
                held.insert(index, (slots, launch.devices.clone()));
                running.spawn(async move {
                    let index = launch.index;
                    let report = process_stage(&context, launch, cancel).await;
                    (report, index)
                });
            }
        }
        if running.is_empty() {
            break;
        }
        tokio::select! {
            Some(index) = exits.recv() => {
                if let Some((slots, devices)) = held.remove(&index) {
                    free_slots += slots;
                    gpus.give_back(&devices);
                    storing += 1;
                }
            }
            joined = running.join_next() => {
                let Some(joined) = joined else { continue };
                let (report, index) = joined.expect("stage task panicked");
                match held.remove(&index) {
                    Some((0, _)) => free_remote += 1,
                    Some((slots, devices)) => {
                        free_slots += slots;
                        gpus.give_back(&devices);
                    }
                    None => storing -= 1,
                }
                if report.requeue {
                    fallbacks.insert(index, report.message.unwrap_or_default());
                    ready.insert((position[&index], index));
                    continue;
                }
                let ok = report.outcome != Outcome::Failed;
                finish(&pipeline, report, index, dag, &selected, &mut done, &mut summary, on_event);
                if ok {
                    for down in dag.downstream(index) {
                        if let Some(n) = waiting_on.get_mut(&down) {
                            *n -= 1;
                            if *n == 0 && !done.contains(&down) {
                                ready.insert((position[&down], down));
                            }
                        }
                    }
                } else if !options.keep_going {
                    stop = true;
                }
            }
            // Nothing else may happen for a long while (one long stage):
            // what finished meanwhile is saved all the same, so a run killed
            // then loses at most a second of it. While a save is being
            // written (it may have begun before the last stage's result was
            // in), the loop looks again shortly, not at the next event.
            () = tokio::time::sleep_until(next_look(last_save, saving.as_ref()).into()) => {}
            changed = cancel.changed(), if !stop => {
                if changed.is_err() || *cancel.borrow() {
                    stop = true;
                    summary.interrupted = true;
                }
            }
        }
    }

    // Whatever never started was skipped.
    for &index in dag.order() {
        if selected.contains(&index) && !done.contains(&index) {
            let message = if summary.interrupted { "interrupted" } else { "not started after a failure" };
            let report = skipped(&pipeline.stages[index], message.to_string());
            on_event(Event::Finished(&report));
            done.insert(index);
            summary.add(report);
        }
    }
    if let Some(saving) = saving {
        let _ = saving.await;
    }
    let _ = context.ws.save_state();
    // Durable by the time the process ends: the store waits for the flush
    // when it is dropped, and what the caller does meanwhile overlaps it.
    if summary.stored_anything() {
        context.ws.store.sync_in_background();
    }
    Ok(summary)
}

/// Assesses, on all cores, the stages the run decides before launching
/// anything: those ready at the start, then those whose upstream stages all
/// turned out up to date, wave by wave. Nothing is written meanwhile (an
/// up-to-date stage's outputs stay as they are), so each assessment is the
/// one the stage would get in its turn. A stage whose dep is missing is left
/// out, as is a forced one; with how long each assessment took.
fn assess_up_front(
    ws: &Workspace,
    pipeline: &Pipeline,
    dag: &Dag,
    ready: &BTreeSet<(usize, usize)>,
    waiting_on: &BTreeMap<usize, usize>,
    force: &BTreeSet<String>,
    cancel: &watch::Receiver<bool>,
) -> BTreeMap<usize, (Assessment, Duration)> {
    use rayon::prelude::*;
    let forced = |index: &usize| force.contains(&pipeline.stages[*index].name);
    let mut waiting_on = waiting_on.clone();
    let mut wave: Vec<usize> = ready.iter().map(|&(_, index)| index).filter(|i| !forced(i)).collect();
    let mut found = BTreeMap::new();
    while !wave.is_empty() && !*cancel.borrow() {
        let assessments: Vec<(usize, Option<(Assessment, Duration)>)> = wave
            .par_iter()
            .map(|&index| {
                let started = Instant::now();
                let assessment = assess(ws, &pipeline.stages[index], false).ok().and_then(Result::ok);
                (index, assessment.map(|a| (a, started.elapsed())))
            })
            .collect();
        let mut next = Vec::new();
        for (index, assessment) in assessments {
            let Some(assessment) = assessment else { continue };
            if matches!(assessment.0.state, StageState::UpToDate(_)) {
                for down in dag.downstream(index) {
                    if let Some(n) = waiting_on.get_mut(&down) {
                        *n -= 1;
                        if *n == 0 && !forced(&down) {
                            next.push(down);
                        }
                    }
                }
            }
            found.insert(index, assessment);
        }
        wave = next;
    }
    found
}

fn gpus_needed(stage: &Stage) -> usize {
    stage.resources.gpus as usize
}

fn no_gpu_message(stage: &Stage, gpus: &GpuPool) -> String {
    let found = match gpus.total() {
        0 => "no GPU was found".to_string(),
        n => format!("only {n} GPU(s) were found"),
    };
    format!(
        "stage needs {} GPU(s) but {found} (set `GOURD_GPUS` to the device ids to use, e.g. `GOURD_GPUS=0,1`)",
        gpus_needed(stage)
    )
}

/// Reports a finished stage, and skips everything below a failed one.
#[allow(clippy::too_many_arguments)]
fn finish(
    pipeline: &Pipeline,
    report: StageReport,
    index: usize,
    dag: &Dag,
    selected: &BTreeSet<usize>,
    done: &mut BTreeSet<usize>,
    summary: &mut Summary,
    on_event: &mut dyn FnMut(Event<'_>),
) {
    on_event(Event::Finished(&report));
    done.insert(index);
    let failed_stage = (report.outcome == Outcome::Failed).then(|| report.stage.clone());
    summary.add(report);
    let Some(failed_stage) = failed_stage else {
        return;
    };
    let mut todo = dag.downstream(index);
    let mut below = BTreeSet::new();
    while let Some(down) = todo.pop() {
        if selected.contains(&down) && !done.contains(&down) && below.insert(down) {
            todo.extend(dag.downstream(down));
        }
    }
    for &down in dag.order().iter().filter(|i| below.contains(i)) {
        let report = skipped(&pipeline.stages[down], format!("upstream `{failed_stage}` failed"));
        on_event(Event::Finished(&report));
        done.insert(down);
        summary.add(report);
    }
}

fn skipped(stage: &Stage, message: String) -> StageReport {
    StageReport {
        stage: stage.name.clone(),
        outcome: Outcome::Skipped,
        key: None,
        duration: Duration::ZERO,
        message: Some(message),
        log: None,
        action: None,
        executed_by: None,
        requeue: false,
    }
}

fn failed(
    stage: &Stage,
    key: Option<Digest>,
    duration: Duration,
    message: String,
    log: Option<std::path::PathBuf>,
) -> StageReport {
    StageReport {
        stage: stage.name.clone(),
        outcome: Outcome::Failed,
        key,
        duration,
        message: Some(message),
        log,
        action: None,
        executed_by: None,
        requeue: false,
    }
}

async fn process_stage(context: &Arc<Context>, mut launch: Launch, cancel: watch::Receiver<bool>) -> StageReport {
    let stage = &context.pipeline.stages[launch.index];
    let started = Instant::now();
    let assessed = launch.assessment.take();
    // Known once the stage is assessed: a failure after that still names it.
    let mut key = None;
    match process_stage_inner(context, stage, &launch, assessed, cancel, started, &mut key).await {
        Ok(report) => report,
        Err(err) => {
            // Failed after clearing its outputs (storing them ran out of
            // space, say): what it left is its own, as for any failure.
            if context.ws.clearing(&stage.name) {
                note_leftovers_aside(&context.ws, stage).await;
            }
            failed(stage, key, started.elapsed(), err.to_string(), None)
        }
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task panicked")
}

/// Tries, in order, each place a stage's result can come from: the local
/// cache, the remote cache, remote execution, local execution.
async fn process_stage_inner(
    context: &Arc<Context>,
    stage: &Stage,
    launch: &Launch,
    assessed: Option<Assessment>,
    cancel: watch::Receiver<bool>,
    started: Instant,
    key: &mut Option<Digest>,
) -> io::Result<StageReport> {
    if !launch.force && crate::plan::frozen_and_kept(&context.ws, stage) {
        return Ok(StageReport {
            stage: stage.name.clone(),
            outcome: Outcome::UpToDate,
            // The key its deps give now, when they are all there.
            key: assessed.map(|assessment| assessment.key),
            duration: started.elapsed(),
            message: Some("frozen: kept the outputs that were there before gourd ran it".to_string()),
            log: None,
            action: None,
            executed_by: None,
            requeue: false,
        });
    }
    let ws = context.ws.clone();
    let owned = stage.clone();
    let force = launch.force;
    let assessed = match assessed {
        Some(assessment) => Ok(assessment),
        None => blocking(move || assess(&ws, &owned, force)).await?,
    };
    let assessment = match assessed {
        Ok(assessment) => assessment,
        Err(missing) => {
            return Ok(failed(stage, None, started.elapsed(), format!("dep `{missing}` is missing"), None));
        }
    };
    *key = Some(assessment.key);
    // Up-to-date outputs are left alone; anything else deletes or writes them.
    if !matches!(assessment.state, StageState::UpToDate(_)) {
        if let Err(message) = guard_outputs(&context.ws, stage) {
            return Ok(failed(stage, Some(assessment.key), started.elapsed(), message, None));
        }
    }
    if let Some(report) = from_local_cache(context, stage, &assessment, started).await? {
        return Ok(report);
    }
    // A frozen stage that has run here never runs again unless forced.
    if stage.frozen && !launch.force && context.ws.last_run(&stage.name).is_some() {
        let message = "frozen, and its last result cannot be restored (`--force` runs it)".to_string();
        return Ok(failed(stage, Some(assessment.key), started.elapsed(), message, None));
    }
    // A stage back from a failed remote execution was looked up already.
    let mut notes: Vec<String> = launch.fallback.iter().cloned().collect();
    if launch.fallback.is_none() {
        if let Some(report) = from_remote_cache(context, stage, launch, assessment.key, &mut notes, started).await? {
            return Ok(report);
        }
    }
    if let Some(message) = &launch.no_gpu {
        return Ok(failed(stage, Some(assessment.key), started.elapsed(), message.clone(), None));
    }
    execute_stage(context, stage, launch, assessment, notes, cancel, started).await
}

/// Checks every output of `stage` against [`crate::guard`] right before
/// gourd deletes or restores it: an earlier stage may have planted a
/// symbolic link on the way since the pipeline was checked.
fn guard_outputs(ws: &Workspace, stage: &Stage) -> Result<(), String> {
    for output in stage.outputs() {
        let real = crate::guard::check_resolving(&ws.root, &output.path, ws.sources())
            .map_err(|err| format!("refusing to write: {err}"))?;
        let names = std::iter::once(&output.path).chain(real.as_ref());
        for name in names {
            if let Some(dir) = ws.git_dirs().iter().find(|dir| name.overlaps(dir)) {
                let err = crate::guard::GuardError::GitDir { path: output.path.to_string(), git_dir: dir.to_string() };
                return Err(format!("refusing to write: {err}"));
            }
        }
    }
    Ok(())
}

/// Notes a finished stage in the lineage journal, before its result lands;
/// `executed_by` names where a stage that ran remotely executed.
fn journal(
    journal: &crate::journal::Journal,
    stage: &Stage,
    key: Digest,
    status: Outcome,
    started: SystemTime,
    executed_by: Option<String>,
) -> io::Result<()> {
    journal.note(&crate::journal::JournalEntry {
        stage: stage.name.clone(),
        key,
        status: status.as_str().to_string(),
        executed_by,
        started_at: rfc3339(started),
        noted_at: crate::time::now(),
    })
}

/// The local cache: the outputs are there, or can be restored.
async fn from_local_cache(
    context: &Context,
    stage: &Stage,
    assessment: &Assessment,
    started: Instant,
) -> io::Result<Option<StageReport>> {
    match &assessment.state {
        StageState::UpToDate(action) => {
            record_last_run(&context.ws, stage, action, Outcome::UpToDate)?;
            Ok(Some(success(stage, Outcome::UpToDate, action.clone(), started)))
        }
        StageState::Restorable(action, _) => {
            journal(&context.journal, stage, action.key, Outcome::Restored, SystemTime::now(), None)?;
            let ws = context.ws.clone();
            let (restoring, owned) = (action.clone(), stage.clone());
            let link = context.pipeline.link;
            match blocking(move || restore_outputs(&ws, &owned, &restoring, link)).await {
                Ok(notes) => {
                    record_last_run(&context.ws, stage, action, Outcome::Restored)?;
                    let mut report = success(stage, Outcome::Restored, action.clone(), started);
                    report.message = (!notes.is_empty()).then(|| notes.join("; "));
                    Ok(Some(report))
                }
                // The file system cannot make the links asked for, or what
                // is in the way cannot be moved: running the stage would
                // not help, and the result is sound.
                Err(err @ (crate::store::StoreError::Link { .. } | crate::store::StoreError::Displace(_))) => {
                    Ok(Some(failed(stage, Some(assessment.key), started.elapsed(), err.to_string(), None)))
                }
                // A missing or corrupt object: forget the result and run.
                Err(_) => {
                    context.ws.store.drop_action(&assessment.key);
                    Ok(None)
                }
            }
        }
        StageState::Stale(_) => Ok(None),
    }
}

/// The remote cache: someone else may have run the stage already.
async fn from_remote_cache(
    context: &Context,
    stage: &Stage,
    launch: &Launch,
    key: Digest,
    notes: &mut Vec<String>,
    started: Instant,
) -> io::Result<Option<StageReport>> {
    if context.remote.is_some() && context.live_remote().is_none() {
        if context.remote_required {
            return Ok(Some(failed(stage, Some(key), started.elapsed(), "remote cache unavailable".into(), None)));
        }
        notes.push("remote cache unavailable; ran locally".into());
    }
    let Some(remote) = context.live_remote() else { return Ok(None) };
    if launch.force || stage.always_run {
        return Ok(None);
    }
    // An output no cache holds (`cache = false`) that is not here can come
    // only from a run: no remote result would restore it.
    if stage.outputs().any(|out| !out.cache && std::fs::symlink_metadata(context.ws.abs(&out.path)).is_err()) {
        return Ok(None);
    }
    match remote.fetch(key, &context.ws.store).await {
        Ok(Some(action)) if !names_declared_outputs(stage, &action) => {
            notes.push(format!(
                "the result in {} names other outputs than the stage declares: rejected; ran locally",
                remote.describe()
            ));
        }
        Ok(Some(action)) => {
            context.ws.store.put_action(&action)?;
            journal(&context.journal, stage, key, Outcome::Restored, SystemTime::now(), None)?;
            let ws = context.ws.clone();
            let (restoring, owned) = (action.clone(), stage.clone());
            let link = context.pipeline.link;
            match blocking(move || restore_outputs(&ws, &owned, &restoring, link)).await {
                Ok(moved) => {
                    record_last_run(&context.ws, stage, &action, Outcome::Restored)?;
                    let mut report = success(stage, Outcome::Restored, action, started);
                    let from = std::iter::once(format!("from {}", remote.describe()));
                    report.message = Some(from.chain(moved).collect::<Vec<_>>().join("; "));
                    return Ok(Some(report));
                }
                Err(err @ (crate::store::StoreError::Link { .. } | crate::store::StoreError::Displace(_))) => {
                    return Ok(Some(failed(stage, Some(key), started.elapsed(), err.to_string(), None)));
                }
                Err(err) => {
                    context.ws.store.drop_action(&key);
                    notes.push(format!("the remote result could not be restored ({err}); ran locally"));
                }
            }
        }
        Ok(None) => {}
        Err(failure) => {
            if let RemoteFailure::Unavailable(_) = failure {
                context.remote_down.store(true, std::sync::atomic::Ordering::SeqCst);
                if context.remote_required {
                    let message = format!("remote cache: {failure}");
                    return Ok(Some(failed(stage, Some(key), started.elapsed(), message, None)));
                }
            }
            notes.push(format!("remote cache: {failure}; ran locally"));
        }
    }
    Ok(None)
}

/// What a stage's process is handed: its params file, its environment, and
/// how to run a built-in step.
struct Prepared {
    /// What was found at output paths and moved aside (see [`displace`]).
    displaced: Vec<String>,
    params_json: String,
    extra_env: BTreeMap<String, String>,
    step: Option<(Vec<std::ffi::OsString>, std::path::PathBuf)>,
}

/// Clears the previous outputs (unless persisted), creates their folders,
/// and writes what the stage reads besides its deps. `Err(message)` when a
/// built-in step has no runner.
fn prepare(context: &Context, stage: &Stage, visible_devices: Option<&str>) -> io::Result<Result<Prepared, String>> {
    let ws = &context.ws;
    let mut displaced = Vec::new();
    // What a failed run of the stage left is its own to remove; what it
    // leaves from here on is noted if this run fails too.
    let leftovers = ws.leftovers(&stage.name);
    ws.mark_cleared(&stage.name);
    for output in stage.outputs() {
        let path = ws.abs(&output.path);
        if !output.persist {
            match displace(ws, stage, &output.path, &leftovers) {
                Ok(Some(to)) => displaced.push(displaced_note(&output.path, &to)),
                Ok(None) => crate::fsutil::remove_path(&path)?,
                Err(message) => return Ok(Err(message)),
            }
        }
        if let Some(parent) = path.parent() {
            fs_err::create_dir_all(parent)?;
        }
    }
    let params_json = serde_json::to_string_pretty(&stage.params)?;
    let params_path = ws.params_path(&params_json);
    if std::fs::read(&params_path).ok().as_deref() != Some(params_json.as_bytes()) {
        crate::fsutil::write_replace(&params_path, params_json.as_bytes(), false)?;
    }
    let mut extra_env = stage.param_env();
    extra_env.extend([
        ("GOURD_STAGE".to_string(), stage.name.clone()),
        ("GOURD_PARAMS".to_string(), params_path.display().to_string()),
        ("GOURD_WORKSPACE".to_string(), ws.root.display().to_string()),
        ("GOURD_EXECUTOR".to_string(), stage.executor.name().to_string()),
    ]);
    if let Some(token) = &context.run_token {
        extra_env.insert(crate::orphans::RUN_ENV.to_string(), token.clone());
    }
    if let Some(visible) = visible_devices {
        extra_env.insert("CUDA_VISIBLE_DEVICES".to_string(), visible.to_string());
    } else if stage.executor == Executor::Cuda {
        extra_env.insert("CUDA_VISIBLE_DEVICES".to_string(), String::new());
    }
    let step = match &stage.cmd {
        crate::model::Command::Step { name, config } => {
            let Some(runner) = context.step_runner.and_then(|find| find(name)) else {
                return Ok(Err(format!("this installation cannot run the built-in step `{name}`")));
            };
            let text = serde_json::to_string_pretty(config)?;
            let path = ws.step_config_path(&text);
            if std::fs::read(&path).ok().as_deref() != Some(text.as_bytes()) {
                crate::fsutil::write_replace(&path, text.as_bytes(), false)?;
            }
            Some((runner, path))
        }
        _ => None,
    };
    Ok(Ok(Prepared { displaced, params_json, extra_env, step }))
}

/// Moves aside what is at an output path when gourd did not write it (the
/// stage never ran here, the file was changed since, or a run was killed
/// while writing it), instead of deleting it: a first run must not take a
/// user's files, a nested repository or a hand-edited result with it.
/// `leftovers`: what failed runs of the stage left, byte for byte, which is
/// removed. Returns where it went (workspace-relative); `None` when there
/// was nothing, or only what gourd or the stage wrote, to remove; `Err`
/// when it could not be moved.
fn displace(ws: &Workspace, stage: &Stage, path: &WsPath, leftovers: &Leftovers) -> Result<Option<String>, String> {
    let abs = ws.abs(path);
    if std::fs::symlink_metadata(&abs).is_err() {
        return Ok(None);
    }
    // Whether it is what gourd would have left there: a failed run's
    // leftovers, the last run's output here, or the one lineage recorded
    // (asked last: it reads git). The path is hashed only when there is
    // something to compare with, once: a first run over a user's large
    // folder moves it aside without reading it.
    let now = std::cell::OnceCell::new();
    let is_there =
        |digest: Digest| *now.get_or_init(|| ws.hash(path).ok().flatten().map(|t| t.digest())) == Some(digest);
    let gourds = leftovers.get(path.as_str()).copied().flatten().is_some_and(is_there)
        || last_output(ws, stage, path).is_some_and(is_there)
        || ws.recorded_output(&stage.name, path.as_str()).is_some_and(is_there);
    // The digest leaves out what gourd never stores (dangling links, pipes,
    // sockets): a folder that holds such a thing is not only gourd's.
    if gourds && !holds_unhashed(&abs) {
        return Ok(None);
    }
    match move_aside(ws, path) {
        Ok(moved) => Ok(Some(moved)),
        Err((dest, err)) => Err(format!(
            "`{path}` holds what gourd did not write, and it could not be moved aside to `{}` ({err}): move it away and run again",
            dest.display()
        )),
    }
}

/// Moves what is at `path` into `.gourd-displaced/TIME-PID/` (see
/// [`DISPLACED`]), and returns where it went, relative to the workspace;
/// or where it was to go, with why it could not.
pub fn move_aside(ws: &Workspace, path: &WsPath) -> Result<String, (std::path::PathBuf, io::Error)> {
    let root = displaced_root(ws);
    // A process that runs the engine more than once (its tests, a program
    // embedding it) shares the folder: a name already taken gets a number.
    let mut dest = root.join(path.as_str());
    for n in 1.. {
        if std::fs::symlink_metadata(&dest).is_err() {
            break;
        }
        dest = root.join(format!("{path}~{n}"));
    }
    let moved = dest
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| ignored_by_git(&root))
        .and_then(|()| std::fs::rename(ws.abs(path), &dest));
    match moved {
        Ok(()) => Ok(dest.strip_prefix(&ws.root).unwrap_or(&dest).display().to_string()),
        Err(err) => Err((dest, err)),
    }
}

/// Whether the folder `dir` holds, at any depth, an entry that hashing
/// skips: a link that leads nowhere, a named pipe, a socket or a device.
/// Links are not followed (what they lead to is hashed as it is).
fn holds_unhashed(dir: &std::path::Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else { return false };
    entries.flatten().any(|entry| match entry.file_type() {
        Ok(kind) if kind.is_symlink() => std::fs::metadata(entry.path()).is_err(),
        Ok(kind) if kind.is_dir() => holds_unhashed(&entry.path()),
        Ok(kind) => !kind.is_file(),
        Err(_) => false,
    })
}

/// What the stage's line says of an output path moved aside.
fn displaced_note(path: &WsPath, to: &str) -> String {
    format!("moved `{path}` aside to `{to}` (it was not what gourd last wrote there)")
}

/// The digest of the output at `path` that the stage's last successful
/// run here left (or restored).
fn last_output(ws: &Workspace, stage: &Stage, path: &WsPath) -> Option<Digest> {
    let last = ws.last_run(&stage.name)?;
    let action = ws.store.action(&last.key)?;
    action.outputs.get(path.as_str()).map(|record| record.digest)
}

/// Notes what a failed run of the stage left at its output paths: the
/// next run removes exactly that, and moves anything else aside.
/// [`note_leftovers`] on a blocking thread: it hashes what the stage left,
/// which may be large, and the scheduler's thread must go on reaping.
async fn note_leftovers_aside(ws: &Arc<Workspace>, stage: &Stage) {
    let (ws, stage) = (ws.clone(), stage.clone());
    blocking(move || note_leftovers(&ws, &stage)).await
}

fn note_leftovers(ws: &Workspace, stage: &Stage) {
    let left = stage
        .outputs()
        .filter(|output| !output.persist)
        .map(|output| (output.path.to_string(), ws.hash(&output.path).ok().flatten().map(|tree| tree.digest())))
        .collect();
    ws.note_leftovers(&stage.name, left);
}

/// Where user files are moved to, beside `.gourd` rather than in it
/// (`.gourd` is safe to delete; these are not): one folder per `gourd run`
/// under it, `.gourd-displaced/TIME-PID`.
pub const DISPLACED: &str = ".gourd-displaced";

fn displaced_root(ws: &Workspace) -> std::path::PathBuf {
    static STAMP: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let stamp = STAMP.get_or_init(|| format!("{}-{}", crate::time::now().replace(':', ""), std::process::id()));
    ws.root.join(DISPLACED).join(stamp)
}

/// Keeps git from listing what was moved aside (it was ignored where it
/// was, as an output path), with a `.gitignore` of `*` at the top of
/// `.gourd-displaced`, as tools that keep caches in a repository do.
fn ignored_by_git(run_folder: &std::path::Path) -> io::Result<()> {
    let Some(top) = run_folder.parent() else { return Ok(()) };
    let ignore = top.join(".gitignore");
    if std::fs::symlink_metadata(&ignore).is_err() {
        std::fs::write(&ignore, "# What gourd moved aside from output paths; see docs/running.md.\n*\n")?;
    }
    Ok(())
}

/// How executing on the remote service went.
enum Remotely {
    /// It ran there; the outputs are here now. Where it ran.
    Done(String),
    /// The stage failed there.
    Failed(String),
    /// The service could not run it: the stage goes back to the queue.
    Unavailable(String),
}

async fn execute_remotely(
    context: &Context,
    stage: &Stage,
    launch: &Launch,
    prepared: &Prepared,
    notes: &mut Vec<String>,
    cancel: watch::Receiver<bool>,
) -> Remotely {
    let Some(executor) = context.live_executor() else {
        return Remotely::Unavailable("remote execution unavailable".to_string());
    };
    let request = RemoteExecution {
        stage,
        root: &context.ws.root,
        params: prepared.params_json.as_bytes(),
        env: BTreeMap::from([
            ("GOURD_STAGE".to_string(), stage.name.clone()),
            ("GOURD_EXECUTOR".to_string(), stage.executor.name().to_string()),
        ]),
        log: context.ws.log_path(&stage.name),
        skip_cache: launch.force || stage.always_run,
        cancel,
    };
    match executor.execute(request).await {
        Ok(exit) => {
            let on = exit.worker.map(|w| format!(" on {w}")).unwrap_or_default();
            if let Some(failure) = exit.failure {
                return Remotely::Failed(format!("{failure} (remotely{on})"));
            }
            if exit.exit_code != 0 {
                return Remotely::Failed(format!("exited with code {} (remotely{on})", exit.exit_code));
            }
            let cached = if exit.cached { ", from its cache" } else { "" };
            notes.push(format!("executed by {}{on}{cached}", executor.describe()));
            Remotely::Done(format!("{}{on}", executor.describe()))
        }
        Err(failure) => {
            if let RemoteFailure::Unavailable(_) = failure {
                context.remote_down.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            Remotely::Unavailable(format!("remote execution: {failure}"))
        }
    }
}

/// Executes the stage (remotely or here), then stores and records its
/// outputs: only a complete success enters the cache.
async fn execute_stage(
    context: &Arc<Context>,
    stage: &Stage,
    launch: &Launch,
    assessment: Assessment,
    mut notes: Vec<String>,
    cancel: watch::Receiver<bool>,
    started: Instant,
) -> io::Result<StageReport> {
    let key = assessment.key;
    let log = context.ws.log_path(&stage.name);
    // `logged`: the stage's log is this run's (its process started, or the
    // remote's log came back).
    let (displaced, result, remotely, logged) = if launch.remote {
        match execute_remotely_and_store(context, stage, launch, assessment, &mut notes, cancel, started).await? {
            Ok((displaced, result, remotely)) => (displaced, result, remotely, true),
            Err(report) => return Ok(report),
        }
    } else {
        // Everything from clearing the outputs to recording the result runs
        // on one blocking thread, the process waited for there too: the
        // scheduler's thread only launches, reaps and stops on Ctrl-C.
        let stop = Arc::new(crate::exec::Stop::default());
        let task = {
            let (context, owned, stop) = (context.clone(), stage.clone(), stop.clone());
            let (visible, index) = (launch.visible_devices.clone(), launch.index);
            tokio::task::spawn_blocking(move || {
                execute_here(&context, &owned, index, visible.as_deref(), assessment, &stop)
            })
        };
        match crate::exec::stop_on_cancel(task, &stop, cancel).await? {
            Here::NotBegun(message) => return Ok(failed(stage, Some(key), started.elapsed(), message, None)),
            Here::Done { displaced, result, logged } => (displaced, result, None, logged),
        }
    };
    notes.extend(displaced.iter().cloned());
    let action = match result {
        Ok(action) => action,
        Err(message) => {
            // A failure says too what was moved aside to run the stage.
            let moved = displaced.iter().map(|note| format!("; {note}")).collect::<String>();
            let log = logged.then_some(log);
            return Ok(failed(stage, Some(key), started.elapsed(), format!("{message}{moved}"), log));
        }
    };
    if let (Some(remote), true) = (context.live_remote(), context.remote_writable) {
        if let Err(failure) = remote.publish(&action, &context.ws.store).await {
            if let RemoteFailure::Unavailable(_) = failure {
                context.remote_down.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            notes.push(format!("not published to {}: {failure}", remote.describe()));
        }
    }
    let mut report = success(stage, Outcome::Ran, action, started);
    report.log = Some(log);
    report.executed_by = remotely;
    report.message = (!notes.is_empty()).then(|| notes.join("; "));
    Ok(report)
}

/// How a stage executed here came out.
enum Here {
    /// It could not begin (a built-in step without a runner); nothing was
    /// cleared.
    NotBegun(String),
    /// It ran, or failed once its outputs were cleared: what was moved
    /// aside, its stored result or why it failed (what it left is noted
    /// then), and whether its process started (else the log is the last
    /// run's).
    Done { displaced: Vec<String>, result: Result<ActionResult, String>, logged: bool },
}

/// Executes a stage here, on a blocking thread: clears its outputs, starts
/// its process and waits for it, gives its job slot back as it exits, then
/// stores and records its outputs.
fn execute_here(
    context: &Context,
    stage: &Stage,
    index: usize,
    visible_devices: Option<&str>,
    assessment: Assessment,
    stop: &crate::exec::Stop,
) -> io::Result<Here> {
    let ws = &context.ws;
    let mut prepared = match prepare(context, stage, visible_devices)? {
        Ok(prepared) => prepared,
        Err(message) => return Ok(Here::NotBegun(message)),
    };
    let displaced = std::mem::take(&mut prepared.displaced);
    let (outcome, logged) = run_process(context, stage, index, &mut prepared, stop)?;
    let result = match outcome {
        Ok(started_at) => store_and_record(context, stage, assessment, started_at, None)?,
        Err(message) => Err(message),
    };
    if result.is_err() {
        note_leftovers(ws, stage);
    }
    Ok(Here::Done { displaced, result, logged })
}

/// The folder a stage runs in, with every link on the way resolved; or why
/// it cannot run in `wdir`: it is no folder, or it leads (through a symbolic
/// link) out of the workspace or into `.git` or `.gourd`.
fn resolve_wdir(ws: &Workspace, wdir: &WsPath) -> Result<std::path::PathBuf, String> {
    if wdir.is_root() {
        return Ok(ws.root.clone());
    }
    let real = match std::fs::canonicalize(ws.abs(wdir)) {
        Ok(real) if real.is_dir() => real,
        _ => return Err(format!("its `wdir` `{wdir}` is not a folder in the workspace")),
    };
    let root = std::fs::canonicalize(&ws.root).unwrap_or_else(|_| ws.root.clone());
    match real.strip_prefix(&root) {
        Ok(rel) if rel.components().any(|c| c.as_os_str() == ".git" || c.as_os_str() == ".gourd") => {
            Err(format!("its `wdir` `{wdir}` is in `.git` or `.gourd`, where gourd and git write"))
        }
        Ok(_) => Ok(real),
        Err(_) => Err(format!("its `wdir` `{wdir}` leads out of the workspace through a symbolic link")),
    }
}

/// Runs a prepared stage's process to its end: when it started, or why
/// it failed; and whether it started at all.
fn run_process(
    context: &Context,
    stage: &Stage,
    index: usize,
    prepared: &mut Prepared,
    stop: &crate::exec::Stop,
) -> io::Result<(Result<SystemTime, String>, bool)> {
    let ws = &context.ws;
    // The folder the link leads to now: a link changed after this check
    // cannot move the stage elsewhere.
    let wdir = match resolve_wdir(ws, &stage.wdir) {
        Ok(wdir) => wdir,
        Err(problem) => return Ok((Err(problem), false)),
    };
    if stop.interrupted() {
        return Ok((Err("interrupted".to_string()), false));
    }
    let request = ExecRequest {
        stage,
        spawner: context.spawner()?,
        step: prepared.step.as_ref().map(|(runner, config)| (runner.as_slice(), config.clone())),
        root: &ws.root,
        cwd: Some(wdir),
        log: ws.log_path(&stage.name),
        extra_env: std::mem::take(&mut prepared.extra_env),
        // A stage that prints a secret must not leave it in its log.
        redact: crate::secrets::secret_values(stage),
    };
    let started_at = SystemTime::now();
    let process = crate::exec::start(request)?;
    let outcome = crate::exec::wait(process, stage.timeout, stop);
    // The process is gone: its slot can run the next stage while this
    // one's outputs are checked, hashed and stored.
    let _ = context.exited.send(index);
    let outcome = outcome?;
    let outcome = match outcome {
        ExecOutcome::Exited(0) => Ok(started_at),
        ExecOutcome::Exited(code) => Err(format!("exited with code {code}")),
        ExecOutcome::Signaled(signal) => Err(format!("killed by signal {signal}")),
        ExecOutcome::TimedOut(limit) => Err(format!("timed out after {}s", limit.as_secs_f64())),
        ExecOutcome::Interrupted => Err("interrupted".to_string()),
    };
    Ok((outcome, true))
}

/// Executes a stage remotely and stores its outputs here: what was moved
/// aside, the result, and where it executed; or the report when it did not
/// come to storing.
async fn execute_remotely_and_store(
    context: &Arc<Context>,
    stage: &Stage,
    launch: &Launch,
    assessment: Assessment,
    notes: &mut Vec<String>,
    cancel: watch::Receiver<bool>,
    started: Instant,
) -> io::Result<Result<(Vec<String>, Result<ActionResult, String>, Option<String>), StageReport>> {
    let key = assessment.key;
    let prepared = {
        let (context, owned) = (context.clone(), stage.clone());
        blocking(move || prepare(&context, &owned, None)).await?
    };
    let prepared = match prepared {
        Ok(prepared) => prepared,
        Err(message) => return Ok(Err(failed(stage, Some(key), started.elapsed(), message, None))),
    };
    let started_at = SystemTime::now();
    let failure = match execute_remotely(context, stage, launch, &prepared, notes, cancel).await {
        Remotely::Done(by) => {
            let (context, owned, by2) = (context.clone(), stage.clone(), by.clone());
            match blocking(move || store_and_record(&context, &owned, assessment, started_at, Some(by2))).await? {
                Ok(action) => return Ok(Ok((prepared.displaced, Ok(action), Some(by)))),
                Err(message) => message,
            }
        }
        Remotely::Failed(message) => message,
        Remotely::Unavailable(failure) if context.remote_required => failure,
        Remotely::Unavailable(failure) => {
            // Back to the queue, to run here with local slots and GPUs;
            // what was moved aside for it is said when it has run.
            notes.extend(prepared.displaced.iter().cloned());
            notes.push(format!("{failure}; ran locally"));
            let mut report = skipped(stage, notes.join("; "));
            report.requeue = true;
            return Ok(Err(report));
        }
    };
    note_leftovers_aside(&context.ws, stage).await;
    Ok(Ok((prepared.displaced, Err(failure), None)))
}

/// Hashes and stores a finished stage's outputs, then records the result.
/// A dep that changed while the stage ran would file these outputs under
/// the key of content they were not made from: refused.
fn store_and_record(
    context: &Context,
    stage: &Stage,
    assessment: Assessment,
    started_at: SystemTime,
    executed_by: Option<String>,
) -> io::Result<Result<ActionResult, String>> {
    let finished_at = SystemTime::now();
    let ws = &context.ws;
    let manifest = assessment.manifest;
    if let Some(dep) = changed_dep(ws, stage, &manifest["deps"])? {
        let mut message = format!("dep `{dep}` changed while the stage ran; its outputs were not cached (run again)");
        // The usual cause on a first run: Python caching the bytecode of
        // the modules it imports, beside them.
        let change = crate::key::FieldChange {
            field: format!("deps.{dep}"),
            old: manifest["deps"].get(&dep).cloned(),
            new: None,
        };
        let changes = crate::plan::dep_folder_changes(ws, &change);
        if changes.is_some_and(|c| c.added.iter().chain(&c.modified).any(|path| path.contains("__pycache__"))) {
            message.push_str(&format!(
                ": Python wrote `__pycache__` into it; set `PYTHONDONTWRITEBYTECODE = \"1\"` in the stage's `env`, or name the source files rather than `{dep}`"
            ));
        }
        return Ok(Err(message));
    }
    let (outputs, metrics) = match store_outputs(ws, stage)? {
        Ok(stored) => stored,
        Err(message) => return Ok(Err(message)),
    };
    let action = ActionResult {
        key: assessment.key,
        manifest,
        outputs,
        metrics,
        exit_code: 0,
        started_at: rfc3339(started_at),
        finished_at: rfc3339(finished_at),
        duration_ms: finished_at.duration_since(started_at).unwrap_or_default().as_millis() as u64,
    };
    journal(&context.journal, stage, assessment.key, Outcome::Ran, started_at, executed_by)?;
    ws.store.put_action(&action)?;
    record_last_run(ws, stage, &action, Outcome::Ran)?;
    Ok(Ok(action))
}

/// The first dep whose content differs from `recorded` (the manifest's
/// `deps`: path → digest), hashed again now.
fn changed_dep(ws: &Workspace, stage: &Stage, recorded: &serde_json::Value) -> io::Result<Option<String>> {
    for dep in &stage.deps {
        // As the assessment hashed it: an unchanged folder is known by its
        // summary, not read file by file again.
        let now = ws.hashing.digest_of(&ws.abs(dep))?.map(|hashed| hashed.digest().to_string());
        let before = recorded.get(dep.as_str()).and_then(|d| d.as_str());
        if now.as_deref() != before {
            return Ok(Some(dep.to_string()));
        }
    }
    Ok(None)
}

fn success(stage: &Stage, outcome: Outcome, action: ActionResult, started: Instant) -> StageReport {
    StageReport {
        stage: stage.name.clone(),
        outcome,
        key: Some(action.key),
        duration: started.elapsed(),
        message: None,
        log: None,
        action: Some(action),
        executed_by: None,
        requeue: false,
    }
}

fn record_last_run(ws: &Workspace, stage: &Stage, action: &ActionResult, outcome: Outcome) -> io::Result<()> {
    // An up-to-date stage whose last run is already recorded changes nothing.
    if outcome == Outcome::UpToDate && ws.last_run(&stage.name).is_some_and(|last| last.key == action.key) {
        return Ok(());
    }
    let last = LastRun { key: action.key, status: outcome.as_str().to_string(), finished_at: crate::time::now() };
    ws.record_last_run(&stage.name, last);
    Ok(())
}

/// Whether `action` records exactly the outputs `stage` declares. A result
/// from elsewhere (a remote, a pull) that names anything else is not
/// restored: it could write over files the stage does not own.
fn names_declared_outputs(stage: &Stage, action: &ActionResult) -> bool {
    let declared: BTreeSet<String> = stage.outputs().map(|o| o.path.to_string()).collect();
    declared.iter().eq(action.outputs.keys())
}

/// Restores the result's outputs that are not in place already; returns
/// notes of what was moved aside first (see [`displace`]).
fn restore_outputs(
    ws: &Workspace,
    stage: &Stage,
    action: &ActionResult,
    link: crate::model::Link,
) -> Result<Vec<String>, crate::store::StoreError> {
    if !names_declared_outputs(stage, action) {
        return Err(crate::store::StoreError::Foreign);
    }
    let mut notes = Vec::new();
    let leftovers = ws.leftovers(&stage.name);
    for output in stage.outputs() {
        let record = &action.outputs[output.path.as_str()];
        if ws.hash(&output.path)?.map(|t| t.digest()) != Some(record.digest) {
            if let Some(to) =
                displace(ws, stage, &output.path, &leftovers).map_err(crate::store::StoreError::Displace)?
            {
                notes.push(displaced_note(&output.path, &to));
            }
            // A persisted output is one the stage writes to again: never a
            // link into the cache.
            let link = if output.persist { crate::model::Link::Copy } else { link };
            ws.store.restore_linked(record, &ws.abs(&output.path), link)?;
        }
    }
    Ok(notes)
}

type Stored = (BTreeMap<String, OutputRecord>, BTreeMap<String, serde_json::Value>);

/// Hashes every declared output, stores the cached ones and parses metrics.
/// `Ok(Err(message))` is the stage's fault (a missing out, bad metrics).
fn store_outputs(ws: &Workspace, stage: &Stage) -> io::Result<Result<Stored, String>> {
    let mut outputs = BTreeMap::new();
    let mut metrics = BTreeMap::new();
    for output in stage.outputs() {
        let path = ws.abs(&output.path);
        if let Err(err) = crate::guard::check_output_link(&ws.root, &output.path) {
            return Ok(Err(format!("refusing to store out `{}`: {err}", output.path)));
        }
        let Some(tree) = ws.hashing.hash(&path)? else {
            return Ok(Err(format!("did not create declared out `{}`", output.path)));
        };
        if output.kind == crate::model::OutputKind::Metrics {
            let parsed = match &tree {
                Tree::File { .. } => fs_err::read(&path)
                    .map_err(|e| format!("metrics file `{}`: {e}", output.path))
                    .and_then(|bytes| crate::metrics::parse(output.path.as_str(), &bytes)),
                Tree::Dir { .. } => Err(format!("metrics file `{}` is a folder", output.path)),
            };
            match parsed {
                Ok(value) => {
                    metrics.insert(output.path.to_string(), value);
                }
                Err(err) => return Ok(Err(err)),
            }
        }
        if output.cache {
            ws.store.put(&path, &tree)?;
        }
        outputs.insert(output.path.to_string(), OutputRecord::from_tree(&tree, output.cache));
    }
    Ok(Ok((outputs, metrics)))
}
