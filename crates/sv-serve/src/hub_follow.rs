//! The Hub as the deploy channel: a miner serving a Hugging Face repository's branch
//! asks the Hub for the branch's commit every so often and, when it moved, loads the new
//! commit through the shared cache, checks that it answers a smoke image, and only then
//! swaps it in. A commit that fails is refused once and the model in service keeps
//! serving; the next commit is tried again.

use std::time::{Duration, Instant};

use image::{DynamicImage, Rgb, RgbImage};
use sv_models::ModelSource;

use crate::error::ServeError;
use crate::model::LoadedModel;

/// The repository and branch `source` follows: a Hub source whose revision is not a
/// full commit id (a branch, a tag, or none for `main`).
pub fn followed(source: &ModelSource) -> Option<(String, Option<String>)> {
    match source {
        ModelSource::Hub { repo, revision } => {
            let pinned = revision
                .as_deref()
                .is_some_and(|r| r.len() == 40 && r.chars().all(|c| c.is_ascii_hexdigit()));
            (!pinned).then(|| (repo.clone(), revision.clone()))
        }
        ModelSource::Local(_) => None,
    }
}

/// Where a followed branch stands.
#[derive(Debug)]
pub struct HubFollower {
    /// `owner/name`.
    pub repo: String,
    /// The branch (`None`: `main`).
    pub branch: Option<String>,
    /// The commit in service, when known.
    pub commit: Option<String>,
    /// The last commit that failed to load or to answer, not tried again.
    pub refused: Option<String>,
    every: Duration,
    last: Instant,
}

impl HubFollower {
    /// Follow `branch` of `repo`, asking every `every`; `commit` is the one in service.
    pub fn new(
        repo: String,
        branch: Option<String>,
        commit: Option<String>,
        every: Duration,
    ) -> Self {
        Self {
            repo,
            branch,
            commit,
            refused: None,
            every,
            last: Instant::now(),
        }
    }

    /// The source of `commit` of the followed repository.
    pub fn source_at(&self, commit: &str) -> ModelSource {
        ModelSource::Hub {
            repo: self.repo.clone(),
            revision: Some(commit.to_string()),
        }
    }

    /// When a poll is due at `now`, the branch's commit if it moved to one not refused
    /// (`ask` asks the Hub; an error is reported and skips the poll).
    pub fn poll(
        &mut self,
        now: Instant,
        ask: impl FnOnce(&str, Option<&str>) -> Result<String, String>,
    ) -> Option<String> {
        if now.duration_since(self.last) < self.every {
            return None;
        }
        self.last = now;
        match ask(&self.repo, self.branch.as_deref()) {
            Ok(commit)
                if Some(&commit) != self.commit.as_ref()
                    && Some(&commit) != self.refused.as_ref() =>
            {
                Some(commit)
            }
            Ok(_) => None,
            Err(e) => {
                eprintln!("sv-miner: asking the Hub for {}: {e}", self.repo);
                None
            }
        }
    }
}

/// A 224 × 224 street-coloured gradient: what a candidate model must answer before it
/// serves.
pub fn smoke_image() -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_fn(224, 224, |x, y| {
        Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) / 2 % 256) as u8])
    }))
}

/// Check that `model` answers the smoke image with a probability in [0, 1].
pub fn smoke_check(model: &LoadedModel) -> Result<(), ServeError> {
    let answers = model.predictor.probabilities(&[smoke_image()]);
    match answers.as_slice() {
        [p] if p.is_finite() && (0.0..=1.0).contains(p) => Ok(()),
        other => Err(ServeError::Config(format!(
            "model {} answered the smoke image with {other:?}, not one probability in [0, 1]",
            model.version
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branches_are_followed_and_commits_are_pinned() {
        let hub = |r: Option<&str>| ModelSource::Hub {
            repo: "o/n".into(),
            revision: r.map(str::to_string),
        };
        assert_eq!(followed(&hub(None)), Some(("o/n".into(), None)));
        assert!(followed(&hub(Some("dev"))).is_some());
        assert!(followed(&hub(Some(&"a".repeat(40)))).is_none());
        assert!(followed(&ModelSource::Local("x".into())).is_none());
    }

    #[test]
    fn a_moved_branch_is_reported_once_and_a_refused_commit_not_again() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut f = HubFollower::new("o/n".into(), None, Some("a".into()), s);
        assert_eq!(f.poll(t0, |_, _| Ok("b".into())), None, "not due yet");
        assert_eq!(f.poll(t0 + s, |_, _| Ok("a".into())), None, "unchanged");
        assert_eq!(f.poll(t0 + 2 * s, |_, _| Ok("b".into())), Some("b".into()));
        f.refused = Some("b".into());
        assert_eq!(f.poll(t0 + 3 * s, |_, _| Ok("b".into())), None, "refused");
        assert_eq!(f.poll(t0 + 4 * s, |_, _| Err("down".into())), None);
        assert_eq!(f.poll(t0 + 5 * s, |_, _| Ok("c".into())), Some("c".into()));
    }
}
