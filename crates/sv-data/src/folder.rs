//! The image-folder reader: `roadwork/` or `1/` for positives, `no_roadwork/` or `0/` for
//! negatives, any depth below them; files are taken by content, whatever their extension.

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
}

impl Default for FolderOptions {
    fn default() -> Self {
        Self {
            source: Source::Named("folder".into()),
            max_pixels: crate::decode::DEFAULT_MAX_PIXELS,
            unlabelled: false,
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

/// Every file under `dir`, sorted, hidden files (`.name`) left out.
fn files_under(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
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
        if path.is_dir() {
            files_under(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// Read the labelled images under `root` (and, with `unlabelled`, the others as unknown). Every file is decoded once (in parallel) to
/// check it; files that fail are skipped and counted, never fatal. The same image twice
/// is kept once. Samples come in path order.
pub fn read_folder(root: &Path, opts: &FolderOptions) -> Result<(Vec<Sample>, SkipReport)> {
    let mut labelled = Vec::new();
    let mut tops: Vec<_> = std::fs::read_dir(root)
        .map_err(io(root))?
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(io(root))?;
    tops.sort_by_key(|e| e.file_name());
    for top in tops {
        let Some(label) = label_of(&top.file_name().to_string_lossy()) else {
            if opts.unlabelled && !top.file_name().to_string_lossy().starts_with('.') {
                let path = top.path();
                if path.is_dir() {
                    let mut files = Vec::new();
                    files_under(&path, &mut files)?;
                    labelled.extend(files.into_iter().map(|f| (f, Label::Unknown)));
                } else {
                    labelled.push((path, Label::Unknown));
                }
            }
            continue;
        };
        if top.path().is_dir() {
            let mut files = Vec::new();
            files_under(&top.path(), &mut files)?;
            labelled.extend(files.into_iter().map(|f| (f, label)));
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
