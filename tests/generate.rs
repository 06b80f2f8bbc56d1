//! Text generation natively, on the tiny fixtures with the byte tokenizer: streaming UTF-8, stop
//! strings and tokens, penalties and bans, max_tokens and abort, seeds, the prefix and response
//! caches, and saving and restoring a conversation.

mod common;
#[path = "vectors/generate.rs"]
mod vectors;

use std::sync::Arc;
use std::time::Instant;

use echo_engine::backend::{self, BackendKind};
use echo_engine::generate::cache::PrefixCache;
use echo_engine::generate::stop::StopMatcher;
use echo_engine::generate::utf8::Utf8Stream;
use echo_engine::generate::{Completion, GenerateOptions, Session, Step, StopReason};
use echo_engine::ggml::SEQ_CHUNK;
use echo_engine::model::{load_bytes, LoadOptions, Model};
use echo_engine::sampler::{Sampler, SamplerOptions};
use echo_engine::tokenizer::Tokenizer;
use echo_engine::ErrorCode;

const MODEL: &str = "tiny-rwkv-5v2-730K-FP32.bin";
const BIG_CACHE: usize = 64 << 20;

fn load(file: &str) -> Arc<Model> {
    let bytes = std::fs::read(common::fixtures_dir().join(file)).unwrap();
    Arc::new(load_bytes(&bytes, LoadOptions::default()).unwrap())
}

fn session_for(model: &Arc<Model>, cache_bytes: usize) -> Session {
    let start = Instant::now();
    let backend = backend::create(BackendKind::Ggml, model.clone()).unwrap();
    Session::new(model.clone(), backend, Tokenizer::byte(), cache_bytes, Box::new(move || start.elapsed().as_secs_f64() * 1e3))
}

/// A session on the default fixture.
fn session(cache_bytes: usize) -> Session {
    session_for(&load(MODEL), cache_bytes)
}

fn opts(seed: u64, max_tokens: usize) -> GenerateOptions {
    GenerateOptions { sampler: SamplerOptions { seed, ..Default::default() }, max_tokens, ..Default::default() }
}

fn greedy(max_tokens: usize) -> GenerateOptions {
    let sampler = SamplerOptions { temperature: 0.0, presence_penalty: 0.0, frequency_penalty: 0.0, ..Default::default() };
    GenerateOptions { sampler, max_tokens, ..Default::default() }
}

/// Runs a generation step by step; returns the streamed pieces and the completion.
fn run(s: &mut Session, prompt: &str, o: GenerateOptions) -> (Vec<String>, Completion) {
    s.begin(prompt, o).unwrap();
    let mut pieces = Vec::new();
    loop {
        match s.step().unwrap() {
            Step::Text(t) => pieces.push(t),
            Step::Done(c) => return (pieces, c),
        }
    }
}

/// The text the byte tokenizer's tokens make, decoded as the stream must decode it.
fn lossy(tokens: &[u32]) -> String {
    String::from_utf8_lossy(&tokens.iter().map(|&t| t as u8).collect::<Vec<u8>>()).into_owned()
}

/// A tiny deterministic generator for test inputs.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

const PROMPT: &str = "The quick brown fox jumps over the lazy dog. ";
const SYSTEM: &str = "You are a helpful assistant. Answer briefly and precisely, in English. ";

#[test]
fn utf8_stream_splits_anywhere_and_never_breaks_text() {
    let text = "aé中😀𝄞b ж ई 👨‍👩‍👧";
    let bytes = text.as_bytes();
    for i in 0..=bytes.len() {
        for j in i..=bytes.len() {
            let mut s = Utf8Stream::new();
            let out = [s.push(&bytes[..i]), s.push(&bytes[i..j]), s.push(&bytes[j..]), s.finish()].concat();
            assert_eq!(out, text, "split at {i}, {j}");
        }
    }
    // Any bytes, in any pieces, give what a one-shot lossy decode gives.
    let mut rng = Lcg(7);
    for round in 0..500 {
        let mut all: Vec<u8> =
            (0..rng.next(40)).map(|_| [0x41, 0x80, 0xBF, 0xC3, 0xA9, 0xE4, 0xF0, 0x9F, 0xFF, 0xED][rng.next(10)]).collect();
        all.extend_from_slice(&bytes[..rng.next(bytes.len())]);
        let mut s = Utf8Stream::new();
        let mut out = String::new();
        let mut at = 0;
        while at < all.len() {
            let n = 1 + rng.next(4).min(all.len() - at - 1);
            out.push_str(&s.push(&all[at..at + n]));
            at += n;
        }
        out.push_str(&s.finish());
        assert_eq!(out, String::from_utf8_lossy(&all), "round {round}: {all:?}");
    }
}

#[test]
fn stop_strings_are_never_released_whatever_the_split() {
    let text = "one two\n\nUser: three";
    for i in 0..=text.len() {
        if !text.is_char_boundary(i) {
            continue;
        }
        let mut m = StopMatcher::new(&["\n\nUser:".to_string(), "zzz".to_string()]);
        let a = m.push(&text[..i]);
        let b = if a.stopped { a.clone() } else { m.push(&text[i..]) };
        assert!(b.stopped, "split at {i}");
        assert_eq!([a.text, if a.stopped { String::new() } else { b.text }].concat(), "one two", "split at {i}");
    }
}

#[test]
#[cfg_attr(not(echo_fixtures), ignore = "fixtures not found at ../shared/fixtures/rwkv-tiny")]
fn streamed_text_is_valid_and_adds_up_to_the_completion() {
    let mut s = session(0);
    // Hot sampling over the byte vocabulary produces invalid and split sequences.
    let mut o = opts(3, 200);
    o.sampler.temperature = 2.0;
    o.sampler.top_p = 1.0;
    let (pieces, c) = run(&mut s, PROMPT, o);
    assert_eq!(c.stop_reason, StopReason::Length);
    assert_eq!(c.tokens.len(), 200);
    assert_eq!(pieces.concat(), c.text);
    assert_eq!(c.text, lossy(&c.tokens));
    assert!(c.tokens.iter().any(|&t| t >= 0x80), "the test needs non-ASCII bytes");
    assert_eq!(c.stats.generated_tokens, 200);
    assert_eq!(c.stats.prompt_tokens, PROMPT.len());
    assert!(c.stats.decode_tokens_per_s > 0.0 && c.stats.prompt_tokens_per_s > 0.0);
    // One of 200 steps: above zero, and at most their mean times 200.
    assert!(c.stats.decode_ms_median > 0.0 && c.stats.decode_ms_median <= c.stats.decode_ms, "{:?}", c.stats);
}

#[test]
#[cfg_attr(not(echo_fixtures), ignore = "fixtures not found at ../shared/fixtures/rwkv-tiny")]
fn stop_strings_and_stop_tokens_end_generation_across_tokens() {
    let mut s = session(0);
    let (_, free) = run(&mut s, PROMPT, greedy(64));
    // Each byte is a token, so a 3-character stop string spans three tokens.
    let chars: Vec<(usize, char)> = free.text.char_indices().collect();
    let (at, _) = chars[20];
    let end = chars.get(23).map_or(free.text.len(), |&(i, _)| i);
    let stop = free.text[at..end].to_string();
    let first = free.text.find(&stop).unwrap();

    s.reset();
    let mut o = greedy(64);
    o.stop = vec![stop.clone()];
    let (pieces, c) = run(&mut s, PROMPT, o);
    assert_eq!(c.stop_reason, StopReason::Stop);
    assert_eq!(c.text, free.text[..first]);
    assert_eq!(pieces.concat(), c.text);
    assert!(pieces.iter().all(|p| !p.contains(&stop)));

    // A stop token: its text is not returned, the text before it is.
    let token = free.tokens[10];
    let k = free.tokens.iter().position(|&t| t == token).unwrap(); // its first occurrence
    s.reset();
    let mut o = greedy(64);
    o.stop_tokens = vec![token];
    let (pieces, c) = run(&mut s, PROMPT, o);
    assert_eq!(c.stop_reason, StopReason::Stop);
    assert_eq!(c.tokens, free.tokens[..=k]);
    assert_eq!(c.text, lossy(&free.tokens[..k]));
    assert_eq!(pieces.concat(), c.text);
}

#[test]
#[cfg_attr(not(echo_fixtures), ignore = "fixtures not found at ../shared/fixtures/rwkv-tiny")]
fn penalties_bias_and_bans_change_the_distribution() {
    let mut s = session(0);
    let logits = s.eval_tokens(PROMPT.as_bytes().iter().map(|&b| b as u32).collect::<Vec<_>>().as_slice()).unwrap();
    let softmax = |l: &[f32]| {
        let max = l.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let e: Vec<f64> = l.iter().map(|&v| ((v - max) as f64).exp()).collect();
        let sum: f64 = e.iter().sum();
        e.into_iter().map(|v| v / sum).collect::<Vec<f64>>()
    };
    let top = (0..256).max_by(|&a, &b| logits[a].total_cmp(&logits[b])).unwrap();
    let opts = SamplerOptions {
        presence_penalty: 0.5,
        frequency_penalty: 0.25,
        penalty_decay: 0.5,
        logit_bias: vec![(65, 3.0)],
        banned_tokens: vec![66],
        ..Default::default()
    };
    let mut sampler = Sampler::new(opts, 256).unwrap();
    sampler.accept(top as u32);
    sampler.accept(top as u32); // decayed count: 1 * 0.5 + 1 = 1.5
    let mut adjusted = logits.clone();
    sampler.adjust(&mut adjusted);
    assert_eq!(adjusted[top], logits[top] - (0.5 + 1.5 * 0.25));
    assert_eq!(adjusted[65], logits[65] + 3.0);
    assert_eq!(adjusted[66], f32::NEG_INFINITY);
    let (p, q) = (softmax(&logits), softmax(&adjusted));
    assert!(q[top] < p[top] && q[65] > p[65] && q[66] == 0.0 && p[66] > 0.0);

    // In generation: greedy repeats itself; a strong presence penalty makes every token new,
    // a ban keeps a token out, a bias forces one.
    s.reset();
    let (_, plain) = run(&mut s, PROMPT, greedy(48));
    let distinct = |t: &[u32]| t.iter().collect::<std::collections::HashSet<_>>().len();
    assert!(distinct(&plain.tokens) < plain.tokens.len(), "greedy output should repeat tokens");
    s.reset();
    let mut o = greedy(48);
    o.sampler.presence_penalty = 1000.0;
    let (_, penalised) = run(&mut s, PROMPT, o);
    assert_eq!(distinct(&penalised.tokens), 48);
    s.reset();
    let mut o = greedy(48);
    o.sampler.banned_tokens = vec![plain.tokens[0]];
    let (_, banned) = run(&mut s, PROMPT, o);
    assert!(!banned.tokens.contains(&plain.tokens[0]));
    s.reset();
    let mut o = greedy(8);
    o.sampler.logit_bias = vec![(b'Q' as u32, 1000.0)];
    let (_, biased) = run(&mut s, PROMPT, o);
    assert_eq!(biased.text, "QQQQQQQQ");
}

#[test]
#[cfg_attr(not(echo_fixtures), ignore = "fixtures not found at ../shared/fixtures/rwkv-tiny")]
fn max_tokens_and_abort_are_honoured() {
    let mut s = session(0);
    let (_, c) = run(&mut s, PROMPT, opts(1, 5));
    assert_eq!((c.tokens.len(), c.stop_reason), (5, StopReason::Length));
    let (pieces, c) = run(&mut s, "", opts(1, 0));
    assert_eq!((c.tokens.len(), c.stop_reason, pieces.concat()), (0, StopReason::Length, String::new()));

    // Abort in the middle of decoding: what was generated is kept.
    s.reset();
    s.begin(PROMPT, opts(1, 100)).unwrap();
    while s.tokens().len() < PROMPT.len() + 3 {
        s.step().unwrap();
    }
    assert_eq!(s.begin("x", opts(1, 1)).unwrap_err().code, ErrorCode::Busy);
    assert_eq!(s.eval_tokens(&[1]).unwrap_err().code, ErrorCode::Busy);
    let c = s.abort().unwrap();
    assert_eq!((c.tokens.len(), c.stop_reason), (3, StopReason::Abort));
    assert!(!s.is_active() && s.abort().is_none());
    assert_eq!(s.step().unwrap_err().code, ErrorCode::InvalidOptions);

    // Abort while the prompt is ingested: one chunk evaluated, no tokens.
    s.reset();
    let long = "abcdefghij".repeat(10);
    s.begin(&long, opts(1, 10)).unwrap();
    assert_eq!(s.step().unwrap(), Step::Text(String::new()));
    let c = s.abort().unwrap();
    assert_eq!((c.tokens.len(), c.stop_reason, c.stats.evaluated_prompt_tokens), (0, StopReason::Abort, SEQ_CHUNK));

    // complete() aborts when the callback says so.
    s.reset();
    let mut calls = 0;
    let c = s
        .complete(PROMPT, opts(1, 100), &mut |t| {
            calls += usize::from(!t.is_empty());
            calls < 4
        })
        .unwrap();
    assert_eq!(c.stop_reason, StopReason::Abort);
    assert!(c.tokens.len() < 100);
}

#[test]
#[cfg_attr(not(echo_fixtures), ignore = "fixtures not found at ../shared/fixtures/rwkv-tiny")]
fn bad_requests_are_typed_errors() {
    let mut s = session(BIG_CACHE);
    let code = |r: echo_engine::Result<()>| r.unwrap_err().code;
    assert_eq!(code(s.begin("", opts(1, 4))), ErrorCode::InvalidOptions);
    let mut o = opts(1, 4);
    o.sampler.temperature = -1.0;
    assert_eq!(code(s.begin("x", o)), ErrorCode::InvalidOptions);
    let mut o = opts(1, 4);
    o.stop = vec![String::new()];
    assert_eq!(code(s.begin("x", o)), ErrorCode::InvalidOptions);
    let mut o = opts(1, 4);
    o.stop_tokens = vec![256];
    assert_eq!(code(s.begin("x", o)), ErrorCode::InvalidOptions);
    assert_eq!(s.eval_tokens(&[1, 300]).unwrap_err().code, ErrorCode::InvalidOptions);
    assert_eq!(s.eval_tokens(&[]).unwrap_err().code, ErrorCode::InvalidOptions);
    // None of that changed the conversation.
    assert!(s.tokens().is_empty() && !s.is_active());
}

#[test]
#[cfg_attr(not(echo_fixtures), ignore = "fixtures not found at ../shared/fixtures/rwkv-tiny")]
fn seeded_generation_gives_the_bytes_pinned_for_every_runtime() {
    for &(file, expected) in vectors::SEEDED {
        let model = load(file);
        let c = run(&mut session_for(&model, 0), vectors::PROMPT, opts(vectors::SEED, vectors::MAX_TOKENS)).1;
        let tokens: Vec<u8> = c.tokens.iter().map(|&t| t as u8).collect();
        assert_eq!(tokens, expected, "{file}: got {:?}", String::from_utf8_lossy(&tokens));
        assert_eq!(c.text, String::from_utf8_lossy(expected), "{file}");
    }
}

#[test]
#[cfg_attr(not(echo_fixtures), ignore = "fixtures not found at ../shared/fixtures/rwkv-tiny")]
fn warming_up_changes_nothing_a_user_sees() {
    let model = load(MODEL);
    let (mut cold, mut warm) = (session_for(&model, BIG_CACHE), session_for(&model, BIG_CACHE));
    warm.warm_up().unwrap();
    assert!(warm.tokens().is_empty() && !warm.is_active() && warm.prefix_cache().is_empty());
    assert_eq!(warm.save_state(), cold.save_state());
    for prompt in [PROMPT, SYSTEM, PROMPT] {
        let (a, b) = (run(&mut cold, prompt, opts(5, 24)).1, run(&mut warm, prompt, opts(5, 24)).1);
        assert_eq!((&a.text, &a.tokens, a.stop_reason), (&b.text, &b.tokens, b.stop_reason));
        let counts = |c: &Completion| {
            let s = &c.stats;
            (s.prompt_tokens, s.cached_tokens, s.evaluated_prompt_tokens, s.generated_tokens, s.from_response_cache)
        };
        assert_eq!(counts(&a), counts(&b));
        assert_eq!(cold.save_state(), warm.save_state());
        assert_eq!((cold.prefix_cache().len(), cold.prefix_cache().bytes()), (warm.prefix_cache().len(), warm.prefix_cache().bytes()));
    }
}

#[test]
#[cfg_attr(not(echo_fixtures), ignore = "fixtures not found at ../shared/fixtures/rwkv-tiny")]
fn same_seed_same_output_and_another_seed_differs() {
    let model = load(MODEL);
    let gen = |seed| run(&mut session_for(&model, 0), PROMPT, opts(seed, 64)).1;
    let (a, b, c) = (gen(11), gen(11), gen(12));
    assert_eq!(a.tokens, b.tokens);
    assert_eq!(a.text, b.text);
    assert_ne!(a.tokens, c.tokens);
}

#[test]
#[cfg_attr(not(echo_fixtures), ignore = "fixtures not found at ../shared/fixtures/rwkv-tiny")]
fn splitting_a_sequence_does_not_change_the_logits() {
    // What makes cache hits exact: the state after a prefix is the same however it was chunked.
    let tokens: Vec<u32> = (0..3 * SEQ_CHUNK as u32 + 5).map(|i| (i * 59 + 7) % 256).collect();
    for &(file, _, _) in common::MODELS {
        let model = load(file);
        let whole = session_for(&model, 0).eval_tokens(&tokens).unwrap();
        let mut s = session_for(&model, 0);
        let mut pieces = None;
        for piece in tokens.chunks(7) {
            pieces = Some(s.eval_tokens(piece).unwrap());
        }
        assert!(pieces.unwrap() == whole, "{file}: chunking changed the logits");
    }
}

#[test]
#[cfg_attr(not(echo_fixtures), ignore = "fixtures not found at ../shared/fixtures/rwkv-tiny")]
fn a_shared_prefix_evaluates_only_new_tokens_with_identical_logits() {
    let model = load(MODEL);
    let mut s = session_for(&model, BIG_CACHE);
    let question = "What is two plus two?";
    // Request 1: the system prompt alone (e.g. warming the cache).
    let (_, c) = run(&mut s, SYSTEM, opts(1, 0));
    assert_eq!((c.stats.cached_tokens, c.stats.evaluated_prompt_tokens), (0, SYSTEM.len()));
    // Request 2: system prompt + question: only the question is evaluated.
    s.reset();
    let warm = run(&mut s, &format!("{SYSTEM}{question}"), opts(5, 16)).1;
    assert_eq!(warm.stats.cached_tokens, SYSTEM.len());
    assert_eq!(warm.stats.evaluated_prompt_tokens, question.len());
    let cold = run(&mut session_for(&model, 0), &format!("{SYSTEM}{question}"), opts(5, 16)).1;
    assert_eq!(cold.stats.evaluated_prompt_tokens, SYSTEM.len() + question.len());
    assert_eq!(warm.tokens, cold.tokens);

    // Logits after a cache hit equal a cold run's, bit for bit.
    let tokens: Vec<u32> = format!("{SYSTEM}Another question?").bytes().map(u32::from).collect();
    s.reset();
    let warm_logits = s.eval_tokens(&tokens).unwrap();
    let cold_logits = session_for(&model, 0).eval_tokens(&tokens).unwrap();
    assert!(warm_logits == cold_logits);

    // Diverging inside an earlier prompt: resumes from the last chunk boundary before the
    // divergence (the state is cached every SEQ_CHUNK tokens).
    s.reset();
    let prompt = format!("{}!{question}", &SYSTEM[..SYSTEM.len() - 2]);
    let diverged = run(&mut s, &prompt, opts(5, 8)).1;
    let boundary = (SYSTEM.len() - 2) / SEQ_CHUNK * SEQ_CHUNK;
    assert!(boundary > 0);
    assert_eq!(diverged.stats.cached_tokens, boundary);
    assert_eq!(diverged.tokens, run(&mut session_for(&model, 0), &prompt, opts(5, 8)).1.tokens);
}

#[test]
#[cfg_attr(not(echo_fixtures), ignore = "fixtures not found at ../shared/fixtures/rwkv-tiny")]
fn a_continued_conversation_matches_a_cold_replay() {
    let model = load(MODEL);
    let turns = [("User: hi\n\nBot:", 12), ("\n\nUser: and then?\n\nBot:", 12), ("", 5)];
    let play = |s: &mut Session| turns.iter().map(|&(p, n)| run(s, p, opts(9, n)).1).collect::<Vec<_>>();
    let mut warm = session_for(&model, BIG_CACHE);
    let first = play(&mut warm);
    let mut cold_session = session_for(&model, 0);
    let cold = play(&mut cold_session);
    for (a, b) in first.iter().zip(&cold) {
        assert_eq!(a.tokens, b.tokens);
    }
    // The reply's last token is fed with the next prompt.
    assert_eq!(first[1].stats.evaluated_prompt_tokens, turns[1].0.len() + 1);
    // Replaying the whole conversation in a fresh one resumes from the cache at every turn.
    warm.reset();
    let again = play(&mut warm);
    for (a, b) in again.iter().zip(&cold) {
        assert_eq!((&a.tokens, &a.text), (&b.tokens, &b.text));
        assert!(a.stats.from_response_cache);
    }
    assert_eq!(warm.tokens(), cold_session.tokens());
}

#[test]
#[cfg_attr(not(echo_fixtures), ignore = "fixtures not found at ../shared/fixtures/rwkv-tiny")]
fn the_response_cache_answers_identical_requests() {
    let model = load(MODEL);
    let mut s = session_for(&model, BIG_CACHE);
    let (_, first) = run(&mut s, PROMPT, opts(4, 20));
    s.reset();
    let (pieces, second) = run(&mut s, PROMPT, opts(4, 20));
    assert!(second.stats.from_response_cache && !first.stats.from_response_cache);
    assert_eq!((second.stats.evaluated_prompt_tokens, second.stats.generated_tokens), (0, 20));
    assert_eq!((&second.text, &second.tokens), (&first.text, &first.tokens));
    assert_eq!(pieces.concat(), first.text);
    // Other options: generated again.
    s.reset();
    let (_, third) = run(&mut s, PROMPT, opts(5, 20));
    assert!(!third.stats.from_response_cache);
    // The conversation after a cached reply continues exactly as after a live one.
    s.reset();
    run(&mut s, PROMPT, opts(4, 20));
    let (_, next) = run(&mut s, " and", opts(4, 10));
    let mut cold = session_for(&model, 0);
    run(&mut cold, PROMPT, opts(4, 20));
    assert_eq!(next.tokens, run(&mut cold, " and", opts(4, 10)).1.tokens);
}

#[test]
#[cfg_attr(not(echo_fixtures), ignore = "fixtures not found at ../shared/fixtures/rwkv-tiny")]
fn the_prefix_cache_never_exceeds_its_bound() {
    let model = load(MODEL);
    let state_bytes = 4 * model.state_len();
    let bound = 3 * state_bytes + 1000;
    let mut s = session_for(&model, bound);
    let mut rng = Lcg(3);
    for round in 0..12 {
        s.reset();
        let prompt: String = (0..1 + rng.next(120)).map(|_| (b'a' + rng.next(6) as u8) as char).collect();
        run(&mut s, &prompt, opts(round as u64, rng.next(20)));
        assert!(s.prefix_cache().bytes() <= bound, "round {round}: {} > {bound}", s.prefix_cache().bytes());
        assert!(!s.prefix_cache().is_empty());
    }
    // Directly: random keys, some too long to store, and states of another size.
    let mut c = PrefixCache::new(10_000, 200, 0);
    let key_room = 10_000 - 4 * 200 * c.capacity();
    for i in 0..500 {
        let key = vec![i as u32; 1 + rng.next(700)];
        let state = vec![i as f32; if rng.next(10) == 0 { 100 } else { 200 }];
        let stored = c.insert(&key, &state, None);
        assert_eq!(stored, 4 * key.len() <= key_room && state.len() == 200);
        assert!(c.bytes() <= 10_000);
        if stored {
            let mut longer = key.clone();
            longer.push(u32::MAX);
            assert_eq!(c.longest_prefix(&longer).map(|(n, s)| (n, s.state.to_vec())), Some((key.len(), state)));
        }
    }
}

#[test]
#[cfg_attr(not(echo_fixtures), ignore = "fixtures not found at ../shared/fixtures/rwkv-tiny")]
fn saved_state_restores_the_conversation_exactly() {
    let model = load(MODEL);
    let mut a = session_for(&model, 0);
    run(&mut a, PROMPT, opts(2, 10));
    let saved = a.save_state();
    let (_, next_a) = run(&mut a, " then", opts(3, 30));
    let mut b = session_for(&model, 0);
    b.load_state(&saved).unwrap();
    let (_, next_b) = run(&mut b, " then", opts(3, 30));
    assert_eq!((&next_a.tokens, &next_a.text), (&next_b.tokens, &next_b.text));
    assert_eq!(a.tokens(), b.tokens());
    // Saved in the middle of ingesting a prompt: still exact.
    let mut c = session_for(&model, 0);
    c.begin(&"xyz ".repeat(20), opts(1, 5)).unwrap();
    c.step().unwrap();
    c.abort();
    let saved = c.save_state();
    let rest_c = run(&mut c, "!", opts(1, 5)).1;
    let mut d = session_for(&model, 0);
    d.load_state(&saved).unwrap();
    assert_eq!(run(&mut d, "!", opts(1, 5)).1.tokens, rest_c.tokens);
}

#[test]
#[cfg_attr(not(echo_fixtures), ignore = "fixtures not found at ../shared/fixtures/rwkv-tiny")]
fn bad_state_bytes_are_refused_and_change_nothing() {
    let model = load(MODEL);
    let mut s = session_for(&model, 0);
    run(&mut s, PROMPT, opts(2, 4));
    let good = s.save_state();
    let mut bad: Vec<Vec<u8>> = vec![Vec::new(), b"ECHOSTAT".to_vec(), good[..good.len() - 1].to_vec(), [good.as_slice(), &[0]].concat()];
    let mut rng = Lcg(5);
    for _ in 0..20 {
        bad.push(good[..rng.next(good.len())].to_vec());
    }
    let patched = |at: usize, v: u32| {
        let mut b = good.clone();
        b[at..at + 4].copy_from_slice(&v.to_le_bytes());
        b
    };
    bad.push(patched(0, 0)); // magic
    bad.push(patched(8, 2)); // version
    bad.push(patched(12, 7)); // architecture
    bad.push(patched(16, 65536)); // n_vocab
    bad.push(patched(36, 1 << 30)); // fed > tokens
    bad.push(patched(40, 0)); // logits flag off: the logits become stray bytes
    bad.push(patched(44, f32::NAN.to_bits())); // a state value
    bad.push(patched(good.len() - 4, f32::INFINITY.to_bits())); // a logit
    let mut other = session_for(&load("tiny-rwkv-7v0-834K-FP32.bin"), 0);
    run(&mut other, PROMPT, opts(2, 4));
    bad.push(other.save_state());
    for (i, b) in bad.iter().enumerate() {
        assert_eq!(s.load_state(b).unwrap_err().code, ErrorCode::InvalidOptions, "case {i}");
    }
    assert_eq!(s.save_state(), good);
    s.load_state(&good).unwrap();
}
