//! Models described in the pipeline as a list of layers:
//!
//! ```nickel
//! model = [
//!   { type = "conv2d", out = 16, kernel = 3, padding = 1 },
//!   { type = "batchnorm" }, { type = "relu" }, { type = "maxpool2d", kernel = 2 },
//!   { type = "flatten" }, { type = "dropout", p = 0.2 }, { type = "linear", out = 3 },
//! ]
//! ```
//!
//! Shapes are worked out layer by layer before anything is built, so a
//! mismatch is reported with the layer's position before training starts.

use serde_json::Value;
use tch::nn::{self, ModuleT};

use crate::StepError;

#[derive(Debug, Clone, PartialEq)]
pub enum Layer {
    Conv2d { out: i64, kernel: i64, stride: i64, padding: i64 },
    Relu,
    MaxPool2d { kernel: i64, stride: i64 },
    Flatten,
    Linear { out: i64 },
    Dropout { p: f64 },
    BatchNorm,
}

const TYPES: &str = "conv2d, relu, maxpool2d, flatten, linear, dropout, batchnorm";

pub fn parse(layers: &[Value]) -> Result<Vec<Layer>, StepError> {
    if layers.is_empty() {
        return Err(StepError::Model("the model has no layers".into()));
    }
    layers.iter().enumerate().map(|(i, v)| parse_layer(i + 1, v)).collect()
}

fn parse_layer(position: usize, value: &Value) -> Result<Layer, StepError> {
    let err = |message: String| StepError::Model(format!("layer {position}: {message}"));
    let object = value.as_object().ok_or_else(|| err("expected a record `{ type = ... }`".into()))?;
    let kind = object.get("type").and_then(Value::as_str).ok_or_else(|| err("missing `type`".into()))?;
    let known: &[&str] = match kind {
        "conv2d" => &["type", "out", "kernel", "stride", "padding"],
        "maxpool2d" => &["type", "kernel", "stride"],
        "linear" => &["type", "out"],
        "dropout" => &["type", "p"],
        "relu" | "flatten" | "batchnorm" => &["type"],
        other => return Err(err(format!("unknown layer type `{other}`; the known types are {TYPES}"))),
    };
    if let Some(extra) = object.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(err(format!("`{kind}` has no field `{extra}` (its fields: {})", known[1..].join(", "))));
    }
    let int = |name: &str, default: Option<i64>| -> Result<i64, StepError> {
        match object.get(name) {
            Some(v) => v
                .as_i64()
                .filter(|&n| n > 0 || (name == "padding" && n == 0))
                .ok_or_else(|| err(format!("`{name}` must be a positive whole number"))),
            None => default.ok_or_else(|| err(format!("`{kind}` needs `{name}`"))),
        }
    };
    Ok(match kind {
        "conv2d" => Layer::Conv2d {
            out: int("out", None)?,
            kernel: int("kernel", None)?,
            stride: int("stride", Some(1))?,
            padding: int("padding", Some(0))?,
        },
        "maxpool2d" => {
            let kernel = int("kernel", None)?;
            Layer::MaxPool2d { kernel, stride: int("stride", Some(kernel))? }
        }
        "linear" => Layer::Linear { out: int("out", None)? },
        "dropout" => {
            let p = object.get("p").and_then(Value::as_f64).unwrap_or(0.5);
            if !(0.0..1.0).contains(&p) {
                return Err(err("`p` must be at least 0 and below 1".into()));
            }
            Layer::Dropout { p }
        }
        "relu" => Layer::Relu,
        "flatten" => Layer::Flatten,
        _ => Layer::BatchNorm,
    })
}

fn name(layer: &Layer) -> &'static str {
    match layer {
        Layer::Conv2d { .. } => "conv2d",
        Layer::Relu => "relu",
        Layer::MaxPool2d { .. } => "maxpool2d",
        Layer::Flatten => "flatten",
        Layer::Linear { .. } => "linear",
        Layer::Dropout { .. } => "dropout",
        Layer::BatchNorm => "batchnorm",
    }
}

fn show(shape: &[i64]) -> String {
    shape.iter().map(i64::to_string).collect::<Vec<_>>().join("x")
}

/// The shape after each layer (without the batch dimension), checking that
/// every layer fits its input and that the model ends in one score per class.
pub fn shapes(layers: &[Layer], input: &[i64], classes: i64) -> Result<Vec<Vec<i64>>, StepError> {
    let mut shape = input.to_vec();
    let mut out = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        let err = |message: String| StepError::Model(format!("layer {} ({}): {message}", i + 1, name(layer)));
        shape = match *layer {
            Layer::Conv2d { out, kernel, stride, padding } => {
                let [_, h, w] = shape[..] else {
                    return Err(err(format!(
                        "expects an image-shaped input (channels x height x width), gets {}",
                        show(&shape)
                    )));
                };
                if h + 2 * padding < kernel || w + 2 * padding < kernel {
                    return Err(err(format!("kernel {kernel} does not fit its {h}x{w} input (padding {padding})")));
                }
                vec![out, (h + 2 * padding - kernel) / stride + 1, (w + 2 * padding - kernel) / stride + 1]
            }
            Layer::MaxPool2d { kernel, stride } => {
                let [c, h, w] = shape[..] else {
                    return Err(err(format!("expects an image-shaped input, gets {}", show(&shape))));
                };
                if h < kernel || w < kernel {
                    return Err(err(format!("kernel {kernel} does not fit its {h}x{w} input")));
                }
                vec![c, (h - kernel) / stride + 1, (w - kernel) / stride + 1]
            }
            Layer::Flatten => vec![shape.iter().product()],
            Layer::Linear { out } => {
                if shape.len() != 1 {
                    return Err(err(format!(
                        "expects a flat input but gets {}: add a `flatten` layer before it",
                        show(&shape)
                    )));
                }
                vec![out]
            }
            Layer::Relu | Layer::Dropout { .. } => shape,
            Layer::BatchNorm => {
                if shape.len() != 3 && shape.len() != 1 {
                    return Err(err(format!("expects an image-shaped or flat input, gets {}", show(&shape))));
                }
                shape
            }
        };
        out.push(shape.clone());
    }
    if shape != [classes] {
        return Err(StepError::Model(format!(
            "the last layer gives {} but the model must give one score per class ({classes}): end with `{{ type = \"linear\", out = {classes} }}`",
            show(&shape)
        )));
    }
    Ok(out)
}

/// Builds the network under `root`; parameters are named `layerN.weight`.
pub fn build(root: &nn::Path, layers: &[Layer], shapes_in: &[Vec<i64>]) -> nn::SequentialT {
    let mut net = nn::seq_t();
    for (i, layer) in layers.iter().enumerate() {
        let input = &shapes_in[i];
        let path = root / format!("layer{i}");
        net = match *layer {
            Layer::Conv2d { out, kernel, stride, padding } => {
                let config = nn::ConvConfig { stride, padding, ..Default::default() };
                net.add(nn::conv2d(path, input[0], out, kernel, config))
            }
            Layer::Relu => net.add_fn(|x| x.relu()),
            Layer::MaxPool2d { kernel, stride } => {
                net.add_fn(move |x| x.max_pool2d([kernel, kernel], [stride, stride], [0, 0], [1, 1], false))
            }
            Layer::Flatten => net.add_fn(|x| x.flatten(1, -1)),
            Layer::Linear { out } => net.add(nn::linear(path, input[0], out, Default::default())),
            Layer::Dropout { p } => net.add_fn_t(move |x, train| x.dropout(p, train)),
            Layer::BatchNorm if input.len() == 3 => net.add(nn::batch_norm2d(path, input[0], Default::default())),
            Layer::BatchNorm => net.add(nn::batch_norm1d(path, input[0], Default::default())),
        };
    }
    net
}

/// A model folder: weights and the description they need.
pub struct Saved {
    pub input: Vec<i64>,
    pub labels: Vec<String>,
    pub net: nn::SequentialT,
    /// Owns the weights `net` uses.
    _vs: nn::VarStore,
}

pub fn load(folder: &str, device: tch::Device) -> Result<Saved, StepError> {
    let dir = std::path::Path::new(folder);
    let description: Value = serde_json::from_slice(&fs_err::read(dir.join("model.json"))?)
        .map_err(|e| StepError::Model(format!("`{folder}/model.json`: {e}")))?;
    let layers = parse(description["layers"].as_array().map(Vec::as_slice).unwrap_or(&[]))?;
    let input: Vec<i64> = serde_json::from_value(description["input"].clone())
        .map_err(|e| StepError::Model(format!("`{folder}/model.json`: input: {e}")))?;
    let labels: Vec<String> = serde_json::from_value(description["labels"].clone())
        .map_err(|e| StepError::Model(format!("`{folder}/model.json`: labels: {e}")))?;
    let mut inputs = vec![input.clone()];
    inputs.extend(shapes(&layers, &input, labels.len() as i64)?);
    let mut vs = nn::VarStore::new(device);
    let net = build(&vs.root(), &layers, &inputs);
    vs.load(dir.join("model.safetensors"))?;
    Ok(Saved { input, labels, net, _vs: vs })
}

/// Logits for `x` in evaluation mode, in batches.
pub fn predict(net: &nn::SequentialT, x: &tch::Tensor) -> tch::Tensor {
    let _guard = tch::no_grad_guard();
    let n = x.size()[0];
    let chunks: Vec<tch::Tensor> =
        (0..n).step_by(256).map(|start| net.forward_t(&x.narrow(0, start, (n - start).min(256)), false)).collect();
    tch::Tensor::cat(&chunks, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn layers(v: Value) -> Vec<Value> {
        v.as_array().unwrap().clone()
    }

    #[test]
    fn shapes_flow_through_a_small_cnn() {
        let model = parse(&layers(json!([
            {"type": "conv2d", "out": 8, "kernel": 3, "padding": 1}, {"type": "relu"},
            {"type": "maxpool2d", "kernel": 2}, {"type": "batchnorm"}, {"type": "flatten"},
            {"type": "dropout", "p": 0.1}, {"type": "linear", "out": 3},
        ])))
        .unwrap();
        let s = shapes(&model, &[3, 16, 16], 3).unwrap();
        assert_eq!(s[0], vec![8, 16, 16]);
        assert_eq!(s[2], vec![8, 8, 8]);
        assert_eq!(s[4], vec![512]);
        assert_eq!(s.last().unwrap(), &vec![3]);
    }

    #[test]
    fn unknown_layer_is_named_with_its_position() {
        let err = parse(&layers(json!([{"type": "relu"}, {"type": "conv3d", "out": 2}]))).unwrap_err().to_string();
        assert!(err.contains("layer 2") && err.contains("conv3d") && err.contains("known types"), "{err}");
    }

    #[test]
    fn shape_mismatch_is_named_with_its_position() {
        let model =
            parse(&layers(json!([{"type": "conv2d", "out": 4, "kernel": 3}, {"type": "linear", "out": 3}]))).unwrap();
        let err = shapes(&model, &[3, 8, 8], 3).unwrap_err().to_string();
        assert!(err.contains("layer 2 (linear)") && err.contains("flatten"), "{err}");
        let model = parse(&layers(json!([{"type": "maxpool2d", "kernel": 4}, {"type": "maxpool2d", "kernel": 4}, {"type": "flatten"}, {"type": "linear", "out": 3}]))).unwrap();
        let err = shapes(&model, &[3, 8, 8], 3).unwrap_err().to_string();
        assert!(err.contains("layer 2 (maxpool2d)") && err.contains("does not fit"), "{err}");
        let model = parse(&layers(json!([{"type": "flatten"}, {"type": "linear", "out": 5}]))).unwrap();
        assert!(shapes(&model, &[3, 8, 8], 3).unwrap_err().to_string().contains("one score per class"));
    }
}
