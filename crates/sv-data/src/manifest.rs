//! Manifests: one [`Sample`] per line (JSON Lines), read as a stream with line numbers in
//! errors, written atomically (temporary file, fsync, rename) so that a killed run leaves
//! the previous manifest intact.
//!
//! Image paths in a manifest are relative to the manifest's folder (absolute paths are
//! kept as they are), so a manifest reads the same from any working directory and moves
//! with its images. The writer turns a relative path (one valid from the working
//! directory) into one relative to the manifest; the reader joins a relative path to the
//! manifest's folder. A manifest written before this rule, whose relative paths are
//! relative to the directory it was made in, still reads from that directory: a path
//! that does not exist beside the manifest but does from the working directory is taken
//! from there.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result, io};
use crate::sample::Sample;

/// Streams the samples of a manifest, one line at a time, their image paths resolved
/// against the manifest's folder (see the module).
pub struct ManifestReader {
    path: PathBuf,
    base: PathBuf,
    lines: std::io::Lines<BufReader<File>>,
    line: usize,
}

impl ManifestReader {
    /// Open a manifest.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(io(path))?;
        Ok(Self {
            path: path.to_path_buf(),
            base: folder_of(path),
            lines: BufReader::new(file).lines(),
            line: 0,
        })
    }
}

/// The folder a manifest's relative paths start from (`.` for a bare file name).
fn folder_of(manifest: &Path) -> PathBuf {
    match manifest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// `path` with `.` and `..` components taken out lexically (no file system access).
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                let last_is_normal =
                    matches!(out.components().next_back(), Some(Component::Normal(_)));
                if last_is_normal {
                    out.pop();
                } else if !out.has_root() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

/// `path` relative to `base`, both absolute and normalized, climbing with `..` where
/// needed.
fn relative_to(path: &Path, base: &Path) -> PathBuf {
    let (p, b): (Vec<_>, Vec<_>) = (path.components().collect(), base.components().collect());
    let common = p.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = PathBuf::new();
    for _ in common..b.len() {
        out.push("..");
    }
    for c in &p[common..] {
        out.push(c.as_os_str());
    }
    out
}

/// A location as read from the manifest in `base`: a relative path joined to `base`
/// (or, for a manifest made before paths were relative to it, left relative to the
/// working directory when only that exists).
fn resolve(mut location: crate::Location, base: &Path) -> crate::Location {
    let (crate::Location::File { path } | crate::Location::Parquet { path, .. }) = &mut location;
    if path.is_relative() {
        let joined = normalize(&base.join(&*path));
        if joined.exists() || !path.exists() {
            *path = joined;
        }
    }
    location
}

/// A location as written into the manifest in `base` (absolute, normalized): a relative
/// path (valid from the working directory) made relative to `base`; an absolute one
/// kept.
fn relativize(mut location: crate::Location, base: &Path) -> Result<crate::Location> {
    let (crate::Location::File { path } | crate::Location::Parquet { path, .. }) = &mut location;
    if path.is_relative() {
        let absolute = std::path::absolute(&*path).map_err(io(&*path))?;
        *path = relative_to(&normalize(&absolute), base);
    }
    Ok(location)
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
                serde_json::from_str::<Sample>(&text)
                    .map(|mut s| {
                        s.location = resolve(s.location, &self.base);
                        s
                    })
                    .map_err(|e| DataError::Manifest {
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
    /// The manifest's folder, absolute and normalized: what written paths are relative to.
    base: PathBuf,
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
        let base = normalize(&std::path::absolute(folder_of(path)).map_err(io(path))?);
        let file = sv_fs::AtomicFile::create(path).map_err(io(path))?;
        Ok(Self {
            path: path.to_path_buf(),
            base,
            out: BufWriter::new(file),
            written: 0,
        })
    }

    /// Append one sample, its image path made relative to the manifest's folder when it
    /// is relative (see the module).
    pub fn write(&mut self, sample: &Sample) -> Result<()> {
        let stored = Sample {
            location: relativize(sample.location.clone(), &self.base)?,
            ..sample.clone()
        };
        serde_json::to_writer(&mut self.out, &stored)
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
                path: std::env::temp_dir().join(format!("img{i}.jpg")),
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
    fn paths_are_relative_to_the_manifest_and_read_from_anywhere() {
        let tmp = tempfile::tempdir().unwrap();
        let root = normalize(&tmp.path().canonicalize().unwrap());
        let images = root.join("data/roadwork");
        std::fs::create_dir_all(&images).unwrap();
        std::fs::write(images.join("a.jpg"), b"a").unwrap();
        std::fs::create_dir_all(root.join("manifests")).unwrap();
        let manifest = root.join("manifests/m.jsonl");
        // A path as valid from the working directory (climbing out of it to the image)
        // is stored relative to the manifest's folder.
        let cwd = normalize(&std::env::current_dir().unwrap());
        let from_cwd = relative_to(&images.join("a.jpg"), &cwd);
        assert!(from_cwd.is_relative());
        let at_cwd = Sample {
            location: Location::File { path: from_cwd },
            ..sample(1)
        };
        write_manifest(&manifest, [&at_cwd]).unwrap();
        let text = std::fs::read_to_string(&manifest).unwrap();
        assert!(text.contains("\"../data/roadwork/a.jpg\""), "{text}");
        // Read back, it names the same file, whatever the working directory.
        let read = read_manifest(&manifest).unwrap();
        assert_eq!(
            read[0].location,
            Location::File {
                path: images.join("a.jpg")
            }
        );
        assert_eq!(read[0].location.read().unwrap(), b"a");
        // A manifest made before this rule, its path relative to the working directory,
        // still reads from there.
        let legacy = serde_json::to_string(&at_cwd).unwrap();
        std::fs::write(&manifest, format!("{legacy}\n")).unwrap();
        let read = read_manifest(&manifest).unwrap();
        assert_eq!(
            read[0].location.read().unwrap(),
            b"a",
            "{:?}",
            read[0].location
        );
        let beside = resolve(
            Location::File {
                path: "roadwork/a.jpg".into(),
            },
            &root.join("elsewhere"),
        );
        assert_eq!(
            beside,
            Location::File {
                path: root.join("elsewhere/roadwork/a.jpg")
            },
            "a path found nowhere is named beside the manifest"
        );
        // Absolute paths stay as they are.
        let absolute = Location::File {
            path: "/srv/x.jpg".into(),
        };
        assert_eq!(resolve(absolute.clone(), &root), absolute);
        assert_eq!(relativize(absolute.clone(), &root).unwrap(), absolute);
    }

    #[test]
    fn normalizing_and_relating_paths_is_lexical() {
        assert_eq!(normalize(Path::new("a/./b/../c")), PathBuf::from("a/c"));
        assert_eq!(normalize(Path::new("../a/..")), PathBuf::from(".."));
        assert_eq!(normalize(Path::new("/../a")), PathBuf::from("/a"));
        assert_eq!(
            relative_to(Path::new("/x/data/a.jpg"), Path::new("/x/m")),
            PathBuf::from("../data/a.jpg")
        );
        assert_eq!(
            relative_to(Path::new("/x/m/a.jpg"), Path::new("/x/m")),
            PathBuf::from("a.jpg")
        );
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
