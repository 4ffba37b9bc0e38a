//! Staging (docs/architecture.md §8, docs/buildpacks.md): a package becomes a
//! droplet. `plan` holds the pure rules (roles of buildpacks, phase lines,
//! environment, errors), `runner` runs one build in a container, and
//! `service` keeps the builds this DEA accepted as long-running work.

pub mod plan;
mod runner;
pub mod service;
pub mod slots;

pub use runner::{host_path, Built, Stager, NO_START_COMMAND};
pub use service::{Deliver, Load, Stagings};
pub use slots::Slots;
