//! `gourd report`: an HTML or Markdown report of the pipeline.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::ValueEnum;

use crate::error::CommandError;
use crate::report;
use crate::workspace::Location;

#[derive(clap::Args)]
pub struct Args {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Html)]
    format: Format,
    /// Write to FILE instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    /// Compare metrics against this git revision.
    #[arg(long, value_name = "REV", default_value = "HEAD")]
    base: String,
    /// Use `report.html.j2` / `report.md.j2` from DIR instead of the built-in templates.
    #[arg(long, value_name = "DIR")]
    template_dir: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Html,
    Md,
}

pub fn run(location: &Location, args: &Args) -> Result<ExitCode, CommandError> {
    // Reads the pipeline and history only: a clone without the data works.
    let loaded = location.load_checked(false)?;
    let context = report::context(&loaded, &args.base)?;
    let (name, builtin) = match args.format {
        Format::Html => ("report.html.j2", report::HTML_TEMPLATE),
        Format::Md => ("report.md.j2", report::MD_TEMPLATE),
    };
    let source = match &args.template_dir {
        Some(dir) => std::fs::read_to_string(dir.join(name)).map_err(|err| {
            CommandError::user(format!("`--template-dir {}`: cannot read `{name}` there: {err}", dir.display()))
                .with_hint("the folder holds `report.html.j2` and `report.md.j2` (see docs/reports.md)")
        })?,
        None => builtin.to_string(),
    };
    let mut env = minijinja::Environment::new();
    // `.html.j2` escapes HTML, `.md.j2` Markdown.
    report::markdown::configure(&mut env);
    env.add_template_owned(name.to_string(), source)
        .map_err(|e| CommandError::user(format!("template `{name}`: {e}")))?;
    let rendered = env
        .get_template(name)
        .and_then(|t| t.render(minijinja::value::Serde(&context)))
        .map_err(|e| CommandError::user(format!("template `{name}`: {e:#}")))?;
    crate::ui::write_or_print(args.output.as_deref(), &rendered)?;
    Ok(ExitCode::SUCCESS)
}
