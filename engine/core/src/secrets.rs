//! Secrets: environment variables a stage names in its `secrets` field and
//! takes from the environment gourd runs in.
//!
//! A stage inherits gourd's environment, so a secret reaches the stage
//! without gourd copying it anywhere. What this module adds is what keeps
//! the value out of everything gourd writes: a check that every secret is
//! set before a run starts (rather than a stage failing halfway through),
//! and the redaction of the values from the stage's log. Neither the names
//! nor the values enter the stage key: a secret grants access, it must not
//! change what a stage produces (a value that does is a `param`).

use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;

use crate::model::{Pipeline, Stage};

/// What a secret's value becomes in a log.
pub const REDACTED: &[u8] = b"***";

/// Values shorter than this are not redacted: replacing every `a` or `12`
/// in a log would hide the log, and such a value protects nothing anyway.
pub const MIN_REDACTED_LEN: usize = 4;

/// Secrets that stages about to run declare and the environment lacks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", describe(.missing))]
pub struct MissingSecrets {
    /// `(stage, variable)`, in pipeline order.
    pub missing: Vec<(String, String)>,
}

fn describe(missing: &[(String, String)]) -> String {
    match missing {
        [(stage, name)] => {
            format!("stage `{stage}` takes the secret `{name}`, which is not set in the environment")
        }
        _ => {
            let list: Vec<String> = missing.iter().map(|(stage, name)| format!("`{name}` (stage `{stage}`)")).collect();
            format!("secrets not set in the environment: {}", list.join(", "))
        }
    }
}

/// Checks that every secret of the stages at `selected` (indices into
/// `pipeline.stages`) is set, and not empty, in this process's environment.
/// Called before a run starts, so that a missing secret fails it before any
/// stage executes.
pub fn check_set(pipeline: &Pipeline, selected: impl IntoIterator<Item = usize>) -> Result<(), MissingSecrets> {
    let mut indices: Vec<usize> = selected.into_iter().collect();
    indices.sort_unstable();
    indices.dedup();
    let missing: Vec<(String, String)> = indices
        .into_iter()
        .filter_map(|i| pipeline.stages.get(i))
        .flat_map(|stage| {
            stage
                .secrets
                .iter()
                .filter(|name| std::env::var_os(name).is_none_or(|v| v.is_empty()))
                .map(|name| (stage.name.clone(), name.clone()))
        })
        .collect();
    if missing.is_empty() { Ok(()) } else { Err(MissingSecrets { missing }) }
}

/// The values of `stage`'s secrets in this process's environment (the
/// stage's own), as bytes: they need not be UTF-8. Unset ones are left out.
pub fn secret_values(stage: &Stage) -> Vec<Vec<u8>> {
    stage
        .secrets
        .iter()
        .filter_map(|name| std::env::var_os(name))
        .map(|value| value.as_bytes().to_vec())
        .filter(|value| !value.is_empty())
        .collect()
}

/// Whether an environment variable's name says it holds a secret: it
/// contains `SECRET`, `PASSWORD`, `PASSWD` or `APIKEY`, has a word (between
/// `_`) that ends in `TOKEN`, has the words `PRIVATE_KEY`, or ends in `_KEY`
/// (or `_KEY_2`: a number after it), ignoring case. Words, not substrings,
/// for tokens: `TOKENIZERS_PARALLELISM` and `MAX_TOKENS` are settings. Keys
/// that name something public or a position in a table (`SSH_PUBLIC_KEY`,
/// `SORT_KEY`, `PARTITION_KEY`) are settings too.
pub fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    if ["SECRET", "PASSWORD", "PASSWD", "APIKEY"].iter().any(|word| upper.contains(word)) {
        return true;
    }
    let words: Vec<&str> = upper.split('_').collect();
    if words.iter().any(|word| word.ends_with("TOKEN")) || words.windows(2).any(|w| w == ["PRIVATE", "KEY"]) {
        return true;
    }
    // A number after the key names another one of the same kind.
    let words = match words.as_slice() {
        [rest @ .., last] if !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()) => rest,
        all => all,
    };
    match words {
        [.., before, "KEY"] => !["PUBLIC", "SORT", "PARTITION", "PRIMARY", "CACHE"].contains(before),
        _ => false,
    }
}

/// Whether `name` can be an environment variable's name: a letter or `_`,
/// then letters, digits and `_` (what a shell can `export`).
pub fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The values worth redacting (at least [`MIN_REDACTED_LEN`] bytes),
/// longest first.
fn patterns(values: &[impl AsRef<[u8]>]) -> Vec<&[u8]> {
    let mut patterns: Vec<&[u8]> = values.iter().map(AsRef::as_ref).filter(|v| v.len() >= MIN_REDACTED_LEN).collect();
    patterns.sort_by_key(|p| std::cmp::Reverse(p.len()));
    patterns.dedup();
    patterns
}

/// Copies what a stage writes to `input` (a pipe) into its log `output` as
/// it comes, every value of `values` replaced: neither the log nor anyone
/// following it (`gourd run -v`) ever holds a value, even when gourd is
/// killed while the stage runs.
pub fn redact_stream(mut input: impl Read, mut output: std::fs::File, values: &[impl AsRef<[u8]>]) -> io::Result<()> {
    let patterns = patterns(values);
    if patterns.is_empty() {
        io::copy(&mut input, &mut output)?;
        return Ok(());
    }
    redact(input, &mut output, &patterns).map(drop)
}

/// Copies `input` to `output` with `patterns` replaced, the longest where
/// several begin at one place; says whether anything was. What each read
/// brings is written at once, but for a tail that a value could still
/// begin in.
fn redact(mut input: impl Read, output: &mut impl Write, patterns: &[&[u8]]) -> io::Result<bool> {
    let finder = aho_corasick::AhoCorasick::builder()
        .match_kind(aho_corasick::MatchKind::LeftmostLongest)
        .build(patterns)
        .map_err(io::Error::other)?;
    let longest = patterns.iter().map(|p| p.len()).max().unwrap_or(0);
    let mut chunk = vec![0; 64 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    let mut replaced = false;
    loop {
        let n = match input.read(&mut chunk) {
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        let at_end = n == 0;
        pending.extend_from_slice(&chunk[..n]);
        // Where a value, or a longer one than matches there, may begin
        // once more is read: only in the last `longest - 1` bytes.
        let unsure: Vec<usize> = if at_end {
            Vec::new()
        } else {
            (pending.len().saturating_sub(longest - 1)..pending.len())
                .filter(|&at| {
                    let rest = &pending[at..];
                    patterns.iter().any(|p| p.len() > rest.len() && p.starts_with(rest))
                })
                .collect()
        };
        let first_unsure = |from: usize| unsure.iter().copied().find(|&at| at >= from);
        let mut copied = 0;
        let mut held = None;
        for found in finder.find_iter(&pending) {
            if let Some(at) = first_unsure(copied).filter(|&at| at <= found.start()) {
                held = Some(at);
                break;
            }
            output.write_all(&pending[copied..found.start()])?;
            output.write_all(REDACTED)?;
            copied = found.end();
            replaced = true;
        }
        let done = held.or_else(|| first_unsure(copied)).unwrap_or(pending.len());
        output.write_all(&pending[copied..done])?;
        output.flush()?;
        pending.drain(..done);
        if at_end {
            return Ok(replaced);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{pipeline, stage};

    /// A reader that fails with `errors` in turn before giving `data`.
    struct Flaky {
        errors: Vec<io::ErrorKind>,
        data: std::io::Cursor<Vec<u8>>,
    }

    impl Read for Flaky {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.errors.pop() {
                Some(kind) => Err(io::Error::from(kind)),
                None => self.data.read(buf),
            }
        }
    }

    #[test]
    fn a_read_interrupted_is_tried_again_and_any_other_error_is_returned() {
        let patterns: &[&[u8]] = &[b"hunter22"];
        let data = std::io::Cursor::new(b"pw=hunter22".to_vec());
        let mut out = Vec::new();
        let flaky = Flaky { errors: vec![io::ErrorKind::Interrupted, io::ErrorKind::Interrupted], data };
        assert!(redact(flaky, &mut out, patterns).unwrap());
        assert_eq!(out, [b"pw=".as_slice(), REDACTED].concat());
        let data = std::io::Cursor::new(b"pw=hunter22".to_vec());
        let broken = Flaky { errors: vec![io::ErrorKind::Other], data };
        assert_eq!(redact(broken, &mut Vec::new(), patterns).unwrap_err().kind(), io::ErrorKind::Other);
    }

    fn redacted(text: &[u8], values: &[&str]) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stage.log");
        redact_stream(text, std::fs::File::create(&path).unwrap(), values).unwrap();
        std::fs::read(&path).unwrap()
    }

    /// What a stage prints reaches the log at once, redacted, while the
    /// stage still runs: a value is never written, and a line is not held
    /// back waiting for more.
    #[test]
    fn a_stream_is_redacted_as_it_comes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stage.log");
        let (reader, mut writer) = std::io::pipe().unwrap();
        let log = std::fs::File::create(&path).unwrap();
        let copy = std::thread::spawn(move || redact_stream(reader, log, &["hunter22", "hunter22-longer"]));
        let shows = |expected: &[u8]| {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while std::fs::read(&path).unwrap() != expected {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{:?}",
                    String::from_utf8_lossy(&std::fs::read(&path).unwrap())
                );
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        };
        writer.write_all(b"token hunter22\n").unwrap();
        shows(b"token ***\n");
        // The start of a value waits for what follows; the rest is written.
        writer.write_all(b"then hunt").unwrap();
        shows(b"token ***\nthen ");
        writer.write_all(b"er22-longer and hunter22").unwrap();
        // `hunter22` here may yet become the longer value.
        shows(b"token ***\nthen *** and ");
        writer.write_all(b"!\n").unwrap();
        shows(b"token ***\nthen *** and ***!\n");
        drop(writer);
        copy.join().unwrap().unwrap();
        // A value that ends a read, which nothing longer may extend, is
        // replaced at once.
        let (reader, mut writer) = std::io::pipe().unwrap();
        let log = std::fs::File::create(&path).unwrap();
        let copy = std::thread::spawn(move || redact_stream(reader, log, &["hunter22"]));
        writer.write_all(b"x hunter22").unwrap();
        shows(b"x ***");
        drop(writer);
        copy.join().unwrap().unwrap();
        // Nothing to redact: copied as it is.
        let plain = dir.path().join("plain.log");
        redact_stream(&b"a 123"[..], std::fs::File::create(&plain).unwrap(), &["123"]).unwrap();
        assert_eq!(std::fs::read(&plain).unwrap(), b"a 123");
    }

    #[test]
    fn replaces_every_occurrence() {
        assert_eq!(
            redacted(b"key=hunter22\nagain hunter22hunter22.\n", &["hunter22"]),
            b"key=***\nagain ******.\n".to_vec()
        );
    }

    #[test]
    fn works_on_bytes_that_are_not_utf8() {
        let mut log = vec![0xff, 0xfe];
        log.extend_from_slice(b"s3cr3t");
        log.push(0x80);
        assert_eq!(redacted(&log, &["s3cr3t"]), vec![0xff, 0xfe, b'*', b'*', b'*', 0x80]);
    }

    #[test]
    fn the_longest_of_overlapping_values_wins() {
        assert_eq!(redacted(b"abcdefgh abcd", &["abcd", "abcdefgh"]), b"*** ***".to_vec());
    }

    #[test]
    fn short_values_and_no_match_leave_the_file_alone() {
        assert_eq!(redacted(b"a 123 b", &["123", ""]), b"a 123 b".to_vec());
        assert_eq!(redacted(b"nothing here", &["hunter22"]), b"nothing here".to_vec());
    }

    #[test]
    fn a_value_across_chunk_boundaries_is_found() {
        let secret = "0123456789abcdef";
        let mut log = Vec::new();
        let mut expected = Vec::new();
        // Occurrences at every offset around the 64 KiB boundary.
        for pad in 0..40 {
            let filler = vec![b'.'; 64 * 1024 - 20 + pad];
            log.extend_from_slice(&filler);
            log.extend_from_slice(secret.as_bytes());
            expected.extend_from_slice(&filler);
            expected.extend_from_slice(REDACTED);
        }
        log.extend_from_slice(&secret.as_bytes()[..10]);
        expected.extend_from_slice(&secret.as_bytes()[..10]);
        assert_eq!(redacted(&log, &[secret]), expected);
    }

    /// Gives `data` in reads of the sizes `sizes` says, in turn.
    struct Pieces {
        data: Vec<u8>,
        sizes: Vec<usize>,
    }

    impl Read for Pieces {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let size = self.sizes.pop().unwrap_or(usize::MAX).min(buf.len()).min(self.data.len());
            buf[..size].copy_from_slice(&self.data[..size]);
            self.data.drain(..size);
            Ok(size)
        }
    }

    /// However the output is cut into reads, the log is what replacing the
    /// values in the whole of it at once gives: at each place the longest
    /// value that begins there, else the byte as it is.
    #[test]
    fn any_cut_into_reads_redacts_as_the_whole_at_once() {
        fn whole(text: &[u8], patterns: &[&[u8]]) -> Vec<u8> {
            let (mut out, mut at) = (Vec::new(), 0);
            while at < text.len() {
                match patterns.iter().filter(|p| text[at..].starts_with(p)).max_by_key(|p| p.len()) {
                    Some(p) => {
                        out.extend_from_slice(REDACTED);
                        at += p.len();
                    }
                    None => {
                        out.push(text[at]);
                        at += 1;
                    }
                }
            }
            out
        }
        // A fixed-seed generator: the same cases on every run.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |below: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % below as u64) as usize
        };
        for _ in 0..3000 {
            // Few letters, so that values overlap, nest and repeat.
            let values: Vec<Vec<u8>> =
                (0..1 + next(3)).map(|_| (0..4 + next(5)).map(|_| b"ab"[next(2)]).collect()).collect();
            let values: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
            let patterns = patterns(&values);
            let text: Vec<u8> = (0..next(60)).map(|_| b"abc"[next(3)]).collect();
            let sizes = (0..next(20)).map(|_| 1 + next(7)).collect();
            let mut out = Vec::new();
            let replaced = redact(Pieces { data: text.clone(), sizes }, &mut out, &patterns).unwrap();
            let expected = whole(&text, &patterns);
            assert_eq!(out, expected, "values {values:?}, text {:?}", String::from_utf8_lossy(&text));
            assert_eq!(replaced, expected != text);
        }
    }

    #[test]
    fn secret_looking_names() {
        for name in [
            "AWS_SECRET_ACCESS_KEY",
            "aws_secret_access_key",
            "HF_TOKEN",
            "GITHUB_TOKEN",
            "HUGGINGFACEHUB_API_TOKEN",
            "DB_PASSWORD",
            "PGPASSWORD",
            "WANDB_API_KEY",
            "OPENAI_API_KEY",
            "CLIENT_SECRET",
            "SSH_PRIVATE_KEY",
            "PRIVATE_KEY_PEM",
            "OPENAI_API_KEY_2",
            "APIKEY",
            "MAPS_APIKEY",
        ] {
            assert!(looks_secret(name), "{name}");
        }
        for name in [
            "PYTHONHASHSEED",
            "TOKENIZERS_PARALLELISM",
            "MAX_TOKENS",
            "AWS_ACCESS_KEY_ID",
            "AWS_REGION",
            "KEY",
            "SSH_PUBLIC_KEY",
            "SSH_PUBLIC_KEY_2",
            "SORT_KEY",
            "SHARD_2",
            "KEY_2",
            "CUDA_VISIBLE_DEVICES",
            "KEYBOARD",
        ] {
            assert!(!looks_secret(name), "{name}");
        }
    }

    #[test]
    fn env_names() {
        assert!(is_env_name("AWS_SECRET_ACCESS_KEY") && is_env_name("_x1"));
        assert!(!is_env_name("") && !is_env_name("1X") && !is_env_name("A-B") && !is_env_name("A=B"));
    }

    #[test]
    fn missing_secrets_are_named_with_their_stage() {
        let var = "GOURD_TEST_SECRET_THAT_IS_NEVER_SET";
        let mut a = stage("a", &[], &["x"]);
        a.secrets = vec![var.to_string(), "PATH".to_string()];
        let b = stage("b", &[], &["y"]);
        let p = pipeline(vec![a, b]);
        let err = check_set(&p, [0, 1]).unwrap_err();
        assert_eq!(err.missing, vec![("a".to_string(), var.to_string())]);
        assert_eq!(err.to_string(), format!("stage `a` takes the secret `{var}`, which is not set in the environment"));
        assert!(check_set(&p, [1]).is_ok(), "only the selected stages count");
        assert_eq!(secret_values(&p.stages[0]), vec![std::env::var_os("PATH").unwrap().as_bytes().to_vec()]);
    }
}
