//! The operator's tool (`paas`, docs/operations.md): a platform spread over
//! hosts, described by a manifest, deployed and upgraded host by host.
//!
//! Decide purely, act separately: [`deploy::plan`] turns a manifest and
//! what the hosts run into waves of steps, [`deploy::rollout`] judges a
//! rollout's results; commands only read, print and (later) send.

pub mod agent;
pub mod commands;
pub mod deploy;
pub mod lab;
