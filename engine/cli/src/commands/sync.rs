//! `gourd push` and `gourd pull`: exchange lineage and the registry's tags
//! with a git remote.
//!
//! With a remote cache configured (see `remote.rs`), `push` also uploads the
//! results of every stage's last run in this workspace, and `pull` downloads
//! the results lineage names (the latest record of each stage), so that a
//! `gourd run` on a fresh clone restores instead of executing.
//!
//! Lineage lives on `refs/gourd/lineage`, which `git push` and `git clone` do
//! not carry by default. These commands move it explicitly, through the `git`
//! command so that the user's remotes, credentials and transports all work.
//! Pulling merges: when both sides recorded runs, the merged lineage keeps
//! both histories and, for each stage, the record that finished last.

use std::process::{Command, ExitCode};

use gourd_lineage::{Integration, LINEAGE_REF, Lineage};

use crate::error::CommandError;
use crate::workspace::Location;

#[derive(clap::Args)]
pub struct Args {
    /// The git remote.
    #[arg(default_value = "origin")]
    remote: String,
}

fn open(location: &Location) -> Result<Lineage, CommandError> {
    let root = location.root()?;
    Lineage::open(&root)?.ok_or_else(|| {
        CommandError::user(format!("`{}` is not in a git repository; there is no lineage to share", root.display()))
    })
}

fn git(lineage: &Lineage, args: &[&str]) -> Result<(bool, String), CommandError> {
    let output = Command::new("git")
        .arg("-C")
        .arg(lineage.workdir())
        .args(args)
        .output()
        .map_err(|e| CommandError::environment(format!("cannot run `git`: {e}")))?;
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    Ok((output.status.success(), text.trim().to_string()))
}

/// The remote cache, when the pipeline (or the environment) names one.
fn remote_cache(
    location: &Location,
) -> Result<Option<std::sync::Arc<dyn gourd_core::remote::RemoteCache>>, CommandError> {
    match location.load_checked(false) {
        Ok(loaded) => Ok(crate::remote::from_pipeline(&loaded.pipeline, &loaded.root)?.and_then(|r| r.cache)),
        Err(_) => Ok(None),
    }
}

/// Runs `tasks` a few at a time, with a progress bar on a terminal.
async fn transfer<T>(
    what: &str,
    tasks: Vec<impl std::future::Future<Output = Result<T, gourd_core::remote::RemoteFailure>>>,
) -> Result<Vec<T>, gourd_core::remote::RemoteFailure> {
    use futures::StreamExt;
    use std::io::IsTerminal;
    let bar = if std::io::stderr().is_terminal() {
        let style = indicatif::ProgressStyle::with_template("{msg} {bar:30} {pos}/{len}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        indicatif::ProgressBar::new(tasks.len() as u64).with_style(style).with_message(what.to_string())
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut done = Vec::with_capacity(tasks.len());
    let mut running = futures::stream::iter(tasks).buffer_unordered(4);
    while let Some(result) = running.next().await {
        bar.inc(1);
        done.push(result?);
    }
    bar.finish_and_clear();
    Ok(done)
}

fn runtime() -> Result<tokio::runtime::Runtime, CommandError> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

pub fn push(location: &Location, args: &Args) -> Result<ExitCode, CommandError> {
    if let Some(cache) = remote_cache(location)? {
        let loaded = location.load_checked(false)?;
        let ws = gourd_core::workspace::Workspace::open(&loaded.root)?;
        let mut keys: Vec<_> =
            loaded.pipeline.stages.iter().filter_map(|s| ws.last_run(&s.name)).map(|l| l.key).collect();
        // Registered versions, so that `gourd registry get` works anywhere.
        keys.extend(crate::commands::registry::sync::registered_keys(&loaded.root, &ws)?);
        // Tracked sources, so that a clone gets its data back.
        keys.extend(crate::sources::keys(&loaded.root));
        keys.sort();
        keys.dedup();
        let actions: Vec<_> = keys.iter().filter_map(|key| ws.store.action(key)).collect();
        let sent = runtime()?.block_on(async {
            let uploads = actions.iter().map(|action| cache.publish(action, &ws.store));
            transfer("pushing results", uploads.collect()).await.map(|done| done.len())
        });
        match sent {
            Ok(n) => eprintln!("Pushed {n} results to {}.", cache.describe()),
            Err(err) => {
                return Err(CommandError::environment(format!("pushing to {}: {err}", cache.describe())));
            }
        }
    }
    let lineage = open(location)?;
    // A repository with no git remote at all yet: the results went to the
    // remote cache; lineage stays here until there is one. (A remote named
    // but missing, among others, is an error from git below.)
    let (listed, remotes) = git(&lineage, &["remote"])?;
    if listed && remotes.is_empty() {
        no_such_remote(&args.remote)?;
        let cache_note = if remote_cache(location)?.is_some() { "results are in the remote cache; " } else { "" };
        eprintln!(
            "note: this repository has no git remote `{}`: {cache_note}lineage and registry tags stay here \
             until `git remote add {} URL` and `gourd push`",
            args.remote, args.remote
        );
        return Ok(ExitCode::SUCCESS);
    }
    crate::commands::registry::sync::push(lineage.workdir(), &args.remote)?;
    if lineage.latest()?.is_empty() && lineage.history()?.is_empty() {
        eprintln!("Nothing to push: no lineage recorded yet.");
        return Ok(ExitCode::SUCCESS);
    }
    let refspec = format!("{LINEAGE_REF}:{LINEAGE_REF}");
    let (ok, output) = git(&lineage, &["push", "--porcelain", &args.remote, &refspec])?;
    if !ok {
        let mut err = CommandError::user(format!("pushing lineage to `{}` failed:\n{output}", args.remote));
        if output.contains("rejected") || output.contains("non-fast-forward") || output.contains("fetch first") {
            err = err.with_hint(format!(
                "the remote has lineage this repository lacks: run `gourd pull {}` first",
                args.remote
            ));
        }
        return Err(err);
    }
    eprintln!("Pushed lineage to `{}`.", args.remote);
    Ok(ExitCode::SUCCESS)
}

pub fn pull(location: &Location, args: &Args) -> Result<ExitCode, CommandError> {
    let lineage = open(location)?;
    // A repository with no git remote at all yet, as `push` says: nothing
    // to fetch lineage or tags from; results may still be in the remote
    // cache. (A remote named but missing, among others, is an error.)
    let (listed, remotes) = git(&lineage, &["remote"])?;
    if listed && remotes.is_empty() {
        no_such_remote(&args.remote)?;
        eprintln!(
            "note: this repository has no git remote `{}`: there is no lineage or registry to pull (`git remote add origin URL` first)",
            args.remote
        );
    } else {
        pull_lineage(&lineage, &args.remote)?;
    }
    if let Some(cache) = remote_cache(location)? {
        let ws = gourd_core::workspace::Workspace::open(&location.root()?)?;
        let latest = lineage.latest()?;
        let keys: Vec<gourd_digest::Digest> = latest.values().filter_map(|r| r.key.parse().ok()).collect();
        // What each result must hold: the outputs its lineage record names,
        // no others (as `gourd run` checks a result against the stage).
        let named: std::collections::HashMap<String, Vec<&String>> =
            latest.values().map(|r| (r.key.clone(), r.outs.keys().collect())).collect();
        use gourd_core::remote::RemoteFailure;
        let fetched = runtime()?.block_on(async {
            let missing = keys.into_iter().filter(|key| ws.store.action(key).is_none());
            // A damaged or incomplete result is passed over (`gourd run`
            // runs its stage): one bad object must not keep every other
            // result from a clone. A remote that cannot be reached stops it.
            let downloads = missing
                .map(|key| {
                    let fetch = cache.fetch(key, &ws.store);
                    async move {
                        match fetch.await {
                            Ok(found) => Ok(Ok(found)),
                            Err(RemoteFailure::Rejected(why)) => Ok(Err(why)),
                            Err(failure) => Err(failure),
                        }
                    }
                })
                .collect();
            let (mut n, mut passed_over) = (0, Vec::new());
            for outcome in transfer("pulling results", downloads).await? {
                match outcome {
                    Ok(Some(action)) => {
                        let holds: Vec<&String> = action.outputs.keys().collect();
                        if named.get(&action.key.to_string()).is_some_and(|outs| *outs != holds) {
                            passed_over.push(format!(
                                "the result {} names other outputs than its lineage record ({}): rejected",
                                action.key,
                                holds.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", ")
                            ));
                            continue;
                        }
                        ws.store.put_action(&action).map_err(|e| RemoteFailure::Rejected(e.to_string()))?;
                        n += 1;
                    }
                    Ok(None) => {}
                    Err(why) => passed_over.push(why),
                }
            }
            Ok::<_, RemoteFailure>((n, passed_over))
        });
        match fetched {
            Ok((n, passed_over)) => {
                eprintln!("Pulled {n} results from {}.", cache.describe());
                for why in &passed_over {
                    eprintln!("warning: a result was not pulled: {why}");
                }
                if !passed_over.is_empty() {
                    eprintln!("note: `gourd run` runs the stages whose results were not pulled");
                }
            }
            Err(err) => {
                return Err(CommandError::environment(format!("pulling from {}: {err}", cache.describe())));
            }
        }
        let (restored, unavailable) =
            runtime()?.block_on(crate::sources::restore_missing(&ws, Some(cache.as_ref())))?;
        if !restored.is_empty() {
            eprintln!("Restored {} source(s): {}.", restored.len(), restored.join(", "));
        }
        for path in unavailable {
            eprintln!("warning: source `{path}` is not in {}", cache.describe());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The registry's tags and the lineage of `remote`, brought in.
/// In a repository with no git remote yet, the default `origin` is said in
/// a note (the results may still travel through the remote cache); a
/// remote the user named is an error, as with `git push NAME`.
/// Where a git remote's lineage is fetched to: `refs/gourd/remotes/NAME/lineage`,
/// with `/` in NAME written `%2F` (and `%` as `%25`): remotes `team` and
/// `team/lineage` would otherwise need one ref under another.
fn remote_lineage_ref(remote: &str) -> String {
    format!("refs/gourd/remotes/{}/lineage", remote.replace('%', "%25").replace('/', "%2F"))
}

/// Fetches every git remote's lineage to `refs/gourd/remotes/NAME/lineage`
/// (the local lineage is left as it is), so that what other clones' runs
/// name is known here. A remote with no lineage yet is fine; one that cannot
/// be fetched (offline, gone, asking for a password) is said and passed
/// over when it was fetched before (what it held then stays known), and is
/// an error when it never was. Returns the remotes passed over.
pub fn fetch_remote_lineages(lineage: &Lineage) -> Result<Vec<String>, CommandError> {
    let (listed, remotes) = git(lineage, &["remote"])?;
    if !listed {
        return Err(CommandError::environment(format!("`git remote` failed: {remotes}")));
    }
    let mut passed_over = Vec::new();
    for remote in remotes.lines().map(str::trim).filter(|r| !r.is_empty()) {
        let refspec = format!("+{LINEAGE_REF}:{}", remote_lineage_ref(remote));
        // Never a prompt for a password: this is a read in passing.
        let (ok, output) = git(lineage, &["-c", "core.askPass=true", "fetch", "--no-tags", "--", remote, &refspec])?;
        if !ok && !output.contains("couldn't find remote ref") {
            let first = output.lines().find(|l| !l.trim().is_empty()).unwrap_or_default();
            // Never fetched: nothing here says what its clones' runs name.
            let known = remote_lineage_ref(remote);
            let (known, _) = git(lineage, &["rev-parse", "--verify", "--quiet", &known])?;
            if !known {
                return Err(CommandError::user(format!(
                    "cannot fetch the lineage of git remote `{remote}` ({first}), and it was never fetched: what its clones' runs name is not known here"
                ))
                .with_hint(format!(
                    "make `{remote}` reachable, or remove it (`git remote remove {}{remote}`) if it is gone for good; `--force` removes regardless of any lineage",
                    if remote.starts_with('-') { "-- " } else { "" }
                )));
            }
            eprintln!(
                "warning: could not fetch the lineage of git remote `{remote}` ({first}); what it held when last fetched is kept"
            );
            passed_over.push(remote.to_string());
        }
    }
    Ok(passed_over)
}

fn no_such_remote(remote: &str) -> Result<(), CommandError> {
    if remote == "origin" {
        return Ok(());
    }
    Err(CommandError::user(format!("this repository has no git remote `{remote}`"))
        .with_hint("`git remote -v` lists the remotes; `git remote add NAME URL` adds one"))
}

fn pull_lineage(lineage: &Lineage, remote: &str) -> Result<(), CommandError> {
    crate::commands::registry::sync::pull(lineage.workdir(), remote)?;
    let fetched = remote_lineage_ref(remote);
    let refspec = format!("+{LINEAGE_REF}:{fetched}");
    let (ok, output) = git(lineage, &["fetch", "--no-tags", remote, &refspec])?;
    if ok {
        let message = match lineage.integrate(&fetched)? {
            Integration::Created => "Took the lineage of",
            Integration::UpToDate => "Lineage already includes everything from",
            Integration::FastForward => "Fast-forwarded lineage to",
            Integration::Merged => "Merged lineage with",
        };
        eprintln!("{message} `{remote}`.");
    } else if output.contains("couldn't find remote ref") {
        // Tracked sources may still be in the remote cache.
        eprintln!("`{remote}` has no lineage yet.");
    } else {
        return Err(CommandError::user(format!("fetching lineage from `{remote}` failed:\n{output}")));
    }
    Ok(())
}
