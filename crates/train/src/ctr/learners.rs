//! The learners: FTRL-Proximal logistic regression and a factorization machine, hand-written,
//! `f32`, over the hashed slots of [`super::features`].
//!
//! - **Linear part (both models)**: FTRL-Proximal per coordinate (McMahan et al., "Ad Click
//!   Prediction: a View from the Trenches", KDD 2013): state `z, n` per slot, weight
//!   `w = 0` when `|z| ≤ λ1`, else `-(z - sgn(z) λ1) / ((β + √n) / α + λ2)`; after an example
//!   with gradient `g = (p - y) x`: `σ = (√(n + g²) - √n) / α`, `z += g - σ w`, `n += g²`.
//!   α = `learning_rate`, β = 1, λ1 = `l1`, λ2 = `l2`. The bias is one more such coordinate.
//!   FTRL gives exact zeros, so the artifact keeps only the slots that matter.
//! - **Factors (fm)**: `k` = `factors` per slot, the second-order term
//!   `½ Σ_f ((Σ_i v_if x_i)² − Σ_i v_if² x_i²)` (Rendle's O(kn) form), learned with AdaGrad
//!   (rate `factor_learning_rate`, accumulators starting at 1 as in libffm, so the first steps are not
//!   huge) and an L2 penalty `factor_l2 · v` in each gradient: the factors have a rate and a
//!   penalty of their own (`factor_learning_rate`, `factor_l2`), as pairs of rare features
//!   overfit far sooner than single weights. A slot's factors are **initialized when
//!   an example first trains on it**, uniform in ±`INIT_SCALE`/√k from a hash of (seed, slot,
//!   factor): no random number generator state, the same values whichever thread gets there
//!   first, and a slot that no training example had stays zero — exactly what the artifact
//!   (which keeps only initialized slots) serves. Scoring a feature never seen in training
//!   therefore gives the same answer in evaluation and in serving.
//! - **Threads (Hogwild, Recht et al. 2011)**: `threads` workers take blocks of
//!   [`BLOCK_EXAMPLES`] examples in file (time) order from a shared counter and update the
//!   shared tables without locks. The tables are `AtomicU32` cells holding `f32` bits, read and
//!   written with relaxed ordering: plain loads and stores on x86-64 and AArch64, so the
//!   lost updates Hogwild tolerates cost nothing, and no data race exists in Rust's sense. With
//!   one thread the blocks go in order and a run is a pure function of its data and seed.
//! - **Memory**: `2^hash_bits × (2 + 2k)` cells of 4 bytes (FTRL-LR 32 MiB, FM k=8 288 MiB at
//!   22 bits), allocated zeroed, so pages no slot touches are never resident; factor rows are
//!   64-byte aligned (one cache line for k = 8).
//!
//! [`forward`] computes the logit from any [`WeightSource`]: the learners' tables while
//! training and evaluating, the artifact's sparse weights when serving; the same generic code
//! sums in the same order, so the two agree to the bit.

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::ops::Range;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use super::examples::{Example, ExampleFile};
use super::features::{Feature, mix64};
use crate::{TrainError, TrainingContext};

/// The most memory the weight tables may take (address space: untouched pages cost nothing,
/// but the hashed slots of a large app touch most of them).
const MAX_TABLE_BYTES: usize = 32 << 30;
/// Examples a worker takes at a time: cancellation is checked between blocks (a few ms each).
pub(crate) const BLOCK_EXAMPLES: usize = 4096;
/// How often a pass reports progress and looks at the cancellation flag.
const PROGRESS_PERIOD: Duration = Duration::from_millis(20);
/// Half-width of the factors' initial uniform distribution, times 1/√k.
const INIT_SCALE: f32 = 0.1;
/// The logit is clamped to ±this before the sigmoid (no overflow, gradients stay finite).
const LOGIT_LIMIT: f32 = 35.0;

const _: () = assert!(std::mem::size_of::<AtomicU32>() == std::mem::size_of::<u32>());

/// A zero-initialized table of `f32` cells shared between threads, aligned to 64 bytes.
pub(crate) struct SharedTable {
    cells: NonNull<AtomicU32>,
    len: usize,
    layout: Layout,
}

// SAFETY: the cells are atomics, which may be shared and sent between threads; the table owns
// its allocation.
unsafe impl Send for SharedTable {}
unsafe impl Sync for SharedTable {}

impl SharedTable {
    /// A table of `len` zero cells, or `None` when the memory cannot be had (the caller fails
    /// the task with a message instead of the process aborting).
    pub fn zeroed(len: usize) -> Option<SharedTable> {
        let bytes = len.max(1).checked_mul(4)?;
        let layout = Layout::from_size_align(bytes, 64).ok()?;
        // SAFETY: the layout has a non-zero size. An all-zero AtomicU32 is a valid value (0),
        // so zeroed memory is an initialized [AtomicU32; len]. Zeroed allocations of this size
        // come from fresh mappings, so untouched pages cost no memory.
        let pointer = unsafe { alloc_zeroed(layout) } as *mut AtomicU32;
        let cells = NonNull::new(pointer)?;
        Some(SharedTable { cells, len, layout })
    }

    #[inline]
    fn cells(&self) -> &[AtomicU32] {
        // SAFETY: `cells` points to `len` initialized atomics owned by `self`.
        unsafe { std::slice::from_raw_parts(self.cells.as_ptr(), self.len) }
    }

    #[inline]
    pub fn get(&self, index: usize) -> f32 {
        f32::from_bits(self.cells()[index].load(Ordering::Relaxed))
    }

    #[inline]
    pub fn set(&self, index: usize, value: f32) {
        self.cells()[index].store(value.to_bits(), Ordering::Relaxed);
    }
}

impl Drop for SharedTable {
    fn drop(&mut self) {
        // SAFETY: allocated in `zeroed` with this layout, freed once.
        unsafe { dealloc(self.cells.as_ptr() as *mut u8, self.layout) }
    }
}

/// Which model, and its hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hyper {
    /// 0 for FTRL-LR, `k` for a factorization machine.
    pub factors: usize,
    pub alpha: f32,
    pub beta: f32,
    pub l1: f32,
    pub l2: f32,
    /// AdaGrad rate and L2 penalty of the factors (fm).
    pub factor_rate: f32,
    pub factor_l2: f32,
    pub seed: u64,
}

/// `w` of an FTRL-Proximal coordinate.
#[inline]
pub fn ftrl_weight(z: f32, n: f32, hyper: &Hyper) -> f32 {
    if z.abs() <= hyper.l1 {
        0.0
    } else {
        -(z - z.signum() * hyper.l1) / ((hyper.beta + n.sqrt()) / hyper.alpha + hyper.l2)
    }
}

/// Where [`forward`] reads weights.
pub trait WeightSource {
    fn factor_count(&self) -> usize;
    fn bias(&self) -> f32;
    fn linear(&self, slot: u32) -> f32;
    /// The factors of `slot` into `out` (`factor_count` values; zeros for a slot without).
    fn factors(&self, slot: u32, out: &mut [f32]);
}

/// Buffers of one forward pass (reused between examples).
#[derive(Debug, Default)]
pub struct Scratch {
    /// Each feature's linear weight.
    pub linear: Vec<f32>,
    /// Each feature's factors, `k` per feature.
    pub factors: Vec<f32>,
    /// `Σ_i v_if x_i` per factor.
    pub sums: Vec<f32>,
}

/// The logit of an example's features.
pub fn forward<S: WeightSource + ?Sized>(source: &S, features: &[Feature], scratch: &mut Scratch) -> f32 {
    let k = source.factor_count();
    scratch.linear.clear();
    let mut logit = source.bias();
    for feature in features {
        let weight = source.linear(feature.slot);
        scratch.linear.push(weight);
        logit += weight * feature.value;
    }
    if k > 0 {
        scratch.factors.clear();
        scratch.factors.resize(features.len() * k, 0.0);
        scratch.sums.clear();
        scratch.sums.resize(k, 0.0);
        let mut squares = 0.0f32;
        for (index, feature) in features.iter().enumerate() {
            let factors = &mut scratch.factors[index * k..(index + 1) * k];
            source.factors(feature.slot, factors);
            for (sum, factor) in scratch.sums.iter_mut().zip(factors.iter()) {
                let term = factor * feature.value;
                *sum += term;
                squares += term * term;
            }
        }
        let mut pairs = 0.0f32;
        for sum in &scratch.sums {
            pairs += sum * sum;
        }
        logit += 0.5 * (pairs - squares);
    }
    logit
}

/// The probability of a logit.
#[inline]
pub fn sigmoid(logit: f32) -> f32 {
    1.0 / (1.0 + (-logit.clamp(-LOGIT_LIMIT, LOGIT_LIMIT)).exp())
}

/// A model being trained: FTRL state per slot, and factors with their AdaGrad accumulators.
pub(crate) struct Learner {
    hyper: Hyper,
    slots: usize,
    /// `[z, n]` per slot.
    linear: SharedTable,
    /// `[z, n]` of the bias.
    bias: SharedTable,
    /// `[v_1..v_k, G_1..G_k]` per slot (fm only); `G_1 = 0` marks a slot not yet initialized.
    factors: Option<SharedTable>,
    /// Factor row length, `2k` rounded up to a multiple of 16 cells (64 bytes).
    stride: usize,
}

impl Learner {
    pub fn new(hash_bits: u32, hyper: Hyper) -> Result<Learner, TrainError> {
        let slots = 1usize << hash_bits;
        let stride = (2 * hyper.factors).div_ceil(16) * 16;
        let cells = slots.saturating_mul(2 + stride);
        let bytes = cells.saturating_mul(4);
        if bytes > MAX_TABLE_BYTES {
            return Err(TrainError::Internal(format!(
                "hash_bits={hash_bits} with factors={} needs {} GiB of weight tables, more than the {} GiB allowed: \
                 lower hash_bits or factors",
                hyper.factors,
                bytes >> 30,
                MAX_TABLE_BYTES >> 30
            )));
        }
        let refused = || {
            TrainError::Internal(format!(
                "the weight tables of hash_bits={hash_bits} with factors={} ({} MiB) could not be allocated: lower \
                 hash_bits or factors",
                hyper.factors,
                bytes >> 20
            ))
        };
        let factors = match hyper.factors {
            0 => None,
            _ => Some(SharedTable::zeroed(stride * slots).ok_or_else(refused)?),
        };
        Ok(Learner {
            hyper,
            slots,
            linear: SharedTable::zeroed(2 * slots).ok_or_else(refused)?,
            bias: SharedTable::zeroed(2).ok_or_else(refused)?,
            factors,
            stride,
        })
    }

    /// The initial value of factor `factor` of `slot`: uniform in ±INIT_SCALE/√k.
    fn initial_factor(&self, slot: u32, factor: usize) -> f32 {
        let hash = mix64(self.hyper.seed ^ mix64((u64::from(slot) << 8) | factor as u64));
        let unit = (hash >> 40) as f32 / (1u64 << 24) as f32;
        (2.0 * unit - 1.0) * INIT_SCALE / (self.hyper.factors as f32).sqrt()
    }

    fn ensure_initialized(&self, table: &SharedTable, slot: u32) {
        let row = slot as usize * self.stride;
        let k = self.hyper.factors;
        if table.get(row + k) != 0.0 {
            return;
        }
        for factor in 0..k {
            table.set(row + factor, self.initial_factor(slot, factor));
        }
        // The accumulators last: a slot reads as initialized only once its factors are.
        for factor in 0..k {
            table.set(row + k + factor, 1.0);
        }
    }

    /// One FTRL step of the coordinate `[z, n]` at `index` of `table`, whose weight was `weight`.
    #[inline]
    fn ftrl_step(&self, table: &SharedTable, index: usize, weight: f32, gradient: f32) {
        let z = table.get(index);
        let n = table.get(index + 1);
        let squared = gradient * gradient;
        let sigma = ((n + squared).sqrt() - n.sqrt()) / self.hyper.alpha;
        table.set(index, z + gradient - sigma * weight);
        table.set(index + 1, n + squared);
    }

    /// Trains on one example; returns the probability predicted before the update.
    pub fn learn(&self, features: &[Feature], label: bool, scratch: &mut Scratch) -> f32 {
        if let Some(table) = &self.factors {
            for feature in features {
                self.ensure_initialized(table, feature.slot);
            }
        }
        let logit = forward(self, features, scratch);
        let probability = sigmoid(logit);
        let error = probability - if label { 1.0 } else { 0.0 };
        let bias_weight = ftrl_weight(self.bias.get(0), self.bias.get(1), &self.hyper);
        self.ftrl_step(&self.bias, 0, bias_weight, error);
        for (feature, weight) in features.iter().zip(&scratch.linear) {
            self.ftrl_step(&self.linear, 2 * feature.slot as usize, *weight, error * feature.value);
        }
        if let Some(table) = &self.factors {
            let k = self.hyper.factors;
            let rate = self.hyper.factor_rate;
            let l2 = self.hyper.factor_l2;
            for (index, feature) in features.iter().enumerate() {
                let row = feature.slot as usize * self.stride;
                let factors = &scratch.factors[index * k..(index + 1) * k];
                let x = feature.value;
                for (factor, (&value, &sum)) in factors.iter().zip(&scratch.sums).enumerate() {
                    let gradient = error * x * (sum - value * x) + l2 * value;
                    let accumulated = table.get(row + k + factor) + gradient * gradient;
                    table.set(row + k + factor, accumulated);
                    // Read the current value (another example may have moved it since the
                    // forward pass) and apply this example's step to it.
                    let current = table.get(row + factor);
                    table.set(row + factor, current - rate * gradient / accumulated.sqrt());
                }
            }
        }
        probability
    }

    /// The probability of an example, without training.
    pub fn predict(&self, features: &[Feature], scratch: &mut Scratch) -> f32 {
        sigmoid(forward(self, features, scratch))
    }

    /// The weights to serve: every slot with a non-zero linear weight or initialized factors.
    pub fn export(&self) -> ExportedWeights {
        let k = self.hyper.factors;
        let mut slots = Vec::new();
        let mut rows = Vec::new();
        let mut factors = vec![0.0f32; k];
        for slot in 0..self.slots as u32 {
            let weight = self.linear(slot);
            let has_factors =
                self.factors.as_ref().is_some_and(|table| table.get(slot as usize * self.stride + k) != 0.0);
            if weight == 0.0 && !has_factors {
                continue;
            }
            slots.push(slot);
            rows.push(weight);
            self.factors(slot, &mut factors);
            rows.extend_from_slice(&factors);
        }
        ExportedWeights { factors: k, bias: self.bias(), slots, rows }
    }
}

impl WeightSource for Learner {
    fn factor_count(&self) -> usize {
        self.hyper.factors
    }

    fn bias(&self) -> f32 {
        ftrl_weight(self.bias.get(0), self.bias.get(1), &self.hyper)
    }

    #[inline]
    fn linear(&self, slot: u32) -> f32 {
        let index = 2 * slot as usize;
        ftrl_weight(self.linear.get(index), self.linear.get(index + 1), &self.hyper)
    }

    #[inline]
    fn factors(&self, slot: u32, out: &mut [f32]) {
        let Some(table) = &self.factors else {
            return;
        };
        let k = self.hyper.factors;
        let row = slot as usize * self.stride;
        if table.get(row + k) == 0.0 {
            out.fill(0.0);
            return;
        }
        for (factor, value) in out.iter_mut().enumerate() {
            *value = table.get(row + factor);
        }
    }
}

/// A trained model's weights: the slots that matter, increasing, each with its row
/// `[w, v_1..v_k]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportedWeights {
    pub factors: usize,
    pub bias: f32,
    pub slots: Vec<u32>,
    pub rows: Vec<f32>,
}

/// What a pass does with each example.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PassMode {
    Learn,
    /// Score without training; the scores come back in file order.
    Predict,
}

/// The scores of a `Predict` pass, per block index.
type ScoredBlocks = Vec<(u64, Vec<(f32, bool)>)>;

/// Runs `learner` over `examples[range]` with `threads` workers (see the module documentation).
/// `features_of` makes an example's features. `on_progress` is called from this thread every
/// 50 ms or so with the examples processed so far in this pass; cancellation is checked
/// between blocks. Returns, for `Predict`, each example's probability and label in file order.
#[allow(clippy::too_many_arguments, reason = "one pass's inputs, each used once; a struct would only rename them")]
pub(crate) fn run_pass<F>(
    learner: &Learner,
    examples: &ExampleFile,
    range: Range<u64>,
    mode: PassMode,
    threads: usize,
    features_of: &F,
    context: &TrainingContext,
    on_progress: &mut dyn FnMut(u64),
) -> Result<Vec<(f32, bool)>, TrainError>
where
    F: Fn(&Example, &mut Vec<Feature>) + Sync,
{
    let total = range.end.saturating_sub(range.start);
    if total == 0 {
        return Ok(Vec::new());
    }
    let blocks = total.div_ceil(BLOCK_EXAMPLES as u64);
    let next_block = AtomicU64::new(0);
    let processed = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let worker = || -> Result<ScoredBlocks, TrainError> {
        let mut reader = examples.reader()?;
        let mut block = Vec::with_capacity(BLOCK_EXAMPLES);
        let mut features = Vec::with_capacity(64);
        let mut scratch = Scratch::default();
        let mut scored = Vec::new();
        loop {
            if stop.load(Ordering::Relaxed) || context.is_cancelled() {
                return Err(TrainError::Cancelled);
            }
            let index = next_block.fetch_add(1, Ordering::Relaxed);
            if index >= blocks {
                return Ok(scored);
            }
            let first = range.start + index * BLOCK_EXAMPLES as u64;
            let count = (range.end - first).min(BLOCK_EXAMPLES as u64) as usize;
            reader.read(first, count, &mut block)?;
            let mut scores = if mode == PassMode::Predict { Vec::with_capacity(count) } else { Vec::new() };
            for example in &block {
                features_of(example, &mut features);
                match mode {
                    PassMode::Learn => {
                        learner.learn(&features, example.label, &mut scratch);
                    }
                    PassMode::Predict => scores.push((learner.predict(&features, &mut scratch), example.label)),
                }
            }
            if mode == PassMode::Predict {
                scored.push((index, scores));
            }
            processed.fetch_add(count as u64, Ordering::Relaxed);
        }
    };
    let outcomes: Vec<Result<ScoredBlocks, TrainError>> = std::thread::scope(|scope| {
        // Each worker says when it is done, so the pass ends the moment the last one does (a
        // sleep-and-poll loop cost up to a polling period per pass: 5 epochs of MovieLens are
        // ~30 ms of learning each).
        let (done_sender, done_receiver) = std::sync::mpsc::channel::<()>();
        let worker = &worker;
        let handles: Vec<_> = (0..threads.max(1))
            .map(|_| {
                let sender = done_sender.clone();
                scope.spawn(move || {
                    let outcome = worker();
                    // The receiver outlives the workers; a failed send cannot happen.
                    let _ = sender.send(());
                    outcome
                })
            })
            .collect();
        drop(done_sender);
        let mut finished = 0;
        while finished < handles.len() {
            match done_receiver.recv_timeout(PROGRESS_PERIOD) {
                Ok(()) => finished += 1,
                Err(RecvTimeoutError::Timeout) => {}
                // Every sender is gone: the remaining workers panicked (the join reports it).
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if context.is_cancelled() {
                stop.store(true, Ordering::Relaxed);
            }
            on_progress(processed.load(Ordering::Relaxed));
        }
        handles
            .into_iter()
            .map(|handle| {
                handle.join().unwrap_or_else(|_| Err(TrainError::Internal("a training thread panicked".into())))
            })
            .collect()
    });
    on_progress(processed.load(Ordering::Relaxed));
    let mut blocks_scored = Vec::new();
    for outcome in outcomes {
        blocks_scored.extend(outcome?);
    }
    context.check_cancelled()?;
    blocks_scored.sort_unstable_by_key(|(index, _)| *index);
    Ok(blocks_scored.into_iter().flat_map(|(_, scores)| scores).collect())
}
