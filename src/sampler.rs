//! Choosing the next token from logits, with the controls RWKV users know from ChatRWKV and the
//! `rwkv` pip package: repetition penalties with decay, bias and bans, then temperature, top-k,
//! top-p and min-p, from a seeded generator (same seed + same logits = same token everywhere).

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::rng::SplitMix;

/// Sampling settings. Defaults follow the `rwkv` package's `PIPELINE_ARGS`.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplerOptions {
    /// 0 = greedy (always the most likely token).
    pub temperature: f32,
    /// Keep the smallest set of tokens whose probabilities add up to `top_p` (1 = off).
    pub top_p: f32,
    /// Keep the `top_k` most likely tokens (0 = off).
    pub top_k: usize,
    /// Drop tokens less likely than `min_p` × the most likely one (0 = off).
    pub min_p: f32,
    /// Subtracted once from a token's logit if it occurred (ChatRWKV's alpha_presence).
    pub presence_penalty: f32,
    /// Subtracted per (decayed) occurrence (ChatRWKV's alpha_frequency).
    pub frequency_penalty: f32,
    /// Every generated token multiplies all occurrence counts by this (ChatRWKV's alpha_decay).
    pub penalty_decay: f32,
    /// Added to the logits of these tokens.
    pub logit_bias: Vec<(u32, f32)>,
    /// Never sampled.
    pub banned_tokens: Vec<u32>,
    pub seed: u64,
}

impl Default for SamplerOptions {
    fn default() -> Self {
        SamplerOptions {
            temperature: 1.0,
            top_p: 0.85,
            top_k: 0,
            min_p: 0.0,
            presence_penalty: 0.2,
            frequency_penalty: 0.2,
            penalty_decay: 0.996,
            logit_bias: Vec::new(),
            banned_tokens: Vec::new(),
            seed: 42,
        }
    }
}

impl SamplerOptions {
    pub fn validate(&self, n_vocab: usize) -> Result<()> {
        let check = |ok: bool, what: &str| if ok { Ok(()) } else { Err(Error::invalid_options(what.to_string())) };
        check(self.temperature.is_finite() && self.temperature >= 0.0, "temperature must be a number >= 0")?;
        check(self.top_p > 0.0 && self.top_p <= 1.0, "top_p must be in (0, 1]")?;
        check((0.0..=1.0).contains(&self.min_p), "min_p must be in [0, 1]")?;
        check(self.presence_penalty.is_finite() && self.frequency_penalty.is_finite(), "penalties must be finite")?;
        check((0.0..=1.0).contains(&self.penalty_decay), "penalty_decay must be in [0, 1]")?;
        for &(t, b) in &self.logit_bias {
            check((t as usize) < n_vocab && b.is_finite(), "logit_bias: token out of range or bias not finite")?;
        }
        check(self.banned_tokens.iter().all(|&t| (t as usize) < n_vocab), "banned_tokens: token out of range")?;
        check(self.banned_tokens.len() < n_vocab, "banned_tokens bans every token")
    }
}

/// The natural log of `token`'s probability under the softmax of `logits` as they are (temperature
/// 1, no penalties, bias or cuts): what the model itself gives the token.
pub fn log_prob(logits: &[f32], token: u32) -> f32 {
    let max = max_of(logits);
    let sum: f64 = logits.iter().map(|&l| ((l - max) as f64).exp()).sum();
    ((logits[token as usize] - max) as f64 - sum.ln()) as f32
}

#[derive(Debug, Clone)]
pub struct Sampler {
    opts: SamplerOptions,
    rng: SplitMix,
    /// Decayed occurrence count of each generated token.
    occurrences: HashMap<u32, f32>,
    /// Vocabulary-sized buffers reused from token to token: the adjusted logits and their
    /// probabilities (unnormalised).
    adjusted: Vec<f32>,
    probs: Vec<f32>,
    search: RankSearch,
}

impl Default for Sampler {
    /// The default options (valid for any vocabulary).
    fn default() -> Sampler {
        let opts = SamplerOptions::default();
        Sampler { rng: SplitMix(opts.seed), opts, occurrences: HashMap::new(), adjusted: Vec::new(), probs: Vec::new(), search: RankSearch::default() }
    }
}

impl Sampler {
    pub fn new(opts: SamplerOptions, n_vocab: usize) -> Result<Sampler> {
        let mut sampler = Sampler::default();
        sampler.restart(opts, n_vocab)?;
        Ok(sampler)
    }

    /// Starts over with `opts` (nothing generated yet), keeping the buffers: a session samples
    /// every request with one sampler, so a request allocates no vocabulary-sized block.
    pub fn restart(&mut self, opts: SamplerOptions, n_vocab: usize) -> Result<()> {
        opts.validate(n_vocab)?;
        self.rng = SplitMix(opts.seed);
        self.opts = opts;
        self.occurrences.clear();
        Ok(())
    }

    /// Applies penalties, bias and bans to `logits` in place (what the distribution is sampled from).
    pub fn adjust(&self, logits: &mut [f32]) {
        for (&t, &count) in &self.occurrences {
            logits[t as usize] -= self.opts.presence_penalty + count * self.opts.frequency_penalty;
        }
        for &(t, b) in &self.opts.logit_bias {
            logits[t as usize] += b;
        }
        for &t in &self.opts.banned_tokens {
            logits[t as usize] = f32::NEG_INFINITY;
        }
    }

    /// Picks the next token from raw logits (adjusting a copy) and records it for the penalties.
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        let mut adjusted = std::mem::take(&mut self.adjusted);
        adjusted.clear();
        adjusted.extend_from_slice(logits);
        self.adjust(&mut adjusted);
        let token = self.pick(&adjusted);
        self.adjusted = adjusted;
        self.accept(token);
        token
    }

    /// Like `sample`, among the tokens `allowed` holds (one bit per token id, 32 to a word, lowest
    /// bit first; a grammar's mask): the others are banned for this token. With no allowed token
    /// of finite logit left after the adjustments, the lowest allowed id; None if none is allowed.
    pub fn sample_allowed(&mut self, logits: &[f32], allowed: &[u32]) -> Option<u32> {
        let is_allowed = |t: usize| allowed.get(t / 32).is_some_and(|w| w >> (t % 32) & 1 == 1);
        let first = (0..logits.len()).find(|&t| is_allowed(t))? as u32;
        let mut adjusted = std::mem::take(&mut self.adjusted);
        adjusted.clear();
        adjusted.extend_from_slice(logits);
        self.adjust(&mut adjusted);
        let mut any = false;
        for (chunk, &word) in adjusted.chunks_mut(32).zip(allowed.iter().chain(std::iter::repeat(&0))) {
            if word == 0 {
                chunk.fill(f32::NEG_INFINITY);
                continue;
            }
            for (bit, v) in chunk.iter_mut().enumerate() {
                if word >> bit & 1 == 0 {
                    *v = f32::NEG_INFINITY;
                }
                any |= *v > f32::NEG_INFINITY;
            }
        }
        let token = if any { self.pick(&adjusted) } else { first };
        self.adjusted = adjusted;
        self.accept(token);
        Some(token)
    }

    /// Records a token as generated: decays all counts, then counts it.
    pub fn accept(&mut self, token: u32) {
        for c in self.occurrences.values_mut() {
            *c *= self.opts.penalty_decay;
        }
        *self.occurrences.entry(token).or_insert(0.0) += 1.0;
    }

    /// Softmax, then the cuts on the probabilities, then temperature, as `rwkv` does: the tokens
    /// kept are the head of the ranking (probability descending, then id ascending) cut after
    /// `top_k` tokens or after the first to bring the running sum to `top_p`, less those below
    /// `min_p` × the best; the token drawn is where the running sum of their weights passes a
    /// uniform draw. Both places in the ranking are found without ranking (`RankSearch`), so the
    /// cost is linear in the vocabulary whatever the distribution.
    fn pick(&mut self, logits: &[f32]) -> u32 {
        let max = max_of(logits);
        // The first token with the highest logit (NaNs never are); looked for only when needed.
        let argmax = || logits.iter().position(|&v| v == max).unwrap_or(0) as u32;
        if self.opts.temperature == 0.0 {
            return argmax();
        }
        // The probabilities are kept unnormalised (`e` = probability × total; the best has 1) and
        // the targets scaled by the total instead: the same ranking, without a pass to divide.
        // They are f32, as in ChatRWKV's softmax, computed in a pass of their own that vectorises
        // (four at a time in wasm); sums are f64. The next pass sums them and fills the first
        // histogram. min_p and zero remove the tail.
        let min_e = self.opts.min_p;
        let candidate = move |e: f32| e > 0.0 && e >= min_e;
        let (search, mut total) = (&mut self.search, 0.0);
        search.clear();
        self.probs.clear();
        self.probs.extend(logits.iter().map(|&v| exp_nonpositive(v - max)));
        for &e in &self.probs {
            total += e as f64;
            if candidate(e) {
                search.add(e, e as f64);
            }
        }
        let probs = &self.probs;

        let (top_k, top_p) = (self.opts.top_k, self.opts.top_p as f64);
        // top_p = 1 is off, not a target: a running sum can reach the total by rounding before
        // the last token (the tail adds nothing to it), which would cut the tail off.
        let target = if top_p < 1.0 { top_p * total } else { f64::INFINITY };
        let cut = (top_k > 0 || top_p < 1.0)
            .then(|| search.find(probs, |_, e| candidate(e), |_, e| e as f64, |t| (top_k > 0 && t.count >= top_k) || t.sum >= target))
            .flatten();
        let last = cut.map(|(i, _)| i);
        let kept = move |i: usize, e: f32| candidate(e) && last.map_or(true, |l| e > probs[l] || (e == probs[l] && i <= l));
        // probability^(1/T) = e^((logit - max) / T), up to a common factor.
        let inv_t = 1.0 / self.opts.temperature;
        let (unit, weight) = (inv_t == 1.0, move |i: usize, _: f32| exp_nonpositive((logits[i] - max) * inv_t) as f64);
        // With T = 1 the weights are the probabilities: the candidates' histogram serves, and the
        // draw falls before the cut's end (past it only by rounding, and then it is the end).
        let all = match (cut, unit) {
            (Some((_, through)), true) => through,
            (None, true) => search.total(),
            (_, false) => {
                search.clear();
                for (i, &e) in probs.iter().enumerate() {
                    if kept(i, e) {
                        search.add(e, weight(i, e));
                    }
                }
                search.total()
            }
        };
        if !(all.sum > 0.0 && all.sum.is_finite()) {
            return argmax();
        }
        let r = self.rng.next_f64() * all.sum;
        let drawn = if unit { draw(search, probs, kept, |_, e| e as f64, r, all.count) } else { draw(search, probs, kept, weight, r, all.count) };
        drawn.map_or_else(argmax, |(i, _)| i as u32)
    }
}

/// The highest of `values` (NaNs aside; -inf if none), in eight lanes so that it vectorises.
fn max_of(values: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 8];
    let chunks = values.chunks_exact(8);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (m, &v) in lanes.iter_mut().zip(chunk) {
            *m = if v > *m { v } else { *m };
        }
    }
    rest.iter().chain(&lanes).fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m })
}

/// The kept token where the running sum of their weights (`value`) passes `r`, or, past the end
/// only by rounding, the last of the `count` kept.
fn draw(
    search: &mut RankSearch,
    probs: &[f32],
    kept: impl Fn(usize, f32) -> bool + Copy,
    value: impl Fn(usize, f32) -> f64 + Copy,
    r: f64,
    count: usize,
) -> Option<(usize, Totals)> {
    search.find(probs, kept, value, |t| t.sum > r).or_else(|| search.find(probs, kept, value, |t| t.count >= count))
}

/// e^x for x <= 0 (-inf included; NaN gives 0) in f32, within 2 ulp of the exact value, in plain
/// arithmetic that vectorises (no branch, no table, no platform maths library), so the same bits
/// on every target. Results below f32's normal range (x < -87) are 0: such a token's chance is
/// below 2^-125 of the best's. x = k ln 2 + r with |r| <= ln 2 / 2, then e^x = 2^k e^r, e^r by
/// its Taylor series to r^7 (the next term is below 6e-9).
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    // Adding 1.5 × 2^23 rounds to an integer, which the low bits then hold.
    const ROUND: f32 = 12582912.0;
    // ln 2 in two parts; the first has 12 trailing zero bits, so k × LN2_HI is exact.
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let normal = x >= -87.0;
    let x = if normal { x } else { 0.0 };
    let shifted = x * std::f32::consts::LOG2_E + ROUND;
    let k = shifted - ROUND;
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let e_r = TAYLOR[..7].iter().rev().fold(TAYLOR[7], |sum, &c| sum * r + c);
    let two_k = f32::from_bits(((shifted.to_bits() as i32 - ROUND.to_bits() as i32 + 127) as u32) << 23);
    if normal { e_r * two_k } else { 0.0 }
}

/// 1/n! for n = 0..=7.
const TAYLOR: [f32; 8] = [1.0, 1.0, 1.0 / 2.0, 1.0 / 6.0, 1.0 / 24.0, 1.0 / 120.0, 1.0 / 720.0, 1.0 / 5040.0];

/// Running totals over tokens in rank order: how many, and the sum of their values.
#[derive(Debug, Clone, Copy, Default)]
struct Totals {
    count: usize,
    sum: f64,
}

impl std::ops::Add for Totals {
    type Output = Totals;
    fn add(self, o: Totals) -> Totals {
        Totals { count: self.count + o.count, sum: self.sum + o.sum }
    }
}

/// Finds where in the ranking (probability descending, then id ascending) a running total
/// reaches a target, without ranking: a radix search on the probabilities' bits. A positive
/// f32's bits order like its value, and for one at most 1 the top bit after the sign is 0: the
/// next 11 (7 of the exponent, 4 of the mantissa) make 2048 bins of a sixteenth of an octave, in
/// rank order. A histogram totals every token's bin; the walk down the bins finds the one where
/// the target is reached; only that bin's tokens are taken on to the next 11 bits, then the last
/// 8, until few enough are left to sort. Each level costs at most the tokens it keeps, so the
/// whole is linear in the vocabulary however the probabilities are spread, even all equal.
///
/// The totals are summed bin by bin rather than token by token in rank order, so they can differ
/// from a ranked sum in the last bits: a cut or a draw can differ from a full ranking's only when
/// its target falls within that rounding of a token's boundary.
#[derive(Debug, Clone, Default)]
struct RankSearch {
    /// The first-level histogram, and the one a bin is split into.
    buckets: Vec<Totals>,
    parts: Vec<Totals>,
    members: Vec<u32>,
}

const BUCKETS: usize = 2048;
/// The levels it takes to use the 30 bits of a probability in [0, 1] (11, 11, 8).
const LEVELS: u32 = 3;
/// A bin with at most this many tokens is sorted rather than split further.
const SORTED: usize = 64;

/// The `level`th group of bits of a probability `p` in [0, 1] (11, 11 and 8 after the two top bits).
fn bucket(p: f32, level: u32) -> usize {
    ((p.to_bits() << (2 + 11 * level)) >> 21) as usize
}

impl RankSearch {
    /// Empties the first-level histogram.
    fn clear(&mut self) {
        self.buckets.clear();
        self.buckets.resize(BUCKETS, Totals::default());
    }

    /// Counts a token of probability `p` with `value` in the first-level histogram.
    fn add(&mut self, p: f32, value: f64) {
        let b = &mut self.buckets[bucket(p, 0)];
        b.count += 1;
        b.sum += value;
    }

    fn total(&self) -> Totals {
        self.buckets.iter().fold(Totals::default(), |a, &b| a + b)
    }

    /// The first token, in rank order among those `accept` takes (given id and probability),
    /// at which the running totals of `value` up to and including it satisfy `reached` (which
    /// must stay true once true), with those totals; None if they never do. The first-level
    /// histogram must hold these tokens (it may hold more, after the target).
    fn find(
        &mut self,
        probs: &[f32],
        accept: impl Fn(usize, f32) -> bool,
        value: impl Fn(usize, f32) -> f64,
        reached: impl Fn(Totals) -> bool,
    ) -> Option<(usize, Totals)> {
        let (mut b, mut before) = walk(&self.buckets, Totals::default(), &reached, false)?;
        self.members.clear();
        // Most tokens are in other bins: a branch-free test of eight at a time (it vectorises)
        // skips their chunks.
        for (c, chunk) in probs.chunks(8).enumerate() {
            if chunk.iter().fold(false, |any, &p| any | (bucket(p, 0) == b)) {
                for (j, &p) in chunk.iter().enumerate() {
                    let i = c * 8 + j;
                    if bucket(p, 0) == b && accept(i, p) {
                        self.members.push(i as u32);
                    }
                }
            }
        }
        let mut level = 0;
        while self.members.len() > SORTED && level + 1 < LEVELS {
            level += 1;
            self.parts.clear();
            self.parts.resize(BUCKETS, Totals::default());
            for &i in &self.members {
                let p = probs[i as usize];
                let t = &mut self.parts[bucket(p, level)];
                t.count += 1;
                t.sum += value(i as usize, p);
            }
            // The bin as a whole reached the target, so one of its parts does (or, short by
            // rounding, the last).
            (b, before) = walk(&self.parts, before, &reached, true)?;
            self.members.retain(|&i| bucket(probs[i as usize], level) == b);
        }
        let members = &mut self.members;
        members.sort_unstable_by(|&a, &b| probs[b as usize].total_cmp(&probs[a as usize]).then(a.cmp(&b)));
        // Short of the target by rounding, the answer is the bin's last token.
        let mut found = None;
        for &i in members.iter() {
            before = before + Totals { count: 1, sum: value(i as usize, probs[i as usize]) };
            found = Some((i as usize, before));
            if reached(before) {
                break;
            }
        }
        found
    }
}

/// Walks `buckets` from the highest, adding up from `before`, to the first with which the totals
/// reach the target (or, if none does and `or_last`, the lowest); returns it and the totals
/// before it.
fn walk(buckets: &[Totals], mut before: Totals, reached: impl Fn(Totals) -> bool, or_last: bool) -> Option<(usize, Totals)> {
    let mut lowest = None;
    for (b, &t) in buckets.iter().enumerate().rev().filter(|(_, t)| t.count > 0) {
        if reached(before + t) {
            return Some((b, before));
        }
        lowest = Some((b, before));
        before = before + t;
    }
    lowest.filter(|_| or_last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits() -> Vec<f32> {
        vec![2.0, 1.0, 0.5, 0.0, -1.0, 3.0, 0.1, 0.2]
    }

    #[test]
    fn greedy_takes_the_argmax() {
        let mut s = Sampler::new(SamplerOptions { temperature: 0.0, ..Default::default() }, 8).unwrap();
        assert_eq!(s.sample(&logits()), 5);
    }

    #[test]
    fn same_seed_same_tokens_and_other_seed_differs() {
        let opts = SamplerOptions { top_p: 1.0, presence_penalty: 0.0, frequency_penalty: 0.0, ..Default::default() };
        let run = |seed| {
            let mut s = Sampler::new(SamplerOptions { seed, ..opts.clone() }, 8).unwrap();
            (0..64).map(|_| s.sample(&logits())).collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }

    #[test]
    fn top_k_and_top_p_and_min_p_restrict_the_support() {
        let sample_set = |opts: SamplerOptions| {
            let mut s = Sampler::new(opts, 8).unwrap();
            let mut seen: Vec<u32> = (0..500).map(|_| s.sample(&logits())).collect();
            seen.sort();
            seen.dedup();
            seen
        };
        let base = SamplerOptions { top_p: 1.0, presence_penalty: 0.0, frequency_penalty: 0.0, ..Default::default() };
        assert_eq!(sample_set(SamplerOptions { top_k: 2, ..base.clone() }), vec![0, 5]);
        // p(5) ≈ 0.58, p(0) ≈ 0.21: top_p 0.5 keeps only token 5.
        assert_eq!(sample_set(SamplerOptions { top_p: 0.5, ..base.clone() }), vec![5]);
        // min_p 0.3: keeps tokens with p >= 0.3 * p(5) ≈ 0.17: tokens 5 and 0.
        assert_eq!(sample_set(SamplerOptions { min_p: 0.3, ..base.clone() }), vec![0, 5]);
        assert_eq!(sample_set(base).len(), 8);
    }

    /// What the sampler does, the obvious way: rank every token by a full sort, cut, and draw by
    /// walking the ranking. The exponentials are the sampler's (tested on their own below).
    fn ranked_pick(o: &SamplerOptions, rng: &mut SplitMix, logits: &[f32]) -> u32 {
        let argmax = logits.iter().enumerate().fold(0, |b, (i, &v)| if v > logits[b] { i } else { b });
        if o.temperature == 0.0 {
            return argmax as u32;
        }
        let max = logits[argmax];
        let e: Vec<f64> = logits.iter().map(|&v| exp_nonpositive(v - max) as f64).collect();
        let total: f64 = e.iter().sum();
        let p: Vec<f64> = e.iter().map(|x| x / total).collect();
        let mut order: Vec<usize> = (0..p.len()).collect();
        order.sort_by(|&a, &b| p[b].total_cmp(&p[a]).then(a.cmp(&b)));
        let mut keep = if o.top_k > 0 { o.top_k.min(p.len()) } else { p.len() };
        let mut cumulative = 0.0;
        for (rank, &i) in order.iter().enumerate().take(keep) {
            cumulative += p[i];
            if o.top_p < 1.0 && cumulative >= o.top_p as f64 {
                keep = rank + 1;
                break;
            }
        }
        let floor = o.min_p as f64 * p[argmax];
        let kept: Vec<usize> = order[..keep].iter().copied().filter(|&i| p[i] >= floor && p[i] > 0.0).collect();
        let weights: Vec<f64> = kept.iter().map(|&i| exp_nonpositive((logits[i] - max) * (1.0 / o.temperature)) as f64).collect();
        let sum: f64 = weights.iter().sum();
        if !(sum > 0.0 && sum.is_finite()) {
            return argmax as u32;
        }
        let mut r = rng.next_f64() * sum;
        for (&i, &w) in kept.iter().zip(&weights) {
            if r < w {
                return i as u32;
            }
            r -= w;
        }
        *kept.last().unwrap() as u32
    }

    #[test]
    fn the_search_picks_what_a_full_ranking_picks() {
        let n = 5000;
        let mut rng = SplitMix(7);
        let mut normal = |std: f64| -> Vec<f32> {
            (0..n).map(|_| (((0..4).map(|_| rng.next_f64()).sum::<f64>() - 2.0) * 3f64.sqrt() * std) as f32).collect()
        };
        // "spread" puts most tokens below 2^-127 of the best, in the first histogram's lowest bin.
        let mut distributions =
            vec![("flat", normal(0.5)), ("peaked", normal(6.0)), ("spread", normal(60.0)), ("equal", vec![0.25; n])];
        // Logits on a coarse grid: long runs of equal probabilities across every level.
        let coarse = normal(2.0).iter().map(|v| (v * 4.0).round() / 4.0).collect();
        distributions.push(("coarse", coarse));
        let base = SamplerOptions::default();
        let options = [
            base.clone(),
            SamplerOptions { top_p: 0.3, temperature: 0.7, ..base.clone() },
            SamplerOptions { top_p: 1.0, temperature: 1.5, ..base.clone() },
            SamplerOptions { top_k: 40, top_p: 0.99, ..base.clone() },
            SamplerOptions { top_k: 3000, top_p: 1.0, min_p: 0.02, ..base.clone() },
            SamplerOptions { top_k: 4000, top_p: 1.0, temperature: 20.0, ..base.clone() },
            SamplerOptions { min_p: 0.5, banned_tokens: vec![0, 1, 2], logit_bias: vec![(9, 3.0)], ..base.clone() },
        ];
        for (name, logits) in &distributions {
            for (k, opts) in options.iter().enumerate() {
                let mut s = Sampler::new(opts.clone(), n).unwrap();
                let mut rng = SplitMix(opts.seed);
                for step in 0..40 {
                    let mut adjusted = logits.clone();
                    s.adjust(&mut adjusted);
                    let want = ranked_pick(opts, &mut rng, &adjusted);
                    assert_eq!(s.sample(logits), want, "{name} logits, options {k}, step {step}");
                }
            }
        }
    }

    #[test]
    fn the_nucleus_of_a_large_vocabulary_is_exact() {
        // 5000 tokens: the search must keep exactly the tokens a full sort keeps.
        let logits: Vec<f32> = (0..5000u32).map(|i| ((i * 7919) % 5000) as f32 / 400.0).collect();
        let opts = SamplerOptions { top_p: 0.6, presence_penalty: 0.0, frequency_penalty: 0.0, ..Default::default() };
        let max = logits.iter().cloned().fold(f32::MIN, f32::max) as f64;
        let probs: Vec<f64> = logits.iter().map(|&l| (l as f64 - max).exp()).collect();
        let total: f64 = probs.iter().sum();
        let mut order: Vec<usize> = (0..5000).collect();
        order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
        let mut cumulative = 0.0;
        let nucleus = order.iter().take_while(|&&i| {
            let below = cumulative < 0.6;
            cumulative += probs[i] / total;
            below
        });
        let mut want: Vec<u32> = nucleus.map(|&i| i as u32).collect();
        want.sort();
        assert!(want.len() > 64, "the nucleus must be wider than the first ranking step");
        let mut s = Sampler::new(opts, 5000).unwrap();
        let mut seen: Vec<u32> = (0..6000).map(|_| s.sample(&logits)).collect();
        seen.sort();
        seen.dedup();
        assert!(seen.iter().all(|t| want.binary_search(t).is_ok()), "sampled outside the nucleus");
        assert!(seen.len() * 10 >= want.len() * 9, "{} of {} nucleus tokens seen", seen.len(), want.len());
    }

    #[test]
    fn penalties_bias_and_bans_change_the_logits() {
        let mut s = Sampler::new(
            SamplerOptions {
                presence_penalty: 0.5,
                frequency_penalty: 0.25,
                penalty_decay: 0.5,
                logit_bias: vec![(3, 10.0)],
                banned_tokens: vec![5],
                ..Default::default()
            },
            8,
        )
        .unwrap();
        s.accept(1);
        s.accept(1); // count of 1: 1 * 0.5 + 1 = 1.5
        let mut l = logits();
        s.adjust(&mut l);
        assert_eq!(l[1], 1.0 - (0.5 + 1.5 * 0.25));
        assert_eq!(l[3], 10.0);
        assert_eq!(l[5], f32::NEG_INFINITY);
        assert_eq!(l[0], 2.0);
        // The ban holds in sampling too, even greedy.
        let mut g = Sampler::new(SamplerOptions { temperature: 0.0, banned_tokens: vec![5], ..Default::default() }, 8).unwrap();
        assert_eq!(g.sample(&logits()), 0);
    }

    #[test]
    fn exp_nonpositive_is_exp_to_the_last_bits() {
        assert_eq!(exp_nonpositive(0.0), 1.0);
        for x in [f32::NEG_INFINITY, f32::NAN, -87.5, -800.0] {
            assert_eq!(exp_nonpositive(x), 0.0, "exp({x})");
        }
        let mut rng = SplitMix(3);
        for i in 0..100_000 {
            // Spread over the whole range, and dense near 0 where the probabilities that matter are.
            let x = if i % 2 == 0 { -87.0 * rng.next_f64() } else { -8.0 * rng.next_f64() } as f32;
            let (got, want) = (exp_nonpositive(x) as f64, (x as f64).exp());
            assert!((got - want).abs() <= 2.0 * f32::EPSILON as f64 * want, "exp({x}) = {want}, got {got}");
        }
    }

    #[test]
    fn invalid_options_are_refused() {
        for bad in [
            SamplerOptions { temperature: -1.0, ..Default::default() },
            SamplerOptions { top_p: 0.0, ..Default::default() },
            SamplerOptions { banned_tokens: vec![8], ..Default::default() },
            SamplerOptions { logit_bias: vec![(0, f32::NAN)], ..Default::default() },
        ] {
            assert_eq!(Sampler::new(bad, 8).unwrap_err().code, crate::ErrorCode::InvalidOptions);
        }
    }
}
