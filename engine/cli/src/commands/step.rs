//! `gourd __step NAME CONFIG`: runs one built-in step. The scheduler starts
//! it as a child process, like any stage command, so steps get the same logs,
//! timeouts, interrupts and GPU assignment.

use std::path::PathBuf;
use std::process::ExitCode;

/// The built-in steps, by name.
pub const STEPS: &[&str] = &["images", "validate", "train", "evaluate", "predict", "select"];

#[derive(clap::Args)]
pub struct Args {
    name: String,
    config: PathBuf,
}

pub fn run(args: &Args) -> ExitCode {
    #[cfg(feature = "torch")]
    {
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
        match gourd_torch::run_step(&args.name, &config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("error: step `{}`: {err}", args.name);
                ExitCode::from(1)
            }
        }
    }
    #[cfg(not(feature = "torch"))]
    {
        eprintln!("error: this gourd was built without the `torch` feature, so it cannot run the step `{}`", args.name);
        ExitCode::from(2)
    }
}

/// Checks, before anything runs, that every built-in step exists and that
/// this binary can run it.
pub fn check(pipeline: &gourd_core::model::Pipeline) -> Result<(), crate::error::CommandError> {
    for stage in &pipeline.stages {
        if let gourd_core::model::Command::Step { name, .. } = &stage.cmd {
            if !STEPS.contains(&name.as_str()) {
                return Err(crate::error::CommandError::user(format!(
                    "stage `{}` uses the built-in step `{name}`, which does not exist",
                    stage.name
                ))
                .with_hint(format!("the built-in steps are: {}", STEPS.join(", "))));
            }
            if !cfg!(feature = "torch") {
                return Err(crate::error::CommandError::user(format!(
                    "stage `{}` uses the built-in step `{name}`, but this gourd was built without the `torch` feature",
                    stage.name
                ))
                .with_hint("build gourd with `--features torch` (see docs/torch.md)"));
            }
        }
    }
    Ok(())
}

/// Counts CUDA devices through libtorch, in a CUDA build.
pub fn gpu_probe() -> Option<fn() -> usize> {
    #[cfg(feature = "cuda")]
    {
        Some(gourd_torch::cuda_device_count)
    }
    #[cfg(not(feature = "cuda"))]
    {
        None
    }
}
