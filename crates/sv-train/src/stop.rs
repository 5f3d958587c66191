//! Stopping a fine-tune cleanly: a process-wide request that the training loop reads
//! at each step boundary. When it is set, the loop writes its checkpoint at the step it
//! reached and returns [`TrainError::Stopped`](crate::TrainError::Stopped), so a spot
//! instance's preemption notice (SIGTERM, about two minutes before the machine goes)
//! loses no finished step. Binaries connect their signals to [`flag`]:
//!
//! ```
//! let flag = sv_train::stop::flag();
//! assert!(!sv_train::stop::requested());
//! // signal_hook::flag::register(signal_hook::consts::SIGTERM, flag) in a binary.
//! # drop(flag);
//! ```

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

fn shared() -> &'static Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// The stop request, to hand to a signal handler (set it to `true` to ask for a stop).
pub fn flag() -> Arc<AtomicBool> {
    shared().clone()
}

/// Ask the running fine-tune to stop at its next step boundary.
pub fn request() {
    shared().store(true, Ordering::SeqCst);
}

/// Whether a stop was asked for.
pub fn requested() -> bool {
    shared().load(Ordering::SeqCst)
}
