//! Token sampling from logits, in llama.cpp's default order:
//! penalties -> top-k -> top-p -> min-p -> temperature -> draw.
//!
//! Filters work on a candidate list `(id, logit)` and never sort the whole vocabulary when they
//! can avoid it: top-k selects with `select_nth_unstable`, top-p sorts a growing prefix only
//! until the mass is reached. Buffers are reused across calls (no allocation per token).

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rmlx_core::{Error, Result};

#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(default)]
pub struct SamplerConfig {
    /// 0 means greedy (argmax after penalties).
    pub temperature: f32,
    /// 0 disables.
    pub top_k: usize,
    /// 1 disables.
    pub top_p: f32,
    /// 0 disables; keeps tokens with p >= min_p * p_max.
    pub min_p: f32,
    /// 1 disables; seen tokens' positive logits are divided, negative ones multiplied.
    pub repetition_penalty: f32,
    /// Subtracted once from every seen token's logit.
    pub presence_penalty: f32,
    /// Subtracted from a seen token's logit once per occurrence.
    pub frequency_penalty: f32,
    /// How many recent tokens the penalties look at (llama.cpp's `penalty_last_n`).
    pub penalty_last_n: usize,
    /// None draws a seed from the OS.
    pub seed: Option<u64>,
}

impl Default for SamplerConfig {
    /// llama.cpp's defaults.
    fn default() -> Self {
        Self {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repetition_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            penalty_last_n: 64,
            seed: None,
        }
    }
}

impl SamplerConfig {
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            ..Self::default()
        }
    }

    /// Checks every setting is in range (what `Sampler::new` refuses).
    pub fn validate(&self) -> Result<()> {
        let bad =
            |what: &str, v: f32| Err(Error::msg(format!("sampler: expected {what}, found {v}")));
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return bad("temperature >= 0", self.temperature);
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("top_p in (0, 1]", self.top_p);
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return bad("min_p in [0, 1]", self.min_p);
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return bad("repetition_penalty > 0", self.repetition_penalty);
        }
        if !self.presence_penalty.is_finite() || !self.frequency_penalty.is_finite() {
            return bad("finite presence/frequency penalties", f32::NAN);
        }
        Ok(())
    }
}

pub struct Sampler {
    cfg: SamplerConfig,
    rng: StdRng,
    cand: Vec<(u32, f32)>,
    counts: HashMap<u32, u32>,
}

impl Sampler {
    pub fn new(cfg: SamplerConfig) -> Result<Self> {
        cfg.validate()?;
        let rng = match cfg.seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_entropy(),
        };
        Ok(Self {
            cfg,
            rng,
            cand: Vec::new(),
            counts: HashMap::new(),
        })
    }

    pub fn config(&self) -> &SamplerConfig {
        &self.cfg
    }

    /// Picks the next token from `logits` (…, vocab), an array on any device, of which the
    /// first `vocab` entries are sampled (models pad their vocabulary). Where the logits live,
    /// the chain is reduced there: greedy is an argmax (with penalties: the top 1 + penalized
    /// candidates), and with `top_k` the device keeps the `top_k` + (penalized tokens) largest
    /// logits; only those come back, and the chain finishes on them, exactly as `sample` would
    /// on the whole vocabulary (a penalized token can only leave the top, never let one below
    /// the kept set in). Without `top_k`, and for sampling on a GPU (see below), the whole row
    /// is read back.
    pub fn sample_array(
        &mut self,
        logits: &rmlx_core::Array,
        vocab: usize,
        history: &[u32],
    ) -> Result<u32> {
        let n = logits.size();
        let row = logits.reshape(&[n as isize])?;
        let vocab = vocab.min(n);
        if vocab == 0 {
            return Err(Error::msg("sampler: expected logits, found none"));
        }
        let row = row.slice(&[0], &[vocab], &[1])?;
        let c = self.cfg.clone();
        let window = &history[history.len().saturating_sub(c.penalty_last_n)..];
        let penalized: Vec<u32> = {
            let mut w: Vec<u32> = window
                .iter()
                .copied()
                .filter(|&t| (t as usize) < vocab)
                .collect();
            w.sort_unstable();
            w.dedup();
            w
        };
        let active =
            c.repetition_penalty != 1.0 || c.presence_penalty != 0.0 || c.frequency_penalty != 0.0;
        let penalized = if active { penalized } else { Vec::new() };
        // A NaN logit is an error, as in `sample`: a NaN sum sends the row down that path
        // (which names it; +inf beside -inf also sums to NaN and is sampled there correctly).
        let sum = row.sum(&[0], false)?;
        let greedy = (c.temperature == 0.0 && penalized.is_empty())
            .then(|| row.argmax(0, false))
            .transpose()?;
        // One wait for both: the NaN check and (greedy) the token.
        let mut wanted = vec![&sum];
        wanted.extend(greedy.as_ref());
        rmlx_core::async_eval(&wanted)?;
        if sum.item::<f32>()?.is_nan() {
            return self.sample(&row.to_vec::<f32>()?, history);
        }
        if let Some(token) = greedy {
            return token.item::<u32>();
        }
        let k = if c.temperature == 0.0 { 1 } else { c.top_k };
        // The GPU's top-k kernel takes k rounds over the row in one block (~25 ms a token for
        // k = 40 over 49k logits on an H100): until it is a proper selection, reading the row
        // back (one copy, 0.2–0.8 MB) and finishing on the host is far faster there.
        let slow_topk = row.device().is_gpu() && k + penalized.len() > 1;
        if k == 0 || k + penalized.len() >= vocab || slow_topk {
            return self.sample(&row.to_vec::<f32>()?, history);
        }
        let kk = k + penalized.len();
        let idx = row.topk_indices(kk)?;
        let ids = idx.to_vec::<u32>()?;
        let vals = row.take(&idx, 0)?.to_vec::<f32>()?;
        let mut sparse: Vec<(u32, f32)> = ids.into_iter().zip(vals).collect();
        if !penalized.is_empty() {
            let w = rmlx_core::Array::from_slice(&penalized, &[penalized.len()])?;
            let wv = row.take(&w, 0)?.to_vec::<f32>()?;
            sparse.extend(penalized.iter().copied().zip(wv));
        }
        // Id order, as `sample` sees the vocabulary; duplicates (a penalized token in the top)
        // once.
        sparse.sort_unstable_by_key(|x| x.0);
        sparse.dedup_by_key(|x| x.0);
        self.sample_sparse(sparse, window)
    }

    /// Greedy decoding with no penalty, started without waiting: the token (a (1) u32 array
    /// on the logits' device) and the row's sum (its NaN check), both queued for reading.
    /// `None` for any other configuration (those read candidates back: `sample_array`). A
    /// pipelined loop feeds `token` to the next step before reading it.
    pub fn greedy_lazy(
        &self,
        logits: &rmlx_core::Array,
        vocab: usize,
    ) -> Result<Option<LazyToken>> {
        let c = &self.cfg;
        let penalties =
            c.repetition_penalty != 1.0 || c.presence_penalty != 0.0 || c.frequency_penalty != 0.0;
        let n = logits.size();
        let vocab = vocab.min(n);
        if c.temperature != 0.0 || penalties || vocab == 0 {
            return Ok(None);
        }
        let row = logits.reshape(&[n as isize])?.slice(&[0], &[vocab], &[1])?;
        let token = row.argmax(0, true)?;
        let sum = row.sum(&[0], false)?;
        rmlx_core::async_eval(&[&token, &sum])?;
        Ok(Some(LazyToken {
            id: token.read_async::<u32>()?,
            sum: sum.read_async::<f32>()?,
            token,
            row,
        }))
    }

    /// Picks the next token among `allowed` (ascending ids: a grammar's mask), as `sample`
    /// would with every other logit at -inf (those have no probability, whatever the
    /// settings). The row comes back to the host whole (a grammar's mask is computed there).
    /// None when no allowed id is below `vocab`.
    pub fn sample_allowed(
        &mut self,
        logits: &rmlx_core::Array,
        vocab: usize,
        history: &[u32],
        allowed: &[u32],
    ) -> Result<Option<u32>> {
        let n = logits.size();
        let vocab = vocab.min(n);
        let row = logits
            .reshape(&[n as isize])?
            .slice(&[0], &[vocab], &[1])?
            .to_vec::<f32>()?;
        let cand: Vec<(u32, f32)> = allowed
            .iter()
            .take_while(|&&t| (t as usize) < vocab)
            .map(|&t| (t, row[t as usize]))
            .collect();
        if cand.is_empty() {
            return Ok(None);
        }
        let window = &history[history.len().saturating_sub(self.cfg.penalty_last_n)..];
        self.sample_sparse(cand, window).map(Some)
    }

    /// `sample`'s chain over a candidate set that holds every token that can matter.
    fn sample_sparse(&mut self, mut cand: Vec<(u32, f32)>, window: &[u32]) -> Result<u32> {
        if let Some(x) = cand.iter().find(|x| x.1.is_nan()) {
            return Err(Error::msg(format!("sampler: logit {} is NaN", x.0)));
        }
        let c = &self.cfg;
        apply_penalties_sparse(&mut cand, window, c, &mut self.counts);
        Ok(finish_chain(&mut cand, c, &mut self.rng))
    }

    /// Pick the next token from `logits` (one per vocab entry) given the tokens so far.
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> Result<u32> {
        if logits.is_empty() {
            return Err(Error::msg("sampler: expected logits, found an empty slice"));
        }
        if let Some(i) = logits.iter().position(|l| l.is_nan()) {
            return Err(Error::msg(format!("sampler: logit {i} is NaN")));
        }
        let c = &self.cfg;
        self.cand.clear();
        self.cand
            .extend(logits.iter().enumerate().map(|(i, &l)| (i as u32, l)));
        let window = &history[history.len().saturating_sub(c.penalty_last_n)..];
        apply_penalties(&mut self.cand, window, c, &mut self.counts);
        Ok(finish_chain(&mut self.cand, c, &mut self.rng))
    }
}

/// The chain after the penalties: greedy, or top-k, top-p, min-p, temperature and a draw.
fn finish_chain(cand: &mut Vec<(u32, f32)>, c: &SamplerConfig, rng: &mut StdRng) -> u32 {
    if c.temperature == 0.0 {
        return argmax(cand);
    }
    top_k(cand, c.top_k);
    if c.top_k > 0 {
        // The k survivors in one order (largest first, ties by id), whatever order the
        // selection left them in: a draw then depends only on the logits, so the device path
        // (`sample_array`, which sees only the top candidates) draws the same token.
        cand.sort_unstable_by(|a, b| desc(a, b).then(a.0.cmp(&b.0)));
    }
    top_p(cand, c.top_p);
    min_p(cand, c.min_p);
    let inv_t = 1.0 / c.temperature;
    for x in cand.iter_mut() {
        x.1 *= inv_t;
    }
    draw(cand, rng.gen::<f64>())
}

/// First index of the largest logit (llama.cpp's greedy).
fn argmax(cand: &[(u32, f32)]) -> u32 {
    let mut best = cand[0];
    for &x in &cand[1..] {
        if x.1 > best.1 {
            best = x;
        }
    }
    best.0
}

/// `cand` is indexed by token id here (penalties run first, on the full vocabulary).
pub(crate) fn apply_penalties(
    cand: &mut [(u32, f32)],
    window: &[u32],
    c: &SamplerConfig,
    counts: &mut HashMap<u32, u32>,
) {
    if !count_window(window, c, counts) {
        return;
    }
    for (&t, &n) in counts.iter() {
        // Ids outside the vocabulary cannot be penalized; ignore them.
        if let Some(x) = cand.get_mut(t as usize) {
            penalize(&mut x.1, n, c);
        }
    }
}

/// Counts the window's tokens into `counts`; false when no penalty applies (nothing to do).
fn count_window(window: &[u32], c: &SamplerConfig, counts: &mut HashMap<u32, u32>) -> bool {
    let active =
        c.repetition_penalty != 1.0 || c.presence_penalty != 0.0 || c.frequency_penalty != 0.0;
    if !active || window.is_empty() {
        return false;
    }
    counts.clear();
    for &t in window {
        *counts.entry(t).or_insert(0) += 1;
    }
    true
}

/// One seen token's logit after the penalties (`n`: its count in the window).
fn penalize(l: &mut f32, n: u32, c: &SamplerConfig) {
    if *l <= 0.0 {
        *l *= c.repetition_penalty;
    } else {
        *l /= c.repetition_penalty;
    }
    *l -= n as f32 * c.frequency_penalty + c.presence_penalty;
}

/// `apply_penalties` over candidates sorted by id (not indexed by it).
fn apply_penalties_sparse(
    cand: &mut [(u32, f32)],
    window: &[u32],
    c: &SamplerConfig,
    counts: &mut HashMap<u32, u32>,
) {
    if !count_window(window, c, counts) {
        return;
    }
    for x in cand.iter_mut() {
        if let Some(&n) = counts.get(&x.0) {
            penalize(&mut x.1, n, c);
        }
    }
}

fn desc(a: &(u32, f32), b: &(u32, f32)) -> std::cmp::Ordering {
    b.1.total_cmp(&a.1)
}

/// Keep the `k` largest logits (order not kept); 0 or k >= len keeps all.
pub(crate) fn top_k(cand: &mut Vec<(u32, f32)>, k: usize) {
    if k == 0 || k >= cand.len() {
        return;
    }
    cand.select_nth_unstable_by(k - 1, desc);
    cand.truncate(k);
}

/// Keep the smallest set of most likely tokens whose probability reaches `p` (at least one).
/// Sorts only a prefix, grown ×4 until it holds that mass.
pub(crate) fn top_p(cand: &mut Vec<(u32, f32)>, p: f32) {
    if p >= 1.0 || cand.len() <= 1 {
        return;
    }
    let max = cand.iter().map(|x| x.1).fold(f32::NEG_INFINITY, f32::max);
    let total: f64 = cand.iter().map(|x| ((x.1 - max) as f64).exp()).sum();
    let target = p as f64 * total;
    let mut m = 64.min(cand.len());
    loop {
        if m < cand.len() {
            cand.select_nth_unstable_by(m - 1, desc);
        }
        cand[..m].sort_unstable_by(desc);
        let mut cum = 0.0;
        for i in 0..m {
            cum += ((cand[i].1 - max) as f64).exp();
            if cum >= target {
                cand.truncate(i + 1);
                return;
            }
        }
        if m == cand.len() {
            return;
        }
        m = (m * 4).min(cand.len());
    }
}

/// Keep tokens with p >= min_p * p_max, i.e. logit >= max_logit + ln(min_p).
pub(crate) fn min_p(cand: &mut Vec<(u32, f32)>, min_p: f32) {
    if min_p <= 0.0 || cand.len() <= 1 {
        return;
    }
    let max = cand.iter().map(|x| x.1).fold(f32::NEG_INFINITY, f32::max);
    let thresh = max + min_p.ln();
    cand.retain(|x| x.1 >= thresh);
}

/// Draw from softmax(cand) with `u` uniform in [0, 1).
fn draw(cand: &[(u32, f32)], u: f64) -> u32 {
    let max = cand.iter().map(|x| x.1).fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        // All -inf, or a +inf logit: no distribution to draw from; take the largest.
        return argmax(cand);
    }
    let total: f64 = cand.iter().map(|x| ((x.1 - max) as f64).exp()).sum();
    let mut acc = 0.0;
    let target = u * total;
    for x in cand {
        acc += ((x.1 - max) as f64).exp();
        if acc > target {
            return x.0;
        }
    }
    // Rounding can leave the target just above the sum: the last candidate.
    cand[cand.len() - 1].0
}

#[cfg(test)]
#[path = "sample_tests.rs"]
mod tests;

/// A greedy token on its way to the host (`Sampler::greedy_lazy`).
pub struct LazyToken {
    /// (1) u32 on the logits' device: the next step's input.
    pub token: rmlx_core::Array,
    id: rmlx_core::PendingRead<u32>,
    sum: rmlx_core::PendingRead<f32>,
    row: rmlx_core::Array,
}

impl LazyToken {
    /// Waits for the token id; a NaN logit is an error naming it, as in `sample`.
    pub fn wait(self, sampler: &mut Sampler, history: &[u32]) -> Result<u32> {
        let id = self.id.wait()?[0];
        if self.sum.wait()?[0].is_nan() {
            // The chain names the NaN logit (and errors).
            return sampler.sample(&self.row.to_vec::<f32>()?, history);
        }
        Ok(id)
    }
}
