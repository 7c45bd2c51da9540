//! Pictures for the HTML report, as inline SVG: no script and no network
//! needed to view them.

use std::fmt::Write;

use super::layout::Layout;

/// A node of the DAG picture.
pub struct Node<'a> {
    pub name: &'a str,
    /// `fresh` or `stale`: the CSS class, and a word in the tooltip.
    pub state: &'a str,
}

const NODE_HEIGHT: f64 = 30.0;
/// The height of the row an edge takes through a column it skips.
const DUMMY_HEIGHT: f64 = 4.0;
const ROW_GAP: f64 = 22.0;
const LAYER_GAP: f64 = 70.0;
const CHAR_WIDTH: f64 = 7.4;
const MARGIN: f64 = 10.0;

/// Draws a DAG left to right, laid out in layers (see [`super::layout`]).
/// An edge runs from its source's right side to its target's left side:
/// curves in the gaps between columns, and straight through the row of its
/// own in each column it skips, so it never passes under a box. Each edge
/// names its ends in `data-from` and `data-to`.
pub fn dag(nodes: &[Node<'_>], order: &[usize], edges: &[(usize, usize)]) -> String {
    // A pipeline with no stage yet draws nothing.
    if nodes.is_empty() {
        return String::new();
    }
    let layout = Layout::new(nodes.len(), order, edges);
    let width_of = |i: usize| nodes[i].name.chars().count() as f64 * CHAR_WIDTH + 24.0;
    let column_width: Vec<f64> = layout
        .columns
        .iter()
        .map(|c| {
            let stages = c.iter().filter(|&&i| layout.is_stage(i));
            stages.map(|&i| width_of(i)).fold(if c.iter().any(|&i| layout.is_stage(i)) { 80.0 } else { 20.0 }, f64::max)
        })
        .collect();
    let mut left = vec![MARGIN; layout.columns.len()];
    for c in 1..left.len() {
        left[c] = left[c - 1] + column_width[c - 1] + LAYER_GAP;
    }
    let height_of = |i: usize| if layout.is_stage(i) { NODE_HEIGHT } else { DUMMY_HEIGHT };
    let top = tops(&layout, &height_of);
    let tallest = top.iter().enumerate().map(|(i, t)| t + height_of(i)).fold(0.0, f64::max) - MARGIN;
    let middle = |i: usize| top[i] + height_of(i) / 2.0;
    let height = tallest + 2.0 * MARGIN;
    let width = left.last().copied().unwrap_or(MARGIN) + column_width.last().copied().unwrap_or(0.0) + MARGIN;

    let mut svg = String::new();
    write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" id="dag-svg" role="img" aria-label="pipeline graph" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}">"##
    )
    .unwrap();
    svg.push_str(r##"<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#778"/></marker></defs>"##);
    for (route, &(a, b)) in layout.routes.iter().zip(edges) {
        let right = |i: usize| left[layout.column[i]] + column_width[layout.column[i]];
        let (mut x, mut y) = (right(a), middle(a));
        let mut d = format!("M {x:.1} {y:.1}");
        for &next in &route[1..] {
            let (x2, y2) = (left[layout.column[next]], middle(next));
            let mid = (x + x2) / 2.0;
            write!(d, " C {mid:.1} {y:.1}, {mid:.1} {y2:.1}, {x2:.1} {y2:.1}").unwrap();
            (x, y) = (x2, y2);
            if !layout.is_stage(next) {
                x = right(next);
                write!(d, " L {x:.1} {y:.1}").unwrap();
            }
        }
        write!(
            svg,
            r##"<path class="edge" data-from="{from}" data-to="{to}" d="{d}" fill="none" stroke="#778" stroke-width="1.4" marker-end="url(#arrow)"/>"##,
            from = escape(nodes[a].name),
            to = escape(nodes[b].name),
        )
        .unwrap();
    }
    for &i in order {
        let node = &nodes[i];
        let name = escape(node.name);
        let (x, y) = (left[layout.column[i]], top[i]);
        write!(
            svg,
            r##"<g class="node {state}"><title>{name}: {state}</title><rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{NODE_HEIGHT}" rx="6"/><text x="{tx:.1}" y="{ty:.1}">{name}</text></g>"##,
            state = escape(node.state),
            w = column_width[layout.column[i]],
            tx = x + 12.0,
            ty = y + NODE_HEIGHT / 2.0 + 4.5,
        )
        .unwrap();
    }
    svg.push_str("</svg>");
    svg
}

/// The top of every item: each column in its order with its rows apart,
/// every item drawn towards the mean height of its neighbours (sweeping
/// right, then left, a few times), so a stage sits level with what it
/// connects to and a diamond keeps its shape.
fn tops(layout: &Layout, height_of: &dyn Fn(usize) -> f64) -> Vec<f64> {
    let items = layout.column.len();
    let (mut up, mut down) = (vec![Vec::new(); items], vec![Vec::new(); items]);
    for route in &layout.routes {
        for pair in route.windows(2) {
            down[pair[0]].push(pair[1]);
            up[pair[1]].push(pair[0]);
        }
    }
    // Start stacked, each column centred on the tallest.
    let extent = |c: &Vec<usize>| c.iter().map(|&i| height_of(i) + ROW_GAP).sum::<f64>() - ROW_GAP;
    let tallest = layout.columns.iter().map(extent).fold(0.0, f64::max);
    let mut top = vec![0.0; items];
    for c in &layout.columns {
        let mut y = (tallest - extent(c)) / 2.0;
        for &i in c {
            top[i] = y;
            y += height_of(i) + ROW_GAP;
        }
    }
    let settle_column = |top: &mut Vec<f64>, column: &[usize], sides: &[&Vec<Vec<usize>>]| {
        let want: Vec<f64> = column
            .iter()
            .map(|&i| {
                let neighbours: Vec<usize> = sides.iter().flat_map(|side| side[i].iter().copied()).collect();
                if neighbours.is_empty() {
                    return top[i];
                }
                let centre =
                    neighbours.iter().map(|&j| top[j] + height_of(j) / 2.0).sum::<f64>() / neighbours.len() as f64;
                centre - height_of(i) / 2.0
            })
            .collect();
        let heights: Vec<f64> = column.iter().map(|&i| height_of(i)).collect();
        for (&i, y) in column.iter().zip(settle(&want, &heights)) {
            top[i] = y;
        }
    };
    for _ in 0..4 {
        for column in &layout.columns[1..] {
            settle_column(&mut top, column, &[&up]);
        }
        for column in layout.columns.iter().rev().skip(1) {
            settle_column(&mut top, column, &[&down]);
        }
    }
    for column in &layout.columns {
        settle_column(&mut top, column, &[&up, &down]);
    }
    let highest = top.iter().copied().fold(f64::INFINITY, f64::min);
    top.iter().map(|t| t - highest + MARGIN).collect()
}

/// Tops as near `want` as keeping the items in order, `ROW_GAP` apart,
/// allows (least squares: isotonic regression by pooling adjacent
/// violators, on tops less the room the items above need).
fn settle(want: &[f64], heights: &[f64]) -> Vec<f64> {
    let mut offset = vec![0.0; want.len()];
    for i in 1..want.len() {
        offset[i] = offset[i - 1] + heights[i - 1] + ROW_GAP;
    }
    // Blocks of (sum, count) whose items share one shifted top.
    let mut blocks: Vec<(f64, usize)> = Vec::new();
    for (w, o) in want.iter().zip(&offset) {
        blocks.push((w - o, 1));
        while blocks.len() > 1 {
            let (b, a) = (blocks[blocks.len() - 1], blocks[blocks.len() - 2]);
            if a.0 / a.1 as f64 <= b.0 / b.1 as f64 {
                break;
            }
            blocks.pop();
            *blocks.last_mut().unwrap() = (a.0 + b.0, a.1 + b.1);
        }
    }
    let shifted = blocks.iter().flat_map(|&(sum, count)| std::iter::repeat_n(sum / count as f64, count));
    shifted.zip(&offset).map(|(z, o)| z + o).collect()
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
    fn a_diamond_is_drawn_as_a_diamond() {
        let nodes: Vec<Node> = ["a", "b", "c", "d"].iter().map(|n| Node { name: n, state: "fresh" }).collect();
        let svg = dag(&nodes, &[0, 1, 2, 3], &[(0, 1), (0, 2), (1, 3), (2, 3)]);
        assert_eq!(svg.matches("<rect").count(), 4);
        assert_eq!(svg.matches("class=\"edge\"").count(), 4);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        let at = boxes(&svg);
        let (a, b, c, d) = (at["a"], at["b"], at["c"], at["d"]);
        assert!(a.0 < b.0 && b.0 < d.0, "{at:?}");
        assert_eq!(b.0, c.0, "b and c share a column: {at:?}");
        assert_ne!(b.1, c.1, "b and c are in different rows: {at:?}");
        // The ends sit midway between the rows of the middle column.
        assert_eq!(a.1, d.1, "{at:?}");
        assert_eq!(a.1 * 2.0, b.1 + c.1, "{at:?}");
    }

    #[test]
    fn a_shortcut_goes_around_the_boxes_it_skips() {
        let nodes: Vec<Node> = ["a", "b", "c"].iter().map(|n| Node { name: n, state: "fresh" }).collect();
        // a → b → c, and a → c straight through b's column.
        let svg = dag(&nodes, &[0, 1, 2], &[(0, 1), (1, 2), (0, 2)]);
        let at = boxes(&svg);
        let shortcut = svg.split("<path class=\"edge\" data-from=\"a\" data-to=\"c\" d=\"").nth(1).unwrap();
        let d = shortcut.split('"').next().unwrap();
        // Through b's column on a row of its own: a horizontal line above
        // or below b's box.
        let line = d.split(" L ").nth(1).unwrap();
        let y: f64 = line.split(' ').nth(1).unwrap().parse().unwrap();
        let b = at["b"];
        assert!(y < b.1 || y > b.1 + NODE_HEIGHT, "{d} vs b at {b:?}");
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
