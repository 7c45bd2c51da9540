//! What the loader reads from disk besides evaluating: the line of a value
//! in the pipeline file, and the files a pipeline imports.

use std::path::PathBuf;

fn write(dir: &std::path::Path, rel: &str, text: &str) -> PathBuf {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    path.canonicalize().unwrap()
}

#[test]
fn line_of_reads_the_pipeline_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "gourd.ncl",
        "{\n  stages = {\n    a = { outs = [\"x\"] },\n    b = {\n      outs = [\"x\"],\n    },\n  },\n}\n",
    );
    assert_eq!(gourd_spec::line_of(&file, "b", Some("x")), Some(5));
    assert_eq!(gourd_spec::line_of(&file, "a", Some("x")), Some(3));
    assert_eq!(gourd_spec::line_of(&file, "b", None), Some(4));
    assert_eq!(gourd_spec::line_of(&file, "c", Some("nowhere")), None);
    assert_eq!(gourd_spec::line_of(&dir.path().join("missing.ncl"), "a", Some("x")), None);
}

#[test]
fn sources_follow_imports_transitively_once_and_skip_the_standard_library() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = write(
        d,
        "gourd.ncl",
        "let s = import \"conf/settings.ncl\" in\nlet g = import \"gourd-std.ncl\" in\nlet m = import \"missing.ncl\" in\n{ stages = {} }\n",
    );
    // Two levels deep, a JSON file, and a cycle back to the pipeline file.
    let settings =
        write(d, "conf/settings.ncl", "{ lr = (import \"lr.json\").value, back = import \"../gourd.ncl\" }\n");
    let lr = write(d, "conf/lr.json", "{ \"value\": 0.1 }\n");
    // A file of the standard library's name is the compiled-in library,
    // never a source of the pipeline.
    write(d, "gourd-std.ncl", "{}\n");
    let mut found = gourd_spec::sources(&file);
    found.sort();
    let mut expected = vec![file.clone(), settings, lr];
    expected.sort();
    assert_eq!(found, expected);
    assert_eq!(gourd_spec::sources(&d.join("missing.ncl")), Vec::<PathBuf>::new());
}

/// An import that is a FIFO is a source, and is not read: the scan never
/// waits for a writer.
#[test]
fn sources_list_a_fifo_without_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = write(d, "gourd.ncl", "{ stages = {}, desc = import \"gate.ncl\" }\n");
    let gate = std::ffi::CString::new(d.join("gate.ncl").into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: mkfifo(3) on a path of the test's own folder.
    assert_eq!(unsafe { libc::mkfifo(gate.as_ptr(), 0o644) }, 0);
    let (tx, rx) = std::sync::mpsc::channel();
    let scanned = file.clone();
    std::thread::spawn(move || tx.send(gourd_spec::sources(&scanned)).unwrap());
    let found = rx.recv_timeout(std::time::Duration::from_secs(20));
    if found.is_err() {
        // Unblock the scan's read before failing.
        let _ = std::fs::write(d.join("gate.ncl"), "1");
    }
    let mut found = found.expect("the scan waited on the FIFO");
    found.sort();
    let mut expected = vec![file, d.join("gate.ncl").canonicalize().unwrap()];
    expected.sort();
    assert_eq!(found, expected);
}

#[test]
fn the_standard_library_is_installed_in_a_folder_named_after_its_content() {
    let dir = tempfile::tempdir().unwrap();
    let installed = gourd_spec::install_stdlib(dir.path()).unwrap();
    assert_eq!(installed.parent(), Some(dir.path()));
    assert!(installed.file_name().unwrap().to_str().unwrap().starts_with("v1-"), "{}", installed.display());
    let file = installed.join(gourd_spec::STDLIB_NAME);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), gourd_spec::STDLIB);
    assert_eq!(gourd_spec::install_stdlib(dir.path()).unwrap(), installed, "the same folder every time");

    // A damaged copy is written afresh.
    std::fs::write(&file, "{ damaged }").unwrap();
    assert_eq!(gourd_spec::install_stdlib(dir.path()).unwrap(), installed);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), gourd_spec::STDLIB);

    // Where the preferred folder cannot be made (a file is in the way, which
    // stops root too), the temp folder is used.
    let blocked = dir.path().join("blocked");
    std::fs::write(&blocked, "").unwrap();
    let fallback = gourd_spec::install_stdlib(&blocked).unwrap();
    assert_eq!(fallback.parent(), Some(std::env::temp_dir().join("gourd-stdlib").as_path()));
    assert_eq!(std::fs::read_to_string(fallback.join(gourd_spec::STDLIB_NAME)).unwrap(), gourd_spec::STDLIB);
}
