//! The workspace lock: one `gourd run` at a time per workspace.
//!
//! An advisory `flock` on `.gourd/lock`, released by the kernel when the
//! process dies, so a killed run never leaves a stale lock behind.

use std::fs::{File, TryLockError};
use std::io::{self, Write};
use std::path::Path;

pub struct WorkspaceLock {
    _file: File,
}

impl WorkspaceLock {
    /// Takes the lock, calling `on_wait` with the holder's pid (if known)
    /// once before blocking when another process holds it.
    pub fn acquire(gourd_dir: &Path, on_wait: impl FnOnce(Option<u32>)) -> io::Result<WorkspaceLock> {
        fs_err::create_dir_all(gourd_dir)?;
        let path = gourd_dir.join("lock");
        let mut file =
            fs_err::OpenOptions::new().create(true).truncate(false).read(true).write(true).open(&path)?.into_parts().0;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).ok().and_then(|s| s.trim().parse().ok());
                // A stage that runs gourd on its own workspace (`make`'s
                // habit) would wait for the run that waits for it.
                if let Some(pid) = holder.filter(|&pid| started_by(pid)) {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!(
                            "this command was started, through a stage, by the `gourd` (pid {pid}) that holds this workspace, and would wait for it forever: a stage cannot run gourd on the workspace it runs in (run that stage's part as a stage of its own)"
                        ),
                    ));
                }
                on_wait(holder);
                file.lock().map_err(|e| crate::hash::with_path(e, &path))?;
            }
            Err(TryLockError::Error(err)) => return Err(crate::hash::with_path(err, &path)),
        }
        file.set_len(0)?;
        write!(file, "{}", std::process::id())?;
        Ok(WorkspaceLock { _file: file })
    }
}

/// Whether the process `pid` is this one or one of its ancestors (read
/// from `/proc`; `false` where it cannot be read).
pub fn started_by(pid: u32) -> bool {
    let mut current = std::process::id();
    // A chain of parents ends at 0, above init, which has no `/proc` entry;
    // a bound guards against a `/proc` that reads oddly.
    for _ in 0..4096 {
        if current == pid {
            return true;
        }
        let Some(parent) = parent_of(current) else { return false };
        current = parent;
    }
    false
}

/// The parent of `pid`: the fourth field of `/proc/PID/stat`, after the
/// command name in parentheses (which may hold spaces and parentheses).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ancestors_are_known_and_others_are_not() {
        assert!(started_by(std::process::id()));
        assert!(started_by(std::os::unix::process::parent_id()));
        let mut child = std::process::Command::new("sleep").arg("5").spawn().unwrap();
        assert!(!started_by(child.id()), "a child is no ancestor");
        assert_eq!(parent_of(child.id()), Some(std::process::id()));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!started_by(u32::MAX));
        assert_eq!(parent_of(u32::MAX), None);
    }

    /// Held by an ancestor (here this very process, through another open
    /// file), the lock is refused at once rather than waited for.
    #[test]
    fn a_lock_held_by_an_ancestor_is_refused_not_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let _held = WorkspaceLock::acquire(dir.path(), |_| panic!("free")).unwrap();
        let mut waited = false;
        let err = WorkspaceLock::acquire(dir.path(), |_| waited = true).err().expect("refused");
        assert!(!waited);
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(
            err.to_string().contains(&format!("by the `gourd` (pid {}) that holds this workspace", std::process::id())),
            "{err}"
        );
    }
}
