//! Synapses as the SDK serialises them: the envelope every synapse has, terminal info of
//! both ends, and the request's own fields, kept whole (unknown fields are echoed back).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One end of a call (`dendrite` or `axon` in a synapse; `bt_header_{end}_{field}` in
/// the headers).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TerminalInfo {
    /// HTTP-like status of the call.
    pub status_code: Option<i64>,
    /// Its message.
    pub status_message: Option<String>,
    /// Seconds the axon took.
    pub process_time: Option<f64>,
    /// IP address.
    pub ip: Option<String>,
    /// Port.
    pub port: Option<u16>,
    /// SDK version as an integer.
    pub version: Option<u64>,
    /// Nanoseconds since the epoch when the request was signed.
    pub nonce: Option<u64>,
    /// The dendrite's instance id.
    pub uuid: Option<String>,
    /// SS58 hotkey.
    pub hotkey: Option<String>,
    /// `0x` + hex sr25519 signature.
    pub signature: Option<String>,
}

impl TerminalInfo {
    /// Read the `bt_header_{end}_*` headers (absent or unparsable fields stay `None`).
    pub fn from_headers(headers: &HashMap<String, String>, end: &str) -> Self {
        let get = |f: &str| headers.get(&format!("bt_header_{end}_{f}")).cloned();
        let num = |f: &str| get(f).and_then(|v| v.parse().ok());
        Self {
            status_code: num("status_code"),
            status_message: get("status_message"),
            process_time: get("process_time").and_then(|v| v.parse().ok()),
            ip: get("ip"),
            port: get("port").and_then(|v| v.parse().ok()),
            version: num("version").map(|v: i64| v as u64),
            nonce: get("nonce").and_then(|v| v.parse().ok()),
            uuid: get("uuid"),
            hotkey: get("hotkey"),
            signature: get("signature"),
        }
    }

    /// The `bt_header_{end}_*` headers of the fields that are set, as the SDK writes them
    /// (Python `str()` of each value).
    pub fn to_headers(&self, end: &str, out: &mut BTreeMap<String, String>) {
        let mut put = |f: &str, v: Option<String>| {
            if let Some(v) = v {
                out.insert(format!("bt_header_{end}_{f}"), v);
            }
        };
        put("status_code", self.status_code.map(|v| v.to_string()));
        put("status_message", self.status_message.clone());
        put("process_time", self.process_time.map(python_float));
        put("ip", self.ip.clone());
        put("port", self.port.map(|v| v.to_string()));
        put("version", self.version.map(|v| v.to_string()));
        put("nonce", self.nonce.map(|v| v.to_string()));
        put("uuid", self.uuid.clone());
        put("hotkey", self.hotkey.clone());
        put("signature", self.signature.clone());
    }
}

/// Python's `str()` of a float: always with a decimal point.
pub fn python_float(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e16 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

/// A synapse: the envelope plus every other field of the request, kept as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Synapse {
    /// The synapse's class name (the route).
    #[serde(default)]
    pub name: Option<String>,
    /// Seconds the caller waits.
    #[serde(default)]
    pub timeout: Option<f64>,
    /// Size of the whole request, as the caller counted it.
    #[serde(default)]
    pub total_size: Option<u64>,
    /// Size of the headers, as the caller counted it.
    #[serde(default)]
    pub header_size: Option<u64>,
    /// The caller's end.
    #[serde(default)]
    pub dendrite: Option<TerminalInfo>,
    /// Our end.
    #[serde(default)]
    pub axon: Option<TerminalInfo>,
    /// Hash of the required hash fields.
    #[serde(default)]
    pub computed_body_hash: Option<String>,
    /// The synapse's own fields (for this subnet `image`, `prediction`, `testnet_label`,
    /// and for the older `ExtendedImageSynapse` also `model_url`), and anything else sent.
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

/// This subnet's `ImageSynapse` fields (`natix/protocol.py`): a base64 image in, the
/// miner's P(roadwork) out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageSynapse {
    /// Base64 of the challenge image.
    #[serde(default)]
    pub image: String,
    /// The answer; -1 until answered.
    #[serde(default = "unanswered")]
    pub prediction: f64,
    /// The label, sent on testnet only (-1 otherwise).
    #[serde(default = "no_label")]
    pub testnet_label: i64,
}

/// The `ExtendedImageSynapse` validators sent until December 2025.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtendedImageSynapse {
    /// The `ImageSynapse` fields.
    #[serde(flatten)]
    pub base: ImageSynapse,
    /// The miner's model repository.
    #[serde(default)]
    pub model_url: String,
    /// A textual explanation of the visual indicators.
    #[serde(default)]
    pub explanation: String,
}

fn unanswered() -> f64 {
    -1.0
}

fn no_label() -> i64 {
    -1
}

impl Synapse {
    /// The request's own fields as `T` (for example [`ImageSynapse`]); a field of the
    /// wrong type is an error naming it.
    pub fn fields_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, crate::AxonError> {
        serde_json::from_value(Value::Object(self.fields.clone()))
            .map_err(|e| crate::AxonError::BadRequest(format!("synapse fields: {e}")))
    }

    /// This subnet's fields (both image routes carry them).
    pub fn image_synapse(&self) -> Result<ImageSynapse, crate::AxonError> {
        self.fields_as()
    }

    /// Set the answer (`prediction`).
    pub fn set_prediction(&mut self, p: f64) {
        self.fields.insert("prediction".into(), Value::from(p));
    }
}

/// The synapse routes this subnet's validators call.
pub const IMAGE_ROUTES: [&str; 2] = ["ImageSynapse", "ExtendedImageSynapse"];
