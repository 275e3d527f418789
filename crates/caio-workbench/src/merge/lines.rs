//! A three-way merge of text by lines (diff3), for the source of one cell.
//!
//! Both sides are diffed against the base; changes that touch different
//! base lines are both applied, the same change made on both sides is
//! applied once, and changes that overlap or touch are a conflict, written
//! with git's markers. It never drops a line of either side.

use similar::{Algorithm, DiffOp, capture_diff_slices};

/// What merging gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    /// The merged text, with conflict markers where the sides disagree.
    pub text: String,
    /// How many conflicting regions it holds.
    pub conflicts: usize,
}

/// The labels written after git's conflict markers.
#[derive(Debug, Clone, Copy)]
pub struct Labels<'a> {
    /// After `<<<<<<<`.
    pub ours: &'a str,
    /// After `>>>>>>>`.
    pub theirs: &'a str,
}

/// One change of a side against the base: base lines `base` became that
/// side's lines `side`.
#[derive(Debug, Clone, Copy)]
struct Hunk {
    base: (usize, usize),
    side: (usize, usize),
}

fn hunks(base: &[&str], side: &[&str]) -> Vec<Hunk> {
    capture_diff_slices(Algorithm::Myers, base, side)
        .into_iter()
        .filter_map(|op| match op {
            DiffOp::Equal { .. } => None,
            DiffOp::Delete { old_index, old_len, new_index } => {
                Some(Hunk { base: (old_index, old_index + old_len), side: (new_index, new_index) })
            }
            DiffOp::Insert { old_index, new_index, new_len } => {
                Some(Hunk { base: (old_index, old_index), side: (new_index, new_index + new_len) })
            }
            DiffOp::Replace { old_index, old_len, new_index, new_len } => {
                Some(Hunk { base: (old_index, old_index + old_len), side: (new_index, new_index + new_len) })
            }
        })
        .collect()
}

/// Lines with their line breaks, so that joining them gives the text back.
fn lines(text: &str) -> Vec<&str> {
    text.split_inclusive('\n').collect()
}

/// Merges `ours` and `theirs`, both descended from `base`.
pub fn merge(base: &str, ours: &str, theirs: &str, labels: Labels<'_>) -> Merged {
    let (base, ours, theirs) = (lines(base), lines(ours), lines(theirs));
    let ours_hunks = hunks(&base, &ours);
    let theirs_hunks = hunks(&base, &theirs);
    // Every hunk, tagged with its side (false: ours), in base order.
    let mut all: Vec<(bool, Hunk)> =
        ours_hunks.iter().map(|h| (false, *h)).chain(theirs_hunks.iter().map(|h| (true, *h))).collect();
    all.sort_by_key(|(side, h)| (h.base.0, h.base.1, *side));

    let mut out = String::new();
    let mut conflicts = 0;
    let mut cursor = 0; // next base line not yet written
    // How far each side's line numbers run ahead of the base's, from the
    // hunks already passed.
    let (mut ours_shift, mut theirs_shift) = (0isize, 0isize);
    let mut i = 0;
    while i < all.len() {
        // A group: hunks that overlap or touch, transitively.
        let (lo, mut hi) = all[i].1.base;
        let mut j = i + 1;
        while j < all.len() && all[j].1.base.0 <= hi {
            hi = hi.max(all[j].1.base.1);
            j += 1;
        }
        let group = &all[i..j];
        out.extend(base[cursor..lo].iter().copied());
        let span = |shift: isize, side: bool| {
            let growth: isize = group
                .iter()
                .filter(|(s, _)| *s == side)
                .map(|(_, h)| (h.side.1 - h.side.0) as isize - (h.base.1 - h.base.0) as isize)
                .sum();
            let start = (lo as isize + shift) as usize;
            let end = (hi as isize + shift + growth) as usize;
            (start, end, growth)
        };
        let (o_start, o_end, o_growth) = span(ours_shift, false);
        let (t_start, t_end, t_growth) = span(theirs_shift, true);
        let ours_changed = group.iter().any(|(s, _)| !*s);
        let theirs_changed = group.iter().any(|(s, _)| *s);
        let ours_text = &ours[o_start..o_end];
        let theirs_text = &theirs[t_start..t_end];
        if !theirs_changed || ours_text == theirs_text {
            out.extend(ours_text.iter().copied());
        } else if !ours_changed {
            out.extend(theirs_text.iter().copied());
        } else {
            conflicts += 1;
            write_conflict(&mut out, ours_text, theirs_text, labels);
        }
        ours_shift += o_growth;
        theirs_shift += t_growth;
        cursor = hi;
        i = j;
    }
    out.extend(base[cursor..].iter().copied());
    Merged { text: out, conflicts }
}

fn write_conflict(out: &mut String, ours: &[&str], theirs: &[&str], labels: Labels<'_>) {
    let side = |out: &mut String, lines: &[&str]| {
        for line in lines {
            out.push_str(line);
        }
        if !out.ends_with('\n') {
            out.push('\n');
        }
    };
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&format!("<<<<<<< {}\n", labels.ours));
    side(out, ours);
    out.push_str("=======\n");
    side(out, theirs);
    out.push_str(&format!(">>>>>>> {}\n", labels.theirs));
}

#[cfg(test)]
mod tests {
    use super::*;

    const LABELS: Labels<'static> = Labels { ours: "ours", theirs: "theirs" };

    fn merged(base: &str, ours: &str, theirs: &str) -> Merged {
        merge(base, ours, theirs, LABELS)
    }

    #[test]
    fn changes_to_different_lines_both_land() {
        let base = "a\nb\nc\nd\ne\n";
        let m = merged(base, "A\nb\nc\nd\ne\n", "a\nb\nc\nd\nE\n");
        assert_eq!(m, Merged { text: "A\nb\nc\nd\nE\n".into(), conflicts: 0 });
        // Insertions and deletions shift the other side's line numbers.
        let m = merged(base, "x\ny\na\nb\nc\nd\ne\n", "a\nb\nc\ne\n");
        assert_eq!(m, Merged { text: "x\ny\na\nb\nc\ne\n".into(), conflicts: 0 });
        let m = merged(base, "a\nc\nd\ne\n", "a\nb\nc\nd\ne\nf\n");
        assert_eq!(m, Merged { text: "a\nc\nd\ne\nf\n".into(), conflicts: 0 });
    }

    #[test]
    fn the_same_change_on_both_sides_lands_once() {
        let m = merged("a\nb\n", "a\nB\n", "a\nB\n");
        assert_eq!(m, Merged { text: "a\nB\n".into(), conflicts: 0 });
    }

    #[test]
    fn overlapping_changes_are_a_conflict_with_both_sides_kept() {
        let m = merged("a\nb\nc\n", "a\nours\nc\n", "a\ntheirs\nc\n");
        assert_eq!(m.conflicts, 1);
        assert_eq!(m.text, "a\n<<<<<<< ours\nours\n=======\ntheirs\n>>>>>>> theirs\nc\n");
        // A last line without its line break still gets markers on lines of their own.
        let m = merged("x", "y", "z");
        assert_eq!(m.text, "<<<<<<< ours\ny\n=======\nz\n>>>>>>> theirs\n");
        // Two separate conflicts are counted apart.
        let m = merged("1\n2\n3\n4\n5\n", "1o\n2\n3\n4\n5o\n", "1t\n2\n3\n4\n5t\n");
        assert_eq!(m.conflicts, 2);
    }

    #[test]
    fn one_side_unchanged_gives_the_other() {
        let base = "fn a() {}\nfn b() {}\n";
        let theirs = "fn a() { 1 }\nfn b() {}\nfn c() {}\n";
        assert_eq!(merged(base, base, theirs).text, theirs);
        assert_eq!(merged(base, theirs, base).text, theirs);
        assert_eq!(merged("", "", "new\n").text, "new\n");
    }
}
