//! Seeded generation in wasm (Node.js, and headless Chromium: `wasm-pack test --node`, `wasm-pack test --headless --chrome`):
//! the output bytes must equal the pinned ones in tests/vectors/generate.rs, which native runs
//! check too — so Node, Chromium and native give byte-identical text for a seed.
//! The fixtures are embedded at compile time (a browser has no file system).
#![cfg(target_arch = "wasm32")]

#[path = "common/wasm_mode.rs"]
mod wasm_mode;

#[path = "vectors/generate.rs"]
mod vectors;

use std::sync::Arc;

use echo_engine::backend::{self, BackendKind};
use echo_engine::generate::{GenerateOptions, Session, StopReason};
use echo_engine::model::{load_bytes, LoadOptions};
use echo_engine::sampler::SamplerOptions;
use echo_engine::tokenizer::Tokenizer;
use wasm_bindgen_test::*;

#[cfg(echo_fixtures)]
macro_rules! embed {
    ($($f:literal),* $(,)?) => { &[$(($f, include_bytes!(concat!(env!("ECHO_FIXTURES"), "/", $f)) as &[u8])),*] };
}

#[cfg(echo_fixtures)]
const MODELS: &[(&str, &[u8])] = embed!(
    "tiny-rwkv-4v0-660K-Q5_1.bin",
    "tiny-rwkv-5v1-730K-Q5_0.bin",
    "tiny-rwkv-5v2-730K-FP32.bin",
    "tiny-rwkv-6v0-3m-Q5_1.bin",
    "tiny-rwkv-7v0-834K-FP16.bin",
);
#[cfg(not(echo_fixtures))]
const MODELS: &[(&str, &[u8])] = &[];

#[wasm_bindgen_test]
#[cfg_attr(not(echo_fixtures), ignore = "fixtures not found at ../shared/fixtures/rwkv-tiny")]
fn seeded_generation_gives_the_pinned_bytes() {
    for &(file, expected) in vectors::SEEDED {
        let bytes = MODELS.iter().find(|(f, _)| *f == file).expect("every pinned fixture is embedded").1;
        let model = Arc::new(load_bytes(bytes, LoadOptions::default()).unwrap());
        let backend = backend::create(BackendKind::Ggml, model.clone()).unwrap();
        // Timings are not under test.
        let mut session = Session::new(model, backend, Tokenizer::byte(), 1 << 20, Box::new(|| 0.0));
        let opts = GenerateOptions {
            sampler: SamplerOptions { seed: vectors::SEED, ..Default::default() },
            max_tokens: vectors::MAX_TOKENS,
            ..Default::default()
        };
        let c = session.complete(vectors::PROMPT, opts, &mut |_| true).unwrap();
        let tokens: Vec<u8> = c.tokens.iter().map(|&t| t as u8).collect();
        assert_eq!(tokens, expected, "{file}: got {:?}", String::from_utf8_lossy(&tokens));
        assert_eq!(c.text.as_bytes(), String::from_utf8_lossy(expected).as_bytes(), "{file}");
        assert_eq!(c.stop_reason, StopReason::Length);
    }
}

/// A grammar in wasm (Node and Chromium): the byte model's output matches a regex and a GBNF
/// grammar and ends with the grammar; a bad grammar is a typed error and the session goes on.
#[wasm_bindgen_test]
#[cfg_attr(not(echo_fixtures), ignore = "fixtures not found at ../shared/fixtures/rwkv-tiny")]
fn grammar_constrains_the_output() {
    use echo_engine::grammar::Grammar;
    let bytes = MODELS.iter().find(|(f, _)| *f == "tiny-rwkv-5v2-730K-FP32.bin").unwrap().1;
    let model = Arc::new(load_bytes(bytes, LoadOptions::default()).unwrap());
    let backend = backend::create(BackendKind::Ggml, model.clone()).unwrap();
    let mut session = Session::new(model, backend, Tokenizer::byte(), 1 << 20, Box::new(|| 0.0));
    let opts = |grammar, seed| GenerateOptions {
        sampler: SamplerOptions { seed, ..Default::default() },
        max_tokens: 64,
        grammar: Some(grammar),
        ..Default::default()
    };
    let bad = session.begin("x", opts(Grammar::Regex("(".into()), 1)).unwrap_err();
    assert_eq!(bad.code, echo_engine::ErrorCode::InvalidOptions);
    for seed in 0..5 {
        session.reset();
        let c = session.complete("Date: ", opts(Grammar::Regex("[0-9]{4}-[0-9]{2}".into()), seed), &mut |_| true).unwrap();
        assert_eq!(c.stop_reason, StopReason::Grammar);
        let b = c.text.as_bytes();
        assert!(b.len() == 7 && b[4] == b'-' && b.iter().enumerate().all(|(i, c)| i == 4 || c.is_ascii_digit()), "{:?}", c.text);
        session.reset();
        let gbnf = Grammar::Gbnf("root ::= \"(\" [a-z]{1,3} (\",\" [a-z]{1,3}){2} \")\"\n".into());
        let c = session.complete("List: ", opts(gbnf, seed), &mut |_| true).unwrap();
        assert_eq!(c.stop_reason, StopReason::Grammar);
        let inner = c.text.strip_prefix('(').and_then(|t| t.strip_suffix(')')).unwrap_or_else(|| panic!("{:?}", c.text));
        let items: Vec<&str> = inner.split(',').collect();
        assert_eq!(items.len(), 3, "{:?}", c.text);
        assert!(items.iter().all(|i| (1..=3).contains(&i.len()) && i.bytes().all(|b| b.is_ascii_lowercase())), "{:?}", c.text);
    }
}
