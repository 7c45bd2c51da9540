//! The registry's part of `gourd push` and `gourd pull`: its tags go to and
//! come from the git remote, through the `git` command (the user's remotes,
//! credentials and transports). Pulling renumbers a local move whose tag
//! name the remote took for another move (two clones promoted at once), so
//! that both moves are kept and the next push goes through.

use std::path::Path;
use std::process::Command;

use gourd_core::workspace::Workspace;
use gourd_digest::Digest;
use gourd_lineage::registry::{Action, Registry};

use crate::error::CommandError;

/// At most this many refspecs per `git push`.
const CHUNK: usize = 500;

fn git(workdir: &Path, args: &[&str]) -> Result<(bool, String), CommandError> {
    let output = Command::new("git")
        .arg("-C")
        .arg(workdir)
        .args(args)
        .output()
        .map_err(|e| CommandError::environment(format!("cannot run `git`: {e}")))?;
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    Ok((output.status.success(), text.trim().to_string()))
}

/// Pushes every registry tag to `remote`.
pub fn push(root: &Path, remote: &str) -> Result<(), CommandError> {
    let Some(registry) = Registry::open(root)? else { return Ok(()) };
    let tags = registry.local_tag_names()?;
    if tags.is_empty() {
        return Ok(());
    }
    let (mut sent, mut rejected) = (0, Vec::new());
    for chunk in tags.chunks(CHUNK) {
        let refspecs: Vec<String> = chunk.iter().map(|t| format!("refs/tags/{t}:refs/tags/{t}")).collect();
        let mut args = vec!["push", "--porcelain", remote];
        args.extend(refspecs.iter().map(String::as_str));
        let (ok, output) = git(root, &args)?;
        for line in output.lines() {
            // `FLAG\tFROM:TO\tSUMMARY`: `*` new, `!` rejected, `=` up to date.
            let mut fields = line.split('\t');
            let (Some(flag), Some(refs)) = (fields.next(), fields.next()) else { continue };
            let tag = refs.rsplit(':').next().unwrap_or(refs).trim_start_matches("refs/tags/").to_string();
            match flag.trim() {
                "*" => sent += 1,
                "!" => rejected.push(tag),
                _ => {}
            }
        }
        if !ok && rejected.is_empty() {
            return Err(CommandError::user(format!("pushing registry tags to `{remote}` failed:\n{output}")));
        }
    }
    if !rejected.is_empty() {
        return Err(CommandError::user(format!(
            "`{remote}` has other moves under the names of {} of yours ({})",
            rejected.len(),
            rejected.iter().take(3).map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", ")
        ))
        .with_hint(format!(
            "another clone moved first: `gourd pull {remote}` renumbers your moves after theirs, then push again"
        )));
    }
    if sent > 0 {
        eprintln!("Pushed {sent} registry tag(s) to `{remote}`.");
    }
    Ok(())
}

/// Fetches `remote`'s registry tags and brings them in.
pub fn pull(root: &Path, remote: &str) -> Result<(), CommandError> {
    let Some(registry) = Registry::open(root)? else { return Ok(()) };
    let prefix = format!("refs/gourd-fetch/{remote}/tags/");
    let refspec = format!("+refs/tags/*:{prefix}*");
    let (ok, output) = git(root, &["fetch", "--no-tags", "--quiet", remote, &refspec])?;
    if !ok {
        return Err(CommandError::user(format!("fetching registry tags from `{remote}` failed:\n{output}")));
    }
    let done = registry.integrate(&prefix)?;
    if done.added > 0 {
        eprintln!("Took {} registry tag(s) from `{remote}`.", done.added);
    }
    for (old, new) in &done.renamed {
        eprintln!(
            "note: your move `{old}` had the name of another move on `{remote}`; it is `{new}` now (both are kept)"
        );
    }
    for tag in &done.dropped {
        eprintln!("note: `{remote}` made the move `{tag}` too; its tag replaces yours");
    }
    for tag in &done.blocked {
        eprintln!(
            "note: `{remote}` has the move `{tag}`, and your lightweight tag `{tag}` has its name: yours is kept, theirs not brought in (rename yours with `git tag -m ... NEW {tag} && git tag -d {tag}`, then pull again)"
        );
    }
    if !done.renamed.is_empty() {
        eprintln!("Run `gourd push {remote}` to publish the renumbered moves.");
    }
    Ok(())
}

/// The stage keys of the runs that built registered versions: `gourd push`
/// publishes their results, so that `gourd registry get` works anywhere.
pub fn registered_keys(root: &Path, ws: &Workspace) -> Result<Vec<Digest>, CommandError> {
    let Some(registry) = Registry::open(root)? else { return Ok(Vec::new()) };
    let mut keys = Vec::new();
    for mut events in registry.all_events()?.into_values() {
        let registrations: Vec<usize> = (0..events.len()).filter(|&i| events[i].action == Action::Register).collect();
        registry.load(&mut events, registrations.iter().copied())?;
        for i in registrations {
            let key = events[i].record.as_ref().and_then(|r| r.lineage.as_ref()).and_then(|l| l.key.parse().ok());
            if let Some(key) = key.filter(|k| ws.store.action(k).is_some()) {
                keys.push(key);
            }
        }
    }
    Ok(keys)
}
