//! The NATIX roadwork dataset as the subnet publishes it (`natix-network-org/roadwork`):
//! parquet shards whose image column (a name containing "image") holds an HF `Image`
//! struct `{bytes, path}`, with `label` (1 = roadwork) and `scene_description`, which is
//! non-empty exactly when the label is 1 (validators drop rows that break this, and so do
//! we). Every other column is kept as metadata.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::{Field, Row};
use rayon::prelude::*;

use crate::decode::{Checked, Intake, Skip, SkipReason, SkipReport, check_bytes};
use crate::error::{DataError, Result, io};
use crate::sample::{Label, Location, Sample, Source};

/// How to read NATIX shards.
#[derive(Debug, Clone)]
pub struct NatixOptions {
    /// The source the samples get (default `natix`).
    pub source: Source,
    /// Pixel limit per image.
    pub max_pixels: u64,
    /// Rows decoded in parallel at a time (bounds memory on shards of large photos).
    pub chunk_rows: usize,
}

impl Default for NatixOptions {
    fn default() -> Self {
        Self {
            source: Source::Natix,
            max_pixels: crate::decode::DEFAULT_MAX_PIXELS,
            chunk_rows: 64,
        }
    }
}

/// One row, taken apart.
struct RawRow {
    row: u64,
    column: String,
    bytes: Vec<u8>,
    label: Option<i64>,
    metadata: BTreeMap<String, serde_json::Value>,
}

fn format_err(path: &Path, e: impl std::fmt::Display) -> DataError {
    DataError::Invalid(format!(
        "{}: not a readable parquet file: {e}",
        path.display()
    ))
}

/// Read NATIX shards in order. Bad rows are skipped and counted; a file that is not
/// parquet, or lacks an image or label column, is an error naming it.
pub fn read_natix(paths: &[PathBuf], opts: &NatixOptions) -> Result<(Vec<Sample>, SkipReport)> {
    let mut samples = Vec::new();
    let mut intake = Intake::default();
    for path in paths {
        read_shard(path, opts, &mut intake, &mut samples)?;
    }
    Ok((samples, intake.report))
}

fn read_shard(
    path: &Path,
    opts: &NatixOptions,
    intake: &mut Intake,
    samples: &mut Vec<Sample>,
) -> Result<()> {
    let file = File::open(path).map_err(io(path))?;
    let reader = SerializedFileReader::new(file).map_err(|e| format_err(path, e))?;
    let fields = reader.metadata().file_metadata().schema().get_fields();
    let names: Vec<String> = fields.iter().map(|f| f.name().to_string()).collect();
    let image_col = names
        .iter()
        .find(|n| n.to_ascii_lowercase().contains("image"))
        .cloned()
        .ok_or_else(|| {
            DataError::Invalid(format!(
                "{}: no image column among {names:?}",
                path.display()
            ))
        })?;
    if !names.iter().any(|n| n == "label") {
        return Err(DataError::Invalid(format!(
            "{}: no `label` column among {names:?}",
            path.display()
        )));
    }
    let rows = reader.get_row_iter(None).map_err(|e| format_err(path, e))?;
    let mut chunk = Vec::with_capacity(opts.chunk_rows);
    for (i, row) in rows.enumerate() {
        let row = row.map_err(|e| format_err(path, e))?;
        chunk.push(take_apart(row, i as u64, &image_col));
        if chunk.len() == opts.chunk_rows.max(1) {
            flush(path, opts, std::mem::take(&mut chunk), intake, samples);
        }
    }
    flush(path, opts, chunk, intake, samples);
    Ok(())
}

fn take_apart(row: Row, index: u64, image_col: &str) -> RawRow {
    let mut raw = RawRow {
        row: index,
        column: image_col.to_string(),
        bytes: Vec::new(),
        label: None,
        metadata: BTreeMap::new(),
    };
    for (name, field) in row.into_columns() {
        if name == image_col {
            if let Field::Group(g) = field {
                for (k, v) in g.into_columns() {
                    match (k.as_str(), v) {
                        ("bytes", Field::Bytes(b)) => raw.bytes = b.data().to_vec(),
                        ("path", Field::Str(p)) => {
                            raw.metadata.insert("image_path".into(), p.into());
                        }
                        _ => {}
                    }
                }
            }
        } else if name == "label" {
            raw.label = match field {
                Field::Long(v) => Some(v),
                Field::Int(v) => Some(v.into()),
                Field::Short(v) => Some(v.into()),
                Field::Byte(v) => Some(v.into()),
                Field::Bool(v) => Some(v.into()),
                _ => None,
            };
        } else if let Some(value) = json_of(field) {
            raw.metadata.insert(name, value);
        }
    }
    raw
}

/// A metadata value as JSON; binary columns are left out.
fn json_of(field: Field) -> Option<serde_json::Value> {
    use serde_json::Value;
    Some(match field {
        Field::Null => Value::Null,
        Field::Bool(v) => v.into(),
        Field::Byte(v) => v.into(),
        Field::Short(v) => v.into(),
        Field::Int(v) => v.into(),
        Field::Long(v) => v.into(),
        Field::UByte(v) => v.into(),
        Field::UShort(v) => v.into(),
        Field::UInt(v) => v.into(),
        Field::ULong(v) => v.into(),
        Field::Float(v) => v.into(),
        Field::Double(v) => v.into(),
        Field::Str(v) => v.into(),
        Field::Bytes(_) => return None,
        other => other.to_string().into(),
    })
}

fn flush(
    path: &Path,
    opts: &NatixOptions,
    chunk: Vec<RawRow>,
    intake: &mut Intake,
    samples: &mut Vec<Sample>,
) {
    let checked: Vec<(RawRow, Checked)> = chunk
        .into_par_iter()
        .map(|raw| {
            let result = check_row(&raw, opts.max_pixels);
            (raw, result)
        })
        .collect();
    for (raw, result) in checked {
        let at = path.join(format!("row-{}", raw.row));
        if let Some((id, size)) = intake.admit(&at, result) {
            let label = if raw.label == Some(1) {
                Label::Roadwork
            } else {
                Label::NoRoadwork
            };
            samples.push(Sample {
                id,
                location: Location::Parquet {
                    path: path.to_path_buf(),
                    row: raw.row,
                    column: raw.column,
                },
                label,
                source: opts.source.clone(),
                split: None,
                size: Some(size),
                metadata: raw.metadata,
            });
        }
    }
}

/// The row's id and image size, or why it cannot be used.
fn check_row(raw: &RawRow, max_pixels: u64) -> Checked {
    let described = raw
        .metadata
        .get("scene_description")
        .and_then(|v| v.as_str())
        .is_some_and(|s| !s.trim().is_empty());
    match raw.label {
        Some(1) if !described => {
            return Err(Skip::new(
                SkipReason::Inconsistent,
                "label 1 without a scene description",
            ));
        }
        Some(0) if described => {
            return Err(Skip::new(
                SkipReason::Inconsistent,
                "label 0 with a scene description",
            ));
        }
        Some(0 | 1) => {}
        other => {
            return Err(Skip::new(
                SkipReason::Inconsistent,
                format!("label {other:?} is not 0 or 1"),
            ));
        }
    }
    check_bytes(&raw.bytes, max_pixels)
}

/// The encoded image bytes of a parquet-located sample (reads only its row group).
pub fn parquet_image_bytes(path: &Path, row: u64, column: &str) -> Result<Vec<u8>> {
    let file = File::open(path).map_err(io(path))?;
    let reader = SerializedFileReader::new(file).map_err(|e| format_err(path, e))?;
    let mut first = 0u64;
    for g in 0..reader.num_row_groups() {
        let n = reader.metadata().row_group(g).num_rows() as u64;
        if row < first + n {
            let group = reader.get_row_group(g).map_err(|e| format_err(path, e))?;
            let found = group
                .get_row_iter(None)
                .map_err(|e| format_err(path, e))?
                .nth((row - first) as usize);
            let row_value = found
                .ok_or_else(|| {
                    DataError::Invalid(format!("{}: row {row} is missing", path.display()))
                })?
                .map_err(|e| format_err(path, e))?;
            let raw = take_apart(row_value, row, column);
            return Ok(raw.bytes);
        }
        first += n;
    }
    Err(DataError::Invalid(format!(
        "{}: row {row} is past the end ({first} rows)",
        path.display()
    )))
}
