//! Model registration with the subnet operator, as the subnet's `register.sh` does it: the
//! current Unix time (a decimal string) signed by the miner's hotkey, posted with the uid,
//! hotkey and model repository to `{base}/participants/register`, then the status polled
//! at `{base}/participants/registration-status/{uid}` until it settles.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The operator's default endpoint.
pub const DEFAULT_BASE: &str = "https://hydra.natix.network";

/// Why a registration failed.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// The request could not be sent or was refused (status and body).
    #[error("{url}: {message}")]
    Http {
        /// The URL called.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The operator reported failure.
    #[error("registration of uid {uid} failed: {message}")]
    Failed {
        /// The uid.
        uid: u16,
        /// The operator's `error_message`.
        message: String,
    },
    /// No final state within the polling time.
    #[error("registration of uid {uid} still {state} after {seconds} s")]
    TimedOut {
        /// The uid.
        uid: u16,
        /// The last state seen.
        state: String,
        /// Seconds waited.
        seconds: u64,
    },
}

/// A registration state as the operator reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// `succeeded` or `success`.
    Succeeded,
    /// `failed` or `error`, with the `error_message`.
    Failed(String),
    /// `pending`, `queued`, `processing` or anything else not final.
    Pending(String),
}

/// What is registered.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The miner's uid on the subnet.
    pub uid: u16,
    /// The miner's hotkey (SS58).
    pub hotkey: String,
    /// The Hugging Face model repository, `owner/name`.
    pub model_repo: String,
}

impl Registration {
    /// The JSON body for a signed `timestamp`: `signature_hex` is the hotkey's sr25519
    /// signature over the timestamp's decimal digits, hex without `0x`.
    pub fn payload(&self, timestamp: u64, signature_hex: &str) -> Value {
        json!({
            "uid": self.uid.to_string(),
            "message": timestamp.to_string(),
            "natix_public_key": self.hotkey,
            "natix_signature": signature_hex.trim_start_matches("0x"),
            "type": "miner",
            "model_repo": self.model_repo,
        })
    }
}

/// A client of the operator's registration API.
pub struct Operator {
    base: String,
    agent: ureq::Agent,
    /// Time between status polls (3 s).
    pub poll_every: Duration,
    /// Longest wait for a final state (180 s).
    pub poll_for: Duration,
}

impl Operator {
    /// A client of `base` (e.g. [`DEFAULT_BASE`]).
    pub fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(30))
                .build(),
            poll_every: Duration::from_secs(3),
            poll_for: Duration::from_secs(180),
        }
    }

    /// Post the registration with `timestamp` signed by `sign` (which returns the
    /// signature as hex, with or without `0x`).
    pub fn register(
        &self,
        registration: &Registration,
        timestamp: u64,
        sign: impl Fn(&[u8]) -> String,
    ) -> Result<Value, OperatorError> {
        let url = format!("{}/participants/register", self.base);
        let signature = sign(timestamp.to_string().as_bytes());
        let body = registration.payload(timestamp, &signature);
        let response = match self.agent.post(&url).send_json(body) {
            Ok(r) => r,
            Err(ureq::Error::Status(code, r)) => {
                let text = r.into_string().unwrap_or_default();
                return Err(OperatorError::Http {
                    url,
                    message: format!("status {code}: {}", text.trim()),
                });
            }
            Err(e) => {
                return Err(OperatorError::Http {
                    url,
                    message: e.to_string(),
                });
            }
        };
        let text = response.into_string().unwrap_or_default();
        Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// The current state of `uid`'s registration.
    pub fn status(&self, uid: u16) -> Result<State, OperatorError> {
        let url = format!("{}/participants/registration-status/{uid}", self.base);
        let fail = |m: String| OperatorError::Http {
            url: url.clone(),
            message: m,
        };
        let v: Value = match self.agent.get(&url).call() {
            Ok(r) => r.into_json().map_err(|e| fail(format!("not JSON: {e}")))?,
            Err(ureq::Error::Status(code, r)) => {
                return Err(fail(format!(
                    "status {code}: {}",
                    r.into_string().unwrap_or_default().trim()
                )));
            }
            Err(e) => return Err(fail(e.to_string())),
        };
        let status = v["status"].as_str().unwrap_or("").to_ascii_lowercase();
        Ok(match status.as_str() {
            "succeeded" | "success" => State::Succeeded,
            "failed" | "error" => State::Failed(
                v["error_message"]
                    .as_str()
                    .unwrap_or("no error_message")
                    .to_string(),
            ),
            other => State::Pending(other.to_string()),
        })
    }

    /// Post the registration signed at the current time, then [`wait`](Self::wait) for
    /// its outcome; returns the operator's first answer.
    pub fn register_and_wait(
        &self,
        registration: &Registration,
        sign: impl Fn(&[u8]) -> String,
        seen: impl FnMut(&State),
    ) -> Result<Value, OperatorError> {
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let reply = self.register(registration, timestamp, sign)?;
        self.wait(registration.uid, seen)?;
        Ok(reply)
    }

    /// Poll until the registration succeeds (`Ok`), fails, or `poll_for` passes; `seen`
    /// gets every state read.
    pub fn wait(&self, uid: u16, mut seen: impl FnMut(&State)) -> Result<(), OperatorError> {
        let started = Instant::now();
        loop {
            let state = self.status(uid)?;
            seen(&state);
            match state {
                State::Succeeded => return Ok(()),
                State::Failed(message) => return Err(OperatorError::Failed { uid, message }),
                State::Pending(s) if started.elapsed() >= self.poll_for => {
                    return Err(OperatorError::TimedOut {
                        uid,
                        state: s,
                        seconds: started.elapsed().as_secs(),
                    });
                }
                State::Pending(_) => std::thread::sleep(self.poll_every),
            }
        }
    }
}
