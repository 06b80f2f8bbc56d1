//! A generation session: one model, one backend, one conversation, and the caches.
//!
//! Generation runs in bounded steps ([`Session::step`]) so a JS worker can check for an abort
//! between them: first the prompt is ingested in chunks of [`SEQ_CHUNK`] tokens, then one token
//! is decoded per step. Chunks end at multiples of `SEQ_CHUNK` from the start of the
//! conversation, and the state at each such boundary (and at the end of every prompt and reply)
//! goes into the prefix cache, so a later request sharing a prefix resumes from there. The
//! backends' results do not depend on how a sequence is split (each token's arithmetic is the
//! same; tests/generate.rs checks it), so a resumed run gives the same logits as a cold one.

use std::sync::Arc;

use super::cache::{PrefixCache, ResponseCache};
use super::conversation::Conversation;
use super::options::{Completion, GenerateOptions, Stats, Step, StopReason};
use super::stop::StopMatcher;
use super::utf8::Utf8Stream;
use crate::backend::Backend;
use crate::error::{Error, ErrorCode, Result};
use crate::ggml::SEQ_CHUNK;
use crate::grammar::{Constraint, Grammars};
use crate::model::Model;
use crate::sampler::{Sampler, SamplerOptions};
use crate::tokenizer::Tokenizer;

/// The response cache's share: completions are small next to states.
const RESPONSE_CACHE_BYTES: usize = 1 << 20;

/// The warm-up's prompt (a sequence takes the batched path) and decoded tokens.
const WARM_UP_PROMPT: usize = 4;
const WARM_UP_TOKENS: usize = 4;

pub struct Session {
    model: Arc<Model>,
    backend: Box<dyn Backend>,
    tokenizer: Tokenizer,
    clock: Box<dyn Fn() -> f64>,
    conv: Conversation,
    prefixes: PrefixCache,
    responses: ResponseCache,
    active: Option<Generation>,
    /// The active generation's sampler, kept with its vocabulary-sized buffers between requests.
    sampler: Sampler,
    /// The grammar engine, built at the first request with a grammar.
    grammars: Option<Grammars>,
    /// A state and hidden rows for work beside the conversation (embeddings), kept between uses.
    scratch: (Vec<f32>, Vec<f32>),
}

/// The generation in progress.
struct Generation {
    max_tokens: usize,
    stop_tokens: Vec<u32>,
    /// Each generated token's log probability, when asked for.
    logprobs: Option<Vec<f32>>,
    constraint: Option<Constraint>,
    utf8: Utf8Stream,
    stop: StopMatcher,
    text: String,
    tokens: Vec<u32>,
    stats: Stats,
    /// Each decode step's ms, for the median.
    step_ms: Vec<f64>,
    /// The response cache key: the conversation up to the reply, and the options.
    key: (Vec<u32>, Vec<u8>),
    /// Text to send before `done` (a reply from the response cache).
    replay: Option<String>,
    /// Set when the generation has ended; the next step returns it.
    done: Option<Completion>,
}

impl Generation {
    fn step_done(&mut self, ms: f64) {
        self.stats.decode_ms += ms;
        self.step_ms.push(ms);
    }
}

impl Session {
    /// `cache_bytes` bounds the prefix cache (0 turns caching off); `clock` gives milliseconds.
    pub fn new(
        model: Arc<Model>,
        backend: Box<dyn Backend>,
        tokenizer: Tokenizer,
        cache_bytes: usize,
        clock: Box<dyn Fn() -> f64>,
    ) -> Session {
        let conv = Conversation::new(&model);
        let prefixes = PrefixCache::new(cache_bytes, model.state_len(), model.hparams.n_vocab);
        Session {
            model,
            backend,
            tokenizer,
            clock,
            conv,
            prefixes,
            responses: ResponseCache::new(cache_bytes.min(RESPONSE_CACHE_BYTES)),
            active: None,
            sampler: Sampler::default(),
            grammars: None,
            scratch: (Vec::new(), Vec::new()),
        }
    }

    /// Runs the model and the sampler on a scratch state — a short prompt, then a few tokens
    /// sampled with the default options and fed back — so the first request does not pay for
    /// one-time work: the backend's buffers and, in wasm, the engine compiling the hot functions
    /// again with its optimizing tier. The conversation and the caches are as if it had not run.
    pub fn warm_up(&mut self) -> Result<()> {
        let n_vocab = self.model.hparams.n_vocab;
        let mut state = self.model.initial_state();
        let mut logits = vec![0.0; n_vocab];
        let mut sampler = Sampler::new(SamplerOptions::default(), n_vocab)?;
        self.backend.eval(&[0; WARM_UP_PROMPT], &mut state, Some(&mut logits))?;
        for _ in 0..WARM_UP_TOKENS {
            let token = sampler.sample(&logits);
            self.backend.eval(&[token], &mut state, Some(&mut logits))?;
        }
        Ok(())
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// Milliseconds on the session's clock.
    pub fn now(&self) -> f64 {
        (self.clock)()
    }

    /// The backend's kind.
    pub fn backend_kind(&self) -> crate::backend::BackendKind {
        self.backend.kind()
    }

    /// Runs `tokens` from the model's initial state, beside the conversation (which it leaves
    /// as it is), passing the final hidden states to `rows` a chunk at a time (`n_embed` floats a
    /// token). The state and rows are the session's scratch, so this allocates nothing after its
    /// first use.
    pub fn eval_hidden(&mut self, tokens: &[u32], rows: &mut dyn FnMut(&[f32])) -> Result<()> {
        let (state, hidden) = &mut self.scratch;
        let e = self.model.hparams.n_embed;
        state.resize(self.model.state_len(), 0.0);
        hidden.resize(SEQ_CHUNK * e, 0.0);
        self.model.initial_state_into(state);
        for chunk in tokens.chunks(SEQ_CHUNK) {
            let out = &mut hidden[..chunk.len() * e];
            self.backend.eval_hidden(chunk, state, out)?;
            rows(out);
        }
        Ok(())
    }

    /// Every token of the conversation so far.
    pub fn tokens(&self) -> &[u32] {
        &self.conv.tokens
    }

    /// The grammar engine for this session's tokenizer and model (built on first use).
    pub fn grammars(&mut self) -> Result<&mut Grammars> {
        if self.grammars.is_none() {
            self.grammars = Some(Grammars::new(&self.tokenizer, self.model.hparams.n_vocab)?);
        }
        Ok(self.grammars.as_mut().unwrap())
    }

    /// Whether a generation is in progress.
    pub fn is_active(&self) -> bool {
        self.active.is_some()
    }

    pub fn prefix_cache(&self) -> &PrefixCache {
        &self.prefixes
    }

    /// Bytes the prefix-state and response caches hold (each bounded).
    pub fn cache_bytes(&self) -> usize {
        self.prefixes.bytes() + self.responses.bytes()
    }

    /// Starts a generation that continues the conversation with `prompt`. The prompt may be
    /// empty only when the conversation already has tokens (the model then simply continues).
    /// `Busy` while a generation is active; `InvalidOptions` for bad options or a prompt with
    /// tokens the model does not have.
    pub fn begin(&mut self, prompt: &str, opts: GenerateOptions) -> Result<()> {
        self.check_idle()?;
        let n_vocab = self.model.hparams.n_vocab;
        opts.validate(n_vocab)?;
        self.sampler.restart(opts.sampler.clone(), n_vocab)?;
        let prompt_tokens = self.tokenizer.encode(prompt);
        self.check_tokens(&prompt_tokens)?;
        if prompt_tokens.is_empty() && self.conv.tokens.is_empty() {
            return Err(Error::invalid_options("the prompt is empty: a new conversation needs at least one token"));
        }
        self.prefixes.reserve();
        let constraint = opts.grammar.as_ref().map(|grammar| self.grammars()?.constraint(grammar)).transpose()?;
        self.conv.tokens.extend_from_slice(&prompt_tokens);
        let mut g = Generation {
            max_tokens: opts.max_tokens,
            stop_tokens: opts.stop_tokens.clone(),
            logprobs: opts.logprobs.then(Vec::new),
            constraint,
            utf8: Utf8Stream::new(),
            stop: StopMatcher::new(&opts.stop),
            text: String::new(),
            tokens: Vec::new(),
            stats: Stats { prompt_tokens: prompt_tokens.len(), ..Stats::default() },
            step_ms: Vec::new(),
            key: (self.conv.tokens.clone(), opts.cache_key()),
            replay: None,
            done: None,
        };
        if !self.replay_cached_response(&mut g) {
            g.stats.cached_tokens = self.resume_from_cache();
        }
        self.active = Some(g);
        Ok(())
    }

    /// Does one bounded unit of work: a prompt chunk (`Text("")`) or one decoded token (its
    /// text, possibly empty while bytes are held back). The step after the last text returns
    /// `Done`. An evaluation error ends the generation and resets the conversation (the state
    /// may be half-updated).
    pub fn step(&mut self) -> Result<Step> {
        let mut g = self.active.take().ok_or_else(|| Error::invalid_options("no generation is active: call begin first"))?;
        match self.advance(&mut g) {
            Ok(Step::Done(c)) => Ok(Step::Done(c)),
            Ok(step) => {
                self.active = Some(g);
                Ok(step)
            }
            Err(e) => {
                self.conv.clear(&self.model);
                Err(e)
            }
        }
    }

    /// Ends the active generation with `StopReason::Abort`; its text includes what was held
    /// back. A generation that had already ended returns its own result.
    pub fn abort(&mut self) -> Option<Completion> {
        let mut g = self.active.take()?;
        if let Some(done) = g.done.take() {
            return Some(done);
        }
        self.finish(&mut g, StopReason::Abort, true);
        g.done
    }

    /// `begin`, then `step` until done, passing every step's text to `on_text` (`""` while the
    /// prompt is ingested); `on_text` returning false aborts.
    pub fn complete(&mut self, prompt: &str, opts: GenerateOptions, on_text: &mut dyn FnMut(&str) -> bool) -> Result<Completion> {
        self.begin(prompt, opts)?;
        loop {
            match self.step()? {
                Step::Done(c) => return Ok(c),
                Step::Text(t) if !on_text(&t) => {
                    return self.abort().ok_or_else(|| Error::new(ErrorCode::Aborted, "the generation ended while aborting"));
                }
                Step::Text(_) => {}
            }
        }
    }

    /// Appends `tokens` to the conversation, brings the state up to date (using the prefix
    /// cache) and returns the logits for the next token.
    pub fn eval_tokens(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        self.check_idle()?;
        self.check_tokens(tokens)?;
        if tokens.is_empty() && self.conv.tokens.is_empty() {
            return Err(Error::invalid_options("no tokens to evaluate: pass at least one token"));
        }
        self.conv.tokens.extend_from_slice(tokens);
        self.resume_from_cache();
        let mut scratch = Stats::default();
        while !self.conv.unfed().is_empty() {
            if let Err(e) = self.ingest_chunk(&mut scratch) {
                self.conv.clear(&self.model);
                return Err(e);
            }
        }
        self.conv.logits().map(<[f32]>::to_vec).ok_or_else(|| Error::invalid_options("no logits: the conversation is empty"))
    }

    /// Back to the model's initial state with an empty conversation (ends any generation; the
    /// caches stay).
    pub fn reset(&mut self) {
        self.active = None;
        self.conv.clear(&self.model);
    }

    /// The conversation (tokens, state, logits) as bytes; see `conversation.rs` for the format.
    pub fn save_state(&self) -> Vec<u8> {
        self.conv.save(&self.model)
    }

    /// `save_state`'s bytes, passed to `put` in pieces; `saved_state_len` of them.
    pub fn save_state_to(&self, put: &mut dyn FnMut(&[u8])) {
        self.conv.save_to(&self.model, put)
    }

    pub fn saved_state_len(&self) -> usize {
        self.conv.saved_len()
    }

    /// Restores what `save_state` wrote for this model (`InvalidOptions` otherwise, and the
    /// conversation stays as it was).
    pub fn load_state(&mut self, bytes: &[u8]) -> Result<()> {
        self.check_idle()?;
        self.conv.load(&self.model, bytes)
    }

    /// `load_state` from `len` bytes that `read(at, out)` copies out piece by piece (bytes outside
    /// wasm memory, read without a copy of them all inside it).
    pub fn load_state_from(&mut self, len: usize, read: &mut dyn FnMut(usize, &mut [u8])) -> Result<()> {
        self.check_idle()?;
        self.conv.load_from(&self.model, len, read)
    }

    fn check_idle(&self) -> Result<()> {
        match self.active {
            Some(_) => Err(Error::new(ErrorCode::Busy, "a generation is in progress: finish or abort it first")),
            None => Ok(()),
        }
    }

    fn check_tokens(&self, tokens: &[u32]) -> Result<()> {
        let n_vocab = self.model.hparams.n_vocab;
        match tokens.iter().find(|&&t| t as usize >= n_vocab) {
            Some(t) => Err(Error::invalid_options(format!(
                "token {t} is out of range: the model has {n_vocab} tokens (is the tokenizer the model's?)"
            ))),
            None => Ok(()),
        }
    }

    /// Moves the state to the longest cached prefix of the conversation, if that is further
    /// than the state already is; returns how many tokens that skipped.
    fn resume_from_cache(&mut self) -> usize {
        let conv = &mut self.conv;
        match self.prefixes.longest_prefix(&conv.tokens) {
            Some((n, snapshot)) if n > conv.fed => {
                conv.state.copy_from_slice(snapshot.state);
                conv.set_logits(snapshot.logits);
                let skipped = n - conv.fed;
                conv.fed = n;
                skipped
            }
            _ => 0,
        }
    }

    /// Answers from the response cache when an identical request was completed before and the
    /// state after it is still cached (the conversation must continue from there).
    fn replay_cached_response(&mut self, g: &mut Generation) -> bool {
        let Some(hit) = self.responses.get(&g.key.0, &g.key.1).cloned() else { return false };
        let mut tokens = g.key.0.clone();
        tokens.extend_from_slice(&hit.tokens);
        // As after a live run, the reply's last token is not fed yet.
        let fed = tokens.len() - usize::from(!hit.tokens.is_empty());
        let Some((n, snapshot)) = self.prefixes.longest_prefix(&tokens[..fed]) else { return false };
        if n != fed {
            return false;
        }
        self.conv.state.copy_from_slice(snapshot.state);
        self.conv.set_logits(snapshot.logits);
        g.stats.cached_tokens = g.key.0.len() - self.conv.fed;
        self.conv.fed = fed;
        self.conv.tokens = tokens;
        g.stats.generated_tokens = hit.tokens.len();
        g.stats.from_response_cache = true;
        g.replay = Some(hit.text.clone());
        g.done = Some(Completion { stats: g.stats.clone(), ..hit });
        true
    }

    fn advance(&mut self, g: &mut Generation) -> Result<Step> {
        if let Some(text) = g.replay.take() {
            return Ok(Step::Text(text));
        }
        if let Some(done) = g.done.take() {
            return Ok(Step::Done(done));
        }
        if !self.conv.unfed().is_empty() {
            self.ingest_chunk(&mut g.stats)?;
            return Ok(Step::Text(String::new()));
        }
        if g.constraint.as_ref().is_some_and(Constraint::is_finished) {
            return Ok(Step::Text(self.finish(g, StopReason::Grammar, true)));
        }
        if g.tokens.len() >= g.max_tokens {
            return Ok(Step::Text(self.finish(g, StopReason::Length, true)));
        }
        self.decode_one(g).map(Step::Text)
    }

    /// Evaluates the unfed tokens up to the next chunk boundary; caches the state there.
    fn ingest_chunk(&mut self, stats: &mut Stats) -> Result<()> {
        let start = (self.clock)();
        let conv = &mut self.conv;
        let len = conv.tokens.len();
        let end = len.min((conv.fed / SEQ_CHUNK + 1) * SEQ_CHUNK);
        let last = end == len;
        conv.has_logits = false;
        self.backend.eval(&conv.tokens[conv.fed..end], &mut conv.state, last.then_some(&mut conv.logits[..]))?;
        stats.evaluated_prompt_tokens += end - conv.fed;
        conv.fed = end;
        conv.has_logits = last;
        if last || end % SEQ_CHUNK == 0 {
            self.prefixes.insert(&conv.tokens[..end], &conv.state, conv.logits());
        }
        stats.prompt_ms += (self.clock)() - start;
        Ok(())
    }

    /// Samples one token and, unless the generation ends with it, feeds it back.
    fn decode_one(&mut self, g: &mut Generation) -> Result<String> {
        let start = (self.clock)();
        let conv = &mut self.conv;
        let logits = conv.logits().ok_or_else(|| Error::invalid_options("no logits to sample from"))?;
        let token = match g.constraint.as_mut() {
            None => self.sampler.sample(logits),
            Some(c) => match c.sample(&mut self.sampler, logits)? {
                Some(token) => token,
                // Only tokens past the model's outputs are allowed (a byte model's end of text).
                None if c.is_accepting() => {
                    g.step_done((self.clock)() - start);
                    return Ok(self.finish(g, StopReason::Grammar, true));
                }
                None => return Err(Error::invalid_options("the grammar allows no token this model has at this point")),
            },
        };
        if let Some(logprobs) = g.logprobs.as_mut() {
            logprobs.push(crate::sampler::log_prob(logits, token));
        }
        conv.tokens.push(token);
        g.tokens.push(token);
        g.stats.generated_tokens += 1;

        // (reason, whether held text is still released)
        let mut text = String::new();
        let mut ended = None;
        let grammar_eos = g.constraint.as_ref().is_some_and(|c| c.eos() == token);
        if grammar_eos {
            ended = Some((StopReason::Grammar, true));
        } else if g.stop_tokens.contains(&token) {
            ended = Some((StopReason::Stop, true));
        } else {
            // Ids the vocabulary does not define (padding outputs) add no text.
            let bytes = self.tokenizer.decode(&[token]).unwrap_or_default();
            let released = g.stop.push(&g.utf8.push(&bytes));
            text = released.text;
            if released.stopped {
                ended = Some((StopReason::Stop, false));
            } else if g.constraint.as_ref().is_some_and(Constraint::is_finished) {
                ended = Some((StopReason::Grammar, true));
            } else if g.tokens.len() >= g.max_tokens {
                ended = Some((StopReason::Length, true));
            }
        }
        g.text.push_str(&text);
        match ended {
            // The last token is left unfed, with the logits it was sampled from.
            Some((reason, flush)) => {
                g.step_done((self.clock)() - start);
                text.push_str(&self.finish(g, reason, flush));
            }
            None => {
                conv.has_logits = false;
                self.backend.eval(&[token], &mut conv.state, Some(&mut conv.logits))?;
                conv.fed += 1;
                conv.has_logits = true;
                g.step_done((self.clock)() - start);
            }
        }
        Ok(text)
    }

    /// Ends the generation: releases held text if `flush` (not after a stop string: what follows
    /// it is dropped), caches the state and the response, and leaves the completion in `g.done`.
    /// Returns the released text.
    fn finish(&mut self, g: &mut Generation, reason: StopReason, flush: bool) -> String {
        let mut tail = String::new();
        if flush {
            let released = g.stop.push(&g.utf8.finish());
            tail = released.text;
            if !released.stopped {
                tail.push_str(&g.stop.finish());
            }
        }
        g.text.push_str(&tail);
        g.stats.finish(&mut g.step_ms);
        let conv = &self.conv;
        if conv.fed > 0 {
            self.prefixes.insert(&conv.tokens[..conv.fed], &conv.state, conv.logits());
        }
        let completion = Completion {
            text: g.text.clone(),
            tokens: g.tokens.clone(),
            stop_reason: reason,
            stats: g.stats.clone(),
            logprobs: g.logprobs.clone().unwrap_or_default(),
        };
        if reason != StopReason::Abort {
            self.responses.insert(&g.key.0, &g.key.1, &completion);
        }
        g.done = Some(completion);
        tail
    }
}
