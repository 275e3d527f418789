//! The log's Merkle proofs against an independent implementation of RFC
//! 6962's tree: `ct-merkle`, whose trees are indexed arrays and whose
//! verifiers walk them by index. Roots must be the same bytes, and each
//! side's proofs must verify with the other side's verifier.

use caio_calculus::merkle::{
    Hash, consistency_proof, inclusion_proof, leaf_hash, root, verify_consistency, verify_inclusion,
};
use ct_merkle::mem_backed_tree::MemoryBackedTree;
use ct_merkle::{ConsistencyProof, InclusionProof, RootHash};
use sha2::Sha256;

fn entries(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("entry {i}").into_bytes()).collect()
}

#[test]
fn roots_and_proofs_agree_with_ct_merkle_both_ways() {
    for n in 1..=70usize {
        let entries = entries(n);
        let leaves: Vec<Hash> = entries.iter().map(|e| leaf_hash(e)).collect();
        let mut theirs = MemoryBackedTree::<Sha256, Vec<u8>>::new();
        for entry in &entries {
            theirs.push(entry.clone());
        }
        let their_root = theirs.root();
        let ours = root(&leaves);
        assert_eq!(their_root.as_bytes().as_slice(), &ours[..], "root of {n}");
        for i in 0..n {
            // Ours, verified by theirs.
            let proof = inclusion_proof(&leaves, i as u64).unwrap();
            let digests: Vec<sha2::digest::Output<Sha256>> = proof.iter().map(|h| (*h).into()).collect();
            their_root
                .verify_inclusion(&entries[i], i as u64, &InclusionProof::<Sha256>::from_digests(&digests))
                .unwrap_or_else(|e| panic!("ct-merkle refused caio's proof of {i} in {n}: {e:?}"));
            // Theirs, verified by ours.
            let their_proof = theirs.prove_inclusion(i);
            let hashes: Vec<Hash> = their_proof.as_bytes().chunks(32).map(|c| c.try_into().unwrap()).collect();
            assert!(
                verify_inclusion(&leaves[i], i as u64, n as u64, &hashes, &ours),
                "ct-merkle's proof of {i} in {n}"
            );
        }
        for m in 1..n {
            let old_leaves = &leaves[..m];
            let old = RootHash::<Sha256>::new(root(old_leaves).into(), m as u64);
            let proof = consistency_proof(&leaves, m as u64).unwrap();
            let digests: Vec<sha2::digest::Output<Sha256>> = proof.iter().map(|h| (*h).into()).collect();
            their_root
                .verify_consistency(&old, &ConsistencyProof::<Sha256>::from_digests(&digests))
                .unwrap_or_else(|e| panic!("ct-merkle refused caio's consistency proof {m} -> {n}: {e:?}"));
            // ct-merkle proves from the tree by the number of entries added.
            let their_proof: Vec<Hash> =
                theirs.prove_consistency(n - m).as_bytes().chunks(32).map(|c| c.try_into().unwrap()).collect();
            assert!(
                verify_consistency(m as u64, n as u64, &root(old_leaves), &ours, &their_proof),
                "ct-merkle's proof {m} -> {n}"
            );
        }
    }
}
