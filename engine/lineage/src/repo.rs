//! Reading and writing the lineage ref.

use std::collections::BTreeMap;
use std::path::Path;

use git2::{ErrorCode, ObjectType, Oid, Repository, Signature, StatusOptions, Tree};

use crate::{LINEAGE_REF, Record, RunInfo};

#[derive(Debug, thiserror::Error)]
pub enum LineageError {
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    #[error("lineage record `{path}` in commit {commit} is not valid: {message}")]
    BadRecord { commit: String, path: String, message: String },
    #[error("`{0}` is not a revision of this repository")]
    UnknownRevision(String),
    #[error("the lineage ref kept moving; gave up after {0} attempts")]
    Contended(usize),
}

/// What [`Lineage::integrate`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Integration {
    /// There was no local lineage; it is now the other one.
    Created,
    UpToDate,
    FastForward,
    Merged,
}

/// One commit of the lineage ref.
#[derive(Debug, Clone)]
pub struct LineageCommit {
    pub id: String,
    pub run: Option<RunInfo>,
    /// The records this run wrote.
    pub records: Vec<Record>,
}

pub struct Lineage {
    repo: Repository,
    /// The workspace's path inside the repository, `""` at the root, else
    /// ending with `/`.
    prefix: String,
}

const ATTEMPTS: usize = 20;

/// From this many records on, a run's lineage objects are written as one
/// pack rather than a loose file each.
const PACK_FROM: usize = 64;

impl Lineage {
    /// Opens the repository holding `workspace`; `None` outside any.
    pub fn open(workspace: &Path) -> Result<Option<Lineage>, LineageError> {
        let repo = match Repository::discover(workspace) {
            Ok(repo) => repo,
            Err(err) if err.code() == ErrorCode::NotFound => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        let Some(workdir) = repo.workdir() else { return Ok(None) };
        let workdir = workdir.canonicalize().unwrap_or_else(|_| workdir.to_path_buf());
        let workspace = workspace.canonicalize().unwrap_or_else(|_| workspace.to_path_buf());
        let prefix = match workspace.strip_prefix(&workdir) {
            Ok(rel) if rel.as_os_str().is_empty() => String::new(),
            Ok(rel) => format!("{}/", rel.display()),
            Err(_) => String::new(),
        };
        Ok(Some(Lineage { repo, prefix }))
    }

    /// The folders git keeps the repository holding `workspace` in (its git
    /// folder, and the common one of a linked worktree), canonical. Where
    /// the workspace's `.git` is a folder, that is all there is and git is
    /// not asked; otherwise (`git init --separate-git-dir`, a worktree, a
    /// submodule) they can lie anywhere, in the workspace under another
    /// name too.
    pub fn git_dirs(workspace: &Path) -> Vec<std::path::PathBuf> {
        let dot_git = workspace.join(".git");
        match std::fs::symlink_metadata(&dot_git) {
            Ok(meta) if meta.is_dir() => return vec![dot_git.canonicalize().unwrap_or(dot_git)],
            // A workspace in a subfolder of its repository: the repository's
            // folder is above it, where no output can be.
            Err(_) => return Vec::new(),
            // A `.git` file (`gitdir: …`): git knows where it leads.
            Ok(_) => {}
        }
        let Ok(repo) = Repository::discover(workspace) else { return Vec::new() };
        let mut dirs: Vec<_> = [repo.path(), repo.commondir()]
            .into_iter()
            .map(|dir| dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf()))
            .collect();
        dirs.dedup();
        dirs
    }

    /// HEAD's commit (`None` before the first commit) and whether the working
    /// tree differs from it (untracked files count; ignored ones do not).
    /// gourd's own block in a `.gitignore` (between [`GITIGNORE_BEGIN`] and
    /// [`GITIGNORE_END`]) does not count: it follows the pipeline, which does.
    pub fn workspace_state(&self) -> Result<(Option<String>, bool), LineageError> {
        let head_commit = self.repo.head().ok().and_then(|head| head.peel_to_commit().ok());
        let head = head_commit.as_ref().map(|c| c.id().to_string());
        let workdir = self.repo.workdir().map(Path::to_path_buf).unwrap_or_default();
        let changed = |path: &str| self.changed_beyond_block(head_commit.as_ref(), &workdir, path);
        // Tracked files first: the index against HEAD and the work tree.
        if self.tracked_changes_with(&changed)? {
            return Ok((head, true));
        }
        // Then untracked files. git matches each one against every ignore
        // pattern, and gourd's block lists every output: 10,000 outputs
        // made that 10,000 x 10,000 matches (a second at the end of each
        // run). So the work tree is walked here, and a path listed in a
        // block is known ignored by one lookup. Where a later rule could
        // take a listed path back (a `!` line after a block, or below it),
        // git decides.
        let mut scan = Untracked::new(&self.repo)?;
        let dirty = match scan.any_in(&workdir, "", false, &changed) {
            Ok(dirty) => dirty,
            Err(Undecided::Negation) => {
                let mut options = StatusOptions::new();
                options.include_untracked(true).include_ignored(false).exclude_submodules(true);
                let statuses = self.repo.statuses(Some(&mut options))?;
                statuses.iter().any(|entry| entry.path().map_or(true, changed))
            }
            Err(Undecided::Git(err)) => return Err(err.into()),
        };
        Ok((head, dirty))
    }

    /// Whether a tracked file differs from HEAD, in the index or the work
    /// tree (untracked files do not count; a `.gitignore` that differs only
    /// in gourd's block does not either).
    pub fn tracked_changes(&self) -> Result<bool, LineageError> {
        let head_commit = self.repo.head().ok().and_then(|head| head.peel_to_commit().ok());
        let workdir = self.repo.workdir().map(Path::to_path_buf).unwrap_or_default();
        let changed = |path: &str| self.changed_beyond_block(head_commit.as_ref(), &workdir, path);
        Ok(self.tracked_changes_with(&changed)?)
    }

    /// Whether the change git sees at `path` counts: any change does, but
    /// that of a `.gitignore` differing from `head` only in gourd's block.
    fn changed_beyond_block(&self, head: Option<&git2::Commit<'_>>, workdir: &Path, path: &str) -> bool {
        if !(path == ".gitignore" || path.ends_with("/.gitignore")) {
            return true;
        }
        let committed = head
            .and_then(|c| c.tree().ok())
            .and_then(|t| t.get_path(Path::new(path)).ok())
            .and_then(|e| self.repo.find_blob(e.id()).ok())
            .map(|b| String::from_utf8_lossy(b.content()).into_owned())
            .unwrap_or_default();
        let Some(now) = read_regular(&workdir.join(path)) else { return true };
        without_gourd_block(&now) != without_gourd_block(&committed)
    }

    fn tracked_changes_with(&self, changed: &dyn Fn(&str) -> bool) -> Result<bool, git2::Error> {
        let mut options = StatusOptions::new();
        options.include_untracked(false).include_ignored(false).exclude_submodules(true);
        let statuses = self.repo.statuses(Some(&mut options))?;
        Ok(statuses.iter().any(|entry| entry.path().map_or(true, changed)))
    }

    /// Whether git tracks `path` (a file of the workspace), or files inside
    /// it (a folder): it is in the index.
    pub fn tracks(&self, path: &str) -> bool {
        let in_repo = format!("{}{path}", self.prefix);
        let Ok(index) = self.repo.index() else { return false };
        let folder = format!("{in_repo}/");
        index.get_path(Path::new(&in_repo), 0).is_some()
            || index.iter().any(|entry| entry.path.starts_with(folder.as_bytes()))
    }

    /// Those of `paths` (files of the workspace) that git does not track
    /// and does not ignore: inputs that no commit holds.
    pub fn untracked_files<'p>(&self, paths: impl IntoIterator<Item = &'p str>) -> Vec<&'p str> {
        paths
            .into_iter()
            .filter(|path| {
                let in_repo = format!("{}{path}", self.prefix);
                self.repo.status_file(Path::new(&in_repo)).is_ok_and(|status| status.contains(git2::Status::WT_NEW))
            })
            .collect()
    }

    fn stages_dir(&self) -> String {
        format!("{}stages", self.prefix)
    }

    /// Records a run: a new commit on the lineage ref whose tree is the
    /// previous one with `records` replacing those stages' records.
    pub fn record(&self, run: &RunInfo, records: &[Record]) -> Result<String, LineageError> {
        let signature = self.repo.signature().or_else(|_| Signature::now("gourd", "gourd@localhost"))?;
        let message = format!(
            "gourd run: {}\n\nworkspace commit: {}{}\n",
            summarize(&run.stages),
            run.workspace_commit.as_deref().unwrap_or("(none)"),
            if run.workspace_dirty { " (dirty)" } else { "" }
        );
        // Writers serialise on a lock file beside the refs: libgit2's
        // compare-and-swap alone let a racing writer's record be lost, rarely
        // (seen in the racing test). The CAS stays as the second guard.
        let _lock = self.writer_lock()?;
        for _ in 0..ATTEMPTS {
            let parent = match self.repo.refname_to_id(LINEAGE_REF) {
                Ok(id) => Some(self.repo.find_commit(id)?),
                Err(err) if err.code() == ErrorCode::NotFound => None,
                Err(err) => return Err(err.into()),
            };
            let parent_id = parent.as_ref().map(|c| c.id());
            // Many records: one pack rather than a loose object file each
            // (1,000 stages meant 1,000 files). Should the pack fail, the
            // objects are written loose.
            let packed = (records.len() >= PACK_FROM)
                .then(|| self.packed_commit(parent_id, run, records, &signature, &message).ok())
                .flatten();
            let commit = match packed {
                Some(commit) => commit,
                None => self.build_commit(parent_id, run, records, &signature, &message)?.0,
            };
            let moved = match &parent {
                Some(parent) => self.repo.reference_matching(LINEAGE_REF, commit, true, parent.id(), "gourd run"),
                None => self.repo.reference(LINEAGE_REF, commit, false, "gourd run"),
            };
            match moved {
                Ok(_) => return Ok(commit.to_string()),
                // Another run moved the ref first: build on top of it.
                Err(err) if matches!(err.code(), ErrorCode::Modified | ErrorCode::Exists | ErrorCode::Locked) => {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(err) => return Err(err.into()),
            }
        }
        Err(LineageError::Contended(ATTEMPTS))
    }

    /// The commit of a run: `parent`'s tree with `run.json` and `records`
    /// laid over it; with the blobs written for them.
    fn build_commit(
        &self,
        parent: Option<Oid>,
        run: &RunInfo,
        records: &[Record],
        signature: &Signature<'_>,
        message: &str,
    ) -> Result<(Oid, Vec<Oid>), LineageError> {
        let parent = parent.map(|id| self.repo.find_commit(id)).transpose()?;
        let run_blob = self.repo.blob(&json(run))?;
        // Serialised on all cores (a run of thousands of stages records
        // thousands), written in turn (the repository is one handle).
        use rayon::prelude::*;
        let texts: Vec<Vec<u8>> = records.par_iter().map(json).collect();
        let blobs: Vec<(String, Oid)> = records
            .iter()
            .zip(&texts)
            .map(|(r, text)| Ok((format!("{}.json", r.stage), self.repo.blob(text)?)))
            .collect::<Result<_, git2::Error>>()?;
        let base = parent.as_ref().map(|c| c.tree()).transpose()?;
        let mut tree = base.as_ref().map(|t| t.id());
        let run_path = format!("{}run.json", self.prefix);
        tree = Some(self.insert(tree, &split(&run_path), run_blob, git2::FileMode::Blob)?);
        let stages = self.stages_tree(base.as_ref(), &blobs)?;
        tree = Some(self.insert(tree, &split(&self.stages_dir()), stages, git2::FileMode::Tree)?);
        let tree = self.repo.find_tree(tree.expect("at least run.json"))?;
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        let commit = self.repo.commit(None, signature, signature, message, &tree, &parents)?;
        Ok((commit, std::iter::once(run_blob).chain(blobs.into_iter().map(|(_, blob)| blob)).collect()))
    }

    /// [`Lineage::build_commit`] with every new object written as one pack:
    /// the objects are made in memory (libgit2's mempack, on a handle of
    /// its own), then the pack goes in beside the others. Only what the
    /// commit adds goes in (see [`Lineage::new_objects`]): libgit2's own dump
    /// packs the commit's whole tree, every stage's record again each run.
    /// Without deltas (see [`pack_without_deltas`]).
    fn packed_commit(
        &self,
        parent: Option<Oid>,
        run: &RunInfo,
        records: &[Record],
        signature: &Signature<'_>,
        message: &str,
    ) -> Result<Oid, LineageError> {
        let scratch = Lineage { repo: Repository::open(self.repo.path())?, prefix: self.prefix.clone() };
        let odb = scratch.repo.odb()?;
        // New objects go to memory, not to loose files.
        let _memory = odb.add_new_mempack_backend(1000)?;
        let (commit, blobs) = scratch.build_commit(parent, run, records, signature, message)?;
        let disk = self.repo.odb()?;
        let pack = pack_without_deltas(&odb, &scratch.new_objects(commit, &blobs, &disk)?)?;
        let mut writer = disk.packwriter()?;
        std::io::Write::write_all(&mut writer, &pack)
            .map_err(|err| git2::Error::from_str(&format!("writing the lineage pack: {err}")))?;
        writer.commit()?;
        // The pack is new to this handle's object database.
        disk.refresh()?;
        Ok(commit)
    }

    /// The objects of `commit` that `disk` lacks: the commit, the trees
    /// under it not already there, and those of `blobs` (the blobs written
    /// for it) not already there; any other blob came from the parent. A
    /// tree already on disk has all it holds there too, so it is not walked.
    fn new_objects(&self, commit: Oid, blobs: &[Oid], disk: &git2::Odb<'_>) -> Result<Vec<Oid>, git2::Error> {
        let mut new = vec![commit];
        let mut trees = vec![self.repo.find_commit(commit)?.tree_id()];
        while let Some(id) = trees.pop() {
            if disk.exists(id) || new.contains(&id) {
                continue;
            }
            new.push(id);
            let tree = self.repo.find_tree(id)?;
            trees.extend(tree.iter().filter(|e| e.kind() == Some(ObjectType::Tree)).map(|e| e.id()));
        }
        let mut seen = std::collections::HashSet::new();
        new.extend(blobs.iter().filter(|&&blob| seen.insert(blob) && !disk.exists(blob)));
        Ok(new)
    }

    /// Held while a lineage commit is built and the ref moved.
    fn writer_lock(&self) -> Result<std::fs::File, LineageError> {
        let path = self.repo.path().join("gourd-lineage.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .and_then(|file| file.lock().map(|()| file))
            .map_err(|e| LineageError::Git(git2::Error::from_str(&format!("{}: {e}", path.display()))))?;
        Ok(file)
    }

    /// The `stages/` folder of `base` with `blobs` added or replaced, built
    /// with one tree builder: adding records one path at a time rewrote the
    /// whole folder for each, quadratic in the number of stages.
    fn stages_tree(&self, base: Option<&Tree<'_>>, blobs: &[(String, Oid)]) -> Result<Oid, git2::Error> {
        let existing = base
            .and_then(|t| t.get_path(Path::new(&self.stages_dir())).ok())
            .filter(|e| e.kind() == Some(ObjectType::Tree))
            .map(|e| self.repo.find_tree(e.id()))
            .transpose()?;
        let mut builder = self.repo.treebuilder(existing.as_ref())?;
        for (name, blob) in blobs {
            builder.insert(name, *blob, git2::FileMode::Blob.into())?;
        }
        builder.write()
    }

    /// `tree` with `blob` at `path`, creating folders on the way.
    fn insert(&self, tree: Option<Oid>, path: &[&str], blob: Oid, mode: git2::FileMode) -> Result<Oid, git2::Error> {
        let base = tree.map(|id| self.repo.find_tree(id)).transpose()?;
        let mut builder = self.repo.treebuilder(base.as_ref())?;
        match path {
            [name] => {
                builder.insert(name, blob, mode.into())?;
            }
            [dir, rest @ ..] => {
                let existing = base
                    .as_ref()
                    .and_then(|t| t.get_name(dir))
                    .filter(|e| e.kind() == Some(ObjectType::Tree))
                    .map(|e| e.id());
                let sub = self.insert(existing, rest, blob, mode)?;
                builder.insert(dir, sub, git2::FileMode::Tree.into())?;
            }
            [] => unreachable!("a path has at least one component"),
        }
        builder.write()
    }

    fn tip(&self) -> Result<Option<git2::Commit<'_>>, LineageError> {
        match self.repo.refname_to_id(LINEAGE_REF) {
            Ok(id) => Ok(Some(self.repo.find_commit(id)?)),
            Err(err) if err.code() == ErrorCode::NotFound => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    /// The latest record of every stage.
    pub fn latest(&self) -> Result<BTreeMap<String, Record>, LineageError> {
        match self.tip()? {
            Some(commit) => self.records_in(&commit),
            None => Ok(BTreeMap::new()),
        }
    }

    /// The latest record of one stage, read alone (the others' are not).
    pub fn latest_of(&self, stage: &str) -> Result<Option<Record>, LineageError> {
        let Some(commit) = self.tip()? else { return Ok(None) };
        let path = format!("{}/{stage}.json", self.stages_dir());
        let Ok(entry) = commit.tree()?.get_path(Path::new(&path)) else { return Ok(None) };
        self.read_record(commit.id(), &path, entry.id()).map(Some)
    }

    /// The records in force after the lineage commit `id`: the latest record
    /// of every stage at that point, whether or not that run wrote it.
    pub fn records_at(&self, id: &str) -> Result<BTreeMap<String, Record>, LineageError> {
        let commit = self.repo.find_commit(Oid::from_str(id)?)?;
        self.records_in(&commit)
    }

    fn records_in(&self, commit: &git2::Commit<'_>) -> Result<BTreeMap<String, Record>, LineageError> {
        let tree = commit.tree()?;
        let Ok(entry) = tree.get_path(Path::new(&self.stages_dir())) else { return Ok(BTreeMap::new()) };
        let stages = self.repo.find_tree(entry.id())?;
        let mut records = BTreeMap::new();
        for entry in stages.iter() {
            let name = entry.name().unwrap_or_default().to_string();
            let record = self.read_record(commit.id(), &format!("{}/{name}", self.stages_dir()), entry.id())?;
            records.insert(record.stage.clone(), record);
        }
        Ok(records)
    }

    fn read_record(&self, commit: Oid, path: &str, blob: Oid) -> Result<Record, LineageError> {
        let blob = self.repo.find_blob(blob)?;
        serde_json::from_slice(blob.content()).map_err(|e| LineageError::BadRecord {
            commit: commit.to_string(),
            path: path.to_string(),
            message: e.to_string(),
        })
    }

    fn run_info(&self, commit: &git2::Commit<'_>) -> Option<RunInfo> {
        let tree = commit.tree().ok()?;
        let entry = tree.get_path(Path::new(&format!("{}run.json", self.prefix))).ok()?;
        let blob = self.repo.find_blob(entry.id()).ok()?;
        serde_json::from_slice(blob.content()).ok()
    }

    /// Every lineage commit, newest first, with the records its run wrote:
    /// both sides of a merge (`gourd pull` of another clone's runs), each
    /// commit once.
    pub fn history(&self) -> Result<Vec<LineageCommit>, LineageError> {
        let mut out = Vec::new();
        let Some(tip) = self.tip()? else { return Ok(out) };
        let mut walk = self.repo.revwalk()?;
        walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::TIME)?;
        walk.push(tip.id())?;
        for id in walk {
            let commit = self.repo.find_commit(id?)?;
            let run = self.run_info(&commit);
            let all = self.records_in(&commit)?;
            let records = match &run {
                Some(run) => run.stages.iter().filter_map(|s| all.get(s).cloned()).collect(),
                None => all.into_values().collect(),
            };
            out.push(LineageCommit { id: commit.id().to_string(), run, records });
        }
        Ok(out)
    }

    /// The commit a revision names (`HEAD`, a branch, a tag, a hash).
    pub fn resolve(&self, revision: &str) -> Result<String, LineageError> {
        let object =
            self.repo.revparse_single(revision).map_err(|_| LineageError::UnknownRevision(revision.to_string()))?;
        let commit = object.peel_to_commit().map_err(|_| LineageError::UnknownRevision(revision.to_string()))?;
        Ok(commit.id().to_string())
    }

    /// The parents of a commit and its commit time (seconds since the epoch).
    pub fn commit_info(&self, commit: &str) -> Result<(Vec<String>, i64), LineageError> {
        let commit = self.repo.find_commit(Oid::from_str(commit)?)?;
        Ok((commit.parent_ids().map(|id| id.to_string()).collect(), commit.time().seconds()))
    }

    /// The bytes of a workspace file at a revision, or `None` if it is not
    /// in that revision's tree.
    pub fn file_at(&self, revision: &str, path: &str) -> Result<Option<Vec<u8>>, LineageError> {
        let commit = self.resolve(revision)?;
        let commit = self.repo.find_commit(Oid::from_str(&commit)?)?;
        let tree: Tree<'_> = commit.tree()?;
        let full = format!("{}{path}", self.prefix);
        match tree.get_path(Path::new(&full)) {
            Ok(entry) if entry.kind() == Some(ObjectType::Blob) => {
                Ok(Some(self.repo.find_blob(entry.id())?.content().to_vec()))
            }
            _ => Ok(None),
        }
    }

    /// Brings the lineage held at `other` (a ref, e.g. one fetched from a
    /// remote) into the local lineage ref: a fast-forward when one contains
    /// the other, else a merge commit whose tree keeps, for each stage, the
    /// record that finished last.
    pub fn integrate(&self, other: &str) -> Result<Integration, LineageError> {
        let theirs = self.repo.refname_to_id(other)?;
        let _lock = self.writer_lock()?;
        for _ in 0..ATTEMPTS {
            let ours = match self.repo.refname_to_id(LINEAGE_REF) {
                Ok(id) => id,
                Err(err) if err.code() == ErrorCode::NotFound => {
                    match self.repo.reference(LINEAGE_REF, theirs, false, "gourd pull") {
                        Ok(_) => return Ok(Integration::Created),
                        Err(err) if err.code() == ErrorCode::Exists => continue,
                        Err(err) => return Err(err.into()),
                    }
                }
                Err(err) => return Err(err.into()),
            };
            if ours == theirs || self.repo.graph_descendant_of(ours, theirs)? {
                return Ok(Integration::UpToDate);
            }
            let (target, outcome) = if self.repo.graph_descendant_of(theirs, ours)? {
                (theirs, Integration::FastForward)
            } else {
                (self.merge_commit(ours, theirs)?, Integration::Merged)
            };
            match self.repo.reference_matching(LINEAGE_REF, target, true, ours, "gourd pull") {
                Ok(_) => return Ok(outcome),
                Err(err) if matches!(err.code(), ErrorCode::Modified | ErrorCode::Locked) => continue,
                Err(err) => return Err(err.into()),
            }
        }
        Err(LineageError::Contended(ATTEMPTS))
    }

    fn merge_commit(&self, ours: Oid, theirs: Oid) -> Result<Oid, LineageError> {
        let (a, b) = (self.repo.find_commit(ours)?, self.repo.find_commit(theirs)?);
        let mut records = self.records_in(&a)?;
        for (stage, record) in self.records_in(&b)? {
            let newer = records.get(&stage).is_none_or(|mine| record.finished_at > mine.finished_at);
            if newer {
                records.insert(stage, record);
            }
        }
        let (head, dirty) = self.workspace_state()?;
        let run = RunInfo {
            stages: Vec::new(),
            recorded_at: crate::registry::time::format_instant(a.time().seconds().max(b.time().seconds())),
            workspace_commit: head,
            workspace_dirty: dirty,
            gourd_version: records.values().next().map(|r| r.gourd_version.clone()).unwrap_or_default(),
        };
        // Start from our tree (other workspaces' records stay), then lay the
        // merged records of this workspace over it.
        let mut tree = Some(a.tree()?.id());
        tree = Some(self.insert(
            tree,
            &split(&format!("{}run.json", self.prefix)),
            self.repo.blob(&json(&run))?,
            git2::FileMode::Blob,
        )?);
        let blobs: Vec<(String, Oid)> = records
            .values()
            .map(|r| Ok((format!("{}.json", r.stage), self.repo.blob(&json(r))?)))
            .collect::<Result<_, git2::Error>>()?;
        let base = a.tree()?;
        let stages = self.stages_tree(Some(&base), &blobs)?;
        tree = Some(self.insert(tree, &split(&self.stages_dir()), stages, git2::FileMode::Tree)?);
        let tree = self.repo.find_tree(tree.expect("written"))?;
        let signature = self.repo.signature().or_else(|_| Signature::now("gourd", "gourd@localhost"))?;
        Ok(self.repo.commit(None, &signature, &signature, "gourd pull: merge lineage\n", &tree, &[&a, &b])?)
    }

    /// Every stage key named by any record on any `refs/gourd/*` ref, in
    /// their whole history: what lineage can still ask the cache for.
    pub fn all_keys(&self) -> Result<std::collections::BTreeSet<String>, LineageError> {
        let mut keys = std::collections::BTreeSet::new();
        let mut seen = std::collections::BTreeSet::new();
        for reference in self.repo.references_glob("refs/gourd/*")? {
            let Some(tip) = reference?.peel_to_commit().ok() else { continue };
            // Every parent: a merge's other side holds another clone's runs.
            let mut pending = vec![tip];
            while let Some(commit) = pending.pop() {
                if !seen.insert(commit.id()) {
                    continue;
                }
                let all = self.records_in(&commit).unwrap_or_default();
                keys.extend(all.into_values().map(|r| r.key));
                pending.extend(commit.parents());
            }
        }
        Ok(keys)
    }

    /// The commits the refs matching `glob` (`refs/heads/*`, `refs/tags/*`)
    /// point at, tags peeled.
    pub fn tips(&self, glob: &str) -> Result<Vec<String>, LineageError> {
        let mut out = Vec::new();
        for reference in self.repo.references_glob(glob)? {
            if let Ok(commit) = reference?.peel_to_commit() {
                out.push(commit.id().to_string());
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Every commit of the repository that `git gc` keeps: reachable from
    /// any ref (branches, tags, remote-tracking branches, the stash,
    /// others), from the HEAD of every worktree (the main one too, asked
    /// from a linked one), or from a reflog entry (a commit amended or
    /// reset away, an older stash). Not gourd's own refs: lineage history
    /// holds no workspace commit.
    pub fn all_commits(&self) -> Result<std::collections::HashSet<String>, LineageError> {
        let mut walk = self.repo.revwalk()?;
        for reference in self.repo.references()? {
            let reference = reference?;
            if reference.name().is_ok_and(|name| name.starts_with("refs/gourd/")) {
                continue;
            }
            // A tag of a tree or a blob names no commit.
            if let Ok(commit) = reference.peel_to_commit() {
                walk.push(commit.id())?;
            }
        }
        let mut heads: Vec<Oid> = Vec::new();
        // Every worktree's HEAD and its reflog: this one's, the main one's
        // (the common folder, asked from a linked one) and the linked ones'.
        let mut worktrees: Vec<Repository> = Repository::open(self.repo.commondir()).into_iter().collect();
        for name in self.repo.worktrees()?.iter().flatten().flatten() {
            let Ok(worktree) = self.repo.find_worktree(name) else { continue };
            worktrees.extend(Repository::open_from_worktree(&worktree));
        }
        for repo in worktrees.iter().chain(std::iter::once(&self.repo)) {
            heads.extend(repo.head().ok().and_then(|head| head.target()));
            if let Ok(reflog) = repo.reflog("HEAD") {
                heads.extend(reflog.iter().flat_map(|entry| [entry.id_old(), entry.id_new()]));
            }
        }
        let mut logged: Vec<String> = Vec::new();
        logged.extend(self.repo.references()?.flatten().filter_map(|r| r.name().ok().map(String::from)));
        for name in logged.iter().filter(|name| !name.starts_with("refs/gourd/")) {
            if let Ok(reflog) = self.repo.reflog(name) {
                heads.extend(reflog.iter().flat_map(|entry| [entry.id_old(), entry.id_new()]));
            }
        }
        for id in heads {
            // A commit since pruned is no longer there to keep.
            let _ = walk.push(id);
        }
        Ok(walk.filter_map(Result::ok).map(|id| id.to_string()).collect())
    }

    /// The working folder of the repository, for the `git` command.
    pub fn workdir(&self) -> &Path {
        self.repo.workdir().unwrap_or_else(|| self.repo.path())
    }
}

fn split(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

/// A pack of `ids`, objects of `odb`, each stored whole (zlib, fast): no
/// delta search. libgit2's delta search took 1.5 s of CPU at the end of a
/// run recording 1,000 stages with 100 deps each, to save little: records
/// differ mostly in their digests. `git gc` deltifies the packs later.
fn pack_without_deltas(odb: &git2::Odb<'_>, ids: &[Oid]) -> Result<Vec<u8>, git2::Error> {
    use sha1::Digest as _;
    use std::io::Write as _;
    let failed = |err: std::io::Error| git2::Error::from_str(&format!("packing lineage: {err}"));
    let count = u32::try_from(ids.len()).map_err(|_| git2::Error::from_str("too many objects for one pack"))?;
    let mut pack = b"PACK".to_vec();
    pack.extend_from_slice(&2u32.to_be_bytes());
    pack.extend_from_slice(&count.to_be_bytes());
    // Read in turn (the object database is one handle), compressed on all
    // cores, written in order.
    let objects = ids
        .iter()
        .map(|&id| {
            let object = odb.read(id)?;
            let kind: u8 = match object.kind() {
                ObjectType::Commit => 1,
                ObjectType::Tree => 2,
                ObjectType::Blob => 3,
                // A run writes no tags.
                other => return Err(git2::Error::from_str(&format!("cannot pack a {other} object"))),
            };
            Ok((kind, object.data().to_vec()))
        })
        .collect::<Result<Vec<_>, git2::Error>>()?;
    use rayon::prelude::*;
    let entries = objects
        .par_iter()
        .map(|(kind, data)| {
            // The type and size: 4 bits of size in the first byte, 7 in
            // each next one, a high bit on every byte but the last.
            let mut entry = Vec::with_capacity(data.len() / 2 + 16);
            let mut size = data.len();
            let mut byte = (kind << 4) + (size & 0x0f) as u8;
            size >>= 4;
            while size > 0 {
                entry.push(byte + 0x80);
                byte = (size & 0x7f) as u8;
                size >>= 7;
            }
            entry.push(byte);
            let mut zlib = flate2::write::ZlibEncoder::new(entry, flate2::Compression::fast());
            zlib.write_all(data)?;
            zlib.finish()
        })
        .collect::<Result<Vec<_>, std::io::Error>>()
        .map_err(failed)?;
    for entry in entries {
        pack.extend_from_slice(&entry);
    }
    let trailer = sha1::Sha1::digest(&pack);
    pack.extend_from_slice(&trailer);
    Ok(pack)
}

fn json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value).expect("records serialize");
    bytes.push(b'\n');
    bytes
}

fn summarize(stages: &[String]) -> String {
    match stages.len() {
        0 => "nothing".to_string(),
        1..=4 => stages.join(", "),
        n => format!("{}, … ({n} stages)", stages[..3].join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git").args(args).current_dir(dir).output().unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn record(stage: &str, key: &str) -> Record {
        Record {
            stage: stage.into(),
            key: key.into(),
            cmd: serde_json::json!({"shell": "true"}),
            deps: BTreeMap::from([("in".into(), "d1".into())]),
            outs: BTreeMap::from([("out".into(), "d2".into())]),
            out_kinds: BTreeMap::new(),
            params: serde_json::json!({}),
            metrics: BTreeMap::new(),
            env: BTreeMap::new(),
            executor: "local".into(),
            executed_by: None,
            started_at: "t0".into(),
            finished_at: "t1".into(),
            duration_ms: 1,
            exit_code: 0,
            status: "ran".into(),
            workspace_commit: None,
            workspace_dirty: true,
            gourd_version: "0".into(),
            desc: None,
        }
    }

    fn run_info(stages: &[&str]) -> RunInfo {
        RunInfo {
            stages: stages.iter().map(|s| s.to_string()).collect(),
            recorded_at: "t".into(),
            workspace_commit: None,
            workspace_dirty: true,
            gourd_version: "0".into(),
        }
    }

    #[test]
    fn records_in_a_repository_without_commits_and_reads_them_back() {
        let dir = tempfile::tempdir().unwrap();
        git(dir.path(), &["init", "-q"]);
        std::fs::write(dir.path().join("file"), "x").unwrap();
        let lineage = Lineage::open(dir.path()).unwrap().unwrap();
        assert_eq!(lineage.workspace_state().unwrap(), (None, true));
        lineage.record(&run_info(&["a"]), &[record("a", "k1")]).unwrap();
        lineage.record(&run_info(&["b"]), &[record("b", "k2")]).unwrap();
        let latest = lineage.latest().unwrap();
        assert_eq!(latest.len(), 2);
        assert_eq!(latest["a"].key, "k1");
        let history = lineage.history().unwrap();
        assert_eq!(history.len(), 2);
        assert_eq!(history[0].records[0].stage, "b");
        assert!(git(dir.path(), &["log", "--oneline", LINEAGE_REF]).contains("gourd run: b"));
        // Nothing else moved.
        assert!(git(dir.path(), &["status", "--porcelain"]).contains("?? file"));
        assert!(
            Command::new("git").args(["rev-parse", "HEAD"]).current_dir(dir.path()).output().unwrap().status.code()
                != Some(0)
        );
    }

    #[test]
    fn racing_writers_both_land() {
        let dir = tempfile::tempdir().unwrap();
        git(dir.path(), &["init", "-q"]);
        let path = dir.path().to_path_buf();
        let writers: Vec<_> = (0..4)
            .map(|i| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let lineage = Lineage::open(&path).unwrap().unwrap();
                    for j in 0..5 {
                        let name = format!("s{i}-{j}");
                        lineage.record(&run_info(&[&name]), &[record(&name, "k")]).unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        let lineage = Lineage::open(&path).unwrap().unwrap();
        assert_eq!(lineage.latest().unwrap().len(), 20);
        assert_eq!(lineage.history().unwrap().len(), 20);
    }

    #[test]
    fn a_workspace_in_a_subfolder_keeps_its_own_records() {
        let dir = tempfile::tempdir().unwrap();
        git(dir.path(), &["init", "-q"]);
        std::fs::create_dir_all(dir.path().join("ml/one")).unwrap();
        let one = Lineage::open(&dir.path().join("ml/one")).unwrap().unwrap();
        let root = Lineage::open(dir.path()).unwrap().unwrap();
        one.record(&run_info(&["a"]), &[record("a", "k1")]).unwrap();
        root.record(&run_info(&["a"]), &[record("a", "k2")]).unwrap();
        assert_eq!(one.latest().unwrap()["a"].key, "k1");
        assert_eq!(root.latest().unwrap()["a"].key, "k2");
    }

    #[test]
    fn many_records_go_into_one_pack_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        git(dir.path(), &["init", "-q"]);
        let lineage = Lineage::open(dir.path()).unwrap().unwrap();
        lineage.record(&run_info(&["first"]), &[record("first", "k0")]).unwrap();
        let many: Vec<Record> = (0..100).map(|i| record(&format!("s{i:03}"), &format!("k{i}"))).collect();
        let names: Vec<String> = many.iter().map(|r| r.stage.clone()).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        lineage.record(&run_info(&names), &many).unwrap();
        let latest = lineage.latest().unwrap();
        assert_eq!(latest.len(), 101, "the earlier record is kept");
        assert_eq!(latest["s042"].key, "k42");
        assert_eq!(lineage.history().unwrap().len(), 2);
        // A small record on top, written by git2 again.
        lineage.record(&run_info(&["first"]), &[record("first", "k9")]).unwrap();
        assert_eq!(Lineage::open(dir.path()).unwrap().unwrap().latest().unwrap()["first"].key, "k9");
        let count = git(dir.path(), &["count-objects", "-v"]);
        let loose: usize = count.lines().find_map(|l| l.strip_prefix("count: ")).unwrap().parse().unwrap();
        assert!(loose < 20, "records went to a pack, not loose files: {count}");
        assert!(git(dir.path(), &["log", "--format=%s", LINEAGE_REF]).lines().count() == 3);
        assert!(git(dir.path(), &["for-each-ref", "refs/gourd/tmp"]).is_empty(), "the temporary ref is gone");
    }

    /// Objects in the newest pack, and the number of packs.
    fn newest_pack(dir: &Path) -> (usize, usize) {
        let packs = dir.join(".git/objects/pack");
        let mut idx: Vec<_> = std::fs::read_dir(&packs)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "idx"))
            .collect();
        idx.sort_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap());
        let listed = git(dir, &["verify-pack", "-v", idx.last().unwrap().to_str().unwrap()]);
        let objects = listed.lines().filter(|l| [" blob ", " tree ", " commit "].iter().any(|t| l.contains(t))).count();
        (objects, idx.len())
    }

    /// A run that records part of a big pipeline packs those records, not
    /// every stage's record again.
    #[test]
    fn a_pack_holds_only_what_its_run_added() {
        let dir = tempfile::tempdir().unwrap();
        git(dir.path(), &["init", "-q"]);
        let lineage = Lineage::open(dir.path()).unwrap().unwrap();
        let record_all = |range: std::ops::Range<usize>, key: &str| {
            let many: Vec<Record> = range.map(|i| record(&format!("s{i:03}"), &format!("{key}{i}"))).collect();
            let names: Vec<String> = many.iter().map(|r| r.stage.clone()).collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            lineage.record(&run_info(&names), &many).unwrap();
        };
        record_all(0..300, "a");
        // 300 records, run.json, the stages folder, the root tree, the commit.
        assert_eq!(newest_pack(dir.path()), (304, 1));
        // Sizes that take one to four bytes in an object's header.
        let sized: Vec<Record> = [0usize, 20, 3_000, 300_000, 3_000_000]
            .iter()
            .enumerate()
            .map(|(i, &len)| Record { params: serde_json::json!("x".repeat(len)), ..record(&format!("big{i}"), "k") })
            .collect();
        let names: Vec<String> = sized.iter().map(|r| r.stage.clone()).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut many = sized.clone();
        many.extend((0..64).map(|i| record(&format!("s{i:03}"), &format!("a{i}"))));
        lineage.record(&run_info(&names), &many).unwrap();
        let latest = Lineage::open(dir.path()).unwrap().unwrap().latest().unwrap();
        for record in &sized {
            assert_eq!(latest[&record.stage].params, record.params, "{}", record.stage);
        }
        git(dir.path(), &["fsck", "--strict", "--no-dangling"]);
        let (_, packs) = newest_pack(dir.path());
        assert_eq!(packs, 2);
        record_all(0..80, "b");
        assert_eq!(newest_pack(dir.path()), (84, 3));
        // The same records again: only the commit is new.
        record_all(0..80, "b");
        assert_eq!(newest_pack(dir.path()), (1, 4));
        let latest = Lineage::open(dir.path()).unwrap().unwrap().latest().unwrap();
        assert_eq!((latest.len(), latest["s010"].key.as_str(), latest["s200"].key.as_str()), (305, "b10", "a200"));
        git(dir.path(), &["fsck", "--strict", "--no-dangling"]);
    }

    #[test]
    fn outside_git_there_is_no_lineage() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Lineage::open(dir.path()).unwrap().is_none());
    }

    #[test]
    fn a_blocks_literal_paths_are_read_back_unescaped_and_nothing_else() {
        let text = format!(
            "keep.me\n!negated\n/before.txt\n{GITIGNORE_BEGIN}\n/.gourd/\n/out/a.txt\n/out/we\\*ird\\#\\!\\[x\\].txt\n\
             /trailing\\ \\ \n/dir/\n*.log\n/glob*\n/one?\n/set[ab]\n/\n{GITIGNORE_END}\n/after.txt\n"
        );
        let paths: Vec<String> = block_paths(&text).collect();
        assert_eq!(paths, [".gourd", "out/a.txt", "out/we*ird#![x].txt", "trailing  ", "dir"]);
        assert_eq!(block_paths("/no/block\n").count(), 0);
        assert_eq!(
            block_paths(&format!("{GITIGNORE_BEGIN}\r\n/crlf.txt\r\n{GITIGNORE_END}\r\n")).collect::<Vec<_>>(),
            ["crlf.txt"]
        );
    }

    #[test]
    fn tracked_changes_count_no_untracked_file_and_no_block_alone() {
        let dir = tempfile::tempdir().unwrap();
        git(dir.path(), &["init", "-q"]);
        std::fs::write(dir.path().join("a.txt"), "a\n").unwrap();
        std::fs::write(dir.path().join(".gitignore"), "x\n").unwrap();
        git(dir.path(), &["add", "-A"]);
        git(dir.path(), &["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one"]);
        let lineage = Lineage::open(dir.path()).unwrap().unwrap();
        assert!(!lineage.tracked_changes().unwrap());
        std::fs::write(dir.path().join("new.txt"), "untracked\n").unwrap();
        assert!(!lineage.tracked_changes().unwrap(), "an untracked file is no tracked change");
        assert!(lineage.workspace_state().unwrap().1, "but the workspace is dirty");
        std::fs::write(dir.path().join(".gitignore"), format!("x\n{GITIGNORE_BEGIN}\n/out\n{GITIGNORE_END}\n"))
            .unwrap();
        assert!(!lineage.tracked_changes().unwrap(), "gourd's block alone");
        std::fs::write(dir.path().join(".gitignore"), "y\n").unwrap();
        assert!(lineage.tracked_changes().unwrap(), "a rule of the user's");
        std::fs::write(dir.path().join(".gitignore"), "x\n").unwrap();
        std::fs::write(dir.path().join("a.txt"), "b\n").unwrap();
        assert!(lineage.tracked_changes().unwrap());
    }

    #[test]
    fn what_git_tracks_is_known_by_workspace_path() {
        let dir = tempfile::tempdir().unwrap();
        git(dir.path(), &["init", "-q"]);
        std::fs::create_dir_all(dir.path().join("ml/raw")).unwrap();
        std::fs::write(dir.path().join("ml/raw/t.csv"), "a\n").unwrap();
        std::fs::write(dir.path().join("ml/loose.csv"), "b\n").unwrap();
        git(dir.path(), &["add", "ml/raw/t.csv"]);
        let lineage = Lineage::open(&dir.path().join("ml")).unwrap().unwrap();
        assert!(lineage.tracks("raw/t.csv"));
        assert!(lineage.tracks("raw"), "a folder holding a tracked file");
        assert!(!lineage.tracks("ra"), "a name that only begins the same");
        assert!(!lineage.tracks("loose.csv"));
        assert!(!lineage.tracks("nothing"));
        assert_eq!(lineage.untracked_files(["loose.csv", "raw/t.csv", "nothing"]), ["loose.csv"]);
    }

    #[test]
    fn every_pipeline_files_block_is_gourds() {
        assert_eq!(gitignore_begin("gourd.ncl"), GITIGNORE_BEGIN);
        let other = gitignore_begin("ml/other.ncl");
        assert!(other.contains("outputs of ml/other.ncl,") && is_gitignore_begin(&other), "{other}");
        assert!(!is_gitignore_begin(&gitignore_begin("")), "a first line names a file");
        assert!(!is_gitignore_begin("# >>> gourd"));
        assert!(!is_gitignore_begin("/a.txt"));
        assert_eq!(gitignore_begin("a\tb\n.ncl"), gitignore_begin("a?b?.ncl"), "one line, whatever the name");
        let text =
            format!("mine\n{GITIGNORE_BEGIN}\n/a.txt\n{GITIGNORE_END}\n{other}\n/b.txt\n{GITIGNORE_END}\ntheirs\n");
        assert_eq!(block_paths(&text).collect::<Vec<_>>(), ["a.txt", "b.txt"]);
        assert_eq!(without_gourd_block(&text), "mine\ntheirs");
    }
}

/// The first line of the block of `.gitignore` that gourd keeps for the
/// pipeline file `gourd.ncl`; see [`gitignore_begin`].
pub const GITIGNORE_BEGIN: &str =
    "# >>> gourd: outputs of gourd.ncl, kept in step with the pipeline by gourd (edit the pipeline, not this block)";
const BEGIN_HEAD: &str = "# >>> gourd: outputs of ";
const BEGIN_TAIL: &str = ", kept in step with the pipeline by gourd (edit the pipeline, not this block)";

/// The first line of the block gourd keeps for the pipeline file named
/// `file`: each pipeline file of a folder has its own block, so that one's
/// run does not drop the other's outputs from `.gitignore`.
pub fn gitignore_begin(file: &str) -> String {
    let file: String = file.chars().map(|c| if c.is_control() { '?' } else { c }).collect();
    format!("{BEGIN_HEAD}{file}{BEGIN_TAIL}")
}

/// Whether `line` (its end trimmed) begins a block gourd keeps, for any
/// pipeline file.
pub fn is_gitignore_begin(line: &str) -> bool {
    line.strip_prefix(BEGIN_HEAD).and_then(|rest| rest.strip_suffix(BEGIN_TAIL)).is_some_and(|file| !file.is_empty())
}
/// Its last line.
pub const GITIGNORE_END: &str = "# <<< gourd";

/// A `.gitignore`'s text without gourd's block, blank lines at its end
/// dropped.
/// Why [`Untracked::any_in`] could not decide.
enum Undecided {
    /// A rule could take back a path a gourd block ignores.
    Negation,
    Git(git2::Error),
}

impl From<git2::Error> for Undecided {
    fn from(err: git2::Error) -> Self {
        Undecided::Git(err)
    }
}

/// A walk of the work tree for untracked files that are not ignored.
struct Untracked<'r> {
    repo: &'r Repository,
    /// Every path in the index, and every folder holding one.
    tracked: std::collections::HashSet<Vec<u8>>,
    tracked_dirs: std::collections::HashSet<Vec<u8>>,
    /// Paths a gourd block ignores, from the repository's root.
    listed: std::collections::HashSet<String>,
}

impl<'r> Untracked<'r> {
    fn new(repo: &'r Repository) -> Result<Self, git2::Error> {
        let index = repo.index()?;
        let mut tracked = std::collections::HashSet::with_capacity(index.len());
        let mut tracked_dirs = std::collections::HashSet::new();
        for entry in index.iter() {
            let path = entry.path;
            for (i, _) in path.iter().enumerate().filter(|&(_, &b)| b == b'/') {
                tracked_dirs.insert(path[..i].to_vec());
            }
            tracked.insert(path);
        }
        Ok(Untracked { repo, tracked, tracked_dirs, listed: Default::default() })
    }

    /// Whether `dir` (`rel` from the root: empty, or ending in `/`) holds
    /// an untracked file git does not ignore, but a `.gitignore` that
    /// `changed` does not call changed. `below_block`: a folder above has
    /// a gourd block, so a `!` rule here could take back what it lists.
    fn any_in(
        &mut self,
        dir: &Path,
        rel: &str,
        below_block: bool,
        changed: &dyn Fn(&str) -> bool,
    ) -> Result<bool, Undecided> {
        let Ok(entries) = std::fs::read_dir(dir) else { return Ok(false) };
        let mut below_block = below_block;
        if let Some(text) = read_regular(&dir.join(".gitignore")) {
            for line in text.lines() {
                let line = line.trim_end();
                if is_gitignore_begin(line) {
                    below_block = true;
                } else if below_block && line.starts_with('!') {
                    return Err(Undecided::Negation);
                }
            }
            self.listed.extend(block_paths(&text).map(|path| format!("{rel}{path}")));
        }
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                // Not UTF-8: git decides.
                if self.repo.is_path_ignored(Path::new(rel).join(&name))? {
                    continue;
                }
                return Ok(true);
            };
            let path = format!("{rel}{name}");
            if name == ".git" || self.listed.contains(&path) {
                continue;
            }
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                if self.tracked.contains(path.as_bytes()) {
                    continue; // a submodule
                }
                let tracked = self.tracked_dirs.contains(path.as_bytes());
                if !tracked && self.repo.is_path_ignored(&path)? {
                    continue;
                }
                if !tracked && entry.path().join(".git").exists() {
                    return Ok(true); // another repository, untracked
                }
                if self.any_in(&entry.path(), &format!("{path}/"), below_block, changed)? {
                    return Ok(true);
                }
            } else if !(self.tracked.contains(path.as_bytes()) || self.repo.is_path_ignored(&path)?) && changed(&path) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// The text of `path` if it is a regular file: a `.gitignore` that is a
/// named pipe would block the read for ever.
fn read_regular(path: &Path) -> Option<String> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.file_type().is_file() {
        return None;
    }
    std::fs::read_to_string(path).ok()
}

/// The paths a gourd block in `text` lists (each `/path` line, unescaped).
fn block_paths(text: &str) -> impl Iterator<Item = String> + '_ {
    let mut inside = false;
    text.lines().filter_map(move |line| {
        let line = line.trim_end_matches(['\r', '\n']);
        match line.trim_end() {
            begin if is_gitignore_begin(begin) => {
                inside = true;
                None
            }
            GITIGNORE_END => {
                inside = false;
                None
            }
            _ if !inside => None,
            _ => {
                let pattern = line.strip_prefix('/')?;
                let mut path = String::with_capacity(pattern.len());
                let mut chars = pattern.chars();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => path.push(chars.next()?),
                        // A wildcard: not a literal path.
                        '*' | '?' | '[' => return None,
                        _ => path.push(c),
                    }
                }
                let path = path.trim_end_matches('/').to_string();
                (!path.is_empty()).then_some(path)
            }
        }
    })
}

fn without_gourd_block(text: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in text.lines() {
        match line.trim_end() {
            begin if is_gitignore_begin(begin) => inside = true,
            GITIGNORE_END if inside => inside = false,
            _ if inside => {}
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out.trim_end().to_string()
}
