//! GTO's tag grammar (gto/constants.py `tag_re`), so that GTO and DVC Studio
//! read gourd's registry and gourd reads theirs:
//!
//! ```text
//! pumpkin@v1.2.0          register version v1.2.0
//! pumpkin@v1.2.0!         deregister it
//! pumpkin#prod#3          assign stage prod (3: the artifact's move counter)
//! pumpkin#prod!#4         unassign stage prod
//! pumpkin@deprecated#5    deprecate the artifact
//! models=pumpkin@v1.0.0   the artifact `models:pumpkin` (a monorepo path)
//! ```
//!
//! Parsing a name costs a few hundred nanoseconds and reads nothing: the
//! registry parses every tag name and opens only the tags of the artifact
//! it was asked about.

/// What a registry tag does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Register,
    Deregister,
    Assign,
    Unassign,
    Deprecate,
    /// `name@created`: GTO parses it, nothing writes it.
    Create,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Register => "register",
            Action::Deregister => "deregister",
            Action::Assign => "assign",
            Action::Unassign => "unassign",
            Action::Deprecate => "deprecate",
            Action::Create => "create",
        }
    }
}

/// A parsed registry tag name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagName {
    /// The artifact as users write it (`dir:name`), not as tags do (`dir=name`).
    pub artifact: String,
    pub action: Action,
    pub version: Option<String>,
    pub stage: Option<String>,
    pub counter: Option<u64>,
}

impl TagName {
    /// Parses a tag name (without `refs/tags/`); `None` for any other tag.
    pub fn parse(tag: &str) -> Option<TagName> {
        let split = tag.find(['#', '@'])?;
        let (artifact_in_tag, rest) = tag.split_at(split);
        if !is_fullname_in_tag(artifact_in_tag) {
            return None;
        }
        let artifact = artifact_in_tag.replacen('=', ":", 1);
        let (sign, rest) = rest.split_at(1);
        // The body runs to `!` or `#`; then an optional `!`, an optional `#N`.
        let end = rest.find(['!', '#']).unwrap_or(rest.len());
        let (body, mut tail) = rest.split_at(end);
        let cancel = tail.starts_with('!');
        if cancel {
            tail = &tail[1..];
        }
        let counter = match tail.strip_prefix('#') {
            Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
                Some(digits.parse().ok()?)
            }
            Some(_) => return None,
            None if tail.is_empty() => None,
            None => return None,
        };
        let (action, version, stage) = match sign {
            "#" if is_name(body) => (if cancel { Action::Unassign } else { Action::Assign }, None, Some(body)),
            "@" if !cancel && body == "deprecated" => (Action::Deprecate, None, None),
            "@" if !cancel && body == "created" => (Action::Create, None, None),
            "@" if is_version(body) => (if cancel { Action::Deregister } else { Action::Register }, Some(body), None),
            _ => return None,
        };
        Some(TagName { artifact, action, version: version.map(String::from), stage: stage.map(String::from), counter })
    }

    /// The tag's name, as GTO writes it.
    pub fn render(&self) -> String {
        let artifact = artifact_in_tag(&self.artifact);
        let mut out = match self.action {
            Action::Register => format!("{artifact}@{}", self.version.as_deref().unwrap_or_default()),
            Action::Deregister => format!("{artifact}@{}!", self.version.as_deref().unwrap_or_default()),
            Action::Assign => format!("{artifact}#{}", self.stage.as_deref().unwrap_or_default()),
            Action::Unassign => format!("{artifact}#{}!", self.stage.as_deref().unwrap_or_default()),
            Action::Deprecate => format!("{artifact}@deprecated"),
            Action::Create => format!("{artifact}@created"),
        };
        if let Some(counter) = self.counter {
            out.push_str(&format!("#{counter}"));
        }
        out
    }
}

/// `dir:name` as tags write it: `dir=name`.
pub fn artifact_in_tag(artifact: &str) -> String {
    artifact.replacen(':', "=", 1)
}

/// GTO's `name`: `[a-zA-Z0-9]([a-zA-Z0-9-/_]*[a-zA-Z0-9])?`.
pub fn is_name(value: &str) -> bool {
    let bytes = value.as_bytes();
    let edge = |b: &u8| b.is_ascii_alphanumeric();
    match bytes {
        [] => false,
        [one] => edge(one),
        [first, middle @ .., last] => {
            edge(first)
                && edge(last)
                && middle.iter().all(|b| b.is_ascii_alphanumeric() || b"-/_".contains(b))
                // An empty path component: git refuses the tag.
                && !value.contains("//")
        }
    }
}

/// GTO's full artifact name: an optional `dirname:` and a name, where
/// dirname is `[a-zA-Z0-9-_./]+`.
pub fn is_artifact(value: &str) -> bool {
    match value.split_once(':') {
        Some((dir, name)) => is_dirname(dir) && is_name(name),
        None => is_name(value),
    }
}

fn is_fullname_in_tag(value: &str) -> bool {
    match value.split_once('=') {
        Some((dir, name)) => is_dirname(dir) && is_name(name),
        None => is_name(value),
    }
}

/// GTO's `[a-zA-Z0-9-_./]+`, less what git refuses in a tag's name: an
/// empty component, one that begins with `.` or ends with `.lock`, `..`,
/// and a `.` at the end.
fn is_dirname(value: &str) -> bool {
    value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
        && !value.contains("..")
        && !value.ends_with('.')
        && value.split('/').all(|part| !part.is_empty() && !part.starts_with('.') && !part.ends_with(".lock"))
}

/// `v` and a semantic version (GTO accepts exactly SemVer 2.0).
pub fn is_version(value: &str) -> bool {
    parse_version(value).is_some()
}

/// The semantic version in `vX.Y.Z[-pre][+build]`.
pub fn parse_version(value: &str) -> Option<semver::Version> {
    let version = semver::Version::parse(value.strip_prefix('v')?).ok()?;
    // The semver crate accepts leading zeros in neither numbers nor numeric
    // pre-release identifiers, as SemVer (and GTO's regex) require.
    Some(version)
}

/// The version after `version` by a patch bump (`v1.2.3` → `v1.2.4`;
/// a pre-release `v1.3.0-rc.1` → `v1.3.0`); `None` past the largest patch.
pub fn next_patch(version: &semver::Version) -> Option<String> {
    if !version.pre.is_empty() {
        return Some(format!("v{}.{}.{}", version.major, version.minor, version.patch));
    }
    Some(format!("v{}.{}.{}", version.major, version.minor, version.patch.checked_add(1)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(tag: &str) -> (String, Action, Option<&'static str>, Option<u64>) {
        let t = TagName::parse(tag).unwrap_or_else(|| panic!("{tag} should parse"));
        let what: Option<&'static str> =
            t.version.clone().or(t.stage.clone()).map(|s| Box::leak(s.into_boxed_str()) as &'static str);
        (t.artifact, t.action, what, t.counter)
    }

    #[test]
    fn reads_every_form_gto_writes() {
        assert_eq!(parsed("pumpkin@v1.2.0"), ("pumpkin".into(), Action::Register, Some("v1.2.0"), None));
        assert_eq!(parsed("pumpkin@v1.2.0!"), ("pumpkin".into(), Action::Deregister, Some("v1.2.0"), None));
        assert_eq!(parsed("pumpkin@v1.2.0!#7"), ("pumpkin".into(), Action::Deregister, Some("v1.2.0"), Some(7)));
        assert_eq!(parsed("pumpkin#prod#3"), ("pumpkin".into(), Action::Assign, Some("prod"), Some(3)));
        assert_eq!(parsed("pumpkin#prod"), ("pumpkin".into(), Action::Assign, Some("prod"), None));
        assert_eq!(parsed("pumpkin#prod!#4"), ("pumpkin".into(), Action::Unassign, Some("prod"), Some(4)));
        assert_eq!(parsed("pumpkin#prod!"), ("pumpkin".into(), Action::Unassign, Some("prod"), None));
        assert_eq!(parsed("pumpkin@deprecated#5"), ("pumpkin".into(), Action::Deprecate, None, Some(5)));
        assert_eq!(parsed("pumpkin@deprecated"), ("pumpkin".into(), Action::Deprecate, None, None));
        assert_eq!(
            parsed("models/cv=pumpkin@v0.1.0-rc.1+b5"),
            ("models/cv:pumpkin".into(), Action::Register, Some("v0.1.0-rc.1+b5"), None)
        );
        assert_eq!(parsed("a#1"), ("a".into(), Action::Assign, Some("1"), None));
    }

    #[test]
    fn other_tags_are_not_registry_tags() {
        for tag in [
            "v1.0.0",
            "release-1",
            "pumpkin@1.2.0",
            "pumpkin@v1.2",
            "pumpkin@v01.2.0",
            "pumpkin#prod#",
            "pumpkin#prod#x",
            "pumpkin#-prod#1",
            "pumpkin@deprecated!",
            "-pumpkin@v1.0.0",
            "pump kin@v1.0.0",
            "a=b=c@v1.0.0",
            "@v1.0.0",
            "pumpkin#prod#1#2",
        ] {
            assert_eq!(TagName::parse(tag), None, "{tag}");
        }
    }

    #[test]
    fn renders_what_it_parses() {
        for tag in [
            "pumpkin@v1.2.0",
            "pumpkin@v1.2.0!",
            "pumpkin#prod#3",
            "pumpkin#prod!#4",
            "pumpkin@deprecated#5",
            "dir/sub=model_a@v0.0.1",
        ] {
            assert_eq!(TagName::parse(tag).unwrap().render(), tag);
        }
    }

    #[test]
    fn names_follow_gto() {
        assert!(is_artifact("pumpkin"));
        assert!(is_artifact("models/cv:pumpkin-2"));
        assert!(is_artifact("a"));
        assert!(!is_artifact("pumpkin-"));
        assert!(!is_artifact("Pump kin"));
        assert!(!is_artifact(":pumpkin"));
        assert!(!is_artifact("a:b:c"));
    }

    #[test]
    fn bumps_the_patch() {
        assert_eq!(next_patch(&parse_version("v1.2.3").unwrap()).unwrap(), "v1.2.4");
        assert_eq!(next_patch(&parse_version("v1.3.0-rc.1").unwrap()).unwrap(), "v1.3.0");
        assert_eq!(next_patch(&parse_version(&format!("v1.2.{}", u64::MAX)).unwrap()), None);
    }
}
