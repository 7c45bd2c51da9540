//! `gourd __eval FILE STDLIB_DIR [--color] [--checked]`: the isolated evaluator child.
//! Prints the files the evaluation read (one line of JSON) and the pipeline's
//! JSON export on stdout (see `gourd_spec::Evaluation::to_wire`), or Nickel's
//! diagnostics on stderr with exit code 1.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    file: PathBuf,
    stdlib_dir: PathBuf,
    #[arg(long)]
    color: bool,
    /// Apply the `Pipeline` contract (for its diagnostics).
    #[arg(long)]
    checked: bool,
}

pub fn run(args: &Args) -> ExitCode {
    match gourd_spec::evaluate_here(&args.file, &args.stdlib_dir, args.color, args.checked) {
        Ok(evaluation) => {
            let mut stdout = std::io::stdout().lock();
            if stdout.write_all(evaluation.to_wire().as_bytes()).and_then(|()| stdout.flush()).is_err() {
                return ExitCode::from(2);
            }
            ExitCode::SUCCESS
        }
        Err(diagnostics) => {
            eprint!("{diagnostics}");
            ExitCode::from(1)
        }
    }
}
