//! The file-system helpers: temporary names, atomic writes, private folders,
//! removal, and lookups relative to an open folder.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;

use gourd_core::fsutil::{
    RootDir, create_private_dir, remove_path, temp_beside, temp_name, write_atomic, write_replace,
};

fn mode(path: &std::path::Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn temporary_names_are_distinct_and_say_what_they_are() {
    let names: BTreeSet<String> = (0..100).map(|_| temp_name("p")).collect();
    assert_eq!(names.len(), 100);
    for name in &names {
        assert!(name.starts_with(&format!("p.{}.", std::process::id())), "{name}");
        assert!(name.ends_with(".gourd-tmp"), "{name}");
    }
    let beside = temp_beside(std::path::Path::new("/some/dir/file.json"));
    assert_eq!(beside.parent().unwrap(), std::path::Path::new("/some/dir"));
    assert!(beside.file_name().unwrap().to_str().unwrap().starts_with(".file.json."));
}

#[test]
fn writes_replace_the_whole_file_and_leave_nothing_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/deeper/state.json");
    write_atomic(&path, b"first, and longer").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"first, and longer");
    write_atomic(&path, b"second").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"second");
    write_replace(&path, b"third", false).unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"third");
    let names: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["state.json"]);
    // A folder in the way: an error, and no temporary file left.
    let blocked = dir.path().join("blocked");
    fs::create_dir_all(blocked.join("child")).unwrap();
    assert!(write_atomic(&blocked, b"x").is_err());
    let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn private_folders_are_made_and_made_private() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("a/b/logs");
    create_private_dir(&fresh).unwrap();
    assert_eq!(mode(&fresh), 0o700);
    // An existing folder open to others is closed to them, its other bits kept.
    for (before, after) in [(0o755, 0o700), (0o750, 0o700), (0o707, 0o700), (0o1777, 0o1700), (0o500, 0o500)] {
        let existing = dir.path().join(format!("existing-{before:o}"));
        fs::create_dir(&existing).unwrap();
        fs::set_permissions(&existing, fs::Permissions::from_mode(before)).unwrap();
        create_private_dir(&existing).unwrap();
        assert_eq!(mode(&existing), after, "{before:o}");
    }
    // A file in the way is an error that names the path.
    let file = dir.path().join("file");
    fs::write(&file, "").unwrap();
    let err = create_private_dir(&file).unwrap_err();
    assert!(err.to_string().contains(file.to_str().unwrap()), "{err}");
    // A link to a folder elsewhere is refused, and that folder keeps its mode.
    let elsewhere = dir.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    fs::set_permissions(&elsewhere, fs::Permissions::from_mode(0o755)).unwrap();
    let link = dir.path().join("logs-link");
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
    let err = create_private_dir(&link).unwrap_err();
    assert!(err.to_string().contains("is a symbolic link"), "{err}");
    assert_eq!(mode(&elsewhere), 0o755);
}

#[test]
fn a_folder_that_is_not_ours_to_change_is_left_as_it_is() {
    // Nobody, root included, may change the mode of a process's folder in
    // /proc: the refusal is not an error here.
    let proc_dir = std::path::Path::new("/proc/self/task");
    assert_ne!(mode(proc_dir) & 0o077, 0);
    create_private_dir(proc_dir).unwrap();
}

/// A stage may close what it wrote (`chmod 555`); re-running it removes
/// its old outputs all the same. Run as another user when the tests run as
/// root, whom no mode stops.
#[test]
fn a_folder_closed_to_writing_is_removed_all_the_same() {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let owned = dir.path().join("owned");
    fs::create_dir(&owned).unwrap();
    // SAFETY: geteuid cannot fail and reads nothing of ours.
    let as_root = unsafe { libc::geteuid() } == 0;
    if as_root {
        std::os::unix::fs::chown(&owned, Some(65534), Some(65534)).unwrap();
    }
    std::thread::spawn(move || {
        if as_root {
            // The raw system call changes this thread's credentials only
            // (glibc's `setuid` would change every thread's).
            // SAFETY: no memory is passed; the result is checked.
            let changed = unsafe { libc::syscall(libc::SYS_setresuid, 65534, 65534, 65534) };
            assert_eq!(changed, 0, "{}", std::io::Error::last_os_error());
        }
        let out = owned.join("out");
        fs::create_dir_all(out.join("sub/deeper")).unwrap();
        fs::write(out.join("sub/deeper/f"), "x").unwrap();
        for folder in [out.join("sub/deeper"), out.join("sub"), out.clone()] {
            fs::set_permissions(&folder, fs::Permissions::from_mode(0o555)).unwrap();
        }
        assert!(fs::remove_dir_all(&out).is_err(), "what `rm -rf` finds");
        remove_path(&out).unwrap();
        assert!(!out.exists());
    })
    .join()
    .unwrap();
}

#[test]
fn removing_files_folders_links_and_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    fs::write(&file, "x").unwrap();
    remove_path(&file).unwrap();
    assert!(!file.exists());

    let folder = dir.path().join("folder");
    fs::create_dir_all(folder.join("a/b")).unwrap();
    fs::write(folder.join("a/b/c"), "x").unwrap();
    fs::set_permissions(folder.join("a/b/c"), fs::Permissions::from_mode(0o444)).unwrap();
    remove_path(&folder).unwrap();
    assert!(!folder.exists());

    // A link to a folder: the link goes, the folder stays.
    let target = dir.path().join("target");
    fs::create_dir(&target).unwrap();
    fs::write(target.join("kept"), "x").unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    remove_path(&link).unwrap();
    assert!(fs::symlink_metadata(&link).is_err());
    assert!(target.join("kept").exists());

    remove_path(&dir.path().join("never-there")).unwrap();
    // Under a file: not "nothing there", an error naming the path.
    let under = dir.path().join("target/kept/below");
    let err = remove_path(&under).unwrap_err();
    assert!(err.to_string().contains("below"), "{err}");
    // A folder that cannot be emptied (/proc's files cannot be removed).
    assert!(remove_path(std::path::Path::new("/proc/self/fd")).is_err());
}

#[test]
fn lookups_relative_to_an_open_folder() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("sub")).unwrap();
    fs::write(dir.path().join("sub/file"), "12345").unwrap();
    let root = RootDir::open(dir.path()).expect("an existing folder opens");
    assert!(RootDir::open(&dir.path().join("missing")).is_none());

    let st = root.stat(&dir.path().join("sub/file")).unwrap().unwrap();
    assert_eq!(st.st_size, 5);
    assert_eq!(st.st_mode & libc::S_IFMT, libc::S_IFREG);
    let err = root.stat(&dir.path().join("sub/none")).unwrap().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    // Outside the folder, or the folder itself: not answered here.
    assert!(root.stat(std::path::Path::new("/etc/hostname")).is_none());
    assert!(root.stat(dir.path()).is_none());

    assert!(root.exists(&dir.path().join("sub/file")));
    assert!(!root.exists(&dir.path().join("sub/none")));
    assert!(root.exists(std::path::Path::new("/")));
    assert!(!root.exists(std::path::Path::new("/no/such/path/anywhere")));
}
