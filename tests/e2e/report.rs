//! `gourd report` as users see it: the graph drawn so that no edge passes
//! under a box, and metrics tables that show scalars, exact numbers and
//! changes coloured by whether the metric should rise or fall.

mod common;

use std::collections::BTreeMap;

use common::TestWorkspace;

/// A box of the DAG picture: x, y, width, height.
type Rect = (f64, f64, f64, f64);

fn attribute(tag: &str, name: &str) -> String {
    let start = tag.find(&format!(" {name}=\"")).unwrap_or_else(|| panic!("no {name} in {tag}")) + name.len() + 3;
    tag[start..].split('"').next().unwrap().to_string()
}

/// The boxes of the DAG by stage name, and the edges as (from, to, points
/// along the drawn path).
#[allow(clippy::type_complexity)]
fn picture(html: &str) -> (BTreeMap<String, Rect>, Vec<(String, String, Vec<(f64, f64)>)>) {
    let start = html.find(r#"<svg xmlns="http://www.w3.org/2000/svg" id="dag-svg""#).expect("the DAG");
    let svg = &html[start..start + html[start..].find("</svg>").unwrap()];
    let number = |text: &str| -> f64 { text.parse().unwrap_or_else(|_| panic!("not a number: {text}")) };
    let boxes = svg
        .split("<g class=\"node ")
        .skip(1)
        .map(|node| {
            let name = node.split("<title>").nth(1).unwrap().split(": ").next().unwrap().to_string();
            let rect = node.split("<rect").nth(1).unwrap().split("/>").next().unwrap();
            let get = |a: &str| number(&attribute(rect, a));
            (name, (get("x"), get("y"), get("width"), get("height")))
        })
        .collect();
    let edges = svg
        .split("<path class=\"edge\"")
        .skip(1)
        .map(|edge| {
            let tag = edge.split("/>").next().unwrap();
            let d = attribute(tag, "d");
            let tokens: Vec<&str> = d.split([' ', ',']).filter(|t| !t.is_empty()).collect();
            // M x y, then L x y or C x1 y1 x2 y2 x y; curves sampled finely.
            let mut points = Vec::new();
            let mut i = 0;
            while i < tokens.len() {
                let at = |k: usize| number(tokens[i + k]);
                match tokens[i] {
                    "M" | "L" => {
                        points.push((at(1), at(2)));
                        i += 3;
                    }
                    "C" => {
                        let p0 = *points.last().expect("a curve after a point");
                        let (p1, p2, p3) = ((at(1), at(2)), (at(3), at(4)), (at(5), at(6)));
                        for step in 1..=64 {
                            let t = step as f64 / 64.0;
                            let u = 1.0 - t;
                            let mix = |a: f64, b: f64, c: f64, d: f64| {
                                u * u * u * a + 3.0 * u * u * t * b + 3.0 * u * t * t * c + t * t * t * d
                            };
                            points.push((mix(p0.0, p1.0, p2.0, p3.0), mix(p0.1, p1.1, p2.1, p3.1)));
                        }
                        i += 7;
                    }
                    other => panic!("unexpected path command {other} in {d}"),
                }
            }
            (attribute(tag, "data-from"), attribute(tag, "data-to"), points)
        })
        .collect();
    (boxes, edges)
}

/// Whether the segment p–q passes through the inside of `r`
/// (Liang–Barsky clipping against the box shrunk by half a pixel).
fn crosses(p: (f64, f64), q: (f64, f64), r: Rect) -> bool {
    let (x0, y0, x1, y1) = (r.0 + 0.5, r.1 + 0.5, r.0 + r.2 - 0.5, r.1 + r.3 - 0.5);
    let (dx, dy) = (q.0 - p.0, q.1 - p.1);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (step, distance) in [(-dx, p.0 - x0), (dx, x1 - p.0), (-dy, p.1 - y0), (dy, y1 - p.1)] {
        if step == 0.0 {
            if distance < 0.0 {
                return false;
            }
        } else {
            let t = distance / step;
            if step < 0.0 {
                t0 = t0.max(t);
            } else {
                t1 = t1.min(t);
            }
        }
    }
    t0 < t1
}

/// Checks that every edge leaves its source's right side, reaches its
/// target's left side, and crosses no other box.
fn assert_no_edge_under_a_box(html: &str) -> BTreeMap<String, Rect> {
    let (boxes, edges) = picture(html);
    assert!(!edges.is_empty());
    for (from, to, points) in &edges {
        let (a, b) = (boxes[from], boxes[to]);
        let (first, last) = (points[0], *points.last().unwrap());
        assert_eq!(first.0, a.0 + a.2, "{from} → {to} leaves {from}'s right side");
        assert!(first.1 > a.1 && first.1 < a.1 + a.3);
        assert_eq!(last.0, b.0, "{from} → {to} reaches {to}'s left side");
        assert!(last.1 > b.1 && last.1 < b.1 + b.3);
        for (name, rect) in &boxes {
            if name == from || name == to {
                continue;
            }
            for pair in points.windows(2) {
                assert!(!crosses(pair[0], pair[1], *rect), "{from} → {to} passes under {name}: {pair:?} {rect:?}");
            }
        }
    }
    boxes
}

#[test]
fn the_checker_sees_an_edge_under_a_box() {
    // The check itself must be able to fail: a straight edge drawn over a
    // box in the middle.
    let html = r#"<svg xmlns="http://www.w3.org/2000/svg" id="dag-svg"><path class="edge" data-from="a" data-to="c" d="M 50 15 L 200 15"/><g class="node fresh"><title>a: fresh</title><rect x="0" y="0" width="50" height="30" rx="6"/></g><g class="node fresh"><title>b: fresh</title><rect x="100" y="0" width="50" height="30" rx="6"/></g><g class="node fresh"><title>c: fresh</title><rect x="200" y="0" width="50" height="30" rx="6"/></g></svg>"#;
    let caught = std::panic::catch_unwind(|| assert_no_edge_under_a_box(html));
    let message = caught.unwrap_err();
    let message = message.downcast_ref::<String>().unwrap();
    assert!(message.contains("a → c passes under b"), "{message}");
}

#[test]
fn edges_that_skip_layers_go_around_the_boxes() {
    // A diamond (split → left, right → join) with shortcuts that skip one
    // and two layers, and a second chain beside it.
    let ws = TestWorkspace::new(
        r#"{ stages = {
          split = { cmd = "echo s > s.txt", outs = ["s.txt"] },
          left = { cmd = "cat s.txt > l.txt", deps = ["s.txt"], outs = ["l.txt"] },
          right = { cmd = "cat s.txt > r.txt", deps = ["s.txt"], outs = ["r.txt"] },
          join = { cmd = "cat l.txt r.txt s.txt > j.txt", deps = ["l.txt", "r.txt", "s.txt"], outs = ["j.txt"] },
          publish = { cmd = "cat j.txt s.txt l.txt > p.txt", deps = ["j.txt", "s.txt", "l.txt"], outs = ["p.txt"] },
          other = { cmd = "echo o > o.txt", outs = ["o.txt"] },
          other_next = { cmd = "cat o.txt r.txt > on.txt", deps = ["o.txt", "r.txt"], outs = ["on.txt"] },
          last = { cmd = "cat on.txt s.txt > last.txt", deps = ["on.txt", "s.txt"], outs = ["last.txt"] },
        } }"#,
    );
    ws.gourd(&["report", "-o", "report.html"]).success();
    let html = ws.read("report.html");
    let boxes = assert_no_edge_under_a_box(&html);
    assert_eq!(boxes.len(), 8);
    assert_eq!(html.matches(r#"<path class="edge""#).count(), 12);
    let (split, left, join, publish) = (boxes["split"], boxes["left"], boxes["join"], boxes["publish"]);
    assert!(split.0 < left.0 && left.0 < join.0 && join.0 < publish.0, "one column per layer: {boxes:?}");
}

#[test]
fn a_diamond_looks_like_a_diamond() {
    let ws = TestWorkspace::new(
        r#"{ stages = {
          split = { cmd = "echo s > s.txt", outs = ["s.txt"] },
          left = { cmd = "cat s.txt > l.txt", deps = ["s.txt"], outs = ["l.txt"] },
          right = { cmd = "cat s.txt > r.txt", deps = ["s.txt"], outs = ["r.txt"] },
          join = { cmd = "cat l.txt r.txt > j.txt", deps = ["l.txt", "r.txt"], outs = ["j.txt"] },
        } }"#,
    );
    ws.gourd(&["report", "-o", "report.html"]).success();
    let html = ws.read("report.html");
    // Whatever a name or a metric holds, the page runs nothing and loads
    // nothing.
    assert!(
        html.contains(r#"<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">"#),
        "{html}"
    );
    let boxes = assert_no_edge_under_a_box(&html);
    // Split and join on one row, left and right in one column on either
    // side of it.
    let (split, left, right, join) = (boxes["split"], boxes["left"], boxes["right"], boxes["join"]);
    assert!(split.0 < left.0 && left.0 < join.0, "{boxes:?}");
    assert_eq!(left.0, right.0, "{boxes:?}");
    assert_eq!(split.1, join.1, "{boxes:?}");
    let middle = |r: Rect| r.1 + r.3 / 2.0;
    assert_eq!(middle(left) + middle(right), 2.0 * middle(split), "{boxes:?}");
    assert!(middle(left) != middle(right), "{boxes:?}");
}

#[test]
fn a_wide_graph_with_long_edges_keeps_every_edge_clear_of_the_boxes() {
    // Twelve stages; each reads the outputs of the stages one, two and
    // three before it, so edges skip up to two layers.
    let mut stages = String::new();
    for i in 0..12 {
        let deps: Vec<String> = (i.max(3) - 3..i).map(|j| format!("\"o{j}.txt\"")).collect();
        stages.push_str(&format!(
            "s{i} = {{ cmd = \"echo {i} > o{i}.txt\", deps = [{}], outs = [\"o{i}.txt\"] }},\n",
            deps.join(", ")
        ));
    }
    let ws = TestWorkspace::new(&format!("{{ stages = {{ {stages} }} }}"));
    ws.gourd(&["report", "-o", "report.html"]).success();
    let boxes = assert_no_edge_under_a_box(&ws.read("report.html"));
    assert_eq!(boxes.len(), 12);
}

/// A training stage whose metrics file is written from `metrics.src`.
fn metrics_workspace() -> TestWorkspace {
    let ws = TestWorkspace::new(
        r#"{ stages = {
          train = { cmd = "cp metrics.src metrics.json", deps = ["metrics.src"], metrics = ["metrics.json"] },
        } }"#,
    );
    ws.write(".gitignore", ".gourd/\nmetrics.json\n");
    ws
}

#[test]
fn metrics_tables_show_scalars_exact_numbers_and_changes_by_direction() {
    let ws = metrics_workspace();
    ws.write(
        "metrics.src",
        r#"{"accuracy": 0.9, "val_loss": 0.5, "epochs": 100, "losses": [1.5, 0.75, 0.5], "steps": 200.0}"#,
    );
    ws.git(&["add", "-A"]);
    ws.git(&["commit", "-qm", "first"]);
    ws.gourd(&["run"]).success();
    // Better loss, worse accuracy, more epochs; a float with all 17 digits.
    ws.write(
        "metrics.src",
        r#"{"accuracy": 0.9888475857414213, "val_loss": 0.25, "epochs": 200, "losses": [1.5, 0.75, 0.5, 0.125], "steps": 200.0}"#,
    );
    ws.gourd(&["run"]).success();
    ws.git(&["commit", "-qam", "second"]);
    let md = ws.gourd(&["report", "--format", "md", "--base", "HEAD~1"]).success().stdout;
    let row = |metric: &str| -> String {
        md.lines()
            .find(|l| l.starts_with(&format!("| `metrics.json` | {metric} ")))
            .unwrap_or_else(|| panic!("no row for {metric}:\n{md}"))
            .to_string()
    };
    assert_eq!(row("accuracy"), "| `metrics.json` | accuracy | 0.9888475857414213 | 0.9 | +0.088847586 (better) |");
    assert_eq!(row("val_loss"), "| `metrics.json` | val_loss (lower is better) | 0.25 | 0.5 | -0.25 (better) |");
    assert_eq!(row("epochs"), "| `metrics.json` | epochs | 200 | 100 | +100 (better) |");
    assert_eq!(row("steps"), "| `metrics.json` | steps | 200 | 200 | 0 |");
    assert_eq!(
        row("losses"),
        "| `metrics.json` | losses (lower is better) | 0.125 (last of 4) | 0.5 (last of 3) | -0.375 (better) |"
    );
    assert!(md.contains("Arrays of values show their last value; the HTML report plots them."), "{md}");
    assert!(!md.contains("[1.5"), "no list is printed:\n{md}");
    assert!(!md.contains("200.0"), "integers print as integers:\n{md}");

    // A rising loss is worse; a falling accuracy is worse.
    ws.write(
        "metrics.src",
        r#"{"accuracy": 0.5, "val_loss": 0.75, "epochs": 200, "losses": [0.5, 0.25], "steps": 200.0}"#,
    );
    ws.gourd(&["run"]).success();
    let md = ws.gourd(&["report", "--format", "md"]).success().stdout;
    assert!(md.contains("| accuracy | 0.5 | 0.9888475857414213 | -0.488847586 (worse) |"), "{md}");
    assert!(md.contains("| val_loss (lower is better) | 0.75 | 0.25 | +0.5 (worse) |"), "{md}");

    ws.gourd(&["report", "-o", "report.html"]).success();
    let html = ws.read("report.html");
    let table = &html[html.find(r#"<table id="metrics">"#).unwrap()..];
    let table = &table[..table.find("</table>").unwrap()];
    let cells = |metric: &str| -> String {
        let start = table.find(&format!("<td>{metric}")).unwrap_or_else(|| panic!("no {metric} in {table}"));
        table[start..table[start..].find("</tr>").unwrap() + start].to_string()
    };
    assert!(cells("accuracy").contains(r#"<td class="mono worse" title="worse">-0.488847586</td>"#), "{table}");
    assert!(cells("val_loss").contains(r#"<td class="mono worse" title="worse">+0.5</td>"#), "{table}");
    assert!(cells("val_loss").contains(r#"title="lower is better""#), "{table}");
    assert!(cells("losses").contains("0.25 <span class=\"meta\">(last of 2)</span>"), "{table}");
    assert!(!table.contains('['), "{table}");
    // Plots: one per metric over the runs, captions with exact values, and
    // the latest run's per-step array.
    assert!(html.contains("(3 runs, last 200)"), "the integer epochs: {html}");
    assert!(html.contains("(2 steps of the latest run, last 0.25)"), "{html}");
    assert!(html.contains("<title>run 2: 0.9888475857414213</title>"), "{html}");
    assert!(!html.contains("200.0"), "{html}");
}

/// `-o` writes through a link to the file it leads to (the link kept), and
/// to a device it is written to, never replaced by a file; a link into
/// `.git` or to the pipeline's own files is refused.
#[test]
fn report_o_writes_through_links_and_devices_and_refuses_links_to_guarded_files() {
    let ws = TestWorkspace::new(
        r#"{ stages = { a = { cmd = "echo '[{\"x\": 1, \"y\": 2}]' > p.json", plots = ["p.json"] } } }"#,
    );
    ws.gourd(&["run"]).success();
    std::os::unix::fs::symlink("/dev/null", ws.path("devnull")).unwrap();
    ws.gourd(&["report", "-o", "devnull"]).success();
    assert!(ws.path("devnull").symlink_metadata().unwrap().file_type().is_symlink(), "the link was replaced");
    ws.write("reports/latest.html", "old");
    std::os::unix::fs::symlink("reports/latest.html", ws.path("report.html")).unwrap();
    ws.gourd(&["report", "-o", "report.html"]).success();
    assert!(ws.path("report.html").symlink_metadata().unwrap().file_type().is_symlink());
    assert!(ws.read("reports/latest.html").contains("<html"), "written where the link leads");
    let (config, pipeline) = (ws.read(".git/config"), ws.read("gourd.ncl"));
    std::os::unix::fs::symlink(".git/config", ws.path("c.html")).unwrap();
    std::os::unix::fs::symlink("gourd.ncl", ws.path("p.html")).unwrap();
    for (link, said) in [("c.html", "lies in `.git` or `.gourd`"), ("p.html", "a pipeline file or gourd's record")] {
        for command in [&["report", "-o", link][..], &["plots", "show", "-o", link]] {
            let out = ws.gourd(command);
            assert_eq!(out.code, 1, "{command:?}: {}", out.stderr);
            assert!(out.stderr.contains(said), "{command:?}: {}", out.stderr);
        }
    }
    assert_eq!((ws.read(".git/config"), ws.read("gourd.ncl")), (config.clone(), pipeline));
    // A link to a file not there yet: the file is made where it leads.
    std::os::unix::fs::symlink("www/latest.html", ws.path("latest.html")).unwrap();
    ws.gourd(&["report", "-o", "latest.html"]).success();
    assert!(ws.path("latest.html").symlink_metadata().unwrap().file_type().is_symlink());
    assert!(ws.read("www/latest.html").contains("<html"));
    // Nor through /proc, which leads anywhere (a repository may commit such a link).
    std::os::unix::fs::symlink("/proc/self/cwd/.git/config", ws.path("r.md")).unwrap();
    let out = ws.gourd(&["report", "--format", "md", "-o", "r.md"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(ws.read(".git/config"), config);
    // A link to the process's own stdout writes there, at its place: a log
    // it is appended to keeps what it held.
    std::os::unix::fs::symlink("/proc/self/fd/1", ws.path("so")).unwrap();
    ws.write("log.txt", "HEADER\n");
    let log = std::fs::OpenOptions::new().append(true).open(ws.path("log.txt")).unwrap();
    let status = ws.command(&["report", "--format", "md", "-o", "so"]).stdout(log).status().unwrap();
    assert!(status.success());
    let logged = ws.read("log.txt");
    assert!(logged.starts_with("HEADER\n") && logged.len() > 20, "{logged}");
}

/// A pipeline with no stage yet (as `gourd init` may leave it) still has a
/// report.
#[test]
fn a_pipeline_without_stages_has_a_report() {
    let ws = TestWorkspace::new("{ stages = {} }");
    for format in ["html", "md"] {
        let out = ws.gourd(&["report", "--format", format]);
        assert_eq!(out.code, 0, "{format}: {}", out.stderr);
        assert!(!out.stdout.is_empty());
    }
}
