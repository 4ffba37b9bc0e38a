//! The router's integration tests, in one binary (one link, one copy of
//! the helpers): every test runs a real nats-server on a free port and real
//! backend HTTP servers. See docs/router.md "Tests".

mod common;

mod balancing;
mod e2e;
mod fastpath;
mod hostile;
mod limits;
mod resilience;
mod streaming;
mod tls;
