//! `paas` tests: the CLI's plans and refusals, `paas agent install`, the
//! host agent supervising real platform components, and the agents'
//! channel over TLS.

mod agent;
mod cli;
mod deployer;
mod tls;
