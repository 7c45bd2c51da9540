//! `gourd plots show [TARGET…]` and `gourd plots diff A [B]`: one HTML page
//! of SVG plots (no JavaScript), written to `.gourd/plots/index.html` unless
//! `-o` says otherwise; its path is printed.

use std::path::PathBuf;
use std::process::ExitCode;

use gourd_core::model::Plot;
use gourd_lineage::Lineage;

use crate::error::CommandError;
use crate::plots::{self, Files};
use crate::revision::Side;
use crate::workspace::Location;

/// Where the page goes without `-o`, relative to the workspace.
pub const DEFAULT_OUTPUT: &str = ".gourd/plots/index.html";

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Draw the plots from the files in the working state.
    Show(ShowArgs),
    /// Draw the plots of revision A (default `HEAD`) and B (default: the working state) together.
    Diff(DiffArgs),
}

#[derive(clap::Args)]
struct Output {
    /// Write the page to FILE (default `.gourd/plots/index.html`).
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    out: Option<PathBuf>,
    /// Open the page in a browser.
    #[arg(long)]
    open: bool,
}

#[derive(clap::Args)]
struct ShowArgs {
    /// Plots to draw: a plot's id, a data file, or a stage (default: all).
    targets: Vec<String>,
    #[command(flatten)]
    output: Output,
}

#[derive(clap::Args)]
struct DiffArgs {
    /// The revision compared from: a commit, branch or tag (default `HEAD`).
    a: Option<String>,
    /// The revision compared to (default: the working state).
    b: Option<String>,
    /// Plots to draw: plot ids, data files or stages (default: all), as DVC's `--targets`.
    #[arg(long = "targets", value_name = "TARGET", num_args = 1..)]
    targets: Vec<String>,
    #[command(flatten)]
    output: Output,
}

pub fn run(location: &Location, args: &Args) -> Result<ExitCode, CommandError> {
    // Reads the pipeline, history and cache only: no stage runs.
    let loaded = location.load_checked(false)?;
    let lineage = Lineage::open(&loaded.root)?;
    let (targets, output, sides) = match &args.command {
        Command::Show(show) => (&show.targets, &show.output, vec![Side::WorkingState]),
        Command::Diff(diff) => (
            &diff.targets,
            &diff.output,
            vec![
                Side::parse(diff.a.as_ref(), Side::Revision("HEAD".into())),
                Side::parse(diff.b.as_ref(), Side::WorkingState),
            ],
        ),
    };
    let chosen = select(&loaded.pipeline.plots, targets, &loaded.root)?;
    if chosen.is_empty() {
        return Err(CommandError::user("the pipeline declares no plots")
            .with_hint("add `plots = [\"file.json\"]` to a stage, or a top-level `plots` (see docs/plots.md)"));
    }
    let paths = plots::paths(&chosen);
    let mut read = Vec::new();
    for side in &sides {
        read.push((
            side.label(),
            plots::files_at(lineage.as_ref(), &loaded.pipeline, &loaded.root, &loaded.file, &paths, side)?,
        ));
    }
    let sections = sections(&chosen, &read, sides.len() > 1)?;
    let title = match &args.command {
        Command::Show(_) => "gourd plots".to_string(),
        Command::Diff(_) => format!("gourd plots: {} vs {}", read[0].0, read[1].0),
    };
    let html = plots::page(&title, &sections);
    let out = match &output.out {
        Some(path) => {
            crate::ui::refuse_reserved_output(path)?;
            std::env::current_dir()?.join(path)
        }
        // Gourd's own page, in `.gourd`.
        None => loaded.root.join(DEFAULT_OUTPUT),
    };
    if let Some(parent) = out.parent() {
        fs_err::create_dir_all(parent)?;
    }
    crate::ui::write_through(&out, html.as_bytes())?;
    println!("{}", out.display());
    if output.open {
        open(&out);
    }
    Ok(ExitCode::SUCCESS)
}

/// Each plot drawn, with its heading. In a diff, a side where the plot's
/// files are missing is left out (the plot may be new); a plot missing on
/// every side, and any file that cannot be read as a table, is an error.
pub fn sections(chosen: &[Plot], read: &[(String, Files)], diff: bool) -> Result<Vec<(String, String)>, CommandError> {
    let mut sections = Vec::new();
    for plot in chosen {
        let present: Vec<(String, &Files)> = read
            .iter()
            .filter(|(_, files)| !diff || plot.y.iter().all(|(f, _)| matches!(files.get(f.as_str()), Some(Ok(_)))))
            .map(|(label, files)| (label.clone(), files))
            .collect();
        // A side left out is said: the page alone would not tell a missing
        // side from an unchanged one.
        if diff && !present.is_empty() {
            for (label, files) in read.iter().filter(|(label, _)| !present.iter().any(|(p, _)| p == label)) {
                let (file, why) = unread(plot, files);
                eprintln!("note: plot `{}`: `{file}` {why} (at {label}); drawn without that side", plot.id);
            }
        }
        if present.is_empty() {
            let (label, files) = &read[0];
            let (file, why) = unread(plot, files);
            return Err(CommandError::user(format!(
                "plot `{}`: `{file}` {why} (at {label}, and on every side)",
                plot.id
            )));
        }
        let body = plots::render(plot, &present).map_err(CommandError::user)?;
        let heading = match &plot.stage {
            Some(stage) => format!("{} (stage {stage})", plot.title.as_deref().unwrap_or(&plot.id)),
            None => plot.title.clone().unwrap_or_else(|| plot.id.clone()),
        };
        sections.push((heading, body));
    }
    Ok(sections)
}

/// The first of `plot`'s files that `files` could not read, and why.
fn unread<'a>(plot: &'a Plot, files: &'a Files) -> (&'a str, &'a str) {
    plot.y
        .iter()
        .find_map(|(f, _)| match files.get(f.as_str()) {
            Some(Err(why)) => Some((f.as_str(), why.as_str())),
            _ => None,
        })
        .unwrap_or(("?", "was not read"))
}

/// The plots `targets` name (all without targets): by id, data file or
/// stage; a file no plot names is drawn on its own with the defaults, as
/// `dvc plots show FILE` does.
fn select(all: &[Plot], targets: &[String], root: &std::path::Path) -> Result<Vec<Plot>, CommandError> {
    if targets.is_empty() {
        return Ok(all.to_vec());
    }
    let mut chosen: Vec<Plot> = Vec::new();
    for target in targets {
        let target = target.trim_end_matches('/');
        let mut matching: Vec<Plot> = all
            .iter()
            .filter(|p| {
                p.id == target
                    || p.stage.as_deref() == Some(target)
                    || p.y.iter().any(|(f, _)| f.as_str() == target || f.as_str().starts_with(&format!("{target}/")))
            })
            .cloned()
            .collect();
        if matching.is_empty()
            && let Ok(file) = gourd_core::path::WsPath::new(target)
            && file.to_path(root).is_file()
        {
            matching.push(Plot {
                id: target.to_string(),
                stage: None,
                y: vec![(file, vec![])],
                x: Default::default(),
                template: gourd_core::model::PlotTemplate::Linear,
                title: None,
                x_label: None,
                y_label: None,
            });
        }
        if matching.is_empty() {
            let known: Vec<String> = all.iter().map(|p| format!("`{}`", p.id)).collect();
            let known = if known.is_empty() { "none".to_string() } else { known.join(", ") };
            return Err(CommandError::user(format!("no plot `{target}`, and no such file"))
                .with_hint(format!("targets are plot ids, data files or stages; the plots are {known}")));
        }
        for plot in matching {
            if !chosen.contains(&plot) {
                chosen.push(plot);
            }
        }
    }
    Ok(chosen)
}

fn open(path: &std::path::Path) {
    let opener = if cfg!(target_os = "macos") { "open" } else { "xdg-open" };
    if let Err(e) = std::process::Command::new(opener)
        .arg(path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        eprintln!("warning: cannot open the page with `{opener}`: {e}");
    }
}
