//! What `gourd serve` needs of a model folder: a loaded model that answers
//! batches with class probabilities (and the penultimate layer's output, for
//! the input log), and image files turned into its input exactly as the
//! `images` step turned the training images.

use std::io::Cursor;

use image::RgbImage;
use tch::nn::ModuleT;
use tch::{Device, Kind, Tensor};

use crate::{StepError, imaging, model};

/// Probabilities (`n × classes`), and embeddings (`dim`, `n × dim`) when asked for.
pub type Inferred = (Vec<f32>, Option<(usize, Vec<f32>)>);

pub struct ServedModel {
    saved: model::Saved,
    device: Device,
}

/// An image as the model sees it, with what the input log records of it.
pub struct Image {
    pub x: Vec<f32>,
    pub width: u32,
    pub height: u32,
    /// Mean red, green and blue of the original pixels, in 0..1.
    pub rgb_mean: [f32; 3],
    /// Standard deviation over the original pixels and channels, in 0..1.
    pub contrast: f32,
}

impl ServedModel {
    /// Loads the model folder `folder` (`model.json` and `model.safetensors`)
    /// on the CPU, or on the first CUDA device when `cuda` is set.
    pub fn load(folder: &str, cuda: bool) -> Result<ServedModel, StepError> {
        let device = if cuda {
            if !tch::Cuda::is_available() {
                return Err(StepError::Device("serving on CUDA, but libtorch sees no CUDA device".into()));
            }
            Device::Cuda(0)
        } else {
            Device::Cpu
        };
        let saved = model::load(folder, device)?;
        Ok(ServedModel { saved, device })
    }

    /// One row's shape, channels first.
    pub fn input(&self) -> &[i64] {
        &self.saved.input
    }

    pub fn labels(&self) -> &[String] {
        &self.saved.labels
    }

    /// Probabilities (`n × classes`) for `n` rows, and with `embeddings`
    /// the input of the last layer (`n × dim`).
    pub fn infer(&self, x: &[f32], n: usize, embeddings: bool) -> Result<Inferred, StepError> {
        let mut shape = vec![n as i64];
        shape.extend(&self.saved.input);
        let _guard = tch::no_grad_guard();
        let input = Tensor::from_slice(x).view(shape.as_slice()).to_device(self.device);
        let (logits, features) = if embeddings {
            let mut outputs = self.saved.net.forward_all_t(&input, false, None);
            let logits = outputs.pop().ok_or_else(|| StepError::Model("the model has no layers".into()))?;
            (logits, outputs.pop())
        } else {
            (self.saved.net.forward_t(&input, false), None)
        };
        let probabilities = logits.softmax(-1, Kind::Float).to_device(Device::Cpu).contiguous();
        let probabilities = Vec::<f32>::try_from(probabilities.view(-1))?;
        let embeddings = match features {
            Some(f) => {
                let f = f.to_kind(Kind::Float).to_device(Device::Cpu).reshape([n as i64, -1]).contiguous();
                let dim = f.size()[1] as usize;
                Some((dim, Vec::<f32>::try_from(f.view(-1))?))
            }
            None => None,
        };
        Ok((probabilities, embeddings))
    }
}

/// The threads libtorch uses for one batch.
pub fn set_threads(threads: i32) {
    tch::set_num_threads(threads.max(1));
}

/// The largest side of an image file served, in pixels.
pub const MAX_SIDE: u32 = 8192;

/// The most a decoder may allocate for one image: a file that claims more
/// (a decompression bomb) is refused, not decoded.
const MAX_ALLOC: u64 = 128 << 20;

/// An image file's bytes (PNG or JPEG) as the model's input at `size`.
pub fn decode(bytes: &[u8], size: u32) -> Result<Image, StepError> {
    let mut reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| StepError::Data(e.to_string()))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    let image = reader.decode().map_err(|e| StepError::Data(e.to_string()))?;
    Ok(from_rgb(&image.to_rgb8(), size))
}

/// Raw RGB pixels (`height × width × 3`) as the model's input at `size`.
pub fn pixels(rgb: Vec<u8>, width: u32, height: u32, size: u32) -> Result<Image, StepError> {
    let image = RgbImage::from_raw(width, height, rgb)
        .ok_or_else(|| StepError::Data(format!("the pixels do not make a {width}×{height} RGB image")))?;
    Ok(from_rgb(&image, size))
}

fn from_rgb(image: &RgbImage, size: u32) -> Image {
    let (width, height) = image.dimensions();
    let mut sums = [0f64; 3];
    let mut squares = 0f64;
    for pixel in image.pixels() {
        for c in 0..3 {
            let v = f64::from(pixel[c]) / 255.0;
            sums[c] += v;
            squares += v * v;
        }
    }
    let count = f64::from(width) * f64::from(height);
    let rgb_mean = sums.map(|s| (s / count.max(1.0)) as f32);
    let mean = (sums.iter().sum::<f64>()) / (3.0 * count).max(1.0);
    let contrast = (squares / (3.0 * count).max(1.0) - mean * mean).max(0.0).sqrt() as f32;
    Image { x: imaging::standardise(image, size), width, height, rgb_mean, contrast }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PNG's chunk checksum (CRC-32, ISO 3309), bit by bit.
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }

    #[test]
    fn an_image_file_and_its_pixels_give_the_same_input() {
        let mut image = RgbImage::new(20, 12);
        for (x, y, p) in image.enumerate_pixels_mut() {
            *p = image::Rgb([(x * 12) as u8, (y * 20) as u8, 200]);
        }
        let mut png = Vec::new();
        image.write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
        let from_file = decode(&png, 8).unwrap();
        let from_pixels = pixels(image.clone().into_raw(), 20, 12, 8).unwrap();
        assert_eq!(from_file.x, from_pixels.x);
        assert_eq!(from_file.x, imaging::standardise(&image, 8));
        assert_eq!((from_file.width, from_file.height), (20, 12));
        assert!((from_file.rgb_mean[2] - 200.0 / 255.0).abs() < 1e-6);
        assert!(decode(b"not an image", 8).is_err());

        // A file whose header claims 60,000 × 60,000 pixels is refused before
        // anything that size is allocated.
        let mut bomb = png.clone();
        bomb[16..20].copy_from_slice(&60_000u32.to_be_bytes());
        bomb[20..24].copy_from_slice(&60_000u32.to_be_bytes());
        let crc = crc32(&bomb[12..29]);
        bomb[29..33].copy_from_slice(&crc.to_be_bytes());
        let err = decode(&bomb, 8).err().expect("a bomb is refused").to_string();
        assert!(err.to_lowercase().contains("limit"), "{err}");
        assert!(pixels(vec![0; 10], 20, 12, 8).is_err());
    }
}
