//! Moves a backend's answer to the client without letting a client that
//! stops reading hold anything shared.
//!
//! All callers of a backend share one HTTP/2 connection to it, and bytes the
//! gateway has not read stay charged to that connection's window. So a task
//! per call reads the backend's answer at once into a channel of a few
//! frames, which the client's stream drains. When the client takes nothing
//! for the stall timeout, the call is given up: the backend's stream is
//! dropped (its bytes go back to the shared window, the backend is told to
//! stop), the client's stream is reset the next time HTTP/2 polls it, and if
//! it never does (the client opens no window at all), its connection is
//! closed. Each such call is logged and counted
//! (`shop_gateway_stalled_calls_total`).

use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use http_body_util::BodyExt as _;
use shop_platform::observability::log_limit::LogLimit;
use shop_platform::transport::connection::{AddressSlot, ConnectionState};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Frames waiting for the client, per call.
const QUEUED_FRAMES: usize = 2;

/// Longest wait for a given-up stream to be reset before the client's
/// connection is closed instead.
const MAX_RESET_GRACE: Duration = Duration::from_secs(5);

/// Stalled calls are a client's doing: the log says so at most this often
/// (`shop_gateway_stalled_calls_total` counts every one).
static STALL_WARNINGS: LazyLock<LogLimit> = LazyLock::new(|| LogLimit::every(Duration::from_secs(10)));

/// Who the call is for, for the log and the last resort.
pub struct Caller {
    pub backend: &'static str,
    pub method: String,
    pub client: Option<std::net::IpAddr>,
    /// The client's connection, closed when a stalled stream cannot be reset.
    pub connection: Option<Arc<ConnectionState>>,
    /// The call's place in its address's count, held until the answer is out.
    pub in_flight: Option<AddressSlot>,
    /// When the call's life ends, answer included.
    pub deadline: Instant,
}

/// Starts moving `answer` to the returned body.
pub fn pump(answer: tonic::body::Body, stall: Duration, caller: Caller) -> PumpBody {
    let abandoned = CancellationToken::new();
    if http_body::Body::is_end_stream(&answer) {
        // A trailers-only answer (most errors): its status is in the headers,
        // and the client must see them end the stream, or grpc-go clients
        // (grpcurl) read "server closed the stream without sending trailers".
        return PumpBody { queued: None, abandoned };
    }
    let (frames, queued) = mpsc::channel(QUEUED_FRAMES);
    tokio::spawn(run(answer, frames, stall, caller, abandoned.clone()));
    PumpBody { queued: Some(queued), abandoned }
}

async fn run(
    mut answer: tonic::body::Body,
    frames: mpsc::Sender<Result<Frame<Bytes>, BoxError>>,
    stall: Duration,
    caller: Caller,
    abandoned: CancellationToken,
) {
    loop {
        let next = tokio::select! {
            biased;
            // The client's stream is gone (reset, deadline, connection closed).
            () = frames.closed() => return,
            next = answer.frame() => next,
        };
        // The client must take what is queued within the stall timeout, and
        // before the call's deadline.
        let taken_by = (Instant::now() + stall).min(caller.deadline);
        let Some(frame) = next else {
            // All read: wait until the client has taken it all.
            let taken = tokio::time::timeout_at(taken_by, frames.reserve_many(QUEUED_FRAMES)).await;
            if taken.is_ok() {
                return;
            }
            break;
        };
        let frame = frame.map_err(BoxError::from);
        let failed = frame.is_err();
        match tokio::time::timeout_at(taken_by, frames.send(frame)).await {
            Ok(Ok(())) if !failed => {}
            Ok(_) => return,
            Err(_) => break,
        }
    }
    // Stalled (or out of time): the backend's stream goes (its unread bytes
    // back to the shared window, RST_STREAM to the backend), and the
    // client's is reset.
    drop(answer);
    abandoned.cancel();
    if Instant::now() < caller.deadline {
        metrics::counter!("shop_gateway_stalled_calls_total", "backend" => caller.backend).increment(1);
        if let Some(held_back) = STALL_WARNINGS.allow() {
            tracing::warn!(
                backend = caller.backend,
                method = %caller.method,
                client = ?caller.client,
                stall_ms = stall.as_millis() as u64,
                held_back,
                "client stopped reading its answer; call cancelled (held_back: like warnings not logged since the last)"
            );
        }
    } else {
        tracing::info!(backend = caller.backend, method = %caller.method, "answer not taken before the deadline");
    }
    // HTTP/2 polls the body (and so resets the stream) only once the client
    // opens its window; one that never does loses its connection.
    tokio::select! {
        () = frames.closed() => {}
        () = tokio::time::sleep(stall.min(MAX_RESET_GRACE)) => {
            if let Some(connection) = caller.connection {
                tracing::warn!(client = ?caller.client, "closing the connection of a client that reads nothing");
                connection.kill();
            }
        }
    }
}

/// The client's side of a pumped answer.
pub struct PumpBody {
    /// `None` for an answer that has no body at all.
    queued: Option<mpsc::Receiver<Result<Frame<Bytes>, BoxError>>>,
    abandoned: CancellationToken,
}

impl http_body::Body for PumpBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.abandoned.is_cancelled() {
            // hyper resets the stream with the h2 reason it finds: CANCEL,
            // which the client reads as CANCELLED.
            return Poll::Ready(Some(Err(h2::Error::from(h2::Reason::CANCEL).into())));
        }
        match &mut self.queued {
            Some(queued) => queued.poll_recv(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.queued.is_none()
    }
}
