//! `cf logout`.

use super::common::client;
use crate::error::Result;

pub async fn run() -> Result<()> {
    let client = client()?;
    let user = client.config().user.unwrap_or_default();
    println!("Logging out {user}...");
    client.update_config(|c| c.logout())?;
    println!("OK");
    Ok(())
}
