//! The log as static files, in C2SP's tlog-tiles layout, so that any static
//! file server (or a bucket) can serve it to auditors: `checkpoint` (the
//! signed note), hash tiles `tile/<L>/<N>[.p/<W>]` (256 hashes of the tree's
//! nodes at height 8·L each; the rightmost one partial, `W` wide), entry
//! bundles `tile/entries/<N>[.p/<W>]` (each entry its leaf's data: the
//! 32 bytes of the entry's link hash, after a two-byte big-endian length),
//! and `traces.jsonl`, every trace whole, one per line, from which the link
//! hashes recompute (`caio trace verify` reads it).
//!
//! Every file is written to a temporary name and renamed. This module only
//! lays out what the store holds at a signed checkpoint; it never signs.

use std::io::Write;
use std::path::{Path, PathBuf};

use caio_calculus::merkle::Hash;

use crate::{Store, StoreError, StoredCheckpoint};

/// Hashes per tile: tiles are 8 levels of the tree high.
const WIDTH: u64 = 256;

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    /// The tree size of the checkpoint the tiles are for.
    pub size: u64,
    /// Hash tiles written.
    pub hash_tiles: u64,
    /// Entry bundles written.
    pub entry_bundles: u64,
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file could not be written.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
}

/// The path of tile `index`: three-digit groups, all but the last after an
/// `x` (`1234067` is `x001/x234/067`), and `.p/<width>` for a partial tile.
pub fn tile_path(index: u64, width: u64) -> String {
    let digits = index.to_string();
    let padded = format!("{}{digits}", "0".repeat((3 - digits.len() % 3) % 3));
    let groups: Vec<&str> = padded.as_bytes().chunks(3).map(|g| std::str::from_utf8(g).expect("digits")).collect();
    let mut path = String::new();
    for group in &groups[..groups.len() - 1] {
        path.push('x');
        path.push_str(group);
        path.push('/');
    }
    path.push_str(groups[groups.len() - 1]);
    if width < WIDTH {
        path.push_str(&format!(".p/{width}"));
    }
    path
}

fn write_file(dir: &Path, relative: &str, bytes: &[u8]) -> Result<(), ExportError> {
    let path: PathBuf = dir.join(relative);
    let failed = |e: std::io::Error| ExportError::File { path: path.display().to_string(), message: e.to_string() };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(failed)?;
    }
    let temporary = path.with_extension("tmp-export");
    std::fs::write(&temporary, bytes).map_err(failed)?;
    std::fs::rename(&temporary, &path).map_err(failed)
}

/// Writes the log up to `checkpoint` into `dir`; `progress` hears how many
/// entries are done.
pub fn export(
    store: &dyn Store,
    checkpoint: &StoredCheckpoint,
    dir: &Path,
    mut progress: impl FnMut(u64),
) -> Result<Exported, ExportError> {
    let size = checkpoint.size;
    let mut exported = Exported { size, hash_tiles: 0, entry_bundles: 0 };
    let mut traces = Vec::new();
    // Level 0 and the entries, a tile at a time.
    for tile in 0..size.div_ceil(WIDTH) {
        let (lo, hi) = (tile * WIDTH, (tile * WIDTH + WIDTH).min(size));
        let mut hashes = Vec::with_capacity(32 * (hi - lo) as usize);
        let mut bundle = Vec::with_capacity(34 * (hi - lo) as usize);
        for seq in lo..hi {
            let trace = store
                .trace(seq)?
                .ok_or_else(|| StoreError::Corrupt(format!("entry {seq} is missing from a log of {size} entries")))?;
            let link = crate::tree::link_data(seq, &trace.hash)?;
            hashes.extend_from_slice(&caio_calculus::merkle::leaf_hash(&link));
            bundle.extend_from_slice(&32u16.to_be_bytes());
            bundle.extend_from_slice(&link);
            serde_json::to_writer(&mut traces, &trace).expect("a trace serializes");
            traces.push(b'\n');
        }
        write_file(dir, &format!("tile/0/{}", tile_path(tile, hi - lo)), &hashes)?;
        write_file(dir, &format!("tile/entries/{}", tile_path(tile, hi - lo)), &bundle)?;
        exported.hash_tiles += 1;
        exported.entry_bundles += 1;
        progress(hi);
    }
    // Higher levels: the saved roots of subtrees of 256^L entries.
    let mut level = 1u32;
    while 8 * level < u64::BITS && size >> (8 * level) > 0 {
        let nodes = size >> (8 * level);
        for tile in 0..nodes.div_ceil(WIDTH) {
            let (lo, hi) = (tile * WIDTH, (tile * WIDTH + WIDTH).min(nodes));
            let hashes: Vec<Hash> = store.tree_nodes(8 * level, lo, hi)?;
            write_file(dir, &format!("tile/{level}/{}", tile_path(tile, hi - lo)), &hashes.concat())?;
            exported.hash_tiles += 1;
        }
        level += 1;
    }
    let mut file = Vec::new();
    file.write_all(&traces).expect("writing to memory");
    write_file(dir, "traces.jsonl", &file)?;
    // Last, so that a reader who sees the checkpoint finds every tile.
    write_file(dir, "checkpoint", checkpoint.note.as_bytes())?;
    Ok(exported)
}

#[cfg(test)]
mod tests {
    use super::tile_path;

    #[test]
    fn tile_paths_follow_the_layout() {
        assert_eq!(tile_path(0, 256), "000");
        assert_eq!(tile_path(7, 256), "007");
        assert_eq!(tile_path(1000, 256), "x001/000");
        assert_eq!(tile_path(1234067, 256), "x001/x234/067");
        assert_eq!(tile_path(3, 17), "003.p/17");
    }
}
