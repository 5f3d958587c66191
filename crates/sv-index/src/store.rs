//! One file per index: a magic line, a JSON header (kind, dimension, count, the ids in
//! position order) and the normalised vectors as little-endian f32. Written to a
//! temporary file, synced and renamed over the old one, so a crash leaves either the old
//! index or the new one.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::EmbeddingIndex;
use crate::error::IndexError;
use crate::exact::ExactIndex;

const MAGIC: &[u8; 8] = b"SVINDEX1";

#[derive(Serialize, Deserialize)]
struct Header {
    kind: String,
    dim: usize,
    count: usize,
    ids: Vec<String>,
}

/// Save `index` to `path` atomically.
pub fn save(index: &ExactIndex, path: &Path) -> Result<(), IndexError> {
    let ids: Vec<String> = (0..index.len()).map(|i| index.id(i).to_string()).collect();
    let header = serde_json::to_vec(&Header {
        kind: "exact-ip".into(),
        dim: index.dim(),
        count: index.len(),
        ids,
    })
    .map_err(|e| IndexError::io(path, e))?;
    let mut bytes = Vec::with_capacity(12 + header.len() + index.data().len() * 4);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&header);
    for v in index.data() {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| IndexError::io(path, "not a file path"))?
        .to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(IndexError::io(path, e));
    }
    Ok(())
}

/// Load an index saved by [`save`]; a file of another kind, a short file or a header
/// that does not match the data is an error naming the file.
pub fn load(path: &Path) -> Result<ExactIndex, IndexError> {
    let bytes = std::fs::read(path).map_err(|e| IndexError::io(path, e))?;
    if bytes.len() < 12 || &bytes[..8] != MAGIC {
        return Err(IndexError::corrupt(path, "not an sv-index file"));
    }
    let hlen = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize;
    let body = bytes
        .get(12..12 + hlen)
        .ok_or_else(|| IndexError::corrupt(path, "the header is cut off"))?;
    let header: Header = serde_json::from_slice(body)
        .map_err(|e| IndexError::corrupt(path, format!("header: {e}")))?;
    if header.kind != "exact-ip" {
        return Err(IndexError::corrupt(
            path,
            format!("index kind {:?} is not one this build reads", header.kind),
        ));
    }
    if header.ids.len() != header.count {
        return Err(IndexError::corrupt(
            path,
            "the header's ids do not match its count",
        ));
    }
    let data = &bytes[12 + hlen..];
    if data.len() != header.count * header.dim * 4 {
        return Err(IndexError::corrupt(
            path,
            format!(
                "{} bytes of vectors where {} × {} f32 need {}",
                data.len(),
                header.count,
                header.dim,
                header.count * header.dim * 4
            ),
        ));
    }
    let values = data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect();
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = header.ids.iter().find(|id| !seen.insert(*id)) {
        return Err(IndexError::corrupt(
            path,
            format!("id {dup:?} appears twice"),
        ));
    }
    Ok(ExactIndex::from_parts(header.dim, header.ids, values))
}
