//! A farmer's photos of her pumpkins, labelled `good`, `fine` and `bad`, and
//! the photos citizens sent: a few watermelons, some too small, some blurry,
//! all filed under the labels the senders chose. Drawn, not downloaded, and
//! the same bytes for the same seed.

use std::io;
use std::path::Path;

use image::{Rgb, RgbImage};

pub const LABELS: [&str; 3] = ["good", "fine", "bad"];

pub struct Options {
    pub per_class: usize,
    pub size: u32,
    pub seed: u64,
    pub watermelons: usize,
    pub blurry: usize,
    pub tiny: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options { per_class: 80, size: 48, seed: 2026, watermelons: 6, blurry: 6, tiny: 4 }
    }
}

/// SplitMix64: small, fast and the same everywhere.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5851_f42d_4c95_7f2d)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Clone, Copy)]
pub enum Subject {
    Pumpkin { quality: usize },
    Watermelon,
}

/// Where a batch of pumpkins grew: the farmer's own field, or another farm
/// whose pumpkins are paler and larger (a shifted distribution).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Farm {
    Home,
    Other,
}

impl Farm {
    /// How far colours move towards white, and how much larger pumpkins are.
    fn style(self) -> (f64, f64) {
        match self {
            Farm::Home => (0.0, 1.0),
            Farm::Other => (0.45, 1.3),
        }
    }
}

/// Draws one photo of `subject` on a `size`×`size` canvas.
pub fn draw(subject: Subject, size: u32, rng: &mut Rng) -> RgbImage {
    draw_from(subject, size, rng, Farm::Home)
}

/// Draws one photo of `subject`, grown at `farm`.
pub fn draw_from(subject: Subject, size: u32, rng: &mut Rng, farm: Farm) -> RgbImage {
    let (pale, scale) = farm.style();
    let s = size as f64;
    let backgrounds = [
        [200.0, 190.0, 170.0],
        [150.0, 150.0, 155.0],
        [170.0, 185.0, 205.0],
        [120.0, 95.0, 75.0],
        [215.0, 210.0, 200.0],
    ];
    let bg = backgrounds[(rng.next() % backgrounds.len() as u64) as usize];
    let (cx, cy) = (s / 2.0 + rng.range(-s * 0.08, s * 0.08), s / 2.0 + rng.range(-s * 0.06, s * 0.08));
    let rx = s * rng.range(0.28, 0.38) * scale;
    let (base, spots, squash) = match subject {
        Subject::Pumpkin { quality: 0 } => {
            ([rng.range(235.0, 255.0), rng.range(115.0, 145.0), rng.range(10.0, 35.0)], 0, rng.range(0.8, 0.92))
        }
        Subject::Pumpkin { quality: 1 } => (
            [rng.range(225.0, 245.0), rng.range(165.0, 190.0), rng.range(70.0, 100.0)],
            1 + rng.next() % 3,
            rng.range(0.78, 0.9),
        ),
        Subject::Pumpkin { .. } => (
            [rng.range(150.0, 180.0), rng.range(85.0, 105.0), rng.range(35.0, 55.0)],
            5 + rng.next() % 7,
            rng.range(0.6, 0.78),
        ),
        Subject::Watermelon => {
            ([rng.range(45.0, 75.0), rng.range(140.0, 175.0), rng.range(45.0, 75.0)], 0, rng.range(0.7, 0.85))
        }
    };
    let base = base.map(|c| c + (255.0 - c) * pale);
    let ry = rx * squash;
    let ribs = rng.range(5.0, 8.0);
    let spot_list: Vec<(f64, f64, f64)> = (0..spots)
        .map(|_| {
            let a = rng.range(0.0, std::f64::consts::TAU);
            let d = rng.range(0.0, 0.7);
            (cx + a.cos() * d * rx, cy + a.sin() * d * ry, rng.range(1.2, s * 0.07))
        })
        .collect();
    let light = rng.range(0.7, 1.3);
    let contrast = rng.range(0.75, 1.25);
    let mut image = RgbImage::new(size, size);
    for (x, y, pixel) in image.enumerate_pixels_mut() {
        let (px, py) = (x as f64 + 0.5, y as f64 + 0.5);
        let (dx, dy) = ((px - cx) / rx, (py - cy) / ry);
        let inside = dx * dx + dy * dy <= 1.0;
        let mut colour = bg;
        if inside {
            colour = base;
            let shade = match subject {
                // Ribs of a pumpkin, stripes of a watermelon.
                Subject::Pumpkin { .. } => 0.82 + 0.18 * (dx * ribs).cos().abs(),
                Subject::Watermelon => {
                    if (dx * ribs * 1.5).sin() > 0.3 {
                        0.55
                    } else {
                        1.0
                    }
                }
            };
            let rim = 1.0 - 0.25 * (dx * dx + dy * dy);
            colour = [colour[0] * shade * rim, colour[1] * shade * rim, colour[2] * shade * rim];
            for &(sx, sy, r) in &spot_list {
                if (px - sx).powi(2) + (py - sy).powi(2) < r * r {
                    colour = [70.0, 50.0, 30.0];
                }
            }
        } else if let Subject::Pumpkin { .. } = subject {
            // The stem.
            if (px - cx).abs() < s * 0.04 && py < cy - ry + 1.0 && py > cy - ry - s * 0.1 {
                colour = [90.0, 110.0, 40.0];
            }
        }
        let noise = rng.range(-8.0, 8.0);
        let channel = |c: f64| ((128.0 + (c * light - 128.0) * contrast) + noise).clamp(0.0, 255.0) as u8;
        *pixel = Rgb([channel(colour[0]), channel(colour[1]), channel(colour[2])]);
    }
    image
}

pub struct Summary {
    pub written: usize,
    pub watermelons: Vec<String>,
    pub blurry: Vec<String>,
    pub tiny: Vec<String>,
}

/// Writes the photo set under `dir/LABEL/`. Every third photo is a JPEG.
pub fn generate(dir: &Path, options: &Options) -> io::Result<Summary> {
    let mut rng = Rng::new(options.seed);
    let mut summary = Summary { written: 0, watermelons: vec![], blurry: vec![], tiny: vec![] };
    let mut save = |image: &RgbImage, label: &str, name: &str, index: usize| -> io::Result<String> {
        let folder = dir.join(label);
        std::fs::create_dir_all(&folder)?;
        let ext = if index % 3 == 2 { "jpg" } else { "png" };
        let path = folder.join(format!("{name}.{ext}"));
        image.save(&path).map_err(io::Error::other)?;
        summary.written += 1;
        Ok(format!("{label}/{name}.{ext}"))
    };
    for (quality, label) in LABELS.iter().enumerate() {
        for i in 0..options.per_class {
            let image = draw(Subject::Pumpkin { quality }, options.size, &mut rng);
            save(&image, label, &format!("farm-{i:03}"), i)?;
        }
    }
    // Citizens' photos, filed under whatever label the sender chose.
    let mut citizen = 0;
    let label = |rng: &mut Rng| LABELS[(rng.next() % 3) as usize];
    for _ in 0..options.watermelons {
        let image = draw(Subject::Watermelon, options.size, &mut rng);
        let l = label(&mut rng);
        let path = save(&image, l, &format!("citizen-{citizen:03}"), citizen)?;
        summary.watermelons.push(path);
        citizen += 1;
    }
    for _ in 0..options.blurry {
        let quality = (rng.next() % 3) as usize;
        let image = image::imageops::blur(&draw(Subject::Pumpkin { quality }, options.size, &mut rng), 2.5);
        let path = save(&image, LABELS[quality], &format!("citizen-{citizen:03}"), citizen)?;
        summary.blurry.push(path);
        citizen += 1;
    }
    for _ in 0..options.tiny {
        let quality = (rng.next() % 3) as usize;
        let image = draw(Subject::Pumpkin { quality }, 12, &mut rng);
        let path = save(&image, LABELS[quality], &format!("citizen-{citizen:03}"), citizen)?;
        summary.tiny.push(path);
        citizen += 1;
    }
    Ok(summary)
}

/// A labelled batch of `per_class` photos per label from `farm`, as a new
/// delivery the farmer has sorted: `dir/LABEL/batch-SEED-NNN.png`.
pub fn batch(dir: &Path, per_class: usize, seed: u64, farm: Farm) -> io::Result<usize> {
    let mut rng = Rng::new(seed);
    let mut written = 0;
    for (quality, label) in LABELS.iter().enumerate() {
        let folder = dir.join(label);
        std::fs::create_dir_all(&folder)?;
        for i in 0..per_class {
            let image = draw_from(Subject::Pumpkin { quality }, Options::default().size, &mut rng, farm);
            image.save(folder.join(format!("batch-{seed}-{i:03}.png"))).map_err(io::Error::other)?;
            written += 1;
        }
    }
    Ok(written)
}

/// One more photo of a good pumpkin, as a new delivery would bring.
pub fn one_more(dir: &Path, seed: u64, name: &str) -> io::Result<String> {
    let mut rng = Rng::new(seed);
    let image = draw(Subject::Pumpkin { quality: 0 }, Options::default().size, &mut rng);
    std::fs::create_dir_all(dir.join("good"))?;
    let path = format!("good/{name}.png");
    image.save(dir.join(&path)).map_err(io::Error::other)?;
    Ok(path)
}
