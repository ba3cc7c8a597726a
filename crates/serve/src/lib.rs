//! Serving of trained models: the answers of the hot, hint, popularity and ctr routes.
//!
//! # What lives here
//! - [`ModelRegistry`]: each instance's serving generation, loaded once from the object store
//!   (SHA-256 checked), parsed, cached, and swapped atomically when a new generation lands.
//! - [`Serving`]: the queries — which instance answers (`model_name` or the default instance),
//!   parameter ranges, sort types, allow/deny dictionaries, personalization.
//! - [`models`]: the artifact formats the trainers write, as the serving side reads them.
//!
//! # What must not
//! No HTTP (the api crate decodes requests and writes envelopes), no SQL (instances and tasks
//! come through `trainyard_core::service::Service`), no training. A model that fails its
//! checksum or does not parse is never served, and the error says so.

mod error;
pub mod models;
mod queries;
mod registry;

pub use crate::error::ServeError;
pub use crate::queries::{
    CtrQuery, HintItem, HotItem, ItemPopularity, ItemScore, MAX_CTR_ITEMS, MAX_POPULARITY_ITEMS, PopularityQuery,
    RankingQuery, Serving,
};
pub use crate::registry::{LoadedModel, ModelRegistry};
