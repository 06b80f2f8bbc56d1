//! Named counters behind `metrics()` (one set per backend, one per membrane of `process`):
//! requests, errors, cache hits, tokens, throughput and latency percentiles. Latencies are kept for the last `WINDOW` requests only, so the counters stay
//! small however long the engine runs.

use std::collections::VecDeque;

use wasm_bindgen::JsValue;

use super::js::{num, object};

const WINDOW: usize = 1024;

/// How a request ended. An abort is the caller's choice, not a failure of the engine.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    Aborted,
    Failed,
}

#[derive(Default)]
struct Counters {
    requests: u64,
    errors: u64,
    aborted: u64,
    /// Requests that resumed from the prefix cache or were answered by the response cache.
    cache_hits: u64,
    tokens: u64,
    busy_ms: f64,
    latencies_ms: VecDeque<f64>,
}

#[derive(Default)]
pub struct Metrics {
    /// Keyed by name (a backend's, a membrane's), in order of first use.
    backends: Vec<(&'static str, Counters)>,
}

impl Metrics {
    /// One finished request (an evaluation or a whole generation): its time, the tokens it
    /// processed (prompt and generated), and how it ended.
    pub fn record(&mut self, backend: &'static str, ms: f64, tokens: usize, outcome: Outcome, cache_hit: bool) {
        let c = match self.backends.iter().position(|(b, _)| *b == backend) {
            Some(i) => &mut self.backends[i].1,
            None => {
                // The window at its full size at once: grown as requests came, it would move from
                // hole to hole of the heap, and a hole left inside a loaded model's memory keeps
                // the next model from that space (a reload after one generation grew wasm memory
                // by the 74 MiB of a 169M model's head).
                self.backends.push((backend, Counters { latencies_ms: VecDeque::with_capacity(WINDOW), ..Counters::default() }));
                &mut self.backends.last_mut().expect("just pushed").1
            }
        };
        c.requests += 1;
        c.errors += u64::from(outcome == Outcome::Failed);
        c.aborted += u64::from(outcome == Outcome::Aborted);
        c.cache_hits += u64::from(cache_hit);
        c.tokens += tokens as u64;
        c.busy_ms += ms;
        if c.latencies_ms.len() == WINDOW {
            c.latencies_ms.pop_front();
        }
        c.latencies_ms.push_back(ms);
    }

    pub fn is_empty(&self) -> bool {
        self.backends.is_empty()
    }

    /// `{ [name]: { requests, errors, aborted, cacheHits, tokens, tokensPerS, latencyMs: { p50, p90, p95, p99, max } } }`.
    pub fn to_js(&self) -> JsValue {
        let fields: Vec<(&str, JsValue)> = self
            .backends
            .iter()
            .map(|(name, c)| {
                let mut sorted: Vec<f64> = c.latencies_ms.iter().copied().collect();
                sorted.sort_by(f64::total_cmp);
                let pct = |p: f64| match sorted.len() {
                    0 => 0.0,
                    n => sorted[((n - 1) as f64 * p).round() as usize],
                };
                let tokens_per_s = if c.busy_ms > 0.0 { c.tokens as f64 * 1000.0 / c.busy_ms } else { 0.0 };
                let latency = object(&[("p50", num(pct(0.5))), ("p90", num(pct(0.9))), ("p95", num(pct(0.95))), ("p99", num(pct(0.99))), ("max", num(pct(1.0)))]);
                let counters = object(&[
                    ("requests", num(c.requests as f64)),
                    ("errors", num(c.errors as f64)),
                    ("aborted", num(c.aborted as f64)),
                    ("cacheHits", num(c.cache_hits as f64)),
                    ("tokens", num(c.tokens as f64)),
                    ("tokensPerS", num(tokens_per_s)),
                    ("latencyMs", latency),
                ]);
                (*name, counters)
            })
            .collect();
        object(&fields)
    }
}
