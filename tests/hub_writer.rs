//! A loopback server implementing the Hub's documented write endpoints (create, preupload,
//! LFS batch/upload/verify, NDJSON commit), recording what it received, and serving what
//! was committed as the Hub does for downloads: `GET /api/models/{repo}/revision/{rev}`
//! and `HEAD`/`GET /{repo}/resolve/{rev}/{file}` of the latest commit or a named one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// What the fake Hub received.
#[derive(Default)]
pub struct Store {
    pub repos: Vec<String>,
    pub lfs: HashMap<String, Vec<u8>>,
    pub puts: usize,
    pub files: HashMap<String, Vec<u8>>,
    pub summary: String,
    pub unauthorised: Vec<String>,
    /// Every commit: its id and the repository's files after it.
    pub commits: Vec<(String, HashMap<String, Vec<u8>>)>,
    /// Branches created besides `main` (`repo@branch`); commits go to one history, so
    /// every branch resolves to the latest commit.
    pub branches: Vec<String>,
}

impl Store {
    /// The commit `rev` names (`main`: the latest) and its files.
    fn resolve(&self, rev: &str) -> Option<&(String, HashMap<String, Vec<u8>>)> {
        let branch = |b: &String| b.rsplit_once('@').is_some_and(|(_, name)| name == rev);
        if rev == "main" || self.branches.iter().any(branch) {
            return self.commits.last();
        }
        self.commits.iter().find(|(id, _)| id == rev)
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn answer(st: &mut Store, url: &str, body: &[u8], base: &str) -> (u16, Value) {
    let json_body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if url == "/api/repos/create" {
        let id = format!(
            "{}/{}",
            json_body["organization"].as_str().unwrap_or(""),
            json_body["name"].as_str().unwrap()
        );
        if st.repos.contains(&id) {
            return (409, json!({"error": "exists"}));
        }
        st.repos.push(id);
        return (200, json!({"url": "x"}));
    }
    if let Some((repo, branch)) = url
        .strip_prefix("/api/models/")
        .and_then(|rest| rest.split_once("/branch/"))
    {
        let id = format!("{repo}@{branch}");
        if st.branches.contains(&id) {
            return (409, json!({"error": "exists"}));
        }
        st.branches.push(id);
        return (200, json!({}));
    }
    if url.starts_with("/api/models/") && url.contains("/preupload/") {
        let files: Vec<Value> = json_body["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                let lfs = f["size"].as_u64().unwrap() > 1000
                    || f["path"].as_str().unwrap().ends_with(".safetensors");
                json!({"path": f["path"], "uploadMode": if lfs {"lfs"} else {"regular"}})
            })
            .collect();
        return (200, json!({"files": files}));
    }
    if url.ends_with(".git/info/lfs/objects/batch") {
        let o = &json_body["objects"][0];
        let oid = o["oid"].as_str().unwrap().to_string();
        if st.lfs.contains_key(&oid) {
            return (200, json!({"objects": [{"oid": oid, "size": o["size"]}]}));
        }
        return (
            200,
            json!({"objects": [{"oid": oid, "size": o["size"], "actions": {
                "upload": {"href": format!("{base}/lfs-store/{oid}"), "header": {"x-amz-test": "1"}},
                "verify": {"href": format!("{base}/lfs-verify")}}}]}),
        );
    }
    if let Some(oid) = url.strip_prefix("/lfs-store/") {
        st.puts += 1;
        if hex(&Sha256::digest(body)) != oid {
            return (400, json!({"error": "hash mismatch"}));
        }
        st.lfs.insert(oid.to_string(), body.to_vec());
        return (200, json!({}));
    }
    if url == "/lfs-verify" {
        let ok = st.lfs.contains_key(json_body["oid"].as_str().unwrap());
        return (if ok { 200 } else { 404 }, json!({}));
    }
    if url.contains("/commit/") {
        for line in String::from_utf8(body.to_vec()).unwrap().lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            let val = &v["value"];
            let path = val["path"].as_str().unwrap_or_default().to_string();
            match v["key"].as_str().unwrap() {
                "header" => st.summary = val["summary"].as_str().unwrap().to_string(),
                "file" => {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(val["content"].as_str().unwrap())
                        .unwrap();
                    st.files.insert(path, bytes);
                }
                "lfsFile" => match st.lfs.get(val["oid"].as_str().unwrap()).cloned() {
                    Some(bytes) => {
                        st.files.insert(path, bytes);
                    }
                    None => return (422, json!({"error": "missing LFS object"})),
                },
                _ => return (400, json!({"error": "unknown key"})),
            }
        }
        let n = st.commits.len();
        let id = if n == 0 {
            "abc123".to_string()
        } else {
            hex(&Sha256::digest(format!("{n}{}", st.summary)))[..40].to_string()
        };
        let files = st.files.clone();
        st.commits.push((id.clone(), files));
        return (
            200,
            json!({"commitOid": id, "commitUrl": format!("https://hub/commit/{id}")}),
        );
    }
    (404, json!({"error": "not found"}))
}

/// A loopback Hub that accepts writes authorised by `Bearer hf_test`: its base URL and
/// what it received.
pub fn fake_hub() -> (String, Arc<Mutex<Store>>) {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let base = format!("http://{}", server.server_addr().to_ip().unwrap());
    let store = Arc::new(Mutex::new(Store::default()));
    let (s, b) = (store.clone(), base.clone());
    std::thread::spawn(move || {
        for mut req in server.incoming_requests() {
            let mut body = Vec::new();
            let _ = req.as_reader().read_to_end(&mut body);
            let url = req.url().to_string();
            let authorised = req
                .headers()
                .iter()
                .any(|h| h.field.equiv("authorization") && h.value.as_str() == "Bearer hf_test");
            let mut st = s.lock().unwrap();
            let method = req.method().clone();
            if matches!(method, tiny_http::Method::Get | tiny_http::Method::Head)
                && !url.starts_with("/lfs")
            {
                serve_download(&st, req, &url);
                continue;
            }
            if !authorised && !url.starts_with("/lfs-store/") {
                st.unauthorised.push(url.clone());
            }
            // Object stores take an upload only with its length known up front.
            let (code, reply) = if url.starts_with("/lfs-store/") && req.body_length().is_none() {
                (411, json!({"error": "Length Required (chunked upload)"}))
            } else {
                answer(&mut st, &url, &body, &b)
            };
            drop(st);
            let _ = req.respond(
                tiny_http::Response::from_string(reply.to_string()).with_status_code(code),
            );
        }
    });
    (base, store)
}

/// Answer a download request from the committed files: the revision API or a resolved
/// file (404 for anything else).
fn serve_download(st: &Store, req: tiny_http::Request, url: &str) {
    let url = url.split('?').next().unwrap_or("");
    if let Some(rest) = url.strip_prefix("/api/models/") {
        let found = rest
            .split_once("/revision/")
            .and_then(|(_, rev)| st.resolve(rev));
        let Some((id, files)) = found else {
            let _ = req.respond(tiny_http::Response::empty(404));
            return;
        };
        let siblings: Vec<Value> = files.keys().map(|f| json!({ "rfilename": f })).collect();
        let body = json!({ "sha": id, "siblings": siblings });
        let _ = req.respond(tiny_http::Response::from_string(body.to_string()));
        return;
    }
    // /{owner}/{name}/resolve/{rev}/{file}
    let parts: Vec<&str> = url.trim_start_matches('/').splitn(5, '/').collect();
    let found = match parts.as_slice() {
        [_, _, "resolve", rev, file] => st
            .resolve(rev)
            .and_then(|(id, files)| Some((id.clone(), files.get(*file)?.clone()))),
        _ => None,
    };
    match found {
        Some((id, body)) => crate::respond_with_file(req, body, false, &id),
        None => {
            let _ = req.respond(tiny_http::Response::empty(404));
        }
    }
}
