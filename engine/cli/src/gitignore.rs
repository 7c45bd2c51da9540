//! The block of `.gitignore` gourd keeps: `.gourd/`, every output and
//! metrics file the pipeline declares (but outs with `cache = false`, which
//! are for git to keep) and every tracked source (`gourd
//! add`), so `git status` shows the user's
//! files, not data and models (lineage then records clean commits).
//!
//! The block sits between two marker lines; gourd rewrites only what is
//! between them and leaves every other line as it was. Each pipeline file of
//! a folder (`--file`) has a block of its own, named in its first line.
//! `GOURD_GITIGNORE=0` turns it off.

use std::path::{Path, PathBuf};

use gourd_core::model::Pipeline;

// Shared with lineage, which does not count this block as a change.
use gourd_lineage::{GITIGNORE_END as END, gitignore_begin};

/// What [`sync`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Synced {
    Unchanged,
    Written(PathBuf),
    /// Not in a git work tree, or turned off.
    Skipped,
    /// `.gitignore` is not a plain file (a link, a folder): left alone.
    Refused(PathBuf),
}

/// Makes `.gourd` ignore itself (a `.gitignore` of `*` inside it, as
/// Python's virtual environments do): `gourd check` or `status` in a fresh
/// repository, before any `.gitignore` names `.gourd/`, must not leave
/// `git status` listing it. Best effort: a read-only folder only costs that.
pub fn ignore_own_folder(gourd_dir: &Path) {
    if std::env::var("GOURD_GITIGNORE").is_ok_and(|v| matches!(v.as_str(), "0" | "false" | "off" | "no")) {
        return;
    }
    let file = gourd_dir.join(".gitignore");
    if std::fs::symlink_metadata(&file).is_ok() || std::fs::create_dir_all(gourd_dir).is_err() {
        return;
    }
    // Created new: never written through a link, never replacing a file.
    if let Ok(mut created) = std::fs::OpenOptions::new().write(true).create_new(true).open(&file) {
        use std::io::Write;
        let _ = created.write_all(b"# Written by gourd: nothing in .gourd belongs in git.\n*\n");
    }
}

/// Brings the block of the pipeline file `file` in the `.gitignore` beside it
/// in step with `pipeline` (`None`: only `.gourd/`). Outside a git work tree
/// it does so only when `outside_git` (`gourd init`, before a `git init`).
pub fn sync(file: &Path, pipeline: Option<&Pipeline>, outside_git: bool) -> std::io::Result<Synced> {
    let root = file.parent().unwrap_or(Path::new("."));
    let begin = gitignore_begin(&file.file_name().unwrap_or_default().to_string_lossy());
    if std::env::var("GOURD_GITIGNORE").is_ok_and(|v| matches!(v.as_str(), "0" | "false" | "off" | "no"))
        || !(outside_git || in_git_work_tree(root))
    {
        return Ok(Synced::Skipped);
    }
    let file = root.join(".gitignore");
    let current = match std::fs::symlink_metadata(&file) {
        Ok(meta) if meta.file_type().is_file() => fs_err::read_to_string(&file)?,
        Ok(_) => return Ok(Synced::Refused(file)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(err) => return Err(err),
    };
    let wanted = render(&current, &begin, &entries(pipeline, &crate::sources::paths(root)));
    if wanted == current {
        return Ok(Synced::Unchanged);
    }
    // Written beside the cache when there is one, so a kill leaves nothing
    // in the user's folder; renamed into place. A `.gourd` that is a link
    // (or a mount) may be on another file system, where no rename reaches:
    // then beside `.gitignore`.
    let gourd_dir = root.join(".gourd");
    let cache_beside = std::fs::symlink_metadata(&gourd_dir).is_ok_and(|meta| meta.is_dir());
    let places = if cache_beside { vec![gourd_dir, root.to_path_buf()] } else { vec![root.to_path_buf()] };
    for (n, place) in places.iter().enumerate() {
        let mut tmp = tempfile::Builder::new().prefix(".gitignore.").tempfile_in(place)?;
        std::io::Write::write_all(&mut tmp, wanted.as_bytes())?;
        if let Ok(meta) = std::fs::metadata(&file) {
            tmp.as_file().set_permissions(meta.permissions())?;
        } else {
            use std::os::unix::fs::PermissionsExt;
            tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o644))?;
        }
        match tmp.persist(&file) {
            Ok(_) => break,
            Err(err) if err.error.raw_os_error() == Some(libc::EXDEV) && n + 1 < places.len() => continue,
            Err(err) => return Err(err.error),
        }
    }
    Ok(Synced::Written(file))
}

fn in_git_work_tree(root: &Path) -> bool {
    let start = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    start.ancestors().any(|dir| dir.join(".git").exists())
}

/// The block's lines: `.gourd/` then each declared path, rooted at the
/// workspace and escaped, sorted.
fn entries(pipeline: Option<&Pipeline>, sources: &[gourd_core::path::WsPath]) -> Vec<String> {
    let mut paths: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
    for stage in pipeline.map(|p| p.stages.as_slice()).unwrap_or_default() {
        // An out with `cache = false` is not in the cache: it is for git
        // to keep (as DVC's are).
        paths.extend(stage.outs.iter().filter(|o| o.cache).map(|o| o.path.as_str().to_string()));
        paths.extend(stage.metrics.iter().map(|m| m.as_str().to_string()));
    }
    paths.sort();
    paths.dedup();
    // A path under a folder already listed adds nothing (each path's
    // folders are looked up, so 10,000 outputs cost 10,000 lookups).
    let listed: std::collections::BTreeSet<&str> = paths.iter().map(String::as_str).collect();
    let kept: Vec<&String> =
        paths.iter().filter(|path| !path.match_indices('/').any(|(i, _)| listed.contains(&path[..i]))).collect();
    let mut lines = vec!["/.gourd/".to_string()];
    lines.extend(kept.iter().map(|p| format!("/{}", escape(p))));
    lines
}

/// A path as a gitignore pattern that matches it literally.
fn escape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '!' | '#') {
            out.push('\\');
        }
        out.push(c);
    }
    // Trailing spaces are dropped by git unless escaped.
    let trailing = out.len() - out.trim_end_matches(' ').len();
    if trailing > 0 {
        out.truncate(out.len() - trailing);
        out.push_str(&"\\ ".repeat(trailing));
    }
    out
}

/// `current` with the block that starts with `begin` replaced by (or, when
/// there is none, ended with) one holding `lines`. Other blocks stay.
fn render(current: &str, begin: &str, lines: &[String]) -> String {
    let mut block = format!("{begin}\n");
    for line in lines {
        block.push_str(line);
        block.push('\n');
    }
    block.push_str(END);
    block.push('\n');
    let start = current.lines().position(|l| l.trim_end() == begin);
    let end = start.and_then(|b| current.lines().skip(b).position(|l| l.trim_end() == END).map(|n| b + n));
    match (start, end) {
        (Some(b), Some(e)) => {
            let all: Vec<&str> = current.lines().collect();
            let mut out = String::new();
            for line in &all[..b] {
                out.push_str(line);
                out.push('\n');
            }
            out.push_str(&block);
            for line in &all[e + 1..] {
                out.push_str(line);
                out.push('\n');
            }
            out
        }
        _ => {
            let mut out = current.to_string();
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            if !out.is_empty() && !out.ends_with("\n\n") {
                out.push('\n');
            }
            out.push_str(&block);
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_block_is_replaced_in_place_and_other_lines_stay() {
        let lines = vec!["/.gourd/".to_string(), "/model.bin".to_string()];
        let begin = gourd_lineage::GITIGNORE_BEGIN;
        let first = render("*.pyc\n", begin, &lines);
        assert_eq!(first, format!("*.pyc\n\n{begin}\n/.gourd/\n/model.bin\n{END}\n"));
        let edited = format!("{first}notes/\n");
        let again = render(&edited, begin, &["/.gourd/".to_string()]);
        assert_eq!(again, format!("*.pyc\n\n{begin}\n/.gourd/\n{END}\nnotes/\n"));
        assert_eq!(render(&again, begin, &["/.gourd/".to_string()]), again);
    }

    #[test]
    fn each_pipeline_file_has_a_block_of_its_own() {
        let main = gitignore_begin("gourd.ncl");
        assert_eq!(main, gourd_lineage::GITIGNORE_BEGIN, "the block of gourd.ncl keeps its first line");
        let other = gitignore_begin("other.ncl");
        let both = render(&render("", &main, &["/a.txt".to_string()]), &other, &["/b.txt".to_string()]);
        assert_eq!(both, format!("{main}\n/a.txt\n{END}\n\n{other}\n/b.txt\n{END}\n"));
        // Each rewrites its own, up to its own end line.
        let again = render(&both, &main, &["/c.txt".to_string()]);
        assert_eq!(again, format!("{main}\n/c.txt\n{END}\n\n{other}\n/b.txt\n{END}\n"));
        let again = render(&again, &other, &[]);
        assert_eq!(again, format!("{main}\n/c.txt\n{END}\n\n{other}\n{END}\n"));
        // A first line with no end line after it is not a block: a new one
        // is added after it, and nothing before it is taken.
        let broken = format!("{END}\n{other}\nkeep\n");
        assert_eq!(render(&broken, &other, &[]), format!("{broken}\n{other}\n{END}\n"));
        // A control character in a file's name cannot split the line.
        assert_eq!(gitignore_begin("a\nb.ncl").lines().count(), 1);
        assert!(gourd_lineage::is_gitignore_begin(&gitignore_begin("a\nb.ncl")));
    }

    #[test]
    fn patterns_match_paths_literally() {
        assert_eq!(escape("a*b/[x]?.txt"), "a\\*b/\\[x\\]\\?.txt");
        assert_eq!(escape("#notes"), "\\#notes");
        assert_eq!(escape("odd  "), "odd\\ \\ ");
        assert_eq!(escape("plain/file.bin"), "plain/file.bin");
    }
}
