//! Small PNG plots of a run, drawn directly on an image buffer with a built-in 5 × 7
//! font: line charts (loss, accuracy), the ROC curve and the confusion matrix.

use image::{Rgb, RgbImage};

use crate::metrics::Confusion;

const W: u32 = 640;
const H: u32 = 400;
const LEFT: i32 = 70;
const RIGHT: i32 = 20;
const TOP: i32 = 40;
const BOTTOM: i32 = 50;
const INK: [u8; 3] = [30, 30, 30];
const GRID: [u8; 3] = [225, 225, 225];
const COLOURS: [[u8; 3]; 4] = [[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40]];

/// Rows of each glyph, 5 bits wide (bit 4 is the left column).
fn glyph(c: char) -> [u8; 7] {
    match c.to_ascii_lowercase() {
        '0' => [14, 17, 19, 21, 25, 17, 14],
        '1' => [4, 12, 4, 4, 4, 4, 14],
        '2' => [14, 17, 1, 2, 4, 8, 31],
        '3' => [30, 1, 1, 14, 1, 1, 30],
        '4' => [2, 6, 10, 18, 31, 2, 2],
        '5' => [31, 16, 30, 1, 1, 17, 14],
        '6' => [6, 8, 16, 30, 17, 17, 14],
        '7' => [31, 1, 2, 4, 8, 8, 8],
        '8' => [14, 17, 17, 14, 17, 17, 14],
        '9' => [14, 17, 17, 15, 1, 2, 12],
        'a' => [0, 0, 14, 1, 15, 17, 15],
        'b' => [16, 16, 30, 17, 17, 17, 30],
        'c' => [0, 0, 14, 16, 16, 17, 14],
        'd' => [1, 1, 15, 17, 17, 17, 15],
        'e' => [0, 0, 14, 17, 31, 16, 14],
        'f' => [6, 9, 8, 28, 8, 8, 8],
        'g' => [0, 15, 17, 17, 15, 1, 14],
        'h' => [16, 16, 22, 25, 17, 17, 17],
        'i' => [4, 0, 12, 4, 4, 4, 14],
        'j' => [2, 0, 6, 2, 2, 18, 12],
        'k' => [16, 16, 18, 20, 24, 20, 18],
        'l' => [12, 4, 4, 4, 4, 4, 14],
        'm' => [0, 0, 26, 21, 21, 17, 17],
        'n' => [0, 0, 22, 25, 17, 17, 17],
        'o' => [0, 0, 14, 17, 17, 17, 14],
        'p' => [0, 0, 30, 17, 30, 16, 16],
        'q' => [0, 0, 15, 17, 15, 1, 1],
        'r' => [0, 0, 22, 25, 16, 16, 16],
        's' => [0, 0, 15, 16, 14, 1, 30],
        't' => [8, 8, 28, 8, 8, 9, 6],
        'u' => [0, 0, 17, 17, 17, 19, 13],
        'v' => [0, 0, 17, 17, 17, 10, 4],
        'w' => [0, 0, 17, 17, 21, 21, 10],
        'x' => [0, 0, 17, 10, 4, 10, 17],
        'y' => [0, 0, 17, 17, 15, 1, 14],
        'z' => [0, 0, 31, 2, 4, 8, 31],
        '.' => [0, 0, 0, 0, 0, 12, 12],
        ',' => [0, 0, 0, 0, 12, 4, 8],
        '-' => [0, 0, 0, 14, 0, 0, 0],
        ':' => [0, 12, 12, 0, 12, 12, 0],
        '(' => [2, 4, 8, 8, 8, 4, 2],
        ')' => [8, 4, 2, 2, 2, 4, 8],
        '=' => [0, 0, 31, 0, 31, 0, 0],
        '/' => [1, 1, 2, 4, 8, 16, 16],
        '%' => [24, 25, 2, 4, 8, 19, 3],
        _ => [0; 7],
    }
}

struct Canvas(RgbImage);

impl Canvas {
    fn new() -> Self {
        Self(RgbImage::from_pixel(W, H, Rgb([255, 255, 255])))
    }

    fn put(&mut self, x: i32, y: i32, c: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as u32) < W && (y as u32) < H {
            self.0.put_pixel(x as u32, y as u32, Rgb(c));
        }
    }

    /// Text at (x, y) (top-left), scaled by `s`.
    fn text(&mut self, x: i32, y: i32, s: i32, text: &str, c: [u8; 3]) {
        for (i, ch) in text.chars().enumerate() {
            let g = glyph(ch);
            for (row, bits) in g.iter().enumerate() {
                for col in 0..5 {
                    if bits & (16 >> col) != 0 {
                        for dy in 0..s {
                            for dx in 0..s {
                                self.put(
                                    x + (i as i32 * 6 + col) * s + dx,
                                    y + row as i32 * s + dy,
                                    c,
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    fn text_width(text: &str, s: i32) -> i32 {
        text.chars().count() as i32 * 6 * s
    }

    /// A line (Bresenham), `thick` pixels wide.
    fn line(&mut self, (x0, y0): (i32, i32), (x1, y1): (i32, i32), c: [u8; 3], thick: i32) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        loop {
            for oy in 0..thick {
                for ox in 0..thick {
                    self.put(x + ox - thick / 2, y + oy - thick / 2, c);
                }
            }
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    fn rect(&mut self, x0: i32, y0: i32, x1: i32, y1: i32, c: [u8; 3]) {
        for y in y0..y1 {
            for x in x0..x1 {
                self.put(x, y, c);
            }
        }
    }
}

/// A short decimal for axis labels.
fn label(v: f64) -> String {
    if v.abs() >= 1000.0 || (v.fract() == 0.0 && v.abs() >= 1.0) {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// A line chart of named series of `(x, y)` points, with y from `y_range` when given
/// (else the data's range).
pub fn line_chart(
    title: &str,
    x_label: &str,
    series: &[(&str, Vec<(f64, f64)>)],
    y_range: Option<(f64, f64)>,
) -> RgbImage {
    let mut c = Canvas::new();
    let points = series.iter().flat_map(|(_, p)| p.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in points {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if let Some((a, b)) = y_range {
        (y0, y1) = (a, b);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if y1 <= y0 {
        y1 = y0 + 1.0;
    }
    let (pw, ph) = (W as i32 - LEFT - RIGHT, H as i32 - TOP - BOTTOM);
    let px = |x: f64| LEFT + ((x - x0) / (x1 - x0) * f64::from(pw)).round() as i32;
    let py = |y: f64| TOP + ph - ((y - y0) / (y1 - y0) * f64::from(ph)).round() as i32;
    for k in 0..=4 {
        let y = y0 + (y1 - y0) * f64::from(k) / 4.0;
        c.line((LEFT, py(y)), (LEFT + pw, py(y)), GRID, 1);
        let l = label(y);
        c.text(LEFT - 6 - Canvas::text_width(&l, 1), py(y) - 3, 1, &l, INK);
        let x = x0 + (x1 - x0) * f64::from(k) / 4.0;
        let l = label(x);
        c.text(
            px(x) - Canvas::text_width(&l, 1) / 2,
            TOP + ph + 8,
            1,
            &l,
            INK,
        );
    }
    c.line((LEFT, TOP), (LEFT, TOP + ph), INK, 1);
    c.line((LEFT, TOP + ph), (LEFT + pw, TOP + ph), INK, 1);
    c.text(LEFT, 12, 2, title, INK);
    c.text(
        LEFT + pw / 2 - Canvas::text_width(x_label, 1) / 2,
        H as i32 - 18,
        1,
        x_label,
        INK,
    );
    for (i, (name, pts)) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        for pair in pts.windows(2) {
            c.line(
                (px(pair[0].0), py(pair[0].1)),
                (px(pair[1].0), py(pair[1].1)),
                colour,
                2,
            );
        }
        if pts.len() == 1 {
            c.rect(
                px(pts[0].0) - 2,
                py(pts[0].1) - 2,
                px(pts[0].0) + 3,
                py(pts[0].1) + 3,
                colour,
            );
        }
        let lx = LEFT + pw - 130;
        let ly = TOP + 8 + i as i32 * 14;
        c.rect(lx, ly + 2, lx + 12, ly + 5, colour);
        c.text(lx + 18, ly, 1, name, INK);
    }
    c.0
}

/// The ROC curve with its area in the title.
pub fn roc_chart(points: &[(f64, f64)], auc: Option<f64>) -> RgbImage {
    let title = match auc {
        Some(a) => format!("roc (auc {a:.3})"),
        None => "roc".to_string(),
    };
    let diagonal = vec![(0.0, 0.0), (1.0, 1.0)];
    line_chart(
        &title,
        "false positive rate",
        &[("model", points.to_vec()), ("chance", diagonal)],
        Some((0.0, 1.0)),
    )
}

/// The confusion matrix at the decision threshold: rows truth, columns prediction.
pub fn confusion_chart(c: &Confusion) -> RgbImage {
    let mut canvas = Canvas::new();
    canvas.text(LEFT, 12, 2, "confusion (rows true, columns predicted)", INK);
    let cells = [("roadwork", [c.tp, c.fn_]), ("none", [c.fp, c.tn])];
    let total = c.total().max(1) as f64;
    let (size, x0, y0) = (130, 200, 90);
    for (j, name) in ["roadwork", "none"].iter().enumerate() {
        let x = x0 + j as i32 * size + size / 2 - Canvas::text_width(name, 1) / 2;
        canvas.text(x, y0 - 16, 1, name, INK);
    }
    for (i, (name, row)) in cells.iter().enumerate() {
        let y = y0 + i as i32 * size;
        canvas.text(
            x0 - 12 - Canvas::text_width(name, 1),
            y + size / 2 - 3,
            1,
            name,
            INK,
        );
        for (j, &v) in row.iter().enumerate() {
            let x = x0 + j as i32 * size;
            let shade = (255.0 - 180.0 * v as f64 / total) as u8;
            canvas.rect(x, y, x + size - 2, y + size - 2, [shade, shade, 255]);
            let t = v.to_string();
            let s = 3;
            let ink = if shade < 140 { [255, 255, 255] } else { INK };
            canvas.text(
                x + size / 2 - Canvas::text_width(&t, s) / 2,
                y + size / 2 - 10,
                s,
                &t,
                ink,
            );
        }
    }
    canvas.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_draw_their_series() {
        let img = line_chart(
            "loss",
            "step",
            &[("train", vec![(0.0, 1.0), (10.0, 0.2)])],
            None,
        );
        assert_eq!(img.dimensions(), (W, H));
        // The series colour is on the canvas, at both ends of the line.
        let blue = Rgb(COLOURS[0]);
        assert_eq!(*img.get_pixel(LEFT as u32, TOP as u32), blue);
        assert_eq!(*img.get_pixel(W - RIGHT as u32, H - BOTTOM as u32), blue);
        let c = confusion_chart(&Confusion {
            tp: 5,
            fp: 1,
            tn: 4,
            fn_: 0,
        });
        assert_eq!(c.dimensions(), (W, H));
    }
}
