//! The Droplet Execution Agent (docs/architecture.md §10): stages apps and runs
//! their instances in containers, reporting over NATS.

pub mod agent;
pub mod archive;
pub mod backend;
pub mod blob_urls;
pub mod buildpacks;
pub mod cell_log;
pub mod config;
pub mod drain;
pub mod droplet_cache;
pub mod env;
pub mod error;
pub mod http;
pub mod instances;
pub mod outbox;
pub mod registry;
pub mod safefs;
pub mod sim;
pub mod staging;
pub mod state;

pub use agent::run;
pub use config::Config;
pub use error::DeaError;
