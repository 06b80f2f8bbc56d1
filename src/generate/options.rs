//! What a generation is asked to do and what it returns.

use crate::error::{Error, Result};
use crate::grammar::Grammar;
use crate::sampler::SamplerOptions;

#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    pub sampler: SamplerOptions,
    /// Tokens to generate at most (0 = only ingest the prompt, e.g. to warm the caches).
    pub max_tokens: usize,
    /// Generation ends when the text contains one of these; the stop string is not returned.
    pub stop: Vec<String>,
    /// Generation ends when one of these tokens is sampled; its text is not returned.
    pub stop_tokens: Vec<u32>,
    /// Every token is drawn from those this grammar allows; its end ends the generation
    /// (`StopReason::Grammar`).
    pub grammar: Option<Grammar>,
    /// Report each generated token's log probability under the model (`Completion::logprobs`).
    pub logprobs: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions { sampler: SamplerOptions::default(), max_tokens: 256, stop: Vec::new(), stop_tokens: Vec::new(), grammar: None, logprobs: false }
    }
}

impl GenerateOptions {
    pub fn validate(&self, n_vocab: usize) -> Result<()> {
        self.sampler.validate(n_vocab)?;
        if self.stop.iter().any(String::is_empty) {
            return Err(Error::invalid_options("stop: a stop string must not be empty"));
        }
        if let Some(t) = self.stop_tokens.iter().find(|&&t| t as usize >= n_vocab) {
            return Err(Error::invalid_options(format!("stop_tokens: token {t} is out of range (the model has {n_vocab} tokens)")));
        }
        Ok(())
    }

    /// Every option that shapes the output, as bytes: half of the response cache's key.
    pub fn cache_key(&self) -> Vec<u8> {
        fn put(k: &mut Vec<u8>, v: u64) {
            k.extend_from_slice(&v.to_le_bytes());
        }
        let s = &self.sampler;
        let mut k = Vec::new();
        for f in [s.temperature, s.top_p, s.min_p, s.presence_penalty, s.frequency_penalty, s.penalty_decay] {
            put(&mut k, f.to_bits() as u64);
        }
        for n in [s.top_k as u64, s.seed, self.max_tokens as u64, s.logit_bias.len() as u64, self.logprobs as u64] {
            put(&mut k, n);
        }
        for &(t, b) in &s.logit_bias {
            put(&mut k, t as u64);
            put(&mut k, b.to_bits() as u64);
        }
        for list in [&s.banned_tokens, &self.stop_tokens] {
            put(&mut k, list.len() as u64);
            list.iter().for_each(|&t| put(&mut k, t as u64));
        }
        put(&mut k, self.stop.len() as u64);
        for stop in &self.stop {
            put(&mut k, stop.len() as u64);
            k.extend_from_slice(stop.as_bytes());
        }
        if let Some(g) = &self.grammar {
            for part in [g.kind(), g.text()] {
                put(&mut k, part.len() as u64);
                k.extend_from_slice(part.as_bytes());
            }
        }
        k
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// `max_tokens` were generated (with a grammar: before it was complete, so the output is
    /// incomplete).
    Length,
    /// A stop string or stop token appeared.
    Stop,
    /// The caller aborted.
    Abort,
    /// The grammar is complete: it allows nothing more, or the end-of-text token was sampled
    /// where it may end.
    Grammar,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Length => "length",
            StopReason::Stop => "stop",
            StopReason::Abort => "abort",
            StopReason::Grammar => "grammar",
        }
    }
}

/// Figures for one generation. Ingesting a prompt brings the state up to the end of the
/// conversation: `cached_tokens + evaluated_prompt_tokens` is the prompt's tokens plus the previous
/// reply's last token when a conversation continues (it is fed lazily, with the next prompt).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Tokens of this call's prompt.
    pub prompt_tokens: usize,
    /// Tokens whose state came from the prefix cache instead of the model.
    pub cached_tokens: usize,
    /// Tokens the model evaluated to ingest the prompt.
    pub evaluated_prompt_tokens: usize,
    pub generated_tokens: usize,
    pub prompt_ms: f64,
    pub decode_ms: f64,
    /// `evaluated_prompt_tokens` per second of `prompt_ms`.
    pub prompt_tokens_per_s: f64,
    /// `generated_tokens` per second of `decode_ms`.
    pub decode_tokens_per_s: f64,
    /// The median of the decode steps (sampling a token and evaluating it), in ms: unlike the
    /// mean, it shows the steady speed whatever pauses (a host's garbage collection) came between.
    pub decode_ms_median: f64,
    /// The whole completion came from the response cache (an identical earlier request).
    pub from_response_cache: bool,
}

impl Stats {
    /// Fills in the rates and the median from the counts and times (`step_ms`: each decode step's).
    pub(crate) fn finish(&mut self, step_ms: &mut [f64]) {
        let rate = |n: usize, ms: f64| if ms > 0.0 { n as f64 * 1000.0 / ms } else { 0.0 };
        self.prompt_tokens_per_s = rate(self.evaluated_prompt_tokens, self.prompt_ms);
        self.decode_tokens_per_s = rate(self.generated_tokens, self.decode_ms);
        step_ms.sort_by(f64::total_cmp);
        self.decode_ms_median = step_ms.get(step_ms.len() / 2).copied().unwrap_or(0.0);
    }

    /// One JSON object (the CLI's and the JS API's shape).
    pub fn to_json(&self) -> String {
        format!(
            "{{\"prompt_tokens\":{},\"cached_tokens\":{},\"evaluated_prompt_tokens\":{},\"generated_tokens\":{},\
             \"prompt_ms\":{:.3},\"decode_ms\":{:.3},\"prompt_tokens_per_s\":{:.1},\"decode_tokens_per_s\":{:.1},\
             \"decode_ms_median\":{:.3},\"from_response_cache\":{}}}",
            self.prompt_tokens,
            self.cached_tokens,
            self.evaluated_prompt_tokens,
            self.generated_tokens,
            self.prompt_ms,
            self.decode_ms,
            self.prompt_tokens_per_s,
            self.decode_tokens_per_s,
            self.decode_ms_median,
            self.from_response_cache
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The generated text, without a stop string and without a stop token's text.
    pub text: String,
    /// Every sampled token, stop tokens included (they are part of the conversation).
    pub tokens: Vec<u32>,
    pub stop_reason: StopReason,
    pub stats: Stats,
    /// With `GenerateOptions::logprobs`: each of `tokens`' natural log probability under the
    /// model's own distribution (softmax of its logits, before sampling options); else empty.
    pub logprobs: Vec<f32>,
}

/// What one [`super::Session::step`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// New text, possibly empty (prompt ingestion, or bytes held back).
    Text(String),
    /// The generation has ended; its whole result.
    Done(Completion),
}
