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

/// The egress rules a binding's credentials need (the security groups
/// "kept in step with bindings"): tcp to each bound service's `hostname`
/// and `port` (or the host and port of its `uri`), when the host is an IPv4
/// address. Names are left out: the DEA cannot know what they resolve to.
pub fn egress_rules(vcap_services: &Value) -> Vec<crate::EgressRule> {
    let mut out: Vec<crate::EgressRule> = Vec::new();
    let Some(groups) = vcap_services.as_object() else {
        return out;
    };
    for list in groups.values() {
        for svc in list.as_array().into_iter().flatten() {
            let c = &svc["credentials"];
            let from_fields = c["hostname"].as_str().zip(match &c["port"] {
                Value::Number(n) => n.as_u64().and_then(|p| u16::try_from(p).ok()),
                Value::String(s) => s.parse::<u16>().ok(),
                _ => None,
            });
            let from_uri = c["uri"].as_str().and_then(uri_host_port);
            let Some((host, port)) = from_fields.map(|(h, p)| (h.to_string(), p)).or(from_uri)
            else {
                continue;
            };
            if host.parse::<std::net::Ipv4Addr>().is_err() {
                continue;
            }
            let rule = crate::EgressRule::new("tcp", &host, Some(&port.to_string()));
            if !out.contains(&rule) {
                out.push(rule);
            }
        }
    }
    out
}

/// `host` and `port` of `scheme://[user[:pw]@]host:port[/...]`.
fn uri_host_port(uri: &str) -> Option<(String, u16)> {
    let rest = uri.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = hostport.rsplit_once(':')?;
    Some((host.to_string(), port.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bindings_become_egress_rules() {
        let v = json!({
            "postgresql": [{"credentials": {"hostname": "10.253.0.1", "port": 5432, "uri": "postgres://u:p@10.253.0.1:5432/d"}}],
            "redis": [{"credentials": {"hostname": "10.253.0.1", "port": "6379"}}],
            "user-provided": [
                {"credentials": {"uri": "amqp://u:p@192.0.2.9:5672/v"}},
                {"credentials": {"uri": "mysql://u:p@db.example.com:3306/d"}},
                {"credentials": {"hostname": "10.253.0.1", "port": 5432}},
                {"credentials": "x"},
            ],
        });
        let rules = egress_rules(&v);
        let want = [
            crate::EgressRule::new("tcp", "10.253.0.1", Some("5432")),
            crate::EgressRule::new("tcp", "10.253.0.1", Some("6379")),
            crate::EgressRule::new("tcp", "192.0.2.9", Some("5672")),
        ];
        assert_eq!(rules, want);
        assert!(egress_rules(&json!({})).is_empty());
    }

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
