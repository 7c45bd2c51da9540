//! Finding the pipeline file, evaluating it, and building its graph.

use std::path::{Path, PathBuf};

use gourd_core::graph::Dag;
use gourd_core::hash::Hashing;
use gourd_core::model::{Output, OutputKind, Pipeline, Stage};
use gourd_core::path::WsPath;
use gourd_core::workspace::Workspace;

use crate::error::CommandError;

pub const PIPELINE_FILE: &str = "gourd.ncl";

pub struct Location {
    pub file: Option<PathBuf>,
}

pub struct Loaded {
    pub root: PathBuf,
    pub file: PathBuf,
    pub pipeline: Pipeline,
    pub dag: Dag,
    /// The files the pipeline was read from, workspace-relative: no output
    /// may replace them (see `gourd_core::guard`).
    pub sources: Vec<WsPath>,
    /// Where git keeps the repository inside the workspace under another
    /// name than `.git`, workspace-relative.
    pub git_dirs: Vec<WsPath>,
}

impl Location {
    /// The pipeline file: `--file`, else `gourd.ncl` in the current folder or
    /// the nearest parent holding one.
    pub fn pipeline_file(&self) -> Result<PathBuf, CommandError> {
        let cwd = std::env::current_dir()?;
        if let Some(file) = &self.file {
            let file = cwd.join(file);
            let shown = file.display();
            return match std::fs::metadata(&file) {
                Ok(meta) if meta.is_file() => Ok(fs_err::canonicalize(&file)?),
                Ok(meta) if meta.is_dir() => Err(CommandError::user(format!(
                    "`{shown}` is a folder, not a pipeline file"
                ))
                .with_hint(format!("pass the file inside it (`--file {shown}/{PIPELINE_FILE}`), or `-C {shown}`"))),
                Ok(_) => Err(CommandError::user(format!("pipeline file `{shown}` is not a regular file"))),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                    Err(CommandError::user(format!("pipeline file `{shown}` does not exist")))
                }
                Err(err) => Err(CommandError::environment(format!("cannot read pipeline file `{shown}`: {err}"))),
            };
        }
        // Up from here, but not past the root of the git repository that
        // holds this folder: a pipeline above it is not this project's.
        let mut dir = Some(cwd.as_path());
        let mut repository = None;
        while let Some(d) = dir {
            let candidate = d.join(PIPELINE_FILE);
            // A folder of that name is not skipped over: `gourd init` would
            // say it exists.
            if candidate.is_dir() {
                return Err(CommandError::user(format!("`{}` is a folder, not a pipeline file", candidate.display()))
                    .with_hint("rename the folder, then `gourd init`; or pass `--file PATH`"));
            }
            if candidate.is_file() {
                if d != cwd {
                    owned_by_us(&candidate, &cwd)?;
                }
                return Ok(candidate);
            }
            if std::fs::symlink_metadata(d.join(".git")).is_ok() {
                repository = Some(d);
                break;
            }
            dir = d.parent();
        }
        let searched = match repository {
            Some(root) if root == cwd => format!("no `{PIPELINE_FILE}` in `{}`, its repository's root", cwd.display()),
            Some(root) => format!(
                "no `{PIPELINE_FILE}` in `{}` or a parent folder up to its repository's root `{}`",
                cwd.display(),
                root.display()
            ),
            None => format!("no `{PIPELINE_FILE}` in `{}` or any parent folder", cwd.display()),
        };
        Err(CommandError::user(searched).with_hint("run `gourd init` to create one, or pass `-C DIR` or `--file PATH`"))
    }

    /// Evaluates and validates the pipeline, and builds its graph. Deps that
    /// exist nowhere are reported here, before anything runs.
    pub fn load(&self) -> Result<Loaded, CommandError> {
        self.load_checked(true)
    }

    /// Like [`Location::load`]; without `check_sources`, a missing dep is
    /// left for the caller to report (`gourd status` lists it as a reason).
    pub fn load_checked(&self, check_sources: bool) -> Result<Loaded, CommandError> {
        self.load_with(check_sources, false, check_sources).map(|(loaded, _)| loaded)
    }

    /// Like [`Location::load_checked`]; while the pipeline is evaluated (on
    /// one core), the files its source names literally are hashed on
    /// another, and the hashing comes back for `Workspace::open_with`. What
    /// the built-in steps need to run is left to the caller (`gourd run`
    /// asks it for the stages it runs).
    pub fn load_prefetching(&self, check_sources: bool) -> Result<(Loaded, Option<Hashing>), CommandError> {
        self.load_with(check_sources, true, false)
    }

    fn load_with(
        &self,
        check_sources: bool,
        prefetch: bool,
        steps_to_run: bool,
    ) -> Result<(Loaded, Option<Hashing>), CommandError> {
        let file = self.pipeline_file()?;
        let root = file.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
        // The pipeline file is read and scanned on the prefetch's thread:
        // nothing of it is in the way of the evaluation.
        let source = file.clone();
        let prefetch = prefetch
            .then(|| {
                Workspace::prefetch(&root, move |stop| {
                    let stopped = || stop.load(std::sync::atomic::Ordering::Relaxed);
                    let text = std::fs::read(&source).unwrap_or_default();
                    literal_paths(&String::from_utf8_lossy(&text), stopped)
                })
            })
            .flatten();
        // However loading ends, the prefetch stops with it.
        let loaded = self.load_from(file, root, check_sources, steps_to_run);
        let hashing = prefetch.and_then(|prefetch| prefetch.finish());
        Ok((loaded?, hashing))
    }

    fn load_from(
        &self,
        file: PathBuf,
        root: PathBuf,
        check_sources: bool,
        steps_to_run: bool,
    ) -> Result<Loaded, CommandError> {
        crate::gitignore::ignore_own_folder(&root.join(".gourd"));
        let stdlib = gourd_spec::install_stdlib(&root.join(".gourd").join("stdlib"))?;
        let exe = std::env::current_exe()?;
        let limits = gourd_spec::EvalLimits::from_env();
        let eval_cache = root.join(".gourd/state-v1/eval");
        let (pipeline, read) =
            gourd_spec::load_with_sources(&exe, &file, &stdlib, Some(&eval_cache), &limits, crate::ui::color_stderr())
                .map_err(|err| unreadable(&file).unwrap_or_else(|| err.into()))?;
        // What each step needs to run (`gourd-step`, its libtorch), when
        // asked (`gourd check`); `gourd run` asks for the stages it runs.
        crate::commands::step::check(&pipeline, steps_to_run).map_err(|e| in_file(&file, e))?;
        // The files the evaluation read; found again only when not known.
        let sources = read.unwrap_or_else(|| gourd_spec::sources(&file));
        let (sources, git_dirs) = check_outputs(&root, &file, &sources, &pipeline)?;
        check_tracked_sources(&root, &file, &pipeline)?;
        let dag = Dag::build(&pipeline).map_err(|e| in_file(&file, e.into()))?;
        if check_sources {
            // A tracked source may be missing: `gourd run` restores it.
            let tracked = crate::sources::paths(&root);
            dag.check_sources(&pipeline, &root, &tracked).map_err(|e| in_file(&file, e.into()))?;
        } else {
            dag.check_dep_links(&pipeline, &root).map_err(|e| in_file(&file, e.into()))?;
        }
        Ok(Loaded { root, file, pipeline, dag, sources, git_dirs })
    }
}

/// The strings a pipeline's source writes out in full (`"data/a.csv"`)
/// that can name a place in the workspace: the
/// deps of a pipeline written literally, and whatever else such a string
/// names. Comments and multi-line strings (`m%"..."%`) are skipped, and
/// so is a string with an escape or an interpolation; so are repeats. A
/// guess: what is found is only hashed ahead of need (see
/// `Workspace::prefetch`). Ends early, with what it found, once `stopped`.
fn literal_paths(text: &str, stopped: impl Fn() -> bool) -> Vec<WsPath> {
    let bytes = text.as_bytes();
    let mut seen = std::collections::HashSet::new();
    let mut found = Vec::new();
    let mut at = 0;
    let mut strings = 0usize;
    while at < bytes.len() {
        match bytes[at] {
            b'#' => at = memchr_from(bytes, b'\n', at).unwrap_or(bytes.len()),
            b'%' if bytes[..at].ends_with(b"m") => {
                // `m%"`, `m%%"`...: to the `"` followed by as many `%`.
                let marks = bytes[at..].iter().take_while(|&&b| b == b'%').count();
                if bytes.get(at + marks) != Some(&b'"') {
                    at += marks;
                    continue;
                }
                let close = [b"\"".as_slice(), &vec![b'%'; marks]].concat();
                let body = at + marks + 1;
                at = bytes[body..]
                    .windows(close.len())
                    .position(|w| w == close)
                    .map_or(bytes.len(), |i| body + i + close.len());
            }
            b'"' => {
                // Asked now and then: the evaluation may be over already.
                strings += 1;
                if strings % 1024 == 0 && stopped() {
                    break;
                }
                let body = at + 1;
                let mut end = body;
                let mut plain = true;
                while end < bytes.len() && bytes[end] != b'"' {
                    if bytes[end] == b'\\' {
                        plain = false;
                        end += 1;
                    }
                    end += 1;
                }
                let literal = &text[body..end.min(bytes.len())];
                at = end + 1;
                if !plain || literal.is_empty() || literal.len() > 4096 || literal.contains(['\n', '%']) {
                    continue;
                }
                let Ok(path) = WsPath::new(literal) else { continue };
                if !path.is_root() && seen.insert(literal) {
                    found.push(path);
                }
            }
            _ => at += 1,
        }
    }
    found
}

fn memchr_from(bytes: &[u8], byte: u8, from: usize) -> Option<usize> {
    bytes[from..].iter().position(|&b| b == byte).map(|i| from + i)
}

/// Refuses, before anything runs, an output where gourd must never write
/// (see `gourd_core::guard`): naming the file, line, stage and field.
/// `sources` are the files the pipeline was read from, as absolute paths;
/// those in the workspace come back workspace-relative, with the folders git
/// keeps the repository in under another name than `.git`.
fn check_outputs(
    root: &Path,
    file: &Path,
    sources: &[PathBuf],
    pipeline: &Pipeline,
) -> Result<(Vec<WsPath>, Vec<WsPath>), CommandError> {
    let canonical_root = fs_err::canonicalize(root)?;
    let sources: Vec<WsPath> = sources
        .iter()
        .filter_map(|source| std::fs::canonicalize(source).ok())
        .filter_map(|source| source.strip_prefix(&canonical_root).ok().map(Path::to_path_buf))
        .filter_map(|rel| WsPath::new(&rel.to_string_lossy()).ok())
        .collect();
    // The repository's own folder under another name than `.git`.
    let git_dirs: Vec<WsPath> = gourd_lineage::Lineage::git_dirs(&canonical_root)
        .iter()
        .filter_map(|dir| dir.strip_prefix(&canonical_root).ok())
        .filter_map(|rel| WsPath::new(&rel.to_string_lossy()).ok())
        // `.git` itself is the output rule's already.
        .filter(|dir| dir.as_str() != ".git")
        .collect();
    // Outputs named through a link inside the workspace, with where they are.
    let mut aliases = Vec::new();
    for stage in &pipeline.stages {
        for output in stage.outputs() {
            let checked =
                gourd_core::guard::check_resolving(&canonical_root, &output.path, &sources).and_then(|real| {
                    // Where the output, a link itself, leads (asked only
                    // when the repository's folder has another name: a link
                    // into `.git` is refused by the rule already).
                    let own_target = || {
                        let full = canonical_root.join(output.path.as_str());
                        if !std::fs::symlink_metadata(&full).ok()?.file_type().is_symlink() {
                            return None;
                        }
                        let target = std::fs::canonicalize(&full).ok()?;
                        WsPath::new(&target.strip_prefix(&canonical_root).ok()?.to_string_lossy()).ok()
                    };
                    let own_target = if git_dirs.is_empty() { None } else { own_target() };
                    let at_git_dir = |dir: &&WsPath| {
                        output.path.overlaps(dir)
                            || real.as_ref().is_some_and(|r| r.overlaps(dir))
                            || own_target.as_ref().is_some_and(|t| t.overlaps(dir))
                    };
                    match git_dirs.iter().find(at_git_dir) {
                        Some(dir) => Err(gourd_core::guard::GuardError::GitDir {
                            path: output.path.to_string(),
                            git_dir: dir.to_string(),
                        }),
                        None => Ok(real),
                    }
                });
            if let Ok(Some(real)) = &checked {
                aliases.push((stage, output.path.clone(), real.clone()));
            }
            if let Err(err) = checked {
                return Err(output_error(file, pipeline, stage, &output, &err.to_string()).with_hint(
                    "outputs live inside the workspace, outside `.git` and `.gourd`, and never replace the pipeline's own files",
                ));
            }
        }
    }
    // Two names for one file would be two stages writing it, or a stage
    // writing what another reads, unseen by the graph.
    for (stage, alias, real) in &aliases {
        let declared = pipeline.stages.iter().find_map(|other| {
            other.outputs().find(|o| o.path != *alias && o.path.overlaps(real)).map(|o| (other, o.path))
        });
        // Or two links to one folder.
        let aliased = || {
            aliases
                .iter()
                .find(|(_, other, other_real)| other != alias && other_real.overlaps(real))
                .map(|(s, o, _)| (*s, o.clone()))
        };
        // Or a stage reading it by its real name: no edge orders the two.
        let reader = || {
            pipeline.stages.iter().find_map(|other| {
                let dep = other.deps.iter().find(|dep| dep.overlaps(real) && !dep.overlaps(alias))?;
                Some((other, format!("depends on `{dep}`: no edge would order them")))
            })
        };
        let conflict =
            declared.or_else(aliased).map(|(other, path)| (other, format!("writes `{path}`"))).or_else(reader);
        if let Some((other, what)) = conflict {
            let line = gourd_spec::line_of(file, &stage.name, Some(alias.as_str()))
                .map(|l| format!(":{l}"))
                .unwrap_or_default();
            return Err(CommandError::user(format!(
                "in `{}{line}`: stage `{}`: output `{alias}` is `{real}` through a symbolic link, and stage `{}` {what}",
                file.display(),
                stage.name,
                other.name
            ))
            .with_hint("name each output by one path, without a link on the way"));
        }
    }
    Ok((sources, git_dirs))
}

/// A pipeline file found in a folder above the current one runs only when
/// the current user owns it, or whoever owns the current folder does (a
/// checkout owned by another uid in a container): anyone may write a
/// `gourd.ncl` into a shared folder such as `/tmp`, and gourd runs its
/// commands. `-C` and `--file` name a pipeline on purpose and are not asked.
fn owned_by_us(file: &Path, cwd: &Path) -> Result<(), CommandError> {
    use std::os::unix::fs::MetadataExt;
    let owner = fs_err::metadata(file)?.uid();
    // SAFETY: geteuid has no failure mode.
    let us = unsafe { libc::geteuid() };
    if owner == us || std::fs::metadata(cwd).is_ok_and(|here| here.uid() == owner) {
        return Ok(());
    }
    Err(CommandError::user(format!(
        "`{}`, found in a folder above this one, belongs to another user (uid {owner}); gourd does not run it",
        file.display()
    ))
    .with_hint("pass `-C DIR` or `--file PATH` to run a pipeline you trust"))
}

/// Why the pipeline file `file`, or a file it imports, cannot be read as
/// Nickel reads text (Nickel then says it "could not find" it, or gives a
/// bare "unexpected token" at a byte order mark); asked only once the
/// evaluation failed, so that a pipeline that loads costs no extra read.
fn unreadable(file: &Path) -> Option<CommandError> {
    let bytes = match std::fs::read(file) {
        Ok(bytes) => bytes,
        Err(err) => return Some(CommandError::environment(format!("cannot read `{}`: {err}", file.display()))),
    };
    if bytes.starts_with(b"\xef\xbb\xbf") {
        return Some(
            CommandError::user(format!(
                "`{}` starts with a byte order mark, which Nickel does not read",
                file.display()
            ))
            .with_hint("save it as UTF-8 without a BOM"),
        );
    }
    let not_text = |path: &Path, bytes: &[u8]| {
        let bad = std::str::from_utf8(bytes).err()?;
        let by = if path == file { String::new() } else { format!(" (imported by `{}`)", file.display()) };
        Some(CommandError::user(format!(
            "`{}`{by} is not UTF-8 text (byte {} is not valid)",
            path.display(),
            bad.valid_up_to()
        )))
    };
    not_text(file, &bytes).or_else(|| {
        gourd_spec::sources(file)
            .into_iter()
            .filter(|source| source != file)
            .find_map(|source| not_text(&source, &std::fs::read(&source).ok()?))
    })
}

/// An error about one of `stage`'s outputs, naming the pipeline file and
/// line, the stage and the field that declares it (`outs`, `metrics` or
/// `plots`).
fn output_error(file: &Path, pipeline: &Pipeline, stage: &Stage, output: &Output, message: &str) -> CommandError {
    let plotted = |plot: &gourd_core::model::Plot| {
        plot.stage.as_deref() == Some(stage.name.as_str()) && plot.id == output.path.as_str()
    };
    let field = match output.kind {
        OutputKind::Metrics => "metrics",
        _ if pipeline.plots.iter().any(plotted) => "plots",
        _ => "outs",
    };
    let line =
        gourd_spec::line_of(file, &stage.name, Some(output.path.as_str())).map(|l| format!(":{l}")).unwrap_or_default();
    CommandError::user(format!("in `{}{line}`: stage `{}`: field `{field}`: {message}", file.display(), stage.name))
}

/// Refuses an output that is, holds or lies in a tracked source
/// (`gourd.sources.json`): `gourd run` restores a source as it was added,
/// and the stage would replace it, each run moving the other aside.
fn check_tracked_sources(root: &Path, file: &Path, pipeline: &Pipeline) -> Result<(), CommandError> {
    let tracked = crate::sources::paths(root);
    if tracked.is_empty() {
        return Ok(());
    }
    for stage in &pipeline.stages {
        for output in stage.outputs() {
            let Some(source) = tracked.iter().find(|source| output.path.overlaps(source)) else { continue };
            let message =
                format!("`{}` overlaps `{source}`, a tracked source (`{}`)", output.path, crate::sources::FILE);
            return Err(output_error(file, pipeline, stage, &output, &message)
                .with_hint("a source is raw data that gourd keeps as added; write the stage's output elsewhere"));
        }
    }
    Ok(())
}

pub(crate) fn in_file(file: &Path, mut err: CommandError) -> CommandError {
    err.message = format!("in `{}`: {}", file.display(), err.message);
    err
}

impl Location {
    /// The workspace root, without evaluating the pipeline.
    pub fn root(&self) -> Result<PathBuf, CommandError> {
        let file = self.pipeline_file()?;
        Ok(file.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(".")))
    }
}

/// A path the user typed (relative to the current folder), as a
/// workspace-relative path.
pub fn workspace_path(root: &Path, typed: &Path) -> Result<gourd_core::path::WsPath, CommandError> {
    let cwd = std::env::current_dir()?;
    let joined = cwd.join(typed);
    // Normalise lexically: the path may not exist any more.
    let mut parts: Vec<std::ffi::OsString> = Vec::new();
    for component in joined.components() {
        match component {
            std::path::Component::ParentDir => {
                parts.pop();
            }
            std::path::Component::Normal(part) => parts.push(part.to_owned()),
            _ => {}
        }
    }
    let absolute: PathBuf = std::iter::once(std::ffi::OsString::from("/")).chain(parts).collect();
    let root = fs_err::canonicalize(root)?;
    let absolute = match absolute.parent().and_then(|p| p.canonicalize().ok()) {
        Some(parent) => parent.join(absolute.file_name().unwrap_or_default()),
        None => absolute,
    };
    let rel = absolute.strip_prefix(&root).map_err(|_| {
        CommandError::user(format!("`{}` is outside the workspace `{}`", typed.display(), root.display()))
    })?;
    if rel.as_os_str().is_empty() {
        return Ok(gourd_core::path::WsPath::root());
    }
    // Read lossily, it would name another file (`raw\u{fffd}`).
    let Some(rel) = rel.to_str() else {
        return Err(CommandError::user(format!(
            "`{}` is not a UTF-8 name: gourd's paths are UTF-8 (rename it)",
            typed.display()
        )));
    };
    gourd_core::path::WsPath::new(rel).map_err(|e| CommandError::user(e.to_string()))
}

/// The workspace lock, for a command that changes the cache or the
/// workspace beside `gourd run` (`gc`, `add`, `import`): waits, saying so,
/// while a run holds it.
pub fn lock(ws: &gourd_core::workspace::Workspace) -> Result<gourd_core::lock::WorkspaceLock, CommandError> {
    Ok(gourd_core::lock::WorkspaceLock::acquire(&ws.gourd_dir, |_| {
        eprintln!("Waiting for the `gourd run` in this workspace to finish...");
    })?)
}

#[cfg(test)]
mod literal_tests {
    use super::literal_paths;

    /// Told to stop, the scan ends within about a thousand strings, with
    /// what it found so far.
    #[test]
    fn a_stopped_scan_ends_early() {
        let source: String = (0..5000).map(|i| format!("\"data/f{i}\",")).collect();
        assert_eq!(literal_paths(&source, || false).len(), 5000);
        let found = literal_paths(&source, || true);
        assert_eq!(found.len(), 1023);
        assert_eq!(found[0].as_str(), "data/f0");
    }

    #[test]
    fn literal_paths_are_the_plain_strings_that_can_name_workspace_paths() {
        let source = r#"
            # "comment/path.txt" is not read, nor is this "quote
            {
              stages.a = { cmd = "cat data/a.csv > out/a", deps = ["data/a.csv", "data/b.csv", "data/a.csv"],
                           outs = ["out/a"] },
              stages.b = { deps = ["data/%{name}.csv", "esc\"aped", "/abs/path", "../up", ".git/config",
                                   ".gourd/x", ".", "", "after", "a/./b"] },
              stages.c = { cmd = m%"
                  echo "multi"
              "%, deps = [".gitignore"] },
            }
        "#;
        let found: Vec<String> = literal_paths(source, || false).iter().map(|p| p.to_string()).collect();
        assert_eq!(
            found,
            vec![
                "cat data/a.csv > out/a",
                "data/a.csv",
                "data/b.csv",
                "out/a",
                ".git/config",
                ".gourd/x",
                "after",
                "a/b",
                ".gitignore"
            ]
        );
    }
}
