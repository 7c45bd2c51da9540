//! `pumpkin-photos DIR [--seed N] [--per-class N]`: writes the example's
//! photo set to DIR. With `--batch home|other`, a new labelled delivery
//! instead: from the farmer's own field, or from another farm whose
//! pumpkins are paler and larger.

fn main() {
    let mut args = std::env::args().skip(1);
    let mut dir = None;
    let mut options = pumpkin_photos::Options::default();
    let mut farm = None;
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
            "--batch" => {
                farm = match args.next().as_deref() {
                    Some("home") => Some(pumpkin_photos::Farm::Home),
                    Some("other") => Some(pumpkin_photos::Farm::Other),
                    _ => {
                        eprintln!("error: `--batch` needs `home` or `other`");
                        std::process::exit(1)
                    }
                }
            }
            "-h" | "--help" => {
                println!("usage: pumpkin-photos DIR [--seed N] [--per-class N] [--batch home|other]");
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
        eprintln!("usage: pumpkin-photos DIR [--seed N] [--per-class N] [--batch home|other]");
        std::process::exit(1);
    };
    if let Some(farm) = farm {
        let per_class =
            if options.per_class == pumpkin_photos::Options::default().per_class { 20 } else { options.per_class };
        match pumpkin_photos::batch(std::path::Path::new(&dir), per_class, options.seed, farm) {
            Ok(n) => eprintln!("wrote a batch of {n} photos to `{dir}`"),
            Err(err) => {
                eprintln!("error: {err}");
                std::process::exit(2);
            }
        }
        return;
    }
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
