//! One file per index: a magic line, a JSON header (kind, its parameters, dimension,
//! count, the ids in position order), the normalised vectors as little-endian f32, and
//! for a faiss index faiss's own serialisation of its structure; the header holds a
//! CRC-32 of everything after it. Written to a temporary
//! file, synced and renamed over the old one, so a crash leaves either the old index or
//! the new one.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::EmbeddingIndex;
use crate::error::IndexError;
use crate::exact::ExactIndex;
use crate::rows::Rows;

const MAGIC: &[u8; 8] = b"SVINDEX1";

/// The kind of the exact index.
pub(crate) const EXACT: &str = "exact-ip";

#[derive(Serialize, Deserialize)]
pub(crate) struct Header {
    pub(crate) kind: String,
    /// Parameters of the kind (faiss: cells, probes, links, search breadth).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub(crate) params: serde_json::Value,
    dim: usize,
    count: usize,
    ids: Vec<String>,
    /// Bytes after the vectors (faiss's serialisation).
    #[serde(default, skip_serializing_if = "is_zero")]
    extra_bytes: usize,
    /// CRC-32 (IEEE) of everything after the header; files written before it was kept
    /// have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    crc32: Option<u32>,
}

/// CRC-32 with the IEEE polynomial (as zlib computes it).
fn crc32(bytes: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, entry) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *entry = c;
        }
        t
    });
    !bytes.iter().fold(!0u32, |c, &b| {
        table[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8)
    })
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Write `rows` under `kind` with `params`, then `extra`, to `path` atomically.
pub(crate) fn write(
    path: &Path,
    kind: &str,
    params: serde_json::Value,
    rows: &Rows,
    extra: &[u8],
) -> Result<(), IndexError> {
    let mut body = Vec::with_capacity(rows.data().len() * 4 + extra.len());
    for v in rows.data() {
        body.extend_from_slice(&v.to_le_bytes());
    }
    body.extend_from_slice(extra);
    let header = serde_json::to_vec(&Header {
        kind: kind.into(),
        params,
        dim: rows.dim(),
        count: rows.len(),
        ids: rows.ids().to_vec(),
        extra_bytes: extra.len(),
        crc32: Some(crc32(&body)),
    })
    .map_err(|e| IndexError::io(path, e))?;
    let mut bytes = Vec::with_capacity(12 + header.len() + body.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&header);
    bytes.extend_from_slice(&body);
    atomic_write(path, &bytes)
}

/// Write `bytes` to `path` atomically ([`sv_fs::atomic_write`]).
pub(crate) fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), IndexError> {
    sv_fs::atomic_write(path, bytes).map_err(|e| IndexError::io(path, e))
}

/// Read a file [`write`] wrote: its header, rows and extra bytes. A short file, another
/// format or a header that does not match the data is an error naming the file.
pub(crate) fn read(path: &Path) -> Result<(Header, Rows, Vec<u8>), IndexError> {
    let bytes = std::fs::read(path).map_err(|e| IndexError::io(path, e))?;
    if bytes.len() < 12 || &bytes[..8] != MAGIC {
        return Err(IndexError::corrupt(path, "not an sv-index file"));
    }
    let hlen = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize;
    let body = bytes
        .get(12..12 + hlen)
        .ok_or_else(|| IndexError::corrupt(path, "the header is cut off"))?;
    let mut header: Header = serde_json::from_slice(body)
        .map_err(|e| IndexError::corrupt(path, format!("header: {e}")))?;
    if header.ids.len() != header.count {
        return Err(IndexError::corrupt(
            path,
            "the header's ids do not match its count",
        ));
    }
    let data = &bytes[12 + hlen..];
    let vector_bytes = header.count * header.dim * 4;
    if data.len() != vector_bytes + header.extra_bytes {
        return Err(IndexError::corrupt(
            path,
            format!(
                "{} bytes after the header where {} × {} f32 and {} bytes of {} need {}",
                data.len(),
                header.count,
                header.dim,
                header.extra_bytes,
                header.kind,
                vector_bytes + header.extra_bytes
            ),
        ));
    }
    if let Some(expected) = header.crc32
        && crc32(data) != expected
    {
        return Err(IndexError::corrupt(
            path,
            "the vectors or the index structure are damaged (checksum mismatch)",
        ));
    }
    let values = data[..vector_bytes]
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
    let extra = data[vector_bytes..].to_vec();
    // The ids move to the rows; the caller needs only the header's kind and parameters.
    let rows = Rows::from_parts(header.dim, std::mem::take(&mut header.ids), values);
    Ok((header, rows, extra))
}

/// Save `index` to `path` atomically.
pub fn save(index: &ExactIndex, path: &Path) -> Result<(), IndexError> {
    write(path, EXACT, serde_json::Value::Null, index.rows(), &[])
}

/// Load any index file as an exact index over its vectors (a faiss file's structure is
/// not used: its ids and vectors are all there).
pub fn load(path: &Path) -> Result<ExactIndex, IndexError> {
    let (_, rows, _) = read(path)?;
    Ok(ExactIndex::from_rows(rows))
}

/// The kind an index file holds (`exact-ip`, `faiss-flat`, `faiss-ivf-flat`,
/// `faiss-hnsw`).
pub fn kind_of(path: &Path) -> Result<String, IndexError> {
    Ok(read(path)?.0.kind)
}

/// Load an index file as the index it was saved from: a faiss index with the `faiss`
/// feature (without it, a faiss file is an error that says so), else the exact index.
pub fn load_any(path: &Path) -> Result<Box<dyn EmbeddingIndex + Send + Sync>, IndexError> {
    let (header, rows, extra) = read(path)?;
    if header.kind == EXACT {
        return Ok(Box::new(ExactIndex::from_rows(rows)));
    }
    #[cfg(feature = "faiss")]
    {
        Ok(Box::new(crate::faiss_index::FaissIndex::from_stored(
            path, &header, rows, &extra,
        )?))
    }
    #[cfg(not(feature = "faiss"))]
    {
        let _ = extra;
        Err(IndexError::corrupt(
            path,
            format!(
                "a {} index: this build has no faiss backend (build with the `faiss` \
                 feature), or read its vectors exactly with `store::load`",
                header.kind
            ),
        ))
    }
}

/// Build an index of `kind` over `values` (rows of `dim`) under `ids` and save it to
/// `out`: `exact` (always available), or a faiss kind (`flat`, `ivf:…`, `hnsw:…`) when
/// built with the `faiss` feature. Returns the number of rows.
pub fn build_and_save(
    kind: &str,
    dim: usize,
    ids: &[String],
    values: &[f32],
    out: &Path,
) -> Result<usize, IndexError> {
    if kind == "exact" {
        let mut index = crate::ExactIndex::new(dim);
        index.add(ids, values)?;
        save(&index, out)?;
        return Ok(index.len());
    }
    build_faiss(kind, dim, ids, values, out)
}

#[cfg(feature = "faiss")]
fn build_faiss(
    kind: &str,
    dim: usize,
    ids: &[String],
    values: &[f32],
    out: &Path,
) -> Result<usize, IndexError> {
    let parsed: crate::FaissKind = kind.parse()?;
    let mut index = crate::FaissIndex::new(parsed, dim)?;
    index.add(ids, values)?;
    index.save(out)?;
    Ok(index.len())
}

#[cfg(not(feature = "faiss"))]
fn build_faiss(
    kind: &str,
    _: usize,
    _: &[String],
    _: &[f32],
    _: &Path,
) -> Result<usize, IndexError> {
    Err(IndexError::Invalid(format!(
        "index kind {kind}: built without faiss; build with `--features faiss` (needs cmake \
         and libopenblas-dev), or use the exact index"
    )))
}

#[cfg(test)]
mod tests {
    #[test]
    fn crc32_is_zlibs() {
        // zlib.crc32(b"123456789") and zlib.crc32(b"")
        assert_eq!(super::crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(super::crc32(b""), 0);
    }
}
