//! `from_pretrained` through sv-hub against a Hub-compatible server on loopback: the
//! server speaks the `resolve` protocol that `huggingface_hub` and hf-hub use (range
//! requests, ETag, X-Repo-Commit, Content-Range), files land in the Python cache layout,
//! offline mode serves from that cache, and a corrupt download is refused and dropped.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use burn::tensor::Device;
use sv_hub::HubError;
use sv_models::{Dinov2Classifier, ModelError, Preprocessor};
use sv_tests::{FAKE_HUB_COMMIT, FakeHub, max_abs_diff, read_expected, tiny_repo_files};

const REPO: &str = "streetvision/tiny-dinov2-roadwork";
const COMMIT: &str = FAKE_HUB_COMMIT;

fn serve(
    files: std::collections::HashMap<&'static str, PathBuf>,
    corrupt: Option<&'static str>,
) -> FakeHub {
    FakeHub::serve(REPO, files, corrupt)
}

fn repo_files() -> std::collections::HashMap<&'static str, PathBuf> {
    tiny_repo_files()
}

use sv_tests::hub_client as client;

/// `from_pretrained` of the test repository on the CPU.
fn load(client: &sv_hub::HubClient) -> Result<(Dinov2Classifier, Preprocessor), ModelError> {
    Dinov2Classifier::from_pretrained(client, REPO, None, &Device::default())
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
    let err = load(&client("http://127.0.0.1:9", cache.path(), true)).unwrap_err();
    assert!(
        matches!(err, ModelError::Hub(HubError::NotCached { ref file, .. }) if file == "config.json"),
        "{err}"
    );
}

#[test]
fn corrupt_download_is_refused_and_not_cached() {
    let hub = serve(repo_files(), Some("model.safetensors"));
    let cache = tempfile::tempdir().unwrap();
    let err = load(&client(&hub.endpoint, cache.path(), false)).unwrap_err();
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

#[test]
fn convnext_repository_loads_with_its_processor_and_architecture() {
    // A `ConvNextV2ForImageClassification` repository: the hf_cls fixture with its
    // config and the ConvNeXt 384-px processor.
    const CNX: &str = "streetvision/tiny-convnextv2-roadwork";
    let files = HashMap::from([
        (
            "config.json",
            sv_tests::fixture("convnext/hf_cls.config.json"),
        ),
        (
            "model.safetensors",
            sv_tests::fixture("convnext/hf_cls.safetensors"),
        ),
        (
            "preprocessor_config.json",
            sv_tests::fixture("preprocess/convnext384.preprocessor_config.json"),
        ),
    ]);
    let hub = FakeHub::serve(CNX, files, None);
    let cache = tempfile::tempdir().unwrap();
    let device = Device::default();
    let client = client(&hub.endpoint, cache.path(), false);

    let (model, pre) =
        sv_models::ConvNextV2Classifier::from_pretrained(&client, CNX, None, &device)
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pre.crop, (384, 384));
    assert!(pre.warp);
    let expected = read_expected("convnext/hf_cls.expected.safetensors");
    let logits = model.forward(expected["pixels_wide"].tensor::<4>(&device));
    let diff = max_abs_diff("logits", logits, &expected["pixels_wide.logits"]);
    assert!(diff <= 1e-4, "max |Δ| = {diff:e}");

    // The roadwork classifier picks the architecture from config.json's model_type.
    let classifier =
        sv_models::RoadworkClassifier::from_pretrained(&client, CNX, None, None, device)
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        classifier.model.architecture(),
        sv_models::Architecture::ConvNextV2
    );
    assert_eq!(classifier.positive_index, 1);
}
