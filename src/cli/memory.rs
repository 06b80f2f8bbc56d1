//! The memory commands: `embed` (print L2-normalised embeddings), `remember` and `recall` on a
//! memory file (`--memory-path`), and `bench --memories N` (recall speed and bytes per memory).

use super::{backend_kind, load, read_all, text, Args, Io};
use crate::backend;
use crate::error::{json_string, Result};
use crate::memory::{Embedder, Hit, MemoryStore, Pooling};
use crate::rng::SplitMix;

pub(super) const EMBED_OPTIONS: &[&str] = &["model", "tokenizer", "vocab", "text", "pooling", "backend"];
pub(super) const REMEMBER_OPTIONS: &[&str] = &["model", "tokenizer", "vocab", "text", "pooling", "backend", "memory-path", "metadata"];
pub(super) const RECALL_OPTIONS: &[&str] = &["model", "tokenizer", "vocab", "query", "pooling", "backend", "memory-path", "k"];

fn embedder(args: &Args, io: &mut dyn Io) -> Result<Embedder> {
    let pooling = Pooling::from_name(args.optional("pooling").unwrap_or("mean"))?;
    let kind = backend_kind(args)?;
    let (model, _) = load(args.required("model")?, io)?;
    let tokenizer = text::tokenizer(args, io, Some(model.hparams.n_vocab))?;
    let backend = backend::create(kind, model.clone())?;
    Ok(Embedder::new(model, backend, tokenizer, pooling))
}

pub(super) fn embed(args: &Args, io: &mut dyn Io) -> Result<()> {
    let texts = args.at_least_one("text")?;
    let mut embedder = embedder(args, io)?;
    let mut vectors = Vec::with_capacity(texts.len());
    for t in texts {
        let v: Vec<String> = embedder.embed(t)?.iter().map(f32::to_string).collect();
        vectors.push(format!("[{}]", v.join(",")));
    }
    io.stdout(&format!(
        "{{\"space\":{},\"dim\":{},\"vectors\":[{}]}}",
        json_string(embedder.space()),
        embedder.dim(),
        vectors.join(",")
    ));
    Ok(())
}

/// The store in `--memory-path` for `embedder`'s vectors; a new one if there is no such file
/// and `create`.
fn open_store(path: &str, create: bool, embedder: &Embedder, io: &mut dyn Io) -> Result<MemoryStore> {
    let mut store = MemoryStore::new(embedder.space(), embedder.dim())?;
    if !create || io.exists(path) {
        store.import(&read_all(io, path)?)?;
    }
    Ok(store)
}

/// Writes the store next to `path`, then renames it over `path`: a crash leaves the old file or
/// the new one, never a torn one.
fn save_store(path: &str, store: &MemoryStore, io: &mut dyn Io) -> Result<()> {
    let temp = format!("{path}.tmp");
    io.create(&temp)?;
    io.append(&temp, &store.export())?;
    io.rename(&temp, path)
}

pub(super) fn remember(args: &Args, io: &mut dyn Io) -> Result<()> {
    let texts = args.at_least_one("text")?;
    let path = args.required("memory-path")?;
    let metadata = args.optional("metadata").unwrap_or("null");
    let mut embedder = embedder(args, io)?;
    let mut store = open_store(path, true, &embedder, io)?;
    let mut ids = Vec::with_capacity(texts.len());
    for t in texts {
        ids.push(store.remember(t, metadata, &embedder.embed(t)?)?.to_string());
    }
    save_store(path, &store, io)?;
    io.stdout(&format!("{{\"ids\":[{}],\"memories\":{}}}", ids.join(","), store.len()));
    Ok(())
}

pub(super) fn recall(args: &Args, io: &mut dyn Io) -> Result<()> {
    let query = args.required("query")?;
    let path = args.required("memory-path")?;
    let k = args.number("k", 5)? as usize;
    let mut embedder = embedder(args, io)?;
    let store = open_store(path, false, &embedder, io)?;
    let hits = store.recall(&embedder.embed(query)?, query, k)?;
    let hits: Vec<String> = hits.iter().map(hit_json).collect();
    io.stdout(&format!("{{\"hits\":[{}]}}", hits.join(",")));
    Ok(())
}

fn hit_json(h: &Hit) -> String {
    format!(
        "{{\"id\":{},\"text\":{},\"score\":{},\"cosine\":{},\"lexical\":{},\"metadata\":{}}}",
        h.memory.id,
        json_string(&h.memory.text),
        h.score,
        h.cosine,
        h.lexical,
        h.memory.metadata
    )
}

/// `bench --memories N --n-embed E [--k 10]`: a store of N memories (seeded random unit vectors,
/// texts of 12 words from a 5,000-word vocabulary), then recall of the top `k` for 20 queries.
pub(super) fn bench_memories(args: &Args, io: &mut dyn Io) -> Result<()> {
    let n = args.number("memories", 50_000)?;
    let dim = args.number("n-embed", 768)? as usize;
    let k = args.number("k", 10)? as usize;
    let mut rng = SplitMix(1);
    let vector = |rng: &mut SplitMix| -> Vec<f32> { (0..dim).map(|_| rng.next_f64() as f32 - 0.5).collect() };
    let text = |rng: &mut SplitMix| -> String {
        let words: Vec<String> = (0..12).map(|_| format!("w{}", rng.next_u64() % 5000)).collect();
        words.join(" ")
    };
    let now = io.clock();
    let mut store = MemoryStore::new("bench", dim)?;
    let start = now();
    for _ in 0..n {
        let (v, t) = (vector(&mut rng), text(&mut rng));
        store.remember(&t, "null", &v)?;
    }
    let remember_ms = (now() - start) / n.max(1) as f64;
    let queries: Vec<(Vec<f32>, String)> = (0..20 + super::bench::WARM_UP_CALLS).map(|_| (vector(&mut rng), text(&mut rng))).collect();
    let mut times = Vec::new();
    for (i, (v, t)) in queries.iter().enumerate() {
        let start = now();
        store.recall(v, t, k)?;
        if i >= super::bench::WARM_UP_CALLS {
            times.push(now() - start);
        }
    }
    let median = super::bench::median(&mut times);
    io.stdout(&format!(
        "{{\"runtime\":\"{}\",\"memories\":{n},\"n_embed\":{dim},\"k\":{k},\"store_bytes\":{},\"bytes_per_memory\":{},\
         \"export_bytes\":{},\"remember_ms_per_memory\":{remember_ms:.4},\"recall_ms_median\":{:.3},\"recall_ms_max\":{:.3}}}",
        io.runtime(),
        store.bytes(),
        store.bytes() / n.max(1) as usize,
        store.export().len(),
        median,
        times[times.len() - 1]
    ));
    Ok(())
}
