//! `gourd registry get NAME@STAGE -o DIR`: the bytes of a registered
//! version, from the local cache or else the remote cache, verified against
//! the digest its registration recorded, on any clone of the repository.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use gourd_core::path::WsPath;
use gourd_core::store::{OutputRecord, StoreError};
use gourd_core::workspace::Workspace;
use gourd_digest::{Digest, EntryKind};

use super::query::{Resolved, resolve_reference};
use super::{instant, open, short};
use crate::error::CommandError;
use crate::workspace::Location;

#[derive(clap::Args)]
pub struct GetArgs {
    /// `NAME@STAGE`, `NAME@vX.Y.Z` or `NAME@latest`.
    reference: String,
    /// The folder to put it in (created if missing); the artifact keeps its
    /// own name inside it.
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    output: PathBuf,
    /// As the registry was at this time.
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
    /// Replace what is at `DIR/NAME` already when it holds other bytes
    /// (without it, that is refused and nothing is touched).
    #[arg(long)]
    force: bool,
}

pub fn get(location: &Location, args: &GetArgs) -> Result<ExitCode, CommandError> {
    let (root, registry) = open(location)?;
    let at = args.at.as_deref().map(instant).transpose()?;
    let resolved = resolve_reference(&registry, &args.reference, at)?;
    // What goes into the folder `-o` names follows the rule for `-o` files:
    // nothing into `.git` or `.gourd`.
    crate::ui::refuse_reserved_output(&args.output.join(&resolved.name))?;
    if std::fs::symlink_metadata(&args.output).is_ok() && !args.output.is_dir() {
        return Err(CommandError::user(format!(
            "`-o {}` is not a folder: `-o` names the folder the version goes into",
            args.output.display()
        )));
    }
    let fetched = fetch(location, &root, &resolved, &args.output, args.force)?;
    println!("{}", fetched.path.display());
    match &fetched.source {
        Some(source) => eprintln!(
            "Restored {} from {source} to `{}`; every byte matches {}.",
            fetched.what,
            fetched.path.display(),
            short(&fetched.digest.to_string())
        ),
        None => eprintln!(
            "{} is at `{}` already; every byte matches {}.",
            fetched.what,
            fetched.path.display(),
            short(&fetched.digest.to_string())
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// A registered version's files, put in place.
pub struct Fetched {
    /// `NAME vX.Y.Z`, for messages.
    pub what: String,
    pub path: PathBuf,
    /// Where the bytes came from: the local cache or a remote's description;
    /// `None` when they were in place already.
    pub source: Option<String>,
    pub digest: Digest,
}

/// Puts the files of `resolved` in `into` (created if missing), under the
/// artifact's own name, from the local cache or else the remote cache,
/// verified against the digest its registration recorded. Something else
/// there already is replaced only with `replace`.
pub fn fetch(
    location: &Location,
    root: &Path,
    resolved: &Resolved,
    into: &Path,
    replace: bool,
) -> Result<Fetched, CommandError> {
    let what = format!("{} {}", resolved.name, resolved.version);
    let record = resolved.registration.as_ref().and_then(|e| e.record.clone());
    let Some((record, digest)) = record.and_then(|r| Some((r.clone(), r.digest?))) else {
        return Err(CommandError::user(format!("{what} was registered without gourd: no digest to fetch it by"))
            .with_hint("check out its commit and build it with `gourd run`"));
    };
    let digest: Digest = digest
        .parse()
        .map_err(|_| CommandError::user(format!("{what}: the recorded digest `{digest}` is not valid")))?;
    let kind = if record.kind.as_deref() == Some("dir") { EntryKind::Dir } else { EntryKind::File };
    let output = OutputRecord { kind, digest, executable: record.executable, private: false, cached: true };
    let ws = Workspace::open(root)?;
    let name = record
        .path
        .as_deref()
        .and_then(|p| p.rsplit('/').next())
        .filter(|n| !n.is_empty())
        .unwrap_or(resolved.name.as_str())
        .to_string();
    // The record comes from a tag, which anyone who can push may write:
    // `x/..` or `.` would make `DIR/NAME` the folder above `DIR`, or `DIR`
    // itself, which `--force` replaces.
    if !is_file_name(&name) {
        return Err(CommandError::user(format!(
            "{what}: its registration records the path `{}`, which does not end in a file or folder name; nothing was changed",
            record.path.as_deref().unwrap_or(&name)
        ))
        .with_hint("the tag was not written by gourd; check who pushed it (`git show` the tag)"));
    }
    let dest = into.join(&name);
    if let Ok(meta) = std::fs::symlink_metadata(&dest) {
        // A link to the same bytes is not the version: it follows whatever
        // it points to.
        let there = (!meta.file_type().is_symlink())
            .then(|| ws.hashing.hash(&dest).ok().flatten())
            .flatten()
            .map(|tree| OutputRecord::from_tree(&tree, true).digest);
        if there == Some(digest) {
            return Ok(Fetched { what, path: dest, source: None, digest });
        }
        if !replace {
            return Err(CommandError::user(format!(
                "`{}` holds something other than {what} already; nothing was changed",
                dest.display()
            ))
            .with_hint("choose another folder with `-o`, or pass `--force` to replace it"));
        }
    }
    let mut source = "the local cache".to_string();
    if !ws.store.has(kind, &digest) {
        let key = record.lineage.as_ref().and_then(|l| l.key.parse::<Digest>().ok());
        match fetch_from_remote(location, &ws, key)? {
            Some(remote) if ws.store.has(kind, &digest) => source = remote,
            Some(remote) => {
                return Err(CommandError::user(format!("{what} is in neither the local cache nor {remote}"))
                    .with_hint("whoever built it can publish it with `gourd push` (with a remote cache configured)"));
            }
            None => {
                return Err(CommandError::user(format!(
                    "{what} is not in the local cache, and no remote cache is configured"
                ))
                .with_hint("configure the pipeline's `remote` (or GOURD_REMOTE_*), or run `gourd run` at its commit"));
            }
        }
    }
    fs_err::create_dir_all(into)?;
    // `--force` over something else: inside the workspace (not `.gourd`,
    // where `gourd serve` keeps its versions) it ends in `.gourd-displaced/`
    // (as with `gourd run`), not deleted; and a failed restore puts it back.
    let displaced = std::fs::symlink_metadata(&dest).is_ok().then(|| inside_workspace(&ws, &dest)).flatten();
    let held = displaced.as_ref().map(|_| gourd_core::fsutil::temp_beside(&dest));
    if let Some(held) = &held {
        fs_err::rename(&dest, held)?;
    }
    let restored = ws.store.restore(&output, &dest);
    if let (Some(held), Some(rel)) = (&held, &displaced) {
        if restored.is_err() {
            fs_err::rename(held, &dest)?;
        } else {
            // The old one back at its name for a moment, to be moved aside.
            let new = gourd_core::fsutil::temp_beside(&dest);
            fs_err::rename(&dest, &new)?;
            fs_err::rename(held, &dest)?;
            let moved = gourd_core::run::move_aside(&ws, rel);
            fs_err::rename(&new, &dest)?;
            match moved {
                Ok(to) => eprintln!("note: moved `{rel}` aside to `{to}` (`--force` replaced it)"),
                Err((to, err)) => {
                    return Err(CommandError::environment(format!(
                        "moving `{rel}` aside to `{}`: {err}",
                        to.display()
                    )));
                }
            }
        }
    }
    match restored {
        Ok(()) => {}
        Err(err @ StoreError::Corrupt { .. }) => {
            return Err(CommandError::environment(format!("{what}: {err}"))
                .with_hint("run `gourd registry get` again to fetch it from the remote cache"));
        }
        Err(err @ StoreError::Missing { .. }) => return Err(CommandError::user(format!("{what}: {err}"))),
        Err(err) => return Err(CommandError::environment(format!("restoring {what} to `{}`: {err}", dest.display()))),
    }
    Ok(Fetched { what, path: dest, source: Some(source), digest })
}

/// `path` as a path of the workspace, when it lies in it (its folder's links
/// followed) and not in `.gourd`.
fn inside_workspace(ws: &Workspace, path: &Path) -> Option<WsPath> {
    let absolute = std::path::absolute(path).ok()?;
    let real = std::fs::canonicalize(absolute.parent()?).ok()?.join(absolute.file_name()?);
    let rel = real.strip_prefix(std::fs::canonicalize(&ws.root).ok()?).ok()?;
    WsPath::new(rel.to_str()?).ok().filter(|rel| !rel.as_str().starts_with(".gourd/"))
}

/// Fetches the result of stage key `key` (the run that built the version)
/// from the remote cache into the store. Returns the remote's description,
/// or `None` when no remote cache is configured.
fn fetch_from_remote(location: &Location, ws: &Workspace, key: Option<Digest>) -> Result<Option<String>, CommandError> {
    let Some(pipeline) = super::gates::pipeline(location)? else { return Ok(None) };
    let Some(cache) = crate::remote::from_pipeline(&pipeline, &ws.root)?.and_then(|r| r.cache) else { return Ok(None) };
    let Some(key) = key else { return Ok(Some(cache.describe())) };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    match runtime.block_on(cache.fetch(key, &ws.store)) {
        Ok(Some(action)) => ws.store.put_action(&action)?,
        Ok(None) => {}
        Err(err) => return Err(CommandError::environment(format!("fetching from {}: {err}", cache.describe()))),
    }
    Ok(Some(cache.describe()))
}

/// Whether `name` names one entry of a folder: not `.`, `..` or empty, and
/// holding no `/` or NUL.
fn is_file_name(name: &str) -> bool {
    use std::path::Component;
    let mut parts = Path::new(name).components();
    matches!(parts.next(), Some(Component::Normal(_))) && parts.next().is_none() && !name.contains(['/', '\0'])
}
