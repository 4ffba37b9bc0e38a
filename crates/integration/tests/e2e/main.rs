//! The one end-to-end test binary: every component real (nats-server, the
//! controller, router, DEA and health manager binaries, the `cf` CLI).
//! Each module is one area; each test starts its own platform.

mod attacks;
mod buildpacks;
mod cli_resources;
mod containers;
mod faults;
mod platform;
mod staging;
mod static_java;
mod tenancy;
