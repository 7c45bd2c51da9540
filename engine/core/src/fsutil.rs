//! Small file-system helpers shared by the store and the state files.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A name for a temporary file that no other writer in any process picks.
pub fn temp_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{prefix}.{}.{n}.{nanos}.gourd-tmp", std::process::id())
}

/// A temporary path beside `path`, in the same folder (so a rename is atomic).
pub fn temp_beside(path: &Path) -> PathBuf {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("tmp");
    path.with_file_name(temp_name(&format!(".{name}")))
}

/// Writes `bytes` to `path` atomically and durably: temp file in the same
/// folder, fsync, rename. Readers see the old or the new content, never a mix,
/// and after a crash of the machine the new content is there in full.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_replace(path, bytes, true)
}

/// Like [`write_atomic`] without the fsync: for files whose loss on a power
/// failure costs nothing but time (state that is re-derived, or content that
/// is verified against its digest whenever it is read).
pub fn write_replace(path: &Path, bytes: &[u8], durable: bool) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        fs_err::create_dir_all(parent)?;
    }
    let tmp = temp_beside(path);
    let result = (|| {
        let mut file = fs_err::File::create(&tmp)?;
        file.write_all(bytes)?;
        if durable {
            file.sync_data()?;
        }
        fs_err::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Creates `dir` (and its parents) if needed, and makes it accessible to its
/// owner only: for folders whose files may hold private data (logs, params,
/// restores in flight) whatever those files' own modes. A folder that is
/// not ours to change (a read-only checkout of someone else's workspace) is
/// left as it is: commands that only read must still work there.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| crate::hash::with_path(e, dir))?;
    // A link there would take what gourd keeps private (and the chmod
    // below) somewhere else.
    let meta = fs_err::symlink_metadata(dir)?;
    if meta.file_type().is_symlink() {
        let message = format!(
            "`{}` is a symbolic link; gourd keeps its private files in a folder of its own there: remove the link",
            dir.display()
        );
        return Err(io::Error::new(io::ErrorKind::InvalidInput, message));
    }
    let mode = meta.permissions().mode();
    if mode & 0o077 == 0 {
        return Ok(());
    }
    match std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & !0o077)) {
        Err(err) if err.kind() != io::ErrorKind::PermissionDenied => Err(crate::hash::with_path(err, dir)),
        _ => Ok(()),
    }
}

/// Removes a file or a folder; nothing there is fine.
pub fn remove_path(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => make_writable_and_remove_dir(path),
        Ok(_) => fs_err::remove_file(path),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(crate::hash::with_path(err, path)),
    }
}

/// Removes the folder `path`; a folder in it closed to writing (a stage
/// may `chmod 555` what it wrote) is opened to its owner first, as `rm -rf`
/// does not but every re-run needs.
fn make_writable_and_remove_dir(path: &Path) -> io::Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::PermissionDenied => {
            open_folders(path);
            match std::fs::remove_dir_all(path) {
                Ok(()) => Ok(()),
                Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(err) => Err(crate::hash::with_path(err, path)),
            }
        }
        Err(err) => Err(crate::hash::with_path(err, path)),
    }
}

/// Gives the owner read, write and search on `dir` and every folder under
/// it, never following a link; what cannot be changed is left for the
/// removal to report.
fn open_folders(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::symlink_metadata(dir) else { return };
    if !meta.is_dir() {
        return;
    }
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(meta.permissions().mode() | 0o700));
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
            open_folders(&entry.path());
        }
    }
}

/// A folder kept open, so that paths under it are looked up relative to it
/// (`fstatat`). Resolving every component of long absolute paths was the
/// largest cost of a no-op `gourd status` over 10,000 files.
/// `stat` of `rel`, relative to the open folder `dir`, following symbolic
/// links as `std::fs::metadata` does.
pub fn stat_at(dir: &std::fs::File, rel: &std::ffi::CStr) -> io::Result<libc::stat> {
    stat_at_flags(dir, rel, 0)
}

fn stat_at_flags(dir: &std::fs::File, rel: &std::ffi::CStr, flags: libc::c_int) -> io::Result<libc::stat> {
    use std::os::fd::AsRawFd;
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: a valid directory fd, a NUL-terminated path and a buffer of the
    // right type; fstatat fills it in full when it returns 0.
    if unsafe { libc::fstatat(dir.as_raw_fd(), rel.as_ptr(), st.as_mut_ptr(), flags) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstatat returned 0.
    Ok(unsafe { st.assume_init() })
}

pub struct RootDir {
    path: PathBuf,
    fd: std::fs::File,
}

impl RootDir {
    pub fn open(path: &Path) -> Option<RootDir> {
        std::fs::File::open(path).ok().map(|fd| RootDir { path: path.to_path_buf(), fd })
    }

    /// `stat` of `path` (following symlinks), if it lies under this folder.
    pub fn stat(&self, path: &Path) -> Option<io::Result<libc::stat>> {
        use std::os::unix::ffi::OsStrExt;
        let rel = path.strip_prefix(&self.path).ok().filter(|r| !r.as_os_str().is_empty())?;
        let c = std::ffi::CString::new(rel.as_os_str().as_bytes()).ok()?;
        Some(stat_at(&self.fd, &c))
    }

    /// `lstat` of `path` (a link itself, not followed), if it lies under
    /// this folder.
    pub fn lstat(&self, path: &Path) -> Option<io::Result<libc::stat>> {
        use std::os::unix::ffi::OsStrExt;
        let rel = path.strip_prefix(&self.path).ok().filter(|r| !r.as_os_str().is_empty())?;
        let c = std::ffi::CString::new(rel.as_os_str().as_bytes()).ok()?;
        Some(stat_at_flags(&self.fd, &c, libc::AT_SYMLINK_NOFOLLOW))
    }

    /// Whether something exists at `path` (following symlinks).
    pub fn exists(&self, path: &Path) -> bool {
        match self.stat(path) {
            Some(result) => result.is_ok(),
            None => path.exists(),
        }
    }
}
