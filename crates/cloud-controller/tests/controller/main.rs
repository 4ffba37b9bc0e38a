//! Controller tests: store (SQLite and Postgres), HTTP API, end to end over NATS.

mod api;
mod blob_gc;
mod buildpacks;
mod concurrent_writes;
mod e2e;
mod logins;
mod paging;
mod permissions;
mod resources;
mod security_groups;
mod shared_blobs;
mod shutdown;
mod store;
mod support;
mod tenancy;
mod token_keys;
mod uploads;
