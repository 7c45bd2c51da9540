//! Remote caches and remote execution: a stage run once anywhere is
//! restored everywhere, and heavy stages run on other machines.
//!
//! Two backends: an S3 bucket (a cache only), and a Remote Execution API v2
//! service (BuildGrid, Buildbarn, NativeLink, BuildBuddy, EngFlow), which
//! both caches and executes; see `reapi/`.
//!
//! The S3 cache speaks plain S3 (AWS, MinIO, Ceph, R2, GCS interop) through
//! `object_store`, with the same content-addressed layout as the local store:
//!
//! ```text
//! s3://BUCKET/PREFIX/
//! ├── cas/DIGEST      file contents
//! ├── trees/DIGEST    folder listings (JSON)
//! └── ac/KEY          action results (JSON), written after their objects
//! ```
//!
//! Writes are create-only, so nothing is ever overwritten, and every object
//! is verified against its digest before use: a poisoned or truncated object
//! is rejected and reported, never restored. Credentials come only from the
//! environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, ...) and never
//! enter lineage, logs or messages.

mod reapi;
mod s3;
mod ssh;

pub use reapi::{Reapi, ReapiSettings, platform_properties, stage_key_action};
pub use s3::{ObjectCache, without_userinfo};

/// Where the remote cache is, as `gourd.ncl` (then the environment) says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSettings {
    pub endpoint: Option<String>,
    pub bucket: String,
    pub prefix: String,
    pub region: Option<String>,
    /// Publish new results (else only read).
    pub push: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("remote cache `{target}`: {message}")]
    Config { target: String, message: String },
}
