//! `sv-miner register-model` against a loopback server that implements the operator's
//! documented endpoints: what it received (path, JSON fields, a signature that verifies
//! with the hotkey over the timestamp), the polling through pending states, and a
//! reported failure.

mod common;

use std::process::Command;
use std::sync::{Arc, Mutex};

use common::*;
use serde_json::Value;
use sv_axon::verify::verify_signature;

/// Requests received: method and path, JSON body.
type Seen = Arc<Mutex<Vec<(String, Value)>>>;

/// Serve `register` and `registration-status` (pending twice, then `final_status`).
fn operator(final_status: &'static str) -> (String, Seen) {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let base = format!("http://{}", server.server_addr().to_ip().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        let mut polls = 0;
        for mut request in server.incoming_requests() {
            let mut body = String::new();
            let _ = request.as_reader().read_to_string(&mut body);
            let url = request.url().to_string();
            let json: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            seen2
                .lock()
                .unwrap()
                .push((format!("{} {url}", request.method()), json));
            let answer = if url == "/participants/register" {
                r#"{"status": "queued"}"#.to_string()
            } else if url.starts_with("/participants/registration-status/") {
                polls += 1;
                if polls <= 2 {
                    r#"{"status": "processing"}"#.to_string()
                } else {
                    format!(
                        r#"{{"status": "{final_status}", "error_message": "model_name taken"}}"#
                    )
                }
            } else {
                let _ =
                    request.respond(tiny_http::Response::from_string("no").with_status_code(404));
                continue;
            };
            let _ = request.respond(tiny_http::Response::from_string(answer));
        }
    });
    (base, seen)
}

fn register(base: &str, uid: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sv-miner"))
        .args([
            "register-model",
            "--uid",
            uid,
            "--hub-repo",
            "streetvision/roadwork-v3",
        ])
        .arg("--wallet-path")
        .arg(wallets())
        .args(["--wallet-name", "fixture", "--wallet-hotkey", "phrase"])
        .args(["--base-url", base, "--yes", "--poll-seconds", "0.05"])
        .output()
        .unwrap()
}

#[test]
fn a_signed_registration_is_sent_and_polled_to_success() {
    let (base, seen) = operator("succeeded");
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let out = register(&base, "17");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("registered for uid 17"), "{stdout}");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen[0].0, "POST /participants/register");
    let body = &seen[0].1;
    let key = miner_key();
    assert_eq!(body["uid"], "17");
    assert_eq!(body["type"], "miner");
    assert_eq!(body["model_repo"], "streetvision/roadwork-v3");
    assert_eq!(body["natix_public_key"], key.ss58.as_str());
    let message = body["message"].as_str().unwrap();
    let ts: u64 = message.parse().unwrap();
    assert!(ts >= before && ts <= before + 60);
    let signature = body["natix_signature"].as_str().unwrap();
    assert!(!signature.starts_with("0x") && signature.len() == 128);
    verify_signature(&key.ss58, message, signature).unwrap();
    assert_eq!(body.as_object().unwrap().len(), 6, "{body}");
    let polls: Vec<&str> = seen[1..].iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(polls.len(), 3);
    assert!(
        polls
            .iter()
            .all(|p| *p == "GET /participants/registration-status/17")
    );
}

#[test]
fn a_reported_failure_is_an_error_with_the_operators_message() {
    let (base, _) = operator("failed");
    let out = register(&base, "9");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("model_name taken") && err.contains("uid 9"),
        "{err}"
    );
}
