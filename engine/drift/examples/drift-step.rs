//! `cargo run --release -p gourd-drift --example drift-step CONFIG`: the
//! drift step on a configuration file, as `gourd __step drift CONFIG` runs
//! it, without building the rest of gourd (for profiling).

fn main() {
    let path = std::env::args().nth(1).expect("usage: drift-step CONFIG");
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).expect("readable")).expect("JSON");
    match gourd_drift::run_step(&config, std::path::Path::new("")) {
        Ok(report) => println!("drift: {} (share {:.3})", report.drift, report.share),
        Err(err) => {
            eprintln!("error: {err}");
            std::process::exit(1);
        }
    }
}
