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
