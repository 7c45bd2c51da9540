//! `gourd deploy render`: the Dockerfile, KServe InferenceService and
//! systemd unit that run `gourd serve`, checked as far as this machine can
//! (YAML parsed, units verified by `systemd-analyze`), and with hostile
//! paths that must neither break nor inject into any of them.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Run, TestWorkspace};
use serde_yaml::Value;

/// A workspace holding the model folder `models/best`.
fn with_model(folder: &str) -> TestWorkspace {
    let ws = TestWorkspace::bare();
    ws.write(&format!("{folder}/model.json"), r#"{"labels": ["pumpkin", "squash"]}"#);
    ws
}

fn render(ws: &TestWorkspace, args: &[&str]) -> Run {
    let mut all = vec!["deploy", "render"];
    all.extend_from_slice(args);
    ws.gourd(&all)
}

/// `text` with the workspace, this gourd's path and the user the unit
/// runs as (see `runs_as`) made stable.
fn stable(text: &str, ws: &TestWorkspace) -> String {
    let user = regex_lite::Regex::new(r"(?m)^(# The owner[^\n]*\n)?(User=[^\n]*|DynamicUser=yes)$").unwrap();
    let text = user.replace_all(text, "[USER]");
    common::normalize(&text.replace(common::gourd_bin(), "[GOURD]"), ws)
}

/// Who a unit for a model this test wrote runs as: its owner, the user
/// running the tests, or for a model folder, a transient user when that is
/// root.
fn runs_as(repository: bool) -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    match String::from_utf8_lossy(&out.stdout).trim() {
        "root" if !repository => "DynamicUser=yes".to_string(),
        name => format!("User={name}"),
    }
}

fn yaml(text: &str) -> Value {
    serde_yaml::from_str(text).unwrap_or_else(|e| panic!("not YAML: {e}\n{text}"))
}

/// `systemd-analyze verify` on `unit` (a file named `*.service`): its
/// exit code and what it printed.
fn verify(unit: &Path) -> (bool, String) {
    let out =
        Command::new("systemd-analyze").arg("verify").arg(unit).output().unwrap_or_else(|e| {
            panic!("systemd-analyze cannot run ({e}): install systemd (`apt-get install systemd`)")
        });
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn each_target_renders_a_model_folder() {
    let ws = with_model("models/best");
    let docker = render(&ws, &["--target", "docker", "models/best"]).success();
    insta::assert_snapshot!("dockerfile", stable(&docker.stdout, &ws));
    let kserve = render(&ws, &["--target", "kserve", "models/best"]).success();
    insta::assert_snapshot!("inferenceservice", stable(&kserve.stdout, &ws));
    let systemd = render(&ws, &["--target", "systemd", "models/best"]).success();
    insta::assert_snapshot!("unit", stable(&systemd.stdout, &ws));
    // Data on stdout, nothing else.
    assert_eq!(docker.stderr, "");

    // The Dockerfile: a non-root image that serves the copied model and
    // checks its readiness over the V2 protocol.
    let instructions: Vec<&str> =
        docker.stdout.lines().filter(|l| !l.starts_with('#') && !l.starts_with(' ') && !l.is_empty()).collect();
    let keywords: Vec<&str> = instructions.iter().map(|l| l.split_whitespace().next().unwrap()).collect();
    assert_eq!(
        keywords,
        [
            "FROM",
            "ARG",
            "ARG",
            "ENV",
            "RUN",
            "COPY",
            "LABEL",
            "USER",
            "EXPOSE",
            "STOPSIGNAL",
            "HEALTHCHECK",
            "ENTRYPOINT",
            "CMD"
        ]
    );
    assert!(docker.stdout.contains(r#""gourd-ml[torch]==$GOURD_VERSION""#));
    assert!(docker.stdout.contains("\nCOPY . /models/best\n"));
    assert!(docker.stdout.contains("\nUSER 10001\n"));
    assert!(docker.stdout.contains("http://127.0.0.1:8080/v2/health/ready"));
    assert!(docker.stdout.contains(r#"ENTRYPOINT ["gourd", "serve", "/models/best", "--host", "0.0.0.0"]"#));
    assert!(docker.stdout.ends_with("CMD [\"--port\", \"8080\"]\n"));
}

#[test]
fn the_inference_service_speaks_v2_with_probes_on_its_health_endpoints() {
    let ws = with_model("models/best");
    let out =
        render(&ws, &["--target", "kserve", "models/best", "--port", "9000", "--image", "registry.example/best:v3"]);
    let isvc = yaml(&out.success().stdout);
    assert_eq!(isvc["apiVersion"], "serving.kserve.io/v1beta1");
    assert_eq!(isvc["kind"], "InferenceService");
    assert_eq!(isvc["metadata"]["name"], "best");
    assert_eq!(isvc["metadata"]["annotations"]["gourd.dev/model"], "models/best");
    let containers = isvc["spec"]["predictor"]["containers"].as_sequence().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert_eq!(c["name"], "kserve-container");
    assert_eq!(c["image"], "registry.example/best:v3");
    assert_eq!(c["args"], yaml("[--port, '9000']"));
    assert_eq!(c["env"], yaml("[{name: PROTOCOL, value: v2}]"));
    assert_eq!(c["ports"], yaml("[{name: http1, containerPort: 9000, protocol: TCP}]"));
    assert_eq!(c["readinessProbe"]["httpGet"], yaml("{path: /v2/health/ready, port: 9000}"));
    assert_eq!(c["livenessProbe"]["httpGet"], yaml("{path: /v2/health/live, port: 9000}"));
    assert!(c["resources"]["requests"]["cpu"].is_string() && c["resources"]["limits"]["memory"].is_string());
    assert_eq!(c["securityContext"]["runAsNonRoot"], true);
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let ws = with_model("models/best");
    let unit = ws.path("gourd-best.service");
    let out = render(&ws, &["--target", "systemd", "models/best", "-o", unit.to_str().unwrap()]).success();
    assert_eq!(out.stdout, "");
    assert_eq!(out.stderr, format!("Wrote `{}`.\n", unit.display()));
    let (ok, printed) = verify(&unit);
    assert!(ok && !printed.contains("gourd-best.service"), "{printed}");
    let text = ws.read("gourd-best.service");
    let model = ws.root().canonicalize().unwrap().join("models/best");
    assert!(
        text.contains(&format!(
            "\nExecStart=\"{}\" serve \"{}\" --host 127.0.0.1 --port 8080 ",
            common::gourd_bin(),
            model.display()
        )),
        "{text}"
    );
    assert!(text.lines().any(|l| l == runs_as(false)), "{text}");
    for setting in [
        "Restart=on-failure",
        "KillSignal=SIGTERM",
        "KillMode=mixed",
        "TimeoutStopSec=40s",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "LogsDirectory=gourd-best",
    ] {
        assert!(text.lines().any(|l| l == setting), "{setting} is missing:\n{text}");
    }

    // A unit that systemd would not run fails the same check: the check can fail.
    ws.write("gourd-broken.service", &text.replace(common::gourd_bin(), "/nonexistent/gourd"));
    let (ok, printed) = verify(&ws.path("gourd-broken.service"));
    assert!(!ok && printed.contains("/nonexistent/gourd"), "{printed}");
}

/// Spaces, quotes, a backslash, `$`, `%` (systemd's specifiers), `;` and `#`.
const HOSTILE: &str = r#"it's a "model" $HOME %n \x;y #z"#;

#[test]
fn hostile_paths_are_quoted_in_every_format() {
    let ws = with_model(&format!("{HOSTILE}/best"));
    let model = format!("{HOSTILE}/best");

    // systemd: the model is one word of ExecStart, escaped for systemd.
    let unit = ws.path("gourd-best.service");
    render(&ws, &["--target", "systemd", &model, "-o", unit.to_str().unwrap()]).success();
    let (ok, printed) = verify(&unit);
    assert!(ok, "{printed}");
    let exec = ws.read("gourd-best.service").lines().find(|l| l.starts_with("ExecStart=")).unwrap().to_string();
    insta::assert_snapshot!(stable(&exec, &ws), @r#"ExecStart="[GOURD]" serve "[WS]/it's a \"model\" $$HOME %%n \\x;y #z/best" --host 127.0.0.1 --port 8080 --log-dir /var/log/gourd-best"#);

    // systemd checks the program's path after unquoting it: a gourd at a
    // path with spaces, `$`, `%` and `;` is found, so each was written as
    // systemd reads it.
    let program = ws.path("bin $HOME %n ;y/gourd");
    std::fs::create_dir_all(program.parent().unwrap()).unwrap();
    std::fs::write(&program, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&program, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    render(&ws, &["--target", "systemd", &model, "--gourd", program.to_str().unwrap(), "-o", unit.to_str().unwrap()])
        .success();
    let (ok, printed) = verify(&unit);
    assert!(ok && !printed.contains("gourd-best.service"), "{printed}");
    // A path systemd refuses for a program is refused before writing.
    let refused = render(&ws, &["--target", "systemd", &model, "--gourd", &format!("/opt/{HOSTILE}/gourd")]);
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains("holds a quote or a backslash"), "{}", refused.stderr);

    // YAML: the path comes back whole from the parsed file.
    let isvc = yaml(&render(&ws, &["--target", "kserve", &model]).success().stdout);
    assert_eq!(isvc["metadata"]["annotations"]["gourd.dev/model"], model.as_str());

    // Dockerfile: the path is only in comments; every instruction is the
    // same as for a plain path, and the build command in the comment gives
    // the shell the path back.
    let docker = render(&ws, &["--target", "docker", &model]).success().stdout;
    let plain_ws = with_model("plain/best");
    let plain = render(&plain_ws, &["--target", "docker", "plain/best"]).success().stdout;
    let instructions = |text: &str| text.lines().filter(|l| !l.starts_with('#')).map(String::from).collect::<Vec<_>>();
    assert_eq!(instructions(&docker), instructions(&plain));
    let build = docker.lines().find(|l| l.starts_with("#   docker build ")).unwrap();
    let context = build.strip_prefix("#   docker build -f Dockerfile -t best:latest ").unwrap();
    let echoed = Command::new("sh").arg("-c").arg(format!("printf %s {context}")).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&echoed.stdout), model);

    // A line break cannot be written into any of them: refused, named.
    let broken = "line\nExecStartPre=/bin/sh -c evil";
    ws.write(&format!("{broken}/best/model.json"), "{}");
    for target in ["docker", "kserve", "systemd"] {
        let out = render(&ws, &["--target", target, &format!("{broken}/best")]);
        assert_eq!((out.code, out.stdout.as_str()), (1, ""), "{target}: {}", out.stderr);
        assert!(out.stderr.contains(r#"line\nExecStartPre=/bin/sh -c evil"#), "{}", out.stderr);
    }
    // Nor a Unicode line separator, which YAML readers take for one.
    let separated = "u\u{2028}x";
    ws.write(&format!("{separated}/best/model.json"), "{}");
    for target in ["docker", "kserve", "systemd"] {
        let out = render(&ws, &["--target", target, &format!("{separated}/best")]);
        assert_eq!((out.code, out.stdout.as_str()), (1, ""), "{target}: {}", out.stderr);
    }
}

#[test]
fn what_cannot_be_rendered_is_an_error_naming_it() {
    let ws = with_model("models/best");
    // `-o` never writes into `.git` or `.gourd`, even through a link, nor
    // onto a folder.
    if !ws.exists(".git/config") {
        ws.write(".git/config", "[core]\n");
    }
    let config = ws.read(".git/config");
    std::os::unix::fs::symlink(".git", ws.path("g")).unwrap();
    for (target, why) in [
        (".git/config", "lies in `.git` or `.gourd`"),
        ("g/config", "lies in `.git` or `.gourd`"),
        ("models", "is a folder: name a file"),
    ] {
        let out = render(&ws, &["--target", "docker", "models/best", "-o", target]);
        assert_eq!(out.code, 1, "{target}: {}", out.stderr);
        assert!(out.stderr.contains(why), "{target}: {}", out.stderr);
    }
    assert_eq!(ws.read(".git/config"), config);
    // Nor into the model folder (the model, a stage's output); beside it is fine.
    let weights = std::fs::read(ws.path("models/best/model.json")).unwrap();
    let out = render(&ws, &["--target", "docker", "models/best", "-o", "models/best/model.json"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("lies in the model folder"), "{}", out.stderr);
    assert_eq!(std::fs::read(ws.path("models/best/model.json")).unwrap(), weights);
    let inside = render(&ws, &["--target", "docker", "models/best", "-o", "models/best/Dockerfile"]);
    assert_eq!(inside.code, 1, "{}", inside.stderr);
    assert!(!ws.exists("models/best/Dockerfile"));
    render(&ws, &["--target", "docker", "models/best", "-o", "models/Dockerfile"]).success();
    ws.write("models/empty/weights.bin", "");
    ws.write("models/Best_Model/model.json", "{}");
    let unknown = render(&ws, &["--target", "podman", "models/best"]);
    assert_eq!(unknown.code, 1);
    insta::assert_snapshot!(unknown.stderr, @r"
    error: invalid value 'podman' for '--target <TARGET>'
      [possible values: docker, kserve, systemd]

    For more information, try '--help'.
    ");
    let missing = render(&ws, &["--target", "docker", "models/nope"]);
    assert_eq!(missing.code, 1);
    insta::assert_snapshot!(missing.stderr, @r"
    error: `models/nope` does not exist

    hint: MODEL is a model folder (holding `model.json`) or a registry reference (`pumpkin@prod`)
    ");
    let not_a_model = render(&ws, &["--target", "kserve", "models/empty"]);
    assert_eq!(not_a_model.code, 1);
    insta::assert_snapshot!(not_a_model.stderr, @r"
    error: `models/empty` holds no `model.json`: it is not a model folder

    hint: a model folder is what the built-in `train` step writes (see docs/torch.md)
    ");
    let bad_name = render(&ws, &["--target", "kserve", "models/Best_Model"]);
    assert_eq!(bad_name.code, 1);
    insta::assert_snapshot!(bad_name.stderr, @r"
    error: the model's name `Best_Model` cannot name a service: a Kubernetes resource and a systemd unit need lower-case letters, digits and `-`, starting with a letter, at most 63 characters

    hint: pass `--name best-model`
    ");
    ws.write("models/broken/model.json", "{not json");
    let broken = render(&ws, &["--target", "docker", "models/broken"]);
    assert_eq!(broken.code, 1);
    assert!(broken.stderr.contains("model.json`: not JSON"), "{}", broken.stderr);
    let renamed = render(&ws, &["--target", "kserve", "models/Best_Model", "--name", "best-model"]).success();
    assert_eq!(yaml(&renamed.stdout)["metadata"]["name"], "best-model");
    let bad_flag = render(&ws, &["--target", "systemd", "models/best", "--name", "x; rm -rf /"]);
    assert_eq!(bad_flag.code, 1);
    assert!(bad_flag.stderr.contains("--name `x; rm -rf /` cannot name a service"), "{}", bad_flag.stderr);
    let relative = render(&ws, &["--target", "systemd", "models/best", "--gourd", "bin/gourd"]);
    assert_eq!(relative.code, 1);
    assert!(relative.stderr.contains("`--gourd bin/gourd` is not an absolute path"), "{}", relative.stderr);
    let not_a_repo = render(&ws, &["--target", "docker", "pumpkin@prod"]);
    assert_eq!(not_a_repo.code, 1);
    assert!(not_a_repo.stderr.contains("is not in a git repository"), "{}", not_a_repo.stderr);
}

/// A repository whose registry holds `pumpkin` v0.0.1 (the folder
/// `models/best`) in `prod`, and `weights` (a file).
fn registry() -> TestWorkspace {
    let ws = TestWorkspace::new(
        r#"{
  stages = {
    train = {
      cmd = "mkdir -p models/best && cat seed.txt > models/best/model.json && cat seed.txt > weights.bin",
      deps = ["seed.txt"],
      outs = [{ path = "models/best", kind = 'model }, { path = "weights.bin", kind = 'model }],
    },
  },
}
"#,
    );
    ws.write(".gitignore", ".gourd/\nmodels/\nweights.bin\n");
    ws.write("seed.txt", "{}");
    ws.git(&["add", "-A"]);
    ws.git(&["commit", "-q", "-m", "model"]);
    ws.gourd(&["run"]).success();
    ws.gourd(&["registry", "register", "pumpkin", "models/best"]).success();
    ws.gourd(&["registry", "promote", "pumpkin", "v0.0.1", "prod"]).success();
    ws.gourd(&["registry", "register", "weights", "weights.bin"]).success();
    ws
}

#[test]
fn a_registry_reference_is_served_by_its_name_and_pinned_in_images() {
    let ws = registry();
    // systemd follows the stage: it serves the reference, in the repository.
    let unit = ws.path("gourd-pumpkin.service");
    render(&ws, &["--target", "systemd", "pumpkin@prod", "-o", unit.to_str().unwrap()]).success();
    let (ok, printed) = verify(&unit);
    assert!(ok && !printed.contains("gourd-pumpkin.service"), "{printed}");
    let text = ws.read("gourd-pumpkin.service");
    let root = ws.root().canonicalize().unwrap();
    assert!(text.contains(&format!("\nWorkingDirectory={}\n", root.display())), "{text}");
    assert!(text.lines().any(|l| l == runs_as(true)), "{text}");
    let writable = root.join(".gourd");
    assert!(text.contains(&format!("\nReadWritePaths=\"{}\"\n", writable.display())), "{text}");
    assert!(text.contains(" serve \"pumpkin@prod\" --host 127.0.0.1 --port 8080 "), "{text}");

    // An image holds one version: the one the stage held when rendered.
    let docker = render(&ws, &["--target", "docker", "pumpkin@prod"]).success().stdout;
    assert!(docker.contains("#   gourd registry get pumpkin@v0.0.1 -o build\n"), "{docker}");
    assert!(docker.contains("#   docker build -f Dockerfile -t pumpkin:v0.0.1 build/best\n"), "{docker}");
    assert!(docker.contains("\nCOPY . /models/pumpkin\n"), "{docker}");
    assert!(docker.contains(r#"dev.gourd.model.reference="pumpkin@v0.0.1""#), "{docker}");
    let isvc = yaml(&render(&ws, &["--target", "kserve", "pumpkin@prod"]).success().stdout);
    assert_eq!(isvc["metadata"]["name"], "pumpkin");
    assert_eq!(isvc["spec"]["predictor"]["containers"][0]["image"], "pumpkin:v0.0.1");
    let annotations = &isvc["metadata"]["annotations"];
    assert_eq!(annotations["gourd.dev/model"], "pumpkin@prod");
    assert_eq!(annotations["gourd.dev/model-version"], "pumpkin@v0.0.1");
    assert_eq!(annotations["gourd.dev/model-digest"].as_str().unwrap().len(), 64);

    let staging = render(&ws, &["--target", "docker", "pumpkin@staging"]);
    assert_eq!(staging.code, 1);
    insta::assert_snapshot!(staging.stderr, @r"
    error: `staging` held no version of pumpkin

    hint: stages holding a version: prod
    ");
    let file = render(&ws, &["--target", "docker", "weights@latest"]);
    assert_eq!(file.code, 1);
    insta::assert_snapshot!(file.stderr, @r"
    error: weights@v0.0.1 is the file `weights.bin`, not a model folder

    hint: `gourd serve` serves a folder holding `model.json`, as the built-in `train` step writes
    ");
}
