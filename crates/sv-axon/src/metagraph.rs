//! Who may call: a metagraph view (hotkey → uid, validator permit, stake) that a chain
//! client refreshes in place, and an offline allowlist of validator hotkeys read from a file.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use crate::error::AxonError;
use crate::gate::{Access, Callers};

/// One registered neuron as the blacklist needs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Neuron {
    /// Its uid on the subnet.
    pub uid: u16,
    /// SS58 hotkey.
    pub hotkey: String,
    /// Holds a validator permit.
    pub validator_permit: bool,
    /// Stake (TAO), for priority.
    pub stake: f64,
}

/// The subnet's neurons by hotkey, replaced whole on each refresh (readers never see a
/// half-updated view).
#[derive(Debug, Default)]
pub struct Metagraph {
    neurons: RwLock<Arc<HashMap<String, Neuron>>>,
}

impl Metagraph {
    /// An empty view (every caller unknown until the first refresh).
    pub fn new() -> Self {
        Self::default()
    }

    /// Replace the view with `neurons`.
    pub fn replace(&self, neurons: Vec<Neuron>) {
        let map = neurons.into_iter().map(|n| (n.hotkey.clone(), n)).collect();
        *self.neurons.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(map);
    }

    /// Number of neurons known.
    pub fn len(&self) -> usize {
        self.snapshot().len()
    }

    /// No neurons known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn snapshot(&self) -> Arc<HashMap<String, Neuron>> {
        self.neurons
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Read a snapshot file: a JSON array of [`Neuron`]s (hotkeys checked as SS58).
    pub fn read_snapshot(path: &Path) -> Result<Vec<Neuron>, AxonError> {
        let at = |m: String| AxonError::Config(format!("{}: {m}", path.display()));
        let text = std::fs::read(path).map_err(|e| at(e.to_string()))?;
        let neurons: Vec<Neuron> =
            serde_json::from_slice(&text).map_err(|e| at(format!("not a neuron list: {e}")))?;
        for n in &neurons {
            crate::ss58::decode(&n.hotkey).map_err(|e| at(format!("uid {}: {e}", n.uid)))?;
        }
        Ok(neurons)
    }
}

impl Callers for Metagraph {
    fn access(&self, hotkey: &str) -> Access {
        match self.snapshot().get(hotkey) {
            Some(n) => Access::Registered {
                permit: n.validator_permit,
                stake: n.stake,
            },
            None => Access::Unknown,
        }
    }
}

impl<T: Callers + ?Sized> Callers for Arc<T> {
    fn access(&self, hotkey: &str) -> Access {
        (**self).access(hotkey)
    }
}

/// Read an allowlist file: one SS58 hotkey per line, optionally followed by its stake;
/// blank lines and `#` comments are skipped. Errors name the file and line.
pub fn read_allowlist(path: &Path) -> Result<crate::gate::Allowlist, AxonError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| AxonError::Config(format!("{}: {e}", path.display())))?;
    let mut list = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let at = |m: String| AxonError::Config(format!("{}:{}: {m}", path.display(), i + 1));
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut parts = line.split_whitespace();
        let hotkey = parts.next().expect("non-empty line");
        crate::ss58::decode(hotkey).map_err(|e| at(e.to_string()))?;
        let stake = match parts.next() {
            Some(s) => s
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| at(format!("stake {s:?} is not a number")))?,
            None => 0.0,
        };
        if let Some(extra) = parts.next() {
            return Err(at(format!("unexpected {extra:?} after the stake")));
        }
        list.insert(hotkey.to_string(), stake);
    }
    Ok(crate::gate::Allowlist(list))
}
