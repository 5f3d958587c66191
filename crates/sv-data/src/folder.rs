//! The image-folder reader: `roadwork/` or `1/` for positives, `no_roadwork/` or `0/` for
//! negatives, any depth below them; files are taken by content, whatever their extension.
//! Symbolic links below the root are not followed unless asked; when they are, a link
//! back into a folder already walked is skipped (folders are known by device and inode).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::decode::{Checked, Intake, Skip, SkipReason, SkipReport, check_bytes};
use crate::error::{Result, io};
use crate::sample::{Label, Location, Sample, Source};

/// How to read a folder.
#[derive(Debug, Clone)]
pub struct FolderOptions {
    /// The source the samples get.
    pub source: Source,
    /// Pixel limit per image.
    pub max_pixels: u64,
    /// Also read images outside the label folders, as unlabelled (a generator's output).
    pub unlabelled: bool,
    /// Follow symbolic links below the root (each folder walked once). Off: links are
    /// skipped and counted as [`SkipReason::Link`].
    pub follow_links: bool,
}

impl Default for FolderOptions {
    fn default() -> Self {
        Self {
            source: Source::Named("folder".into()),
            max_pixels: crate::decode::DEFAULT_MAX_PIXELS,
            unlabelled: false,
            follow_links: false,
        }
    }
}

/// The label a top-level folder name stands for.
fn label_of(dir: &str) -> Option<Label> {
    match dir.to_ascii_lowercase().as_str() {
        "roadwork" | "1" => Some(Label::Roadwork),
        "no_roadwork" | "0" => Some(Label::NoRoadwork),
        _ => None,
    }
}

/// A folder's identity: the same folder reached twice through links has the same one.
#[cfg(unix)]
fn identity(meta: &std::fs::Metadata, _path: &Path) -> (u64, u64, PathBuf) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino(), PathBuf::new())
}

#[cfg(not(unix))]
fn identity(_meta: &std::fs::Metadata, path: &Path) -> (u64, u64, PathBuf) {
    (
        0,
        0,
        std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
    )
}

/// One walk of a folder tree: links skipped or followed once, skips recorded.
struct Walk {
    follow_links: bool,
    walked: HashSet<(u64, u64, PathBuf)>,
    skipped: Vec<(PathBuf, Skip)>,
}

/// What a folder entry is, after the link policy.
enum Kind {
    Dir,
    File,
    Skipped,
}

impl Walk {
    fn new(follow_links: bool) -> Self {
        Self {
            follow_links,
            walked: HashSet::new(),
            skipped: Vec::new(),
        }
    }

    /// Classify `path` (whose own type, not following links, is `own`).
    fn kind(&mut self, path: &Path, own: std::fs::FileType) -> Kind {
        if own.is_symlink() && !self.follow_links {
            self.skipped.push((
                path.to_path_buf(),
                Skip::new(
                    SkipReason::Link,
                    "symbolic link not followed (--follow-links)",
                ),
            ));
            return Kind::Skipped;
        }
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => Kind::Dir,
            Ok(_) => Kind::File,
            Err(e) => {
                self.skipped.push((
                    path.to_path_buf(),
                    Skip::new(SkipReason::Unreadable, e.to_string()),
                ));
                Kind::Skipped
            }
        }
    }

    /// Every file under `dir`, sorted, hidden files (`.name`) left out; a folder already
    /// walked (a link cycle) is skipped.
    fn files_under(&mut self, dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        let meta = std::fs::metadata(dir).map_err(io(dir))?;
        if !self.walked.insert(identity(&meta, dir)) {
            self.skipped.push((
                dir.to_path_buf(),
                Skip::new(SkipReason::Link, "leads back into a folder already walked"),
            ));
            return Ok(());
        }
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .map_err(io(dir))?
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(io(dir))?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            if e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let path = e.path();
            let own = e.file_type().map_err(io(&path))?;
            match self.kind(&path, own) {
                Kind::Dir => self.files_under(&path, out)?,
                Kind::File => out.push(path),
                Kind::Skipped => {}
            }
        }
        Ok(())
    }
}

/// Read the labelled images under `root` (and, with `unlabelled`, the others as unknown). Every file is decoded once (in parallel) to
/// check it; files that fail are skipped and counted, never fatal. The same image twice
/// is kept once. Samples come in path order.
pub fn read_folder(root: &Path, opts: &FolderOptions) -> Result<(Vec<Sample>, SkipReport)> {
    let mut labelled = Vec::new();
    let mut walk = Walk::new(opts.follow_links);
    let mut tops: Vec<_> = std::fs::read_dir(root)
        .map_err(io(root))?
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(io(root))?;
    tops.sort_by_key(|e| e.file_name());
    for top in tops {
        let name = top.file_name().to_string_lossy().into_owned();
        let label = match label_of(&name) {
            Some(label) => label,
            None if opts.unlabelled && !name.starts_with('.') => Label::Unknown,
            None => continue,
        };
        let path = top.path();
        let own = top.file_type().map_err(io(&path))?;
        match walk.kind(&path, own) {
            Kind::Dir => {
                let mut files = Vec::new();
                walk.files_under(&path, &mut files)?;
                labelled.extend(files.into_iter().map(|f| (f, label)));
            }
            // A loose file at the top is an image only when unlabelled ones are read.
            Kind::File if label == Label::Unknown => labelled.push((path, label)),
            Kind::File | Kind::Skipped => {}
        }
    }
    let checked: Vec<(PathBuf, Label, Checked)> = labelled
        .into_par_iter()
        .map(|(path, label)| {
            let result = std::fs::read(&path)
                .map_err(|e| Skip::new(SkipReason::Unreadable, e.to_string()))
                .and_then(|bytes| check_bytes(&bytes, opts.max_pixels));
            (path, label, result)
        })
        .collect();
    let mut intake = Intake::default();
    for (path, skip) in &walk.skipped {
        intake.report.add(path, skip);
    }
    let mut samples = Vec::new();
    for (path, label, result) in checked {
        if let Some((id, size)) = intake.admit(&path, result) {
            samples.push(Sample {
                id,
                location: Location::File { path },
                label,
                source: opts.source.clone(),
                split: None,
                size: Some(size),
                metadata: Default::default(),
            });
        }
    }
    Ok((samples, intake.report))
}
