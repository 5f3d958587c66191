//! The one way streetvision-rs writes a file that must not be torn (checkpoints,
//! indexes, manifests, models, key files): [`atomic_write`] writes a temporary file
//! beside the target, syncs it, renames it over the target and syncs the folder, so a
//! crash or a full disk leaves the old file or the new one, never a mix.
//!
//! Temporary files are named `.{name}.tmp-{pid}-{n}`, created with `O_EXCL` and
//! `O_NOFOLLOW` (a planted file or link at that name is never written through) and, for
//! [`atomic_write_private`], mode 0600 from the first byte. A write first removes the
//! temporary files that processes no longer running left beside the same target.
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("manifest.jsonl");
//! sv_fs::atomic_write(&path, b"{}\n").unwrap();
//! assert_eq!(std::fs::read(&path).unwrap(), b"{}\n");
//! ```

#![warn(missing_docs)]

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Write `bytes` to `path` atomically (mode 0644 less the umask).
pub fn atomic_write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_with_mode(path, bytes, 0o644)
}

/// Write `bytes` to `path` atomically, readable by its owner alone (mode 0600) from the
/// moment the temporary file exists.
pub fn atomic_write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_with_mode(path, bytes, 0o600)
}

/// The folder `path` is in (`.` for a bare name).
fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn temp_prefix(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    format!(".{name}.tmp-")
}

fn write_with_mode(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let mut file = AtomicFile::create_with_mode(path, mode)?;
    file.write_all(bytes)?;
    file.commit()
}

/// A file written in pieces that replaces its target only when [`commit`](Self::commit)
/// succeeds; dropped uncommitted, it leaves the target as it was and removes its
/// temporary file.
#[derive(Debug)]
pub struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    file: Option<File>,
}

impl AtomicFile {
    /// Start a file that will replace `path` (mode 0644 less the umask).
    pub fn create(path: &Path) -> std::io::Result<Self> {
        Self::create_with_mode(path, 0o644)
    }

    /// Start a file that will replace `path`, with `mode` from the start.
    pub fn create_with_mode(path: &Path, mode: u32) -> std::io::Result<Self> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = folder_of(path);
        std::fs::create_dir_all(&dir)?;
        remove_stale_temps(path);
        let tmp = dir.join(format!(
            "{}{}-{}",
            temp_prefix(path),
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let file = match create_new(&tmp, mode) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // Left by an earlier process with our pid: remove it (a link is removed,
                // not followed) and create afresh.
                std::fs::remove_file(&tmp)?;
                create_new(&tmp, mode)?
            }
            Err(e) => return Err(e),
        };
        Ok(Self {
            path: path.to_path_buf(),
            tmp,
            file: Some(file),
        })
    }

    /// The temporary file being written.
    pub fn temp_path(&self) -> &Path {
        &self.tmp
    }

    /// Sync the data, rename it over the target and sync the folder.
    pub fn commit(mut self) -> std::io::Result<()> {
        let file = self.file.take().expect("open until committed");
        let result = (|| {
            file.sync_all()?;
            drop(file);
            std::fs::rename(&self.tmp, &self.path)?;
            if let Ok(d) = File::open(folder_of(&self.path)) {
                let _ = d.sync_all();
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&self.tmp);
        }
        // Renamed or removed: nothing left for Drop.
        self.tmp = PathBuf::new();
        result
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.as_mut().expect("open until committed").write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.as_mut().expect("open until committed").flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() && !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

fn create_new(path: &Path, mode: u32) -> std::io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode).custom_flags(libc::O_NOFOLLOW);
    }
    #[cfg(not(unix))]
    let _ = mode;
    opts.open(path)
}

/// `$XDG_CACHE_HOME/streetvision-rs/<what>`, else `~/.cache/streetvision-rs/<what>`
/// (`.cache/…` in the working directory when neither is set): where the programs keep
/// what they can compute again.
pub fn cache_dir(what: &str) -> std::path::PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| std::path::PathBuf::from(".cache"))
        .join("streetvision-rs")
        .join(what)
}

/// Remove the temporary files beside `path` that processes no longer running left (a
/// write killed half way); returns how many were removed. Files of live processes,
/// including this one, are kept.
pub fn remove_stale_temps(path: &Path) -> usize {
    let prefix = temp_prefix(path);
    let Ok(entries) = std::fs::read_dir(folder_of(path)) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        let stale = match pid {
            Some(pid) => pid != std::process::id() && !process_runs(pid),
            None => false,
        };
        if stale && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Whether a process with `pid` exists.
fn process_runs(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return false;
        };
        if pid <= 0 {
            return false;
        }
        // SAFETY: signal 0 only checks that the process exists; nothing is sent.
        let rc = unsafe { libc::kill(pid, 0) };
        rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_replaces_the_file_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.bin");
        atomic_write(&path, b"one").unwrap();
        atomic_write(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn an_uncommitted_file_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        atomic_write(&path, b"old").unwrap();
        let mut f = AtomicFile::create(&path).unwrap();
        f.write_all(b"new, half written").unwrap();
        drop(f);
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn temps_of_dead_processes_go_and_those_of_live_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ck.safetensors");
        // pid 0x7ffffff0 is beyond any pid_max; pid 1 always runs.
        let dead = dir.path().join(".ck.safetensors.tmp-2147483632");
        let live = dir.path().join(".ck.safetensors.tmp-1-0");
        let other = dir.path().join(".other.tmp-2147483632");
        for f in [&dead, &live, &other] {
            std::fs::write(f, vec![0u8; 4096]).unwrap();
        }
        atomic_write(&path, b"x").unwrap();
        assert!(!dead.exists());
        assert!(live.exists());
        assert!(other.exists(), "another target's temp is not ours to clean");
    }

    #[cfg(unix)]
    #[test]
    fn a_private_file_is_0600_and_a_planted_link_or_stale_temp_is_not_followed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hotkey");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep me").unwrap();
        // Plant links at every temp name this process could use next, and a stale
        // world-readable temp file of a dead process.
        for n in 0..64 {
            let name = format!(".hotkey.tmp-{}-{n}", std::process::id());
            std::os::unix::fs::symlink(&victim, dir.path().join(name)).unwrap();
        }
        let stale = dir.path().join(".hotkey.tmp-2147483632");
        std::fs::write(&stale, b"old").unwrap();
        std::fs::set_permissions(&stale, std::fs::Permissions::from_mode(0o644)).unwrap();
        atomic_write_private(&path, b"secret").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
        assert_eq!(std::fs::read(&path).unwrap(), b"secret");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(!stale.exists());
    }
}
