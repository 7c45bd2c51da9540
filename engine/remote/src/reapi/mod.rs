//! The Remote Execution API v2 client: capabilities, the content-addressable
//! storage (batches and ByteStream), the action cache and `Execute`.
//!
//! Two kinds of action reach the service:
//!
//! - A stage executed remotely is a real action: its command, its deps as
//!   the input root, its outs as output paths (see `exec.rs`). The service
//!   caches it under its own digest.
//! - A stage result published for others is filed in the action cache under
//!   a gourd action (`gourd stage-key KEY`, empty input root), so that a
//!   lookup costs one `GetActionResult` and no re-hashing of inputs. Its
//!   outputs are the stage's outs plus `.gourd/result.json`, the result as
//!   gourd records it (see `cache.rs`).
//!
//! Blobs are hashed with what the service offers: BLAKE3 when both its cache
//! and its execution list it, SHA-256 otherwise. Every blob read is checked
//! against its digest. Every call is bounded in time, and large blobs stream
//! between files and the service, never whole in memory.
//!
//! Failures are sorted for the scheduler: `Unavailable` (the service is
//! down or will not talk to us: stop asking it this run) or `Rejected`
//! (this request only: the stage runs here, others still go).

mod cache;
mod cas;
mod exec;

use std::collections::BTreeMap;
use std::time::Duration;

use bazel_remote_apis::build::bazel::remote::execution::v2 as re;
use gourd_core::remote::RemoteFailure;
use gourd_digest::{DigestAlgorithm, Hasher};
use tokio::sync::OnceCell;
use tonic::transport::{Channel, Endpoint};

pub use cache::stage_key_action;
pub use exec::platform_properties;

/// Where the service is, as `gourd.ncl` (then the environment) says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReapiSettings {
    /// `grpc://host:port` or `grpcs://host:port`.
    pub endpoint: String,
    pub instance: String,
    /// How long one remote execution may take, queueing included.
    pub timeout: Duration,
    /// Platform properties for every action.
    pub platform: BTreeMap<String, String>,
    /// Request headers (`authorization`, `x-buildbuddy-api-key`, ...), from
    /// the environment only.
    pub headers: Vec<(String, String)>,
}

pub struct Reapi {
    endpoint: Endpoint,
    settings: ReapiSettings,
    label: String,
    connection: OnceCell<Connection>,
    file_digests: std::sync::Arc<FileDigests>,
}

/// Digests of the files hashed so far, by path, valid while the file's
/// size, times and inode stay the same: stages that share deps (a sweep
/// over one dataset) hash them once per run.
#[derive(Default)]
struct FileDigests(std::sync::Mutex<std::collections::HashMap<std::path::PathBuf, (Stamp, re::Digest)>>);

#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    ino: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileDigests {
    fn digest(
        &self,
        function: DigestFunction,
        path: &std::path::Path,
        meta: &std::fs::Metadata,
    ) -> std::io::Result<re::Digest> {
        use std::os::unix::fs::MetadataExt;
        let stamp = Stamp {
            len: meta.len(),
            ino: meta.ino(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        };
        if let Some((seen, digest)) = self.0.lock().expect("not poisoned").get(path) {
            if *seen == stamp {
                return Ok(digest.clone());
            }
        }
        let digest = function.digest_file(path)?;
        self.0.lock().expect("not poisoned").insert(path.to_path_buf(), (stamp, digest.clone()));
        Ok(digest)
    }
}

#[derive(Clone)]
struct Connection {
    channel: Channel,
    function: DigestFunction,
    /// The largest batch request the service takes, in bytes.
    max_batch: usize,
    /// The service executes actions.
    can_execute: bool,
    /// The service takes action results from clients.
    can_update: bool,
}

/// The digest function both sides speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DigestFunction {
    Sha256,
    Blake3,
}

impl DigestFunction {
    fn proto(self) -> i32 {
        match self {
            DigestFunction::Sha256 => re::digest_function::Value::Sha256 as i32,
            DigestFunction::Blake3 => re::digest_function::Value::Blake3 as i32,
        }
    }

    fn digest(self, bytes: &[u8]) -> re::Digest {
        let algorithm = match self {
            DigestFunction::Sha256 => DigestAlgorithm::Sha256,
            DigestFunction::Blake3 => DigestAlgorithm::Blake3,
        };
        re::Digest { hash: Hasher::digest_bytes(algorithm, bytes).to_string(), size_bytes: bytes.len() as i64 }
    }

    fn hasher(self) -> Hasher {
        Hasher::new(match self {
            DigestFunction::Sha256 => DigestAlgorithm::Sha256,
            DigestFunction::Blake3 => DigestAlgorithm::Blake3,
        })
    }

    fn digest_file(self, path: &std::path::Path) -> std::io::Result<re::Digest> {
        let algorithm = match self {
            DigestFunction::Sha256 => DigestAlgorithm::Sha256,
            DigestFunction::Blake3 => DigestAlgorithm::Blake3,
        };
        let size = std::fs::metadata(path)?.len();
        Ok(re::Digest { hash: Hasher::digest_file(algorithm, path)?.to_string(), size_bytes: size as i64 })
    }
}

/// Batches are capped here even when the service takes more.
const MAX_BATCH: usize = 4 << 20;
/// Unary calls (lookups, batches) that take longer than this mean the
/// service is in trouble.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// How long moving `bytes` through ByteStream may take: a minute, plus a
/// second per MB (a slow link, not a stalled one).
fn transfer_timeout(bytes: i64) -> Duration {
    CALL_TIMEOUT + Duration::from_secs(bytes.max(0) as u64 / 1_000_000)
}

impl Reapi {
    pub fn new(settings: ReapiSettings) -> Result<Reapi, crate::RemoteError> {
        // What messages, logs and lineage say: never the endpoint's user
        // and password.
        let shown = crate::s3::without_userinfo(&settings.endpoint);
        let label = match settings.instance.as_str() {
            "" => shown,
            instance => format!("{shown} (instance `{instance}`)"),
        };
        let config = |message: String| crate::RemoteError::Config { target: label.clone(), message };
        let (url, tls) = if let Some(rest) = settings.endpoint.strip_prefix("grpc://") {
            (format!("http://{rest}"), false)
        } else if let Some(rest) = settings.endpoint.strip_prefix("grpcs://") {
            (format!("https://{rest}"), true)
        } else if settings.endpoint.contains("://") {
            (settings.endpoint.clone(), settings.endpoint.starts_with("https://"))
        } else {
            (format!("http://{}", settings.endpoint), false)
        };
        let mut endpoint = Endpoint::from_shared(url)
            .map_err(|e| config(format!("not a valid endpoint: {e}")))?
            .connect_timeout(Duration::from_secs(3))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true);
        if tls {
            let tls = tonic::transport::ClientTlsConfig::new().with_native_roots();
            endpoint = endpoint.tls_config(tls).map_err(|e| config(format!("TLS: {e}")))?;
        }
        for (name, value) in &settings.headers {
            tonic::metadata::MetadataKey::<tonic::metadata::Ascii>::from_bytes(name.as_bytes())
                .map_err(|_| config(format!("`{name}` is not a valid header name")))?;
            // The value is a secret: never quoted.
            value
                .parse::<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>()
                .map_err(|_| config(format!("the value of header `{name}` is not valid (control characters)")))?;
        }
        Ok(Reapi { endpoint, settings, label, connection: OnceCell::new(), file_digests: Default::default() })
    }

    /// Connects on first use and asks what the service can do.
    async fn connection(&self) -> Result<&Connection, RemoteFailure> {
        self.connection
            .get_or_try_init(|| async {
                let channel = self.endpoint.connect().await.map_err(|e| {
                    RemoteFailure::Unavailable(crate::s3::without_userinfo(&format!(
                        "cannot connect to {}: {}",
                        self.label,
                        error_chain(&e)
                    )))
                })?;
                let mut client = re::capabilities_client::CapabilitiesClient::new(channel.clone());
                let request = re::GetCapabilitiesRequest { instance_name: self.settings.instance.clone() };
                let capabilities = self
                    .bounded(CALL_TIMEOUT, client.get_capabilities(self.request(request)))
                    .await
                    .map_err(|s| self.failure(s))?
                    .into_inner();
                let cache = capabilities.cache_capabilities.unwrap_or_default();
                // BLAKE3 only where every part of the service speaks it.
                let executes_blake3 = capabilities
                    .execution_capabilities
                    .as_ref()
                    .is_none_or(|e| e.digest_functions.contains(&DigestFunction::Blake3.proto()));
                let function = if cache.digest_functions.contains(&DigestFunction::Blake3.proto()) && executes_blake3 {
                    DigestFunction::Blake3
                } else if cache.digest_functions.contains(&DigestFunction::Sha256.proto())
                    || cache.digest_functions.is_empty()
                {
                    DigestFunction::Sha256
                } else {
                    return Err(RemoteFailure::Rejected(format!(
                        "{} offers neither SHA-256 nor BLAKE3 digests",
                        self.label
                    )));
                };
                let max_batch = match cache.max_batch_total_size_bytes {
                    n if n > 0 => (n as usize).min(MAX_BATCH),
                    _ => MAX_BATCH,
                };
                let can_execute = capabilities.execution_capabilities.is_some_and(|e| e.exec_enabled);
                let can_update = cache.action_cache_update_capabilities.is_some_and(|u| u.update_enabled);
                Ok(Connection { channel, function, max_batch, can_execute, can_update })
            })
            .await
    }

    /// A request with the configured headers and a deadline.
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        self.request_with_timeout(message, CALL_TIMEOUT)
    }

    fn request_with_timeout<T>(&self, message: T, timeout: Duration) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(timeout);
        for (name, value) in &self.settings.headers {
            if let (Ok(key), Ok(value)) =
                (tonic::metadata::MetadataKey::<tonic::metadata::Ascii>::from_bytes(name.as_bytes()), value.parse())
            {
                request.metadata_mut().insert(key, value);
            }
        }
        request
    }

    /// What a failed call means for the run: a service that is down, slow
    /// or overloaded is `Unavailable` (stop asking it); anything else is
    /// about this request.
    fn failure(&self, status: tonic::Status) -> RemoteFailure {
        use tonic::Code;
        let message = format!("{}: {} ({:?})", self.label, status_message(&status), status.code());
        match status.code() {
            // The service is down, unreachable, or will not talk to us.
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown | Code::Unauthenticated => {
                RemoteFailure::Unavailable(message)
            }
            // About this request: a quota, a permission, a missing feature.
            _ => RemoteFailure::Rejected(message),
        }
    }

    /// Awaits a call, giving up after `limit`: gRPC's own deadline covers
    /// the wait for an answer's headers, not a body that stalls.
    async fn bounded<T>(
        &self,
        limit: Duration,
        call: impl std::future::Future<Output = Result<T, tonic::Status>>,
    ) -> Result<T, tonic::Status> {
        match tokio::time::timeout(limit, call).await {
            Ok(result) => result,
            Err(_) => Err(tonic::Status::deadline_exceeded(format!("no answer within {}s", limit.as_secs()))),
        }
    }

    fn instance(&self) -> String {
        self.settings.instance.clone()
    }
}

/// The message of a status, or of the transport error under it.
fn status_message(status: &tonic::Status) -> String {
    let message = status.message();
    match std::error::Error::source(status) {
        Some(source) if message.is_empty() || message == "transport error" => error_chain(source),
        _ => message.to_string(),
    }
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![error.to_string()];
    let mut current = error.source();
    while let Some(source) = current {
        let text = source.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = source.source();
    }
    parts.join(": ")
}
