//! Request bodies to model inputs: the Open Inference Protocol's
//! `{"inputs": [{name, shape, datatype, data}]}` and MLflow's
//! `{"instances": […]}` / `{"inputs": …}`. Tensor data may be flat or
//! nested; it is read straight into one flat buffer, without building a
//! JSON tree of it. Every mistake becomes a [`BadRequest`] naming it.

use std::fmt;

use base64::Engine as _;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::{Decoded, Images, ModelInfo};

/// The name of the model's one input, in metadata and requests.
pub const INPUT: &str = "input";
pub const PROBABILITIES: &str = "probabilities";
pub const LABEL: &str = "label";

#[derive(Debug)]
pub struct BadRequest(pub String);

impl fmt::Display for BadRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn bad(message: impl Into<String>) -> BadRequest {
    BadRequest(message.into())
}

/// Input rows ready for the model.
#[derive(Debug, Default)]
pub struct Rows {
    pub x: Vec<f32>,
    pub n: usize,
    /// For rows that came as images: what the input log records of them.
    pub images: Vec<Option<ImageStats>>,
}

#[derive(Clone, Copy, Debug)]
pub struct ImageStats {
    pub width: u32,
    pub height: u32,
    pub rgb_mean: [f32; 3],
    pub contrast: f32,
}

impl Rows {
    fn push_image(&mut self, decoded: Decoded) {
        self.x.extend_from_slice(&decoded.x);
        self.n += 1;
        self.images.push(Some(ImageStats {
            width: decoded.width,
            height: decoded.height,
            rgb_mean: decoded.rgb_mean,
            contrast: decoded.contrast,
        }));
    }
}

/// Numbers or strings, from a JSON array nested to any depth.
#[derive(Debug, Default)]
struct Flat {
    numbers: Vec<f64>,
    strings: Vec<String>,
    other: Option<&'static str>,
}

impl Flat {
    fn len(&self) -> usize {
        self.numbers.len() + self.strings.len()
    }
}

struct FlatSeed<'a>(&'a mut Flat);

impl<'de> DeserializeSeed<'de> for FlatSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FlatSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("numbers or strings, in an array nested to any depth")
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.0.numbers.push(v);
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.0.numbers.push(v as f64);
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.0.numbers.push(v as f64);
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.0.strings.push(v.to_string());
        Ok(())
    }
    fn visit_string<E>(self, v: String) -> Result<(), E> {
        self.0.strings.push(v);
        Ok(())
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        self.0.other.get_or_insert("booleans");
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.0.other.get_or_insert("nulls");
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.0.other.get_or_insert("objects");
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(FlatSeed(&mut *self.0))?.is_some() {}
        Ok(())
    }
}

impl<'de> Deserialize<'de> for Flat {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Flat, D::Error> {
        let mut flat = Flat::default();
        FlatSeed(&mut flat).deserialize(deserializer)?;
        Ok(flat)
    }
}

#[derive(Deserialize)]
struct InferRequest {
    id: Option<String>,
    inputs: Vec<InferInput>,
    outputs: Option<Vec<RequestedOutput>>,
    #[serde(rename = "parameters")]
    _parameters: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct InferInput {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    data: Flat,
    #[serde(rename = "parameters")]
    _parameters: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct RequestedOutput {
    name: String,
}

/// An Open Inference Protocol request, read.
pub struct Infer {
    pub id: Option<String>,
    pub rows: Rows,
    /// The outputs asked for (all when `None`).
    pub outputs: Option<Vec<String>>,
}

fn parse_json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, BadRequest> {
    serde_json::from_slice(body).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            bad(format!("the body is not valid JSON: {e}"))
        } else if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            bad("the body is not a JSON object: send `{\"inputs\": …}`")
        } else {
            bad(format!("the body does not have the expected fields: {e}"))
        }
    })
}

pub fn infer(body: &[u8], info: &ModelInfo, images: &dyn Images, max_rows: usize) -> Result<Infer, BadRequest> {
    let request: InferRequest = parse_json(body)?;
    let input = match request.inputs.as_slice() {
        [input] => input,
        [] => return Err(bad(format!("`inputs` is empty; the model takes one input, `{INPUT}`"))),
        more => {
            return Err(bad(format!("`inputs` has {} tensors; the model takes one, `{INPUT}`", more.len())));
        }
    };
    if input.name != INPUT {
        return Err(bad(format!("the model has no input named `{}`; its input is `{INPUT}`", input.name)));
    }
    if let Some(outputs) = &request.outputs {
        for output in outputs {
            if output.name != PROBABILITIES && output.name != LABEL {
                return Err(bad(format!(
                    "the model has no output named `{}`; its outputs are `{PROBABILITIES}` and `{LABEL}`",
                    output.name
                )));
            }
        }
    }
    let rows = tensor(input, info, images, max_rows)?;
    Ok(Infer { id: request.id, rows, outputs: request.outputs.map(|o| o.into_iter().map(|o| o.name).collect()) })
}

fn expected_shapes(info: &ModelInfo) -> String {
    let dims: Vec<String> = info.input.iter().map(i64::to_string).collect();
    let mut text = format!("FP32 `[N, {}]`", dims.join(", "));
    if info.image_size().is_some() {
        text.push_str(", UINT8 `[N, HEIGHT, WIDTH, 3]` (RGB pixels) or BYTES `[N]` (image files, base64)");
    }
    text
}

fn tensor(input: &InferInput, info: &ModelInfo, images: &dyn Images, max_rows: usize) -> Result<Rows, BadRequest> {
    let shape = &input.shape;
    let shown = || format!("{shape:?}");
    if let Some(d) = shape.iter().find(|&&d| d < 0) {
        return Err(bad(format!("shape {}: dimension {d} is negative", shown())));
    }
    let n = *shape.first().ok_or_else(|| bad(format!("shape is empty; expected {}", expected_shapes(info))))? as usize;
    if n == 0 {
        return Err(bad("the request has no rows (the shape's first dimension is 0)"));
    }
    if n > max_rows {
        return Err(bad(format!("the request has {n} rows; at most {max_rows} are taken in one request")));
    }
    let elements = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d as usize))
        .ok_or_else(|| bad(format!("shape {} is too large", shown())))?;
    if let Some(other) = input.data.other {
        return Err(bad(format!("`data` holds {other}; it must hold numbers (or strings for BYTES)")));
    }
    match input.datatype.as_str() {
        "FP32" | "FP64" => {
            if shape.len() != info.input.len() + 1 || shape[1..] != info.input[..] {
                return Err(bad(format!(
                    "shape {} does not fit the model's input; expected {}",
                    shown(),
                    expected_shapes(info)
                )));
            }
            if !input.data.strings.is_empty() {
                return Err(bad(format!("datatype {} needs numbers in `data`, not strings", input.datatype)));
            }
            count(input, elements, shape)?;
            Ok(Rows { x: input.data.numbers.iter().map(|&v| v as f32).collect(), n, images: vec![None; n] })
        }
        "UINT8" => {
            let size = info.image_size().ok_or_else(|| bad("UINT8 images need a model whose input is an image"))?;
            let [_, height, width, 3] = shape[..] else {
                return Err(bad(format!("UINT8 shape {} must be [N, HEIGHT, WIDTH, 3] (RGB pixels)", shown())));
            };
            if height == 0 || width == 0 {
                return Err(bad(format!("UINT8 shape {}: an image needs at least one pixel", shown())));
            }
            if !input.data.strings.is_empty() {
                return Err(bad("datatype UINT8 needs numbers in `data`, not strings"));
            }
            count(input, elements, shape)?;
            if let Some(v) = input.data.numbers.iter().find(|v| !(v.fract() == 0.0 && (0.0..=255.0).contains(*v))) {
                return Err(bad(format!("UINT8 data holds {v}; values must be whole numbers from 0 to 255")));
            }
            let per = elements / n;
            let mut rows = Rows::default();
            for (i, chunk) in input.data.numbers.chunks(per).enumerate() {
                let rgb: Vec<u8> = chunk.iter().map(|&v| v as u8).collect();
                let decoded = images
                    .pixels(rgb, width as u32, height as u32, size)
                    .map_err(|e| bad(format!("image {i}: {e}")))?;
                rows.push_image(decoded);
            }
            Ok(rows)
        }
        "BYTES" => {
            let size =
                info.image_size().ok_or_else(|| bad("BYTES (image files) need a model whose input is an image"))?;
            if !(shape.len() == 1 || (shape.len() == 2 && shape[1] == 1)) {
                return Err(bad(format!("BYTES shape {} must be [N]: one image file per element", shown())));
            }
            if !input.data.numbers.is_empty() {
                return Err(bad("datatype BYTES needs strings in `data` (each the base64 of one image file)"));
            }
            count(input, elements, shape)?;
            let mut rows = Rows::default();
            for (i, text) in input.data.strings.iter().enumerate() {
                rows.push_image(image(text, i, images, size)?);
            }
            Ok(rows)
        }
        other => Err(bad(format!("datatype {other} is not taken; send {}", expected_shapes(info)))),
    }
}

fn count(input: &InferInput, elements: usize, shape: &[i64]) -> Result<(), BadRequest> {
    if input.data.len() != elements {
        return Err(bad(format!("shape {shape:?} holds {elements} values, and `data` has {}", input.data.len())));
    }
    Ok(())
}

fn image(text: &str, index: usize, images: &dyn Images, size: u32) -> Result<Decoded, BadRequest> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| bad(format!("element {index} is not base64: {e}")))?;
    images.decode(&bytes, size).map_err(|e| bad(format!("element {index} is not an image gourd can read: {e}")))
}

/// MLflow's scoring body: `{"instances": [...]}` or `{"inputs": ...}`.
#[derive(Deserialize)]
struct Scoring {
    instances: Option<Items>,
    inputs: Option<Items>,
    dataframe_split: Option<IgnoredAny>,
    dataframe_records: Option<IgnoredAny>,
    #[serde(rename = "params")]
    _params: Option<IgnoredAny>,
}

/// Instances: image files (base64 strings, or `{"b64": …}`) or tensors.
#[derive(Default)]
struct Items(Vec<Item>);

enum Item {
    Image(String),
    Tensor(Flat),
    Other(&'static str),
}

impl<'de> Deserialize<'de> for Items {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Items, D::Error> {
        struct ItemsVisitor;
        impl<'de> Visitor<'de> for ItemsVisitor {
            type Value = Items;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of instances, or an object with one named list")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Items, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Item>()? {
                    items.push(item);
                }
                Ok(Items(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Items, A::Error> {
                let mut found: Option<Items> = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key != INPUT {
                        return Err(de::Error::custom(format!(
                            "`inputs` names the tensor `{key}`; the model's input is `{INPUT}`"
                        )));
                    }
                    if found.is_some() {
                        return Err(de::Error::custom(format!(
                            "`inputs` names more than one tensor (`{key}` too); the model takes one"
                        )));
                    }
                    found = Some(map.next_value::<Items>()?);
                }
                found.ok_or_else(|| de::Error::custom("`inputs` is an empty object"))
            }
        }
        deserializer.deserialize_any(ItemsVisitor)
    }
}

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Item, D::Error> {
        struct ItemVisitor;
        impl<'de> Visitor<'de> for ItemVisitor {
            type Value = Item;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an instance: a base64 image, {\"b64\": …} or a nested list of numbers")
            }
            fn visit_str<E>(self, v: &str) -> Result<Item, E> {
                Ok(Item::Image(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<Item, E> {
                Ok(Item::Image(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Item, A::Error> {
                let mut flat = Flat::default();
                FlatSeed(&mut flat).visit_seq(seq)?;
                Ok(Item::Tensor(flat))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Item, A::Error> {
                let mut image = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key == "b64" {
                        image = Some(map.next_value::<String>()?);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(image.map_or(Item::Other("an object without `b64`"), Item::Image))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Item, E> {
                Ok(Item::Other("a single number"))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Item, E> {
                Ok(Item::Other("a single number"))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Item, E> {
                Ok(Item::Other("a single number"))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Item, E> {
                Ok(Item::Other("a boolean"))
            }
            fn visit_unit<E>(self) -> Result<Item, E> {
                Ok(Item::Other("null"))
            }
        }
        deserializer.deserialize_any(ItemVisitor)
    }
}

pub fn scoring(body: &[u8], info: &ModelInfo, images: &dyn Images, max_rows: usize) -> Result<Rows, BadRequest> {
    let request: Scoring = parse_json(body)?;
    if request.dataframe_split.is_some() || request.dataframe_records.is_some() {
        return Err(bad("data frames are not taken by an image model; send `instances` or `inputs`"));
    }
    let items = match (request.instances, request.inputs) {
        (Some(items), None) | (None, Some(items)) => items.0,
        (Some(_), Some(_)) => return Err(bad("send either `instances` or `inputs`, not both")),
        (None, None) => return Err(bad("the body has neither `instances` nor `inputs`")),
    };
    if items.is_empty() {
        return Err(bad("the request has no instances"));
    }
    if items.len() > max_rows {
        return Err(bad(format!(
            "the request has {} instances; at most {max_rows} are taken in one request",
            items.len()
        )));
    }
    let row_len = info.row_len();
    let mut rows = Rows::default();
    for (i, item) in items.into_iter().enumerate() {
        match item {
            Item::Image(text) => {
                let size = info.image_size().ok_or_else(|| bad("image files need a model whose input is an image"))?;
                rows.push_image(image(&text, i, images, size)?);
            }
            Item::Tensor(flat) => {
                if let Some(other) = flat.other {
                    return Err(bad(format!("instance {i} holds {other}; a tensor holds numbers")));
                }
                if !flat.strings.is_empty() {
                    return Err(bad(format!("instance {i} mixes strings into a tensor")));
                }
                if flat.numbers.len() != row_len {
                    return Err(bad(format!(
                        "instance {i} has {} values; the model's input {:?} takes {row_len}",
                        flat.numbers.len(),
                        info.input
                    )));
                }
                rows.x.extend(flat.numbers.iter().map(|&v| v as f32));
                rows.n += 1;
                rows.images.push(None);
            }
            Item::Other(what) => return Err(bad(format!("instance {i} is {what}; {}", expected_scoring()))),
        }
    }
    Ok(rows)
}

fn expected_scoring() -> &'static str {
    "send base64 image files, {\"b64\": …} objects, or nested lists of numbers of the model's input shape"
}
