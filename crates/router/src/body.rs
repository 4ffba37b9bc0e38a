//! Body wrappers: a request body that can be re-sent when the first
//! connection attempt failed before reading it, and a response body that
//! counts bytes and reports when it is done (for the access log).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use std::future::Future;

/// The body type every response of the router has.
pub type RespBody = BoxBody<Bytes, hyper::Error>;

/// A complete in-memory response body.
pub fn full(text: impl Into<Bytes>) -> RespBody {
    Full::new(text.into())
        .map_err(|never| match never {})
        .boxed()
}

/// The client's body and the timer of its next frame.
struct Reading {
    body: Option<Incoming>,
    /// Armed while a frame is awaited; fires after `timeout`.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

struct SharedState {
    body: Mutex<Reading>,
    /// Longest wait for the next frame (zero = none).
    timeout: Duration,
    polled: AtomicBool,
    bytes: AtomicU64,
    /// 0 = unlimited.
    limit: u64,
}

/// Error of a request body: the client's, or the size limit.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// The client sent nothing more of the body for `request_body_timeout_ms`.
#[derive(Debug, thiserror::Error)]
#[error("no request body bytes for {0:?}")]
pub struct BodyTimeout(pub Duration);

/// The request body went over `max_request_body_bytes`.
#[derive(Debug, thiserror::Error)]
#[error("request body larger than {0} bytes")]
pub struct TooLarge(pub u64);

/// The client's request body, shared between retry attempts. Only the attempt
/// that actually reads it consumes it; [`RetryBody::reusable`] says whether a
/// new attempt can still send it whole.
#[derive(Clone)]
pub struct RetryBody {
    state: Arc<SharedState>,
}

impl RetryBody {
    /// `limit`: largest body in bytes (0 = unlimited); going over fails the
    /// body (the backend sees an aborted request). `timeout`: longest wait
    /// for the next frame (zero = none); past it the body fails with
    /// [`BodyTimeout`].
    pub fn new(body: Incoming, limit: u64, timeout: Duration) -> RetryBody {
        RetryBody {
            state: Arc::new(SharedState {
                body: Mutex::new(Reading {
                    body: Some(body),
                    timer: None,
                }),
                timeout,
                polled: AtomicBool::new(false),
                bytes: AtomicU64::new(0),
                limit,
            }),
        }
    }

    /// True while no byte of the body has been read.
    pub fn reusable(&self) -> bool {
        !self.state.polled.load(Ordering::Acquire)
    }

    /// Bytes read from the client so far.
    pub fn bytes_read(&self) -> u64 {
        self.state.bytes.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, Reading> {
        self.state.body.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Body for RetryBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.state.polled.store(true, Ordering::Release);
        let timeout = self.state.timeout;
        let mut guard = self.lock();
        let reading = &mut *guard;
        let Some(body) = reading.body.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(body).poll_frame(cx);
        if polled.is_pending() {
            if timeout.is_zero() {
                return Poll::Pending;
            }
            let timer = reading
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
            if timer.as_mut().poll(cx).is_ready() {
                reading.body = None;
                reading.timer = None;
                return Poll::Ready(Some(Err(Box::new(BodyTimeout(timeout)))));
            }
            return Poll::Pending;
        }
        // Something came: the next frame gets a full timeout again.
        reading.timer = None;
        match polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let total = self
                        .state
                        .bytes
                        .fetch_add(data.len() as u64, Ordering::Relaxed)
                        + data.len() as u64;
                    if self.state.limit > 0 && total > self.state.limit {
                        reading.body = None;
                        return Poll::Ready(Some(Err(Box::new(TooLarge(self.state.limit)))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.lock().body.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.lock()
            .body
            .as_ref()
            .map(|b| b.size_hint())
            .unwrap_or_default()
    }
}

/// Callback run once with the number of body bytes sent, when the response
/// body is finished or dropped.
pub type OnDone = Box<dyn FnOnce(u64) + Send + Sync>;

/// Wraps a response body, counting bytes and calling `on_done` at the end.
pub struct Counted<B> {
    inner: B,
    bytes: u64,
    on_done: Option<OnDone>,
}

impl<B> Counted<B> {
    pub fn new(inner: B, on_done: OnDone) -> Counted<B> {
        Counted {
            inner,
            bytes: 0,
            on_done: Some(on_done),
        }
    }
}

impl<B> Drop for Counted<B> {
    fn drop(&mut self) {
        if let Some(f) = self.on_done.take() {
            f(self.bytes);
        }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Counted<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let res = Pin::new(&mut self.inner).poll_frame(cx);
        match &res {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes += data.len() as u64;
                }
            }
            Poll::Ready(None) => {
                let bytes = self.bytes;
                if let Some(f) = self.on_done.take() {
                    f(bytes);
                }
            }
            _ => {}
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
