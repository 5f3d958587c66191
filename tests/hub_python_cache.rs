//! The Hub cache is shared with Python: files downloaded by sv-hub are found by
//! `huggingface_hub` offline, and files downloaded by `huggingface_hub` are found by
//! sv-hub offline. Python's client is the reference here; `tools/test.sh` provides it
//! (a venv from `tools/requirements-test.txt`) through `SV_TEST_PYTHON`.

use std::path::Path;
use std::process::Command;

use burn::tensor::Device;
use sv_models::Dinov2Classifier;
use sv_tests::{FAKE_HUB_COMMIT, FakeHub, fixture, tiny_repo_files};

const REPO: &str = "streetvision/python-shared-cache";
const FILES: [&str; 3] = [
    "config.json",
    "model.safetensors",
    "preprocessor_config.json",
];

fn python() -> Command {
    let python = sv_tests::test_python();
    let mut cmd = Command::new(python);
    cmd.env("HF_HUB_DISABLE_TELEMETRY", "1")
        .env("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        .env("HF_HUB_DISABLE_XET", "1")
        .env_remove("HF_TOKEN")
        .env_remove("HF_HOME");
    cmd
}

use sv_tests::hub_client as client;

/// Python downloads (online or from the cache only) and prints each file's local path.
fn python_download(cache: &Path, endpoint: &str, offline: bool) -> Vec<String> {
    let script = r#"
import sys
from huggingface_hub import hf_hub_download
repo, cache, offline = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
for f in sys.argv[4:]:
    print(hf_hub_download(repo, f, cache_dir=cache, local_files_only=offline))
"#;
    let out = python()
        .env("HF_ENDPOINT", endpoint)
        .args(["-c", script, REPO])
        .arg(cache)
        .arg(if offline { "1" } else { "0" })
        .args(FILES)
        .output()
        .expect("run Python");
    assert!(
        out.status.success(),
        "huggingface_hub failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn python_finds_what_sv_hub_downloaded() {
    let hub = FakeHub::serve(REPO, tiny_repo_files(), None);
    let cache = tempfile::tempdir().unwrap();
    let rust = client(&hub.endpoint, cache.path(), false);
    for f in FILES {
        rust.model_file(REPO, None, f).unwrap();
    }
    let before = hub.requests.load(std::sync::atomic::Ordering::SeqCst);
    let paths = python_download(cache.path(), "http://127.0.0.1:9", true);
    assert_eq!(
        hub.requests.load(std::sync::atomic::Ordering::SeqCst),
        before
    );
    let files = tiny_repo_files();
    for (f, path) in FILES.iter().zip(&paths) {
        assert!(path.contains(FAKE_HUB_COMMIT), "{path}");
        assert_eq!(
            std::fs::read(path).unwrap(),
            std::fs::read(&files[f]).unwrap(),
            "{f}"
        );
    }
}

#[test]
fn sv_hub_finds_what_python_downloaded() {
    let hub = FakeHub::serve(REPO, tiny_repo_files(), None);
    let cache = tempfile::tempdir().unwrap();
    python_download(cache.path(), &hub.endpoint, false);
    let offline = client("http://127.0.0.1:9", cache.path(), true);
    let (model, _) = Dinov2Classifier::from_pretrained(&offline, REPO, None, &Device::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(model.num_labels(), 2);
    let weights = offline.model_file(REPO, None, "model.safetensors").unwrap();
    assert_eq!(
        std::fs::read(weights).unwrap(),
        std::fs::read(fixture("dinov2/hf_mlp.safetensors")).unwrap()
    );
}
