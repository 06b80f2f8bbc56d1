//! `bench`: decode and prompt speed of a model; with `--sample`, the cost of sampling each token
//! with the default options too. `bench --sample` without a model times the sampler alone on
//! seeded synthetic logits (`--n-vocab`, `--logit-std`: 1 is flat, larger is more peaked).
//! With a grammar (`--json-schema FILE`, `--regex RE`, `--lark FILE`, `--gbnf FILE`; the
//! tokenizer as `generate` takes it), the cost of constrained decoding: building the token trie,
//! compiling the grammar, and the mask per token (see `bench_grammar`).

use super::{backend_kind, head_option, load, load_with_head, text, threads, Args, Io};
use crate::backend;
use crate::error::{Error, ErrorCode, Result};
use crate::grammar::{Grammar, Grammars};
use crate::rng::SplitMix;
use crate::sampler::{Sampler, SamplerOptions};
use crate::tokenizer::TokenizerKind;

pub(super) const OPTIONS: &[&str] = &[
    "model", "decode", "prompt", "backend", "sample", "n-vocab", "logit-std", "json-schema", "regex", "lark", "gbnf", "tokenizer",
    "vocab", "memories", "n-embed", "k", "threads", "head",
];

/// Timed calls are preceded by this many untimed ones: the first calls pay for one-time work (a
/// wasm engine compiles hot functions again with its optimizing tier; buffers are allocated),
/// which is not throughput.
pub(super) const WARM_UP_CALLS: usize = 4;

/// Sorts `v` (so its last is the maximum) and returns its median.
pub(super) fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}

pub(super) fn bench(args: &Args, io: &mut dyn Io) -> Result<()> {
    if let Some(grammar) = text::grammar(args, io)? {
        return bench_grammar(args, io, grammar);
    }
    if args.optional("memories").is_some() {
        return super::memory::bench_memories(args, io);
    }
    if args.flag("sample") && args.optional("model").is_none() {
        return bench_sampler(args, io);
    }
    let path = args.required("model")?;
    let n_decode = args.number("decode", 64)?.max(1) as usize;
    let n_prompt = args.number("prompt", 128)?.max(1) as usize;
    let kind = backend_kind(args)?;
    let threads = threads(args)?;
    let (model, load_s) = load_with_head(path, head_option(args)?, io)?;
    let mut backend = backend::create_with_threads(kind, model.clone(), threads)?;
    let n_vocab = model.hparams.n_vocab;
    let token = |i: usize| (i as u32 * 7919 + 13) % n_vocab as u32;
    let mut sampler = args.flag("sample").then(|| Sampler::new(SamplerOptions::default(), n_vocab)).transpose()?;

    let mut logits = vec![0.0f32; n_vocab];
    let prompt: Vec<u32> = (0..n_prompt).map(token).collect();
    let mut state = model.initial_state();
    backend.eval(&prompt[..n_prompt.min(2 * crate::ggml::SEQ_CHUNK)], &mut state, Some(&mut logits))?;
    for i in 0..WARM_UP_CALLS {
        backend.eval(&[token(i)], &mut state, Some(&mut logits))?;
        if let Some(s) = sampler.as_mut() {
            s.clone().sample(&logits);
        }
    }

    let mut state = model.initial_state();
    let now = io.clock();
    let t0 = now();
    backend.eval(&prompt, &mut state, Some(&mut logits))?;
    let prompt_ms = now() - t0;

    // With a sampler, each token is the one sampled from the previous logits, as in `generate`.
    let (mut times, mut sample_times) = (Vec::with_capacity(n_decode), Vec::with_capacity(n_decode));
    let mut next = token(n_prompt);
    for i in 0..n_decode {
        let t = now();
        backend.eval(&[next], &mut state, Some(&mut logits))?;
        times.push(now() - t);
        next = match sampler.as_mut() {
            Some(s) => {
                let t = now();
                let sampled = s.sample(&logits);
                sample_times.push(now() - t);
                sampled
            }
            None => token(n_prompt + i + 1),
        };
    }
    if logits.iter().any(|v| !v.is_finite()) {
        return Err(Error::new(ErrorCode::InvalidModel, "the model produced non-finite logits"));
    }
    let sample_field = match sampler {
        Some(_) => format!(",\"sample_ms_per_token_median\":{:.3}", median(&mut sample_times)),
        None => String::new(),
    };
    io.stdout(&format!(
        "{{\"runtime\":\"{}\",\"backend\":\"{}\",\"threads\":{threads},\"simd\":\"{}\",\"arch\":\"{}\",\"data_type\":\"{}\",\"file_mb\":{:.1},\
         \"load_mb_per_s\":{:.1},\"prompt_tokens\":{n_prompt},\"prompt_tokens_per_s\":{:.1},\"decode_tokens\":{n_decode},\
         \"decode_ms_per_token_median\":{:.3}{sample_field},\"peak_memory_bytes\":{}}}",
        io.runtime(),
        kind.name(),
        backend::simd(),
        model.arch.name(),
        model.header.dtype.name(),
        model.file_bytes as f64 / 1e6,
        model.file_bytes as f64 / 1e6 / load_s.max(1e-9),
        n_prompt as f64 / (prompt_ms / 1000.0).max(1e-9),
        median(&mut times),
        io.peak_memory_bytes()
    ));
    Ok(())
}

/// The sampler alone, with the default options, on `--decode` tokens from the same seeded logits
/// (normally distributed, of standard deviation `--logit-std`; the penalties make each call differ).
fn bench_sampler(args: &Args, io: &mut dyn Io) -> Result<()> {
    let n_vocab = args.number("n-vocab", 65536)?.max(1) as usize;
    let std = args.float("logit-std", 1.0)?;
    let logits = synthetic_logits(n_vocab, std)?;
    let n = args.number("decode", 64)?.max(1) as usize;
    let opts = SamplerOptions::default();
    let nucleus = nucleus_size(&logits, opts.top_p as f64);
    let mut sampler = Sampler::new(opts, n_vocab)?;
    for _ in 0..WARM_UP_CALLS {
        sampler.clone().sample(&logits);
    }
    let now = io.clock();
    let mut times: Vec<f64> = (0..n)
        .map(|_| {
            let t = now();
            sampler.sample(&logits);
            now() - t
        })
        .collect();
    io.stdout(&format!(
        "{{\"runtime\":\"{}\",\"n_vocab\":{n_vocab},\"logit_std\":{std},\"nucleus_tokens\":{nucleus},\"samples\":{n},\
         \"sample_ms_per_token_median\":{:.4}}}",
        io.runtime(),
        median(&mut times)
    ));
    Ok(())
}

/// Constrained decoding of `--decode` tokens (default 256), from a model's logits with
/// `--model`, else from seeded synthetic logits as `bench --sample` has them (`--n-vocab`,
/// `--logit-std`), sampled with the default options among the tokens the grammar allows. When
/// the grammar completes, it starts again (from the compiled-grammar cache) and decoding goes on.
/// Reports the token trie's build time, the grammar's first compile and a cached one, and per
/// token the mask's time (computing the allowed set and advancing the grammar by the token):
/// mean, median and 99th percentile; with a model, the decode time per token with and without
/// the grammar's work.
fn bench_grammar(args: &Args, io: &mut dyn Io, grammar: Grammar) -> Result<()> {
    let n = args.number("decode", 256)?.max(1) as usize;
    let now = io.clock();
    let mut model = match args.optional("model") {
        Some(path) => {
            let (m, _) = load(path, io)?;
            let backend = backend::create(backend_kind(args)?, m.clone())?;
            Some((m, backend))
        }
        None => None,
    };
    let n_vocab = match &model {
        Some((m, _)) => m.hparams.n_vocab,
        None => args.number("n-vocab", 65536)?.max(1) as usize,
    };
    let tokenizer = text::tokenizer(args, io, Some(n_vocab))?;
    let (t, used) = (now(), echo_ggml_sys::mem::used_bytes());
    let mut grammars = Grammars::new(&tokenizer, n_vocab)?;
    let trie_ms = now() - t;
    let trie_bytes = echo_ggml_sys::mem::used_bytes().saturating_sub(used);
    let t = now();
    let mut constraint = grammars.constraint(&grammar)?;
    let compile_ms = now() - t;
    let t = now();
    grammars.constraint(&grammar)?;
    let cached_ms = now() - t;

    let mut logits: Vec<f32> = match &mut model {
        Some((m, backend)) => {
            let mut state = m.initial_state();
            let mut logits = vec![0.0; n_vocab];
            backend.eval(&tokenizer.encode("JSON:\n"), &mut state, Some(&mut logits))?;
            let mut sampler = Sampler::new(SamplerOptions::default(), n_vocab)?;
            let mut decode = |token: u32, logits: &mut [f32]| backend.eval(&[token], &mut state, Some(logits));
            // Warm-up, then a decode step without a grammar: sampling, the model.
            let mut times = Vec::new();
            // As many untimed steps first: the first steps after loading run slower (the wasm
            // engine's tiers, caches), and the grammar's steps come after these.
            let m = n.min(64);
            for i in 0..2 * m + WARM_UP_CALLS {
                let t = now();
                let token = sampler.sample(&logits);
                decode(token, &mut logits)?;
                if i >= m + WARM_UP_CALLS {
                    times.push(now() - t);
                }
            }
            let plain = median(&mut times);
            return bench_grammar_model(io, &grammar, n, (trie_ms, trie_bytes, compile_ms, cached_ms), &mut grammars, constraint, logits, &mut decode, plain, tokenizer.kind());
        }
        None => synthetic_logits(n_vocab, args.float("logit-std", 1.0)?)?,
    };
    let mut sampler = Sampler::new(SamplerOptions::default(), n_vocab)?;
    let (mut mask_times, mut sample_times, mut completed) = (Vec::with_capacity(n), Vec::with_capacity(n), 0);
    for _ in 0..n {
        let token = next_token(&mut sampler, &mut constraint, &logits, &now, (&mut mask_times, &mut sample_times))?;
        if token.is_none() || constraint.is_finished() {
            completed += 1;
            constraint = grammars.constraint(&grammar)?;
        }
        logits.rotate_left(1);
    }
    let setup = (trie_ms, trie_bytes, compile_ms, cached_ms);
    io.stdout(&grammar_json(&io.runtime(), &grammar, n_vocab, tokenizer.kind(), setup, &mut mask_times, &mut sample_times, completed, None));
    Ok(())
}

/// Samples among the allowed tokens and advances the grammar, as a generation does; None when
/// the grammar ended (end of text sampled, or only tokens past the model's outputs allowed).
/// Adds the grammar's time to `mask_ms` and the rest (sampling) to `sample_ms`.
fn next_token(
    sampler: &mut Sampler,
    constraint: &mut crate::grammar::Constraint,
    logits: &[f32],
    now: &dyn Fn() -> f64,
    (mask_ms, sample_ms): (&mut Vec<f64>, &mut Vec<f64>),
) -> Result<Option<u32>> {
    let t = now();
    let allowed = constraint.compute_mask()?;
    let t1 = now();
    let token = sampler.sample_allowed(logits, allowed);
    let t2 = now();
    if let Some(token) = token {
        constraint.advance(token)?;
    }
    mask_ms.push(t1 - t + now() - t2);
    sample_ms.push(t2 - t1);
    Ok(token.filter(|&t| t != constraint.eos()))
}

#[allow(clippy::too_many_arguments)]
fn bench_grammar_model(
    io: &mut dyn Io,
    grammar: &Grammar,
    n: usize,
    setup: (f64, usize, f64, f64),
    grammars: &mut Grammars,
    mut constraint: crate::grammar::Constraint,
    mut logits: Vec<f32>,
    decode: &mut dyn FnMut(u32, &mut [f32]) -> Result<()>,
    plain_ms: f64,
    kind: TokenizerKind,
) -> Result<()> {
    let now = io.clock();
    let mut sampler = Sampler::new(SamplerOptions::default(), logits.len())?;
    let (mut mask_times, mut sample_times, mut decode_times, mut completed) = (Vec::new(), Vec::new(), Vec::new(), 0);
    for _ in 0..n {
        let token = next_token(&mut sampler, &mut constraint, &logits, &now, (&mut mask_times, &mut sample_times))?;
        if token.is_none() || constraint.is_finished() {
            completed += 1;
            constraint = grammars.constraint(grammar)?;
        }
        let t = now();
        decode(token.unwrap_or(constraint.eos()), &mut logits)?;
        decode_times.push(now() - t);
    }
    // A decode step with the grammar: the model, the mask and advancing the grammar, sampling.
    let mut with: Vec<f64> = (0..n).map(|i| decode_times[i] + mask_times[i] + sample_times[i]).collect();
    let decode = (plain_ms, median(&mut with));
    io.stdout(&grammar_json(&io.runtime(), grammar, logits.len(), kind, setup, &mut mask_times, &mut sample_times, completed, Some(decode)));
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn grammar_json(
    runtime: &str,
    grammar: &Grammar,
    n_vocab: usize,
    kind: TokenizerKind,
    (trie_ms, trie_bytes, compile_ms, cached_ms): (f64, usize, f64, f64),
    mask_times: &mut [f64],
    sample_times: &mut [f64],
    completed: usize,
    decode: Option<(f64, f64)>,
) -> String {
    let mean = mask_times.iter().sum::<f64>() / mask_times.len().max(1) as f64;
    mask_times.sort_by(|a, b| a.total_cmp(b));
    let p99 = mask_times.get((mask_times.len() * 99).div_ceil(100).saturating_sub(1)).copied().unwrap_or(0.0);
    let decode = match decode {
        Some((plain, with)) => format!(",\"decode_ms_per_token_median\":{plain:.3},\"decode_with_grammar_ms_per_token_median\":{with:.3}"),
        None => String::new(),
    };
    format!(
        "{{\"runtime\":\"{runtime}\",\"grammar\":\"{}\",\"tokenizer\":\"{}\",\"n_vocab\":{n_vocab},\"trie_ms\":{trie_ms:.3},\"trie_bytes\":{trie_bytes},\
         \"compile_ms\":{compile_ms:.3},\"compile_cached_ms\":{cached_ms:.3},\"tokens\":{},\"completed\":{completed},\
         \"mask_ms_per_token_mean\":{mean:.4},\"mask_ms_per_token_p50\":{:.4},\"mask_ms_per_token_p99\":{p99:.4},\
         \"sample_ms_per_token_median\":{:.4}{decode}}}",
        grammar.kind(),
        kind.name(),
        mask_times.len(),
        median(mask_times),
        median(sample_times),
    )
}

/// Seeded, normally distributed logits of standard deviation `std`.
fn synthetic_logits(n_vocab: usize, std: f32) -> Result<Vec<f32>> {
    if !(std.is_finite() && std >= 0.0) {
        return Err(Error::invalid_options("--logit-std must be a number >= 0"));
    }
    let mut rng = SplitMix(1);
    // The sum of four uniforms, centred and scaled to a unit variance: close enough to normal.
    Ok((0..n_vocab).map(|_| (((0..4).map(|_| rng.next_f64()).sum::<f64>() - 2.0) * 3f64.sqrt() * std as f64) as f32).collect())
}

/// How many of the most likely tokens it takes to cover `top_p` (what the default options keep
/// before any penalty): how flat the distribution is.
fn nucleus_size(logits: &[f32], top_p: f64) -> usize {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
    let mut probs: Vec<f64> = logits.iter().map(|&v| (v as f64 - max).exp()).collect();
    let total: f64 = probs.iter().sum();
    probs.sort_by(|a, b| b.total_cmp(a));
    let mut cumulative = 0.0;
    let below = probs.iter().take_while(|&&p| {
        cumulative += p / total;
        cumulative < top_p
    });
    (below.count() + 1).min(probs.len())
}
