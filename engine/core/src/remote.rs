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
