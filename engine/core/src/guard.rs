//! Where a stage may write.
//!
//! A pipeline is code, and gourd deletes a stage's outputs before running it
//! and writes over them when restoring. So every output path is checked
//! against one rule before anything runs, and again right before gourd
//! deletes or restores it (an earlier stage may have planted a symbolic
//! link since):
//!
//! - it lies inside the workspace, and no symbolic link on its way leads
//!   out of the workspace;
//! - it is not, and does not lie in or above, `.git` or `.gourd` (anywhere
//!   in the tree: a nested repository or workspace is not the stage's);
//! - it is not, and does not lie above, the pipeline file or a file the
//!   pipeline imports;
//! - it is not the workspace's `.gitignore`, where gourd keeps its block.
//!
//! The output itself may be a symbolic link: gourd removes the link, never
//! what it points to.

use std::path::{Path, PathBuf};

use crate::path::WsPath;

/// Names no output may have as a component (`.gourd-displaced` holds what
/// gourd moved aside from output paths: the user's, not a stage's).
const RESERVED: [&str; 3] = [".git", ".gourd", ".gourd-displaced"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    #[error("`{path}` is a `{reserved}` folder, which gourd never writes to")]
    ReservedFolder { path: String, reserved: String },
    #[error("`{path}` lies inside `{reserved}`, which gourd never writes to")]
    Reserved { path: String, reserved: String },
    #[error("`{path}` is, holds or lies in `{git_dir}`, the folder git keeps this repository in")]
    GitDir { path: String, git_dir: String },
    #[error("`{path}` is a symbolic link to `{target}`, whose files gourd does not store")]
    StoresReserved { path: String, target: String },
    #[error("`.gitignore` is where gourd keeps its ignore block; a stage cannot own it")]
    GitIgnore,
    #[error("`{path}` is a file the pipeline is read from")]
    PipelineFile { path: String },
    #[error("`{path}` would replace `{file}`, which the pipeline is read from")]
    PipelineSource { path: String, file: String },
    #[error("`{path}` goes through the symbolic link `{link}`, which leads out of the workspace (to `{target}`)")]
    LeavesWorkspace { path: String, link: String, target: String },
    #[error("`{path}` goes through the symbolic link `{link}`, which leads to `{target}`, where gourd never writes")]
    LinksIntoReserved { path: String, link: String, target: String },
    #[error("cannot check `{path}`: {message}")]
    Unreadable { path: String, message: String },
    /// A link inside the workspace makes `path` another name for `real`,
    /// which the rule refuses.
    #[error("`{path}` is `{real}` through a symbolic link, and {inner}")]
    Alias { path: String, real: String, inner: Box<GuardError> },
}

/// The lexical part of the rule: reserved names and the pipeline's own
/// files (`sources`, workspace-relative). Needs no disk.
pub fn check_lexical(path: &WsPath, sources: &[WsPath]) -> Result<(), GuardError> {
    let parts: Vec<&str> = path.as_str().split('/').collect();
    if let Some(at) = parts.iter().position(|part| RESERVED.contains(part)) {
        if at + 1 == parts.len() {
            return Err(GuardError::ReservedFolder { path: path.to_string(), reserved: parts[at].to_string() });
        }
        return Err(GuardError::Reserved { path: path.to_string(), reserved: parts[at].to_string() });
    }
    if path.as_str() == ".gitignore" {
        return Err(GuardError::GitIgnore);
    }
    if let Some(file) = sources.iter().find(|source| source.is_at_or_under(path)) {
        if file == path {
            return Err(GuardError::PipelineFile { path: path.to_string() });
        }
        return Err(GuardError::PipelineSource { path: path.to_string(), file: file.to_string() });
    }
    Ok(())
}

/// The on-disk part of the rule: walks the folders on the way to `path`
/// and refuses a symbolic link among them that leads out of the workspace
/// or into a reserved folder. `root` must be canonical.
pub fn check_on_disk(root: &Path, path: &WsPath) -> Result<(), GuardError> {
    walk_on_disk(root, path).map(drop)
}

/// [`check_on_disk`], and where `path` really is when a symbolic link
/// inside the workspace lies on its way (`alias/x` for `data/x`), so that
/// two spellings of one file are seen as one output.
fn walk_on_disk(root: &Path, path: &WsPath) -> Result<Option<WsPath>, GuardError> {
    let parts: Vec<&str> = path.as_str().split('/').collect();
    let mut here = root.to_path_buf();
    let mut through_link = false;
    // The output itself (the last part) may be a link: it is removed, not
    // followed. Every folder above it is followed when writing.
    for (i, part) in parts.iter().enumerate().take(parts.len().saturating_sub(1)) {
        here.push(part);
        let meta = match std::fs::symlink_metadata(&here) {
            Ok(meta) => meta,
            // Nothing further exists: gourd creates plain folders from here.
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => break,
            Err(err) => {
                return Err(GuardError::Unreadable { path: path.to_string(), message: err.to_string() });
            }
        };
        if !meta.file_type().is_symlink() {
            continue;
        }
        through_link = true;
        let link = parts[..=i].join("/");
        let target = match std::fs::canonicalize(&here) {
            Ok(target) => target,
            // A dangling link: writing through it creates its target, wherever that is.
            Err(_) => resolve_dangling(&here),
        };
        let Ok(inside) = target.strip_prefix(root) else {
            return Err(GuardError::LeavesWorkspace {
                path: path.to_string(),
                link,
                target: target.display().to_string(),
            });
        };
        let inside = inside.to_string_lossy();
        if inside.split('/').any(|part| RESERVED.contains(&part)) {
            return Err(GuardError::LinksIntoReserved {
                path: path.to_string(),
                link,
                target: target.display().to_string(),
            });
        }
    }
    if !through_link {
        return Ok(None);
    }
    // Where the folder holding the output really is (it exists: the link
    // on the way resolved), with the output's own name.
    let (parent, name) = path.as_str().rsplit_once('/').unwrap_or((".", path.as_str()));
    let real = std::fs::canonicalize(root.join(parent)).ok();
    let real =
        real.as_deref().and_then(|real| real.strip_prefix(root).ok()).map(|rel| rel.to_string_lossy().into_owned());
    let joined = |rel: String| if rel.is_empty() { name.to_string() } else { format!("{rel}/{name}") };
    Ok(real.and_then(|rel| WsPath::new(&joined(rel)).ok()))
}

/// An output that is itself a symbolic link is removed, never written
/// through; but its bytes are stored from what it leads to, and a link into
/// `.git`, `.gourd` or `.gourd-displaced` would put the repository's files
/// (its config's credentials, say) in the cache and on the remote. Checked
/// when the output is stored, after the stage made it.
pub fn check_output_link(root: &Path, path: &WsPath) -> Result<(), GuardError> {
    let full = root.join(path.as_str());
    if !std::fs::symlink_metadata(&full).is_ok_and(|meta| meta.file_type().is_symlink()) {
        return Ok(());
    }
    let Ok(target) = std::fs::canonicalize(&full) else { return Ok(()) };
    let Ok(inside) = target.strip_prefix(root) else { return Ok(()) };
    if inside.to_string_lossy().split('/').any(|part| RESERVED.contains(&part)) {
        return Err(GuardError::StoresReserved { path: path.to_string(), target: target.display().to_string() });
    }
    Ok(())
}

/// Where a dangling link points, made absolute (not canonical).
fn resolve_dangling(link: &Path) -> PathBuf {
    match std::fs::read_link(link) {
        Ok(target) if target.is_absolute() => target,
        Ok(target) => {
            let mut resolved = link.parent().map(Path::to_path_buf).unwrap_or_default();
            for component in target.components() {
                match component {
                    std::path::Component::ParentDir => {
                        resolved.pop();
                    }
                    std::path::Component::Normal(part) => resolved.push(part),
                    _ => {}
                }
            }
            resolved
        }
        Err(_) => link.to_path_buf(),
    }
}

/// Both parts of the rule.
pub fn check(root: &Path, path: &WsPath, sources: &[WsPath]) -> Result<(), GuardError> {
    check_resolving(root, path, sources).map(drop)
}

/// Both parts of the rule; `Some(real)` where a symbolic link inside the
/// workspace makes `path` another name for `real`. The lexical part holds
/// for `real` too: `P/gourd.ncl` through `P -> .` is the pipeline file.
pub fn check_resolving(root: &Path, path: &WsPath, sources: &[WsPath]) -> Result<Option<WsPath>, GuardError> {
    check_lexical(path, sources)?;
    let real = walk_on_disk(root, path)?;
    if let Some(real) = &real {
        check_lexical(real, sources).map_err(|inner| GuardError::Alias {
            path: path.to_string(),
            real: real.to_string(),
            inner: Box::new(inner),
        })?;
    }
    Ok(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> WsPath {
        WsPath::new(s).unwrap()
    }

    #[test]
    fn reserved_names_anywhere() {
        for bad in [".git", ".git/hooks/pre-commit", ".gourd/cache-v1", "sub/.git", "a/.gourd"] {
            let err = check_lexical(&p(bad), &[]).unwrap_err();
            assert!(matches!(err, GuardError::Reserved { .. } | GuardError::ReservedFolder { .. }), "{bad}");
        }
        assert_eq!(check_lexical(&p(".gitignore"), &[]), Err(GuardError::GitIgnore));
        for good in ["git", ".github/x", "sub/.gitignore", "gourd", "x.gourd"] {
            assert_eq!(check_lexical(&p(good), &[]), Ok(()), "{good}");
        }
    }

    #[test]
    fn pipeline_sources_and_their_folders() {
        let sources = [p("gourd.ncl"), p("conf/params.ncl")];
        assert!(check_lexical(&p("gourd.ncl"), &sources).is_err());
        assert!(check_lexical(&p("conf"), &sources).is_err());
        assert!(check_lexical(&p("conf/params.ncl"), &sources).is_err());
        assert_eq!(check_lexical(&p("conf/other.json"), &sources), Ok(()));
        assert_eq!(check_lexical(&p("gourd.ncl.bak"), &sources), Ok(()));
    }

    #[test]
    fn links_on_the_way() {
        let outside = tempfile::tempdir().unwrap();
        let ws = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(ws.path()).unwrap();
        std::fs::create_dir_all(root.join(".git/hooks")).unwrap();
        std::fs::create_dir_all(root.join("data")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("away")).unwrap();
        std::os::unix::fs::symlink(root.join(".git/hooks"), root.join("hooks")).unwrap();
        std::os::unix::fs::symlink("data", root.join("alias")).unwrap();
        std::os::unix::fs::symlink("/nonexistent-gourd-target", root.join("dangling")).unwrap();

        assert!(matches!(check_on_disk(&root, &p("away/x")), Err(GuardError::LeavesWorkspace { .. })));
        assert!(matches!(check_on_disk(&root, &p("hooks/pre-commit")), Err(GuardError::LinksIntoReserved { .. })));
        assert!(matches!(check_on_disk(&root, &p("dangling/x")), Err(GuardError::LeavesWorkspace { .. })));
        // A link inside the workspace, to a plain folder, is fine: another
        // name for what it leads to.
        assert_eq!(check_on_disk(&root, &p("alias/x")), Ok(()));
        assert_eq!(check_resolving(&root, &p("alias/x"), &[]), Ok(Some(p("data/x"))));
        assert_eq!(check_resolving(&root, &p("data/x"), &[]), Ok(None));
        // The output itself may be a link: it is removed, not followed;
        // but not a link into `.git`, whose files it would store.
        assert_eq!(check_on_disk(&root, &p("away")), Ok(()));
        assert_eq!(check_on_disk(&root, &p("hooks")), Ok(()));
        assert!(matches!(check_output_link(&root, &p("hooks")), Err(GuardError::StoresReserved { .. })));
        std::os::unix::fs::symlink(".git", root.join("git-alias")).unwrap();
        assert!(matches!(check_output_link(&root, &p("git-alias")), Err(GuardError::StoresReserved { .. })));
        for fine in ["alias", "away", "data", "not/yet/there"] {
            assert_eq!(check_output_link(&root, &p(fine)), Ok(()), "{fine}");
        }
        assert_eq!(check_on_disk(&root, &p("not/yet/there")), Ok(()));
    }

    /// A link that stays inside the workspace gives a second name to the
    /// pipeline's own files: the rule holds for what the name leads to.
    #[test]
    fn links_inside_the_workspace_to_the_pipelines_files() {
        let ws = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(ws.path()).unwrap();
        std::fs::create_dir_all(root.join("cfg")).unwrap();
        std::fs::write(root.join("gourd.ncl"), "{}").unwrap();
        std::fs::write(root.join("cfg/p.ncl"), "{}").unwrap();
        std::os::unix::fs::symlink(".", root.join("P")).unwrap();
        std::os::unix::fs::symlink("cfg", root.join("C")).unwrap();
        let sources = [p("gourd.ncl"), p("cfg/p.ncl")];
        let alias = |path: &str| match check_resolving(&root, &p(path), &sources) {
            Err(GuardError::Alias { path, real, inner }) => Some((path, real, *inner)),
            other => panic!("{path}: {other:?}"),
        };
        let (path, real, inner) = alias("P/gourd.ncl").unwrap();
        assert_eq!((path.as_str(), real.as_str()), ("P/gourd.ncl", "gourd.ncl"));
        assert_eq!(inner, GuardError::PipelineFile { path: "gourd.ncl".into() });
        assert!(matches!(alias("C/p.ncl").unwrap().2, GuardError::PipelineFile { .. }));
        assert!(matches!(alias("P/cfg").unwrap().2, GuardError::PipelineSource { .. }));
        assert_eq!(alias("P/.gitignore").unwrap().2, GuardError::GitIgnore);
        let message = check(&root, &p("P/gourd.ncl"), &sources).unwrap_err().to_string();
        assert_eq!(
            message,
            "`P/gourd.ncl` is `gourd.ncl` through a symbolic link, and `gourd.ncl` is a file the pipeline is read from"
        );
        // Other files through the same links are fine.
        assert_eq!(check_resolving(&root, &p("C/other.json"), &sources), Ok(Some(p("cfg/other.json"))));
        assert_eq!(check(&root, &p("P/model.bin"), &sources), Ok(()));
    }
}
