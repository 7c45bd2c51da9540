//! Executing a stage on the service.
//!
//! The stage becomes an `Action`:
//!
//! - the input root holds the stage's deps at their workspace paths, and its
//!   parameters at `.gourd/params.json`;
//! - the `Command` runs the stage's command through `/bin/sh` from the input
//!   root (after `cd WDIR`), with the stage's `env`, `GOURD_STAGE`,
//!   `GOURD_EXECUTOR`, and `GOURD_PARAMS`/`GOURD_WORKSPACE` pointing into the
//!   input root; its output paths are the stage's outs and metrics;
//! - the platform is the remote record's `platform` plus the stage's
//!   resources: `cpu_count` when it takes more than one CPU, `gpu_count` when
//!   it needs GPUs;
//! - the action's timeout is the stage's `timeout`; an `always_run` stage is
//!   not cached by the service.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use bazel_remote_apis::build::bazel::remote::execution::v2 as re;
use bazel_remote_apis::google::longrunning::operation;
use gourd_core::model::{Command, Stage};
use gourd_core::remote::{BoxFuture, RemoteExecution, RemoteExecutor, RemoteExit, RemoteFailure};
use prost::Message;

use super::cache::{TreeIndex, check_name};
use super::cas::{Blobs, MAX_MESSAGE, ReadError};
use super::{Connection, DigestFunction, FileDigests, Reapi};

/// How much later than gourd's own wait the execution calls' gRPC deadline is.
const GRPC_DEADLINE_MARGIN: Duration = Duration::from_secs(5);

/// The platform properties of `stage`'s action.
pub fn platform_properties(stage: &Stage, base: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut properties = base.clone();
    if stage.resources.cpus > 1 {
        properties.insert("cpu_count".into(), stage.resources.cpus.to_string());
    }
    if stage.resources.gpus > 0 {
        properties.insert("gpu_count".into(), stage.resources.gpus.to_string());
    }
    properties
}

/// A folder of the input root being assembled.
#[derive(Default)]
struct Folder {
    files: BTreeMap<String, (re::Digest, bool)>,
    folders: BTreeMap<String, Folder>,
}

impl Folder {
    fn folder(&mut self, rel: &str) -> &mut Folder {
        let mut current = self;
        for name in rel.split('/').filter(|n| !n.is_empty() && *n != ".") {
            current = current.folders.entry(name.to_string()).or_default();
        }
        current
    }

    /// Adds the file or folder at `root/rel`.
    fn add(
        &mut self,
        function: DigestFunction,
        root: &Path,
        rel: &str,
        blobs: &mut Blobs,
        memo: &FileDigests,
        above: &mut Vec<(u64, u64)>,
    ) -> io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        let path = if rel.is_empty() || rel == "." { root.to_path_buf() } else { root.join(rel) };
        let meta = std::fs::metadata(&path)?;
        if meta.is_dir() {
            // A symbolic link back to a folder above would never end.
            let id = (meta.dev(), meta.ino());
            if above.contains(&id) {
                return Err(io::Error::other(format!("`{rel}` links back to a folder above it")));
            }
            above.push(id);
            self.folder(rel);
            for entry in std::fs::read_dir(&path)? {
                let name = entry?.file_name().to_string_lossy().into_owned();
                // The workspace root as a dep: not gourd's own state, not git's.
                if (rel.is_empty() || rel == ".") && (name == ".gourd" || name == ".git") {
                    continue;
                }
                let child = if rel.is_empty() || rel == "." { name } else { format!("{rel}/{name}") };
                self.add(function, root, &child, blobs, memo, above)?;
            }
            above.pop();
        } else {
            let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
            let digest = memo.digest(function, &path, &meta)?;
            blobs.file(digest.clone(), path);
            self.folder(parent).files.insert(name.to_string(), (digest, meta.permissions().mode() & 0o111 != 0));
        }
        Ok(())
    }

    fn add_bytes(&mut self, function: DigestFunction, rel: &str, bytes: Vec<u8>, blobs: &mut Blobs) {
        let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        let digest = blobs.bytes(function, bytes);
        self.folder(parent).files.insert(name.to_string(), (digest, false));
    }

    /// Uploads nothing; returns the folder's digest with every `Directory`
    /// added to `blobs`.
    fn finish(self, function: DigestFunction, blobs: &mut Blobs) -> re::Digest {
        let mut directory = re::Directory::default();
        for (name, (digest, is_executable)) in self.files {
            directory.files.push(re::FileNode { name, digest: Some(digest), is_executable, node_properties: None });
        }
        for (name, folder) in self.folders {
            let digest = folder.finish(function, blobs);
            directory.directories.push(re::DirectoryNode { name, digest: Some(digest) });
        }
        blobs.message(function, &directory)
    }
}

/// Quotes `s` for `sh`.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl Reapi {
    /// The action for `stage`, with every blob it needs. Reads and hashes the
    /// deps: run it off the scheduler's thread.
    fn prepare(
        function: DigestFunction,
        stage: &Stage,
        root_dir: &Path,
        params: Vec<u8>,
        env: BTreeMap<String, String>,
        base_platform: &BTreeMap<String, String>,
        memo: &FileDigests,
    ) -> Result<(re::Digest, Blobs), RemoteFailure> {
        let mut blobs = Blobs::default();
        let mut root = Folder::default();
        for dep in &stage.deps {
            root.add(function, root_dir, dep.as_str(), &mut blobs, memo, &mut Vec::new())
                .map_err(|e| RemoteFailure::Rejected(format!("stage `{}`: reading dep `{dep}`: {e}", stage.name)))?;
        }
        root.add_bytes(function, ".gourd/params.json", params, &mut blobs);
        root.folder(stage.wdir.as_str());
        let input_root = root.finish(function, &mut blobs);

        let argv: Vec<String> = match &stage.cmd {
            Command::Shell(script) => vec!["sh".into(), "-c".into(), script.clone()],
            Command::Argv(argv) => argv.clone(),
            Command::Step { name, .. } => {
                return Err(RemoteFailure::Rejected(format!("the built-in step `{name}` cannot run remotely")));
            }
        };
        let mut prelude = String::from(
            "GOURD_WORKSPACE=\"$PWD\" GOURD_PARAMS=\"$PWD/.gourd/params.json\"; export GOURD_WORKSPACE GOURD_PARAMS; ",
        );
        if !stage.wdir.is_root() {
            prelude.push_str(&format!("cd {} || exit 1; ", quote(stage.wdir.as_str())));
        }
        prelude.push_str("exec \"$@\"");
        let mut arguments = vec!["/bin/sh".to_string(), "-c".into(), prelude, "sh".into()];
        arguments.extend(argv);

        let env = {
            let mut all = stage.param_env();
            all.extend(stage.env.clone());
            all.extend(env);
            all
        };
        let mut outputs: Vec<String> = stage.outputs().map(|o| o.path.to_string()).collect();
        outputs.sort();
        outputs.dedup();
        let platform = re::Platform {
            properties: platform_properties(stage, base_platform)
                .into_iter()
                .map(|(name, value)| re::platform::Property { name, value })
                .collect(),
        };
        // The platform goes on the action (v2.2) and, for older services,
        // on the command too.
        #[allow(deprecated)]
        let command = re::Command {
            arguments,
            environment_variables: env
                .into_iter()
                .map(|(name, value)| re::command::EnvironmentVariable { name, value })
                .collect(),
            output_paths: outputs,
            // A file the stage left private (0600) comes back so.
            output_node_properties: vec!["unix_mode".to_string()],
            platform: Some(platform.clone()),
            ..Default::default()
        };
        let action = re::Action {
            command_digest: Some(blobs.message(function, &command)),
            input_root_digest: Some(input_root),
            timeout: stage.timeout.map(|t| bazel_remote_apis::google::protobuf::Duration {
                seconds: t.as_secs() as i64,
                nanos: t.subsec_nanos() as i32,
            }),
            do_not_cache: stage.always_run,
            platform: Some(platform),
            ..Default::default()
        };
        let digest = blobs.message(function, &action);
        Ok((digest, blobs))
    }

    /// `Execute`, then waits for the operation to finish, within the
    /// deadline. `None`: `cancel` fired, and the operation was cancelled.
    async fn execute_action(
        &self,
        connection: &Connection,
        action: &re::Digest,
        skip_cache: bool,
        deadline: Duration,
        cancel: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Result<Option<re::ExecuteResponse>, RemoteFailure> {
        let mut client = re::execution_client::ExecutionClient::new(connection.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        let request = re::ExecuteRequest {
            instance_name: self.instance(),
            skip_cache_lookup: skip_cache,
            action_digest: Some(action.clone()),
            digest_function: connection.function.proto(),
            ..Default::default()
        };
        let name = std::sync::Mutex::new(String::new());
        // gourd's own timer below decides when the wait is over (and cancels
        // the operation); the calls' gRPC deadline is only a backstop, later,
        // so that the outcome and its message do not depend on which of the
        // two fires first.
        let backstop = deadline + GRPC_DEADLINE_MARGIN;
        let wait = async {
            let mut resumed = 0;
            let mut stream = client
                .execute(self.request_with_timeout(request, backstop))
                .await
                .map_err(|s| self.failure(s))?
                .into_inner();
            loop {
                let dropped = match stream.message().await {
                    Ok(Some(operation)) => {
                        *name.lock().expect("not poisoned") = operation.name.clone();
                        if operation.done {
                            return self.decode_operation(operation);
                        }
                        resumed = 0;
                        continue;
                    }
                    Ok(None) => None,
                    Err(status) if status.code() == tonic::Code::Unavailable => Some(status),
                    Err(status) => return Err(self.failure(status)),
                };
                // The stream ended or dropped (a proxy, a restart, a server's
                // keep-alive limit): pick the operation up again, a few
                // times in a row at most.
                let known = name.lock().expect("not poisoned").clone();
                if known.is_empty() || resumed == 3 {
                    return Err(match dropped {
                        Some(status) => self.failure(status),
                        None => RemoteFailure::Unavailable(format!("{}: the execution stream ended", self.label)),
                    });
                }
                resumed += 1;
                tokio::time::sleep(Duration::from_millis(500)).await;
                let wait = re::WaitExecutionRequest { name: known };
                stream = client
                    .wait_execution(self.request_with_timeout(wait, backstop))
                    .await
                    .map_err(|s| self.failure(s))?
                    .into_inner();
            }
        };
        tokio::select! {
            result = tokio::time::timeout(deadline, wait) => match result {
                Ok(result) => result.map(Some),
                Err(_) => {
                    self.cancel_operation(connection, &name).await;
                    // Slow, not down: this stage runs here, others may still go.
                    Err(RemoteFailure::Rejected(format!(
                        "{}: no result within {}s (the remote record's `timeout`)",
                        self.label,
                        deadline.as_secs_f64()
                    )))
                }
            },
            () = stopped(cancel) => {
                self.cancel_operation(connection, &name).await;
                Ok(None)
            }
        }
    }

    /// Stops the work on the service too (best effort: not every service
    /// offers the Operations API).
    async fn cancel_operation(&self, connection: &Connection, name: &std::sync::Mutex<String>) {
        let name = name.lock().expect("not poisoned").clone();
        if name.is_empty() {
            return;
        }
        let mut operations = bazel_remote_apis::google::longrunning::operations_client::OperationsClient::new(
            connection.channel.clone(),
        );
        let request = bazel_remote_apis::google::longrunning::CancelOperationRequest { name };
        let _ = tokio::time::timeout(Duration::from_secs(5), operations.cancel_operation(self.request(request))).await;
    }

    fn decode_operation(
        &self,
        operation: bazel_remote_apis::google::longrunning::Operation,
    ) -> Result<re::ExecuteResponse, RemoteFailure> {
        match operation.result {
            Some(operation::Result::Response(any)) => re::ExecuteResponse::decode(any.value.as_slice()).map_err(|e| {
                RemoteFailure::Rejected(format!("{}: an execute response that does not parse: {e}", self.label))
            }),
            Some(operation::Result::Error(status)) => Err(RemoteFailure::Rejected(format!(
                "{}: {} ({:?})",
                self.label,
                status.message,
                tonic::Code::from_i32(status.code)
            ))),
            None => Err(RemoteFailure::Rejected(format!("{}: an operation finished without a result", self.label))),
        }
    }

    /// Builds the action (off the scheduler's thread) and uploads what the
    /// service lacks of it.
    async fn prepare_and_upload(
        &self,
        connection: &Connection,
        request: &RemoteExecution<'_>,
    ) -> Result<re::Digest, RemoteFailure> {
        let function = connection.function;
        let (stage, root) = (request.stage.clone(), request.root.to_path_buf());
        let (params, env) = (request.params.to_vec(), request.env.clone());
        let (platform, memo) = (self.settings.platform.clone(), self.file_digests.clone());
        let (action, blobs) =
            tokio::task::spawn_blocking(move || Reapi::prepare(function, &stage, &root, params, env, &platform, &memo))
                .await
                .map_err(|e| RemoteFailure::Rejected(format!("preparing the action: {e}")))??;
        self.upload(connection, blobs).await?;
        Ok(action)
    }

    async fn run_remotely(&self, request: RemoteExecution<'_>) -> Result<RemoteExit, RemoteFailure> {
        // An action's environment is part of its digest and of what the
        // service caches and shows, so a secret has no safe way there.
        if request.stage.has_secrets() {
            return Err(RemoteFailure::Rejected(
                "the stage takes secrets, which are never sent to a remote".to_string(),
            ));
        }
        let connection = self.connection().await?;
        if !connection.can_execute {
            return Err(RemoteFailure::Rejected(format!("{} does not execute actions (a cache only)", self.label)));
        }
        let mut cancel = request.cancel.clone();
        let interrupted =
            || RemoteExit { exit_code: -1, worker: None, cached: false, failure: Some("interrupted".to_string()) };
        let mut action = tokio::select! {
            action = self.prepare_and_upload(connection, &request) => action?,
            () = stopped(&mut cancel) => return Ok(interrupted()),
        };
        // Queueing included, and never less than the stage's own timeout.
        let deadline = match request.stage.timeout {
            Some(limit) => self.settings.timeout.max(limit + Duration::from_secs(60)),
            None => self.settings.timeout,
        };
        let mut skip_cache = request.skip_cache;
        let mut preface = String::new();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let Some(response) = self.execute_action(connection, &action, skip_cache, deadline, &mut cancel).await?
            else {
                return Ok(interrupted());
            };
            if let Some(status) = response.status.as_ref().filter(|s| s.code != 0) {
                let code = tonic::Code::from_i32(status.code);
                match code {
                    tonic::Code::DeadlineExceeded => {
                        let limit = request.stage.timeout.map(|t| format!(" after {}s", t.as_secs_f64()));
                        write_log(&request.log, &action, &response, &preface, connection, self).await;
                        return Ok(RemoteExit {
                            exit_code: -1,
                            worker: worker(&response),
                            cached: false,
                            failure: Some(format!("timed out{} on the worker", limit.unwrap_or_default())),
                        });
                    }
                    // An input went missing between upload and execution
                    // (evicted): upload again, once.
                    tonic::Code::FailedPrecondition if attempts == 1 => {
                        action = tokio::select! {
                            action = self.prepare_and_upload(connection, &request) => action?,
                            () = stopped(&mut cancel) => return Ok(interrupted()),
                        };
                        continue;
                    }
                    // About this action only: other stages may still go.
                    _ => {
                        return Err(RemoteFailure::Rejected(format!("{}: {} ({code:?})", self.label, status.message)));
                    }
                }
            }
            let Some(result) = response.result.clone() else {
                return Err(RemoteFailure::Rejected(format!("{}: an execute response without a result", self.label)));
            };
            write_log(&request.log, &action, &response, &preface, connection, self).await;
            let exit = RemoteExit {
                exit_code: result.exit_code,
                worker: worker(&response),
                cached: response.cached_result,
                failure: None,
            };
            if result.exit_code != 0 {
                return Ok(exit);
            }
            let written = tokio::select! {
                written = self.write_outputs(connection, &result, &request) => written,
                () = stopped(&mut cancel) => return Ok(interrupted()),
            };
            match written {
                Ok(()) => return Ok(exit),
                // A cached result whose outputs were evicted: execute afresh.
                Err(ReadError::Missing(digest)) if response.cached_result && !skip_cache => {
                    preface = format!(
                        "[gourd] the service's cached result names blob {}/{}, which it no longer has (evicted?): executing again\n",
                        digest.hash, digest.size_bytes
                    );
                    skip_cache = true;
                }
                Err(err) => return Err(err.into_failure(&self.label)),
            }
        }
    }

    /// Downloads the outputs of `result` into the workspace.
    async fn write_outputs(
        &self,
        connection: &Connection,
        result: &re::ActionResult,
        request: &RemoteExecution<'_>,
    ) -> Result<(), ReadError> {
        let declared: Vec<String> = request.stage.outputs().map(|o| o.path.to_string()).collect();
        let check = |path: &str| -> Result<(), ReadError> {
            if !declared.iter().any(|d| d == path) {
                return Err(ReadError::Call(RemoteFailure::Rejected(format!(
                    "{}: the result has `{path}`, which the stage does not declare",
                    self.label
                ))));
            }
            Ok(())
        };
        let reject = |what: String| ReadError::Call(RemoteFailure::Rejected(format!("{}: {what}", self.label)));
        // Older services report symlinks in the (deprecated) split fields.
        #[allow(deprecated)]
        let mut links =
            result.output_symlinks.iter().chain(&result.output_file_symlinks).chain(&result.output_directory_symlinks);
        if let Some(link) = links.next() {
            return Err(reject(format!(
                "out `{}` is a symbolic link, which gourd does not take from a service",
                link.path
            )));
        }
        let mut trees = Vec::new();
        for directory in &result.output_directories {
            check(&directory.path)?;
            let digest = directory.tree_digest.clone().unwrap_or_default();
            let bytes = self.download(connection, vec![digest.clone()]).await?.remove(&digest.hash).unwrap_or_default();
            let tree = re::Tree::decode(bytes.as_slice()).map_err(|e| {
                ReadError::Call(RemoteFailure::Rejected(format!(
                    "{}: tree {} does not parse: {e}",
                    self.label, digest.hash
                )))
            })?;
            trees.push((directory.path.clone(), tree));
        }
        let mut digests: Vec<re::Digest> = Vec::new();
        for file in &result.output_files {
            check(&file.path)?;
            digests.push(file.digest.clone().unwrap_or_default());
        }
        let mut indexes = Vec::new();
        for (path, tree) in &trees {
            if tree.root.is_none() {
                return Err(reject(format!("the tree of `{path}` has no root")));
            }
            let index = TreeIndex::new(connection.function, tree)?;
            digests.extend(index.all_files().map(|f| f.digest.clone().unwrap_or_default()));
            indexes.push((path, tree, index));
        }
        // Small blobs come in batches, into memory; large ones stream to
        // files in a scratch folder, never whole in memory.
        let (large, small): (Vec<_>, Vec<_>) = digests.into_iter().partition(|d| self.is_large(connection, d));
        let scratch = request.root.join(".gourd").join(format!("remote-{}", std::process::id()));
        let written = async {
            let mut sources = Sources { blobs: self.download(connection, small).await?, files: HashMap::new() };
            for digest in large {
                if !sources.files.contains_key(&digest.hash) {
                    let dest = scratch.join(&digest.hash);
                    self.download_to_file(connection, &digest, &dest).await?;
                    sources.files.insert(digest.hash.clone(), dest);
                }
            }
            let io = |e: io::Error| ReadError::Call(RemoteFailure::Rejected(format!("writing outputs: {e}")));
            // Nothing from an earlier attempt (or a persisted out) mixes in.
            for out in &declared {
                gourd_core::fsutil::remove_path(&request.root.join(out)).map_err(io)?;
            }
            for file in &result.output_files {
                let hash = file.digest.as_ref().map(|d| d.hash.as_str()).unwrap_or_default();
                let private = private_on_worker(file.node_properties.as_ref());
                write_file(&request.root.join(&file.path), &sources, hash, file.is_executable, private).map_err(io)?;
            }
            for (path, tree, index) in indexes {
                let Some(root) = tree.root.as_ref() else { continue };
                write_folder(&request.root.join(path), root, &index, &sources, 0).map_err(|e| match e {
                    WriteError::Io(e) => io(e),
                    WriteError::Remote(f) => ReadError::Call(f),
                })?;
            }
            Ok(())
        }
        .await;
        let _ = gourd_core::fsutil::remove_path(&scratch);
        written
    }
}

/// Resolves once `cancel` turns `true` (never, if its sender is gone).
async fn stopped(cancel: &mut tokio::sync::watch::Receiver<bool>) {
    if cancel.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn worker(response: &re::ExecuteResponse) -> Option<String> {
    let worker = response.result.as_ref()?.execution_metadata.as_ref()?.worker.clone();
    (!worker.is_empty()).then_some(worker)
}

/// Writes the command's stdout and stderr (and the service's message) to
/// the stage's log. What cannot be fetched is noted, not fatal.
async fn write_log(
    log: &Path,
    action: &re::Digest,
    response: &re::ExecuteResponse,
    preface: &str,
    connection: &Connection,
    reapi: &Reapi,
) {
    let mut text = preface.as_bytes().to_vec();
    let worker = worker(response).map(|w| format!(" on {w}")).unwrap_or_default();
    let cached = if response.cached_result { " (from the service's cache)" } else { "" };
    let (hash, size, label) = (&action.hash, action.size_bytes, &reapi.label);
    text.extend_from_slice(
        format!("[gourd] action {hash}/{size} executed remotely by {label}{worker}{cached}\n").as_bytes(),
    );
    if !response.message.is_empty() {
        text.extend_from_slice(format!("[gourd] {}\n", response.message).as_bytes());
    }
    if let Some(result) = &response.result {
        for (raw, digest) in [(&result.stdout_raw, &result.stdout_digest), (&result.stderr_raw, &result.stderr_digest)]
        {
            if !raw.is_empty() {
                text.extend_from_slice(raw);
            } else if let Some(digest) = digest.clone().filter(|d| d.size_bytes > 0) {
                match reapi.download(connection, vec![digest.clone()]).await {
                    Ok(mut blobs) => text.extend(blobs.remove(&digest.hash).unwrap_or_default()),
                    Err(_) => text.extend_from_slice(b"[gourd] (output not available)\n"),
                }
            }
        }
    }
    if let Some(parent) = log.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let _ = std::fs::write(log, text);
}

/// Where the bytes of downloaded blobs are, by hash.
struct Sources {
    blobs: HashMap<String, Vec<u8>>,
    files: HashMap<String, std::path::PathBuf>,
}

/// Whether an output file the service describes was private on the worker
/// (its `unix_mode` node property, when the service gives it).
fn private_on_worker(properties: Option<&re::NodeProperties>) -> bool {
    properties.and_then(|p| p.unix_mode.as_ref()).is_some_and(|mode| gourd_digest::is_private_mode(mode.value))
}

fn write_file(path: &Path, sources: &Sources, hash: &str, executable: bool, private: bool) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_file_name(format!(
        ".{}.gourd-tmp-{}",
        path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        std::process::id()
    ));
    match (sources.blobs.get(hash), sources.files.get(hash)) {
        (Some(bytes), _) => std::fs::write(&tmp, bytes)?,
        (None, Some(file)) => {
            std::fs::copy(file, &tmp)?;
        }
        (None, None) => return Err(io::Error::other(format!("blob {hash} was not downloaded"))),
    }
    let mode = match (executable, private) {
        (true, true) => 0o700,
        (true, false) => 0o755,
        (false, true) => 0o600,
        (false, false) => 0o644,
    };
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
    std::fs::rename(&tmp, path)
}

enum WriteError {
    Io(io::Error),
    Remote(RemoteFailure),
}

fn write_folder(
    path: &Path,
    directory: &re::Directory,
    index: &TreeIndex<'_>,
    sources: &Sources,
    depth: usize,
) -> Result<(), WriteError> {
    std::fs::create_dir_all(path).map_err(WriteError::Io)?;
    for file in &directory.files {
        check_name(&file.name).map_err(WriteError::Remote)?;
        let hash = file.digest.as_ref().map(|d| d.hash.as_str()).unwrap_or_default();
        let private = private_on_worker(file.node_properties.as_ref());
        write_file(&path.join(&file.name), sources, hash, file.is_executable, private).map_err(WriteError::Io)?;
    }
    for node in &directory.directories {
        check_name(&node.name).map_err(WriteError::Remote)?;
        let child = index.child(node, depth + 1).map_err(WriteError::Remote)?;
        write_folder(&path.join(&node.name), child, index, sources, depth + 1)?;
    }
    Ok(())
}

impl RemoteExecutor for Reapi {
    fn describe(&self) -> String {
        self.label.clone()
    }

    fn execute<'a>(&'a self, request: RemoteExecution<'a>) -> BoxFuture<'a, Result<RemoteExit, RemoteFailure>> {
        Box::pin(self.run_remotely(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(cpus: u32, gpus: u32) -> Stage {
        Stage {
            name: "train".into(),
            cmd: Command::Shell("true".into()),
            deps: vec![],
            outs: vec![],
            metrics: vec![],
            params: serde_json::json!({}),
            env: BTreeMap::new(),
            secrets: vec![],
            executor: gourd_core::model::Executor::Local,
            resources: gourd_core::model::Resources { cpus, gpus },
            wdir: gourd_core::path::WsPath::root(),
            always_run: false,
            frozen: false,
            cpu_fallback: false,
            remote: true,
            timeout: None,
            desc: None,
        }
    }

    #[test]
    fn resources_become_platform_properties() {
        let base = BTreeMap::from([("OSFamily".to_string(), "linux".to_string())]);
        assert_eq!(platform_properties(&stage(1, 0), &base), base, "defaults add nothing");
        let properties = platform_properties(&stage(4, 2), &base);
        assert_eq!(properties["cpu_count"], "4");
        assert_eq!(properties["gpu_count"], "2");
        assert_eq!(properties["OSFamily"], "linux");
        // The stage's own needs win over the record's.
        let base = BTreeMap::from([("gpu_count".to_string(), "0".to_string())]);
        assert_eq!(platform_properties(&stage(1, 1), &base)["gpu_count"], "1");
    }

    #[test]
    fn names_from_the_service_cannot_climb_out() {
        for bad in ["", ".", "..", "a/b", "x\0"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name("model.bin").is_ok());
    }

    #[test]
    fn the_endpoints_user_and_password_are_never_said() {
        let settings = crate::reapi::ReapiSettings {
            endpoint: "grpc://bob:PWLEAK77@127.0.0.1:1".into(),
            instance: "main".into(),
            timeout: Duration::from_secs(5),
            platform: BTreeMap::new(),
            headers: vec![],
        };
        let reapi = Reapi::new(settings).unwrap();
        assert_eq!(RemoteExecutor::describe(&reapi), "grpc://[redacted]@127.0.0.1:1 (instance `main`)");
        assert_eq!(
            gourd_core::remote::RemoteCache::describe(&reapi),
            "grpc://[redacted]@127.0.0.1:1 (instance `main`)"
        );
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        match runtime.block_on(reapi.connection()) {
            Err(RemoteFailure::Unavailable(message)) => {
                assert!(message.contains("cannot connect") && !message.contains("PWLEAK77"), "{message}")
            }
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("nothing listens on port 1"),
        }
    }

    #[test]
    fn a_stage_with_secrets_is_refused_before_anything_is_sent() {
        let settings = crate::reapi::ReapiSettings {
            endpoint: "grpc://127.0.0.1:1".into(),
            instance: String::new(),
            timeout: Duration::from_secs(5),
            platform: BTreeMap::new(),
            headers: vec![],
        };
        let reapi = Reapi::new(settings).unwrap();
        let mut with_secret = stage(1, 0);
        with_secret.secrets = vec!["HF_TOKEN".into()];
        let (_stop, cancel) = tokio::sync::watch::channel(false);
        let request = RemoteExecution {
            stage: &with_secret,
            root: std::path::Path::new("/nonexistent"),
            params: b"{}",
            env: BTreeMap::new(),
            log: "/nonexistent/train.log".into(),
            skip_cache: false,
            cancel,
        };
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        // Not `Unavailable`: no connection to the (absent) service was tried.
        match runtime.block_on(reapi.execute(request)) {
            Err(RemoteFailure::Rejected(message)) => assert!(message.contains("secrets"), "{message}"),
            other => panic!("{:?}", other.map(|exit| exit.exit_code)),
        }
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
    }
}
