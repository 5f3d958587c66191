//! Auto-labelling: an image gets a label only when every ensemble member calls it the
//! same way with confidence (the probability of the class it picks) of at least a
//! threshold (0.8 by default); everything else goes to a review list with the members'
//! answers.

use std::collections::HashMap;

use serde::Serialize;
use sv_data::{Label, Sample, Source};

use crate::error::CurateError;

/// An image left for a person to label.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReviewItem {
    /// The image's id.
    pub id: String,
    /// Each member's P(roadwork).
    pub probabilities: Vec<f32>,
    /// Why it was not labelled.
    pub reason: String,
}

/// Why the members' answers give no label.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Undecided {
    /// No member gave a probability for the image.
    #[error("no member answered")]
    NoAnswer,
    /// Members are on both sides of 0.5.
    #[error("members disagree")]
    Disagree,
    /// They agree, but one is less confident than asked.
    #[error("least confident member at {confidence:.3} < {min_confidence}")]
    Unsure {
        /// The least confident member's confidence in the agreed label.
        confidence: f32,
        /// The confidence asked for.
        min_confidence: f32,
    },
}

/// The label the members agree on with confidence ≥ `min_confidence`, or why not.
pub fn decide(probabilities: &[f32], min_confidence: f32) -> Result<(Label, f32), Undecided> {
    let Some(first) = probabilities.first() else {
        return Err(Undecided::NoAnswer);
    };
    let roadwork = *first >= 0.5;
    if probabilities.iter().any(|p| (*p >= 0.5) != roadwork) {
        return Err(Undecided::Disagree);
    }
    let confidence = probabilities
        .iter()
        .map(|p| if roadwork { *p } else { 1.0 - *p })
        .fold(f32::INFINITY, f32::min);
    if confidence < min_confidence {
        return Err(Undecided::Unsure {
            confidence,
            min_confidence,
        });
    }
    let label = if roadwork {
        Label::Roadwork
    } else {
        Label::NoRoadwork
    };
    Ok((label, confidence))
}

/// Label the unlabelled and synthetic samples of `samples` from the members'
/// probabilities (by sample id). Returns every sample (labels filled where the members
/// agree, with `autolabel_confidence` in the metadata; a synthetic sample whose
/// generator label the members confidently contradict is sent to review and left
/// unchanged) and the review list.
pub fn autolabel(
    samples: Vec<Sample>,
    probabilities: &HashMap<String, Vec<f32>>,
    min_confidence: f32,
) -> (Vec<Sample>, Vec<ReviewItem>) {
    let mut review = vec![];
    let out = samples
        .into_iter()
        .map(|mut s| {
            let target = s.label == Label::Unknown || s.source == Source::Synthetic;
            if !target {
                return s;
            }
            let probs = probabilities.get(&s.id).cloned().unwrap_or_default();
            match decide(&probs, min_confidence) {
                Ok((label, confidence)) if s.label == Label::Unknown || s.label == label => {
                    s.label = label;
                    s.metadata
                        .insert("autolabel_confidence".into(), (confidence as f64).into());
                }
                Ok((label, _)) => review.push(ReviewItem {
                    id: s.id.clone(),
                    probabilities: probs,
                    reason: format!(
                        "members say {} but the generator said {}",
                        label.as_str(),
                        s.label.as_str()
                    ),
                }),
                Err(why) => review.push(ReviewItem {
                    id: s.id.clone(),
                    probabilities: probs,
                    reason: why.to_string(),
                }),
            }
            s
        })
        .collect();
    (out, review)
}

/// The samples that need a label: unlabelled ones and synthetic ones (whose prompt
/// label is checked by the vote).
pub fn candidates(samples: &[Sample]) -> Vec<&Sample> {
    samples
        .iter()
        .filter(|s| s.label == Label::Unknown || s.source == Source::Synthetic)
        .collect()
}

/// Each member's P(roadwork) for each of `targets` (by sample id): the images are read
/// and decoded here and scored by `score` (one row per member, one value per image) in
/// chunks of 16; images that cannot be read or decoded get no vote. `progress` gets
/// (done, total).
pub fn votes(
    targets: &[&Sample],
    score: &mut dyn FnMut(&[image::DynamicImage]) -> Vec<Vec<f32>>,
    progress: &mut dyn FnMut(usize, usize),
) -> HashMap<String, Vec<f32>> {
    let mut probabilities = HashMap::new();
    let mut done = 0;
    for chunk in targets.chunks(16) {
        let (mut ids, mut images) = (vec![], vec![]);
        for s in chunk {
            let Ok(bytes) = s.location.read() else {
                continue;
            };
            let Ok(img) = sv_data::decode_image(&bytes, sv_data::DEFAULT_MAX_PIXELS) else {
                continue;
            };
            ids.push(s.id.clone());
            images.push(img);
        }
        if !images.is_empty() {
            let per_member = score(&images);
            for (i, id) in ids.into_iter().enumerate() {
                probabilities.insert(id, per_member.iter().map(|m| m[i]).collect());
            }
        }
        done += chunk.len();
        progress(done, targets.len());
    }
    probabilities
}

/// Write the review list as JSON Lines, atomically.
pub fn write_review(path: &std::path::Path, review: &[ReviewItem]) -> Result<(), CurateError> {
    let mut text = String::new();
    for item in review {
        text.push_str(&serde_json::to_string(item).expect("a review item serialises"));
        text.push('\n');
    }
    sv_fs::atomic_write(path, text.as_bytes())
        .map_err(|e| CurateError::Input(format!("writing {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreement_and_confidence_decide() {
        assert_eq!(decide(&[0.9, 0.85], 0.8), Ok((Label::Roadwork, 0.85)));
        assert_eq!(decide(&[0.1, 0.2], 0.8), Ok((Label::NoRoadwork, 0.8)));
        let unsure = decide(&[0.9, 0.75], 0.8).unwrap_err();
        assert!(unsure.to_string().contains("0.750"), "{unsure}");
        assert_eq!(decide(&[0.9, 0.4], 0.5).unwrap_err(), Undecided::Disagree);
        assert_eq!(
            decide(&[0.9, 0.4], 0.5).unwrap_err().to_string(),
            "members disagree"
        );
        assert_eq!(decide(&[], 0.5).unwrap_err(), Undecided::NoAnswer);
    }
}
