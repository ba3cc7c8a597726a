//! The serving queries: top searches (`hot`), hint words (`hint`), item popularity
//! (`popularity`), as the v3 routes ask them, and click-through-rate scores (`ctr`).
//!
//! Choices where upstream is silent (documented in docs/api.md too):
//! - `sort_type=default` keeps the model's order; `pv` sorts by `pv`, highest first (ties keep
//!   the model's order). `uv` is announced upstream but not available there either: refused.
//! - The `allow_dict_id` / `deny_dict_id` usage parameters name `raw_file` resources of the same
//!   function, one query per line (blank lines and lines starting with `#` are ignored). Lines
//!   are compared after `normalize_query` (width, case, spaces). Allowlisted queries are always
//!   served, first and in the dictionary's order (with the model's `pv` and tags, or 0 when the
//!   model does not have them); denylisted ones never are, even when also allowlisted. Edits of
//!   a dictionary take effect on the next query — no retraining.
//! - `user_id` personalizes hints of a personalized model: the user's own hints first, then
//!   global ones; an unknown user gets the global hints. Hot searches are not personalized: the
//!   parameter is accepted and does not change the answer.
//! - Popularity of up to 1000 items per request; items the model has not seen get the
//!   instance's `default_score` usage parameter when it is set, else the model's own default.
//! - ctr scores up to 1000 items per request for one user in one context (business id and time,
//!   by default now), with the trainer's own feature code. A missing `user_id` or `biz_id` is
//!   the empty one — what training uses for events without them. Items and users the model has
//!   never seen are scored by their id feature alone (plus a zero click history); the answer says
//!   which items were known.

use std::collections::HashSet;
use std::sync::Arc;

use trainyard_core::CoreError;
use trainyard_core::catalog::FunctionName;
use trainyard_core::service::{Caller, Service, ServingModel};
use trainyard_core::text::normalize_query;
use trainyard_data::artifacts::ArtifactStore;
use trainyard_train::ctr::Context as CtrContext;

use crate::error::ServeError;
use crate::models::{HintEntry, HotEntry, Model};
use crate::registry::{LoadedModel, ModelRegistry};

/// The most item ids one popularity request may ask about.
pub const MAX_POPULARITY_ITEMS: usize = 1000;

/// The most item ids one ctr request may score.
pub const MAX_CTR_ITEMS: usize = 1000;

/// Parameters of `POST /v3/openapi/apps/{app}/actions/ctr`.
#[derive(Debug, Clone, Default)]
pub struct CtrQuery {
    pub user_id: Option<String>,
    pub biz_id: Option<String>,
    /// The request's time, Unix seconds (hour of day and weekday are features).
    pub time: Option<i64>,
    pub item_ids: Option<Vec<String>>,
    pub model_name: Option<String>,
}

/// One item's click probability.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemScore {
    pub item_id: String,
    pub score: f64,
    /// Whether the model knows the item (its features and click history), else it was scored
    /// by its id alone.
    pub known: bool,
}

/// Parameters of `GET /v3/openapi/apps/{app}/actions/hot` and `.../actions/hint`.
#[derive(Debug, Clone, Default)]
pub struct RankingQuery {
    pub hit: Option<i64>,
    pub sort_type: Option<String>,
    pub user_id: Option<String>,
    pub model_name: Option<String>,
}

/// One answered top search.
#[derive(Debug, Clone, PartialEq)]
pub struct HotItem {
    pub hot: String,
    pub pv: i64,
    /// 0 new, 1 hot, 2 surging.
    pub tags: i64,
}

/// One answered hint word.
#[derive(Debug, Clone, PartialEq)]
pub struct HintItem {
    pub hint: String,
    pub pv: i64,
}

/// Parameters of the popularity route.
#[derive(Debug, Clone, Default)]
pub struct PopularityQuery {
    /// Comma-separated item ids, as sent.
    pub item_ids: Option<String>,
    pub model_name: Option<String>,
}

/// One item's popularity.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemPopularity {
    pub item_id: String,
    pub score: f64,
    /// Whether the model had a score for it (else `score` is the default).
    pub known: bool,
}

/// A ranked candidate, whatever the function.
#[derive(Debug, Clone, PartialEq)]
struct Ranked {
    text: String,
    pv: i64,
    tags: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SortType {
    Default,
    Pv,
}

fn parse_sort_type(sort_type: Option<&str>) -> Result<SortType, CoreError> {
    match sort_type {
        None | Some("") | Some("default") => Ok(SortType::Default),
        Some("pv") => Ok(SortType::Pv),
        Some("uv") => {
            Err(CoreError::invalid("sort_type", "uv is announced upstream but not available; use default or pv"))
        }
        Some(other) => Err(CoreError::invalid(
            "sort_type",
            format!("\"{}\" is not one of: default, pv", trainyard_core::names::printable(other)),
        )),
    }
}

fn parse_hit(hit: Option<i64>, default: i64, max: i64) -> Result<usize, CoreError> {
    let value = hit.unwrap_or(default);
    if !(1..=max).contains(&value) {
        return Err(CoreError::invalid("hit", format!("must be an integer in (0, {max}], got {value}")));
    }
    Ok(value as usize)
}

/// The queries of a dictionary resource, normalized, in order, without duplicates.
fn dictionary_queries(content: &str) -> Vec<String> {
    let mut seen = HashSet::new();
    content
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(normalize_query)
        .filter(|query| !query.is_empty() && seen.insert(query.clone()))
        .collect()
}

/// Allow and deny lists of an instance.
#[derive(Debug, Default)]
struct Dictionaries {
    allow: Vec<String>,
    deny: HashSet<String>,
}

/// Applies the dictionaries and the sort, and keeps `hit` entries.
fn rank(candidates: Vec<Ranked>, dictionaries: &Dictionaries, sort_type: SortType, hit: usize) -> Vec<Ranked> {
    let mut model_entries: Vec<Ranked> = Vec::with_capacity(candidates.len());
    let mut seen: HashSet<String> = HashSet::new();
    for candidate in candidates {
        let key = normalize_query(&candidate.text);
        if dictionaries.deny.contains(&key) || !seen.insert(key) {
            continue;
        }
        model_entries.push(candidate);
    }
    if sort_type == SortType::Pv {
        model_entries.sort_by_key(|entry| std::cmp::Reverse(entry.pv));
    }
    let mut answered: Vec<Ranked> = Vec::with_capacity(hit);
    for allowed in dictionaries.allow.iter().filter(|query| !dictionaries.deny.contains(*query)) {
        let from_model = model_entries.iter().find(|entry| normalize_query(&entry.text) == *allowed);
        answered.push(from_model.cloned().unwrap_or(Ranked { text: allowed.clone(), pv: 0, tags: 0 }));
    }
    let pinned: HashSet<String> = dictionaries.allow.iter().cloned().collect();
    answered.extend(model_entries.into_iter().filter(|entry| !pinned.contains(&normalize_query(&entry.text))));
    answered.truncate(hit);
    answered
}

/// The serving side: resolves which model answers, loads it, and answers.
#[derive(Clone)]
pub struct Serving {
    service: Service,
    registry: Arc<ModelRegistry>,
}

impl Serving {
    pub fn new(service: Service, artifacts: ArtifactStore) -> Serving {
        Serving { service, registry: Arc::new(ModelRegistry::new(artifacts)) }
    }

    pub fn registry(&self) -> &ModelRegistry {
        &self.registry
    }

    async fn load(
        &self,
        caller: &Caller,
        app: &str,
        function: FunctionName,
        model_name: Option<&str>,
    ) -> Result<(ServingModel, Arc<LoadedModel>), ServeError> {
        let serving = self.service.serving_model(caller, app, function, model_name).await?;
        let loaded = self.registry.model_for(&serving).await?;
        Ok((serving, loaded))
    }

    async fn dictionaries(&self, serving: &ServingModel) -> Result<Dictionaries, ServeError> {
        let mut dictionaries = Dictionaries::default();
        for parameter in &serving.instance.usage_parameters {
            let is_allow = match parameter.name.as_str() {
                "allow_dict_id" => true,
                "deny_dict_id" => false,
                _ => continue,
            };
            let resource = self
                .service
                .find_function_resource(serving.app_group.id, serving.instance.function_name, &parameter.value)
                .await?;
            // A referenced resource cannot be deleted, so this only happens if the store was
            // edited by hand: serve without the dictionary rather than fail every query.
            let Some(resource) = resource else {
                tracing::warn!(resource = %parameter.value, "a dictionary named by a usage parameter does not exist");
                continue;
            };
            let queries = dictionary_queries(&resource.data.content);
            if is_allow {
                dictionaries.allow = queries;
            } else {
                dictionaries.deny = queries.into_iter().collect();
            }
        }
        Ok(dictionaries)
    }

    /// Top searches: `hit` default 10, in (0, 30].
    pub async fn hot(&self, caller: &Caller, app: &str, query: &RankingQuery) -> Result<Vec<HotItem>, ServeError> {
        let hit = parse_hit(query.hit, 10, 30)?;
        let sort_type = parse_sort_type(query.sort_type.as_deref())?;
        let (serving, loaded) = self.load(caller, app, FunctionName::Hot, query.model_name.as_deref()).await?;
        let Model::Hot(model) = &loaded.model else {
            return Err(wrong_model(&serving));
        };
        let dictionaries = self.dictionaries(&serving).await?;
        let candidates = model.entries.iter().map(|HotEntry { query, pv, tags, .. }| Ranked {
            text: query.clone(),
            pv: *pv,
            tags: tags.unwrap_or(0),
        });
        let ranked = rank(candidates.collect(), &dictionaries, sort_type, hit);
        Ok(ranked.into_iter().map(|entry| HotItem { hot: entry.text, pv: entry.pv, tags: entry.tags }).collect())
    }

    /// Hint words: `hit` default 3, in (0, 10] — (0, 30] for a personalized model.
    pub async fn hint(&self, caller: &Caller, app: &str, query: &RankingQuery) -> Result<Vec<HintItem>, ServeError> {
        let sort_type = parse_sort_type(query.sort_type.as_deref())?;
        let (serving, loaded) = self.load(caller, app, FunctionName::Hint, query.model_name.as_deref()).await?;
        let Model::Hint(model) = &loaded.model else {
            return Err(wrong_model(&serving));
        };
        let max_hit = if model.personalized.is_some() { 30 } else { 10 };
        let hit = parse_hit(query.hit, 3, max_hit)?;
        let dictionaries = self.dictionaries(&serving).await?;
        let user_hints = match (&model.personalized, query.user_id.as_deref()) {
            (Some(per_user), Some(user_id)) if !user_id.is_empty() => per_user.get(user_id).map(Vec::as_slice),
            _ => None,
        };
        let as_ranked = |HintEntry { hint, pv }: &HintEntry| Ranked { text: hint.clone(), pv: *pv, tags: 0 };
        let mut candidates: Vec<Ranked> = user_hints.unwrap_or_default().iter().map(as_ranked).collect();
        candidates.extend(model.global.iter().map(as_ranked));
        let ranked = rank(candidates, &dictionaries, sort_type, hit);
        Ok(ranked.into_iter().map(|entry| HintItem { hint: entry.text, pv: entry.pv }).collect())
    }

    /// Popularity of each listed item, in the order asked.
    pub async fn popularity(
        &self,
        caller: &Caller,
        app: &str,
        query: &PopularityQuery,
    ) -> Result<Vec<ItemPopularity>, ServeError> {
        let item_ids = parse_item_ids(query.item_ids.as_deref())?;
        let (serving, loaded) = self.load(caller, app, FunctionName::Pop, query.model_name.as_deref()).await?;
        let Model::Pop(model) = &loaded.model else {
            return Err(wrong_model(&serving));
        };
        let instance_default = serving
            .instance
            .usage_parameters
            .iter()
            .find(|parameter| parameter.name == "default_score")
            .and_then(|parameter| parameter.value.trim().parse::<f64>().ok());
        let default_score = instance_default.or(model.default_score).unwrap_or(0.0);
        Ok(item_ids
            .into_iter()
            .map(|item_id| match model.scores.get(&item_id) {
                Some(score) => ItemPopularity { item_id, score: *score, known: true },
                None => ItemPopularity { item_id, score: default_score, known: false },
            })
            .collect())
    }
}

impl Serving {
    /// The click probability of each listed item for the user in the context, in the order
    /// asked; `now_seconds` is the time when the query gives none.
    pub async fn ctr(
        &self,
        caller: &Caller,
        app: &str,
        query: &CtrQuery,
        now_seconds: i64,
    ) -> Result<Vec<ItemScore>, ServeError> {
        let item_ids = validate_ctr_items(query.item_ids.as_deref())?;
        let time = query.time.unwrap_or(now_seconds);
        if time < 0 {
            return Err(CoreError::invalid("time", format!("must be Unix seconds >= 0, got {time}")).into());
        }
        let (serving, loaded) = self.load(caller, app, FunctionName::Ctr, query.model_name.as_deref()).await?;
        let Model::Ctr(model) = &loaded.model else {
            return Err(wrong_model(&serving));
        };
        let context = CtrContext { biz_id: query.biz_id.clone().unwrap_or_default(), time };
        let ids: Vec<&str> = item_ids.iter().map(String::as_str).collect();
        let scores = model.score(query.user_id.as_deref().unwrap_or_default(), &context, &ids);
        Ok(item_ids
            .iter()
            .zip(scores)
            .map(|(item_id, score)| ItemScore {
                item_id: item_id.clone(),
                score: f64::from(score),
                known: model.knows_item(item_id),
            })
            .collect())
    }
}

fn validate_ctr_items(item_ids: Option<&[String]>) -> Result<&[String], CoreError> {
    let Some(item_ids) = item_ids.filter(|item_ids| !item_ids.is_empty()) else {
        return Err(CoreError::MissingParameter { field: "item_ids".into() });
    };
    if let Some(position) = item_ids.iter().position(|item_id| item_id.trim().is_empty()) {
        return Err(CoreError::invalid("item_ids", format!("item id number {} is empty", position + 1)));
    }
    if item_ids.len() > MAX_CTR_ITEMS {
        return Err(CoreError::invalid(
            "item_ids",
            format!("at most {MAX_CTR_ITEMS} item ids per request, got {}", item_ids.len()),
        ));
    }
    Ok(item_ids)
}

fn wrong_model(serving: &ServingModel) -> ServeError {
    ServeError::ModelDamaged {
        instance_name: serving.instance.instance_name.clone(),
        generation: serving.task.generation,
        reason: "the loaded model is of another function".into(),
    }
}

fn parse_item_ids(text: Option<&str>) -> Result<Vec<String>, CoreError> {
    let Some(text) = text.filter(|text| !text.trim().is_empty()) else {
        return Err(CoreError::MissingParameter { field: "item_ids".into() });
    };
    let item_ids: Vec<String> = text.split(',').map(|item| item.trim().to_string()).collect();
    if item_ids.iter().any(String::is_empty) {
        return Err(CoreError::invalid("item_ids", "an item id is empty (ids are separated by single commas)"));
    }
    if item_ids.len() > MAX_POPULARITY_ITEMS {
        return Err(CoreError::invalid(
            "item_ids",
            format!("at most {MAX_POPULARITY_ITEMS} item ids per request, got {}", item_ids.len()),
        ));
    }
    Ok(item_ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranked(text: &str, pv: i64) -> Ranked {
        Ranked { text: text.into(), pv, tags: 1 }
    }

    fn texts(entries: &[Ranked]) -> Vec<&str> {
        entries.iter().map(|entry| entry.text.as_str()).collect()
    }

    #[test]
    fn ranks_in_model_order_or_by_pv() {
        let candidates = vec![ranked("b", 5), ranked("a", 9), ranked("c", 1)];
        let none = Dictionaries::default();
        assert_eq!(texts(&rank(candidates.clone(), &none, SortType::Default, 10)), ["b", "a", "c"]);
        assert_eq!(texts(&rank(candidates.clone(), &none, SortType::Pv, 2)), ["a", "b"]);
    }

    #[test]
    fn allowlist_pins_and_denylist_removes() {
        let candidates = vec![ranked("b", 5), ranked("a", 9), ranked("c", 1)];
        let dictionaries = Dictionaries {
            allow: dictionary_queries("# pinned\nC\n\nnew query\nb\n"),
            deny: dictionary_queries("B\nzzz").into_iter().collect(),
        };
        let answered = rank(candidates, &dictionaries, SortType::Default, 10);
        assert_eq!(texts(&answered), ["c", "new query", "a"]);
        assert_eq!((answered[0].pv, answered[0].tags), (1, 1), "pinned entries keep the model's figures");
        assert_eq!((answered[1].pv, answered[1].tags), (0, 0), "an entry the model lacks has none");
    }

    #[test]
    fn personal_and_global_duplicates_collapse() {
        let candidates = vec![ranked("x", 1), ranked("X ", 7), ranked("y", 3)];
        assert_eq!(texts(&rank(candidates, &Dictionaries::default(), SortType::Default, 10)), ["x", "y"]);
    }

    #[test]
    fn parameters_are_checked() {
        assert_eq!(parse_hit(None, 10, 30).unwrap(), 10);
        assert!(parse_hit(Some(0), 10, 30).unwrap_err().to_string().contains("hit"));
        assert!(parse_hit(Some(31), 10, 30).is_err());
        assert_eq!(parse_sort_type(Some("pv")).unwrap(), SortType::Pv);
        assert!(parse_sort_type(Some("uv")).unwrap_err().to_string().contains("not available"));
        assert!(parse_sort_type(Some("random")).unwrap_err().to_string().contains("sort_type"));
        assert_eq!(parse_item_ids(Some("a, b,c")).unwrap(), ["a", "b", "c"]);
        assert!(matches!(parse_item_ids(None), Err(CoreError::MissingParameter { .. })));
        assert!(parse_item_ids(Some("a,,b")).unwrap_err().to_string().contains("item_ids"));
        let too_many = vec!["i"; 1001].join(",");
        assert!(parse_item_ids(Some(&too_many)).unwrap_err().to_string().contains("at most 1000"));
    }
}
