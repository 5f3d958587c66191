//! Helpers shared by the cross-crate tests: fixture paths and reference tensors.

pub mod chain_node;
pub mod hub_writer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use burn::tensor::{Device, Tensor, TensorData};
use safetensors::SafeTensors;

/// Path of a file under `tests/fixtures`.
pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel)
}

/// A reference tensor: shape and f32 values.
#[derive(Debug, Clone)]
pub struct Expected {
    /// Shape as stored.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub data: Vec<f32>,
    /// The same values in double precision (exact for f64 tensors).
    pub data_f64: Vec<f64>,
}

impl Expected {
    /// As a burn tensor of rank `D` on `device`.
    pub fn tensor<const D: usize>(&self, device: &Device) -> Tensor<D> {
        Tensor::from_data(
            TensorData::new(self.data.clone(), self.shape.clone()),
            device,
        )
    }
}

/// Every f32 or f64 tensor of a safetensors file written by the fixture script.
pub fn read_expected(rel: &str) -> HashMap<String, Expected> {
    let path = fixture(rel);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = SafeTensors::deserialize(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            let data_f64: Vec<f64> = match view.dtype() {
                safetensors::Dtype::F32 => view
                    .data()
                    .chunks_exact(4)
                    .map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap())))
                    .collect(),
                safetensors::Dtype::F64 => view
                    .data()
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
                other => panic!("{name} is {other:?}, not f32 or f64"),
            };
            (
                name,
                Expected {
                    shape: view.shape().to_vec(),
                    data: data_f64.iter().map(|&v| v as f32).collect(),
                    data_f64,
                },
            )
        })
        .collect()
}

/// Largest absolute difference between a tensor and a reference, after checking shapes.
pub fn max_abs_diff<const D: usize>(what: &str, got: Tensor<D>, want: &Expected) -> f32 {
    let shape = got.dims().to_vec();
    assert_eq!(
        shape, want.shape,
        "{what}: shape differs from the reference"
    );
    let got = got.into_data().try_to_vec::<f32>().expect("f32 tensor");
    got.iter()
        .zip(&want.data)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

/// Commit id the fake Hub reports for every file.
pub const FAKE_HUB_COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// A Hugging Face Hub stand-in on loopback serving one repository the way the Hub does:
/// `HEAD` and `GET /{repo}/resolve/{revision}/{file}` with `ETag` (the SHA-256 of the
/// content, as for LFS files), `X-Repo-Commit`, `X-Linked-Size`, and range requests
/// answered with `206` and `Content-Range`. Unknown files get `404`.
pub struct FakeHub {
    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub endpoint: String,
    /// Requests received so far.
    pub requests: Arc<AtomicUsize>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl FakeHub {
    /// Serve `files` (name in the repository → local file) of `repo` at any revision. When
    /// `corrupt` names a file, its body is altered after its ETag is computed.
    pub fn serve(
        repo: &'static str,
        files: HashMap<&'static str, PathBuf>,
        corrupt: Option<&'static str>,
    ) -> FakeHub {
        let server = tiny_http::Server::http("127.0.0.1:0").expect("bind loopback");
        let endpoint = format!(
            "http://{}",
            server.server_addr().to_ip().expect("ip address")
        );
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        std::thread::spawn(move || {
            for request in server.incoming_requests() {
                counter.fetch_add(1, Ordering::SeqCst);
                let url = request.url().to_string();
                let file = url
                    .strip_prefix(&format!("/{repo}/resolve/"))
                    .and_then(|rest| rest.split_once('/'))
                    .and_then(|(_rev, f)| files.get_key_value(f));
                let Some((name, path)) = file else {
                    let _ = request.respond(tiny_http::Response::empty(404));
                    continue;
                };
                let body = std::fs::read(path).expect("fixture file");
                respond_with_file(request, body, corrupt == Some(*name), FAKE_HUB_COMMIT);
            }
        });
        FakeHub { endpoint, requests }
    }
}

/// Answer a `HEAD` or `GET` (whole or a `Range`) of a repository file as the Hub does:
/// `ETag` (the SHA-256 of the content, computed before `corrupt` alters the body),
/// `X-Linked-Size`, `X-Repo-Commit: commit`, `206` with `Content-Range` for a range.
fn respond_with_file(request: tiny_http::Request, mut body: Vec<u8>, corrupt: bool, commit: &str) {
    let total = body.len();
    let etag = sha256_hex(&body);
    if corrupt {
        let last = body.len() - 1;
        body[last] ^= 0xFF;
    }
    let header = |k: &str, v: String| tiny_http::Header::from_bytes(k, v).unwrap();
    // As the Hub does for LFS files, the full size also travels in X-Linked-Size
    // (tiny_http sends no Content-Length on HEAD).
    let common = |r: tiny_http::Response<std::io::Cursor<Vec<u8>>>| {
        r.with_header(header("ETag", format!("\"{etag}\"")))
            .with_header(header("X-Linked-Size", total.to_string()))
            .with_header(header("X-Repo-Commit", commit.to_string()))
    };
    if *request.method() == tiny_http::Method::Head {
        let _ = request.respond(common(tiny_http::Response::from_data(body)));
        return;
    }
    let range = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Range"))
        .map(|h| h.value.as_str().to_string());
    let Some(range) = range.as_deref().and_then(|r| r.strip_prefix("bytes=")) else {
        let _ = request.respond(common(tiny_http::Response::from_data(body)));
        return;
    };
    let (a, b) = range.split_once('-').unwrap_or((range, ""));
    let start: usize = a.parse().unwrap_or(0);
    let end: usize = if b.is_empty() {
        total - 1
    } else {
        b.parse().unwrap_or(total - 1)
    };
    let end = end.min(total - 1);
    let response = common(tiny_http::Response::from_data(body[start..=end].to_vec()))
        .with_status_code(206)
        .with_header(header(
            "Content-Range",
            format!("bytes {start}-{end}/{total}"),
        ));
    let _ = request.respond(response);
}

/// The files of each commit of a [`MovingHub`] repository, and the commit `main` is at.
#[derive(Default)]
struct Commits {
    main: String,
    files: HashMap<String, HashMap<String, PathBuf>>,
}

/// A Hugging Face Hub stand-in on loopback whose one repository moves: each commit has
/// its own files, and `main` points at the last one published. It answers
/// `GET /api/models/{repo}/revision/{rev}` with the commit `rev` resolves to (`sha`,
/// `siblings`), and `HEAD`/`GET /{repo}/resolve/{rev}/{file}` with that commit's file,
/// as [`FakeHub`] does.
pub struct MovingHub {
    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub endpoint: String,
    commits: Arc<std::sync::Mutex<Commits>>,
}

impl MovingHub {
    /// Serve `repo`, empty until [`publish`](Self::publish).
    pub fn start(repo: &'static str) -> MovingHub {
        let server = tiny_http::Server::http("127.0.0.1:0").expect("bind loopback");
        let endpoint = format!(
            "http://{}",
            server.server_addr().to_ip().expect("ip address")
        );
        let commits = Arc::new(std::sync::Mutex::new(Commits::default()));
        let state = commits.clone();
        std::thread::spawn(move || {
            for request in server.incoming_requests() {
                let url = request.url().split('?').next().unwrap_or("").to_string();
                let state = state.lock().unwrap();
                let resolve = |rev: &str| {
                    let commit = if rev == "main" {
                        state.main.clone()
                    } else {
                        rev.to_string()
                    };
                    state.files.get(&commit).map(|f| (commit, f.clone()))
                };
                if let Some(rev) = url.strip_prefix(&format!("/api/models/{repo}/revision/")) {
                    match resolve(rev) {
                        Some((commit, files)) => {
                            let siblings: Vec<serde_json::Value> = files
                                .keys()
                                .map(|f| serde_json::json!({ "rfilename": f }))
                                .collect();
                            let body = serde_json::json!({ "sha": commit, "siblings": siblings });
                            let _ =
                                request.respond(tiny_http::Response::from_string(body.to_string()));
                        }
                        None => {
                            let _ = request.respond(tiny_http::Response::empty(404));
                        }
                    }
                    continue;
                }
                let found = url
                    .strip_prefix(&format!("/{repo}/resolve/"))
                    .and_then(|rest| rest.split_once('/'))
                    .and_then(|(rev, file)| {
                        let (commit, files) = resolve(rev)?;
                        Some((commit, files.get(file)?.clone()))
                    });
                drop(state);
                match found {
                    Some((commit, path)) => {
                        let body = std::fs::read(path).expect("published file");
                        respond_with_file(request, body, false, &commit);
                    }
                    None => {
                        let _ = request.respond(tiny_http::Response::empty(404));
                    }
                }
            }
        });
        MovingHub { endpoint, commits }
    }

    /// Publish `files` (name in the repository → local file) as `commit` (40 hex
    /// digits) and move `main` to it.
    pub fn publish(&self, commit: &str, files: HashMap<&str, PathBuf>) {
        let mut state = self.commits.lock().unwrap();
        state.files.insert(
            commit.to_string(),
            files.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        );
        state.main = commit.to_string();
    }
}

/// The files of a tiny HF classifier repository: the `hf_mlp` parity fixture as
/// `model.safetensors` with its `config.json` and a `preprocessor_config.json`.
pub fn tiny_repo_files() -> HashMap<&'static str, PathBuf> {
    HashMap::from([
        ("config.json", fixture("dinov2/hf_mlp.config.json")),
        ("model.safetensors", fixture("dinov2/hf_mlp.safetensors")),
        (
            "preprocessor_config.json",
            fixture("dinov2/hub/preprocessor_config.json"),
        ),
    ])
}

/// A Hub client on `cache` talking to `endpoint`, without progress bars or token.
pub fn hub_client(endpoint: &str, cache: &std::path::Path, offline: bool) -> sv_hub::HubClient {
    sv_hub::HubClient::new(sv_hub::HubSettings {
        cache_dir: cache.to_path_buf(),
        endpoint: endpoint.to_string(),
        token: None,
        offline,
        progress: false,
    })
    .expect("Hub client")
}

/// Rewrite a safetensors file with one key renamed.
pub fn rename_key(src: &Path, dst: &Path, from: &str, to: &str) {
    let bytes = std::fs::read(src).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let tensors: Vec<(String, safetensors::tensor::TensorView<'_>)> = st
        .tensors()
        .into_iter()
        .map(|(k, v)| (if k == from { to.to_string() } else { k }, v))
        .collect();
    safetensors::serialize_to_file(tensors, None, dst).unwrap();
}

/// Largest and mean absolute difference between an RGB image and a reference stored as
/// `[height, width, 3]` values, after checking the shape (`what` names it in failures).
pub fn image_diff(what: &str, got: &image::RgbImage, want: &Expected) -> (f32, f32) {
    assert_eq!(
        want.shape,
        vec![got.height() as usize, got.width() as usize, 3],
        "{what}: shape"
    );
    let d: Vec<f32> = got
        .as_raw()
        .iter()
        .zip(&want.data)
        .map(|(a, b)| (*a as f32 - b).abs())
        .collect();
    let max = d.iter().copied().fold(0.0, f32::max);
    (max, d.iter().sum::<f32>() / d.len().max(1) as f32)
}

/// The Python that `tools/test.sh` provides (`SV_TEST_PYTHON`: a venv with the reference
/// clients of `tools/requirements-test.txt`); a clear failure when it is not set.
pub fn test_python() -> String {
    std::env::var("SV_TEST_PYTHON").unwrap_or_else(|_| {
        panic!(
            "SV_TEST_PYTHON is not set: run the suite with `bash tools/test.sh`, or point it at \
             a Python with the packages of tools/requirements-test.txt"
        )
    })
}
