//! Black-box HTTP tests: the real `trainyard` binary on port 0, driven over HTTP with signed
//! requests. One test binary (faster linking); one module per area.

mod support;

mod app_groups;
mod data;
mod default_instance;
mod import;
mod instances;
mod limits;
mod ram;
mod resources;
mod restart;
mod signatures;
mod tasks;
mod training;
mod versions;
