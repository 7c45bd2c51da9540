//! The service's action cache as gourd's remote cache.
//!
//! A stage result is filed under a gourd action: the command `gourd
//! stage-key KEY` with an empty input root. Its outputs are the stage's
//! cached outs (files, and folders as `Tree`s) and `.gourd/result.json`,
//! gourd's own record of the result. On the way back every blob is checked
//! against the service's digest, then against the digest gourd recorded.

use std::collections::HashMap;

use bazel_remote_apis::build::bazel::remote::execution::v2 as re;
use gourd_core::remote::{BoxFuture, RemoteCache, RemoteFailure};
use gourd_core::store::{ActionResult, Store};
use gourd_digest::{Digest, EntryKind, Hasher, TreeEntry};
use prost::Message;

use super::cas::{Blobs, MAX_MESSAGE};
use super::{Connection, DigestFunction, Reapi};

/// Where gourd's record of the result travels among the outputs.
const RESULT_PATH: &str = ".gourd/result.json";

/// The digest (SHA-256 hash, size) of the action a stage result with `key`
/// is filed under, on a service that speaks SHA-256.
pub fn stage_key_action(key: &Digest) -> (String, i64) {
    let digest = Reapi::key_action(DigestFunction::Sha256, key, &mut Blobs::default());
    (digest.hash, digest.size_bytes)
}

impl Reapi {
    fn action_cache(
        &self,
        connection: &Connection,
    ) -> re::action_cache_client::ActionCacheClient<tonic::transport::Channel> {
        re::action_cache_client::ActionCacheClient::new(connection.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    }

    /// The action a stage result is filed under.
    fn key_action(function: DigestFunction, key: &Digest, blobs: &mut Blobs) -> re::Digest {
        let command =
            re::Command { arguments: vec!["gourd".into(), "stage-key".into(), key.to_string()], ..Default::default() };
        let action = re::Action {
            command_digest: Some(blobs.message(function, &command)),
            input_root_digest: Some(blobs.message(function, &re::Directory::default())),
            salt: b"gourd stage-key v1".to_vec(),
            ..Default::default()
        };
        blobs.message(function, &action)
    }

    async fn fetch_result(&self, key: Digest, store: &Store) -> Result<Option<ActionResult>, RemoteFailure> {
        let connection = self.connection().await?;
        let action_digest = Reapi::key_action(connection.function, &key, &mut Blobs::default());
        let request = re::GetActionResultRequest {
            instance_name: self.instance(),
            action_digest: Some(action_digest),
            inline_stdout: false,
            inline_stderr: false,
            inline_output_files: vec![RESULT_PATH.into()],
            digest_function: connection.function.proto(),
        };
        let result = match self
            .bounded(super::CALL_TIMEOUT, self.action_cache(connection).get_action_result(self.request(request)))
            .await
        {
            Ok(response) => response.into_inner(),
            Err(status) if status.code() == tonic::Code::NotFound => return Ok(None),
            Err(status) => return Err(self.failure(status)),
        };
        let rejected =
            |what: String| RemoteFailure::Rejected(format!("the result for {key} in {}: {what}", self.label));
        let Some(record) = result.output_files.iter().find(|f| f.path == RESULT_PATH) else {
            return Err(rejected(format!("no `{RESULT_PATH}` (not written by gourd)")));
        };
        let digest = record.digest.clone().unwrap_or_default();
        let bytes = if record.contents.is_empty() || connection.function.digest(&record.contents) != digest {
            let mut blobs =
                self.download(connection, vec![digest.clone()]).await.map_err(|e| e.into_failure(&self.label))?;
            blobs.remove(&digest.hash).unwrap_or_default()
        } else {
            record.contents.clone()
        };
        let action: ActionResult =
            serde_json::from_slice(&bytes).map_err(|e| rejected(format!("`{RESULT_PATH}` is not valid: {e}")))?;
        if action.key != key {
            return Err(rejected("it is for another key".into()));
        }

        // Files first, in one batched read; then folders, tree by tree.
        let mut files = Vec::new();
        for (path, output) in action.outputs.iter().filter(|(_, o)| o.cached && o.kind == EntryKind::File) {
            if store.object_path(&output.digest).exists() {
                continue;
            }
            let file = result.output_files.iter().find(|f| &f.path == path);
            let Some(digest) = file.and_then(|f| f.digest.clone()) else {
                return Err(rejected(format!("out `{path}` is missing")));
            };
            files.push((output.digest, digest));
        }
        let (large, small): (Vec<_>, Vec<_>) = files.into_iter().partition(|(_, d)| self.is_large(connection, d));
        let blobs = self
            .download(connection, small.iter().map(|(_, d)| d.clone()).collect())
            .await
            .map_err(|e| e.into_failure(&self.label))?;
        for (ours, theirs) in &small {
            store
                .put_object_bytes(ours, &blobs[&theirs.hash])
                .map_err(|_| rejected(format!("blob {} does not match the recorded digest {ours}", theirs.hash)))?;
        }
        for (ours, theirs) in &large {
            if self.receive_into_store(connection, theirs, store).await? != *ours {
                return Err(rejected(format!("blob {} does not match the recorded digest {ours}", theirs.hash)));
            }
        }
        for (path, output) in action.outputs.iter().filter(|(_, o)| o.cached && o.kind == EntryKind::Dir) {
            let directory = result.output_directories.iter().find(|d| &d.path == path);
            let Some(digest) = directory.and_then(|d| d.tree_digest.clone()) else {
                return Err(rejected(format!("out `{path}` is missing")));
            };
            let tree = self.read_tree(connection, digest).await?;
            let ours = self.tree_into_store(connection, &tree, store).await?;
            if ours != output.digest {
                return Err(rejected(format!("folder `{path}` does not match the recorded digest")));
            }
        }
        Ok(Some(action))
    }

    /// Reads and decodes a `Tree` message.
    pub(super) async fn read_tree(
        &self,
        connection: &Connection,
        digest: re::Digest,
    ) -> Result<re::Tree, RemoteFailure> {
        let mut blobs =
            self.download(connection, vec![digest.clone()]).await.map_err(|e| e.into_failure(&self.label))?;
        let bytes = blobs.remove(&digest.hash).unwrap_or_default();
        re::Tree::decode(bytes.as_slice())
            .map_err(|e| RemoteFailure::Rejected(format!("tree {} from {} is not valid: {e}", digest.hash, self.label)))
    }

    /// Puts the folder a `Tree` describes into the store; returns its digest
    /// there.
    async fn tree_into_store(
        &self,
        connection: &Connection,
        tree: &re::Tree,
        store: &Store,
    ) -> Result<Digest, RemoteFailure> {
        let index = TreeIndex::new(connection.function, tree)?;
        let digests = index.all_files().map(|f| f.digest.clone().unwrap_or_default());
        let (large, small): (Vec<_>, Vec<_>) = digests.partition(|d| self.is_large(connection, d));
        let blobs = self.download(connection, small).await.map_err(|e| e.into_failure(&self.label))?;
        let mut received = HashMap::new();
        for digest in large {
            if !received.contains_key(&digest.hash) {
                let ours = self.receive_into_store(connection, &digest, store).await?;
                received.insert(digest.hash.clone(), ours);
            }
        }
        let root = tree.root.as_ref().ok_or_else(|| RemoteFailure::Rejected("a tree without a root".into()))?;
        build_store_tree(root, &index, &blobs, &received, store, 0)
    }

    /// Streams a large blob into the store (never whole in memory); returns
    /// its digest there.
    async fn receive_into_store(
        &self,
        connection: &Connection,
        digest: &re::Digest,
        store: &Store,
    ) -> Result<Digest, RemoteFailure> {
        let tmp = store.receiving_path();
        self.download_to_file(connection, digest, &tmp).await.map_err(|e| e.into_failure(&self.label))?;
        store.adopt_object(&tmp).map_err(|e| RemoteFailure::Rejected(format!("storing blob {}: {e}", digest.hash)))
    }

    async fn publish_result(&self, action: &ActionResult, store: &Store) -> Result<(), RemoteFailure> {
        let connection = self.connection().await?;
        if !connection.can_update {
            return Err(RemoteFailure::Rejected(format!("{} takes no results from clients (read only)", self.label)));
        }
        let function = connection.function;
        let mut blobs = Blobs::default();
        let mut result = re::ActionResult::default();
        let local = |e: std::io::Error| RemoteFailure::Rejected(format!("reading the local cache: {e}"));
        for (path, output) in action.outputs.iter().filter(|(_, o)| o.cached) {
            match output.kind {
                EntryKind::File => {
                    let object = store.object_path(&output.digest);
                    let meta = std::fs::metadata(&object).map_err(local)?;
                    let digest = self.file_digests.digest(function, &object, &meta).map_err(local)?;
                    blobs.file(digest.clone(), object);
                    result.output_files.push(re::OutputFile {
                        path: path.clone(),
                        digest: Some(digest),
                        is_executable: output.executable,
                        ..Default::default()
                    });
                }
                EntryKind::Dir => {
                    let mut children = Vec::new();
                    let root = store_tree_to_directory(function, &output.digest, store, &mut blobs, &mut children)?;
                    let tree = re::Tree { root: Some(root), children };
                    result.output_directories.push(re::OutputDirectory {
                        path: path.clone(),
                        tree_digest: Some(blobs.message(function, &tree)),
                        ..Default::default()
                    });
                }
            }
        }
        let record = serde_json::to_vec_pretty(action).map_err(|e| RemoteFailure::Rejected(e.to_string()))?;
        result.output_files.push(re::OutputFile {
            path: RESULT_PATH.into(),
            digest: Some(blobs.bytes(function, record)),
            ..Default::default()
        });
        result.output_files.sort_by(|a, b| a.path.cmp(&b.path));
        let action_digest = Reapi::key_action(function, &action.key, &mut blobs);
        // Blobs first, then the result that names them.
        self.upload(connection, blobs).await?;
        let request = re::UpdateActionResultRequest {
            instance_name: self.instance(),
            action_digest: Some(action_digest),
            action_result: Some(result),
            results_cache_policy: None,
            digest_function: function.proto(),
        };
        self.bounded(super::CALL_TIMEOUT, self.action_cache(connection).update_action_result(self.request(request)))
            .await
            .map_err(|s| self.failure(s))?;
        Ok(())
    }
}

impl RemoteCache for Reapi {
    fn describe(&self) -> String {
        self.label.clone()
    }

    fn fetch<'a>(
        &'a self,
        key: Digest,
        store: &'a Store,
    ) -> BoxFuture<'a, Result<Option<ActionResult>, RemoteFailure>> {
        Box::pin(self.fetch_result(key, store))
    }

    fn publish<'a>(&'a self, action: &'a ActionResult, store: &'a Store) -> BoxFuture<'a, Result<(), RemoteFailure>> {
        Box::pin(self.publish_result(action, store))
    }
}

/// The directories of a `Tree`, by digest.
pub(super) struct TreeIndex<'a> {
    root: Option<&'a re::Directory>,
    children: HashMap<String, &'a re::Directory>,
    /// Entries left to visit: a tree that names one folder many times
    /// would otherwise expand without end.
    budget: std::cell::Cell<usize>,
}

/// Limits on a tree from a service: entries in all, and nesting.
const MAX_TREE_ENTRIES: usize = 10_000_000;
const MAX_TREE_DEPTH: usize = 256;

impl<'a> TreeIndex<'a> {
    pub(super) fn new(function: DigestFunction, tree: &'a re::Tree) -> Result<TreeIndex<'a>, RemoteFailure> {
        let children = tree.children.iter().map(|d| (function.digest(&d.encode_to_vec()).hash, d)).collect();
        let index = TreeIndex { root: tree.root.as_ref(), children, budget: std::cell::Cell::new(MAX_TREE_ENTRIES) };
        for directory in index.root.into_iter().chain(index.children.values().copied()) {
            if let Some(link) = directory.symlinks.first() {
                return Err(RemoteFailure::Rejected(format!(
                    "the service sent a symbolic link `{}`, which gourd does not take from a service",
                    link.name
                )));
            }
            for name in directory.files.iter().map(|f| &f.name).chain(directory.directories.iter().map(|d| &d.name)) {
                check_name(name)?;
            }
        }
        Ok(index)
    }

    /// The folder `node` names, `depth` levels below the root.
    pub(super) fn child(&self, node: &re::DirectoryNode, depth: usize) -> Result<&'a re::Directory, RemoteFailure> {
        let hash = node.digest.as_ref().map(|d| d.hash.as_str()).unwrap_or_default();
        let child = self
            .children
            .get(hash)
            .copied()
            .ok_or_else(|| RemoteFailure::Rejected(format!("tree: folder `{}` ({hash}) is missing", node.name)))?;
        let size = 1 + child.files.len() + child.directories.len();
        if depth > MAX_TREE_DEPTH || size > self.budget.get() {
            return Err(RemoteFailure::Rejected("tree: too deep or too large".to_string()));
        }
        self.budget.set(self.budget.get() - size);
        Ok(child)
    }

    pub(super) fn all_files(&self) -> impl Iterator<Item = &'a re::FileNode> + '_ {
        self.root.into_iter().chain(self.children.values().copied()).flat_map(|d| d.files.iter())
    }
}

/// A name inside a folder: one plain component, nothing that climbs out.
pub(super) fn check_name(name: &str) -> Result<(), RemoteFailure> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(RemoteFailure::Rejected(format!("the service sent an invalid file name `{name}`")));
    }
    Ok(())
}

fn build_store_tree(
    directory: &re::Directory,
    index: &TreeIndex<'_>,
    blobs: &HashMap<String, Vec<u8>>,
    received: &HashMap<String, Digest>,
    store: &Store,
    depth: usize,
) -> Result<Digest, RemoteFailure> {
    let corrupt = |e: gourd_core::store::StoreError| RemoteFailure::Rejected(e.to_string());
    let mut entries = Vec::new();
    for file in &directory.files {
        let hash = file.digest.as_ref().map(|d| d.hash.as_str()).unwrap_or_default();
        // Large files are in the store already; small ones are in memory.
        let digest = match received.get(hash) {
            Some(digest) => *digest,
            None => {
                let bytes = blobs.get(hash).map(Vec::as_slice).unwrap_or_default();
                let digest = Hasher::digest_bytes(store.algorithm(), bytes);
                store.put_object_bytes(&digest, bytes).map_err(corrupt)?;
                digest
            }
        };
        // A private file travels with its mode (see `store_tree_to_directory`).
        let mode = file.node_properties.as_ref().and_then(|p| p.unix_mode.as_ref()).map(|m| m.value);
        entries.push(TreeEntry {
            name: file.name.clone(),
            kind: EntryKind::File,
            executable: file.is_executable,
            private: mode.is_some_and(gourd_digest::is_private_mode),
            digest,
        });
    }
    for node in &directory.directories {
        let digest = build_store_tree(index.child(node, depth + 1)?, index, blobs, received, store, depth + 1)?;
        entries.push(TreeEntry {
            name: node.name.clone(),
            kind: EntryKind::Dir,
            executable: false,
            private: false,
            digest,
        });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    let digest = gourd_digest::tree_digest(store.algorithm(), &entries);
    let bytes = serde_json::to_vec(&entries).map_err(|e| RemoteFailure::Rejected(e.to_string()))?;
    store.put_tree_bytes(&digest, &bytes).map_err(corrupt)?;
    Ok(digest)
}

/// A stored folder as a `Directory`, with every folder under it added to
/// `children` and every file to `blobs`.
fn store_tree_to_directory(
    function: DigestFunction,
    digest: &Digest,
    store: &Store,
    blobs: &mut Blobs,
    children: &mut Vec<re::Directory>,
) -> Result<re::Directory, RemoteFailure> {
    let local = |e: String| RemoteFailure::Rejected(format!("reading the local cache: {e}"));
    let entries = store.tree_entries(digest).map_err(|e| local(e.to_string()))?;
    let mut directory = re::Directory::default();
    for entry in entries {
        match entry.kind {
            EntryKind::File => {
                let object = store.object_path(&entry.digest);
                let file_digest = function.digest_file(&object).map_err(|e| local(e.to_string()))?;
                blobs.file(file_digest.clone(), object);
                // Whether a file is private is part of its folder's digest,
                // so it must survive the trip: as a mode, only when private.
                let node_properties = entry.private.then(|| re::NodeProperties {
                    unix_mode: Some(bazel_remote_apis::google::protobuf::UInt32Value {
                        value: if entry.executable { 0o700 } else { 0o600 },
                    }),
                    ..Default::default()
                });
                directory.files.push(re::FileNode {
                    name: entry.name,
                    digest: Some(file_digest),
                    is_executable: entry.executable,
                    node_properties,
                });
            }
            EntryKind::Dir => {
                let child = store_tree_to_directory(function, &entry.digest, store, blobs, children)?;
                let child_digest = blobs.message(function, &child);
                children.push(child);
                directory.directories.push(re::DirectoryNode { name: entry.name, digest: Some(child_digest) });
            }
        }
    }
    Ok(directory)
}
