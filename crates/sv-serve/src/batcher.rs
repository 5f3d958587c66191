//! Micro-batching: concurrent requests wait at most `max_wait` to share a batch of at most
//! `max_batch` images on one inference worker (the model's own thread pool does the
//! parallel work). Waiting requests are taken in stake order (the SDK's priority), and a
//! request that cannot be answered before its deadline is told so instead of answered late.

use std::collections::BinaryHeap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use image::DynamicImage;

use crate::metrics::Metrics;
use crate::slot::ModelSlot;

/// Batching limits.
#[derive(Debug, Clone, Copy)]
pub struct BatchSettings {
    /// Most images in one forward pass.
    pub max_batch: usize,
    /// Longest a request waits for others to join its batch.
    pub max_wait: Duration,
}

/// The result of one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// P(roadwork), within [0, 1], from model `version` in a batch of `batch`.
    Answered {
        /// The probability.
        probability: f32,
        /// The model version that answered.
        version: Arc<str>,
        /// Size of the batch it ran in.
        batch: usize,
    },
    /// The deadline would pass before an answer.
    Late,
    /// The model failed (message).
    Failed(String),
}

struct Job {
    image: DynamicImage,
    deadline: Instant,
    stake: f64,
    seq: u64,
    reply: SyncSender<Outcome>,
}

impl PartialEq for Job {
    fn eq(&self, other: &Self) -> bool {
        self.seq == other.seq
    }
}
impl Eq for Job {}
impl PartialOrd for Job {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Job {
    /// Higher stake first, then earlier arrival.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.stake
            .total_cmp(&other.stake)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

#[derive(Default)]
struct Queue {
    heap: BinaryHeap<Job>,
    window_start: Option<Instant>,
    next_seq: u64,
    stop: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    /// Seconds per image of the last batches (f64 bits), for the deadline estimate.
    per_image: AtomicU64,
}

/// The batching queue and its inference worker.
pub struct Batcher {
    shared: Arc<Shared>,
    worker: Option<JoinHandle<()>>,
}

impl Batcher {
    /// Start the worker, running batches on the model in `slot`.
    pub fn start(slot: Arc<ModelSlot>, settings: BatchSettings, metrics: Arc<Metrics>) -> Self {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
            per_image: AtomicU64::new(0f64.to_bits()),
        });
        let worker = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("sv-inference".into())
                .spawn(move || run(&shared, &slot, settings, &metrics))
                .expect("spawn the inference worker")
        };
        Self {
            shared,
            worker: Some(worker),
        }
    }

    /// Queue `image` to be answered before `deadline`, ordered by `stake`; the receiver
    /// gets exactly one [`Outcome`].
    pub fn submit(&self, image: DynamicImage, deadline: Instant, stake: f64) -> Receiver<Outcome> {
        let (tx, rx) = sync_channel(1);
        let mut q = self.shared.queue.lock().unwrap_or_else(|p| p.into_inner());
        if q.stop {
            let _ = tx.send(Outcome::Failed("the miner is shutting down".into()));
            return rx;
        }
        let seq = q.next_seq;
        q.next_seq += 1;
        if q.heap.is_empty() {
            q.window_start = Some(Instant::now());
        }
        q.heap.push(Job {
            image,
            deadline,
            stake: if stake.is_finite() { stake } else { 0.0 },
            seq,
            reply: tx,
        });
        drop(q);
        self.shared.ready.notify_all();
        rx
    }

    /// Whether the inference worker still runs.
    pub fn is_alive(&self) -> bool {
        self.worker.as_ref().is_some_and(|w| !w.is_finished())
    }

    /// Requests waiting now.
    pub fn queued(&self) -> usize {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .heap
            .len()
    }
}

impl Drop for Batcher {
    /// Finish the queued requests, then stop the worker.
    fn drop(&mut self) {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stop = true;
        self.shared.ready.notify_all();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

fn run(shared: &Shared, slot: &ModelSlot, settings: BatchSettings, metrics: &Metrics) {
    let max_batch = settings.max_batch.max(1);
    loop {
        let jobs = {
            let mut q = shared.queue.lock().unwrap_or_else(|p| p.into_inner());
            while q.heap.is_empty() && !q.stop {
                q = shared.ready.wait(q).unwrap_or_else(|p| p.into_inner());
            }
            if q.heap.is_empty() {
                return;
            }
            // Wait for the batch to fill, at most max_wait from its first request.
            let start = q.window_start.unwrap_or_else(Instant::now);
            while q.heap.len() < max_batch && !q.stop {
                let left = (start + settings.max_wait).saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                q = shared
                    .ready
                    .wait_timeout(q, left)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            let n = q.heap.len().min(max_batch);
            let jobs: Vec<Job> = (0..n).filter_map(|_| q.heap.pop()).collect();
            q.window_start = (!q.heap.is_empty()).then(Instant::now);
            jobs
        };
        // Refuse what cannot finish in time (estimated from recent batches).
        let per_image = f64::from_bits(shared.per_image.load(Ordering::Relaxed));
        let expected = Duration::from_secs_f64(per_image * jobs.len() as f64);
        let now = Instant::now();
        let (jobs, late): (Vec<Job>, Vec<Job>) =
            jobs.into_iter().partition(|j| now + expected <= j.deadline);
        for j in late {
            let _ = j.reply.send(Outcome::Late);
        }
        if jobs.is_empty() {
            continue;
        }
        let model = slot.current();
        let version: Arc<str> = Arc::from(model.version.as_str());
        let started = Instant::now();
        let images: Vec<DynamicImage> = jobs.iter().map(|j| j.image.clone()).collect();
        let result =
            std::panic::catch_unwind(AssertUnwindSafe(|| model.predictor.probabilities(&images)));
        let took = started.elapsed();
        metrics.batch(jobs.len(), took);
        let per = took.as_secs_f64() / jobs.len() as f64;
        let smoothed = if per_image == 0.0 {
            per
        } else {
            0.8 * per_image + 0.2 * per
        };
        shared
            .per_image
            .store(smoothed.to_bits(), Ordering::Relaxed);
        match result {
            Ok(probs) if probs.len() == jobs.len() => {
                let n = jobs.len();
                for (j, p) in jobs.into_iter().zip(probs) {
                    let outcome = if p.is_finite() {
                        Outcome::Answered {
                            probability: p.clamp(0.0, 1.0),
                            version: version.clone(),
                            batch: n,
                        }
                    } else {
                        Outcome::Failed(format!("the model gave {p}"))
                    };
                    let _ = j.reply.send(outcome);
                }
            }
            Ok(probs) => {
                for j in jobs {
                    let _ = j.reply.send(Outcome::Failed(format!(
                        "the model gave {} answers for a batch of {}",
                        probs.len(),
                        images.len()
                    )));
                }
            }
            Err(_) => {
                for j in jobs {
                    let _ = j.reply.send(Outcome::Failed("the model panicked".into()));
                }
            }
        }
    }
}
