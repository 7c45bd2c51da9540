//! `pumpkin-photos DIR [--seed N] [--per-class N]`: writes the example's
//! photo set to DIR.

fn main() {
    let mut args = std::env::args().skip(1);
    let mut dir = None;
    let mut options = pumpkin_photos::Options::default();
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> u64 {
            args.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
                eprintln!("error: `{name}` needs a number");
                std::process::exit(1)
            })
        };
        match arg.as_str() {
            "--seed" => options.seed = number("--seed"),
            "--per-class" => options.per_class = number("--per-class") as usize,
            "-h" | "--help" => {
                println!("usage: pumpkin-photos DIR [--seed N] [--per-class N]");
                return;
            }
            _ if dir.is_none() => dir = Some(arg),
            other => {
                eprintln!("error: unexpected argument `{other}`");
                std::process::exit(1);
            }
        }
    }
    let Some(dir) = dir else {
        eprintln!("usage: pumpkin-photos DIR [--seed N] [--per-class N]");
        std::process::exit(1);
    };
    match pumpkin_photos::generate(std::path::Path::new(&dir), &options) {
        Ok(summary) => eprintln!(
            "wrote {} photos to `{dir}` ({} watermelons, {} blurry and {} tiny among the citizens' photos)",
            summary.written,
            summary.watermelons.len(),
            summary.blurry.len(),
            summary.tiny.len()
        ),
        Err(err) => {
            eprintln!("error: {err}");
            std::process::exit(2);
        }
    }
}
