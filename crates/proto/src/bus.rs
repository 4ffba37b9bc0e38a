//! A small typed wrapper over async-nats: JSON payloads in and out, and
//! subscriptions that log and skip malformed messages instead of failing.

use std::marker::PhantomData;
use std::time::Duration;

use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::broadcast;

pub use crate::busauth::BusCredentials;

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("bus: cannot connect to {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: async_nats::ConnectError,
    },
    #[error("bus: cannot encode payload for {subject}: {source}")]
    Encode {
        subject: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("bus: cannot decode reply from {subject}: {source}")]
    Decode {
        subject: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("bus: publish to {subject} failed: {message}")]
    Publish { subject: String, message: String },
    #[error("bus: subscribe to {subject} failed: {message}")]
    Subscribe { subject: String, message: String },
    #[error("bus: request to {subject} failed: {message}")]
    Request { subject: String, message: String },
    #[error("bus: request to {subject} timed out")]
    Timeout { subject: String },
    #[error("bus: nobody listens on {subject}")]
    NoResponders { subject: String },
}

/// Connection state changes, for components that must act on reconnect
/// (the router announces `router.start` again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusEvent {
    Connected,
    Disconnected,
}

/// A connected bus. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Bus {
    client: async_nats::Client,
    events: broadcast::Sender<BusEvent>,
}

/// A message received on a subscription, already decoded.
#[derive(Debug)]
pub struct Incoming<T> {
    pub subject: String,
    pub reply: Option<String>,
    pub payload: T,
}

/// The longest a [`Bus::flush`] waits.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

impl Bus {
    /// Connects to `url` (e.g. `nats://127.0.0.1:4222`) without
    /// credentials, naming the connection after the component. Reconnects
    /// forever after the first success.
    pub async fn connect(url: &str, name: &str) -> Result<Bus, BusError> {
        Bus::connect_with(url, &BusCredentials::default(), name).await
    }

    /// Connects to the servers in `urls` (comma-separated: `nats://a:4222,
    /// nats://b:4222`; reconnects go to any of them) as `creds` (user and
    /// password; TLS, required, when it names a CA).
    pub async fn connect_with(
        urls: &str,
        creds: &BusCredentials,
        name: &str,
    ) -> Result<Bus, BusError> {
        let url = urls;
        let servers: Vec<&str> = urls
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .collect();
        let (tx, _) = broadcast::channel(16);
        let cb_tx = tx.clone();
        let mut opts = async_nats::ConnectOptions::new();
        if !creds.user.is_empty() {
            opts = opts.user_and_password(creds.user.clone(), creds.password.clone());
        }
        if let Some(prefix) = creds.inbox_prefix() {
            opts = opts.custom_inbox_prefix(prefix);
        }
        if let Some(ca) = &creds.tls_ca_file {
            opts = opts.add_root_certificates(ca.clone()).require_tls(true);
        }
        if let (Some(cert), Some(key)) = (&creds.tls_cert_file, &creds.tls_key_file) {
            opts = opts.add_client_certificate(cert.clone(), key.clone());
        }
        let client = opts
            .name(name)
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(5))
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis((100 * attempts as u64).min(1000))
            })
            .event_callback(move |event| {
                let tx = cb_tx.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            tracing::info!("bus connected");
                            let _ = tx.send(BusEvent::Connected);
                        }
                        async_nats::Event::Disconnected => {
                            tracing::warn!("bus disconnected");
                            let _ = tx.send(BusEvent::Disconnected);
                        }
                        // Permission violations and refused logins.
                        async_nats::Event::ServerError(e) => {
                            tracing::warn!(error = %e, "bus server error")
                        }
                        other => tracing::debug!(event = %other, "bus event"),
                    }
                }
            })
            .connect(servers)
            .await
            .map_err(|source| BusError::Connect {
                url: url.to_string(),
                source,
            })?;
        Ok(Bus { client, events: tx })
    }

    /// The underlying client, for JetStream and other raw uses.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// Whether the connection is currently up.
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Connection events (reconnects) from now on.
    pub fn events(&self) -> broadcast::Receiver<BusEvent> {
        self.events.subscribe()
    }

    pub async fn publish<T: Serialize + ?Sized>(
        &self,
        subject: impl Into<String>,
        msg: &T,
    ) -> Result<(), BusError> {
        let subject = subject.into();
        let bytes = encode(&subject, msg)?;
        self.client
            .publish(subject.clone(), bytes.into())
            .await
            .map_err(|e| BusError::Publish {
                subject,
                message: e.to_string(),
            })
    }

    /// Publishes raw bytes (tests use this to send malformed messages).
    pub async fn publish_raw(
        &self,
        subject: impl Into<String>,
        bytes: Vec<u8>,
    ) -> Result<(), BusError> {
        let subject = subject.into();
        self.client
            .publish(subject.clone(), bytes.into())
            .await
            .map_err(|e| BusError::Publish {
                subject,
                message: e.to_string(),
            })
    }

    pub async fn subscribe<T: DeserializeOwned>(
        &self,
        subject: impl Into<String>,
    ) -> Result<Subscription<T>, BusError> {
        let subject = subject.into();
        let inner =
            self.client
                .subscribe(subject.clone())
                .await
                .map_err(|e| BusError::Subscribe {
                    subject: subject.clone(),
                    message: e.to_string(),
                })?;
        Ok(Subscription {
            inner,
            subject,
            _t: PhantomData,
        })
    }

    pub async fn queue_subscribe<T: DeserializeOwned>(
        &self,
        subject: impl Into<String>,
        group: impl Into<String>,
    ) -> Result<Subscription<T>, BusError> {
        let subject = subject.into();
        let inner = self
            .client
            .queue_subscribe(subject.clone(), group.into())
            .await
            .map_err(|e| BusError::Subscribe {
                subject: subject.clone(),
                message: e.to_string(),
            })?;
        Ok(Subscription {
            inner,
            subject,
            _t: PhantomData,
        })
    }

    /// Request/reply with one answer.
    pub async fn request<Req: Serialize + ?Sized, Resp: DeserializeOwned>(
        &self,
        subject: impl Into<String>,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, BusError> {
        let subject = subject.into();
        let bytes = encode(&subject, req)?;
        // The client's own request timeout (10 s by default) would cut a
        // longer wait short: the request carries ours.
        let fut = self.client.send_request(
            subject.clone(),
            async_nats::Request::new()
                .payload(bytes.into())
                .timeout(Some(timeout)),
        );
        let msg = match tokio::time::timeout(timeout, fut).await {
            Err(_) => return Err(BusError::Timeout { subject }),
            Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::TimedOut => {
                return Err(BusError::Timeout { subject })
            }
            Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::NoResponders => {
                return Err(BusError::NoResponders { subject })
            }
            Ok(Err(e)) => {
                return Err(BusError::Request {
                    subject,
                    message: e.to_string(),
                })
            }
            Ok(Ok(m)) => m,
        };
        serde_json::from_slice(&msg.payload).map_err(|source| BusError::Decode { subject, source })
    }

    /// Publishes with a private reply inbox and gathers replies until
    /// `timeout` or until `max` replies arrived. Malformed replies are skipped.
    pub async fn request_many<Req: Serialize + ?Sized, Resp: DeserializeOwned>(
        &self,
        subject: impl Into<String>,
        req: &Req,
        timeout: Duration,
        max: Option<usize>,
    ) -> Result<Vec<Resp>, BusError> {
        self.gather(subject.into(), req, timeout, max, None).await
    }

    /// Like [`Bus::request_many`], but once the first reply arrived it stops
    /// as soon as no further reply comes within `quiet` (peers on a healthy
    /// bus answer within milliseconds of each other), so callers do not
    /// always pay the whole `timeout`.
    pub async fn request_gather<Req: Serialize + ?Sized, Resp: DeserializeOwned>(
        &self,
        subject: impl Into<String>,
        req: &Req,
        timeout: Duration,
        quiet: Duration,
    ) -> Result<Vec<Resp>, BusError> {
        self.gather(subject.into(), req, timeout, None, Some(quiet))
            .await
    }

    async fn gather<Req: Serialize + ?Sized, Resp: DeserializeOwned>(
        &self,
        subject: String,
        req: &Req,
        timeout: Duration,
        max: Option<usize>,
        quiet: Option<Duration>,
    ) -> Result<Vec<Resp>, BusError> {
        let bytes = encode(&subject, req)?;
        let inbox = self.client.new_inbox();
        let mut sub =
            self.client
                .subscribe(inbox.clone())
                .await
                .map_err(|e| BusError::Subscribe {
                    subject: inbox.clone(),
                    message: e.to_string(),
                })?;
        self.client
            .publish_with_reply(subject.clone(), inbox, bytes.into())
            .await
            .map_err(|e| BusError::Publish {
                subject: subject.clone(),
                message: e.to_string(),
            })?;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut out = Vec::new();
        let mut got_any = false;
        while max.is_none_or(|m| out.len() < m) {
            let until = match quiet {
                Some(q) if got_any => deadline.min(tokio::time::Instant::now() + q),
                _ => deadline,
            };
            match tokio::time::timeout_at(until, sub.next()).await {
                Ok(Some(msg)) => {
                    got_any = true;
                    match serde_json::from_slice(&msg.payload) {
                        Ok(v) => out.push(v),
                        Err(e) => {
                            tracing::warn!(subject = %subject, error = %e, "skipping malformed reply")
                        }
                    }
                }
                Ok(None) | Err(_) => break,
            }
        }
        let _ = sub.unsubscribe().await;
        Ok(out)
    }

    /// Answers a request received on a subscription.
    pub async fn reply<T: Serialize + ?Sized>(
        &self,
        reply_to: &str,
        msg: &T,
    ) -> Result<(), BusError> {
        self.publish(reply_to.to_string(), msg).await
    }

    /// Flushes pending publishes to the server, waiting [`FLUSH_TIMEOUT`]
    /// at most: with every server gone the client would wait for a
    /// reconnect forever, and a component stopping in a NATS outage (its
    /// last flush) hung until it was killed.
    pub async fn flush(&self) -> Result<(), BusError> {
        let failed = |message: String| BusError::Publish {
            subject: "<flush>".into(),
            message,
        };
        match tokio::time::timeout(FLUSH_TIMEOUT, self.client.flush()).await {
            Ok(r) => r.map_err(|e| failed(e.to_string())),
            Err(_) => Err(failed(format!(
                "no server took the flush within {FLUSH_TIMEOUT:?}"
            ))),
        }
    }
}

fn encode<T: Serialize + ?Sized>(subject: &str, msg: &T) -> Result<Vec<u8>, BusError> {
    serde_json::to_vec(msg).map_err(|source| BusError::Encode {
        subject: subject.to_string(),
        source,
    })
}

/// A typed subscription.
pub struct Subscription<T> {
    inner: async_nats::Subscriber,
    subject: String,
    _t: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> Subscription<T> {
    /// The next well-formed message. Malformed ones are logged and skipped.
    /// `None` once the subscription is closed.
    pub async fn next(&mut self) -> Option<Incoming<T>> {
        loop {
            let msg = self.inner.next().await?;
            match decode::<T>(&msg.payload) {
                Ok(payload) => {
                    return Some(Incoming {
                        subject: msg.subject.to_string(),
                        reply: msg.reply.map(|r| r.to_string()),
                        payload,
                    })
                }
                Err(e) => tracing::warn!(
                    subscription = %self.subject,
                    subject = %msg.subject,
                    bytes = msg.payload.len(),
                    error = %e,
                    "skipping malformed message"
                ),
            }
        }
    }
}

/// Decodes a payload; exposed so components can unit-test their handling of
/// malformed input.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    serde_json::from_slice(bytes)
}
