//! Load on a miner over loopback, as validators would bring it: signed `ImageSynapse`
//! requests (224 × 224 quality-75 JPEG) from many dendrites at a fixed rate (open loop:
//! request i is due at i / rate whatever the answers do), latency counted from when each
//! request was due.
//!
//! `load_bench prepare DIR`: random-weight DINOv2-S/14 and ConvNeXt-V2-tiny exports (HF
//! layout, loadable by transformers and by sv-miner), their ensemble file, an allowlist and
//! the challenge image.
//! `load_bench drive --port P --miner-hotkey SS58 --image FILE --rates 4,8 --seconds 15
//! [--label NAME]`: one JSON line per rate.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use burn::tensor::Device;
use serde_json::{Map, Value, json};
use sv_axon::dendrite::{Dendrite, Target};
use sv_axon::keys::Hotkey;
use sv_models::{
    ConvNextV2, ConvNextV2Classifier, ConvNextV2Config, Dinov2, Dinov2Classifier, Dinov2Config,
};
use sv_records::metrics::nearest_rank;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("prepare") => prepare(Path::new(args.get(1).expect("prepare DIR"))),
        Some("drive") => drive(&args[1..]),
        _ => {
            eprintln!(
                "usage: load_bench prepare DIR | drive --port P --miner-hotkey SS58 --image FILE --rates R1,R2 --seconds S [--label L] [--clients N]"
            );
            std::process::exit(2);
        }
    }
}

fn prepare(dir: &Path) {
    let device = Device::flex();
    std::fs::create_dir_all(dir).unwrap();
    let vit = Dinov2Classifier::with_new_head(Dinov2::random(&Dinov2Config::small(), &device), 2);
    sv_train::export::export_hf(&vit, 224, None, &dir.join("vit-s")).unwrap();
    let cnx = ConvNextV2Classifier::with_new_head(
        ConvNextV2::random(&ConvNextV2Config::tiny(), &device).unwrap(),
        2,
    );
    sv_train::export::export_hf(&cnx, 224, None, &dir.join("convnext-t")).unwrap();
    let ens = dir.join("ensemble");
    std::fs::create_dir_all(&ens).unwrap();
    let member = |name: &str, sub: &str| {
        json!({"name": name, "checkpoint": format!("../{sub}/model.safetensors"),
               "preprocessor": format!("../{sub}/preprocessor_config.json")})
    };
    let spec = json!({"members": [member("dinov2", "vit-s"), member("convnext", "convnext-t")]});
    std::fs::write(
        ens.join("ensemble.json"),
        serde_json::to_vec_pretty(&spec).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join("validators.txt"),
        format!("{} 1000\n", validator().ss58),
    )
    .unwrap();
    let scene = sv_data::synthetic::render_scene(sv_data::synthetic::SceneKind::Roadwork, 224, 7);
    let jpeg = sv_augment::ops::jpeg_encode(&scene, 75).unwrap();
    std::fs::write(dir.join("challenge.jpg"), jpeg).unwrap();
    println!("prepared {}", dir.display());
}

fn validator() -> Hotkey {
    Hotkey::from_seed(&[0x11; 32])
}

fn arg<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn drive(args: &[String]) {
    let port: u16 = arg(args, "--port").expect("--port").parse().unwrap();
    let target = Target {
        ip: "127.0.0.1".into(),
        port,
        hotkey: arg(args, "--miner-hotkey").expect("--miner-hotkey").into(),
    };
    let image = std::fs::read(PathBuf::from(arg(args, "--image").expect("--image"))).unwrap();
    let b64 = sv_serve::payload::encode(&image);
    let seconds: f64 = arg(args, "--seconds").unwrap_or("15").parse().unwrap();
    let clients: usize = arg(args, "--clients").unwrap_or("48").parse().unwrap();
    let label = arg(args, "--label").unwrap_or("miner");
    let rates: Vec<f64> = arg(args, "--rates")
        .expect("--rates")
        .split(',')
        .map(|r| r.parse().unwrap())
        .collect();
    let fields = || {
        let mut f = Map::new();
        f.insert("image".into(), Value::from(b64.clone()));
        f.insert("prediction".into(), Value::from(-1.0));
        f.insert("testnet_label".into(), Value::from(-1));
        f
    };
    // Warm-up: a few sequential requests.
    let d = Dendrite::new(validator());
    for _ in 0..3 {
        let a = d.call("ImageSynapse", fields(), &target, 9.0);
        assert_eq!(a.status, 200, "warm-up: {:?}", a.message);
    }
    for rate in rates {
        let total = (rate * seconds).round() as usize;
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<(f64, u16)>> = Mutex::new(Vec::with_capacity(total));
        let start = Instant::now() + Duration::from_millis(200);
        let dendrites: Vec<Arc<Dendrite>> = (0..clients)
            .map(|_| Arc::new(Dendrite::new(validator())))
            .collect();
        std::thread::scope(|s| {
            for d in &dendrites {
                let (next, results, target, fields) = (&next, &results, &target, &fields);
                s.spawn(move || {
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        if i >= total {
                            break;
                        }
                        let due = start + Duration::from_secs_f64(i as f64 / rate);
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                        let a = d.call("ImageSynapse", fields(), target, 9.0);
                        let latency = due.elapsed().as_secs_f64() * 1e3;
                        let ok = a.status == 200
                            && a.prediction().is_some_and(|p| (0.0..=1.0).contains(&p));
                        results
                            .lock()
                            .unwrap()
                            .push((latency, if ok { 200 } else { a.status.max(1) }));
                    }
                });
            }
        });
        let wall = start.elapsed().as_secs_f64();
        let results = results.into_inner().unwrap();
        let mut lat: Vec<f64> = results.iter().filter(|r| r.1 == 200).map(|r| r.0).collect();
        lat.sort_by(f64::total_cmp);
        let percentile = |q: f64| {
            if lat.is_empty() {
                f64::NAN
            } else {
                nearest_rank(&lat, q)
            }
        };
        let row = json!({
            "miner": label, "rate": rate, "sent": total, "answered": lat.len(),
            "failed": total - lat.len(),
            "throughput": lat.len() as f64 / wall,
            "p50_ms": percentile(0.5), "p90_ms": percentile(0.9),
            "p99_ms": percentile(0.99), "max_ms": lat.last().copied().unwrap_or(f64::NAN),
        });
        println!("{row}");
    }
}
