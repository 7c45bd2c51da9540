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

/// Whether SIGHUP was ignored when gourd started (`nohup`, `trap '' HUP`):
/// a hangup is then not gourd's to act on, and no handler may take its
/// place. Ask before registering one.
pub fn hangup_ignored() -> bool {
    // SAFETY: a query only: no new action is given, the old one is written
    // into `old`, a plain C struct.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    let queried = unsafe { libc::sigaction(libc::SIGHUP, std::ptr::null(), &mut old) } == 0;
    queried && old.sa_sigaction == libc::SIG_IGN
}

/// Refuses a path given to `-o` (a report, a card, a receipt, a plot page,
/// a deployment file, a registered version's folder) that lies in `.git` or
/// `.gourd`, even through a link, or that names a pipeline file (`*.ncl`)
/// or gourd's record of sources: none of these is written there.
pub fn refuse_reserved_output(path: &std::path::Path) -> Result<(), crate::error::CommandError> {
    use crate::error::CommandError;
    refuse_reserved_place(path)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    if name.ends_with(".ncl") || name == crate::sources::FILE {
        return Err(CommandError::user(format!(
            "`{}` would replace a pipeline file or gourd's record of sources: name another file",
            path.display()
        )));
    }
    Ok(())
}

/// Refuses a path in `.git` or `.gourd`, a link on the way followed.
fn refuse_reserved_place(path: &std::path::Path) -> Result<(), crate::error::CommandError> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    // The nearest folder that exists, resolved: links on the way count.
    let real_parent = parent
        .ancestors()
        .find_map(|dir| {
            std::fs::canonicalize(if dir.as_os_str().is_empty() { std::path::Path::new(".") } else { dir }).ok()
        })
        .unwrap_or_else(|| parent.to_path_buf());
    let parts =
        real_parent.components().chain(parent.components()).chain(path.file_name().map(std::path::Component::Normal));
    if parts.into_iter().any(|part| matches!(part.as_os_str().to_str(), Some(".git" | ".gourd"))) {
        return Err(crate::error::CommandError::user(format!(
            "`{}` lies in `.git` or `.gourd`, where gourd writes none of its files",
            path.display()
        )));
    }
    Ok(())
}

/// Writes `text` to `output` (see [`write_through`], then says so on
/// stderr), or to stdout without one. A path [`refuse_reserved_output`]
/// refuses is refused: `-o .git/config` would replace the repository's
/// settings.
pub fn write_or_print(output: Option<&std::path::Path>, text: &str) -> Result<(), crate::error::CommandError> {
    use crate::error::CommandError;
    let Some(path) = output else {
        print!("{text}");
        return Ok(());
    };
    refuse_reserved_output(path)?;
    if path.is_dir() {
        return Err(CommandError::user(format!("`{}` is a folder: name a file", path.display())));
    }
    write_through(path, text.as_bytes())?;
    eprintln!("Wrote `{}`.", path.display());
    Ok(())
}

/// Writes a file the user named: replaced whole (written beside, then
/// renamed over, its mode kept) when it is a regular file or new; through a
/// link, the file it leads to (created when it does not exist yet), the link
/// kept; a device, a pipe or a socket is written to, never replaced by a
/// file; `/dev/stdout` and `/dev/stderr` (or a link to them) write to the
/// open stream, at its place. A link that leads into `.git` or `.gourd`, or
/// to a pipeline file or `gourd.sources.json`, is refused.
pub fn write_through(path: &std::path::Path, bytes: &[u8]) -> Result<(), crate::error::CommandError> {
    use std::io::Write;

    use crate::error::CommandError;
    if let Some(fd) = standard_stream(path) {
        let written = if fd == 1 { std::io::stdout().write_all(bytes) } else { std::io::stderr().write_all(bytes) };
        return Ok(written?);
    }
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_symlink());
    // Where a link leads, resolved through every link on the way, checked
    // as `-o` itself would be.
    let target = if is_link {
        let target = resolve_links(path).ok_or_else(|| {
            CommandError::user(format!("`{}`: too many links, or one that cannot be read", path.display()))
        })?;
        refuse_reserved_place(&target)?;
        let named = |p: &std::path::Path| p.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let (own, leads_to) = (named(path), named(&target));
        if leads_to == crate::sources::FILE || (leads_to.ends_with(".ncl") && !own.ends_with(".ncl")) {
            return Err(CommandError::user(format!(
                "`{}` leads to `{}`, a pipeline file or gourd's record of sources: name another file",
                path.display(),
                target.display()
            )));
        }
        target
    } else {
        path.to_path_buf()
    };
    match std::fs::metadata(&target) {
        Ok(meta) if meta.is_dir() => Err(CommandError::user(format!("`{}` is a folder: name a file", path.display()))),
        Ok(meta) if !meta.is_file() => {
            let mut file = fs_err::OpenOptions::new().write(true).open(&target)?;
            file.write_all(bytes)?;
            Ok(())
        }
        Ok(meta) => {
            gourd_core::fsutil::write_atomic(&target, bytes)?;
            // The file keeps its mode (a 0640 report stays 0640).
            fs_err::set_permissions(&target, meta.permissions())?;
            Ok(())
        }
        Err(_) => Ok(gourd_core::fsutil::write_atomic(&target, bytes)?),
    }
}

/// 1 or 2 when `path` is, or leads through links to, the process's own
/// stdout or stderr (`/dev/stdout`, `/proc/self/fd/1`, `/dev/fd/2`).
fn standard_stream(path: &std::path::Path) -> Option<u8> {
    let mut here = std::path::absolute(path).ok()?;
    for _ in 0..40 {
        for fd in [1u8, 2] {
            let names = [
                format!("/dev/{}", if fd == 1 { "stdout" } else { "stderr" }),
                format!("/proc/self/fd/{fd}"),
                format!("/dev/fd/{fd}"),
            ];
            if names.iter().any(|name| here == std::path::Path::new(name)) {
                return Some(fd);
            }
        }
        let next = std::fs::read_link(&here).ok()?;
        here = here.parent().unwrap_or(std::path::Path::new("/")).join(next);
    }
    None
}

/// Where the link `path` leads, every link on the way followed (its last
/// part need not exist yet); `None` past 40 links.
fn resolve_links(path: &std::path::Path) -> Option<std::path::PathBuf> {
    let mut here = std::path::absolute(path).ok()?;
    for _ in 0..40 {
        match std::fs::read_link(&here) {
            Ok(next) => here = here.parent().unwrap_or(std::path::Path::new("/")).join(next),
            Err(_) => {
                // Not a link: its folder resolved (links on the way there).
                let parent = here.parent()?;
                let name = here.file_name()?;
                return Some(match std::fs::canonicalize(parent) {
                    Ok(real) => real.join(name),
                    Err(_) => here.clone(),
                });
            }
        }
    }
    None
}
