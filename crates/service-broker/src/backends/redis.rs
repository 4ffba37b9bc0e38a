//! Redis 7: per instance a key prefix `<name>:` (nothing is created on
//! the server); per binding an ACL user allowed keys and channels under
//! that prefix only, and no admin, dangerous or keyspace-wide commands.
//! Unbind disables the user, kills its clients and deletes it;
//! deprovision UNLINKs the prefix's keys (SCAN). When the server has an
//! `aclfile`, changes are saved to it (ACL SAVE); without one the users
//! live in memory and the broker puts them back at its start.

use serde_json::Value;

use super::resp::{Reply, Resp};
use super::{advertised, credentials, wait_until, Advertised};
use crate::config::{PlanConfig, RedisConfig};
use crate::names::{binding_user, instance_name};
use crate::Error;

pub struct Redis {
    host: String,
    port: u16,
    user: Option<String>,
    password: Option<String>,
    at: Advertised,
    pub(crate) plans: Vec<PlanConfig>,
}

/// The key prefix of an instance (also its credentials' `name`).
pub fn prefix(instance_id: &str) -> String {
    format!("{}:", instance_name(instance_id))
}

/// What a binding's user may run: everything but admin and dangerous
/// commands, and the commands that reach beyond its prefix (other keys'
/// names, other databases, server-wide scripts and functions).
pub const ACL_COMMANDS: &[&str] = &[
    "+@all",
    "-@admin",
    "-@dangerous",
    "-select",
    "-swapdb",
    "-move",
    "-scan",
    "-randomkey",
    "-function",
    "-script|flush",
    "-pubsub",
];

impl Redis {
    pub fn new(c: &RedisConfig, plans: Vec<PlanConfig>) -> Result<Redis, Error> {
        let u = url::Url::parse(&c.url).map_err(|e| Error::Config(format!("[redis] url: {e}")))?;
        if u.scheme() != "redis" {
            return Err(Error::Config("[redis] url: only redis:// (no TLS)".into()));
        }
        if !matches!(u.path(), "" | "/" | "/0") {
            return Err(Error::Config("[redis] url: only database 0".into()));
        }
        let at = advertised(&c.url, 6379, &c.advertise_host, c.advertise_port)?;
        let (host, port) = super::url_host_port(&c.url, 6379)?;
        let dec = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let user = Some(dec(u.username())).filter(|s| !s.is_empty());
        let password = u.password().map(dec);
        Ok(Redis {
            host,
            port,
            user,
            password,
            at,
            plans,
        })
    }

    async fn conn(&self) -> Result<Resp, Error> {
        Resp::connect(
            &self.host,
            self.port,
            self.user.as_deref(),
            self.password.as_deref(),
        )
        .await
    }

    pub async fn probe(&self) -> Result<(), Error> {
        let mut c = self.conn().await?;
        c.ok(&["PING"]).await?;
        // ACL users need Redis 6+; the broker's rules need 7.
        let info = c.ok(&["INFO", "server"]).await?.text().unwrap_or_default();
        let major = info
            .lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .and_then(|v| v.split('.').next())
            .and_then(|m| m.trim().parse::<u32>().ok())
            .unwrap_or(0);
        if major < 7 {
            return Err(Error::Backend(format!(
                "Redis 7 or newer needed (ACL selectors), found {}",
                if major == 0 {
                    "an unknown version".to_string()
                } else {
                    major.to_string()
                }
            )));
        }
        Ok(())
    }

    /// Saves ACLs when the server has an aclfile.
    async fn save(&self, c: &mut Resp) -> Result<(), Error> {
        let file = c.ok(&["CONFIG", "GET", "aclfile"]).await?;
        let has_file = matches!(&file, Reply::Array(Some(v)) if v.get(1).and_then(Reply::text).is_some_and(|f| !f.is_empty()));
        if has_file {
            c.ok(&["ACL", "SAVE"]).await?;
        }
        Ok(())
    }

    pub async fn provision(&self, _instance_id: &str, _plan: &PlanConfig) -> Result<(), Error> {
        self.conn().await?.ok(&["PING"]).await?;
        Ok(())
    }

    pub async fn bind(
        &self,
        instance_id: &str,
        binding_id: &str,
        password: &str,
        _plan: &PlanConfig,
    ) -> Result<Value, Error> {
        let pfx = prefix(instance_id);
        let user = binding_user(instance_id, binding_id);
        let keys = format!("~{pfx}*");
        let channels = format!("&{pfx}*");
        let pass = format!(">{password}");
        let mut args = vec![
            "ACL", "SETUSER", &user, "reset", "on", &pass, &keys, &channels,
        ];
        args.extend_from_slice(ACL_COMMANDS);
        let mut c = self.conn().await?;
        c.ok(&args).await?;
        self.save(&mut c).await?;
        Ok(credentials("redis", &self.at, &pfx, "", &user, password))
    }

    pub async fn unbind(&self, instance_id: &str, binding_id: &str) -> Result<(), Error> {
        let user = binding_user(instance_id, binding_id);
        let mut c = self.conn().await?;
        if matches!(
            c.ok(&["ACL", "GETUSER", &user]).await?,
            Reply::Array(None) | Reply::Bulk(None)
        ) {
            return Ok(());
        }
        // Off first: no new logins while its clients are killed.
        c.ok(&["ACL", "SETUSER", &user, "off"]).await?;
        let user_ref = &user;
        wait_until(std::time::Duration::from_secs(10), || async {
            let mut c = self.conn().await?;
            let killed = c.ok(&["CLIENT", "KILL", "USER", user_ref]).await?;
            Ok(killed == Reply::Int(0))
        })
        .await?;
        c.ok(&["ACL", "DELUSER", &user]).await?;
        self.save(&mut c).await
    }

    pub async fn deprovision(&self, instance_id: &str) -> Result<(), Error> {
        let pattern = format!("{}*", prefix(instance_id));
        let mut c = self.conn().await?;
        let mut cursor = "0".to_string();
        loop {
            let reply = c
                .ok(&["SCAN", &cursor, "MATCH", &pattern, "COUNT", "1000"])
                .await?;
            let Reply::Array(Some(parts)) = reply else {
                return Err(Error::Backend("redis: bad SCAN reply".into()));
            };
            let next = parts.first().and_then(Reply::text);
            let keys: Vec<Vec<u8>> = match parts.get(1) {
                Some(Reply::Array(Some(ks))) => ks
                    .iter()
                    .filter_map(|k| match k {
                        Reply::Bulk(Some(b)) => Some(b.clone()),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            if !keys.is_empty() {
                let mut args: Vec<&[u8]> = vec![b"UNLINK"];
                args.extend(keys.iter().map(Vec::as_slice));
                c.ok(&args).await?;
            }
            match next {
                Some(n) if n != "0" => cursor = n,
                Some(_) => return Ok(()),
                None => return Err(Error::Backend("redis: bad SCAN cursor".into())),
            }
        }
    }
}
