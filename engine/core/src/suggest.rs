//! "Did you mean …?": the known name nearest to a mistyped one.

/// The candidate closest to `word` by edit distance, if one is close enough
/// to be a typo of it (at most a third of the longer name's letters differ,
/// and at least one letter matches). Ties go to the first candidate.
pub fn closest<'a, I>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        if candidate == word {
            continue;
        }
        let distance = strsim::damerau_levenshtein(word, candidate);
        let longest = word.chars().count().max(candidate.chars().count());
        let close = distance * 3 <= longest.max(3) && distance < longest;
        // A prefix counts too: `out` for `outs`, `dep` for `deps`.
        let prefix = candidate.starts_with(word) && word.chars().count() * 2 >= candidate.chars().count();
        if (close || prefix) && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIELDS: [&str; 6] = ["cmd", "deps", "outs", "metrics", "params", "desc"];

    #[test]
    fn typos_find_their_field() {
        assert_eq!(closest("cmdd", FIELDS), Some("cmd"));
        assert_eq!(closest("dep", FIELDS), Some("deps"));
        assert_eq!(closest("out", FIELDS), Some("outs"));
        assert_eq!(closest("parmas", FIELDS), Some("params"));
        assert_eq!(closest("metric", FIELDS), Some("metrics"));
        assert_eq!(closest("trian", ["train", "evaluate"]), Some("train"));
    }

    #[test]
    fn unrelated_names_find_nothing() {
        assert_eq!(closest("executor", FIELDS), None);
        assert_eq!(closest("x", FIELDS), None);
        assert_eq!(closest("zzzz", FIELDS), None);
        assert_eq!(closest("cmd", FIELDS), None, "the name itself is no suggestion");
        assert_eq!(closest("abc", ["xyz"]), None);
    }
}
