//! Preprocessing against HF `BitImageProcessor` (PIL bicubic resize to shortest edge 256,
//! centre crop 224, ImageNet normalisation) and `ConvNextImageProcessor` (crop_pct resize
//! and crop at 224, plain resize at 384), on real photographs committed as fixtures.

use burn::tensor::Device;
use sv_models::Preprocessor;
use sv_models::preprocess::{DEFAULT_MAX_PIXELS, open_image};
use sv_tests::{fixture, max_abs_diff, read_expected};

/// One 8-bit grey level after normalisation by the smallest std (0.224).
const ONE_LEVEL: f32 = 1.0 / 255.0 / 0.224;

/// Compare with the reference; returns the mean |Δ|.
fn check(file: &str, tolerance: f32) -> f32 {
    let stem = file.rsplit_once('.').unwrap().0;
    check_with(
        &Preprocessor::default(),
        file,
        &format!("preprocess/{stem}.safetensors"),
        tolerance,
    )
}

fn check_with(processor: &Preprocessor, file: &str, expected: &str, tolerance: f32) -> f32 {
    let expected = read_expected(expected);
    let image = open_image(&fixture(&format!("images/{file}")), DEFAULT_MAX_PIXELS)
        .unwrap_or_else(|e| panic!("{e}"));
    let pixels = processor.batch(&[image], &Device::default());
    let want = &expected["pixel_values"];
    let got = pixels.into_data().try_to_vec::<f32>().unwrap();
    assert_eq!(got.len(), want.data.len(), "{file}: size");
    let diff = max_abs_diff(
        file,
        burn::tensor::Tensor::<4>::from_data(
            burn::tensor::TensorData::new(got.clone(), want.shape.clone()),
            &Device::default(),
        ),
        want,
    );
    assert!(
        diff <= tolerance,
        "{file}: max |Δ| = {diff:e} > {tolerance:e}"
    );
    got.iter()
        .zip(&want.data)
        .map(|(a, b)| (a - b).abs())
        .sum::<f32>()
        / got.len() as f32
}

#[test]
fn png_colour_matches_pil_exactly() {
    // Same decoded bytes, same fixed-point resampling: only f32 rounding may differ.
    check("chelsea.png", 1e-5);
}

#[test]
fn png_greyscale_is_broadcast_to_rgb_like_pil() {
    check("camera_grey.png", 1e-5);
}

#[test]
fn jpeg_matches_pil_within_decoder_rounding() {
    // libjpeg-turbo (PIL) and the Rust decoder round the IDCT and chroma upsampling
    // differently, by a few levels at sharp colour edges; the resize and normalisation on
    // top are exact (see the PNG tests). Bound the worst pixel and the average.
    for file in ["chelsea_q90.jpg", "rocket.jpg"] {
        let mean = check(file, 6.0 * ONE_LEVEL);
        assert!(mean <= 0.5 * ONE_LEVEL, "{file}: mean |Δ| = {mean:e}");
    }
}

#[test]
fn convnext_processor_matches_hf_at_224_and_384() {
    // 224: shortest edge to int(224 / 0.875) = 256, centre crop 224. 384: resize to
    // 384×384 without keeping the aspect ratio.
    for size in [224, 384] {
        let json = std::fs::read_to_string(fixture(&format!(
            "preprocess/convnext{size}.preprocessor_config.json"
        )))
        .unwrap();
        let processor = Preprocessor::from_hf_json(&json).unwrap();
        assert_eq!(processor.crop, (size, size));
        for stem in ["chelsea", "camera_grey"] {
            check_with(
                &processor,
                &format!("{stem}.png"),
                &format!("preprocess/convnext{size}_{stem}.safetensors"),
                1e-5,
            );
        }
    }
}

#[test]
fn corrupt_image_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("truncated.jpg");
    let bytes = std::fs::read(fixture("images/rocket.jpg")).unwrap();
    std::fs::write(&bad, &bytes[..bytes.len() / 3]).unwrap();
    let err = open_image(&bad, DEFAULT_MAX_PIXELS).expect_err("truncated JPEG must fail");
    assert!(err.to_string().contains("truncated.jpg"), "{err}");
}

#[test]
fn oversized_image_is_refused_before_decoding() {
    let err = open_image(&fixture("images/chelsea.png"), 1000)
        .err()
        .unwrap();
    assert!(err.to_string().contains("chelsea.png"), "{err}");
}
