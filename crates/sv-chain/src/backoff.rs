//! Reconnect delays: doubling from a first delay up to a cap, with jitter so that many
//! miners restarted together do not reconnect in step.

use std::time::Duration;

/// Exponential backoff with ±20 % jitter.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    cap: Duration,
    next: Duration,
}

impl Backoff {
    /// Delays start at `first` and double up to `cap`.
    pub fn new(first: Duration, cap: Duration) -> Self {
        Self {
            first,
            cap,
            next: first,
        }
    }

    /// The delay before the next attempt; each call doubles the following one.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.cap);
        let mut byte = [0u8; 1];
        let jitter = if getrandom::getrandom(&mut byte).is_ok() {
            0.8 + 0.4 * (byte[0] as f64 / 255.0)
        } else {
            1.0
        };
        base.mul_f64(jitter)
    }

    /// Back to the first delay (after a success).
    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(8));
        let d: Vec<f64> = (0..6).map(|_| b.next_delay().as_secs_f64()).collect();
        for (got, want) in d.iter().zip([1.0, 2.0, 4.0, 8.0, 8.0, 8.0]) {
            assert!(
                *got >= want * 0.8 - 1e-9 && *got <= want * 1.2 + 1e-9,
                "{d:?}"
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(1200));
    }
}
