//! Tracked sources (`gourd add`): raw data put under gourd's control, as
//! `dvc add` does. Their content goes into the cache (and, with `gourd push`,
//! the remote cache); `gourd.sources.json`, committed to git, records each
//! one's digest, so a fresh clone gets the data back with `gourd pull` (or
//! the next `gourd run`), and commands that only read history work without
//! it.
//!
//! Each source is filed in the cache as a result of its own, under a key
//! derived from its path and digest, so it travels through every remote
//! exactly as stage results do and `gourd gc` keeps it.

use std::collections::BTreeMap;
use std::path::Path;

use gourd_core::path::WsPath;
use gourd_core::remote::RemoteCache;
use gourd_core::store::{ActionResult, OutputRecord};
use gourd_core::workspace::Workspace;
use gourd_digest::{Digest, EntryKind};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::CommandError;

/// The file, at the workspace root.
pub const FILE: &str = "gourd.sources.json";
const FORMAT: u32 = 1;

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sources {
    pub gourd_sources: u32,
    #[serde(default)]
    pub sources: BTreeMap<String, Source>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// `file` or `dir`.
    pub kind: String,
    /// The content digest (a folder's is gourd's folder digest, docs/keys.md).
    pub digest: String,
    /// Bytes in all.
    pub size: u64,
    /// Where the cache files it.
    pub key: String,
    /// Where it came from, when it was imported (a URL, a repository).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

/// The sources recorded in `ROOT/gourd.sources.json` (none when it does
/// not exist).
pub fn read(root: &Path) -> Result<Sources, CommandError> {
    let file = root.join(FILE);
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Sources { gourd_sources: FORMAT, sources: BTreeMap::new() });
        }
        Err(err) => return Err(CommandError::environment(format!("reading `{}`: {err}", file.display()))),
    };
    let sources: Sources = serde_json::from_str(&text)
        .map_err(|e| CommandError::user(format!("`{}` is not a sources file: {e}", file.display())))?;
    if sources.gourd_sources != FORMAT {
        return Err(CommandError::user(format!(
            "`{}` has format {}; this gourd reads format {FORMAT}",
            file.display(),
            sources.gourd_sources
        )));
    }
    for path in sources.sources.keys() {
        WsPath::new(path).map_err(|e| CommandError::user(format!("`{}`: source `{path}`: {e}", file.display())))?;
    }
    Ok(sources)
}

/// The tracked paths, or none when the file cannot be read (callers that
/// must not fail on it: the ignore block, the missing-dep check).
pub fn paths(root: &Path) -> Vec<WsPath> {
    read(root).map(|s| s.sources.keys().filter_map(|p| WsPath::new(p).ok()).collect()).unwrap_or_default()
}

fn write(root: &Path, sources: &Sources) -> Result<(), CommandError> {
    let mut text = serde_json::to_string_pretty(sources).expect("serializable");
    text.push('\n');
    gourd_core::fsutil::write_replace(&root.join(FILE), text.as_bytes(), false)?;
    Ok(())
}

/// The cache entry that holds a source.
fn action(ws: &Workspace, path: &WsPath, record: OutputRecord) -> ActionResult {
    let manifest = json!({
        "schema": "gourd-source-v1",
        "path": path.as_str(),
        "kind": kind_name(record.kind),
        "digest": record.digest.to_string(),
    });
    let key = gourd_digest::stage_key(ws.algorithm(), &manifest);
    let now = gourd_core::time::rfc3339(std::time::SystemTime::now());
    ActionResult {
        key,
        manifest,
        outputs: BTreeMap::from([(path.to_string(), record)]),
        metrics: BTreeMap::new(),
        exit_code: 0,
        started_at: now.clone(),
        finished_at: now,
        duration_ms: 0,
    }
}

fn kind_name(kind: EntryKind) -> &'static str {
    match kind {
        EntryKind::File => "file",
        EntryKind::Dir => "dir",
    }
}

/// Refuses `path` as a tracked source before anything is written there:
/// the workspace itself, a path through a link out of the workspace, one
/// overlapping a stage's output, gourd's own files, data git tracks; and
/// stops when the sources file cannot be read (it is written last).
pub fn admissible(ws: &Workspace, pipeline: &gourd_core::model::Pipeline, path: &WsPath) -> Result<(), CommandError> {
    if path.is_root() {
        return Err(CommandError::user(
            "`.` is the whole workspace, which holds `.gourd`: add the files or folders of raw data in it",
        ));
    }
    let canonical_root = fs_err::canonicalize(&ws.root)?;
    let real = gourd_core::guard::check_resolving(&canonical_root, path, &[])
        .map_err(|e| CommandError::user(format!("`{path}`: {e}")))?;
    // Every name the data has here: a link on the way, or the path itself a
    // link, gives it another; one leading out of the workspace would put
    // outside files in the cache (and on the remote, at `gourd push`).
    let mut names: Vec<WsPath> = std::iter::once(path.clone()).chain(real).collect();
    let full = canonical_root.join(path.as_str());
    if std::fs::symlink_metadata(&full).is_ok_and(|meta| meta.file_type().is_symlink()) {
        let target = std::fs::canonicalize(&full)
            .map_err(|_| CommandError::user(format!("`{path}` is a symbolic link to nothing")))?;
        let inside = target.strip_prefix(&canonical_root).ok().and_then(|rel| WsPath::new(&rel.to_string_lossy()).ok());
        match inside {
            Some(rel) => names.push(rel),
            None => {
                return Err(CommandError::user(format!(
                    "`{path}` is a symbolic link out of the workspace (to `{}`): add the data itself, inside the workspace",
                    target.display()
                )));
            }
        }
    }
    for name in &names {
        for stage in &pipeline.stages {
            for output in stage.outputs() {
                let (a, b) = (output.path.as_str(), name.as_str());
                let overlap = a == b || b.starts_with(&format!("{a}/")) || a.starts_with(&format!("{b}/"));
                if overlap || name.is_root() {
                    return Err(CommandError::user(format!(
                        "`{path}` overlaps output `{}` of stage `{}`: gourd already keeps outputs; add only raw data",
                        output.path, stage.name
                    )));
                }
            }
        }
    }
    if path.as_str() == FILE || path.as_str() == crate::workspace::PIPELINE_FILE {
        return Err(CommandError::user(format!("`{path}` is gourd's own file; commit it to git instead")));
    }
    // Data git already keeps would be kept twice, and the ignore block
    // would not take it out of git (as DVC refuses it).
    if gourd_lineage::Lineage::open(&ws.root).ok().flatten().is_some_and(|lineage| lineage.tracks(path.as_str())) {
        return Err(CommandError::user(format!("`{path}` is tracked by git"))
            .with_hint(format!("`git rm -r --cached {path}` first, to keep it with gourd instead of git")));
    }
    // The record is written last: one that cannot be read stops the
    // command first, before anything is copied or replaced.
    let sources = read(&ws.root)?;
    if let Some(outer) = sources.sources.keys().find(|p| path.as_str().starts_with(&format!("{p}/"))) {
        return Err(CommandError::user(format!(
            "`{path}` lies inside the source `{outer}`: `gourd add {outer}` again"
        )));
    }
    Ok(())
}

/// Puts `path` under gourd's control: its content into the cache, its
/// digest into `gourd.sources.json`. Returns the source recorded.
pub fn add(
    ws: &Workspace,
    pipeline: &gourd_core::model::Pipeline,
    path: &WsPath,
    origin: Option<String>,
) -> Result<Source, CommandError> {
    admissible(ws, pipeline, path)?;
    let Some(tree) = ws.hash(path)? else {
        return Err(CommandError::user(format!("`{path}` does not exist")));
    };
    ws.store.put(&ws.abs(path), &tree)?;
    let record = OutputRecord::from_tree(&tree, true);
    let result = action(ws, path, record);
    ws.store.put_action(&result)?;
    let source = Source {
        kind: kind_name(tree.kind()).to_string(),
        digest: tree.digest().to_string(),
        size: size_of(&ws.abs(path)),
        key: result.key.to_string(),
        // The file is committed: no password or token goes in.
        origin: origin.map(|origin| public_origin(&origin)),
    };
    let mut sources = read(&ws.root)?;
    // A folder added replaces the sources inside it.
    let inside = format!("{path}/");
    sources.sources.retain(|p, _| !p.starts_with(&inside));
    sources.sources.insert(path.to_string(), source.clone());
    write(&ws.root, &sources)?;
    Ok(source)
}

/// `origin` (a URL, or a repository and path) without what could be a
/// secret: the user and password of a URL (`https://bob:pw@host` reads
/// `https://[redacted]@host`), and the value of a query parameter named like
/// one (`?token=…`, `X-Amz-Signature`).
pub fn public_origin(origin: &str) -> String {
    let out = gourd_remote::without_userinfo(origin);
    let Some((before, query)) = out.split_once('?') else { return out };
    let (query, fragment) = query.split_once('#').map_or((query, None), |(q, f)| (q, Some(f)));
    let secret = |name: &str| {
        let name = name.to_ascii_lowercase();
        ["token", "key", "sig", "secret", "pass", "auth", "credential", "x-amz-"].iter().any(|w| name.contains(w))
    };
    let params: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if secret(name) => format!("{name}=[redacted]"),
            _ => pair.to_string(),
        })
        .collect();
    let mut public = format!("{before}?{}", params.join("&"));
    if let Some(fragment) = fragment {
        public.push('#');
        public.push_str(fragment);
    }
    public
}

/// The bytes under `path`, links followed, as hashing and the cache take
/// them (not the length of a link's own text).
fn size_of(path: &Path) -> u64 {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::read_dir(path)
            .map(|entries| entries.filter_map(Result::ok).map(|e| size_of(&e.path())).sum())
            .unwrap_or(0),
        Ok(meta) => meta.len(),
        Err(_) => 0,
    }
}

/// The sources whose data here differs from what `gourd.sources.json`
/// records (another commit's data after a `git checkout`, or an edit not
/// added yet), with a line saying what to do. A missing one is not listed:
/// `gourd run` restores it.
pub fn differing(ws: &Workspace) -> Vec<String> {
    let Ok(sources) = read(&ws.root) else { return Vec::new() };
    sources
        .sources
        .iter()
        .filter_map(|(path, source)| {
            let ws_path = WsPath::new(path).ok()?;
            let tree = ws.hash(&ws_path).ok()??;
            (tree.digest().to_string() != source.digest).then(|| {
                format!(
                    "source `{path}` differs from what `{FILE}` records (another commit's data, or an edit): \
                     `gourd add {path}` records it; or delete it, and `gourd run` brings back the recorded one"
                )
            })
        })
        .collect()
}

/// The cache keys of every source: what `push` sends and `gc` keeps. A
/// sources file that cannot be read is said, and its keys kept all the same
/// (see [`keys_in`]).
pub fn keys(root: &Path) -> Vec<Digest> {
    let file = root.join(FILE);
    let Ok(bytes) = std::fs::read(&file) else { return Vec::new() };
    let text = String::from_utf8_lossy(&bytes);
    if read(root).is_err() {
        eprintln!(
            "warning: `{}` cannot be read as a sources file (a merge conflict?); keeping every key it names",
            file.display()
        );
    }
    keys_in(&text)
}

/// The cache keys a sources file's `text` records. Text that is not a
/// sources file this gourd reads (a merge conflict's markers, a newer
/// format) keeps every key-shaped word in it: raw data is what nothing can
/// build again, so what is kept for it is never less than the file names.
pub fn keys_in(text: &str) -> Vec<Digest> {
    match serde_json::from_str::<Sources>(text) {
        Ok(sources) if sources.gourd_sources == FORMAT => {
            sources.sources.values().filter_map(|s| s.key.parse().ok()).collect()
        }
        _ => text.split(|c: char| !c.is_ascii_hexdigit()).filter_map(|word| word.parse().ok()).collect(),
    }
}

/// Brings back every source missing from the workspace, from the cache or
/// else from `remote`. Returns the paths restored; a source found nowhere is
/// reported, not an error (the stage that needs it says so).
pub async fn restore_missing(
    ws: &Workspace,
    remote: Option<&dyn RemoteCache>,
) -> Result<(Vec<String>, Vec<String>), CommandError> {
    let sources = read(&ws.root)?;
    let canonical_root = fs_err::canonicalize(&ws.root)?;
    let (mut restored, mut unavailable) = (Vec::new(), Vec::new());
    for (path, source) in &sources.sources {
        let ws_path = WsPath::new(path).map_err(|e| CommandError::user(e.to_string()))?;
        if std::fs::symlink_metadata(ws.abs(&ws_path)).is_ok() {
            continue;
        }
        // The sources file comes with the repository: a path it names is
        // written only where an output could be (never into `.git`,
        // `.gourd` or through a link out of the workspace).
        gourd_core::guard::check(&canonical_root, &ws_path, &[])
            .map_err(|e| CommandError::user(format!("`{FILE}`: source `{path}`: {e}")))?;
        let Ok(key) = source.key.parse::<Digest>() else { continue };
        let mut action = ws.store.action(&key);
        if action.is_none() {
            if let Some(remote) = remote {
                if let Ok(Some(fetched)) = remote.fetch(key, &ws.store).await {
                    ws.store.put_action(&fetched)?;
                    action = Some(fetched);
                }
            }
        }
        let record = action.and_then(|a| a.outputs.get(path).cloned());
        match record {
            Some(record) if record.digest.to_string() == source.digest => {
                match ws.store.restore(&record, &ws.abs(&ws_path)) {
                    Ok(()) => restored.push(path.clone()),
                    Err(_) => unavailable.push(path.clone()),
                }
            }
            _ => unavailable.push(path.clone()),
        }
    }
    Ok((restored, unavailable))
}

#[cfg(test)]
mod tests {
    use super::public_origin;

    #[test]
    fn origins_keep_no_secret() {
        assert_eq!(
            public_origin("http://alice:s3cr3t@127.0.0.1:18777/f.txt"),
            "http://[redacted]@127.0.0.1:18777/f.txt"
        );
        assert_eq!(
            public_origin("http://bob:ghp_TOKEN123@host/src.git@cecfdea:data/f.txt"),
            "http://[redacted]@host/src.git@cecfdea:data/f.txt"
        );
        assert_eq!(
            public_origin("https://b.s3.amazonaws.com/m.bin?X-Amz-Signature=abc&X-Amz-Credential=k&v=2#top"),
            "https://b.s3.amazonaws.com/m.bin?X-Amz-Signature=[redacted]&X-Amz-Credential=[redacted]&v=2#top"
        );
        assert_eq!(public_origin("https://h/f?token=T&raw=true"), "https://h/f?token=[redacted]&raw=true");
        // A repository and path with no URL secret stay as they are.
        assert_eq!(public_origin("../repo@0a1b:data/x.csv"), "../repo@0a1b:data/x.csv");
        assert_eq!(public_origin("git@github.com:me/repo.git@0a1b:x"), "git@github.com:me/repo.git@0a1b:x");
    }
}
