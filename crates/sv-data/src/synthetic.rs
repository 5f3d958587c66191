//! Procedurally rendered street scenes, the `synthetic` source: a road in perspective
//! with lane marks, kerbs, buildings, trees and vehicles; roadwork scenes add cones,
//! barriers, warning signs, workers in orange vests and yellow machines; hard negatives
//! add orange things that are not roadwork (orange cars, bins, autumn trees, orange
//! facades, a sunset sky). Deterministic per (seed, index); no network, no model.

use std::collections::BTreeMap;
use std::path::Path;

use image::{Rgb, RgbImage};

use crate::error::{DataError, Result};
use crate::rng::SplitMix64;
use crate::sample::{Label, Location, Sample, Source, content_id};

/// What a scene shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SceneKind {
    /// Roadwork on or beside the road.
    Roadwork,
    /// An ordinary street.
    Plain,
    /// An ordinary street with orange things that are not roadwork.
    HardNegative,
}

impl SceneKind {
    /// The label of the scene.
    pub fn label(self) -> Label {
        match self {
            SceneKind::Roadwork => Label::Roadwork,
            SceneKind::Plain | SceneKind::HardNegative => Label::NoRoadwork,
        }
    }

    /// The name kept in the sample's metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            SceneKind::Roadwork => "roadwork",
            SceneKind::Plain => "plain",
            SceneKind::HardNegative => "hard_negative",
        }
    }
}

/// A small canvas with filled shapes.
struct Canvas {
    img: RgbImage,
}

impl Canvas {
    fn put(&mut self, x: i32, y: i32, c: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as u32) < self.img.width() && (y as u32) < self.img.height() {
            self.img.put_pixel(x as u32, y as u32, Rgb(c));
        }
    }

    fn rect(&mut self, x0: f32, y0: f32, x1: f32, y1: f32, c: [u8; 3]) {
        for y in y0.round() as i32..y1.round() as i32 {
            for x in x0.round() as i32..x1.round() as i32 {
                self.put(x, y, c);
            }
        }
    }

    /// Fill a convex or concave polygon by scanlines (even-odd rule).
    fn polygon(&mut self, pts: &[(f32, f32)], c: [u8; 3]) {
        let (ymin, ymax) = pts
            .iter()
            .fold((f32::MAX, f32::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
        for y in ymin.floor() as i32..=ymax.ceil() as i32 {
            let yc = y as f32 + 0.5;
            let mut xs: Vec<f32> = Vec::new();
            for i in 0..pts.len() {
                let (a, b) = (pts[i], pts[(i + 1) % pts.len()]);
                if (a.1 <= yc && b.1 > yc) || (b.1 <= yc && a.1 > yc) {
                    xs.push(a.0 + (yc - a.1) / (b.1 - a.1) * (b.0 - a.0));
                }
            }
            xs.sort_by(f32::total_cmp);
            for pair in xs.chunks_exact(2) {
                for x in (pair[0] - 0.5).ceil() as i32..=(pair[1] - 0.5).floor() as i32 {
                    self.put(x, y, c);
                }
            }
        }
    }

    fn circle(&mut self, cx: f32, cy: f32, r: f32, c: [u8; 3]) {
        for y in (cy - r).floor() as i32..=(cy + r).ceil() as i32 {
            for x in (cx - r).floor() as i32..=(cx + r).ceil() as i32 {
                let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
                if dx * dx + dy * dy <= r * r {
                    self.put(x, y, c);
                }
            }
        }
    }
}

/// Random helpers over [`SplitMix64`].
struct Draw(SplitMix64);

impl Draw {
    fn unit(&mut self) -> f32 {
        self.0.next_f64() as f32
    }
    fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }
    fn int(&mut self, lo: u32, hi: u32) -> u32 {
        lo + (self.unit() * (hi - lo + 1) as f32).min((hi - lo) as f32) as u32
    }
    fn chance(&mut self, p: f32) -> bool {
        self.unit() < p
    }
    /// A muted colour (no strong orange): greys, blues, greens, dark reds, whites.
    fn muted(&mut self) -> [u8; 3] {
        let palette: [[u8; 3]; 10] = [
            [60, 60, 65],
            [200, 200, 205],
            [30, 40, 90],
            [40, 80, 50],
            [120, 30, 35],
            [230, 230, 230],
            [90, 90, 100],
            [20, 20, 25],
            [150, 160, 170],
            [70, 50, 40],
        ];
        let base = palette[self.int(0, palette.len() as u32 - 1) as usize];
        base.map(|v| (f32::from(v) * self.range(0.85, 1.15)).clamp(0.0, 255.0) as u8)
    }
    /// A roadwork orange.
    fn orange(&mut self) -> [u8; 3] {
        [
            self.range(225.0, 255.0) as u8,
            self.range(90.0, 140.0) as u8,
            self.range(0.0, 40.0) as u8,
        ]
    }
}

/// The road's geometry: where a point at depth `t` (0 = horizon, 1 = bottom) and lateral
/// position `u` (−1 = left edge, 1 = right edge) lands in the image.
struct Road {
    w: f32,
    h: f32,
    horizon: f32,
    vanish_x: f32,
    half_bottom: f32,
}

impl Road {
    fn at(&self, t: f32, u: f32) -> (f32, f32) {
        let y = self.horizon + t * (self.h - self.horizon);
        let half = 0.02 * self.w + t * self.half_bottom;
        (
            self.vanish_x + t * (self.w / 2.0 - self.vanish_x) + u * half,
            y,
        )
    }

    /// Scale of an object at depth `t`, in pixels per unit.
    fn scale(&self, t: f32) -> f32 {
        (0.05 + t) * self.h * 0.2
    }
}

/// Render one `size × size` scene of `kind` from `seed`.
pub fn render_scene(kind: SceneKind, size: u32, seed: u64) -> RgbImage {
    let mut d = Draw(SplitMix64::new(seed ^ 0x5eed_5ce4e));
    let (w, h) = (size as f32, size as f32);
    let mut c = Canvas {
        img: RgbImage::new(size, size),
    };
    let horizon = h * d.range(0.32, 0.5);
    let sunset = kind == SceneKind::HardNegative && d.chance(0.3);
    // Sky.
    let (top, bottom) = if sunset {
        ([120, 60, 90], [250, 140, 50])
    } else if d.chance(0.3) {
        ([150, 150, 155], [190, 190, 195])
    } else {
        ([70, 130, 210], [180, 210, 240])
    };
    for y in 0..horizon.ceil() as u32 {
        let f = y as f32 / horizon.max(1.0);
        let col = [0, 1, 2].map(|i| (top[i] as f32 * (1.0 - f) + bottom[i] as f32 * f) as u8);
        c.rect(0.0, y as f32, w, y as f32 + 1.0, col);
    }
    // Ground and road.
    let verge = if d.chance(0.5) {
        [90, 120, 60]
    } else {
        [150, 150, 145]
    };
    c.rect(0.0, horizon, w, h, verge);
    let road = Road {
        w,
        h,
        horizon,
        vanish_x: w * d.range(0.35, 0.65),
        half_bottom: w * d.range(0.45, 0.7),
    };
    let asphalt = [d.range(70.0, 110.0) as u8; 3];
    let corners = [
        road.at(0.0, -1.0),
        road.at(0.0, 1.0),
        road.at(1.0, 1.0),
        road.at(1.0, -1.0),
    ];
    c.polygon(&corners, asphalt);
    // Kerbs and lane marks.
    for u in [-1.0f32, 1.0] {
        let a = road.at(0.0, u);
        let b = road.at(1.0, u);
        c.polygon(
            &[a, (a.0 + u, a.1), (b.0 + u * w * 0.02, b.1), b],
            [200, 200, 200],
        );
    }
    let lane = if d.chance(0.2) {
        [230, 200, 40]
    } else {
        [235, 235, 235]
    };
    let dashes = d.int(5, 9);
    for i in 0..dashes {
        let t0 = (i as f32 + 0.2) / dashes as f32;
        let t1 = (i as f32 + 0.6) / dashes as f32;
        let (p0, p1) = (road.at(t0 * t0, -0.03), road.at(t0 * t0, 0.03));
        let (p2, p3) = (road.at(t1 * t1, 0.03), road.at(t1 * t1, -0.03));
        c.polygon(&[p0, p1, p2, p3], lane);
    }
    // Buildings and trees along the horizon.
    let orange_facade = kind == SceneKind::HardNegative && d.chance(0.4);
    let mut x = 0.0;
    while x < w {
        let bw = w * d.range(0.08, 0.2);
        let bh = h * d.range(0.08, 0.3);
        let near_road = (x + bw / 2.0 - road.vanish_x).abs() < w * 0.06;
        if !near_road {
            let col = if orange_facade && d.chance(0.5) {
                d.orange()
            } else {
                d.muted()
            };
            c.rect(x, horizon - bh, x + bw, horizon + 1.0, col);
            for wy in 0..3 {
                for wx in 0..3 {
                    let (px, py) = (
                        x + bw * (0.15 + 0.28 * wx as f32),
                        horizon - bh * (0.85 - 0.28 * wy as f32),
                    );
                    c.rect(px, py, px + bw * 0.12, py + bh * 0.1, [40, 50, 70]);
                }
            }
        }
        x += bw + w * d.range(0.0, 0.05);
    }
    let autumn = kind == SceneKind::HardNegative && d.chance(0.4);
    for _ in 0..d.int(0, 4) {
        let t = d.range(0.05, 0.6);
        let side = if d.chance(0.5) { -1.3 } else { 1.3 };
        let (tx, ty) = road.at(t, side);
        let s = road.scale(t);
        c.rect(tx - s * 0.08, ty - s * 0.9, tx + s * 0.08, ty, [80, 55, 35]);
        let leaves = if autumn {
            d.orange()
        } else {
            [40, d.range(90.0, 140.0) as u8, 40]
        };
        c.circle(tx, ty - s * 1.0, s * 0.45, leaves);
    }
    // Vehicles.
    let orange_car = kind == SceneKind::HardNegative && d.chance(0.5);
    for i in 0..d.int(0, 3) {
        let t = d.range(0.15, 0.9);
        let (vx, vy) = road.at(t, d.range(-0.6, 0.6));
        let s = road.scale(t);
        let body = if orange_car && i == 0 {
            d.orange()
        } else {
            d.muted()
        };
        c.rect(
            vx - s * 0.8,
            vy - s * 0.7,
            vx + s * 0.8,
            vy - s * 0.15,
            body,
        );
        c.rect(
            vx - s * 0.55,
            vy - s * 1.1,
            vx + s * 0.55,
            vy - s * 0.7,
            body,
        );
        c.rect(
            vx - s * 0.45,
            vy - s * 1.02,
            vx + s * 0.45,
            vy - s * 0.75,
            [60, 80, 110],
        );
        for wxo in [-0.5f32, 0.5] {
            c.circle(vx + wxo * s, vy - s * 0.15, s * 0.18, [15, 15, 15]);
        }
    }
    // Orange bins and posts that are not roadwork.
    if kind == SceneKind::HardNegative {
        for _ in 0..d.int(1, 3) {
            let t = d.range(0.3, 0.95);
            let side = if d.chance(0.5) { -1.15 } else { 1.15 };
            let (bx, by) = road.at(t, side);
            let s = road.scale(t);
            let col = d.orange();
            if d.chance(0.5) {
                c.rect(bx - s * 0.2, by - s * 0.5, bx + s * 0.2, by, col);
                c.rect(
                    bx - s * 0.23,
                    by - s * 0.56,
                    bx + s * 0.23,
                    by - s * 0.48,
                    [40, 40, 40],
                );
            } else {
                c.circle(bx, by - s * 0.3, s * 0.25, col);
            }
        }
    }
    if kind == SceneKind::Roadwork {
        draw_roadwork(&mut c, &road, &mut d);
    }
    // Light and sensor noise.
    let gain = d.range(0.75, 1.2);
    let noise = d.range(0.0, 6.0);
    for p in c.img.pixels_mut() {
        for v in p.0.iter_mut() {
            let n = (d.unit() - 0.5) * 2.0 * noise;
            *v = (f32::from(*v) * gain + n).clamp(0.0, 255.0) as u8;
        }
    }
    c.img
}

/// Cones, barriers, signs, workers and machines, at least one kind, on or beside the road.
fn draw_roadwork(c: &mut Canvas, road: &Road, d: &mut Draw) {
    let kinds = 1 + d.int(0, 2);
    for _ in 0..kinds {
        match d.int(0, 4) {
            0 => {
                // A row of cones.
                let n = d.int(2, 6);
                let t0 = d.range(0.4, 0.8);
                let u = d.range(-0.8, 0.8);
                for i in 0..n {
                    let t = (t0 + i as f32 * 0.05).min(0.98);
                    let (x, y) = road.at(t, u + i as f32 * 0.03);
                    let s = road.scale(t);
                    let col = d.orange();
                    c.polygon(
                        &[
                            (x - s * 0.22, y),
                            (x + s * 0.22, y),
                            (x + s * 0.05, y - s * 0.75),
                            (x - s * 0.05, y - s * 0.75),
                        ],
                        col,
                    );
                    c.rect(
                        x - s * 0.14,
                        y - s * 0.45,
                        x + s * 0.14,
                        y - s * 0.33,
                        [245, 245, 245],
                    );
                    c.rect(x - s * 0.28, y - s * 0.05, x + s * 0.28, y, col);
                }
            }
            1 => {
                // A striped barrier across part of the road.
                let t = d.range(0.35, 0.9);
                let (x, y) = road.at(t, d.range(-0.5, 0.5));
                let s = road.scale(t);
                let (bw, bh) = (s * d.range(1.2, 2.2), s * 0.35);
                let red = if d.chance(0.5) {
                    [220, 30, 30]
                } else {
                    d.orange()
                };
                let stripes = 6;
                for k in 0..stripes {
                    let col = if k % 2 == 0 { red } else { [245, 245, 245] };
                    let x0 = x - bw / 2.0 + bw * k as f32 / stripes as f32;
                    c.polygon(
                        &[
                            (x0, y - s * 0.6),
                            (x0 + bw / stripes as f32, y - s * 0.6),
                            (x0 + bw / stripes as f32 - bh * 0.4, y - s * 0.6 + bh),
                            (x0 - bh * 0.4, y - s * 0.6 + bh),
                        ],
                        col,
                    );
                }
                c.rect(
                    x - bw / 2.0,
                    y - s * 0.25,
                    x - bw / 2.0 + s * 0.06,
                    y,
                    [60, 60, 60],
                );
                c.rect(
                    x + bw / 2.0 - s * 0.06,
                    y - s * 0.25,
                    x + bw / 2.0,
                    y,
                    [60, 60, 60],
                );
            }
            2 => {
                // A warning sign on a post beside the road.
                let t = d.range(0.25, 0.85);
                let side = if d.chance(0.5) { -1.1 } else { 1.1 };
                let (x, y) = road.at(t, side);
                let s = road.scale(t);
                c.rect(x - s * 0.04, y - s * 1.2, x + s * 0.04, y, [110, 110, 110]);
                let col = if d.chance(0.6) {
                    d.orange()
                } else {
                    [240, 200, 20]
                };
                let cy = y - s * 1.4;
                c.polygon(
                    &[
                        (x, cy - s * 0.4),
                        (x + s * 0.4, cy),
                        (x, cy + s * 0.4),
                        (x - s * 0.4, cy),
                    ],
                    col,
                );
                c.polygon(
                    &[
                        (x, cy - s * 0.2),
                        (x + s * 0.15, cy + s * 0.15),
                        (x - s * 0.15, cy + s * 0.15),
                    ],
                    [20, 20, 20],
                );
            }
            3 => {
                // Workers in orange or yellow vests.
                for _ in 0..d.int(1, 3) {
                    let t = d.range(0.3, 0.95);
                    let (x, y) = road.at(t, d.range(-0.9, 0.9));
                    let s = road.scale(t);
                    let vest = if d.chance(0.6) {
                        d.orange()
                    } else {
                        [230, 240, 40]
                    };
                    c.rect(x - s * 0.1, y - s * 0.5, x - s * 0.02, y, [40, 40, 70]);
                    c.rect(x + s * 0.02, y - s * 0.5, x + s * 0.1, y, [40, 40, 70]);
                    c.rect(x - s * 0.15, y - s * 1.0, x + s * 0.15, y - s * 0.5, vest);
                    c.rect(
                        x - s * 0.15,
                        y - s * 0.8,
                        x + s * 0.15,
                        y - s * 0.74,
                        [230, 230, 230],
                    );
                    c.circle(x, y - s * 1.12, s * 0.11, [220, 180, 150]);
                    c.rect(
                        x - s * 0.13,
                        y - s * 1.26,
                        x + s * 0.13,
                        y - s * 1.17,
                        [250, 250, 250],
                    );
                }
            }
            _ => {
                // A yellow machine with an arm.
                let t = d.range(0.3, 0.85);
                let (x, y) = road.at(t, d.range(-0.7, 0.7));
                let s = road.scale(t);
                let yellow = [240, d.range(180.0, 210.0) as u8, 20];
                c.rect(x - s * 0.9, y - s * 0.25, x + s * 0.9, y, [30, 30, 30]);
                c.rect(x - s * 0.8, y - s * 0.9, x + s * 0.5, y - s * 0.25, yellow);
                c.rect(x - s * 0.6, y - s * 1.3, x, y - s * 0.9, yellow);
                c.rect(
                    x - s * 0.5,
                    y - s * 1.22,
                    x - s * 0.1,
                    y - s * 0.95,
                    [60, 80, 110],
                );
                c.polygon(
                    &[
                        (x + s * 0.4, y - s * 0.8),
                        (x + s * 1.4, y - s * 1.5),
                        (x + s * 1.5, y - s * 1.4),
                        (x + s * 0.5, y - s * 0.65),
                    ],
                    yellow,
                );
                c.rect(
                    x + s * 1.3,
                    y - s * 1.45,
                    x + s * 1.6,
                    y - s * 1.05,
                    [90, 90, 90],
                );
            }
        }
    }
}

/// The kind of scene `index` of a generated set: half roadwork, a quarter plain, a
/// quarter hard negatives, shuffled by the seed.
pub fn scene_kind(seed: u64, index: u64) -> SceneKind {
    let u = crate::rng::unit_hash(seed, "synthetic-kind", &index.to_string());
    if u < 0.5 {
        SceneKind::Roadwork
    } else if u < 0.75 {
        SceneKind::Plain
    } else {
        SceneKind::HardNegative
    }
}

/// Render `count` scenes of `size × size` into `dir` (`roadwork/` and `no_roadwork/`
/// PNGs, each written to a temporary name, synced and renamed) and return them as
/// `synthetic` samples with their scene kind in the metadata. Files already there with
/// the same content are kept.
pub fn generate(dir: &Path, count: u64, size: u32, seed: u64) -> Result<Vec<Sample>> {
    let mut samples = Vec::with_capacity(count as usize);
    for index in 0..count {
        let kind = scene_kind(seed, index);
        let img = render_scene(
            kind,
            size,
            seed.wrapping_mul(0x9e37_79b9).wrapping_add(index),
        );
        let mut bytes = Vec::new();
        img.write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .map_err(|e| DataError::Invalid(format!("encoding synthetic scene {index}: {e}")))?;
        let label = kind.label();
        let path = dir.join(label.as_str()).join(format!("{index:06}.png"));
        if std::fs::read(&path).ok().as_deref() != Some(&bytes[..]) {
            write_atomic(&path, &bytes)?;
        }
        let mut metadata = BTreeMap::new();
        metadata.insert("scene".to_string(), kind.as_str().into());
        metadata.insert("generator".to_string(), "sv-data synthetic v1".into());
        metadata.insert("seed".to_string(), seed.into());
        samples.push(Sample {
            id: content_id(&bytes),
            location: Location::File { path },
            label,
            source: Source::Synthetic,
            split: None,
            size: Some((size, size)),
            metadata,
        });
    }
    Ok(samples)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    sv_fs::atomic_write(path, bytes).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenes_are_deterministic_and_kinds_differ() {
        let a = render_scene(SceneKind::Roadwork, 64, 7);
        assert_eq!(a, render_scene(SceneKind::Roadwork, 64, 7));
        assert_ne!(a, render_scene(SceneKind::Plain, 64, 7));
        let counts = (0..400).fold([0; 3], |mut acc, i| {
            acc[scene_kind(1, i) as usize] += 1;
            acc
        });
        assert!(
            counts[0] > 160 && counts[1] > 70 && counts[2] > 70,
            "{counts:?}"
        );
    }
}
