//! The inference thread and its queue: dynamic batching with Triton's
//! semantics, request deadlines, and model swaps between batches.

use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError, sync_channel};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::metrics::Metrics;
use crate::{Engine, ModelInfo, Prediction};

/// One request's rows, waiting for the model.
pub struct Job {
    pub x: Vec<f32>,
    pub n: usize,
    pub enqueued: Instant,
    pub deadline: Instant,
    pub reply: oneshot::Sender<Result<Answer, Failure>>,
}

/// One request's share of a batch.
pub struct Answer {
    pub info: Arc<ModelInfo>,
    pub classes: usize,
    pub probabilities: Vec<f32>,
    pub embeddings: Option<(usize, Vec<f32>)>,
}

#[derive(Debug)]
pub enum Failure {
    /// The rows do not fit the model that would run them (it changed).
    Shape(String),
    TimedOut,
    Model(String),
}

/// The requests' side: the queue and the model now serving.
pub struct Queue {
    sender: SyncSender<Job>,
    pub current: Arc<RwLock<Arc<ModelInfo>>>,
}

pub enum Refused {
    Full,
    Closed,
}

impl Queue {
    pub fn submit(&self, job: Job, metrics: &Metrics) -> Result<(), Refused> {
        match self.sender.try_send(job) {
            Ok(()) => {
                metrics.queue_depth.inc();
                Ok(())
            }
            Err(TrySendError::Full(_)) => Err(Refused::Full),
            Err(TrySendError::Disconnected(_)) => Err(Refused::Closed),
        }
    }

    pub fn model(&self) -> Arc<ModelInfo> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

pub struct Settings {
    pub max_batch_size: usize,
    pub max_queue_delay: Duration,
    pub queue_size: usize,
}

/// Starts the inference thread. It stops once every [`Queue`] is dropped
/// and the jobs left are done.
pub fn start(
    settings: Settings,
    engine: Box<dyn Engine>,
    swaps: Option<Receiver<Box<dyn Engine>>>,
    metrics: Arc<Metrics>,
) -> (Queue, JoinHandle<()>) {
    let (sender, receiver) = sync_channel(settings.queue_size);
    let current = Arc::new(RwLock::new(Arc::new(engine.info().clone())));
    metrics.model_loaded(engine.info());
    let shared = current.clone();
    let handle = std::thread::Builder::new()
        .name("gourd-serve-infer".into())
        .spawn(move || {
            Worker { settings, engine, swaps, metrics, current: shared, carried: None }.run(receiver);
        })
        .expect("cannot start the inference thread");
    (Queue { sender, current }, handle)
}

struct Worker {
    settings: Settings,
    engine: Box<dyn Engine>,
    swaps: Option<Receiver<Box<dyn Engine>>>,
    metrics: Arc<Metrics>,
    current: Arc<RwLock<Arc<ModelInfo>>>,
    /// A job that did not fit in the last batch: it opens the next.
    carried: Option<Job>,
}

impl Worker {
    fn run(mut self, receiver: Receiver<Job>) {
        // The queue's senders are gone: finish what was taken, then stop.
        let mut closed = false;
        loop {
            self.take_swap();
            let first = match self.carried.take() {
                Some(job) => job,
                None => match receiver.recv_timeout(Duration::from_millis(50)) {
                    Ok(job) => {
                        self.metrics.queue_depth.dec();
                        job
                    }
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => break,
                },
            };
            let batch = self.gather(first, &receiver, &mut closed);
            self.execute(batch);
            if closed && self.carried.is_none() {
                break;
            }
        }
    }

    /// Puts a newly loaded model in place, between two batches.
    fn take_swap(&mut self) {
        let Some(swaps) = &self.swaps else { return };
        let mut newest = None;
        loop {
            match swaps.try_recv() {
                Ok(engine) => newest = Some(engine),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.swaps = None;
                    break;
                }
            }
        }
        if let Some(engine) = newest {
            let info = Arc::new(engine.info().clone());
            // The old model is dropped only after the new one serves.
            let old = std::mem::replace(&mut self.engine, engine);
            *self.current.write().unwrap_or_else(|e| e.into_inner()) = info.clone();
            self.metrics.model_loaded(&info);
            self.metrics.swaps.inc();
            eprintln!("serve: version {} of `{}` now answers", info.version, info.name);
            drop(old);
        }
    }

    /// The jobs of one batch: `first`, then whatever arrives before the
    /// queue delay runs out, up to the batch size.
    fn gather(&mut self, first: Job, receiver: &Receiver<Job>, closed: &mut bool) -> Vec<Job> {
        let until = first.enqueued + self.settings.max_queue_delay;
        let mut rows = first.n;
        let mut jobs = vec![first];
        while rows < self.settings.max_batch_size {
            let now = Instant::now();
            let next = if now >= until {
                match receiver.try_recv() {
                    Ok(job) => job,
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        *closed = true;
                        break;
                    }
                }
            } else {
                match receiver.recv_timeout(until - now) {
                    Ok(job) => job,
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => {
                        *closed = true;
                        break;
                    }
                }
            };
            self.metrics.queue_depth.dec();
            if rows + next.n > self.settings.max_batch_size {
                self.carried = Some(next);
                break;
            }
            rows += next.n;
            jobs.push(next);
        }
        jobs
    }

    fn execute(&mut self, jobs: Vec<Job>) {
        let now = Instant::now();
        let info = self.current.read().unwrap_or_else(|e| e.into_inner()).clone();
        let row_len = info.row_len();
        let mut live = Vec::with_capacity(jobs.len());
        for job in jobs {
            if job.reply.is_closed() {
                continue;
            }
            if now > job.deadline {
                let _ = job.reply.send(Err(Failure::TimedOut));
            } else if job.x.len() != job.n * row_len {
                let message = format!(
                    "the rows have {} values each, and version {} of the model takes {row_len}",
                    job.x.len() / job.n.max(1),
                    info.version
                );
                let _ = job.reply.send(Err(Failure::Shape(message)));
            } else {
                live.push(job);
            }
        }
        if live.is_empty() {
            return;
        }
        let n: usize = live.iter().map(|j| j.n).sum();
        let x: Vec<f32> = if live.len() == 1 {
            std::mem::take(&mut live[0].x)
        } else {
            let mut x = Vec::with_capacity(n * row_len);
            for job in &live {
                x.extend_from_slice(&job.x);
            }
            x
        };
        self.metrics.batch_size.observe(n as f64);
        let started = Instant::now();
        let result = self.engine.infer(&x, n);
        self.metrics.inference_seconds.observe(started.elapsed().as_secs_f64());
        match result {
            Ok(prediction) => split(prediction, live, n, &info),
            Err(message) => {
                for job in live {
                    let _ = job.reply.send(Err(Failure::Model(message.clone())));
                }
            }
        }
    }
}

fn split(prediction: Prediction, jobs: Vec<Job>, n: usize, info: &Arc<ModelInfo>) {
    let classes = prediction.probabilities.len() / n.max(1);
    let mut row = 0;
    for job in jobs {
        let probabilities = prediction.probabilities[row * classes..(row + job.n) * classes].to_vec();
        let embeddings =
            prediction.embeddings.as_ref().map(|(dim, e)| (*dim, e[row * dim..(row + job.n) * dim].to_vec()));
        row += job.n;
        let _ = job.reply.send(Ok(Answer { info: info.clone(), classes, probabilities, embeddings }));
    }
}
