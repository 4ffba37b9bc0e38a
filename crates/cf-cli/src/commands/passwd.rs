//! `cf passwd` (`pw`): change the logged-in user's password with UAA's
//! `PUT /Users/:id/password`, then log out locally. The answers are read
//! from stdin also when it is not a terminal (`printf 'old\nnew\nnew\n' | cf passwd`).

use serde_json::{json, Value};

use super::common::{ask, logged_in, ok, token_claim, uaa_url};
use crate::error::{CliError, Result};

fn answer(label: &str) -> Result<String> {
    ask(label, true)?
        .ok_or_else(|| CliError::Usage(format!("Incorrect Usage: {label} is required")))
}

pub async fn run() -> Result<()> {
    let (c, _user) = logged_in()?;
    let id = token_claim(&c, "user_id").ok_or_else(|| {
        CliError::other("The access token has no user id; log in again with 'cf login'.")
    })?;
    let old = answer("Current password")?;
    let new = answer("New password")?;
    let verify = answer("Verify password")?;
    if new != verify {
        return Err(CliError::other("Password verification does not match"));
    }
    println!("Changing password...");
    let uaa = uaa_url(&c)?;
    match c
        .put::<Value>(
            &format!("{uaa}/Users/{id}/password"),
            json!({"oldPassword": old, "password": new}),
        )
        .await
    {
        Ok(_) => {}
        Err(CliError::Api {
            status: 401, title, ..
        }) if title != "invalid_token" => {
            return Err(CliError::other("Current password did not match"))
        }
        Err(e) => return Err(e),
    }
    c.update_config(|cfg| cfg.logout())?;
    ok();
    println!("Please log in again");
    Ok(())
}
