//! Streaming CSV and JSON-lines files into the columns' accumulators.
//!
//! One thread reads and splits the file into batches of rows; the caller's
//! thread parses each batch and adds it column by column, the columns in
//! parallel (rayon), so the two cores share the work and each column's
//! histogram stays in cache while its batch goes in. A bounded channel
//! holds at most a few batches: memory does not grow with the file.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;

use rayon::prelude::*;

use crate::Error;
use crate::column::{Accumulator, Categorical, Numeric, REFERENCE};

/// Rows per batch. Each column's pass over a batch reads every record of
/// it; 128 rows of 100 numeric columns stay in the core's cache, so the
/// passes after the first cost no memory traffic (8,192 rows took 60 % more
/// time on 1,000,000 x 100).
const BATCH_ROWS: usize = 128;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    JsonLines,
}

impl Format {
    pub fn parse(name: &str) -> Option<Format> {
        match name {
            "csv" => Some(Format::Csv),
            "jsonl" | "ndjson" | "json-lines" => Some(Format::JsonLines),
            _ => None,
        }
    }

    /// From the file's extension; CSV unless it says JSON lines.
    pub fn of(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some("jsonl" | "ndjson") => Format::JsonLines,
            _ => Format::Csv,
        }
    }
}

/// A column being read: its name, how it reads values, what it keeps.
#[derive(Debug)]
pub struct Column {
    pub name: String,
    /// Read as categories even when the values are numbers.
    pub categorical: bool,
    pub acc: Option<Accumulator>,
    /// Where the column's kind was decided (file, line), for messages.
    decided_at: Option<(PathBuf, u64)>,
    /// Whether the current file has this column at all.
    pub seen: [bool; 2],
}

impl Column {
    pub fn new(name: String, categorical: bool) -> Self {
        Column { name, categorical, acc: None, decided_at: None, seen: [false; 2] }
    }
}

/// A value as a file gives it.
enum Cell<'a> {
    Missing,
    /// A number, with its text when the file gave one (CSV).
    Number(f64, Option<&'a str>),
    Text(&'a str),
}

/// pandas' default spellings of a missing value.
const MISSING: &[&str] = &[
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A", "NA",
    "NULL", "NaN", "None", "n/a", "nan", "null",
];

fn csv_cell(raw: &str) -> Cell<'_> {
    // A number first: most cells are, and most without spaces around.
    // (`NaN` and `inf` parse, and are left out as missing with the other
    // non-finite values.)
    if let Ok(x) = raw.parse::<f64>() {
        return Cell::Number(x, Some(raw));
    }
    let text = raw.trim_ascii();
    if let Ok(x) = text.parse::<f64>() {
        return Cell::Number(x, Some(raw));
    }
    if MISSING.contains(&text) { Cell::Missing } else { Cell::Text(raw) }
}

impl Column {
    /// Adds one batch of cells (with their line numbers) to the column.
    fn add<'a>(&mut self, side: usize, path: &Path, cells: impl Iterator<Item = (u64, Cell<'a>)>) -> Result<(), Error> {
        let mut values = Vec::with_capacity(BATCH_ROWS);
        for (line, cell) in cells {
            if matches!(cell, Cell::Missing) {
                continue;
            }
            if self.acc.is_none() {
                // The kind comes from the reference's first value.
                if side != REFERENCE {
                    continue;
                }
                self.decided_at = Some((path.to_path_buf(), line));
                self.acc = Some(if self.categorical || matches!(cell, Cell::Text(_)) {
                    Accumulator::Categorical(Categorical::default())
                } else {
                    Accumulator::Numeric(Box::new(Numeric::new()))
                });
            }
            match (self.acc.as_mut().expect("set above"), cell) {
                (_, Cell::Missing) => {}
                // Evidently drops infinities with the missing values.
                (_, Cell::Number(x, _)) if !x.is_finite() => {}
                (Accumulator::Numeric(_), Cell::Number(x, _)) => values.push(x),
                (Accumulator::Numeric(_), Cell::Text(text)) => {
                    let (first_file, first_line) = self.decided_at.clone().expect("set with the kind");
                    return Err(Error::NotNumeric {
                        path: path.to_path_buf(),
                        line,
                        column: self.name.clone(),
                        value: text.to_string(),
                        first_file,
                        first_line,
                    });
                }
                (Accumulator::Categorical(acc), Cell::Number(_, Some(text)) | Cell::Text(text)) => acc.add(side, text),
                (Accumulator::Categorical(acc), Cell::Number(x, None)) => acc.add(side, &format_number(x)),
            }
        }
        if let Some(Accumulator::Numeric(acc)) = &mut self.acc {
            acc.add(side, &values);
        }
        Ok(())
    }
}

fn format_number(x: f64) -> String {
    // JSON numbers in a categorical column: `1` and `1.0` are one category.
    format!("{x}")
}

/// Reads `path` into `columns`. For the reference, `columns` may be empty:
/// they are then the file's (the header, or the first line's keys).
pub fn read(
    path: &Path,
    format: Format,
    side: usize,
    columns: &mut Vec<Column>,
    categorical: &[String],
) -> Result<u64, Error> {
    match format {
        Format::Csv => read_csv(path, side, columns, categorical),
        Format::JsonLines => read_json_lines(path, side, columns, categorical),
    }
}

fn read_csv(path: &Path, side: usize, columns: &mut Vec<Column>, categorical: &[String]) -> Result<u64, Error> {
    let csv_error = |e: csv::Error| Error::Csv { path: path.to_path_buf(), message: e.to_string() };
    let file = std::fs::File::open(path).map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
    let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(false).from_reader(file);
    let header = reader.headers().map_err(csv_error)?.clone();
    if header.is_empty() {
        return Err(Error::Empty { path: path.to_path_buf() });
    }
    // Two columns of one name: which one a test compared would be a guess.
    let mut named = std::collections::HashSet::with_capacity(header.len());
    if let Some((i, name)) = header.iter().enumerate().find(|(_, h)| !named.insert(*h)) {
        return Err(Error::Csv {
            path: path.to_path_buf(),
            message: format!("the header names column `{name}` twice (field {} repeats it)", i + 1),
        });
    }
    if side == REFERENCE && columns.is_empty() {
        columns.extend(header.iter().map(|h| Column::new(h.to_string(), categorical.iter().any(|c| c == h))));
    }
    let mut indices = Vec::with_capacity(columns.len());
    for column in columns.iter_mut() {
        match header.iter().position(|h| h == column.name) {
            Some(i) => {
                column.seen[side] = true;
                indices.push(i);
            }
            None => return Err(Error::MissingColumn { path: path.to_path_buf(), column: column.name.clone() }),
        }
    }
    let (sender, receiver) = sync_channel::<Result<Vec<csv::StringRecord>, csv::Error>>(2);
    let rows = std::thread::scope(|scope| -> Result<u64, Error> {
        scope.spawn(move || {
            let mut records = reader.into_records();
            loop {
                let mut batch = Vec::with_capacity(BATCH_ROWS);
                for record in records.by_ref().take(BATCH_ROWS) {
                    match record {
                        Ok(r) => batch.push(r),
                        Err(e) => {
                            let _ = sender.send(Err(e));
                            return;
                        }
                    }
                }
                let done = batch.len() < BATCH_ROWS;
                if (!batch.is_empty() && sender.send(Ok(batch)).is_err()) || done {
                    return;
                }
            }
        });
        let mut rows = 0u64;
        for batch in receiver {
            let batch = batch.map_err(csv_error)?;
            rows += batch.len() as u64;
            columns.par_iter_mut().zip(indices.par_iter()).try_for_each(|(column, &i)| {
                let cells =
                    batch.iter().map(|r| (r.position().map_or(0, |p| p.line()), csv_cell(r.get(i).unwrap_or(""))));
                column.add(side, path, cells)
            })?;
        }
        Ok(rows)
    })?;
    if rows == 0 {
        return Err(Error::Empty { path: path.to_path_buf() });
    }
    Ok(rows)
}

/// One line of JSON lines: an object, whose keys must differ (which of two
/// values of one key a test compared would be a guess, as with a CSV
/// header naming a column twice), or anything else.
enum Line {
    Object(serde_json::Map<String, serde_json::Value>),
    Other,
}

impl<'de> serde::Deserialize<'de> for Line {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Line, D::Error> {
        use serde::de::{Error, IgnoredAny, MapAccess, SeqAccess, Visitor};
        struct Lines;
        impl<'de> Visitor<'de> for Lines {
            type Value = Line;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Line, A::Error> {
                let mut map = serde_json::Map::new();
                while let Some(key) = access.next_key::<String>()? {
                    if map.contains_key(&key) {
                        return Err(A::Error::custom(format_args!("the key `{key}` appears twice")));
                    }
                    let value = access.next_value()?;
                    map.insert(key, value);
                }
                Ok(Line::Object(map))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Line, A::Error> {
                while access.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Line::Other)
            }
            fn visit_bool<E: Error>(self, _: bool) -> Result<Line, E> {
                Ok(Line::Other)
            }
            fn visit_i64<E: Error>(self, _: i64) -> Result<Line, E> {
                Ok(Line::Other)
            }
            fn visit_u64<E: Error>(self, _: u64) -> Result<Line, E> {
                Ok(Line::Other)
            }
            fn visit_f64<E: Error>(self, _: f64) -> Result<Line, E> {
                Ok(Line::Other)
            }
            fn visit_str<E: Error>(self, _: &str) -> Result<Line, E> {
                Ok(Line::Other)
            }
            fn visit_unit<E: Error>(self) -> Result<Line, E> {
                Ok(Line::Other)
            }
        }
        deserializer.deserialize_any(Lines)
    }
}

fn read_json_lines(path: &Path, side: usize, columns: &mut Vec<Column>, categorical: &[String]) -> Result<u64, Error> {
    let file = std::fs::File::open(path).map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
    let reader = std::io::BufReader::with_capacity(1 << 20, file);
    let (sender, receiver) = sync_channel::<std::io::Result<Vec<(u64, String)>>>(2);
    let rows = std::thread::scope(|scope| -> Result<u64, Error> {
        scope.spawn(move || {
            let mut lines = reader.lines().enumerate();
            loop {
                let mut batch = Vec::with_capacity(BATCH_ROWS);
                let mut consumed = 0;
                for (number, line) in lines.by_ref().take(BATCH_ROWS) {
                    consumed += 1;
                    match line {
                        Ok(text) if text.trim().is_empty() => {}
                        // A byte order mark, as Excel and PowerShell write.
                        Ok(text) if number == 0 && text.starts_with('\u{feff}') => {
                            batch.push((1, text['\u{feff}'.len_utf8()..].to_string()));
                        }
                        Ok(text) => batch.push((number as u64 + 1, text)),
                        Err(e) => {
                            let _ = sender.send(Err(e));
                            return;
                        }
                    }
                }
                if consumed == 0 || sender.send(Ok(batch)).is_err() {
                    return;
                }
            }
        });
        let mut rows = 0u64;
        for batch in receiver {
            let batch = batch.map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
            let objects: Vec<(u64, serde_json::Map<String, serde_json::Value>)> = batch
                .par_iter()
                .map(|(line, text)| {
                    match serde_json::from_str::<Line>(text).or_else(|err| {
                        // Python's `json.dumps` writes `NaN` and `Infinity`:
                        // missing values, as in CSV.
                        constants_as_null(text).and_then(|text| serde_json::from_str(&text).ok()).ok_or(err)
                    }) {
                        Ok(Line::Object(map)) => Ok((*line, map)),
                        Ok(Line::Other) => Err(Error::Json {
                            path: path.to_path_buf(),
                            line: *line,
                            message: "the line is not a JSON object".to_string(),
                        }),
                        Err(e) => Err(Error::Json { path: path.to_path_buf(), line: *line, message: e.to_string() }),
                    }
                })
                .collect::<Result<_, _>>()?;
            if side == REFERENCE
                && columns.is_empty()
                && let Some((_, first)) = objects.first()
            {
                columns.extend(first.keys().map(|k| Column::new(k.clone(), categorical.contains(k))));
            }
            rows += objects.len() as u64;
            columns.par_iter_mut().try_for_each(|column| {
                let mut cells = Vec::with_capacity(objects.len());
                for (line, object) in &objects {
                    let cell = match object.get(&column.name) {
                        None => Cell::Missing,
                        Some(value) => {
                            column.seen[side] = true;
                            match value {
                                serde_json::Value::Null => Cell::Missing,
                                serde_json::Value::Number(n) => Cell::Number(n.as_f64().unwrap_or(f64::NAN), None),
                                serde_json::Value::String(s) => Cell::Text(s.as_str()),
                                serde_json::Value::Bool(true) => Cell::Text("true"),
                                serde_json::Value::Bool(false) => Cell::Text("false"),
                                _ => {
                                    return Err(Error::Json {
                                        path: path.to_path_buf(),
                                        line: *line,
                                        message: format!(
                                            "the value of `{}` is an array or an object, not a number or a category",
                                            column.name
                                        ),
                                    });
                                }
                            }
                        }
                    };
                    cells.push((*line, cell));
                }
                column.add(side, path, cells.into_iter())
            })?;
        }
        Ok(rows)
    })?;
    if rows == 0 {
        return Err(Error::Empty { path: path.to_path_buf() });
    }
    for column in columns.iter() {
        if !column.seen[side] {
            return Err(Error::MissingColumn { path: path.to_path_buf(), column: column.name.clone() });
        }
    }
    Ok(rows)
}

/// `text` (a line of JSON) with every `NaN`, `Infinity` and `-Infinity`
/// outside a string written `null`; `None` when it has none.
fn constants_as_null(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped, mut changed) = (false, false, false);
    let mut at = 0;
    while at < bytes.len() {
        let byte = bytes[at];
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else if byte == b'"' {
            in_string = true;
        } else if let Some(constant) = ["-Infinity", "Infinity", "NaN"].into_iter().find(|c| text[at..].starts_with(c))
        {
            out.push_str("null");
            at += constant.len();
            changed = true;
            continue;
        }
        // Whole characters: `at` only stops on ASCII bytes above.
        let width = text[at..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&text[at..at + width]);
        at += width;
    }
    changed.then_some(out)
}
