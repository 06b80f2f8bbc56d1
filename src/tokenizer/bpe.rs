//! Byte-pair merging of one pre-tokenized word: start from one token per byte, then repeatedly
//! merge the adjacent pair with the lowest merge rank (leftmost first on ties) until none is left.
//!
//! Why a heap: the textbook loop rescans the word after every merge, O(n²), and a 5,000-letter
//! word would take seconds. Here each pair is pushed once when it forms; entries whose pair has
//! since changed are skipped when popped, so a word costs O(n log n).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// (left id, right id) → (rank, merged id), keyed as `left << 32 | right`.
pub type Merges = HashMap<u64, (u32, u32)>;

pub fn pair_key(left: u32, right: u32) -> u64 {
    (left as u64) << 32 | right as u64
}

const NONE: usize = usize::MAX;

struct Symbol {
    id: u32,
    prev: usize,
    next: usize,
    alive: bool,
}

/// Appends the ids of `word` to `out`; `byte_ids[b]` is the token of the single byte `b`.
pub fn merge_word(word: &[u8], byte_ids: &[u32; 256], merges: &Merges, out: &mut Vec<u32>) {
    if word.len() <= 1 {
        out.extend(word.iter().map(|&b| byte_ids[b as usize]));
        return;
    }
    let n = word.len();
    let mut syms: Vec<Symbol> = (0..n)
        .map(|i| Symbol {
            id: byte_ids[word[i] as usize],
            prev: if i == 0 { NONE } else { i - 1 },
            next: if i + 1 == n { NONE } else { i + 1 },
            alive: true,
        })
        .collect();
    let rank_of = |l: u32, r: u32| merges.get(&pair_key(l, r)).copied();
    let mut heap = BinaryHeap::with_capacity(n);
    for i in 0..n - 1 {
        if let Some((rank, _)) = rank_of(syms[i].id, syms[i + 1].id) {
            heap.push(Reverse((rank, i)));
        }
    }
    while let Some(Reverse((rank, i))) = heap.pop() {
        let j = syms[i].next;
        if !syms[i].alive || j == NONE {
            continue;
        }
        // A rank names exactly one pair, so an equal rank means the entry is still current.
        let merged = match rank_of(syms[i].id, syms[j].id) {
            Some((r, merged)) if r == rank => merged,
            _ => continue,
        };
        let after = syms[j].next;
        syms[i].id = merged;
        syms[i].next = after;
        syms[j].alive = false;
        if after != NONE {
            syms[after].prev = i;
            if let Some((r, _)) = rank_of(merged, syms[after].id) {
                heap.push(Reverse((r, i)));
            }
        }
        let before = syms[i].prev;
        if before != NONE {
            if let Some((r, _)) = rank_of(syms[before].id, merged) {
                heap.push(Reverse((r, before)));
            }
        }
    }
    let mut i = 0;
    while i != NONE {
        out.push(syms[i].id);
        i = syms[i].next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_by_rank_then_position() {
        // Bytes a=1, b=2, c=3; merges: (a,b)→10 rank 0, (b,c)→11 rank 1, (10,c)→12 rank 2, (a,a)→13 rank 3.
        let mut byte_ids = [0u32; 256];
        byte_ids[b'a' as usize] = 1;
        byte_ids[b'b' as usize] = 2;
        byte_ids[b'c' as usize] = 3;
        let merges: Merges = [((1, 2), (0, 10)), ((2, 3), (1, 11)), ((10, 3), (2, 12)), ((1, 1), (3, 13))]
            .into_iter()
            .map(|((l, r), v)| (pair_key(l, r), v))
            .collect();
        let run = |w: &[u8]| {
            let mut out = Vec::new();
            merge_word(w, &byte_ids, &merges, &mut out);
            out
        };
        assert_eq!(run(b"abc"), [12]);
        assert_eq!(run(b"bc"), [11]);
        assert_eq!(run(b"cab"), [3, 10]);
        assert_eq!(run(b"aaa"), [13, 1]);
        assert_eq!(run(b"aaaa"), [13, 13]);
        assert_eq!(run(b"a"), [1]);
        assert_eq!(run(b""), Vec::<u32>::new());
        assert_eq!(run(&[b'a'; 5000]).len(), 2500);
    }
}
