//! Where a stage may write: each refusal, its wording, and the links on the
//! way to an output (followed, dangling, relative, absolute).

use std::os::unix::fs::symlink;

use gourd_core::guard::{GuardError, check, check_lexical, check_on_disk};
use gourd_core::path::WsPath;

fn p(s: &str) -> WsPath {
    WsPath::new(s).unwrap()
}

#[test]
fn reserved_names_and_the_pipelines_own_files() {
    let sources = [p("gourd.ncl"), p("conf/common.ncl")];
    let refused = |path: &str| check_lexical(&p(path), &sources).unwrap_err().to_string();
    assert_eq!(refused(".git"), "`.git` is a `.git` folder, which gourd never writes to");
    assert_eq!(refused("sub/.gourd"), "`sub/.gourd` is a `.gourd` folder, which gourd never writes to");
    assert_eq!(
        refused(".git/hooks/pre-commit"),
        "`.git/hooks/pre-commit` lies inside `.git`, which gourd never writes to"
    );
    assert_eq!(refused("a/.gourd/b"), "`a/.gourd/b` lies inside `.gourd`, which gourd never writes to");
    assert_eq!(refused("gourd.ncl"), "`gourd.ncl` is a file the pipeline is read from");
    assert_eq!(refused("conf"), "`conf` would replace `conf/common.ncl`, which the pipeline is read from");
    for fine in ["data", "conf2", "conf/other.ncl", "gitlike/.github", "x.git", "out/gourd.ncl.bak"] {
        check_lexical(&p(fine), &sources).unwrap_or_else(|e| panic!("{fine}: {e}"));
    }
    assert!(matches!(check_lexical(&p("a/.git"), &[]), Err(GuardError::ReservedFolder { .. })));
}

#[test]
fn links_on_the_way_to_an_output() {
    let outside = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    let outside_path = std::fs::canonicalize(outside.path()).unwrap();
    std::fs::create_dir_all(root.join("real/sub")).unwrap();
    std::fs::create_dir_all(root.join(".git/objects")).unwrap();
    std::fs::write(root.join("file"), "x").unwrap();
    symlink(&outside_path, root.join("out")).unwrap();
    symlink("real", root.join("inside")).unwrap();
    symlink(".git/objects", root.join("into-git")).unwrap();
    symlink("../nowhere-outside", root.join("dangling-out")).unwrap();
    symlink("real/sub/../../new-folder", root.join("dangling-in")).unwrap();
    symlink("/nonexistent/absolute", root.join("dangling-absolute")).unwrap();

    let disk = |path: &str| check_on_disk(&root, &p(path));
    disk("real/sub/file").unwrap();
    disk("inside/sub/file").unwrap();
    disk("dangling-in/file").unwrap();
    disk("missing/deeper/file").unwrap();
    // The output itself may be a link: it is removed, not followed.
    disk("out").unwrap();

    assert_eq!(
        disk("out/file").unwrap_err().to_string(),
        format!(
            "`out/file` goes through the symbolic link `out`, which leads out of the workspace (to `{}`)",
            outside_path.display()
        )
    );
    assert_eq!(
        disk("into-git/file").unwrap_err(),
        GuardError::LinksIntoReserved {
            path: "into-git/file".into(),
            link: "into-git".into(),
            target: root.join(".git/objects").display().to_string(),
        }
    );
    assert_eq!(
        disk("dangling-out/file").unwrap_err(),
        GuardError::LeavesWorkspace {
            path: "dangling-out/file".into(),
            link: "dangling-out".into(),
            target: root.parent().unwrap().join("nowhere-outside").display().to_string(),
        }
    );
    assert_eq!(
        disk("dangling-absolute/file").unwrap_err(),
        GuardError::LeavesWorkspace {
            path: "dangling-absolute/file".into(),
            link: "dangling-absolute".into(),
            target: "/nonexistent/absolute".into(),
        }
    );
    // A deeper link is named by its path from the root.
    std::fs::create_dir_all(root.join("real/deep")).unwrap();
    symlink(&outside_path, root.join("real/deep/away")).unwrap();
    let GuardError::LeavesWorkspace { link, .. } = disk("real/deep/away/x").unwrap_err() else { panic!() };
    assert_eq!(link, "real/deep/away");
    // Through a file: cannot be checked, and says why.
    let err = disk("file/a/b").unwrap_err();
    assert!(matches!(&err, GuardError::Unreadable { path, .. } if path == "file/a/b"), "{err:?}");
    assert!(err.to_string().starts_with("cannot check `file/a/b`: "), "{err}");

    // Both parts together.
    check(&root, &p("inside/x"), &[]).unwrap();
    assert!(matches!(check(&root, &p("out/x"), &[]), Err(GuardError::LeavesWorkspace { .. })));
    assert!(matches!(check(&root, &p(".gourd/x"), &[]), Err(GuardError::Reserved { .. })));
}
