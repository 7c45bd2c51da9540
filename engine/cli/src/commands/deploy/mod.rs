//! `gourd deploy render`: the files that run `gourd serve` somewhere else:
//! a Dockerfile, a KServe `InferenceService`, a systemd unit. The templates
//! live in `templates/deploy/` and are built into the binary, so an
//! installed gourd has them. MODEL is read as `gourd serve` reads it: a
//! model folder, or a registry reference.

mod escape;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::Serialize;

use crate::commands::registry::query::resolve_reference;
use crate::error::CommandError;
use crate::workspace::Location;

const DOCKERFILE: &str = include_str!("../../../../../templates/deploy/Dockerfile.j2");
const INFERENCE_SERVICE: &str = include_str!("../../../../../templates/deploy/inferenceservice.yaml.j2");
const SYSTEMD_UNIT: &str = include_str!("../../../../../templates/deploy/gourd.service.j2");

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Print a Dockerfile, a KServe InferenceService or a systemd unit that serves MODEL.
    Render(RenderArgs),
}

#[derive(clap::Args)]
pub struct RenderArgs {
    /// What to render.
    #[arg(long, value_enum)]
    target: Target,
    /// A model folder (holding `model.json`), or a registry reference (`pumpkin@prod`).
    model: String,
    /// The service's name (a Kubernetes resource name, `gourd-NAME.service`);
    /// default: the folder's name, or the registry name.
    #[arg(long)]
    name: Option<String>,
    /// The port the server listens on.
    #[arg(long, default_value_t = 8080, value_parser = clap::value_parser!(u16).range(1..))]
    port: u16,
    /// systemd: the address the server listens on (in a container: every address).
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// docker and kserve: the image (default: NAME:VERSION for a registry reference, NAME:latest otherwise).
    #[arg(long)]
    image: Option<String>,
    /// systemd: the absolute path of `gourd` on the machine that runs the unit (default: this gourd).
    #[arg(long, value_name = "PATH")]
    gourd: Option<PathBuf>,
    /// Write to PATH instead of standard output.
    #[arg(short, long, value_name = "PATH")]
    output: Option<PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Target {
    Docker,
    Kserve,
    Systemd,
}

pub fn run(location: &Location, args: &Args) -> Result<ExitCode, CommandError> {
    match &args.command {
        Command::Render(args) => render(location, args),
    }
}

/// What the templates see. Every string in it is escaped by the template's
/// format (see `escape`).
#[derive(Serialize)]
struct Context {
    name: String,
    port: u16,
    host: String,
    image: String,
    gourd_version: &'static str,
    /// MODEL as given, for the files' header.
    source: String,
    /// What `gourd serve` is given on the machine itself (systemd): the
    /// folder's absolute path, or the reference.
    model: String,
    /// The folder to build a docker image from, relative to here.
    context: String,
    /// The repository a reference is resolved in.
    workdir: Option<String>,
    /// Its `.gourd/`, where `gourd serve` puts the versions it fetches.
    writable: Option<String>,
    /// The user that runs the systemd service; `None`: a transient one.
    user: Option<String>,
    gourd: String,
    registry: Option<RegistryVersion>,
}

#[derive(Serialize)]
struct RegistryVersion {
    reference: String,
    name: String,
    version: String,
    /// `NAME@VERSION`: what an image holds (it does not follow the stage).
    pinned: String,
    digest: Option<String>,
    /// The folder `gourd registry get` writes (the artifact's last path component).
    folder: String,
}

fn render(location: &Location, args: &RenderArgs) -> Result<ExitCode, CommandError> {
    let model = resolve_model(location, &args.model)?;
    // A model folder's own files (`model.json`, the weights): `-o` must not
    // replace them.
    let model_files = (model.workdir.is_none()).then(|| model.owned.clone());
    let name = match &args.name {
        Some(name) => checked_name(name, "--name")?,
        None => checked_name(&model.name, "the model's name")?,
    };
    let image = match &args.image {
        Some(image) if escape::is_word(image) && !image.contains('#') => image.clone(),
        Some(image) => return Err(CommandError::user(format!("`{image}` is not an image reference"))),
        None => format!("{name}:{}", model.registry.as_ref().map_or("latest", |r| r.version.as_str())),
    };
    let gourd = match &args.gourd {
        Some(path) if path.is_absolute() => path.clone(),
        Some(path) => {
            return Err(CommandError::user(format!("`--gourd {}` is not an absolute path", path.display()))
                .with_hint("systemd runs a program by its absolute path (`/usr/local/bin/gourd`)"));
        }
        None => std::env::current_exe()?,
    };
    let workdir = model.workdir.as_deref().map(text).transpose()?;
    let gourd = text(&gourd)?;
    if let Target::Systemd = args.target {
        // What systemd cannot take is the user's to fix, before rendering.
        escape::exec_path(&gourd).map_err(|e| {
            CommandError::user(format!("cannot run gourd from a unit file: {e}"))
                .with_hint("pass `--gourd PATH` with the path of gourd where the service runs")
        })?;
        if let Some(dir) = &workdir {
            escape::unit_path(dir)
                .map_err(|e| CommandError::user(format!("the repository cannot be a unit's working directory: {e}")))?;
        }
    }
    let context = Context {
        port: args.port,
        host: args.host.to_string(),
        image,
        gourd_version: env!("CARGO_PKG_VERSION"),
        source: args.model.clone(),
        model: model.serve,
        context: model.context,
        user: owner_name(&model.owned, model.workdir.is_some()),
        writable: model
            .workdir
            .as_deref()
            .map(|dir| dir.join(".gourd"))
            .filter(|dir| dir.is_dir())
            .map(|d| text(&d))
            .transpose()?,
        workdir,
        gourd,
        registry: model.registry,
        name,
    };
    let (template, source) = match args.target {
        Target::Docker => ("Dockerfile.j2", DOCKERFILE),
        Target::Kserve => ("inferenceservice.yaml.j2", INFERENCE_SERVICE),
        Target::Systemd => ("gourd.service.j2", SYSTEMD_UNIT),
    };
    let mut env = minijinja::Environment::new();
    escape::configure(&mut env);
    let syntax = minijinja::syntax::SyntaxConfig::builder().keep_trailing_newline(true).build();
    env.set_syntax(syntax.expect("the default delimiters"));
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    let rendered = env
        .add_template(template, source)
        .and_then(|()| env.get_template(template))
        .and_then(|t| t.render(minijinja::value::Serde(&context)))
        .map_err(|e| CommandError::internal(format!("cannot render {template}: {e}")))?;
    if let Some(output) = &args.output {
        refuse_model_file(output, &model_files)?;
    }
    crate::ui::write_or_print(args.output.as_deref(), &rendered)?;
    Ok(ExitCode::SUCCESS)
}

/// MODEL, resolved.
struct Model {
    /// The default service name.
    name: String,
    serve: String,
    context: String,
    workdir: Option<PathBuf>,
    /// The path whose owner runs the systemd service.
    owned: PathBuf,
    registry: Option<RegistryVersion>,
}

/// Refuses `output` when it lies in the model folder `model` (links on the
/// way followed): the folder is the model, a stage's output that gourd
/// checks against its digest, and rendering must not change it.
fn refuse_model_file(output: &Path, model: &Option<PathBuf>) -> Result<(), CommandError> {
    let Some(model) = model else { return Ok(()) };
    let absolute = std::path::absolute(output)?;
    // The nearest folder that exists, resolved, with the rest of the path.
    let real = absolute
        .ancestors()
        .find_map(|dir| {
            let rest = absolute.strip_prefix(dir).ok()?;
            std::fs::canonicalize(dir).ok().map(|real| real.join(rest))
        })
        .unwrap_or(absolute);
    if real.starts_with(model) {
        return Err(CommandError::user(format!(
            "`{}` lies in the model folder `{}`: writing there would change the model",
            output.display(),
            model.display()
        ))
        .with_hint(
            "write the file outside the model folder; `docker build -f FILE MODEL_FOLDER` reads it from there",
        ));
    }
    Ok(())
}

/// A folder that exists is a model folder; anything else with `@` or `#`
/// is a registry reference.
fn resolve_model(location: &Location, model: &str) -> Result<Model, CommandError> {
    let path = Path::new(model);
    if path.exists() {
        return model_folder(path);
    }
    if model.contains(['@', '#']) {
        return registry_version(location, model);
    }
    Err(CommandError::user(format!("`{model}` does not exist"))
        .with_hint("MODEL is a model folder (holding `model.json`) or a registry reference (`pumpkin@prod`)"))
}

fn model_folder(path: &Path) -> Result<Model, CommandError> {
    if !path.join("model.json").is_file() {
        return Err(CommandError::user(format!(
            "`{}` holds no `model.json`: it is not a model folder",
            path.display()
        ))
        .with_hint("a model folder is what the built-in `train` step writes (see docs/torch.md)"));
    }
    let card = fs_err::read(path.join("model.json"))?;
    if let Err(err) = serde_json::from_slice::<serde_json::Value>(&card) {
        return Err(CommandError::user(format!("`{}`: not JSON: {err}", path.join("model.json").display()))
            .with_hint("`model.json` is what the built-in `train` step writes beside the weights"));
    }
    let absolute = fs_err::canonicalize(path)?;
    let serve = text(&absolute)?;
    let name = absolute.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    // `docker build` sends a folder as the context; shown relative to here
    // when it lies below.
    let here = std::env::current_dir().and_then(fs_err::canonicalize)?;
    let context = match absolute.strip_prefix(&here) {
        Ok(rel) if rel.as_os_str().is_empty() => ".".to_string(),
        Ok(rel) => text(rel)?,
        Err(_) => serve.clone(),
    };
    Ok(Model { name, serve, context, workdir: None, owned: absolute, registry: None })
}

fn registry_version(location: &Location, reference: &str) -> Result<Model, CommandError> {
    let (root, registry) = crate::commands::registry::open(location)?;
    let resolved = resolve_reference(&registry, reference, None)?;
    let record = resolved.registration.as_ref().and_then(|e| e.record.as_ref());
    let pinned = format!("{}@{}", resolved.name, resolved.version);
    let path = record.and_then(|r| r.path.clone()).ok_or_else(|| {
        CommandError::user(format!("{pinned} was registered without gourd: its path is unknown"))
            .with_hint("register the model folder with `gourd registry register`")
    })?;
    if record.and_then(|r| r.kind.as_deref()) == Some("file") {
        return Err(CommandError::user(format!("{pinned} is the file `{path}`, not a model folder"))
            .with_hint("`gourd serve` serves a folder holding `model.json`, as the built-in `train` step writes"));
    }
    let folder = path.rsplit('/').find(|c| !c.is_empty()).unwrap_or(&path).to_string();
    let root = fs_err::canonicalize(&root)?;
    Ok(Model {
        name: resolved.name.clone(),
        serve: reference.to_string(),
        context: format!("build/{folder}"),
        owned: root.clone(),
        workdir: Some(root),
        registry: Some(RegistryVersion {
            reference: reference.to_string(),
            name: resolved.name,
            version: resolved.version,
            pinned,
            digest: resolved.digest,
            folder,
        }),
    })
}

/// `name` if it can name a Kubernetes resource (a DNS-1035 label, as KServe
/// requires: lower-case letters, digits and `-`, starting with a letter,
/// at most 63 characters) and so a systemd unit too.
fn checked_name(name: &str, what: &str) -> Result<String, CommandError> {
    let valid = name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if valid {
        return Ok(name.to_string());
    }
    let err = CommandError::user(format!(
        "{what} `{}` cannot name a service: a Kubernetes resource and a systemd unit need lower-case letters, digits and `-`, starting with a letter, at most 63 characters",
        name.escape_debug()
    ));
    Err(match suggested_name(name) {
        Some(suggestion) => err.with_hint(format!("pass `--name {suggestion}`")),
        None => err.with_hint("pass `--name NAME`"),
    })
}

/// `name` made valid: lower case, other characters as `-`.
fn suggested_name(name: &str) -> Option<String> {
    let mut out = String::new();
    for c in name.chars() {
        match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => out.push(c),
            _ if !out.is_empty() && !out.ends_with('-') => out.push('-'),
            _ => {}
        }
    }
    let out = out.trim_start_matches(|c: char| c.is_ascii_digit() || c == '-');
    let out: String = out.chars().take(63).collect();
    let out = out.trim_end_matches('-');
    (!out.is_empty()).then(|| out.to_string())
}

/// A path as text for a deployment file: UTF-8 and on one line.
fn text(path: &Path) -> Result<String, CommandError> {
    let hint = "a deployment file cannot hold it; rename the folder";
    let Some(text) = path.to_str() else {
        return Err(CommandError::user(format!("`{}` is not UTF-8", path.display())).with_hint(hint));
    };
    // U+2028 and U+2029 end a line for YAML readers, as `\n` does.
    if text.contains(|c: char| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')) {
        return Err(CommandError::user(format!("the path {text:?} holds a control character (a line break, a tab)"))
            .with_hint(hint));
    }
    Ok(text.to_string())
}

/// The name of the user owning `path`, who can read it. `None` for a model
/// folder root owns: the service then runs as a transient user, which reads
/// what everyone may. A repository is another matter: git trusts it only to
/// its owner, and the service writes into its `.gourd/`, so root it is (the
/// unit takes every capability away from it).
fn owner_name(path: &Path, repository: bool) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata(path).ok()?.uid();
    if uid == 0 && !repository {
        return None;
    }
    let name = user_name(uid).filter(|name| {
        name.len() <= 32
            && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    });
    Some(name.unwrap_or_else(|| uid.to_string()))
}

fn user_name(uid: u32) -> Option<String> {
    let mut buffer = vec![0 as libc::c_char; 4096];
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: the buffers outlive the call, and `pw_name` points into
    // `buffer`, read before it is dropped.
    let code = unsafe { libc::getpwuid_r(uid, &mut entry, buffer.as_mut_ptr(), buffer.len(), &mut found) };
    if code != 0 || found.is_null() {
        return None;
    }
    let name = unsafe { std::ffi::CStr::from_ptr(entry.pw_name) };
    name.to_str().ok().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dns_labels() {
        assert!(checked_name("best", "n").is_ok());
        assert!(checked_name("pumpkin-v2", "n").is_ok());
        for bad in ["Best", "2best", "best-", "be_st", "", "a.b", &"a".repeat(64)] {
            assert!(checked_name(bad, "n").is_err(), "{bad}");
        }
    }

    #[test]
    fn a_name_is_suggested() {
        assert_eq!(suggested_name("Best_Model").as_deref(), Some("best-model"));
        assert_eq!(suggested_name("models/cv:pumpkin").as_deref(), Some("models-cv-pumpkin"));
        assert_eq!(suggested_name("2024 run").as_deref(), Some("run"));
        assert_eq!(suggested_name("__"), None);
    }
}
