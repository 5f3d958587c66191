//! Augmentation throughput: a pipeline (preset or TOML file) applied to every image in a
//! folder, then normalised to `[3, H, W]` `f32`, in parallel on `--threads` threads.
//! Decoding happens before the clock starts. Prints one JSON line.
//!
//! `augment_bench --images DIR [--pipeline heavy] [--threads 2] [--rounds 5]`

use std::time::Instant;

use rayon::prelude::*;
use sv_augment::{AugRng, Pipeline};

/// As in the project's binaries (`sv_cli::alloc`).
#[global_allocator]
static ALLOC: sv_cli::alloc::Allocator = sv_cli::alloc::Allocator;

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_string())
}

fn main() {
    sv_cli::alloc::keep_freed_memory();
    let args: Vec<String> = std::env::args().collect();
    let dir = arg(&args, "--images", "");
    let spec = arg(&args, "--pipeline", "heavy");
    let threads: usize = arg(&args, "--threads", "2").parse().expect("--threads");
    let rounds: usize = arg(&args, "--rounds", "5").parse().expect("--rounds");
    let pipeline = Pipeline::load(&spec).unwrap_or_else(|e| panic!("{e}"));
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("--images {dir}: {e}"))
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    let images: Vec<image::RgbImage> = paths
        .iter()
        .map(|p| image::open(p).unwrap().to_rgb8())
        .collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let mut best = f64::INFINITY;
    let mut checksum = 0f64;
    for round in 0..rounds {
        // Decoded images are owned by the loader and moved into the pipeline.
        let owned = images.clone();
        let start = Instant::now();
        let sums: Vec<f32> = pool.install(|| {
            owned
                .into_par_iter()
                .enumerate()
                .map(|(i, img)| {
                    let mut rng = AugRng::for_sample(round as u64, &i.to_string(), 0);
                    let (values, _) = pipeline.apply_normalised(img, &mut rng);
                    values[values.len() / 2]
                })
                .collect()
        });
        best = best.min(start.elapsed().as_secs_f64());
        checksum += sums.iter().map(|&v| f64::from(v)).sum::<f64>();
    }
    let (w, h) = images.first().map(|i| i.dimensions()).unwrap_or((0, 0));
    println!(
        "{}",
        serde_json::json!({
            "impl": "sv-augment",
            "pipeline": spec,
            "images": images.len(),
            "size": [w, h],
            "threads": threads,
            "images_per_s": images.len() as f64 / best,
            "checksum": checksum,
        })
    );
}
