//! Caches on object stores: an S3 bucket, a folder on a local or mounted
//! disk (both through `object_store`), or a folder on another machine over
//! ssh. One layout and the same checks for all three.

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use gourd_core::remote::{BoxFuture, RemoteCache, RemoteFailure};
use gourd_core::store::{ActionResult, Store};
use gourd_digest::{Digest, EntryKind};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig,
};
use serde_json::Value;
use std::time::Duration;

use crate::ssh::SshStore;
use crate::{RemoteError, RemoteSettings};

/// Where the entries live.
enum Backend {
    Objects(Arc<dyn ObjectStore>),
    Ssh(SshStore),
}

/// Transfers in flight at once.
const PARALLEL: usize = 8;
/// Objects at least this large go up in parts.
const MULTIPART: usize = 16 << 20;

/// Why fetching a result's objects failed: the remote's own entries are
/// bad or missing (`Broken`: the result filed under the key is then of no
/// use to anyone and goes), or something else (the network, the local disk).
enum Fault {
    Broken(RemoteFailure),
    Other(RemoteFailure),
}

impl From<RemoteFailure> for Fault {
    fn from(failure: RemoteFailure) -> Fault {
        Fault::Other(failure)
    }
}

pub struct ObjectCache {
    backend: Backend,
    prefix: String,
    label: String,
    /// Whether an entry found damaged is removed from the remote: not from
    /// a read-only one (`GOURD_REMOTE_PUSH=0`), whose users never write it.
    removes_damaged: bool,
}

impl ObjectCache {
    /// An S3 bucket.
    pub fn s3(settings: &RemoteSettings) -> Result<ObjectCache, RemoteError> {
        let label = format!("s3://{}/{}", settings.bucket, settings.prefix);
        // A slow or dead server costs seconds, not the client's default minutes
        // of retries: the stage then runs locally.
        let retry =
            RetryConfig { backoff: BackoffConfig::default(), max_retries: 3, retry_timeout: Duration::from_secs(20) };
        // A server that accepts and never answers costs seconds too (the
        // read timeout: idle time, reset by every read); a large model may
        // take as long as it takes, so there is no limit on a whole request.
        let options = ClientOptions::new()
            .with_connect_timeout(Duration::from_secs(3))
            .with_read_timeout(Duration::from_secs(15))
            .with_timeout_disabled();
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&settings.bucket)
            .with_retry(retry)
            .with_client_options(options);
        if let Some(endpoint) = &settings.endpoint {
            builder = builder.with_endpoint(endpoint).with_allow_http(endpoint.starts_with("http://"));
        }
        if let Some(region) = &settings.region {
            builder = builder.with_region(region);
        }
        let store = builder
            .build()
            .map_err(|e| RemoteError::Config { target: label.clone(), message: scrub(&e.to_string()) })?;
        Ok(ObjectCache {
            backend: Backend::Objects(Arc::new(store)),
            prefix: settings.prefix.trim_matches('/').to_string(),
            label,
            removes_damaged: settings.push,
        })
    }

    /// A folder on a local or mounted disk (NFS, SMB, a USB drive), created
    /// if missing. Files are written beside their place and renamed into
    /// it, so a reader never sees half an object.
    pub fn folder(path: &std::path::Path) -> Result<ObjectCache, RemoteError> {
        let label = format!("folder {}", path.display());
        let config = |message: String| RemoteError::Config { target: label.clone(), message };
        if std::fs::metadata(path).is_ok_and(|meta| !meta.is_dir()) {
            return Err(config("it is a file, not a folder".to_string()));
        }
        std::fs::create_dir_all(path).map_err(|e| config(e.to_string()))?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(path)
            .map_err(|e| config(e.to_string()))?
            .with_automatic_cleanup(true);
        Ok(ObjectCache {
            backend: Backend::Objects(Arc::new(store)),
            prefix: String::new(),
            label,
            removes_damaged: true,
        })
    }

    /// A folder on another machine, over ssh (`[user@]host:/path` or
    /// `ssh://[user@]host[:port]/path`).
    pub fn ssh(endpoint: &str) -> Result<ObjectCache, RemoteError> {
        let ssh =
            SshStore::new(endpoint).map_err(|message| RemoteError::Config { target: endpoint.to_string(), message })?;
        let label = ssh.describe();
        Ok(ObjectCache { backend: Backend::Ssh(ssh), prefix: String::new(), label, removes_damaged: true })
    }

    /// This cache, read only: what it finds damaged stays there (it is
    /// still rejected).
    pub fn read_only(self) -> ObjectCache {
        ObjectCache { removes_damaged: false, ..self }
    }

    /// Every entry of `kind` (`ac`, `cas`, `trees`) with its size and when
    /// it was last written.
    pub async fn list(&self, kind: &str) -> Result<Vec<(Digest, u64, std::time::SystemTime)>, RemoteFailure> {
        let prefix =
            if self.prefix.is_empty() { Path::from(kind) } else { Path::from(format!("{}/{kind}", self.prefix)) };
        let mut out = Vec::new();
        let store = match &self.backend {
            Backend::Objects(store) => store,
            Backend::Ssh(ssh) => {
                let entries = ssh.list(prefix.as_ref()).await?;
                return Ok(entries
                    .into_iter()
                    .filter_map(|(name, size, at)| name.parse::<Digest>().ok().map(|d| (d, size, at)))
                    .collect());
            }
        };
        let mut listing = store.list(Some(&prefix));
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(unavailable)?;
            // Anything that is not named by a digest is not gourd's.
            if let Some(digest) = meta.location.filename().and_then(|n| n.parse::<Digest>().ok()) {
                out.push((digest, meta.size, std::time::SystemTime::from(meta.last_modified)));
            }
        }
        Ok(out)
    }

    /// Removes one entry; one already gone is not an error.
    pub async fn remove(&self, kind: &str, digest: &Digest) -> Result<(), RemoteFailure> {
        let store = match &self.backend {
            Backend::Objects(store) => store,
            Backend::Ssh(ssh) => return ssh.remove(self.path(kind, digest).as_ref()).await,
        };
        match store.delete(&self.path(kind, digest)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(unavailable(err)),
        }
    }

    /// The action result filed under `key`, without fetching its outputs.
    pub async fn action(&self, key: &Digest) -> Result<Option<ActionResult>, RemoteFailure> {
        let Some(bytes) = self.get(&self.path("ac", key)).await? else { return Ok(None) };
        Ok(serde_json::from_slice::<ActionResult>(&bytes).ok().filter(|a| a.key == *key))
    }

    /// The entries of a folder listing; `None` when it is missing or not a
    /// listing.
    pub async fn tree(&self, digest: &Digest) -> Result<Option<Vec<gourd_digest::TreeEntry>>, RemoteFailure> {
        let Some(bytes) = self.get(&self.path("trees", digest)).await? else { return Ok(None) };
        Ok(serde_json::from_slice::<Vec<gourd_digest::TreeEntry>>(&bytes)
            .ok()
            .filter(|entries| gourd_digest::check_listing(entries).is_ok()))
    }

    fn path(&self, kind: &str, digest: &Digest) -> Path {
        if self.prefix.is_empty() {
            Path::from(format!("{kind}/{digest}"))
        } else {
            Path::from(format!("{}/{kind}/{digest}", self.prefix))
        }
    }

    async fn get(&self, path: &Path) -> Result<Option<Vec<u8>>, RemoteFailure> {
        let store = match &self.backend {
            Backend::Objects(store) => store,
            Backend::Ssh(ssh) => return ssh.get(path.as_ref()).await,
        };
        match store.get(path).await {
            Ok(result) => Ok(Some(result.bytes().await.map_err(unavailable)?.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(unavailable(err)),
        }
    }

    async fn put(&self, path: &Path, bytes: Vec<u8>) -> Result<(), RemoteFailure> {
        let store = match &self.backend {
            Backend::Objects(store) => store,
            Backend::Ssh(ssh) => return ssh.put(path.as_ref(), &bytes).await,
        };
        if bytes.len() >= MULTIPART {
            // Content-addressed: writing the same bytes again is harmless,
            // so the multipart path needs no create-only guard.
            let mut upload = store.put_multipart(path).await.map_err(unavailable)?;
            for chunk in bytes.chunks(MULTIPART / 2) {
                upload.put_part(PutPayload::from(chunk.to_vec())).await.map_err(unavailable)?;
            }
            upload.complete().await.map_err(unavailable)?;
            return Ok(());
        }
        match store.put_opts(path, PutPayload::from(bytes), PutOptions::from(PutMode::Create)).await {
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
            Err(err) => Err(unavailable(err)),
        }
    }

    /// Downloads a folder listing and everything under it.
    async fn fetch_tree(&self, digest: Digest, store: &Store) -> Result<(), Fault> {
        let mut todo = vec![digest];
        while let Some(tree) = todo.pop() {
            let bytes = self.get(&self.path("trees", &tree)).await?.ok_or_else(|| {
                Fault::Broken(RemoteFailure::Rejected(format!("folder listing {tree} is missing from {}", self.label)))
            })?;
            let entries = match store.put_tree_bytes(&tree, &bytes) {
                Ok(entries) => entries,
                // A listing in a shape this gourd does not know (JSON, but
                // not a list of entries it reads) may come from a newer
                // gourd: refused, but left for those who can read it.
                Err(gourd_core::store::StoreError::Corrupt { .. })
                    if !parses_as::<Vec<gourd_digest::TreeEntry>>(&bytes) && parses_as::<Vec<Value>>(&bytes) =>
                {
                    return Err(Fault::Other(RemoteFailure::Rejected(format!(
                        "folder listing {tree} in {} is in a form this gourd does not read (from a newer gourd?)",
                        self.label
                    ))));
                }
                Err(gourd_core::store::StoreError::Corrupt { .. }) => {
                    return Err(Fault::Broken(self.reject("trees", "folder listing", tree).await));
                }
                Err(err) => return Err(Fault::Other(local(err))),
            };
            let files: Vec<Digest> = entries.iter().filter(|e| e.kind == EntryKind::File).map(|e| e.digest).collect();
            todo.extend(entries.iter().filter(|e| e.kind == EntryKind::Dir).map(|e| e.digest));
            futures::stream::iter(files.into_iter().map(|file| self.fetch_file(file, store)))
                .buffer_unordered(PARALLEL)
                .try_collect::<Vec<()>>()
                .await?;
        }
        Ok(())
    }

    /// A remote object whose bytes do not match its name is rejected, and
    /// removed (best effort: a read-only remote keeps it) so that the next
    /// `gourd push` of a clone holding the right bytes writes it again;
    /// writes never overwrite, so it would otherwise stay bad for good.
    async fn reject(&self, kind: &str, what: &str, digest: Digest) -> RemoteFailure {
        let removed = self.removes_damaged && self.remove(kind, &digest).await.is_ok();
        RemoteFailure::Rejected(format!(
            "{what} {digest} from {} does not match its digest: rejected{}",
            self.label,
            if removed { ", and removed from there so that a push can replace it" } else { "" }
        ))
    }

    async fn fetch_file(&self, digest: Digest, store: &Store) -> Result<(), Fault> {
        if store.object_path(&digest).exists() {
            return Ok(());
        }
        let backend = match &self.backend {
            Backend::Objects(backend) => backend,
            Backend::Ssh(ssh) => {
                // Straight into a file, hashed as the store adopts it.
                let tmp = store.receiving_path();
                let found = ssh.get_to_file(self.path("cas", &digest).as_ref(), &tmp).await;
                let outcome = match found {
                    Ok(true) => match store.adopt_object(&tmp) {
                        Ok(got) if got == digest => return Ok(()),
                        Ok(_) => Err(Fault::Broken(self.reject("cas", "object", digest).await)),
                        Err(err) => Err(Fault::Other(local(err))),
                    },
                    Ok(false) => Err(Fault::Broken(RemoteFailure::Rejected(format!(
                        "object {digest} is missing from {} (evicted?)",
                        self.label
                    )))),
                    Err(failure) => Err(Fault::Other(failure)),
                };
                let _ = std::fs::remove_file(&tmp);
                return outcome;
            }
        };
        let result = match backend.get(&self.path("cas", &digest)).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(Fault::Broken(RemoteFailure::Rejected(format!(
                    "object {digest} is missing from {} (evicted?)",
                    self.label
                ))));
            }
            Err(err) => return Err(Fault::Other(unavailable(err))),
        };
        if (result.meta.size as usize) < MULTIPART {
            let bytes = result.bytes().await.map_err(unavailable)?;
            return match store.put_object_bytes(&digest, &bytes) {
                Ok(()) => Ok(()),
                Err(gourd_core::store::StoreError::Corrupt { .. }) => {
                    Err(Fault::Broken(self.reject("cas", "object", digest).await))
                }
                Err(err) => Err(Fault::Other(local(err))),
            };
        }
        // Large: chunk by chunk into a file, never whole in memory.
        let tmp = store.receiving_path();
        let received = async {
            use std::io::Write;
            let mut file = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(local)?);
            let mut chunks = result.into_stream();
            while let Some(chunk) = chunks.next().await {
                file.write_all(&chunk.map_err(unavailable)?).map_err(local)?;
            }
            file.flush().map_err(local)
        }
        .await;
        if let Err(failure) = received {
            let _ = std::fs::remove_file(&tmp);
            return Err(Fault::Other(failure));
        }
        match store.adopt_object(&tmp) {
            Ok(got) if got == digest => Ok(()),
            Ok(_) => Err(Fault::Broken(self.reject("cas", "object", digest).await)),
            Err(err) => Err(Fault::Other(local(err))),
        }
    }

    async fn publish_tree(&self, digest: Digest, store: &Store) -> Result<(), RemoteFailure> {
        let entries = store.tree_entries(&digest).map_err(local)?;
        for entry in &entries {
            match entry.kind {
                EntryKind::File => self.publish_file(entry.digest, store).await?,
                EntryKind::Dir => Box::pin(self.publish_tree(entry.digest, store)).await?,
            }
        }
        let bytes = store.tree_bytes(&digest).map_err(local)?;
        self.put(&self.path("trees", &digest), bytes).await
    }

    async fn publish_file(&self, digest: Digest, store: &Store) -> Result<(), RemoteFailure> {
        let object = store.object_path(&digest);
        let size = std::fs::metadata(&object).map_err(local)?.len() as usize;
        if size < MULTIPART {
            let bytes = std::fs::read(&object).map_err(local)?;
            return self.put(&self.path("cas", &digest), bytes).await;
        }
        // Large: part by part from the file, never whole in memory.
        // Content-addressed: writing the same bytes again is harmless, so
        // the multipart path needs no create-only guard.
        use std::io::Read;
        let mut file = std::fs::File::open(&object).map_err(local)?;
        let store = match &self.backend {
            Backend::Objects(store) => store,
            Backend::Ssh(ssh) => return ssh.put_file(self.path("cas", &digest).as_ref(), &object).await,
        };
        let mut upload = store.put_multipart(&self.path("cas", &digest)).await.map_err(unavailable)?;
        let sent = async {
            let mut left = size;
            while left > 0 {
                let mut part = vec![0u8; left.min(MULTIPART / 2)];
                file.read_exact(&mut part).map_err(local)?;
                left -= part.len();
                upload.put_part(PutPayload::from(part)).await.map_err(unavailable)?;
            }
            Ok(())
        }
        .await;
        match sent {
            Ok(()) => upload.complete().await.map(|_| ()).map_err(unavailable),
            Err(failure) => {
                // No orphaned parts left on the server.
                let _ = upload.abort().await;
                Err(failure)
            }
        }
    }
}

impl RemoteCache for ObjectCache {
    fn describe(&self) -> String {
        self.label.clone()
    }

    fn fetch<'a>(
        &'a self,
        key: Digest,
        store: &'a Store,
    ) -> BoxFuture<'a, Result<Option<ActionResult>, RemoteFailure>> {
        Box::pin(async move {
            let Some(bytes) = self.get(&self.path("ac", &key)).await? else { return Ok(None) };
            // A result that is damaged, or names objects the remote lost or
            // holds damaged, is of no use to anyone: it is removed (best
            // effort), so that the next run that executes the stage
            // publishes its own. Results are written create-only, and a
            // stage whose bytes differ from run to run could never replace
            // it otherwise.
            let broken = |why: String| async move {
                let removed = self.removes_damaged && self.remove("ac", &key).await.is_ok();
                let tail =
                    if removed { "; its result was removed from there, for the next run to publish" } else { "" };
                RemoteFailure::Rejected(format!("{why}{tail}"))
            };
            let action: ActionResult = match serde_json::from_slice(&bytes) {
                Ok(action) => action,
                // A JSON object this gourd cannot read may be a newer
                // gourd's result: refused, not removed.
                Err(e) if parses_as::<serde_json::Map<String, Value>>(&bytes) => {
                    return Err(RemoteFailure::Rejected(format!(
                        "the result for {key} in {} is in a form this gourd does not read (from a newer gourd?): {e}",
                        self.label
                    )));
                }
                Err(e) => return Err(broken(format!("the result for {key} in {} is not valid: {e}", self.label)).await),
            };
            if action.key != key {
                let why = format!("the result stored under {key} in {} is for another key", self.label);
                return Err(broken(why).await);
            }
            for output in action.outputs.values().filter(|o| o.cached) {
                let fetched = match output.kind {
                    EntryKind::File => self.fetch_file(output.digest, store).await,
                    EntryKind::Dir => self.fetch_tree(output.digest, store).await,
                };
                match fetched {
                    Ok(()) => {}
                    Err(Fault::Broken(failure)) => return Err(broken(failure.to_string()).await),
                    Err(Fault::Other(failure)) => return Err(failure),
                }
            }
            Ok(Some(action))
        })
    }

    fn publish<'a>(&'a self, action: &'a ActionResult, store: &'a Store) -> BoxFuture<'a, Result<(), RemoteFailure>> {
        Box::pin(async move {
            for output in action.outputs.values().filter(|o| o.cached) {
                match output.kind {
                    EntryKind::File => self.publish_file(output.digest, store).await?,
                    EntryKind::Dir => self.publish_tree(output.digest, store).await?,
                }
            }
            let bytes = serde_json::to_vec_pretty(action).map_err(|e| RemoteFailure::Rejected(e.to_string()))?;
            self.put(&self.path("ac", &action.key), bytes).await
        })
    }
}

/// Whether `bytes` are whole JSON of the shape `T`: an entry in a shape
/// this gourd does not read, yet whole JSON, is another (newer) gourd's
/// rather than a damaged one.
fn parses_as<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> bool {
    serde_json::from_slice::<T>(bytes).is_ok()
}

fn unavailable(err: object_store::Error) -> RemoteFailure {
    RemoteFailure::Unavailable(scrub(&err.to_string()))
}

/// A local object that cannot be read: this stage's publication fails.
fn local(err: impl std::fmt::Display) -> RemoteFailure {
    RemoteFailure::Rejected(err.to_string())
}

/// Error texts from the S3 client may quote request headers and URLs; keep
/// anything that looks like a credential out of messages: the secrets of
/// the environment, and a password written in an endpoint's URL.
fn scrub(message: &str) -> String {
    let mut out = without_userinfo(message);
    for var in ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID"] {
        if let Ok(secret) = std::env::var(var) {
            if secret.len() >= 4 {
                out = out.replace(&secret, "[redacted]");
            }
        }
    }
    out
}

/// `text` with the user and password of every URL in it (`http://bob:pw@host`)
/// replaced by `[redacted]`.
pub fn without_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        // The authority ends at the first `/`, `?`, `#` or space.
        let end = tail.find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace()).unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(user_end) => {
                out.push_str("[redacted]");
                rest = &tail[user_end..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_are_redacted() {
        assert_eq!(
            without_userinfo("Error performing GET http://bob:SECRETpw@127.0.0.1:5999/team/p/ac/x in 1s"),
            "Error performing GET http://[redacted]@127.0.0.1:5999/team/p/ac/x in 1s"
        );
        assert_eq!(without_userinfo("s3://bucket/key and https://h/a@b"), "s3://bucket/key and https://h/a@b");
        assert_eq!(without_userinfo("a https://u@h b ftp://x:y@z"), "a https://[redacted]@h b ftp://[redacted]@z");
        assert_eq!(without_userinfo("no url here"), "no url here");
        assert!(!scrub("GET http://bob:SECRETpw@host/x").contains("SECRETpw"));
    }
}
