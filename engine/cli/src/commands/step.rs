//! Built-in steps, as the `gourd` binary sees them: it checks them before a
//! run and hands them to `gourd-step`, the binary beside it that links
//! libtorch (built with `--features torch`).

use std::path::PathBuf;

use crate::error::CommandError;

/// The built-in steps, by name.
pub const STEPS: &[&str] = &["images", "validate", "train", "evaluate", "predict", "select"];

/// `gourd-step`: `GOURD_STEP` when set, else beside the running `gourd`.
pub fn runner() -> Option<PathBuf> {
    let step = match std::env::var_os("GOURD_STEP") {
        Some(path) => PathBuf::from(path),
        None => std::env::current_exe().ok()?.with_file_name("gourd-step"),
    };
    step.is_file().then_some(step)
}

/// Checks, before anything runs, that every built-in step exists and that
/// this installation can run it.
pub fn check(pipeline: &gourd_core::model::Pipeline) -> Result<(), CommandError> {
    for stage in &pipeline.stages {
        if let gourd_core::model::Command::Step { name, .. } = &stage.cmd {
            if !STEPS.contains(&name.as_str()) {
                return Err(CommandError::user(format!(
                    "stage `{}` uses the built-in step `{name}`, which does not exist",
                    stage.name
                ))
                .with_hint(format!("the built-in steps are: {}", STEPS.join(", "))));
            }
            if runner().is_none() {
                return Err(CommandError::user(format!(
                    "stage `{}` uses the built-in step `{name}`, but `gourd-step` was not found beside `gourd` (or at `GOURD_STEP`)",
                    stage.name
                ))
                .with_hint("build gourd with `--features torch`, which builds `gourd-step` (see docs/torch.md)"));
            }
        }
    }
    Ok(())
}

/// Counts CUDA devices through libtorch, when `gourd-step` is there.
pub fn gpu_probe() -> Option<fn() -> usize> {
    fn probe() -> usize {
        runner()
            .and_then(|step| std::process::Command::new(step).arg("--cuda-devices").output().ok())
            .filter(|out| out.status.success())
            .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
            .unwrap_or(0)
    }
    Some(probe)
}
