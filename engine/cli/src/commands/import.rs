//! `gourd import REPO PATH` and `gourd import-url URL PATH`: data from
//! elsewhere, brought in as a tracked source with its origin recorded (as
//! `dvc import` and `dvc import-url` do). From a git repository, a path git
//! tracks is taken from the checkout, and one that repository tracks with
//! `gourd add` is pulled from its remote cache.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use gourd_core::workspace::Workspace;

use crate::error::CommandError;
use crate::workspace::{Location, workspace_path};

#[derive(clap::Args)]
pub struct RepoArgs {
    /// The git repository (a URL or a path).
    repo: String,
    /// The file or folder in it.
    path: String,
    /// Where it goes here (default: its name, in the current folder).
    #[arg(short = 'o', long, value_name = "PATH")]
    out: Option<PathBuf>,
    /// The branch, tag or commit to take it from (default: its default branch).
    #[arg(long, value_name = "REV")]
    rev: Option<String>,
    /// Replace what is at the destination.
    #[arg(long)]
    force: bool,
}

#[derive(clap::Args)]
pub struct UrlArgs {
    /// Where to download from (`https://`, `http://` or `file://`).
    url: String,
    /// Where it goes here (default: the URL's last path component).
    out: Option<PathBuf>,
    /// Replace what is at the destination.
    #[arg(long)]
    force: bool,
}

pub fn repo(location: &Location, args: &RepoArgs) -> Result<ExitCode, CommandError> {
    let checkout = tempfile::Builder::new().prefix("gourd-import-").tempdir()?;
    let dir = checkout.path();
    if args.repo.starts_with('-') {
        return Err(CommandError::user(format!("`{}`: a repository, not an option", args.repo)));
    }
    if args.rev.as_deref().is_some_and(|rev| rev.starts_with('-')) {
        return Err(CommandError::user(format!(
            "`--rev {}`: a revision, not an option",
            args.rev.as_deref().unwrap_or_default()
        )));
    }
    run_git(None, &["clone", "--quiet", "--no-checkout", "--", &args.repo, &dir.to_string_lossy()])?;
    let rev = args.rev.as_deref().unwrap_or("HEAD");
    run_git(Some(dir), &["checkout", "--quiet", rev])?;
    let commit = run_git(Some(dir), &["rev-parse", "HEAD"])?;
    let inside = sanitize(&args.path)?;
    let source = dir.join(&inside);
    if std::fs::symlink_metadata(&source).is_err() {
        // Tracked by gourd there: its remote cache has it.
        let tracked = crate::sources::read(dir).is_ok_and(|s| s.sources.keys().any(|p| p == &inside));
        if !tracked {
            return Err(CommandError::user(format!(
                "`{}` has no `{}` at {rev} (neither in git nor tracked with `gourd add`)",
                args.repo, args.path
            )));
        }
        let exe = std::env::current_exe()?;
        let pulled = Command::new(exe).arg("-C").arg(dir).arg("pull").output()?;
        if std::fs::symlink_metadata(&source).is_err() {
            return Err(CommandError::user(format!(
                "`{}` tracks `{}` with gourd, but its remote cache did not give it back:\n{}",
                args.repo,
                args.path,
                String::from_utf8_lossy(&pulled.stderr).trim()
            )));
        }
    }
    let name = Path::new(&inside).file_name().map(PathBuf::from).unwrap_or_else(|| PathBuf::from("import"));
    let out = args.out.clone().unwrap_or(name);
    let origin = format!("{}@{}:{}", args.repo, commit.trim(), inside);
    bring_in(location, &source, &out, origin, args.force)
}

pub fn url(location: &Location, args: &UrlArgs) -> Result<ExitCode, CommandError> {
    let scheme_ok = ["https://", "http://", "file://"].iter().any(|s| args.url.starts_with(s));
    if !scheme_ok {
        return Err(CommandError::user(format!("`{}`: expected an https://, http:// or file:// URL", args.url)));
    }
    let name = args.url.trim_end_matches('/').rsplit('/').next().filter(|n| !n.is_empty()).unwrap_or("download");
    let name = name.split(['?', '#']).next().unwrap_or(name);
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from(name));
    // curl reads a local folder as an empty file.
    if let Some(local) = args.url.strip_prefix("file://") {
        if std::path::Path::new(local).is_dir() {
            return Err(CommandError::user(format!("`{}` is a folder; `import-url` downloads a file", args.url))
                .with_hint(
                    "`gourd add` the folder from inside the workspace, or `gourd import` it from a git repository",
                ));
        }
    }
    let download = tempfile::Builder::new().prefix("gourd-import-").tempdir()?;
    let file = download.path().join("data");
    let fetched = Command::new("curl")
        .args(["--fail", "--silent", "--show-error", "--location", "--proto", "=https,http,file", "--output"])
        .arg(&file)
        .arg(&args.url)
        .output()
        .map_err(|e| CommandError::environment(format!("cannot run `curl`: {e}")))?;
    if !fetched.status.success() {
        return Err(CommandError::user(format!(
            "downloading `{}` failed: {}",
            crate::sources::public_origin(&args.url),
            crate::sources::public_origin(String::from_utf8_lossy(&fetched.stderr).trim())
        )));
    }
    // A private local file stays private: `gourd add` keeps its mode, and
    // the cache stores it owner-only (curl writes the copy by the umask).
    if let Some(local) = args.url.strip_prefix("file://") {
        use std::os::unix::fs::PermissionsExt;
        if std::fs::metadata(local).is_ok_and(|meta| meta.permissions().mode() & 0o077 == 0) {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    bring_in(location, &file, &out, args.url.clone(), args.force)
}

/// Copies `from` to `out` in the workspace and tracks it, with `origin`.
fn bring_in(
    location: &Location,
    from: &Path,
    out: &Path,
    origin: String,
    force: bool,
) -> Result<ExitCode, CommandError> {
    let loaded = location.load_checked(false)?;
    let path = workspace_path(&loaded.root, out)?;
    let ws = Workspace::open(&loaded.root)?;
    let _lock = crate::workspace::lock(&ws)?;
    let canonical_root = fs_err::canonicalize(&ws.root)?;
    gourd_core::guard::check(&canonical_root, &path, &[]).map_err(|e| CommandError::user(format!("`{path}`: {e}")))?;
    let dest = ws.abs(&path);
    let exists = std::fs::symlink_metadata(&dest).is_ok();
    if exists && !force {
        return Err(CommandError::user(format!("`{path}` exists")).with_hint("`--force` replaces it"));
    }
    // Everything that would refuse the new source, before the old is touched.
    crate::sources::admissible(&ws, &loaded.pipeline, &path)?;
    refuse_links(from)?;
    if exists {
        // The version the sources file records, when the cache holds it,
        // is replaced. Anything else there (local edits, files added by
        // hand, a version no cache here holds) is moved aside, as `gourd
        // run` does with what it did not write.
        let recorded = crate::sources::read(&ws.root)?.sources.get(path.as_str()).cloned();
        let now = ws.hash(&path)?.map(|tree| tree.digest().to_string());
        let cached =
            |source: &crate::sources::Source| {
                source.key.parse().ok().and_then(|key| ws.store.action(&key)).is_some_and(|action| {
                    action.outputs.values().all(|output| ws.store.has(output.kind, &output.digest))
                })
            };
        if recorded.as_ref().is_some_and(|source| Some(&source.digest) == now.as_ref() && cached(source)) {
            gourd_core::fsutil::remove_path(&dest)?;
        } else {
            let moved = gourd_core::run::move_aside(&ws, &path).map_err(|(to, err)| {
                CommandError::environment(format!("moving `{path}` aside to `{}`: {err}", to.display()))
            })?;
            eprintln!("note: moved `{path}` aside to `{moved}` (it was not the imported version)");
        }
    }
    if let Some(parent) = dest.parent() {
        fs_err::create_dir_all(parent)?;
    }
    copy(from, &dest)?;
    let source = crate::sources::add(&ws, &loaded.pipeline, &path, Some(origin.clone()))?;
    if let Err(err) = crate::gitignore::sync(&loaded.file, Some(&loaded.pipeline), false) {
        eprintln!("note: could not update `.gitignore`: {err}");
    }
    println!(
        "Imported `{path}` ({}, {}) from {}",
        source.kind,
        crate::ui::bytes(source.size),
        source.origin.as_deref().unwrap_or_default()
    );
    eprintln!("Commit `{}`; `gourd push` shares the data.", crate::sources::FILE);
    Ok(ExitCode::SUCCESS)
}

/// The refusal of a link to import (see [`refuse_links`]).
fn a_link(path: &Path) -> CommandError {
    CommandError::user(format!("`{}` is a symbolic link; gourd imports files and folders", path.display()))
}

/// Refuses a file or folder to import that is or holds a link, before
/// anything at the destination is touched (see [`copy`]).
fn refuse_links(from: &Path) -> Result<(), CommandError> {
    let meta = fs_err::symlink_metadata(from)?;
    if meta.file_type().is_symlink() {
        return Err(a_link(from));
    }
    if meta.is_dir() {
        for entry in fs_err::read_dir(from)? {
            let entry = entry?;
            if entry.file_name() != ".git" {
                refuse_links(&entry.path())?;
            }
        }
    }
    Ok(())
}

/// A copy of a file or folder; links are not followed into, and are refused.
fn copy(from: &Path, to: &Path) -> Result<(), CommandError> {
    let meta = fs_err::symlink_metadata(from)?;
    if meta.file_type().is_symlink() {
        return Err(a_link(from));
    }
    if meta.is_dir() {
        fs_err::create_dir_all(to)?;
        for entry in fs_err::read_dir(from)? {
            let entry = entry?;
            if entry.file_name() == ".git" {
                continue;
            }
            copy(&entry.path(), &to.join(entry.file_name()))?;
        }
    } else {
        fs_err::copy(from, to)?;
    }
    Ok(())
}

/// A repository-relative path, without `..`, `.git` or a leading `/`.
fn sanitize(path: &str) -> Result<String, CommandError> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    if parts.is_empty() || parts.iter().any(|p| *p == ".." || *p == ".git") {
        return Err(CommandError::user(format!("`{path}`: name a file or folder inside the repository")));
    }
    Ok(parts.join("/"))
}

fn run_git(dir: Option<&Path>, args: &[&str]) -> Result<String, CommandError> {
    let mut command = Command::new("git");
    if let Some(dir) = dir {
        command.arg("-C").arg(dir);
    }
    let output =
        command.args(args).output().map_err(|e| CommandError::environment(format!("cannot run `git`: {e}")))?;
    if !output.status.success() {
        return Err(CommandError::user(format!(
            "git {}: {}",
            args.first().unwrap_or(&""),
            crate::sources::public_origin(String::from_utf8_lossy(&output.stderr).trim())
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
