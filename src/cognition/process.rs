//! `process(context)`: one user input through the three membranes, then the integration.
//!
//! Phases, each reported as it finishes ([`Event::Membrane`]):
//! 1. **grammar** — `analysis::analyze` on the input (sentences, type, readability, script,
//!    language, code, markup). Confidence: the analysis's own (its language guess's).
//! 2. **memory** — the `recall_k` memories of the store best for the input (hybrid scores:
//!    `memory::store::COSINE_WEIGHT`), then, by the store policy, the input is remembered (by
//!    default statements and exclamations are, questions and commands are not). Confidence: the
//!    best hit's hybrid score, clamped to [0, 1] (0 with no memory).
//! 3. **reasoning** — `branches` chains, each the model's continuation of the chat prompt
//!    ending `Assistant: Let me think step by step.` (the same prompt every time, so every
//!    branch after the first starts from the cached state after it and costs decoding only),
//!    with seeds `seed`, `seed + 1`, …. A chain is split into steps at line ends (or at sentence
//!    ends when it is one line). Confidence of a step or chain: the geometric mean of its tokens'
//!    probabilities under the model, `exp(mean log p)` (`Completion::logprobs`). With several
//!    branches, each chain's agreement is its mean Jaccard similarity (sets of lower-cased words)
//!    with the others; the chain kept is the one with the highest confidence × agreement, and the
//!    membrane's confidence is the mean of confidence × agreement over the branches.
//! 4. **integration** — one prompt in RWKV chat form: a `System:` turn with the recalled memories,
//!    the goals and the reasoning, the history, then `User: <input>\n\nAssistant:`; the answer is
//!    streamed ([`Event::Text`]), under `response_format`'s grammar if given, and stops at a blank
//!    line unless `stop` says otherwise. Its confidence (the response's overall `confidence`): the
//!    geometric mean of the answer's token probabilities.
//!
//! Every phase is bounded steps ([`Process::step`]), so the caller sees an abort between them.

use serde_json::{json, Value};

use super::analysis;
use super::context::{Context, ProcessOptions, StorePolicy, Turn};
use crate::error::Result;
use crate::generate::{Completion, GenerateOptions, Session, Step};
use crate::memory::{Hit, Stores};

/// What one step produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A membrane finished: its name and its result.
    Membrane(&'static str, Value),
    /// Text of the answer, as it comes.
    Text(String),
    /// Work was done (a prompt chunk, a reasoning token); nothing to report yet.
    Working,
    /// The whole response.
    Done(Value),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Grammar,
    Memory,
    Reasoning,
    Integration,
    Done,
}

/// One reasoning chain.
struct Chain {
    text: String,
    steps: Vec<(String, f64)>,
    confidence: f64,
    agreement: f64,
}

pub struct Process {
    ctx: Context,
    opts: ProcessOptions,
    phase: Phase,
    /// Whether the current phase's generation has begun.
    generating: bool,
    start_ms: f64,
    phase_start_ms: f64,
    sentence_type: String,
    recalled: Vec<Hit>,
    chains: Vec<Chain>,
    membranes: serde_json::Map<String, Value>,
    prompt_tokens: usize,
    cached_tokens: usize,
    generated_tokens: usize,
    integration_prompt: String,
}

impl Process {
    pub fn new(ctx: Context, opts: ProcessOptions, session: &Session) -> Process {
        let now = session.now();
        Process {
            ctx,
            opts,
            phase: Phase::Grammar,
            generating: false,
            start_ms: now,
            phase_start_ms: now,
            sentence_type: String::new(),
            recalled: Vec::new(),
            chains: Vec::new(),
            membranes: serde_json::Map::new(),
            prompt_tokens: 0,
            cached_tokens: 0,
            generated_tokens: 0,
            integration_prompt: String::new(),
        }
    }

    /// One bounded piece of work. After `Done`, calling again is an error.
    pub fn step(&mut self, session: &mut Session, stores: &mut Stores) -> Result<Event> {
        match self.phase {
            Phase::Grammar => Ok(self.grammar(session)),
            Phase::Memory => self.memory(session, stores),
            Phase::Reasoning => self.reasoning(session),
            Phase::Integration => self.integration(session),
            Phase::Done => Err(crate::Error::invalid_options("the process has ended")),
        }
    }

    /// Ends a generation in progress (the session stays usable).
    pub fn abort(&mut self, session: &mut Session) {
        if self.generating {
            session.abort();
        }
        self.phase = Phase::Done;
    }

    fn finish_phase(&mut self, session: &Session, name: &'static str, mut result: Value, next: Phase) -> Event {
        let now = session.now();
        result["ms"] = json!(round3(now - self.phase_start_ms));
        self.phase_start_ms = now;
        self.phase = next;
        self.membranes.insert(name.to_string(), result.clone());
        Event::Membrane(name, result)
    }

    fn grammar(&mut self, session: &Session) -> Event {
        let analysis = analysis::analyze(&self.ctx.user_input).to_json();
        self.sentence_type = analysis["sentenceType"].as_str().unwrap_or("statement").to_string();
        let confidence = analysis["confidence"].as_f64().unwrap_or(0.0);
        let language = analysis["language"]["name"].as_str().unwrap_or("an unknown language");
        let output = format!("A {} in {language}, {} words.", self.sentence_type, analysis["words"]);
        let format = self.opts.response_format.as_ref().map(|g| g.kind());
        let result = json!({
            "output": output,
            "confidence": confidence,
            "analysis": analysis,
            "constrained": format.is_some(),
            "format": format,
        });
        self.finish_phase(session, "grammar", result, Phase::Memory)
    }

    fn memory(&mut self, session: &mut Session, stores: &mut Stores) -> Result<Event> {
        let store = self.opts.store.clone();
        self.recalled = stores.recall(session, &store, &self.ctx.user_input, self.opts.recall_k)?;
        let store_it = match self.opts.store_policy {
            StorePolicy::Always => true,
            StorePolicy::Never => false,
            StorePolicy::Statements => matches!(self.sentence_type.as_str(), "statement" | "exclamation"),
        };
        let stored = if store_it {
            let metadata = json!({ "source": "process", "sessionId": self.ctx.session_id }).to_string();
            let id = stores.remember(session, &store, &self.ctx.user_input, &metadata)?;
            json!({ "store": store, "id": id })
        } else {
            Value::Null
        };
        let recalled: Vec<Value> = self.recalled.iter().map(Hit::to_json).collect();
        let confidence = self.recalled.first().map_or(0.0, |h| h.score.clamp(0.0, 1.0) as f64);
        let output = match (self.recalled.len(), store_it) {
            (n, true) => format!("Recalled {n} memories; stored the input."),
            (n, false) => format!("Recalled {n} memories; the input ({}) was not stored.", self.sentence_type),
        };
        let result = json!({
            "output": output,
            "confidence": confidence,
            "recalled": recalled,
            "stored": stored,
            "storePolicy": self.opts.store_policy.name(),
        });
        let next = if self.opts.branches == 0 { Phase::Integration } else { Phase::Reasoning };
        if next == Phase::Integration {
            self.membranes.insert("reasoning".into(), json!({ "output": "", "confidence": 0, "ms": 0, "steps": [], "branches": [] }));
        }
        Ok(self.finish_phase(session, "memory", result, next))
    }

    fn reasoning(&mut self, session: &mut Session) -> Result<Event> {
        if !self.generating {
            let mut opts = self.generate_options(self.opts.reasoning_tokens, vec!["\n\n".into()]);
            opts.sampler.seed = opts.sampler.seed.wrapping_add(self.chains.len() as u64);
            let prompt = self.prompt(None) + " Let me think step by step.\n";
            session.reset();
            session.begin(&prompt, opts)?;
            self.generating = true;
        }
        let c = match session.step()? {
            Step::Text(_) => return Ok(Event::Working),
            Step::Done(c) => c,
        };
        self.generating = false;
        self.count(&c);
        let steps = steps(&c, session);
        self.chains.push(Chain { text: c.text.trim().to_string(), steps, confidence: confidence(&c.logprobs), agreement: 1.0 });
        if self.chains.len() < self.opts.branches {
            return Ok(Event::Working);
        }
        agree(&mut self.chains);
        let weight = |c: &Chain| c.confidence * c.agreement;
        let best = (0..self.chains.len()).max_by(|&a, &b| weight(&self.chains[a]).total_cmp(&weight(&self.chains[b]))).unwrap();
        let n = self.chains.len() as f64;
        let confidence = self.chains.iter().map(weight).sum::<f64>() / n;
        let chosen = &self.chains[best];
        let steps: Vec<Value> = chosen.steps.iter().map(|(t, c)| json!({ "text": t, "confidence": *c })).collect();
        let branches: Vec<Value> = self
            .chains
            .iter()
            .map(|c| json!({ "text": c.text, "confidence": c.confidence, "agreement": c.agreement }))
            .collect();
        let agreement = self.chains.iter().map(|c| c.agreement).sum::<f64>() / n;
        let result = json!({
            "output": chosen.text,
            "confidence": confidence,
            "steps": steps,
            "branches": branches,
            "chosen": best,
            "agreement": agreement,
        });
        Ok(self.finish_phase(session, "reasoning", result, Phase::Integration))
    }

    fn integration(&mut self, session: &mut Session) -> Result<Event> {
        if !self.generating {
            let reasoning = self.membranes.get("reasoning").and_then(|r| r["output"].as_str()).map(str::to_string);
            let mut opts = self.generate_options(self.opts.max_tokens, self.opts.stop.clone());
            opts.grammar = self.opts.response_format.clone();
            self.integration_prompt = self.prompt(reasoning.as_deref());
            session.reset();
            session.begin(&self.integration_prompt, opts)?;
            self.generating = true;
        }
        let c = match session.step()? {
            Step::Text(t) if t.is_empty() => return Ok(Event::Working),
            Step::Text(t) => return Ok(Event::Text(t)),
            Step::Done(c) => c,
        };
        self.generating = false;
        self.count(&c);
        self.phase = Phase::Done;
        let now = session.now();
        let confidence = confidence(&c.logprobs);
        let backend = session.backend_kind().name();
        Ok(Event::Done(json!({
            "sessionId": self.ctx.session_id,
            "integratedResponse": c.text.trim(),
            "confidence": confidence,
            "stopReason": c.stop_reason.as_str(),
            "backend": backend,
            "membranes": self.membranes,
            "integration": {
                "prompt": self.integration_prompt,
                "confidence": confidence,
                "ms": round3(now - self.phase_start_ms),
                "tokens": c.tokens.len(),
            },
            "memoryState": self.ctx.memory_state,
            "temporalContext": self.ctx.temporal_context,
            "metadata": self.ctx.metadata,
            "stats": {
                "ms": round3(now - self.start_ms),
                "promptTokens": self.prompt_tokens,
                "cachedTokens": self.cached_tokens,
                "generatedTokens": self.generated_tokens,
            },
        })))
    }

    fn count(&mut self, c: &Completion) {
        self.prompt_tokens += c.stats.prompt_tokens;
        self.cached_tokens += c.stats.cached_tokens;
        self.generated_tokens += c.stats.generated_tokens;
    }

    fn generate_options(&self, max_tokens: usize, stop: Vec<String>) -> GenerateOptions {
        GenerateOptions { sampler: self.opts.sampler.clone(), max_tokens, stop, logprobs: true, ..GenerateOptions::default() }
    }

    /// The chat prompt up to `Assistant:`: a `System:` turn with the recalled memories, the goals
    /// and (for the integration) the reasoning, then the history and the input. Each message's
    /// blank lines become single line ends, since a blank line ends a turn.
    fn prompt(&self, reasoning: Option<&str>) -> String {
        let mut system = Vec::new();
        if !self.recalled.is_empty() {
            let facts: Vec<String> = self.recalled.iter().map(|h| format!("- {}", one_turn(&h.memory.text))).collect();
            system.push(format!("Things you remember:\n{}", facts.join("\n")));
        }
        if !self.ctx.goals.is_empty() {
            system.push(format!("Goals: {}", one_turn(&self.ctx.goals.join("; "))));
        }
        if let Some(r) = reasoning.filter(|r| !r.is_empty()) {
            system.push(format!("Your reasoning:\n{}", one_turn(r)));
        }
        let mut prompt = String::new();
        if !system.is_empty() {
            prompt.push_str(&format!("System: {}\n\n", system.join("\n")));
        }
        for Turn { role, text } in &self.ctx.history {
            let role = match role.as_str() {
                "user" => "User",
                "assistant" => "Assistant",
                _ => "System",
            };
            prompt.push_str(&format!("{role}: {}\n\n", one_turn(text)));
        }
        prompt.push_str(&format!("User: {}\n\nAssistant:", one_turn(&self.ctx.user_input)));
        prompt
    }
}

/// `text` trimmed, with runs of line ends made one (a blank line would end the chat turn).
fn one_turn(text: &str) -> String {
    let lines: Vec<&str> = text.trim().lines().map(str::trim_end).filter(|l| !l.is_empty()).collect();
    lines.join("\n")
}

/// exp(mean log p): the geometric mean of the probabilities (0 for no token).
fn confidence(logprobs: &[f32]) -> f64 {
    if logprobs.is_empty() {
        return 0.0;
    }
    (logprobs.iter().map(|&l| l as f64).sum::<f64>() / logprobs.len() as f64).exp()
}

/// A chain's steps: its lines, or its sentences when it is one line; each with the confidence of
/// the tokens that wrote it.
fn steps(c: &Completion, session: &mut Session) -> Vec<(String, f64)> {
    // Where each token's bytes end in the text (the text is the tokens' bytes, up to a stop).
    let tokenizer = session.tokenizer();
    let mut ends = Vec::with_capacity(c.tokens.len());
    let mut end = 0;
    for &t in &c.tokens {
        end += tokenizer.decode(&[t]).map_or(0, |b| b.len());
        ends.push(end);
    }
    let text = &c.text;
    let one_line = text.trim().lines().filter(|l| !l.trim().is_empty()).count() <= 1;
    let mut spans = Vec::new();
    let mut start = 0;
    for (i, ch) in text.char_indices() {
        let boundary = ch == '\n' || (one_line && matches!(ch, '.' | '?' | '!') && text[i + 1..].starts_with(' '));
        if boundary {
            spans.push((start, i + 1));
            start = i + 1;
        }
    }
    spans.push((start, text.len()));
    spans
        .into_iter()
        .filter(|&(a, b)| !text[a..b].trim().is_empty())
        .map(|(a, b)| {
            // The tokens whose bytes overlap [a, b).
            let first = ends.partition_point(|&e| e <= a);
            let last = ends.partition_point(|&e| e < b).min(c.logprobs.len().saturating_sub(1));
            let logprobs = c.logprobs.get(first..=last).unwrap_or(&[]);
            (text[a..b].trim().to_string(), confidence(logprobs))
        })
        .collect()
}

/// Sets each chain's agreement: its mean Jaccard similarity of word sets with the other chains
/// (1 when it is the only one).
fn agree(chains: &mut [Chain]) {
    let words: Vec<std::collections::HashSet<String>> = chains
        .iter()
        .map(|c| c.text.split(|ch: char| !ch.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect())
        .collect();
    let n = chains.len();
    for i in 0..n {
        if n == 1 {
            chains[i].agreement = 1.0;
            continue;
        }
        let sum: f64 = (0..n)
            .filter(|&j| j != i)
            .map(|j| {
                let union = words[i].union(&words[j]).count();
                if union == 0 {
                    1.0
                } else {
                    words[i].intersection(&words[j]).count() as f64 / union as f64
                }
            })
            .sum();
        chains[i].agreement = sum / (n - 1) as f64;
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
