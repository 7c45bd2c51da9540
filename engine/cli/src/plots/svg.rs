//! Plots drawn as SVG: lines and points over x, horizontal bars, and
//! confusion matrices as heat maps with their counts. Elements carry classes
//! (`point`, `line`, `bar`, `cell`) that say what they draw.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use gourd_core::model::{Plot, PlotTemplate};

use super::data::{Table, label, number};

/// One data file as one side (revision) holds it.
pub struct Source {
    pub side: String,
    pub file: String,
    pub x: Option<String>,
    pub y: Vec<String>,
    pub table: Table,
}

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 360.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 36.0;
const BOTTOM: f64 = 48.0;
const COLOURS: [&str; 10] =
    ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// The figure of `plot` over `sources`, or an error naming the file and field.
pub fn figure(plot: &Plot, sources: &[Source]) -> Result<String, String> {
    match plot.template {
        PlotTemplate::Confusion | PlotTemplate::ConfusionNormalized => {
            let mut out = String::new();
            for source in sources {
                out.push_str(&confusion(plot, source, sources.len() > 1)?);
            }
            Ok(out)
        }
        PlotTemplate::BarHorizontal | PlotTemplate::BarHorizontalSorted => bars(plot, sources),
        _ => xy(plot, sources),
    }
}

fn column(plot: &Plot, source: &Source, field: &str, which: &str) -> Result<usize, String> {
    source.table.column(field).ok_or_else(|| {
        let known: Vec<String> = source.table.fields.iter().map(|f| format!("`{f}`")).collect();
        format!(
            "plot `{}`: field `{which}`: `{}` has no field `{field}` (its fields: {})",
            plot.id,
            source.file,
            known.join(", ")
        )
    })
}

fn numbers(plot: &Plot, source: &Source, col: usize, which: &str) -> Result<Vec<f64>, String> {
    source
        .table
        .rows
        .iter()
        .enumerate()
        .map(|(row, cells)| {
            let cell = cells[col].as_ref();
            cell.and_then(number).ok_or_else(|| {
                let shown = cell.map(label).unwrap_or_else(|| "nothing".to_string());
                format!(
                    "plot `{}`: field `{which}`: `{}` row {}: `{}` in `{}` is not a number",
                    plot.id,
                    source.file,
                    row + 1,
                    shown.chars().take(40).collect::<String>(),
                    source.table.fields[col]
                )
            })
        })
        .collect()
}

fn needs(plot: &Plot, source: &Source) -> Result<(String, String), String> {
    match (&source.x, source.y.first()) {
        (Some(x), Some(y)) => Ok((x.clone(), y.clone())),
        _ => Err(format!("plot `{}`: the `{}` template needs both `x` and `y`", plot.id, plot.template.name())),
    }
}

struct Series {
    name: String,
    points: Vec<(f64, f64)>,
}

fn xy(plot: &Plot, sources: &[Source]) -> Result<String, String> {
    let sides: Vec<&str> = dedup(sources.iter().map(|s| s.side.as_str()));
    let files: Vec<&str> = dedup(sources.iter().map(|s| s.file.as_str()));
    let mut series = Vec::new();
    let mut y_names = Vec::new();
    for source in sources {
        let xs = match &source.x {
            Some(x) => {
                let col = column(plot, source, x, "x")?;
                numbers(plot, source, col, "x")?
            }
            None => (0..source.table.rows.len()).map(|i| i as f64).collect(),
        };
        let y_fields: Vec<String> = if source.y.is_empty() {
            let numeric: Vec<String> = source
                .table
                .fields
                .iter()
                .enumerate()
                .filter(|(_, f)| Some(*f) != source.x.as_ref())
                .filter(|(i, _)| source.table.rows.iter().all(|r| r[*i].as_ref().and_then(number).is_some()))
                .map(|(_, f)| f.clone())
                .collect();
            if numeric.is_empty() {
                return Err(format!("plot `{}`: `{}` has no numeric field to draw on y", plot.id, source.file));
            }
            numeric
        } else {
            source.y.clone()
        };
        for field in y_fields {
            let col = column(plot, source, &field, "y")?;
            let ys = numbers(plot, source, col, "y")?;
            let mut name = Vec::new();
            if sides.len() > 1 {
                name.push(source.side.clone());
            }
            if files.len() > 1 {
                name.push(source.file.clone());
            }
            name.push(field.clone());
            if !y_names.contains(&field) {
                y_names.push(field.clone());
            }
            series.push(Series { name: name.join(": "), points: xs.iter().copied().zip(ys).collect() });
        }
    }
    let x_default = sources.iter().find_map(|s| s.x.clone()).unwrap_or_else(|| "step".to_string());
    let x_label = plot.x_label.clone().unwrap_or(x_default);
    let y_label = plot.y_label.clone().unwrap_or_else(|| y_names.join(", "));
    let all: Vec<(f64, f64)> = series.iter().flat_map(|s| s.points.iter().copied()).collect();
    let (x_lo, x_hi) = extent(all.iter().map(|p| p.0));
    let (y_lo, y_hi) = extent(all.iter().map(|p| p.1));
    drawable(plot, "x", x_lo, x_hi)?;
    drawable(plot, "y", y_lo, y_hi)?;
    let x_ticks = ticks(x_lo, x_hi);
    let y_ticks = ticks(y_lo, y_hi);
    let (x_lo, x_hi) = (x_ticks[0].min(x_lo), x_ticks[x_ticks.len() - 1].max(x_hi));
    let (y_lo, y_hi) = (y_ticks[0].min(y_lo), y_ticks[y_ticks.len() - 1].max(y_hi));
    let legend_height = 18.0 * series.len() as f64;
    let height = HEIGHT + legend_height;
    let sx = |x: f64| LEFT + (x - x_lo) / span(x_lo, x_hi) * (WIDTH - LEFT - RIGHT);
    let sy = |y: f64| HEIGHT - BOTTOM - (y - y_lo) / span(y_lo, y_hi) * (HEIGHT - TOP - BOTTOM);

    let mut svg = open(plot, height);
    axes(&mut svg, &x_ticks, &y_ticks, &sx, &sy, &x_label, &y_label);
    for (i, s) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let mut pts = s.points.clone();
        if !matches!(plot.template, PlotTemplate::Scatter | PlotTemplate::ScatterJitter) {
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        // At most the points that show: a line keeps, per column of pixels,
        // where it enters, its lowest and highest, and where it leaves.
        let polyline = |points: &[(f64, f64)]| {
            let drawn: Vec<(f64, f64)> = points.iter().map(|(x, y)| (sx(*x), sy(*y))).collect();
            thin_line(&drawn).iter().map(|(x, y)| format!("{x:.2},{y:.2}")).collect::<Vec<_>>().join(" ")
        };
        let name = escape(&s.name);
        let _ = write!(svg, "<g class=\"series\" data-name=\"{name}\">");
        match plot.template {
            PlotTemplate::Smooth => {
                let _ = write!(
                    svg,
                    "<polyline class=\"raw\" fill=\"none\" stroke=\"{colour}\" stroke-opacity=\"0.3\" points=\"{}\"/>",
                    polyline(&pts)
                );
                let smoothed = smooth(&pts, pts.len() / 10);
                let _ = write!(
                    svg,
                    "<polyline class=\"line\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
                    polyline(&smoothed)
                );
            }
            PlotTemplate::Scatter | PlotTemplate::ScatterJitter => {}
            _ => {
                let _ = write!(
                    svg,
                    "<polyline class=\"line\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
                    polyline(&pts)
                );
            }
        }
        if matches!(plot.template, PlotTemplate::Linear | PlotTemplate::Scatter | PlotTemplate::ScatterJitter) {
            // One mark per pixel: more would be drawn over each other.
            let mut seen = std::collections::HashSet::new();
            for (x, y) in pts.iter().filter(|(x, y)| seen.insert((sx(*x).round() as i64, sy(*y).round() as i64))) {
                let _ = write!(
                    svg,
                    "<circle class=\"point\" cx=\"{:.2}\" cy=\"{:.2}\" r=\"3\" fill=\"{colour}\"><title>{name}: ({}, {})</title></circle>",
                    sx(*x),
                    sy(*y),
                    fmt(*x),
                    fmt(*y)
                );
            }
        }
        svg.push_str("</g>");
    }
    legend(&mut svg, series.iter().map(|s| s.name.as_str()), HEIGHT);
    svg.push_str("</svg>");
    Ok(svg)
}

fn bars(plot: &Plot, sources: &[Source]) -> Result<String, String> {
    let mut groups: Vec<(String, Vec<(String, f64)>)> = Vec::new();
    let mut x_name = String::new();
    let mut y_name = String::new();
    for source in sources {
        let (x, y) = needs(plot, source)?;
        let values = numbers(plot, source, column(plot, source, &x, "x")?, "x")?;
        let col = column(plot, source, &y, "y")?;
        let categories: Vec<String> =
            source.table.rows.iter().map(|r| r[col].as_ref().map(label).unwrap_or_default()).collect();
        let name = if sources.len() > 1 { format!("{}: {}", source.side, source.file) } else { source.file.clone() };
        groups.push((name, categories.into_iter().zip(values).collect()));
        (x_name, y_name) = (x, y);
    }
    let mut categories: Vec<String> = Vec::new();
    for (_, rows) in &groups {
        for (c, _) in rows {
            if !categories.contains(c) {
                categories.push(c.clone());
            }
        }
    }
    if plot.template == PlotTemplate::BarHorizontalSorted
        && let Some((_, first)) = groups.first()
    {
        let value = |c: &String| first.iter().find(|(k, _)| k == c).map_or(f64::NEG_INFINITY, |(_, v)| *v);
        categories.sort_by(|a, b| value(b).total_cmp(&value(a)));
    }
    let (lo, hi) = extent(groups.iter().flat_map(|(_, rows)| rows.iter().map(|(_, v)| *v)).chain([0.0]));
    drawable(plot, "x", lo, hi)?;
    let x_ticks = ticks(lo, hi);
    let (lo, hi) = (x_ticks[0].min(lo), x_ticks[x_ticks.len() - 1].max(hi));
    let band = 8.0 + 14.0 * groups.len() as f64;
    let left = 140.0;
    let plot_height = band * categories.len().max(1) as f64;
    let height = TOP + plot_height + BOTTOM + 18.0 * groups.len() as f64;
    let sx = |x: f64| left + (x - lo) / span(lo, hi) * (WIDTH - left - RIGHT);
    let mut svg = open(plot, height);
    for t in &x_ticks {
        let _ = write!(
            svg,
            "<line class=\"grid\" x1=\"{0:.2}\" x2=\"{0:.2}\" y1=\"{TOP}\" y2=\"{1:.2}\" stroke=\"#ddd\"/>\
             <text x=\"{0:.2}\" y=\"{2:.2}\" text-anchor=\"middle\" font-size=\"11\">{3}</text>",
            sx(*t),
            TOP + plot_height,
            TOP + plot_height + 14.0,
            fmt(*t)
        );
    }
    for (i, category) in categories.iter().enumerate() {
        let top = TOP + band * i as f64;
        let _ = write!(
            svg,
            "<text x=\"{:.2}\" y=\"{:.2}\" text-anchor=\"end\" font-size=\"11\">{}</text>",
            left - 6.0,
            top + band / 2.0 + 4.0,
            escape(&category.chars().take(24).collect::<String>())
        );
        for (g, (name, rows)) in groups.iter().enumerate() {
            let Some((_, value)) = rows.iter().find(|(c, _)| c == category) else { continue };
            let (a, b) = (sx(0.0_f64.clamp(lo, hi)), sx(*value));
            let _ = write!(
                svg,
                "<rect class=\"bar\" x=\"{:.2}\" y=\"{:.2}\" width=\"{:.2}\" height=\"12\" fill=\"{}\"><title>{}: {}: {}</title></rect>",
                a.min(b),
                top + 4.0 + 14.0 * g as f64,
                (b - a).abs().max(0.5),
                COLOURS[g % COLOURS.len()],
                escape(name),
                escape(category),
                fmt(*value)
            );
        }
    }
    let x_label = plot.x_label.clone().unwrap_or(x_name);
    let _ = write!(
        svg,
        "<text x=\"{:.2}\" y=\"{:.2}\" text-anchor=\"middle\" font-size=\"12\">{}</text>",
        (left + WIDTH - RIGHT) / 2.0,
        TOP + plot_height + 32.0,
        escape(&x_label)
    );
    let y_label = plot.y_label.clone().unwrap_or(y_name);
    let _ = write!(svg, "<text x=\"4\" y=\"{:.2}\" font-size=\"12\">{}</text>", TOP - 6.0, escape(&y_label));
    legend(&mut svg, groups.iter().map(|(n, _)| n.as_str()), TOP + plot_height + BOTTOM - 8.0);
    svg.push_str("</svg>");
    Ok(svg)
}

fn confusion(plot: &Plot, source: &Source, name_side: bool) -> Result<String, String> {
    let (x, y) = needs(plot, source)?;
    let (actual, predicted) = (column(plot, source, &x, "x")?, column(plot, source, &y, "y")?);
    let mut classes: Vec<String> = Vec::new();
    let mut counts: BTreeMap<(String, String), f64> = BTreeMap::new();
    for row in &source.table.rows {
        let a = row[actual].as_ref().map(label).unwrap_or_default();
        let p = row[predicted].as_ref().map(label).unwrap_or_default();
        for c in [&a, &p] {
            if !classes.contains(c) {
                classes.push(c.clone());
            }
        }
        *counts.entry((a, p)).or_default() += 1.0;
    }
    classes.sort();
    let normalized = plot.template == PlotTemplate::ConfusionNormalized;
    let value = |a: &String, p: &String| {
        let n = counts.get(&(a.clone(), p.clone())).copied().unwrap_or(0.0);
        if normalized {
            let total: f64 = classes.iter().map(|q| counts.get(&(a.clone(), q.clone())).copied().unwrap_or(0.0)).sum();
            if total > 0.0 { n / total } else { 0.0 }
        } else {
            n
        }
    };
    let max =
        classes.iter().flat_map(|a| classes.iter().map(move |p| (a, p))).map(|(a, p)| value(a, p)).fold(0.0, f64::max);
    let cell = (360.0 / classes.len().max(1) as f64).clamp(24.0, 64.0);
    let left = 120.0;
    let size = cell * classes.len() as f64;
    let height = TOP + 24.0 + size + 60.0;
    let mut svg = open(plot, height.max(160.0));
    if name_side {
        let _ = write!(
            svg,
            "<text class=\"side\" x=\"{left}\" y=\"{:.2}\" font-size=\"12\">{}</text>",
            TOP - 4.0,
            escape(&format!("{}: {}", source.side, source.file))
        );
    }
    let top = TOP + 24.0;
    for (i, a) in classes.iter().enumerate() {
        let _ = write!(
            svg,
            "<text x=\"{:.2}\" y=\"{:.2}\" text-anchor=\"end\" font-size=\"11\">{}</text>",
            left - 6.0,
            top + cell * i as f64 + cell / 2.0 + 4.0,
            escape(&a.chars().take(16).collect::<String>())
        );
        let _ = write!(
            svg,
            "<text x=\"{:.2}\" y=\"{:.2}\" text-anchor=\"middle\" font-size=\"11\">{}</text>",
            left + cell * i as f64 + cell / 2.0,
            top - 6.0,
            escape(&a.chars().take(10).collect::<String>())
        );
        for (j, p) in classes.iter().enumerate() {
            let v = value(a, p);
            let shade = if max > 0.0 { v / max } else { 0.0 };
            let fill = format!(
                "rgb({},{},{})",
                (247.0 - 216.0 * shade) as u8,
                (251.0 - 132.0 * shade) as u8,
                (255.0 - 75.0 * shade) as u8
            );
            let text = if normalized { format!("{v:.2}") } else { fmt(v) };
            let ink = if shade > 0.6 { "#fff" } else { "#222" };
            let _ = write!(
                svg,
                "<rect class=\"cell\" x=\"{:.2}\" y=\"{:.2}\" width=\"{cell:.2}\" height=\"{cell:.2}\" fill=\"{fill}\" stroke=\"#fff\"><title>{}: {}</title></rect>\
                 <text x=\"{:.2}\" y=\"{:.2}\" text-anchor=\"middle\" font-size=\"11\" fill=\"{ink}\">{text}</text>",
                left + cell * j as f64,
                top + cell * i as f64,
                escape(&format!("{x} {a}, {y} {p}")),
                text,
                left + cell * j as f64 + cell / 2.0,
                top + cell * i as f64 + cell / 2.0 + 4.0,
            );
        }
    }
    let x_label = plot.x_label.clone().unwrap_or_else(|| y.clone());
    let y_label = plot.y_label.clone().unwrap_or_else(|| x.clone());
    let _ = write!(
        svg,
        "<text x=\"{:.2}\" y=\"{:.2}\" text-anchor=\"middle\" font-size=\"12\">{}</text>\
         <text x=\"12\" y=\"{:.2}\" font-size=\"12\" transform=\"rotate(-90 12 {:.2})\" text-anchor=\"middle\">{}</text>",
        left + size / 2.0,
        top + size + 20.0,
        escape(&x_label),
        top + size / 2.0,
        top + size / 2.0,
        escape(&y_label)
    );
    svg.push_str("</svg>");
    Ok(svg)
}

fn open(plot: &Plot, height: f64) -> String {
    let title = plot.title.clone().unwrap_or_else(|| plot.id.clone());
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"plot {}\" width=\"{WIDTH}\" height=\"{height:.0}\" viewBox=\"0 0 {WIDTH} {height:.0}\" font-family=\"sans-serif\">\
         <text class=\"title\" x=\"{:.1}\" y=\"18\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">{}</text>",
        plot.template.name(),
        WIDTH / 2.0,
        escape(&title)
    )
}

fn axes(
    svg: &mut String,
    x_ticks: &[f64],
    y_ticks: &[f64],
    sx: &dyn Fn(f64) -> f64,
    sy: &dyn Fn(f64) -> f64,
    x_label: &str,
    y_label: &str,
) {
    let (bottom, right) = (HEIGHT - BOTTOM, WIDTH - RIGHT);
    let _ = write!(
        svg,
        "<line class=\"axis\" x1=\"{LEFT}\" x2=\"{right}\" y1=\"{bottom}\" y2=\"{bottom}\" stroke=\"#444\"/>\
         <line class=\"axis\" x1=\"{LEFT}\" x2=\"{LEFT}\" y1=\"{TOP}\" y2=\"{bottom}\" stroke=\"#444\"/>"
    );
    for t in x_ticks {
        let _ = write!(
            svg,
            "<line class=\"tick\" x1=\"{0:.2}\" x2=\"{0:.2}\" y1=\"{bottom}\" y2=\"{1}\" stroke=\"#444\"/>\
             <text x=\"{0:.2}\" y=\"{2}\" text-anchor=\"middle\" font-size=\"11\">{3}</text>",
            sx(*t),
            bottom + 4.0,
            bottom + 16.0,
            fmt(*t)
        );
    }
    for t in y_ticks {
        let _ = write!(
            svg,
            "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{right}\" y1=\"{0:.2}\" y2=\"{0:.2}\" stroke=\"#eee\"/>\
             <text x=\"{1}\" y=\"{2:.2}\" text-anchor=\"end\" font-size=\"11\">{3}</text>",
            sy(*t),
            LEFT - 6.0,
            sy(*t) + 4.0,
            fmt(*t)
        );
    }
    let _ = write!(
        svg,
        "<text class=\"x-label\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"12\">{}</text>\
         <text class=\"y-label\" x=\"14\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"12\" transform=\"rotate(-90 14 {:.1})\">{}</text>",
        (LEFT + right) / 2.0,
        bottom + 34.0,
        escape(x_label),
        (TOP + bottom) / 2.0,
        (TOP + bottom) / 2.0,
        escape(y_label)
    );
}

fn legend<'a>(svg: &mut String, names: impl Iterator<Item = &'a str>, top: f64) {
    for (i, name) in names.enumerate() {
        let y = top + 18.0 * i as f64 + 12.0;
        let _ = write!(
            svg,
            "<g class=\"legend\"><rect x=\"{LEFT}\" y=\"{:.1}\" width=\"12\" height=\"12\" fill=\"{}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\">{}</text></g>",
            y - 10.0,
            COLOURS[i % COLOURS.len()],
            LEFT + 18.0,
            y,
            escape(name)
        );
    }
}

fn dedup<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

fn extent(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() {
        (0.0, 1.0)
    } else if lo == hi {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo, hi)
    }
}

/// Values from `lo` to `hi` fit an axis: their span is a number a float
/// holds (1e308 and -1e308 are each one, their span is not).
fn drawable(plot: &Plot, field: &str, lo: f64, hi: f64) -> Result<(), String> {
    if (hi - lo).is_finite() {
        return Ok(());
    }
    Err(format!(
        "plot `{}`: field `{field}`: the values run from {} to {}, a span wider than a float holds; nothing can be drawn at that scale",
        plot.id,
        fmt(lo),
        fmt(hi)
    ))
}

/// The points of a line (in drawing units, in order of x) that change
/// what is seen: per column of pixels the first, the lowest, the highest
/// and the last, in their order. A million-point loss curve is a few
/// thousand points.
fn thin_line(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < points.len() {
        let pixel = points[at].0.floor();
        let end = points[at..].iter().position(|p| p.0.floor() != pixel).map_or(points.len(), |n| at + n);
        let column = &points[at..end];
        let (mut low, mut high) = (0, 0);
        for (i, p) in column.iter().enumerate() {
            if p.1 < column[low].1 {
                low = i;
            }
            if p.1 > column[high].1 {
                high = i;
            }
        }
        let mut keep = vec![0, low, high, column.len() - 1];
        keep.sort_unstable();
        keep.dedup();
        out.extend(keep.into_iter().map(|i| column[i]));
        at = end;
    }
    out
}

fn span(lo: f64, hi: f64) -> f64 {
    if hi > lo { hi - lo } else { 1.0 }
}

/// About five round ticks covering `lo..=hi`.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let raw = (hi - lo) / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * magnitude).find(|s| *s >= raw).unwrap_or(10.0 * magnitude);
    let first = (lo / step).floor();
    let mut out = Vec::new();
    for k in 0..20 {
        let t = (first + k as f64) * step;
        if t > hi + step * 0.5 {
            break;
        }
        out.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
    }
    out
}

/// A centred moving average over `half` points either side, from running
/// sums: linear in the points (`half` is a tenth of them).
fn smooth(points: &[(f64, f64)], half: usize) -> Vec<(f64, f64)> {
    let mut sums = Vec::with_capacity(points.len() + 1);
    sums.push(0.0);
    for p in points {
        sums.push(sums[sums.len() - 1] + p.1);
    }
    (0..points.len())
        .map(|i| {
            let from = i.saturating_sub(half);
            let to = (i + half + 1).min(points.len());
            (points[i].0, (sums[to] - sums[from]) / (to - from) as f64)
        })
        .collect()
}

fn fmt(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round() {
        let t = ticks(0.0, 1.0);
        assert_eq!((t.len(), t[0], t[5]), (6, 0.0, 1.0));
        assert_eq!(ticks(3.0, 47.0)[0], 0.0);
    }

    #[test]
    fn smoothing_averages_neighbours() {
        let points: Vec<(f64, f64)> = (0..5).map(|i| (i as f64, if i % 2 == 0 { 0.0 } else { 3.0 })).collect();
        assert_eq!(smooth(&points, 0), points);
        let smoothed = smooth(&points, 1);
        assert_eq!(smoothed[0], (0.0, 1.5));
        assert_eq!(smoothed[2], (2.0, 2.0));
    }

    #[test]
    fn smoothing_by_running_sums_is_the_plain_average() {
        let points: Vec<(f64, f64)> = (0..200).map(|i| (i as f64, ((i * 37) % 11) as f64 * 0.5)).collect();
        for half in [0, 1, 7, 20, 300] {
            for (i, (x, mean)) in smooth(&points, half).into_iter().enumerate() {
                let (from, to) = (i.saturating_sub(half), (i + half + 1).min(points.len()));
                let plain = points[from..to].iter().map(|p| p.1).sum::<f64>() / (to - from) as f64;
                assert_eq!(x, i as f64);
                assert!((mean - plain).abs() < 1e-9, "{half} {i}: {mean} vs {plain}");
            }
        }
    }

    #[test]
    fn a_thinned_line_keeps_each_columns_ends_and_extremes() {
        let points = [(0.1, 5.0), (0.5, 9.0), (0.7, 1.0), (0.9, 4.0), (0.95, 3.0), (1.2, 2.0), (3.0, 7.0), (3.5, 7.0)];
        assert_eq!(
            thin_line(&points),
            [(0.1, 5.0), (0.5, 9.0), (0.7, 1.0), (0.95, 3.0), (1.2, 2.0), (3.0, 7.0), (3.5, 7.0)]
        );
        let many: Vec<(f64, f64)> = (0..100_000).map(|i| (i as f64 / 1000.0, (i % 13) as f64)).collect();
        let thinned = thin_line(&many);
        assert!(thinned.len() <= 4 * 100, "{}", thinned.len());
        assert_eq!((thinned[0], thinned[thinned.len() - 1]), (many[0], many[many.len() - 1]));
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape("</svg><script>'\"&"), "&lt;/svg&gt;&lt;script&gt;&#39;&quot;&amp;");
    }
}
