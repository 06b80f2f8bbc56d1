//! The lexical half of recall: Okapi BM25 over the memories' words, with an inverted index.
//!
//! Words are maximal runs of alphanumeric characters (any script), lowercased; there is no stop
//! list and no stemming: BM25's inverse document frequency already gives words found in most
//! memories ("the", "is") almost no weight, in any language.

use std::collections::HashMap;

/// Term-frequency saturation and length normalisation: the usual values (Robertson & Zaragoza).
const K1: f32 = 1.2;
const B: f32 = 0.75;

/// The lowercased words of `text`, in order.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase)
}

#[derive(Default)]
pub struct Lexical {
    /// Word → (memory id, occurrences in that memory).
    postings: HashMap<String, Vec<(u64, u32)>>,
    /// Words per memory.
    lengths: HashMap<u64, u32>,
    total_words: u64,
}

impl Lexical {
    pub fn add(&mut self, id: u64, text: &str) {
        let counts = counts(text);
        let length = counts.values().sum::<u32>();
        for (word, n) in counts {
            self.postings.entry(word).or_default().push((id, n));
        }
        self.lengths.insert(id, length);
        self.total_words += length as u64;
    }

    /// Removes memory `id`, which was added with `text`.
    pub fn remove(&mut self, id: u64, text: &str) {
        for word in counts(text).into_keys() {
            if let Some(list) = self.postings.get_mut(&word) {
                list.retain(|&(i, _)| i != id);
                if list.is_empty() {
                    self.postings.remove(&word);
                }
            }
        }
        self.total_words -= self.lengths.remove(&id).unwrap_or(0) as u64;
    }

    /// BM25 of every memory sharing a word with `query` (each distinct query word counted once).
    pub fn scores(&self, query: &str) -> HashMap<u64, f32> {
        let n = self.lengths.len() as f32;
        let average = self.total_words as f32 / n.max(1.0);
        let mut scores = HashMap::new();
        for word in counts(query).into_keys() {
            let Some(list) = self.postings.get(&word) else { continue };
            let df = list.len() as f32;
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            for &(id, tf) in list {
                let (tf, length) = (tf as f32, self.lengths[&id] as f32);
                let norm = K1 * (1.0 - B + B * length / average.max(1.0));
                *scores.entry(id).or_insert(0.0) += idf * tf * (K1 + 1.0) / (tf + norm);
            }
        }
        scores
    }

    /// An estimate of the heap memory the index holds.
    pub fn bytes(&self) -> usize {
        let entry = std::mem::size_of::<(u64, u32)>();
        let postings: usize = self.postings.iter().map(|(w, l)| 48 + w.capacity() + l.capacity() * entry).sum();
        postings + self.lengths.capacity() * 16
    }
}

fn counts(text: &str) -> HashMap<String, u32> {
    let mut counts = HashMap::new();
    for w in words(text) {
        *counts.entry(w).or_insert(0) += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rarer_words_and_shorter_memories_score_higher() {
        let mut index = Lexical::default();
        index.add(1, "The cat sat on the mat");
        index.add(2, "The dog sat on the log in the fog by the bog");
        index.add(3, "The bird sang");
        let s = index.scores("cat sat");
        assert!(s[&1] > s[&2], "{s:?}");
        assert!(!s.contains_key(&3));
        // "the" is in every memory: it counts for far less than "sat".
        let the = index.scores("THE")[&1];
        assert!(the < 0.5 * index.scores("sat")[&1]);
        index.remove(1, "The cat sat on the mat");
        assert!(index.scores("cat").is_empty());
        assert_eq!(index.total_words, 15);
    }

    #[test]
    fn words_are_lowercased_alphanumeric_runs_in_any_script() {
        let w: Vec<String> = words("Привет, World! x86-64 — café").collect();
        assert_eq!(w, ["привет", "world", "x86", "64", "café"]);
    }
}
