//! Colour transforms in OpenCV's 8-bit HSV (hue in 0–179), as albumentations'
//! `HueSaturationValue` computes them.

use image::RgbImage;

const HSV_SHIFT: u32 = 12;

/// OpenCV's `COLOR_RGB2HSV` for one 8-bit pixel: fixed-point with 12 fractional bits,
/// hue in 0–180 (180 only by rounding), saturation and value in 0–255.
pub fn rgb_to_hsv(rgb: [u8; 3]) -> [u8; 3] {
    let [r, g, b] = rgb.map(i32::from);
    let v = r.max(g).max(b);
    let diff = v - r.min(g).min(b);
    let sdiv = if v == 0 {
        0
    } else {
        ((255 << HSV_SHIFT) as f64 / v as f64).round() as i32
    };
    let hdiv = if diff == 0 {
        0
    } else {
        ((180 << HSV_SHIFT) as f64 / (6.0 * diff as f64)).round() as i32
    };
    let s = (diff * sdiv + (1 << (HSV_SHIFT - 1))) >> HSV_SHIFT;
    let h = if v == r {
        g - b
    } else if v == g {
        b - r + 2 * diff
    } else {
        r - g + 4 * diff
    };
    let mut h = (h * hdiv + (1 << (HSV_SHIFT - 1))) >> HSV_SHIFT;
    if h < 0 {
        h += 180;
    }
    [h as u8, s as u8, v as u8]
}

/// OpenCV's `COLOR_HSV2RGB` for one 8-bit pixel (hue range 180), computed in `f32`. The
/// result is truncated, as OpenCV 5's vector code does for every image wider than a few
/// pixels (its scalar tail rounds).
pub fn hsv_to_rgb(hsv: [u8; 3]) -> [u8; 3] {
    let h = f32::from(hsv[0]);
    let s = f32::from(hsv[1]) * (1.0 / 255.0);
    let v = f32::from(hsv[2]) * (1.0 / 255.0);
    let (r, g, b) = if s == 0.0 {
        (v, v, v)
    } else {
        let mut h = h * (6.0f32 / 180.0);
        while h >= 6.0 {
            h -= 6.0;
        }
        let mut sector = h.floor() as usize;
        h -= sector as f32;
        if sector >= 6 {
            sector = 0;
            h = 0.0;
        }
        let tab = [
            v,
            v * (1.0 - s),
            v * (1.0 - s * h),
            v * (1.0 - s * (1.0 - h)),
        ];
        // (b, g, r) indices into `tab` per sector, as OpenCV's `sector_data`.
        const SECTORS: [[usize; 3]; 6] = [
            [1, 3, 0],
            [1, 0, 2],
            [3, 0, 1],
            [0, 2, 1],
            [0, 1, 3],
            [2, 1, 0],
        ];
        let [bi, gi, ri] = SECTORS[sector];
        (tab[ri], tab[gi], tab[bi])
    };
    [r, g, b].map(|c| (c * 255.0).clamp(0.0, 255.0) as u8)
}

/// Shift hue (in OpenCV's 0–179 units, wrapping), saturation and value (8-bit levels,
/// truncated toward zero and saturating), as albumentations' `shift_hsv`. Grey pixels
/// (saturation 0) stay grey.
pub fn hue_saturation_value(img: &RgbImage, hue: f64, saturation: f64, value: f64) -> RgbImage {
    if hue == 0.0 && saturation == 0.0 && value == 0.0 {
        return img.clone();
    }
    let hue_lut: [u8; 256] =
        std::array::from_fn(|h| (h as f64 + hue).rem_euclid(180.0).trunc() as u8);
    let add = |shift: f64| -> [u8; 256] {
        let d = shift.trunc() as i32;
        std::array::from_fn(|x| (x as i32 + d).clamp(0, 255) as u8)
    };
    let (sat_lut, val_lut) = (add(saturation), add(value));
    let mut out = img.clone();
    for p in out.pixels_mut() {
        let [h, s, v] = rgb_to_hsv(p.0);
        let h = if hue != 0.0 { hue_lut[h as usize] } else { h };
        let s = if saturation != 0.0 && s != 0 {
            sat_lut[s as usize]
        } else {
            s
        };
        let v = if value != 0.0 { val_lut[v as usize] } else { v };
        p.0 = hsv_to_rgb([h, s, v]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primaries_round_trip() {
        for rgb in [
            [255, 0, 0],
            [0, 255, 0],
            [0, 0, 255],
            [128, 128, 128],
            [0, 0, 0],
        ] {
            assert_eq!(hsv_to_rgb(rgb_to_hsv(rgb)), rgb);
        }
        assert_eq!(rgb_to_hsv([0, 255, 0]), [60, 255, 255]);
        assert_eq!(rgb_to_hsv([0, 0, 255]), [120, 255, 255]);
    }
}
