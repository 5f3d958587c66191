//! Manifests: one [`Sample`] per line (JSON Lines), read as a stream with line numbers in
//! errors, written atomically (temporary file, fsync, rename) so that a killed run leaves
//! the previous manifest intact.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result, io};
use crate::sample::Sample;

/// Streams the samples of a manifest, one line at a time.
pub struct ManifestReader {
    path: PathBuf,
    lines: std::io::Lines<BufReader<File>>,
    line: usize,
}

impl ManifestReader {
    /// Open a manifest.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(io(path))?;
        Ok(Self {
            path: path.to_path_buf(),
            lines: BufReader::new(file).lines(),
            line: 0,
        })
    }
}

impl Iterator for ManifestReader {
    type Item = Result<Sample>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let text = match self.lines.next()? {
                Ok(t) => t,
                Err(e) => return Some(Err(io(&self.path)(e))),
            };
            self.line += 1;
            if text.trim().is_empty() {
                continue;
            }
            return Some(
                serde_json::from_str(&text).map_err(|e| DataError::Manifest {
                    path: self.path.clone(),
                    line: self.line,
                    reason: e.to_string(),
                }),
            );
        }
    }
}

/// Writes a manifest to a temporary file beside `path`; [`finish`](Self::finish) makes
/// it durable and renames it over `path`. Dropped without `finish`, it removes the
/// temporary file and leaves `path` as it was.
pub struct ManifestWriter {
    path: PathBuf,
    out: BufWriter<sv_fs::AtomicFile>,
    written: usize,
}

impl ManifestWriter {
    /// Start writing the manifest that will replace `path`.
    pub fn create(path: &Path) -> Result<Self> {
        if path.file_name().is_none() {
            return Err(DataError::Invalid(format!(
                "{} is not a file path",
                path.display()
            )));
        }
        let file = sv_fs::AtomicFile::create(path).map_err(io(path))?;
        Ok(Self {
            path: path.to_path_buf(),
            out: BufWriter::new(file),
            written: 0,
        })
    }

    /// Append one sample.
    pub fn write(&mut self, sample: &Sample) -> Result<()> {
        serde_json::to_writer(&mut self.out, sample)
            .map_err(|e| DataError::Invalid(format!("sample {}: {e}", sample.id)))?;
        self.out.write_all(b"\n").map_err(io(&self.path))?;
        self.written += 1;
        Ok(())
    }

    /// Samples written so far.
    pub fn len(&self) -> usize {
        self.written
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.written == 0
    }

    /// Flush, sync and rename over the target; returns the number of samples.
    pub fn finish(self) -> Result<usize> {
        let file = self
            .out
            .into_inner()
            .map_err(|e| io(&self.path)(e.into_error()))?;
        file.commit().map_err(io(&self.path))?;
        Ok(self.written)
    }
}

/// Write `samples` as the manifest at `path`, atomically.
pub fn write_manifest<'a>(
    path: &Path,
    samples: impl IntoIterator<Item = &'a Sample>,
) -> Result<usize> {
    let mut w = ManifestWriter::create(path)?;
    for s in samples {
        w.write(s)?;
    }
    w.finish()
}

/// Read a whole manifest (use [`ManifestReader`] to stream large ones).
pub fn read_manifest(path: &Path) -> Result<Vec<Sample>> {
    ManifestReader::open(path)?.collect()
}

/// The labelled samples of the manifest at `path` in `split` (`all`, or a split name);
/// none is an error naming the manifest.
pub fn read_labelled_split(path: &Path, split: &str) -> Result<Vec<Sample>> {
    let want: Option<crate::Split> = match split {
        "all" => None,
        name => Some(name.parse().map_err(|_| {
            crate::DataError::Invalid(format!("split `{name}`: expected test, val, train or all"))
        })?),
    };
    let chosen: Vec<Sample> = read_manifest(path)?
        .into_iter()
        .filter(|s| s.label != crate::Label::Unknown && (want.is_none() || s.split == want))
        .collect();
    if chosen.is_empty() {
        return Err(crate::DataError::Invalid(format!(
            "{}: no labelled samples in split {split}",
            path.display()
        )));
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{Label, Location, Source};

    fn sample(i: u8) -> Sample {
        Sample {
            id: crate::content_id(&[i]),
            location: Location::File {
                path: format!("img{i}.jpg").into(),
            },
            label: Label::Roadwork,
            source: Source::Natix,
            split: None,
            size: Some((4, 3)),
            metadata: [("scene_description".to_string(), serde_json::json!("cones"))].into(),
        }
    }

    #[test]
    fn round_trip_and_atomic_replace() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        let samples: Vec<Sample> = (0..3).map(sample).collect();
        assert_eq!(write_manifest(&path, &samples).unwrap(), 3);
        assert_eq!(read_manifest(&path).unwrap(), samples);

        // A writer dropped before finish leaves the old manifest and no temporary file.
        let mut w = ManifestWriter::create(&path).unwrap();
        w.write(&sample(9)).unwrap();
        drop(w);
        assert_eq!(read_manifest(&path).unwrap(), samples);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("m.jsonl")]);
    }

    #[test]
    fn bad_line_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        let good = serde_json::to_string(&sample(1)).unwrap();
        std::fs::write(&path, format!("{good}\n\n{{\"id\": 3}}\n")).unwrap();
        let err = read_manifest(&path).unwrap_err().to_string();
        assert!(err.contains("m.jsonl:3:"), "{err}");
    }
}
