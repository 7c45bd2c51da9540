//! Workspace paths and "did you mean" suggestions, at their edges.

use std::path::Path;

use gourd_core::path::{PathError, WsPath};
use gourd_core::suggest::closest;

fn p(s: &str) -> WsPath {
    WsPath::new(s).unwrap()
}

#[test]
fn paths_under_paths_by_whole_components() {
    let root = WsPath::root();
    assert!(root.is_root() && !p("a").is_root());
    assert_eq!(root.as_str(), ".");
    for (path, other, under) in [
        ("a/b", "a", true),
        ("a", "a", true),
        ("a", "a/b", false),
        ("ab", "a", false),
        ("a", "ab", false),
        ("a/b/c", "a/b", true),
        ("a/bc", "a/b", false),
        ("b/a", "a", false),
        (".", ".", true),
        ("x", ".", true),
    ] {
        let (path, other) = (if path == "." { WsPath::root() } else { p(path) }, p(other));
        assert_eq!(path.is_at_or_under(&other), under, "{path} under {other}");
    }
    assert!(!WsPath::root().is_at_or_under(&p("a")));
    assert!(p("a").overlaps(&p("a/b")) && p("a/b").overlaps(&p("a")));
    assert!(!p("a").overlaps(&p("ab")) && !p("ab").overlaps(&p("a")));
}

#[test]
fn joining_showing_and_placing_paths() {
    assert_eq!(WsPath::root().join("x").as_str(), "x");
    assert_eq!(p("a/b").join("c").as_str(), "a/b/c");
    assert_eq!(WsPath::root().to_path(Path::new("/ws")), Path::new("/ws"));
    assert_eq!(p("a/b").to_path(Path::new("/ws")), Path::new("/ws/a/b"));
    assert_eq!(p("a/b").to_string(), "a/b");
    assert_eq!(serde_json::to_string(&p("a/b")).unwrap(), "\"a/b\"");
    assert_eq!(PathError::Empty.to_string(), "path is empty");
    assert_eq!(
        WsPath::new("/etc").unwrap_err().to_string(),
        "path `/etc` is absolute; paths are relative to the workspace root"
    );
    assert_eq!(WsPath::new("a/../..").unwrap_err().to_string(), "path `a/../..` escapes the workspace (`..`)");
    // A newline would add a line of its own to gourd's `.gitignore` block.
    for raw in ["o\nsrc", "a\tb", "bell\u{7}", "del\u{7f}", "c1\u{85}"] {
        assert!(matches!(WsPath::new(raw), Err(PathError::Control(_))), "{raw:?}");
    }
    assert_eq!(
        WsPath::new("o\nsrc").unwrap_err().to_string(),
        "path \"o\\nsrc\" holds a control character (such as a newline or a tab)"
    );
    assert_eq!(WsPath::new("données/é").unwrap().as_str(), "données/é");
}

#[test]
fn suggestions_at_their_limits() {
    // A third of the letters may differ (at least one letter for short names).
    assert_eq!(closest("abcdef", ["abcxyz"]), None);
    assert_eq!(closest("abcdef", ["abcdxy"]), Some("abcdxy"));
    assert_eq!(closest("ab", ["ax"]), Some("ax"));
    assert_eq!(closest("ab", ["xy"]), None, "nothing in common");
    assert_eq!(closest("a", ["b"]), None);
    // A prefix of at least half the name.
    assert_eq!(closest("trai", ["training"]), Some("training"));
    assert_eq!(closest("tra", ["training"]), None);
    // The nearest wins; on a tie, the first.
    assert_eq!(closest("trian", ["trains", "train", "tran"]), Some("train"));
    assert_eq!(closest("abcd", ["abce", "abcf"]), Some("abce"));
    assert_eq!(closest("abcd", ["abxy", "abce"]), Some("abce"));
    // Letters, not bytes.
    assert_eq!(closest("ééé", ["éé"]), Some("éé"));
    assert_eq!(closest("x", std::iter::empty()), None);
}
