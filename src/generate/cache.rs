//! Caches that spare recomputation, both least-recently-used and bounded in bytes:
//! - [`PrefixCache`]: RNN states keyed by the token prefix they follow, so a request sharing a
//!   prefix with an earlier one starts from the state after the longest cached prefix;
//! - [`ResponseCache`]: whole completions keyed by conversation and options — generation is
//!   deterministic for a given seed, so an identical request can be answered without the model.

use super::options::Completion;
use crate::model::FloatSlots;

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
        self.make_room(&key, bytes, usize::MAX, drop);
        self.push(key, value, bytes);
        true
    }

    /// Removes the entry under `key` and the least recently used ones until `bytes` more fit
    /// and there are fewer than `max_entries`, handing each removed value to `removed`. `bytes`
    /// is at most the bound.
    fn make_room(&mut self, key: &K, bytes: usize, max_entries: usize, mut removed: impl FnMut(V)) {
        if let Some(i) = self.slots.iter().position(|s| s.key == *key) {
            removed(self.remove(i));
        }
        while self.used_bytes + bytes > self.max_bytes || self.slots.len() >= max_entries {
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

/// A cached state and, when they were computed, the logits it gives for the next token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Snapshot<'a> {
    pub state: &'a [f32],
    pub logits: Option<&'a [f32]>,
}

/// Where an entry's state (and logits) are.
#[derive(Debug)]
struct Entry {
    slot: usize,
    has_logits: bool,
}

/// RNN states keyed by the tokens that led to them (from the model's initial state).
///
/// States and logits live in fixed slots (one per entry, room for both) in one buffer of tensor
/// memory, asked for whole at first use (`reserve`). A full cache turns over in place, and after
/// a model load the new cache lands where the last one was. In wasm, where memory never shrinks,
/// buffers freed and asked for again one by one let smaller blocks cut into their room, and
/// memory grew. Fifteen sixteenths of the bound go to slots; keys take the rest.
#[derive(Debug)]
pub struct PrefixCache {
    /// The entries; its bound is the room for keys (what each entry is charged).
    lru: Lru<Vec<u32>, Entry>,
    state_len: usize,
    logits_len: usize,
    capacity: usize,
    slots: Option<FloatSlots>,
    /// The slots no entry uses (all of them when `slots` is asked for).
    free: Vec<usize>,
}

impl PrefixCache {
    /// A cache of at most `max_bytes` for states of `state_len` floats and logits of `logits_len`.
    pub fn new(max_bytes: usize, state_len: usize, logits_len: usize) -> PrefixCache {
        let slot_bytes = 4 * (state_len + logits_len);
        let capacity = if slot_bytes == 0 { 0 } else { (max_bytes - max_bytes / 16) / slot_bytes };
        let lru = Lru::new(max_bytes - capacity * slot_bytes);
        PrefixCache { lru, state_len, logits_len, capacity, slots: None, free: Vec::new() }
    }

    /// Asks for the slots' buffer if it is not there yet; false when refused (or no slot fits).
    /// The session does this as its first generation starts, before the grammar engine, so that
    /// big blocks come in the same order after every model load (see `mem::BIG_BLOCK`).
    pub fn reserve(&mut self) -> bool {
        if self.slots.is_none() && self.capacity > 0 {
            self.slots = FloatSlots::try_new(self.capacity, self.state_len + self.logits_len);
            if self.slots.is_some() {
                self.free = (0..self.capacity).rev().collect();
            }
        }
        self.slots.is_some()
    }

    /// Bytes held: the slots (once asked for) and the keys.
    pub fn bytes(&self) -> usize {
        self.slots.as_ref().map_or(0, FloatSlots::bytes) + self.lru.used_bytes
    }

    pub fn len(&self) -> usize {
        self.lru.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lru.slots.is_empty()
    }

    /// How many entries fit.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Remembers the state after `tokens`; false when it cannot (a key longer than the room for
    /// keys, sizes of another model, or no memory for the slots). Storing the same prefix again
    /// keeps logits already known (the states are equal: evaluation is deterministic).
    pub fn insert(&mut self, tokens: &[u32], state: &[f32], logits: Option<&[f32]>) -> bool {
        if let Some(i) = self.lru.slots.iter().position(|s| s.key == tokens) {
            if logits.is_none() || self.lru.slots[i].value.has_logits {
                self.lru.touch(i);
                return true;
            }
        }
        let key_bytes = 4 * tokens.len();
        let fits = key_bytes <= self.lru.max_bytes && state.len() == self.state_len;
        if !fits || logits.is_some_and(|l| l.len() != self.logits_len) || !self.reserve() {
            return false;
        }
        let key = tokens.to_vec();
        let free = &mut self.free;
        self.lru.make_room(&key, key_bytes, self.capacity, |old| free.push(old.slot));
        // Fewer entries than slots now, so one is free.
        let (Some(slot), Some(slots)) = (self.free.pop(), self.slots.as_mut()) else { return false };
        slots.write(slot, 0, state);
        if let Some(l) = logits {
            slots.write(slot, self.state_len, l);
        }
        self.lru.push(key, Entry { slot, has_logits: logits.is_some() }, key_bytes);
        true
    }

    /// The longest cached prefix of `tokens`: its length and snapshot. A snapshot for all of
    /// `tokens` counts only with logits, since the next token must be sampled from something.
    pub fn longest_prefix(&mut self, tokens: &[u32]) -> Option<(usize, Snapshot<'_>)> {
        let best = (0..self.lru.slots.len())
            .filter(|&i| {
                let s = &self.lru.slots[i];
                tokens.starts_with(&s.key) && (s.key.len() < tokens.len() || s.value.has_logits)
            })
            .max_by_key(|&i| self.lru.slots[i].key.len())?;
        let (slots, entry) = (self.slots.as_ref()?, self.lru.touch(best));
        let e = &entry.value;
        let state = slots.read(e.slot, 0, self.state_len);
        let logits = e.has_logits.then(|| slots.read(e.slot, self.state_len, self.logits_len));
        Some((entry.key.len(), Snapshot { state, logits }))
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
        let mut c = PrefixCache::new(1 << 20, 1, 1);
        c.insert(&[1, 2], &[2.0], None);
        c.insert(&[1, 2, 3], &[3.0], None);
        c.insert(&[1, 9], &[9.0], Some(&[0.5]));
        assert_eq!(c.longest_prefix(&[1, 2, 3, 4]).map(|(n, s)| (n, s.state[0])), Some((3, 3.0)));
        // [1, 2, 3] has no logits, so for exactly [1, 2, 3] the state after [1, 2] is the best.
        assert_eq!(c.longest_prefix(&[1, 2, 3]).map(|(n, _)| n), Some(2));
        assert_eq!(c.longest_prefix(&[1, 9]).map(|(n, s)| (n, s.logits)), Some((2, Some(&[0.5][..]))));
        assert!(c.longest_prefix(&[7]).is_none());
        // Adding logits to a known prefix upgrades it; dropping them does not.
        c.insert(&[1, 2, 3], &[3.0], Some(&[1.0]));
        c.insert(&[1, 2, 3], &[3.0], None);
        assert_eq!(c.longest_prefix(&[1, 2, 3]).map(|(n, s)| (n, s.logits)), Some((3, Some(&[1.0][..]))));
    }

    #[test]
    fn eviction_is_least_recently_used_and_the_bound_holds() {
        // Slots of 3 state floats (12 bytes): 3 fit in 15/16 of 48 bytes, and 12 bytes are left
        // for keys.
        let mut c = PrefixCache::new(48, 3, 0);
        assert_eq!((c.capacity(), c.bytes()), (3, 0));
        for t in 0..3 {
            assert!(c.insert(&[t], &[t as f32; 3], None));
        }
        assert_eq!(c.bytes(), 48);
        c.longest_prefix(&[0, 5]); // 0 is now the most recently used; 1 the least
        assert!(c.insert(&[3], &[3.0; 3], None));
        assert_eq!(c.bytes(), 48);
        assert!(c.longest_prefix(&[1, 5]).is_none());
        assert_eq!(c.longest_prefix(&[0, 5]).map(|(_, s)| s.state), Some(&[0.0; 3][..]));
        assert_eq!(c.longest_prefix(&[3, 5]).map(|(_, s)| s.state), Some(&[3.0; 3][..]));
        // A key longer than the room for keys, or another model's sizes: refused, and nothing is
        // evicted for them.
        assert!(!c.insert(&[4, 4, 4, 4], &[0.0; 3], None));
        assert!(!c.insert(&[4], &[0.0; 4], None));
        assert!(!c.insert(&[4], &[0.0; 3], Some(&[0.0])));
        assert_eq!(c.len(), 3);
        // No room at all.
        assert!(!PrefixCache::new(8, 3, 0).insert(&[1], &[0.0; 3], None));
    }

    #[test]
    fn a_full_cache_turns_over_in_its_slots() {
        // Slots of 4 state floats and 4 logits (32 bytes): 2 fit in 72 bytes, with 8 for keys.
        let mut c = PrefixCache::new(72, 4, 4);
        c.insert(&[0], &[0.0; 4], Some(&[0.0; 4]));
        c.insert(&[1], &[1.0; 4], Some(&[1.0; 4]));
        let (_, oldest) = c.longest_prefix(&[0, 9]).unwrap();
        let (state, logits) = (oldest.state.as_ptr(), oldest.logits.unwrap().as_ptr());
        c.longest_prefix(&[1, 9]); // [0] is now the least recently used
        c.insert(&[2], &[2.0; 4], Some(&[5.0; 4]));
        assert!(c.longest_prefix(&[0, 9]).is_none());
        let (_, new) = c.longest_prefix(&[2, 9]).unwrap();
        assert_eq!((new.state, new.logits), (&[2.0; 4][..], Some(&[5.0; 4][..])));
        assert_eq!((new.state.as_ptr(), new.logits.unwrap().as_ptr()), (state, logits));
        assert_eq!(c.bytes(), 72);
        // Entries with and without logits replace each other in the same two slots.
        for (t, with_logits) in [(3, false), (4, true), (5, false), (6, false), (7, true), (8, true)] {
            assert!(c.insert(&[t], &[t as f32; 4], with_logits.then_some(&[t as f32 + 0.5; 4][..])));
            let (_, s) = c.longest_prefix(&[t, 9]).unwrap();
            assert_eq!((s.state, s.logits), (&[t as f32; 4][..], with_logits.then_some(&[t as f32 + 0.5; 4][..])));
            let mut slots: Vec<usize> = c.lru.slots.iter().map(|s| s.value.slot).collect();
            slots.sort();
            assert_eq!((slots, c.bytes()), (vec![0, 1], 72), "after entry {t}");
        }
    }
}
