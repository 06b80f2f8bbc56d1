//! `bench`: decode and prompt speed of a model; with `--sample`, the cost of sampling each token
//! with the default options too. `bench --sample` without a model times the sampler alone on
//! seeded synthetic logits (`--n-vocab`, `--logit-std`: 1 is flat, larger is more peaked).

use super::{backend_kind, load, Args, Io};
use crate::backend;
use crate::error::{Error, ErrorCode, Result};
use crate::rng::SplitMix;
use crate::sampler::{Sampler, SamplerOptions};

pub(super) const OPTIONS: &[&str] = &["model", "decode", "prompt", "backend", "sample", "n-vocab", "logit-std"];

/// Timed calls are preceded by this many untimed ones: the first calls pay for one-time work (a
/// wasm engine compiles hot functions again with its optimizing tier; buffers are allocated),
/// which is not throughput.
const WARM_UP_CALLS: usize = 4;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}

pub(super) fn bench(args: &Args, io: &mut dyn Io) -> Result<()> {
    if args.flag("sample") && args.optional("model").is_none() {
        return bench_sampler(args, io);
    }
    let path = args.required("model")?;
    let n_decode = args.number("decode", 64)?.max(1) as usize;
    let n_prompt = args.number("prompt", 128)?.max(1) as usize;
    let kind = backend_kind(args)?;
    let (model, load_s) = load(path, io)?;
    let mut backend = backend::create(kind, model.clone())?;
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
        "{{\"runtime\":\"{}\",\"backend\":\"{}\",\"simd\":\"{}\",\"arch\":\"{}\",\"data_type\":\"{}\",\"file_mb\":{:.1},\
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
    if !(std.is_finite() && std >= 0.0) {
        return Err(Error::invalid_options("--logit-std must be a number >= 0"));
    }
    let n = args.number("decode", 64)?.max(1) as usize;
    let mut rng = SplitMix(1);
    // The sum of four uniforms, centred and scaled to a unit variance: close enough to normal.
    let logits: Vec<f32> = (0..n_vocab)
        .map(|_| ((0..4).map(|_| rng.next_f64()).sum::<f64>() - 2.0) * 3f64.sqrt() * std as f64)
        .map(|v| v as f32)
        .collect();
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
