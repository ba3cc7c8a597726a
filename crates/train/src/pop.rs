//! pop: item popularity in [0, 1] (model type `pop`), served as the fine-sort feature
//! `popularity(model)`.
//!
//! # Algorithm
//! Over the last `training_window_days` days (default 30) ending at the task start, after the
//! `filter` (fields `biz_id`, `item_type`, `user_id`):
//! 1. **Weighted, decayed counts.** `behavior_weights` (default `click:1`, e.g. `click:1,buy:5`)
//!    gives each behavior type a weight; the weights are divided by the largest, so the
//!    strongest behavior counts 1 and a score keeps the meaning "strongest-behavior equivalents
//!    per exposure". An event `age` days old counts `w = 2^(-age / half_life_days)` (default 7:
//!    an event a week old counts half). Per item: `A` = decayed weighted actions, `E = Σ w` over
//!    its exposures (`bhv_type` = `expose`, the denominator; `expose` in `behavior_weights` is
//!    ignored with a warning), `Σ w²` over them, and `N`, their number without decay. Other
//!    behavior types are not used.
//! 2. **Smoothed rate.** `score = (A + α_b) / (E + α_b + β_b)`, clamped to [0, 1], where
//!    Beta(α_b, β_b) is the prior of the item's **volume band** `b`: mean `m_b`, strength
//!    `α_b + β_b = k` (the same for every band). The prior is fitted by empirical Bayes, the
//!    method of moments of the beta-binomial, over the items with exposures, each with its rate
//!    `p = min(A, E) / E` and its **effective exposures** `n = (Σ w)² / Σ w²`:
//!    - *Why `n`.* `p` is a weighted mean of click/no-click outcomes; its binomial variance is
//!      `θ (1 - θ) Σ w² / (Σ w)² = θ (1 - θ) / n`. `n` lies between 1 and `N` (`N` when all
//!      exposures have the same age); `E` would be the sample size only without decay. Taken as
//!      one, as this trainer once did, `E` (smaller than `n` once events age) overstates the
//!      noise, the fit finds no spread of rates beyond it and the strength runs to its cap,
//!      pulling every item to the mean: a 7-day half-life over months of data did exactly that.
//!      (When `w²` underflows, for exposures of extreme age, `n` is 1.)
//!    - *Global fit.* `m = Σ n p / Σ n`. For `ρ = 1 / (k + 1)`, the beta-binomial gives
//!      `E[(p - m)²] = m (1 - m) (ρ + (1 - ρ) / n)`, so, with weights `n`,
//!      `ρ = (Σ n (p - m)² - Σ m (1 - m)) / Σ m (1 - m) (n - 1)` and `k = 1/ρ - 1`, kept within
//!      [1, 10000] (10000 when the rates vary no more than noise would make them). An item with
//!      one effective exposure adds nothing to the denominator: one exposure cannot tell the
//!      spread of rates from noise. With fewer than 2 items, or when every item has a single
//!      effective exposure, `k` is 10 (method `fallback`) and there is one band.
//!    - *Volume bands.* Click-through differs systematically with exposure volume (popularity
//!      bias: much-shown items are often shown because they are liked, or are shown to many
//!      users who are not looking for them), so one global mean throws away what the volume
//!      says about a thin item: its best guess is the rate of items of its volume. Items are
//!      grouped by `⌊log2 N⌋` (1, 2-3, 4-7, ... exposures); from the lowest, consecutive groups
//!      are merged until a band holds at least 20 items, and a short last run joins the band
//!      below, so that a band's mean rests on many items rather than on a few whose own clicks
//!      would make much of their own prior. With one band the global fit is the prior.
//!    - *Band means*, pooled toward the center of all bands (random-effects moments,
//!      DerSimonian-Laird): each rate weighs `w_p = 1 / (ρ + (1 - ρ) / n)`, its inverse
//!      variance in units of `m (1 - m)` (precise rates count more, but none more than `k + 1`,
//!      as even an exact rate differs from its band's by the true spread); a band's mean
//!      `m̂_b = Σ w_p p / W_b` (`W_b = Σ w_p`) has the sampling variance `v / W_b`, with
//!      `v = m̄ (1 - m̄)` at the `W`-weighted mean `m̄` of all rates. The variance of the true
//!      band means is `τ² = max(0, (Q - (B - 1)) / (S₁ - S₂ / S₁))` with
//!      `Q = Σ (W_b / v) (m̂_b - m̄)²`, `S₁ = Σ W_b / v`, `S₂ = Σ (W_b / v)²` (`B` bands); the
//!      center `μ` weighs each band by `1 / (v / W_b + τ²)` (so the many exposures of the
//!      high-volume bands do not make it theirs), and `m_b = μ + τ² / (τ² + v / W_b) (m̂_b - μ)`,
//!      kept within [1e-6, 1 - 1e-6]. A band measured loosely stays near the center; when the
//!      band means differ no more than sampling would make them (`τ² = 0`), all are `μ`.
//!    - *Strength* refitted on the spread around the band means: the formula of the global fit
//!      with `m_b` in place of `m`. Band means and strength are fitted in turn twice, starting
//!      from the global fit's `ρ` (on the MovieLens kit a third round moves the strength by
//!      about 1e-5 of itself and the band means by less).
//!    - *The score* keeps `E`, not `n`: the prior says how items' rates differ, a fact about
//!      the catalogue measured against sampling noise (hence `n`), while `E` is how much of
//!      the item's own evidence is still current as the half-life defines it: an item seen
//!      mostly long ago leans on its band's prior.
//!
//!    So an item with 2 exposures and 2 lucky clicks scores near the rate of items shown as
//!    rarely, while one with thousands of recent exposures keeps its own rate. An item with
//!    actions but no exposure takes the first band's prior (0 exposures is closest to it).
//! 3. **Without exposures.** When the window has no `expose` event at all, a rate cannot be
//!    formed: the score is the decayed weighted volume on a log scale,
//!    `ln(1 + A) / ln(1 + max A)` (1 for the most popular item; a log so that a heavy head
//!    does not flatten every other item to 0), and a warning says so.
//!
//! Memory is per item (a few numbers each, for the whole window and for the evaluation's
//! training part) plus a bounded sample for the evaluation; the fit keeps a few numbers per
//! exposed item.
//!
//! # Evaluation (`metrics`)
//! Time-based holdout: the data's time span in the window (first to last used event) is split,
//! the last 20% of it (at least one day) held out. A model is trained as above on the part
//! before (its own prior, bands and counts `N` from that part), its decay anchored at the split,
//! and judged on the holdout's **impressions**: a distinct (`rn`, `item_id`) with an `expose`
//! event in the holdout, positive when an event of a weighted type has the same `rn` and
//! `item_id` in the holdout (the request id ties a click to the impression it came from). `auc`
//! is the AUC of the model's score of the item (0 for items the training part never saw,
//! serving's default) over those impressions, ties counted half; `baseline_auc` is the same
//! with raw counts from the training part (weighted actions, neither decayed nor smoothed: with
//! the default weights, click counts), which carry an item's volume as well as its rate. When
//! `auc` is below `baseline_auc`, a warning says so. Impressions are a uniform sample by hash
//! of (`rn`, `item_id`) once there are more than 2 million (`holdout_sample_rate` says which
//! share was kept). Without exposures, with an empty training part, or without both clicked and
//! unclicked impressions, the AUCs are `null` and `evaluation_unavailable` (and a warning) says
//! why. The served model is then trained on the whole window. `evaluation_model` and `model`
//! report the two fits: `mode` (`smoothed_rate` or `decayed_volume`) and `prior`: `method`
//! (`moments` or `fallback`), `strength` (`k`), `mean` (`μ`, or `m` with one band),
//! `between_band_variance` (`τ²`) and `bands`, each with `least_exposures` (`2^⌊log2 N⌋` of its
//! lowest group), `items`, `observed_mean` (`m̂_b`) and `mean` (`m_b`).
//!
//! # Artifact (JSON)
//! ```json
//! {"format": "trainyard.pop.v1", "generated_at": 1795900000, "default_score": null,
//!  "scores": {"item-1": 0.0734, "item-2": 0.0121, ...}}
//! ```
//! Every item with a used event in the window is listed, by id. `default_score` is the
//! instance's `default_score` parameter when it reached the trainer, else `null`: serving applies
//! the usage parameter to unseen items. `generated_at` is the task start.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;
use serde_json::json;
use trainyard_data::records::DatasetKind;

use crate::common::{
    DAY_SECONDS, KeySample, PhaseProgress, TextTable, TimeRange, date_of, estimated_rows, for_each_batch,
    integer_column, optional_text, stable_hash, text_column,
};
use crate::filter::{FieldValue, RecordFilter};
use crate::{TrainError, TrainedModel, TrainingContext, TrainingInput};

/// The artifact's format tag.
pub const FORMAT: &str = "trainyard.pop.v1";

/// The fields the `filter` parameter may test.
const FILTER_FIELDS: &[&str] = &["biz_id", "item_type", "user_id"];
/// The behavior type of an impression.
const EXPOSE: &str = "expose";
/// The share of the data's time span held out for evaluation, and its least length.
const HOLDOUT_SHARE: f64 = 0.2;
const LEAST_HOLDOUT_SECONDS: i64 = DAY_SECONDS;
/// Holdout impressions kept for the evaluation, at most.
const MAX_HOLDOUT_IMPRESSIONS: usize = 2_000_000;
/// Bounds of the prior strength α + β, and its value when it cannot be estimated.
const LEAST_PRIOR_STRENGTH: f64 = 1.0;
const GREATEST_PRIOR_STRENGTH: f64 = 10_000.0;
const FALLBACK_PRIOR_STRENGTH: f64 = 10.0;
/// The least number of items of a volume band.
const LEAST_BAND_ITEMS: usize = 20;
/// Rounds of fitting the band means and the strength in turn, after the global fit.
const PRIOR_ROUNDS: usize = 2;

#[derive(Serialize)]
struct Artifact<'a> {
    format: &'static str,
    generated_at: i64,
    default_score: Option<f64>,
    scores: BTreeMap<&'a str, f64>,
}

/// One item's sums over a part of the window: what the model keeps per item.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct ItemTotals {
    /// Decayed weighted actions, `A`.
    pub actions: f64,
    /// Decayed exposures, `E = Σ w` over the item's exposures (`w` each one's decay weight).
    pub exposures: f64,
    /// `Σ w²` over the same exposures.
    pub exposure_squares: f64,
    /// Exposures, counted without decay.
    pub exposure_count: u64,
}

impl ItemTotals {
    /// Totals of `count` exposures of decay weight 1 (tests).
    #[cfg(test)]
    fn undecayed(actions: f64, count: u64) -> ItemTotals {
        ItemTotals { actions, exposures: count as f64, exposure_squares: count as f64, exposure_count: count }
    }

    /// Adds one exposure of decay weight `weight`.
    fn expose(&mut self, weight: f64) {
        self.exposures += weight;
        self.exposure_squares += weight * weight;
        self.exposure_count += 1;
    }

    /// The effective number of exposures `(Σ w)² / Σ w²`: the number of undecayed exposures
    /// whose rate would be as noisy as the decayed rate `A / E`. It lies in [1, count]; when the
    /// squares underflowed (exposures so old that `w²` is below the smallest float) it is 1.
    pub fn effective_exposures(&self) -> f64 {
        if self.exposure_count == 0 || self.exposures <= 0.0 {
            return 0.0;
        }
        let effective = self.exposures * self.exposures / self.exposure_squares;
        if effective.is_finite() { effective.clamp(1.0, self.exposure_count as f64) } else { 1.0 }
    }
}

/// The items of one exposure-volume band and the prior mean they are shrunk toward.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct VolumeBand {
    /// The band holds the items with at least this many exposures (a power of 2), up to the
    /// next band's; the first band also holds the items with actions but no exposure.
    pub least_exposures: u64,
    pub items: usize,
    /// The band's own mean rate `m̂_b` (weights `w_p`, see the module documentation).
    pub observed_mean: f64,
    /// The prior mean `m_b` of its items: `observed_mean` pooled toward the bands' center.
    pub mean: f64,
}

/// The prior of the rates: Beta(`mean_b · strength`, `(1 - mean_b) · strength`) for an item of
/// band `b`, and how it was found.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Prior {
    /// `α + β`, the same for every band.
    pub strength: f64,
    /// With one band, the mean `m` of all exposed items (weights `n`); with several, the
    /// center `μ` the band means are pooled toward.
    pub mean: f64,
    /// `τ²`, the variance of the true band means around their center (0 with one band).
    pub between_band_variance: f64,
    /// At least one band, by increasing volume.
    pub bands: Vec<VolumeBand>,
    /// True when the strength was fitted by moments, false when the fallback was used.
    pub fitted: bool,
}

impl Prior {
    /// The prior mean of an item with `exposure_count` exposures.
    pub fn mean_for(&self, exposure_count: u64) -> f64 {
        let band = self.bands.iter().rev().find(|band| band.least_exposures <= exposure_count);
        band.unwrap_or(&self.bands[0]).mean
    }

    /// `(A + α) / (E + α + β)` with the prior of the item's band, within [0, 1].
    pub fn score(&self, totals: &ItemTotals) -> f64 {
        let alpha = self.mean_for(totals.exposure_count) * self.strength;
        ((totals.actions + alpha) / (totals.exposures + self.strength)).clamp(0.0, 1.0)
    }

    fn to_json(&self) -> serde_json::Value {
        let bands: Vec<serde_json::Value> = self
            .bands
            .iter()
            .map(|band| {
                json!({
                    "least_exposures": band.least_exposures,
                    "items": band.items,
                    "observed_mean": band.observed_mean,
                    "mean": band.mean,
                })
            })
            .collect();
        json!({
            "method": if self.fitted { "moments" } else { "fallback" },
            "strength": self.strength,
            "mean": self.mean,
            "between_band_variance": self.between_band_variance,
            "bands": bands,
        })
    }
}

/// An exposed item as the prior fit sees it.
#[derive(Debug, Clone, Copy)]
struct Observed {
    /// `min(A, E) / E`.
    rate: f64,
    /// `n_eff`.
    effective: f64,
    /// `⌊log2(exposure count)⌋`.
    volume: u32,
}

/// A mean kept off 0 and 1, so that the prior stays a proper Beta.
fn proper_mean(mean: f64) -> f64 {
    mean.clamp(1e-6, 1.0 - 1e-6)
}

/// The prior strength `α + β` by the method of moments, from each item's rate `p`, effective
/// exposures `n` and prior mean `m`: `ρ = (Σ n (p - m)² - Σ m (1 - m)) / Σ m (1 - m) (n - 1)`,
/// strength `1/ρ - 1` within its bounds. `None` when every item has a single effective exposure
/// (the denominator is 0: one exposure cannot tell the spread of rates from noise).
fn fitted_strength(observed: &[Observed], mean_of: impl Fn(usize) -> f64) -> Option<f64> {
    let (mut squares, mut noise, mut information) = (0.0, 0.0, 0.0);
    for (index, item) in observed.iter().enumerate() {
        let mean = mean_of(index);
        let variance = mean * (1.0 - mean);
        squares += item.effective * (item.rate - mean).powi(2);
        noise += variance;
        information += variance * (item.effective - 1.0);
    }
    if information <= 1e-12 {
        return None;
    }
    let correlation = (squares - noise) / information;
    Some(if correlation <= 0.0 {
        GREATEST_PRIOR_STRENGTH
    } else {
        (1.0 / correlation - 1.0).clamp(LEAST_PRIOR_STRENGTH, GREATEST_PRIOR_STRENGTH)
    })
}

/// The volume bands: runs of consecutive `⌊log2(count)⌋` values, from the lowest, each closed
/// once it holds `LEAST_BAND_ITEMS` items; a short last run joins the band before it. Returns
/// each band's lowest `⌊log2(count)⌋`, increasing.
fn volume_bands(observed: &[Observed]) -> Vec<u32> {
    let mut per_volume: BTreeMap<u32, usize> = BTreeMap::new();
    for item in observed {
        *per_volume.entry(item.volume).or_default() += 1;
    }
    let mut bands = Vec::new();
    let (mut open, mut held) = (None, 0);
    for (volume, items) in per_volume {
        open.get_or_insert(volume);
        held += items;
        if held >= LEAST_BAND_ITEMS {
            bands.extend(open.take());
            held = 0;
        }
    }
    if let Some(volume) = open
        && bands.is_empty()
    {
        bands.push(volume);
    }
    bands
}

/// The band means for a given strength: each band's mean rate with weights
/// `w_p = 1 / (ρ + (1 - ρ) / n)`, pooled toward the bands' center by the moment estimate of the
/// between-band variance (DerSimonian-Laird). Returns the center `μ`, `τ²` and the bands.
fn pooled_band_means(
    observed: &[Observed],
    band_of: &[usize],
    least_volumes: &[u32],
    strength: f64,
) -> (f64, f64, Vec<VolumeBand>) {
    let correlation = 1.0 / (strength + 1.0);
    let mut sums = vec![(0usize, 0.0f64, 0.0f64); least_volumes.len()];
    for (item, &band) in observed.iter().zip(band_of) {
        let weight = 1.0 / (correlation + (1.0 - correlation) / item.effective);
        sums[band].0 += 1;
        sums[band].1 += weight;
        sums[band].2 += weight * item.rate;
    }
    let total_weight: f64 = sums.iter().map(|(_, weight, _)| weight).sum();
    let global = proper_mean(sums.iter().map(|(_, _, weighted)| weighted).sum::<f64>() / total_weight);
    let variance = global * (1.0 - global);
    // A band mean's sampling variance is variance / W (W its items' summed weights): its
    // precision is W / variance.
    let (mut heterogeneity, mut precision, mut precision_squares) = (0.0, 0.0, 0.0);
    for (_, weight, weighted) in &sums {
        let band_precision = weight / variance;
        heterogeneity += band_precision * (weighted / weight - global).powi(2);
        precision += band_precision;
        precision_squares += band_precision * band_precision;
    }
    let degrees = (least_volumes.len() - 1) as f64;
    let between = ((heterogeneity - degrees) / (precision - precision_squares / precision)).max(0.0);
    // The mean of the true band means: each band weighted by 1 / (its sampling variance + τ²),
    // so that the many exposures of the high-volume bands do not make it theirs.
    let (mut center_weights, mut center_sum) = (0.0, 0.0);
    for (_, weight, weighted) in &sums {
        let band_weight = 1.0 / (variance / weight + between);
        center_weights += band_weight;
        center_sum += band_weight * weighted / weight;
    }
    let center = proper_mean(center_sum / center_weights);
    let bands = least_volumes
        .iter()
        .zip(&sums)
        .map(|(&volume, &(items, weight, weighted))| {
            let observed_mean = weighted / weight;
            let kept = between / (between + variance / weight);
            VolumeBand {
                least_exposures: 1u64 << volume,
                items,
                observed_mean,
                mean: proper_mean(center + kept * (observed_mean - center)),
            }
        })
        .collect();
    (center, between, bands)
}

/// Fits the prior (see the module documentation).
pub(crate) fn fit_prior(items: &[ItemTotals]) -> Prior {
    let observed: Vec<Observed> = items
        .iter()
        .filter(|totals| totals.exposures > 0.0 && totals.exposure_count > 0)
        .map(|totals| Observed {
            rate: totals.actions.min(totals.exposures) / totals.exposures,
            effective: totals.effective_exposures(),
            volume: totals.exposure_count.ilog2(),
        })
        .collect();
    let effective: f64 = observed.iter().map(|item| item.effective).sum();
    let mean = if effective > 0.0 {
        proper_mean(observed.iter().map(|item| item.effective * item.rate).sum::<f64>() / effective)
    } else {
        0.5
    };
    let single_band = |strength: f64, fitted: bool| Prior {
        strength,
        mean,
        between_band_variance: 0.0,
        bands: vec![VolumeBand { least_exposures: 1, items: observed.len(), observed_mean: mean, mean }],
        fitted,
    };
    let Some(global_strength) = (observed.len() >= 2).then(|| fitted_strength(&observed, |_| mean)).flatten() else {
        return single_band(FALLBACK_PRIOR_STRENGTH, false);
    };
    let least_volumes = volume_bands(&observed);
    if least_volumes.len() < 2 {
        return single_band(global_strength, true);
    }
    let band_of: Vec<usize> = observed
        .iter()
        .map(|item| least_volumes.iter().rposition(|&least| least <= item.volume).unwrap_or(0))
        .collect();
    let mut prior = single_band(global_strength, true);
    for _ in 0..PRIOR_ROUNDS {
        let (global, between, bands) = pooled_band_means(&observed, &band_of, &least_volumes, prior.strength);
        let strength = fitted_strength(&observed, |index| bands[band_of[index]].mean).unwrap_or(prior.strength);
        prior = Prior { strength, mean: global, between_band_variance: between, bands, fitted: true };
    }
    prior
}

/// How scores were made.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scoring {
    Smoothed(Prior),
    /// No exposures: decayed volume on a log scale.
    Volume,
}

/// Scores every item of `items` (an item with neither actions nor exposures scores 0, as an
/// unseen one).
pub(crate) fn score_items(items: &[ItemTotals]) -> (Scoring, Vec<f64>) {
    let has_exposures = items.iter().any(|totals| totals.exposures > 0.0);
    if !has_exposures {
        let greatest = items.iter().map(|totals| totals.actions).fold(0.0, f64::max);
        let scale = (1.0 + greatest).ln();
        let scores = items
            .iter()
            .map(|totals| if scale > 0.0 { ((1.0 + totals.actions).ln() / scale).clamp(0.0, 1.0) } else { 0.0 })
            .collect();
        return (Scoring::Volume, scores);
    }
    let prior = fit_prior(items);
    let scores = items
        .iter()
        .map(|totals| if totals.actions <= 0.0 && totals.exposures <= 0.0 { 0.0 } else { prior.score(totals) })
        .collect();
    (Scoring::Smoothed(prior), scores)
}

/// The AUC of `score` over examples grouped by score: each `(score, positives, negatives)`;
/// ties count half. `None` without both positives and negatives.
pub(crate) fn area_under_curve(mut examples: Vec<(f64, u64, u64)>) -> Option<f64> {
    examples.sort_unstable_by(|left, right| left.0.total_cmp(&right.0));
    let positives: u64 = examples.iter().map(|example| example.1).sum();
    let negatives: u64 = examples.iter().map(|example| example.2).sum();
    if positives == 0 || negatives == 0 {
        return None;
    }
    let mut negatives_below = 0u64;
    let mut area = 0.0;
    let mut index = 0;
    while index < examples.len() {
        let score = examples[index].0;
        let (mut group_positives, mut group_negatives) = (0u64, 0u64);
        while index < examples.len() && examples[index].0 == score {
            group_positives += examples[index].1;
            group_negatives += examples[index].2;
            index += 1;
        }
        area += group_positives as f64 * (negatives_below as f64 + 0.5 * group_negatives as f64);
        negatives_below += group_negatives;
    }
    Some(area / (positives as f64 * negatives as f64))
}

/// Parses `behavior_weights` (`type:weight,...`; the catalog validated it).
fn parse_behavior_weights(text: &str) -> Result<BTreeMap<String, f64>, TrainError> {
    let mut weights = BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|pair| !pair.is_empty()) {
        let parsed = pair
            .split_once(':')
            .and_then(|(behavior_type, weight)| Some((behavior_type.trim(), weight.trim().parse::<f64>().ok()?)));
        match parsed {
            Some((behavior_type, weight)) if weight.is_finite() && weight > 0.0 => {
                weights.insert(behavior_type.to_string(), weight);
            }
            _ => {
                return Err(TrainError::Internal(format!(
                    "the behavior_weights parameter does not parse at \"{pair}\""
                )));
            }
        }
    }
    Ok(weights)
}

/// One item's sums over the whole window and over the training part of the evaluation.
#[derive(Debug, Clone, Copy, Default)]
struct ItemAggregate {
    whole: ItemTotals,
    training: ItemTotals,
    /// Weighted actions of the training part, neither decayed nor smoothed: the baseline.
    training_raw_actions: f64,
}

/// A holdout impression (or click) of one (rn, item).
#[derive(Debug, Clone, Copy)]
struct Impression {
    item: u32,
    exposed: bool,
    acted: bool,
}

/// The rows a filter needs from a behavior batch.
struct FilterColumns<'b> {
    biz_ids: Option<&'b arrow_array::StringArray>,
    item_types: Option<&'b arrow_array::StringArray>,
    user_ids: Option<&'b arrow_array::StringArray>,
}

impl<'b> FilterColumns<'b> {
    fn of(batch: &'b arrow_array::RecordBatch, filter: &RecordFilter) -> Result<FilterColumns<'b>, TrainError> {
        let column = |name: &str| -> Result<Option<&'b arrow_array::StringArray>, TrainError> {
            if filter.tests(name) { Ok(Some(text_column(batch, name)?)) } else { Ok(None) }
        };
        Ok(FilterColumns { biz_ids: column("biz_id")?, item_types: column("item_type")?, user_ids: column("user_id")? })
    }

    fn passes(&self, filter: &RecordFilter, row: usize) -> bool {
        if filter.is_empty() {
            return true;
        }
        filter.matches(|field| {
            let column = match field {
                "biz_id" => self.biz_ids,
                "item_type" => self.item_types,
                "user_id" => self.user_ids,
                _ => None,
            };
            column.and_then(|values| optional_text(values, row)).map_or(FieldValue::Absent, FieldValue::Text)
        })
    }
}

fn filter_columns(filter: &RecordFilter) -> Vec<&'static str> {
    FILTER_FIELDS.iter().copied().filter(|field| filter.tests(field)).collect()
}

/// `2^(-age / half_life)`, an event in the future counting as now.
fn decay(anchor: i64, time: i64, half_life_seconds: f64) -> f64 {
    let age = (anchor - time).max(0) as f64;
    (-age / half_life_seconds).exp2()
}

/// What the first pass found.
#[derive(Debug, Default)]
struct Survey {
    rows_read: u64,
    in_window: u64,
    filtered_out: u64,
    by_type: BTreeMap<String, u64>,
    first_used: Option<i64>,
    last_used: Option<i64>,
}

/// Trains pop.
pub fn train(input: &TrainingInput<'_>, context: &TrainingContext) -> Result<TrainedModel, TrainError> {
    let window_days: i64 = input.parameter("training_window_days").unwrap_or(30);
    let half_life_days: f64 = input.parameter("half_life_days").unwrap_or(7.0);
    let weights_text = input.parameters.get("behavior_weights").map(String::as_str).unwrap_or("click:1");
    let given_weights = parse_behavior_weights(weights_text)?;
    let filter = RecordFilter::from_parameter(input.parameters.get("filter").map(String::as_str), FILTER_FIELDS)?;
    let default_score: Option<f64> = input.parameter("default_score");
    let now = input.now_seconds;
    let window = TimeRange::days_ending_at(now, window_days);
    let half_life_seconds = half_life_days * DAY_SECONDS as f64;

    let mut warnings = Vec::new();
    if given_weights.contains_key(EXPOSE) {
        warnings.push(
            "behavior_weights names expose, which is the denominator of the rate, not an action: its weight is ignored"
                .to_string(),
        );
    }
    let action_weights: BTreeMap<String, f64> = given_weights
        .iter()
        .filter(|(behavior_type, _)| *behavior_type != EXPOSE)
        .map(|(behavior_type, weight)| (behavior_type.clone(), *weight))
        .collect();
    let greatest_weight = action_weights.values().copied().fold(0.0, f64::max);
    if greatest_weight <= 0.0 {
        return Err(TrainError::NotEnoughData(
            "behavior_weights names no behavior type other than expose: there is no action to count".to_string(),
        ));
    }
    let relative_weight =
        |behavior_type: &str| action_weights.get(behavior_type).map(|weight| weight / greatest_weight);
    let weights_in_words = action_weights
        .iter()
        .map(|(behavior_type, weight)| format!("{behavior_type}:{weight}"))
        .collect::<Vec<_>>()
        .join(",");
    let window_in_words = format!("in the last {window_days} days (window ending {})", date_of(window.end - 1));

    // Pass 1: which events are there, and the time span of the used ones.
    let days = window.partition_days();
    let estimated = estimated_rows(input.snapshot, DatasetKind::Behavior, &days);
    let mut survey_columns = vec!["bhv_type", "bhv_time"];
    survey_columns.extend(filter_columns(&filter));
    let mut survey = Survey::default();
    let mut survey_progress = PhaseProgress::new(context, 0, 25, estimated);
    survey.rows_read = for_each_batch(
        input.snapshot,
        DatasetKind::Behavior,
        days.clone(),
        &survey_columns,
        context,
        &mut survey_progress,
        |batch| {
            let types = text_column(batch, "bhv_type")?;
            let times = integer_column(batch, "bhv_time")?;
            let filter_values = FilterColumns::of(batch, &filter)?;
            for row in 0..batch.num_rows() {
                let time = times.value(row);
                if !window.contains(time) {
                    continue;
                }
                survey.in_window += 1;
                if !filter_values.passes(&filter, row) {
                    survey.filtered_out += 1;
                    continue;
                }
                let behavior_type = types.value(row);
                match survey.by_type.get_mut(behavior_type) {
                    Some(count) => *count += 1,
                    None => {
                        survey.by_type.insert(behavior_type.to_string(), 1);
                    }
                }
                if behavior_type == EXPOSE || relative_weight(behavior_type).is_some() {
                    survey.first_used = Some(survey.first_used.map_or(time, |first| first.min(time)));
                    survey.last_used = Some(survey.last_used.map_or(time, |last| last.max(time)));
                }
            }
            Ok(())
        },
    )?;
    if survey.in_window == 0 {
        return Err(TrainError::NotEnoughData(format!("no behavior events {window_in_words}")));
    }
    if survey.in_window == survey.filtered_out {
        return Err(TrainError::NotEnoughData(format!(
            "no behavior events matching the filter `{}` {window_in_words}: \
             none of the {} events in the window matches",
            filter.text(),
            survey.in_window
        )));
    }
    let actions_in_window: u64 = survey
        .by_type
        .iter()
        .filter(|(behavior_type, _)| relative_weight(behavior_type).is_some())
        .map(|(_, count)| *count)
        .sum();
    let exposures_in_window = survey.by_type.get(EXPOSE).copied().unwrap_or(0);
    if actions_in_window == 0 {
        let found = survey
            .by_type
            .iter()
            .map(|(behavior_type, count)| format!("{behavior_type} {count}"))
            .collect::<Vec<_>>()
            .join(", ");
        let weighted_types = action_weights.keys().cloned().collect::<Vec<_>>().join(" or ");
        return Err(TrainError::NotEnoughData(format!(
            "no {weighted_types} events (behavior_weights {weights_in_words}) {window_in_words}: \
             the window holds {found}"
        )));
    }
    let (Some(first_used), Some(last_used)) = (survey.first_used, survey.last_used) else {
        return Err(TrainError::Internal("used events were counted without their times".into()));
    };
    let span = last_used - first_used;
    let holdout_seconds = ((span as f64 * HOLDOUT_SHARE).ceil() as i64).max(LEAST_HOLDOUT_SECONDS);
    let split = last_used + 1 - holdout_seconds;
    let training_part = TimeRange { start: window.start, end: split.max(window.start) };
    let holdout = TimeRange { start: split.max(window.start), end: window.end };

    // Pass 2: the sums per item, and the holdout impressions.
    let mut aggregate_columns = vec!["rn", "item_id", "bhv_type", "bhv_time", "user_id", "imei"];
    aggregate_columns.extend(filter_columns(&filter));
    let mut items = TextTable::default();
    let mut aggregates: Vec<ItemAggregate> = Vec::new();
    let mut users: HashSet<u64> = HashSet::new();
    let mut impressions: KeySample<Impression> = KeySample::new(MAX_HOLDOUT_IMPRESSIONS);
    let mut events_used = 0u64;
    let mut aggregate_progress = PhaseProgress::new(context, 25, 95, estimated);
    for_each_batch(
        input.snapshot,
        DatasetKind::Behavior,
        days,
        &aggregate_columns,
        context,
        &mut aggregate_progress,
        |batch| {
            let request_ids = text_column(batch, "rn")?;
            let item_ids = text_column(batch, "item_id")?;
            let types = text_column(batch, "bhv_type")?;
            let times = integer_column(batch, "bhv_time")?;
            let user_ids = text_column(batch, "user_id")?;
            let devices = text_column(batch, "imei")?;
            let filter_values = FilterColumns::of(batch, &filter)?;
            for row in 0..batch.num_rows() {
                let time = times.value(row);
                if !window.contains(time) || !filter_values.passes(&filter, row) {
                    continue;
                }
                let behavior_type = types.value(row);
                let is_exposure = behavior_type == EXPOSE;
                let weight = relative_weight(behavior_type);
                if !is_exposure && weight.is_none() {
                    continue;
                }
                events_used += 1;
                let item_id = item_ids.value(row);
                let item = items.intern(item_id);
                if aggregates.len() <= item as usize {
                    aggregates.resize(item as usize + 1, ItemAggregate::default());
                }
                if let Some(user) = optional_text(user_ids, row).or_else(|| optional_text(devices, row)) {
                    users.insert(stable_hash(&[user]));
                }
                let aggregate = &mut aggregates[item as usize];
                let whole_decay = decay(now, time, half_life_seconds);
                match weight {
                    Some(weight) => aggregate.whole.actions += weight * whole_decay,
                    None => aggregate.whole.expose(whole_decay),
                }
                if training_part.contains(time) {
                    let training_decay = decay(split, time, half_life_seconds);
                    match weight {
                        Some(weight) => {
                            aggregate.training.actions += weight * training_decay;
                            aggregate.training_raw_actions += weight;
                        }
                        None => aggregate.training.expose(training_decay),
                    }
                } else {
                    let key = stable_hash(&[request_ids.value(row), item_id]);
                    if let Some(impression) =
                        impressions.entry(key, || Impression { item, exposed: false, acted: false })
                    {
                        impression.exposed |= is_exposure;
                        impression.acted |= weight.is_some();
                    }
                }
            }
            Ok(())
        },
    )?;
    context.check_cancelled()?;

    // Evaluation.
    let training_totals: Vec<ItemTotals> = aggregates.iter().map(|aggregate| aggregate.training).collect();
    let training_has_data = training_totals.iter().any(|totals| totals.actions > 0.0 || totals.exposures > 0.0);
    let (training_scoring, training_scores) = score_items(&training_totals);
    let mut per_item: Vec<(u64, u64)> = vec![(0, 0); aggregates.len()];
    let (mut holdout_impressions, mut holdout_clicked) = (0u64, 0u64);
    for impression in impressions.values().filter(|impression| impression.exposed) {
        holdout_impressions += 1;
        if impression.acted {
            holdout_clicked += 1;
            per_item[impression.item as usize].0 += 1;
        } else {
            per_item[impression.item as usize].1 += 1;
        }
    }
    let unavailable_reason = if exposures_in_window == 0 {
        Some("the window has no expose events, so no impression can be judged".to_string())
    } else if !training_has_data {
        Some(format!(
            "every used event is in the holdout (from {}): \
             the data spans too short a time to train on what came before",
            date_of(holdout.start)
        ))
    } else if holdout_impressions == 0 {
        Some("the holdout has no expose events".to_string())
    } else if holdout_clicked == 0 || holdout_clicked == holdout_impressions {
        Some("the holdout impressions are all clicked or all unclicked".to_string())
    } else {
        None
    };
    let model_examples: Vec<(f64, u64, u64)> = per_item
        .iter()
        .enumerate()
        .filter(|(_, (positives, negatives))| positives + negatives > 0)
        .map(|(item, (positives, negatives))| (training_scores[item], *positives, *negatives))
        .collect();
    let baseline_examples: Vec<(f64, u64, u64)> = per_item
        .iter()
        .enumerate()
        .filter(|(_, (positives, negatives))| positives + negatives > 0)
        .map(|(item, (positives, negatives))| (aggregates[item].training_raw_actions, *positives, *negatives))
        .collect();
    let (auc, baseline_auc) = match unavailable_reason {
        Some(_) => (None, None),
        None => (area_under_curve(model_examples), area_under_curve(baseline_examples)),
    };
    if let Some(reason) = &unavailable_reason {
        warnings.push(format!("no evaluation: {reason}"));
    }
    if let (Some(model_auc), Some(baseline)) = (auc, baseline_auc)
        && model_auc < baseline
    {
        warnings
            .push(format!("the model's holdout AUC {model_auc:.4} is below the raw-count baseline's {baseline:.4}"));
    }

    // The served model: the whole window.
    let whole_totals: Vec<ItemTotals> = aggregates.iter().map(|aggregate| aggregate.whole).collect();
    let (scoring, scores) = score_items(&whole_totals);
    if matches!(scoring, Scoring::Volume) {
        warnings.push(format!(
            "no expose events {window_in_words}: scores are decayed action volume on a log scale \
             (1 = the most popular item), not a smoothed click-through rate; push expose events for rates"
        ));
    }

    let scoring_json = |scoring: &Scoring| match scoring {
        Scoring::Smoothed(prior) => json!({"mode": "smoothed_rate", "prior": prior.to_json()}),
        Scoring::Volume => json!({"mode": "decayed_volume", "prior": null}),
    };
    let mut metrics = json!({
        "auc": auc,
        "baseline_auc": baseline_auc,
        "holdout": holdout.to_json(),
        "training_part": training_part.to_json(),
        "holdout_impressions": holdout_impressions,
        "holdout_clicked_impressions": holdout_clicked,
        "holdout_sample_rate": impressions.rate(),
        "evaluation_model": scoring_json(&training_scoring),
        "model": scoring_json(&scoring),
    });
    if let Some(reason) = unavailable_reason {
        metrics["evaluation_unavailable"] = json!(reason);
    }
    let data_report = json!({
        "window": window.to_json(),
        "training_window_days": window_days,
        "half_life_days": half_life_days,
        "behavior_weights": given_weights,
        "filter": if filter.is_empty() { None } else { Some(filter.text()) },
        "rows_read": survey.rows_read,
        "events_in_window": survey.in_window,
        "events_filtered_out": survey.filtered_out,
        "events_by_type": survey.by_type,
        "events_used": events_used,
        "actions": actions_in_window,
        "exposures": exposures_in_window,
        "first_used_event": survey.first_used,
        "last_used_event": survey.last_used,
        "items": items.len(),
        "users": users.len(),
    });
    let artifact = Artifact {
        format: FORMAT,
        generated_at: now,
        default_score,
        scores: (0..items.len() as u32).map(|item| (items.text(item), scores[item as usize])).collect(),
    };
    let artifact_bytes = serde_json::to_vec(&artifact)
        .map_err(|error| TrainError::Internal(format!("encoding the artifact: {error}")))?;
    Ok(TrainedModel { artifact: artifact_bytes, metrics, data_report, warnings, replace_served: true })
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::test_support::{Fixture, NOW, Random, context, event, event_in, input};

    fn scores_of(model: &TrainedModel) -> BTreeMap<String, f64> {
        let artifact: Value = serde_json::from_slice(&model.artifact).unwrap();
        artifact["scores"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(item, score)| (item.clone(), score.as_f64().unwrap()))
            .collect()
    }

    fn close(left: f64, right: f64) -> bool {
        (left - right).abs() < 1e-9
    }

    #[test]
    fn the_prior_is_fitted_by_moments_on_a_hand_computed_example() {
        // Four items with 10 exposures each and 1, 2, 3, 6 actions: m = 12/40 = 0.3.
        // s² = (0.04 + 0.01 + 0 + 0.09) · 10 / 40 = 0.035; m(1 - m) = 0.21; n / ΣE = 0.1.
        // ρ = (0.035/0.21 - 0.1) / 0.9 = (1/6 - 1/10) / 0.9 = 2/27; α + β = 27/2 - 1 = 12.5.
        // α = 0.3 · 12.5 = 3.75, β = 8.75.
        let items: Vec<ItemTotals> = [1.0, 2.0, 3.0, 6.0].map(|actions| ItemTotals::undecayed(actions, 10)).to_vec();
        let fitted = fit_prior(&items);
        assert!(fitted.fitted);
        assert!(close(fitted.strength, 12.5) && close(fitted.mean, 0.3) && fitted.bands.len() == 1, "{fitted:?}");
        let (scoring, scores) = score_items(&items);
        assert_eq!(scoring, Scoring::Smoothed(fitted));
        // (6 + 3.75) / (10 + 12.5) = 0.4333...
        assert!(close(scores[3], 9.75 / 22.5), "{scores:?}");

        // Rates that vary no more than noise: the strongest prior, everything near the mean.
        let even: Vec<ItemTotals> = [3.0, 3.0, 3.0].map(|actions| ItemTotals::undecayed(actions, 10)).to_vec();
        let strongest = fit_prior(&even);
        assert!(close(strongest.strength, GREATEST_PRIOR_STRENGTH));
        // Too few items: the fallback strength around the pooled mean.
        let fallback = fit_prior(&[ItemTotals::undecayed(1.0, 4)]);
        assert!(!fallback.fitted && close(fallback.strength, 10.0) && close(fallback.mean, 0.25), "{fallback:?}");
    }

    #[test]
    fn effective_exposures_measure_the_noise_of_a_decayed_count() {
        // Weights 1, 1, 0.5, 0.5: E = 3, Σw² = 2.5, n_eff = 9 / 2.5 = 3.6.
        let mut mixed = ItemTotals::default();
        for weight in [1.0, 1.0, 0.5, 0.5] {
            mixed.expose(weight);
        }
        assert!(close(mixed.exposures, 3.0) && close(mixed.effective_exposures(), 3.6), "{mixed:?}");
        // Ten exposures of the same age: E = 5, but the rate is as noisy as an undecayed one of 10.
        let mut aged = ItemTotals::default();
        (0..10).for_each(|_| aged.expose(0.5));
        assert!(close(aged.exposures, 5.0) && close(aged.effective_exposures(), 10.0), "{aged:?}");
        // Squares that underflowed count as one exposure; no exposure counts none.
        let ancient = ItemTotals { actions: 0.0, exposures: 1e-200, exposure_squares: 0.0, exposure_count: 3 };
        assert_eq!(ancient.effective_exposures(), 1.0);
        assert_eq!(ItemTotals::default().effective_exposures(), 0.0);
    }

    #[test]
    fn decay_no_longer_pushes_the_prior_strength_to_its_cap() {
        // The four items above (10 exposures; 1, 2, 3, 6 clicks), every event one half-life old:
        // A and E are halved, but n_eff = 5² / 2.5 = 10, so the fit is the undecayed one:
        // m = 0.3, α + β = 12.5. (With E as the sample size, the noise term n / ΣE = 4/20 = 0.2
        // exceeds s² / m(1 - m) = 1/6, and the strength hit the cap of 10000.)
        let items: Vec<ItemTotals> = [1.0, 2.0, 3.0, 6.0]
            .map(|clicks| ItemTotals {
                actions: clicks / 2.0,
                exposures: 5.0,
                exposure_squares: 2.5,
                exposure_count: 10,
            })
            .to_vec();
        let fitted = fit_prior(&items);
        assert!(fitted.fitted && close(fitted.strength, 12.5) && close(fitted.mean, 0.3), "{fitted:?}");
        // The score keeps the half-life's discount of the evidence: (3 + 3.75) / (5 + 12.5).
        let (_, scores) = score_items(&items);
        assert!(close(scores[3], 6.75 / 17.5), "{scores:?}");
    }

    #[test]
    fn volume_bands_hold_at_least_twenty_items() {
        let observed = |volumes: &[(u32, usize)]| -> Vec<Observed> {
            volumes
                .iter()
                .flat_map(|&(volume, items)| (0..items).map(move |_| Observed { rate: 0.5, effective: 1.0, volume }))
                .collect()
        };
        // 25 items at ⌊log2 count⌋ 0 close a band; 12 + 8 at 2 and 3 another; 3 at 6 join it.
        assert_eq!(volume_bands(&observed(&[(0, 25), (2, 12), (3, 8), (6, 3)])), vec![0, 2]);
        // 5 + 30 close the first band at 0; the 18 left over join it.
        assert_eq!(volume_bands(&observed(&[(0, 5), (1, 30), (2, 10), (3, 8)])), vec![0]);
        // Under 20 items in all: one band.
        assert_eq!(volume_bands(&observed(&[(1, 4), (5, 4)])), vec![1]);
    }

    #[test]
    fn the_prior_mean_follows_the_exposure_volume() {
        // 20 items with 8 exposures (band from 8): 10 with 1 click, 10 with 3 (rates 1/8, 3/8);
        // 20 with 32 exposures (band from 32): 10 with 12 clicks, 10 with 20 (3/8, 5/8). No decay.
        let mut items = Vec::new();
        for (clicks, exposures) in [(1.0, 8), (3.0, 8), (12.0, 32), (20.0, 32)] {
            items.extend((0..10).map(|_| ItemTotals::undecayed(clicks, exposures)));
        }
        // Computed step by step (outside the code):
        // Global fit: m = Σ n p / Σ n = 0.45; Σ n (p - m)² = 20.5, Σ m(1 - m) = 9.9,
        //   Σ m(1 - m)(n - 1) = 188.1: ρ = 10.6 / 188.1, strength 16.745.
        // Round 1: w = 1 / (ρ + (1 - ρ)/n) = 5.737 (n = 8) and 11.649 (n = 32); band means 0.25
        //   and 0.5 (equal weights within a band); W = 114.74 and 232.99; their W-weighted mean
        //   0.41751, v = 0.41751 · 0.58249 = 0.243195; Q = Σ (W / v)(mean - 0.41751)² = 19.757,
        //   τ² = (Q - 1) / (Σ W/v - Σ (W/v)² / Σ W/v) = 0.029668; weights 1 / (v/W + τ²) give
        //   the center 0.377151; pooled 0.258478 and 0.495825; residual fit: strength 48.279.
        // Round 2 (w = 7.005, 19.643): τ² = 0.0300605, center 0.377257, pooled 0.257014 and
        //   0.497499, strength 48.2115.
        let fitted = fit_prior(&items);
        assert!(fitted.fitted, "{fitted:?}");
        let near = |value: f64, expected: f64| (value - expected).abs() < 1e-5;
        assert_eq!(
            fitted.bands.iter().map(|band| (band.least_exposures, band.items)).collect::<Vec<_>>(),
            [(8, 20), (32, 20)]
        );
        assert!(close(fitted.bands[0].observed_mean, 0.25) && close(fitted.bands[1].observed_mean, 0.5), "{fitted:?}");
        assert!(near(fitted.mean, 0.377257) && near(fitted.between_band_variance, 0.0300605), "{fitted:?}");
        assert!(near(fitted.bands[0].mean, 0.257014) && near(fitted.bands[1].mean, 0.497499), "{fitted:?}");
        assert!(near(fitted.strength, 48.2115), "{fitted:?}");
        // 3 clicks on 8 exposures: (3 + 0.257014 · 48.2115) / (8 + 48.2115) = 0.273806, near its
        // band, where one global prior (m = 0.45, strength 16.745) gave 0.426.
        let (_, scores) = score_items(&items);
        assert!(near(scores[10], 0.273806), "{scores:?}");
        assert!(near(scores[30], 0.548365), "{scores:?}");
        // An item with actions and no exposure takes the first band's prior; one above every
        // band's least volume the last band's.
        assert!(close(fitted.mean_for(0), fitted.bands[0].mean) && close(fitted.mean_for(4000), fitted.bands[1].mean));
    }

    #[test]
    fn smoothing_ranks_a_lucky_item_below_a_proven_one() {
        let items = vec![
            ItemTotals::undecayed(2.0, 2),      // two lucky clicks
            ItemTotals::undecayed(300.0, 1000), // a proven 30%
            ItemTotals::undecayed(50.0, 1000),
            ItemTotals::undecayed(100.0, 1000),
            ItemTotals::undecayed(0.0, 5),
        ];
        let (_, scores) = score_items(&items);
        assert!(scores[0] < scores[1], "{scores:?}");
        assert!(scores.iter().all(|score| (0.0..=1.0).contains(score)));
    }

    #[test]
    fn the_area_under_the_curve_counts_ties_half() {
        assert_eq!(area_under_curve(vec![(0.9, 1, 0), (0.1, 0, 1)]), Some(1.0));
        assert_eq!(area_under_curve(vec![(0.1, 1, 0), (0.9, 0, 1)]), Some(0.0));
        assert_eq!(area_under_curve(vec![(0.5, 1, 1)]), Some(0.5));
        // Positives at 0.2 (1) and 0.8 (2); negatives at 0.2 (1) and 0.5 (2):
        // pairs won: the 0.8 positives beat all 3 negatives (6), the 0.2 positive ties one (0.5).
        assert_eq!(area_under_curve(vec![(0.8, 2, 0), (0.5, 0, 2), (0.2, 1, 1)]), Some(6.5 / 9.0));
        assert_eq!(area_under_curve(vec![(0.5, 3, 0)]), None);
    }

    #[test]
    fn decayed_volume_scores_without_exposures_with_a_warning() {
        let fixture = Fixture::new();
        let week = 7 * DAY_SECONDS;
        // Weights relative to the greatest (buy, 4): a click counts 0.25, a buy 1. a: a click
        // now (0.25); b: a click a week ago (0.125); c: a buy two weeks ago (0.25).
        // Scores ln(1 + v) / ln(1 + 0.25).
        fixture.append_behavior(&[
            event("u1", "a", "click", NOW),
            event("u2", "b", "click", NOW - week),
            event("u3", "c", "buy", NOW - 2 * week),
            event("u3", "d", "like", NOW), // not a weighted type: unused
        ]);
        let snapshot = fixture.snapshot();
        let model = train(&input(&snapshot, "pop", &[("behavior_weights", "click:1,buy:4")]), &context()).unwrap();
        let scores = scores_of(&model);
        assert_eq!(scores.keys().cloned().collect::<Vec<_>>(), vec!["a", "b", "c"]);
        let scale = 1.25f64.ln();
        assert!(close(scores["a"], 1.0), "{scores:?}");
        assert!(close(scores["b"], 1.125f64.ln() / scale), "{scores:?}");
        assert!(close(scores["c"], 1.25f64.ln() / scale), "{scores:?}");
        assert!(model.warnings.iter().any(|warning| warning.contains("no expose events")), "{:?}", model.warnings);
        assert!(model.metrics["auc"].is_null() && model.metrics["baseline_auc"].is_null());
        assert_eq!(
            model.metrics["evaluation_unavailable"],
            "the window has no expose events, so no impression can be judged"
        );
        assert_eq!(model.metrics["model"]["mode"], "decayed_volume");
        assert_eq!(model.data_report["events_used"], 3);
        assert_eq!(model.data_report["users"], 3);
    }

    #[test]
    fn smoothed_rates_follow_the_fitted_prior_and_the_half_life() {
        let fixture = Fixture::new();
        let mut events = Vec::new();
        // Four items with 10 exposures and 1, 2, 3, 6 clicks now (no decay): the example above.
        for (item, clicks) in [("w", 1), ("x", 2), ("y", 3), ("z", 6)] {
            for index in 0..10 {
                let user = format!("{item}{index}");
                events.push(event(&user, item, "expose", NOW));
                if index < clicks {
                    events.push(event(&user, item, "click", NOW));
                }
            }
        }
        // "old": 2 exposures and 2 clicks two half-lives ago count 0.25 each: 0.5 and 0.5.
        for index in 0..2 {
            events.push(event(&format!("old{index}"), "old", "expose", NOW - 14 * DAY_SECONDS));
            events.push(event(&format!("old{index}"), "old", "click", NOW - 14 * DAY_SECONDS));
        }
        fixture.append_behavior(&events);
        let snapshot = fixture.snapshot();
        let model = train(&input(&snapshot, "pop", &[("default_score", "0.05")]), &context()).unwrap();
        let scores = scores_of(&model);
        // "old" counts E = 0.5 but n_eff = 0.5² / (2 · 0.25²) = 2 exposures at the rate 1: it
        // enters the fit (5 items, one band). m = (12 + 2) / 42 = 1/3; Σ n (p - m)² = 13/9 + 8/9
        // = 7/3; Σ m(1 - m) = 10/9; Σ m(1 - m)(n - 1) = (2/9) · 37 = 74/9; ρ = (7/3 - 10/9) / (74/9)
        // = 11/74; α + β = 74/11 - 1 = 63/11, α = 21/11.
        assert!(close(scores["z"], 87.0 / 173.0), "{scores:?}"); // (6 + 21/11) / (10 + 63/11)
        assert!(close(scores["w"], 32.0 / 173.0), "{scores:?}");
        // The half-life still discounts its evidence: (0.5 + 21/11) / (0.5 + 63/11).
        assert!(close(scores["old"], 53.0 / 137.0), "{scores:?}");
        let artifact: Value = serde_json::from_slice(&model.artifact).unwrap();
        assert_eq!(artifact["format"], "trainyard.pop.v1");
        assert_eq!(artifact["generated_at"], NOW);
        assert_eq!(artifact["default_score"], 0.05);
        assert_eq!(model.metrics["model"]["prior"]["method"], "moments");
        assert_eq!(model.data_report["exposures"], 42);
        assert_eq!(model.data_report["actions"], 14);
    }

    #[test]
    fn the_filter_selects_events_by_business_item_type_and_user() {
        let fixture = Fixture::new();
        let mut app_event = event("u1", "app-item", "click", NOW);
        app_event.biz_id = "app".into();
        let mut video = event("u2", "video-item", "click", NOW);
        video.item_type = "video".into();
        fixture.append_behavior(&[
            app_event,
            video,
            event("bot", "bot-item", "click", NOW),
            event("u3", "web-item", "click", NOW),
        ]);
        let snapshot = fixture.snapshot();
        let items = |filter: &str| -> Vec<String> {
            scores_of(&train(&input(&snapshot, "pop", &[("filter", filter)]), &context()).unwrap())
                .into_keys()
                .collect()
        };
        assert_eq!(items("biz_id = app"), vec!["app-item"]);
        assert_eq!(items("item_type != video, user_id != bot"), vec!["app-item", "web-item"]);
        let error = train(&input(&snapshot, "pop", &[("filter", "biz_id = ios")]), &context()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "no behavior events matching the filter `biz_id = ios` in the last 30 days (window ending 2026-11-28): none of the 4 events in the window matches"
        );
    }

    #[test]
    fn missing_events_fail_with_a_message_naming_them() {
        let fixture = Fixture::new();
        fixture.append_behavior(&[event("u", "i", "click", NOW - 31 * DAY_SECONDS)]);
        let snapshot = fixture.snapshot();
        let error = train(&input(&snapshot, "pop", &[]), &context()).unwrap_err();
        assert!(matches!(error, TrainError::NotEnoughData(_)), "{error:?}");
        assert_eq!(error.to_string(), "no behavior events in the last 30 days (window ending 2026-11-28)");
    }

    #[test]
    fn without_weighted_actions_the_error_names_the_types_found() {
        let fixture = Fixture::new();
        fixture.append_behavior(&[
            event("u", "i", "expose", NOW),
            event("u", "i", "expose", NOW),
            event("u", "i", "cart", NOW),
        ]);
        let snapshot = fixture.snapshot();
        let error = train(&input(&snapshot, "pop", &[("behavior_weights", "click:1,buy:3")]), &context()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "no buy or click events (behavior_weights buy:3,click:1) in the last 30 days (window ending 2026-11-28): the window holds cart 1, expose 2"
        );
    }

    #[test]
    fn a_cancelled_task_stops_without_a_model() {
        let fixture = Fixture::new();
        fixture.append_behavior(&[event("u", "i", "click", NOW)]);
        let snapshot = fixture.snapshot();
        let context = context();
        context.cancel();
        assert!(matches!(train(&input(&snapshot, "pop", &[]), &context), Err(TrainError::Cancelled)));
    }

    /// Search requests with one impression each, and a click after some of them.
    struct Impressions {
        requests: u64,
    }

    impl Impressions {
        fn next_request(&mut self) -> String {
            self.requests += 1;
            format!("r{}", self.requests)
        }

        /// `count` impressions of `item` between `to_days` and `from_days` days ago, each clicked
        /// with probability `rate`.
        fn of(
            &mut self,
            item: &str,
            rate: f64,
            count: usize,
            (from_days, to_days): (i64, i64),
            random: &mut Random,
        ) -> Vec<trainyard_data::records::BehaviorEvent> {
            let mut made = Vec::new();
            for _ in 0..count {
                let rn = self.next_request();
                let user = format!("u{}", random.below(500));
                let time =
                    NOW - to_days * DAY_SECONDS + random.below(((to_days - from_days) * DAY_SECONDS) as u64) as i64;
                made.push(event_in(&rn, &user, item, "expose", time));
                if random.unit() < rate {
                    made.push(event_in(&rn, &user, item, "click", time + 5));
                }
            }
            made
        }
    }

    /// The training part is 30 to 7 days ago, the holdout the last 5 days (the last 20 % of
    /// the span).
    const TRAINING_DAYS: (i64, i64) = (7, 29);
    const HOLDOUT_DAYS: (i64, i64) = (0, 5);

    /// Popular items with a low rate and many clicks, rare items with a high rate and few
    /// clicks, and thin items with a low rate, some of them lucky (a click on few exposures):
    /// raw click counts rank the popular ones first, the smoothed rate does not.
    fn skewed_events(random: &mut Random) -> Vec<trainyard_data::records::BehaviorEvent> {
        let mut events = Vec::new();
        let mut impressions = Impressions { requests: 0 };
        for index in 0..30 {
            let item = format!("popular{index}");
            events.extend(impressions.of(&item, 0.03, 300, TRAINING_DAYS, random));
            events.extend(impressions.of(&item, 0.03, 60, HOLDOUT_DAYS, random));
        }
        for index in 0..40 {
            let item = format!("rare{index}");
            events.extend(impressions.of(&item, 0.3, 12, TRAINING_DAYS, random));
            events.extend(impressions.of(&item, 0.3, 8, HOLDOUT_DAYS, random));
        }
        for index in 0..60 {
            // One in six is lucky: a click in the training part. Luck is an item's own: were
            // every thin item to get that click, a high rate would be the thin items' pattern
            // in the training part, and the volume band's prior would rightly learn it.
            let lucky = index % 6 == 0;
            let item = if lucky { format!("lucky{index}") } else { format!("thin{index}") };
            events.extend(impressions.of(&item, 0.02, 3, TRAINING_DAYS, random));
            if lucky {
                events.push(event_in(
                    &impressions.next_request(),
                    "lucky-user",
                    &item,
                    "click",
                    NOW - 10 * DAY_SECONDS,
                ));
            }
            events.extend(impressions.of(&item, 0.02, 8, HOLDOUT_DAYS, random));
        }
        events
    }

    fn trained_on(events: &[trainyard_data::records::BehaviorEvent], context: &TrainingContext) -> TrainedModel {
        let fixture = Fixture::new();
        let half = events.len() / 2;
        fixture.append_behavior(&events[..half]);
        fixture.compact();
        fixture.append_behavior(&events[half..]);
        let snapshot = fixture.snapshot();
        train(&input(&snapshot, "pop", &[]), context).unwrap()
    }

    fn mean_score(scores: &BTreeMap<String, f64>, prefix: &str) -> f64 {
        let picked: Vec<f64> =
            scores.iter().filter(|(item, _)| item.starts_with(prefix)).map(|(_, score)| *score).collect();
        picked.iter().sum::<f64>() / picked.len() as f64
    }

    #[test]
    fn the_smoothed_rate_beats_raw_counts_on_held_out_impressions() {
        let context = context();
        let model = trained_on(&skewed_events(&mut Random::new(7)), &context);
        let auc = model.metrics["auc"].as_f64().unwrap();
        let baseline = model.metrics["baseline_auc"].as_f64().unwrap();
        // Measured: 0.76 against 0.35 (raw counts rank the popular low-rate items first).
        assert!(auc > 0.65, "{}", model.metrics);
        assert!(auc > baseline + 0.2, "{}", model.metrics);
        assert!(model.metrics["holdout_impressions"].as_u64().unwrap() > 2000, "{}", model.metrics);
        assert_eq!(model.metrics["holdout_sample_rate"], 1.0);
        assert!(model.warnings.is_empty(), "{:?}", model.warnings);
        assert_eq!(context.progress(), 95);
        // The served model is the whole window's: rare items above popular ones, lucky ones
        // below the rare ones.
        let scores = scores_of(&model);
        assert!(mean_score(&scores, "rare") > mean_score(&scores, "popular"), "{scores:?}");
        assert!(mean_score(&scores, "popular") > 0.0, "{scores:?}");
        assert!(mean_score(&scores, "lucky") < mean_score(&scores, "rare"), "{scores:?}");
    }

    /// Items whose click-through rises with their volume (in many catalogues the much-shown
    /// items are the good ones), each with a rate of its own around that trend: 2 to 256
    /// training exposures, a quarter as many in the holdout.
    fn correlated_events(random: &mut Random) -> Vec<trainyard_data::records::BehaviorEvent> {
        let mut events = Vec::new();
        let mut impressions = Impressions { requests: 0 };
        for index in 0..300 {
            let volume = (2.0 * 128f64.powf(random.unit())).round() as usize;
            let rate = (0.05 + 0.05 * (volume as f64).log2() + 0.3 * (random.unit() - 0.5)).clamp(0.01, 0.95);
            let item = format!("item{index}");
            events.extend(impressions.of(&item, rate, volume, TRAINING_DAYS, random));
            events.extend(impressions.of(&item, rate, (volume / 4).max(2), HOLDOUT_DAYS, random));
        }
        events
    }

    #[test]
    fn a_volume_aware_prior_beats_raw_counts_when_volume_and_rate_go_together() {
        let model = trained_on(&correlated_events(&mut Random::new(11)), &context());
        let auc = model.metrics["auc"].as_f64().unwrap();
        let baseline = model.metrics["baseline_auc"].as_f64().unwrap();
        // Measured: 0.615 against 0.603; one global prior mean (every band merged) got 0.599.
        assert!(auc > baseline, "{}", model.metrics);
        // The bands' prior means follow the volume (not strictly from band to band: sampling).
        let bands = model.metrics["evaluation_model"]["prior"]["bands"].as_array().unwrap().clone();
        assert!(bands.len() >= 5, "{}", model.metrics);
        let means: Vec<f64> = bands.iter().map(|band| band["mean"].as_f64().unwrap()).collect();
        assert!(means[means.len() - 1] > means[0] + 0.1, "{means:?}");
    }
}
