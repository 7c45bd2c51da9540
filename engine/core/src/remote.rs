//! A remote cache, as the scheduler sees it: somewhere to look for a result
//! before executing a stage, and to publish results to after. The remote
//! crate implements it (S3); the engine only knows this trait.

use std::future::Future;
use std::pin::Pin;

use gourd_digest::Digest;

use crate::store::{ActionResult, Store};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a remote operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteFailure {
    /// The store cannot be reached or refuses: no use asking again this run.
    Unavailable(String),
    /// The store answered, but with something unusable (a corrupt or
    /// missing object): this stage runs locally, others may still hit.
    Rejected(String),
}

impl std::fmt::Display for RemoteFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RemoteFailure::Unavailable(m) | RemoteFailure::Rejected(m) => f.write_str(m),
        }
    }
}

pub trait RemoteCache: Send + Sync {
    /// A short description for messages (`s3://bucket/prefix`).
    fn describe(&self) -> String;

    /// Looks up `key`; on a hit, downloads every object the result names into
    /// `store`, each verified against its digest, and returns the result
    /// (not yet recorded in `store`). A corrupt or missing remote object is
    /// an error: the caller executes the stage instead.
    fn fetch<'a>(&'a self, key: Digest, store: &'a Store)
    -> BoxFuture<'a, Result<Option<ActionResult>, RemoteFailure>>;

    /// Uploads the objects `action` names from `store`, then the result
    /// itself, never overwriting what is there.
    fn publish<'a>(&'a self, action: &'a ActionResult, store: &'a Store) -> BoxFuture<'a, Result<(), RemoteFailure>>;
}

/// A stage to execute on a remote execution service.
pub struct RemoteExecution<'a> {
    pub stage: &'a crate::model::Stage,
    /// The workspace root: deps are read from here and outputs land here.
    pub root: &'a std::path::Path,
    /// The stage's parameters file, as `GOURD_PARAMS` names it.
    pub params: &'a [u8],
    /// Variables set by gourd (`GOURD_STAGE`, ...), besides the stage's own.
    pub env: std::collections::BTreeMap<String, String>,
    /// Where the stage's stdout and stderr go.
    pub log: std::path::PathBuf,
    /// Execute even when the service holds a result for the same action.
    pub skip_cache: bool,
    /// Turns `true` to stop: the remote operation is cancelled.
    pub cancel: tokio::sync::watch::Receiver<bool>,
}

/// How a remote execution ended. On exit code 0 its outputs are in place.
#[derive(Debug, Clone)]
pub struct RemoteExit {
    pub exit_code: i32,
    /// The worker that ran it, when the service says.
    pub worker: Option<String>,
    /// The service answered from its own action cache.
    pub cached: bool,
    /// Why the stage failed when it did not exit (a timeout on the worker).
    pub failure: Option<String>,
}

pub trait RemoteExecutor: Send + Sync {
    /// A short description for messages (`grpc://host:port`).
    fn describe(&self) -> String;

    /// Uploads the stage's inputs, executes its command remotely, waits (up
    /// to the service's deadline) and writes its outputs and log in place.
    fn execute<'a>(&'a self, request: RemoteExecution<'a>) -> BoxFuture<'a, Result<RemoteExit, RemoteFailure>>;
}
