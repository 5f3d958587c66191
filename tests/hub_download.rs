//! `from_pretrained` through sv-hub against a Hub-compatible server on loopback: the
//! server speaks the `resolve` protocol that `huggingface_hub` and hf-hub use (range
//! requests, ETag, X-Repo-Commit, Content-Range), files land in the Python cache layout,
//! offline mode serves from that cache, and a corrupt download is refused and dropped.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use burn::tensor::Device;
use sv_hub::{HubClient, HubError, HubSettings};
use sv_models::{Dinov2Classifier, ModelError, Preprocessor};
use sv_tests::{fixture, max_abs_diff, read_expected};

const REPO: &str = "streetvision/tiny-dinov2-roadwork";
const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// A minimal Hub: `GET /{repo}/resolve/{revision}/{file}` with range support.
struct FakeHub {
    endpoint: String,
    requests: Arc<AtomicUsize>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Serve `files`; when `corrupt` names a file, its body is altered after the ETag is taken.
fn serve(files: HashMap<&'static str, PathBuf>, corrupt: Option<&'static str>) -> FakeHub {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", server.server_addr().to_ip().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    std::thread::spawn(move || {
        for request in server.incoming_requests() {
            counter.fetch_add(1, Ordering::SeqCst);
            let url = request.url().to_string();
            let prefix = format!("/{REPO}/resolve/main/");
            let file = url
                .strip_prefix(&prefix)
                .and_then(|f| files.get_key_value(f));
            let Some((name, path)) = file else {
                let _ = request.respond(tiny_http::Response::empty(404));
                continue;
            };
            let mut body = std::fs::read(path).unwrap();
            let etag = sha256_hex(&body);
            if corrupt == Some(*name) {
                let last = body.len() - 1;
                body[last] ^= 0xFF;
            }
            let total = body.len();
            let range = request
                .headers()
                .iter()
                .find(|h| h.field.equiv("Range"))
                .map(|h| h.value.as_str().to_string());
            let (start, end) = match range.as_deref().and_then(|r| r.strip_prefix("bytes=")) {
                Some(r) => {
                    let (a, b) = r.split_once('-').unwrap();
                    let a: usize = a.parse().unwrap();
                    let b: usize = if b.is_empty() {
                        total - 1
                    } else {
                        b.parse().unwrap()
                    };
                    (a, b.min(total - 1))
                }
                None => (0, total - 1),
            };
            let header = |k: &str, v: String| tiny_http::Header::from_bytes(k, v).unwrap();
            let response = tiny_http::Response::from_data(body[start..=end].to_vec())
                .with_status_code(206)
                .with_header(header("ETag", format!("\"{etag}\"")))
                .with_header(header("X-Repo-Commit", COMMIT.to_string()))
                .with_header(header(
                    "Content-Range",
                    format!("bytes {start}-{end}/{total}"),
                ));
            let _ = request.respond(response);
        }
    });
    FakeHub { endpoint, requests }
}

fn repo_files() -> HashMap<&'static str, PathBuf> {
    HashMap::from([
        ("config.json", fixture("dinov2/hf_mlp.config.json")),
        ("model.safetensors", fixture("dinov2/hf_mlp.safetensors")),
        (
            "preprocessor_config.json",
            fixture("dinov2/hub/preprocessor_config.json"),
        ),
    ])
}

fn client(endpoint: &str, cache: &std::path::Path, offline: bool) -> HubClient {
    HubClient::new(HubSettings {
        cache_dir: cache.to_path_buf(),
        endpoint: endpoint.to_string(),
        token: None,
        offline,
        progress: false,
    })
    .unwrap()
}

#[test]
fn from_pretrained_downloads_caches_and_matches_transformers() {
    let hub = serve(repo_files(), None);
    let cache = tempfile::tempdir().unwrap();
    let device = Device::default();

    let (model, pre) = Dinov2Classifier::from_pretrained(
        &client(&hub.endpoint, cache.path(), false),
        REPO,
        None,
        &device,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pre, Preprocessor::default());
    let expected = read_expected("dinov2/hf_mlp.expected.safetensors");
    let logits = model.forward(expected["pixels_other"].tensor::<4>(&device));
    let diff = max_abs_diff("logits", logits, &expected["pixels_other.logits"]);
    assert!(diff <= 1e-4, "max |Δ| = {diff:e}");

    // Python's cache layout: models--org--name/{blobs,refs/main,snapshots/<commit>/file}.
    let repo_dir = cache
        .path()
        .join("models--streetvision--tiny-dinov2-roadwork");
    assert_eq!(
        std::fs::read_to_string(repo_dir.join("refs/main"))
            .unwrap()
            .trim(),
        COMMIT
    );
    let snap = repo_dir.join("snapshots").join(COMMIT);
    for f in [
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
    ] {
        assert!(snap.join(f).exists(), "{f} not in the snapshot");
    }
    // No pytorch_model.bin was asked for, since model.safetensors exists.
    let after_download = hub.requests.load(Ordering::SeqCst);

    // Offline, the same load is served from the cache without a single request.
    let (offline_model, _) = Dinov2Classifier::from_pretrained(
        &client("http://127.0.0.1:9", cache.path(), true),
        REPO,
        None,
        &device,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(offline_model.num_labels(), 2);
    assert_eq!(hub.requests.load(Ordering::SeqCst), after_download);

    // A second online load also hits the cache.
    Dinov2Classifier::from_pretrained(
        &client(&hub.endpoint, cache.path(), false),
        REPO,
        None,
        &device,
    )
    .unwrap();
    assert_eq!(hub.requests.load(Ordering::SeqCst), after_download);
}

#[test]
fn offline_without_cache_names_the_missing_file() {
    let cache = tempfile::tempdir().unwrap();
    let err = Dinov2Classifier::from_pretrained(
        &client("http://127.0.0.1:9", cache.path(), true),
        REPO,
        None,
        &Device::default(),
    )
    .err()
    .unwrap();
    assert!(
        matches!(err, ModelError::Hub(HubError::NotCached { ref file, .. }) if file == "config.json"),
        "{err}"
    );
}

#[test]
fn corrupt_download_is_refused_and_not_cached() {
    let hub = serve(repo_files(), Some("model.safetensors"));
    let cache = tempfile::tempdir().unwrap();
    let err = Dinov2Classifier::from_pretrained(
        &client(&hub.endpoint, cache.path(), false),
        REPO,
        None,
        &Device::default(),
    )
    .err()
    .unwrap();
    assert!(
        matches!(err, ModelError::Hub(HubError::Checksum { ref file, .. }) if file == "model.safetensors"),
        "{err}"
    );
    let client = client("http://127.0.0.1:9", cache.path(), true);
    assert!(matches!(
        client.model_file(REPO, None, "model.safetensors"),
        Err(HubError::NotCached { .. })
    ));
    // The files that were intact stay cached.
    client.model_file(REPO, None, "config.json").unwrap();
}

#[test]
fn missing_repository_file_is_a_download_error() {
    let hub = serve(HashMap::new(), None);
    let cache = tempfile::tempdir().unwrap();
    let err = client(&hub.endpoint, cache.path(), false)
        .model_file(REPO, None, "config.json")
        .err()
        .unwrap();
    assert!(matches!(err, HubError::Download { .. }), "{err}");
    assert!(err.to_string().contains("config.json"), "{err}");
}
