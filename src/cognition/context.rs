//! What `process` is given: the seed's context (`sessionId`, `userInput`, `conversationHistory`,
//! `memoryState`, `processingGoals`, `temporalContext`, `metadata`) and its options, read from
//! JSON with typed errors (a wrong type or an unknown key is `InvalidOptions`).

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::grammar::Grammar;
use crate::memory::stores::{check_name, DEFAULT_STORE};
use crate::sampler::SamplerOptions;

/// The most reasoning branches one call may ask for.
pub const MAX_BRANCHES: usize = 8;

#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    /// "user" or "assistant" ("system" turns are kept as they are).
    pub role: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Context {
    pub session_id: Option<String>,
    pub user_input: String,
    pub history: Vec<Turn>,
    pub goals: Vec<String>,
    /// Passed through to the response untouched.
    pub memory_state: Value,
    pub temporal_context: Value,
    pub metadata: Value,
}

/// Which user inputs the memory membrane stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorePolicy {
    /// Statements and exclamations (what a user tells), not questions or commands.
    Statements,
    Always,
    Never,
}

impl StorePolicy {
    pub fn name(self) -> &'static str {
        match self {
            StorePolicy::Statements => "statements",
            StorePolicy::Always => "always",
            StorePolicy::Never => "never",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProcessOptions {
    pub store: String,
    /// Memories recalled for the input.
    pub recall_k: usize,
    pub store_policy: StorePolicy,
    /// Chains sampled for the reasoning membrane (0 turns it off).
    pub branches: usize,
    pub reasoning_tokens: usize,
    /// Tokens of the answer at most.
    pub max_tokens: usize,
    /// Stop strings of the answer (default: a blank line, the end of a chat turn).
    pub stop: Vec<String>,
    pub sampler: SamplerOptions,
    /// The answer is decoded under this grammar.
    pub response_format: Option<Grammar>,
}

impl Default for ProcessOptions {
    fn default() -> Self {
        ProcessOptions {
            store: DEFAULT_STORE.to_string(),
            recall_k: 3,
            store_policy: StorePolicy::Statements,
            branches: 1,
            reasoning_tokens: 64,
            max_tokens: 128,
            stop: vec!["\n\n".into()],
            sampler: SamplerOptions::default(),
            response_format: None,
        }
    }
}

/// An object's fields, checked against the keys it may have.
struct Fields<'a> {
    map: Option<&'a Map<String, Value>>,
    what: &'static str,
}

impl<'a> Fields<'a> {
    fn new(value: &'a Value, what: &'static str, allowed: &[&str]) -> Result<Fields<'a>> {
        let map = match value {
            Value::Null => None,
            Value::Object(map) => Some(map),
            _ => return Err(Error::invalid_options(format!("{what} must be an object"))),
        };
        if let Some(key) = map.into_iter().flat_map(|m| m.keys()).find(|k| !allowed.contains(&k.as_str())) {
            return Err(Error::invalid_options(format!("{what}: unknown key '{key}'; known keys: {}", allowed.join(", "))));
        }
        Ok(Fields { map, what })
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map?.get(key).filter(|v| !v.is_null())
    }

    fn bad(&self, key: &str, want: &str) -> Error {
        Error::invalid_options(format!("{}: '{key}' must be {want}", self.what))
    }

    fn string(&self, key: &str) -> Result<Option<&'a str>> {
        self.get(key).map(|v| v.as_str().ok_or_else(|| self.bad(key, "a string"))).transpose()
    }

    fn strings(&self, key: &str) -> Result<Option<Vec<String>>> {
        let Some(v) = self.get(key) else { return Ok(None) };
        let want = || self.bad(key, "an array of strings");
        let list = v.as_array().ok_or_else(want)?;
        list.iter().map(|s| s.as_str().map(str::to_string).ok_or_else(want)).collect::<Result<_>>().map(Some)
    }

    fn number(&self, key: &str) -> Result<Option<f64>> {
        self.get(key).map(|v| v.as_f64().filter(|n| n.is_finite()).ok_or_else(|| self.bad(key, "a number"))).transpose()
    }

    fn count(&self, key: &str, max: usize) -> Result<Option<usize>> {
        let Some(n) = self.number(key)? else { return Ok(None) };
        if n.fract() != 0.0 || n < 0.0 || n > max as f64 {
            return Err(self.bad(key, &format!("a whole number from 0 to {max}")));
        }
        Ok(Some(n as usize))
    }

    fn object(&self, key: &str, allowed: &[&str]) -> Result<Fields<'a>> {
        let what = match key {
            "memory" => "options.memory",
            "reasoning" => "options.reasoning",
            _ => self.what,
        };
        Fields::new(self.get(key).unwrap_or(&Value::Null), what, allowed)
    }
}

impl Context {
    pub fn from_json(value: &Value) -> Result<Context> {
        const KEYS: &[&str] =
            &["sessionId", "userInput", "conversationHistory", "memoryState", "processingGoals", "temporalContext", "metadata"];
        let f = Fields::new(value, "context", KEYS)?;
        let user_input = f.string("userInput")?.unwrap_or_default();
        if user_input.trim().is_empty() {
            return Err(Error::invalid_options("context: 'userInput' must be a string that is not empty"));
        }
        let mut history = Vec::new();
        if let Some(v) = f.get("conversationHistory") {
            let want = || f.bad("conversationHistory", "an array of { role: 'user'|'assistant'|'system', text: string }");
            for turn in v.as_array().ok_or_else(want)? {
                let t = Fields::new(turn, "context.conversationHistory[]", &["role", "text", "timestamp"])?;
                let role = t.string("role")?.ok_or_else(want)?;
                if !["user", "assistant", "system"].contains(&role) {
                    return Err(want());
                }
                history.push(Turn { role: role.to_string(), text: t.string("text")?.ok_or_else(want)?.to_string() });
            }
        }
        let goals = match f.get("processingGoals") {
            Some(Value::String(s)) => vec![s.clone()],
            _ => f.strings("processingGoals")?.unwrap_or_default(),
        };
        let pass = |key: &str| f.get(key).cloned().unwrap_or(Value::Null);
        Ok(Context {
            session_id: f.string("sessionId")?.map(str::to_string),
            user_input: user_input.to_string(),
            history,
            goals,
            memory_state: pass("memoryState"),
            temporal_context: pass("temporalContext"),
            metadata: pass("metadata"),
        })
    }
}

impl ProcessOptions {
    pub fn from_json(value: &Value) -> Result<ProcessOptions> {
        const KEYS: &[&str] = &[
            "memory", "reasoning", "responseFormat", "maxTokens", "stop", "temperature", "topP", "topK", "minP",
            "presencePenalty", "frequencyPenalty", "penaltyDecay", "seed",
        ];
        let f = Fields::new(value, "options", KEYS)?;
        let d = ProcessOptions::default();
        let m = f.object("memory", &["store", "k", "remember"])?;
        let store_policy = match m.string("remember")? {
            None => d.store_policy,
            Some("statements") => StorePolicy::Statements,
            Some("always") => StorePolicy::Always,
            Some("never") => StorePolicy::Never,
            Some(_) => return Err(m.bad("remember", "'statements', 'always' or 'never'")),
        };
        let store = m.string("store")?.unwrap_or(&d.store).to_string();
        check_name(&store)?;
        let r = f.object("reasoning", &["branches", "maxTokens"])?;
        let s = SamplerOptions::default();
        let float = |key: &str, default: f32| f.number(key).map(|v| v.map_or(default, |v| v as f32));
        let sampler = SamplerOptions {
            temperature: float("temperature", s.temperature)?,
            top_p: float("topP", s.top_p)?,
            top_k: f.count("topK", u32::MAX as usize)?.unwrap_or(s.top_k),
            min_p: float("minP", s.min_p)?,
            presence_penalty: float("presencePenalty", s.presence_penalty)?,
            frequency_penalty: float("frequencyPenalty", s.frequency_penalty)?,
            penalty_decay: float("penaltyDecay", s.penalty_decay)?,
            seed: seed(&f)?.unwrap_or(s.seed),
            ..s
        };
        let response_format = f.get("responseFormat").map(|v| grammar(v, "options.responseFormat")).transpose()?;
        // A grammar's answer may span lines: no default stop string then.
        let default_stop = if response_format.is_some() { Vec::new() } else { d.stop };
        Ok(ProcessOptions {
            store,
            recall_k: m.count("k", 100)?.unwrap_or(d.recall_k),
            store_policy,
            branches: r.count("branches", MAX_BRANCHES)?.unwrap_or(d.branches),
            reasoning_tokens: r.count("maxTokens", 4096)?.unwrap_or(d.reasoning_tokens),
            max_tokens: f.count("maxTokens", 1 << 20)?.unwrap_or(d.max_tokens),
            stop: f.strings("stop")?.unwrap_or(default_stop),
            sampler,
            response_format,
        })
    }
}

/// A whole number a JS number holds exactly (up to 2^53 - 1).
fn seed(f: &Fields) -> Result<Option<u64>> {
    let Some(n) = f.number("seed")? else { return Ok(None) };
    if n.fract() != 0.0 || !(0.0..=9_007_199_254_740_991.0).contains(&n) {
        return Err(f.bad("seed", "a whole number from 0 to 2^53 - 1"));
    }
    Ok(Some(n as u64))
}

/// `{ jsonSchema: object|string }`, `{ regex }`, `{ lark }` or `{ gbnf }` (as `generate` takes).
fn grammar(value: &Value, what: &'static str) -> Result<Grammar> {
    let bad = || Error::invalid_options(format!("{what} must be one of {{ jsonSchema }}, {{ regex }}, {{ lark }}, {{ gbnf }}"));
    let map = value.as_object().filter(|m| m.len() == 1).ok_or_else(bad)?;
    let (kind, v) = map.iter().next().unwrap();
    let text = match (kind.as_str(), v) {
        (_, Value::String(s)) => s.clone(),
        ("jsonSchema", v @ Value::Object(_)) => v.to_string(),
        _ => return Err(bad()),
    };
    match kind.as_str() {
        "jsonSchema" => Ok(Grammar::JsonSchema(text)),
        "regex" => Ok(Grammar::Regex(text)),
        "lark" => Ok(Grammar::Lark(text)),
        "gbnf" => Ok(Grammar::Gbnf(text)),
        _ => Err(bad()),
    }
}
