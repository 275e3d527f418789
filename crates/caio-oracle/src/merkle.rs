//! The Merkle tree of RFC 6962 built the naive way, level by level: leaves
//! hashed with the prefix 0x00, each level's pairs joined with 0x01, an odd
//! last node carried up unchanged. Roots, audit paths (the siblings met on
//! the way up) and consistency proofs are read off the levels; nothing is
//! shared with `caio_calculus::merkle`.

use sha2::{Digest, Sha256};

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// The hash of an entry as a leaf.
pub fn leaf(entry: &[u8]) -> Hash {
    let mut bytes = vec![0u8];
    bytes.extend_from_slice(entry);
    Sha256::digest(&bytes).into()
}

fn join(left: &Hash, right: &Hash) -> Hash {
    let mut bytes = vec![1u8];
    bytes.extend_from_slice(left);
    bytes.extend_from_slice(right);
    Sha256::digest(&bytes).into()
}

/// Every level of the tree, the leaves first, the root last.
pub fn levels(leaves: &[Hash]) -> Vec<Vec<Hash>> {
    let mut levels = vec![leaves.to_vec()];
    while levels.last().is_some_and(|l| l.len() > 1) {
        let below = levels.last().unwrap();
        let above: Vec<Hash> = below.chunks(2).map(|pair| if pair.len() == 2 { join(&pair[0], &pair[1]) } else { pair[0] }).collect();
        levels.push(above);
    }
    levels
}

/// The root; the hash of no bytes for no leaves.
pub fn root(leaves: &[Hash]) -> Hash {
    if leaves.is_empty() {
        return Sha256::digest([]).into();
    }
    levels(leaves).last().unwrap()[0]
}

/// The audit path of leaf `index`: the sibling met at each level, when
/// there is one.
pub fn path(leaves: &[Hash], index: usize) -> Vec<Hash> {
    let mut out = Vec::new();
    let mut i = index;
    for level in levels(leaves).iter().take_while(|l| l.len() > 1) {
        let sibling = i ^ 1;
        if sibling < level.len() {
            out.push(level[sibling]);
        }
        i /= 2;
    }
    out
}

/// The consistency proof from the first `m` leaves to all of them, by the
/// specification's recursion, each subtree's root taken from its own
/// levels.
pub fn consistency(leaves: &[Hash], m: usize) -> Vec<Hash> {
    fn sub(m: usize, leaves: &[Hash], whole: bool, out: &mut Vec<Hash>) {
        let n = leaves.len();
        if m == n {
            if !whole {
                out.push(root(leaves));
            }
            return;
        }
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        if m <= k {
            sub(m, &leaves[..k], whole, out);
            out.push(root(&leaves[k..]));
        } else {
            sub(m - k, &leaves[k..], false, out);
            out.push(root(&leaves[..k]));
        }
    }
    let mut out = Vec::new();
    if m > 0 && m < leaves.len() {
        sub(m, leaves, true, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_of_three_carries_its_odd_leaf_up() {
        let leaves: Vec<Hash> = [b"a", b"b", b"c"].iter().map(|e| leaf(*e)).collect();
        assert_eq!(root(&leaves), join(&join(&leaves[0], &leaves[1]), &leaves[2]));
        assert_eq!(path(&leaves, 2), vec![join(&leaves[0], &leaves[1])]);
        assert_eq!(path(&leaves, 0), vec![leaves[1], leaves[2]]);
        assert_eq!(consistency(&leaves, 2), vec![leaves[2]]);
    }
}
