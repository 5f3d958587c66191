//! Counts of samples by source × label × split.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::sample::Sample;

/// Sample counts by (source, label, split); the split is `"unassigned"` when unset.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    /// Count per (source, label, split).
    pub counts: BTreeMap<(String, String, String), usize>,
}

impl Stats {
    /// Count `samples`.
    pub fn of<'a>(samples: impl IntoIterator<Item = &'a Sample>) -> Self {
        let mut s = Self::default();
        for sample in samples {
            s.add(sample);
        }
        s
    }

    /// Count one sample.
    pub fn add(&mut self, s: &Sample) {
        let split = s.split.map_or("unassigned", |x| x.as_str());
        *self
            .counts
            .entry((
                s.source.name().to_string(),
                s.label.as_str().to_string(),
                split.to_string(),
            ))
            .or_default() += 1;
    }

    /// Total samples.
    pub fn total(&self) -> usize {
        self.counts.values().sum()
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{:<16} {:<12} {:<11} {:>8}",
            "source", "label", "split", "count"
        )?;
        for ((source, label, split), n) in &self.counts {
            writeln!(f, "{source:<16} {label:<12} {split:<11} {n:>8}")?;
        }
        write!(
            f,
            "{:<16} {:<12} {:<11} {:>8}",
            "total",
            "",
            "",
            self.total()
        )
    }
}
