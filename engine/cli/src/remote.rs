//! The remote cache of a pipeline: its `remote` record, overridden by the
//! environment, so CI and laptops can point one pipeline at different places.
//!
//! `GOURD_REMOTE=off` turns it off; `GOURD_REMOTE_ENDPOINT`,
//! `GOURD_REMOTE_BUCKET`, `GOURD_REMOTE_PREFIX` and `GOURD_REMOTE_REGION`
//! override the record's fields (or configure an S3 cache when the pipeline
//! has none); `GOURD_REMOTE_PUSH=0` makes it read-only. Credentials come from
//! the standard AWS variables only.

use std::sync::Arc;

use gourd_core::model::Pipeline;
use gourd_core::remote::RemoteCache;
use gourd_remote::{RemoteSettings, S3Cache};

use crate::error::CommandError;

pub struct Remote {
    pub cache: Arc<dyn RemoteCache>,
    pub push: bool,
    pub required: bool,
}

pub fn from_pipeline(pipeline: &Pipeline) -> Result<Option<Remote>, CommandError> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    if env("GOURD_REMOTE").is_some_and(|v| matches!(v.as_str(), "off" | "0" | "false")) {
        return Ok(None);
    }
    let declared = pipeline.remote.clone();
    let bucket = env("GOURD_REMOTE_BUCKET").or_else(|| declared.as_ref().map(|r| r.bucket.clone()));
    let Some(bucket) = bucket else { return Ok(None) };
    if declared.as_ref().is_some_and(|r| !r.cache) {
        return Ok(None);
    }
    if let Some(kind) = declared.as_ref().map(|r| r.kind.as_str()).filter(|k| *k != "s3") {
        return Err(CommandError::user(format!("remote kind `{kind}` is not supported (only 's3)")));
    }
    let settings = RemoteSettings {
        endpoint: env("GOURD_REMOTE_ENDPOINT").or_else(|| declared.as_ref().and_then(|r| r.endpoint.clone())),
        bucket,
        prefix: env("GOURD_REMOTE_PREFIX")
            .or_else(|| declared.as_ref().map(|r| r.prefix.clone()))
            .unwrap_or_else(|| "gourd".into()),
        region: env("GOURD_REMOTE_REGION").or_else(|| declared.as_ref().and_then(|r| r.region.clone())),
        push: match env("GOURD_REMOTE_PUSH") {
            Some(v) => !matches!(v.as_str(), "0" | "false" | "off"),
            None => declared.as_ref().is_none_or(|r| r.push),
        },
    };
    let cache = S3Cache::new(&settings).map_err(|e| CommandError::user(e.to_string()))?;
    Ok(Some(Remote {
        cache: Arc::new(cache),
        push: settings.push,
        required: declared.as_ref().is_some_and(|r| r.required),
    }))
}
