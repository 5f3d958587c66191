//! Hugging Face Hub access for streetvision-rs.
//!
//! Files are fetched through `hf-hub` into the same cache layout that the
//! Python `huggingface_hub` library uses, so a model downloaded by either tool
//! is found by the other. The environment variables follow Python's meaning:
//!
//! - `HF_HUB_CACHE` — the cache directory itself (otherwise `$HF_HOME/hub`,
//!   otherwise `~/.cache/huggingface/hub`);
//! - `HF_HOME` — the root of the Hugging Face configuration;
//! - `HF_ENDPOINT` — the server to download from (a mirror, or a local server
//!   in tests);
//! - `HF_TOKEN` — an access token for gated or private repositories;
//! - `HF_HUB_OFFLINE=1` — never touch the network, serve only from the cache.
//!
//! [`publish`] commits a directory to a model repository; [`operator`] registers a
//! published model with the subnet operator.
//!
//! An offline client serves only what the cache holds, and says so:
//!
//! ```
//! let cache = tempfile::tempdir().unwrap();
//! let client = sv_hub::HubClient::new(sv_hub::HubSettings {
//!     cache_dir: cache.path().to_path_buf(),
//!     endpoint: "https://huggingface.co".into(),
//!     token: None,
//!     offline: true,
//!     progress: false,
//! })
//! .unwrap();
//! assert!(client.model_file("org/name", None, "config.json").is_err());
//! ```

#![warn(missing_docs)]

pub mod operator;
pub mod publish;

use std::path::{Path, PathBuf};

use hf_hub::api::sync::{Api, ApiBuilder};
use hf_hub::{Cache, Repo, RepoType};

/// Errors from Hub access.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The file is not in the local cache and the network may not be used.
    #[error("{repo}@{revision}: `{file}` is not in the cache at {cache} and HF_HUB_OFFLINE is set")]
    NotCached {
        /// Repository id.
        repo: String,
        /// Requested revision.
        revision: String,
        /// File inside the repository.
        file: String,
        /// Cache directory that was searched.
        cache: PathBuf,
    },
    /// The download failed (network, HTTP status, missing headers, I/O).
    #[error("{repo}@{revision}: downloading `{file}` from {endpoint} failed: {source}")]
    Download {
        /// Repository id.
        repo: String,
        /// Requested revision.
        revision: String,
        /// File inside the repository.
        file: String,
        /// Server that was asked.
        endpoint: String,
        /// Underlying error.
        #[source]
        source: Box<hf_hub::api::sync::ApiError>,
    },
    /// A downloaded file does not hash to the checksum the server announced; it has been
    /// removed from the cache.
    #[error(
        "{repo}@{revision}: `{file}` is corrupt: expected {expected}, got {actual}; removed from the cache"
    )]
    Checksum {
        /// Repository id.
        repo: String,
        /// Requested revision.
        revision: String,
        /// File inside the repository.
        file: String,
        /// Checksum announced by the server (the cache blob's name).
        expected: String,
        /// Checksum of the bytes received.
        actual: String,
    },
    /// The client could not be set up (cache directory, TLS, …).
    #[error("cannot set up the Hub client: {0}")]
    Setup(#[source] Box<hf_hub::api::sync::ApiError>),
    /// The server may not be asked (`HF_HUB_OFFLINE`).
    #[error("{repo}@{revision}: the Hub is not asked while HF_HUB_OFFLINE is set")]
    Offline {
        /// Repository id.
        repo: String,
        /// Requested revision.
        revision: String,
    },
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, HubError>;

/// Settings for a [`HubClient`]; [`HubSettings::from_env`] reads them the way
/// Python's `huggingface_hub` does.
#[derive(Debug, Clone)]
pub struct HubSettings {
    /// Cache directory (the `hub` folder holding `models--org--name`).
    pub cache_dir: PathBuf,
    /// Server base URL, without trailing slash.
    pub endpoint: String,
    /// Access token, if any.
    pub token: Option<String>,
    /// Serve only from the cache.
    pub offline: bool,
    /// Draw a progress bar while downloading.
    pub progress: bool,
}

impl HubSettings {
    /// Reads `HF_HUB_CACHE`, `HF_HOME`, `HF_ENDPOINT`, `HF_TOKEN` and
    /// `HF_HUB_OFFLINE`; a token saved by `huggingface-cli login` is used when
    /// `HF_TOKEN` is unset.
    pub fn from_env() -> Self {
        // `$HF_HOME/hub` (or the default home cache); it also holds the saved token.
        let home = Cache::from_env();
        let cache_dir = match std::env::var_os("HF_HUB_CACHE") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => home.path().clone(),
        };
        let endpoint = std::env::var("HF_ENDPOINT")
            .ok()
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| "https://huggingface.co".to_string());
        let token = std::env::var("HF_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
            .or_else(|| home.token());
        let offline = std::env::var("HF_HUB_OFFLINE")
            .map(|v| is_truthy(&v))
            .unwrap_or(false);
        Self {
            cache_dir,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            token,
            offline,
            progress: true,
        }
    }
}

fn is_truthy(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

/// A Hub client bound to one cache and one endpoint.
#[derive(Debug)]
pub struct HubClient {
    settings: HubSettings,
    api: Option<Api>,
}

impl HubClient {
    /// Client configured from the environment (see the crate docs).
    pub fn from_env() -> Result<Self> {
        Self::new(HubSettings::from_env())
    }

    /// Client with explicit settings.
    pub fn new(settings: HubSettings) -> Result<Self> {
        let api = if settings.offline {
            None
        } else {
            let api = ApiBuilder::from_cache(Cache::new(settings.cache_dir.clone()))
                .with_endpoint(settings.endpoint.clone())
                .with_token(settings.token.clone())
                .with_progress(settings.progress)
                .build()
                .map_err(|e| HubError::Setup(Box::new(e)))?;
            Some(api)
        };
        Ok(Self { settings, api })
    }

    /// The settings in force.
    pub fn settings(&self) -> &HubSettings {
        &self.settings
    }

    /// Cache directory in use.
    pub fn cache_dir(&self) -> &Path {
        &self.settings.cache_dir
    }

    /// Local path of `file` in model repository `repo` at `revision`
    /// (`"main"` when `None`), downloading it unless it is already cached.
    pub fn model_file(&self, repo: &str, revision: Option<&str>, file: &str) -> Result<PathBuf> {
        let revision = revision.unwrap_or("main");
        let handle = Repo::with_revision(repo.to_string(), RepoType::Model, revision.to_string());
        if let Some(path) = Cache::new(self.settings.cache_dir.clone())
            .repo(handle.clone())
            .get(file)
        {
            return Ok(path);
        }
        let Some(api) = &self.api else {
            return Err(HubError::NotCached {
                repo: repo.to_string(),
                revision: revision.to_string(),
                file: file.to_string(),
                cache: self.settings.cache_dir.clone(),
            });
        };
        let path = api
            .repo(handle)
            .download(file)
            .map_err(|source| HubError::Download {
                repo: repo.to_string(),
                revision: revision.to_string(),
                file: file.to_string(),
                endpoint: self.settings.endpoint.clone(),
                source: Box::new(source),
            })?;
        if let Err((expected, actual)) = verify_blob(&path) {
            remove_cached(&path);
            return Err(HubError::Checksum {
                repo: repo.to_string(),
                revision: revision.to_string(),
                file: file.to_string(),
                expected,
                actual,
            });
        }
        Ok(path)
    }

    /// The commit `revision` (a branch, tag or commit; `"main"` when `None`) of model
    /// repository `repo` points at now, asked of the server (an error offline).
    pub fn commit_of(&self, repo: &str, revision: Option<&str>) -> Result<String> {
        let revision = revision.unwrap_or("main");
        let Some(api) = &self.api else {
            return Err(HubError::Offline {
                repo: repo.to_string(),
                revision: revision.to_string(),
            });
        };
        let handle = Repo::with_revision(repo.to_string(), RepoType::Model, revision.to_string());
        api.repo(handle)
            .info()
            .map(|info| info.sha)
            .map_err(|source| HubError::Download {
                repo: repo.to_string(),
                revision: revision.to_string(),
                file: "(repository info)".to_string(),
                endpoint: self.settings.endpoint.clone(),
                source: Box::new(source),
            })
    }

    /// Like [`HubClient::model_file`], but returns `Ok(None)` when the server
    /// answers that the file does not exist (HTTP 404), so callers can try
    /// alternatives such as `pytorch_model.bin` after `model.safetensors`.
    pub fn optional_model_file(
        &self,
        repo: &str,
        revision: Option<&str>,
        file: &str,
    ) -> Result<Option<PathBuf>> {
        match self.model_file(repo, revision, file) {
            Ok(path) => Ok(Some(path)),
            Err(HubError::Download { source, .. }) if is_not_found(&source) => Ok(None),
            Err(HubError::NotCached { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Check a freshly downloaded file against its blob name, which is the server's ETag:
/// the SHA-256 of the content for LFS files, the git blob SHA-1 for small files. A file
/// cut short by a dropped connection fails here instead of being used. Blob names of
/// another form are not checked.
fn verify_blob(path: &Path) -> std::result::Result<(), (String, String)> {
    use sha1::Digest as _;
    let Ok(blob) = std::fs::canonicalize(path) else {
        return Ok(());
    };
    let Some(name) = blob.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
        return Ok(());
    };
    let is_hex = name.bytes().all(|b| b.is_ascii_hexdigit());
    if !is_hex || !(name.len() == 64 || name.len() == 40) {
        return Ok(());
    }
    let Ok(bytes) = std::fs::read(&blob) else {
        return Ok(());
    };
    let actual = if name.len() == 64 {
        hex(&sha2::Sha256::digest(&bytes))
    } else {
        let mut h = sha1::Sha1::new();
        h.update(format!("blob {}\0", bytes.len()).as_bytes());
        h.update(&bytes);
        hex(&h.finalize())
    };
    if actual.eq_ignore_ascii_case(&name) {
        Ok(())
    } else {
        Err((name, actual))
    }
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Remove a cached file: its snapshot pointer and the blob it points to.
fn remove_cached(pointer: &Path) {
    if let Ok(blob) = std::fs::canonicalize(pointer) {
        let _ = std::fs::remove_file(blob);
    }
    let _ = std::fs::remove_file(pointer);
}

fn is_not_found(err: &hf_hub::api::sync::ApiError) -> bool {
    use hf_hub::api::sync::ApiError;
    match err {
        ApiError::RequestError(e) => matches!(**e, ureq::Error::Status(404, _)),
        ApiError::TooManyRetries(inner) => is_not_found(inner),
        _ => false,
    }
}
