//! The deployer's pure parts: the manifest, the plan and the rollout's
//! judgement.

pub mod agents;
pub mod execute;
pub mod manifest;
pub mod plan;
pub mod render;
pub mod rollout;
pub mod sim;
pub mod state;
pub mod timeline;
