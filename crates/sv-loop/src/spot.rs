//! Spot-instance safety for fine-tuning: every checkpoint of a run, with its
//! `config.toml` and `metrics.jsonl`, pushed to a private Hub repository in the
//! background ([`CheckpointSync`]), and a run restored from there on a fresh machine
//! ([`restore`]) so `finetune --resume` continues it.
//!
//! Pushing never holds up training, and never holds a checkpoint in memory: when a
//! checkpoint is written its files are staged under the run's `.sync/` directory (the
//! weights hard-linked, which costs nothing, as checkpoints are only ever replaced by
//! rename; the small config and metrics copied), and one uploader thread streams them to
//! the Hub and removes them. When checkpoints come faster than the Hub takes them, only
//! the newest waiting one is sent.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;

use sv_hub::HubSettings;
use sv_hub::publish::{Publisher, Upload};
use sv_train::checkpoint::{Checkpoint, Position};
use sv_train::finetune::RunDir;

use crate::error::LoopError;

/// A branch of a Hub model repository, written `hf://ORG/NAME[@BRANCH]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubBranch {
    /// `ORG/NAME`.
    pub repo: String,
    /// The branch (`main` unless given).
    pub branch: String,
}

impl std::str::FromStr for HubBranch {
    type Err = LoopError;

    fn from_str(text: &str) -> Result<Self, LoopError> {
        let bad = |reason: &str| LoopError::Input {
            key: "hub repository",
            path: PathBuf::from(text),
            reason: format!("{reason}; expected hf://ORG/NAME[@BRANCH]"),
        };
        let rest = text
            .strip_prefix("hf://")
            .ok_or_else(|| bad("not an hf:// address"))?;
        let (repo, branch) = match rest.split_once('@') {
            Some((repo, branch)) => (repo, branch),
            None => (rest, "main"),
        };
        let parts: Vec<&str> = repo.split('/').collect();
        let name_ok = |p: &str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        if parts.len() != 2 || !parts.iter().all(|p| name_ok(p)) {
            return Err(bad("the repository is not ORG/NAME"));
        }
        if !name_ok(branch) {
            return Err(bad("the branch is empty or not a name"));
        }
        Ok(Self {
            repo: repo.to_string(),
            branch: branch.to_string(),
        })
    }
}

impl std::fmt::Display for HubBranch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "hf://{}@{}", self.repo, self.branch)
    }
}

/// The files of a run that travel with its checkpoint, as named in the repository.
const RUN_FILES: [&str; 3] = ["checkpoint.safetensors", "config.toml", "metrics.jsonl"];

/// The files of a finished run pushed at its end.
const FINAL_FILES: [&str; 2] = ["model.safetensors", "eval.json"];

/// One commit the uploader made.
#[derive(Debug, Clone, PartialEq)]
pub struct Pushed {
    /// Where the run stood (`None` for the finished model).
    pub position: Option<Position>,
    /// The commit's id.
    pub commit: String,
}

struct Job {
    position: Option<Position>,
    files: Vec<Upload>,
    /// The staging directory the files are in, removed once the job is done.
    staged: PathBuf,
}

/// Where a run's pushes wait for the uploader.
const STAGING: &str = ".sync";

/// Pushes a run's checkpoints to a Hub branch from a background thread.
pub struct CheckpointSync {
    target: HubBranch,
    jobs: Option<mpsc::Sender<Job>>,
    worker: Option<JoinHandle<(Vec<Pushed>, Vec<String>)>>,
    queued: AtomicU64,
}

impl CheckpointSync {
    /// Start pushing to `target`, creating its repository (private) when missing. Needs
    /// a token (`HF_TOKEN` or `huggingface-cli login`); the Hub is asked now, so a wrong
    /// token or endpoint stops the run before it trains.
    pub fn start(target: HubBranch, settings: &HubSettings) -> Result<Self, LoopError> {
        let hub = |e: sv_hub::publish::PublishError| LoopError::Hub {
            what: "checkpoint sync",
            source: Box::new(e),
        };
        let publisher =
            Publisher::new(&settings.endpoint, settings.token.as_deref()).map_err(hub)?;
        publisher.create_repo(&target.repo, true).map_err(hub)?;
        if target.branch != "main" {
            // The Hub commits only to a branch that exists.
            publisher
                .create_branch(&target.repo, &target.branch)
                .map_err(hub)?;
        }
        let (jobs, queue) = mpsc::channel::<Job>();
        let to = target.clone();
        let worker = std::thread::Builder::new()
            .name("checkpoint-sync".into())
            .spawn(move || upload_all(&publisher, &to, &queue))
            .map_err(|e| LoopError::io(&PathBuf::from("checkpoint-sync thread"), e))?;
        Ok(Self {
            target,
            jobs: Some(jobs),
            worker: Some(worker),
            queued: AtomicU64::new(0),
        })
    }

    /// Where the checkpoints go.
    pub fn target(&self) -> &HubBranch {
        &self.target
    }

    /// Queue the run's checkpoint at `position` with its config and metrics, as they
    /// are now.
    pub fn push_checkpoint(&self, run: &RunDir, position: Position) -> Result<(), LoopError> {
        self.queue(run, &RUN_FILES, Some(position))
    }

    /// Queue the finished run's model and evaluation.
    pub fn push_final(&self, run: &RunDir) -> Result<(), LoopError> {
        self.queue(run, &FINAL_FILES, None)
    }

    fn queue(
        &self,
        run: &RunDir,
        names: &[&str],
        position: Option<Position>,
    ) -> Result<(), LoopError> {
        let root = run.root.join(STAGING);
        if self.queued.load(Ordering::Relaxed) == 0 {
            // Left by a run that was killed before its uploader finished.
            let _ = std::fs::remove_dir_all(&root);
        }
        let n = self.queued.fetch_add(1, Ordering::Relaxed);
        let staged = root.join(n.to_string());
        let files = stage(run, names, &staged).inspect_err(|_| {
            let _ = std::fs::remove_dir_all(&staged);
        })?;
        if let Some(jobs) = &self.jobs {
            // The worker ends only when the sender is dropped, so this cannot fail.
            let _ = jobs.send(Job {
                position,
                files,
                staged,
            });
        }
        Ok(())
    }

    /// Wait until everything queued is pushed: the commits made, and the errors of
    /// those that failed (each a line naming the position).
    pub fn finish(mut self) -> (Vec<Pushed>, Vec<String>) {
        self.jobs = None;
        match self.worker.take().map(JoinHandle::join) {
            Some(Ok(done)) => done,
            Some(Err(_)) => (Vec::new(), vec!["the uploader thread panicked".into()]),
            None => (Vec::new(), Vec::new()),
        }
    }
}

/// Stage the run's files `names` in `dir`: weights (`*.safetensors`) hard-linked where
/// the file system allows, everything else copied, so later writes of the run leave them
/// as they are now.
fn stage(run: &RunDir, names: &[&str], dir: &Path) -> Result<Vec<Upload>, LoopError> {
    std::fs::create_dir_all(dir).map_err(|e| LoopError::io(dir, e))?;
    let mut files = Vec::new();
    for name in names {
        let from = run.root.join(name);
        let to = dir.join(name);
        let linked = name.ends_with(".safetensors") && std::fs::hard_link(&from, &to).is_ok();
        if !linked {
            std::fs::copy(&from, &to).map_err(|e| LoopError::io(&from, e))?;
        }
        files.push(Upload::file(&to, name).map_err(|e| LoopError::Hub {
            what: "checkpoint sync",
            source: Box::new(e),
        })?);
    }
    Ok(files)
}

/// Remove a job's staging directory, and the staging root once it is empty.
fn remove_staged(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    if let Some(root) = dir.parent() {
        let _ = std::fs::remove_dir(root);
    }
}

/// The uploader: take every job waiting, push the newest checkpoint among them (and any
/// final model), until the sender is dropped.
fn upload_all(
    publisher: &Publisher,
    target: &HubBranch,
    queue: &mpsc::Receiver<Job>,
) -> (Vec<Pushed>, Vec<String>) {
    let mut pushed = Vec::new();
    let mut errors = Vec::new();
    while let Ok(first) = queue.recv() {
        let mut waiting = vec![first];
        waiting.extend(queue.try_iter());
        // Only the newest checkpoint matters; a final model is always sent.
        let newest = waiting.iter().rposition(|j| j.position.is_some());
        for (i, job) in waiting.into_iter().enumerate() {
            if job.position.is_some() && Some(i) != newest {
                remove_staged(&job.staged);
                continue;
            }
            let summary = match job.position {
                Some(p) => format!(
                    "checkpoint at step {} (epoch {}, batch {})",
                    p.step, p.epoch, p.batch
                ),
                None => "finished model".to_string(),
            };
            match publisher.commit(&target.repo, &target.branch, &job.files, &summary, "") {
                Ok(done) => pushed.push(Pushed {
                    position: job.position,
                    commit: done.commit,
                }),
                Err(e) => errors.push(format!("{summary} to {target}: {e}")),
            }
            remove_staged(&job.staged);
        }
    }
    (pushed, errors)
}

/// Download the newest checkpoint, config and metrics of `source` into `run` (a new or
/// empty run directory) so that resuming continues the run there; where it stood.
pub fn restore(
    source: &HubBranch,
    run: &RunDir,
    settings: &HubSettings,
) -> Result<Position, LoopError> {
    let hub = |e: sv_hub::HubError| LoopError::Hub {
        what: "restore from the Hub",
        source: Box::new(e),
    };
    if run.checkpoint().exists() || run.config().exists() {
        return Err(LoopError::Input {
            key: "--run-dir",
            path: run.root.clone(),
            reason: "already holds a run; resume from the Hub into a new directory".into(),
        });
    }
    let client = sv_hub::HubClient::new(settings.clone()).map_err(hub)?;
    // The branch's commit now, so a cached older snapshot is never taken for it.
    let commit = client
        .commit_of(&source.repo, Some(&source.branch))
        .map_err(hub)?;
    std::fs::create_dir_all(&run.root).map_err(|e| LoopError::io(&run.root, e))?;
    for name in RUN_FILES {
        let cached = client
            .model_file(&source.repo, Some(&commit), name)
            .map_err(hub)?;
        // Streamed, never held whole: a checkpoint may be several gigabytes.
        let local = run.root.join(name);
        let mut from = std::fs::File::open(&cached).map_err(|e| LoopError::io(&cached, e))?;
        let mut to = sv_fs::AtomicFile::create(&local).map_err(|e| LoopError::io(&local, e))?;
        std::io::copy(&mut from, &mut to).map_err(|e| LoopError::io(&local, e))?;
        to.commit().map_err(|e| LoopError::io(&local, e))?;
    }
    let checkpoint = Checkpoint::load(&run.checkpoint()).map_err(|e| LoopError::Hub {
        what: "restore from the Hub",
        source: Box::new(e),
    })?;
    Ok(checkpoint.position)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_branches_parse_and_refuse() {
        let b: HubBranch = "hf://me/ckpts@spot".parse().unwrap();
        assert_eq!((b.repo.as_str(), b.branch.as_str()), ("me/ckpts", "spot"));
        let b: HubBranch = "hf://me/ckpts".parse().unwrap();
        assert_eq!(b.branch, "main");
        assert_eq!(b.to_string(), "hf://me/ckpts@main");
        for bad in [
            "me/ckpts",
            "hf://me",
            "hf://a/b/c",
            "hf://me/ck pts",
            "hf://me/c@",
        ] {
            let e = bad.parse::<HubBranch>().unwrap_err().to_string();
            assert!(e.contains("hf://ORG/NAME[@BRANCH]"), "{bad}: {e}");
        }
    }
}
