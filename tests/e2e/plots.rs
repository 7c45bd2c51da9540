//! `gourd plots show` and `gourd plots diff` as users see them: every plot
//! kind drawn from JSON, CSV and TSV as SVG that parses as XML, with as many
//! points, bars and cells as the data holds; errors that name the file and
//! the field; revisions side by side; hostile data escaped.

mod common;

use common::TestWorkspace;
use quick_xml::events::Event;

/// The page's sections: (heading, body).
fn sections(html: &str) -> Vec<(String, String)> {
    html.split("<section class=\"plot\"><h2>")
        .skip(1)
        .map(|s| {
            let (heading, rest) = s.split_once("</h2>").unwrap();
            (heading.to_string(), rest.split("</section>").next().unwrap().to_string())
        })
        .collect()
}

/// Parses every `<svg>` of `body` as XML and counts the elements of each
/// class (`point`, `bar`, `cell`, `line`, `legend`), and the text drawn.
fn parse(body: &str) -> (std::collections::BTreeMap<String, usize>, Vec<String>) {
    let mut counts = std::collections::BTreeMap::new();
    let mut texts = Vec::new();
    let mut rest = body;
    let mut svgs = 0;
    while let Some(start) = rest.find("<svg") {
        let end = rest[start..].find("</svg>").expect("a closed svg") + start + "</svg>".len();
        let mut reader = quick_xml::Reader::from_str(&rest[start..end]);
        reader.config_mut().check_end_names = true;
        let mut text = String::new();
        loop {
            let event = reader.read_event().unwrap_or_else(|e| panic!("not XML: {e}\n{}", &rest[start..end]));
            if matches!(event, Event::Start(_) | Event::Empty(_) | Event::End(_) | Event::Eof) && !text.is_empty() {
                texts.push(std::mem::take(&mut text));
            }
            match event {
                Event::Start(tag) | Event::Empty(tag) => {
                    if let Some(class) = tag.try_get_attribute("class").unwrap() {
                        for word in String::from_utf8_lossy(&class.value).split(' ') {
                            *counts.entry(word.to_string()).or_insert(0) += 1;
                        }
                    }
                }
                Event::Text(t) => text.push_str(&t.decode().unwrap()),
                Event::GeneralRef(r) => text.push_str(match &*r.decode().unwrap() {
                    "lt" => "<",
                    "gt" => ">",
                    "amp" => "&",
                    "quot" => "\"",
                    "#39" => "'",
                    other => panic!("unknown entity {other}"),
                }),
                Event::Eof => break,
                _ => {}
            }
        }
        svgs += 1;
        rest = &rest[end..];
    }
    counts.insert("svg".to_string(), svgs);
    (counts, texts)
}

fn count(counts: &std::collections::BTreeMap<String, usize>, class: &str) -> usize {
    counts.get(class).copied().unwrap_or(0)
}

const KINDS: &str = r#"{
  stages = {
    eval = {
      cmd = m%"
        printf 'fpr,tpr\n0,0\n0.1,0.6\n0.4,0.8\n1,1\n' > roc.csv
        printf 'recall\tprecision\n1\t0.5\n0.8\t0.7\n0.5\t0.9\n' > prc.tsv
        printf '{"epochs": [{"epoch": 1, "loss": 0.9, "acc": 0.5}, {"epoch": 2, "loss": 0.6, "acc": 0.7}, {"epoch": 3, "loss": 0.4, "acc": 0.8}], "final": 0.4}' > curves.json
        printf '[{"actual": "cat", "predicted": "cat"}, {"actual": "cat", "predicted": "dog"}, {"actual": "dog", "predicted": "dog"}, {"actual": "bird", "predicted": "dog"}]' > cm.json
        printf 'feature,importance\nage,0.5\nsize,0.3\ncolour,0.2\n' > importance.csv
        printf '\211PNG\r\n\032\n' > confusion.png
      "%,
      plots = [
        { path = "roc.csv", x = "fpr", y = "tpr", title = "ROC", x_label = "false positive rate", y_label = "true positive rate" },
        { "prc.tsv" = { x = "recall", y = "precision", template = "scatter" } },
        { path = "curves.json", x = "epoch", y = ["loss", "acc"], template = "simple" },
        { path = "cm.json", x = "actual", y = "predicted", template = "confusion" },
        { path = "importance.csv", x = "importance", y = "feature", template = "bar_horizontal" },
        "confusion.png",
      ],
    },
  },
  plots = {
    normalized = { x = "actual", y = { "cm.json" = "predicted" }, template = "confusion_normalized" },
    smoothed = { x = "epoch", y = { "curves.json" = "loss" }, template = "smooth" },
    "importance.csv" = { x = "importance", y = "feature", template = "bar_horizontal_sorted" },
  },
}
"#;

#[test]
fn each_kind_is_drawn_from_json_csv_and_tsv() {
    let ws = TestWorkspace::new(KINDS);
    ws.gourd(&["run"]).success();
    let out = ws.gourd(&["plots", "show", "-o", "page.html"]).success();
    assert_eq!(out.stdout.trim(), ws.path("page.html").to_str().unwrap());
    // Never into `.git` or over the pipeline file.
    let (config, pipeline) = (ws.read(".git/config"), ws.read("gourd.ncl"));
    for (target, said) in
        [(".git/config", "lies in `.git` or `.gourd`"), ("gourd.ncl", "would replace a pipeline file")]
    {
        let refused = ws.gourd(&["plots", "show", "-o", target]);
        assert_eq!(refused.code, 1, "{target}: {}", refused.stderr);
        assert!(refused.stderr.contains(said), "{target}: {}", refused.stderr);
    }
    assert_eq!((ws.read(".git/config"), ws.read("gourd.ncl")), (config, pipeline));
    let html = ws.read("page.html");
    assert!(!html.contains("<script"), "no JavaScript");
    let drawn = sections(&html);
    let headings: Vec<&str> = drawn.iter().map(|(h, _)| h.as_str()).collect();
    assert_eq!(
        headings,
        [
            "ROC (stage eval)",
            "prc.tsv (stage eval)",
            "curves.json (stage eval)",
            "cm.json (stage eval)",
            "importance.csv (stage eval)",
            "confusion.png (stage eval)",
            "importance.csv",
            "normalized",
            "smoothed",
        ]
    );
    let parsed: Vec<_> = drawn.iter().map(|(_, body)| parse(body)).collect();
    // linear: a line through 4 points, with the labels given.
    let (roc, texts) = &parsed[0];
    assert_eq!((count(roc, "point"), count(roc, "line")), (4, 1));
    assert!(texts.iter().any(|t| t == "false positive rate") && texts.iter().any(|t| t == "true positive rate"));
    // scatter (TSV): points, no line.
    assert_eq!((count(&parsed[1].0, "point"), count(&parsed[1].0, "line")), (3, 0));
    // simple (a record holding one array): two lines, no points, a legend each.
    assert_eq!((count(&parsed[2].0, "line"), count(&parsed[2].0, "point"), count(&parsed[2].0, "legend")), (2, 0, 2));
    // confusion: 3 classes → 9 cells, with the counts written in them.
    let (cm, texts) = &parsed[3];
    assert_eq!(count(cm, "cell"), 9);
    assert!(texts.iter().any(|t| t == "bird"));
    // bars: one per row.
    assert_eq!(count(&parsed[4].0, "bar"), 3);
    // an image, inline as a data URI.
    assert!(drawn[5].1.contains("src=\"data:image/png;base64,"), "{}", drawn[5].1);
    // sorted bars: largest first.
    let (sorted, texts) = &parsed[6];
    assert_eq!(count(sorted, "bar"), 3);
    let order: Vec<&String> = texts.iter().filter(|t| ["age", "size", "colour"].contains(&t.as_str())).collect();
    assert_eq!(order, ["age", "size", "colour"]);
    // normalized confusion: rows sum to 1.
    let (normalized, texts) = &parsed[7];
    assert_eq!(count(normalized, "cell"), 9);
    assert!(texts.iter().any(|t| t == "0.50"), "{texts:?}");
    // smooth: the raw line and the smoothed one.
    assert_eq!((count(&parsed[8].0, "raw"), count(&parsed[8].0, "line")), (1, 1));

    // Targets choose plots: by id, by data file, by stage.
    ws.gourd(&["plots", "show", "normalized", "-o", "one.html"]).success();
    assert_eq!(sections(&ws.read("one.html")).len(), 1);
    ws.gourd(&["plots", "show", "eval"]).success();
    assert_eq!(sections(&ws.read(".gourd/plots/index.html")).len(), 6);
    let unknown = ws.gourd(&["plots", "show", "nope"]);
    assert_eq!(unknown.code, 1);
    assert!(
        unknown.stderr.contains("no plot `nope`, and no such file") && unknown.stderr.contains("`normalized`"),
        "{}",
        unknown.stderr
    );

    // A file no plot names is drawn on its own, every numeric field over the row's index.
    ws.write("extra.tsv", "name\tloss\tacc\na\t0.5\t0.6\nb\t0.4\t0.7\n");
    ws.gourd(&["plots", "show", "extra.tsv", "-o", "extra.html"]).success();
    let drawn = sections(&ws.read("extra.html"));
    assert_eq!(drawn.len(), 1);
    let (counts, texts) = parse(&drawn[0].1);
    assert_eq!((count(&counts, "line"), count(&counts, "point")), (2, 4));
    assert!(texts.iter().any(|t| t == "step") && texts.iter().any(|t| t == "acc"), "{texts:?}");
}

/// A stage's plot files are its outputs: cached, restored, and ignored by git.
#[test]
fn a_stages_plot_files_are_its_outputs() {
    let ws = TestWorkspace::new(KINDS);
    ws.gourd(&["run"]).success();
    assert!(ws.read(".gitignore").contains("/roc.csv"), "{}", ws.read(".gitignore"));
    ws.remove("roc.csv");
    let run = ws.run_json(&[]).success();
    assert_eq!(run.statuses()["eval"], "restored", "{}", run.stdout);
    assert!(ws.read("roc.csv").starts_with("fpr,tpr"));
}

fn refused(ws: &TestWorkspace, args: &[&str]) -> String {
    let out = ws.gourd(args);
    assert_eq!(out.code, 1, "{args:?}\n{}\n{}", out.stdout, out.stderr);
    out.stderr
}

#[test]
fn bad_input_names_the_file_and_the_field() {
    let pipeline = |plots: &str| format!("{{ stages = {{}}, plots = {{ {plots} }} }}\n");
    let ws = TestWorkspace::new(&pipeline(r#""roc.csv" = { x = "fpr", y = "tpr" }"#));
    ws.write("roc.csv", "fpr,tpr\n0,0\n0.5,high\n");
    let err = refused(&ws, &["plots", "show"]);
    assert!(err.contains("plot `roc.csv`: field `y`: `roc.csv` row 2: `high` in `tpr` is not a number"), "{err}");

    ws.write("gourd.ncl", &pipeline(r#""roc.csv" = { x = "fpr", y = "recall" }"#));
    let err = refused(&ws, &["plots", "show"]);
    assert!(err.contains("field `y`: `roc.csv` has no field `recall` (its fields: `fpr`, `tpr`)"), "{err}");

    ws.write(
        "gourd.ncl",
        "{\n  stages = {},\n  plots = {\n    \"roc.csv\" = { x = \"fpr\", template = \"pie\" },\n  },\n}\n",
    );
    let err = refused(&ws, &["plots", "show"]);
    assert!(err.contains("field `template`: unknown template `pie`") && err.contains("confusion_normalized"), "{err}");
    assert!(err.contains("gourd.ncl:4"), "the line: {err}");

    ws.write("gourd.ncl", &pipeline(r#""missing.json" = { x = "a" }"#));
    let err = refused(&ws, &["plots", "show"]);
    assert!(err.contains("plot `missing.json`: `missing.json` does not exist"), "{err}");

    ws.write("gourd.ncl", &pipeline(r#"cm = { template = "confusion", y = { "roc.csv" = "tpr" } }"#));
    let err = refused(&ws, &["plots", "show"]);
    assert!(err.contains("plot `cm`: the `confusion` template needs both `x` and `y`"), "{err}");

    ws.write("gourd.ncl", &pipeline(r#""roc.csv" = { colour = "red" }"#));
    let err = refused(&ws, &["check"]);
    assert!(err.contains("plot `roc.csv`: unknown field `colour`"), "{err}");

    ws.write("broken.json", "{\"a\": ");
    ws.write("gourd.ncl", &pipeline(r#""broken.json" = {}"#));
    let err = refused(&ws, &["plots", "show"]);
    assert!(err.contains("`broken.json`: not JSON (plots read JSON, YAML, CSV and TSV)"), "{err}");

    ws.write("gourd.ncl", "{ stages = {} }\n");
    let err = refused(&ws, &["plots", "show"]);
    assert!(err.contains("the pipeline declares no plots"), "{err}");

    // YAML, as DVC reads it.
    ws.write("points.yaml", "points:\n  - {step: 1, loss: 0.5}\n  - {step: 2, loss: 0.25}\n");
    ws.write("gourd.ncl", &pipeline(r#""points.yaml" = { x = "step" }"#));
    ws.gourd(&["plots", "show"]).success();
    let (counts, _) = parse(&sections(&ws.read(".gourd/plots/index.html"))[0].1);
    assert_eq!(count(&counts, "point"), 2);

    // A stage's plots are checked where the stage is.
    ws.write("gourd.ncl", "{ stages = { s = { cmd = \"true\", plots = [{ path = \"a.csv\", y = 3 }] } } }\n");
    let err = refused(&ws, &["check"]);
    assert!(err.contains("stage `s`: field `plots`: plot `a.csv`: field `y`"), "{err}");
    assert!(refused(&ws, &["plots", "show"]).contains("field `plots`"));
}

/// A per-step loss log of 300,000 rows draws what shows (a few thousand
/// points), not 300,000 marks; values whose span no float holds are refused
/// by name rather than drawn as `NaN`.
#[test]
fn long_series_are_thinned_and_spans_past_a_float_are_refused() {
    let ws = TestWorkspace::new("{ stages = {} }\n");
    let mut log = String::from("step,loss\n");
    for step in 0..300_000u32 {
        log.push_str(&format!("{step},{}\n", 1.0 / f64::from(step + 1) + f64::from(step % 7) * 0.01));
    }
    ws.write("loss.csv", &log);
    ws.write(
        "gourd.ncl",
        "{ stages = {}, plots = { \"loss.csv\" = { x = \"step\", y = \"loss\", template = \"smooth\" } } }\n",
    );
    ws.gourd(&["plots", "show", "-o", "loss.html"]).success();
    let page = ws.read("loss.html");
    assert!(page.len() < 2_000_000, "{} bytes", page.len());
    let (counts, _) = parse(&sections(&page)[0].1);
    assert_eq!(count(&counts, "line"), 1, "{counts:?}");
    ws.write("wide.csv", "x,y\n1,1\n4,1e308\n5,-1e308\n");
    let err = refused(&ws, &["plots", "show", "wide.csv", "-o", "wide.html"]);
    assert!(err.contains("field `y`: the values run from"), "{err}");
    assert!(err.contains("a span wider than a float holds"), "{err}");
}

/// A stage writing `roc.csv` with `tpr` at 0.5, and `remote` in front.
fn roc_pipeline(tpr: &str, remote: &str) -> String {
    format!(
        "{{ {remote} stages = {{ eval = {{ cmd = \"printf 'fpr,tpr\\\\n0,0\\\\n0.5,{tpr}\\\\n1,1\\\\n' > roc.csv\", plots = [{{ path = \"roc.csv\", x = \"fpr\", y = \"tpr\" }}] }} }} }}\n"
    )
}

#[test]
fn diff_draws_both_revisions_from_the_cache() {
    let pipeline = |tpr: &str| roc_pipeline(tpr, "");
    let ws = TestWorkspace::new(&pipeline("0.6"));
    ws.git(&["add", "-A"]);
    ws.git(&["commit", "-qm", "first"]);
    ws.gourd(&["run"]).success();
    assert_eq!(ws.read("roc.csv"), "fpr,tpr\n0,0\n0.5,0.6\n1,1\n");
    ws.git(&["commit", "-qam", "first run"]);
    ws.write("gourd.ncl", &pipeline("0.9"));
    ws.gourd(&["run"]).success();
    ws.git(&["commit", "-qam", "second"]);

    ws.gourd(&["plots", "diff", "HEAD~1", "HEAD", "-o", "diff.html"]).success();
    let html = ws.read("diff.html");
    let drawn = sections(&html);
    assert_eq!(drawn.len(), 1);
    let (counts, texts) = parse(&drawn[0].1);
    assert_eq!(count(&counts, "point"), 6, "three points on each side");
    assert!(texts.iter().any(|t| t == "HEAD~1: tpr") && texts.iter().any(|t| t == "HEAD: tpr"), "{texts:?}");
    assert!(
        texts.iter().any(|t| t.contains("(0.5, 0.6)")) && texts.iter().any(|t| t.contains("(0.5, 0.9)")),
        "{texts:?}"
    );

    ws.gourd(&["plots", "diff", "HEAD~1", "--targets", "roc.csv", "eval", "-o", "targets.html"]).success();
    let (counts, texts) = parse(&sections(&ws.read("targets.html"))[0].1);
    assert_eq!(count(&counts, "point"), 6, "HEAD~1 and the working state");
    assert!(texts.iter().any(|t| t == "workspace: tpr"), "{texts:?}");

    // A side without the plot (a plot new since) is left out, and said.
    ws.write("gourd.ncl", &pipeline("0.9").replace("roc.csv", "curve.csv"));
    ws.gourd(&["run"]).success();
    let new = ws.gourd(&["plots", "diff", "HEAD", "-o", "new.html"]).success();
    assert!(new.stderr.contains("note: plot `curve.csv`: `curve.csv`"), "{}", new.stderr);
    assert!(new.stderr.contains("(at HEAD); drawn without that side"), "{}", new.stderr);
    let (counts, _) = parse(&sections(&ws.read("new.html"))[0].1);
    assert_eq!(count(&counts, "point"), 3, "the working state only");
    ws.write("gourd.ncl", &pipeline("0.9"));

    // A revision whose output is not in the cache says so.
    std::fs::remove_dir_all(ws.path(".gourd/cache-v1/objects")).unwrap();
    std::fs::create_dir_all(ws.path(".gourd/cache-v1/objects")).unwrap();
    let err = refused(&ws, &["plots", "diff", "HEAD~1", "HEAD"]);
    assert!(err.contains("plot `roc.csv`: `roc.csv` is not in the cache"), "{err}");
}

#[test]
fn hostile_data_is_escaped() {
    let ws = TestWorkspace::new(
        r#"{ stages = {}, plots = { "evil.csv" = { x = "n", y = "name", template = "bar_horizontal", title = "<b>t</b>" }, "evil.json" = { x = "a", y = "p", template = "confusion" } } }
"#,
    );
    ws.write("evil.csv", "name,n\n</svg><script>alert(1)</script>,1\n\"a&b\",2\n");
    ws.write("evil.json", r#"[{"a": "</svg><script>", "p": "<img src=x onerror=alert(1)>"}]"#);
    ws.gourd(&["plots", "show", "-o", "evil.html"]).success();
    let html = ws.read("evil.html");
    assert!(!html.contains("<script") && !html.contains("<img") && !html.contains("<b>"), "{html}");
    assert!(html.contains("&lt;/svg&gt;&lt;script&gt;"));
    for (_, body) in sections(&html) {
        let (counts, _) = parse(&body);
        assert!(count(&counts, "bar") + count(&counts, "cell") > 0);
    }
}

/// The built-in train step's curves are a plot of that stage, with no
/// `plots` written (no libtorch needed: the curves file is written here).
#[test]
fn the_train_steps_curves_are_plotted() {
    let ws = TestWorkspace::new(
        r#"let gourd = import "gourd-std.ncl" in
{ stages = { train = gourd.steps.train { dataset = "data.pt", output = "model", curves = "curves.json", epochs = 2, layers = [] } } }
"#,
    );
    let err = refused(&ws, &["plots", "show"]);
    assert!(err.contains("`curves.json` does not exist"), "{err}");
    ws.write(
        "curves.json",
        r#"{"epochs": [{"epoch": 1, "loss": 1.2, "accuracy": 0.4}, {"epoch": 2, "loss": 0.7, "accuracy": 0.6}], "final_loss": 0.7, "final_train_accuracy": 0.6}"#,
    );
    ws.gourd(&["plots", "show"]).success();
    let drawn = sections(&ws.read(".gourd/plots/index.html"));
    assert_eq!(drawn.len(), 1);
    assert_eq!(drawn[0].0, "Training curves (stage train)");
    let (counts, texts) = parse(&drawn[0].1);
    assert_eq!((count(&counts, "line"), count(&counts, "point")), (2, 4));
    assert!(texts.iter().any(|t| t == "loss") && texts.iter().any(|t| t == "accuracy"), "{texts:?}");
}

/// The report embeds the pipeline's plots; one that cannot be drawn says why
/// and the report still renders.
#[test]
fn the_report_embeds_the_plots() {
    let ws = TestWorkspace::new(KINDS);
    ws.git(&["add", "-A"]);
    ws.git(&["commit", "-qm", "pipeline"]);
    ws.gourd(&["report", "-o", "before.html"]).success();
    let html = ws.read("before.html");
    assert!(html.contains("<h2>Plots</h2>") && html.contains("`roc.csv` does not exist"), "{html}");
    ws.gourd(&["run"]).success();
    ws.gourd(&["report", "-o", "report.html"]).success();
    let html = ws.read("report.html");
    let start = html.find("<div id=\"pipeline-plots\">").expect("the plots section");
    let section = &html[start..];
    let (counts, _) = parse(section);
    assert_eq!(count(&counts, "cell"), 18, "both confusion matrices");
    assert_eq!(count(&counts, "bar"), 6, "both bar charts");
    assert!(section.contains("src=\"data:image/png;base64,"));
}

/// `--open` hands the page to the desktop's opener (`xdg-open`).
#[test]
fn open_hands_the_page_to_the_opener() {
    let ws = TestWorkspace::new("{ stages = {}, plots = [\"roc.csv\"] }\n");
    ws.write("roc.csv", "fpr,tpr\n0,0\n1,1\n");
    ws.write("bin/xdg-open", "#!/bin/sh\necho \"$1\" > opened\n");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(ws.path("bin/xdg-open"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", ws.path("bin").display(), std::env::var("PATH").unwrap_or_default());
    let out = ws.gourd_env(&["plots", "show", "--open"], &[("PATH", &path)]).success();
    let page = ws.path(".gourd/plots/index.html");
    assert_eq!(out.stdout.trim(), page.to_str().unwrap());
    common::wait_until("the opener got the page", || {
        std::fs::read_to_string(ws.path("opened")).is_ok_and(|opened| opened.trim() == page.to_str().unwrap())
    });
}

/// On a fresh clone, the outputs of both revisions come from the remote cache.
#[test]
fn diff_on_a_fresh_clone_fetches_from_the_remote_cache() {
    let shared = tempfile::tempdir().unwrap();
    let remote = format!("remote = {{ kind = 'folder, path = \"{}\" }},", shared.path().display());
    let origin = TestWorkspace::new(&roc_pipeline("0.6", &remote));
    origin.git(&["add", "-A"]);
    origin.git(&["commit", "-qm", "first"]);
    origin.gourd(&["run"]).success();
    origin.git(&["commit", "-qam", "first run"]);
    origin.write("gourd.ncl", &roc_pipeline("0.9", &remote));
    origin.gourd(&["run"]).success();
    origin.git(&["commit", "-qam", "second"]);

    let clone = TestWorkspace::clone_of(origin.root());
    clone.gourd(&["pull"]).success();
    assert!(!clone.exists("roc.csv"));
    clone.gourd(&["plots", "diff", "HEAD~1", "HEAD", "-o", "diff.html"]).success();
    let (counts, texts) = parse(&sections(&clone.read("diff.html"))[0].1);
    assert_eq!(count(&counts, "point"), 6);
    assert!(
        texts.iter().any(|t| t.contains("(0.5, 0.6)")) && texts.iter().any(|t| t.contains("(0.5, 0.9)")),
        "{texts:?}"
    );

    // Without the remote's objects, the clone says what is missing.
    let bare = TestWorkspace::clone_of(origin.root());
    bare.gourd(&["pull"]).success();
    std::fs::remove_dir_all(shared.path().join("cas")).unwrap();
    std::fs::remove_dir_all(bare.path(".gourd/cache-v1/objects")).unwrap();
    std::fs::create_dir_all(bare.path(".gourd/cache-v1/objects")).unwrap();
    let err = refused(&bare, &["plots", "diff", "HEAD~1", "HEAD"]);
    assert!(err.contains("`roc.csv` is not in the cache, and fetching it from folder"), "{err}");
}
