//! Grammar-constrained decoding: every generated token is drawn only from those a grammar allows,
//! so the output conforms (JSON that parses and matches a schema, text that matches a pattern),
//! whatever the model. The engine is the `llguidance` crate: it computes, at each step, the set
//! of tokens whose bytes can continue the text within the grammar.
//!
//! - [`Grammar`]: what a request asks for — a JSON Schema, a regular expression, a Lark grammar
//!   (llguidance's dialect) or a GBNF grammar (llama.cpp's format, converted by `gbnf.rs`);
//! - [`Grammars`]: the token trie built from our tokenizer (once per session) and the grammars
//!   compiled so far, by text;
//! - [`Constraint`]: one generation's parser state: the mask of allowed tokens, tokens accepted.

mod depth;
mod gbnf;

use llguidance::api::TopLevelGrammar;
use llguidance::toktrie::{ApproximateTokEnv, SimpleVob, TokEnv, TokRxInfo, TokTrie};
use llguidance::{Matcher, ParserFactory};

use crate::error::{Error, ErrorCode, Result};
use crate::sampler::Sampler;
use crate::tokenizer::{Tokenizer, TokenizerKind};

pub use gbnf::to_lark as gbnf_to_lark;

/// Compiled grammars kept per session (the least recently used goes first).
const CACHED_GRAMMARS: usize = 16;

/// What the grammar engine takes per vocabulary token (the token trie and its tables; measured:
/// 6.6 MB for World's 65,536), with room for compiled grammars.
const BYTES_PER_TOKEN: usize = 160;

/// A grammar as a request gives it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Grammar {
    /// A JSON Schema, as JSON text. Generated JSON is compact (no whitespace between tokens)
    /// unless the schema says otherwise in llguidance's `x-guidance` key.
    JsonSchema(String),
    /// A regular expression (Rust `regex` syntax) the whole output must match.
    Regex(String),
    /// A grammar in llguidance's Lark dialect (start rule `start`).
    Lark(String),
    /// A grammar in llama.cpp's GBNF (start rule `root`); see `gbnf.rs` for what is supported.
    Gbnf(String),
}

impl Grammar {
    /// "json_schema", "regex", "lark" or "gbnf".
    pub fn kind(&self) -> &'static str {
        match self {
            Grammar::JsonSchema(_) => "json_schema",
            Grammar::Regex(_) => "regex",
            Grammar::Lark(_) => "lark",
            Grammar::Gbnf(_) => "gbnf",
        }
    }

    pub fn text(&self) -> &str {
        match self {
            Grammar::JsonSchema(s) | Grammar::Regex(s) | Grammar::Lark(s) | Grammar::Gbnf(s) => s,
        }
    }

    fn top_level(&self) -> Result<TopLevelGrammar> {
        Ok(match self {
            Grammar::JsonSchema(text) => {
                let mut schema: serde_json::Value =
                    serde_json::from_str(text).map_err(|e| Error::invalid_options(format!("json_schema: not JSON: {e}")))?;
                if let Some(obj) = schema.as_object_mut() {
                    obj.entry("x-guidance").or_insert_with(|| serde_json::json!({ "whitespace_flexible": false }));
                } else if !schema.is_boolean() {
                    return Err(Error::invalid_options("json_schema: a schema must be an object or a boolean"));
                }
                depth::check_schema(&schema)?;
                TopLevelGrammar::from_json_schema(schema)
            }
            Grammar::Regex(rx) => TopLevelGrammar::from_regex(rx),
            Grammar::Lark(lark) => {
                depth::check(lark, self.kind())?;
                TopLevelGrammar::from_lark(lark.clone())
            }
            Grammar::Gbnf(gbnf) => {
                let lark = gbnf::to_lark(gbnf)?;
                depth::check(&lark, self.kind())?;
                TopLevelGrammar::from_lark(lark)
            }
        })
    }
}

/// The grammar engine for one tokenizer and model: the token trie and the compiled grammars.
pub struct Grammars {
    factory: ParserFactory,
    eos: u32,
    /// Fresh parsers by grammar, most recently used last.
    cache: Vec<(Grammar, Matcher)>,
}

impl Grammars {
    /// Builds the token trie of `tokenizer` for a model with `n_vocab` outputs. The end-of-text
    /// token is 0 for World and NeoX (it has no text); the byte tokenizer has none, so one is
    /// added past the model's outputs (it can never be sampled: a byte model's output ends only
    /// when the grammar cannot go on).
    pub fn new(tokenizer: &Tokenizer, n_vocab: usize) -> Result<Grammars> {
        // Within a memory limit an allocation that fails aborts (a trap in wasm): check first.
        let need = n_vocab.max(256) * BYTES_PER_TOKEN;
        if let Some(limit) = echo_ggml_sys::mem::limit() {
            if echo_ggml_sys::mem::used_bytes().saturating_add(need) > limit {
                return Err(Error::new(
                    ErrorCode::OutOfMemory,
                    format!("the grammar engine needs about {} MB more than the memory limit leaves", need >> 20),
                ));
            }
        }
        let (size, eos) = match tokenizer.kind() {
            TokenizerKind::Byte => (n_vocab.max(256) + 1, n_vocab.max(256) as u32),
            _ => (n_vocab.max(tokenizer.vocab_size()), 0),
        };
        let mut words: Vec<Vec<u8>> = (0..size as u32).map(|id| tokenizer.decode(&[id]).unwrap_or_default()).collect();
        // llguidance marks special tokens with a leading 0xFF byte (never in UTF-8 text).
        words[eos as usize] = b"\xFF<|endoftext|>".to_vec();
        let info = TokRxInfo::new(size as u32, eos);
        let env: TokEnv = std::sync::Arc::new(ApproximateTokEnv::new(TokTrie::from(&info, &words)));
        // No precomputed slices (llguidance's masks for common string lexemes): they took 25 MB
        // more for World's vocabulary and about twice the build time, for masks no faster here.
        let mut factory = ParserFactory::new(&env, Default::default(), &[]).map_err(|e| Error::invalid_options(format!("grammar engine: {e}")))?;
        factory.quiet();
        factory.limits_mut().verbose_errors = false;
        Ok(Grammars { factory, eos, cache: Vec::new() })
    }

    /// The end-of-text token: sampled (where the grammar may end) it ends the generation.
    pub fn eos(&self) -> u32 {
        self.eos
    }

    /// A constraint for one generation: the grammar compiled (or taken from the cache) and
    /// started. An invalid or unsupported grammar is `invalid_options` with llguidance's reason
    /// (and, for JSON and GBNF syntax errors, the line and column).
    pub fn constraint(&mut self, grammar: &Grammar) -> Result<Constraint> {
        let fresh = match self.cache.iter().position(|(g, _)| g == grammar) {
            Some(i) => {
                let hit = self.cache.remove(i);
                self.cache.push(hit);
                &self.cache.last().unwrap().1
            }
            None => {
                let kind = grammar.kind();
                let parser = self.factory.create_parser(grammar.top_level()?).map_err(|e| compile_error(kind, &e.to_string()))?;
                let matcher = Matcher::new(Ok(parser));
                if let Some(e) = matcher.get_error() {
                    return Err(compile_error(kind, &e));
                }
                if self.cache.len() >= CACHED_GRAMMARS {
                    self.cache.remove(0);
                }
                self.cache.push((grammar.clone(), matcher));
                &self.cache.last().unwrap().1
            }
        };
        Ok(Constraint { matcher: fresh.clone(), eos: self.eos, mask: SimpleVob::new() })
    }
}

fn compile_error(kind: &str, reason: &str) -> Error {
    Error::invalid_options(format!("{kind}: {}", reason.trim()))
}

/// One generation's grammar state.
pub struct Constraint {
    matcher: Matcher,
    eos: u32,
    mask: SimpleVob,
}

impl Constraint {
    pub fn eos(&self) -> u32 {
        self.eos
    }

    /// Draws the next token among those the grammar allows and advances the grammar by it (not
    /// by the end-of-text token, which ends it). The mask comes first and the sampler draws
    /// among the allowed tokens only, so its options (penalties, temperature, top-k, top-p,
    /// min-p) apply to the allowed tokens' distribution, renormalised. (Drawing first and checking
    /// the token, as llama.cpp does, samples another distribution, and a draw among all 65,536
    /// tokens of a random-weight model can differ between native and wasm, whose logits differ in
    /// the last bits; among the few allowed tokens it did not in our tests.) None: no token of the
    /// model is allowed (a byte model where only the end of text is).
    pub fn sample(&mut self, sampler: &mut Sampler, logits: &[f32]) -> Result<Option<u32>> {
        self.compute_mask()?;
        let token = sampler.sample_allowed(logits, self.mask.as_slice());
        if let Some(token) = token {
            self.advance(token)?;
        }
        Ok(token)
    }

    /// The tokens the grammar allows next, a bit per token (`sample`'s first step; public for
    /// `bench`, which times the steps apart).
    pub fn compute_mask(&mut self) -> Result<&[u32]> {
        self.mask = self.matcher.compute_mask().map_err(|e| grammar_failed(&e.to_string()))?;
        Ok(self.mask.as_slice())
    }

    /// Advances the grammar by a token it allowed (`sample`'s last step); the end-of-text token
    /// ends the generation instead.
    pub fn advance(&mut self, token: u32) -> Result<()> {
        if token != self.eos {
            self.matcher.consume_token(token).map_err(|e| grammar_failed(&e.to_string()))?;
        }
        Ok(())
    }

    /// The grammar is complete and allows nothing more.
    pub fn is_finished(&self) -> bool {
        self.matcher.is_stopped()
    }

    /// The text so far is complete under the grammar (it may also go on).
    pub fn is_accepting(&mut self) -> bool {
        self.matcher.is_accepting().unwrap_or(false)
    }
}

fn grammar_failed(reason: &str) -> Error {
    Error::invalid_options(format!("grammar: {}", reason.trim()))
}
