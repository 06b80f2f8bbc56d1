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

#[derive(Debug, Clone)]
pub struct Sampler {
    opts: SamplerOptions,
    rng: SplitMix,
    /// Decayed occurrence count of each generated token.
    occurrences: HashMap<u32, f32>,
    /// Vocabulary-sized buffers reused from token to token: the adjusted logits, their
    /// probabilities and the ranking.
    adjusted: Vec<f32>,
    probs: Vec<f64>,
    order: Vec<usize>,
}

impl Sampler {
    pub fn new(opts: SamplerOptions, n_vocab: usize) -> Result<Sampler> {
        opts.validate(n_vocab)?;
        let rng = SplitMix(opts.seed);
        Ok(Sampler { opts, rng, occurrences: HashMap::new(), adjusted: Vec::new(), probs: Vec::new(), order: Vec::new() })
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

    /// Records a token as generated: decays all counts, then counts it.
    pub fn accept(&mut self, token: u32) {
        for c in self.occurrences.values_mut() {
            *c *= self.opts.penalty_decay;
        }
        *self.occurrences.entry(token).or_insert(0.0) += 1.0;
    }

    fn pick(&mut self, logits: &[f32]) -> u32 {
        let argmax = logits.iter().enumerate().fold(0, |best, (i, &v)| if v > logits[best] { i } else { best });
        if self.opts.temperature == 0.0 {
            return argmax as u32;
        }
        // Softmax in f64, then the cuts on the probabilities, then temperature, as `rwkv` does.
        let max = logits[argmax] as f64;
        let probs = &mut self.probs;
        probs.clear();
        probs.extend(logits.iter().map(|&v| (v as f64 - max).exp()));
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);

        // Only the head of the ranking matters: rank the best `k` candidates and widen `k` until
        // they cover top_p (or top_k). A total order (probability, then id) makes the result the
        // same as ranking all of them, in a fraction of the time for large vocabularies.
        let n = probs.len();
        let by_rank = |a: &usize, b: &usize| probs[*b].total_cmp(&probs[*a]).then(a.cmp(b));
        let mut keep = if self.opts.top_k > 0 { self.opts.top_k.min(n) } else { n };
        let order = &mut self.order;
        order.clear();
        order.extend(0..n);
        let mut k = keep.min(64);
        loop {
            if k < n {
                order.select_nth_unstable_by(k - 1, by_rank);
            }
            order[..k].sort_unstable_by(by_rank);
            if k == keep || order[..k].iter().map(|&i| probs[i]).sum::<f64>() >= self.opts.top_p as f64 {
                break;
            }
            k = (k * 4).min(keep);
        }
        keep = keep.min(k);
        let mut cumulative = 0.0;
        for (rank, &i) in order.iter().enumerate().take(keep) {
            cumulative += probs[i];
            if cumulative >= self.opts.top_p as f64 {
                keep = rank + 1;
                break;
            }
        }
        let floor = self.opts.min_p as f64 * probs[argmax];
        let kept: Vec<usize> = order[..keep].iter().copied().filter(|&i| probs[i] >= floor && probs[i] > 0.0).collect();

        let inv_t = 1.0 / self.opts.temperature as f64;
        let weights: Vec<f64> = kept.iter().map(|&i| probs[i].powf(inv_t)).collect();
        let sum: f64 = weights.iter().sum();
        if !(sum > 0.0 && sum.is_finite()) {
            return argmax as u32;
        }
        let mut r = self.rng.next_f64() * sum;
        for (&i, &w) in kept.iter().zip(&weights) {
            if r < w {
                return i as u32;
            }
            r -= w;
        }
        *kept.last().unwrap_or(&argmax) as u32
    }
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

    #[test]
    fn the_nucleus_of_a_large_vocabulary_is_exact() {
        // 5000 tokens: the partial ranking must keep exactly the tokens a full sort keeps.
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
