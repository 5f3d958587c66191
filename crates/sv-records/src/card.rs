//! The subnet's model card, `model_card.json` at the root of a published repository:
//! written and checked by the trainer's export and publish, read by the miner for the
//! model's version and age (the age its reward decays with).

use serde::{Deserialize, Serialize};

use crate::RecordsError;

/// The subnet's model card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    /// Unique model name.
    pub model_name: String,
    /// What the model is.
    pub description: String,
    /// Version string.
    pub version: String,
    /// The miner's hotkey, SS58.
    pub submitted_by: String,
    /// Unix seconds.
    pub submission_time: u64,
    /// Architecture name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// Free notes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

impl ModelCard {
    /// A card submitted now (the current Unix time), its architecture filled in at export.
    pub fn now(model_name: String, description: String, version: String, hotkey: String) -> Self {
        Self {
            model_name,
            description,
            version,
            submitted_by: hotkey,
            submission_time: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            architecture: None,
            notes: None,
        }
    }

    /// Check the fields the subnet's validators check: a name, and an SS58 hotkey
    /// (base58, 46–48 characters).
    pub fn validate(&self) -> Result<(), RecordsError> {
        let bad = |reason: String| RecordsError::Card { reason };
        if self.model_name.trim().is_empty() {
            return Err(bad("model_name: must not be empty".into()));
        }
        const B58: &str = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
        let h = &self.submitted_by;
        if !(46..=48).contains(&h.len()) || !h.chars().all(|c| B58.contains(c)) {
            return Err(bad(format!("submitted_by: {h:?} is not an SS58 address")));
        }
        Ok(())
    }
}

/// What the miner reads from any card, each field optional: cards written by other
/// tools may lack either, and a card never stops a miner from serving.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct CardStamp {
    /// The card's `version`, when a string.
    #[serde(default, deserialize_with = "lenient")]
    pub version: Option<String>,
    /// The card's `submission_time` in Unix seconds, when a non-negative integer.
    #[serde(default, deserialize_with = "lenient")]
    pub submission_time: Option<u64>,
}

impl CardStamp {
    /// The stamp of the card at `path`; `None` when it is missing or not JSON.
    pub fn read(path: &std::path::Path) -> Option<Self> {
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }
}

/// A field of the expected type, else `None` (never an error).
fn lenient<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let value = serde_json::Value::deserialize(d)?;
    Ok(serde_json::from_value(value).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_takes_what_it_can() {
        let stamp: CardStamp =
            serde_json::from_str(r#"{"version": 3, "submission_time": 1700000000, "x": 1}"#)
                .unwrap();
        assert_eq!(stamp.version, None);
        assert_eq!(stamp.submission_time, Some(1_700_000_000));
        let stamp: CardStamp =
            serde_json::from_str(r#"{"version": "1.2", "submission_time": -5}"#).unwrap();
        assert_eq!(stamp.version.as_deref(), Some("1.2"));
        assert_eq!(stamp.submission_time, None);
        assert!(serde_json::from_str::<CardStamp>("\"card\"").is_err());
    }

    #[test]
    fn validation_names_the_field() {
        let mut card = ModelCard::now("m".into(), "d".into(), "1".into(), "x".into());
        assert!(
            card.validate()
                .unwrap_err()
                .to_string()
                .contains("submitted_by")
        );
        card.model_name = " ".into();
        assert!(
            card.validate()
                .unwrap_err()
                .to_string()
                .contains("model_name")
        );
    }
}
