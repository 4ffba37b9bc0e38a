//! The leader lock: several health managers may run, only the holder of a
//! NATS JetStream key-value key acts (docs/architecture.md §13.2).
//!
//! The bucket keeps one revision per key (`history = 1`) and drops entries
//! older than the TTL (`max_age`). A contender `create`s the key (fails while
//! someone holds it); the holder renews it every pass with `update` at the
//! revision it last wrote (fails once someone else took it over). When the
//! holder dies its entry ages out and the next contender's `create` wins.
//! A clean shutdown deletes the key so a standby takes over at once.
//!
//! On a NATS cluster the bucket's stream is replicated (`leader_replicas`,
//! `num_replicas` of the stream): with 3 copies on a cluster of three the
//! lock survives losing any one node. An existing stream is used as it is
//! (its replica count is not changed).

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};

/// The key every health manager contends for.
pub const KEY: &str = "leader";

/// What one attempt to take or keep the lock found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Held (taken now or renewed).
    Leading,
    /// Someone else holds it, or the bus/JetStream is unavailable.
    Following,
}

pub struct LeaderLock {
    js: jetstream::Context,
    bucket: String,
    id: String,
    ttl: Duration,
    /// Copies of the bucket's stream (its `num_replicas`): 1 on one
    /// server; 3 on a cluster of three, so the lock outlives any one node.
    replicas: usize,
    store: Option<kv::Store>,
    /// The revision we last wrote while leading.
    revision: Option<u64>,
    /// Whether the last failure to open the bucket was logged.
    warned: bool,
}

/// Every KV call gets at most this long (a NATS outage must not stall a pass).
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

impl LeaderLock {
    pub fn new(
        client: async_nats::Client,
        bucket: &str,
        id: &str,
        ttl: Duration,
        replicas: usize,
    ) -> LeaderLock {
        LeaderLock {
            js: jetstream::new(client),
            bucket: bucket.to_string(),
            id: id.to_string(),
            ttl,
            replicas: replicas.max(1),
            store: None,
            revision: None,
            warned: false,
        }
    }

    pub fn is_leading(&self) -> bool {
        self.revision.is_some()
    }

    /// Opens (or creates) the bucket.
    async fn store(&mut self) -> Option<kv::Store> {
        if let Some(s) = &self.store {
            return Some(s.clone());
        }
        // The bucket's stream is created directly (the same shape
        // `create_key_value` makes): `create_key_value` first queries the
        // account, which fails on nats-server 2.9.
        let opened = tokio::time::timeout(CALL_TIMEOUT, async {
            self.js
                .get_or_create_stream(stream::Config {
                    name: format!("KV_{}", self.bucket),
                    description: Some("health manager leader lock".into()),
                    subjects: vec![format!("$KV.{}.>", self.bucket)],
                    max_messages_per_subject: 1,
                    max_age: self.ttl,
                    storage: stream::StorageType::Memory,
                    num_replicas: self.replicas,
                    allow_rollup: true,
                    deny_delete: true,
                    allow_direct: true,
                    discard: stream::DiscardPolicy::New,
                    ..Default::default()
                })
                .await
                .map_err(|e| e.to_string())?;
            self.js
                .get_key_value(&self.bucket)
                .await
                .map_err(|e| e.to_string())
        })
        .await;
        match opened {
            Ok(Ok(s)) => {
                self.warned = false;
                self.store = Some(s.clone());
                Some(s)
            }
            Ok(Err(e)) => {
                if !self.warned {
                    tracing::warn!(bucket = %self.bucket, error = %e, "cannot open the leader lock bucket (is JetStream on?)");
                    self.warned = true;
                }
                None
            }
            Err(_) => {
                if !self.warned {
                    tracing::warn!(bucket = %self.bucket, "timed out opening the leader lock bucket");
                    self.warned = true;
                }
                None
            }
        }
    }

    /// Takes the lock if free, renews it if held. Call it every pass.
    pub async fn tick(&mut self) -> Outcome {
        let Some(store) = self.store().await else {
            self.lose("bucket unavailable");
            return Outcome::Following;
        };
        let value = bytes::Bytes::from(self.id.clone().into_bytes());
        match self.revision {
            Some(rev) => {
                match tokio::time::timeout(CALL_TIMEOUT, store.update(KEY, value, rev)).await {
                    Ok(Ok(next)) => {
                        self.revision = Some(next);
                        Outcome::Leading
                    }
                    Ok(Err(e)) => {
                        self.lose(&e.to_string());
                        Outcome::Following
                    }
                    Err(_) => {
                        self.lose("renewal timed out");
                        Outcome::Following
                    }
                }
            }
            None => match tokio::time::timeout(CALL_TIMEOUT, store.create(KEY, value)).await {
                Ok(Ok(rev)) => {
                    tracing::info!(id = %self.id, bucket = %self.bucket, "acquired the leader lock: acting");
                    self.revision = Some(rev);
                    Outcome::Leading
                }
                _ => Outcome::Following,
            },
        }
    }

    fn lose(&mut self, why: &str) {
        if self.revision.take().is_some() {
            tracing::warn!(id = %self.id, reason = %why, "lost the leader lock: standing by");
        }
    }

    /// Gives the lock up at shutdown so another HM takes over at once.
    pub async fn release(&mut self) {
        let Some(rev) = self.revision.take() else {
            return;
        };
        if let Some(store) = &self.store {
            let _ =
                tokio::time::timeout(CALL_TIMEOUT, store.delete_expect_revision(KEY, Some(rev)))
                    .await;
            tracing::info!(id = %self.id, "released the leader lock");
        }
    }
}
