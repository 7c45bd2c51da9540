//! `gourd import-dvc`: writes a `gourd.ncl` from a DVC project's `dvc.yaml`,
//! its `.dvc` files and `.dvc/config`, and says what it could not translate.

mod convert;
mod interpolate;
mod render;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use gourd_core::path::WsPath;
use gourd_core::workspace::Workspace;

use crate::error::CommandError;
use crate::workspace::Location;

#[derive(clap::Args)]
pub struct Args {
    /// The DVC pipeline to convert.
    #[arg(default_value = "dvc.yaml", value_name = "DVC_YAML")]
    dvc_file: PathBuf,
    /// Where to write the pipeline (default: `gourd.ncl` beside DVC_YAML).
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Overwrite FILE if it exists.
    #[arg(long)]
    force: bool,
}

/// Files of the DVC project, by path relative to its root.
struct ProjectFiles<'a>(&'a Path);

impl convert::Files for ProjectFiles<'_> {
    fn read(&self, path: &str) -> Option<String> {
        std::fs::read_to_string(self.0.join(path)).ok()
    }
}

pub fn run(args: &Args) -> Result<ExitCode, CommandError> {
    let source = &args.dvc_file;
    let text = std::fs::read_to_string(source)
        .map_err(|e| CommandError::user(format!("cannot read `{}`: {e}", source.display())))?;
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| {
        let at = e.location().map(|l| format!(" at line {}, column {}", l.line(), l.column())).unwrap_or_default();
        CommandError::user(format!("`{}`{at} is not valid YAML: {e}", source.display()))
    })?;
    let folder = source.parent().filter(|p| !p.as_os_str().is_empty());
    let root = folder.unwrap_or(Path::new(".")).to_path_buf();
    let output =
        args.output.clone().unwrap_or_else(|| folder.map_or_else(|| "gourd.ncl".into(), |f| f.join("gourd.ncl")));
    // A link counts as there, even one to nothing: it is never written
    // through (`--force` replaces the link itself).
    if std::fs::symlink_metadata(&output).is_ok() && !args.force {
        return Err(CommandError::user(format!("`{}` exists", output.display()))
            .with_hint("`gourd import-dvc --force` overwrites it; `-o FILE` writes elsewhere"));
    }
    let pipeline = convert::convert(&doc, &ProjectFiles(&root))
        .map_err(|e| CommandError::user(format!("`{}`: {e}", source.display())))?;
    let mut notes = pipeline.notes.clone();
    let sources = dvc_files(&root, &mut notes);
    let remote = dvc_remote(&root, &mut notes);
    let name = source.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let written =
        render::render(&pipeline, &render::Extras { source: &name, remote: remote.as_deref(), sources: &sources });
    // A link is replaced, never written through (it may lead anywhere); a
    // device, pipe or socket is no pipeline file to replace.
    if std::fs::symlink_metadata(&output).is_ok_and(|meta| !meta.is_file() && !meta.file_type().is_symlink()) {
        return Err(CommandError::user(format!("`{}` is not a regular file: name a pipeline file", output.display())));
    }
    gourd_core::fsutil::write_atomic(&output, written.as_bytes())?;
    let folder_of = |path: &Path| std::path::absolute(path.parent().unwrap_or(Path::new("")).join("."));
    let added = if folder_of(&output)? == folder_of(&source.clone())? {
        track(&output, &sources, &mut notes)
    } else {
        notes.push(format!(
            "`{}` is not beside `{}`: its paths are relative to `{}`, and gourd reads them from the pipeline file's folder; move it there (the `.dvc` files' data was not tracked)",
            output.display(),
            source.display(),
            root.display()
        ));
        0
    };
    for note in &notes {
        eprintln!("note: {note}");
    }
    eprintln!(
        "Wrote `{}` from `{}`: {} stage(s), {} tracked source(s), {} note(s); try `gourd check`.",
        output.display(),
        source.display(),
        pipeline.stages.len(),
        added,
        notes.len()
    );
    if added > 0 {
        eprintln!(
            "Commit `{}` (and `.gitignore`); `gourd push` shares the sources, `gourd pull` brings them back on a clone.",
            crate::sources::FILE
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A file or folder a `.dvc` file tracks: `dvc add`ed, or imported from
/// `origin` (`dvc import`, `dvc import-url`).
pub struct Tracked {
    pub path: String,
    pub file: String,
    /// Where it came from, as `gourd import` records it: `REPO@REV:PATH`, or the URL.
    pub origin: Option<String>,
    /// The command that brings it in when it is not here.
    pub fetch: String,
}

/// The `.dvc` files under `root`, in path order.
fn dvc_files(root: &Path, notes: &mut Vec<String>) -> Vec<Tracked> {
    let mut tracked = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(root.join(&dir)) else { continue };
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(|e| std::cmp::Reverse(e.file_name()));
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = dir.join(&name);
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if is_dir && ![".git", ".dvc", ".gourd", "node_modules"].contains(&name.as_str()) {
                pending.push(rel);
            } else if !is_dir && name == "dvc.yaml" && !dir.as_os_str().is_empty() {
                notes.push(format!(
                    "`{}`: a pipeline of its own, not converted (one gourd.ncl per workspace); `gourd import-dvc {}` writes one beside it",
                    rel.display(),
                    rel.display()
                ));
            } else if !is_dir && name.ends_with(".dvc") {
                let file = rel.to_string_lossy().into_owned();
                let Some(doc) = std::fs::read_to_string(entry.path())
                    .ok()
                    .and_then(|t| serde_yaml::from_str::<serde_yaml::Value>(&t).ok())
                else {
                    notes.push(format!("`{file}`: not a YAML `.dvc` file; skipped"));
                    continue;
                };
                let dep = doc["deps"].as_sequence().and_then(|d| d.first());
                let folder = dir.to_string_lossy();
                for path in doc["outs"].as_sequence().into_iter().flatten().filter_map(|o| o["path"].as_str()) {
                    match convert::join(&folder, path) {
                        Ok(path) => {
                            let (origin, fetch) = match dep {
                                None => (None, format!("`dvc pull` it, then `gourd add {path}`")),
                                Some(dep) => {
                                    let source = dep["path"].as_str().unwrap_or_default();
                                    match dep["repo"]["url"].as_str() {
                                        Some(url) => {
                                            let rev = dep["repo"]["rev_lock"].as_str().or(dep["repo"]["rev"].as_str());
                                            let at = rev.map(|r| format!("@{r}")).unwrap_or_default();
                                            let flag = rev.map(|r| format!(" --rev {r}")).unwrap_or_default();
                                            (
                                                Some(format!("{url}{at}:{source}")),
                                                format!("`gourd import {url} {source} -o {path}{flag}`"),
                                            )
                                        }
                                        None => {
                                            (Some(source.to_string()), format!("`gourd import-url {source} {path}`"))
                                        }
                                    }
                                }
                            };
                            tracked.push(Tracked { path, file: file.clone(), origin, fetch });
                        }
                        Err(e) => notes.push(format!("`{file}`: `{path}` {e}; skipped")),
                    }
                }
            }
        }
    }
    tracked.sort_by(|a, b| a.path.cmp(&b.path));
    tracked
}

/// Records each tracked path that is here as a source of the written
/// pipeline (`gourd add`); returns how many.
fn track(output: &Path, tracked: &[Tracked], notes: &mut Vec<String>) -> usize {
    if tracked.is_empty() {
        return 0;
    }
    let by_hand = |paths: &[&Tracked]| paths.iter().map(|t| t.path.as_str()).collect::<Vec<_>>().join(" ");
    let loaded = match std::path::absolute(output)
        .map_err(CommandError::from)
        .and_then(|file| Location { file: Some(file) }.load_checked(false))
    {
        Ok(loaded) => loaded,
        Err(err) => {
            let all: Vec<&Tracked> = tracked.iter().collect();
            notes.push(format!(
                "the written pipeline does not load ({}); once it does, `gourd add {}` tracks the `.dvc` files' data",
                err.message.lines().next().unwrap_or_default(),
                by_hand(&all)
            ));
            return 0;
        }
    };
    let ws = match Workspace::open(&loaded.root) {
        Ok(ws) => ws,
        Err(err) => {
            notes.push(format!("cannot open the workspace to track sources: {err}"));
            return 0;
        }
    };
    let mut added = 0;
    for item in tracked {
        if !loaded.root.join(&item.path).exists() {
            notes.push(format!("`{}` (from `{}`) is not here: {}", item.path, item.file, item.fetch));
            continue;
        }
        let result = WsPath::new(&item.path)
            .map_err(|e| CommandError::user(e.to_string()))
            .and_then(|path| crate::sources::add(&ws, &loaded.pipeline, &path, item.origin.clone()));
        match result {
            Ok(_) => added += 1,
            Err(err) => notes.push(format!("`{}` (from `{}`): not tracked: {}", item.path, item.file, err.message)),
        }
    }
    if let Err(err) = crate::gitignore::sync(&loaded.file, Some(&loaded.pipeline), false) {
        notes.push(format!("could not update `.gitignore`: {err}"));
    }
    added
}

/// The default remote of `.dvc/config` (and `config.local`) as gourd's `remote`.
fn dvc_remote(root: &Path, notes: &mut Vec<String>) -> Option<String> {
    let mut default = None;
    let mut urls = std::collections::BTreeMap::new();
    for file in ["config", "config.local"] {
        let Ok(text) = std::fs::read_to_string(root.join(".dvc").join(file)) else { continue };
        let mut section = String::new();
        for line in text.lines().map(str::trim) {
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.trim().trim_matches('\'').to_string();
            } else if let Some((key, value)) = line.split_once('=') {
                let (key, value) = (key.trim(), value.trim().to_string());
                if section == "core" && key == "remote" {
                    default = Some(value);
                } else if let Some(name) = section.strip_prefix("remote \"").and_then(|s| s.strip_suffix('"'))
                    && key == "url"
                {
                    urls.insert(name.to_string(), value);
                }
            }
        }
    }
    let name = default?;
    let Some(url) = urls.get(&name) else {
        notes.push(format!("`.dvc/config`: the default remote `{name}` has no url"));
        return None;
    };
    let remote = if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let prefix =
            if prefix.is_empty() { "gourd".to_string() } else { format!("{}/gourd", prefix.trim_end_matches('/')) };
        format!("{{ kind = 's3, bucket = {}, prefix = {} }}", render::string(bucket), render::string(&prefix))
    } else if url.starts_with("ssh://") {
        format!("{{ kind = 'ssh, endpoint = {} }}", render::string(url))
    } else if url.contains("://") {
        notes.push(format!("`.dvc/config`: remote `{name}` ({url}): gourd's remotes are S3, a folder, ssh or a REAPI service; not translated"));
        return None;
    } else {
        // DVC reads a relative url from the folder of its config file.
        let path = if Path::new(url).is_absolute() || url.starts_with('~') {
            url.clone()
        } else {
            relative_to_root(&format!(".dvc/{url}"))
        };
        format!("{{ kind = 'folder, path = {} }}", render::string(&path))
    };
    notes.push(format!(
        "`.dvc/config`: remote `{name}` ({url}) is the pipeline's `remote`; gourd keeps its own objects there (`cas/`, `trees/`, `ac/`), beside DVC's, and reads none of DVC's"
    ));
    Some(remote)
}

/// `a/../b` without its `..` steps where it can; `..` past the root stays.
fn relative_to_root(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." if parts.last().is_some_and(|p| *p != "..") => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    if parts.is_empty() { ".".to_string() } else { parts.join("/") }
}
