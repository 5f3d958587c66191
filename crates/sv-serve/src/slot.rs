//! The model in service, swapped atomically: a batch takes the current model once and
//! keeps it to the end, so a swap never fails a request in flight.

use std::sync::{Arc, RwLock};

use crate::model::LoadedModel;

/// Holds the current model.
#[derive(Debug)]
pub struct ModelSlot {
    current: RwLock<Arc<LoadedModel>>,
}

impl ModelSlot {
    /// A slot serving `model`.
    pub fn new(model: LoadedModel) -> Self {
        Self {
            current: RwLock::new(Arc::new(model)),
        }
    }

    /// The model to use now.
    pub fn current(&self) -> Arc<LoadedModel> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Put `model` in service; returns the one it replaced (dropped when its last batch ends).
    pub fn swap(&self, model: LoadedModel) -> Arc<LoadedModel> {
        let mut guard = self.current.write().unwrap_or_else(|p| p.into_inner());
        std::mem::replace(&mut *guard, Arc::new(model))
    }
}
