//! Writing the prediction log ([`sv_records::predlog`] holds its schema and layout): one
//! JSON line per answer ([`Entry`]) in `predictions.jsonl`, rotated by size into
//! `predictions-<unix ms>.jsonl` (the newest `keep` kept), and optionally each challenge
//! image stored once under `images/<aa>/<sha256>.<ext>` for the curator. A writer thread
//! does the I/O: recording never blocks an answer (lines are dropped and counted when the
//! writer falls behind). Each line goes out in one `write`; one that fails or is cut short
//! (a full disk) is cut off again and counted, so the file only ever holds whole lines.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::ServeError;
use crate::metrics::Metrics;

pub use sv_records::predlog::{CURRENT, Entry, image_path, rotated_files};

/// Where and how much to log.
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// Directory of the log (and of `images/`).
    pub dir: PathBuf,
    /// Rotate when the current file would pass this size.
    pub max_bytes: u64,
    /// Rotated files kept.
    pub keep: usize,
    /// Store each challenge image by its hash.
    pub store_images: bool,
}

struct Record {
    entry: Entry,
    image: Option<Vec<u8>>,
}

/// The logging handle; dropping it writes out what is queued.
pub struct PredictionLog {
    tx: Option<SyncSender<Record>>,
    worker: Option<JoinHandle<()>>,
    metrics: Arc<Metrics>,
    store_images: bool,
}

impl PredictionLog {
    /// Open (or continue) the log in `settings.dir`. A line left half written by a killed
    /// process is cut off first.
    pub fn open(settings: LogSettings, metrics: Arc<Metrics>) -> Result<Self, ServeError> {
        std::fs::create_dir_all(&settings.dir).map_err(|e| ServeError::io(&settings.dir, e))?;
        let path = settings.dir.join(CURRENT);
        let file = open_current(&path)?;
        let (tx, rx) = sync_channel(8192);
        let store_images = settings.store_images;
        let dropped = metrics.clone();
        let worker = std::thread::Builder::new()
            .name("sv-predlog".into())
            .spawn(move || write_loop(settings, file, rx, &dropped))
            .map_err(|e| ServeError::io(&path, e))?;
        Ok(Self {
            tx: Some(tx),
            worker: Some(worker),
            metrics,
            store_images,
        })
    }

    /// Queue an answer (and the image bytes, stored when the log stores images).
    pub fn record(&self, entry: Entry, image: Option<Vec<u8>>) {
        let record = Record {
            entry,
            image: image.filter(|_| self.store_images),
        };
        if let Some(tx) = &self.tx
            && let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = tx.try_send(record)
        {
            self.metrics.log_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for PredictionLog {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

/// Open the current file for appending, cutting a torn last line.
fn open_current(path: &Path) -> Result<File, ServeError> {
    let mut file = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
        .map_err(|e| ServeError::io(path, e))?;
    let text = std::fs::read(path).map_err(|e| ServeError::io(path, e))?;
    if !text.is_empty() && !text.ends_with(b"\n") {
        let keep = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        file.set_len(keep as u64)
            .map_err(|e| ServeError::io(path, e))?;
        file.seek(SeekFrom::End(0))
            .map_err(|e| ServeError::io(path, e))?;
    }
    Ok(file)
}

/// Append `line` to `file`, whose complete lines end at `size`: in one `write`, and on
/// a failed or short write the file is cut back to `size`.
fn append_line(file: &mut File, size: u64, line: &[u8]) -> std::io::Result<()> {
    let outcome = loop {
        match file.write(line) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Ok(n) if n == line.len() => return Ok(()),
            Ok(n) => {
                break std::io::Error::new(
                    std::io::ErrorKind::WriteZero,
                    format!("{n} of {} bytes written", line.len()),
                );
            }
            Err(e) => break e,
        }
    };
    let _ = file.set_len(size);
    Err(outcome)
}

fn write_loop(settings: LogSettings, mut file: File, rx: Receiver<Record>, metrics: &Metrics) {
    let path = settings.dir.join(CURRENT);
    let mut size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut last_sync = Instant::now();
    let mut dirty = false;
    loop {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(record) => {
                let mut line = serde_json::to_vec(&record.entry).expect("json");
                line.push(b'\n');
                if size > 0 && size + line.len() as u64 > settings.max_bytes {
                    let _ = file.sync_all();
                    if let Ok(f) = rotate(&settings, &path) {
                        file = f;
                        size = 0;
                    }
                }
                match append_line(&mut file, size, &line) {
                    Ok(()) => {
                        size += line.len() as u64;
                        dirty = true;
                    }
                    Err(e) => {
                        let before = metrics.log_dropped.fetch_add(1, Ordering::Relaxed);
                        if before == 0 {
                            eprintln!(
                                "sv-miner: prediction log {}: {e}; lines are being dropped (see sv_miner_log_dropped_total)",
                                path.display()
                            );
                        }
                    }
                }
                if let Some(bytes) = record.image {
                    let _ = store_image(&settings.dir, &record.entry.image_sha256, &bytes);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                let _ = file.sync_all();
                return;
            }
        }
        if dirty && last_sync.elapsed() >= Duration::from_secs(1) {
            let _ = file.sync_data();
            last_sync = Instant::now();
            dirty = false;
        }
    }
}

/// Rename the current file aside and start a new one; prune to `keep` rotated files.
fn rotate(settings: &LogSettings, path: &Path) -> std::io::Result<File> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let mut target = settings.dir.join(format!("predictions-{stamp}.jsonl"));
    let mut n = 1;
    while target.exists() {
        target = settings.dir.join(format!("predictions-{stamp}-{n}.jsonl"));
        n += 1;
    }
    std::fs::rename(path, &target)?;
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    if let Ok(dir) = File::open(&settings.dir) {
        let _ = dir.sync_all();
    }
    let mut rotated = rotated_files(&settings.dir);
    while rotated.len() > settings.keep {
        let _ = std::fs::remove_file(rotated.remove(0));
    }
    Ok(file)
}

fn store_image(dir: &Path, sha256: &str, bytes: &[u8]) -> std::io::Result<()> {
    let path = image_path(dir, sha256, bytes);
    if path.exists() {
        return Ok(());
    }
    sv_fs::atomic_write(&path, bytes)
}
