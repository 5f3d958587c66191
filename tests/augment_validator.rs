//! The `validator` preset against the subnet validators' own code: the statistics of what
//! each level sends (224 × 224 JPEG) must agree with those `tools/validator_stats.py`
//! measured by running the subnet's `image_transforms.py` on the same photos.

use image::RgbImage;
use serde_json::Value;
use sv_augment::{AugRng, Pipeline, Step, ValidatorSettings};
use sv_tests::fixture;

const KEYS: [&str; 5] = [
    "luma_mean",
    "luma_std",
    "chroma",
    "black_fraction",
    "gradient",
];

/// The same statistics as `tools/validator_stats.py`'s `stats`.
fn stats(img: &RgbImage) -> [f64; 5] {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let n = (w * h) as f64;
    let mut y = vec![0f64; w * h];
    let (mut chroma, mut black) = (0.0, 0.0);
    for (i, p) in img.pixels().enumerate() {
        let [r, g, b] = p.0.map(f64::from);
        y[i] = 0.299 * r + 0.587 * g + 0.114 * b;
        let cb = -0.168736 * r - 0.331264 * g + 0.5 * b;
        let cr = 0.5 * r - 0.418688 * g - 0.081312 * b;
        chroma += cb.abs() + cr.abs();
        if p.0.iter().all(|&c| c <= 16) {
            black += 1.0;
        }
    }
    let mean = y.iter().sum::<f64>() / n;
    let std = (y.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
    let (mut gx, mut gy) = (0.0, 0.0);
    for r in 0..h {
        for c in 0..w {
            if c + 1 < w {
                gx += (y[r * w + c + 1] - y[r * w + c]).abs();
            }
            if r + 1 < h {
                gy += (y[(r + 1) * w + c] - y[r * w + c]).abs();
            }
        }
    }
    let gradient = (gx / ((w - 1) * h) as f64 + gy / (w * (h - 1)) as f64) / 2.0;
    [mean, std, chroma / n, black / n, gradient]
}

#[test]
fn every_level_sends_what_the_subnet_validators_send() {
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("data/augment/validator_stats.json")).unwrap(),
    )
    .unwrap();
    let pictures: Vec<RgbImage> = reference["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            image::open(fixture(&format!("images/{}", n.as_str().unwrap())))
                .unwrap()
                .to_rgb8()
        })
        .collect();
    let draws = reference["draws"].as_u64().unwrap() as usize;
    let settings = ValidatorSettings::default();
    let mut rng = AugRng::from_seed(11);
    let mut failures = Vec::new();
    for level in 0..4u8 {
        let rows: Vec<[f64; 5]> = (0..draws)
            .map(|d| {
                let out = settings.apply_level(&pictures[d % pictures.len()], level, &mut rng);
                assert_eq!(out.dimensions(), (224, 224));
                stats(&out)
            })
            .collect();
        for (k, key) in KEYS.iter().enumerate() {
            let v: Vec<f64> = rows.iter().map(|r| r[k]).collect();
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (v.len() - 1) as f64;
            let se = (var / v.len() as f64).sqrt();
            let want = &reference["levels"][level as usize][key];
            let (ref_mean, ref_se) = (want["mean"].as_f64().unwrap(), want["se"].as_f64().unwrap());
            // Four combined standard errors, plus a little for the JPEG codecs and decoders.
            let slack = if *key == "black_fraction" { 0.002 } else { 0.3 };
            let tolerance = 4.0 * (se * se + ref_se * ref_se).sqrt() + slack;
            let line = format!(
                "level {level} {key}: ours {mean:.4} ± {se:.4}, validators {ref_mean:.4} ± {ref_se:.4}"
            );
            println!("{line}");
            if (mean - ref_mean).abs() > tolerance {
                failures.push(line);
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn levels_are_drawn_a_quarter_each_and_the_preset_is_the_validator() {
    let settings = ValidatorSettings::default();
    let mut rng = AugRng::from_seed(5);
    let mut counts = [0usize; 4];
    for _ in 0..40_000 {
        counts[settings.draw_level(&mut rng) as usize] += 1;
    }
    for c in counts {
        assert!((c as f64 / 40_000.0 - 0.25).abs() < 0.01, "{counts:?}");
    }
    let preset = Pipeline::preset("validator").unwrap();
    assert_eq!(preset.steps, vec![Step::Validator(settings)]);
}
