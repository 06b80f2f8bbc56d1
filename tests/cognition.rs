//! The memory file (named stores, re-embedding for another model, hostile bytes) and
//! `process(context)` natively, on the trained demo model (`www/models/kjv-3m-*.bin`): all three
//! membranes, confidences from the model's probabilities, branches from the cached prompt state,
//! the store policy, abort, bad input; and `logprobs` against the model's own softmax.

use std::sync::Arc;

use echo_engine::backend::{self, BackendKind};
use echo_engine::cognition::{Context, Event, Process, ProcessOptions};
use echo_engine::generate::{GenerateOptions, Session};
use echo_engine::memory::{Embedder, Pooling, Stores};
use echo_engine::model::{load_bytes, LoadOptions};
use echo_engine::sampler::SamplerOptions;
use echo_engine::tokenizer::Tokenizer;
use echo_engine::ErrorCode;
use serde_json::{json, Value};

const MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/www/models/kjv-3m-Q8_0.bin");
const MODEL_FP16: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/www/models/kjv-3m-FP16.bin");

fn session_on(path: &str, kind: BackendKind) -> (Session, Embedder) {
    let model = Arc::new(load_bytes(&std::fs::read(path).unwrap(), LoadOptions::default()).unwrap());
    let backend = backend::create(kind, model.clone()).unwrap();
    let embedder = Embedder::new(&model, kind, Pooling::Mean);
    (Session::new(model, backend, Tokenizer::byte(), 16 << 20, Box::new(|| 0.0)), embedder)
}

fn session() -> (Session, Stores) {
    let (s, e) = session_on(MODEL, BackendKind::Ggml);
    (s, Stores::new(e))
}

/// Runs `process` to the end; returns the membranes in the order they finished, the streamed
/// text and the response.
fn run(s: &mut Session, stores: &mut Stores, ctx: Value, opts: Value) -> (Vec<String>, String, Value) {
    let ctx = Context::from_json(&ctx).unwrap();
    let opts = ProcessOptions::from_json(&opts).unwrap();
    let mut p = Process::new(ctx, opts, s);
    let (mut order, mut text) = (Vec::new(), String::new());
    loop {
        match p.step(s, stores).unwrap() {
            Event::Membrane(name, _) => order.push(name.to_string()),
            Event::Text(t) => text.push_str(&t),
            Event::Working => {}
            Event::Done(response) => return (order, text, response),
        }
    }
}

fn unit(x: &Value) -> f64 {
    let c = x.as_f64().unwrap_or(f64::NAN);
    assert!((0.0..=1.0).contains(&c), "not a confidence in [0, 1]: {x}");
    c
}

#[test]
fn process_runs_the_three_membranes_and_integrates_them() {
    let (mut s, mut stores) = session();
    stores.remember(&mut s, "default", "My sister lives in Lyon.", "null").unwrap();
    stores.remember(&mut s, "default", "The garden has three apple trees.", "null").unwrap();
    let ctx = json!({ "sessionId": "s1", "userInput": "Where does my sister live?",
        "conversationHistory": [{ "role": "user", "text": "Hello" }, { "role": "assistant", "text": "Peace." }],
        "processingGoals": ["answer briefly"], "metadata": { "page": 1 } });
    let (order, text, r) = run(&mut s, &mut stores, ctx, json!({ "maxTokens": 40, "seed": 3 }));
    assert_eq!(order, ["grammar", "memory", "reasoning"]);
    assert_eq!(text.trim(), r["integratedResponse"].as_str().unwrap());
    for m in ["grammar", "memory", "reasoning"] {
        unit(&r["membranes"][m]["confidence"]);
        assert!(r["membranes"][m]["output"].is_string() && r["membranes"][m]["ms"].as_f64().unwrap() >= 0.0, "{m}");
    }
    unit(&r["confidence"]);
    let memory = &r["membranes"]["memory"];
    assert_eq!(memory["recalled"][0]["text"], "My sister lives in Lyon.");
    assert!(memory["stored"].is_null(), "a question is not stored");
    let prompt = r["integration"]["prompt"].as_str().unwrap();
    assert!(prompt.contains("- My sister lives in Lyon.") && prompt.contains("Goals: answer briefly"), "{prompt}");
    assert!(prompt.contains("User: Hello\n\nAssistant: Peace.\n\nUser: Where does my sister live?\n\nAssistant:"), "{prompt}");
    assert!(prompt.contains(&format!("Your reasoning:\n{}", r["membranes"]["reasoning"]["output"].as_str().unwrap())));
    let steps = r["membranes"]["reasoning"]["steps"].as_array().unwrap();
    assert!(!steps.is_empty());
    steps.iter().for_each(|st| assert!(unit(&st["confidence"]) > 0.0));
    assert_eq!(r["metadata"], json!({ "page": 1 }));
    assert_eq!(r["backend"], "ggml");

    // A statement is stored, and recalled next time.
    let (_, _, r) = run(&mut s, &mut stores, json!({ "userInput": "My brother works in Paris." }), json!({ "maxTokens": 8 }));
    let id = r["membranes"]["memory"]["stored"]["id"].as_u64().expect("a statement is stored");
    assert_eq!(stores.list("default", 0, 10).unwrap().1.last().unwrap().id, id);
    let (_, _, r) = run(&mut s, &mut stores, json!({ "userInput": "Where does my brother work?" }), json!({ "maxTokens": 8, "memory": { "remember": "never" } }));
    assert_eq!(r["membranes"]["memory"]["recalled"][0]["id"].as_u64(), Some(id));
}

/// The confidences are the model's probabilities of what was sampled: greedy decoding picks the
/// likeliest tokens, a high temperature unlikely ones.
#[test]
fn confidences_move_with_the_sampled_tokens_probabilities() {
    let (mut s, mut stores) = session();
    let ctx = json!({ "userInput": "Who made the heaven and the earth?" });
    let reasoning = |r: &Value| r["membranes"]["reasoning"]["confidence"].as_f64().unwrap();
    let (_, _, greedy) = run(&mut s, &mut stores, ctx.clone(), json!({ "temperature": 0, "maxTokens": 32 }));
    let (_, _, hot) = run(&mut s, &mut stores, ctx, json!({ "temperature": 2.5, "topP": 1, "maxTokens": 32 }));
    assert!(reasoning(&greedy) > reasoning(&hot) + 0.1, "{} vs {}", reasoning(&greedy), reasoning(&hot));
    assert!(greedy["confidence"].as_f64().unwrap() > hot["confidence"].as_f64().unwrap() + 0.1);
}

/// Branches are sampled from one cached state after the prompt: only the first evaluates it.
#[test]
fn branches_resume_from_the_cached_prompt_state() {
    let (mut s, mut stores) = session();
    let opts = json!({ "reasoning": { "branches": 3, "maxTokens": 24 }, "maxTokens": 8, "seed": 5 });
    let (_, _, r) = run(&mut s, &mut stores, json!({ "userInput": "What is wisdom?" }), opts);
    let reasoning = &r["membranes"]["reasoning"];
    let branches = reasoning["branches"].as_array().unwrap();
    assert_eq!(branches.len(), 3);
    assert_ne!(branches[0]["text"], branches[1]["text"], "different seeds");
    let prompt_tokens = "User: What is wisdom?\n\nAssistant: Let me think step by step.\n".len();
    assert!(r["stats"]["cachedTokens"].as_u64().unwrap() >= 2 * prompt_tokens as u64, "{}", r["stats"]);
    let agreement = unit(&reasoning["agreement"]);
    let mean = branches.iter().map(|b| unit(&b["agreement"])).sum::<f64>() / 3.0;
    assert!((agreement - mean).abs() < 1e-9);
    // No reasoning at all with 0 branches.
    let (order, _, r) = run(&mut s, &mut stores, json!({ "userInput": "Hi" }), json!({ "reasoning": { "branches": 0 }, "maxTokens": 4 }));
    assert_eq!(order, ["grammar", "memory"]);
    assert!(!r["integration"]["prompt"].as_str().unwrap().contains("Your reasoning"));
}

#[test]
fn an_aborted_process_leaves_the_session_usable() {
    let (mut s, mut stores) = session();
    let greedy = GenerateOptions { sampler: SamplerOptions { temperature: 0.0, ..Default::default() }, max_tokens: 16, ..Default::default() };
    let want = s.complete("In the beginning", greedy.clone(), &mut |_| true).unwrap().text;
    let ctx = Context::from_json(&json!({ "userInput": "Tell me of the flood." })).unwrap();
    let mut p = Process::new(ctx, ProcessOptions::default(), &s);
    for _ in 0..5 {
        p.step(&mut s, &mut stores).unwrap();
    }
    assert!(s.is_active(), "aborted in the middle of the reasoning");
    p.abort(&mut s);
    assert!(!s.is_active());
    s.reset();
    assert_eq!(s.complete("In the beginning", greedy, &mut |_| true).unwrap().text, want);
}

#[test]
fn bad_contexts_and_options_are_invalid_options() {
    for ctx in [json!({}), json!({ "userInput": "  " }), json!({ "userInput": 3 }), json!({ "userInput": "x", "extra": 1 }),
        json!({ "userInput": "x", "conversationHistory": [{ "role": "robot", "text": "x" }] }), json!("text")]
    {
        assert_eq!(Context::from_json(&ctx).unwrap_err().code, ErrorCode::InvalidOptions, "{ctx}");
    }
    for opts in [json!({ "reasoning": { "branches": 99 } }), json!({ "memory": { "remember": "sometimes" } }), json!({ "temprature": 1 }),
        json!({ "memory": { "store": "no spaces" } }), json!({ "responseFormat": { "regex": 1 } }), json!({ "seed": -1 }), json!({ "maxTokens": 1.5 })]
    {
        assert_eq!(ProcessOptions::from_json(&opts).unwrap_err().code, ErrorCode::InvalidOptions, "{opts}");
    }
    // A grammar that does not compile is refused when the answer begins; the session goes on.
    let (mut s, mut stores) = session();
    let ctx = Context::from_json(&json!({ "userInput": "Count." })).unwrap();
    let opts = ProcessOptions::from_json(&json!({ "responseFormat": { "regex": "(" }, "reasoning": { "branches": 0 } })).unwrap();
    let mut p = Process::new(ctx, opts, &s);
    let err = loop {
        match p.step(&mut s, &mut stores) {
            Ok(Event::Done(_)) => panic!("a bad regex was accepted"),
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    assert_eq!(err.code, ErrorCode::InvalidOptions);
    assert!(s.complete("And", GenerateOptions { max_tokens: 4, ..Default::default() }, &mut |_| true).is_ok());
}

/// The answer under a regex ends with the grammar and matches it.
#[test]
fn a_response_format_constrains_the_answer() {
    let (mut s, mut stores) = session();
    let opts = json!({ "responseFormat": { "regex": "[0-9]{1,3} (cubits|talents)" }, "reasoning": { "branches": 0 }, "maxTokens": 16 });
    let (_, _, r) = run(&mut s, &mut stores, json!({ "userInput": "How long was the ark?" }), opts);
    assert_eq!(r["stopReason"], "grammar");
    let answer = r["integratedResponse"].as_str().unwrap();
    let (n, unit_) = answer.split_once(' ').unwrap();
    assert!(n.len() <= 3 && n.bytes().all(|b| b.is_ascii_digit()) && ["cubits", "talents"].contains(&unit_), "{answer}");
    assert_eq!(r["membranes"]["grammar"]["constrained"], true);
}

/// Each logprob is the log softmax of the logits the model gave for that position.
#[test]
fn logprobs_are_the_models_log_softmax() {
    let (mut s, _) = session();
    let opts = GenerateOptions { max_tokens: 6, logprobs: true, sampler: SamplerOptions { seed: 9, ..Default::default() }, ..Default::default() };
    let c = s.complete("And God said", opts, &mut |_| true).unwrap();
    assert_eq!(c.logprobs.len(), c.tokens.len());
    s.reset();
    let mut logits = s.eval_tokens(b"And God said".map(u32::from).as_slice()).unwrap();
    for (i, &t) in c.tokens.iter().enumerate() {
        let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
        let sum: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
        let want = logits[t as usize] as f64 - max - sum.ln();
        assert!((c.logprobs[i] as f64 - want).abs() < 1e-4, "token {i}: {} vs {want}", c.logprobs[i]);
        logits = s.eval_tokens(&[t]).unwrap();
    }
}

/// The memory file holds every store; read back by a session of another model, its memories are
/// embedded again (ids, texts and metadata kept) and recall still works.
#[test]
fn the_memory_file_holds_every_store_and_moves_to_another_model() {
    let (mut s, mut stores) = session();
    stores.remember(&mut s, "default", "My sister lives in Lyon.", r#"{"who":"me"}"#).unwrap();
    stores.remember(&mut s, "default", "The garden has three apple trees.", "null").unwrap();
    stores.remember(&mut s, "work", "The meeting is on Tuesday.", "null").unwrap();
    let file = stores.export(None).unwrap();

    let (mut s2, e2) = session_on(MODEL, BackendKind::Reference);
    let mut same = Stores::new(e2);
    let imported = same.import(&mut s2, &file, None).unwrap();
    assert!(imported.iter().all(|i| !i.reembedded), "ggml and the reference backend share a space");
    assert_eq!(same.export(None).unwrap(), file);

    let (mut s3, e3) = session_on(MODEL_FP16, BackendKind::Ggml);
    let mut other = Stores::new(e3);
    let imported = other.import(&mut s3, &file, None).unwrap();
    assert_eq!(imported.iter().map(|i| (i.store.as_str(), i.memories, i.reembedded)).collect::<Vec<_>>(), [("default", 2, true), ("work", 1, true)]);
    let (_, items) = other.list("default", 0, 10).unwrap();
    assert_eq!((items[0].id, items[0].text.as_str(), items[0].metadata.as_str()), (1, "My sister lives in Lyon.", r#"{"who":"me"}"#));
    assert_eq!(other.recall(&mut s3, "default", "Where does my sister live?", 1).unwrap()[0].memory.id, 1);
    assert_eq!(other.remember(&mut s3, "default", "A new fact.", "null").unwrap(), 3, "ids go on from the file's");
    let moved = stores.for_model(Embedder::new(s3.model(), BackendKind::Ggml, Pooling::Mean), &mut s3).unwrap();
    assert_eq!(moved.list("work", 0, 10).unwrap().0, 1);
}

#[test]
fn hostile_memory_files_are_refused_and_change_nothing() {
    let (mut s, mut stores) = session();
    stores.remember(&mut s, "default", "Keep me.", "null").unwrap();
    let before = stores.export(None).unwrap();
    let mut other = session().1;
    other.remember(&mut s, "x", "One.", "null").unwrap();
    let file = other.export(None).unwrap();
    let mut cases: Vec<(String, Vec<u8>)> = vec![
        ("empty".into(), vec![]),
        ("garbage".into(), b"not a memory file at all".to_vec()),
        ("wrong version".into(), [&file[..8], &9u32.to_le_bytes(), &file[12..]].concat()),
        ("a store too many".into(), [&file[..12], &2u32.to_le_bytes(), &file[16..]].concat()),
        ("trailing bytes".into(), [&file[..], b"!"].concat()),
    ];
    for cut in [9, 15, 20, file.len() / 2, file.len() - 1] {
        cases.push((format!("cut at {cut}"), file[..cut].to_vec()));
    }
    for (what, bytes) in cases {
        let err = stores.import(&mut s, &bytes, None).expect_err(&what);
        assert_eq!(err.code, ErrorCode::InvalidOptions, "{what}");
        assert_eq!(stores.export(None).unwrap(), before, "{what}: the stores changed");
    }
    // A single store's export needs a store name, and a memory file must not get one.
    assert_eq!(stores.import(&mut s, &file, Some("y")).unwrap_err().code, ErrorCode::InvalidOptions);
    for bad in ["", "a b", "../x", &"x".repeat(65)] {
        assert_eq!(stores.remember(&mut s, bad, "t", "null").unwrap_err().code, ErrorCode::InvalidOptions, "{bad:?}");
    }
}
