//! The steps of a cycle, in order, with the files each writes in the cycle's folder.

use serde::{Deserialize, Serialize};

/// One step of the cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// The miner's log (with challenge labels) → a manifest.
    Ingest,
    /// The log and the pool → indexes, with production's backbone.
    Embed,
    /// Near-duplicates out of the pool, held-out copies kept.
    Dedup,
    /// Failures (wrong first, then unsure) → their neighbours in the pool.
    Mine,
    /// Unlabelled hard cases labelled by an ensemble's agreement.
    Autolabel,
    /// Pool and hard cases → the training manifest, splits fixed per id.
    Mix,
    /// Incremental fine-tune from production, with hard negatives.
    Finetune,
    /// Candidate against production on the held-out sets, age-aware.
    Gate,
    /// The candidate in the transformers layout with its model card.
    Export,
    /// One commit to the Hub repository.
    Publish,
    /// The published repository registered with the subnet operator.
    Register,
    /// production.json points at the new model.
    Record,
}

impl Step {
    /// Every step, in order.
    pub const ALL: [Step; 12] = [
        Step::Ingest,
        Step::Embed,
        Step::Dedup,
        Step::Mine,
        Step::Autolabel,
        Step::Mix,
        Step::Finetune,
        Step::Gate,
        Step::Export,
        Step::Publish,
        Step::Register,
        Step::Record,
    ];

    /// Its name, as in the journal.
    pub fn name(self) -> &'static str {
        match self {
            Step::Ingest => "ingest",
            Step::Embed => "embed",
            Step::Dedup => "dedup",
            Step::Mine => "mine",
            Step::Autolabel => "autolabel",
            Step::Mix => "mix",
            Step::Finetune => "finetune",
            Step::Gate => "gate",
            Step::Export => "export",
            Step::Publish => "publish",
            Step::Register => "register",
            Step::Record => "record",
        }
    }

    /// What it does, in a line.
    pub fn what(self) -> &'static str {
        match self {
            Step::Ingest => "read the miner's log and join the challenge labels",
            Step::Embed => "embed the log and the pool with production's backbone",
            Step::Dedup => "drop near-duplicates from the pool, keeping held-out copies",
            Step::Mine => "rank failures (wrong, then unsure) and take their pool neighbours",
            Step::Autolabel => "label unlabelled hard cases where an ensemble agrees",
            Step::Mix => "mix the pool and hard cases; splits stay fixed per image id",
            Step::Finetune => "continue training production with hard negatives",
            Step::Gate => "compare with production on held-out and validator-style sets",
            Step::Export => "write the transformers layout and model_card.json",
            Step::Publish => "commit the export to the Hub repository",
            Step::Register => "register the repository with the subnet operator",
            Step::Record => "make the new model production (production.json)",
        }
    }

    /// The files (or folders) it writes in the cycle's folder.
    pub fn outputs(self) -> &'static [&'static str] {
        match self {
            Step::Ingest => &["log.jsonl"],
            Step::Embed => &["embedder/", "log.index", "pool.index"],
            Step::Dedup => &["pool.dedup.jsonl", "dedup.groups.json"],
            Step::Mine => &["hard.jsonl"],
            Step::Autolabel => &["hard.labelled.jsonl", "review.jsonl"],
            Step::Mix => &["train.jsonl", "mix.json"],
            Step::Finetune => &["run/"],
            Step::Gate => &["gate.json"],
            Step::Export => &["export/"],
            Step::Publish => &["published.json"],
            Step::Register => &["registered.json"],
            Step::Record => &["../../production.json"],
        }
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
