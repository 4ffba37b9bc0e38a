//! Shared state of a running controller.

use std::ops::Deref;
use std::sync::{Arc, Mutex};

use proto::Bus;
use serde_json::json;

use crate::blobstore::BlobStore;
use crate::config::Config;
use crate::logs::LogHub;
use crate::placement::PlacementTable;
use crate::store::{self, App, AuditEvent, Store, StoreError};

/// Who did something (from the access token, or the system itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub guid: String,
    pub name: String,
    pub kind: &'static str,
}

impl Actor {
    pub fn system() -> Actor {
        Actor {
            guid: "system".into(),
            name: "system".into(),
            kind: "system",
        }
    }
}

/// What an audit event is about.
#[derive(Debug, Clone, Copy)]
pub struct AuditTarget<'a> {
    /// `app`, `user`, `organization`, `space`, `role`, `organization_quota`...
    pub kind: &'a str,
    pub guid: &'a str,
    pub name: &'a str,
    pub space: Option<&'a str>,
    pub org: Option<&'a str>,
}

#[derive(Debug)]
pub struct Inner {
    /// This controller's id (a fresh guid per process): its name as a
    /// lease holder.
    pub id: String,
    pub cfg: Config,
    pub store: Store,
    pub blobs: BlobStore,
    /// The token signing key ring (`crate::keys`).
    pub keys: crate::keys::Keys,
    pub blob_key: crate::keys::Secret,
    pub bus: Option<Bus>,
    pub placement: Mutex<PlacementTable>,
    pub logs: LogHub,
    /// Base URL DEAs use to reach this controller directly (`http://ip:port`).
    pub internal_url: String,
    /// The staging loop's memory.
    pub staging: crate::staging::watch::Watch,
    /// Failed logins per user name and client address.
    pub lockouts: Mutex<crate::login::Lockouts>,
    pub password_checks: crate::login::PasswordChecks,
    /// The service brokers' HTTP client, made on first use.
    osb: std::sync::OnceLock<crate::services::osb::Client>,
}

#[derive(Debug, Clone)]
pub struct Ctx(Arc<Inner>);

impl Deref for Ctx {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl Ctx {
    /// Loads (or creates once) the signing keys from the database.
    pub async fn new(
        cfg: Config,
        store: Store,
        blobs: BlobStore,
        bus: Option<Bus>,
        internal_url: String,
    ) -> Result<Ctx, StoreError> {
        let keep_s = crate::keys::keep_s(cfg.token_ttl_s, crate::auth::REFRESH_TTL_S);
        let keys = crate::keys::Keys::open(&store, keep_s, chrono::Utc::now().timestamp())
            .await
            .map_err(|e| match e {
                crate::keys::KeyError::Store(e) => e,
                crate::keys::KeyError::NoActiveKey => StoreError::NotFound("Active signing key"),
            })?;
        let blob_key = crate::keys::Secret::new(
            store
                .setting_or_insert("blob_signing_key", &crate::keys::random_secret())
                .await?
                .into_bytes(),
        );
        let per_user = crate::login::Policy {
            max_failures: cfg.login_max_failures.max(1),
            window: std::time::Duration::from_secs(cfg.login_lock_s),
            lock: std::time::Duration::from_secs(cfg.login_lock_s),
        };
        let per_addr = crate::login::Policy {
            max_failures: per_user.max_failures.saturating_mul(10),
            ..per_user
        };
        let password_checks = crate::login::PasswordChecks::new(
            cfg.password_checks,
            std::time::Duration::from_secs(2),
        )
        .map_err(StoreError::Hash)?;
        let logs = LogHub::new(cfg.recent_log_kb_per_app.saturating_mul(1024));
        Ok(Ctx(Arc::new(Inner {
            id: crate::store::new_guid(),
            cfg,
            store,
            blobs,
            keys,
            blob_key,
            bus,
            placement: Mutex::new(PlacementTable::default()),
            logs,
            internal_url,
            staging: crate::staging::watch::Watch::default(),
            lockouts: Mutex::new(crate::login::Lockouts::new(per_user, per_addr)),
            password_checks,
            osb: std::sync::OnceLock::new(),
        })))
    }

    /// Signs a token with the active key (`crate::keys`).
    pub async fn sign_token(&self, claims: &crate::auth::Claims) -> Result<String, StoreError> {
        self.keys
            .sign(&self.store, claims)
            .await
            .map_err(|e| match e {
                crate::keys::KeyError::Store(e) => e,
                crate::keys::KeyError::NoActiveKey => StoreError::NotFound("Active signing key"),
            })
    }

    /// Checks a token with the key its `kid` names, at the current time.
    pub async fn verify_token(
        &self,
        token: &str,
        kind: crate::auth::TokenKind,
    ) -> Result<crate::auth::Claims, crate::auth::TokenError> {
        let now = chrono::Utc::now().timestamp();
        self.keys.verify(&self.store, token, kind, now).await
    }

    /// Records an audit event about an app; failures are logged, not returned.
    pub async fn audit_app(&self, actor: &Actor, kind: &str, app: &App, data: serde_json::Value) {
        let org = match self.store.space(&app.space_guid).await {
            Ok(s) => Some(s.organization_guid),
            Err(_) => None,
        };
        let target = AuditTarget {
            kind: "app",
            guid: &app.guid,
            name: &app.name,
            space: Some(&app.space_guid),
            org: org.as_deref(),
        };
        self.audit(actor, kind, target, data).await;
    }

    /// Records an audit event; failures are logged, not returned.
    pub async fn audit(
        &self,
        actor: &Actor,
        kind: &str,
        target: AuditTarget<'_>,
        data: serde_json::Value,
    ) {
        let e = AuditEvent {
            guid: store::new_guid(),
            kind: kind.to_string(),
            actor_guid: actor.guid.clone(),
            actor_type: actor.kind.to_string(),
            actor_name: actor.name.clone(),
            target_guid: target.guid.to_string(),
            target_type: target.kind.into(),
            target_name: target.name.to_string(),
            data: if data.is_null() {
                json!({}).to_string()
            } else {
                data.to_string()
            },
            space_guid: target.space.map(str::to_string),
            organization_guid: target.org.map(str::to_string),
            created_at: store::now(),
        };
        if let Err(err) = self.store.add_event(&e).await {
            tracing::warn!(kind, target = %target.guid, error = %err, "cannot record audit event");
        }
    }

    /// The service brokers' HTTP client.
    pub fn osb(&self) -> Result<&crate::services::osb::Client, String> {
        if let Some(c) = self.osb.get() {
            return Ok(c);
        }
        let c = crate::services::osb::Client::new(std::time::Duration::from_secs(
            self.cfg.broker_client_timeout_s.max(1),
        ))?;
        Ok(self.osb.get_or_init(|| c))
    }
}
