//! The one end-to-end test binary: every component real (nats-server, the
//! controller, router, DEA and health manager binaries, the `cf` CLI).
//! Each module is one area; each test starts its own platform.

mod attacks;
mod buildpacks;
mod cli_push;
mod cli_resources;
mod cli_routes;
mod cli_tasks;
mod cli_terminal;
mod containers;
mod deployments;
mod dev_hosts;
mod faults;
mod health_checks;
mod log_rate;
mod nats_cluster;
mod operator;
mod platform;
mod services;
mod staging;
mod static_java;
mod tenancy;
