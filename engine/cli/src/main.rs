//! The `gourd` binary: argument parsing, one module per subcommand, and the
//! single place where errors become messages and exit codes.

mod commands;
mod error;
mod gitignore;
mod lineage;
mod params_file;
mod plots;
mod provenance;
mod remote;
mod report;
mod revision;
mod sources;
mod table;
mod ui;
mod workspace;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::error::CommandError;

/// `gourd --version`: the release, the commit it was built from, and the
/// cargo features built in (engine/cli/build.rs).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("GOURD_BUILD_COMMIT"),
    "; features: ",
    env!("GOURD_BUILD_FEATURES"),
    ")"
);

/// Declarative, content-hashed pipelines for machine learning.
#[derive(Parser)]
#[command(name = "gourd", version = VERSION, max_term_width = 100)]
struct Cli {
    /// Run as if gourd was started in DIR.
    #[arg(short = 'C', global = true, value_name = "DIR")]
    directory: Option<std::path::PathBuf>,

    /// Use PATH as the pipeline file (its folder is the workspace).
    #[arg(long, global = true, value_name = "PATH")]
    file: Option<std::path::PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a starter `gourd.ncl` and ignore `.gourd/`.
    Init(commands::init::Args),
    /// Write a `gourd.ncl` from a DVC project's `dvc.yaml`.
    ImportDvc(commands::import_dvc::Args),
    /// Evaluate and validate the pipeline without running anything.
    Check(commands::check::Args),
    /// Bring stages up to date.
    Run(commands::run::Args),
    /// Show which stages are stale, and why.
    Status(commands::status::Args),
    /// Show what changed in a stage's inputs since its last run.
    Explain(commands::explain::Args),
    /// Print the stage graph.
    Dag(commands::dag::Args),
    /// Show where an artifact came from.
    Lineage(commands::lineage::Args),
    /// Show the execution history recorded in lineage.
    Log(commands::log::Args),
    /// Compare params between git revisions.
    Params(commands::params::Args),
    /// Show metrics, or compare them between git revisions.
    Metrics(commands::metrics::Args),
    /// Draw plots (HTML with SVG), or compare them between git revisions.
    Plots(commands::plots::Args),
    /// Put raw data under gourd's control: cached, pushed and pulled (`dvc add`).
    Add(commands::add::Args),
    /// Bring a file or folder from another git repository in as a tracked source (`dvc import`).
    Import(commands::import::RepoArgs),
    /// Download a file in as a tracked source, its URL recorded (`dvc import-url`).
    #[command(name = "import-url")]
    ImportUrl(commands::import::UrlArgs),
    /// Runs side by side: their params and metrics (`exp show`).
    Exp(commands::exp::Args),
    /// Render a report of the pipeline, its metrics and lineage.
    Report(commands::report::Args),
    /// Drop cache entries that nothing needs.
    Gc(commands::gc::Args),
    /// Run the pipeline, then again whenever its sources change.
    Watch(commands::watch::Args),
    /// Serve a model over HTTP: the Open Inference Protocol, MLflow's /invocations, /metrics.
    Serve(commands::serve::Args),
    /// Send lineage and the registry's tags to a git remote.
    Push(commands::sync::Args),
    /// Fetch lineage and the registry's tags from a git remote and merge them.
    Pull(commands::sync::Args),
    /// Register model versions and move them between stages (git tags, GTO's format).
    Registry(commands::registry::Args),
    /// Render a Dockerfile, KServe InferenceService or systemd unit that serves a model.
    Deploy(commands::deploy::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(commands::completions::Args),
    /// Print the manual page, or write one per command with `--dir`.
    Man(commands::man::Args),
    #[command(name = "__eval", hide = true)]
    Eval(commands::eval::Args),
    #[command(name = "__step", hide = true)]
    Step(commands::native_step::Args),
}

fn main() -> ExitCode {
    // A panic is a bug in gourd: say so, and exit 2 rather than Rust's 101.
    std::panic::set_hook(Box::new(|info| {
        let code = CommandError::internal(info.to_string()).report();
        let _ = code;
        std::process::exit(2);
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let err = error::suggest_subcommand(err, &<Cli as clap::CommandFactory>::command());
            let code = match err.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => 1,
            };
            ui::reset_sigpipe();
            let _ = err.print();
            return ExitCode::from(code);
        }
    };
    // `gourd dag | head` ends quietly. A run goes on when whoever reads its
    // output goes away: its stages, their outputs and lineage matter more.
    if !matches!(cli.command, Command::Run(_)) {
        ui::reset_sigpipe();
    }
    match dispatch(cli) {
        Ok(code) => code,
        Err(err) => err.report(),
    }
}

fn dispatch(cli: Cli) -> Result<ExitCode, CommandError> {
    match &cli.command {
        Command::Eval(args) => return Ok(commands::eval::run(args)),
        Command::Step(args) => return Ok(commands::native_step::run(args)),
        Command::Completions(args) => return commands::completions::run(args, Cli::command()),
        Command::Man(args) => return commands::man::run(args, Cli::command()),
        _ => {}
    }

    if let Some(dir) = &cli.directory {
        std::env::set_current_dir(dir)
            .map_err(|e| CommandError::user(format!("cannot change to `{}`: {e}", dir.display())))?;
    }
    let location = workspace::Location { file: cli.file.clone() };
    match cli.command {
        Command::Init(args) => commands::init::run(&location, &args),
        Command::ImportDvc(args) => commands::import_dvc::run(&args),
        Command::Check(args) => commands::check::run(&location, &args),
        Command::Run(args) => commands::run::run(&location, &args),
        Command::Status(args) => commands::status::run(&location, &args),
        Command::Explain(args) => commands::explain::run(&location, &args),
        Command::Dag(args) => commands::dag::run(&location, &args),
        Command::Lineage(args) => commands::lineage::run(&location, &args),
        Command::Log(args) => commands::log::run(&location, &args),
        Command::Params(args) => commands::params::run(&location, &args),
        Command::Metrics(args) => commands::metrics::run(&location, &args),
        Command::Plots(args) => commands::plots::run(&location, &args),
        Command::Add(args) => commands::add::run(&location, &args),
        Command::Import(args) => commands::import::repo(&location, &args),
        Command::ImportUrl(args) => commands::import::url(&location, &args),
        Command::Exp(args) => commands::exp::run(&location, &args),
        Command::Report(args) => commands::report::run(&location, &args),
        Command::Gc(args) => commands::gc::run(&location, &args),
        Command::Watch(args) => commands::watch::run(&location, &args),
        Command::Serve(args) => commands::serve::run(&location, &args),
        Command::Push(args) => commands::sync::push(&location, &args),
        Command::Pull(args) => commands::sync::pull(&location, &args),
        Command::Registry(args) => commands::registry::run(&location, &args),
        Command::Deploy(args) => commands::deploy::run(&location, &args),
        Command::Eval(_) | Command::Step(_) | Command::Completions(_) | Command::Man(_) => {
            unreachable!("handled above")
        }
    }
}
