//! Issue 13's attack suite: one module per attack. Each attack must fail
//! and leave everything else working. (The router's, the containers' and
//! the uploads' attacks live with their crates' tests; see docs/testing.md
//! "Attack suite".)

mod bus;
mod file_modes;
mod log_streams;
mod logins;
mod tls;
