//! Nickel's diagnostics, made for gourd users: the frames that point into
//! gourd's own code (the standard library, the line that applies the
//! `Pipeline` contract) are dropped, as is advice meant for contract authors,
//! and the habits that trip newcomers are named with their fix: a field
//! defined as itself (`lr = lr`), YAML's `key: value`, Python's `'quotes'`.

use std::path::{Path, PathBuf};

/// The name of the file gourd evaluates the pipeline through; its frames
/// are gourd's, not the user's.
pub(crate) const ENTRY_NAME: &str = "<gourd: applying the Pipeline contract>";

/// Nickel's rendered `diagnostics` for `file`, without gourd's internal
/// frames, and the hints for the mistakes recognised in them.
pub(crate) fn explain(diagnostics: &str, file: &Path, stdlib_dir: &Path) -> (String, Vec<String>) {
    let (text, user_files) = drop_internal_frames(diagnostics, stdlib_dir);
    let mut hints = Vec::new();
    if first_line(&text).contains("infinite recursion") {
        hints.push(self_reference_hint(&text));
    }
    if let Some(near) = extra_field(&text).and_then(|field| nearest_stdlib_field(&field)) {
        hints.push(format!("did you mean `{near}`?"));
    }
    let mut files: Vec<PathBuf> = vec![file.to_path_buf()];
    // An imported YAML, JSON or TOML file is not Nickel: its `key: value`
    // and quotes are right where they are.
    files.extend(user_files.into_iter().filter(|f| f != file && f.extension().is_some_and(|e| e == "ncl")));
    // `gourd.params file ["train.lrx"]`: the error is raised in the
    // standard library; the line that asks for the key is the user's.
    let missing_key = missing_params_key(&text);
    for path in files {
        let Ok(source) = std::fs::read_to_string(&path) else { continue };
        let shown = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if let Some(key) = &missing_key {
            let quoted = format!("\"{key}\"");
            if let Some(line) = source.lines().position(|line| line.contains(&quoted)) {
                hints.push(format!(
                    "`{key}` is asked for at `{shown}:{}`: check its spelling against the params file",
                    line + 1
                ));
            }
        }
        hints.extend(yaml_hint(&source, &shown));
        hints.extend(quote_hint(&source, &shown));
    }
    (text, hints)
}

/// The `KEY` of the standard library's "the params file has no key `KEY`".
fn missing_params_key(text: &str) -> Option<String> {
    text.lines().take(3).map(strip_ansi).find_map(|line| {
        let rest = line.split_once("the params file has no key `")?.1;
        Some(rest.split('`').next()?.to_string())
    })
}

fn first_line(text: &str) -> String {
    strip_ansi(text.lines().next().unwrap_or(""))
}

/// A frame header (`┌─ PATH:LINE:COLUMN`): the path and position.
fn frame(line: &str) -> Option<(&str, Option<(usize, usize)>)> {
    let rest = line.trim_start().strip_prefix("┌─ ")?.trim_end();
    let mut parts = rest.rsplitn(3, ':');
    let (column, line_no, path) = (parts.next()?, parts.next(), parts.next());
    match (line_no.and_then(|l| l.parse().ok()), column.parse().ok(), path) {
        (Some(l), Some(c), Some(path)) => Some((path, Some((l, c)))),
        _ => Some((rest, None)),
    }
}

fn is_note(line: &str) -> bool {
    line.trim_start().starts_with("= ")
}

/// Removes frames in the standard library and in gourd's entry file, and
/// the advice to loosen a record contract with `..` (the contract is
/// gourd's, the user cannot change it). Returns the text and the other files
/// its frames point at.
fn drop_internal_frames(diagnostics: &str, stdlib_dir: &Path) -> (String, Vec<PathBuf>) {
    let lines: Vec<&str> = diagnostics.lines().collect();
    let plain: Vec<String> = lines.iter().map(|l| strip_ansi(l)).collect();
    let stdlib = stdlib_dir.display().to_string();
    let mut out: Vec<String> = Vec::new();
    let mut user_files = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let text = &plain[i];
        if let Some((path, _)) = frame(text) {
            let internal =
                path.ends_with(ENTRY_NAME) || path.starts_with(&stdlib) || path.ends_with(crate::STDLIB_NAME);
            let end = (i + 1..lines.len())
                .find(|&j| frame(&plain[j]).is_some() || is_note(&plain[j]) || starts_diagnostic(&plain[j]))
                .unwrap_or(lines.len());
            if internal {
                // What the contract expected is worth keeping; where it is
                // written is not.
                if let Some(expected) = expected_type(&plain[i..end]) {
                    let indent = &text[..text.len() - text.trim_start().len()];
                    out.push(format!("{indent}= expected: {expected}"));
                }
                i = end;
                continue;
            }
            if !path.starts_with('<')
                && Path::new(path).is_absolute()
                && !user_files.iter().any(|f: &PathBuf| f == Path::new(path))
            {
                user_files.push(PathBuf::from(path));
            }
        }
        if is_note(text) && text.contains("The record contract might also be too strict") {
            let indent = text.len() - text.trim_start().len();
            i += 1;
            // Its continuation lines are indented past the `=`.
            while i < lines.len() && !is_note(&plain[i]) && plain[i].len() - plain[i].trim_start().len() > indent {
                i += 1;
            }
            continue;
        }
        out.push(lines[i].to_string());
        i += 1;
    }
    // Expected-type notes moved out of their frames go last.
    let (notes, mut text): (Vec<String>, Vec<String>) =
        out.into_iter().partition(|l| strip_ansi(l).trim_start().starts_with("= expected: "));
    while text.last().is_some_and(|l| matches!(strip_ansi(l).trim(), "" | "│")) && !notes.is_empty() {
        text.pop();
    }
    let had_notes = text.last().is_some_and(|l| is_note(&strip_ansi(l)));
    if !notes.is_empty() && !had_notes {
        text.push(format!("{}│", notes[0].split('=').next().unwrap_or("")));
    }
    text.extend(notes);
    while text.last().is_some_and(|l| matches!(strip_ansi(l).trim(), "" | "│")) {
        text.pop();
    }
    (text.join("\n") + "\n", user_files)
}

fn starts_diagnostic(line: &str) -> bool {
    ["error", "warning", "note", "help", "bug"].iter().any(|k| line.starts_with(k))
}

/// The text a frame labels "expected type", when it is on one line.
fn expected_type(frame: &[String]) -> Option<String> {
    for pair in frame.windows(2) {
        let (source, label) = (&pair[0], &pair[1]);
        let Some(marks) = label.find(['-', '^']) else { continue };
        if !label[marks..].trim_start_matches(['-', '^']).trim().starts_with("expected type") {
            continue;
        }
        let width = label[marks..].chars().take_while(|c| matches!(c, '-' | '^')).count();
        // Both lines share the gutter, so columns line up (in characters).
        let start = label[..marks].chars().count();
        let text: String = source.chars().skip(start).take(width).collect();
        let text = text.trim();
        if !text.is_empty() {
            return Some(format!("`{text}`"));
        }
    }
    None
}

/// Removes ANSI colour sequences.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The `X` of Nickel's "extra field `X`", in the message's first lines.
fn extra_field(text: &str) -> Option<String> {
    text.lines().take(3).map(strip_ansi).find_map(|line| {
        let rest = line.trim_start().strip_prefix("extra field `")?;
        Some(rest.split('`').next()?.to_string())
    })
}

/// The field of a contract in the standard library (`  cmd | …`) nearest to
/// `field`, for an extra field found by a contract the user applied.
fn nearest_stdlib_field(field: &str) -> Option<String> {
    let fields = crate::STDLIB.lines().filter_map(|line| {
        let trimmed = line.trim_start();
        let name = trimmed.split(' ').next()?;
        let declared = trimmed[name.len()..].starts_with(" |") && line.len() > trimmed.len();
        (declared && !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c == '_')).then_some(name)
    });
    gourd_core::suggest::closest(field, fields).map(str::to_string)
}

/// `lr = lr` in a record: the `lr` on the right is the field itself, not a
/// `lr` bound outside the record, since Nickel's records are recursive.
fn self_reference_hint(text: &str) -> String {
    let Some((name, source)) = self_reference(text) else {
        return "a field is defined through itself, directly or through other fields: inside a record, a name \
                means the record's own field first, even when a `let` or a function argument outside the record \
                has the same name; give the outer value another name"
            .to_string();
    };
    // The value of a `let NAME = VALUE in` that the field meant, if any.
    let value = source
        .match_indices(&format!("let {name} ="))
        .find_map(|(at, found)| {
            let rest = &source[at + found.len()..];
            let value = rest.split_once(" in ").or_else(|| rest.split_once(" in\n"))?.0.trim();
            (!value.is_empty() && !value.contains('\n')).then(|| value.to_string())
        })
        .unwrap_or_else(|| "…".to_string());
    format!(
        "`{name} = {name}` defines the field `{name}` as itself: inside a record, `{name}` means the record's own \
         field, even when a `let` or a function argument outside the record is also named `{name}`. Give the \
         outer value another name and use that: `let base_{name} = {value} in` … `{name} = base_{name}`"
    )
}

/// The `NAME` of a `NAME = NAME` at the first frame of the diagnostics, and
/// the source of the file it is in.
fn self_reference(text: &str) -> Option<(String, String)> {
    let (path, (line, column)) = text.lines().map(strip_ansi).find_map(|l| {
        let (path, at) = frame(&l)?;
        Some((path.to_string(), at?))
    })?;
    let source = std::fs::read_to_string(path).ok()?;
    let line = source.lines().nth(line.checked_sub(1)?)?;
    let from: String = line.chars().skip(column.checked_sub(1)?).collect();
    let name: String = from.chars().take_while(|&c| is_ident(c)).collect();
    if name.is_empty() {
        return None;
    }
    let code = code_of(line);
    let defined_as_itself = code.match_indices(&name).any(|(at, _)| {
        let before = code[..at].chars().next_back();
        let rest = &code[at + name.len()..];
        let Some(value) = rest.trim_start().strip_prefix('=') else { return false };
        let value = value.trim_start();
        before.is_none_or(|c| !is_ident(c))
            && !value.starts_with(['=', '>'])
            && value.strip_prefix(name.as_str()).is_some_and(|after| after.chars().next().is_none_or(|c| !is_ident(c)))
    });
    defined_as_itself.then_some((name, source))
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-' || c == '\''
}

/// `line` with the insides of strings and comments blanked out (to as many
/// spaces as they have bytes, so that offsets still match `line`), so that
/// what is looked for is only found in code.
fn code_of(line: &str) -> String {
    let blank = |out: &mut String, c: char| out.extend(std::iter::repeat_n(' ', c.len_utf8()));
    let mut out = String::with_capacity(line.len());
    let mut in_string = false;
    let mut in_comment = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            _ if in_comment => blank(&mut out, c),
            '"' => {
                in_string = !in_string;
                out.push('"');
            }
            '\\' if in_string => {
                blank(&mut out, c);
                if let Some(escaped) = chars.next() {
                    blank(&mut out, escaped);
                }
            }
            '#' if !in_string => {
                in_comment = true;
                blank(&mut out, c);
            }
            _ if in_string => blank(&mut out, c),
            _ => out.push(c),
        }
    }
    out
}

/// The lines of `source` that are code, with their 1-based numbers (lines
/// inside multiline strings `m%" … "%` are left out).
fn code_lines(source: &str) -> Vec<(usize, String)> {
    let mut in_multiline = false;
    let mut found = Vec::new();
    for (i, line) in source.lines().enumerate() {
        if in_multiline {
            if line.contains("\"%") {
                in_multiline = false;
            }
            continue;
        }
        if let Some(at) = line.find("m%\"")
            && !line[at + 3..].contains("\"%")
        {
            in_multiline = true;
            found.push((i + 1, code_of(&line[..at]) + &" ".repeat(line.len() - at)));
            continue;
        }
        found.push((i + 1, code_of(line)));
    }
    found
}

/// YAML's `key: value` where Nickel wants `key = value`. A `:` in Nickel
/// gives a type or contract (`epochs : Number = 5`), so a `:` is taken for
/// YAML only when no `=` follows it and what follows is not a type name.
fn yaml_hint(source: &str, file: &str) -> Option<String> {
    let mut found = Vec::new();
    for (number, code) in code_lines(source) {
        let original = source.lines().nth(number - 1).unwrap_or("");
        for (at, _) in code.match_indices(':') {
            let before = code[..at].trim_end();
            let key_start = before
                .char_indices()
                .rev()
                .find(|&(_, c)| !is_ident(c) && c != '"')
                .map_or(0, |(i, c)| i + c.len_utf8());
            let key = &before[key_start..];
            let opener = before[..key_start].trim_end();
            let value = code[at + 1..].trim_start();
            let is_field = opener.is_empty() || opener.ends_with(['{', ',']);
            let key_ok = !key.is_empty() && key.trim_matches('"').chars().all(is_ident);
            // A record type (`{ b : Number }`) has a `:` before any `=`.
            let record_type =
                value.strip_prefix('{').and_then(|inner| inner.find([':', '=']).map(|i| &inner[i..i + 1])) == Some(":");
            let value_is_type = value.starts_with(|c: char| c.is_uppercase())
                || value.starts_with("std.")
                || value.starts_with("gourd.")
                || value.is_empty()
                || record_type;
            // `epochs : Number = 5`: an `=` before the value's own record.
            let annotated = code[at..].split(['{', '[']).next().unwrap_or("").contains('=');
            if is_field && key_ok && !value_is_type && !annotated && !code[at + 1..].starts_with(':') {
                let end = code[at + 1..].find([',', '}']).map_or(code.len(), |e| at + 1 + e);
                // A record or an array is shown by its opening bracket.
                let value = match value.chars().next() {
                    Some(open @ ('{' | '[')) => open.to_string(),
                    _ => original.get(at + 1..end).unwrap_or("").trim().to_string(),
                };
                found.push((number, key.to_string(), value));
            }
        }
    }
    let (number, key, value) = found.first()?;
    let also = match found.len() {
        1 => String::new(),
        n => format!(" (and {} more like it)", n - 1),
    };
    Some(format!(
        "`{key}: {value}` on line {number} of `{file}` is YAML: Nickel gives a field its value with `=`, as in \
         `{key} = {value}`{also}; a `:` gives a field a type or a contract"
    ))
}

/// Python's `'text'` where Nickel wants `"text"`: in Nickel, `'name` is an
/// enum tag, and a quote can end an identifier (`x'`).
fn quote_hint(source: &str, file: &str) -> Option<String> {
    for (number, code) in code_lines(source) {
        let chars: Vec<char> = code.chars().collect();
        for open in 0..chars.len() {
            if chars[open] != '\'' || (open > 0 && is_ident(chars[open - 1])) {
                continue;
            }
            let Some(close) = (open + 1..chars.len()).find(|&j| chars[j] == '\'') else { continue };
            if close == open + 1 || chars.get(close + 1).is_some_and(|&c| is_ident(c)) {
                continue;
            }
            let inner: String = chars[open + 1..close].iter().collect();
            if inner.contains('"') {
                continue;
            }
            return Some(format!(
                "`'{inner}'` on line {number} of `{file}`: Nickel strings take double quotes, as in `\"{inner}\"` \
                 (a single quote starts an enum tag, like `'gpu`)"
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_missing_params_key_is_read_from_the_message() {
        let text = "error: params: the params file has no key `train.lrx`\n  ┌─ <stdlib>:5340:1\n";
        assert_eq!(missing_params_key(text).as_deref(), Some("train.lrx"));
        assert_eq!(missing_params_key("error: contract broken\n"), None);
    }

    #[test]
    fn a_missing_params_key_is_found_on_the_users_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gourd.ncl");
        std::fs::write(
            &file,
            "{\n  stages = {\n    a = {\n      cmd = \"x\",\n      params = gourd.params p [\"train.lrx\"],\n}}}\n",
        )
        .unwrap();
        let (_, hints) = explain("error: params: the params file has no key `train.lrx`\n", &file, dir.path());
        assert_eq!(hints, ["`train.lrx` is asked for at `gourd.ncl:5`: check its spelling against the params file"]);
        let (_, hints) = explain("error: params: the params file has no key `other`\n", &file, dir.path());
        assert!(hints.is_empty(), "{hints:?}");
    }

    #[test]
    fn yaml_fields_are_found_and_types_are_not() {
        let hint = yaml_hint("{\n  params = { epochs: 5, lr: 0.1 },\n}\n", "gourd.ncl").unwrap();
        assert!(hint.starts_with("`epochs: 5` on line 2 of `gourd.ncl` is YAML"), "{hint}");
        assert!(hint.contains("`epochs = 5` (and 1 more like it)"), "{hint}");
        assert_eq!(yaml_hint("{ stages: {\n", "f").map(|h| h.contains("`stages: {` on line 1")), Some(true));
        let one_line = yaml_hint("{ stages: { a = { cmd = \"x\" } } }", "f").unwrap();
        assert!(one_line.contains("as in `stages = {`"), "{one_line}");
        for fine in [
            "{ epochs : Number = 5 }",
            "{ epochs | Number, lr : Number }",
            "let f : Number -> Number = fun x => x in f",
            "{ cmd = \"python -c 'a: 1'\" }",
            "{ x = 1 } # note: nothing",
            "{ x : { y : Number } = { y = 1 } }",
            "{ x : { y : Number } }",
            "{ x : Array { y : Number } = [] }",
            "{ a = m%\"\n  key: value\n\"% }",
        ] {
            assert_eq!(yaml_hint(fine, "f"), None, "{fine}");
        }
    }

    #[test]
    fn python_quotes_are_found_and_enum_tags_are_not() {
        let hint = quote_hint("{\n  outs = ['model.bin'],\n}\n", "gourd.ncl").unwrap();
        assert!(hint.contains("`'model.bin'` on line 2"), "{hint}");
        assert!(hint.contains("`\"model.bin\"`"), "{hint}");
        for fine in [
            "{ executor = 'gpu, x = 'cpu }",
            "{ cmd = \"echo 'hi'\" }",
            "{ x' = 1, y = x' }",
            "['a, 'b]",
            "{ x = 1 } # it's 'fine'",
        ] {
            assert_eq!(quote_hint(fine, "f"), None, "{fine}");
        }
    }

    #[test]
    fn internal_frames_are_dropped_and_the_expected_type_kept() {
        let stdlib = Path::new("/ws/.gourd/stdlib/v1-abc");
        let diagnostics = "error: contract broken by the value of `deps`
       expected an array
    ┌─ /ws/.gourd/stdlib/v1-abc/gourd-std.ncl:70:10
    │
 70 │   deps | Array String | doc \"Files.\" | default = [],
    │          ------------ expected type
    │
    ┌─ /ws/gourd.ncl:3:46
    │
  3 │     a = { deps = \"x\" },
    │                  ^^^ applied to this expression
    │
    ┌─ /ws/<gourd: applying the Pipeline contract>:1:39
    │
  1 │ let gourd = import \"gourd-std.ncl\" in (import \"/ws/gourd.ncl\") | gourd.Pipeline
    │                                       ------------------------- imported here
    │
    = Have you misspelled a field?
    = The record contract might also be too strict. By default, record contracts exclude any field which is not listed.
      Append `, ..` at the end of the record contract, as in `{some_field | SomeContract, ..}`, to make it accept extra fields.
";
        let (text, files) = drop_internal_frames(diagnostics, stdlib);
        assert_eq!(files, vec![PathBuf::from("/ws/gourd.ncl")]);
        assert_eq!(
            text,
            "error: contract broken by the value of `deps`
       expected an array
    ┌─ /ws/gourd.ncl:3:46
    │
  3 │     a = { deps = \"x\" },
    │                  ^^^ applied to this expression
    │
    = Have you misspelled a field?
    = expected: `Array String`
"
        );
    }

    proptest::proptest! {
        #[test]
        fn any_source_or_diagnostic_is_read_without_panicking(text in "(\\PC|[:'\"#{},=%m\n ]){0,200}") {
            let _ = yaml_hint(&text, "f");
            let _ = quote_hint(&text, "f");
            let _ = drop_internal_frames(&text, Path::new("/nowhere"));
            let _ = self_reference(&text);
            let _ = expected_type(&text.lines().map(String::from).collect::<Vec<_>>());
        }
    }

    #[test]
    fn nickels_own_diagnostics_get_their_hints_and_lose_gourds_frames() {
        let dir = tempfile::tempdir().unwrap();
        let stdlib = crate::install_stdlib(&dir.path().join("stdlib")).unwrap();
        let file = dir.path().join("gourd.ncl");
        let cases = [
            (
                "{ stages = { a = { cmd = \"x\", params = { lr = lr } } } }",
                Some("`lr = lr` defines the field `lr` as itself"),
            ),
            (
                "let f = fun x => { cmd = \"x\", params = { x = x } } in { stages = { a = f 1 } }",
                Some("`x = x` defines"),
            ),
            (
                "{ stages = { a = { cmd = \"x\", params = { a = b, b = a } } } }",
                Some("a field is defined through itself"),
            ),
            (
                "{ stages = { a = { cmd = \"x\",\n params = { epochs: 5 } } } }",
                Some("`epochs: 5` on line 2 of `gourd.ncl` is YAML"),
            ),
            (
                "{ stages = { a = { cmd = \"x\", deps = ['data/raw.csv'] } } }",
                Some("`'data/raw.csv'` on line 1 of `gourd.ncl`"),
            ),
            (
                "let gourd = import \"gourd-std.ncl\" in { stages = { a | gourd.Stage = { cmdd = \"x\" } } }",
                Some("did you mean `cmd`?"),
            ),
            ("{ stages = { a = { cmd = \"x\", deps = \"d\" } } }", None),
            ("{ stages = { a = { cmd = \"x\" }\n", None),
        ];
        for (source, hint) in cases {
            std::fs::write(&file, source).unwrap();
            let diagnostics = crate::evaluate_here(&file, &stdlib, false, true).unwrap_err();
            let (text, hints) = explain(&diagnostics, &file, &stdlib);
            match hint {
                Some(hint) => assert!(hints.iter().any(|h| h.contains(hint)), "{source}: {hints:?}"),
                None => assert_eq!(hints, Vec::<String>::new(), "{source}"),
            }
            for internal in [ENTRY_NAME, "gourd-std.ncl:", "Append `, ..`"] {
                assert!(!text.contains(internal), "{source}: {text}");
            }
            assert!(text.starts_with("error: "), "{text}");
            assert!(text.contains(&file.display().to_string()), "the user's file is still shown: {text}");
        }
    }

    #[test]
    fn an_extra_field_is_matched_against_the_standard_library() {
        let text = "error: contract broken by the value of `a`\n       extra field `cmdd`\n";
        assert_eq!(extra_field(text).as_deref(), Some("cmdd"));
        assert_eq!(nearest_stdlib_field("cmdd").as_deref(), Some("cmd"));
        assert_eq!(nearest_stdlib_field("dep").as_deref(), Some("deps"));
        assert_eq!(nearest_stdlib_field("bukcet").as_deref(), Some("bucket"));
        assert_eq!(nearest_stdlib_field("qqqqqqq"), None);
    }

    #[test]
    fn colours_do_not_hide_frames() {
        let diagnostics = "\u{1b}[1;31merror\u{1b}[0m: unexpected token\n  \u{1b}[34m┌─\u{1b}[0m /ws/<gourd: applying the Pipeline contract>:1:1\n  \u{1b}[34m│\u{1b}[0m\n1 \u{1b}[34m│\u{1b}[0m x\n";
        let (text, _) = drop_internal_frames(diagnostics, Path::new("/nowhere"));
        assert_eq!(text, "\u{1b}[1;31merror\u{1b}[0m: unexpected token\n");
    }
}
