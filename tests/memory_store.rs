//! The memory store: remember, recall, forget, list, export and import (hostile imports
//! included), and retrieval quality on a corpus of 100 facts and 44 queries
//! (`tests/fixtures/memory/`): recall@3 of embedding-only, lexical-only and hybrid ranking, with
//! mean-pooled and last-token embeddings, on a random-weight model and the trained fixtures.

mod common;

use std::sync::Arc;

use echo_engine::backend::{self, BackendKind};
use echo_engine::format::DType;
use echo_engine::memory::lexical::words;
use echo_engine::generate::Session;
use echo_engine::memory::{MemoryStore, Pooling};
use echo_engine::model::{load_bytes, Arch, LoadOptions};
use echo_engine::synth::{self, SynthSpec};
use echo_engine::tokenizer::Tokenizer;
use echo_engine::ErrorCode;

/// An embedder with the session whose model it runs.
struct Embedder(Session, echo_engine::memory::Embedder);

impl Embedder {
    fn embed(&mut self, text: &str) -> echo_engine::Result<Vec<f32>> {
        self.1.embed(&mut self.0, text)
    }
    fn space(&self) -> &str {
        self.1.space()
    }
    fn dim(&self) -> usize {
        self.1.dim()
    }
}

fn embedder_on(kind: BackendKind, bytes: &[u8], pooling: Pooling) -> Embedder {
    let model = Arc::new(load_bytes(bytes, LoadOptions::default()).unwrap());
    let backend = backend::create(kind, model.clone()).unwrap();
    let embedder = echo_engine::memory::Embedder::new(&model, kind, pooling);
    Embedder(Session::new(model, backend, Tokenizer::byte(), 0, Box::new(|| 0.0)), embedder)
}

fn embedder(bytes: &[u8], pooling: Pooling) -> Embedder {
    embedder_on(BackendKind::Ggml, bytes, pooling)
}

/// A random-weight byte-vocabulary model, made here.
fn random_model() -> Vec<u8> {
    let spec = SynthSpec { arch: Arch::V7, n_embed: 128, n_layer: 2, n_vocab: 256, n_ffn: None, head_size: None, dtype: DType::F32, seed: 1 };
    synth::to_vec(&spec).unwrap()
}

/// A text longer than one evaluation chunk embeds to a unit vector, the same with ggml and the
/// reference backend; the space names the model and the pooling, and the mock backend's.
#[test]
fn embeddings_are_unit_vectors_the_same_on_both_backends() {
    let model = random_model();
    let text = "A text of more than thirty-two bytes, so that it is evaluated in several chunks.";
    for pooling in [Pooling::Mean, Pooling::Last] {
        let (mut ggml, mut reference) = (embedder(&model, pooling), embedder_on(BackendKind::Reference, &model, pooling));
        let (a, b) = (ggml.embed(text).unwrap(), reference.embed(text).unwrap());
        let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        let cosine: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((norm - 1.0).abs() < 1e-5 && cosine > 0.9999, "{pooling:?}: norm {norm}, cosine {cosine}");
        assert_eq!(ggml.space(), reference.space());
        assert!(ggml.space().starts_with(&format!("v7/128/{}/", pooling.name())), "{}", ggml.space());
        assert_eq!(ggml.embed("").unwrap_err().code, ErrorCode::InvalidOptions);
    }
    let mock = embedder_on(BackendKind::Mock, &model, Pooling::Mean);
    assert!(mock.space().ends_with("/mock"), "{}", mock.space());
}

/// A unit vector of `dim` values from `seed`.
fn unit(dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = echo_engine::rng::SplitMix(seed);
    let mut v: Vec<f32> = (0..dim).map(|_| rng.next_f64() as f32 - 0.5).collect();
    echo_engine::memory::embed::normalize(&mut v);
    v
}

fn store_of(n: u64) -> MemoryStore {
    let mut store = MemoryStore::new("test/16", 16).unwrap();
    for i in 0..n {
        store.remember(&format!("memory number {i} about topic{i}"), &format!("{{\"i\":{i}}}"), &unit(16, i)).unwrap();
    }
    store
}

#[test]
fn remembered_memories_are_recalled_listed_and_forgotten() {
    let mut store = store_of(10);
    // The query's vector is memory 3's, its text names memory 7's rare word.
    let hits = store.recall(&unit(16, 3), "topic7", 3).unwrap();
    let ids: Vec<u64> = hits.iter().map(|h| h.memory.id).collect();
    assert_eq!(hits.len(), 3);
    assert!(ids.contains(&4) && ids.contains(&8), "{hits:?}");
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
    let exact = hits.iter().find(|h| h.memory.id == 4).unwrap();
    assert!((exact.cosine - 1.0).abs() < 0.01 && exact.lexical == 0.0, "{exact:?}");
    let named = hits.iter().find(|h| h.memory.id == 8).unwrap();
    assert_eq!(named.lexical, 1.0);
    assert_eq!(named.memory.metadata, "{\"i\":7}");

    assert!(store.forget(4));
    assert!(!store.forget(4));
    assert!(store.recall(&unit(16, 3), "", 10).unwrap().iter().all(|h| h.memory.id != 4));
    let (total, page) = store.list(2, 3);
    assert_eq!(total, 9);
    assert_eq!(page.iter().map(|m| m.id).collect::<Vec<_>>(), [3, 5, 6]);
    // New ids never reuse forgotten ones.
    assert_eq!(store.remember("again", "null", &unit(16, 99)).unwrap(), 11);
}

/// Like a language model's hidden states: one direction (with an outlier channel) shared by
/// every vector, and small differences. The stored int8 vectors keep cosines within 1e-3.
#[test]
fn cosines_of_nearly_parallel_vectors_stay_exact() {
    let dim = 256;
    let mut common = unit(dim, 1);
    common[0] += 3.0;
    let vector = |seed| {
        let mut v: Vec<f32> = common.iter().zip(unit(dim, seed)).map(|(c, d)| c + 0.05 * d).collect();
        echo_engine::memory::embed::normalize(&mut v);
        v
    };
    let mut store = MemoryStore::new("test/256", dim).unwrap();
    let vectors: Vec<Vec<f32>> = (0..50).map(vector).collect();
    for v in &vectors {
        store.remember("", "null", v).unwrap();
    }
    let query = vector(1000);
    let mut worst = 0.0f32;
    for hit in store.recall(&query, "", 50).unwrap() {
        let exact: f32 = query.iter().zip(&vectors[hit.memory.id as usize - 1]).map(|(a, b)| a * b).sum();
        worst = worst.max((hit.cosine - exact).abs());
    }
    assert!(worst < 1e-3, "a cosine is off by {worst}");
}

#[test]
fn bad_arguments_are_invalid_options() {
    let mut store = store_of(2);
    let code = |r: Result<u64, echo_engine::Error>| r.unwrap_err().code;
    assert_eq!(code(store.remember("x", "{not json", &unit(16, 1))), ErrorCode::InvalidOptions);
    assert_eq!(code(store.remember("x", "{}", &unit(8, 1))), ErrorCode::InvalidOptions);
    assert_eq!(code(store.remember("x", "{}", &[f32::NAN; 16])), ErrorCode::InvalidOptions);
    assert_eq!(store.recall(&unit(15, 1), "x", 1).unwrap_err().code, ErrorCode::InvalidOptions);
    assert_eq!(store.len(), 2);
}

#[test]
fn an_export_imports_back_to_the_same_store() {
    let mut store = store_of(20);
    store.forget(5);
    let bytes = store.export();
    let mut copy = MemoryStore::new("test/16", 16).unwrap();
    copy.import(&bytes).unwrap();
    assert_eq!(copy.list(0, 100), store.list(0, 100));
    assert_eq!(copy.recall(&unit(16, 9), "topic3", 5).unwrap(), store.recall(&unit(16, 9), "topic3", 5).unwrap());
    assert_eq!(copy.export(), bytes);
    assert_eq!(copy.remember("next", "null", &unit(16, 1)).unwrap(), 21);
}

#[test]
fn another_models_vectors_are_refused() {
    let bytes = store_of(3).export();
    for mut other in [MemoryStore::new("test/other", 16).unwrap(), MemoryStore::new("test/16", 32).unwrap()] {
        let err = other.import(&bytes).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidOptions);
        assert!(err.message.contains("another model"), "{}", err.message);
    }
}

#[test]
fn corrupt_or_hostile_imports_are_refused_and_lose_nothing() {
    let bytes = store_of(3).export();
    let mut store = store_of(2);
    let before = store.export();
    let mut refuse = |bad: &[u8], what: &str| {
        let err = store.import(bad).expect_err(what);
        assert_eq!(err.code, ErrorCode::InvalidOptions, "{what}: {}", err.message);
        assert_eq!(store.export(), before, "{what}: the store changed");
    };
    for len in 0..bytes.len() {
        refuse(&bytes[..len], &format!("truncated to {len} bytes"));
    }
    let mut longer = bytes.clone();
    longer.push(0);
    refuse(&longer, "a trailing byte");
    // The count (after magic, version, space, dim, centre, next id) claims 2^60 memories:
    // refused from the length, before anything is allocated for them.
    let count_at = 8 + 4 + 4 + "test/16".len() + 4 + 16 * 4 + 8;
    let mut huge = bytes.clone();
    huge[count_at..count_at + 8].copy_from_slice(&(1u64 << 60).to_le_bytes());
    refuse(&huge, "a huge count");
    // Every single-byte change is either refused or still a valid store of 3 memories.
    for i in 0..bytes.len() {
        let mut altered = bytes.clone();
        altered[i] ^= 0xA5;
        let mut target = store_of(2);
        match target.import(&altered) {
            Ok(()) => assert_eq!(target.len(), 3),
            Err(e) => assert_eq!((e.code, target.len()), (ErrorCode::InvalidOptions, 2), "byte {i}"),
        }
    }
}

#[test]
fn memories_take_under_two_kilobytes_each() {
    let (n, dim) = (5_000, 768);
    let mut store = MemoryStore::new("test/768", dim).unwrap();
    for i in 0..n {
        let text = format!("memory {i}: the user mentioned topic{} on day {}", i % 97, i % 31);
        store.remember(&text, "{}", &unit(dim, i)).unwrap();
    }
    let per_memory = store.bytes() / n as usize;
    println!("{per_memory} bytes per memory ({dim} wide)");
    // 50,000 memories then take under 100 MB, well within the 600 MB cap.
    assert!(per_memory < 2048, "{per_memory} bytes per memory");
}

/// The corpus: facts, and (fact index, query) pairs.
fn corpus() -> (Vec<String>, Vec<(usize, String)>) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/memory");
    let facts: Vec<String> = std::fs::read_to_string(dir.join("facts.txt")).unwrap().lines().map(String::from).collect();
    let queries = std::fs::read_to_string(dir.join("queries.txt")).unwrap();
    let queries: Vec<(usize, String)> = queries
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (n, q) = l.split_once('\t').unwrap();
            (n.parse::<usize>().unwrap() - 1, q.to_string())
        })
        .collect();
    assert!(facts.len() >= 100 && queries.len() >= 30);
    (facts, queries)
}

/// Function words, left out when deciding whether a query shares a content word with its fact.
const FUNCTION_WORDS: &[&str] = &[
    "a", "an", "the", "is", "are", "was", "were", "be", "do", "does", "did", "of", "in", "on", "at", "to", "for", "from", "by",
    "with", "and", "or", "not", "it", "its", "what", "which", "who", "when", "where", "how", "many", "much", "there", "can",
    "i", "my", "you", "your", "he", "his", "she", "her", "they", "their", "we", "our", "s", "that", "this", "into", "as",
];

fn shares_content_word(query: &str, fact: &str) -> bool {
    let fact: Vec<String> = words(fact).collect();
    words(query).any(|w| !FUNCTION_WORDS.contains(&w.as_str()) && fact.contains(&w))
}

/// recall@3 of (embedding only, lexical only, hybrid) over `queries`.
fn recall_at_3(store: &MemoryStore, embedder: &mut Embedder, queries: &[&(usize, String)]) -> [f64; 3] {
    let mut found = [0usize; 3];
    for (fact, query) in queries {
        let id = *fact as u64 + 1;
        let hits = store.recall(&embedder.embed(query).unwrap(), query, store.len()).unwrap();
        let by = |key: fn(&echo_engine::memory::Hit) -> f32| {
            let mut order: Vec<_> = hits.iter().map(|h| (key(h), h.memory.id)).collect();
            order.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            order.iter().take(3).any(|&(_, i)| i == id) as usize
        };
        found[0] += by(|h| h.cosine);
        found[1] += by(|h| h.lexical);
        found[2] += by(|h| h.score);
    }
    found.map(|n| n as f64 / queries.len() as f64)
}

/// Embeds the corpus with each pooling; prints recall@3 of the three rankings on all queries
/// and on those sharing a content word with their fact; returns the hybrid figure on the latter
/// with mean pooling (the embedder's default).
fn evaluate(name: &str, model: &[u8]) -> f64 {
    let (facts, queries) = corpus();
    let sharing: Vec<_> = queries.iter().filter(|(f, q)| shares_content_word(q, &facts[*f])).collect();
    let all: Vec<_> = queries.iter().collect();
    let mut hybrid = 0.0;
    for pooling in [Pooling::Mean, Pooling::Last] {
        let mut embedder = embedder(model, pooling);
        let mut store = MemoryStore::new(embedder.space(), embedder.dim()).unwrap();
        for fact in &facts {
            store.remember(fact, "null", &embedder.embed(fact).unwrap()).unwrap();
        }
        for (label, set) in [("all", &all), ("sharing a content word", &sharing)] {
            let [cosine, lexical, both] = recall_at_3(&store, &mut embedder, set);
            println!(
                "{name}, {} pooling, {} queries ({label}): recall@3 embedding {cosine:.3}, lexical {lexical:.3}, hybrid {both:.3}",
                pooling.name(),
                set.len()
            );
            if pooling == Pooling::Mean && set.len() == sharing.len() {
                hybrid = both;
            }
        }
    }
    hybrid
}

#[test]
fn hybrid_recall_finds_the_fact_on_a_random_weight_model() {
    let hybrid = evaluate("random-weight v7 128x2", &random_model());
    assert!(hybrid >= 0.9, "hybrid recall@3 {hybrid}");
}

/// The demo model (www/models/, trained on the KJV): the best-trained model the project has.
#[test]
fn hybrid_recall_finds_the_fact_on_the_demo_model() {
    let model = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/www/models/kjv-3m-FP16.bin")).unwrap();
    let hybrid = evaluate("demo kjv-3m FP16", &model);
    assert!(hybrid >= 0.9, "hybrid recall@3 {hybrid}");
}

/// Every trained fixture architecture (FP32 where there is one): which embeds best is measured,
/// not assumed (the largest, v6 3M, is not it).
#[test]
#[cfg_attr(not(echo_fixtures), ignore = "fixtures not found at ../shared/fixtures/rwkv-tiny")]
fn hybrid_recall_finds_the_fact_on_trained_models() {
    let files = common::MODELS.iter().filter(|m| m.2 == "FP32" || m.1 == "6v0-3m").map(|m| (m.0, m.1));
    for (file, tag) in files {
        let model = std::fs::read(common::fixtures_dir().join(file)).unwrap();
        let hybrid = evaluate(&format!("trained {tag}"), &model);
        assert!(hybrid >= 0.9, "{file}: hybrid recall@3 {hybrid}");
    }
}
