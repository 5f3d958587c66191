//! The last step of every pipeline: 8-bit RGB to channels-first `f32`, as torchvision's
//! `ToTensor` then `Normalize` compute it (`x / 255`, then `(x − mean) / std`, in `f32`).

use image::RgbImage;
use serde::{Deserialize, Serialize};

/// Per-channel mean and standard deviation (of `[0, 1]` values).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Normalise {
    /// Channel means (default ImageNet's).
    #[serde(default = "imagenet_mean")]
    pub mean: [f32; 3],
    /// Channel standard deviations (default ImageNet's).
    #[serde(default = "imagenet_std")]
    pub std: [f32; 3],
}

fn imagenet_mean() -> [f32; 3] {
    [0.485, 0.456, 0.406]
}
fn imagenet_std() -> [f32; 3] {
    [0.229, 0.224, 0.225]
}

impl Default for Normalise {
    /// ImageNet's statistics, which DINOv2 and ConvNeXt-V2 were trained with.
    fn default() -> Self {
        Self {
            mean: imagenet_mean(),
            std: imagenet_std(),
        }
    }
}

impl Normalise {
    /// Append `img` as normalised `[3, H, W]` values to `out`.
    pub fn append_chw(&self, img: &RgbImage, out: &mut Vec<f32>) {
        let plane = (img.width() * img.height()) as usize;
        let start = out.len();
        out.resize(start + 3 * plane, 0.0);
        let (r, rest) = out[start..].split_at_mut(plane);
        let (g, b) = rest.split_at_mut(plane);
        for (i, p) in img.pixels().enumerate() {
            r[i] = (f32::from(p[0]) / 255.0 - self.mean[0]) / self.std[0];
            g[i] = (f32::from(p[1]) / 255.0 - self.mean[1]) / self.std[1];
            b[i] = (f32::from(p[2]) / 255.0 - self.mean[2]) / self.std[2];
        }
    }

    /// `img` as normalised `[3, H, W]` values.
    pub fn chw(&self, img: &RgbImage) -> Vec<f32> {
        let mut out = Vec::new();
        self.append_chw(img, &mut out);
        out
    }
}
