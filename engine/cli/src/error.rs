//! Errors as the user sees them. Every failure is sorted once, here, into a
//! kind that picks the exit code: 1 for the user's input (command line,
//! pipeline) and failed stages, 2 for the environment and gourd itself.

use std::process::ExitCode;

use crate::ui;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Bad command line or bad pipeline file.
    User,
    /// The machine let us down: I/O, permissions, a missing program.
    Environment,
    /// A bug in gourd.
    Internal,
}

#[derive(Debug)]
pub struct CommandError {
    pub kind: Kind,
    pub message: String,
    pub hints: Vec<String>,
    /// The message is already rendered (Nickel's diagnostics) and is printed
    /// as it is.
    pub rendered: bool,
}

impl CommandError {
    pub fn user(message: impl Into<String>) -> Self {
        CommandError { kind: Kind::User, message: message.into(), hints: vec![], rendered: false }
    }

    pub fn environment(message: impl Into<String>) -> Self {
        CommandError { kind: Kind::Environment, message: message.into(), hints: vec![], rendered: false }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        CommandError { kind: Kind::Internal, message: message.into(), hints: vec![], rendered: false }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hints.push(hint.into());
        self
    }

    /// Prints the error and gives its exit code. A closed stderr (`gourd
    /// run 2>&1 | head -1`, where SIGPIPE is ignored) loses the text, never
    /// the exit code: `eprintln!` would panic.
    pub fn report(&self) -> ExitCode {
        use std::io::Write;
        let mut err = std::io::stderr().lock();
        let _ = if self.rendered {
            writeln!(err, "{}", self.message.trim_end())
        } else {
            writeln!(err, "{} {}", ui::label("error:", ui::Style::Error), self.message)
        };
        for hint in &self.hints {
            let _ = writeln!(err, "\n{} {hint}", ui::label("hint:", ui::Style::Hint));
        }
        if self.kind == Kind::Internal {
            let _ = writeln!(err, "\nThis is a bug in gourd {}; please report it.", env!("CARGO_PKG_VERSION"));
        }
        ExitCode::from(match self.kind {
            Kind::User => 1,
            Kind::Environment | Kind::Internal => 2,
        })
    }
}

/// Adds "a similar subcommand exists" to an unknown subcommand where clap
/// found none: clap's measure misses swapped letters in short names (`rnu`).
pub fn suggest_subcommand(mut err: clap::Error, cli: &clap::Command) -> clap::Error {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if err.kind() != ErrorKind::InvalidSubcommand || err.get(ContextKind::SuggestedSubcommand).is_some() {
        return err;
    }
    let Some(ContextValue::String(typed)) = err.get(ContextKind::InvalidSubcommand) else {
        return err;
    };
    let typed = typed.clone();
    // The command the unknown word was given to: follow the known
    // subcommands on the command line down to it.
    let mut command = cli;
    for arg in std::env::args().skip(1) {
        if arg == typed {
            break;
        }
        if let Some(sub) = command.find_subcommand(&arg) {
            command = sub;
        }
    }
    let names = command.get_subcommands().filter(|c| !c.is_hide_set()).map(|c| c.get_name());
    if let Some(near) = gourd_core::suggest::closest(&typed, names) {
        err.insert(ContextKind::SuggestedSubcommand, ContextValue::String(near.to_string()));
    }
    err
}

impl From<std::io::Error> for CommandError {
    fn from(err: std::io::Error) -> Self {
        // A path that is not what it must be (a dep that is a pipe or a
        // device, say) is the pipeline's or the user's to fix.
        if err.kind() == std::io::ErrorKind::InvalidInput {
            return CommandError::user(err.to_string());
        }
        CommandError::environment(err.to_string())
    }
}

impl From<gourd_spec::SpecError> for CommandError {
    fn from(err: gourd_spec::SpecError) -> Self {
        use gourd_spec::SpecError;
        match err {
            SpecError::Nickel { diagnostics, hints } => {
                CommandError { kind: Kind::User, message: diagnostics, hints, rendered: true }
            }
            SpecError::Crashed { ref file, .. } => {
                // The usual way to run out with thousands of generated
                // stages: Nickel's from_array copies the record per field.
                let quadratic = std::fs::read_to_string(file).is_ok_and(|text| text.contains("std.record.from_array"));
                let hint = if quadratic {
                    "`std.record.from_array` copies the whole record for each field it adds, which takes gigabytes \
                     for thousands of stages: use `gourd.record_from_array` (same argument, `let gourd = import \
                     \"gourd-std.ncl\" in`) instead; `GOURD_EVAL_MEMORY_MB` raises the memory limit"
                } else {
                    "look for recursion without end in the pipeline; `GOURD_EVAL_MEMORY_MB` raises the memory limit"
                };
                CommandError::user(err.to_string()).with_hint(hint)
            }
            err @ SpecError::TimedOut { .. } => CommandError::user(err.to_string())
                .with_hint("look for a loop without end in the pipeline; `GOURD_EVAL_TIMEOUT` raises the limit"),
            SpecError::Invalid { ref hint, .. } => {
                let hints = hint.iter().cloned().collect();
                CommandError { kind: Kind::User, message: err.to_string(), hints, rendered: false }
            }
            SpecError::UnknownField { ref field, ref known, .. } => {
                let hint = gourd_spec::unknown_field_hint(field, known);
                CommandError::user(err.to_string()).with_hint(hint)
            }
            err @ SpecError::Io { .. } => CommandError::environment(err.to_string()),
        }
    }
}

impl From<gourd_core::secrets::MissingSecrets> for CommandError {
    fn from(err: gourd_core::secrets::MissingSecrets) -> Self {
        let what = if err.missing.len() == 1 { "it" } else { "each" };
        CommandError::user(err.to_string()).with_hint(format!(
            "export {what} in the shell that runs `gourd run`; a secret's value enters neither the stage key nor lineage, and is redacted from the log"
        ))
    }
}

impl From<gourd_core::graph::GraphError> for CommandError {
    fn from(err: gourd_core::graph::GraphError) -> Self {
        use gourd_core::graph::{GraphError, Suggestion};
        let message = err.to_string();
        match err {
            GraphError::DepIsLinkLoop { dep, .. } => CommandError::user(message)
                .with_hint(format!("make `{dep}` a link to a file or folder that exists, or replace it by one")),
            GraphError::DepIsReserved { .. } => {
                CommandError::user(message).with_hint("name the files or folders the stage reads")
            }
            GraphError::DepIsAlias { real, .. } => {
                CommandError::user(message).with_hint(format!("name `{real}` in `deps` instead"))
            }
            GraphError::UnknownStage { suggestion: Some(near), .. } => {
                CommandError::user(message).with_hint(format!("did you mean `{near}`?"))
            }
            GraphError::MissingDep { suggestion: Some(Suggestion::Output { path, stage }), .. } => {
                CommandError::user(message).with_hint(format!("did you mean `{path}`? (an output of stage `{stage}`)"))
            }
            GraphError::MissingDep { suggestion: Some(Suggestion::Existing { path }), .. } => {
                CommandError::user(message).with_hint(format!("did you mean `{path}`? (it exists in the workspace)"))
            }
            GraphError::MissingDep { suggestion: Some(Suggestion::UnderWdir { path, wdir }), .. } => {
                CommandError::user(message).with_hint(format!(
                    "did you mean `{path}`? Paths in `deps`, `outs` and `metrics` are relative to the workspace, \
                     not to `wdir` (`{wdir}`), which only sets where the command runs"
                ))
            }
            _ => CommandError::user(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_evaluation_out_of_memory_names_the_quadratic_builder_when_it_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let crashed = |source: &str| {
            let file = dir.path().join("gourd.ncl");
            std::fs::write(&file, source).unwrap();
            let err = gourd_spec::SpecError::Crashed { file, reason: "out of memory".into() };
            CommandError::from(err).hints.join("\n")
        };
        let generated = crashed("{ stages = std.record.from_array (std.array.generate f 100000) }");
        assert!(generated.contains("use `gourd.record_from_array`"), "{generated}");
        let other = crashed("{ stages = {} }");
        assert!(other.contains("recursion without end"), "{other}");
        assert!(!other.contains("record_from_array"), "{other}");
    }
}
