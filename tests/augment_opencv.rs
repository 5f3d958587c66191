//! sv-augment's OpenCV-style transforms against albumentations 2.0.8, OpenCV and
//! torchvision on float tensors (`tools/gen_data_fixtures.py augment` writes the
//! references): HSV shifts, motion/Gaussian/box blurs, bilinear down-up resize, rain, fog,
//! nearest rotation, float resized crop, normalisation.

use std::collections::HashMap;

use image::RgbImage;
use sv_augment::Normalise;
use sv_augment::blur::{box_blur, cv_gaussian_blur, filter2d, motion_kernel};
use sv_augment::color::hue_saturation_value;
use sv_augment::validator::{down_up, resized_crop_truncated, rotate_nearest};
use sv_augment::weather::{FogParams, RainParams, fog, rain};
use sv_tests::{Expected, fixture, image_diff, read_expected};

fn source() -> RgbImage {
    image::open(fixture("data/augment/source.png"))
        .unwrap()
        .to_rgb8()
}

fn refs() -> HashMap<String, Expected> {
    read_expected("data/augment/expected.safetensors")
}

fn as_image(e: &Expected) -> RgbImage {
    let (h, w) = (e.shape[0] as u32, e.shape[1] as u32);
    RgbImage::from_raw(w, h, e.data.iter().map(|&v| v as u8).collect()).unwrap()
}

/// Largest difference and the fraction of values that differ at all.
fn check(name: &str, got: &RgbImage, refs: &HashMap<String, Expected>) -> (f32, f64) {
    let want = &refs[name];
    let (max, _) = image_diff(name, got, want);
    let differing = got
        .as_raw()
        .iter()
        .zip(&want.data)
        .filter(|(a, b)| **a as f32 != **b)
        .count();
    (max, differing as f64 / want.data.len() as f64)
}

#[test]
fn hue_saturation_value_matches_albumentations() {
    let r = refs();
    let src = source();
    let colours = as_image(&r["colours"]);
    for (i, (h, s, v)) in [(12.7, 25.3, -14.2), (-19.5, -29.9, 19.9), (0.0, 0.0, 7.5)]
        .into_iter()
        .enumerate()
    {
        // 128 px rows go through OpenCV's vector HSV→RGB, which truncates, as ours does.
        let name = format!("hsv_{i}_colours");
        let (max, frac) = check(&name, &hue_saturation_value(&colours, h, s, v), &r);
        assert!(
            max <= 1.0 && frac < 1e-3,
            "{name}: max {max}, differing {frac}"
        );
        // 61 px rows are narrower than one vector: OpenCV's scalar code rounds instead.
        let name = format!("hsv_{i}_src");
        let (max, _) = check(&name, &hue_saturation_value(&src, h, s, v), &r);
        assert!(max <= 1.0, "{name}: max {max}");
    }
}

#[test]
fn motion_kernels_equal_albumentations_and_blur_matches_filter2d() {
    let r = refs();
    let src = source();
    for (i, (k, angle, direction)) in [
        (3, 0.0, 0.0),
        (5, 33.0, 0.4),
        (7, 200.0, -0.7),
        (7, 91.0, 1.0),
    ]
    .into_iter()
    .enumerate()
    {
        let ours = motion_kernel(k, angle, direction);
        let want = &r[&format!("motion_kernel_{i}")].data;
        assert_eq!(&ours, want, "kernel {i} ({k}, {angle}°, {direction})");
        let (max, _) = check(&format!("motion_blur_{i}"), &filter2d(&src, &ours, k), &r);
        assert_eq!(max, 0.0, "blur {i}");
    }
}

#[test]
fn gaussian_and_box_blurs_match_opencv() {
    let r = refs();
    let src = source();
    // The binomial tables (sigma 0, up to 7 taps) and sampled kernels rounded to 1/256.
    for (k, sigma) in [(7, 7.0 / 6.0), (9, 1.5), (7, 0.0), (9, 0.0)] {
        let name = format!("cv_gaussian_{k}_{sigma:.3}");
        let (max, _) = check(&name, &cv_gaussian_blur(&src, k, sigma), &r);
        assert_eq!(max, 0.0, "{name}");
    }
    let sparse = as_image(&r["box_sparse"]);
    let (max, _) = check("box_7", &box_blur(&sparse, 7), &r);
    assert_eq!(max, 0.0);
}

#[test]
fn down_up_resize_matches_opencv_bilinear() {
    let r = refs();
    let src = source();
    for factor in [2, 3] {
        let name = format!("down_up_{factor}");
        let (max, frac) = check(&name, &down_up(&src, factor), &r);
        // OpenCV's vector and scalar code round the vertical pass differently.
        assert!(
            max <= 1.0 && frac < 0.01,
            "{name}: max {max}, differing {frac}"
        );
    }
}

#[test]
fn rain_and_fog_match_albumentations_with_the_same_draws() {
    let r = refs();
    let src = source();
    let drops = &r["rain_drops"];
    let params = RainParams {
        slant: r["rain_slant"].data_f64[0],
        drop_length: (src.height() / 8).max(1),
        drop_width: 1,
        drop_color: [200, 200, 200],
        blur: 7,
        brightness: 0.7,
        drops: drops
            .data
            .chunks(2)
            .map(|p| (p[0] as i32, p[1] as i32))
            .collect(),
    };
    let (max, frac) = check("rain", &rain(&src, &params), &r);
    assert_eq!((max, frac), (0.0, 0.0), "rain");

    let particles = r["fog_particles"]
        .data
        .chunks(3)
        .map(|p| ((p[0] as i32, p[1] as i32), p[2] as i32))
        .collect();
    let params = FogParams {
        intensity: 0.6,
        alpha_coef: 0.08,
        particles,
    };
    let (max, _) = check("fog", &fog(&src, &params), &r);
    assert_eq!(max, 0.0, "fog");
}

#[test]
fn rotation_and_float_crop_match_torchvision_tensors() {
    let r = refs();
    let src = source();
    for angle in [17.3, -8.0] {
        let name = format!("rotate_{angle:.1}");
        let (max, _) = check(&name, &rotate_nearest(&src, angle), &r);
        assert_eq!(max, 0.0, "{name}");
    }
    // torchvision's (top 5, left 9, 30 × 30) → 24 × 24, and (2, 3, 20 × 20) → 37 × 37.
    let (max, frac) = check(
        "resized_crop_f32",
        &resized_crop_truncated(&src, (9, 5, 30, 30), 24),
        &r,
    );
    assert_eq!((max, frac), (0.0, 0.0), "down");
    let (max, frac) = check(
        "resized_crop_up_f32",
        &resized_crop_truncated(&src, (3, 2, 20, 20), 37),
        &r,
    );
    assert_eq!((max, frac), (0.0, 0.0), "up");
}

#[test]
fn normalise_equals_to_tensor_then_normalize() {
    let r = refs();
    let ours = Normalise::default().chw(&source());
    assert_eq!(ours, r["normalised_chw"].data, "bit-exact");
}

#[test]
fn validator_colour_distortions_match_opencv_float_ycrcb() {
    use sv_augment::validator::{color_contrast, color_saturation};
    let r = refs();
    let colours = as_image(&r["colours"]);
    for param in [0.4f32, 0.3] {
        let name = format!("saturation_{param}");
        let (max, frac) = check(&name, &color_saturation(&colours, param), &r);
        assert_eq!((max, frac), (0.0, 0.0), "{name}");
    }
    for param in [0.85f32, 0.725] {
        let name = format!("contrast_{param}");
        let (max, _) = check(&name, &color_contrast(&colours, param), &r);
        assert_eq!(max, 0.0, "{name}");
    }
}
