//! Publishing a directory to a Hugging Face model repository in one commit, as
//! `huggingface_hub`'s `upload_folder` does: create the repository if needed, ask which
//! files go through LFS (`preupload`), upload those through the LFS batch API (basic
//! transfer, then verify), and commit everything with an NDJSON body (small files inline
//! as base64, large ones by their SHA-256).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Why publishing failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// A local file could not be read.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The Hub refused or did not answer a step (names it).
    #[error("{step} ({url}): {message}")]
    Http {
        /// Which step: create, create branch, preupload, lfs batch, lfs upload, lfs
        /// verify, commit.
        step: &'static str,
        /// The URL.
        url: String,
        /// Status and body, or the transport error.
        message: String,
    },
    /// Publishing needs a token (`HF_TOKEN` or `huggingface-cli login`).
    #[error("no Hugging Face token: set HF_TOKEN or log in with `huggingface-cli login`")]
    NoToken,
}

/// A finished commit.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    /// The commit's id, as the Hub reports it.
    pub commit: String,
    /// The commit's URL, as the Hub reports it.
    pub url: String,
    /// Files committed (repository paths) and whether each went through LFS.
    pub files: Vec<(String, bool)>,
}

/// One file to commit: bytes held in memory, or a file read only while it is sent, so a
/// checkpoint of several gigabytes is never held whole.
#[derive(Debug, Clone)]
pub struct Upload {
    /// Path inside the repository.
    pub path_in_repo: String,
    source: Source,
}

#[derive(Debug, Clone)]
enum Source {
    Bytes(Vec<u8>),
    File(PathBuf),
}

/// Read size for hashing and sending a file.
const CHUNK: usize = 1 << 20;

impl Upload {
    /// `bytes` as `path_in_repo`.
    pub fn bytes(path_in_repo: &str, bytes: Vec<u8>) -> Self {
        Self {
            path_in_repo: path_in_repo.to_string(),
            source: Source::Bytes(bytes),
        }
    }

    /// Read `file` now, as `path_in_repo`.
    pub fn read(file: &Path, path_in_repo: &str) -> Result<Self, PublishError> {
        let bytes = std::fs::read(file).map_err(|e| io_error(file, e))?;
        Ok(Self::bytes(path_in_repo, bytes))
    }

    /// `file` as `path_in_repo`, read in chunks when the commit is made; it must not
    /// change until then (a hard link to a file that is only ever replaced by rename
    /// qualifies). It is checked to be a readable file now.
    pub fn file(file: &Path, path_in_repo: &str) -> Result<Self, PublishError> {
        std::fs::File::open(file).map_err(|e| io_error(file, e))?;
        Ok(Self {
            path_in_repo: path_in_repo.to_string(),
            source: Source::File(file.to_path_buf()),
        })
    }

    /// The whole content (for a file: read now).
    pub fn contents(&self) -> Result<Vec<u8>, PublishError> {
        match &self.source {
            Source::Bytes(b) => Ok(b.clone()),
            Source::File(path) => std::fs::read(path).map_err(|e| io_error(path, e)),
        }
    }

    /// Size in bytes, its first 512 bytes and its SHA-256 (hex), in one pass.
    fn describe(&self) -> Result<(u64, Vec<u8>, String), PublishError> {
        match &self.source {
            Source::Bytes(b) => Ok((
                b.len() as u64,
                b[..b.len().min(512)].to_vec(),
                crate::hex(&Sha256::digest(b)),
            )),
            Source::File(path) => {
                let mut file = std::fs::File::open(path).map_err(|e| io_error(path, e))?;
                let (mut size, mut sample, mut hash) = (0u64, Vec::new(), Sha256::new());
                let mut buf = vec![0u8; CHUNK];
                loop {
                    let n = file.read(&mut buf).map_err(|e| io_error(path, e))?;
                    if n == 0 {
                        break;
                    }
                    if sample.len() < 512 {
                        sample.extend_from_slice(&buf[..n.min(512 - sample.len())]);
                    }
                    hash.update(&buf[..n]);
                    size += n as u64;
                }
                Ok((size, sample, crate::hex(&hash.finalize())))
            }
        }
    }

    /// A reader of exactly `size` bytes of the content.
    fn reader(&self, size: u64) -> Result<Box<dyn Read + Send + '_>, PublishError> {
        match &self.source {
            Source::Bytes(b) => Ok(Box::new(&b[..])),
            Source::File(path) => {
                let file = std::fs::File::open(path).map_err(|e| io_error(path, e))?;
                Ok(Box::new(
                    std::io::BufReader::with_capacity(CHUNK, file).take(size),
                ))
            }
        }
    }
}

fn io_error(path: &Path, e: std::io::Error) -> PublishError {
    PublishError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// A client that writes to the Hub at `endpoint` with `token`.
pub struct Publisher {
    endpoint: String,
    token: String,
    agent: ureq::Agent,
}

fn status_error(step: &'static str, url: &str, e: ureq::Error) -> PublishError {
    let message = match e {
        ureq::Error::Status(code, r) => {
            format!(
                "status {code}: {}",
                r.into_string().unwrap_or_default().trim()
            )
        }
        other => other.to_string(),
    };
    PublishError::Http {
        step,
        url: url.to_string(),
        message,
    }
}

impl Publisher {
    /// A publisher for `endpoint` (e.g. `https://huggingface.co`) authenticated by `token`.
    pub fn new(endpoint: &str, token: Option<&str>) -> Result<Self, PublishError> {
        Ok(Self {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            token: token.ok_or(PublishError::NoToken)?.to_string(),
            agent: ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(30))
                .build(),
        })
    }

    fn auth(&self, r: ureq::Request) -> ureq::Request {
        r.set("authorization", &format!("Bearer {}", self.token))
    }

    /// Create model repository `repo` (`owner/name`); an existing one is fine.
    pub fn create_repo(&self, repo: &str, private: bool) -> Result<(), PublishError> {
        let url = format!("{}/api/repos/create", self.endpoint);
        let (org, name) = repo.split_once('/').unwrap_or(("", repo));
        let mut body = json!({"name": name, "type": "model", "private": private});
        if !org.is_empty() {
            body["organization"] = json!(org);
        }
        match self.auth(self.agent.post(&url)).send_json(body) {
            Ok(_) | Err(ureq::Error::Status(409, _)) => Ok(()),
            Err(e) => Err(status_error("create", &url, e)),
        }
    }

    /// Create branch `branch` of `repo` from its main branch; an existing one is fine.
    pub fn create_branch(&self, repo: &str, branch: &str) -> Result<(), PublishError> {
        let url = format!("{}/api/models/{repo}/branch/{branch}", self.endpoint);
        match self.auth(self.agent.post(&url)).send_json(json!({})) {
            Ok(_) | Err(ureq::Error::Status(409, _)) => Ok(()),
            Err(e) => Err(status_error("create branch", &url, e)),
        }
    }

    /// Create `repo` when missing, then commit `files` to `revision` in one commit.
    pub fn create_and_commit(
        &self,
        repo: &str,
        revision: &str,
        private: bool,
        files: &[Upload],
        summary: &str,
        description: &str,
    ) -> Result<Published, PublishError> {
        self.create_repo(repo, private)?;
        self.commit(repo, revision, files, summary, description)
    }

    /// Commit `files` to `repo` at `revision` with `summary` and `description`.
    pub fn commit(
        &self,
        repo: &str,
        revision: &str,
        files: &[Upload],
        summary: &str,
        description: &str,
    ) -> Result<Published, PublishError> {
        let described = files
            .iter()
            .map(Upload::describe)
            .collect::<Result<Vec<_>, _>>()?;
        let modes = self.preupload(repo, revision, files, &described)?;
        let mut lines = vec![
            json!({"key": "header", "value": {"summary": summary, "description": description}}),
        ];
        let mut committed = Vec::new();
        for ((file, (size, _, oid)), lfs) in files.iter().zip(&described).zip(&modes) {
            if *lfs {
                self.lfs_upload(repo, revision, oid, *size, file)?;
                lines.push(json!({"key": "lfsFile", "value": {
                    "path": file.path_in_repo, "algo": "sha256", "oid": oid, "size": size}}));
            } else {
                let content = file.contents()?;
                lines.push(json!({"key": "file", "value": {
                    "content": base64::engine::general_purpose::STANDARD.encode(&content),
                    "path": file.path_in_repo, "encoding": "base64"}}));
            }
            committed.push((file.path_in_repo.clone(), *lfs));
        }
        let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let url = format!("{}/api/models/{repo}/commit/{revision}", self.endpoint);
        let reply = self
            .auth(self.agent.post(&url))
            .set("content-type", "application/x-ndjson")
            .send_string(&body);
        let reply = json_answer("commit", &url, reply)?;
        Ok(Published {
            commit: reply["commitOid"].as_str().unwrap_or_default().to_string(),
            url: reply["commitUrl"].as_str().unwrap_or_default().to_string(),
            files: committed,
        })
    }

    /// Which files must go through LFS (the Hub decides from size and a sample).
    fn preupload(
        &self,
        repo: &str,
        revision: &str,
        files: &[Upload],
        described: &[(u64, Vec<u8>, String)],
    ) -> Result<Vec<bool>, PublishError> {
        let url = format!("{}/api/models/{repo}/preupload/{revision}", self.endpoint);
        let listed: Vec<Value> = files
            .iter()
            .zip(described)
            .map(|(f, (size, sample, _))| {
                json!({"path": f.path_in_repo, "size": size,
                       "sample": base64::engine::general_purpose::STANDARD.encode(sample)})
            })
            .collect();
        let reply = self
            .auth(self.agent.post(&url))
            .send_json(json!({"files": listed}));
        let reply = json_answer("preupload", &url, reply)?;
        let modes = reply["files"].as_array().cloned().unwrap_or_default();
        Ok(files
            .iter()
            .map(|f| {
                modes.iter().any(|m| {
                    m["path"].as_str() == Some(f.path_in_repo.as_str())
                        && m["uploadMode"].as_str() == Some("lfs")
                })
            })
            .collect())
    }

    /// Upload one LFS object unless the Hub has it: batch, PUT, verify.
    fn lfs_upload(
        &self,
        repo: &str,
        revision: &str,
        oid: &str,
        size: u64,
        file: &Upload,
    ) -> Result<(), PublishError> {
        let url = format!("{}/{repo}.git/info/lfs/objects/batch", self.endpoint);
        let reply = self
            .auth(self.agent.post(&url))
            .set("accept", "application/vnd.git-lfs+json")
            .set("content-type", "application/vnd.git-lfs+json")
            .send_string(
                &json!({"operation": "upload", "transfers": ["basic"], "hash_algo": "sha256",
                        "objects": [{"oid": oid, "size": size}],
                        "ref": {"name": revision}})
                .to_string(),
            );
        let reply = json_answer("lfs batch", &url, reply)?;
        let object = &reply["objects"][0];
        if let Some(err) = object.get("error") {
            return Err(PublishError::Http {
                step: "lfs batch",
                url,
                message: err.to_string(),
            });
        }
        let Some(actions) = object.get("actions") else {
            return Ok(()); // Already stored.
        };
        let with_headers = |mut r: ureq::Request, action: &Value| {
            if let Some(h) = action["header"].as_object() {
                for (k, v) in h {
                    r = r.set(k, v.as_str().unwrap_or_default());
                }
            }
            r
        };
        if let Some(upload) = actions.get("upload") {
            let href = upload["href"].as_str().unwrap_or_default();
            // A known length, not chunked: object stores refuse chunked uploads.
            with_headers(self.agent.put(href), upload)
                .set("content-length", &size.to_string())
                .send(file.reader(size)?)
                .map_err(|e| status_error("lfs upload", href, e))?;
        }
        if let Some(verify) = actions.get("verify") {
            let href = verify["href"].as_str().unwrap_or_default();
            with_headers(self.auth(self.agent.post(href)), verify)
                .send_json(json!({"oid": oid, "size": size}))
                .map_err(|e| status_error("lfs verify", href, e))?;
        }
        Ok(())
    }
}

/// The JSON answer of `step`, or the error naming it.
fn json_answer(
    step: &'static str,
    url: &str,
    reply: Result<ureq::Response, ureq::Error>,
) -> Result<Value, PublishError> {
    reply
        .map_err(|e| status_error(step, url, e))?
        .into_json()
        .map_err(|e| PublishError::Http {
            step,
            url: url.to_string(),
            message: format!("answer is not JSON: {e}"),
        })
}
