//! JSON the API builds from runtime data (instances reported over the bus).

pub mod stats;
pub mod services;
