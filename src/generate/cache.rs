//! Caches that spare recomputation, both least-recently-used and bounded in bytes:
//! - [`PrefixCache`]: RNN states keyed by the token prefix they follow, so a request sharing a
//!   prefix with an earlier one starts from the state after the longest cached prefix;
//! - [`ResponseCache`]: whole completions keyed by conversation and options — generation is
//!   deterministic for a given seed, so an identical request can be answered without the model.

use super::options::Completion;

/// Least-recently-used entries under a byte bound. Linear scans: the bound keeps entries few
/// next to the work each lookup saves.
#[derive(Debug)]
struct Lru<K, V> {
    slots: Vec<Slot<K, V>>,
    max_bytes: usize,
    used_bytes: usize,
    clock: u64,
}

#[derive(Debug)]
struct Slot<K, V> {
    key: K,
    value: V,
    bytes: usize,
    last_used: u64,
}

impl<K: PartialEq, V> Lru<K, V> {
    fn new(max_bytes: usize) -> Self {
        Lru { slots: Vec::new(), max_bytes, used_bytes: 0, clock: 0 }
    }

    /// Marks slot `i` as just used and returns it.
    fn touch(&mut self, i: usize) -> &Slot<K, V> {
        self.clock += 1;
        self.slots[i].last_used = self.clock;
        &self.slots[i]
    }

    /// Stores `value` under `key` (replacing an entry with an equal key), evicting the least
    /// recently used entries until it fits. An entry larger than the whole bound is not stored.
    fn insert(&mut self, key: K, value: V, bytes: usize) -> bool {
        if bytes > self.max_bytes {
            return false;
        }
        self.make_room(&key, bytes, drop);
        self.push(key, value, bytes);
        true
    }

    /// Removes the entry under `key` and the least recently used ones until `bytes` more fit,
    /// handing each removed value to `removed`. `bytes` is at most the bound.
    fn make_room(&mut self, key: &K, bytes: usize, mut removed: impl FnMut(V)) {
        if let Some(i) = self.slots.iter().position(|s| s.key == *key) {
            removed(self.remove(i));
        }
        while self.used_bytes + bytes > self.max_bytes {
            let oldest = (0..self.slots.len()).min_by_key(|&i| self.slots[i].last_used);
            match oldest {
                Some(i) => removed(self.remove(i)),
                None => break,
            }
        }
    }

    /// Adds an entry that `make_room` made room for.
    fn push(&mut self, key: K, value: V, bytes: usize) {
        self.clock += 1;
        self.used_bytes += bytes;
        self.slots.push(Slot { key, value, bytes, last_used: self.clock });
    }

    fn remove(&mut self, i: usize) -> V {
        let slot = self.slots.swap_remove(i);
        self.used_bytes -= slot.bytes;
        slot.value
    }

}

/// A state and, when they were computed, the logits it gives for the next token.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub state: Vec<f32>,
    pub logits: Option<Vec<f32>>,
    /// Without logits: the logits buffer of the entry this one replaced, kept for the next
    /// entry with logits.
    parked: Option<Vec<f32>>,
}

/// RNN states keyed by the tokens that led to them (from the model's initial state). Each entry
/// costs the bytes of its key, state and logits buffer.
///
/// A full cache turns over without allocating: a new entry takes the buffers of those it evicts
/// (same sizes for one model) instead of freeing them and asking for as much again, which in wasm
/// fragments memory that never shrinks. So that entries with and without logits can replace each
/// other, an entry without logits keeps the evicted logits buffer (counted) and makes room for
/// one: once full, the cache is a fixed set of state-and-logits slots.
#[derive(Debug)]
pub struct PrefixCache {
    lru: Lru<Vec<u32>, Snapshot>,
    /// Bytes of the largest logits stored so far.
    logits_bytes: usize,
}

impl PrefixCache {
    pub fn new(max_bytes: usize) -> PrefixCache {
        PrefixCache { lru: Lru::new(max_bytes), logits_bytes: 0 }
    }

    /// Bytes held (what the bound limits).
    pub fn bytes(&self) -> usize {
        self.lru.used_bytes
    }

    pub fn len(&self) -> usize {
        self.lru.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lru.slots.is_empty()
    }

    /// Remembers the state after `tokens`. Storing the same prefix again keeps logits already
    /// known (the states are equal: evaluation is deterministic).
    pub fn insert(&mut self, tokens: &[u32], state: &[f32], logits: Option<&[f32]>) -> bool {
        if let Some(i) = self.lru.slots.iter().position(|s| s.key == tokens) {
            if logits.is_none() || self.lru.slots[i].value.logits.is_some() {
                self.lru.touch(i);
                return true;
            }
        }
        let bytes = 4 * (tokens.len() + state.len() + logits.map_or(0, <[f32]>::len));
        if bytes > self.lru.max_bytes {
            return false;
        }
        self.logits_bytes = self.logits_bytes.max(4 * logits.map_or(0, <[f32]>::len));
        let key = tokens.to_vec();
        let (mut states, mut logits_bufs) = (Vec::new(), Vec::new());
        let room = if logits.is_some() { bytes } else { bytes + self.logits_bytes };
        self.lru.make_room(&key, room.min(self.lru.max_bytes), |old| {
            states.push(old.state);
            logits_bufs.extend(old.logits.or(old.parked));
        });
        let mut state_buf = states.pop().unwrap_or_default();
        state.clone_into(&mut state_buf);
        let logits_buf = logits_bufs.pop();
        let (logits, parked) = match logits {
            Some(l) => {
                let mut buf = logits_buf.unwrap_or_default();
                l.clone_into(&mut buf);
                (Some(buf), None)
            }
            None => (None, logits_buf.filter(|b| self.lru.used_bytes + bytes + 4 * b.len() <= self.lru.max_bytes)),
        };
        let bytes = bytes + parked.as_ref().map_or(0, |b| 4 * b.len());
        self.lru.push(key, Snapshot { state: state_buf, logits, parked }, bytes);
        true
    }

    /// The longest cached prefix of `tokens`: its length and snapshot. A snapshot for all of
    /// `tokens` counts only with logits, since the next token must be sampled from something.
    pub fn longest_prefix(&mut self, tokens: &[u32]) -> Option<(usize, &Snapshot)> {
        let best = (0..self.lru.slots.len())
            .filter(|&i| {
                let s = &self.lru.slots[i];
                tokens.starts_with(&s.key) && (s.key.len() < tokens.len() || s.value.logits.is_some())
            })
            .max_by_key(|&i| self.lru.slots[i].key.len())?;
        let slot = self.lru.touch(best);
        Some((slot.key.len(), &slot.value))
    }

}

/// Completions keyed by the conversation's tokens (prompt included) and an encoding of every
/// option that shapes the output. Each entry costs its key, text and token bytes.
#[derive(Debug)]
pub struct ResponseCache(Lru<(Vec<u32>, Vec<u8>), Completion>);

impl ResponseCache {
    pub fn new(max_bytes: usize) -> ResponseCache {
        ResponseCache(Lru::new(max_bytes))
    }

    /// Bytes held (what the bound limits).
    pub fn bytes(&self) -> usize {
        self.0.used_bytes
    }

    pub fn get(&mut self, tokens: &[u32], options: &[u8]) -> Option<&Completion> {
        let i = self.0.slots.iter().position(|s| s.key.0 == tokens && s.key.1 == options)?;
        Some(&self.0.touch(i).value)
    }

    pub fn insert(&mut self, tokens: &[u32], options: &[u8], completion: &Completion) -> bool {
        let bytes = 4 * (tokens.len() + completion.tokens.len() + completion.logprobs.len()) + options.len() + completion.text.len();
        if bytes > self.0.max_bytes {
            return false;
        }
        self.0.insert((tokens.to_vec(), options.to_vec()), completion.clone(), bytes)
    }

}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_prefers_the_longest_and_needs_logits_for_a_full_match() {
        let mut c = PrefixCache::new(1 << 20);
        c.insert(&[1, 2], &[2.0], None);
        c.insert(&[1, 2, 3], &[3.0], None);
        c.insert(&[1, 9], &[9.0], Some(&[0.5]));
        assert_eq!(c.longest_prefix(&[1, 2, 3, 4]).map(|(n, s)| (n, s.state[0])), Some((3, 3.0)));
        // [1, 2, 3] has no logits, so for exactly [1, 2, 3] the state after [1, 2] is the best.
        assert_eq!(c.longest_prefix(&[1, 2, 3]).map(|(n, _)| n), Some(2));
        assert_eq!(c.longest_prefix(&[1, 9]).map(|(n, s)| (n, s.logits.clone())), Some((2, Some(vec![0.5]))));
        assert!(c.longest_prefix(&[7]).is_none());
        // Adding logits to a known prefix upgrades it; dropping them does not.
        c.insert(&[1, 2, 3], &[3.0], Some(&[1.0]));
        c.insert(&[1, 2, 3], &[3.0], None);
        assert_eq!(c.longest_prefix(&[1, 2, 3]).map(|(n, _)| n), Some(3));
    }

    #[test]
    fn eviction_is_least_recently_used_and_the_bound_holds() {
        // Each entry: 1 key token + 3 state floats = 16 bytes; room for 3.
        let mut c = PrefixCache::new(48);
        for t in 0..3 {
            assert!(c.insert(&[t], &[0.0; 3], None));
        }
        assert_eq!(c.bytes(), 48);
        c.longest_prefix(&[0, 5]); // 0 is now the most recently used; 1 the least
        assert!(c.insert(&[3], &[0.0; 3], None));
        assert_eq!(c.bytes(), 48);
        assert!(c.longest_prefix(&[1, 5]).is_none());
        assert!(c.longest_prefix(&[0, 5]).is_some());
        // Too large for the bound: refused, and nothing is evicted for it.
        assert!(!c.insert(&[4], &[0.0; 12], None));
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn a_full_cache_turns_over_in_the_buffers_it_evicts() {
        // Each entry: 1 key token + 4 state floats + 4 logits = 36 bytes; room for 2.
        let mut c = PrefixCache::new(72);
        c.insert(&[0], &[0.0; 4], Some(&[0.0; 4]));
        c.insert(&[1], &[1.0; 4], Some(&[1.0; 4]));
        let (_, oldest) = c.longest_prefix(&[0, 9]).unwrap();
        let (state, logits) = (oldest.state.as_ptr(), oldest.logits.as_ref().unwrap().as_ptr());
        c.longest_prefix(&[1, 9]); // [0] is now the least recently used
        c.insert(&[2], &[2.0; 4], Some(&[5.0; 4]));
        assert!(c.longest_prefix(&[0, 9]).is_none());
        let (_, new) = c.longest_prefix(&[2, 9]).unwrap();
        assert_eq!((new.state.as_slice(), new.logits.as_deref()), (&[2.0; 4][..], Some(&[5.0; 4][..])));
        assert_eq!((new.state.as_ptr(), new.logits.as_ref().unwrap().as_ptr()), (state, logits));
        assert_eq!(c.bytes(), 72);
        // Entries with and without logits replace each other in the same buffers: one without
        // logits keeps the logits buffer it evicted, for the next entry with logits.
        let held = |c: &PrefixCache| {
            let values = c.lru.slots.iter().map(|s| &s.value);
            let mut states: Vec<_> = values.clone().map(|v| v.state.as_ptr()).collect();
            let mut logits: Vec<_> = values.filter_map(|v| v.logits.as_ref().or(v.parked.as_ref()).map(|b| b.as_ptr())).collect();
            states.sort();
            logits.sort();
            (states, logits)
        };
        let buffers = held(&c);
        for (t, with_logits) in [(3, false), (4, true), (5, false), (6, false), (7, true), (8, true)] {
            assert!(c.insert(&[t], &[t as f32; 4], with_logits.then_some(&[1.0; 4][..])));
            assert!(c.longest_prefix(&[t, 9]).is_some());
            assert_eq!(held(&c), buffers, "after entry {t}");
            assert!(c.bytes() <= 72);
        }
    }
}
