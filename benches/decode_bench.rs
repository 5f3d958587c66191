//! Decoding speed: `decode_bench FILE REPEATS` decodes FILE to RGB REPEATS times with
//! sv-image (libjpeg-turbo, PIL's pixels) and with the `image` crate's own decoder, one
//! thread, and prints one JSON line of milliseconds per image (the minimum of 5 rounds).
//! `benches/run_decode.sh` runs it beside PIL doing the same work.

use std::time::Instant;

fn per_image_ms(repeats: usize, mut f: impl FnMut()) -> f64 {
    (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..repeats {
                f();
            }
            t.elapsed().as_secs_f64() * 1e3 / repeats as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(file), Some(repeats)) = (args.first(), args.get(1).and_then(|r| r.parse().ok()))
    else {
        eprintln!("usage: decode_bench FILE REPEATS");
        std::process::exit(2);
    };
    let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{file}: {e}"));
    let opts = sv_image::DecodeOptions::default();
    let ours = per_image_ms(repeats, || {
        std::hint::black_box(sv_image::decode_rgb(&bytes, &opts).unwrap());
    });
    let image_crate = per_image_ms(repeats, || {
        std::hint::black_box(image::load_from_memory(&bytes).unwrap().to_rgb8());
    });
    println!(
        "{}",
        serde_json::json!({"file": file, "sv_image_ms": ours, "image_crate_ms": image_crate})
    );
}
