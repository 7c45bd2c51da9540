//! Pictures for the HTML report, as inline SVG: no script and no network
//! needed to view them.

use std::fmt::Write;

/// A node of the DAG picture.
pub struct Node<'a> {
    pub name: &'a str,
    /// `fresh` or `stale`: the CSS class, and a word in the tooltip.
    pub state: &'a str,
}

const NODE_HEIGHT: f64 = 30.0;
const ROW_GAP: f64 = 22.0;
const LAYER_GAP: f64 = 70.0;
const CHAR_WIDTH: f64 = 7.4;

/// Lays out a DAG left to right: a stage's column is its longest distance
/// from a source; rows within a column follow the average row of the
/// stage's upstream (one barycentre sweep), which untangles most pipelines.
pub fn dag(nodes: &[Node<'_>], order: &[usize], edges: &[(usize, usize)]) -> String {
    let n = nodes.len();
    let mut layer = vec![0usize; n];
    for &i in order {
        for &(a, b) in edges {
            if b == i {
                layer[i] = layer[i].max(layer[a] + 1);
            }
        }
    }
    let layers = layer.iter().copied().max().map_or(0, |m| m + 1);
    let mut columns: Vec<Vec<usize>> = vec![Vec::new(); layers];
    for &i in order {
        columns[layer[i]].push(i);
    }
    let mut row = vec![0f64; n];
    for column in &mut columns {
        let key = |i: usize| {
            let ups: Vec<f64> = edges.iter().filter(|&&(_, b)| b == i).map(|&(a, _)| row[a]).collect();
            if ups.is_empty() { f64::MAX } else { ups.iter().sum::<f64>() / ups.len() as f64 }
        };
        let mut keyed: Vec<(f64, usize)> = column.iter().map(|&i| (key(i), i)).collect();
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
        *column = keyed.into_iter().map(|(_, i)| i).collect();
        for (r, &i) in column.iter().enumerate() {
            row[i] = r as f64;
        }
    }
    let width_of = |i: usize| nodes[i].name.chars().count() as f64 * CHAR_WIDTH + 24.0;
    let column_width: Vec<f64> = columns.iter().map(|c| c.iter().map(|&i| width_of(i)).fold(80.0, f64::max)).collect();
    let mut x_of_column = vec![10.0; layers];
    for c in 1..layers {
        x_of_column[c] = x_of_column[c - 1] + column_width[c - 1] + LAYER_GAP;
    }
    let rows = columns.iter().map(Vec::len).max().unwrap_or(0) as f64;
    let height = rows * (NODE_HEIGHT + ROW_GAP) + 20.0;
    let width = x_of_column.last().copied().unwrap_or(10.0) + column_width.last().copied().unwrap_or(0.0) + 10.0;
    let x = |i: usize| x_of_column[layer[i]];
    let y = |i: usize| {
        let in_column = columns[layer[i]].len() as f64;
        let offset = (rows - in_column) * (NODE_HEIGHT + ROW_GAP) / 2.0;
        10.0 + offset + row[i] * (NODE_HEIGHT + ROW_GAP)
    };

    let mut svg = String::new();
    write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" id="dag-svg" role="img" aria-label="pipeline graph" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}">"##
    )
    .unwrap();
    svg.push_str(r##"<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#778"/></marker></defs>"##);
    for &(a, b) in edges {
        let (x1, y1) = (x(a) + column_width[layer[a]], y(a) + NODE_HEIGHT / 2.0);
        let (x2, y2) = (x(b), y(b) + NODE_HEIGHT / 2.0);
        let mid = (x1 + x2) / 2.0;
        write!(
            svg,
            r##"<path class="edge" d="M {x1:.1} {y1:.1} C {mid:.1} {y1:.1}, {mid:.1} {y2:.1}, {x2:.1} {y2:.1}" fill="none" stroke="#778" stroke-width="1.4" marker-end="url(#arrow)"/>"##
        )
        .unwrap();
    }
    for &i in order {
        let node = &nodes[i];
        let name = escape(node.name);
        write!(
            svg,
            r##"<g class="node {state}"><title>{name}: {state}</title><rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{NODE_HEIGHT}" rx="6"/><text x="{tx:.1}" y="{ty:.1}">{name}</text></g>"##,
            state = escape(node.state),
            x = x(i),
            y = y(i),
            w = column_width[layer[i]],
            tx = x(i) + 12.0,
            ty = y(i) + NODE_HEIGHT / 2.0 + 4.5,
        )
        .unwrap();
    }
    svg.push_str("</svg>");
    svg
}

/// A small line plot of `values` (oldest first); each point's tooltip
/// names it `{point_name} N`.
pub fn sparkline(values: &[f64], label: &str, point_name: &str) -> String {
    let (w, h, pad) = (260.0, 70.0, 8.0);
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let span = if (max - min).abs() < f64::EPSILON { 1.0 } else { max - min };
    let step = if values.len() > 1 { (w - 2.0 * pad) / (values.len() - 1) as f64 } else { 0.0 };
    let flat = (max - min).abs() < f64::EPSILON;
    let point = |i: usize, v: f64| {
        let y = if flat { h / 2.0 } else { h - pad - (v - min) / span * (h - 2.0 * pad) };
        (pad + i as f64 * step, y)
    };
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="plot" role="img" aria-label="{}" width="{w}" height="{h}" viewBox="0 0 {w} {h}">"##,
        escape(label)
    );
    write!(svg, r##"<rect x="0" y="0" width="{w}" height="{h}" class="plot-bg"/>"##).unwrap();
    let points: Vec<String> =
        values.iter().enumerate().map(|(i, &v)| point(i, v)).map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
    write!(svg, r##"<polyline fill="none" stroke-width="2" class="plot-line" points="{}"/>"##, points.join(" "))
        .unwrap();
    for (i, &v) in values.iter().enumerate() {
        let (x, y) = point(i, v);
        write!(
            svg,
            r##"<circle cx="{x:.1}" cy="{y:.1}" r="3" class="plot-point"><title>{point_name} {}: {}</title></circle>"##,
            i + 1,
            super::values::float(v)
        )
        .unwrap();
    }
    svg.push_str("</svg>");
    svg
}

pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `name → (x, y)` of each node's box.
    fn boxes(svg: &str) -> std::collections::BTreeMap<String, (f64, f64)> {
        let attribute = |text: &str, name: &str| -> f64 {
            let start = text.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
            text[start..].split('"').next().unwrap().parse().unwrap()
        };
        svg.split("<g class=\"node ")
            .skip(1)
            .map(|node| {
                let name = node.split("<title>").nth(1).unwrap().split(':').next().unwrap().to_string();
                let rect = node.split("<rect").nth(1).unwrap();
                (name, (attribute(rect, "x"), attribute(rect, "y")))
            })
            .collect()
    }

    #[test]
    fn diamond_gets_three_columns() {
        let nodes: Vec<Node> = ["a", "b", "c", "d"].iter().map(|n| Node { name: n, state: "fresh" }).collect();
        // With a shortcut a → d: d's column is its longest distance from a.
        let svg = dag(&nodes, &[0, 1, 2, 3], &[(0, 1), (0, 2), (1, 3), (2, 3), (0, 3)]);
        assert_eq!(svg.matches("<rect").count(), 4);
        assert_eq!(svg.matches("class=\"edge\"").count(), 5);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        let at = boxes(&svg);
        let (a, b, c, d) = (at["a"], at["b"], at["c"], at["d"]);
        assert!(a.0 < b.0 && b.0 < d.0, "{at:?}");
        assert_eq!(b.0, c.0, "b and c share a column: {at:?}");
        assert_ne!(b.1, c.1, "b and c are in different rows: {at:?}");
        // Single stages sit midway between the rows of the middle column.
        assert_eq!(a.1, d.1, "{at:?}");
        assert_eq!(a.1 * 2.0, b.1 + c.1, "{at:?}");
    }

    #[test]
    fn rows_follow_the_upstream_stage() {
        // Two chains, a → x and b → y, listed crosswise: each stage of the
        // second column takes the row of its upstream stage.
        let nodes: Vec<Node> = ["a", "b", "y", "x"].iter().map(|n| Node { name: n, state: "fresh" }).collect();
        let at = boxes(&dag(&nodes, &[0, 1, 2, 3], &[(0, 3), (1, 2)]));
        assert_eq!(at["a"].1, at["x"].1, "{at:?}");
        assert_eq!(at["b"].1, at["y"].1, "{at:?}");
        assert!(at["a"].0 < at["x"].0, "{at:?}");
    }

    #[test]
    fn sparkline_has_a_point_per_value() {
        let svg = sparkline(&[0.5, 0.7, 0.9], "accuracy", "run");
        assert_eq!(svg.matches("<circle").count(), 3);
    }
}
