//! `paas` tests: the CLI's plans and refusals, and the host agent
//! supervising real platform components.

mod agent;
mod cli;
mod deployer;
