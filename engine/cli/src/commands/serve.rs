//! `gourd serve MODEL`: a model as a prediction service (docs/serving.md).
//!
//! MODEL is a model folder of the built-in steps (`models/best`, served as
//! `best`, its version the folder's digest) or a registry reference
//! (`pumpkin@prod`, served as `pumpkin`, its version the registry's). The
//! model runs on libtorch in a child `gourd-step serve`, so `gourd` itself
//! still never loads libtorch. This process stays as its parent: for a
//! reference that can move (a stage, `@latest`) it looks at the registry
//! every `--poll` seconds and, when the reference names another version,
//! fetches that version and hands it to the child, which loads it beside the
//! one serving and switches between two batches. SIGTERM and Ctrl-C are
//! passed on; the child finishes the requests in flight.

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use gourd_core::hash::Hashing;
use gourd_digest::DigestAlgorithm;
use tokio::io::AsyncWriteExt;
use tokio::signal::unix::{SignalKind, signal};

use super::registry::get::fetch;
use super::registry::query::resolve_reference;
use crate::error::CommandError;
use crate::workspace::Location;

#[derive(clap::Args)]
pub struct Args {
    /// A model folder (`models/best`) or a registry reference (`pumpkin@prod`).
    model: String,
    /// The port to listen on (0: any free port, printed).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// The address to listen on; `0.0.0.0` for every interface.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Most rows in one batch (1: no batching).
    #[arg(long, default_value_t = 32, value_name = "ROWS")]
    max_batch_size: usize,
    /// How long a batch's first request may wait for others (Triton's
    /// `max_queue_delay`); batches also form from what waits already.
    #[arg(long, default_value_t = 0.0, value_name = "MS")]
    max_queue_delay_ms: f64,
    /// Requests waiting at most; more are answered 503 at once.
    #[arg(long, default_value_t = 256, value_name = "REQUESTS")]
    queue_size: usize,
    /// A request not answered within this gets 504.
    #[arg(long, default_value_t = 30_000, value_name = "MS")]
    timeout_ms: u64,
    /// Largest request body taken.
    #[arg(long, default_value_t = 32 << 20, value_name = "BYTES")]
    max_body_bytes: usize,
    /// Most rows (images) in one request.
    #[arg(long, default_value_t = 256, value_name = "ROWS")]
    max_request_rows: usize,
    /// Log each input's statistics (and the model's embedding of it) here, for
    /// the drift step (docs/serving.md, "The input log").
    #[arg(long, value_name = "DIR")]
    log_dir: Option<PathBuf>,
    /// Rotate the input log when a file passes this size.
    #[arg(long, default_value_t = 64 << 20, value_name = "BYTES")]
    log_max_bytes: u64,
    /// Rotated log files kept.
    #[arg(long, default_value_t = 10, value_name = "FILES")]
    log_keep: usize,
    /// Threads libtorch uses for a batch (default: every core).
    #[arg(long, value_name = "N")]
    threads: Option<i32>,
    /// Run the model on the first CUDA device.
    #[arg(long)]
    cuda: bool,
    /// How often to look for a move of the registry stage served, in seconds.
    #[arg(long, default_value_t = 1.0, value_name = "SECONDS")]
    poll: f64,
}

/// What is served, and where its files are.
struct Source {
    name: String,
    version: String,
    folder: PathBuf,
    /// The registry reference to follow, when it can move.
    follow: Option<String>,
}

pub fn run(location: &Location, args: &Args) -> Result<ExitCode, CommandError> {
    if !(args.poll > 0.0 && args.poll.is_finite()) {
        return Err(CommandError::user("`--poll` must be a positive number of seconds"));
    }
    if !(args.max_queue_delay_ms >= 0.0 && args.max_queue_delay_ms.is_finite()) {
        return Err(CommandError::user("`--max-queue-delay-ms` must be zero or more"));
    }
    for (flag, value) in [
        ("--max-batch-size", args.max_batch_size),
        ("--queue-size", args.queue_size),
        ("--max-request-rows", args.max_request_rows),
        // Every request would get 504, or 400 for any body at all.
        ("--timeout-ms", usize::try_from(args.timeout_ms).unwrap_or(usize::MAX)),
        ("--max-body-bytes", args.max_body_bytes),
    ] {
        if value == 0 {
            return Err(CommandError::user(format!("`{flag}` must be at least 1")));
        }
    }
    if args.max_queue_delay_ms >= args.timeout_ms as f64 {
        return Err(CommandError::user(format!(
            "`--max-queue-delay-ms {}` is not below `--timeout-ms {}`: a request waiting that long for its batch would time out",
            args.max_queue_delay_ms, args.timeout_ms
        )));
    }
    if args.threads.is_some_and(|n| n < 1) {
        return Err(CommandError::user("`--threads` must be at least 1"));
    }
    if let Some(dir) = &args.log_dir
        && dir.components().any(|c| c.as_os_str() == ".git" || c.as_os_str() == ".gourd")
    {
        return Err(CommandError::user(format!(
            "`--log-dir {}` is inside `.git` or `.gourd`, which gourd never writes logs into",
            dir.display()
        ))
        .with_hint("log to a folder of its own, e.g. `--log-dir serving`"));
    }
    // Fetched versions live here while serving, and go with it.
    let scratch = scratch_dir(location)?;
    let mut source = resolve(location, &args.model, scratch.path())?;
    let step = super::step::runner().ok_or_else(|| {
        CommandError::user("`gourd serve` runs models on libtorch, but `gourd-step` was not found beside `gourd` (or at `GOURD_STEP`)")
            .with_hint("install gourd with its torch extra (`pip install \"gourd-ml[torch]\"`), or build it with `--features torch` (see docs/torch.md)")
    })?;
    let config = scratch.path().join("serve.json");
    fs_err::write(&config, serde_json::to_vec_pretty(&step_config(args, &source)).expect("JSON"))?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let code = runtime.block_on(supervise(location, args, &step, &config, &mut source, scratch.path()))?;
    drop(scratch);
    Ok(code)
}

/// A folder for the model versions a server fetches, removed when serving
/// ends. A server killed outright (SIGKILL, a crash) leaves its folder: it
/// holds a lock on `.alive` inside while it lives, which the kernel drops
/// with the process, so the next `gourd serve` removes the folders whose
/// lock it can take.
struct Scratch {
    dir: tempfile::TempDir,
    _alive: std::fs::File,
}

impl Scratch {
    fn path(&self) -> &Path {
        self.dir.path()
    }
}

const ALIVE: &str = ".alive";

fn scratch_dir(location: &Location) -> Result<Scratch, CommandError> {
    // `.gourd/serve` only as a folder of its own: a link there would send
    // the scratch folders, and their removal, elsewhere.
    let own_folder = |dir: &Path| match std::fs::symlink_metadata(dir) {
        Ok(meta) => meta.file_type().is_dir(),
        Err(err) => err.kind() == std::io::ErrorKind::NotFound,
    };
    let parent = match location.root() {
        Ok(root) if own_folder(&root.join(".gourd")) && root.join(".gourd").is_dir() => {
            Some(root.join(".gourd").join("serve")).filter(|dir| own_folder(dir))
        }
        _ => None,
    }
    .unwrap_or_else(std::env::temp_dir);
    fs_err::create_dir_all(&parent)?;
    remove_left_behind(&parent);
    let dir = tempfile::Builder::new().prefix("serve-").tempdir_in(&parent)?;
    let alive = fs_err::File::create(dir.path().join(ALIVE))?.into_parts().0;
    alive.lock()?;
    Ok(Scratch { dir, _alive: alive })
}

/// Removes the `serve-…` folders in `parent` whose server is gone: their
/// `.alive` lock can be taken. A folder without `.alive` is not known to be
/// gourd's (the temporary folder is shared) and stays.
fn remove_left_behind(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for entry in entries.filter_map(Result::ok) {
        let named = entry.file_name().to_str().is_some_and(|n| n.starts_with("serve-"));
        if !named || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let gone = std::fs::File::open(entry.path().join(ALIVE)).is_ok_and(|file| file.try_lock().is_ok());
        if gone {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn step_config(args: &Args, source: &Source) -> serde_json::Value {
    serde_json::json!({
        "model": source.folder,
        "name": source.name,
        "version": source.version,
        "host": args.host,
        "port": args.port,
        "max_batch_size": args.max_batch_size,
        "max_queue_delay_us": (args.max_queue_delay_ms * 1000.0).round() as u64,
        "queue_size": args.queue_size,
        "timeout_ms": args.timeout_ms,
        "max_body_bytes": args.max_body_bytes,
        "max_request_rows": args.max_request_rows,
        "log_dir": args.log_dir.as_ref().map(|d| std::path::absolute(d).unwrap_or_else(|_| d.clone())),
        "log_max_bytes": args.log_max_bytes,
        "log_keep": args.log_keep,
        "threads": args.threads,
        "cuda": args.cuda,
        "swaps": source.follow.is_some(),
    })
}

/// A folder, or else a registry reference.
fn resolve(location: &Location, model: &str, scratch: &Path) -> Result<Source, CommandError> {
    let path = Path::new(model);
    if path.exists() {
        return from_folder(path);
    }
    if model.contains(['@', '#']) {
        let found = from_registry(location, model, scratch, None)?.expect("nothing is serving yet");
        let follow = found.movable.then(|| model.to_string());
        return Ok(Source { name: found.name, version: found.version, folder: found.folder, follow });
    }
    Err(CommandError::user(format!("`{model}` is neither a model folder nor a registry reference")).with_hint(
        "give the folder a built-in `train` or `select` step wrote (`models/best`), or `NAME@STAGE` (`pumpkin@prod`)",
    ))
}

fn from_folder(path: &Path) -> Result<Source, CommandError> {
    if !path.is_dir() || !path.join("model.json").is_file() {
        return Err(CommandError::user(format!("`{}` is not a model folder: it has no `model.json`", path.display()))
            .with_hint("serve the folder a built-in `train` or `select` step wrote (`models/best`)"));
    }
    let folder = std::path::absolute(path)?;
    let name = fs_err::canonicalize(&folder)?
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "model".into());
    let hashing = Hashing::open(PathBuf::new(), DigestAlgorithm::Blake3);
    let digest = hashing
        .hash(&folder)?
        .ok_or_else(|| CommandError::user(format!("`{}` vanished", path.display())))?
        .digest()
        .to_string();
    let hex = digest.rsplit(':').next().unwrap_or(&digest);
    Ok(Source { name, version: hex[..hex.len().min(12)].to_string(), folder, follow: None })
}

/// A registered version, fetched.
struct Registered {
    name: String,
    version: String,
    folder: PathBuf,
    /// Whether the reference can move (a stage, `@latest`), not pinned.
    movable: bool,
}

/// What `reference` names now, fetched into `scratch`; `None` when it is
/// `serving` still (nothing is fetched then).
fn from_registry(
    location: &Location,
    reference: &str,
    scratch: &Path,
    serving: Option<&str>,
) -> Result<Option<Registered>, CommandError> {
    let (root, registry) = super::registry::open(location)?;
    let resolved = resolve_reference(&registry, reference, None)?;
    if serving == Some(resolved.version.as_str()) {
        return Ok(None);
    }
    let into = scratch.join(format!("{}-{}", sanitise(&resolved.name), resolved.version));
    // The scratch folder is gourd's own: what is there is replaced.
    let fetched = fetch(location, &root, &resolved, &into, true)?;
    if !fetched.path.join("model.json").is_file() {
        return Err(CommandError::user(format!("{} is not a model folder: it has no `model.json`", fetched.what))
            .with_hint("`gourd serve` serves what the built-in `train` and `select` steps write"));
    }
    // `models/cv:pumpkin` is served as `pumpkin`: a name that fits in a URL.
    let name = resolved.name.rsplit([':', '/']).next().unwrap_or(&resolved.name).to_string();
    let movable = resolved.stage.is_some() || !reference.contains("@v");
    Ok(Some(Registered { name, version: resolved.version, folder: fetched.path, movable }))
}

fn sanitise(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

async fn supervise(
    location: &Location,
    args: &Args,
    step: &Path,
    config: &Path,
    source: &mut Source,
    scratch: &Path,
) -> Result<ExitCode, CommandError> {
    let mut command = tokio::process::Command::new(step);
    command
        .arg("serve")
        .arg(config)
        .stdin(if source.follow.is_some() { Stdio::piped() } else { Stdio::null() })
        .kill_on_drop(true);
    // The server stops with this process, even when it is SIGKILLed: no
    // orphan keeps the port.
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(2) only, between fork and exec.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let mut child =
        command.spawn().map_err(|e| CommandError::environment(format!("cannot start `{}`: {e}", step.display())))?;
    let mut control = child.stdin.take();
    let pid = child.id().map(|p| p as libc::pid_t);
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let mut poll = tokio::time::interval(Duration::from_secs_f64(args.poll));
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_problem = String::new();
    loop {
        tokio::select! {
            status = child.wait() => {
                let status = status?;
                return Ok(match status.code() {
                    Some(0) => ExitCode::SUCCESS,
                    Some(code) => ExitCode::from(code.clamp(1, 255) as u8),
                    None => ExitCode::from(2),
                });
            }
            _ = terminate.recv() => forward(pid),
            _ = interrupt.recv() => forward(pid),
            _ = hangup.recv() => forward(pid),
            _ = poll.tick(), if source.follow.is_some() && control.is_some() => {
                let reference = source.follow.clone().unwrap_or_default();
                match from_registry(location, &reference, scratch, Some(&source.version)) {
                    Ok(Some(Registered { version, folder, .. })) => {
                        eprintln!("serve: `{reference}` moved from {} to {version}; loading it", source.version);
                        let line = serde_json::json!({ "model": folder, "version": version }).to_string() + "\n";
                        let sent = match control.as_mut() {
                            Some(stdin) => stdin.write_all(line.as_bytes()).await.is_ok(),
                            None => false,
                        };
                        if !sent {
                            control = None;
                        }
                        source.version = version;
                        last_problem.clear();
                    }
                    Ok(None) => last_problem.clear(),
                    Err(err) => {
                        // Reported once per distinct problem; the version serving stays.
                        if err.message != last_problem {
                            eprintln!("serve: cannot follow `{reference}`: {}", err.message);
                            last_problem = err.message;
                        }
                    }
                }
            }
        }
    }
}

/// Passes a stop on to the server, which finishes the requests in flight.
fn forward(pid: Option<libc::pid_t>) {
    if let Some(pid) = pid {
        // SAFETY: kill(2) with a pid this process started and has not reaped.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
}
