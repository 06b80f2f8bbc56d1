//! `Engine`: the wasm-bindgen class the worker (`js/worker.js`) drives. One engine per wasm
//! instance: it owns the instance's memory limit, at most one model (plus a load in progress) and
//! its generation `Session` (backend, conversation, caches). Generation is step-wise
//! (`beginGenerate`, then `step` until done) so the worker can see an abort between steps. Every
//! method returns a typed `EchoError` on failure and leaves the engine usable.

use std::sync::Arc;

use echo_ggml_sys::mem;
use js_sys::Uint8Array;
use wasm_bindgen::prelude::*;

use super::js::{num, object, Options};
use super::metrics::{Metrics, Outcome};
use crate::backend::{self, BackendKind};
use crate::cognition::{Context, Event, Process, ProcessOptions};
use crate::error::{Error, ErrorCode, Result};
use crate::quantize;
use crate::generate::{Completion, GenerateOptions, Session, Step};
use crate::memory::{Embedder, Pooling, Stores};
use crate::model::{Model, StreamingLoad};
use crate::sampler::SamplerOptions;
use crate::tokenizer::{self, Tokenizer, TokenizerKind};

const MIB: f64 = 1024.0 * 1024.0;

/// Room for the chunk being copied in (wasm-bindgen copies each pushed chunk into wasm memory)
/// and small allocations made while loading.
const LOAD_SLACK_BYTES: u64 = 4 << 20;

/// A load in progress: the chunks' destination and the tokenizer it will be paired with.
struct Pending {
    load: StreamingLoad,
    tokenizer_name: String,
    vocab: Option<Box<[u8]>>,
    tokenizer: Option<Tokenizer>,
}

struct Loaded {
    session: Session,
    backend: &'static str,
    /// False when the model has no tokenizer: the session then holds the byte tokenizer as a
    /// stand-in (it needs one), and text calls are refused.
    has_tokenizer: bool,
    /// When the generation in progress began (for the metrics).
    generation_start: Option<f64>,
}

#[wasm_bindgen]
pub struct Engine {
    limit_bytes: u64,
    /// The backends to try, in order (one unless 'auto').
    backends: Vec<BackendKind>,
    /// ggml's threads (more than 1 only in the threaded build, with the host's pool parked).
    threads: usize,
    /// Why the backends tried before the one in use failed, at the last load.
    fallbacks: Vec<String>,
    pending: Option<Pending>,
    loaded: Option<Loaded>,
    /// The memory stores, in the loaded model's space. They outlive a model: loading another
    /// embeds their texts again.
    stores: Option<Stores>,
    reembedded_at_load: bool,
    /// Why the memory stores cannot be used with the loaded model (they could not be moved to it).
    stores_unavailable: Option<String>,
    /// The `process` call in progress.
    process: Option<Process>,
    metrics: Metrics,
    /// Per membrane of `process` (and its integration).
    membrane_metrics: Metrics,
}

/// What the exports return: our `Error` becomes a JS `EchoError` through `?`.
type JsResult<T> = std::result::Result<T, JsValue>;

#[wasm_bindgen]
impl Engine {
    /// `memoryLimitMb` (default: the build-time cap) may only lower the cap; `backend` is
    /// 'ggml' (default), 'reference', 'mock', or 'auto' (the first of ggml, reference and mock to
    /// start and pass a health check: one evaluation with finite logits). `threads` (default 1)
    /// is how many threads ggml computes on: more than 1 needs the threaded build with
    /// `threads - 1` pool workers parked (`js/thread.js`), else loading fails with `invalid_options`.
    #[wasm_bindgen(constructor)]
    pub fn new(memory_limit_mb: Option<f64>, backend: Option<String>, threads: Option<u32>) -> JsResult<Engine> {
        Ok(Engine::create(memory_limit_mb, backend.as_deref().unwrap_or("ggml"), threads.unwrap_or(1) as usize)?)
    }

    fn create(memory_limit_mb: Option<f64>, backend: &str, threads: usize) -> Result<Engine> {
        let cap = backend::memory_cap_bytes().unwrap_or(u64::MAX);
        // Below this, even copying a chunk of a model into wasm memory could fail, which traps.
        let floor = mem::used_bytes() as u64 + LOAD_SLACK_BYTES;
        let limit_bytes = match memory_limit_mb {
            None => cap,
            Some(mb) if mb.is_finite() && mb * MIB >= floor as f64 && mb * MIB <= cap as f64 => (mb * MIB) as u64,
            Some(mb) => {
                return Err(Error::invalid_options(format!(
                    "memoryLimitMb must be a number from {:.1} (what the engine itself needs) to the build-time \
                     cap of {} MB (got {mb}); to raise the cap, rebuild with ECHO_MAX_MEMORY_MB",
                    floor as f64 / MIB,
                    cap as f64 / MIB
                )))
            }
        };
        let backends = match backend {
            "auto" => backend::AUTO.to_vec(),
            name => vec![BackendKind::from_name(name)
                .map_err(|_| Error::invalid_options(format!("unknown backend '{name}'; use ggml, reference, mock or auto")))?],
        };
        mem::set_limit(Some(limit_bytes as usize));
        Ok(Engine { limit_bytes, backends, threads, fallbacks: Vec::new(), pending: None, loaded: None, stores: None, reembedded_at_load: false, stores_unavailable: None, process: None, metrics: Metrics::default(), membrane_metrics: Metrics::default() })
    }

    /// Starts loading a model (dropping the loaded one first, so both never need to fit).
    /// `totalBytes` is the file size when the source knows it: a model that cannot fit is then
    /// refused from its 24-byte header. `tokenizer` is 'auto', 'world', 'neox' or 'byte';
    /// `vocab` the vocabulary file's bytes (World and NeoX); `head` a quantized type to turn a
    /// float head into as it arrives (in wasm the FP16 head is about a third of a decode step).
    #[wasm_bindgen(js_name = beginLoad)]
    pub fn begin_load(
        &mut self,
        total_bytes: Option<f64>,
        tokenizer: Option<String>,
        vocab: Option<Box<[u8]>>,
        head: Option<String>,
    ) -> JsResult<()> {
        // Options first: a bad one leaves the loaded model loaded.
        let tokenizer_name = tokenizer.unwrap_or_else(|| "auto".into());
        if tokenizer_name != "auto" {
            TokenizerKind::from_name(&tokenizer_name)?;
        }
        let head = head.as_deref().map(quantize::head_type).transpose()?;
        self.pending = None;
        self.loaded = None;
        self.process = None;
        mem::reset_peak();
        let total = total_bytes.filter(|n| n.is_finite() && *n >= 0.0).map(|n| n as u64);
        let load = StreamingLoad::new(self.limit_bytes, total).with_head(head);
        self.pending = Some(Pending { load, tokenizer_name, vocab, tokenizer: None });
        Ok(())
    }

    /// The next bytes of the file. After an error the load is over and everything it took is freed.
    #[wasm_bindgen(js_name = pushChunk)]
    pub fn push_chunk(&mut self, chunk: &[u8]) -> JsResult<()> {
        let Some(p) = self.pending.as_mut() else {
            return Err(Error::invalid_options("pushChunk without beginLoad: start a load first").into());
        };
        let (name, vocab, slot) = (&p.tokenizer_name, &mut p.vocab, &mut p.tokenizer);
        let cache = state_cache_bytes(self.limit_bytes);
        let result = p.load.push(chunk, |header| {
            // The tokenizer is built now, before any tensor memory, so it counts as used.
            *slot = make_tokenizer(name, vocab.take(), header.n_vocab as usize)?;
            Ok(mem::used_bytes() as u64 + backend::eval_bytes_bound(header) + cache + LOAD_SLACK_BYTES)
        });
        if result.is_err() {
            self.pending = None;
        }
        Ok(result?)
    }

    /// Where the next bytes of the current tensor go: a view into wasm memory for the source to
    /// `set` its bytes into, then `loadAdvance(n)` — one copy instead of two through `pushChunk`.
    /// Empty outside tensor data (headers go through `pushChunk`). The view is valid until the
    /// next call into the engine: use it at once.
    #[wasm_bindgen(js_name = loadWindow)]
    pub fn load_window(&mut self) -> Uint8Array {
        let Some(p) = self.pending.as_mut() else { return Uint8Array::new_with_length(0) };
        let window = p.load.window();
        // SAFETY: the view covers memory owned by the pending load, which JS writes before any
        // other call into wasm (nothing can grow or free the memory in between).
        unsafe { Uint8Array::view_mut_raw(window.as_mut_ptr().cast(), window.len()) }
    }

    /// The first `n` bytes of `loadWindow()` were written.
    #[wasm_bindgen(js_name = loadAdvance)]
    pub fn load_advance(&mut self, n: usize) -> JsResult<()> {
        let Some(p) = self.pending.as_mut() else {
            return Err(Error::invalid_options("loadAdvance without beginLoad: start a load first").into());
        };
        let result = p.load.advance(n);
        if result.is_err() {
            self.pending = None;
        }
        Ok(result?)
    }

    /// The source has ended: validates the model, starts the backend and warms it up
    /// (`Session::warm_up`); returns `info()`.
    #[wasm_bindgen(js_name = finishLoad)]
    pub fn finish_load(&mut self) -> JsResult<JsValue> {
        let Some(p) = self.pending.take() else {
            return Err(Error::invalid_options("finishLoad without beginLoad: start a load first").into());
        };
        let model = Arc::new(p.load.finish()?);
        let backend = self.start_backend(&model)?;
        let has_tokenizer = p.tokenizer.is_some();
        let tokenizer = p.tokenizer.unwrap_or_else(Tokenizer::byte);
        let name = backend.kind().name();
        let cache = state_cache_bytes(self.limit_bytes) as usize;
        let embedder = Embedder::new(&model, backend.kind(), Pooling::Mean);
        let mut session = Session::new(model, backend, tokenizer, cache, Box::new(super::now_ms));
        session.warm_up()?;
        // Memories another model embedded are embedded again by this one (texts, ids and
        // metadata are kept). A model that cannot (no tokenizer, tokens it does not have) still
        // loads: the old stores stay as they were, and the memory calls say why they cannot run.
        self.stores_unavailable = None;
        let mut reembedded = false;
        match self.stores.as_ref() {
            Some(old) if old.embedder().space() != embedder.space() => {
                let moved = if has_tokenizer { old.for_model(embedder, &mut session) } else { Err(no_tokenizer()) };
                match moved {
                    Ok(stores) => {
                        self.stores = Some(stores);
                        reembedded = true;
                    }
                    Err(e) => self.stores_unavailable = Some(format!(
                        "the memories were embedded by another model and this one cannot embed them again ({}); load a model that can",
                        e.message
                    )),
                }
            }
            Some(_) => {}
            None => self.stores = Some(Stores::new(embedder)),
        }
        self.loaded = Some(Loaded { session, backend: name, has_tokenizer, generation_start: None });
        self.reembedded_at_load = reembedded;
        self.info()
    }

    /// Whether the last load embedded the memory stores again (they held another model's vectors).
    #[wasm_bindgen(js_name = memoriesReembedded)]
    pub fn memories_reembedded(&self) -> bool {
        self.reembedded_at_load
    }

    /// Drops a load in progress and everything it allocated.
    #[wasm_bindgen(js_name = abortLoad)]
    pub fn abort_load(&mut self) {
        self.pending = None;
    }

    /// `{ arch, nVocab, nEmbed, nLayer, dataType, headType, fileBytes, memoryBytes, tokenizer, backend, threads }`.
    pub fn info(&self) -> JsResult<JsValue> {
        let l = self.loaded()?;
        let m = l.session.model();
        let h = &m.hparams;
        Ok(object(&[
            ("arch", m.arch.name().into()),
            ("nVocab", num(h.n_vocab as f64)),
            ("nEmbed", num(h.n_embed as f64)),
            ("nLayer", num(h.n_layer as f64)),
            ("dataType", m.header.dtype.name().into()),
            ("headType", m.tensor("head.weight").info.dtype.name().into()),
            ("fileBytes", num(m.file_bytes as f64)),
            ("memoryBytes", num(backend::memory_bytes(m) as f64)),
            ("tokenizer", if l.has_tokenizer { l.session.tokenizer().name().into() } else { JsValue::NULL }),
            ("backend", l.backend.into()),
            ("threads", num(self.threads as f64)),
        ]))
    }

    /// `{ usedBytes, memoriesBytes, cacheBytes, peakBytes, limitBytes, wasmMemoryBytes }`: bytes
    /// allocated now (of which the memory stores hold `memoriesBytes` and the generation caches,
    /// each bounded, `cacheBytes`), the most
    /// allocated since the last load began, the limit, and the wasm memory's size (what the
    /// instance holds; it never shrinks).
    pub fn memory(&self) -> JsValue {
        object(&[
            ("usedBytes", num(mem::used_bytes() as f64)),
            ("memoriesBytes", num(self.stores.as_ref().map_or(0, Stores::bytes) as f64)),
            ("cacheBytes", num(self.loaded.as_ref().map_or(0, |l| l.session.cache_bytes()) as f64)),
            ("peakBytes", num(mem::peak_bytes() as f64)),
            ("limitBytes", num(self.limit_bytes as f64)),
            ("wasmMemoryBytes", num(mem::wasm_memory_bytes() as f64)),
        ])
    }

    /// `{ ok, backend, fallbacks, model, memory: { usedBytes, limitBytes, headroomBytes } }`: whether a
    /// model is loaded and running, on which backend, why the backends tried before it failed
    /// (with 'auto'), and how much of the memory limit is left.
    pub fn health(&self) -> JsValue {
        let used = mem::used_bytes() as f64;
        let memory = object(&[
            ("usedBytes", num(used)),
            ("limitBytes", num(self.limit_bytes as f64)),
            ("headroomBytes", num((self.limit_bytes as f64 - used).max(0.0))),
        ]);
        let fallbacks: js_sys::Array = self.fallbacks.iter().map(|f| JsValue::from_str(f)).collect();
        let loaded = self.loaded.as_ref();
        object(&[
            ("ok", JsValue::from_bool(loaded.is_some())),
            ("backend", loaded.map_or(JsValue::NULL, |l| l.backend.into())),
            ("fallbacks", fallbacks.into()),
            ("model", loaded.map_or(JsValue::NULL, |l| l.session.model().arch.name().into())),
            ("memory", memory),
        ])
    }

    /// Per backend name; and under `membranes`, per membrane of `process`, once one has run.
    pub fn metrics(&self) -> JsValue {
        let m = self.metrics.to_js();
        if !self.membrane_metrics.is_empty() {
            let _ = js_sys::Reflect::set(&m, &"membranes".into(), &self.membrane_metrics.to_js());
        }
        m
    }

    pub fn tokenize(&self, text: &str) -> JsResult<Vec<u32>> {
        Ok(self.tokenizer()?.encode(text))
    }

    /// Text of `ids`; bytes that are not valid UTF-8 become U+FFFD.
    pub fn detokenize(&self, ids: Vec<u32>) -> JsResult<String> {
        let bytes = self.tokenizer()?.decode(&ids)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Appends `ids` to the conversation and returns the logits for the next token.
    #[wasm_bindgen(js_name = evalTokens)]
    pub fn eval_tokens(&mut self, ids: Vec<u32>) -> JsResult<Vec<f32>> {
        let start = super::now_ms();
        let l = self.loaded_mut()?;
        let result = l.session.eval_tokens(&ids);
        let backend = l.backend;
        let outcome = if result.is_ok() { Outcome::Done } else { Outcome::Failed };
        self.metrics.record(backend, super::now_ms() - start, ids.len(), outcome, false);
        Ok(result?)
    }

    /// Starts a generation: from a fresh conversation, or continuing the current one when
    /// `options.continue` is true. Then call `step` until it returns `done`.
    #[wasm_bindgen(js_name = beginGenerate)]
    pub fn begin_generate(&mut self, prompt: &str, options: JsValue) -> JsResult<()> {
        self.text_ready()?;
        let (opts, continue_conversation) = generate_options(&options)?;
        let l = self.loaded_mut()?;
        if !continue_conversation {
            l.session.reset();
        }
        l.session.begin(prompt, opts)?;
        l.generation_start = Some(super::now_ms());
        Ok(())
    }

    /// One bounded piece of work: `{ text }` (possibly empty), or at the end
    /// `{ done: true, text, tokens, stopReason, stats }` with the whole result.
    pub fn step(&mut self) -> JsResult<JsValue> {
        match self.loaded_mut()?.session.step() {
            Ok(Step::Text(text)) => Ok(object(&[("text", text.into())])),
            Ok(Step::Done(c)) => Ok(self.finish_generation(c, Outcome::Done)),
            Err(e) => {
                self.record_generation(0, Outcome::Failed, false);
                Err(e.into())
            }
        }
    }

    /// Ends the generation in progress; its result (stopReason 'abort'), or null if none.
    #[wasm_bindgen(js_name = abortGenerate)]
    pub fn abort_generate(&mut self) -> JsValue {
        match self.loaded.as_mut().and_then(|l| l.session.abort()) {
            Some(c) => self.finish_generation(c, Outcome::Aborted),
            None => JsValue::NULL,
        }
    }

    /// The conversation (tokens, state, logits) as bytes, for `loadState`. Written straight into
    /// the JS array, as `loadState` reads from one: a state-sized block asked of wasm memory per
    /// call would fragment it.
    #[wasm_bindgen(js_name = saveState)]
    pub fn save_state(&self) -> JsResult<js_sys::Uint8Array> {
        let session = &self.loaded()?.session;
        let out = js_sys::Uint8Array::new_with_length(session.saved_state_len() as u32);
        let mut at = 0;
        session.save_state_to(&mut |piece| {
            out.subarray(at, at + piece.len() as u32).copy_from(piece);
            at += piece.len() as u32;
        });
        Ok(out)
    }

    #[wasm_bindgen(js_name = loadState)]
    pub fn load_state(&mut self, bytes: js_sys::Uint8Array) -> JsResult<()> {
        let read = &mut |at: usize, out: &mut [u8]| bytes.subarray(at as u32, (at + out.len()) as u32).copy_to(out);
        Ok(self.loaded_mut()?.session.load_state_from(bytes.length() as usize, read)?)
    }

    /// Starts a new, empty conversation (the caches stay).
    pub fn reset(&mut self) -> JsResult<()> {
        self.loaded_mut()?.session.reset();
        Ok(())
    }

    /// Frees the model (and any load in progress).
    #[wasm_bindgen(js_name = unloadModel)]
    pub fn unload_model(&mut self) {
        self.pending = None;
        self.loaded = None;
        self.process = None;
    }

    /// L2-normalised embeddings of `texts` by the loaded model (mean pooling).
    pub fn embed(&mut self, texts: Vec<String>) -> JsResult<js_sys::Array> {
        self.text_ready()?;
        let (session, stores) = self.memory_parts()?;
        let out = js_sys::Array::new();
        for t in &texts {
            out.push(&js_sys::Float32Array::from(&stores.embedder().embed(session, t)?[..]));
        }
        Ok(out)
    }

    /// Remembers `text` with `metadata` (JSON text) in `store`; returns its id.
    pub fn remember(&mut self, store: &str, text: &str, metadata: &str) -> JsResult<f64> {
        self.text_ready()?;
        let (session, stores) = self.memory_parts()?;
        Ok(stores.remember(session, store, text, metadata)? as f64)
    }

    /// The `k` best memories of `store` for `query`: `[{ id, text, score, cosine, lexical, metadata }]`.
    pub fn recall(&mut self, store: &str, query: &str, k: u32) -> JsResult<JsValue> {
        self.text_ready()?;
        let (session, stores) = self.memory_parts()?;
        let hits: Vec<serde_json::Value> = stores.recall(session, store, query, k as usize)?.iter().map(crate::memory::Hit::to_json).collect();
        Ok(json_value(&serde_json::Value::Array(hits)))
    }

    pub fn forget(&mut self, store: &str, id: f64) -> JsResult<bool> {
        let stores = self.stores_mut()?;
        Ok(id.fract() == 0.0 && id >= 1.0 && stores.forget(store, id as u64)?)
    }

    /// `{ total, items: [{ id, text, metadata }] }`, oldest first.
    pub fn memories(&self, store: &str, offset: u32, limit: u32) -> JsResult<JsValue> {
        let (total, items) = self.stores()?.list(store, offset as usize, limit as usize)?;
        let items: Vec<serde_json::Value> = items.iter().map(|m| m.to_json()).collect();
        Ok(json_value(&serde_json::json!({ "total": total, "items": items })))
    }

    /// The names of the stores that hold or held memories.
    #[wasm_bindgen(js_name = memoryStores)]
    pub fn memory_stores(&self) -> Vec<String> {
        self.stores.iter().flat_map(|s| s.names().map(str::to_string)).collect()
    }

    /// `store`'s export, or with no store the memory file of every store.
    #[wasm_bindgen(js_name = exportMemories)]
    pub fn export_memories(&self, store: Option<String>) -> JsResult<Vec<u8>> {
        Ok(self.stores()?.export(store.as_deref())?)
    }

    /// Reads an export (into `store`) or a memory file (no store); another model's memories are
    /// embedded again. `[{ store, memories, reembedded }]`.
    #[wasm_bindgen(js_name = importMemories)]
    pub fn import_memories(&mut self, bytes: &[u8], store: Option<String>) -> JsResult<JsValue> {
        let (session, stores) = self.memory_parts()?;
        let imported = stores.import(session, bytes, store.as_deref())?;
        let list: Vec<serde_json::Value> = imported
            .iter()
            .map(|i| serde_json::json!({ "store": i.store, "memories": i.memories, "reembedded": i.reembedded }))
            .collect();
        Ok(json_value(&serde_json::Value::Array(list)))
    }

    /// A store's export header and one memory's record (an export is the header, the number of
    /// memories as a u64, and the records): what IndexedDB keeps, so a change writes only them.
    #[wasm_bindgen(js_name = memoryHeader)]
    pub fn memory_header(&self, store: &str) -> JsResult<Vec<u8>> {
        Ok(self.stores()?.header(store)?)
    }

    #[wasm_bindgen(js_name = memoryRecord)]
    pub fn memory_record(&self, store: &str, id: f64) -> JsResult<Option<Vec<u8>>> {
        let stores = self.stores()?;
        Ok(stores.get(store)?.and_then(|s| s.record(id as u64)))
    }

    /// Starts `process(context, options)` (both as JSON text); then `processStep` until `done`.
    #[wasm_bindgen(js_name = beginProcess)]
    pub fn begin_process(&mut self, context: &str, options: &str) -> JsResult<()> {
        self.text_ready()?;
        let parse = |what: &str, text: &str| {
            serde_json::from_str::<serde_json::Value>(text).map_err(|e| Error::invalid_options(format!("{what} is not JSON: {e}")))
        };
        let ctx = Context::from_json(&parse("the context", context)?)?;
        let opts = ProcessOptions::from_json(&parse("the options", options)?)?;
        self.stores()?;
        let l = self.loaded.as_mut().ok_or_else(no_model)?;
        if l.session.is_active() {
            return Err(Error::new(ErrorCode::Busy, "a generation is in progress: finish or abort it first").into());
        }
        l.generation_start = Some(super::now_ms());
        self.process = Some(Process::new(ctx, opts, &l.session));
        Ok(())
    }

    /// One bounded step: `{ membrane, result }`, `{ text }`, `{}` (work, nothing to report) or
    /// `{ done: true, response }`.
    #[wasm_bindgen(js_name = processStep)]
    pub fn process_step(&mut self) -> JsResult<JsValue> {
        let Some(process) = self.process.as_mut() else {
            return Err(Error::invalid_options("no process is active: call beginProcess first").into());
        };
        let (Some(l), Some(stores)) = (self.loaded.as_mut(), self.stores.as_mut()) else { return Err(no_model().into()) };
        let event = process.step(&mut l.session, stores);
        match event {
            Ok(Event::Working) => Ok(object(&[])),
            Ok(Event::Text(t)) => Ok(object(&[("text", t.into())])),
            Ok(Event::Membrane(name, result)) => {
                self.membrane_metrics.record(name, result["ms"].as_f64().unwrap_or(0.0), 0, Outcome::Done, false);
                Ok(object(&[("membrane", name.into()), ("result", json_value(&result))]))
            }
            Ok(Event::Done(response)) => {
                self.process = None;
                let stats = &response["stats"];
                let count = |k: &str| stats[k].as_u64().unwrap_or(0) as usize;
                let integration_ms = response["integration"]["ms"].as_f64().unwrap_or(0.0);
                self.membrane_metrics.record("integration", integration_ms, count("generatedTokens"), Outcome::Done, false);
                self.record_generation(count("promptTokens").saturating_sub(count("cachedTokens")) + count("generatedTokens"), Outcome::Done, count("cachedTokens") > 0);
                Ok(object(&[("done", JsValue::TRUE), ("response", json_value(&response))]))
            }
            Err(e) => {
                self.process = None;
                if let Some(l) = self.loaded.as_mut() {
                    l.session.reset();
                }
                self.record_generation(0, Outcome::Failed, false);
                Err(e.into())
            }
        }
    }

    /// Ends the process in progress (nothing if none); the engine stays usable.
    #[wasm_bindgen(js_name = abortProcess)]
    pub fn abort_process(&mut self) {
        if let (Some(mut p), Some(l)) = (self.process.take(), self.loaded.as_mut()) {
            p.abort(&mut l.session);
            l.session.reset();
            self.record_generation(0, Outcome::Aborted, false);
        }
    }
}

impl Engine {
    /// The first backend that starts and passes its health check; the others' failures are kept
    /// for `health()`. All failing is the last one's error.
    fn start_backend(&mut self, model: &Arc<Model>) -> Result<Box<dyn backend::Backend>> {
        self.fallbacks.clear();
        let mut last = None;
        for &kind in &self.backends {
            let started = backend::create_with_threads(kind, model.clone(), self.threads).and_then(|mut b| backend::health_check(&mut *b, model).map(|_| b));
            match started {
                Ok(b) => return Ok(b),
                Err(e) => {
                    self.fallbacks.push(format!("{}: {}", kind.name(), e.message));
                    last = Some(e);
                }
            }
        }
        Err(last.expect("at least one backend is tried"))
    }

    fn memory_parts(&mut self) -> Result<(&mut Session, &mut Stores)> {
        self.stores()?;
        match (self.loaded.as_mut(), self.stores.as_mut()) {
            (Some(l), Some(stores)) => Ok((&mut l.session, stores)),
            _ => Err(no_model()),
        }
    }

    /// The memory stores, if the loaded model can use them.
    fn stores(&self) -> Result<&Stores> {
        if let Some(why) = &self.stores_unavailable {
            return Err(Error::invalid_options(why.clone()));
        }
        self.stores.as_ref().ok_or_else(no_model)
    }

    fn stores_mut(&mut self) -> Result<&mut Stores> {
        self.stores()?;
        self.stores.as_mut().ok_or_else(no_model)
    }

    fn loaded(&self) -> Result<&Loaded> {
        self.loaded.as_ref().ok_or_else(no_model)
    }

    fn loaded_mut(&mut self) -> Result<&mut Loaded> {
        self.loaded.as_mut().ok_or_else(no_model)
    }

    fn tokenizer(&self) -> Result<&Tokenizer> {
        self.text_ready()?;
        Ok(self.loaded()?.session.tokenizer())
    }

    fn text_ready(&self) -> Result<()> {
        if self.loaded()?.has_tokenizer {
            return Ok(());
        }
        Err(no_tokenizer())
    }

    /// Records the generation in progress, from `beginGenerate` to now, as one request.
    fn record_generation(&mut self, tokens: usize, outcome: Outcome, cache_hit: bool) {
        if let Some(l) = self.loaded.as_mut() {
            let ms = l.generation_start.take().map_or(0.0, |t| super::now_ms() - t);
            self.metrics.record(l.backend, ms, tokens, outcome, cache_hit);
        }
    }

    fn finish_generation(&mut self, c: Completion, outcome: Outcome) -> JsValue {
        let cache_hit = c.stats.cached_tokens > 0 || c.stats.from_response_cache;
        self.record_generation(c.stats.evaluated_prompt_tokens + c.stats.generated_tokens, outcome, cache_hit);
        let s = &c.stats;
        let stats = object(&[
            ("promptTokens", num(s.prompt_tokens as f64)),
            ("cachedTokens", num(s.cached_tokens as f64)),
            ("evaluatedPromptTokens", num(s.evaluated_prompt_tokens as f64)),
            ("generatedTokens", num(s.generated_tokens as f64)),
            ("promptMs", num(s.prompt_ms)),
            ("decodeMs", num(s.decode_ms)),
            ("promptTokensPerS", num(s.prompt_tokens_per_s)),
            ("decodeTokensPerS", num(s.decode_tokens_per_s)),
            ("decodeMsMedian", num(s.decode_ms_median)),
            ("fromResponseCache", JsValue::from_bool(s.from_response_cache)),
        ]);
        let tokens: js_sys::Array = c.tokens.iter().map(|&t| num(t)).collect();
        let mut fields = vec![
            ("done", JsValue::TRUE),
            ("text", c.text.as_str().into()),
            ("tokens", tokens.into()),
            ("stopReason", c.stop_reason.as_str().into()),
            ("stats", stats),
        ];
        if !c.logprobs.is_empty() {
            fields.push(("logprobs", c.logprobs.iter().map(|&p| num(p)).collect::<js_sys::Array>().into()));
        }
        object(&fields)
    }
}

/// The generation options the JS API takes (camelCase), over the sampler's defaults; and
/// whether to continue the conversation.
fn generate_options(value: &JsValue) -> Result<(GenerateOptions, bool)> {
    const KEYS: &[&str] = &[
        "maxTokens", "temperature", "topP", "topK", "minP", "presencePenalty", "frequencyPenalty", "penaltyDecay",
        "logitBias", "bannedTokens", "stop", "stopTokens", "seed", "continue", "grammar", "logprobs",
    ];
    let o = Options::new(value, "generate", KEYS)?;
    let d = GenerateOptions::default();
    let s = SamplerOptions::default();
    let f32_or = |key: &str, default: f32| o.f64(key).map(|v| v.map_or(default, |v| v as f32));
    let sampler = SamplerOptions {
        temperature: f32_or("temperature", s.temperature)?,
        top_p: f32_or("topP", s.top_p)?,
        top_k: o.uint("topK", u32::MAX as f64)?.map_or(s.top_k, |k| k as usize),
        min_p: f32_or("minP", s.min_p)?,
        presence_penalty: f32_or("presencePenalty", s.presence_penalty)?,
        frequency_penalty: f32_or("frequencyPenalty", s.frequency_penalty)?,
        penalty_decay: f32_or("penaltyDecay", s.penalty_decay)?,
        logit_bias: o.token_map("logitBias")?,
        banned_tokens: o.tokens("bannedTokens")?,
        seed: o.uint("seed", 9_007_199_254_740_991.0)?.unwrap_or(s.seed),
    };
    let opts = GenerateOptions {
        sampler,
        max_tokens: o.uint("maxTokens", u32::MAX as f64)?.map_or(d.max_tokens, |n| n as usize),
        stop: o.strings("stop")?,
        stop_tokens: o.tokens("stopTokens")?,
        grammar: o.grammar("grammar")?,
        logprobs: o.bool("logprobs")?.unwrap_or(false),
    };
    Ok((opts, o.bool("continue")?.unwrap_or(false)))
}

/// A JSON value as the JS value `JSON.parse` makes of it.
fn json_value(v: &serde_json::Value) -> JsValue {
    js_sys::JSON::parse(&v.to_string()).unwrap_or(JsValue::NULL)
}

fn no_tokenizer() -> Error {
    Error::invalid_options(
        "this model has no tokenizer: pass loadModel(source, { tokenizer, vocab }) with its vocabulary \
         file (World models: rwkv_vocab_v20230424.txt; 20B models: tokenizer.json)",
    )
}

fn no_model() -> Error {
    Error::new(ErrorCode::NoModel, "no model is loaded: call loadModel first")
}

/// The tokenizer for a model with `n_vocab` outputs. 'auto' picks by vocabulary size and, when
/// that one needs a vocabulary file that was not given, leaves the model without a tokenizer
/// (token-level calls still work); a tokenizer asked for by name must be complete.
fn make_tokenizer(name: &str, vocab: Option<Box<[u8]>>, n_vocab: usize) -> Result<Option<Tokenizer>> {
    let kind = match name {
        "auto" => match tokenizer::kind_for_vocab(n_vocab) {
            Some(kind) if kind == TokenizerKind::Byte || vocab.is_some() => kind,
            _ => return Ok(None),
        },
        name => TokenizerKind::from_name(name)?,
    };
    let tok = match (kind, vocab) {
        (TokenizerKind::Byte, _) => Tokenizer::byte(),
        (kind, Some(file)) => Tokenizer::load(kind, &file)?,
        (kind, None) => {
            return Err(Error::invalid_options(format!(
                "the {} tokenizer needs its vocabulary file: pass it as loadModel's `vocab` option",
                kind.name()
            )))
        }
    };
    if tok.vocab_size() > n_vocab {
        return Err(Error::invalid_options(format!(
            "the {} tokenizer has {} tokens but the model only {n_vocab}: choose the model's tokenizer",
            tok.name(),
            tok.vocab_size()
        )));
    }
    Ok(Some(tok))
}

/// The prompt-state cache's share of the limit.
fn state_cache_bytes(limit_bytes: u64) -> u64 {
    (limit_bytes / 16).min(32 << 20)
}
