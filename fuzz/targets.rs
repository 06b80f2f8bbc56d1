//! The fuzz targets' bodies, one function per untrusted input. The fuzz binaries
//! (`fuzz/fuzz_targets/*.rs`) call them under libFuzzer; `tests/fuzz_corpus.rs` includes this file
//! and replays the committed corpora and regressions through them on stable Rust. A target may
//! return any typed error; a panic (or an abort, a sanitizer report) is a bug.

use std::cell::RefCell;
use std::sync::{Arc, Mutex, OnceLock};

use echo_engine::backend::{self, BackendKind};
use echo_engine::cli::{self, Io};
use echo_engine::convert::{Converter, Need};
use echo_engine::format::DType;
use echo_engine::generate::{GenerateOptions, Session};
use echo_engine::grammar::{gbnf_to_lark, Grammar, Grammars};
use echo_engine::memory::{Embedder, MemoryStore, Pooling, Stores};
use echo_engine::model::{Arch, LoadOptions, Model, StreamingLoad};
use echo_engine::synth::{self, SynthSpec};
use echo_engine::tokenizer::Tokenizer;
use echo_engine::{Error, Result};

/// The loader's memory budget: a file claiming more is refused before anything is allocated.
const MODEL_LIMIT_BYTES: u64 = 64 << 20;
/// Converted output kept at most: past it the conversion is abandoned (the input is not a bug).
const MAX_CONVERT_OUTPUT: usize = 64 << 20;
/// Tokens a grammar is followed for after it compiles (each costs a mask computation).
const GRAMMAR_STEPS: usize = 8;

/// `n` bytes from the front of `data` as chunk-size seeds, and the rest.
fn split_seeds(data: &[u8], n: usize) -> (&[u8], &[u8]) {
    data.split_at(n.min(data.len()))
}

/// The i-th chunk size, 1 to 1024 bytes, from the seeds (small sizes are the likelier: they split
/// headers and words across chunks).
fn chunk_len(seeds: &[u8], i: usize) -> usize {
    match seeds {
        [] => usize::MAX,
        _ => {
            let s = seeds[i % seeds.len()] as usize;
            s * s / 64 + 1
        }
    }
}

/// An rwkv.cpp model file streamed in chunks whose sizes come from the first 4 bytes, within a
/// 64 MB budget; a model that loads is evaluated for one token (a valid-looking model must run).
pub fn model_file(data: &[u8]) {
    let (seeds, file) = split_seeds(data, 4);
    // Half the inputs tell the loader the file's size (the budget is then checked from it).
    let total = seeds.first().filter(|&&b| b & 1 == 1).map(|_| file.len() as u64);
    let mut load = StreamingLoad::new(MODEL_LIMIT_BYTES, total);
    let (mut pos, mut i) = (0, 0);
    while pos < file.len() {
        let end = file.len().min(pos.saturating_add(chunk_len(seeds, i)));
        if load.push(&file[pos..end], |h| Ok(backend::eval_bytes_bound(h))).is_err() {
            return;
        }
        (pos, i) = (end, i + 1);
    }
    if let Ok(model) = load.finish() {
        let model = Arc::new(model);
        let mut state = model.initial_state();
        let mut logits = vec![0.0; model.hparams.n_vocab];
        if let Ok(mut b) = backend::create(BackendKind::Ggml, model) {
            let _ = b.eval(&[0], &mut state, Some(&mut logits));
        }
    }
}

/// A `.pth` or `.safetensors` checkpoint (the input after its first byte, which picks the output
/// type) converted through the converter's read-what-it-asks loop.
pub fn checkpoint(data: &[u8]) {
    let Some((&pick, file)) = data.split_first() else { return };
    let target = DType::ALL[pick as usize % DType::ALL.len()];
    let Ok(mut conv) = Converter::new(file.len() as u64, target) else { return };
    let mut out = 0;
    loop {
        match conv.need() {
            Ok(Need::Read { offset, len }) => {
                // The converter promises every range it asks for lies within the file.
                let start = usize::try_from(offset).expect("offset fits in memory");
                let range = file.get(start..start + len).unwrap_or_else(|| panic!("read {offset}+{len} past {}", file.len()));
                if conv.give(range).is_err() {
                    return;
                }
                out += conv.take_output().len();
                if out > MAX_CONVERT_OUTPUT {
                    return;
                }
            }
            Ok(Need::Done) => {
                assert!(conv.summary().is_some(), "a finished conversion has a summary");
                return;
            }
            Err(_) => return,
        }
    }
}

/// A tiny v5.2 model with the byte vocabulary: cheap to build and to run.
fn tiny_model() -> Arc<Model> {
    static MODEL: OnceLock<Arc<Model>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let spec = SynthSpec {
                arch: Arch::V5_2,
                n_embed: 64,
                n_layer: 1,
                n_vocab: 256,
                n_ffn: None,
                head_size: None,
                dtype: DType::F32,
                seed: 1,
            };
            let bytes = synth::to_vec(&spec).expect("the spec is valid");
            Arc::new(echo_engine::model::load_bytes(&bytes, LoadOptions::default()).expect("synth makes valid models"))
        })
        .clone()
}

thread_local! {
    /// A session on the tiny model, one per thread (a session is not `Send`). No caches: one
    /// input's run must not change how the next one runs.
    static SESSION: RefCell<Session> = RefCell::new({
        let model = tiny_model();
        let backend = backend::create(BackendKind::Ggml, model.clone()).expect("the tiny model has a backend");
        Session::new(model, backend, Tokenizer::byte(), 0, Box::new(|| 0.0))
    });
}

/// Saved conversation state bytes restored into a session; a state that loads must save back to
/// the same bytes, and the conversation must go on from it.
pub fn state(data: &[u8]) {
    SESSION.with_borrow_mut(|session| {
        if session.load_state(data).is_err() {
            return;
        }
        assert_eq!(session.save_state(), data, "a loaded state saves back to the same bytes");
        let opts = GenerateOptions { max_tokens: 2, ..Default::default() };
        session.complete("a", opts, &mut |_| true).expect("a loaded state can be continued");
    })
}

/// A store's export (`MemoryStore::parse`) and, through `Stores::import`, a memory file of
/// several stores. What parses must export to bytes that parse to the same export again.
pub fn memory_export(data: &[u8]) {
    if let Ok(store) = MemoryStore::parse(data) {
        let export = store.export();
        let again = MemoryStore::parse(&export).expect("an export parses");
        assert_eq!(again.export(), export, "export, parse, export is stable");
    }
    SESSION.with_borrow_mut(|session| {
        let mut stores = Stores::new(Embedder::new(session.model(), BackendKind::Ggml, Pooling::Mean));
        if stores.import(session, data, None).is_err() {
            return;
        }
        let file = stores.export(None).expect("stores that imported export");
        let mut again = Stores::new(Embedder::new(session.model(), BackendKind::Ggml, Pooling::Mean));
        again.import(session, &file, None).expect("an exported memory file imports");
        assert_eq!(again.export(None).expect("exports"), file, "export, import, export is stable");
    })
}

/// Encodes and decodes a fixed text with a tokenizer built from untrusted bytes: whatever the
/// vocabulary, it must not panic.
fn exercise(tokenizer: &Tokenizer) {
    let ids = tokenizer.encode("Hello, wörld! 你好 \u{1F600}\n\t  x");
    let _ = tokenizer.decode(&ids);
    let _ = tokenizer.decode(&[0, 1, 255, 256, 65529, u32::MAX]);
}

/// A World vocabulary file (`rwkv_vocab_v20230424.txt` lines).
pub fn world_vocab(data: &[u8]) {
    if let Ok(t) = Tokenizer::world(data) {
        exercise(&t);
    }
}

/// A NeoX / Hugging Face `tokenizer.json`.
pub fn neox_json(data: &[u8]) {
    if let Ok(t) = Tokenizer::neox(data) {
        exercise(&t);
    }
}

/// Arbitrary bytes through the World tokenizer (`world`, the real vocabulary) and the byte
/// tokenizer: decoding what encoding gives returns the text, for any valid UTF-8.
pub fn tokenize(world: &Tokenizer, data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        // Not UTF-8: still a valid (if meaningless) id sequence to decode.
        let ids: Vec<u32> = data.chunks(2).map(|c| c.iter().fold(0, |acc, &b| acc << 8 | b as u32)).collect();
        let _ = world.decode(&ids);
        let _ = Tokenizer::byte().decode(&ids);
        return;
    };
    for t in [world, &Tokenizer::byte()] {
        let ids = t.encode(text);
        assert_eq!(t.decode(&ids).expect("encoded ids decode"), text.as_bytes(), "{} round trip", t.name());
    }
}

/// The byte tokenizer's grammar engine, built once (compiled grammars are cached in it).
fn grammars() -> &'static Mutex<Grammars> {
    static GRAMMARS: OnceLock<Mutex<Grammars>> = OnceLock::new();
    GRAMMARS.get_or_init(|| Mutex::new(Grammars::new(&Tokenizer::byte(), 256).expect("the byte grammar engine builds")))
}

/// A grammar of the kind the first byte picks (JSON Schema, regex, Lark, GBNF) compiled, then
/// followed for a few tokens; the GBNF translation is also run on every text.
pub fn grammar(data: &[u8]) {
    let Some((&pick, text)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(text) else { return };
    let _ = gbnf_to_lark(text);
    let text = text.to_string();
    let grammar = match pick % 4 {
        0 => Grammar::JsonSchema(text),
        1 => Grammar::Regex(text),
        2 => Grammar::Lark(text),
        _ => Grammar::Gbnf(text),
    };
    // A panic inside the lock poisons it; the panic is the finding, not the poison.
    let mut grammars = grammars().lock().unwrap_or_else(|p| p.into_inner());
    let Ok(mut c) = grammars.constraint(&grammar) else { return };
    for _ in 0..GRAMMAR_STEPS {
        if c.is_finished() {
            break;
        }
        let Ok(mask) = c.compute_mask() else { return };
        // The first allowed token: the mask is a bitset over the vocabulary.
        let Some(token) = mask.iter().enumerate().find(|(_, w)| **w != 0).map(|(i, w)| i as u32 * 32 + w.trailing_zeros()) else {
            return;
        };
        if c.advance(token).is_err() {
            return;
        }
    }
}

/// An `Io` with no files: every open and create is refused, output is dropped. Only commands that
/// need no file get past their option parsing.
struct NoFiles;

fn no_files(path: &str) -> Error {
    cli::io_error("open", path, "the fuzzing Io has no files")
}

impl Io for NoFiles {
    fn open(&mut self, path: &str) -> Result<u64> {
        Err(no_files(path))
    }
    fn read(&mut self, path: &str, _: &mut [u8]) -> Result<usize> {
        Err(no_files(path))
    }
    fn seek(&mut self, path: &str, _: u64) -> Result<()> {
        Err(no_files(path))
    }
    fn create(&mut self, path: &str) -> Result<()> {
        Err(no_files(path))
    }
    fn append(&mut self, path: &str, _: &[u8]) -> Result<()> {
        Err(no_files(path))
    }
    fn rename(&mut self, from: &str, _: &str) -> Result<()> {
        Err(no_files(from))
    }
    fn exists(&mut self, _: &str) -> bool {
        false
    }
    fn stdout(&mut self, _: &str) {}
    fn stdout_raw(&mut self, _: &str) {}
    fn stderr(&mut self, _: &str) {}
    fn clock(&self) -> Box<dyn Fn() -> f64> {
        Box::new(|| 0.0)
    }
    fn runtime(&self) -> String {
        "fuzz".into()
    }
    fn peak_memory_bytes(&self) -> u64 {
        0
    }
}

/// Command-line arguments (the input split on NUL bytes) run against an `Io` with no files.
pub fn cli_args(data: &[u8]) {
    let args: Vec<String> = data.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    // `bench` sizes its work from its arguments (vocabularies, steps, memories): random ones make
    // arbitrarily long runs, which measure nothing here.
    if args.first().is_some_and(|c| c == "bench") {
        return;
    }
    let code = cli::run(&args, &mut NoFiles);
    assert!(code == 0 || code == 1, "exit code {code}");
}
