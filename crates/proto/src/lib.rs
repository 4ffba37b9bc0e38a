//! The contract between the platform's components: NATS subjects, message
//! payloads, the droplet format and the internal desired-state document.
//!
//! Subjects and payload structs live here and nowhere else (docs/architecture.md
//! §3, §4).

pub mod archive;
pub mod assignments;
pub mod bus;
pub mod busauth;
pub mod config;
pub mod desired;
pub mod droplet;
pub mod egress;
pub mod https;
pub mod messages;
pub mod nats_server;
pub mod procs;
pub mod service;
pub mod size;
pub mod staging;
pub mod subjects;
pub mod vcap;

pub use bus::{Bus, BusError};
pub use egress::EgressRule;
pub use messages::*;
pub use staging::*;

/// Current time as RFC 3339 UTC with second precision, the format used in
/// every payload and API resource.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Current time as seconds since the Unix epoch (fractional).
pub fn now_unix() -> f64 {
    let now = chrono::Utc::now();
    now.timestamp() as f64 + f64::from(now.timestamp_subsec_millis()) / 1000.0
}

/// An I/O error's text for people: the OS's words without " (os error N)".
pub fn io_error_text(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// CF's process types (`web`, `worker`, …): lower-case letters, digits,
/// `-` and `_`, 1 to 255 of them. The CLI checks a manifest with it before
/// anything is created; the controller's `apply_manifest` again.
pub fn valid_process_type(kind: &str) -> bool {
    !kind.is_empty()
        && kind.len() <= 255
        && kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}
