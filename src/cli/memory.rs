//! The memory commands: `embed` (print L2-normalised embeddings), `remember`, `recall`, `forget`
//! and `list` on a memory file (`--memory-path`, the file `EchoEngine.create({ memoryPath })`
//! writes too), and `bench --memories N` (recall speed and bytes per memory).

use super::{backend_kind, load, read_all, text, Args, Io};
use crate::backend;
use crate::error::{json_string, Result};
use crate::generate::Session;
use crate::memory::{Embedder, MemoryStore, Pooling, Stores, DEFAULT_STORE};
use crate::rng::SplitMix;

pub(super) const EMBED_OPTIONS: &[&str] = &["model", "tokenizer", "vocab", "text", "pooling", "backend"];
pub(super) const REMEMBER_OPTIONS: &[&str] =
    &["model", "tokenizer", "vocab", "text", "pooling", "backend", "memory-path", "metadata", "store"];
pub(super) const RECALL_OPTIONS: &[&str] = &["model", "tokenizer", "vocab", "query", "pooling", "backend", "memory-path", "k", "store"];
pub(super) const FORGET_OPTIONS: &[&str] = &["model", "tokenizer", "vocab", "id", "pooling", "backend", "memory-path", "store"];
pub(super) const LIST_OPTIONS: &[&str] =
    &["model", "tokenizer", "vocab", "pooling", "backend", "memory-path", "store", "offset", "limit"];

/// The model's session, with a prefix cache of `cache_bytes`, and its embedder.
pub(super) fn session(args: &Args, io: &mut dyn Io, cache_bytes: usize) -> Result<(Session, Embedder)> {
    let pooling = Pooling::from_name(args.optional("pooling").unwrap_or("mean"))?;
    let kind = backend_kind(args)?;
    let (model, _) = load(args.required("model")?, io)?;
    let tokenizer = text::tokenizer(args, io, Some(model.hparams.n_vocab))?;
    let backend = backend::create(kind, model.clone())?;
    let embedder = Embedder::new(&model, backend.kind(), pooling);
    Ok((Session::new(model, backend, tokenizer, cache_bytes, io.clock()), embedder))
}

pub(super) fn embed(args: &Args, io: &mut dyn Io) -> Result<()> {
    let texts = args.at_least_one("text")?;
    let (mut session, embedder) = session(args, io, 0)?;
    let mut vectors = Vec::with_capacity(texts.len());
    for t in texts {
        let v: Vec<String> = embedder.embed(&mut session, t)?.iter().map(f32::to_string).collect();
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

/// The stores in the memory file `path` (none if there is no such file and `create`); memories
/// another model embedded are embedded again with this one.
pub(super) fn open_stores(path: &str, create: bool, embedder: Embedder, session: &mut Session, io: &mut dyn Io) -> Result<Stores> {
    let mut stores = Stores::new(embedder);
    if !create || io.exists(path) {
        stores.import(session, &read_all(io, path)?, None)?;
    }
    Ok(stores)
}

/// Writes the stores next to `path`, then renames the file over `path`: a crash leaves the old
/// file or the new one, never a torn one.
pub(super) fn save_stores(path: &str, stores: &Stores, io: &mut dyn Io) -> Result<()> {
    let temp = format!("{path}.tmp");
    io.create(&temp)?;
    io.append(&temp, &stores.export(None)?)?;
    io.rename(&temp, path)
}

fn store_name(args: &Args) -> &str {
    args.optional("store").unwrap_or(DEFAULT_STORE)
}

pub(super) fn remember(args: &Args, io: &mut dyn Io) -> Result<()> {
    let texts = args.at_least_one("text")?;
    let path = args.required("memory-path")?;
    let metadata = args.optional("metadata").unwrap_or("null");
    let (mut session, embedder) = session(args, io, 0)?;
    let mut stores = open_stores(path, true, embedder, &mut session, io)?;
    let mut ids = Vec::with_capacity(texts.len());
    for t in texts {
        ids.push(stores.remember(&mut session, store_name(args), t, metadata)?.to_string());
    }
    save_stores(path, &stores, io)?;
    let total = stores.list(store_name(args), 0, 0)?.0;
    io.stdout(&format!("{{\"ids\":[{}],\"memories\":{total}}}", ids.join(",")));
    Ok(())
}

pub(super) fn recall(args: &Args, io: &mut dyn Io) -> Result<()> {
    let query = args.required("query")?;
    let path = args.required("memory-path")?;
    let k = args.number("k", 5)? as usize;
    let (mut session, embedder) = session(args, io, 0)?;
    let mut stores = open_stores(path, false, embedder, &mut session, io)?;
    let hits = stores.recall(&mut session, store_name(args), query, k)?;
    let hits: Vec<String> = hits.iter().map(|h| h.to_json().to_string()).collect();
    io.stdout(&format!("{{\"hits\":[{}]}}", hits.join(",")));
    Ok(())
}

pub(super) fn forget(args: &Args, io: &mut dyn Io) -> Result<()> {
    let ids = args.at_least_one("id")?;
    let path = args.required("memory-path")?;
    let (mut session, embedder) = session(args, io, 0)?;
    let mut stores = open_stores(path, false, embedder, &mut session, io)?;
    let mut forgotten = Vec::new();
    for id in ids {
        let id: u64 = id.parse().map_err(|_| crate::Error::invalid_options(format!("--id must be a memory id, got '{id}'")))?;
        if stores.forget(store_name(args), id)? {
            forgotten.push(id.to_string());
        }
    }
    save_stores(path, &stores, io)?;
    io.stdout(&format!("{{\"forgotten\":[{}]}}", forgotten.join(",")));
    Ok(())
}

pub(super) fn list(args: &Args, io: &mut dyn Io) -> Result<()> {
    let path = args.required("memory-path")?;
    let offset = args.number("offset", 0)? as usize;
    let limit = args.number("limit", 100)? as usize;
    let (mut session, embedder) = session(args, io, 0)?;
    let stores = open_stores(path, false, embedder, &mut session, io)?;
    let (total, items) = stores.list(store_name(args), offset, limit)?;
    let items: Vec<String> = items.into_iter().map(|m| m.to_json().to_string()).collect();
    io.stdout(&format!("{{\"total\":{total},\"items\":[{}]}}", items.join(",")));
    Ok(())
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
