//! A training sample: where its image bytes live, its label, source, split and metadata.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The class of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    /// Shows roadwork (cones, barriers, signs, crews, machines).
    Roadwork,
    /// Shows no roadwork.
    NoRoadwork,
    /// Not labelled yet.
    Unknown,
}

impl Label {
    /// From the subnet's 0/1 convention (1 = roadwork).
    pub fn from_binary(v: i64) -> Option<Self> {
        match v {
            1 => Some(Label::Roadwork),
            0 => Some(Label::NoRoadwork),
            _ => None,
        }
    }

    /// 1.0 for roadwork, 0.0 for no roadwork, `None` when unknown.
    pub fn target(self) -> Option<f32> {
        match self {
            Label::Roadwork => Some(1.0),
            Label::NoRoadwork => Some(0.0),
            Label::Unknown => None,
        }
    }

    /// The name used in manifests and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Roadwork => "roadwork",
            Label::NoRoadwork => "no_roadwork",
            Label::Unknown => "unknown",
        }
    }
}

/// Where a sample comes from. Serialised as its name; any name other than the known
/// ones is a user-named source.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// The NATIX roadwork dataset.
    Natix,
    /// Generated images.
    Synthetic,
    /// Images a model got wrong or was unsure about.
    HardCase,
    /// Negatives chosen to be close to positives.
    HardNegative,
    /// Challenges logged by a running miner.
    MinerLog,
    /// Any other source, by name.
    Named(String),
}

impl Source {
    /// The source's name.
    pub fn name(&self) -> &str {
        match self {
            Source::Natix => "natix",
            Source::Synthetic => "synthetic",
            Source::HardCase => "hard_case",
            Source::HardNegative => "hard_negative",
            Source::MinerLog => "miner_log",
            Source::Named(n) => n,
        }
    }

    /// The source of a name.
    pub fn from_name(name: &str) -> Self {
        match name {
            "natix" => Source::Natix,
            "synthetic" => Source::Synthetic,
            "hard_case" => Source::HardCase,
            "hard_negative" => Source::HardNegative,
            "miner_log" => Source::MinerLog,
            other => Source::Named(other.to_string()),
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Source {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Source {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        if name.is_empty() {
            return Err(serde::de::Error::custom("empty source name"));
        }
        Ok(Source::from_name(&name))
    }
}

/// Which part of the data a sample belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// Training.
    Train,
    /// Validation (model selection, calibration, ensemble fitting).
    Val,
    /// Held-out test.
    Test,
}

impl std::str::FromStr for Split {
    type Err = crate::DataError;
    fn from_str(s: &str) -> crate::Result<Self> {
        match s {
            "train" => Ok(Split::Train),
            "val" => Ok(Split::Val),
            "test" => Ok(Split::Test),
            other => Err(crate::DataError::Invalid(format!(
                "unknown split `{other}` (expected train, val or test)"
            ))),
        }
    }
}

impl Split {
    /// The name used in manifests and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }
}

/// Where a sample's encoded image bytes are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Location {
    /// A file of its own.
    File {
        /// The image file.
        path: PathBuf,
    },
    /// A cell of a parquet file (an HF `Image` struct's `bytes`).
    Parquet {
        /// The parquet file.
        path: PathBuf,
        /// Row within the file, from 0.
        row: u64,
        /// The image column.
        column: String,
    },
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::File { path } => write!(f, "{}", path.display()),
            Location::Parquet { path, row, column } => {
                write!(f, "{} (row {row}, column {column})", path.display())
            }
        }
    }
}

impl Location {
    /// The encoded image bytes.
    pub fn read(&self) -> crate::Result<Vec<u8>> {
        match self {
            Location::File { path } => std::fs::read(path).map_err(crate::error::io(path)),
            Location::Parquet { path, row, column } => {
                crate::natix::parquet_image_bytes(path, *row, column)
            }
        }
    }
}

/// One training image and everything known about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sample {
    /// SHA-256 of the encoded image bytes, hex: the same image has the same id wherever
    /// it is stored.
    pub id: String,
    /// Where the bytes are.
    pub location: Location,
    /// The class.
    pub label: Label,
    /// Where it comes from.
    pub source: Source,
    /// The split, once assigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<Split>,
    /// Width and height after EXIF orientation, when the image was inspected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<(u32, u32)>,
    /// Anything else: scene description, weather, time of day, generator prompt, …
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, serde_json::Value>,
}

pub use sv_image::content_id;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_round_trip_by_name() {
        for name in [
            "natix",
            "synthetic",
            "hard_case",
            "hard_negative",
            "miner_log",
            "dashcam",
        ] {
            let s = Source::from_name(name);
            assert_eq!(s.name(), name);
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(serde_json::from_str::<Source>(&json).unwrap(), s);
        }
        assert_eq!(
            Source::from_name("dashcam"),
            Source::Named("dashcam".into())
        );
    }

    #[test]
    fn content_id_is_sha256() {
        // sha256("abc"), FIPS 180-2 test vector.
        assert_eq!(
            content_id(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
