//! Bounds on what users may send (docs/architecture.md §6.1 "Input"):
//! names, environment variables and list parameters, with CF's texts.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};

/// Longest name of an app, org, space or quota (CF: 255).
pub const MAX_NAME: usize = 255;
/// Largest environment variable value (bytes of its JSON text).
pub const MAX_ENV_VALUE: usize = 64 * 1024;
/// Largest environment of an app in all (a process gets at most 128 KiB
/// per string from Linux, and the platform adds its own variables).
pub const MAX_ENV_TOTAL: usize = 128 * 1024;

/// A name: not blank, at most 255 characters, no control characters.
pub fn check_name(name: &str) -> ApiResult<()> {
    if name.trim().is_empty() {
        return Err(ApiError::Unprocessable("Name can't be blank".into()));
    }
    if name.chars().count() > MAX_NAME {
        return Err(ApiError::Unprocessable(format!(
            "Name is too long (maximum is {MAX_NAME} characters)"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::Unprocessable(
            "Name must not contain control characters".into(),
        ));
    }
    Ok(())
}

/// An app's environment as it will be stored.
pub fn check_env(env: &Map<String, Value>) -> ApiResult<()> {
    for (k, v) in env {
        if k.is_empty() {
            return Err(ApiError::Unprocessable(
                "Environment variable names can't be blank".into(),
            ));
        }
        if k.len() > MAX_NAME || k.contains('=') || k.chars().any(char::is_control) {
            return Err(ApiError::Unprocessable(format!(
                "Environment variable name '{}' must be at most {MAX_NAME} characters, without '=' or control characters",
                k.chars().filter(|c| !c.is_control()).take(64).collect::<String>()
            )));
        }
        if k.starts_with("VCAP_") {
            return Err(ApiError::Unprocessable(
                "Environment variables cannot start with VCAP_".into(),
            ));
        }
        if k == "PORT" {
            return Err(ApiError::Unprocessable(
                "Environment variables cannot set PORT".into(),
            ));
        }
        if v.is_object() || v.is_array() {
            return Err(ApiError::Unprocessable(format!(
                "Environment variable '{k}' must be a string, number or boolean"
            )));
        }
        if v.to_string().len() > MAX_ENV_VALUE {
            return Err(ApiError::Unprocessable(format!(
                "Environment variable '{k}' is too long (maximum is {MAX_ENV_VALUE} bytes)"
            )));
        }
    }
    let total = Value::Object(env.clone()).to_string().len();
    if total > MAX_ENV_TOTAL {
        return Err(ApiError::Unprocessable(format!(
            "Environment variables are too large (maximum is {MAX_ENV_TOTAL} bytes in all)"
        )));
    }
    Ok(())
}

/// Refuses query parameters a list does not know (CF's 400), so an
/// unsupported filter is never silently ignored.
pub fn known_params(q: &BTreeMap<String, String>, valid: &[&str]) -> ApiResult<()> {
    let unknown: Vec<String> = q
        .keys()
        .filter(|k| !valid.contains(&k.as_str()))
        .map(|k| format!("'{}'", k.chars().take(64).collect::<String>()))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let valid: Vec<String> = valid.iter().map(|v| format!("'{v}'")).collect();
    Err(ApiError::BadQuery(format!(
        "Unknown query parameter(s): {}. Valid parameters are: {}",
        unknown.join(", "),
        valid.join(", ")
    )))
}

/// A filter of integers (`sequence_ids=1,3`); CF's 400 when one is not.
pub fn int_filter(q: &BTreeMap<String, String>, key: &str) -> ApiResult<Option<Vec<i64>>> {
    let Some(values) = super::filter(q, key) else {
        return Ok(None);
    };
    values
        .iter()
        .map(|s| s.parse::<i64>())
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
        .map_err(|_| ApiError::BadQuery(format!("{key} must be a list of integers")))
}

/// `order_by` of a list: a column among `allowed`, `-` for descending.
pub fn order_by(
    q: &BTreeMap<String, String>,
    allowed: &[&'static str],
) -> ApiResult<Option<(&'static str, bool)>> {
    let Some(v) = q.get("order_by") else {
        return Ok(None);
    };
    let (desc, col) = match v.strip_prefix('-') {
        Some(c) => (true, c),
        None => (false, v.strip_prefix('+').unwrap_or(v)),
    };
    match allowed.iter().find(|a| **a == col) {
        Some(a) => Ok(Some((a, desc))),
        None => {
            let list: Vec<String> = allowed.iter().map(|a| format!("'{a}'")).collect();
            Err(ApiError::BadQuery(format!(
                "Order by can only be: {}",
                list.join(", ")
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn names() {
        assert!(check_name("web").is_ok());
        assert!(check_name(&"é".repeat(255)).is_ok());
        assert!(check_name(&"a".repeat(256)).is_err());
        assert!(check_name(" ").is_err());
        assert!(check_name("a\nb").is_err());
    }

    #[test]
    fn environments() {
        assert!(check_env(&map(json!({"A": "1", "B": 2, "C": true}))).is_ok());
        for bad in [
            json!({"": "x"}),
            json!({"A=B": "x"}),
            json!({"VCAP_SERVICES": "{}"}),
            json!({"PORT": "1"}),
            json!({"A": {"nested": 1}}),
            json!({"A": "x".repeat(MAX_ENV_VALUE)}),
        ] {
            assert!(check_env(&map(bad.clone())).is_err(), "{bad}");
        }
        let big: Map<String, Value> = (0..3)
            .map(|i| (format!("V{i}"), json!("x".repeat(MAX_ENV_VALUE - 10))))
            .collect();
        assert!(check_env(&big).is_err());
    }

    #[test]
    fn params_and_order() {
        let q = BTreeMap::from([("label_selector".to_string(), "x".to_string())]);
        assert!(known_params(&q, &["names"]).is_err());
        assert!(known_params(&BTreeMap::new(), &["names"]).is_ok());
        let q = BTreeMap::from([("order_by".to_string(), "-name".to_string())]);
        assert_eq!(
            order_by(&q, &["name", "created_at"]).ok(),
            Some(Some(("name", true)))
        );
        let q = BTreeMap::from([("order_by".to_string(), "guid; drop".to_string())]);
        assert!(order_by(&q, &["name"]).is_err());
    }
}
