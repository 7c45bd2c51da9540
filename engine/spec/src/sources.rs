//! The files an evaluation reads.
//!
//! Nickel's imports are static: `import` takes a plain string literal
//! (escapes allowed, no interpolation), optionally `as 'Format`. So the files
//! an evaluation can read are found exactly by parsing each Nickel source
//! with Nickel's own parser and following its import nodes, however the
//! import is spelled (a comment or a line break before the string, escapes
//! in it). A text scan cannot do that; it is kept only as the fallback of
//! [`imports`] for text that does not parse.
//!
//! Imports are resolved as `nickel-lang-core` resolves them: against the
//! importing file's folder, then each import path; the first candidate that
//! can be read wins. Candidates tried before it are recorded as absent,
//! because one appearing would change what the evaluation reads.

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use gourd_digest::{Digest, DigestAlgorithm, Hasher};
use nickel_lang_parser::ErrorTolerantParser;
use nickel_lang_parser::ast::{Ast, AstAlloc, Import, InputFormat, Node};
use nickel_lang_parser::traverse::{TraverseAlloc, TraverseControl};

/// A file an evaluation read, or tried to read: its path and the digest of
/// its bytes then (`None`: it could not be read).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Source {
    pub path: PathBuf,
    pub digest: Option<Digest>,
}

impl Source {
    fn read(path: PathBuf) -> (Source, Option<Vec<u8>>) {
        let bytes = std::fs::read(&path).ok();
        let digest = bytes.as_deref().map(|b| Hasher::digest_bytes(DigestAlgorithm::Blake3, b));
        (Source { path, digest }, bytes)
    }

    /// Whether the file still reads as it did.
    pub fn is_current(&self) -> bool {
        Source::read(self.path.clone()).0 == *self
    }
}

/// Deeper ASTs are not walked (the walk recurses); they only cost the
/// evaluation cache. Nickel itself gives up on far shallower ones.
const MAX_DEPTH: usize = 10_000;
/// Larger sources are not parsed outside the evaluator.
const MAX_PARSED_LEN: usize = 8 << 20;
/// The walk runs on a thread of its own with this much stack, so that the
/// depth above is always within reach.
const WALK_STACK: usize = 64 << 20;

/// Every file evaluating `entry_source` (named `entry_path`) reads, sorted by
/// path, or `None` when that cannot be known (a source that does not parse,
/// is not UTF-8, nests too deep, or imports a package).
pub fn read_by(entry_path: &Path, entry_source: &str, import_paths: &[PathBuf]) -> Option<Vec<Source>> {
    let mut found: BTreeMap<PathBuf, Option<Digest>> = BTreeMap::new();
    let mut parsed = HashSet::new();
    let mut todo = vec![(normalize(entry_path)?, entry_source.to_string())];
    while let Some((path, text)) = todo.pop() {
        let dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
        for (import, format) in imports_of(&text)? {
            let candidates = std::iter::once(&dir).chain(import_paths).map(|base| normalize(&base.join(&import)));
            for candidate in candidates {
                let (source, bytes) = Source::read(candidate?);
                found.insert(source.path.clone(), source.digest);
                let Some(bytes) = bytes else { continue };
                if format == InputFormat::Nickel && parsed.insert(source.path.clone()) {
                    todo.push((source.path, String::from_utf8(bytes).ok()?));
                }
                break;
            }
        }
    }
    Some(found.into_iter().map(|(path, digest)| Source { path, digest }).collect())
}

/// The files `text` imports, as written (relative to the importing file),
/// read from Nickel's own parse of it; for text that does not parse, the
/// string literals a text scan finds after `import`.
pub fn imports(text: &str) -> Vec<String> {
    match imports_of(text) {
        Some(found) => found.into_iter().map(|(path, _)| path.to_string_lossy().into_owned()).collect(),
        None => scan(text),
    }
}

/// The path imports of `text`, in order, or `None` when it does not parse,
/// nests too deep or imports a package.
fn imports_of(text: &str) -> Option<Vec<(OsString, InputFormat)>> {
    // The keyword is one token: text without it imports nothing, and a
    // pipeline of 10,000 literal stages need not be parsed twice more.
    if !text.contains("import") {
        return Some(Vec::new());
    }
    if text.len() > MAX_PARSED_LEN {
        return None;
    }
    let text = text.to_string();
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("gourd-imports".into())
            .stack_size(WALK_STACK)
            .spawn_scoped(scope, || walk(&text))
            .ok()?
            .join()
            .ok()
            .flatten()
    })
}

fn walk(text: &str) -> Option<Vec<(OsString, InputFormat)>> {
    let alloc = AstAlloc::new();
    let mut files = nickel_lang_parser::files::Files::new(std::iter::empty::<(&str, &str)>());
    let id = files.add("<import scan>", text);
    let parser = nickel_lang_parser::grammar::TermParser::new();
    let ast: Ast<'_> = parser.parse_strict(&alloc, id, nickel_lang_parser::lexer::Lexer::new(text)).ok()?;
    let mut found = Vec::new();
    let stopped = ast.traverse_ref(
        &mut |node: &Ast<'_>, depth: &usize| match &node.node {
            _ if *depth > MAX_DEPTH => TraverseControl::Return(()),
            Node::Import(Import::Path { path, format }) => {
                found.push((path.to_os_string(), *format));
                TraverseControl::Continue
            }
            Node::Import(Import::Package { .. }) => TraverseControl::Return(()),
            _ => TraverseControl::ContinueWithScope(depth + 1),
        },
        &0,
    );
    stopped.is_none().then_some(found)
}

/// An absolute path with `.` and `..` removed without looking at the file
/// system, as Nickel names the files it imports.
fn normalize(path: &Path) -> Option<PathBuf> {
    let path = if path.is_relative() { std::env::current_dir().ok()?.join(path) } else { path.to_path_buf() };
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Prefix(_) | Component::CurDir => {}
            Component::RootDir => out.push(component.as_os_str()),
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(name) => out.push(name),
        }
    }
    Some(out)
}

/// The string literals following the `import` keyword in `text` (and,
/// harmlessly, any such text in comments).
fn scan(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find("import") {
        let at = from + i;
        from = at + "import".len();
        if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
            continue;
        }
        let rest = text[from..].trim_start();
        let Some(literal) = rest.strip_prefix('"') else { continue };
        let mut value = String::new();
        let mut chars = literal.chars();
        let mut closed = false;
        while let Some(c) = chars.next() {
            match c {
                '"' => {
                    closed = true;
                    break;
                }
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some('t') => value.push('\t'),
                    Some(other) => value.push(other),
                    None => break,
                },
                c => value.push(c),
            }
        }
        if closed {
            found.push(value);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_imports_however_they_are_written() {
        let text = r#"
let a = import "lib/a.ncl" in
let b = import # which file:
  "b.json" in
let c = import
  "c\"q.ncl" in
let d = import "d\u{2E}ncl" as 'Text in
{ reimport = 1, f = (import  "f.yaml"), "%{import "g.ncl"}" = 1, h | (import "h.ncl") = 2 }
"#;
        assert_eq!(imports(text), vec!["lib/a.ncl", "b.json", "c\"q.ncl", "d.ncl", "f.yaml", "g.ncl", "h.ncl"]);
        // A comment is not an import.
        assert_eq!(imports("# import \"x.ncl\"\n1"), Vec::<String>::new());
    }

    #[test]
    fn text_that_does_not_parse_is_scanned() {
        assert_eq!(imports(r#"let x = import "lib/x.ncl" in {"#), vec!["lib/x.ncl"]);
    }

    #[test]
    fn an_ast_too_deep_to_walk_is_not_walked() {
        let deep = format!("{}import \"x.ncl\"{}", "[".repeat(MAX_DEPTH + 10), "]".repeat(MAX_DEPTH + 10));
        assert_eq!(imports_of(&deep), None);
        let shallow = format!("{}import \"x.ncl\"{}", "[".repeat(100), "]".repeat(100));
        assert_eq!(imports_of(&shallow).unwrap().len(), 1);
    }

    #[test]
    fn reads_follow_imports_and_record_candidates_tried() {
        let dir = tempfile::tempdir().unwrap();
        let (ws, lib) = (dir.path().join("ws"), dir.path().join("lib"));
        std::fs::create_dir_all(ws.join("sub")).unwrap();
        std::fs::create_dir_all(&lib).unwrap();
        std::fs::write(ws.join("gourd.ncl"), "let x = import # c\n \"sub/x.ncl\" in import \"shared.ncl\"").unwrap();
        std::fs::write(ws.join("sub/x.ncl"), r#"import "../data.json""#).unwrap();
        std::fs::write(ws.join("data.json"), "{}").unwrap();
        std::fs::write(lib.join("shared.ncl"), "1").unwrap();
        let entry = format!("import {:?}", ws.join("gourd.ncl"));
        let read = read_by(&ws.join("<entry>"), &entry, std::slice::from_ref(&lib)).unwrap();
        let paths: Vec<_> = read.iter().map(|s| (s.path.clone(), s.digest.is_some())).collect();
        assert_eq!(
            paths,
            vec![
                (lib.join("shared.ncl"), true),
                (ws.join("data.json"), true),
                (ws.join("gourd.ncl"), true),
                (ws.join("shared.ncl"), false),
                (ws.join("sub/x.ncl"), true),
            ]
        );
        assert!(read.iter().all(Source::is_current));
        std::fs::write(ws.join("shared.ncl"), "2").unwrap();
        assert!(!read.iter().all(Source::is_current), "a file appearing earlier on the path counts");
    }
}
