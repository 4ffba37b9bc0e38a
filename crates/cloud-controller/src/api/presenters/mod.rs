//! JSON the API builds from runtime data (instances reported over the bus).

pub mod services;
pub mod stats;
