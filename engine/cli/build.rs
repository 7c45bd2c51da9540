//! Build facts for `gourd --version` (the commit and the features), and, with
//! the `torch` feature, where `gourd-step` finds libtorch at run time.
//!
//! Only `gourd-step` links libtorch; `gourd` stays quick to start. By
//! default `gourd-step` gets an rpath to the libtorch it was built against, so
//! it runs with no `LD_LIBRARY_PATH`. With `GOURD_TORCH_FROM_PYTHON=1` (the
//! wheel, scripts/build-wheel.sh) it gets rpaths relative to itself instead,
//! into the `torch` package of the Python environment it is installed in
//! (`<prefix>/bin/gourd-step` next to `<prefix>/lib/pythonX.Y/site-packages/torch`),
//! so that the wheel carries no libtorch of its own. `gourd` checks the same
//! folders, and the torch version found there, before a run
//! (src/commands/step.rs).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Python versions whose `site-packages` the wheel's `gourd-step` looks in.
const PYTHONS: &[&str] = &["3.9", "3.10", "3.11", "3.12", "3.13", "3.14", "3.15"];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=GOURD_TORCH_FROM_PYTHON");
    println!("cargo:rerun-if-env-changed=GOURD_BUILD_COMMIT");
    println!("cargo:rustc-env=GOURD_BUILD_COMMIT={}", commit());

    let torch = std::env::var_os("CARGO_FEATURE_TORCH").is_some();
    let cuda = std::env::var_os("CARGO_FEATURE_CUDA").is_some();
    let features = match (torch, cuda) {
        (_, true) => "torch, cuda",
        (true, false) => "torch",
        (false, false) => "none",
    };
    println!("cargo:rustc-env=GOURD_BUILD_FEATURES={features}");
    if !torch {
        println!("cargo:rustc-env=GOURD_TORCH_VERSION=");
        println!("cargo:rustc-env=GOURD_TORCH_SEARCH=");
        return;
    }

    let lib = std::env::var("DEP_TCH_LIBTORCH_LIB").map(PathBuf::from).ok();
    println!("cargo:rustc-env=GOURD_TORCH_VERSION={}", lib.as_deref().map(torch_version).unwrap_or_default());
    let from_python = std::env::var("GOURD_TORCH_FROM_PYTHON").is_ok_and(|v| v == "1");
    // Folders that hold libtorch's libraries, relative to `gourd-step`'s
    // folder, or absolute.
    let search: Vec<String> = if from_python {
        PYTHONS
            .iter()
            .flat_map(|v| {
                [
                    format!("../lib/python{v}/site-packages/torch/lib"),
                    format!("../lib/python{v}/dist-packages/torch/lib"),
                ]
            })
            .collect()
    } else {
        lib.iter().map(|lib| lib.display().to_string()).collect()
    };
    for dir in &search {
        let rpath = if Path::new(dir).is_absolute() { dir.clone() } else { format!("$ORIGIN/{dir}") };
        println!("cargo:rustc-link-arg-bin=gourd-step=-Wl,-rpath,{rpath}");
    }
    println!("cargo:rustc-env=GOURD_TORCH_SEARCH={}", search.join(":"));

    if cuda {
        // The linker would drop libtorch_cuda (nothing references it by
        // name), and CUDA would then look unavailable.
        for arg in ["-Wl,--no-as-needed", "-ltorch_cuda", "-ltorch", "-Wl,--as-needed"] {
            println!("cargo:rustc-link-arg-bin=gourd-step={arg}");
        }
    }
}

/// The commit gourd is built from: `GOURD_BUILD_COMMIT` when set (a build
/// from a source archive), else git's HEAD, else `unknown`. Rebuilt when HEAD
/// moves.
fn commit() -> String {
    if let Ok(commit) = std::env::var("GOURD_BUILD_COMMIT") {
        return commit;
    }
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    // HEAD, the branch it is on, and packed refs: a commit moves one of them.
    let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
    watched.extend(git(&["symbolic-ref", "-q", "HEAD"]));
    for name in watched {
        if let Some(path) = git(&["rev-parse", "--git-path", &name]).filter(|p| Path::new(p).exists()) {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_string())
}

/// The version of the libtorch in `lib`: `../version.py` of a PyPI `torch`
/// package, `../build-version` of a libtorch archive.
fn torch_version(lib: &Path) -> String {
    let Some(root) = lib.parent() else { return String::new() };
    if let Ok(text) = std::fs::read_to_string(root.join("version.py")) {
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("__version__") {
                return rest.trim_start_matches([' ', '=']).trim().trim_matches(['\'', '"']).to_string();
            }
        }
    }
    std::fs::read_to_string(root.join("build-version")).map(|v| v.trim().to_string()).unwrap_or_default()
}
