//! The domain of Trainyard: app groups, the function catalog, algorithm instances, training
//! tasks, resources and default instances — the rules of the OpenSearch 2017-12-25 "function"
//! API without its transport.
//!
//! # What lives here
//! - [`service::Service`]: one method per upstream operation (`create_function_instance`,
//!   `list_function_tasks`, ...), validating input and applying the domain rules.
//! - [`catalog`]: the nine functions, their versions and parameter rules.
//! - [`model`]: the domain objects (`AppGroup`, `FunctionInstance`, `FunctionTask`, ...).
//! - [`store::MetadataStore`]: the port the metadata store implements; [`datasets::DatasetPort`]
//!   the port of the data plane.
//! - [`error`]: [`error::ErrorCode`], the one table of wire codes and HTTP statuses, and
//!   [`error::CoreError`].
//! - [`queue::TaskQueue`]: the port of the task runner (claims, leases, fencing, cron fires).
//! - [`names`], [`filter`], [`cron`]: parsers for names, filter expressions and schedules.
//! - [`policy`]: the RAM policy language — parse and validate a policy document, evaluate a
//!   request against a caller's policies.
//! - [`ram`]: RAM users, AccessKeys (sealed at rest), policies and their attachments; the
//!   [`ram::RamStore`] port and [`ram::RamService`], which the admin API and the authorization
//!   of every request use.
//!
//! # What must not
//! No HTTP, no JSON, no SQL, no file system: the `api` crate owns the wire, the `store` crate
//! owns persistence, and both depend on this crate — never the other way round.

pub mod catalog;
pub mod clock;
pub mod cron;
pub mod datasets;
pub mod error;
pub mod filter;
pub mod model;
pub mod names;
pub mod policy;
pub mod queue;
pub mod ram;
pub mod service;
pub mod store;
pub mod text;

pub use error::{CoreError, ErrorCode};
