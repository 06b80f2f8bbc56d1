//! A session's steady path asks the allocator for no state- or logits-sized block. In wasm such
//! blocks, freed and asked for again while small allocations come and go, fragment linear memory,
//! which never shrinks: the 1,000-request soak's wasm memory crept by half a megabyte at a time
//! (issue 12). Counted here natively by the crate's allocator.

use std::sync::Arc;

use echo_engine::backend::{self, BackendKind};
use echo_engine::cognition::{Context, Event, Process, ProcessOptions};
use echo_engine::format::DType;
use echo_engine::generate::{GenerateOptions, Session};
use echo_engine::grammar::Grammar;
use echo_engine::memory::{Embedder, Pooling, Stores};
use echo_engine::model::{load_bytes, Arch, LoadOptions};
use echo_engine::sampler::SamplerOptions;
use echo_engine::synth::{self, SynthSpec};
use echo_engine::tokenizer::Tokenizer;
use echo_ggml_sys::mem::{large_blocks, LARGE_BLOCK};
use serde_json::json;

/// How many blocks of `LARGE_BLOCK` bytes or more `f` asked the allocator for (this binary's only
/// test: no other thread allocates meanwhile).
fn large_blocks_in(f: impl FnOnce()) -> usize {
    let before = large_blocks();
    f();
    large_blocks() - before
}

struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }

    /// Words of lowercase letters, 1 to `max` bytes: prompts shorter and longer than a chunk (32
    /// byte tokens), so the prefix cache holds states with and without logits.
    fn text(&mut self, max: usize) -> String {
        let len = 1 + self.next(max);
        (0..len).map(|_| if self.next(6) == 0 { ' ' } else { (b'a' + self.next(26) as u8) as char }).collect()
    }
}

#[test]
fn requests_after_the_first_allocate_no_state_or_logits_sized_block() {
    let spec = SynthSpec { arch: Arch::V4, n_embed: 256, n_layer: 13, n_vocab: 20_000, n_ffn: None, head_size: None, dtype: DType::F16, seed: 3 };
    let model = Arc::new(load_bytes(&synth::to_vec(&spec).unwrap(), LoadOptions::default()).unwrap());
    // State 66,560 bytes, logits 80,000: both counted.
    assert!(4 * model.state_len() >= LARGE_BLOCK && 4 * model.hparams.n_vocab >= LARGE_BLOCK);
    let backend = backend::create(BackendKind::Ggml, model.clone()).unwrap();
    let mut stores = Stores::new(Embedder::new(&model, BackendKind::Ggml, Pooling::Mean));
    // A prefix cache that fills within the first rounds and then turns over.
    let mut s = Session::new(model.clone(), backend, Tokenizer::byte(), 1 << 20, Box::new(|| 0.0));
    let mut rng = Lcg(11);
    let saved = {
        s.complete("a saved state", GenerateOptions { max_tokens: 4, ..Default::default() }, &mut |_| true).unwrap();
        s.save_state()
    };

    let mut round = |s: &mut Session, i: u64| {
        let opts = |max_tokens| GenerateOptions { max_tokens, sampler: SamplerOptions { seed: i, ..Default::default() }, ..Default::default() };
        // A new conversation, then its continuation.
        s.reset();
        s.complete(&rng.text(80), opts(6), &mut |_| true).unwrap();
        s.complete(&rng.text(10), opts(4), &mut |_| true).unwrap();
        // An aborted generation.
        s.reset();
        s.complete(&rng.text(40), opts(20), &mut |t| t.is_empty()).unwrap();
        // Structured output.
        s.reset();
        let schema = r#"{"type":"object","properties":{"n":{"type":"integer","minimum":0,"maximum":99}},"required":["n"]}"#;
        s.complete("Number:", GenerateOptions { grammar: Some(Grammar::JsonSchema(schema.into())), ..opts(16) }, &mut |_| true).unwrap();
        // Saved to a sink and loaded again, as the wasm engine does with a JS array.
        let mut bytes = 0;
        s.save_state_to(&mut |piece| bytes += piece.len());
        assert_eq!(bytes, s.saved_state_len());
        s.load_state_from(saved.len(), &mut |at, out| out.copy_from_slice(&saved[at..at + out.len()])).unwrap();
        s.complete(&rng.text(10), opts(4), &mut |_| true).unwrap();
        // A refused state leaves the session usable.
        assert!(s.load_state(&saved[..saved.len() - 4]).is_err());
        // Memories, and the cognitive loop with two reasoning branches.
        stores.remember(s, "default", &rng.text(30), "null").unwrap();
        stores.recall(s, "default", &rng.text(30), 3).unwrap();
        let ctx = Context::from_json(&json!({ "userInput": format!("Q {}", rng.text(20)) })).unwrap();
        let process = ProcessOptions::from_json(&json!({ "maxTokens": 12, "reasoning": { "branches": 2, "maxTokens": 12 } })).unwrap();
        let mut p = Process::new(ctx, process, s);
        while !matches!(p.step(s, &mut stores).unwrap(), Event::Done(_)) {}
    };
    for i in 0..4 {
        round(&mut s, i);
    }
    let cache = s.prefix_cache();
    assert_eq!(cache.len(), cache.capacity(), "the cache must be full");
    let counts: Vec<usize> = (4..24).map(|i| large_blocks_in(|| round(&mut s, i))).collect();
    assert!(counts.iter().all(|&n| n == 0), "blocks of {LARGE_BLOCK} bytes or more per round: {counts:?}");
}
