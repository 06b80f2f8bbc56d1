//! The text commands: `generate` (streamed, or one JSON object per prompt with `--json`),
//! `perplexity`, `tokenize` and `detokenize`.

use super::{backend_kind, head_option, load, load_with_head, load_within, memory_limit, parse_tokens, read_all, threads, Args, Io};
use crate::backend;
use crate::error::{json_string, Error, Result};
use crate::generate::{Completion, GenerateOptions, Session};
use crate::grammar::Grammar;
use crate::sampler::SamplerOptions;
use crate::tokenizer::json::Json;
use crate::tokenizer::{kind_for_vocab, Tokenizer, TokenizerKind};

pub(super) const GENERATE_OPTIONS: &[&str] = &[
    "model",
    "head",
    "threads",
    "prompt",
    "tokenizer",
    "vocab",
    "max-tokens",
    "temperature",
    "top-p",
    "top-k",
    "min-p",
    "presence-penalty",
    "frequency-penalty",
    "penalty-decay",
    "seed",
    "stop",
    "stop-tokens",
    "cache-mb",
    "backend",
    "json",
    "memory-limit-mb",
    "json-schema",
    "regex",
    "lark",
    "gbnf",
    "logprobs",
];

/// Room, under `--memory-limit-mb`, for the tokenizer: it is built after the model (its kind
/// depends on the model's vocabulary); World's and NeoX's tables take about 2 MB.
const TOKENIZER_BYTES: u64 = 8 << 20;

/// Runs each `--prompt` as its own request (from a reset conversation) in one session, so later
/// prompts sharing a prefix with earlier ones resume from the prefix cache.
pub(super) fn generate(args: &Args, io: &mut dyn Io) -> Result<()> {
    let prompts = args.at_least_one("prompt")?;
    let mut opts = generate_options(args)?;
    opts.grammar = grammar(args, io)?;
    let kind = backend_kind(args)?;
    let limit = memory_limit(args)?;
    // Under a memory limit the prefix cache takes a sixteenth of it unless told otherwise.
    let default_cache_mb = limit.map_or(64, |l| (l >> 20) / 16).min(64);
    let cache_bytes = args.number("cache-mb", default_cache_mb)?.saturating_mul(1 << 20);
    let path = args.required("model")?;
    let head = head_option(args)?;
    let model = match limit {
        Some(limit) => load_within(path, limit, cache_bytes + TOKENIZER_BYTES, head, io)?,
        None => load_with_head(path, head, io)?.0,
    };
    let tokenizer = tokenizer(args, io, Some(model.hparams.n_vocab))?;
    let backend = backend::create_with_threads(kind, model.clone(), threads(args)?)?;
    let mut session = Session::new(model, backend, tokenizer, usize::try_from(cache_bytes).unwrap_or(usize::MAX), io.clock());
    session.warm_up()?;
    let json = args.flag("json");
    for prompt in prompts {
        session.reset();
        let completion = session.complete(prompt, opts.clone(), &mut |text| {
            if !json {
                io.stdout_raw(text);
            }
            true
        })?;
        io.stdout(&if json { completion_json(&completion) } else { String::new() });
    }
    Ok(())
}

pub(super) const PERPLEXITY_OPTIONS: &[&str] = &["model", "file", "tokenizer", "vocab", "window", "backend"];

/// The model's perplexity per token on a text file (`--file`): the tokens in windows of `--window`, each
/// window from the initial state, every next token predicted; the remainder that fills no window
/// is left out. This is how the demo model's training script measures it in PyTorch
/// (`scripts/train-demo-model.py`), so the two figures compare.
pub(super) fn perplexity(args: &Args, io: &mut dyn Io) -> Result<()> {
    let window = args.number("window", 128)? as usize;
    if window == 0 {
        return Err(Error::invalid_options("--window must be at least 1"));
    }
    let kind = backend_kind(args)?;
    let (model, _) = load(args.required("model")?, io)?;
    let tokenizer = tokenizer(args, io, Some(model.hparams.n_vocab))?;
    let path = args.required("file")?;
    let text = String::from_utf8(read_all(io, path)?).map_err(|_| Error::invalid_options(format!("--file: '{path}' is not UTF-8 text")))?;
    let tokens = tokenizer.encode(&text);
    let windows = tokens.len().saturating_sub(1) / window;
    if windows == 0 {
        return Err(Error::invalid_options(format!(
            "--file: '{path}' has {} tokens, too few for one window of {window} and the token after it",
            tokens.len()
        )));
    }
    let now = io.clock();
    let start = now();
    let mut backend = backend::create(kind, model.clone())?;
    let mut logits = vec![0.0f32; model.hparams.n_vocab];
    let mut nll = 0.0f64;
    for w in 0..windows {
        let mut state = model.initial_state();
        for i in w * window..(w + 1) * window {
            backend.eval(&tokens[i..=i], &mut state, Some(&mut logits))?;
            nll += negative_log_likelihood(&logits, tokens[i + 1] as usize);
        }
    }
    let n = windows * window;
    io.stdout(&format!(
        "{{\"tokens\":{n},\"window\":{window},\"windows\":{windows},\"nll_per_token\":{},\"perplexity\":{},\"ms_per_token\":{:.4}}}",
        nll / n as f64,
        (nll / n as f64).exp(),
        (now() - start) / n as f64
    ));
    Ok(())
}

/// -log softmax(logits)[target], in f64.
fn negative_log_likelihood(logits: &[f32], target: usize) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
    max + sum.ln() - logits[target] as f64
}

fn generate_options(args: &Args) -> Result<GenerateOptions> {
    let d = SamplerOptions::default();
    let sampler = SamplerOptions {
        temperature: args.float("temperature", d.temperature)?,
        top_p: args.float("top-p", d.top_p)?,
        top_k: args.number("top-k", d.top_k as u64)? as usize,
        min_p: args.float("min-p", d.min_p)?,
        presence_penalty: args.float("presence-penalty", d.presence_penalty)?,
        frequency_penalty: args.float("frequency-penalty", d.frequency_penalty)?,
        penalty_decay: args.float("penalty-decay", d.penalty_decay)?,
        seed: args.number("seed", d.seed)?,
        ..d
    };
    Ok(GenerateOptions {
        sampler,
        max_tokens: args.number("max-tokens", GenerateOptions::default().max_tokens as u64)? as usize,
        stop: stop_strings(args.all("stop")),
        stop_tokens: parse_tokens("stop-tokens", args.optional("stop-tokens").unwrap_or(""))?,
        grammar: None,
        logprobs: args.flag("logprobs"),
    })
}

/// `--json-schema FILE`, `--regex RE`, `--lark FILE` or `--gbnf FILE` (at most one).
pub(super) fn grammar(args: &Args, io: &mut dyn Io) -> Result<Option<Grammar>> {
    let given: Vec<&str> = ["json-schema", "regex", "lark", "gbnf"].into_iter().filter(|k| args.optional(k).is_some()).collect();
    let Some(&key) = given.first() else { return Ok(None) };
    if given.len() > 1 {
        return Err(Error::invalid_options(format!("--{} and --{} both given: a generation takes one grammar", given[0], given[1])));
    }
    let value = args.required(key)?;
    if key == "regex" {
        return Ok(Some(Grammar::Regex(value.to_string())));
    }
    let bytes = read_all(io, value)?;
    let text = String::from_utf8(bytes).map_err(|_| Error::invalid_options(format!("--{key}: '{value}' is not UTF-8 text")))?;
    Ok(Some(match key {
        "json-schema" => Grammar::JsonSchema(text),
        "lark" => Grammar::Lark(text),
        _ => Grammar::Gbnf(text),
    }))
}

fn completion_json(c: &Completion) -> String {
    let tokens: Vec<String> = c.tokens.iter().map(u32::to_string).collect();
    let logprobs: Vec<String> = c.logprobs.iter().map(f32::to_string).collect();
    let logprobs = if logprobs.is_empty() { String::new() } else { format!(",\"logprobs\":[{}]", logprobs.join(",")) };
    format!(
        "{{\"text\":{},\"stop_reason\":\"{}\",\"tokens\":[{}]{logprobs},\"stats\":{}}}",
        json_string(&c.text),
        c.stop_reason.as_str(),
        tokens.join(","),
        c.stats.to_json()
    )
}

/// `--tokenizer` (with `--vocab FILE` for world and neox). `auto`, the default when there is a
/// model, picks by the model's vocabulary size.
pub(super) fn tokenizer(args: &Args, io: &mut dyn Io, n_vocab: Option<usize>) -> Result<Tokenizer> {
    let name = match n_vocab {
        Some(_) => args.optional("tokenizer").unwrap_or("auto"),
        None => args.required("tokenizer")?,
    };
    let kind = match (name, n_vocab) {
        ("auto", Some(n)) => kind_for_vocab(n)
            .ok_or_else(|| Error::invalid_options(format!("no known tokenizer has {n} tokens: pass --tokenizer world|neox|byte")))?,
        _ => TokenizerKind::from_name(name)?,
    };
    if kind == TokenizerKind::Byte {
        return Ok(Tokenizer::byte());
    }
    let vocab = args
        .optional("vocab")
        .ok_or_else(|| Error::invalid_options(format!("the {} tokenizer needs its vocabulary: pass --vocab FILE", kind.name())))?;
    Tokenizer::load(kind, &read_all(io, vocab)?)
}

pub(super) fn tokenize(args: &Args, io: &mut dyn Io) -> Result<()> {
    let ids = tokenizer(args, io, None)?.encode(args.required("text")?);
    let ids: Vec<String> = ids.iter().map(u32::to_string).collect();
    io.stdout(&format!("[{}]", ids.join(",")));
    Ok(())
}

/// Prints the text of `--ids` (bytes that are not UTF-8 become U+FFFD).
pub(super) fn detokenize(args: &Args, io: &mut dyn Io) -> Result<()> {
    let tokenizer = tokenizer(args, io, None)?;
    let bytes = tokenizer.decode(&parse_tokens("ids", args.required("ids")?)?)?;
    let text = String::from_utf8_lossy(&bytes);
    io.stdout(&if args.flag("json") { json_string(&text) } else { text.into_owned() });
    Ok(())
}

/// Each `--stop` value is a stop string, or a JSON array of them (for escapes such as `\n`).
fn stop_strings(values: &[String]) -> Vec<String> {
    let mut stops = Vec::new();
    for v in values {
        match json_strings(v) {
            Some(list) => stops.extend(list),
            None => stops.push(v.clone()),
        }
    }
    stops
}

/// A JSON array of strings, or None if `s` is not one.
fn json_strings(s: &str) -> Option<Vec<String>> {
    match Json::parse(s.trim().as_bytes()).ok()? {
        Json::Array(items) => items.iter().map(|v| v.as_str().map(str::to_string)).collect(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_values_are_strings_or_json_arrays_of_strings() {
        let v = |s: &[&str]| stop_strings(&s.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(v(&["\\n", "[END]"]), ["\\n", "[END]"]);
        assert_eq!(v(&[r#"["\n\nUser:", "a\"b", "\u00e9\ud83d\ude00"]"#]), ["\n\nUser:", "a\"b", "é😀"]);
        assert_eq!(v(&["[]"]), Vec::<String>::new());
        // Not valid JSON: taken literally.
        for literal in [r#"["a""#, r#"["\x"]"#, r#"["\ud83d"]"#, r#"["a"] x"#, "[1]"] {
            assert_eq!(v(&[literal]), [literal]);
        }
    }
}
