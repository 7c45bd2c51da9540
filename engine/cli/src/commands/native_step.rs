//! `gourd __step NAME CONFIG`: runs a built-in step that needs no libtorch
//! (today `drift`). `gourd run` starts it as a child process, as it starts
//! `gourd-step`, so such a step gets the same log, timeout, Ctrl-C and
//! process group as any stage, and its memory (a million-row comparison)
//! goes back when it exits, without a second binary to install.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::error::CommandError;

#[derive(clap::Args)]
pub struct Args {
    name: String,
    config: PathBuf,
}

/// Checks a native step's configuration before anything runs.
pub fn check(stage: &str, name: &str, config: &serde_json::Value) -> Result<(), CommandError> {
    match name {
        "drift" => gourd_drift::Config::from_json(config).map(|_| ()).and_then(|()| {
            if config.get("model").is_some_and(|m| !m.is_null()) && crate::commands::step::runner().is_none() {
                return Err(gourd_drift::Error::Config(
                    "`model` embeds images with libtorch, and `gourd-step` was not found beside `gourd` (or at `GOURD_STEP`)".into(),
                ));
            }
            Ok(())
        }).map_err(|err| {
            let error = CommandError::user(format!("stage `{stage}`: {err}"));
            match err.hint() {
                Some(hint) => error.with_hint(hint),
                None => error.with_hint("see docs/monitoring.md for the drift step's configuration"),
            }
        }),
        _ => Ok(()),
    }
}

/// The drift step on images embeds them with a model: `gourd-step` runs it.
fn images_step(args: &Args) -> ExitCode {
    use std::os::unix::process::CommandExt;
    let Some(step) = crate::commands::step::runner() else {
        eprintln!(
            "error: step `drift`: `model` embeds images with libtorch, and `gourd-step` was not found beside `gourd` (or at `GOURD_STEP`)"
        );
        eprintln!(
            "\nhint: install gourd with its torch extra, or build it with `--features torch` (see docs/torch.md)"
        );
        return ExitCode::from(1);
    };
    let err = std::process::Command::new(&step).arg("drift").arg(&args.config).exec();
    eprintln!("error: cannot start `{}`: {err}", step.display());
    ExitCode::from(2)
}

pub fn run(args: &Args) -> ExitCode {
    let config = match fs_err::read(&args.config)
        .map_err(|e| e.to_string())
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).map_err(|e| e.to_string()))
    {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error: cannot read the step configuration: {err}");
            return ExitCode::from(2);
        }
    };
    if args.name == "drift" && config.get("model").is_some_and(|m| !m.is_null()) {
        return images_step(args);
    }
    let result = match args.name.as_str() {
        "drift" => gourd_drift::run_step(&config, std::path::Path::new("")).map(|report| {
            let drifted = report.columns.values().filter(|c| c.drift).count();
            println!(
                "drift: {} ({drifted} of {} columns drifted, share {:.3})",
                if report.drift { "yes" } else { "no" },
                report.columns.len(),
                report.share
            );
        }),
        other => {
            eprintln!("error: `{other}` is not a built-in step gourd runs itself");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: step `{}`: {err}", args.name);
            if let Some(hint) = err.hint() {
                eprintln!("\nhint: {hint}");
            }
            ExitCode::from(1)
        }
    }
}
