//! PIL-exact resampling at every aspect ratio: `sv_augment::resample::resize_pil` against
//! Pillow's `Image.resize` (BILINEAR, BICUBIC) on the 320 seeded (width, height, target)
//! triples of `tools/gen_resample_fixtures.py` — extreme ratios (1×16384, 4001×3),
//! shortest-edge targets of tall and wide photos, upscaling and downscaling per axis —
//! through the kernels this CPU selects (AVX2, AVX-512) and through the portable one.

use sha2::{Digest, Sha256};
use sv_augment::resample::{Filter, resize_pil, resize_pil_scalar};

/// The generator's source image: `(hash(x, y, c) & 63) + 96·x / w + 96·y / h`.
fn source(w: u32, h: u32) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, y| {
        let px = |c: i64| {
            let (x, y) = (i64::from(x), i64::from(y));
            let hash = ((x * 73856093) ^ (y * 19349663) ^ (c * 83492791)) >> 7;
            ((hash & 63) + x * 96 / i64::from(w) + y * 96 / i64::from(h)) as u8
        };
        image::Rgb([px(0), px(1), px(2)])
    })
}

#[test]
fn resize_equals_pil_at_every_aspect_ratio() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/resample/expected.json"
    );
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases = meta["cases"].as_array().unwrap();
    assert!(cases.len() >= 600);
    let mut failures = Vec::new();
    let mut sources = std::collections::HashMap::new();
    for c in cases {
        let dims = |k: &str| {
            (
                c[k][0].as_u64().unwrap() as u32,
                c[k][1].as_u64().unwrap() as u32,
            )
        };
        let ((w, h), (ow, oh)) = (dims("in"), dims("out"));
        let filter = match c["filter"].as_str().unwrap() {
            "bilinear" => Filter::Bilinear,
            _ => Filter::Bicubic,
        };
        let src = sources.entry((w, h)).or_insert_with(|| source(w, h));
        for (kernel, out) in [
            ("selected", resize_pil(src, ow, oh, filter)),
            ("portable", resize_pil_scalar(src, ow, oh, filter)),
        ] {
            let sha = format!("{:x}", Sha256::digest(out.as_raw()));
            if sha != c["sha256"].as_str().unwrap() {
                let sum: i64 = out.as_raw().iter().map(|&v| i64::from(v)).sum();
                failures.push(format!(
                    "{w}×{h} → {ow}×{oh} {filter:?} ({kernel} kernel): sum {sum}, PIL {}; \
                     first {:?}, PIL {}",
                    c["sum"],
                    &out.as_raw()[..6.min(out.as_raw().len())],
                    c["first"]
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} resizes differ from PIL:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
