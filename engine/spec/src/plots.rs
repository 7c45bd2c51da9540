//! `plots`, a stage's and the pipeline's, as DVC writes them in `dvc.yaml`:
//! checked field by field, so that an error names the plot and the field.

use std::collections::BTreeMap;

use gourd_core::model::{Plot, PlotTemplate};
use gourd_core::path::WsPath;
use serde_json::Value;

/// A stage's plot: the plot, and whether its file is cached (`cache`).
pub(crate) struct StagePlot {
    pub plot: Plot,
    pub cache: bool,
}

const PROPS: [&str; 6] = ["x", "y", "template", "title", "x_label", "y_label"];

/// One entry of a stage's `plots`: `"path"`, `{ path = "…", x = …, … }`, or
/// DVC's `{ "path" = { x = …, … } }`.
pub(crate) fn stage_plot(stage: &str, entry: &Value) -> Result<StagePlot, String> {
    let (path, props) = match entry {
        Value::String(path) => (path.clone(), serde_json::Map::new()),
        Value::Object(fields) if fields.get("path").is_some_and(Value::is_string) => {
            let mut props = fields.clone();
            let path = props.remove("path").and_then(|p| p.as_str().map(String::from)).expect("checked");
            (path, props)
        }
        Value::Object(fields) if fields.len() == 1 => {
            let (path, props) = fields.iter().next().expect("one field");
            match props {
                Value::Object(props) => (path.clone(), props.clone()),
                _ => return Err(format!("field `plots`: the plot `{path}` must be a record of its properties")),
            }
        }
        _ => {
            return Err(
                "field `plots`: expected a file's path, `{ path = \"…\", x = …, y = … }` or `{ \"path\" = { x = …, y = … } }`"
                    .to_string(),
            );
        }
    };
    let mut props = props;
    let cache = match props.remove("cache") {
        None => true,
        Some(Value::Bool(b)) => b,
        Some(_) => return Err(format!("field `plots`: plot `{path}`: `cache` must be a Bool")),
    };
    let file = WsPath::new(&path).map_err(|e| format!("field `plots`: `{path}`: {e}"))?;
    let mut plot = props_to_plot(&path, &props, Some(&file)).map_err(|e| format!("field `plots`: {e}"))?;
    if plot.y.len() != 1 || plot.y[0].0 != file {
        return Err(format!(
            "field `plots`: plot `{path}`: a stage's plot draws its own file; name other files in a top-level `plots`"
        ));
    }
    plot.stage = Some(stage.to_string());
    Ok(StagePlot { plot, cache })
}

/// A problem with a top-level plot: the plot's id, when it has one, to find
/// its line, and the message.
pub(crate) type TopLevelError = (Option<String>, String);

/// The top-level `plots`: a record of id → properties, or DVC's array of
/// paths and `{ id = properties }` records.
pub(crate) fn top_level(value: &Value) -> Result<Vec<Plot>, TopLevelError> {
    let mut plots = Vec::new();
    let mut add = |id: &str, props: &Value| -> Result<(), TopLevelError> {
        let props = match props {
            Value::Object(props) => props.clone(),
            Value::Null => serde_json::Map::new(),
            _ => {
                let message = format!("plot `{id}`: expected a record of its properties ({})", PROPS.join(", "));
                return Err((Some(id.to_string()), message));
            }
        };
        let file = WsPath::new(id).ok();
        plots.push(props_to_plot(id, &props, file.as_ref()).map_err(|m| (Some(id.to_string()), m))?);
        Ok(())
    };
    match value {
        Value::Object(fields) => {
            for (id, props) in fields {
                add(id, props)?;
            }
        }
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::String(path) => add(path, &Value::Null)?,
                    Value::Object(fields) => {
                        for (id, props) in fields {
                            add(id, props)?;
                        }
                    }
                    _ => {
                        return Err((
                            None,
                            "expected a file's path or a record `{ id = { x = …, y = … } }`".to_string(),
                        ));
                    }
                }
            }
        }
        _ => return Err((None, "expected a record of plots by id, or an array of paths and records".to_string())),
    }
    Ok(plots)
}

fn props_to_plot(id: &str, props: &serde_json::Map<String, Value>, file: Option<&WsPath>) -> Result<Plot, String> {
    if let Some(unknown) = props.keys().find(|k| !PROPS.contains(&k.as_str())) {
        let known = PROPS.map(|p| format!("`{p}`")).join(", ");
        return Err(format!("plot `{id}`: unknown field `{unknown}`; the known fields are {known}"));
    }
    let text = |field: &str| -> Result<Option<String>, String> {
        match props.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("plot `{id}`: field `{field}` must be a String")),
        }
    };
    let template = match text("template")? {
        None => PlotTemplate::Linear,
        Some(name) => PlotTemplate::parse(&name).ok_or_else(|| {
            let all: Vec<_> = PlotTemplate::ALL.iter().map(|(n, _)| *n).collect();
            format!("plot `{id}`: field `template`: unknown template `{name}`; the templates are {}", all.join(", "))
        })?,
    };
    let fields = |field: &str, value: &Value| -> Result<Vec<String>, String> {
        match value {
            Value::String(s) => Ok(vec![s.clone()]),
            Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_string) => {
                Ok(items.iter().map(|v| v.as_str().expect("checked").to_string()).collect())
            }
            _ => Err(format!("plot `{id}`: field `{field}`: expected a field's name or an array of names")),
        }
    };
    let path =
        |raw: &str, field: &str| WsPath::new(raw).map_err(|e| format!("plot `{id}`: field `{field}`: `{raw}`: {e}"));
    let y: Vec<(WsPath, Vec<String>)> = match props.get("y") {
        Some(Value::Object(per_file)) => {
            if per_file.is_empty() {
                return Err(format!("plot `{id}`: field `y` names no file"));
            }
            per_file.iter().map(|(f, v)| Ok((path(f, "y")?, fields("y", v)?))).collect::<Result<_, String>>()?
        }
        other => {
            let Some(file) = file else {
                return Err(format!(
                    "plot `{id}`: `{id}` is not a file's path, so `y` must name the files: `y = {{ \"file.json\" = \"field\" }}`"
                ));
            };
            let names = match other {
                None | Some(Value::Null) => vec![],
                Some(v) => fields("y", v)?,
            };
            vec![(file.clone(), names)]
        }
    };
    let mut x = BTreeMap::new();
    match props.get("x") {
        None | Some(Value::Null) => {}
        Some(Value::String(name)) => {
            for (file, _) in &y {
                x.insert(file.clone(), name.clone());
            }
        }
        Some(Value::Object(per_file)) => {
            for (f, name) in per_file {
                let file = path(f, "x")?;
                if !y.iter().any(|(y_file, _)| *y_file == file) {
                    return Err(format!("plot `{id}`: field `x` names `{f}`, which `y` does not"));
                }
                let Value::String(name) = name else {
                    return Err(format!("plot `{id}`: field `x`: the field of `{f}` must be a String"));
                };
                x.insert(file, name.clone());
            }
        }
        Some(_) => return Err(format!("plot `{id}`: field `x`: expected a field's name or a record of file → field")),
    }
    Ok(Plot {
        id: id.to_string(),
        stage: None,
        y,
        x,
        template,
        title: text("title")?,
        x_label: text("x_label")?,
        y_label: text("y_label")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stage_plots_in_each_form() {
        let plain = stage_plot("s", &json!("roc.json")).unwrap();
        assert_eq!(plain.plot.y[0].0.as_str(), "roc.json");
        assert!(plain.cache && plain.plot.x.is_empty());
        let record = stage_plot("s", &json!({"path": "roc.json", "x": "fpr", "y": "tpr", "cache": false})).unwrap();
        assert!(!record.cache);
        assert_eq!(record.plot.y[0].1, ["tpr"]);
        let dvc =
            stage_plot("s", &json!({"cm.csv": {"template": "confusion", "x": "actual", "y": "predicted"}})).unwrap();
        assert_eq!(dvc.plot.template, PlotTemplate::Confusion);
        let err = stage_plot("s", &json!({"path": "a.json", "template": "pie"})).err().unwrap();
        assert!(err.contains("field `template`: unknown template `pie`"), "{err}");
    }

    #[test]
    fn top_level_plots_name_their_files() {
        let plots =
            top_level(&json!({"roc": {"x": "fpr", "y": {"a/roc.json": "tpr", "b/roc.json": ["tpr"]}}})).unwrap();
        assert_eq!(plots[0].y.len(), 2);
        assert_eq!(plots[0].x.len(), 2);
        let (_, err) = top_level(&json!({"../roc": {"y": "tpr"}})).err().unwrap();
        assert!(err.contains("`../roc` is not a file's path"), "{err}");
        let (id, err) = top_level(&json!([{"r.json": {"colour": "red"}}])).err().unwrap();
        assert_eq!(id.as_deref(), Some("r.json"));
        assert!(err.contains("unknown field `colour`"), "{err}");
    }
}
