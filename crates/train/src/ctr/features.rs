//! The features of a (user, item, context) example: one code path for training and serving.
//!
//! A feature is a hashed slot in `[0, 2^hash_bits)` and an `f32` value. Every slot is the hash
//! of a **field tag** and the feature's text (or of two hashes, for crosses), so the same token
//! in a title and in the tags lands in two different slots. The hash is written here (64-bit
//! multiply-rotate over 8-byte words, murmur3's `fmix64` finalizer) rather than taken from a
//! crate, because the slots are part of the artifact: the hash of a text must stay the same in
//! every process, on every platform and in every later version of this file. Changing it, the
//! tags or the tokenizer changes the artifact's meaning: bump [`FEATURE_VERSION`].
//!
//! What makes the features of an example, in this order (the learners sum in this order, so
//! training and serving agree to the bit):
//!
//! | group | features | value |
//! |---|---|---|
//! | user | its id; each `user_fields` value of its USER record (`name=value`, lower-cased; a number also as its leading-digit bucket, e.g. age 23 → `2e1`) | the id [`UserScales::id`]; fields 1 |
//! | item | its id; title tokens; description tokens; tags; category values | 1 for the id; `1/√n` for the n values of a multi-valued field |
//! | context | `biz_id`; hour of day (UTC); weekday (UTC) | 1 |
//! | crosses | user id × each category value; each user field × each category value (numbers by bucket); each user field × the item id | `1/√n` over the crosses of each kind, the first kind times [`UserScales::id_cross_category`] |
//! | item prior | the item's smoothed click-through rate `p` from the examples before: `logit p − logit μ` (μ the prior's center) on one slot; `logit p` in buckets of 0.25; the log2 bucket of the item's exposures so far | real; 1; 1 |
//! | user prior (only with `user_history=true`) | the same three of the user's own click-through rate over the examples before (the user's examples are its exposures), with a prior fitted on the users | real; 1; 1 |
//!
//! The user field × item id cross is what a linear model needs to learn "who likes this item"
//! for a user it has not seen (a time split's held-out users are mostly new): measured on
//! MovieLens (ftrl_lr) it adds +0.003 AUC on a time split and +0.002 on a random one.
//!
//! The user prior is off by default: measured on MovieLens it helps a random split little
//! (+0.002 AUC) and hurts a time split (−0.01 with 10 % held out), where most held-out users
//! are new and their empty history looks like a user's first example in training.
//!
//! "Category values" are the `category_field` values, or the tags when no category field is
//! named (MovieLens' genres), at most [`MAX_CROSS_VALUES`]. Crosses stay inside the hash
//! space like every other feature.
//!
//! Tokens: lower-cased runs of letters and digits; a run of Han, kana or Hangul characters
//! gives each character and each pair of neighbours (Chinese has no spaces). A field keeps at
//! most [`MAX_TOKENS_PER_FIELD`] distinct tokens, the first ones.

use serde_json::Value;

/// The version of the feature definitions (hash, tags, tokenizer, layout) an artifact was made
/// with: a model is only scored with the features it was trained on.
pub const FEATURE_VERSION: u32 = 4;
/// Distinct tokens kept per text field.
pub const MAX_TOKENS_PER_FIELD: usize = 48;
/// Category values (or tags) crossed with the user, at most.
pub const MAX_CROSS_VALUES: usize = 8;
/// Width of a prior bucket on the logit scale.
const PRIOR_BUCKET_WIDTH: f64 = 0.25;
/// The prior's logit is kept within ±this before it becomes a value or a bucket.
const PRIOR_LOGIT_LIMIT: f64 = 8.0;

/// A hashed feature: a slot of the weight tables and its value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Feature {
    pub slot: u32,
    pub value: f32,
}

/// The field tags: the first input of every feature hash. Never renumber one (see
/// [`FEATURE_VERSION`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum FieldTag {
    UserId = 1,
    ItemId = 2,
    Title = 3,
    Description = 4,
    Tag = 5,
    Category = 6,
    UserField = 7,
    BizId = 8,
    Hour = 9,
    Weekday = 10,
    UserCrossCategory = 11,
    UserFieldCrossCategory = 12,
    PriorLogit = 13,
    PriorBucket = 14,
    PriorVolume = 15,
    UserPriorLogit = 16,
    UserPriorBucket = 17,
    UserPriorVolume = 18,
    UserFieldCrossItem = 19,
}

const MULTIPLIER: u64 = 0x9E37_79B9_7F4A_7C15;

/// murmur3's 64-bit finalizer: every input bit flips about half the output bits.
#[inline]
pub fn mix64(mut value: u64) -> u64 {
    value ^= value >> 33;
    value = value.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    value ^= value >> 33;
    value = value.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    value ^ (value >> 33)
}

/// The stable 64-bit hash of `bytes` under a field tag.
pub fn hash_text(tag: FieldTag, bytes: &[u8]) -> u64 {
    let mut state = (tag as u64).wrapping_mul(MULTIPLIER) ^ (bytes.len() as u64).rotate_left(32);
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        state = (state ^ word).wrapping_mul(MULTIPLIER).rotate_left(29);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        state = (state ^ u64::from_le_bytes(word)).wrapping_mul(MULTIPLIER).rotate_left(29);
    }
    mix64(state)
}

/// The stable hash of two hashes under a tag (crosses); the order of the two matters.
#[inline]
pub fn hash_pair(tag: FieldTag, first: u64, second: u64) -> u64 {
    let state = (tag as u64).wrapping_mul(MULTIPLIER) ^ first;
    mix64(mix64(state) ^ second.rotate_left(17))
}

/// The stable hash of a small integer under a tag (hour, weekday, buckets).
#[inline]
pub fn hash_number(tag: FieldTag, number: i64) -> u64 {
    hash_pair(tag, 0x5157_u64, number as u64)
}

/// The hash space: `2^bits` slots. A slot is the top `bits` bits of a feature's hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeatureSpace {
    bits: u32,
}

impl FeatureSpace {
    /// `bits` within 1..=31 (the catalog allows 12..=28).
    pub fn new(bits: u32) -> FeatureSpace {
        assert!((1..=31).contains(&bits), "hash bits {bits} out of range");
        FeatureSpace { bits }
    }

    pub fn bits(&self) -> u32 {
        self.bits
    }

    pub fn slots(&self) -> usize {
        1usize << self.bits
    }

    #[inline]
    pub fn slot(&self, hash: u64) -> u32 {
        (hash >> (64 - self.bits)) as u32
    }

    #[inline]
    fn feature(&self, hash: u64, value: f32) -> Feature {
        Feature { slot: self.slot(hash), value }
    }
}

/// Calls `visit` with each token of `text` (see the module documentation), at most `limit`.
pub fn tokens(text: &str, limit: usize, mut visit: impl FnMut(&str)) {
    let mut emitted = 0usize;
    let mut word = String::new();
    let mut previous_ideograph: Option<char> = None;
    let mut pair = String::new();
    let mut emit = |token: &str, emitted: &mut usize| {
        if *emitted < limit {
            visit(token);
            *emitted += 1;
        }
    };
    for character in text.chars() {
        if is_ideographic(character) {
            if !word.is_empty() {
                emit(&word, &mut emitted);
                word.clear();
            }
            let mut single = [0u8; 4];
            emit(character.encode_utf8(&mut single), &mut emitted);
            if let Some(previous) = previous_ideograph {
                pair.clear();
                pair.push(previous);
                pair.push(character);
                emit(&pair, &mut emitted);
            }
            previous_ideograph = Some(character);
        } else if character.is_alphanumeric() {
            previous_ideograph = None;
            word.extend(character.to_lowercase());
        } else {
            previous_ideograph = None;
            if !word.is_empty() {
                emit(&word, &mut emitted);
                word.clear();
            }
        }
        if emitted >= limit {
            return;
        }
    }
    if !word.is_empty() {
        emit(&word, &mut emitted);
    }
}

fn is_ideographic(character: char) -> bool {
    matches!(character as u32,
        0x3040..=0x30FF      // Hiragana, Katakana
        | 0x3400..=0x4DBF    // CJK Extension A
        | 0x4E00..=0x9FFF    // CJK Unified Ideographs
        | 0xAC00..=0xD7AF    // Hangul syllables
        | 0xF900..=0xFAFF    // CJK Compatibility Ideographs
        | 0x20000..=0x2FA1F) // CJK Extensions B-F, supplement
}

/// A JSON value as the texts it holds: a string, a number's or boolean's JSON text, each
/// element of an array (one level); nothing for null or objects.
fn texts_of(value: &Value, mut visit: impl FnMut(&str)) {
    match value {
        Value::String(text) => visit(text),
        Value::Number(number) => visit(&number.to_string()),
        Value::Bool(flag) => visit(if *flag { "true" } else { "false" }),
        Value::Array(elements) => {
            for element in elements {
                match element {
                    Value::String(text) => visit(text),
                    Value::Number(number) => visit(&number.to_string()),
                    Value::Bool(flag) => visit(if *flag { "true" } else { "false" }),
                    _ => {}
                }
            }
        }
        Value::Null | Value::Object(_) => {}
    }
}

/// Tags of a value: each array element (split at commas inside it), or a text split at commas
/// (or, without a comma, at whitespace); each trimmed, inner spaces collapsed, lower-cased. An
/// array element is one tag even with spaces in it ("Film Noir").
fn tag_values(value: &Value, mut visit: impl FnMut(&str)) {
    let mut emit = |text: &str| {
        let tag = text.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
        if !tag.is_empty() {
            visit(&tag);
        }
    };
    match value {
        Value::Array(_) => texts_of(value, |element| element.split(',').for_each(&mut emit)),
        _ => texts_of(value, |text| {
            if text.contains(',') {
                text.split(',').for_each(&mut emit);
            } else {
                text.split_whitespace().for_each(&mut emit);
            }
        }),
    }
}

/// The leading-digit bucket of a number: 23 → `2e1`, 0.05 → `5e-2`, -300 → `-3e2`, 0 → `0`.
pub fn number_bucket(number: f64) -> String {
    if number == 0.0 || !number.is_finite() {
        return "0".to_string();
    }
    let magnitude = number.abs();
    let exponent = magnitude.log10().floor();
    let lead = (magnitude / 10f64.powf(exponent)).floor().clamp(1.0, 9.0);
    let sign = if number < 0.0 { "-" } else { "" };
    format!("{sign}{lead}e{exponent}")
}

/// A user field value's hashes: the exact value's, and for numbers also the bucket's. The
/// first hash of the list is the one crossed with categories (the bucket for numbers).
fn user_field_hashes(name: &str, value: &Value, mut visit: impl FnMut(u64, bool)) {
    let keyed = |text: &str| {
        let mut bytes = Vec::with_capacity(name.len() + 1 + text.len());
        bytes.extend_from_slice(name.as_bytes());
        bytes.push(0x1F);
        bytes.extend_from_slice(text.as_bytes());
        hash_text(FieldTag::UserField, &bytes)
    };
    let mut one = |element: &Value| match element {
        Value::Number(number) => {
            let exact = keyed(&number.to_string());
            match number.as_f64() {
                Some(float) => {
                    let bucket = keyed(&format!("~{}", number_bucket(float)));
                    visit(bucket, true);
                    visit(exact, false);
                }
                None => visit(exact, true),
            }
        }
        Value::String(text) => {
            let trimmed = text.trim();
            if !trimmed.is_empty() {
                visit(keyed(&trimmed.to_lowercase()), true);
            }
        }
        Value::Bool(flag) => visit(keyed(if *flag { "true" } else { "false" }), true),
        _ => {}
    };
    match value {
        Value::Array(elements) => elements.iter().take(MAX_CROSS_VALUES).for_each(&mut one),
        other => one(other),
    }
}

/// Features with values `1/√n` for the `n` distinct hashes (in first-seen order).
fn normalized(space: &FeatureSpace, hashes: &[u64], out: &mut Vec<Feature>) {
    if hashes.is_empty() {
        return;
    }
    let value = (1.0 / (hashes.len() as f64).sqrt()) as f32;
    out.extend(hashes.iter().map(|hash| space.feature(*hash, value)));
}

/// Appends `hash` unless already there (small lists: a linear scan is fastest).
fn push_distinct(list: &mut Vec<u64>, hash: u64) {
    if !list.contains(&hash) {
        list.push(hash);
    }
}

/// The hash of an item id: its feature's and its crosses'.
pub fn item_id_hash(item_id: &str) -> u64 {
    hash_text(FieldTag::ItemId, item_id.as_bytes())
}

/// Which document fields make an item's features (the instance's create parameters).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemFieldNames {
    pub title: Option<String>,
    pub description: Option<String>,
    pub tags: Option<String>,
    pub category: Option<String>,
}

/// An item's own features, computed once per item (training: per document; serving: stored in
/// the artifact).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ItemFeatures {
    /// The hash of the item id (crossed with the user's fields).
    pub id_hash: u64,
    /// Id, title, description, tags, category features.
    pub features: Vec<Feature>,
    /// Hashes of the values crossed with the user: category values, else tags.
    pub cross_keys: Vec<u64>,
}

impl ItemFeatures {
    /// The features of item `item_id` with the document `fields` (None: no document).
    pub fn build(
        space: &FeatureSpace,
        names: &ItemFieldNames,
        item_id: &str,
        fields: Option<&serde_json::Map<String, Value>>,
    ) -> ItemFeatures {
        let id_hash = item_id_hash(item_id);
        let mut features = vec![space.feature(id_hash, 1.0)];
        let mut cross_keys = Vec::new();
        let Some(fields) = fields else {
            return ItemFeatures { id_hash, features, cross_keys };
        };
        let field = |name: &Option<String>| name.as_deref().and_then(|name| fields.get(name));
        let mut hashes = Vec::new();
        for (name, tag) in [(&names.title, FieldTag::Title), (&names.description, FieldTag::Description)] {
            if let Some(value) = field(name) {
                hashes.clear();
                texts_of(value, |text| {
                    tokens(text, MAX_TOKENS_PER_FIELD, |token| {
                        if hashes.len() < MAX_TOKENS_PER_FIELD {
                            push_distinct(&mut hashes, hash_text(tag, token.as_bytes()))
                        }
                    })
                });
                normalized(space, &hashes, &mut features);
            }
        }
        let mut tag_hashes = Vec::new();
        if let Some(value) = field(&names.tags) {
            tag_values(value, |tag| {
                if tag_hashes.len() < MAX_TOKENS_PER_FIELD {
                    push_distinct(&mut tag_hashes, hash_text(FieldTag::Tag, tag.as_bytes()));
                }
            });
            normalized(space, &tag_hashes, &mut features);
        }
        let mut category_hashes = Vec::new();
        if let Some(value) = field(&names.category) {
            texts_of(value, |text| {
                let trimmed = text.trim();
                if !trimmed.is_empty() && category_hashes.len() < MAX_CROSS_VALUES {
                    push_distinct(
                        &mut category_hashes,
                        hash_text(FieldTag::Category, trimmed.to_lowercase().as_bytes()),
                    );
                }
            });
            normalized(space, &category_hashes, &mut features);
        }
        cross_keys = if names.category.is_some() { category_hashes } else { tag_hashes };
        cross_keys.truncate(MAX_CROSS_VALUES);
        ItemFeatures { id_hash, features, cross_keys }
    }
}

/// A user's own features, computed once per user.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UserFeatures {
    /// The hash of the user id: its feature (valued by [`UserScales::id`]) and its crosses.
    pub id_hash: u64,
    /// The user-field features (what the artifact's user table stores).
    pub features: Vec<Feature>,
    /// One hash per user field value, crossed with categories.
    pub field_keys: Vec<u64>,
}

impl UserFeatures {
    /// The features of user `user_id` with its USER record `fields` (None: no record), keeping
    /// the fields named in `field_names`.
    pub fn build(
        space: &FeatureSpace,
        field_names: &[String],
        user_id: &str,
        fields: Option<&serde_json::Map<String, Value>>,
    ) -> UserFeatures {
        let id_hash = hash_text(FieldTag::UserId, user_id.as_bytes());
        let mut user = UserFeatures { id_hash, features: Vec::new(), field_keys: Vec::new() };
        if let Some(fields) = fields {
            user.extend_with_fields(space, field_names, fields);
        }
        user
    }

    /// Adds the features of the user's fields.
    pub fn extend_with_fields(
        &mut self,
        space: &FeatureSpace,
        field_names: &[String],
        fields: &serde_json::Map<String, Value>,
    ) {
        for name in field_names {
            if let Some(value) = fields.get(name) {
                user_field_hashes(name, value, |hash, crossed| {
                    self.features.push(space.feature(hash, 1.0));
                    if crossed && self.field_keys.len() < MAX_CROSS_VALUES {
                        self.field_keys.push(hash);
                    }
                });
            }
        }
    }

    /// The user with only an id (no USER record).
    pub fn anonymous(space: &FeatureSpace, user_id: &str) -> UserFeatures {
        UserFeatures::build(space, &[], user_id, None)
    }
}

/// Where and when an item is shown: the request's business and time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub biz_id: String,
    /// Unix seconds.
    pub time: i64,
}

/// The context's features, precomputable per business (training interns `biz_id`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ContextFeatures {
    pub biz: Feature,
    pub hour: Feature,
    pub weekday: Feature,
}

impl ContextFeatures {
    pub fn of(space: &FeatureSpace, context: &Context) -> ContextFeatures {
        ContextFeatures::with_biz(space, biz_feature(space, &context.biz_id), context.time)
    }

    /// With the business feature already hashed.
    pub fn with_biz(space: &FeatureSpace, biz: Feature, time: i64) -> ContextFeatures {
        let day = time.div_euclid(86_400);
        let hour = time.rem_euclid(86_400) / 3600;
        // 1970-01-01 was a Thursday: weekday 0 = Monday.
        let weekday = (day + 3).rem_euclid(7);
        ContextFeatures {
            biz,
            hour: space.feature(hash_number(FieldTag::Hour, hour), 1.0),
            weekday: space.feature(hash_number(FieldTag::Weekday, weekday), 1.0),
        }
    }
}

/// The feature of a business id.
pub fn biz_feature(space: &FeatureSpace, biz_id: &str) -> Feature {
    space.feature(hash_text(FieldTag::BizId, biz_id.as_bytes()), 1.0)
}

/// The smoothed click-through rate of an item from its counts: Beta-smoothed with a prior whose
/// mean depends on the item's exposure volume (see `pop`, whose empirical-Bayes fit makes it).
#[derive(Debug, Clone, PartialEq)]
pub struct SmoothingPrior {
    /// `α + β`.
    pub strength: f64,
    /// The center of the band means (`μ`): the features are centered on it.
    pub center: f64,
    /// `(least exposures, mean)`, least exposures increasing; the first band also holds items
    /// with no exposure.
    pub bands: Vec<(u64, f64)>,
}

impl SmoothingPrior {
    /// `(clicks + m_b·k) / (exposures + k)` for the band `b` of `exposures`, within (0, 1).
    pub fn rate(&self, clicks: u32, exposures: u32) -> f64 {
        let exposures_count = u64::from(exposures);
        let mean = self
            .bands
            .iter()
            .rev()
            .find(|(least, _)| *least <= exposures_count)
            .or(self.bands.first())
            .map_or(self.center, |(_, mean)| *mean);
        let clicks = f64::from(clicks.min(exposures));
        ((clicks + mean * self.strength) / (f64::from(exposures) + self.strength)).clamp(1e-6, 1.0 - 1e-6)
    }
}

fn logit(probability: f64) -> f64 {
    (probability / (1.0 - probability)).ln()
}

/// An item's click-through history as the prior features see it: its counts over the examples
/// before (training) or over all of training (serving).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PriorCounts {
    pub clicks: u32,
    pub exposures: u32,
}

/// The click histories an example's prior features are made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct History {
    /// The item's counts.
    pub item: PriorCounts,
    /// The user's counts (its exposures and clicks over every item).
    pub user: PriorCounts,
}

/// The values of the features made of the user id: in both learners a feature's value scales its
/// steps (FTRL-Proximal's and AdaGrad's per-coordinate rates adapt to the gradients' size, so a
/// feature of value `c` moves the score about `c` times as far per example), which makes these
/// the learning-rate multipliers of the user's own group. A user id is the rarest feature of an
/// example — one per user, seen only on that user's examples — and learns too slowly at the
/// rates that suit the shared features; the trainer picks the values per model
/// (see `super::user_scales_of`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UserScales {
    /// The user id feature.
    pub id: f32,
    /// The user id × category crosses (times `1/√n` over the item's `n` values).
    pub id_cross_category: f32,
}

/// Everything [`example_features`] needs besides the user, item and context.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureConfig {
    pub space: FeatureSpace,
    /// The prior of the items' click-through rates.
    pub prior: SmoothingPrior,
    /// The prior of the users' click-through rates.
    pub user_prior: SmoothingPrior,
    /// Cross the user id with the item's category values.
    pub cross_user: bool,
    /// Cross the user's field values with the item's category values.
    pub cross_user_fields: bool,
    /// Cross the user's field values with the item id.
    pub cross_user_fields_item: bool,
    /// The values of the user-id features.
    pub user_scales: UserScales,
    /// Add the user's own click-through prior (`user_history`).
    pub user_history: bool,
}

/// The features of one example, into `out` (cleared first). The same function scores in
/// training and in serving.
pub fn example_features(
    config: &FeatureConfig,
    user: &UserFeatures,
    item: &ItemFeatures,
    context: &ContextFeatures,
    history: History,
    out: &mut Vec<Feature>,
) {
    out.clear();
    let space = &config.space;
    out.push(space.feature(user.id_hash, config.user_scales.id));
    out.extend_from_slice(&user.features);
    out.extend_from_slice(&item.features);
    out.push(context.biz);
    out.push(context.hour);
    out.push(context.weekday);
    if !item.cross_keys.is_empty() {
        if config.cross_user {
            let value = config.user_scales.id_cross_category * (1.0 / (item.cross_keys.len() as f64).sqrt()) as f32;
            for key in &item.cross_keys {
                out.push(space.feature(hash_pair(FieldTag::UserCrossCategory, user.id_hash, *key), value));
            }
        }
        if config.cross_user_fields && !user.field_keys.is_empty() {
            let value = (1.0 / ((item.cross_keys.len() * user.field_keys.len()) as f64).sqrt()) as f32;
            for field in &user.field_keys {
                for key in &item.cross_keys {
                    out.push(space.feature(hash_pair(FieldTag::UserFieldCrossCategory, *field, *key), value));
                }
            }
        }
    }
    if config.cross_user_fields_item && !user.field_keys.is_empty() {
        let value = (1.0 / (user.field_keys.len() as f64).sqrt()) as f32;
        for field in &user.field_keys {
            out.push(space.feature(hash_pair(FieldTag::UserFieldCrossItem, *field, item.id_hash), value));
        }
    }
    let item_tags = [FieldTag::PriorLogit, FieldTag::PriorBucket, FieldTag::PriorVolume];
    prior_features(space, &config.prior, history.item, item_tags, out);
    if config.user_history {
        let user_tags = [FieldTag::UserPriorLogit, FieldTag::UserPriorBucket, FieldTag::UserPriorVolume];
        prior_features(space, &config.user_prior, history.user, user_tags, out);
    }
}

/// The three features of a smoothed rate: its centered logit, its logit bucket, its volume.
fn prior_features(
    space: &FeatureSpace,
    prior: &SmoothingPrior,
    counts: PriorCounts,
    [logit_tag, bucket_tag, volume_tag]: [FieldTag; 3],
    out: &mut Vec<Feature>,
) {
    let rate = prior.rate(counts.clicks, counts.exposures);
    let rate_logit = logit(rate).clamp(-PRIOR_LOGIT_LIMIT, PRIOR_LOGIT_LIMIT);
    let centered = rate_logit - logit(prior.center.clamp(1e-6, 1.0 - 1e-6));
    out.push(space.feature(hash_number(logit_tag, 0), centered as f32));
    let bucket = (rate_logit / PRIOR_BUCKET_WIDTH).floor() as i64;
    out.push(space.feature(hash_number(bucket_tag, bucket), 1.0));
    let volume = i64::from(32 - (counts.exposures.saturating_add(1)).leading_zeros());
    out.push(space.feature(hash_number(volume_tag, volume), 1.0));
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn space() -> FeatureSpace {
        FeatureSpace::new(22)
    }

    fn collect_tokens(text: &str, limit: usize) -> Vec<String> {
        let mut found = Vec::new();
        tokens(text, limit, |token| found.push(token.to_string()));
        found
    }

    #[test]
    fn the_hash_is_stable_across_versions_and_separates_fields() {
        // Pinned values: a change here changes every artifact's meaning (bump FEATURE_VERSION).
        assert_eq!(hash_text(FieldTag::Title, b"red"), hash_text(FieldTag::Title, b"red"));
        assert_ne!(hash_text(FieldTag::Title, b"red"), hash_text(FieldTag::Tag, b"red"));
        assert_ne!(hash_text(FieldTag::Title, b"ab"), hash_text(FieldTag::Title, b"ab\0"));
        assert_ne!(hash_pair(FieldTag::UserCrossCategory, 1, 2), hash_pair(FieldTag::UserCrossCategory, 2, 1));
        assert_eq!(
            hash_text(FieldTag::ItemId, b"item-1"),
            0xA121_9B77_EF3C_693B,
            "{:#X}",
            hash_text(FieldTag::ItemId, b"item-1")
        );
        assert_eq!(hash_number(FieldTag::Hour, 7), 0x1C55_790A_79DB_84D7, "{:#X}", hash_number(FieldTag::Hour, 7));
        let space = space();
        let slot = space.slot(hash_text(FieldTag::ItemId, b"item-1"));
        assert!((slot as usize) < space.slots());
    }

    #[test]
    fn tokens_are_lowercased_words_and_han_unigrams_and_bigrams() {
        assert_eq!(collect_tokens("Ice Storm, The (1997)", 10), ["ice", "storm", "the", "1997"]);
        assert_eq!(
            collect_tokens("红色连衣裙 Dress", 10),
            ["红", "色", "红色", "连", "色连", "衣", "连衣", "裙", "衣裙", "dress"]
        );
        assert_eq!(collect_tokens("a b c d", 2), ["a", "b"]);
        assert!(collect_tokens(" ,;", 5).is_empty());
    }

    #[test]
    fn the_same_token_in_title_and_tags_makes_different_slots() {
        let names =
            ItemFieldNames { title: Some("title".into()), tags: Some("genres".into()), ..ItemFieldNames::default() };
        let fields = json!({"title": "Drama", "genres": ["Drama", "Sci-Fi"]});
        let item = ItemFeatures::build(&space(), &names, "7", fields.as_object());
        // id, one title token, two tags.
        assert_eq!(item.features.len(), 4, "{item:?}");
        assert_ne!(item.features[1].slot, item.features[2].slot);
        assert_eq!(item.features[2].value, item.features[3].value);
        assert!((item.features[2].value - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
        // Tags cross with the user when no category field is named.
        assert_eq!(item.cross_keys.len(), 2);
        // Deterministic: the same document gives the same features.
        assert_eq!(item, ItemFeatures::build(&space(), &names, "7", fields.as_object()));
        // A text of tags splits at commas, else at whitespace.
        let text = json!({"genres": "Drama, Film Noir"});
        let split = ItemFeatures::build(&space(), &names, "7", text.as_object());
        let spaced = json!({"genres": "drama film"});
        let words = ItemFeatures::build(&space(), &names, "7", spaced.as_object());
        assert_eq!(split.cross_keys.len(), 2);
        assert_eq!(words.cross_keys.len(), 2);
        assert_eq!(split.cross_keys[0], words.cross_keys[0], "drama is drama");
        assert_ne!(split.cross_keys[1], words.cross_keys[1], "film noir is one tag, film another");
    }

    #[test]
    fn user_fields_give_exact_values_and_number_buckets() {
        let fields = json!({"age": 23, "gender": "M", "occupation": "Student", "zip": "55414"});
        let names = vec!["age".to_string(), "gender".to_string(), "occupation".to_string()];
        let user = UserFeatures::build(&space(), &names, "u1", fields.as_object());
        // age bucket, exact age, gender, occupation (the id is not among them).
        assert_eq!(user.features.len(), 4, "{user:?}");
        assert_eq!(user.field_keys.len(), 3, "the age bucket, gender and occupation cross");
        let older = json!({"age": 27});
        let same_decade = UserFeatures::build(&space(), &names, "u2", older.as_object());
        assert_eq!(same_decade.field_keys[0], user.field_keys[0], "23 and 27 share the bucket 2e1");
        assert_ne!(same_decade.features[1], user.features[1], "but not the exact value");
        let lower = json!({"occupation": "student"});
        let student = UserFeatures::build(&space(), &names, "u3", lower.as_object());
        assert_eq!(student.features[0], user.features[3], "values are lower-cased");
        assert_eq!(number_bucket(23.0), "2e1");
        assert_eq!(number_bucket(0.05), "5e-2");
        assert_eq!(number_bucket(-300.0), "-3e2");
    }

    #[test]
    fn context_features_follow_hour_and_weekday_in_utc() {
        let space = space();
        // 2026-11-28 21:06:40 UTC, a Saturday.
        let saturday_night = ContextFeatures::of(&space, &Context { biz_id: "web".into(), time: 1_795_900_000 });
        let hour = |hour: i64| space.feature(hash_number(FieldTag::Hour, hour), 1.0);
        let weekday = |day: i64| space.feature(hash_number(FieldTag::Weekday, day), 1.0);
        assert_eq!(saturday_night.hour, hour(21));
        assert_eq!(saturday_night.weekday, weekday(5));
        assert_eq!(saturday_night.biz, biz_feature(&space, "web"));
    }

    #[test]
    fn example_features_hold_every_group_in_order() {
        let space = space();
        let names = ItemFieldNames { title: Some("title".into()), tags: Some("genres".into()), ..Default::default() };
        let item_fields = json!({"title": "Star Wars", "genres": ["Action", "Sci-Fi"]});
        let item = ItemFeatures::build(&space, &names, "50", item_fields.as_object());
        let user_fields = json!({"gender": "F"});
        let user = UserFeatures::build(&space, &["gender".to_string()], "u1", user_fields.as_object());
        let context = ContextFeatures::of(&space, &Context { biz_id: "web".into(), time: 0 });
        let config = FeatureConfig {
            space,
            prior: SmoothingPrior { strength: 10.0, center: 0.25, bands: vec![(1, 0.25)] },
            user_prior: SmoothingPrior { strength: 5.0, center: 0.5, bands: vec![(1, 0.5)] },
            cross_user: true,
            cross_user_fields: true,
            cross_user_fields_item: true,
            user_scales: UserScales { id: 3.0, id_cross_category: 2.0 },
            user_history: true,
        };
        let mut features = Vec::new();
        let history = History { item: PriorCounts { clicks: 5, exposures: 10 }, user: PriorCounts::default() };
        example_features(&config, &user, &item, &context, history, &mut features);
        // user 2 + item 5 + context 3 + user×tag 2 + gender×tag 2 + gender×item 1 + item prior 3
        // + user prior 3.
        assert_eq!(features.len(), 21, "{features:?}");
        assert_eq!(features[0], config.space.feature(user.id_hash, 3.0), "the id, valued by its scale");
        assert_eq!(&features[1..2], &user.features[..]);
        assert_eq!(&features[2..7], &item.features[..]);
        let user_cross = |tag: u64| {
            config.space.feature(
                hash_pair(FieldTag::UserCrossCategory, user.id_hash, tag),
                2.0 * std::f32::consts::FRAC_1_SQRT_2,
            )
        };
        assert_eq!(features[10], user_cross(item.cross_keys[0]), "user × tag, times its scale");
        assert_eq!(features[11], user_cross(item.cross_keys[1]));
        let gender_item = hash_pair(FieldTag::UserFieldCrossItem, user.field_keys[0], item.id_hash);
        assert_eq!(features[14], config.space.feature(gender_item, 1.0), "gender × item");
        // The prior: (5 + 2.5) / 20 = 0.375, centered on 0.25.
        let expected = ((0.375f64 / 0.625).ln() - (0.25f64 / 0.75).ln()) as f32;
        assert!((features[15].value - expected).abs() < 1e-6, "{features:?}");
        let mut again = Vec::new();
        example_features(&config, &user, &item, &context, history, &mut again);
        assert_eq!(features, again);
        let unscaled = FeatureConfig { user_scales: UserScales { id: 1.0, id_cross_category: 1.0 }, ..config.clone() };
        example_features(&unscaled, &user, &item, &context, history, &mut again);
        assert_eq!(again[0].value, 1.0);
        assert_eq!(again[1..10], features[1..10], "the scales touch only the user id's features");
        assert_eq!(again[12..], features[12..]);
    }
}
