//! sv-image's decoder against PIL, pixel for pixel, on the corpus that
//! `tools/gen_decode_fixtures.py` wrote with Pillow 11.3 (libjpeg-turbo 3.1): baseline and
//! progressive JPEGs of every subsampling (4:4:4, 4:2:2, 4:2:0, 4:4:0, 4:1:1), qualities
//! 30–100, odd sizes down to 1×1 and up to 4001×3, restart markers, arithmetic coding,
//! greyscale, CMYK with and without an Adobe marker, YCCK, an ICC profile, the eight EXIF
//! orientations, truncated files, and PNGs of every common mode. Every file PIL decodes
//! must give PIL's pixels exactly (with and without `exif_transpose`); every file PIL
//! refuses must be refused with a reason.

use std::path::PathBuf;

use sv_image::{DecodeOptions, decode_rgb};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/decode")
}

fn pil_pixels(name: &str) -> image::RgbImage {
    image::open(dir().join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .to_rgb8()
}

fn compare(
    file: &str,
    got: &image::RgbImage,
    want: &image::RgbImage,
    what: &str,
) -> Option<String> {
    if got.dimensions() != want.dimensions() {
        return Some(format!(
            "{file} ({what}): size {:?}, PIL {:?}",
            got.dimensions(),
            want.dimensions()
        ));
    }
    let diffs: Vec<u8> = got
        .as_raw()
        .iter()
        .zip(want.as_raw())
        .map(|(a, b)| a.abs_diff(*b))
        .collect();
    let n = diffs.iter().filter(|d| **d > 0).count();
    (n > 0).then(|| {
        format!(
            "{file} ({what}): {n} of {} samples differ from PIL, by up to {}",
            diffs.len(),
            diffs.iter().max().copied().unwrap_or(0)
        )
    })
}

#[test]
fn every_file_decodes_as_pil_or_is_refused_as_pil_refuses() {
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("expected.json")).unwrap())
            .unwrap();
    let files = meta["files"].as_array().unwrap();
    assert!(files.len() > 90, "the corpus has {} files", files.len());
    let raw = DecodeOptions {
        exif_transpose: false,
        ..DecodeOptions::default()
    };
    let transposing = DecodeOptions::default();
    let mut failures = Vec::new();
    let mut refused = 0;
    for f in files {
        let file = f["file"].as_str().unwrap();
        let bytes = std::fs::read(dir().join(file)).unwrap();
        if let Some(why) = f["refused"].as_str() {
            refused += 1;
            match decode_rgb(&bytes, &raw) {
                Ok(img) => failures.push(format!(
                    "{file}: decoded ({:?}) but PIL refuses it ({why})",
                    img.dimensions()
                )),
                Err(skip) => assert!(!skip.detail.is_empty(), "{file}: refusal without reason"),
            }
            continue;
        }
        let want = pil_pixels(f["pil"].as_str().unwrap());
        match decode_rgb(&bytes, &raw) {
            Ok(got) => failures.extend(compare(file, &got, &want, "Image.open")),
            Err(e) => failures.push(format!("{file}: refused ({e}) but PIL decodes it")),
        }
        let want_t = match f["transposed"].as_str() {
            Some(t) => pil_pixels(t),
            None => want,
        };
        match decode_rgb(&bytes, &transposing) {
            Ok(got) => failures.extend(compare(file, &got, &want_t, "exif_transpose")),
            Err(e) => failures.push(format!("{file}: refused ({e}) with exif_transpose")),
        }
    }
    assert!(refused >= 5, "the corpus has {refused} files PIL refuses");
    assert!(
        failures.is_empty(),
        "{} of {} files differ from PIL:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

#[test]
fn the_pixel_limit_is_checked_before_decoding() {
    let bytes = std::fs::read(dir().join("size_4001x3_444.jpg")).unwrap();
    let opts = DecodeOptions {
        max_pixels: 4001 * 3 - 1,
        exif_transpose: false,
        ..DecodeOptions::default()
    };
    let err = decode_rgb(&bytes, &opts).unwrap_err();
    assert_eq!(err.reason, sv_image::SkipReason::TooLarge, "{err}");
    assert_eq!(sv_image::dimensions(&bytes).unwrap(), (4001, 3));
}

#[test]
fn a_cut_scan_with_an_end_marker_decodes_as_pil_but_a_training_set_refuses_it() {
    let bytes = std::fs::read(dir().join("truncated_then_eoi.jpg")).unwrap();
    assert!(decode_rgb(&bytes, &DecodeOptions::default()).is_ok());
    let strict = DecodeOptions {
        refuse_cut_scans: true,
        ..DecodeOptions::default()
    };
    let Err(err) = decode_rgb(&bytes, &strict) else {
        panic!("a cut scan was decoded");
    };
    assert_eq!(err.reason, sv_image::SkipReason::Truncated, "{err}");
    let whole = std::fs::read(dir().join("size_33x31_420.jpg")).unwrap();
    assert!(decode_rgb(&whole, &strict).is_ok());
    // A folder of training images skips it.
    let tmp = tempfile::tempdir().unwrap();
    let pos = tmp.path().join("roadwork");
    std::fs::create_dir_all(&pos).unwrap();
    std::fs::write(pos.join("cut.jpg"), &bytes).unwrap();
    std::fs::write(pos.join("whole.jpg"), &whole).unwrap();
    let (samples, report) =
        sv_data::read_folder(tmp.path(), &sv_data::FolderOptions::default()).unwrap();
    assert_eq!(samples.len(), 1);
    assert_eq!(report.counts[&sv_image::SkipReason::Truncated], 1);
}

#[test]
fn damaged_jpegs_never_panic() {
    // Every single-byte corruption and every cut of a small JPEG: a result or a refusal.
    let bytes = std::fs::read(dir().join("size_33x31_420.jpg")).unwrap();
    let opts = DecodeOptions::default();
    for i in 0..bytes.len() {
        for v in [0x00u8, 0xFF, bytes[i] ^ 0x55] {
            let mut b = bytes.clone();
            b[i] = v;
            let _ = decode_rgb(&b, &opts);
        }
        let _ = decode_rgb(&bytes[..i], &opts);
    }
}
