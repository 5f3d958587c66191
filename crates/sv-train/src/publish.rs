//! What `sv-trainer publish` sends: the export directory's files, checked first as earlier
//! validators checked a submission (the card's `submitted_by` is the publishing hotkey,
//! `submission_time` is recent, `model_name` is not one already taken), with a README
//! model card and a commit message that carry the version and the metrics, naming the
//! split they were measured on.

use std::path::{Path, PathBuf};

use crate::error::{Result, TrainError};
use crate::export::ModelCard;
use crate::metrics::Report;

/// Files of an export that are published when present (the first three are required).
pub const FILES: [&str; 5] = [
    "model.safetensors",
    "config.json",
    "preprocessor_config.json",
    "model_card.json",
    "ensemble.json",
];

/// Oldest `submission_time` accepted, in seconds before now.
pub const MAX_CARD_AGE: u64 = 7 * 86_400;

/// A checked publication.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Local file → path in the repository.
    pub files: Vec<(PathBuf, String)>,
    /// The card.
    pub card: ModelCard,
    /// Commit summary (name, version, metrics).
    pub summary: String,
    /// Commit description.
    pub description: String,
    /// The README model card.
    pub readme: String,
}

fn refuse(reason: String) -> TrainError {
    TrainError::Config {
        source_name: "publish".into(),
        reason,
    }
}

/// The model names other miners use, from a file of one name per line (blank lines and
/// `#` comments skipped): what [`plan`] refuses as `taken`.
pub fn read_taken_names(path: &Path) -> Result<Vec<String>> {
    Ok(std::fs::read_to_string(path)
        .map_err(|e| TrainError::io(path, e))?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect())
}

/// Check `export` for publication by `hotkey` at `now` (Unix seconds); `taken` lists
/// model names other miners use; `metrics` is an evaluation if known, with the name of
/// the split it was measured on (a run's `eval.json` is its `validation` split).
pub fn plan(
    export: &Path,
    hotkey: &str,
    now: u64,
    taken: &[String],
    metrics: Option<(&Report, &str)>,
) -> Result<Plan> {
    let card_path = export.join("model_card.json");
    let text = std::fs::read(&card_path).map_err(|e| {
        refuse(format!(
            "{}: {e} (export with --model-name and --hotkey to write it)",
            card_path.display()
        ))
    })?;
    let card: ModelCard = serde_json::from_slice(&text)
        .map_err(|e| refuse(format!("{}: {e}", card_path.display())))?;
    card.validate()?;
    if card.submitted_by != hotkey {
        return Err(refuse(format!(
            "{}: submitted_by is {} but the publishing hotkey is {hotkey}",
            card_path.display(),
            card.submitted_by
        )));
    }
    if card.submission_time > now + 300 || card.submission_time + MAX_CARD_AGE < now {
        return Err(refuse(format!(
            "{}: submission_time {} is not recent (now {now}); export again",
            card_path.display(),
            card.submission_time
        )));
    }
    if taken
        .iter()
        .any(|t| t.trim().eq_ignore_ascii_case(card.model_name.trim()))
    {
        return Err(refuse(format!(
            "model_name {:?} is already taken; export with another name",
            card.model_name
        )));
    }
    let mut files = Vec::new();
    for (i, name) in FILES.iter().enumerate() {
        let path = export.join(name);
        if path.exists() {
            files.push((path, name.to_string()));
        } else if i < 3 {
            return Err(refuse(format!("{} is missing", path.display())));
        }
    }
    let figures = metrics.map(|(r, split)| {
        format!(
            "accuracy {:.4}, MCC {:.4}, ROC-AUC {}, subnet reward {:.4} on {} {split} images",
            r.accuracy,
            r.mcc,
            r.roc_auc.map_or("n/a".into(), |a| format!("{a:.4}")),
            r.subnet_reward,
            r.samples
        )
    });
    let summary = match &figures {
        Some(f) => format!("{} {}: {f}", card.model_name, card.version),
        None => format!("{} {}", card.model_name, card.version),
    };
    let description = format!(
        "{}\n\nSubmitted by {} at {} (Unix time).",
        card.description, card.submitted_by, card.submission_time
    );
    let readme = format!(
        "---\nlibrary_name: transformers\npipeline_tag: image-classification\ntags:\n- streetvision\n- bittensor\n- roadwork\n---\n\n# {}\n\n{}\n\n- version: {}\n- architecture: {}\n- submitted by: `{}`\n- metrics: {}\n\nA roadwork classifier for the StreetVision subnet (netuid 72). `model_card.json` is the subnet's card.\n",
        card.model_name,
        card.description,
        card.version,
        card.architecture.as_deref().unwrap_or("see config.json"),
        card.submitted_by,
        figures.as_deref().unwrap_or("not given")
    );
    Ok(Plan {
        files,
        card,
        summary,
        description,
        readme,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOTKEY: &str = "5EHgWw2Af1pnoc7f1A8bfmM97W3DAYW8xr82RfhLL9oAabAe";

    fn export(card_time: u64) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for f in &FILES[..3] {
            std::fs::write(dir.path().join(f), b"{}").unwrap();
        }
        let card = ModelCard {
            model_name: "Roadwork-Owl".into(),
            description: "cones and crews".into(),
            version: "1.2.0".into(),
            submitted_by: HOTKEY.into(),
            submission_time: card_time,
            architecture: Some("ConvNextV2ForImageClassification".into()),
            notes: None,
        };
        std::fs::write(
            dir.path().join("model_card.json"),
            serde_json::to_vec(&card).unwrap(),
        )
        .unwrap();
        dir
    }

    #[test]
    fn a_fresh_card_of_this_hotkey_is_published_with_its_metrics() {
        let now = 1_800_000_000;
        let dir = export(now - 60);
        let report = Report::of(&[(0.9, true), (0.2, false), (0.7, false)]);
        let plan = plan(dir.path(), HOTKEY, now, &[], Some((&report, "validation"))).unwrap();
        let remote: Vec<&str> = plan.files.iter().map(|(_, r)| r.as_str()).collect();
        assert_eq!(
            remote,
            [
                "model.safetensors",
                "config.json",
                "preprocessor_config.json",
                "model_card.json"
            ]
        );
        assert!(
            plan.summary
                .starts_with("Roadwork-Owl 1.2.0: accuracy 0.6667"),
            "{}",
            plan.summary
        );
        assert!(plan.readme.contains("library_name: transformers") && plan.readme.contains(HOTKEY));
        assert!(
            plan.summary.ends_with("on 3 validation images") && !plan.summary.contains("held-out"),
            "{}",
            plan.summary
        );
    }

    #[test]
    fn cards_that_validators_rejected_are_refused_by_reason() {
        let now = 1_800_000_000;
        let err = |dir: &tempfile::TempDir, hotkey: &str, taken: &[String]| {
            plan(dir.path(), hotkey, now, taken, None)
                .unwrap_err()
                .to_string()
        };
        let fresh = export(now - 60);
        let other = "5DtDLm5rQHShDqojQpsvcN8tRXHVFaecfDoRet1SU6BFD9Fi";
        assert!(err(&fresh, other, &[]).contains("submitted_by"));
        assert!(err(&fresh, HOTKEY, &[" roadwork-owl ".into()]).contains("already taken"));
        assert!(err(&export(now - MAX_CARD_AGE - 1), HOTKEY, &[]).contains("not recent"));
        assert!(err(&export(now + 3600), HOTKEY, &[]).contains("not recent"));
        std::fs::remove_file(fresh.path().join("config.json")).unwrap();
        assert!(err(&fresh, HOTKEY, &[]).contains("config.json is missing"));
        std::fs::remove_file(fresh.path().join("model_card.json")).unwrap();
        assert!(err(&fresh, HOTKEY, &[]).contains("--model-name"));
    }
}
