//! Built-in steps, as the `gourd` binary sees them: it checks them before a
//! run and hands them to `gourd-step`, the binary beside it that links
//! libtorch (built with `--features torch`).
//!
//! `gourd-step` finds libtorch through its rpaths (engine/cli/build.rs): the
//! folder it was built against, or, installed from the wheel, the `torch`
//! package of its Python environment. Before anything runs, `gourd` looks in
//! the same folders, so that a missing or different torch is an error naming
//! the version gourd needs rather than a loader failure halfway through a run.

use std::path::{Path, PathBuf};

use crate::error::CommandError;

/// The built-in steps, by name.
pub const STEPS: &[&str] = &["images", "validate", "train", "evaluate", "predict", "select", "drift"];

/// Built-in steps that need no libtorch: `gourd __step NAME CONFIG` runs them.
pub const NATIVE_STEPS: &[&str] = &["drift"];

/// The command that runs the built-in step `name` (its name and
/// configuration file are appended): `gourd __step` for the native steps,
/// else `gourd-step`.
pub fn command(name: &str) -> Option<Vec<std::ffi::OsString>> {
    if NATIVE_STEPS.contains(&name) {
        // This very binary, even when a rebuild or an upgrade has replaced
        // the file it was started from (then `current_exe` names a deleted
        // file): the step runs with the scheduler's own version.
        let proc_exe = std::path::Path::new("/proc/self/exe");
        let gourd = if proc_exe.exists() { proc_exe.to_path_buf() } else { std::env::current_exe().ok()? };
        return Some(vec![gourd.into_os_string(), "__step".into()]);
    }
    runner().map(|step| vec![step.into_os_string()])
}

/// `gourd-step`: `GOURD_STEP` when set, else beside the running `gourd`.
pub fn runner() -> Option<PathBuf> {
    let step = match std::env::var_os("GOURD_STEP") {
        Some(path) => PathBuf::from(path),
        None => std::env::current_exe().ok()?.with_file_name("gourd-step"),
    };
    step.is_file().then_some(step)
}

/// Checks, before anything runs, that every built-in step exists and, when
/// `to_run` (`run`, `check`), that this installation can run it: commands
/// that only read the pipeline and history need no `gourd-step`.
pub fn check(pipeline: &gourd_core::model::Pipeline, to_run: bool) -> Result<(), CommandError> {
    check_stages(pipeline.stages.iter(), to_run)
}

/// [`check`] for `stages` only: a run that selects plain stages of a
/// pipeline with built-in steps needs no `gourd-step`.
pub fn check_stages<'s>(
    stages: impl IntoIterator<Item = &'s gourd_core::model::Stage>,
    to_run: bool,
) -> Result<(), CommandError> {
    for stage in stages {
        if let gourd_core::model::Command::Step { name, config } = &stage.cmd {
            if !STEPS.contains(&name.as_str()) {
                return Err(CommandError::user(format!(
                    "stage `{}` uses the built-in step `{name}`, which does not exist",
                    stage.name
                ))
                .with_hint(format!("the built-in steps are: {}", STEPS.join(", "))));
            }
            if NATIVE_STEPS.contains(&name.as_str()) {
                crate::commands::native_step::check(&stage.name, name, config)?;
                continue;
            }
            if !to_run {
                continue;
            }
            if runner().is_none() {
                return Err(CommandError::user(format!(
                    "stage `{}` uses the built-in step `{name}`, but `gourd-step` was not found beside `gourd` (or at `GOURD_STEP`)",
                    stage.name
                ))
                .with_hint(
                    "install gourd with its torch steps: `pip install \"gourd-ml[torch]\"` (PyTorch from PyPI), or build it with `--features torch`, which builds `gourd-step` (see docs/torch.md)",
                ));
            }
            if std::env::var_os("GOURD_STEP").is_none()
                && let Some(step) = runner()
            {
                check_torch(&step).map_err(|problem| {
                    CommandError::environment(format!(
                        "stage `{}` uses the built-in step `{name}`, {}",
                        stage.name, problem.message
                    ))
                    .with_hint(problem.hint)
                })?;
            }
        }
    }
    Ok(())
}

/// What is wrong with the libtorch `gourd-step` would load.
#[derive(Debug)]
struct TorchProblem {
    message: String,
    hint: String,
}

/// The torch version `gourd-step` was built against (`2.11.0+cu130`), empty
/// when unknown or built without the `torch` feature.
const TORCH_VERSION: &str = env!("GOURD_TORCH_VERSION");

/// Where `gourd-step` looks for libtorch: folders relative to its own, or
/// absolute, `:`-separated, in the loader's order.
const TORCH_SEARCH: &str = env!("GOURD_TORCH_SEARCH");

/// Finds the libtorch the `gourd-step` at `step` will load, as the loader
/// does (the first folder of [`TORCH_SEARCH`] that holds it), and compares its
/// version with the one gourd was built against (major and minor: the C++
/// ABI changes between minor releases).
fn check_torch(step: &Path) -> Result<(), TorchProblem> {
    if TORCH_SEARCH.is_empty() {
        return Ok(());
    }
    let bin = step.parent().unwrap_or(Path::new("."));
    let folders: Vec<PathBuf> = TORCH_SEARCH.split(':').map(|dir| bin.join(dir)).collect();
    let wanted = minor_version(TORCH_VERSION);
    let from_python = !Path::new(TORCH_SEARCH.split(':').next().unwrap_or_default()).is_absolute();
    let Some(lib) = folders.iter().find(|dir| dir.join("libtorch_cpu.so").is_file()) else {
        return Err(if from_python {
            let prefix = bin.parent().unwrap_or(bin);
            TorchProblem {
                message: format!(
                    "which needs PyTorch {wanted} (the Python package `torch`), and there is none in the Python environment at `{}` (looked in `lib/python3.*/site-packages/torch`)",
                    prefix.display()
                ),
                // `uv tool install` leaves a receipt in the tool's environment.
                hint: if prefix.join("uv-receipt.toml").is_file() {
                    "install gourd with its torch extra: `uv tool install \"gourd-ml[torch]\"`".to_string()
                } else {
                    format!(
                        "install gourd with its torch extra: `pip install \"gourd-ml[torch]\"` (or `pip install \"torch=={wanted}.*\"` into that environment)"
                    )
                },
            }
        } else {
            TorchProblem {
                message: format!(
                    "which needs libtorch {wanted}, and `{}` does not hold it",
                    folders.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join("`, `")
                ),
                hint: "fetch it again with `scripts/setup-libtorch.sh`, or rebuild gourd against another libtorch (see docs/torch.md)".to_string(),
            }
        });
    };
    let found = installed_version(lib);
    if wanted.is_empty() || found.as_deref().map(minor_version) == Some(wanted) {
        return Ok(());
    }
    let torch = lib.parent().unwrap_or(lib);
    let torch = std::fs::canonicalize(torch).unwrap_or_else(|_| torch.to_path_buf());
    let found = found.map(|v| format!("torch {v}")).unwrap_or_else(|| "a torch of unknown version".to_string());
    Err(TorchProblem {
        message: format!("which needs PyTorch {wanted}, but `{}` holds {found}", torch.display()),
        hint: format!("install the torch gourd was built for: `pip install \"torch=={wanted}.*\"`"),
    })
}

/// `2.11` of `2.11.0+cu130`.
fn minor_version(version: &str) -> &str {
    let mut dots = version.match_indices('.').map(|(i, _)| i);
    match (dots.next(), dots.next()) {
        (Some(_), Some(second)) => &version[..second],
        _ => version.split('+').next().unwrap_or(version),
    }
}

/// The `__version__` in `torch/version.py`, beside libtorch's `lib` folder.
fn installed_version(lib: &Path) -> Option<String> {
    let text = std::fs::read_to_string(lib.parent()?.join("version.py")).ok()?;
    text.lines().find_map(|line| {
        let value = line.strip_prefix("__version__")?.trim_start_matches([' ', '=']).trim();
        Some(value.trim_matches(['\'', '"']).to_string())
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minor_versions() {
        assert_eq!(minor_version("2.11.0+cu130"), "2.11");
        assert_eq!(minor_version("2.11.0"), "2.11");
        assert_eq!(minor_version("2.9.1+cpu"), "2.9");
        assert_eq!(minor_version("2.11"), "2.11");
        assert_eq!(minor_version(""), "");
    }

    #[test]
    fn the_installed_version_is_read_from_version_py() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("torch/lib")).unwrap();
        assert_eq!(installed_version(&dir.path().join("torch/lib")), None);
        std::fs::write(dir.path().join("torch/version.py"), "from typing import Optional\n__version__ = '2.9.1+cpu'\n")
            .unwrap();
        assert_eq!(installed_version(&dir.path().join("torch/lib")).as_deref(), Some("2.9.1+cpu"));
    }
}
