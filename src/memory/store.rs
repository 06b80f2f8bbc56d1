//! The memory store: texts with JSON metadata, their embeddings stored as int8, and hybrid
//! recall (embedding cosine plus BM25, `recall`).
//!
//! Vectors are unit length. Each is kept as its difference from the store's centre (the first
//! vector remembered into the empty store), as `n_embed` int8 values and one f32 scale
//! (`max |x| / 127`): a 768-wide memory's vector takes 772 bytes, a quarter of f32, and a cosine
//! is `query · centre` (once per recall) plus an integer dot product. Why the centre: a language
//! model's hidden states share a large common direction and a few outlier channels (the mean
//! pooled vectors of the tiny fixture models all have cosines above 0.99 with one another), so
//! quantizing them whole spends the int8 range on what every memory has in common and the
//! rounding (about 3e-3 of a cosine) drowns the differences recall ranks by; the differences
//! from one of them are small and spread out, and quantize about ten times finer.
//!
//! The store belongs to one vector space (`space`, see `embed::Embedder::space`): vectors of
//! another model never enter it; `import` of another space's export is refused.

use std::collections::HashMap;

use super::lexical::Lexical;
use crate::error::{Error, Result};

/// Hybrid score = `COSINE_WEIGHT · cosine + LEXICAL_WEIGHT · lexical`, where `lexical` is the
/// memory's BM25 over the best BM25 for this query (so the best lexical match has 1 and a memory
/// sharing no word 0) and `cosine` is the embeddings' cosine similarity as it is. Equal weights:
/// a memory whose cosine is higher by 0.1 gains what one whose BM25 is higher by a tenth of the
/// best gains. The raw cosine keeps a model's embeddings in proportion to what they tell apart:
/// a tiny model's (mean pooled, every cosine within a few hundredths of the others) only break
/// ties between lexical matches and rank what shares no word, while a model whose cosines spread
/// from 0.2 to 0.9 weighs as much as the words. Normalising the cosines per query as well (best 1,
/// mean 0) made recall@3 worse on `tests/memory_store.rs`'s corpus with every fixture model: it
/// gives the embedding's top memory a full share even when the embedding knows nothing.
pub const COSINE_WEIGHT: f32 = 0.5;
pub const LEXICAL_WEIGHT: f32 = 0.5;

/// Export format: magic, version, then the fields in `export`'s order (little-endian).
const MAGIC: &[u8; 8] = b"ECHOMEM\0";
const VERSION: u32 = 1;
/// The widest vector a store holds (the widest RWKV is 8192; the bound keeps integer dot
/// products from overflowing: 65536 · 127² < 2³¹).
const MAX_DIM: usize = 65536;

#[derive(Debug, Clone, PartialEq)]
pub struct Memory {
    pub id: u64,
    pub text: String,
    /// Compact JSON.
    pub metadata: String,
}

impl Memory {
    /// `{ id, text, metadata }`: the shape the CLI and the JS API give.
    pub fn to_json(&self) -> serde_json::Value {
        let metadata = serde_json::from_str(&self.metadata).unwrap_or(serde_json::Value::Null);
        serde_json::json!({ "id": self.id, "text": self.text, "metadata": metadata })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub memory: Memory,
    /// The hybrid score the hits are ranked by.
    pub score: f32,
    /// Cosine similarity of the embeddings, in [-1, 1].
    pub cosine: f32,
    /// BM25 over this query's best BM25, in [0, 1].
    pub lexical: f32,
}

impl Hit {
    /// The memory's fields and `score`, `cosine`, `lexical`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = self.memory.to_json();
        v["score"] = self.score.into();
        v["cosine"] = self.cosine.into();
        v["lexical"] = self.lexical.into();
        v
    }
}

pub struct MemoryStore {
    space: String,
    dim: usize,
    next_id: u64,
    memories: Vec<Memory>,
    positions: HashMap<u64, usize>,
    /// What every stored vector is the difference from (zeros until a vector is remembered).
    centre: Vec<f32>,
    /// `dim` int8 values per memory (its vector minus `centre`), in `memories`' order, and one
    /// scale each.
    vectors: Vec<i8>,
    scales: Vec<f32>,
    lexical: Lexical,
}

impl MemoryStore {
    /// An empty store for vectors of `dim` values from `space`.
    pub fn new(space: &str, dim: usize) -> Result<MemoryStore> {
        if !(1..=MAX_DIM).contains(&dim) {
            return Err(Error::invalid_options(format!("a memory store holds vectors of 1 to {MAX_DIM} values, not {dim}")));
        }
        Ok(MemoryStore {
            space: space.to_string(),
            dim,
            next_id: 1,
            memories: Vec::new(),
            positions: HashMap::new(),
            centre: vec![0.0; dim],
            vectors: Vec::new(),
            scales: Vec::new(),
            lexical: Lexical::default(),
        })
    }

    pub fn space(&self) -> &str {
        &self.space
    }

    pub fn len(&self) -> usize {
        self.memories.len()
    }

    pub fn is_empty(&self) -> bool {
        self.memories.is_empty()
    }

    /// Stores `text` with its embedding `vector` and `metadata` (JSON text); returns its id.
    pub fn remember(&mut self, text: &str, metadata: &str, vector: &[f32]) -> Result<u64> {
        let memory = Memory { id: self.next_id, text: text.to_string(), metadata: compact_json(metadata)? };
        self.add(memory, vector)?;
        self.next_id += 1;
        Ok(self.next_id - 1)
    }

    fn add(&mut self, memory: Memory, vector: &[f32]) -> Result<()> {
        let vector = self.checked(vector)?;
        if self.memories.is_empty() {
            self.centre.copy_from_slice(&vector);
        }
        let residual: Vec<f32> = vector.iter().zip(&self.centre).map(|(v, c)| v - c).collect();
        let (q, scale) = quantize(&residual);
        self.insert(memory, &q, scale);
        Ok(())
    }

    /// Removes memory `id`; false if there is none.
    pub fn forget(&mut self, id: u64) -> bool {
        let Some(pos) = self.positions.remove(&id) else { return false };
        let memory = self.memories.swap_remove(pos);
        self.lexical.remove(id, &memory.text);
        let last = self.memories.len();
        if pos != last {
            self.positions.insert(self.memories[pos].id, pos);
            self.vectors.copy_within(last * self.dim..(last + 1) * self.dim, pos * self.dim);
        }
        self.vectors.truncate(last * self.dim);
        self.scales.swap_remove(pos);
        true
    }

    /// The number of memories, and up to `limit` of them from `offset`, oldest first.
    pub fn list(&self, offset: usize, limit: usize) -> (usize, Vec<&Memory>) {
        let mut all: Vec<&Memory> = self.memories.iter().collect();
        all.sort_unstable_by_key(|m| m.id);
        (all.len(), all.into_iter().skip(offset).take(limit).collect())
    }

    /// The `k` memories best for a query (its embedding and its text), best first; see
    /// [`COSINE_WEIGHT`] for the score.
    pub fn recall(&self, query: &[f32], text: &str, k: usize) -> Result<Vec<Hit>> {
        let query = self.checked(query)?;
        let n = self.memories.len();
        if n == 0 || k == 0 {
            return Ok(Vec::new());
        }
        let on_centre: f32 = query.iter().zip(&self.centre).map(|(q, c)| q * c).sum();
        let (q, q_scale) = quantize(&query);
        let cosines: Vec<f32> = self
            .vectors
            .chunks_exact(self.dim)
            .zip(&self.scales)
            .map(|(v, &s)| on_centre + dot(&q, v) as f32 * s * q_scale)
            .collect();
        let mut lexical = vec![0.0f32; n];
        let bm25 = self.lexical.scores(text);
        let best_bm25 = bm25.values().fold(0.0f32, |m, &s| m.max(s));
        for (id, s) in bm25 {
            lexical[self.positions[&id]] = s / best_bm25;
        }

        let score = |i: usize| COSINE_WEIGHT * cosines[i] + LEXICAL_WEIGHT * lexical[i];
        let mut order: Vec<(f32, usize)> = (0..n).map(|i| (score(i), i)).collect();
        // Best first; equal scores oldest first, so results are repeatable.
        let rank = |a: &(f32, usize), b: &(f32, usize)| b.0.total_cmp(&a.0).then(self.memories[a.1].id.cmp(&self.memories[b.1].id));
        let k = k.min(n);
        if k < n {
            order.select_nth_unstable_by(k - 1, rank);
            order.truncate(k);
        }
        order.sort_unstable_by(rank);
        Ok(order
            .into_iter()
            .map(|(score, i)| Hit { memory: self.memories[i].clone(), score, cosine: cosines[i], lexical: lexical[i] })
            .collect())
    }

    /// Every memory, as bytes `import` reads back: `header()`, the number of memories (u64), then
    /// each memory's `record`. (The browser's IndexedDB keeps the header and the records apart,
    /// so a change rewrites only what changed.)
    pub fn export(&self) -> Vec<u8> {
        let mut out = self.header();
        out.reserve(self.memories.len() * (self.dim + 64));
        out.extend_from_slice(&(self.memories.len() as u64).to_le_bytes());
        for i in 0..self.memories.len() {
            self.put_record(&mut out, i);
        }
        out
    }

    /// The export's header: magic, version, space, width, centre and the next id.
    pub fn header(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 + self.space.len() + self.dim * 4);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        put_bytes(&mut out, self.space.as_bytes());
        out.extend_from_slice(&(self.dim as u32).to_le_bytes());
        self.centre.iter().for_each(|c| out.extend_from_slice(&c.to_le_bytes()));
        out.extend_from_slice(&self.next_id.to_le_bytes());
        out
    }

    /// Memory `id` as the export stores it (None if there is no such memory).
    pub fn record(&self, id: u64) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        self.put_record(&mut out, *self.positions.get(&id)?);
        Some(out)
    }

    fn put_record(&self, out: &mut Vec<u8>, i: usize) {
        let m = &self.memories[i];
        out.extend_from_slice(&m.id.to_le_bytes());
        out.extend_from_slice(&self.scales[i].to_le_bytes());
        out.extend(self.vectors[i * self.dim..(i + 1) * self.dim].iter().map(|&x| x as u8));
        put_bytes(out, m.text.as_bytes());
        put_bytes(out, m.metadata.as_bytes());
    }

    /// Replaces this store's memories with those of an `export` of the same space. Anything
    /// wrong (another model's vectors, truncated or altered bytes) is `InvalidOptions`, and the
    /// store is left as it was.
    pub fn import(&mut self, bytes: &[u8]) -> Result<()> {
        let store = MemoryStore::parse(bytes)?;
        if store.space != self.space || store.dim != self.dim {
            return Err(Error::invalid_options(format!(
                "the memories were embedded by another model ({}, {} wide) than this one ({}, {} wide); \
                 embed their texts again with this model",
                store.space, store.dim, self.space, self.dim
            )));
        }
        *self = store;
        Ok(())
    }

    /// The store an `export` holds, whatever its space. Sizes in the data are checked against its
    /// length before anything is allocated for them.
    pub fn parse(bytes: &[u8]) -> Result<MemoryStore> {
        let mut r = Reader { bytes, pos: 0 };
        if r.take(8)? != MAGIC {
            return Err(corrupt("it does not start like an echo-engine memory export"));
        }
        let version = r.u32()?;
        if version != VERSION {
            return Err(corrupt(&format!("format version {version}; this engine reads version {VERSION}")));
        }
        let space = std::str::from_utf8(r.sized()?).map_err(|_| corrupt("the model name is not UTF-8"))?;
        let dim = r.u32()? as usize;
        let mut store = MemoryStore::new(space, dim).map_err(|_| corrupt(&format!("vectors of {dim} values")))?;
        for c in store.centre.iter_mut() {
            *c = r.f32()?;
        }
        if store.centre.iter().any(|c| c.is_nan() || c.abs() > 1.0) {
            return Err(corrupt("the centre is not a unit vector's"));
        }
        store.next_id = r.u64()?;
        let count = r.u64()?;
        // Each memory takes at least its id, scale, vector and two lengths.
        if count > (r.remaining() / (dim + 20)) as u64 {
            return Err(corrupt(&format!("it claims {count} memories, more than its length can hold")));
        }
        store.vectors.reserve_exact(count as usize * dim);
        for _ in 0..count {
            let id = r.u64()?;
            let scale = r.f32()?;
            let vector: Vec<i8> = r.take(dim)?.iter().map(|&b| b as i8).collect();
            let text = String::from_utf8(r.sized()?.to_vec()).map_err(|_| corrupt(&format!("memory {id}'s text is not UTF-8")))?;
            let metadata = std::str::from_utf8(r.sized()?).map_err(|_| corrupt(&format!("memory {id}'s metadata is not UTF-8")))?;
            let metadata = compact_json(metadata).map_err(|_| corrupt(&format!("memory {id}'s metadata is not JSON")))?;
            if !(scale.is_finite() && scale >= 0.0) {
                return Err(corrupt(&format!("memory {id}'s vector scale is {scale}")));
            }
            if id == 0 || id >= store.next_id || store.positions.contains_key(&id) {
                return Err(corrupt(&format!("memory id {id} is repeated or out of range")));
            }
            store.insert(Memory { id, text, metadata }, &vector, scale);
        }
        if r.remaining() != 0 {
            return Err(corrupt(&format!("{} bytes follow the last memory", r.remaining())));
        }
        Ok(store)
    }

    /// This store's memories (ids, texts, metadata) in a store of another space, each embedded
    /// again by `embed` — what a store becomes when another model is loaded.
    pub fn reembed(&self, space: &str, dim: usize, embed: &mut dyn FnMut(&str) -> Result<Vec<f32>>) -> Result<MemoryStore> {
        let mut store = MemoryStore::new(space, dim)?;
        let (_, memories) = self.list(0, usize::MAX);
        for m in memories {
            store.add(m.clone(), &embed(&m.text)?)?;
        }
        store.next_id = self.next_id;
        Ok(store)
    }

    /// An estimate of the heap memory the store holds (vectors, texts, indexes).
    pub fn bytes(&self) -> usize {
        let memories: usize = self.memories.iter().map(|m| m.text.capacity() + m.metadata.capacity()).sum();
        self.vectors.capacity()
            + (self.scales.capacity() + self.centre.capacity()) * 4
            + self.memories.capacity() * std::mem::size_of::<Memory>()
            + memories
            + self.positions.capacity() * 24
            + self.lexical.bytes()
    }

    fn insert(&mut self, memory: Memory, vector: &[i8], scale: f32) {
        self.lexical.add(memory.id, &memory.text);
        self.positions.insert(memory.id, self.memories.len());
        self.memories.push(memory);
        self.vectors.extend_from_slice(vector);
        self.scales.push(scale);
    }

    /// `vector` at unit length, if it has this store's width and finite values.
    fn checked(&self, vector: &[f32]) -> Result<Vec<f32>> {
        if vector.len() != self.dim {
            return Err(Error::invalid_options(format!("the vector has {} values but this store's have {}", vector.len(), self.dim)));
        }
        if vector.iter().any(|x| !x.is_finite()) {
            return Err(Error::invalid_options("the vector has a value that is not a finite number"));
        }
        let mut v = vector.to_vec();
        super::embed::normalize(&mut v);
        Ok(v)
    }
}

fn compact_json(text: &str) -> Result<String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| Error::invalid_options(format!("the metadata is not JSON: {e}")))?;
    Ok(value.to_string())
}

/// int8 values and the scale that maps them back (`x ≈ q · scale`).
fn quantize(v: &[f32]) -> (Vec<i8>, f32) {
    let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if max == 0.0 {
        return (vec![0; v.len()], 0.0);
    }
    let scale = max / 127.0;
    (v.iter().map(|x| (x / scale).round() as i8).collect(), scale)
}

/// An int8 dot product, written for each target's vectorizer. Measured over 50,000 × 768: wasm
/// SIMD128 takes 10 ms as one running sum (which becomes `i32x4.dot_i16x8_s`) and 17 ms in
/// blocks; x86-64 takes 6 ms in blocks of 32 and 10 ms as one running sum.
fn dot(a: &[i8], b: &[i8]) -> i32 {
    let sum = |a: &[i8], b: &[i8]| a.iter().zip(b).map(|(&x, &y)| x as i32 * y as i32).sum::<i32>();
    #[cfg(target_arch = "wasm32")]
    return sum(a, b);
    #[cfg(not(target_arch = "wasm32"))]
    {
        let (blocks_a, blocks_b) = (a.chunks_exact(32), b.chunks_exact(32));
        let tail = sum(blocks_a.remainder(), blocks_b.remainder());
        let block = |(a, b): (&[i8], &[i8])| (0..32).map(|i| a[i] as i32 * b[i] as i32).sum::<i32>();
        blocks_a.zip(blocks_b).map(block).sum::<i32>() + tail
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn corrupt(why: &str) -> Error {
    Error::invalid_options(format!("not a valid memory export: {why}"))
}

/// Reads an export front to back; every read is checked against what is left.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(corrupt(&format!("it ends early (at byte {})", self.bytes.len())));
        }
        self.pos += n;
        Ok(&self.bytes[self.pos - n..self.pos])
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn f32(&mut self) -> Result<f32> {
        Ok(f32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    /// A u32 length, then that many bytes.
    fn sized(&mut self) -> Result<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantized_cosines_are_within_a_hundredth() {
        let mut rng = crate::rng::SplitMix(3);
        let mut v = |_| -> Vec<f32> {
            let mut v: Vec<f32> = (0..768).map(|_| rng.next_f64() as f32 - 0.5).collect();
            super::super::embed::normalize(&mut v);
            v
        };
        let (a, b) = (v(0), v(1));
        let exact: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        let ((qa, sa), (qb, sb)) = (quantize(&a), quantize(&b));
        assert!((dot(&qa, &qb) as f32 * sa * sb - exact).abs() < 0.01);
        assert!((dot(&qa, &qa) as f32 * sa * sa - 1.0).abs() < 0.01);
    }
}
