//! The ctr artifact: a versioned, checksummed binary file, and [`CtrModel`], which loads it
//! (validating every byte) and scores items with the same feature code as training.
//!
//! # Format `trainyard.ctr.v2` (recommended extension `.tyctr`)
//! Little-endian throughout; `str` is a `u32` byte length and that many bytes of UTF-8;
//! `feature` is a `u32` slot and an `f32` value.
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `TYCTRMDL` |
//! | 4 | format version `u32` = 2 ([`FORMAT_VERSION`]; version 1, without the user scales, is refused: retrain) |
//! | 4 | feature version `u32` ([`super::features::FEATURE_VERSION`]): the model is scored only with the features it was trained on |
//! | 1 | model kind: 0 = `ftrl_lr`, 1 = `fm` |
//! | 1 | hash bits `b` (1..=31): slots are `0..2^b` |
//! | 1 | flags: bit 0 = user id × category crosses, bit 1 = user field × category crosses, bit 2 = user prior features (`user_history`), bit 3 = user field × item id crosses |
//! | 1 | reserved, 0 |
//! | 4 | factors `k` `u32` (0 for `ftrl_lr`, 1..=1024 for `fm`) |
//! | 4 + 4 | the user scales ([`UserScales`]): the user id feature's value, the user id × category crosses' factor, `f32` each (finite, in (0, 1000]) |
//! | 8 | generated at, Unix seconds `i64` |
//! | 4 | bias `f32` |
//! | 8 + 8 + 4 | the items' smoothing prior: strength `f64` (> 0), center `f64` (in (0, 1)), band count `u32` (≥ 1) |
//! | 16 × bands | each band: least exposures `u64` (increasing), mean `f64` (in (0, 1)) |
//! | 20 + 16 × bands | the users' smoothing prior, the same way |
//! | 8 | weight rows `u64` |
//! | rows × (4 + 4 + 4k) | each: slot `u32` (strictly increasing, < 2^b), linear weight `f32`, `k` factors `f32` |
//! | 8 | items `u64` |
//! | per item | id `str`; prior counts: clicks `u32`, exposures `u32` (clicks ≤ exposures); features `u32` count and `feature`s; cross keys `u32` count and `u64`s |
//! | 8 | users `u64` |
//! | per user | id `str`; prior counts: clicks `u32`, exposures `u32`; user-field features `u32` count and `feature`s (the id feature is not stored: it is the hash of the id); cross keys `u32` count and `u64`s |
//! | 32 | SHA-256 of every byte before it |
//!
//! Items and users are sorted by id, so a run writes the same bytes for the same model. Every
//! number is checked finite, every slot below `2^b`, every count against the bytes left (a
//! damaged length cannot make the loader allocate more than the file), ids unique and UTF-8,
//! and nothing may follow the checksum.

use std::fmt::Write as _;

use serde_json::json;
use sha2::{Digest, Sha256};

use super::features::{
    Context, ContextFeatures, FEATURE_VERSION, Feature, FeatureConfig, FeatureSpace, History, ItemFeatures,
    ItemFieldNames, PriorCounts, SmoothingPrior, UserFeatures, UserScales, example_features, item_id_hash,
};
use super::learners::{ExportedWeights, Scratch, WeightSource, forward, sigmoid};
use crate::common::FastMap;

/// The artifact's format tag (as reported in metrics and by [`CtrModel::describe`]).
pub const FORMAT: &str = "trainyard.ctr.v2";
/// The first bytes of every ctr artifact.
pub const MAGIC: &[u8; 8] = b"TYCTRMDL";
/// The version of the byte layout.
pub const FORMAT_VERSION: u32 = 2;
/// Bytes of the checksum at the end.
const CHECKSUM_BYTES: usize = 32;
/// The most factors a loaded model may have (the catalog allows 128).
const MAX_FACTORS: usize = 1024;
/// The largest weight (bias, linear weight or factor) an artifact may hold. Trained weights stay
/// many orders of magnitude below (FTRL's are at most about `learning_rate × √examples`); a
/// finite but huge value would make a score infinite or NaN, so the loader refuses it and the
/// trainer fails a run that diverged that far instead of storing a model it could not serve.
pub const MAX_WEIGHT: f32 = 1.0e6;
/// The largest user scale a loaded model may have.
const MAX_USER_SCALE: f32 = 1000.0;

/// Why an artifact was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArtifactError {
    /// The bytes are not a whole, intact ctr artifact.
    #[error("the ctr model file is damaged: {0}")]
    Damaged(String),
    /// An intact artifact of a version this build cannot score.
    #[error("the ctr model file is not supported by this version: {0}")]
    Unsupported(String),
}

fn damaged(message: impl Into<String>) -> ArtifactError {
    ArtifactError::Damaged(message.into())
}

/// Which learner made the weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    FtrlLr,
    Fm,
}

impl ModelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::FtrlLr => "ftrl_lr",
            ModelKind::Fm => "fm",
        }
    }

    fn code(self) -> u8 {
        match self {
            ModelKind::FtrlLr => 0,
            ModelKind::Fm => 1,
        }
    }
}

/// An item as the model knows it: its features and its click-through counts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct KnownItem {
    pub features: ItemFeatures,
    pub counts: PriorCounts,
}

/// A user with a USER record or examples: the features of its fields (the id feature is made
/// from the id) and its click-through counts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct KnownUser {
    pub features: Vec<Feature>,
    pub field_keys: Vec<u64>,
    pub counts: PriorCounts,
}

/// A loaded (or freshly trained) ctr model: what serving calls.
#[derive(Debug, Clone, PartialEq)]
pub struct CtrModel {
    kind: ModelKind,
    config: FeatureConfig,
    generated_at: i64,
    bias: f32,
    factors: usize,
    /// Slot → row index into `rows`.
    weight_index: FastMap<u32, u32>,
    /// `[w, v_1..v_k]` per row.
    rows: Vec<f32>,
    items: FastMap<String, KnownItem>,
    users: FastMap<String, KnownUser>,
}

impl CtrModel {
    /// A model from trained weights and tables.
    pub(crate) fn new(
        kind: ModelKind,
        config: FeatureConfig,
        generated_at: i64,
        weights: ExportedWeights,
        items: FastMap<String, KnownItem>,
        users: FastMap<String, KnownUser>,
    ) -> CtrModel {
        let weight_index = weights.slots.iter().enumerate().map(|(row, slot)| (*slot, row as u32)).collect();
        CtrModel {
            kind,
            config,
            generated_at,
            bias: weights.bias,
            factors: weights.factors,
            weight_index,
            rows: weights.rows,
            items,
            users,
        }
    }

    pub fn kind(&self) -> ModelKind {
        self.kind
    }

    /// Items the model knows (with features and counts); others score by their id alone.
    pub fn items_known(&self) -> usize {
        self.items.len()
    }

    /// Users the model knows (USER record or examples).
    pub fn users_known(&self) -> usize {
        self.users.len()
    }

    /// The features and counts the model holds for an item (tests).
    #[cfg(test)]
    pub(crate) fn known_item(&self, item_id: &str) -> Option<&KnownItem> {
        self.items.get(item_id)
    }

    /// What the model is, for model info pages and logs.
    pub fn describe(&self) -> serde_json::Value {
        json!({
            "format": FORMAT,
            "feature_version": FEATURE_VERSION,
            "model": self.kind.as_str(),
            "hash_bits": self.config.space.bits(),
            "factors": self.factors,
            "weights": self.weight_index.len(),
            "items": self.items.len(),
            "users": self.users.len(),
            "generated_at": self.generated_at,
            "user_scales": {"id": self.config.user_scales.id,
                            "id_cross_category": self.config.user_scales.id_cross_category},
            "prior": {"strength": self.config.prior.strength, "center": self.config.prior.center,
                      "bands": self.config.prior.bands.len()},
        })
    }

    /// The features of a user: its id, plus the stored field features of a known one; and
    /// its counts (none for an unknown user).
    pub(crate) fn user_features(&self, user_id: &str) -> (UserFeatures, PriorCounts) {
        let space = &self.config.space;
        let mut user = UserFeatures::anonymous(space, user_id);
        let Some(known) = self.users.get(user_id) else {
            return (user, PriorCounts::default());
        };
        user.features.extend_from_slice(&known.features);
        user.field_keys.extend_from_slice(&known.field_keys);
        (user, known.counts)
    }

    /// The click probability of each item for `user_id` in `context`, in the order given. An
    /// unknown item has only its id feature and no click history; an unknown user only its id.
    pub fn score(&self, user_id: &str, context: &Context, item_ids: &[&str]) -> Vec<f32> {
        let (user, user_counts) = self.user_features(user_id);
        let context_features = ContextFeatures::of(&self.config.space, context);
        let mut features = Vec::with_capacity(64);
        let mut scratch = Scratch::default();
        let mut unknown = ItemFeatures::default();
        item_ids
            .iter()
            .map(|item_id| {
                let (item, counts) = match self.items.get(*item_id) {
                    Some(known) => (&known.features, known.counts),
                    None => {
                        unknown = self.unknown_item(item_id);
                        (&unknown, PriorCounts::default())
                    }
                };
                let history = History { item: counts, user: user_counts };
                example_features(&self.config, &user, item, &context_features, history, &mut features);
                sigmoid(forward(self, &features, &mut scratch))
            })
            .collect()
    }

    /// The probability of one item with the given click histories of the item and the user in
    /// place of the stored ones (what the evaluation scored: the counts an example had at its
    /// time).
    pub fn score_with_history(&self, user_id: &str, context: &Context, item_id: &str, history: History) -> f32 {
        let (user, _) = self.user_features(user_id);
        let context_features = ContextFeatures::of(&self.config.space, context);
        let item = match self.items.get(item_id) {
            Some(known) => known.features.clone(),
            None => self.unknown_item(item_id),
        };
        let mut features = Vec::with_capacity(64);
        example_features(&self.config, &user, &item, &context_features, history, &mut features);
        sigmoid(forward(self, &features, &mut Scratch::default()))
    }

    /// An item without a document: its id feature alone (as training makes it).
    fn unknown_item(&self, item_id: &str) -> ItemFeatures {
        ItemFeatures::build(&self.config.space, &ItemFieldNames::default(), item_id, None)
    }

    /// The artifact's bytes (see the module documentation).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.rows.len() * 4 + self.items.len() * 64);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&FEATURE_VERSION.to_le_bytes());
        out.push(self.kind.code());
        out.push(self.config.space.bits() as u8);
        out.push(
            u8::from(self.config.cross_user)
                | (u8::from(self.config.cross_user_fields) << 1)
                | (u8::from(self.config.user_history) << 2)
                | (u8::from(self.config.cross_user_fields_item) << 3),
        );
        out.push(0);
        out.extend_from_slice(&(self.factors as u32).to_le_bytes());
        out.extend_from_slice(&self.config.user_scales.id.to_le_bytes());
        out.extend_from_slice(&self.config.user_scales.id_cross_category.to_le_bytes());
        out.extend_from_slice(&self.generated_at.to_le_bytes());
        out.extend_from_slice(&self.bias.to_le_bytes());
        write_prior(&mut out, &self.config.prior);
        write_prior(&mut out, &self.config.user_prior);
        let mut slots: Vec<(u32, u32)> = self.weight_index.iter().map(|(slot, row)| (*slot, *row)).collect();
        slots.sort_unstable();
        let row_length = 1 + self.factors;
        out.extend_from_slice(&(slots.len() as u64).to_le_bytes());
        for (slot, row) in slots {
            out.extend_from_slice(&slot.to_le_bytes());
            let start = row as usize * row_length;
            for value in &self.rows[start..start + row_length] {
                out.extend_from_slice(&value.to_le_bytes());
            }
        }
        let mut item_ids: Vec<&String> = self.items.keys().collect();
        item_ids.sort_unstable();
        out.extend_from_slice(&(item_ids.len() as u64).to_le_bytes());
        for item_id in item_ids {
            let item = &self.items[item_id];
            write_text(&mut out, item_id);
            out.extend_from_slice(&item.counts.clicks.to_le_bytes());
            out.extend_from_slice(&item.counts.exposures.to_le_bytes());
            write_features(&mut out, &item.features.features);
            write_keys(&mut out, &item.features.cross_keys);
        }
        let mut user_ids: Vec<&String> = self.users.keys().collect();
        user_ids.sort_unstable();
        out.extend_from_slice(&(user_ids.len() as u64).to_le_bytes());
        for user_id in user_ids {
            let user = &self.users[user_id];
            write_text(&mut out, user_id);
            out.extend_from_slice(&user.counts.clicks.to_le_bytes());
            out.extend_from_slice(&user.counts.exposures.to_le_bytes());
            write_features(&mut out, &user.features);
            write_keys(&mut out, &user.field_keys);
        }
        let checksum = Sha256::digest(&out);
        out.extend_from_slice(checksum.as_slice());
        out
    }

    /// Reads and validates an artifact (see the module documentation). Never panics: any
    /// damage is an [`ArtifactError`] that says what is wrong.
    pub fn load(bytes: &[u8]) -> Result<CtrModel, ArtifactError> {
        if bytes.get(..MAGIC.len()).is_some_and(|start| start != MAGIC) {
            return Err(damaged("it does not start with the ctr magic bytes TYCTRMDL (not a ctr model)"));
        }
        if bytes.len() < MAGIC.len() + 8 + CHECKSUM_BYTES {
            return Err(damaged(format!("{} bytes is shorter than any ctr model", bytes.len())));
        }
        let (body, stored_checksum) = bytes.split_at(bytes.len() - CHECKSUM_BYTES);
        let mut reader = Reader { bytes: body, at: MAGIC.len() };
        let format_version = reader.u32("the format version")?;
        if format_version != FORMAT_VERSION {
            return Err(ArtifactError::Unsupported(format!(
                "format version {format_version}, this build reads version {FORMAT_VERSION}"
            )));
        }
        if Sha256::digest(body).as_slice() != stored_checksum {
            return Err(damaged("the SHA-256 checksum does not match its contents"));
        }
        let feature_version = reader.u32("the feature version")?;
        if feature_version != FEATURE_VERSION {
            return Err(ArtifactError::Unsupported(format!(
                "feature version {feature_version}, this build computes feature version {FEATURE_VERSION}"
            )));
        }
        let kind = match reader.u8("the model kind")? {
            0 => ModelKind::FtrlLr,
            1 => ModelKind::Fm,
            other => return Err(damaged(format!("unknown model kind {other}"))),
        };
        let bits = u32::from(reader.u8("the hash bits")?);
        if !(1..=31).contains(&bits) {
            return Err(damaged(format!("hash bits {bits} outside 1..=31")));
        }
        let flags = reader.u8("the flags")?;
        if flags & !0b1111 != 0 {
            return Err(damaged(format!("unknown flags {flags:#b}")));
        }
        if reader.u8("the reserved byte")? != 0 {
            return Err(damaged("the reserved byte is not 0"));
        }
        let factors = reader.u32("the factor count")? as usize;
        match kind {
            ModelKind::FtrlLr if factors != 0 => {
                return Err(damaged(format!("an ftrl_lr model with {factors} factors")));
            }
            ModelKind::Fm if factors == 0 || factors > MAX_FACTORS => {
                return Err(damaged(format!("an fm model with {factors} factors (1..={MAX_FACTORS})")));
            }
            _ => {}
        }
        let user_scales = UserScales {
            id: reader.user_scale("the user id scale")?,
            id_cross_category: reader.user_scale("the user cross scale")?,
        };
        let generated_at = reader.i64("the generation time")?;
        let bias = reader.weight("the bias")?;
        let prior = reader.prior("the item prior")?;
        let user_prior = reader.prior("the user prior")?;
        let space = FeatureSpace::new(bits);
        let row_length = 1 + factors;
        let row_count = reader.count64("weight rows", 4 + 4 * row_length)?;
        let mut weight_index = FastMap::default();
        weight_index.reserve(row_count);
        let mut rows = Vec::with_capacity(row_count * row_length);
        let mut previous_slot: Option<u32> = None;
        for row in 0..row_count {
            let slot = reader.u32("a weight slot")?;
            if slot as usize >= space.slots() {
                return Err(damaged(format!("weight slot {slot} is outside the 2^{bits} slots")));
            }
            if previous_slot.is_some_and(|previous| previous >= slot) {
                return Err(damaged("the weight slots are not in increasing order"));
            }
            previous_slot = Some(slot);
            for _ in 0..row_length {
                rows.push(reader.weight("a weight")?);
            }
            weight_index.insert(slot, row as u32);
        }
        let item_count = reader.count64("items", 4 + 8 + 4 + 4)?;
        let mut items = FastMap::default();
        items.reserve(item_count);
        for _ in 0..item_count {
            let item_id = reader.text("an item id")?;
            let clicks = reader.u32("an item's clicks")?;
            let exposures = reader.u32("an item's exposures")?;
            if clicks > exposures {
                return Err(damaged(format!("item {item_id} has {clicks} clicks of {exposures} exposures")));
            }
            let features = reader.features(&space)?;
            let cross_keys = reader.keys()?;
            let known = KnownItem {
                features: ItemFeatures { id_hash: item_id_hash(&item_id), features, cross_keys },
                counts: PriorCounts { clicks, exposures },
            };
            if items.insert(item_id.clone(), known).is_some() {
                return Err(damaged(format!("item {item_id} is listed twice")));
            }
        }
        let user_count = reader.count64("users", 4 + 8 + 4 + 4)?;
        let mut users = FastMap::default();
        users.reserve(user_count);
        for _ in 0..user_count {
            let user_id = reader.text("a user id")?;
            let counts = reader.counts("user", &user_id)?;
            let features = reader.features(&space)?;
            let field_keys = reader.keys()?;
            if users.insert(user_id.clone(), KnownUser { features, field_keys, counts }).is_some() {
                return Err(damaged(format!("user {user_id} is listed twice")));
            }
        }
        if reader.at != body.len() {
            return Err(damaged(format!("{} unexpected bytes before the checksum", body.len() - reader.at)));
        }
        let config = FeatureConfig {
            space,
            prior,
            user_prior,
            cross_user: flags & 1 != 0,
            cross_user_fields: flags & 2 != 0,
            user_history: flags & 4 != 0,
            cross_user_fields_item: flags & 8 != 0,
            user_scales,
        };
        Ok(CtrModel { kind, config, generated_at, bias, factors, weight_index, rows, items, users })
    }
}

impl WeightSource for CtrModel {
    fn factor_count(&self) -> usize {
        self.factors
    }

    fn bias(&self) -> f32 {
        self.bias
    }

    #[inline]
    fn linear(&self, slot: u32) -> f32 {
        match self.weight_index.get(&slot) {
            Some(row) => self.rows[*row as usize * (1 + self.factors)],
            None => 0.0,
        }
    }

    #[inline]
    fn factors(&self, slot: u32, out: &mut [f32]) {
        match self.weight_index.get(&slot) {
            Some(row) => {
                let start = *row as usize * (1 + self.factors) + 1;
                out.copy_from_slice(&self.rows[start..start + self.factors]);
            }
            None => out.fill(0.0),
        }
    }
}

fn write_prior(out: &mut Vec<u8>, prior: &SmoothingPrior) {
    out.extend_from_slice(&prior.strength.to_le_bytes());
    out.extend_from_slice(&prior.center.to_le_bytes());
    out.extend_from_slice(&(prior.bands.len() as u32).to_le_bytes());
    for (least, mean) in &prior.bands {
        out.extend_from_slice(&least.to_le_bytes());
        out.extend_from_slice(&mean.to_le_bytes());
    }
}

fn write_text(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(&(text.len() as u32).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
}

fn write_features(out: &mut Vec<u8>, features: &[Feature]) {
    out.extend_from_slice(&(features.len() as u32).to_le_bytes());
    for feature in features {
        out.extend_from_slice(&feature.slot.to_le_bytes());
        out.extend_from_slice(&feature.value.to_le_bytes());
    }
}

fn write_keys(out: &mut Vec<u8>, keys: &[u64]) {
    out.extend_from_slice(&(keys.len() as u32).to_le_bytes());
    for key in keys {
        out.extend_from_slice(&key.to_le_bytes());
    }
}

/// A cursor over the artifact's body that fails, naming the field, instead of reading past
/// the end.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, length: usize, what: &str) -> Result<&[u8], ArtifactError> {
        let end = self.at.checked_add(length).filter(|end| *end <= self.bytes.len());
        let Some(end) = end else {
            return Err(damaged(format!("it ends in the middle of {what} (at byte {})", self.at)));
        };
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], ArtifactError> {
        let mut array = [0u8; N];
        array.copy_from_slice(self.take(N, what)?);
        Ok(array)
    }

    fn u8(&mut self, what: &str) -> Result<u8, ArtifactError> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u32(&mut self, what: &str) -> Result<u32, ArtifactError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64, ArtifactError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn i64(&mut self, what: &str) -> Result<i64, ArtifactError> {
        Ok(i64::from_le_bytes(self.array(what)?))
    }

    fn f64(&mut self, what: &str) -> Result<f64, ArtifactError> {
        Ok(f64::from_le_bytes(self.array(what)?))
    }

    fn finite_f32(&mut self, what: &str) -> Result<f32, ArtifactError> {
        let value = f32::from_le_bytes(self.array(what)?);
        if !value.is_finite() {
            return Err(damaged(format!("{what} is not a finite number")));
        }
        Ok(value)
    }

    fn weight(&mut self, what: &str) -> Result<f32, ArtifactError> {
        let value = self.finite_f32(what)?;
        if value.abs() > MAX_WEIGHT {
            return Err(damaged(format!("{what} {value:e} is beyond ±{MAX_WEIGHT:e}")));
        }
        Ok(value)
    }

    fn user_scale(&mut self, what: &str) -> Result<f32, ArtifactError> {
        let value = self.finite_f32(what)?;
        if !(value > 0.0 && value <= MAX_USER_SCALE) {
            return Err(damaged(format!("{what} {value} is not within (0, {MAX_USER_SCALE}]")));
        }
        Ok(value)
    }

    fn probability(&mut self, what: &str) -> Result<f64, ArtifactError> {
        let value = self.f64(what)?;
        if !(value > 0.0 && value < 1.0) {
            return Err(damaged(format!("{what} {value} is not within (0, 1)")));
        }
        Ok(value)
    }

    /// A count of entries of at least `least_bytes` each, checked against the bytes left so
    /// that a damaged count cannot make the loader allocate more than the file holds.
    fn checked_count(&self, count: u64, what: &str, least_bytes: usize) -> Result<usize, ArtifactError> {
        let left = (self.bytes.len() - self.at) as u64;
        if count.saturating_mul(least_bytes as u64) > left {
            return Err(damaged(format!("{count} {what} cannot fit in the {left} bytes left")));
        }
        Ok(count as usize)
    }

    fn count32(&mut self, what: &str, least_bytes: usize) -> Result<usize, ArtifactError> {
        let count = self.u32(&format!("the count of {what}"))?;
        self.checked_count(u64::from(count), what, least_bytes)
    }

    fn count64(&mut self, what: &str, least_bytes: usize) -> Result<usize, ArtifactError> {
        let count = self.u64(&format!("the count of {what}"))?;
        self.checked_count(count, what, least_bytes)
    }

    fn text(&mut self, what: &str) -> Result<String, ArtifactError> {
        let length = self.count32(what, 1)?;
        let bytes = self.take(length, what)?;
        std::str::from_utf8(bytes).map(str::to_string).map_err(|_| damaged(format!("{what} is not UTF-8")))
    }

    fn features(&mut self, space: &FeatureSpace) -> Result<Vec<Feature>, ArtifactError> {
        let count = self.count32("features", 8)?;
        let mut features = Vec::with_capacity(count);
        for _ in 0..count {
            let slot = self.u32("a feature slot")?;
            if slot as usize >= space.slots() {
                let mut message = String::new();
                let _ = write!(message, "feature slot {slot} is outside the 2^{} slots", space.bits());
                return Err(damaged(message));
            }
            // Stored features (item fields, user fields) are 1 or 1/√n; the scaled and real-valued
            // ones are made at scoring time.
            let value = self.finite_f32("a feature value")?;
            if !(value > 0.0 && value <= 1.0) {
                return Err(damaged(format!("a feature value {value} is not within (0, 1]")));
            }
            features.push(Feature { slot, value });
        }
        Ok(features)
    }

    /// A smoothing prior (see the module documentation).
    fn prior(&mut self, what: &str) -> Result<SmoothingPrior, ArtifactError> {
        let strength = self.f64(&format!("{what}'s strength"))?;
        if !(strength.is_finite() && strength > 0.0) {
            return Err(damaged(format!("{what}'s strength {strength} is not a positive number")));
        }
        let center = self.probability(&format!("{what}'s center"))?;
        let band_count = self.count32(&format!("{what}'s bands"), 16)?;
        if band_count == 0 {
            return Err(damaged(format!("{what} has no band")));
        }
        let mut bands: Vec<(u64, f64)> = Vec::with_capacity(band_count);
        for _ in 0..band_count {
            let least = self.u64(&format!("{what}'s band least exposures"))?;
            let mean = self.probability(&format!("{what}'s band mean"))?;
            if bands.last().is_some_and(|(previous, _)| *previous >= least) {
                return Err(damaged(format!("{what}'s bands are not in increasing order")));
            }
            bands.push((least, mean));
        }
        Ok(SmoothingPrior { strength, center, bands })
    }

    /// Click and exposure counts of an item or a user.
    fn counts(&mut self, kind: &str, id: &str) -> Result<PriorCounts, ArtifactError> {
        let clicks = self.u32(&format!("the clicks of {kind} {id}"))?;
        let exposures = self.u32(&format!("the exposures of {kind} {id}"))?;
        if clicks > exposures {
            return Err(damaged(format!("{kind} {id} has {clicks} clicks of {exposures} exposures")));
        }
        Ok(PriorCounts { clicks, exposures })
    }

    fn keys(&mut self) -> Result<Vec<u64>, ArtifactError> {
        let count = self.count32("cross keys", 8)?;
        let mut keys = Vec::with_capacity(count);
        for _ in 0..count {
            keys.push(self.u64("a cross key")?);
        }
        Ok(keys)
    }
}

/// What serving and the benchmarks ask about the tables.
impl CtrModel {
    /// Whether the model knows the item (its features and click history).
    pub fn knows_item(&self, item_id: &str) -> bool {
        self.items.contains_key(item_id)
    }

    /// The ids of the items the model knows, in no particular order.
    pub fn known_item_ids(&self) -> impl Iterator<Item = &str> {
        self.items.keys().map(String::as_str)
    }

    /// The ids of the users with USER-record features, in no particular order.
    pub fn known_user_ids(&self) -> impl Iterator<Item = &str> {
        self.users.keys().map(String::as_str)
    }
}
