//! The miner's recent history for its dashboard: answer latency and batch sizes in
//! five-minute buckets over the last six hours, and the distribution of its answers.
//! Memory is bounded: 72 buckets of at most 2048 latency samples (16 KiB each), ten answer bins.

use std::collections::VecDeque;

/// Seconds per bucket.
pub const BUCKET_SECONDS: u64 = 300;
/// Buckets kept (six hours).
pub const BUCKETS: usize = 72;
/// Latency samples kept per bucket (later ones in a full bucket are dropped).
const SAMPLES: usize = 2048;

#[derive(Debug, Default, Clone)]
struct Bucket {
    start: u64,
    latencies_ms: Vec<f64>,
    answered: u64,
    batches: u64,
    batch_images: u64,
}

/// One bucket as the dashboard draws it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Unix seconds the bucket starts.
    pub start: u64,
    /// Requests answered in it.
    pub answered: u64,
    /// Median answer latency, ms (0 when none).
    pub p50_ms: f64,
    /// 99th-percentile answer latency, ms (0 when none).
    pub p99_ms: f64,
    /// Mean images per forward pass (0 when none).
    pub mean_batch: f64,
}

/// Recent history; see the module documentation.
#[derive(Debug, Default)]
pub struct History {
    buckets: VecDeque<Bucket>,
    answers: [u64; 10],
}

impl History {
    fn bucket(&mut self, now: u64) -> &mut Bucket {
        let start = now - now % BUCKET_SECONDS;
        if self.buckets.back().is_none_or(|b| b.start < start) {
            self.buckets.push_back(Bucket {
                start,
                ..Bucket::default()
            });
            while self.buckets.len() > BUCKETS {
                self.buckets.pop_front();
            }
        }
        self.buckets.back_mut().expect("pushed")
    }

    /// An answer at `now` (Unix seconds) that took `ms`.
    pub fn answered(&mut self, now: u64, ms: f64) {
        let b = self.bucket(now);
        b.answered += 1;
        if b.latencies_ms.len() < SAMPLES {
            b.latencies_ms.push(ms);
        }
    }

    /// A forward pass of `size` images at `now`.
    pub fn batch(&mut self, now: u64, size: usize) {
        let b = self.bucket(now);
        b.batches += 1;
        b.batch_images += size as u64;
    }

    /// An answer's probability of roadwork (clamped into ten bins of 0.1).
    pub fn answer(&mut self, p: f32) {
        let bin = if p.is_finite() {
            ((p.clamp(0.0, 1.0) * 10.0) as usize).min(9)
        } else {
            return;
        };
        self.answers[bin] += 1;
    }

    /// Answers per probability bin, `[0, 0.1)` … `[0.9, 1]`.
    pub fn answers(&self) -> [u64; 10] {
        self.answers
    }

    /// The buckets of the last six hours, oldest first.
    pub fn points(&self) -> Vec<Point> {
        self.buckets
            .iter()
            .map(|b| {
                let mut l = b.latencies_ms.clone();
                l.sort_by(f64::total_cmp);
                let at = |q: f64| sv_records::metrics::nearest_rank(&l, q);
                Point {
                    start: b.start,
                    answered: b.answered,
                    p50_ms: at(0.5),
                    p99_ms: at(0.99),
                    mean_batch: if b.batches == 0 {
                        0.0
                    } else {
                        b.batch_images as f64 / b.batches as f64
                    },
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_roll_over_and_stay_bounded() {
        let mut h = History::default();
        for i in 0..100u64 {
            h.answered(i * BUCKET_SECONDS, 10.0 + i as f64);
            h.batch(i * BUCKET_SECONDS, 4);
        }
        let p = h.points();
        assert_eq!(p.len(), BUCKETS);
        assert_eq!(p[0].start, 28 * BUCKET_SECONDS);
        assert_eq!(p.last().unwrap().p50_ms, 109.0);
        assert_eq!(p.last().unwrap().mean_batch, 4.0);
        for _ in 0..5000 {
            h.answered(99 * BUCKET_SECONDS, 1.0);
        }
        assert_eq!(h.points().last().unwrap().answered, 5001);
    }

    #[test]
    fn answers_fall_into_ten_bins() {
        let mut h = History::default();
        for p in [0.0, 0.05, 0.1, 0.5, 0.99, 1.0, f32::NAN] {
            h.answer(p);
        }
        assert_eq!(h.answers(), [2, 1, 0, 0, 0, 1, 0, 0, 0, 2]);
    }
}
