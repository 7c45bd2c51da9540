//! Reading labelled image folders, and what steps compute from pixels.

use std::path::{Path, PathBuf};

use image::RgbImage;
use image::imageops::FilterType;

use crate::StepError;

/// One image file of a labelled folder.
#[derive(Debug, Clone)]
pub struct Labelled {
    /// Workspace-relative path, `/`-separated.
    pub path: String,
    pub label: String,
    pub file: PathBuf,
}

const EXTENSIONS: &[&str] = &["png", "jpg", "jpeg"];

pub fn is_image(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// The labels (subfolders, sorted) of `root` and their images (sorted).
/// An empty label folder is an error: it would silently become a class with
/// no examples.
pub fn labelled_images(root: &str) -> Result<(Vec<String>, Vec<Labelled>), StepError> {
    let dir = Path::new(root);
    if !dir.is_dir() {
        return Err(StepError::Data(format!("`{root}` is not a folder of labelled images")));
    }
    let mut labels: Vec<String> = fs_err::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| !name.starts_with('.'))
        .collect();
    labels.sort();
    if labels.is_empty() {
        return Err(StepError::Data(format!("`{root}` holds no label folders (one subfolder per label)")));
    }
    let mut images = Vec::new();
    for label in &labels {
        let mut files: Vec<PathBuf> = fs_err::read_dir(dir.join(label))?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_file() && is_image(p))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(StepError::Data(format!("the class folder `{root}/{label}` holds no images (PNG or JPEG)")));
        }
        for file in files {
            let name = file.file_name().unwrap_or_default().to_string_lossy().into_owned();
            images.push(Labelled { path: format!("{root}/{label}/{name}"), label: label.clone(), file });
        }
    }
    Ok((labels, images))
}

pub fn load(path: &Path) -> Result<RgbImage, StepError> {
    let image = image::ImageReader::open(path)
        .map_err(|e| StepError::Image { path: path.to_path_buf(), message: e.to_string() })?
        .with_guessed_format()
        .map_err(|e| StepError::Image { path: path.to_path_buf(), message: e.to_string() })?
        .decode()
        .map_err(|e| StepError::Image { path: path.to_path_buf(), message: e.to_string() })?;
    Ok(image.to_rgb8())
}

/// `size`×`size`, as CHW floats with brightness and contrast normalised:
/// each image is shifted and scaled to mean 0 and standard deviation 1 over
/// all its pixels and channels (colour ratios are kept).
pub fn standardise(image: &RgbImage, size: u32) -> Vec<f32> {
    let resized = image::imageops::resize(image, size, size, FilterType::Triangle);
    let n = (size * size) as usize;
    let mut out = vec![0f32; 3 * n];
    for (i, pixel) in resized.pixels().enumerate() {
        for c in 0..3 {
            out[c * n + i] = f32::from(pixel[c]) / 255.0;
        }
    }
    let mean = out.iter().sum::<f32>() / out.len() as f32;
    let var = out.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / out.len() as f32;
    let std = var.sqrt().max(1e-3);
    for v in &mut out {
        *v = (*v - mean) / std;
    }
    out
}

/// Sharpness: the variance of the Laplacian of the grey image (low = blurry).
pub fn sharpness(image: &RgbImage) -> f64 {
    let (w, h) = image.dimensions();
    if w < 3 || h < 3 {
        return 0.0;
    }
    let grey = |x: u32, y: u32| {
        let p = image.get_pixel(x, y);
        0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2])
    };
    let mut values = Vec::with_capacity(((w - 2) * (h - 2)) as usize);
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            values.push(grey(x - 1, y) + grey(x + 1, y) + grey(x, y - 1) + grey(x, y + 1) - 4.0 * grey(x, y));
        }
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / values.len() as f64
}

/// The fraction of pixels where green clearly dominates red and blue.
pub fn green_fraction(image: &RgbImage) -> f64 {
    let total = (image.width() * image.height()).max(1) as f64;
    let green = image
        .pixels()
        .filter(|p| {
            let (r, g, b) = (f64::from(p[0]), f64::from(p[1]), f64::from(p[2]));
            g > 35.0 && g > 1.15 * r && g > 1.15 * b
        })
        .count();
    green as f64 / total
}

/// A stable, seeded hash of a string, for deterministic splits that do not
/// move when another file is added.
pub fn stable_hash(seed: u64, text: &str) -> u64 {
    // FNV-1a, then a SplitMix64 finaliser.
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standardised_images_have_zero_mean_and_unit_spread() {
        let mut image = RgbImage::new(10, 6);
        for (x, _, p) in image.enumerate_pixels_mut() {
            *p = image::Rgb([(x * 20) as u8, 100, 30]);
        }
        let v = standardise(&image, 4);
        assert_eq!(v.len(), 3 * 16);
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        assert!(mean.abs() < 1e-4);
        let brighter = RgbImage::from_fn(10, 6, |x, _| image::Rgb([(x * 20 + 40) as u8, 140, 70]));
        let w = standardise(&brighter, 4);
        assert!(v.iter().zip(&w).all(|(a, b)| (a - b).abs() < 0.05), "brightness is normalised away");
    }

    #[test]
    fn blur_lowers_sharpness_and_green_is_detected() {
        let checker = RgbImage::from_fn(32, 32, |x, y| {
            if (x / 2 + y / 2) % 2 == 0 { image::Rgb([255, 255, 255]) } else { image::Rgb([0, 0, 0]) }
        });
        let blurred = image::imageops::blur(&checker, 3.0);
        assert!(sharpness(&checker) > 10.0 * sharpness(&blurred));
        let melon = RgbImage::from_pixel(8, 8, image::Rgb([40, 160, 50]));
        let pumpkin = RgbImage::from_pixel(8, 8, image::Rgb([230, 120, 20]));
        assert_eq!(green_fraction(&melon), 1.0);
        assert_eq!(green_fraction(&pumpkin), 0.0);
    }

    #[test]
    fn empty_class_folders_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("good")).unwrap();
        std::fs::create_dir_all(dir.path().join("bad")).unwrap();
        RgbImage::new(4, 4).save(dir.path().join("good/a.png")).unwrap();
        let err = labelled_images(dir.path().to_str().unwrap()).unwrap_err().to_string();
        assert!(err.contains("bad") && err.contains("holds no images"), "{err}");
    }
}
