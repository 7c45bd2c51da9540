//! GTO's tag grammar: every form read, rendered back to the same name, and
//! every near miss refused.

use gourd_lineage::registry::tag::{
    Action, TagName, artifact_in_tag, is_artifact, is_name, is_version, next_patch, parse_version,
};

fn parsed(tag: &str) -> TagName {
    TagName::parse(tag).unwrap_or_else(|| panic!("{tag} should parse"))
}

fn name(artifact: &str, action: Action, version: Option<&str>, stage: Option<&str>, counter: Option<u64>) -> TagName {
    TagName {
        artifact: artifact.into(),
        action,
        version: version.map(String::from),
        stage: stage.map(String::from),
        counter,
    }
}

#[test]
fn every_form_reads_as_its_move_and_renders_back() {
    for (tag, expected) in [
        ("pumpkin@v1.2.0", name("pumpkin", Action::Register, Some("v1.2.0"), None, None)),
        ("pumpkin@v1.2.0!", name("pumpkin", Action::Deregister, Some("v1.2.0"), None, None)),
        ("pumpkin@v1.2.0!#7", name("pumpkin", Action::Deregister, Some("v1.2.0"), None, Some(7))),
        ("pumpkin@v1.2.0#12", name("pumpkin", Action::Register, Some("v1.2.0"), None, Some(12))),
        ("pumpkin#prod", name("pumpkin", Action::Assign, None, Some("prod"), None)),
        ("pumpkin#prod#3", name("pumpkin", Action::Assign, None, Some("prod"), Some(3))),
        ("pumpkin#prod!", name("pumpkin", Action::Unassign, None, Some("prod"), None)),
        ("pumpkin#prod!#4", name("pumpkin", Action::Unassign, None, Some("prod"), Some(4))),
        ("pumpkin@deprecated", name("pumpkin", Action::Deprecate, None, None, None)),
        ("pumpkin@deprecated#5", name("pumpkin", Action::Deprecate, None, None, Some(5))),
        ("pumpkin@created", name("pumpkin", Action::Create, None, None, None)),
        ("pumpkin@created#1", name("pumpkin", Action::Create, None, None, Some(1))),
        (
            "models/cv=pumpkin@v0.1.0-rc.1+b5",
            name("models/cv:pumpkin", Action::Register, Some("v0.1.0-rc.1+b5"), None, None),
        ),
        (
            "a.b/c-d_e=m#qa/eu-1#18446744073709551615",
            name("a.b/c-d_e:m", Action::Assign, None, Some("qa/eu-1"), Some(u64::MAX)),
        ),
        ("a#1", name("a", Action::Assign, None, Some("1"), None)),
    ] {
        assert_eq!(parsed(tag), expected, "{tag}");
        assert_eq!(expected.render(), tag);
    }
}

#[test]
fn near_misses_are_not_registry_tags() {
    for tag in [
        "",
        "v1.0.0",
        "release-1",
        "pumpkin",
        "pumpkin@1.2.0",
        "pumpkin@v1.2",
        "pumpkin@v01.2.0",
        "pumpkin@v1.2.0-rc.01",
        "pumpkin@",
        "pumpkin#",
        "pumpkin#prod#",
        "pumpkin#prod#x",
        "pumpkin#prod#+5",
        "pumpkin#prod#-5",
        "pumpkin#prod#18446744073709551616",
        "pumpkin#prod!x",
        "pumpkin#prod!!",
        "pumpkin@v1.0.0!!",
        "pumpkin@v1.0.0!#",
        "pumpkin#-prod#1",
        "pumpkin#prod-#1",
        "pumpkin#pr.od",
        "pumpkin@deprecated!",
        "pumpkin@created!",
        "pumpkin@deprecated!#3",
        "-pumpkin@v1.0.0",
        "pumpkin-@v1.0.0",
        "pump kin@v1.0.0",
        "pump.kin@v1.0.0",
        "=pumpkin@v1.0.0",
        "a b=pumpkin@v1.0.0",
        "a:b=pumpkin@v1.0.0",
        "dir=@v1.0.0",
        "a=b=c@v1.0.0",
        "@v1.0.0",
        "#prod",
        "pumpkin#prod#1#2",
    ] {
        assert_eq!(TagName::parse(tag), None, "{tag}");
    }
}

#[test]
fn actions_have_gto_names() {
    let names: Vec<&str> =
        [Action::Register, Action::Deregister, Action::Assign, Action::Unassign, Action::Deprecate, Action::Create]
            .into_iter()
            .map(Action::name)
            .collect();
    assert_eq!(names, ["register", "deregister", "assign", "unassign", "deprecate", "create"]);
    assert_eq!(serde_json::to_string(&Action::Unassign).unwrap(), "\"unassign\"");
}

#[test]
fn artifacts_as_tags_write_them() {
    assert_eq!(artifact_in_tag("pumpkin"), "pumpkin");
    assert_eq!(artifact_in_tag("models/cv:pumpkin"), "models/cv=pumpkin");
    assert_eq!(artifact_in_tag("a:b:c"), "a=b:c", "only the first colon");
    assert_eq!(name("models:m", Action::Assign, None, Some("prod"), Some(2)).render(), "models=m#prod#2");
}

#[test]
fn names_and_artifacts_follow_gto() {
    for good in ["a", "7", "ab", "a-b", "a/b", "a_b", "Model-2/x_y"] {
        assert!(is_name(good), "{good}");
        assert!(is_artifact(good), "{good}");
    }
    for bad in ["", "-", "-a", "a-", "_a", "a_", "/a", "a/", "a.b", "a b", "a:b:c", "a//b"] {
        assert!(!is_name(bad), "{bad}");
    }
    for good in ["models/cv:pumpkin-2", "a.b/c-d_e:m", "d:m", "m.x:p", "a/b.c/d:m"] {
        assert!(is_artifact(good), "{good}");
    }
    // What git refuses in a tag's name is refused before a tag is made.
    for bad in [
        ":pumpkin",
        "dir:",
        "a b:m",
        "a=b:m",
        "a:b:c",
        "pumpkin-",
        "Pump kin",
        "d:-m",
        ".:m",
        "./m:p",
        "models/../x:p",
        "m/:p",
        "/m:p",
        "m//x:p",
        "a..b:m",
        "m.:p",
        "m.lock:p",
        "d/x.lock:m",
        ".hidden:m",
        "a//b",
    ] {
        assert!(!is_artifact(bad), "{bad}");
    }
}

#[test]
fn versions_are_semver_with_a_v() {
    for good in ["v0.0.0", "v1.2.3", "v10.20.30", "v1.2.3-rc.1", "v1.2.3+build.01", "v1.0.0-alpha.beta+x"] {
        assert!(is_version(good), "{good}");
    }
    for bad in ["1.2.3", "v1.2", "v1", "v01.2.3", "v1.02.3", "v1.2.3-rc.01", "V1.2.3", "vv1.2.3", "v1.2.3 ", ""] {
        assert!(!is_version(bad), "{bad}");
        assert_eq!(parse_version(bad), None, "{bad}");
    }
    assert_eq!(parse_version("v1.2.3"), Some(semver::Version::new(1, 2, 3)));
    assert_eq!(parse_version("v0.10.0-rc.1").unwrap().pre.as_str(), "rc.1");
}

#[test]
fn the_next_patch() {
    for (version, next) in [
        ("v1.2.3", "v1.2.4"),
        ("v0.0.0", "v0.0.1"),
        ("v1.2.9", "v1.2.10"),
        ("v1.3.0-rc.1", "v1.3.0"),
        ("v1.2.3+b5", "v1.2.4"),
    ] {
        assert_eq!(next_patch(&parse_version(version).unwrap()).as_deref(), Some(next), "{version}");
    }
    assert_eq!(next_patch(&parse_version(&format!("v0.0.{}", u64::MAX)).unwrap()), None);
}
