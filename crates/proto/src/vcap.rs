//! What an app's environment derives from `VCAP_SERVICES`
//! (docs/architecture.md §5.11).

use serde_json::Value;

/// `DATABASE_URL`, as Cloud Foundry's app lifecycle sets it: the `uri` of
/// the first bound service whose scheme is `postgres`, `postgresql`,
/// `mysql` or `mysql2` (`mysql` becomes `mysql2`, the Ruby driver's name).
/// Services are taken in the document's key order, then list order.
pub fn database_url(vcap_services: &Value) -> Option<String> {
    let groups = vcap_services.as_object()?;
    for list in groups.values() {
        for svc in list.as_array().into_iter().flatten() {
            let Some(uri) = svc
                .get("credentials")
                .and_then(|c| c.get("uri"))
                .and_then(Value::as_str)
            else {
                continue;
            };
            let Some((scheme, rest)) = uri.split_once("://") else {
                continue;
            };
            match scheme {
                "postgres" | "postgresql" | "mysql2" => return Some(uri.to_string()),
                "mysql" => return Some(format!("mysql2://{rest}")),
                _ => {}
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn first_database_uri_wins() {
        let v = json!({
            "redis": [{"credentials": {"uri": "redis://h:6379"}}],
            "user-provided": [
                {"credentials": {"url": "postgres://not-uri"}},
                {"credentials": {"uri": "mysql://u:p@h:3306/d"}},
                {"credentials": {"uri": "postgres://u:p@h:5432/d"}},
            ],
        });
        assert_eq!(database_url(&v).as_deref(), Some("mysql2://u:p@h:3306/d"));
        let pg = json!({"postgresql": [{"credentials": {"uri": "postgresql://u@h/d"}}]});
        assert_eq!(database_url(&pg).as_deref(), Some("postgresql://u@h/d"));
        assert_eq!(database_url(&json!({})), None);
        assert_eq!(database_url(&json!("x")), None);
        assert_eq!(
            database_url(&json!({"a": [{"credentials": {"uri": 5}}]})),
            None
        );
    }
}
