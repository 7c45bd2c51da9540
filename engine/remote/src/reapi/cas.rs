//! Moving blobs in and out of the content-addressable storage: small ones in
//! batches (in memory), large ones through ByteStream (chunk by chunk from
//! and to files), everything read checked against its digest.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use bazel_remote_apis::build::bazel::remote::execution::v2 as re;
use bazel_remote_apis::google::bytestream as bs;
use futures::{StreamExt, TryStreamExt};
use gourd_core::remote::RemoteFailure;

use super::{Connection, DigestFunction, Reapi};

/// Transfers in flight at once.
const PARALLEL: usize = 4;
/// ByteStream chunks.
const CHUNK: usize = 1 << 20;
/// Room left in a batch for the request's own fields.
const OVERHEAD: usize = 1 << 10;
/// Largest message gourd accepts from the service (a full batch and more).
pub(super) const MAX_MESSAGE: usize = 64 << 20;

/// A blob to upload.
pub(super) enum Blob {
    Bytes(Vec<u8>),
    File(PathBuf),
}

impl Blob {
    fn read(&self) -> Result<Vec<u8>, RemoteFailure> {
        match self {
            Blob::Bytes(bytes) => Ok(bytes.clone()),
            Blob::File(path) => std::fs::read(path)
                .map_err(|e| RemoteFailure::Rejected(format!("cannot read `{}`: {e}", path.display()))),
        }
    }
}

/// Blobs to upload, by hash.
#[derive(Default)]
pub(super) struct Blobs(HashMap<String, (re::Digest, Blob)>);

impl Blobs {
    /// Adds `bytes` and returns their digest.
    pub(super) fn bytes(&mut self, function: DigestFunction, bytes: Vec<u8>) -> re::Digest {
        let digest = function.digest(&bytes);
        self.0.entry(digest.hash.clone()).or_insert_with(|| (digest.clone(), Blob::Bytes(bytes)));
        digest
    }

    pub(super) fn message(&mut self, function: DigestFunction, message: &impl prost::Message) -> re::Digest {
        self.bytes(function, message.encode_to_vec())
    }

    pub(super) fn file(&mut self, digest: re::Digest, path: PathBuf) {
        self.0.entry(digest.hash.clone()).or_insert_with(|| (digest, Blob::File(path)));
    }
}

/// Why a blob could not be read.
pub(super) enum ReadError {
    /// The service does not have it (never uploaded, or evicted).
    Missing(re::Digest),
    /// What came back does not match the digest.
    Corrupt(re::Digest),
    Call(RemoteFailure),
}

impl ReadError {
    pub(super) fn into_failure(self, label: &str) -> RemoteFailure {
        match self {
            ReadError::Missing(d) => {
                RemoteFailure::Rejected(format!("blob {}/{} is missing from {label} (evicted?)", d.hash, d.size_bytes))
            }
            ReadError::Corrupt(d) => RemoteFailure::Rejected(format!(
                "blob {}/{} from {label} does not match its digest: rejected",
                d.hash, d.size_bytes
            )),
            ReadError::Call(failure) => failure,
        }
    }
}

impl From<RemoteFailure> for ReadError {
    fn from(failure: RemoteFailure) -> Self {
        ReadError::Call(failure)
    }
}

static UPLOADS: AtomicU64 = AtomicU64::new(0);

impl Reapi {
    fn cas(
        &self,
        connection: &Connection,
    ) -> re::content_addressable_storage_client::ContentAddressableStorageClient<tonic::transport::Channel> {
        re::content_addressable_storage_client::ContentAddressableStorageClient::new(connection.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    }

    fn bytestream(
        &self,
        connection: &Connection,
    ) -> bs::byte_stream_client::ByteStreamClient<tonic::transport::Channel> {
        bs::byte_stream_client::ByteStreamClient::new(connection.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    }

    /// `blobs/HASH/SIZE` (with the function's name where it is not SHA-256).
    fn blob_name(&self, connection: &Connection, digest: &re::Digest) -> String {
        let function = match connection.function {
            DigestFunction::Sha256 => "",
            DigestFunction::Blake3 => "blake3/",
        };
        format!("blobs/{function}{}/{}", digest.hash, digest.size_bytes)
    }

    fn resource(&self, path: String) -> String {
        match self.settings.instance.as_str() {
            "" => path,
            instance => format!("{instance}/{path}"),
        }
    }

    /// Uploads whatever of `blobs` the service lacks.
    pub(super) async fn upload(&self, connection: &Connection, blobs: Blobs) -> Result<(), RemoteFailure> {
        let mut cas = self.cas(connection);
        let digests: Vec<re::Digest> = blobs.0.values().map(|(d, _)| d.clone()).collect();
        let mut missing = Vec::new();
        for chunk in digests.chunks(2000) {
            let request = re::FindMissingBlobsRequest {
                instance_name: self.instance(),
                blob_digests: chunk.to_vec(),
                digest_function: connection.function.proto(),
            };
            let response = self
                .bounded(super::CALL_TIMEOUT, cas.find_missing_blobs(self.request(request)))
                .await
                .map_err(|s| self.failure(s))?;
            missing.extend(response.into_inner().missing_blob_digests);
        }
        // Small blobs in batches, large ones alone; PARALLEL transfers at once.
        let mut batches: Vec<Vec<re::Digest>> = vec![Vec::new()];
        let mut batch_size = 0;
        let mut large = Vec::new();
        for digest in missing {
            let size = digest.size_bytes as usize;
            if size + OVERHEAD > connection.max_batch {
                large.push(digest);
                continue;
            }
            if batch_size + size + OVERHEAD > connection.max_batch {
                batches.push(Vec::new());
                batch_size = 0;
            }
            batch_size += size + 128;
            batches.last_mut().expect("one batch at least").push(digest);
        }
        let blobs = &blobs;
        let writes = batches.into_iter().filter(|b| !b.is_empty()).map(|batch| async move {
            let mut requests = Vec::with_capacity(batch.len());
            for digest in batch {
                let Some((_, blob)) = blobs.0.get(&digest.hash) else { continue };
                requests.push(re::batch_update_blobs_request::Request {
                    digest: Some(digest),
                    data: blob.read()?,
                    compressor: 0,
                });
            }
            self.write_batch(connection, &mut self.cas(connection), requests).await
        });
        futures::stream::iter(writes).buffer_unordered(PARALLEL).try_collect::<Vec<()>>().await?;
        let streams = large.into_iter().map(|digest| async move {
            let Some((_, blob)) = blobs.0.get(&digest.hash) else { return Ok(()) };
            self.write_stream(connection, &digest, blob).await
        });
        futures::stream::iter(streams).buffer_unordered(PARALLEL).try_collect::<Vec<()>>().await?;
        Ok(())
    }

    async fn write_batch(
        &self,
        connection: &Connection,
        cas: &mut re::content_addressable_storage_client::ContentAddressableStorageClient<tonic::transport::Channel>,
        requests: Vec<re::batch_update_blobs_request::Request>,
    ) -> Result<(), RemoteFailure> {
        if requests.is_empty() {
            return Ok(());
        }
        let request = re::BatchUpdateBlobsRequest {
            instance_name: self.instance(),
            requests,
            digest_function: connection.function.proto(),
        };
        let response = self
            .bounded(super::CALL_TIMEOUT, cas.batch_update_blobs(self.request(request)))
            .await
            .map_err(|s| self.failure(s))?;
        for blob in response.into_inner().responses {
            if let Some(status) = blob.status.filter(|s| s.code != 0) {
                let hash = blob.digest.map(|d| d.hash).unwrap_or_default();
                return Err(RemoteFailure::Rejected(format!(
                    "{} refused blob {hash}: {} (code {})",
                    self.label, status.message, status.code
                )));
            }
        }
        Ok(())
    }

    async fn write_stream(
        &self,
        connection: &Connection,
        digest: &re::Digest,
        blob: &Blob,
    ) -> Result<(), RemoteFailure> {
        let n = UPLOADS.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        let uuid = format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            (nanos >> 32) as u32,
            (nanos >> 16) as u16,
            n & 0xfff,
            std::process::id() & 0xfff,
            nanos as u64 & 0xffff_ffff_ffff
        );
        let resource = self.resource(format!("uploads/{uuid}/{}", self.blob_name(connection, digest)));
        let total = digest.size_bytes.max(0) as u64;
        // Chunks are read as they are sent: a large file is never whole in
        // memory. A file that changed since it was hashed makes a short or
        // long write, which the service refuses.
        let source: Box<dyn std::io::Read + Send> = match blob {
            Blob::Bytes(bytes) => Box::new(std::io::Cursor::new(bytes.clone())),
            Blob::File(path) => Box::new(
                std::fs::File::open(path)
                    .map_err(|e| RemoteFailure::Rejected(format!("cannot read `{}`: {e}", path.display())))?,
            ),
        };
        let chunks = total.div_ceil(CHUNK as u64).max(1);
        let requests = futures::stream::iter(WriteChunks { source, resource, next: 0, chunks, total });
        let mut client = self.bytestream(connection);
        let limit = super::transfer_timeout(digest.size_bytes);
        let request = self.request_with_timeout(requests, limit);
        let response = self.bounded(limit, client.write(request)).await.map_err(|s| self.failure(s))?.into_inner();
        if response.committed_size != total as i64 && response.committed_size != -1 {
            return Err(RemoteFailure::Rejected(format!(
                "{} committed {} of {total} bytes of blob {}",
                self.label, response.committed_size, digest.hash
            )));
        }
        Ok(())
    }

    /// Reads `digests`, each checked against its digest.
    pub(super) async fn download(
        &self,
        connection: &Connection,
        digests: Vec<re::Digest>,
    ) -> Result<HashMap<String, Vec<u8>>, ReadError> {
        let mut out = HashMap::new();
        let mut batches: Vec<Vec<re::Digest>> = vec![Vec::new()];
        let mut batch_size = 0;
        let mut large = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for digest in digests {
            if !seen.insert(digest.hash.clone()) {
                continue;
            }
            if digest.size_bytes < 0 {
                return Err(ReadError::Corrupt(digest));
            }
            let size = digest.size_bytes as usize;
            if size == 0 {
                self.verify(connection, &digest, Vec::new(), &mut out)?;
            } else if size + OVERHEAD > connection.max_batch {
                large.push(digest);
            } else {
                if batch_size + size + OVERHEAD > connection.max_batch {
                    batches.push(Vec::new());
                    batch_size = 0;
                }
                batch_size += size + 128;
                batches.last_mut().expect("one batch at least").push(digest);
            }
        }
        let reads = batches.into_iter().filter(|b| !b.is_empty()).map(|batch| async move {
            let mut got = HashMap::new();
            self.read_batch(connection, &mut self.cas(connection), batch, &mut got).await?;
            Ok::<_, ReadError>(got)
        });
        let mut reads = futures::stream::iter(reads).buffer_unordered(PARALLEL);
        while let Some(got) = reads.next().await {
            out.extend(got?);
        }
        let streams = large.into_iter().map(|digest| async move {
            let bytes = self.read_stream(connection, &digest).await?;
            Ok::<_, ReadError>((digest, bytes))
        });
        let mut streams = futures::stream::iter(streams).buffer_unordered(PARALLEL);
        while let Some(read) = streams.next().await {
            let (digest, bytes) = read?;
            self.verify(connection, &digest, bytes, &mut out)?;
        }
        Ok(out)
    }

    fn verify(
        &self,
        connection: &Connection,
        digest: &re::Digest,
        bytes: Vec<u8>,
        out: &mut HashMap<String, Vec<u8>>,
    ) -> Result<(), ReadError> {
        if connection.function.digest(&bytes) != *digest {
            return Err(ReadError::Corrupt(digest.clone()));
        }
        out.insert(digest.hash.clone(), bytes);
        Ok(())
    }

    async fn read_batch(
        &self,
        connection: &Connection,
        cas: &mut re::content_addressable_storage_client::ContentAddressableStorageClient<tonic::transport::Channel>,
        digests: Vec<re::Digest>,
        out: &mut HashMap<String, Vec<u8>>,
    ) -> Result<(), ReadError> {
        if digests.is_empty() {
            return Ok(());
        }
        let request = re::BatchReadBlobsRequest {
            instance_name: self.instance(),
            digests: digests.clone(),
            acceptable_compressors: vec![],
            digest_function: connection.function.proto(),
        };
        let response = self
            .bounded(super::CALL_TIMEOUT, cas.batch_read_blobs(self.request(request)))
            .await
            .map_err(|s| self.failure(s))?;
        let mut answered = std::collections::HashSet::new();
        for blob in response.into_inner().responses {
            let digest = blob.digest.unwrap_or_default();
            match blob.status.map(|s| (s.code, s.message)) {
                Some((0, _)) | None => {
                    answered.insert(digest.hash.clone());
                    self.verify(connection, &digest, blob.data, out)?;
                }
                Some((5, _)) => return Err(ReadError::Missing(digest)),
                Some((code, message)) => {
                    return Err(ReadError::Call(RemoteFailure::Rejected(format!(
                        "{}: reading blob {}: {message} (code {code})",
                        self.label, digest.hash
                    ))));
                }
            }
        }
        if let Some(digest) = digests.into_iter().find(|d| !answered.contains(&d.hash)) {
            return Err(ReadError::Missing(digest));
        }
        Ok(())
    }

    async fn read_stream(&self, connection: &Connection, digest: &re::Digest) -> Result<Vec<u8>, ReadError> {
        let mut bytes = Vec::with_capacity((digest.size_bytes.max(0) as usize).min(64 << 20));
        self.read_stream_into(connection, digest, &mut bytes).await?;
        Ok(bytes)
    }

    /// Whether a blob of this size travels by ByteStream (and, downloaded,
    /// goes to a file rather than memory).
    pub(super) fn is_large(&self, connection: &Connection, digest: &re::Digest) -> bool {
        digest.size_bytes.max(0) as usize + OVERHEAD > connection.max_batch
    }

    /// Streams a blob into the file `dest`, checked against its digest on
    /// the way; on any failure `dest` is removed.
    pub(super) async fn download_to_file(
        &self,
        connection: &Connection,
        digest: &re::Digest,
        dest: &std::path::Path,
    ) -> Result<(), ReadError> {
        let local =
            |e: std::io::Error| ReadError::Call(RemoteFailure::Rejected(format!("writing `{}`: {e}", dest.display())));
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(local)?;
        }
        let file = std::fs::File::create(dest).map_err(local)?;
        let mut sink = HashingWriter { inner: std::io::BufWriter::new(file), hasher: connection.function.hasher() };
        let read = self.read_stream_into(connection, digest, &mut sink).await;
        let finished = read.and_then(|()| {
            use std::io::Write;
            sink.inner.flush().map_err(local)?;
            if sink.hasher.finalize().to_string() != digest.hash {
                return Err(ReadError::Corrupt(digest.clone()));
            }
            Ok(())
        });
        if finished.is_err() {
            let _ = std::fs::remove_file(dest);
        }
        finished
    }

    async fn read_stream_into(
        &self,
        connection: &Connection,
        digest: &re::Digest,
        sink: &mut (dyn std::io::Write + Send),
    ) -> Result<(), ReadError> {
        let limit = super::transfer_timeout(digest.size_bytes);
        match tokio::time::timeout(limit, self.read_stream_within(connection, digest, limit, sink)).await {
            Ok(read) => read,
            Err(_) => Err(ReadError::Call(RemoteFailure::Unavailable(format!(
                "{}: blob {} did not arrive within {}s",
                self.label,
                digest.hash,
                limit.as_secs()
            )))),
        }
    }

    async fn read_stream_within(
        &self,
        connection: &Connection,
        digest: &re::Digest,
        limit: std::time::Duration,
        sink: &mut (dyn std::io::Write + Send),
    ) -> Result<(), ReadError> {
        let mut client = self.bytestream(connection);
        let request = bs::ReadRequest {
            resource_name: self.resource(self.blob_name(connection, digest)),
            read_offset: 0,
            read_limit: 0,
        };
        let request = self.request_with_timeout(request, limit);
        let mut stream = match client.read(request).await {
            Ok(response) => response.into_inner(),
            Err(status) if status.code() == tonic::Code::NotFound => return Err(ReadError::Missing(digest.clone())),
            Err(status) => return Err(ReadError::Call(self.failure(status))),
        };
        // The size comes from the service: more than it said is corrupt.
        let expected = digest.size_bytes.max(0) as usize;
        let mut received = 0;
        loop {
            match stream.message().await {
                Ok(Some(chunk)) => {
                    received += chunk.data.len();
                    if received > expected {
                        return Err(ReadError::Corrupt(digest.clone()));
                    }
                    sink.write_all(&chunk.data).map_err(|e| {
                        ReadError::Call(RemoteFailure::Rejected(format!("writing blob {}: {e}", digest.hash)))
                    })?;
                }
                Ok(None) => break,
                Err(status) if status.code() == tonic::Code::NotFound => {
                    return Err(ReadError::Missing(digest.clone()));
                }
                Err(status) => return Err(ReadError::Call(self.failure(status))),
            }
        }
        Ok(())
    }
}

/// The requests of one ByteStream write, read from the source as they go.
struct WriteChunks {
    source: Box<dyn std::io::Read + Send>,
    resource: String,
    next: u64,
    chunks: u64,
    total: u64,
}

impl Iterator for WriteChunks {
    type Item = bs::WriteRequest;

    fn next(&mut self) -> Option<bs::WriteRequest> {
        if self.next == self.chunks {
            return None;
        }
        let offset = self.next * CHUNK as u64;
        self.next += 1;
        let mut data = vec![0u8; (self.total - offset).min(CHUNK as u64) as usize];
        if self.source.read_exact(&mut data).is_err() {
            data.clear();
        }
        Some(bs::WriteRequest {
            resource_name: if offset == 0 { std::mem::take(&mut self.resource) } else { String::new() },
            write_offset: offset as i64,
            finish_write: self.next == self.chunks,
            data,
        })
    }
}

/// Hashes what passes through.
struct HashingWriter<W> {
    inner: W,
    hasher: gourd_digest::Hasher,
}

impl<W: std::io::Write> std::io::Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
