//! `cf logout`: revokes the refresh token on the server (UAA's
//! `DELETE /oauth/token/revoke/:jti`), so a copy of it is of no use, then
//! forgets the tokens locally (that happens even when the server cannot be
//! reached).

use base64::Engine;

use super::common::client;
use crate::error::Result;

pub async fn run() -> Result<()> {
    let client = client()?;
    let cfg = client.config();
    let user = cfg.user.clone().unwrap_or_default();
    println!("Logging out {user}...");
    if let Some(jti) = cfg.refresh_token.as_deref().and_then(token_id) {
        // Best effort, as the cf CLI's logout never fails on the server.
        let _ = client.delete(&format!("/oauth/token/revoke/{jti}")).await;
    }
    client.update_config(|c| c.logout())?;
    super::common::ok();
    Ok(())
}

/// The `jti` of a JWT (its id, which UAA revokes by).
fn token_id(jwt: &str) -> Option<String> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let jti = v["jti"].as_str()?;
    // It goes into a URL path.
    jti.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        .then(|| jti.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_token_id() {
        let enc = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let jwt = format!(
            "{}.{}.sig",
            enc("{}"),
            enc(r#"{"jti":"ab12-cd","sub":"u"}"#)
        );
        assert_eq!(token_id(&jwt).as_deref(), Some("ab12-cd"));
        let bad = format!("h.{}.s", enc(r#"{"jti":"../x"}"#));
        assert_eq!(token_id(&bad), None);
        assert_eq!(token_id("not a jwt"), None);
        assert_eq!(token_id(&format!("h.{}.s", enc("{}"))), None);
    }
}
