//! Workspace-relative paths.

use std::fmt;
use std::path::{Path, PathBuf};

/// A normalised path relative to the workspace root: `/`-separated, no `.`,
/// `..`, empty or trailing components. The root itself is `.`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WsPath(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path is empty")]
    Empty,
    #[error("path `{0}` is absolute; paths are relative to the workspace root")]
    Absolute(String),
    #[error("path `{0}` escapes the workspace (`..`)")]
    Escapes(String),
    /// A newline would split the path's line in gourd's `.gitignore` block
    /// into two patterns (git has no escape for it), and a terminal would
    /// act on the others.
    #[error("path {0:?} holds a control character (such as a newline or a tab)")]
    Control(String),
}

impl WsPath {
    pub fn new(raw: &str) -> Result<Self, PathError> {
        if raw.is_empty() {
            return Err(PathError::Empty);
        }
        if raw.starts_with('/') {
            return Err(PathError::Absolute(raw.to_string()));
        }
        if raw.chars().any(char::is_control) {
            return Err(PathError::Control(raw.to_string()));
        }
        let mut parts = Vec::new();
        for part in raw.split('/') {
            match part {
                "" | "." => {}
                ".." => return Err(PathError::Escapes(raw.to_string())),
                part => parts.push(part),
            }
        }
        if parts.is_empty() {
            return Ok(WsPath(".".to_string()));
        }
        Ok(WsPath(parts.join("/")))
    }

    pub fn root() -> Self {
        WsPath(".".to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0 == "."
    }

    /// Whether `self` is `other` or lies under it.
    pub fn is_at_or_under(&self, other: &WsPath) -> bool {
        other.is_root()
            || self.0 == other.0
            || (self.0.len() > other.0.len()
                && self.0.starts_with(&other.0)
                && self.0.as_bytes()[other.0.len()] == b'/')
    }

    /// Whether one of the two paths lies at or under the other.
    pub fn overlaps(&self, other: &WsPath) -> bool {
        self.is_at_or_under(other) || other.is_at_or_under(self)
    }

    pub fn to_path(&self, root: &Path) -> PathBuf {
        if self.is_root() { root.to_path_buf() } else { root.join(&self.0) }
    }

    pub fn join(&self, name: &str) -> WsPath {
        if self.is_root() { WsPath(name.to_string()) } else { WsPath(format!("{}/{name}", self.0)) }
    }
}

/// A map keyed by paths is looked up by `&str` without allocating: the
/// order, equality and hash are the string's.
impl std::borrow::Borrow<str> for WsPath {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WsPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for WsPath {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises() {
        assert_eq!(WsPath::new("data//raw/./x/").unwrap().as_str(), "data/raw/x");
        assert!(WsPath::new("./.").unwrap().is_root());
        assert_eq!(WsPath::new("/etc"), Err(PathError::Absolute("/etc".into())));
        assert_eq!(WsPath::new("a/../b"), Err(PathError::Escapes("a/../b".into())));
        assert_eq!(WsPath::new(""), Err(PathError::Empty));
    }

    #[test]
    fn overlap_is_by_component() {
        let p = |s| WsPath::new(s).unwrap();
        assert!(p("data/raw/x").is_at_or_under(&p("data/raw")));
        assert!(p("data/raw").is_at_or_under(&p("data/raw")));
        assert!(!p("data/rawer").is_at_or_under(&p("data/raw")));
        assert!(p("data").overlaps(&p("data/raw")));
        assert!(p("anything").is_at_or_under(&WsPath::root()));
    }
}
