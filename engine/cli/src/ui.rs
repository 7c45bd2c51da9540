//! Terminal conventions: colour only on a terminal and without `NO_COLOR`,
//! data to stdout, everything else to stderr, a broken pipe exits quietly.

use std::io::IsTerminal;

#[derive(Clone, Copy)]
pub enum Style {
    Error,
    Hint,
    Ok,
    Warn,
    Dim,
}

pub fn color_stderr() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

pub fn color_stdout() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

fn paint(text: &str, style: Style, enabled: bool) -> String {
    if !enabled {
        return text.to_string();
    }
    let code = match style {
        Style::Error => "1;31",
        Style::Hint => "1;36",
        Style::Ok => "32",
        Style::Warn => "33",
        Style::Dim => "2",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// A label on stderr.
pub fn label(text: &str, style: Style) -> String {
    paint(text, style, color_stderr())
}

/// A word on stdout.
pub fn word(text: &str, style: Style) -> String {
    paint(text, style, color_stdout())
}

/// Restores the default SIGPIPE action, so `gourd dag | head` ends quietly
/// instead of panicking on a closed pipe.
pub fn reset_sigpipe() {
    // SAFETY: setting a signal disposition at start-up, before any thread.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Seconds with a sensible precision.
pub fn duration(d: std::time::Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 10.0 {
        format!("{secs:.2}s")
    } else if secs < 120.0 {
        format!("{secs:.1}s")
    } else {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

/// A size in bytes, in binary units with one decimal.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Whole seconds, for a live display: `7s`, `1m05s`.
pub fn duration_short(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    if secs < 60 { format!("{secs}s") } else { format!("{}m{:02}s", secs / 60, secs % 60) }
}

/// Writes `text` to `output` (atomically, then says so on stderr), or to
/// stdout without one.
pub fn write_or_print(output: Option<&std::path::Path>, text: &str) -> std::io::Result<()> {
    match output {
        Some(path) => {
            gourd_core::fsutil::write_atomic(path, text.as_bytes())?;
            eprintln!("Wrote `{}`.", path.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}
