//! The `echo-engine` command line, written once for both runtimes: the native binary and the
//! Node.js CLI (`bin/echo-engine.mjs`, which runs this code in wasm). Each runtime supplies an `Io`
//! (files, output, clock); everything else — parsing, loading, evaluation, benchmarks — is here,
//! the text commands (`generate`, `perplexity`, `tokenize`, `detokenize`) in `cli/text.rs`, `bench` in `cli/bench.rs`,
//! the memory commands (`embed`, `remember`, `recall`, `forget`, `list`) in `cli/memory.rs`, `process` in
//! `cli/process.rs`.

mod bench;
mod memory;
mod process;
mod text;

use std::collections::HashMap;
use std::sync::Arc;

use crate::backend::{self, BackendKind};
use crate::convert::{Converter, Need};
use crate::error::{Error, ErrorCode, Result};
use crate::format::DType;
use crate::model::{Arch, LoadOptions, Model, ModelLoader, StreamingLoad};
use crate::quantize::Quantizer;
use crate::synth::{self, SynthSpec};

pub trait Io {
    /// Opens a file for sequential reading; returns its size.
    fn open(&mut self, path: &str) -> Result<u64>;
    /// Reads the next bytes of an opened file into `buf`; 0 at the end.
    fn read(&mut self, path: &str, buf: &mut [u8]) -> Result<usize>;
    /// Moves an opened file's read position to `offset` (from the start).
    fn seek(&mut self, path: &str, offset: u64) -> Result<()>;
    /// Creates (truncates) a file for `append`.
    fn create(&mut self, path: &str) -> Result<()>;
    fn append(&mut self, path: &str, bytes: &[u8]) -> Result<()>;
    /// Makes a created file durable and moves it to `to`, replacing any file there in one step.
    fn rename(&mut self, from: &str, to: &str) -> Result<()>;
    fn exists(&mut self, path: &str) -> bool;
    fn stdout(&mut self, line: &str);
    /// Writes `text` to stdout as it is (no newline added): streamed generation.
    fn stdout_raw(&mut self, text: &str);
    fn stderr(&mut self, line: &str);
    /// Milliseconds from a fixed start, as an owned function (a session keeps it).
    fn clock(&self) -> Box<dyn Fn() -> f64>;
    /// "native", or the JavaScript host running the wasm build ("node", "chromium").
    fn runtime(&self) -> String;
    /// Peak bytes of memory the engine has used (the wasm instance's size in wasm).
    fn peak_memory_bytes(&self) -> u64;
}

const USAGE: &str = "usage: echo-engine <info|logits|quantize|convert|bench|synth|generate|perplexity|tokenize|detokenize|embed|remember|recall|forget|list|process|help> [options]
  info       --model F
  logits     --model F --tokens 34,105,110 [--mode serial|sequence] [--backend ggml|reference] [--threads 1]
  quantize   --in F --out G --type Q4_0|Q4_1|Q5_0|Q5_1|Q8_0 [--head Q8_0]
  convert    --in CKPT.pth|CKPT.safetensors --out G [--type FP16|FP32|Q4_0|Q4_1|Q5_0|Q5_1|Q8_0]
  bench      --model F [--decode 64] [--prompt 128] [--backend ggml|reference] [--sample] [--threads 1] [--head Q8_0]
  bench      --sample --n-vocab 65536 [--logit-std 1] [--decode 64]
  bench      --json-schema F | --regex RE | --lark F | --gbnf F  --vocab V [--tokenizer world] [--model F] [--decode 256]
  bench      --memories 50000 [--n-embed 768] [--k 10]
  synth      --arch v4|v5.1|v5.2|v6|v7 --n-embed 768 --n-layer 12 --n-vocab 50277 --type FP16 --out F [--seed 1]
             [--n-ffn N] [--head-size N]
  generate   --model F --prompt TEXT [--prompt TEXT …] [--tokenizer auto|world|neox|byte] [--vocab FILE]
             [--max-tokens 256] [--temperature 1] [--top-p 0.85] [--top-k 0] [--min-p 0]
             [--presence-penalty 0.2] [--frequency-penalty 0.2] [--penalty-decay 0.996] [--seed 42]
             [--stop S | --stop '[\"S1\",\"S2\"]' …] [--stop-tokens 0,1] [--cache-mb 64] [--backend ggml] [--json]
             [--memory-limit-mb N] [--threads 1] [--head Q8_0] [--json-schema FILE | --regex RE | --lark FILE | --gbnf FILE]
  perplexity --model F --file TEXT [--window 128] [--tokenizer auto|world|neox|byte] [--vocab FILE] [--backend ggml]
  tokenize   --tokenizer world|neox|byte [--vocab FILE] --text TEXT
  detokenize --tokenizer world|neox|byte [--vocab FILE] --ids 1,2,3 [--json]
  embed      --model F --text TEXT [--text TEXT …] [--tokenizer auto|world|neox|byte] [--vocab FILE] [--pooling mean|last]
  remember   --model F --memory-path M --text TEXT [--text TEXT …] [--metadata JSON] [--store NAME] [--tokenizer …] [--vocab FILE]
             [--pooling mean|last]
  recall     --model F --memory-path M --query TEXT [--k 5] [--store NAME] [--tokenizer …] [--vocab FILE] [--pooling mean|last]
  forget     --model F --memory-path M --id N [--id N …] [--store NAME] [--tokenizer …] [--vocab FILE]
  list       --model F --memory-path M [--store NAME] [--offset 0] [--limit 100] [--tokenizer …] [--vocab FILE]
  process    --model F --context CTX.json [--options OPTS.json] [--memory-path M] [--tokenizer …] [--vocab FILE]";

/// Options that take no value.
const FLAGS: &[&str] = &["json", "sample"];

/// Runs one command; returns the process exit code. Errors go to stderr as one JSON line.
pub fn run(args: &[String], io: &mut dyn Io) -> i32 {
    match run_command(args, io) {
        Ok(()) => 0,
        Err(e) => {
            io.stderr(&e.to_json());
            1
        }
    }
}

/// Options and their values in order (an option may repeat; a flag has none).
struct Args {
    values: HashMap<String, Vec<String>>,
}

impl Args {
    fn parse(args: &[String], allowed: &[&str]) -> Result<Args> {
        let mut values: HashMap<String, Vec<String>> = HashMap::new();
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let key = flag
                .strip_prefix("--")
                .filter(|k| allowed.contains(k))
                .ok_or_else(|| Error::invalid_options(format!("unexpected argument '{flag}'\n{USAGE}")))?;
            let entry = values.entry(key.to_string()).or_default();
            if !FLAGS.contains(&key) {
                entry.push(it.next().ok_or_else(|| Error::invalid_options(format!("--{key} needs a value")))?.clone());
            }
        }
        Ok(Args { values })
    }
    fn required(&self, key: &str) -> Result<&str> {
        self.optional(key).ok_or_else(|| Error::invalid_options(format!("--{key} is required\n{USAGE}")))
    }
    /// The last value given.
    fn optional(&self, key: &str) -> Option<&str> {
        self.values.get(key).and_then(|v| v.last()).map(String::as_str)
    }
    fn all(&self, key: &str) -> &[String] {
        self.values.get(key).map_or(&[], Vec::as_slice)
    }
    /// The values of a repeatable option that must be given at least once.
    fn at_least_one(&self, key: &str) -> Result<&[String]> {
        self.required(key)?;
        Ok(self.all(key))
    }
    fn flag(&self, key: &str) -> bool {
        self.values.contains_key(key)
    }
    fn float(&self, key: &str, default: f32) -> Result<f32> {
        match self.optional(key) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| Error::invalid_options(format!("--{key} must be a number, got '{v}'"))),
        }
    }
    fn number(&self, key: &str, default: u64) -> Result<u64> {
        Ok(self.optional_number(key)?.unwrap_or(default))
    }
    fn optional_number(&self, key: &str) -> Result<Option<u64>> {
        let parse = |v: &str| v.parse().map_err(|_| Error::invalid_options(format!("--{key} must be a whole number, got '{v}'")));
        self.optional(key).map(parse).transpose()
    }
}

fn run_command(args: &[String], io: &mut dyn Io) -> Result<()> {
    let (cmd, rest) = args.split_first().ok_or_else(|| Error::invalid_options(USAGE))?;
    match cmd.as_str() {
        "help" | "--help" | "-h" => {
            io.stdout(USAGE);
            Ok(())
        }
        "info" => info(&Args::parse(rest, &["model"])?, io),
        "logits" => logits(&Args::parse(rest, &["model", "tokens", "mode", "backend", "threads"])?, io),
        "quantize" => quantize(&Args::parse(rest, &["in", "out", "type", "head"])?, io),
        "convert" => convert(&Args::parse(rest, &["in", "out", "type"])?, io),
        "bench" => bench::bench(&Args::parse(rest, bench::OPTIONS)?, io),
        "synth" => synth_cmd(&Args::parse(rest, &["arch", "n-embed", "n-layer", "n-vocab", "n-ffn", "head-size", "type", "out", "seed"])?, io),
        "generate" => text::generate(&Args::parse(rest, text::GENERATE_OPTIONS)?, io),
        "perplexity" => text::perplexity(&Args::parse(rest, text::PERPLEXITY_OPTIONS)?, io),
        "tokenize" => text::tokenize(&Args::parse(rest, &["tokenizer", "vocab", "text"])?, io),
        "detokenize" => text::detokenize(&Args::parse(rest, &["tokenizer", "vocab", "ids", "json"])?, io),
        "embed" => memory::embed(&Args::parse(rest, memory::EMBED_OPTIONS)?, io),
        "remember" => memory::remember(&Args::parse(rest, memory::REMEMBER_OPTIONS)?, io),
        "recall" => memory::recall(&Args::parse(rest, memory::RECALL_OPTIONS)?, io),
        "forget" => memory::forget(&Args::parse(rest, memory::FORGET_OPTIONS)?, io),
        "list" => memory::list(&Args::parse(rest, memory::LIST_OPTIONS)?, io),
        "process" => process::process(&Args::parse(rest, process::PROCESS_OPTIONS)?, io),
        other => Err(Error::invalid_options(format!("unknown command '{other}'\n{USAGE}"))),
    }
}

/// Streams a model file into memory; returns the model and the seconds it took.
fn load(path: &str, io: &mut dyn Io) -> Result<(Arc<Model>, f64)> {
    load_with_head(path, None, io)
}

/// `--head Q8_0` (bench, generate): a float head quantized as the model loads, as the engine's
/// `loadModel({ head })` does.
fn head_option(args: &Args) -> Result<Option<DType>> {
    args.optional("head").map(crate::quantize::head_type).transpose()
}

/// Like `load`, with the head quantized to `head` on the way in.
fn load_with_head(path: &str, head: Option<DType>, io: &mut dyn Io) -> Result<(Arc<Model>, f64)> {
    let now = io.clock();
    let start = now();
    let file_bytes = io.open(path)?;
    let mut loader = ModelLoader::new(LoadOptions { file_bytes: Some(file_bytes), head, ..LoadOptions::default() });
    for_each_chunk(io, path, |_, chunk| loader.push(chunk))?;
    let model = loader.finish()?;
    Ok((Arc::new(model), (now() - start) / 1000.0))
}

/// `--memory-limit-mb`: a hard cap on the engine's memory, in bytes. In wasm it may only lower
/// the module's build-time cap.
fn memory_limit(args: &Args) -> Result<Option<u64>> {
    let Some(mb) = args.optional("memory-limit-mb") else { return Ok(None) };
    let bytes = mb.parse::<u64>().ok().filter(|&n| n > 0).and_then(|n| n.checked_mul(1 << 20));
    let bytes = bytes.ok_or_else(|| Error::invalid_options(format!("--memory-limit-mb must be a whole number above 0, got '{mb}'")))?;
    match backend::memory_cap_bytes() {
        Some(cap) if bytes > cap => Err(Error::invalid_options(format!(
            "--memory-limit-mb may only lower the build-time cap of {} MB",
            cap >> 20
        ))),
        _ => Ok(Some(bytes)),
    }
}

/// Like `load`, within `limit_bytes`: from then on allocations past the limit fail, and a model
/// whose weights, evaluation context and `extra_bytes` would not fit is refused from its header,
/// before any tensor memory is allocated.
fn load_within(path: &str, limit_bytes: u64, extra_bytes: u64, head: Option<DType>, io: &mut dyn Io) -> Result<Arc<Model>> {
    echo_ggml_sys::mem::set_limit(Some(usize::try_from(limit_bytes).unwrap_or(usize::MAX)));
    let file_bytes = io.open(path)?;
    let mut load = StreamingLoad::new(limit_bytes, Some(file_bytes)).with_head(head);
    for_each_chunk(io, path, |_, chunk| {
        load.push(chunk, |h| Ok(echo_ggml_sys::mem::used_bytes() as u64 + backend::eval_bytes_bound(h) + extra_bytes))
    })?;
    Ok(Arc::new(load.finish()?))
}

fn info(args: &Args, io: &mut dyn Io) -> Result<()> {
    let (model, _) = load(args.required("model")?, io)?;
    let h = &model.hparams;
    io.stdout(&format!(
        "{{\"version\":{},\"arch\":\"{}\",\"n_vocab\":{},\"n_embed\":{},\"n_layer\":{},\"n_head\":{},\"head_size\":{},\
         \"data_type\":\"{}\",\"file_bytes\":{},\"memory_bytes\":{}}}",
        model.header.version,
        model.arch.name(),
        h.n_vocab,
        h.n_embed,
        h.n_layer,
        h.n_head,
        h.head_size,
        model.header.dtype.name(),
        model.file_bytes,
        backend::memory_bytes(&model)
    ));
    Ok(())
}

/// A comma-separated list of token ids given as option `--{key}` (empty: no tokens).
fn parse_tokens(key: &str, s: &str) -> Result<Vec<u32>> {
    if s.trim().is_empty() {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|t| t.trim().parse::<u32>().map_err(|_| Error::invalid_options(format!("--{key}: '{t}' is not a token id"))))
        .collect()
}

fn backend_kind(args: &Args) -> Result<BackendKind> {
    BackendKind::from_name(args.optional("backend").unwrap_or("ggml"))
}

/// `--threads`: how many threads ggml computes on. One by default, so figures stay comparable
/// with earlier ones; the backend refuses counts it cannot run.
fn threads(args: &Args) -> Result<usize> {
    Ok(usize::try_from(args.number("threads", 1)?).unwrap_or(usize::MAX))
}

fn logits(args: &Args, io: &mut dyn Io) -> Result<()> {
    let tokens = parse_tokens("tokens", args.required("tokens")?)?;
    let serial = match args.optional("mode").unwrap_or("serial") {
        "serial" => true,
        "sequence" => false,
        m => return Err(Error::invalid_options(format!("--mode must be serial or sequence, got '{m}'"))),
    };
    let kind = backend_kind(args)?;
    let (model, _) = load(args.required("model")?, io)?;
    let mut backend = backend::create_with_threads(kind, model.clone(), threads(args)?)?;
    let mut state = model.initial_state();
    let mut logits = vec![0.0f32; model.hparams.n_vocab];
    if serial {
        for (i, t) in tokens.iter().enumerate() {
            let want = (i + 1 == tokens.len()).then_some(&mut logits[..]);
            backend.eval(std::slice::from_ref(t), &mut state, want)?;
        }
    } else {
        backend.eval(&tokens, &mut state, Some(&mut logits))?;
    }
    let list: Vec<String> = logits.iter().map(|v| format!("{v}")).collect();
    io.stdout(&format!("{{\"logits\":[{}]}}", list.join(",")));
    Ok(())
}

fn quantize(args: &Args, io: &mut dyn Io) -> Result<()> {
    let (input, output) = (args.required("in")?, args.required("out")?);
    let target = DType::from_name(args.required("type")?)?;
    let mut q = Quantizer::new(target)?;
    if let Some(head) = args.optional("head") {
        q = q.with_head(head)?;
    }
    io.open(input)?;
    io.create(output)?;
    let mut written = 0u64;
    for_each_chunk(io, input, |io, chunk| {
        q.push(chunk)?;
        let out = q.take_output();
        written += out.len() as u64;
        io.append(output, &out)
    })?;
    let (last, tensors, quantized) = q.finish()?;
    io.append(output, &last)?;
    written += last.len() as u64;
    io.stdout(&format!(
        "{{\"out\":{},\"type\":\"{}\",\"tensors\":{tensors},\"quantized\":{quantized},\"bytes\":{written}}}",
        crate::error::json_string(output),
        target.name()
    ));
    Ok(())
}

/// A checkpoint to an rwkv.cpp file, read where the converter asks and written as it goes.
fn convert(args: &Args, io: &mut dyn Io) -> Result<()> {
    let (input, output) = (args.required("in")?, args.required("out")?);
    let target = DType::from_name(args.optional("type").unwrap_or("FP16"))?;
    let file_len = io.open(input)?;
    let mut c = Converter::new(file_len, target)?;
    io.create(output)?;
    let (mut pos, mut written, mut buf) = (0u64, 0u64, Vec::new());
    loop {
        let need = c.need()?;
        let out = c.take_output();
        io.append(output, &out)?;
        written += out.len() as u64;
        let Need::Read { offset, len } = need else { break };
        if offset != pos {
            io.seek(input, offset)?;
        }
        buf.resize(len, 0);
        let mut filled = 0;
        while filled < len {
            let n = io.read(input, &mut buf[filled..])?;
            if n == 0 {
                return Err(Error::invalid_model(format!("'{input}' ended early (it is shorter than it was)")));
            }
            filled += n;
        }
        pos = offset + len as u64;
        c.give(&buf)?;
        buf.truncate(0);
        buf.shrink_to(1 << 20);
    }
    let s = c.summary().expect("done");
    io.stdout(&format!(
        "{{\"out\":{},\"arch\":\"{}\",\"type\":\"{}\",\"n_vocab\":{},\"n_embed\":{},\"n_layer\":{},\"tensors\":{},\"quantized\":{},\"bytes\":{written},\"peak_memory_bytes\":{}}}",
        crate::error::json_string(output),
        s.arch.name(),
        s.dtype.name(),
        s.n_vocab,
        s.n_embed,
        s.n_layer,
        s.tensors,
        s.quantized,
        io.peak_memory_bytes()
    ));
    Ok(())
}

fn synth_cmd(args: &Args, io: &mut dyn Io) -> Result<()> {
    let spec = SynthSpec {
        arch: Arch::from_name(args.required("arch")?)?,
        n_embed: args.number("n-embed", 768)? as usize,
        n_layer: args.number("n-layer", 12)? as usize,
        n_vocab: args.number("n-vocab", 50277)? as usize,
        n_ffn: args.optional_number("n-ffn")?.map(|n| n as usize),
        head_size: args.optional_number("head-size")?.map(|n| n as usize),
        dtype: DType::from_name(args.optional("type").unwrap_or("FP16"))?,
        seed: args.number("seed", 1)?,
    };
    let out = args.required("out")?;
    let total = synth::file_bytes(&spec)?;
    io.create(out)?;
    synth::write(&spec, |bytes| io.append(out, bytes))?;
    io.stdout(&format!("{{\"out\":{},\"bytes\":{total}}}", crate::error::json_string(out)));
    Ok(())
}

/// Reads a whole (small) file.
fn read_all(io: &mut dyn Io, path: &str) -> Result<Vec<u8>> {
    io.open(path)?;
    let mut bytes = Vec::new();
    for_each_chunk(io, path, |_, chunk| {
        bytes.extend_from_slice(chunk);
        Ok(())
    })?;
    Ok(bytes)
}

/// Reads an opened file to its end in 1 MiB chunks.
fn for_each_chunk(io: &mut dyn Io, path: &str, mut f: impl FnMut(&mut dyn Io, &[u8]) -> Result<()>) -> Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = io.read(path, &mut buf)?;
        if n == 0 {
            return Ok(());
        }
        f(io, &buf[..n])?;
    }
}

/// Errors from the runtime's file system, as the CLI reports them.
pub fn io_error(what: &str, path: &str, detail: impl std::fmt::Display) -> Error {
    Error::new(ErrorCode::LoadFailed, format!("cannot {what} '{path}': {detail}"))
}
