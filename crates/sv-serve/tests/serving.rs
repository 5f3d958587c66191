//! The serving pieces on their own: the batcher's stake order and deadlines, and the
//! prediction log's rotation, torn-line repair and image store.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sv_serve::batcher::{BatchSettings, Batcher, Outcome};
use sv_serve::metrics::Metrics;
use sv_serve::model::{LoadedModel, ModelSource};
use sv_serve::predlog::{CURRENT, Entry, LogSettings, PredictionLog, image_path, rotated_files};
use sv_serve::slot::ModelSlot;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(rel)
}

fn slot() -> Arc<ModelSlot> {
    let source = ModelSource::Local(fixture("convnext/hf_cls.safetensors"));
    let model = LoadedModel::load(&source, &Default::default()).unwrap();
    Arc::new(ModelSlot::new(model))
}

#[test]
fn waiting_requests_are_served_in_stake_order_and_late_ones_refused() {
    let slot = slot();
    let img = image::open(fixture("images/chelsea.png")).unwrap();
    let batcher = Batcher::start(
        slot,
        BatchSettings {
            max_batch: 1,
            max_wait: Duration::ZERO,
        },
        Arc::new(Metrics::default()),
    );
    let far = Instant::now() + Duration::from_secs(60);
    let order = Arc::new(Mutex::new(Vec::new()));
    // A first request occupies the worker; four more, submitted back to back (images
    // cloned beforehand), queue behind it and are served highest stake first. Each
    // answer's arrival time orders them (one image per batch, one batch at a time).
    let stakes = [0.0, 1.0, 100.0, 10.0];
    let images: Vec<_> = stakes.iter().map(|_| img.clone()).collect();
    let blocker = batcher.submit(img.clone(), far, 1000.0);
    let receivers: Vec<_> = stakes
        .iter()
        .zip(images)
        .map(|(&stake, image)| (stake, batcher.submit(image, far, stake)))
        .collect();
    let waiters: Vec<_> = receivers
        .into_iter()
        .map(|(stake, rx)| {
            let order = order.clone();
            std::thread::spawn(move || {
                let outcome = rx.recv().unwrap();
                order.lock().unwrap().push((Instant::now(), stake));
                outcome
            })
        })
        .collect();
    assert!(matches!(blocker.recv().unwrap(), Outcome::Answered { .. }));
    for w in waiters {
        assert!(
            matches!(w.join().unwrap(), Outcome::Answered { probability, .. } if (0.0..=1.0).contains(&probability))
        );
    }
    let mut arrivals = order.lock().unwrap().clone();
    arrivals.sort_by_key(|(t, _)| *t);
    let order: Vec<f64> = arrivals.into_iter().map(|(_, s)| s).collect();
    let pos = |s: f64| order.iter().position(|&x| x == s).unwrap();
    assert!(pos(100.0) < pos(10.0) && pos(10.0) < pos(1.0), "{order:?}");
    // A deadline already past: told so, not answered.
    let rx = batcher.submit(img, Instant::now(), 5.0);
    assert_eq!(rx.recv().unwrap(), Outcome::Late);
}

fn entry(i: usize) -> Entry {
    Entry {
        time: i as f64,
        validator: "5DtDLm5rQHShDqojQpsvcN8tRXHVFaecfDoRet1SU6BFD9Fi".into(),
        synapse: "ImageSynapse".into(),
        image_sha256: format!("{i:064x}"),
        prediction: 0.25,
        latency_ms: 3.0,
        model_version: "v1".into(),
        label: None,
    }
}

#[test]
fn the_log_rotates_by_size_repairs_a_torn_line_and_stores_images_once() {
    let dir = tempfile::tempdir().unwrap();
    let settings = LogSettings {
        dir: dir.path().to_path_buf(),
        max_bytes: 1000,
        keep: 2,
        store_images: true,
    };
    // A torn line from a killed process is cut; the whole lines before it stay.
    let line = format!("{}\n", serde_json::to_string(&entry(0)).unwrap());
    std::fs::write(
        dir.path().join(CURRENT),
        format!("{line}{{\"time\": 1, \"vali"),
    )
    .unwrap();
    let metrics = Arc::new(Metrics::default());
    {
        let log = PredictionLog::open(settings.clone(), metrics.clone()).unwrap();
        let text = std::fs::read_to_string(dir.path().join(CURRENT)).unwrap();
        assert_eq!(text, line);
        for i in 1..=30 {
            let bytes = if i % 2 == 0 {
                b"\xFF\xD8\xFFjpeg".to_vec()
            } else {
                b"\xFF\xD8\xFFother".to_vec()
            };
            log.record(entry(i), Some(bytes));
        }
    }
    let rotated = rotated_files(dir.path());
    assert_eq!(rotated.len(), 2, "{rotated:?}");
    let mut total = 0;
    for f in rotated
        .iter()
        .chain(std::iter::once(&dir.path().join(CURRENT)))
    {
        let text = std::fs::read_to_string(f).unwrap();
        assert!(
            text.len() <= 1000,
            "{} is {} bytes",
            f.display(),
            text.len()
        );
        for l in text.lines() {
            let e: Entry = serde_json::from_str(l).unwrap();
            assert!(e.time <= 30.0);
            total += 1;
        }
    }
    // Only the newest files are kept; the last entries are all there.
    assert!(total < 31);
    let current = std::fs::read_to_string(dir.path().join(CURRENT)).unwrap();
    assert!(current.lines().last().unwrap().contains("\"time\":30.0"));
    let stored = image_path(dir.path(), &entry(30).image_sha256, b"\xFF\xD8\xFF");
    assert_eq!(std::fs::read(stored).unwrap(), b"\xFF\xD8\xFFjpeg");
    assert_eq!(
        metrics
            .log_dropped
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}
