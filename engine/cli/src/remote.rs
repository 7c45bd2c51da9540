//! The remote of a pipeline: its `remote` record, overridden by the
//! environment, so CI and laptops can point one pipeline at different places.
//!
//! `GOURD_REMOTE=off` turns it off. `GOURD_REMOTE_KIND` (`s3`, `reapi`,
//! `folder`, `ssh`), `GOURD_REMOTE_PATH`, `GOURD_REMOTE_ENDPOINT`,
//! `GOURD_REMOTE_BUCKET`, `GOURD_REMOTE_PREFIX`,
//! `GOURD_REMOTE_REGION` and `GOURD_REMOTE_INSTANCE` override the record's
//! fields (or configure a remote when the pipeline has none);
//! `GOURD_REMOTE_PUSH=0` makes the cache read-only, `GOURD_REMOTE_EXECUTE=0`
//! turns remote execution off and `GOURD_REMOTE_REQUIRED=1` forbids falling
//! back to local execution. Credentials come from the
//! environment only: the standard AWS variables for S3, and
//! `GOURD_REMOTE_HEADERS` (`name=value,name=value`, e.g.
//! `authorization=Bearer TOKEN`) for a REAPI service.

use std::sync::Arc;
use std::time::Duration;

use gourd_core::model::{Pipeline, RemoteKind};
use gourd_core::remote::{RemoteCache, RemoteExecutor};
use gourd_remote::{ObjectCache, Reapi, ReapiSettings, RemoteSettings};

use crate::error::CommandError;

pub struct Remote {
    /// The same cache as an object store (S3 or a folder), for `gourd gc --remote`.
    pub objects: Option<Arc<ObjectCache>>,
    /// Where results are looked up and published, if anywhere.
    pub cache: Option<Arc<dyn RemoteCache>>,
    /// Where stages marked `remote` execute, if anywhere.
    pub executor: Option<Arc<dyn RemoteExecutor>>,
    pub push: bool,
    pub required: bool,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn off(value: &str) -> bool {
    matches!(value, "0" | "false" | "off" | "no")
}

/// `root` is the workspace: a folder remote's relative path starts there.
pub fn from_pipeline(pipeline: &Pipeline, root: &std::path::Path) -> Result<Option<Remote>, CommandError> {
    resolve(pipeline, root, Opening::Open)
}

/// Refuses the remote settings `gourd run` would refuse, opening nothing:
/// no folder is created, nothing is connected to.
pub fn check(pipeline: &Pipeline, root: &std::path::Path) -> Result<(), CommandError> {
    resolve(pipeline, root, Opening::CheckOnly).map(drop)
}

#[derive(Clone, Copy, PartialEq)]
enum Opening {
    Open,
    CheckOnly,
}

fn resolve(pipeline: &Pipeline, root: &std::path::Path, opening: Opening) -> Result<Option<Remote>, CommandError> {
    if env("GOURD_REMOTE").is_some_and(|v| off(&v)) {
        return Ok(None);
    }
    let declared = pipeline.remote.clone();
    let kind = match env("GOURD_REMOTE_KIND") {
        Some(kind) => match kind.as_str() {
            "s3" => RemoteKind::S3,
            "reapi" => RemoteKind::Reapi,
            "folder" => RemoteKind::Folder,
            "ssh" => RemoteKind::Ssh,
            other => {
                return Err(CommandError::user(format!(
                    "GOURD_REMOTE_KIND: `{other}` is not a remote kind (expected `s3`, `reapi`, `folder` or `ssh`)"
                )));
            }
        },
        None => match &declared {
            Some(remote) => remote.kind,
            // Without a record, a bucket in the environment means S3.
            None if env("GOURD_REMOTE_BUCKET").is_some() => RemoteKind::S3,
            None if env("GOURD_REMOTE_PATH").is_some() => RemoteKind::Folder,
            None => return Ok(None),
        },
    };
    let endpoint = env("GOURD_REMOTE_ENDPOINT").or_else(|| declared.as_ref().and_then(|r| r.endpoint.clone()));
    let push = match env("GOURD_REMOTE_PUSH") {
        Some(v) => !off(&v),
        None => declared.as_ref().is_none_or(|r| r.push),
    };
    let use_cache = declared.as_ref().is_none_or(|r| r.cache);
    let required = match env("GOURD_REMOTE_REQUIRED") {
        Some(v) => !off(&v),
        None => declared.as_ref().is_some_and(|r| r.required),
    };
    match kind {
        RemoteKind::S3 => {
            let Some(bucket) = env("GOURD_REMOTE_BUCKET").or_else(|| declared.as_ref().and_then(|r| r.bucket.clone()))
            else {
                return Err(CommandError::user("an S3 remote needs a bucket (`bucket` or GOURD_REMOTE_BUCKET)"));
            };
            if !use_cache {
                return Ok(None);
            }
            let settings = RemoteSettings {
                endpoint,
                bucket,
                prefix: env("GOURD_REMOTE_PREFIX")
                    .or_else(|| declared.as_ref().map(|r| r.prefix.clone()))
                    .unwrap_or_else(|| "gourd".into()),
                region: env("GOURD_REMOTE_REGION").or_else(|| declared.as_ref().and_then(|r| r.region.clone())),
                push,
            };
            let cache = Arc::new(ObjectCache::s3(&settings).map_err(|e| CommandError::user(e.to_string()))?);
            Ok(Some(Remote { objects: Some(cache.clone()), cache: Some(cache), executor: None, push, required }))
        }
        RemoteKind::Ssh => {
            let Some(endpoint) = endpoint else {
                return Err(CommandError::user(
                    "an ssh remote needs an endpoint (`endpoint` or GOURD_REMOTE_ENDPOINT, e.g. `me@host:/srv/gourd-cache`)",
                ));
            };
            if !use_cache {
                return Ok(None);
            }
            let cache = ObjectCache::ssh(&endpoint).map_err(|e| CommandError::user(e.to_string()))?;
            let cache = Arc::new(if push { cache } else { cache.read_only() });
            Ok(Some(Remote { objects: Some(cache.clone()), cache: Some(cache), executor: None, push, required }))
        }
        RemoteKind::Folder => {
            let Some(path) = env("GOURD_REMOTE_PATH").or_else(|| declared.as_ref().and_then(|r| r.path.clone())) else {
                return Err(CommandError::user("a folder remote needs a path (`path` or GOURD_REMOTE_PATH)"));
            };
            if !use_cache {
                return Ok(None);
            }
            let folder = root.join(expand_home(&path));
            if folder.starts_with(root.join(".gourd")) || folder.starts_with(root.join(".git")) {
                return Err(CommandError::user(format!(
                    "folder remote `{path}`: it lies in `.gourd` or `.git`; choose a folder outside them"
                )));
            }
            // A folder that is not there yet, `run` creates; `check` leaves
            // it. A file in its place, or on its way, is refused below as
            // `run` refuses it (nothing can be created under a file).
            let nearest = folder.ancestors().find_map(|dir| std::fs::metadata(dir).ok());
            if opening == Opening::CheckOnly && nearest.is_none_or(|meta| meta.is_dir()) {
                return Ok(None);
            }
            let cache = ObjectCache::folder(&folder).map_err(|e| CommandError::user(e.to_string()))?;
            let cache = Arc::new(if push { cache } else { cache.read_only() });
            Ok(Some(Remote { objects: Some(cache.clone()), cache: Some(cache), executor: None, push, required }))
        }
        RemoteKind::Reapi => {
            let Some(endpoint) = endpoint else {
                return Err(CommandError::user(
                    "a REAPI remote needs an endpoint (`endpoint` or GOURD_REMOTE_ENDPOINT, e.g. `grpc://host:8980`)",
                ));
            };
            let mut headers = Vec::new();
            for pair in env("GOURD_REMOTE_HEADERS").unwrap_or_default().split(',').filter(|p| !p.trim().is_empty()) {
                let Some((name, value)) = pair.split_once('=') else {
                    return Err(CommandError::user(
                        "GOURD_REMOTE_HEADERS: expected `name=value` pairs separated by commas",
                    ));
                };
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
            }
            let settings = ReapiSettings {
                endpoint,
                instance: env("GOURD_REMOTE_INSTANCE")
                    .or_else(|| declared.as_ref().map(|r| r.instance.clone()))
                    .unwrap_or_default(),
                timeout: declared.as_ref().map_or(Duration::from_secs(3600), |r| r.timeout),
                platform: declared.as_ref().map(|r| r.platform.clone()).unwrap_or_default(),
                headers,
            };
            let reapi = Arc::new(Reapi::new(settings).map_err(|e| CommandError::user(e.to_string()))?);
            let execute = match env("GOURD_REMOTE_EXECUTE") {
                Some(v) => !off(&v),
                None => declared.as_ref().is_none_or(|r| r.execute),
            };
            Ok(Some(Remote {
                objects: None,
                cache: use_cache.then(|| reapi.clone() as Arc<dyn RemoteCache>),
                executor: execute.then(|| reapi as Arc<dyn RemoteExecutor>),
                push,
                required,
            }))
        }
    }
}

/// `~/x` is `$HOME/x`, as a shell would read it.
fn expand_home(path: &str) -> std::path::PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => std::path::Path::new(&home).join(rest),
        _ => std::path::PathBuf::from(path),
    }
}
