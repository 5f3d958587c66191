//! The image-folder reader and defensive decoding against PIL, on a fixture tree of
//! awkward files made by `tools/gen_data_fixtures.py` (CMYK, 16-bit and greyscale,
//! EXIF-rotated, PNG named .jpg, WebP, empty, truncated, duplicate, not an image, too big).

use std::collections::HashMap;

use sv_data::{FolderOptions, Label, Location, SkipReason, Source, decode_image, read_folder};
use sv_tests::{fixture, image_diff, read_expected};

fn expected() -> HashMap<String, serde_json::Value> {
    let text = std::fs::read_to_string(fixture("data/expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn opts() -> FolderOptions {
    FolderOptions {
        source: Source::Named("fixture".into()),
        // big.png (200×100) is over this limit; every other image is under it.
        max_pixels: 10_000,
        unlabelled: false,
        follow_links: false,
    }
}

/// A tree with link cycles: `roadwork/up -> ..` and `roadwork/here -> .` (followed
/// blindly, two ways back at every level), `roadwork/self -> self`, two links to
/// each other, a link to an image beside it and a link to a folder outside.
fn tree_with_links(dir: &std::path::Path) -> std::path::PathBuf {
    use std::os::unix::fs::symlink;
    let root = dir.join("tree");
    let pos = root.join("roadwork");
    let outside = dir.join("outside");
    std::fs::create_dir_all(&pos).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    let photo = std::fs::read(fixture("images/chelsea.png")).unwrap();
    std::fs::write(pos.join("a.png"), &photo).unwrap();
    let mut other = photo.clone();
    other.extend_from_slice(b"trailing bytes make another file");
    std::fs::write(outside.join("b.png"), &other).unwrap();
    symlink("..", pos.join("up")).unwrap();
    symlink(".", pos.join("here")).unwrap();
    symlink("self", pos.join("self")).unwrap();
    symlink("ping", pos.join("pong")).unwrap();
    symlink("pong", pos.join("ping")).unwrap();
    symlink("a.png", pos.join("a_again.png")).unwrap();
    symlink(&outside, pos.join("more")).unwrap();
    root
}

/// Run `f` on another thread, failing if it takes over a minute (a walk that loops).
fn within_a_minute<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(60))
        .expect("the folder walk did not end")
}

#[test]
fn links_are_skipped_by_default_and_cycles_end_when_followed() {
    let dir = tempfile::tempdir().unwrap();
    let root = tree_with_links(dir.path());
    let plain = FolderOptions {
        max_pixels: 1 << 24,
        ..opts()
    };
    let (samples, report) = within_a_minute({
        let (root, plain) = (root.clone(), plain.clone());
        move || read_folder(&root, &plain).unwrap()
    });
    assert_eq!(samples.len(), 1, "a.png alone: {report:?}");
    assert_eq!(report.counts[&SkipReason::Link], 7, "{report:?}");
    let follow = FolderOptions {
        follow_links: true,
        ..plain
    };
    let (samples, report) = within_a_minute(move || read_folder(&root, &follow).unwrap());
    // a.png, and b.png through `more`; a_again.png is a duplicate; `up` and `self` lead
    // back into walked folders, and so does `here`; ping/pong cannot be resolved.
    assert_eq!(samples.len(), 2, "{report:?}");
    assert_eq!(report.counts[&SkipReason::Duplicate], 1);
    assert_eq!(report.counts[&SkipReason::Unreadable], 3, "{report:?}");
}

#[test]
fn folder_reader_takes_good_images_and_counts_the_rest() {
    let root = fixture("data/tree");
    let (samples, report) = read_folder(&root, &opts()).unwrap();
    let exp = expected();
    let mut taken: Vec<String> = Vec::new();
    for s in &samples {
        let Location::File { path } = &s.location else {
            panic!("folder samples are files")
        };
        let rel = path
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let e = &exp[&rel];
        assert_eq!(
            s.id,
            e["sha256"].as_str().unwrap(),
            "{rel}: id is the sha256"
        );
        let label = match e["label"].as_str().unwrap() {
            "roadwork" => Label::Roadwork,
            _ => Label::NoRoadwork,
        };
        assert_eq!(s.label, label, "{rel}");
        let size = e["size"].as_array().unwrap();
        let want = (
            size[0].as_u64().unwrap() as u32,
            size[1].as_u64().unwrap() as u32,
        );
        assert_eq!(
            s.size,
            Some(want),
            "{rel}: size after EXIF orientation, as PIL"
        );
        assert_eq!(s.source, Source::Named("fixture".into()));
        taken.push(rel);
    }
    taken.sort();
    assert_eq!(
        taken,
        [
            "0/grey16.png",
            "0/grey8.png",
            "1/c.webp",
            "no_roadwork/cmyk.jpg",
            "no_roadwork/exif_rotated.jpg",
            "no_roadwork/png_named.jpg",
            "roadwork/a.jpg",
            "roadwork/sub/b.png",
        ]
    );
    let counts: Vec<(SkipReason, usize)> = report.counts.clone().into_iter().collect();
    assert_eq!(
        counts,
        vec![
            (SkipReason::Empty, 1),
            (SkipReason::UnknownFormat, 1),
            (SkipReason::Truncated, 1),
            (SkipReason::TooLarge, 1),
            (SkipReason::Duplicate, 1),
        ],
        "{report}"
    );
    let text = report.to_string();
    assert!(
        text.contains("truncated.jpg") && text.contains("big.png"),
        "{text}"
    );
}

#[test]
fn decoded_pixels_match_pil() {
    let exp = expected();
    let pixels = read_expected("data/pixels.safetensors");
    for (rel, tolerance_mean) in [
        ("roadwork/sub/b.png", 0.0),
        ("0/grey8.png", 0.0),
        ("0/grey16.png", 0.0),
        ("1/c.webp", 0.0),
        ("no_roadwork/png_named.jpg", 0.0),
        // JPEG decoders (libjpeg-turbo in PIL, zune-jpeg here) round differently.
        ("roadwork/a.jpg", 1.5),
        ("no_roadwork/exif_rotated.jpg", 1.5),
        ("no_roadwork/cmyk.jpg", 3.0),
    ] {
        let bytes = std::fs::read(fixture(&format!("data/tree/{rel}"))).unwrap();
        let img = decode_image(&bytes, 1 << 20).unwrap_or_else(|e| panic!("{rel}: {e}"));
        let (max, mean) = image_diff(rel, &img.to_rgb8(), &pixels[rel]);
        if tolerance_mean == 0.0 {
            assert_eq!(max, 0.0, "{rel}: lossless images decode exactly");
        } else {
            assert!(mean <= tolerance_mean, "{rel}: mean |Δ| {mean} (max {max})");
        }
        assert!(exp[rel]["size"].is_array());
    }
}

#[test]
fn batches_hold_normalised_pil_pixels_and_skip_vanished_files() {
    use std::sync::Arc;
    use sv_data::{ImageBatcher, SampleDataset, epoch_batches};

    let dir = tempfile::tempdir().unwrap();
    // Copy two lossless images; one will vanish before batching.
    for (rel, name) in [
        ("roadwork/sub/b.png", "roadwork/b.png"),
        ("1/c.webp", "1/c.webp"),
    ] {
        let dst = dir.path().join(name);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(fixture(&format!("data/tree/{rel}")), &dst).unwrap();
    }
    let (samples, _) = read_folder(dir.path(), &opts()).unwrap();
    assert_eq!(samples.len(), 2);
    std::fs::remove_file(dir.path().join("1/c.webp")).unwrap();

    // Transform: the top-left 16×16 pixels, so the batch can be checked against PIL.
    let transform: sv_data::Transform =
        Arc::new(|img, _seed| image::imageops::crop_imm(&img.to_rgb8(), 0, 0, 16, 16).to_image());
    let (mean, std) = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]);
    let normalise = sv_augment::Normalise { mean, std };
    let batcher = Arc::new(ImageBatcher::new(transform, normalise, 9));
    let device = burn::tensor::Device::default();
    let batches: Vec<_> = epoch_batches(
        Arc::new(SampleDataset::new(samples.clone())),
        batcher.clone(),
        vec![0, 1],
        2,
        2,
        device,
    )
    .collect();
    assert_eq!(batches.len(), 1);
    let batch = &batches[0];
    assert_eq!(
        batcher.failed(),
        1,
        "the vanished file is left out and counted"
    );
    assert_eq!(batch.ids.len(), 1);
    assert_eq!(batch.pixels.dims(), [1, 3, 16, 16]);
    assert_eq!(
        batch
            .targets
            .clone()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap(),
        vec![1.0]
    );

    let pil = &read_expected("data/pixels.safetensors")["roadwork/sub/b.png"];
    let w = pil.shape[1];
    let got = batch
        .pixels
        .clone()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    for c in 0..3 {
        for y in 0..16 {
            for x in 0..16 {
                let want = (pil.data[(y * w + x) * 3 + c] / 255.0 - mean[c]) / std[c];
                let v = got[c * 256 + y * 16 + x];
                assert!((v - want).abs() < 1e-5, "c{c} y{y} x{x}: {v} vs {want}");
            }
        }
    }
    // A sample's seed depends on (seed, id, epoch) only.
    let id = &samples[0].id;
    assert_eq!(batcher.sample_seed(id, 3), batcher.sample_seed(id, 3));
    assert_ne!(batcher.sample_seed(id, 3), batcher.sample_seed(id, 4));
}
