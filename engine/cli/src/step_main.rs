//! `gourd-step NAME CONFIG`: runs one built-in step (see docs/torch.md).
//! `gourd run` starts it as a child process, like any stage command, so steps
//! get the same logs, timeouts, interrupts and GPU assignment.
//! `gourd-step --cuda-devices` prints how many CUDA devices libtorch sees.
//! `gourd-step serve CONFIG` is the prediction service of `gourd serve`;
//! `gourd-step drift CONFIG` the drift step on images (with `model`).

mod step_drift;
mod step_serve;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [flag] if flag == "--cuda-devices" => {
            println!("{}", gourd_torch::cuda_device_count());
            ExitCode::SUCCESS
        }
        [name, config] if name == "serve" => step_serve::main(config),
        [name, config] if name == "drift" => step_drift::main(config),
        [name, config] => {
            let config = match read_config::<serde_json::Value>(config) {
                Ok(config) => config,
                Err(err) => {
                    eprintln!("error: cannot read the step configuration: {err}");
                    return ExitCode::from(2);
                }
            };
            match gourd_torch::run_step(name, &config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("error: step `{name}`: {err}");
                    ExitCode::from(1)
                }
            }
        }
        _ => {
            eprintln!("usage: gourd-step NAME CONFIG | gourd-step serve CONFIG | gourd-step --cuda-devices");
            ExitCode::from(2)
        }
    }
}

/// A step's configuration file (JSON), as `gourd` wrote it.
fn read_config<T: serde::de::DeserializeOwned>(path: &str) -> Result<T, String> {
    let bytes = fs_err::read(path).map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
}
