//! Rain and fog as albumentations 2 draws them (`RandomRain`, `RandomFog`), with
//! OpenCV's line and circle rasterisation. The parameters are drawn by
//! [`RainParams::draw`] and [`FogParams::draw`] and applied by [`rain`] and [`fog`].

use image::RgbImage;

use crate::blur::{box_blur, cv_gaussian_blur};
use crate::rng::AugRng;

/// One rain image's parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct RainParams {
    /// Horizontal offset of each drop's lower end, in pixels.
    pub slant: f64,
    /// Drop length in pixels.
    pub drop_length: u32,
    /// Drop width in pixels (1 is OpenCV's thin line; wider drops are drawn as that many
    /// adjacent columns).
    pub drop_width: u32,
    /// Drop colour (RGB).
    pub drop_color: [u8; 3],
    /// Box-blur size of the rain layer (≤ 1: none).
    pub blur: u32,
    /// Brightness factor applied at the end.
    pub brightness: f64,
    /// Upper end `(x, y)` of every drop.
    pub drops: Vec<(i32, i32)>,
}

impl RainParams {
    /// albumentations' `rain_type = "default"` draws for a `width × height` image: a drop
    /// per three rows, length `height / 8` unless given, slant uniform in `slant`.
    #[allow(clippy::too_many_arguments)]
    pub fn draw(
        width: u32,
        height: u32,
        slant: (f64, f64),
        drop_length: Option<u32>,
        drop_width: u32,
        drop_color: [u8; 3],
        blur: u32,
        brightness: f64,
        rng: &mut AugRng,
    ) -> Self {
        let drop_length = drop_length.unwrap_or((height / 8).max(1));
        let slant = rng.uniform(slant.0, slant.1);
        let n = height / 3;
        let y_hi = i64::from(height) - i64::from(drop_length);
        let drops = if y_hi > 0 && width > 0 {
            (0..n)
                .map(|_| {
                    let x = rng.int(0, i64::from(width) - 1) as i32;
                    let y = rng.int(0, y_hi - 1) as i32;
                    (x, y)
                })
                .collect()
        } else {
            Vec::new()
        };
        Self {
            slant,
            drop_length,
            drop_width: drop_width.max(1),
            drop_color,
            blur,
            brightness,
            drops,
        }
    }
}

/// OpenCV's `clipLine`: move the end points of a segment onto the `w × h` image's border
/// (truncating toward zero); `None` when the segment misses the image.
fn clip_line(p0: (i32, i32), p1: (i32, i32), w: i32, h: i32) -> Option<((i32, i32), (i32, i32))> {
    let (right, bottom) = (i64::from(w) - 1, i64::from(h) - 1);
    let (mut x1, mut y1) = (i64::from(p0.0), i64::from(p0.1));
    let (mut x2, mut y2) = (i64::from(p1.0), i64::from(p1.1));
    let code = |x: i64, y: i64| {
        i32::from(x < 0)
            + i32::from(x > right) * 2
            + i32::from(y < 0) * 4
            + i32::from(y > bottom) * 8
    };
    let (mut c1, mut c2) = (code(x1, y1), code(x2, y2));
    if (c1 & c2) == 0 && (c1 | c2) != 0 {
        if c1 & 12 != 0 {
            let a = if c1 < 8 { 0 } else { bottom };
            x1 += ((a - y1) as f64 * (x2 - x1) as f64 / (y2 - y1) as f64) as i64;
            y1 = a;
            c1 = i32::from(x1 < 0) + i32::from(x1 > right) * 2;
        }
        if c2 & 12 != 0 {
            let a = if c2 < 8 { 0 } else { bottom };
            x2 += ((a - y2) as f64 * (x2 - x1) as f64 / (y2 - y1) as f64) as i64;
            y2 = a;
            c2 = i32::from(x2 < 0) + i32::from(x2 > right) * 2;
        }
        if (c1 & c2) == 0 && (c1 | c2) != 0 {
            if c1 != 0 {
                let a = if c1 == 1 { 0 } else { right };
                y1 += ((a - x1) as f64 * (y2 - y1) as f64 / (x2 - x1) as f64) as i64;
                x1 = a;
                c1 = 0;
            }
            if c2 != 0 {
                let a = if c2 == 1 { 0 } else { right };
                y2 += ((a - x2) as f64 * (y2 - y1) as f64 / (x2 - x1) as f64) as i64;
                x2 = a;
                c2 = 0;
            }
        }
    }
    ((c1 | c2) == 0).then_some(((x1 as i32, y1 as i32), (x2 as i32, y2 as i32)))
}

/// Visit the pixels of OpenCV's 4-connected line from `p0` to `p1` (`LINE_4`: clipped to
/// `w × h` first, then drawn left to right).
fn line4(p0: (i32, i32), p1: (i32, i32), w: i32, h: i32, mut plot: impl FnMut(i32, i32)) {
    let Some((mut a, mut b)) = clip_line(p0, p1, w, h) else {
        return;
    };
    if b.0 < a.0 {
        std::mem::swap(&mut a, &mut b);
    }
    let (dx, dy) = (b.0 - a.0, (b.1 - a.1).abs());
    let ystep = if b.1 < a.1 { -1 } else { 1 };
    // Major axis is the longer one; `err < 0` steps the minor axis instead.
    let steep = dy > dx;
    let (major, minor) = if steep { (dy, dx) } else { (dx, dy) };
    let (mut x, mut y) = a;
    let mut err = 0i32;
    for _ in 0..=(major + minor) {
        if x >= 0 && y >= 0 && x < w && y < h {
            plot(x, y);
        }
        let minor_step = err < 0;
        if minor_step {
            err += 2 * major;
        } else {
            err -= 2 * minor;
        }
        match (steep, minor_step) {
            (false, false) | (true, true) => x += 1,
            (false, true) | (true, false) => y += ystep,
        }
    }
}

/// Draw the drops, box-blur them, add them (saturating) and scale the brightness, as
/// albumentations' `add_rain`.
pub fn rain(img: &RgbImage, p: &RainParams) -> RgbImage {
    if p.drops.is_empty() {
        return img.clone();
    }
    let (w, h) = (img.width() as i32, img.height() as i32);
    let mut layer = RgbImage::new(img.width(), img.height());
    for &(x, y) in &p.drops {
        // End points are truncated toward zero, as numpy's `astype(int32)`.
        let end = (
            (f64::from(x) + p.slant) as i32,
            (f64::from(y) + f64::from(p.drop_length)) as i32,
        );
        for dxw in 0..p.drop_width as i32 {
            line4((x + dxw, y), (end.0 + dxw, end.1), w, h, |px, py| {
                layer.put_pixel(px as u32, py as u32, image::Rgb(p.drop_color));
            });
        }
    }
    let layer = if p.blur > 1 {
        box_blur(&layer, p.blur as usize)
    } else {
        layer
    };
    let mut out = img.clone();
    for (o, l) in out.iter_mut().zip(layer.iter()) {
        let v = o.saturating_add(*l);
        *o = if p.brightness == 1.0 {
            v
        } else {
            (f64::from(v) * p.brightness)
                .round_ties_even()
                .clamp(0.0, 255.0) as u8
        };
    }
    out
}

/// One fog image's parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct FogParams {
    /// Fog intensity in [0, 1].
    pub intensity: f64,
    /// Per-particle blending weight is `alpha_coef · intensity`.
    pub alpha_coef: f64,
    /// Particle centres `(x, y)` and radii.
    pub particles: Vec<((i32, i32), i32)>,
}

impl FogParams {
    /// albumentations' `RandomFog` draws for a `width × height` image: particles in
    /// shrinking central regions, radii up to a tenth of the short side times the
    /// intensity.
    pub fn draw(
        width: u32,
        height: u32,
        intensity: (f64, f64),
        alpha_coef: f64,
        rng: &mut AugRng,
    ) -> Self {
        let intensity = rng.uniform(intensity.0, intensity.1);
        let region = ((f64::from(width / 3) * intensity) as i64).max(1);
        let cx = (f64::from(width) / 2.0 - 0.5) as i64;
        let cy = (f64::from(height) / 2.0 - 0.5) as i64;
        let (mut cw, mut ch) = (i64::from(width), i64::from(height));
        let mut centres = Vec::new();
        let mut iteration = 0;
        while cw > region && ch > region && iteration < 10 {
            let count = ((cw * ch) as f64 / (region * region) as f64 * intensity * 10.0) as usize;
            for _ in 0..count {
                let x = rng.int(cx - cw / 2, cx + cw / 2) as i32;
                let y = rng.int(cy - ch / 2, cy + ch / 2) as i32;
                centres.push((x, y));
            }
            cw = (cw as f64 * 0.9) as i64;
            ch = (ch as f64 * 0.9) as i64;
            iteration += 1;
        }
        let max_r = ((f64::from(width.min(height)) * 0.1 * intensity) as i64).max(2);
        let min_r = (max_r / 2).max(1);
        let particles = centres
            .into_iter()
            .map(|c| (c, rng.int(min_r, max_r - 1) as i32))
            .collect();
        Self {
            intensity,
            alpha_coef,
            particles,
        }
    }
}

/// The horizontal spans `(y, x0, x1)` (inclusive, unclipped) of OpenCV's filled circle.
fn circle_spans(cx: i32, cy: i32, r: i32, mut span: impl FnMut(i32, i32, i32)) {
    let (mut err, mut dx, mut dy, mut plus, mut minus) = (0i32, r, 0i32, 1i32, 2 * r - 1);
    while dx >= dy {
        span(cy - dy, cx - dx, cx + dx);
        span(cy + dy, cx - dx, cx + dx);
        span(cy - dx, cx - dy, cx + dy);
        span(cy + dx, cx - dy, cx + dy);
        dy += 1;
        err += plus;
        plus += 2;
        let mask = if err <= 0 { 0 } else { -1 };
        err -= minus & mask;
        dx += mask;
        minus -= mask & 2;
    }
}

/// Blend white discs into the image one after another, then Gaussian-blur it, as
/// albumentations' `add_fog`. Blending touches only each disc: OpenCV's full-image
/// `addWeighted` leaves every other pixel as it was.
pub fn fog(img: &RgbImage, p: &FogParams) -> RgbImage {
    let (w, h) = (img.width() as i32, img.height() as i32);
    let alpha = (p.alpha_coef * p.intensity) as f32;
    let beta = (1.0 - p.alpha_coef * p.intensity) as f32;
    let white = 255.0 * alpha;
    let lut: [u8; 256] = std::array::from_fn(|v| {
        (white + v as f32 * beta)
            .round_ties_even()
            .clamp(0.0, 255.0) as u8
    });
    let mut out = img.clone();
    let mut rows = vec![(i32::MAX, i32::MIN); h.max(0) as usize];
    for &((cx, cy), r) in &p.particles {
        // The spans overlap; collect each row's extent first so a pixel blends once.
        rows.iter_mut().for_each(|s| *s = (i32::MAX, i32::MIN));
        circle_spans(cx, cy, r, |y, x0, x1| {
            if y >= 0 && y < h {
                let s = &mut rows[y as usize];
                s.0 = s.0.min(x0.max(0));
                s.1 = s.1.max(x1.min(w - 1));
            }
        });
        let y_range = (cy - r).max(0)..=(cy + r).min(h - 1);
        for y in y_range {
            let (x0, x1) = rows[y as usize];
            if x0 > x1 {
                continue;
            }
            let start = (y as usize * w as usize + x0 as usize) * 3;
            let end = (y as usize * w as usize + x1 as usize + 1) * 3;
            for v in &mut out.as_mut()[start..end] {
                *v = lut[*v as usize];
            }
        }
    }
    let size = ((img.width().min(img.height()) / 30).max(3) | 1) as usize;
    cv_gaussian_blur(&out, size, 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_connected_lines_step_one_axis_at_a_time() {
        let mut pts = Vec::new();
        line4((2, 1), (7, 9), 20, 20, |x, y| pts.push((x, y)));
        assert_eq!(pts.first(), Some(&(2, 1)));
        assert_eq!(pts.last(), Some(&(7, 9)));
        assert_eq!(pts.len(), 5 + 8 + 1);
        for pair in pts.windows(2) {
            let d = (pair[1].0 - pair[0].0).abs() + (pair[1].1 - pair[0].1).abs();
            assert_eq!(d, 1);
        }
    }

    #[test]
    fn circle_spans_cover_a_disc() {
        let mut cells = std::collections::HashSet::new();
        circle_spans(10, 10, 4, |y, x0, x1| {
            for x in x0..=x1 {
                cells.insert((x, y));
            }
        });
        assert!(cells.contains(&(10, 6)) && cells.contains(&(14, 10)));
        assert!(!cells.contains(&(13, 13)));
    }
}
