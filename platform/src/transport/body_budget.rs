//! How much memory request bodies that have not ended may hold: per process,
//! per client connection and per client address. The gateway's answer to a
//! client that opens streams and never finishes their messages.
//!
//! A message is decoded only once it is whole, so until a body ends its bytes
//! sit in memory (the gateway's copy of a read, kept to send again, or the
//! backend's decoder for a forwarded write). Every data frame that leaves a
//! body unfinished takes its size from the connection's, the address's and
//! the process's allowance, and gives it back when the body ends or is
//! dropped. A frame that finds no room waits for it (the stream's bytes stay
//! in HTTP/2's window meanwhile, so its sender can send no more), at most the
//! body's idle timeout and never past the call's deadline; then the call is
//! RESOURCE_EXHAUSTED. A body that receives nothing for the idle timeout is
//! given up too (DEADLINE_EXCEEDED), and what it held is freed.
//!
//! The frame that ends a body is never held back: the message is whole and
//! is decoded at once, so small calls, which arrive whole, pass even while
//! the budget is spent.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tonic::Status;

use crate::transport::connection::{ClientKey, ConnectionInfo};

/// What unfinished request bodies may hold, and for how long one may idle.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Bytes of unfinished bodies in the whole process.
    pub total_bytes: usize,
    /// Bytes of unfinished bodies on one client connection.
    pub per_connection_bytes: usize,
    /// Bytes of unfinished bodies from one client address (an IPv6 client's /64).
    pub per_addr_bytes: usize,
    /// Longest a body may go without a frame, or a frame wait for room.
    pub idle: Duration,
}

/// The process's allowance and each address's, shared by a server's calls.
#[derive(Clone)]
pub struct BodyBudget {
    inner: Arc<Budget>,
}

struct Budget {
    limits: BodyLimits,
    total: Arc<Semaphore>,
    /// Each address with an unfinished body: its allowance and how many bodies use it.
    per_addr: Mutex<HashMap<ClientKey, (Arc<Semaphore>, usize)>>,
}

impl std::fmt::Debug for BodyBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyBudget").field("limits", &self.inner.limits).finish_non_exhaustive()
    }
}

impl BodyBudget {
    pub fn new(limits: BodyLimits) -> Self {
        metrics::describe_gauge!(
            "shop_unfinished_body_bytes",
            "Bytes held by request bodies that have not ended yet (the gateway's body budget in use)."
        );
        metrics::describe_counter!(
            "shop_unfinished_bodies_refused_total",
            "Calls whose request body was given up: no room in the body budget in time (reason=budget), nothing arrived for the body idle timeout (reason=idle), or the call's deadline passed while it arrived (reason=deadline)."
        );
        for reason in ["budget", "idle", "deadline"] {
            metrics::counter!("shop_unfinished_bodies_refused_total", "reason" => reason).increment(0);
        }
        Self {
            inner: Arc::new(Budget {
                limits,
                total: Arc::new(Semaphore::new(limits.total_bytes)),
                per_addr: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Bytes of unfinished bodies held right now.
    pub fn in_use(&self) -> usize {
        self.inner.limits.total_bytes - self.inner.total.available_permits()
    }

    fn address(&self, key: ClientKey) -> AddressAllowance {
        let mut per_addr = self.inner.per_addr.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (allowance, users) =
            per_addr.entry(key).or_insert_with(|| (Arc::new(Semaphore::new(self.inner.limits.per_addr_bytes)), 0));
        *users += 1;
        AddressAllowance { semaphore: allowance.clone(), key, budget: self.inner.clone() }
    }
}

/// An address's allowance, while one of its bodies uses it.
struct AddressAllowance {
    semaphore: Arc<Semaphore>,
    key: ClientKey,
    budget: Arc<Budget>,
}

impl Drop for AddressAllowance {
    fn drop(&mut self) {
        let mut per_addr = self.budget.per_addr.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((_, users)) = per_addr.get_mut(&self.key) {
            *users -= 1;
            if *users == 0 {
                per_addr.remove(&self.key);
            }
        }
    }
}

/// Why a call's body was given up, for the code that forwards it: a
/// backend that loses the body answers nothing useful, the client must hear
/// this instead.
#[derive(Debug, Clone, Default)]
pub struct BodyFailure(Arc<OnceLock<Status>>);

impl BodyFailure {
    pub fn get(&self) -> Option<Status> {
        self.0.get().cloned()
    }

    fn set(&self, status: Status) -> Status {
        let _ = self.0.set(status.clone());
        status
    }
}

/// A request body under the budget.
pub struct MeteredBody<B> {
    inner: B,
    budget: BodyBudget,
    connection: Option<Arc<Semaphore>>,
    address: Option<AddressAllowance>,
    /// What the body holds now, of each allowance in [`Self::allowances`]'
    /// order; given back when it ends or is dropped.
    held: Vec<OwnedSemaphorePermit>,
    /// A frame that found no room, and the wait for it.
    waiting: Option<(Frame<Bytes>, Wait)>,
    /// A frame read past a waiting one (to see whether the body ends there).
    next: Option<Frame<Bytes>>,
    /// The inner body has ended (what is in `waiting` and `next` still goes out).
    inner_ended: bool,
    idle: Pin<Box<Sleep>>,
    /// When the call's deadline passes: no wait goes beyond it.
    deadline: Option<Instant>,
    failure: BodyFailure,
    ended: bool,
}

/// Room taken from each allowance, in [`MeteredBody::allowances`]' order.
type Room = Vec<OwnedSemaphorePermit>;

type Wait = Pin<Box<dyn Future<Output = Option<Room>> + Send>>;

impl<B> MeteredBody<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<tower::BoxError>,
{
    fn limits(&self) -> BodyLimits {
        self.budget.inner.limits
    }

    fn release(&mut self) {
        self.held.clear();
        self.address = None;
        self.connection = None;
        metrics::gauge!("shop_unfinished_body_bytes").set(self.budget.in_use() as f64);
    }

    fn give_up(&mut self, reason: &'static str, status: Status) -> tower::BoxError {
        self.release();
        self.waiting = None;
        self.next = None;
        self.ended = true;
        metrics::counter!("shop_unfinished_bodies_refused_total", "reason" => reason).increment(1);
        self.failure.set(status).into()
    }

    fn hold(&mut self, room: Room) {
        if self.held.is_empty() {
            self.held = room;
        } else {
            for (held, more) in self.held.iter_mut().zip(room) {
                held.merge(more);
            }
        }
        metrics::gauge!("shop_unfinished_body_bytes").set(self.budget.in_use() as f64);
    }

    /// Room for `bytes` at once from every allowance, or `None`.
    fn try_take(&self, bytes: u32) -> Option<Room> {
        self.allowances().into_iter().map(|semaphore| semaphore.try_acquire_many_owned(bytes).ok()).collect()
    }

    fn allowances(&self) -> Vec<Arc<Semaphore>> {
        // One order for every body (connection, address, process): two bodies
        // waiting on each other's allowances cannot each hold what the other needs.
        let mut allowances = Vec::with_capacity(3);
        allowances.extend(self.connection.clone());
        allowances.extend(self.address.as_ref().map(|address| address.semaphore.clone()));
        allowances.push(self.budget.inner.total.clone());
        allowances
    }

    /// Waits for room for `bytes`, in the fixed order, up to `until`.
    fn wait_for(&self, bytes: u32, until: Instant) -> Wait {
        let allowances = self.allowances();
        Box::pin(async move {
            tokio::time::timeout_at(until, async move {
                let mut taken = Vec::with_capacity(allowances.len());
                for semaphore in allowances {
                    taken.push(semaphore.acquire_many_owned(bytes).await.ok()?);
                }
                Some(taken)
            })
            .await
            .ok()
            .flatten()
        })
    }

    fn too_large(&self, bytes: usize) -> bool {
        let limits = self.limits();
        bytes > limits.total_bytes
            || (self.connection.is_some() && bytes > limits.per_connection_bytes)
            || (self.address.is_some() && bytes > limits.per_addr_bytes)
    }

    /// Whether nothing more will come after what is already read.
    /// (A frame read ahead is already here: it needs no room either.)
    fn is_whole(&self) -> bool {
        self.inner_ended || self.inner.is_end_stream()
    }

    /// Starts the idle timer again from `now`, never past the call's deadline.
    fn rearm(&mut self, now: Instant) {
        let idle = now + self.limits().idle;
        let until = self.deadline.map_or(idle, |deadline| deadline.min(idle));
        self.idle.as_mut().reset(until);
    }

    /// The idle timer fired: the body idled, or the call's deadline passed.
    fn timed_out(&mut self) -> tower::BoxError {
        if self.deadline.is_some_and(|deadline| deadline <= Instant::now()) {
            return self.give_up(
                "deadline",
                Status::deadline_exceeded("the call's deadline passed while its request message was arriving"),
            );
        }
        let after = self.limits().idle;
        self.give_up("idle", idle(after))
    }

    /// Reads ahead of a waiting frame, once: a message that arrives whole
    /// (its end right behind it) needs no room.
    fn read_ahead(&mut self, cx: &mut Context<'_>) -> Result<(), tower::BoxError> {
        if self.next.is_some() || self.inner_ended {
            return Ok(());
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(None) => self.inner_ended = true,
            Poll::Ready(Some(Ok(frame))) => self.next = Some(frame),
            Poll::Ready(Some(Err(error))) => {
                self.release();
                self.ended = true;
                return Err(error.into());
            }
            Poll::Pending => {}
        }
        Ok(())
    }

    /// Lets `frame` out if the body may hold it, or starts waiting for room.
    fn admit(
        &mut self,
        frame: Frame<Bytes>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tower::BoxError>>> {
        let bytes = frame.data_ref().map_or(0, Bytes::len);
        if bytes == 0 || self.inner.is_end_stream() || self.inner_ended {
            if self.is_whole() {
                // The message is whole: it is decoded now, nothing waits on it.
                self.release();
            }
            return Poll::Ready(Some(Ok(frame)));
        }
        let now = Instant::now();
        self.rearm(now);
        if self.too_large(bytes) {
            return Poll::Ready(Some(Err(self.give_up("budget", no_room()))));
        }
        let bytes = bytes as u32;
        if let Some(room) = self.try_take(bytes) {
            self.hold(room);
            return Poll::Ready(Some(Ok(frame)));
        }
        let until = self.deadline.map_or(now + self.limits().idle, |deadline| deadline.min(now + self.limits().idle));
        let wait = self.wait_for(bytes, until);
        self.waiting = Some((frame, wait));
        self.poll_waiting(cx)
    }

    fn poll_waiting(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, tower::BoxError>>> {
        if let Err(error) = self.read_ahead(cx) {
            self.waiting = None;
            return Poll::Ready(Some(Err(error)));
        }
        if self.is_whole() {
            let Some((frame, _)) = self.waiting.take() else { return Poll::Ready(None) };
            self.release();
            return Poll::Ready(Some(Ok(frame)));
        }
        let Some((_, wait)) = self.waiting.as_mut() else { return Poll::Ready(None) };
        let Poll::Ready(room) = wait.as_mut().poll(cx) else { return Poll::Pending };
        let Some((frame, _)) = self.waiting.take() else { return Poll::Ready(None) };
        match room {
            Some(room) => {
                self.hold(room);
                self.rearm(Instant::now());
                Poll::Ready(Some(Ok(frame)))
            }
            None => Poll::Ready(Some(Err(self.give_up("budget", no_room())))),
        }
    }
}

fn no_room() -> Status {
    Status::resource_exhausted(
        "the server holds as many unfinished requests as it may; send the message whole, or try again shortly",
    )
}

fn idle(after: Duration) -> Status {
    Status::deadline_exceeded(format!(
        "the request's message stopped arriving: nothing came for {} ms",
        after.as_millis()
    ))
}

impl<B> http_body::Body for MeteredBody<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<tower::BoxError>,
{
    type Data = Bytes;
    type Error = tower::BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.ended {
            return Poll::Ready(None);
        }
        if this.waiting.is_some() {
            return this.poll_waiting(cx);
        }
        if let Some(next) = this.next.take() {
            return this.admit(next, cx);
        }
        if this.inner_ended {
            this.ended = true;
            this.release();
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => {
                if this.idle.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Some(Err(this.timed_out())));
                }
                Poll::Pending
            }
            Poll::Ready(None) => {
                this.ended = true;
                this.release();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(error))) => {
                this.release();
                this.ended = true;
                Poll::Ready(Some(Err(error.into())))
            }
            Poll::Ready(Some(Ok(frame))) => this.admit(frame, cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended
            || (self.waiting.is_none() && self.next.is_none() && (self.inner_ended || self.inner.is_end_stream()))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A Connect call's `Connect-Timeout-Ms`, where it is a number.
fn connect_timeout(headers: &http::HeaderMap) -> Option<Duration> {
    let millis: u64 = headers.get("connect-timeout-ms")?.to_str().ok()?.parse().ok()?;
    Some(Duration::from_millis(millis))
}

/// Puts every request body of a server, whatever its face, under `budget`
/// (when set) and a
/// [`BodyFailure`] in the request's extensions.
#[derive(Debug, Clone)]
pub struct BodyBudgetLayer {
    budget: Option<BodyBudget>,
    /// The server's cap on a call's life (a shorter client deadline wins).
    max_call: Duration,
}

impl BodyBudgetLayer {
    pub fn new(budget: Option<BodyBudget>, max_call: Duration) -> Self {
        Self { budget, max_call }
    }
}

impl<S> tower::Layer<S> for BodyBudgetLayer {
    type Service = BodyBudgetService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BodyBudgetService { inner, layer: self.clone() }
    }
}

#[derive(Debug, Clone)]
pub struct BodyBudgetService<S> {
    inner: S,
    layer: BodyBudgetLayer,
}

impl<S, B> tower::Service<http::Request<B>> for BodyBudgetService<S>
where
    S: tower::Service<http::Request<tonic::body::Body>>,
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<tower::BoxError>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let Some(budget) = self.layer.budget.clone() else {
            return self.inner.call(request.map(tonic::body::Body::new));
        };
        let limits = budget.inner.limits;
        let info = request.extensions().get::<ConnectionInfo>().cloned();
        let connection = info.as_ref().map(|info| info.state.body_allowance(limits.per_connection_bytes));
        let address =
            info.as_ref().and_then(|info| info.tcp.remote_addr()).map(|addr| budget.address(ClientKey::of(addr.ip())));
        // A Connect call says its deadline in its own header: it is not
        // translated yet out here, where every face's body is counted.
        let client = crate::transport::client::incoming_timeout(request.headers())
            .or_else(|| connect_timeout(request.headers()));
        // Calls open by design (reflection, streams) are spared the cap, as
        // the call limits spare them: only a client's own deadline ends them.
        let life = if super::call_limits::is_long_lived(request.uri().path()) {
            client
        } else {
            Some(client.map_or(self.layer.max_call, |client| client.min(self.layer.max_call)))
        };
        let failure = BodyFailure::default();
        let (mut parts, body) = request.into_parts();
        parts.extensions.insert(failure.clone());
        let metered = MeteredBody {
            inner: body,
            budget,
            connection,
            address,
            held: Vec::new(),
            waiting: None,
            next: None,
            inner_ended: false,
            idle: Box::pin(tokio::time::sleep(life.map_or(limits.idle, |life| limits.idle.min(life)))),
            deadline: life.map(|life| Instant::now() + life),
            failure,
            ended: false,
        };
        self.inner.call(http::Request::from_parts(parts, tonic::body::Body::new(metered)))
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt as _;
    use tokio::sync::mpsc::Sender;
    use tokio_stream::StreamExt as _;

    use super::*;

    fn budget(total: usize, per_addr: usize) -> BodyBudget {
        BodyBudget::new(BodyLimits {
            total_bytes: total,
            per_connection_bytes: total,
            per_addr_bytes: per_addr,
            idle: Duration::from_millis(200),
        })
    }

    /// A body fed by hand, frames sent through a channel and ended by
    /// dropping it, from the client address `addr`, under `budget`.
    type Fed = MeteredBody<
        http_body_util::StreamBody<Box<dyn tokio_stream::Stream<Item = Result<Frame<Bytes>, Status>> + Send + Unpin>>,
    >;

    fn fed(budget: &BodyBudget, addr: &str) -> (Sender<Bytes>, Fed) {
        let (sender, receiver) = tokio::sync::mpsc::channel::<Bytes>(8);
        let frames = tokio_stream::wrappers::ReceiverStream::new(receiver).map(|data| Ok(Frame::data(data)));
        let stream: Box<dyn tokio_stream::Stream<Item = Result<Frame<Bytes>, Status>> + Send + Unpin> =
            Box::new(frames);
        (sender, metered(http_body_util::StreamBody::new(stream), budget, addr))
    }

    /// A fed body that has taken `bytes` of a message it has not ended.
    async fn holding(budget: &BodyBudget, addr: &str, bytes: usize) -> (Sender<Bytes>, Fed) {
        let (sender, mut body) = fed(budget, addr);
        sender.send(Bytes::from(vec![0; bytes])).await.unwrap();
        assert_eq!(body.frame().await.unwrap().unwrap().into_data().unwrap().len(), bytes);
        (sender, body)
    }

    fn metered<B>(inner: B, budget: &BodyBudget, addr: &str) -> MeteredBody<B> {
        MeteredBody {
            inner,
            budget: budget.clone(),
            connection: None,
            address: Some(budget.address(ClientKey::of(addr.parse().unwrap()))),
            held: Vec::new(),
            waiting: None,
            next: None,
            inner_ended: false,
            idle: Box::pin(tokio::time::sleep(budget.inner.limits.idle)),
            deadline: None,
            failure: BodyFailure::default(),
            ended: false,
        }
    }

    fn code(error: tower::BoxError) -> tonic::Code {
        error.downcast::<Status>().expect("a status").code()
    }

    #[tokio::test]
    async fn unfinished_bytes_are_held_until_the_body_ends_and_then_given_back() {
        let budget = budget(1_000, 1_000);
        let (sender, mut body) = holding(&budget, "203.0.113.1", 300).await;
        assert_eq!(budget.in_use(), 300);
        drop(sender);
        assert!(body.frame().await.is_none());
        assert_eq!(budget.in_use(), 0, "an ended body holds nothing");
    }

    #[tokio::test]
    async fn a_body_that_finds_no_room_waits_then_is_resource_exhausted() {
        let budget = budget(1_000, 1_000);
        let (_first_sender, first) = holding(&budget, "203.0.113.1", 900).await;
        let (second_sender, mut second) = fed(&budget, "203.0.113.2");
        second_sender.send(Bytes::from(vec![0; 200])).await.unwrap();
        let started = Instant::now();
        assert_eq!(code(second.frame().await.unwrap().unwrap_err()), tonic::Code::ResourceExhausted);
        assert!(started.elapsed() >= Duration::from_millis(150), "it waited for room first");
        assert_eq!(second.failure.get().unwrap().code(), tonic::Code::ResourceExhausted);
        assert_eq!(budget.in_use(), 900);
        drop(first);
        assert_eq!(budget.in_use(), 0, "a dropped body gives its bytes back");
    }

    #[tokio::test]
    async fn a_waiting_body_goes_on_once_another_ends() {
        let budget = budget(1_000, 1_000);
        let (_first_sender, first) = holding(&budget, "203.0.113.1", 900).await;
        let (second_sender, mut second) = fed(&budget, "203.0.113.2");
        second_sender.send(Bytes::from(vec![0; 200])).await.unwrap();
        let waiting = tokio::spawn(async move { second.frame().await.map(|frame| frame.is_ok()) });
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(first);
        assert_eq!(waiting.await.unwrap(), Some(true));
    }

    #[tokio::test]
    async fn one_address_cannot_take_more_than_its_share() {
        let budget = budget(1_000, 400);
        let (sender, mut greedy) = holding(&budget, "203.0.113.1", 300).await;
        sender.send(Bytes::from(vec![0; 300])).await.unwrap();
        assert!(greedy.frame().await.unwrap().is_err(), "past the address's 400 bytes");
        let _other = holding(&budget, "203.0.113.9", 300).await; // another address has its own share
    }

    #[tokio::test]
    async fn a_body_that_stops_arriving_is_given_up_and_frees_its_bytes() {
        let budget = budget(1_000, 1_000);
        let (_sender, mut body) = holding(&budget, "203.0.113.1", 100).await;
        assert_eq!(code(body.frame().await.unwrap().unwrap_err()), tonic::Code::DeadlineExceeded);
        assert_eq!(budget.in_use(), 0);
    }

    #[tokio::test]
    async fn a_body_still_arriving_at_the_calls_deadline_is_given_up_then_not_at_the_idle_timeout() {
        let budget = BodyBudget::new(BodyLimits {
            total_bytes: 1_000,
            per_connection_bytes: 1_000,
            per_addr_bytes: 1_000,
            idle: Duration::from_secs(5),
        });
        let (sender, mut body) = fed(&budget, "203.0.113.1");
        body.deadline = Some(Instant::now() + Duration::from_millis(200));
        let started = Instant::now();
        let trickle = tokio::spawn(async move {
            // A byte every 40 ms: never idle for the 200 ms idle timeout.
            while sender.send(Bytes::from_static(b"x")).await.is_ok() {
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        });
        let given_up = tokio::time::timeout(Duration::from_secs(4), async {
            loop {
                match body.frame().await {
                    Some(Ok(_)) => continue,
                    Some(Err(error)) => break error,
                    None => panic!("the body ended"),
                }
            }
        });
        let error = given_up.await.expect("given up at the deadline, well before the 5 s idle timeout");
        assert_eq!(code(error), tonic::Code::DeadlineExceeded);
        assert!(started.elapsed() >= Duration::from_millis(200), "not before the deadline");
        assert!(body.failure.get().unwrap().message().contains("deadline"));
        assert_eq!(budget.in_use(), 0);
        trickle.abort();
    }

    #[tokio::test]
    async fn a_message_whose_end_comes_right_behind_it_passes_even_when_the_budget_is_spent() {
        let budget = budget(100, 100);
        let _hog = holding(&budget, "203.0.113.1", 100).await;
        // As a gRPC client sends a unary call: the message, then the end.
        let (small_sender, mut small) = fed(&budget, "203.0.113.2");
        small_sender.send(Bytes::from(vec![0; 50])).await.unwrap();
        drop(small_sender);
        assert_eq!(small.frame().await.unwrap().unwrap().into_data().unwrap().len(), 50);
        assert!(small.frame().await.is_none());
        assert_eq!(budget.in_use(), 100);
    }

    #[tokio::test]
    async fn a_whole_message_passes_even_when_the_budget_is_spent() {
        let budget = budget(100, 100);
        let _hog = holding(&budget, "203.0.113.1", 100).await;
        let mut small = metered(http_body_util::Full::new(Bytes::from(vec![0; 50])), &budget, "203.0.113.2");
        assert_eq!(small.frame().await.unwrap().unwrap().into_data().unwrap().len(), 50);
        assert_eq!(budget.in_use(), 100);
    }
}
