//! What an installed gourd offers its shell and its user: `--version` with
//! the commit and the features, completion scripts, and manual pages, all
//! from the real binary.

mod common;

use std::path::Path;
use std::process::Command;

use common::TestWorkspace;

fn features() -> &'static str {
    if cfg!(feature = "cuda") {
        "torch, cuda"
    } else if cfg!(feature = "torch") {
        "torch"
    } else {
        "none"
    }
}

#[test]
fn version_names_the_release_the_commit_and_the_features() {
    let ws = TestWorkspace::bare();
    let version = ws.gourd(&["--version"]).success().stdout;
    let pattern =
        regex_lite::Regex::new(r"^gourd (\S+) \(commit ([0-9a-f]{12}|unknown); features: ([a-z, ]+)\)\n$").unwrap();
    let caps = pattern.captures(&version).unwrap_or_else(|| panic!("unexpected --version: {version:?}"));
    assert_eq!(&caps[1], env!("CARGO_PKG_VERSION"));
    assert_eq!(&caps[3], features());
    // The commit is one of this repository's (the binary is rebuilt when
    // HEAD moves).
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let exists = Command::new("git")
        .args(["cat-file", "-e", &format!("{}^{{commit}}", &caps[2])])
        .current_dir(repo)
        .status()
        .unwrap();
    assert!(exists.success(), "`{}` is not a commit of {}", &caps[2], repo.display());
    assert_eq!(ws.gourd(&["-V"]).success().stdout, version);
}

/// The words the bash script of `gourd completions bash` offers for the last
/// of `words`, called as bash calls it (command, current word, previous word).
fn bash_complete(ws: &TestWorkspace, words: &[&str]) -> Vec<String> {
    std::fs::write(ws.path("gourd.bash"), ws.gourd(&["completions", "bash"]).success().stdout).unwrap();
    let script = format!(
        "source gourd.bash && COMP_WORDS=({}) && COMP_CWORD={} && _gourd gourd '{}' '{}' && printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        words.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(" "),
        words.len() - 1,
        words[words.len() - 1],
        words[words.len() - 2],
    );
    let out = Command::new("bash").args(["--norc", "-c", &script]).current_dir(ws.root()).output().unwrap();
    assert!(out.status.success(), "bash: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

#[test]
fn bash_completes_commands_and_their_flags() {
    let ws = TestWorkspace::bare();
    assert_eq!(bash_complete(&ws, &["gourd", "ru"]), ["run"]);
    let commands = bash_complete(&ws, &["gourd", ""]);
    for command in ["init", "run", "status", "registry", "completions", "man"] {
        assert!(commands.contains(&command.to_string()), "`{command}` not offered: {commands:?}");
    }
    assert!(!commands.iter().any(|c| c.starts_with("__")), "a hidden command offered: {commands:?}");
    assert_eq!(bash_complete(&ws, &["gourd", "status", "--exit"]), ["--exit-code"]);
    assert_eq!(bash_complete(&ws, &["gourd", "registry", "prom"]), ["promote"]);
}

#[test]
fn zsh_and_fish_scripts_name_the_commands() {
    let ws = TestWorkspace::bare();
    let zsh = ws.gourd(&["completions", "zsh"]).success().stdout;
    assert!(zsh.starts_with("#compdef gourd\n"), "{zsh}");
    assert!(zsh.contains("'run:Bring stages up to date'"), "{zsh}");
    assert!(zsh.contains("'--exit-code["), "{zsh}");
    let fish = ws.gourd(&["completions", "fish"]).success().stdout;
    assert!(fish.contains("complete -c gourd "), "{fish}");
    assert!(fish.contains("-a \"run\" -d 'Bring stages up to date'"), "{fish}");
    assert!(!zsh.contains("__eval") && !fish.contains("__eval"), "a hidden command completed");
}

#[test]
fn an_unknown_shell_is_refused_with_the_known_ones() {
    let ws = TestWorkspace::bare();
    let run = ws.gourd(&["completions", "tcsh"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("invalid value 'tcsh'"), "{}", run.stderr);
    assert!(run.stderr.contains("bash, elvish, fish, powershell, zsh"), "{}", run.stderr);
    assert!(run.stdout.is_empty());
}

#[test]
fn the_manual_page_renders_and_lists_the_commands() {
    let ws = TestWorkspace::bare();
    let page = ws.gourd(&["man"]).success().stdout;
    assert!(page.contains(".TH gourd 1 "), "{page}");
    for command in ["gourd\\-run(1)", "gourd\\-status(1)", "gourd\\-registry(1)"] {
        assert!(page.contains(command), "no `{command}` in:\n{page}");
    }
    std::fs::write(ws.path("gourd.1"), &page).unwrap();
    // groff, as `man` would format it.
    let out = Command::new("groff").args(["-man", "-Tutf8", "-ww", "gourd.1"]).current_dir(ws.root()).output();
    match out {
        Ok(out) => {
            assert!(out.status.success());
            let warnings = String::from_utf8_lossy(&out.stderr);
            assert!(warnings.is_empty(), "groff: {warnings}");
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains("Declarative, content-hashed pipelines"), "{text}");
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("groff is not installed: the page is not rendered")
        }
        Err(e) => panic!("groff: {e}"),
    }
}

#[test]
fn man_dir_writes_a_page_per_command() {
    let ws = TestWorkspace::bare();
    let run = ws.gourd(&["man", "--dir", "share/man/man1"]).success();
    assert!(run.stderr.contains("share/man/man1"), "{}", run.stderr);
    let mut pages: Vec<String> = std::fs::read_dir(ws.path("share/man/man1"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    for page in ["gourd.1", "gourd-run.1", "gourd-registry-promote.1", "gourd-completions.1"] {
        assert!(pages.contains(&page.to_string()), "no {page} in {pages:?}");
    }
    assert!(!pages.iter().any(|p| p.contains("eval") || p.contains("help")), "{pages:?}");
    let run_page = ws.read("share/man/man1/gourd-run.1");
    assert!(run_page.contains("\\-\\-dry\\-run"), "{run_page}");
}

#[test]
fn man_dir_on_a_file_is_refused() {
    let ws = TestWorkspace::bare();
    ws.write("pages", "not a folder");
    let run = ws.gourd(&["man", "--dir", "pages"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("`pages` is not a folder"), "{}", run.stderr);
    assert_eq!(ws.read("pages"), "not a folder");
}
