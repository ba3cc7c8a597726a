//! The handlers: one per operation, named after it. Each decodes the [`crate::call::Call`],
//! calls the one matching method of the domain service, and encodes the result.

pub mod app_groups;
pub mod data;
pub mod default_instance;
pub mod instances;
pub mod ram;
pub mod resources;
pub mod serving;
pub mod tasks;
pub mod versions;
