//! Grammar-constrained decoding natively: conformance as a property (every output that ends with
//! the grammar validates, on a random-weight model with the World vocabulary, over many seeds),
//! with independent checkers (the `jsonschema` crate, the `regex` crate, serde_json, a small
//! expression parser); bad grammars are typed errors with the position; determinism; the byte
//! vocabulary; the NeoX vocabulary's end-of-text token; `max_tokens` bounds a grammar that never ends.

#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use echo_engine::backend::{self, BackendKind};
use echo_engine::format::DType;
use echo_engine::generate::{Completion, GenerateOptions, Session, StopReason};
use echo_engine::grammar::Grammar;
use echo_engine::model::{load_bytes, Arch, LoadOptions, Model};
use echo_engine::sampler::SamplerOptions;
use echo_engine::synth::{self, SynthSpec};
use echo_engine::tokenizer::Tokenizer;
use echo_engine::ErrorCode;
use serde_json::Value;

const SEEDS: u64 = 50;
const MAX_TOKENS: usize = 96;

/// The shared cases (also read by tests/node/grammar.test.mjs).
fn cases() -> Value {
    serde_json::from_str(include_str!("vectors/grammars.json")).unwrap()
}

fn world() -> Tokenizer {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/tokenizers/rwkv_vocab_v20230424.txt");
    Tokenizer::world(&std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

/// A random-weight model with the World vocabulary (65,536 outputs), as `synth` makes them.
fn world_model() -> Arc<Model> {
    let spec = SynthSpec {
        arch: Arch::V5_2,
        n_embed: 64,
        n_layer: 2,
        n_vocab: 65536,
        n_ffn: None,
        head_size: None,
        dtype: DType::F16,
        seed: 7,
    };
    Arc::new(load_bytes(&synth::to_vec(&spec).unwrap(), LoadOptions::default()).unwrap())
}

fn session(model: &Arc<Model>, tokenizer: Tokenizer) -> Session {
    let backend = backend::create(BackendKind::Ggml, model.clone()).unwrap();
    Session::new(model.clone(), backend, tokenizer, 8 << 20, Box::new(|| 0.0))
}

fn opts(grammar: Grammar, seed: u64) -> GenerateOptions {
    GenerateOptions {
        sampler: SamplerOptions { seed, ..Default::default() },
        max_tokens: MAX_TOKENS,
        grammar: Some(grammar),
        ..Default::default()
    }
}

fn run(s: &mut Session, prompt: &str, o: GenerateOptions) -> Completion {
    s.reset();
    s.complete(prompt, o, &mut |_| true).unwrap()
}

/// Runs every seed; checks each output that ended with the grammar; returns (grammar, length).
fn conform(s: &mut Session, grammar: Grammar, check: &dyn Fn(&str) -> Result<(), String>) -> (usize, usize) {
    let (mut complete, mut length) = (0, 0);
    for seed in 0..SEEDS {
        let c = run(s, "Output:", opts(grammar.clone(), seed));
        match c.stop_reason {
            StopReason::Grammar => {
                complete += 1;
                if let Err(why) = check(&c.text) {
                    panic!("{} {:?}, seed {seed}: {:?} does not conform: {why}", grammar.kind(), grammar.text(), c.text);
                }
            }
            StopReason::Length => {
                assert_eq!(c.tokens.len(), MAX_TOKENS);
                length += 1;
            }
            other => panic!("seed {seed}: unexpected stop reason {other:?}"),
        }
    }
    (complete, length)
}

#[test]
#[cfg_attr(not(echo_tokenizers), ignore = "tokenizer fixtures not found at ../shared/fixtures/tokenizers")]
fn json_schema_outputs_validate() {
    let model = world_model();
    let mut s = session(&model, world());
    let (mut complete, mut length) = (0, 0);
    let schemas = cases()["schemas"].as_array().unwrap().clone();
    assert!(schemas.len() >= 15);
    for schema in &schemas {
        let validator = jsonschema::options().should_validate_formats(true).build(schema).unwrap();
        let check = |text: &str| {
            let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
            validator.validate(&value).map_err(|e| e.to_string())
        };
        let (c, l) = conform(&mut s, Grammar::JsonSchema(schema.to_string()), &check);
        // Most of a schema's outputs are complete: the grammar is doing the work, not luck.
        assert!(c * 2 >= SEEDS as usize, "{schema}: only {c} of {SEEDS} complete");
        complete += c;
        length += l;
    }
    eprintln!("json schemas: {} schemas x {SEEDS} seeds: {complete} ended 'grammar', {length} 'length'", schemas.len());
}

#[test]
#[cfg_attr(not(echo_tokenizers), ignore = "tokenizer fixtures not found at ../shared/fixtures/tokenizers")]
fn regex_outputs_match() {
    let model = world_model();
    let mut s = session(&model, world());
    let (mut complete, mut length) = (0, 0);
    let regexes = cases()["regexes"].as_array().unwrap().clone();
    for rx in regexes.iter().map(|r| r.as_str().unwrap()) {
        let whole = regex::Regex::new(&format!("^(?:{rx})$")).unwrap();
        let check = |text: &str| if whole.is_match(text) { Ok(()) } else { Err("no whole match".to_string()) };
        let (c, l) = conform(&mut s, Grammar::Regex(rx.to_string()), &check);
        assert!(c * 2 >= SEEDS as usize, "{rx}: only {c} of {SEEDS} complete");
        complete += c;
        length += l;
    }
    eprintln!("regexes: {} x {SEEDS} seeds: {complete} ended 'grammar', {length} 'length'", regexes.len());
}

#[test]
#[cfg_attr(not(echo_tokenizers), ignore = "tokenizer fixtures not found at ../shared/fixtures/tokenizers")]
fn gbnf_outputs_conform() {
    let model = world_model();
    let mut s = session(&model, world());
    let (mut complete, mut length) = (0, 0);
    let grammars = cases()["gbnf"].as_array().unwrap().clone();
    for case in &grammars {
        let check_name = case["check"].as_str().unwrap();
        let whole = check_name.strip_prefix("regex:").map(|rx| regex::Regex::new(&format!("^(?:{rx})$")).unwrap());
        let check = |text: &str| match (&whole, check_name) {
            (Some(rx), _) => if rx.is_match(text) { Ok(()) } else { Err("no whole match".into()) },
            (None, "json") => serde_json::from_str::<Value>(text).map(|_| ()).map_err(|e| e.to_string()),
            (None, "arithmetic") => arithmetic(text),
            _ => panic!("unknown check {check_name}"),
        };
        let (c, l) = conform(&mut s, Grammar::Gbnf(case["grammar"].as_str().unwrap().to_string()), &check);
        assert!(c * 2 >= SEEDS as usize, "{check_name}: only {c} of {SEEDS} complete");
        complete += c;
        length += l;
    }
    eprintln!("gbnf: {} x {SEEDS} seeds: {complete} ended 'grammar', {length} 'length'", grammars.len());
}

/// `expr := term (('+'|'-') term)*`, `term := factor (('*'|'/') factor)*`,
/// `factor := digits | '(' expr ')'`, the whole text.
fn arithmetic(text: &str) -> Result<(), String> {
    fn expr(b: &[u8], i: &mut usize) -> Result<(), String> {
        term(b, i)?;
        while *i < b.len() && (b[*i] == b'+' || b[*i] == b'-') {
            *i += 1;
            term(b, i)?;
        }
        Ok(())
    }
    fn term(b: &[u8], i: &mut usize) -> Result<(), String> {
        factor(b, i)?;
        while *i < b.len() && (b[*i] == b'*' || b[*i] == b'/') {
            *i += 1;
            factor(b, i)?;
        }
        Ok(())
    }
    fn factor(b: &[u8], i: &mut usize) -> Result<(), String> {
        if b.get(*i) == Some(&b'(') {
            *i += 1;
            expr(b, i)?;
            return if b.get(*i) == Some(&b')') { Ok(*i += 1) } else { Err(format!("')' expected at {i}")) };
        }
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        if *i == start { Err(format!("a number expected at {start}")) } else { Ok(()) }
    }
    let (b, mut i) = (text.as_bytes(), 0);
    expr(b, &mut i)?;
    if i == b.len() { Ok(()) } else { Err(format!("trailing text at {i}")) }
}

#[test]
#[cfg_attr(not(echo_tokenizers), ignore = "tokenizer fixtures not found at ../shared/fixtures/tokenizers")]
fn same_seed_same_output_and_sampling_options_apply() {
    let model = world_model();
    let mut s = session(&model, world());
    let schema = Grammar::JsonSchema(cases()["schemas"][0].to_string());
    let a = run(&mut s, "Output:", opts(schema.clone(), 3));
    let b = run(&mut s, "Output:", opts(schema.clone(), 3));
    assert_eq!(a.tokens, b.tokens);
    let outputs: std::collections::HashSet<String> = (0..8).map(|seed| run(&mut s, "Output:", opts(schema.clone(), seed)).text).collect();
    assert!(outputs.len() > 1, "different seeds gave one output");
    // Greedy: the most likely allowed token each time, so always the same, and still valid.
    let greedy = |seed| GenerateOptions { sampler: SamplerOptions { temperature: 0.0, seed, ..Default::default() }, ..opts(schema.clone(), seed) };
    let (g1, g2) = (run(&mut s, "Output:", greedy(1)), run(&mut s, "Output:", greedy(2)));
    assert_eq!(g1.tokens, g2.tokens);
    // The end-of-text token is where the grammar ends, and only there: it is the last token.
    for c in [&a, &g1] {
        if c.stop_reason == StopReason::Grammar {
            assert!(!c.tokens[..c.tokens.len() - 1].contains(&0), "end of text inside the output: {:?}", c.tokens);
        }
    }
}

#[test]
#[cfg_attr(not(echo_tokenizers), ignore = "tokenizer fixtures not found at ../shared/fixtures/tokenizers")]
fn bad_grammars_are_invalid_options_with_the_reason_and_the_engine_goes_on() {
    let model = world_model();
    let mut s = session(&model, world());
    let cases: &[(Grammar, &str)] = &[
        (Grammar::JsonSchema("{\"type\": \"object\",\n \"properties\": {]}".into()), "line 2 column"),
        (Grammar::JsonSchema("{\"type\": \"strin\"}".into()), "strin"),
        (Grammar::JsonSchema("{\"type\": \"object\", \"patternProperties\": {\"^a\": {}}, \"x-unknown\": 1, \"dependentSchemas\": {}}".into()), "dependentSchemas"),
        (Grammar::JsonSchema("{\"type\": \"array\", \"uniqueItems\": true}".into()), "uniqueItems"),
        (Grammar::JsonSchema("{\"$ref\": \"#/$defs/missing\"}".into()), "missing"),
        (Grammar::JsonSchema("[1, 2]".into()), "object or a boolean"),
        (Grammar::Regex("[a-".into()), "regex"),
        (Grammar::Lark("start: foo\n".into()), "foo"),
        (Grammar::Gbnf("root ::= item\n".into()), "line 1, column 10"),
    ];
    for (grammar, reason) in cases {
        let err = s.begin("Output:", opts(grammar.clone(), 1)).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidOptions, "{grammar:?}: {err}");
        assert!(err.message.contains(reason), "{grammar:?}: {:?} does not say {reason:?}", err.message);
        assert!(err.message.starts_with(grammar.kind()), "{:?}", err.message);
        assert!(!s.is_active());
    }
    let c = run(&mut s, "Output:", opts(Grammar::Regex("(yes|no)".into()), 1));
    assert_eq!(c.stop_reason, StopReason::Grammar);
    assert!(c.text == "yes" || c.text == "no", "{:?}", c.text);
}

#[test]
#[cfg_attr(not(echo_tokenizers), ignore = "tokenizer fixtures not found at ../shared/fixtures/tokenizers")]
fn a_grammar_that_never_ends_stops_at_max_tokens() {
    let model = world_model();
    let mut s = session(&model, world());
    for grammar in [Grammar::Gbnf("root ::= \"a\" root\n".into()), Grammar::Lark("start: /[a-z]+/ start\n".into())] {
        match s.begin("Output:", GenerateOptions { max_tokens: 20, ..opts(grammar.clone(), 1) }) {
            // Refusing it at compile time is fine too, as a typed error.
            Err(e) => assert_eq!(e.code, ErrorCode::InvalidOptions, "{grammar:?}"),
            Ok(()) => {
                s.abort();
                let c = run(&mut s, "Output:", GenerateOptions { max_tokens: 20, ..opts(grammar.clone(), 1) });
                assert_eq!(c.stop_reason, StopReason::Length, "{grammar:?}");
                assert_eq!(c.tokens.len(), 20);
            }
        }
    }
}

#[test]
#[cfg_attr(not(echo_fixtures), ignore = "fixtures not found at ../shared/fixtures/rwkv-tiny")]
fn byte_models_end_when_the_grammar_cannot_go_on() {
    let bytes = std::fs::read(common::fixtures_dir().join("tiny-rwkv-5v2-730K-FP32.bin")).unwrap();
    let model = Arc::new(load_bytes(&bytes, LoadOptions::default()).unwrap());
    let mut s = session(&model, Tokenizer::byte());
    for seed in 0..10 {
        let c = run(&mut s, "The year ", opts(Grammar::Regex("[0-9]{4}-(0[1-9]|1[0-2])".into()), seed));
        assert_eq!(c.stop_reason, StopReason::Grammar, "{:?}", c.text);
        assert!(regex::Regex::new("^[0-9]{4}-(0[1-9]|1[0-2])$").unwrap().is_match(&c.text), "{:?}", c.text);
        assert_eq!(c.tokens.len(), 7);
    }
    // A stop string still ends it first.
    let o = GenerateOptions { stop: vec!["1".into()], ..opts(Grammar::Regex("[0-9]{8}".into()), 1) };
    let c = run(&mut s, "x", o);
    assert!(c.stop_reason == StopReason::Stop || !c.text.contains('1'), "{c:?}");
}

#[test]
fn gbnf_converts_to_lark() {
    let lark = echo_engine::grammar::gbnf_to_lark("root ::= [0-9]+ (\",\" [0-9]+)*\n").unwrap();
    assert!(lark.starts_with("start: r0_root\n"), "{lark}");
}

#[test]
fn the_sampler_draws_only_allowed_tokens() {
    use echo_engine::sampler::Sampler;
    let logits: Vec<f32> = (0..100).map(|i| (i % 7) as f32).collect();
    // Tokens 3, 40 and 97 allowed (bits in 32-bit words, lowest first).
    let mut mask = vec![0u32; 4];
    for t in [3usize, 40, 97] {
        mask[t / 32] |= 1 << (t % 32);
    }
    let mut s = Sampler::new(SamplerOptions { top_p: 1.0, ..Default::default() }, 100).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..300 {
        seen.insert(s.sample_allowed(&logits, &mask).unwrap());
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), [3, 40, 97]);
    // Greedy: the best allowed one (97 % 7 = 6 beats 40 % 7 = 5 and 3).
    let mut g = Sampler::new(SamplerOptions { temperature: 0.0, ..Default::default() }, 100).unwrap();
    assert_eq!(g.sample_allowed(&logits, &mask), Some(97));
    // Banned too: the next best allowed; all allowed ones banned: the lowest allowed id.
    let mut b = Sampler::new(SamplerOptions { temperature: 0.0, banned_tokens: vec![97], ..Default::default() }, 100).unwrap();
    assert_eq!(b.sample_allowed(&logits, &mask), Some(40));
    let mut all = Sampler::new(SamplerOptions { temperature: 0.0, banned_tokens: vec![3, 40, 97], ..Default::default() }, 100).unwrap();
    assert_eq!(all.sample_allowed(&logits, &mask), Some(3));
    assert_eq!(all.sample_allowed(&logits, &[0; 4]), None);
}

/// The NeoX (20B) vocabulary: its end of text is token 0, `<|endoftext|>`. Under a grammar that may
/// end or go on, the outputs that end with it end 'grammar' without its text, and all conform.
/// End of text is favoured (a bias of +4), so it ends outputs where the grammar lets it (on a
/// random model, without a bias, whether any of 20 seeds picks it is luck) and would be picked
/// at the start, giving an empty text, if the grammar did not forbid it there.
#[test]
#[cfg_attr(not(echo_tokenizers), ignore = "tokenizer fixtures not found at ../shared/fixtures/tokenizers")]
fn neox_models_end_with_their_end_of_text_token() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/tokenizers/20B_tokenizer.json");
    let tokenizer = Tokenizer::neox(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(tokenizer.decode(&[0]).unwrap(), b"<|endoftext|>");
    let spec = SynthSpec { arch: Arch::V5_2, n_embed: 64, n_layer: 2, n_vocab: 50277, n_ffn: None, head_size: None, dtype: DType::F16, seed: 3 };
    let model = Arc::new(load_bytes(&synth::to_vec(&spec).unwrap(), LoadOptions::default()).unwrap());
    let mut s = session(&model, tokenizer);
    let whole = regex::Regex::new("^[a-z]{1,12}$").unwrap();
    let mut by_eos = 0;
    for seed in 0..20 {
        let mut o = opts(Grammar::Regex("[a-z]{1,12}".into()), seed);
        o.sampler.logit_bias = vec![(0, 4.0)];
        let c = run(&mut s, "Word:", o);
        assert_eq!(c.stop_reason, StopReason::Grammar, "seed {seed}: {c:?}");
        assert!(whole.is_match(&c.text), "seed {seed}: {:?}", c.text);
        by_eos += usize::from(c.tokens.last() == Some(&0));
    }
    assert!(by_eos > 0, "no output ended with the end-of-text token");
}
