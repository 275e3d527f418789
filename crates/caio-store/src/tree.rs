//! The Merkle tree over the log (the calculus's `merkle`), as a store keeps
//! it: the root of every perfect subtree of 256 entries or more is saved as
//! appends complete it (one row per 256 entries at the bottom, so appends
//! barely pay for it); anything smaller is recomputed from the entries'
//! link hashes. A root, an inclusion proof or a consistency proof at any
//! size then reads O(log n) saved nodes and at most a few hundred hashes.
//!
//! Backends supply the reads ([`Source`]); this module never writes and
//! never decides what a proof is (the calculus does).

use caio_calculus::merkle::{self, Frontier, Hash, consistency_path, inclusion_path, leaf_hash, link_bytes, node_hash};
use caio_calculus::trace::hex;
use serde::Serialize;

use crate::StoreError;

/// Subtrees of at least 2^SAVED_HEIGHT entries are saved.
pub(crate) const SAVED_HEIGHT: u32 = 8;

/// What a backend reads for the tree.
pub(crate) trait Source {
    /// The sequence numbers and link hashes of the entries in `lo..hi`, in
    /// order.
    fn link_hashes(&mut self, lo: u64, hi: u64) -> Result<Vec<(u64, String)>, StoreError>;
    /// A saved node: the root of the perfect subtree `index` of `height`.
    fn node(&mut self, height: u32, index: u64) -> Result<Option<Hash>, StoreError>;
}

/// The size and root of the log's tree at some moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeHead {
    /// Entries in the tree.
    pub size: u64,
    /// Its root (RFC 9162's tree hash).
    pub root: Hash,
}

/// An inclusion proof of one entry in the tree of some size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InclusionProof {
    /// The entry's sequence number (its index in the tree).
    pub seq: u64,
    /// The tree's size.
    pub size: u64,
    /// The entry's leaf hash, hex.
    pub leaf: String,
    /// The tree's root at that size, hex.
    pub root: String,
    /// The sibling subtrees' roots from the leaf up, hex.
    pub proof: Vec<String>,
}

/// A consistency proof between two sizes of the tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsistencyProof {
    /// The earlier size.
    pub from: u64,
    /// The later size.
    pub to: u64,
    /// The root at `from`, hex.
    pub from_root: String,
    /// The root at `to`, hex.
    pub to_root: String,
    /// The proof's hashes, hex.
    pub proof: Vec<String>,
}

/// The leaf data of the entry `seq` with this link hash: its 32 bytes.
pub(crate) fn link_data(seq: u64, link_hash: &str) -> Result<[u8; 32], StoreError> {
    link_bytes(link_hash)
        .ok_or_else(|| StoreError::Corrupt(format!("entry {seq} has a hash that is not 64 lowercase hex digits")))
}

/// The leaf of the entry `seq` with this link hash.
pub(crate) fn leaf(seq: u64, link_hash: &str) -> Result<Hash, StoreError> {
    link_data(seq, link_hash).map(|bytes| leaf_hash(&bytes))
}

/// The roots of the perfect subtrees `lo..hi` of `height` (of 2^height
/// entries each): leaves at height 0, saved nodes from 8 on.
pub(crate) fn nodes(source: &mut impl Source, height: u32, lo: u64, hi: u64) -> Result<Vec<Hash>, StoreError> {
    if height == 0 {
        return leaves(source, lo, hi);
    }
    (lo..hi).map(|index| subtree_root(source, index << height, (index + 1) << height)).collect()
}

fn leaves(source: &mut impl Source, lo: u64, hi: u64) -> Result<Vec<Hash>, StoreError> {
    let hashes = source.link_hashes(lo, hi)?;
    hashes
        .iter()
        .zip(lo..hi)
        .map(|((seq, hash), expected)| if *seq == expected { leaf(*seq, hash) } else { Err(missing(expected)) })
        .chain((lo + hashes.len() as u64..hi).take(1).map(|seq| Err(missing(seq))))
        .collect()
}

fn missing(seq: u64) -> StoreError {
    StoreError::Broken(caio_calculus::trace::BrokenLink {
        index: 0,
        seq,
        reason: "the entry is missing (entries were removed)".into(),
    })
}

/// The root of entries `lo..hi`: a saved node when the range is one,
/// recomputed from the entries when it is small, joined at the split
/// otherwise.
pub(crate) fn subtree_root(source: &mut impl Source, lo: u64, hi: u64) -> Result<Hash, StoreError> {
    let n = hi - lo;
    if n.is_power_of_two() && n.trailing_zeros() >= SAVED_HEIGHT && lo % n == 0 {
        let height = n.trailing_zeros();
        return source
            .node(height, lo >> height)?
            .ok_or_else(|| StoreError::Corrupt(format!("the saved root of entries {lo} to {} is missing", hi - 1)));
    }
    if n <= 1 << SAVED_HEIGHT {
        return Ok(merkle::root(&leaves(source, lo, hi)?));
    }
    let k = 1u64 << (u64::BITS - 1 - (n - 1).leading_zeros());
    Ok(node_hash(&subtree_root(source, lo, lo + k)?, &subtree_root(source, lo + k, hi)?))
}

/// The tree of the first `size` entries, ready to grow.
pub(crate) fn frontier(source: &mut impl Source, size: u64) -> Result<Frontier, StoreError> {
    let peaks = Frontier::peak_ranges(size)
        .into_iter()
        .map(|(lo, hi)| subtree_root(source, lo, hi))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Frontier::from_peaks(size, peaks).expect("one root per perfect subtree"))
}

/// The tree of the first `size` entries, recomputed from every entry (for
/// a store whose nodes were never saved: one written by an older caio),
/// and the nodes to save.
pub(crate) fn rebuild(source: &mut impl Source, size: u64) -> Result<(Frontier, Vec<SavedNode>), StoreError> {
    let mut frontier = Frontier::new();
    let mut saved = Vec::new();
    let mut lo = 0;
    while lo < size {
        let hi = size.min(lo + 4096);
        for (seq, hash) in source.link_hashes(lo, hi)? {
            grow(&mut frontier, seq, &hash, &mut saved)?;
        }
        lo = hi;
    }
    if frontier.size() != size {
        return Err(StoreError::Corrupt(format!("the log should hold {size} entries and holds {}", frontier.size())));
    }
    Ok((frontier, saved))
}

/// A node to save: height, index, root.
pub(crate) type SavedNode = (u32, u64, Hash);

/// Appends the entry `seq` to the tree, collecting the nodes to save.
pub(crate) fn grow(
    frontier: &mut Frontier,
    seq: u64,
    link_hash: &str,
    saved: &mut Vec<SavedNode>,
) -> Result<(), StoreError> {
    if frontier.size() != seq {
        return Err(StoreError::Corrupt(format!("entry {seq} follows a tree of {} entries", frontier.size())));
    }
    frontier.push_with(leaf(seq, link_hash)?, |height, index, hash| {
        if height >= SAVED_HEIGHT {
            saved.push((height, index, *hash));
        }
    });
    Ok(())
}

/// Whether the saved nodes of a tree of `size` entries are all there: the
/// largest saved subtree is the sign of the rest.
pub(crate) fn saved_nodes_present(source: &mut impl Source, size: u64) -> Result<bool, StoreError> {
    let chunks = size >> SAVED_HEIGHT;
    if chunks == 0 {
        return Ok(true);
    }
    Ok(source.node(SAVED_HEIGHT, chunks - 1)?.is_some())
}

/// The tree head at `size`.
pub(crate) fn head(source: &mut impl Source, size: u64) -> Result<TreeHead, StoreError> {
    Ok(TreeHead { size, root: frontier(source, size)?.root() })
}

/// The inclusion proof of entry `seq` in the tree of `size` entries.
pub(crate) fn inclusion(source: &mut impl Source, seq: u64, size: u64) -> Result<InclusionProof, StoreError> {
    let proof = inclusion_path(size, seq, &mut |lo, hi| subtree_root(source, lo, hi))?;
    let leaf = leaves(source, seq, seq + 1)?[0];
    let root = head(source, size)?.root;
    Ok(InclusionProof { seq, size, leaf: hex(&leaf), root: hex(&root), proof: proof.iter().map(|h| hex(h)).collect() })
}

/// The consistency proof from the tree of `from` entries to that of `to`.
pub(crate) fn consistency(source: &mut impl Source, from: u64, to: u64) -> Result<ConsistencyProof, StoreError> {
    let proof = consistency_path(to, from, &mut |lo, hi| subtree_root(source, lo, hi))?;
    Ok(ConsistencyProof {
        from,
        to,
        from_root: hex(&head(source, from)?.root),
        to_root: hex(&head(source, to)?.root),
        proof: proof.iter().map(|h| hex(h)).collect(),
    })
}

/// Refuses a tree of `size` entries when the log has only `log`.
pub(crate) fn within(size: u64, log: u64) -> Result<(), StoreError> {
    if size > log {
        return Err(StoreError::NoProof(merkle::ProofError::Shrunk { old: size, new: log }));
    }
    Ok(())
}
