//! What a server allows one client connection, below HTTP/2, where hyper and
//! h2 have no timers of their own: the HTTP/2 preface must arrive within the
//! handshake timeout; a connection with no call in flight for the idle
//! timeout is closed, whatever PINGs it answers; one client address may hold
//! only so many connections, and the server only so many in all; and a
//! connection can be killed from above (the gateway does that to a client
//! that stopped reading).
//!
//! A full table makes room rather than turn a newcomer away: the connection
//! of no use for the longest goes (its handshake not done, or no call in
//! flight), once that has lasted a moment. Only when every connection is
//! busy with calls, or was busy a moment ago, is a newcomer closed. So
//! connections that merely sit there, however many addresses open them,
//! cannot keep anyone out.
//!
//! [`guard`] wraps a server's accepted sockets; [`ConnectionGuardLayer`]
//! counts calls in flight per connection and keeps `TcpConnectInfo` in each
//! request's extensions, where tonic and the gateway look for the peer.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;
use tokio_stream::{Stream, StreamExt as _};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::observability::log_limit::LogLimit;

/// The HTTP/2 client preface (24 bytes) and the SETTINGS frame header after it.
const PREFACE_BYTES: usize = 24 + 9;

/// What one server allows a connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Time for the HTTP/2 preface to arrive.
    pub handshake: Duration,
    /// Longest a connection may stay open with no call in flight (zero: no limit).
    pub idle: Duration,
    /// Connections one client address may hold at once (0: no limit).
    pub per_addr: usize,
    /// Connections the server holds at once, all addresses together (0: no limit).
    pub total: usize,
}

/// The state of one connection that its calls share.
#[derive(Debug)]
pub struct ConnectionState {
    calls: AtomicUsize,
    /// Since the last call ended, or since the connection opened.
    idle_since: Mutex<Instant>,
    kill: CancellationToken,
    /// When it was accepted.
    opened: Instant,
    /// Whether the TLS handshake (if any) and the HTTP/2 preface are done.
    established: AtomicBool,
    /// What its unfinished request bodies may hold (see [`crate::transport::body_budget`]).
    body_bytes: OnceLock<Arc<Semaphore>>,
}

impl ConnectionState {
    #[cfg(test)]
    fn new() -> Self {
        Self::killed_with(CancellationToken::new())
    }

    /// A connection that `kill` closes (with its server's others).
    fn killed_with(kill: CancellationToken) -> Self {
        let now = Instant::now();
        Self {
            calls: AtomicUsize::new(0),
            idle_since: Mutex::new(now),
            kill,
            opened: now,
            established: AtomicBool::new(false),
            body_bytes: OnceLock::new(),
        }
    }

    /// This connection's allowance for unfinished request bodies, made with
    /// `bytes` on first use.
    pub fn body_allowance(&self, bytes: usize) -> Arc<Semaphore> {
        self.body_bytes.get_or_init(|| Arc::new(Semaphore::new(bytes))).clone()
    }

    /// Since when this connection has been of no use: since it opened, while
    /// its handshake is not done; since its last call ended, while it has
    /// none. `None` while it has calls in flight, is already going, or has
    /// been of no use for less than [`EVICTION_GRACE`] (a client between
    /// two calls, or still in its first round trips).
    fn useless_since(&self, now: Instant) -> Option<(bool, Instant)> {
        if self.kill.is_cancelled() {
            return None;
        }
        let (established, since) = if !self.established.load(Ordering::SeqCst) {
            (false, self.opened)
        } else if self.calls.load(Ordering::SeqCst) > 0 {
            return None;
        } else {
            (true, *self.idle_since.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
        };
        (now.saturating_duration_since(since) >= EVICTION_GRACE).then_some((established, since))
    }

    /// Closes the connection at once, every stream on it with it.
    pub fn kill(&self) {
        self.kill.cancel();
    }

    fn call_started(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }

    fn call_ended(&self) {
        if self.calls.fetch_sub(1, Ordering::SeqCst) == 1 {
            *self.idle_since.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Instant::now();
        }
    }

    /// When the connection becomes too idle, or `None` while calls are in flight.
    fn idle_deadline(&self, idle: Duration) -> Option<Instant> {
        if self.calls.load(Ordering::SeqCst) > 0 {
            return None;
        }
        Some(*self.idle_since.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) + idle)
    }
}

/// A call in flight on a connection, until dropped.
#[derive(Debug)]
pub struct CallInFlight(Arc<ConnectionState>);

impl Drop for CallInFlight {
    fn drop(&mut self) {
        self.0.call_ended();
    }
}

/// What a guarded connection puts in each request's extensions.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub tcp: TcpConnectInfo,
    pub state: Arc<ConnectionState>,
}

/// The client a per-address limit counts: an IPv4 address, or the /64 an
/// IPv6 address is in. One IPv6 host is given a whole /64, so counting its
/// addresses one by one would give it billions of shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    pub fn of(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(v4) => Self(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => Self(IpAddr::V6(std::net::Ipv6Addr::from_bits(v6.to_bits() & !((1u128 << 64) - 1)))),
            },
        }
    }

    /// The address the client is counted by (an IPv6 /64's first address).
    pub fn addr(self) -> IpAddr {
        self.0
    }
}

/// How many of something (connections, calls) each client address holds.
#[derive(Debug, Clone, Default)]
pub struct PerAddress(Arc<Mutex<HashMap<ClientKey, usize>>>);

/// One place in an address's count, given back on drop.
#[derive(Debug)]
pub struct AddressSlot {
    counts: PerAddress,
    addr: ClientKey,
}

impl PerAddress {
    /// A place for `addr` (see [`ClientKey`]), unless it already holds `max` (0: no limit).
    pub fn take(&self, addr: IpAddr, max: usize) -> Option<AddressSlot> {
        let addr = ClientKey::of(addr);
        let mut counts = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = counts.entry(addr).or_default();
        if max > 0 && *count >= max {
            return None;
        }
        *count += 1;
        Some(AddressSlot { counts: self.clone(), addr })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = counts.get_mut(&self.addr) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.addr);
            }
        }
    }
}

/// How long a connection must have been of no use before a full table may
/// close it for a newcomer: a client between two calls, or in its first
/// round trips, keeps its place.
const EVICTION_GRACE: Duration = Duration::from_millis(250);

/// Refused connections are warned of at most this often.
const REFUSAL_WARNING_PERIOD: Duration = Duration::from_secs(10);

/// A server's open connections: how many, and each one's state, so that a
/// full table can make room.
#[derive(Debug, Default)]
struct Table {
    open: Mutex<HashMap<u64, Weak<ConnectionState>>>,
    next_id: AtomicU64,
}

/// One of the server's open connections, given back on drop.
#[derive(Debug)]
struct OpenSlot {
    table: Arc<Table>,
    id: u64,
}

impl Table {
    /// A place for `state`, unless the table holds `max` (0: no limit) and
    /// none of them gives way. A connection that gives way is killed and
    /// still counted until it has gone, so the table can run over by the
    /// connections on their way out, never by more.
    fn admit(self: &Arc<Self>, state: &Arc<ConnectionState>, max: usize, server: &'static str) -> Result<OpenSlot, ()> {
        let mut open = self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let going = |open: &HashMap<u64, Weak<ConnectionState>>| {
            open.values().filter(|weak| weak.upgrade().is_some_and(|state| state.kill.is_cancelled())).count()
        };
        if max > 0 && open.len() >= max && open.len() - going(&open) >= max {
            // The one of no use for the longest: a handshake that never ends
            // (it would have taken milliseconds), or the longest idle.
            let now = Instant::now();
            let victim = open
                .values()
                .filter_map(Weak::upgrade)
                .filter_map(|state| state.useless_since(now).map(|rank| (rank, state)))
                .min_by_key(|((_, since), _)| *since);
            let Some(((established, _), victim)) = victim else { return Err(()) };
            victim.kill();
            let reason = if established { "evicted_idle" } else { "evicted_handshaking" };
            metrics::counter!("shop_connections_closed_total", "server" => server, "reason" => reason).increment(1);
        }
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        open.insert(id, Arc::downgrade(state));
        Ok(OpenSlot { table: self.clone(), id })
    }
}

impl Drop for OpenSlot {
    fn drop(&mut self) {
        self.table.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&self.id);
    }
}

/// An accepted socket under its server's limits.
pub struct GuardedIo {
    io: Socket,
    peer: TcpConnectInfo,
    state: Arc<ConnectionState>,
    limits: ConnectionLimits,
    /// The handshake deadline until the preface is in, then the idle deadline.
    timer: Pin<Box<Sleep>>,
    killed: Pin<Box<WaitForCancellationFutureOwned>>,
    preface_left: usize,
    server: &'static str,
    _slots: (OpenSlot, Option<AddressSlot>),
}

/// The bytes under a connection: plaintext, or TLS, whose handshake runs
/// inside the connection's own task when it is first read or written (never
/// in the accept loop, where one slow client would hold up the rest).
enum Socket {
    Plain(TcpStream),
    /// Waiting for the client's first byte: a TLS record, or plaintext sent
    /// to a TLS port, which gets an answer saying so.
    /// The sleep is set while too few bytes have come to tell anything.
    Sniffing(TcpStream, TlsAcceptor, Option<Pin<Box<Sleep>>>),
    Handshaking(Box<tokio_rustls::Accept<TcpStream>>),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// Telling a plaintext client this port speaks TLS; then closed.
    Refusing(TcpStream, &'static [u8]),
    Closed,
}

/// How soon a TLS port looks again at a client's first bytes when too few
/// have come to tell what it speaks.
const SNIFF_AGAIN: Duration = Duration::from_millis(10);

/// A TLS record carrying a handshake starts with this byte.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// What a plaintext HTTP/2 client gets from a TLS port: an empty SETTINGS
/// frame (the server preface) and a GOAWAY with INADEQUATE_SECURITY whose
/// debug data says what to do.
const PLAINTEXT_H2_ANSWER: &[u8] = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00\
\x00\x00\x48\x07\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x0c\
this port speaks TLS: connect with TLS (grpcurl: not -plaintext)";
/// What a plaintext HTTP/1.1 client gets from a TLS port.
const PLAINTEXT_H1_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\nconnection: close\r\n\
content-length: 47\r\n\r\nthis port speaks TLS: use https:// to reach it\n";

impl Socket {
    /// Drives the TLS handshake (or the plaintext refusal) as far as it goes;
    /// `Ready(Ok)` once the socket carries application bytes.
    fn poll_established(&mut self, cx: &mut Context<'_>, server: &'static str) -> Poll<io::Result<()>> {
        loop {
            match std::mem::replace(self, Socket::Closed) {
                Socket::Sniffing(tcp, acceptor, mut again) => {
                    if let Some(sleep) = again.as_mut()
                        && sleep.as_mut().poll(cx).is_pending()
                    {
                        *self = Socket::Sniffing(tcp, acceptor, again);
                        return Poll::Pending;
                    }
                    // Three bytes tell "PRI" (HTTP/2's preface) from "POST"
                    // or "PUT" (HTTP/1.1); one tells a TLS record.
                    let mut first = [0u8; 3];
                    let mut peek = ReadBuf::new(&mut first);
                    let peeked = match tcp.poll_peek(cx, &mut peek) {
                        Poll::Pending => {
                            *self = Socket::Sniffing(tcp, acceptor, None);
                            return Poll::Pending;
                        }
                        Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                        Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into())),
                        Poll::Ready(Ok(peeked)) => peeked,
                    };
                    if first[0] == TLS_HANDSHAKE_RECORD {
                        *self = Socket::Handshaking(Box::new(acceptor.accept(tcp)));
                    } else if peeked < first.len() && b"PRI".starts_with(&first[..peeked]) {
                        // Not enough yet to tell HTTP/2 from HTTP/1.1: look
                        // again shortly (a peek that found bytes registers no
                        // waker for more; the handshake timeout still runs).
                        let mut sleep = Box::pin(tokio::time::sleep(SNIFF_AGAIN));
                        let _ = sleep.as_mut().poll(cx);
                        *self = Socket::Sniffing(tcp, acceptor, Some(sleep));
                        return Poll::Pending;
                    } else {
                        metrics::counter!("shop_tls_handshakes_failed_total", "server" => server, "reason" => "plaintext")
                            .increment(1);
                        let answer = if &first == b"PRI" { PLAINTEXT_H2_ANSWER } else { PLAINTEXT_H1_ANSWER };
                        *self = Socket::Refusing(tcp, answer);
                    }
                }
                Socket::Handshaking(mut accepting) => match Pin::new(accepting.as_mut()).poll(cx) {
                    Poll::Pending => {
                        *self = Socket::Handshaking(accepting);
                        return Poll::Pending;
                    }
                    Poll::Ready(Ok(stream)) => *self = Socket::Tls(Box::new(stream)),
                    Poll::Ready(Err(error)) => {
                        metrics::counter!("shop_tls_handshakes_failed_total", "server" => server, "reason" => "handshake")
                            .increment(1);
                        tracing::debug!(server, %error, "TLS handshake failed");
                        return Poll::Ready(Err(error));
                    }
                },
                Socket::Refusing(mut tcp, mut answer) => {
                    // Take what the client already sent: closing a socket with
                    // unread bytes resets it, and the client would lose the answer.
                    // At most 64 KiB of it: the answer goes out regardless.
                    let mut unread = [0u8; 4096];
                    for _ in 0..16 {
                        if !matches!(tcp.try_read(&mut unread), Ok(read) if read > 0) {
                            break;
                        }
                    }
                    while !answer.is_empty() {
                        match Pin::new(&mut tcp).poll_write(cx, answer) {
                            Poll::Pending => {
                                *self = Socket::Refusing(tcp, answer);
                                return Poll::Pending;
                            }
                            Poll::Ready(Ok(0) | Err(_)) => break,
                            Poll::Ready(Ok(written)) => answer = &answer[written..],
                        }
                    }
                    if Pin::new(&mut tcp).poll_shutdown(cx).is_pending() {
                        *self = Socket::Refusing(tcp, answer);
                        return Poll::Pending;
                    }
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "plaintext sent to a TLS port",
                    )));
                }
                Socket::Closed => return Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
                established @ (Socket::Plain(_) | Socket::Tls(_)) => {
                    *self = established;
                    return Poll::Ready(Ok(()));
                }
            }
        }
    }

    fn stream(&mut self) -> Pin<&mut (dyn AsyncReadWrite + Unpin)> {
        match self {
            Socket::Plain(tcp) => Pin::new(tcp),
            Socket::Tls(tls) => Pin::new(tls.as_mut()),
            _ => unreachable!("poll_established answered Ready(Ok) first"),
        }
    }
}

trait AsyncReadWrite: AsyncRead + AsyncWrite {}
impl<T: AsyncRead + AsyncWrite> AsyncReadWrite for T {}

impl GuardedIo {
    fn new(
        tcp: TcpStream,
        tls: Option<&TlsAcceptor>,
        limits: ConnectionLimits,
        state: Arc<ConnectionState>,
        slots: (OpenSlot, Option<AddressSlot>),
        server: &'static str,
    ) -> Self {
        let killed = Box::pin(state.kill.clone().cancelled_owned());
        let timer = Box::pin(tokio::time::sleep(limits.handshake));
        let peer = tcp.connect_info();
        let io = match tls {
            Some(acceptor) => Socket::Sniffing(tcp, acceptor.clone(), None),
            None => Socket::Plain(tcp),
        };
        Self { io, peer, state, limits, timer, killed, preface_left: PREFACE_BYTES, server, _slots: slots }
    }

    fn closed(&self, reason: &'static str) -> io::Error {
        metrics::counter!("shop_connections_closed_total", "server" => self.server, "reason" => reason).increment(1);
        tracing::debug!(server = self.server, reason, "closing a client connection");
        io::Error::new(io::ErrorKind::TimedOut, reason)
    }

    /// Whether the connection may go on; registers the timers' wakers.
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if self.killed.as_mut().poll(cx).is_ready() {
            return Err(self.closed("killed"));
        }
        while self.timer.as_mut().poll(cx).is_ready() {
            if self.preface_left > 0 {
                return Err(self.closed("handshake"));
            }
            if self.limits.idle.is_zero() {
                // No idle limit: park the timer far away.
                self.timer.as_mut().reset(Instant::now() + Duration::from_secs(86_400));
                continue;
            }
            match self.state.idle_deadline(self.limits.idle) {
                Some(at) if at <= Instant::now() => return Err(self.closed("idle")),
                Some(at) => self.timer.as_mut().reset(at),
                None => self.timer.as_mut().reset(Instant::now() + self.limits.idle),
            }
        }
        Ok(())
    }
}

impl AsyncRead for GuardedIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.check(cx)?;
        let server = self.server;
        std::task::ready!(self.io.poll_established(cx, server))?;
        let before = buf.filled().len();
        let read = self.io.stream().poll_read(cx, buf);
        if self.preface_left > 0 && matches!(read, Poll::Ready(Ok(()))) {
            let got = buf.filled().len() - before;
            self.preface_left = self.preface_left.saturating_sub(got);
            if self.preface_left == 0 {
                self.state.established.store(true, Ordering::SeqCst);
                let idle = if self.limits.idle.is_zero() { Duration::from_secs(86_400) } else { self.limits.idle };
                self.timer.as_mut().reset(Instant::now() + idle);
            }
        }
        read
    }
}

impl AsyncWrite for GuardedIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        self.check(cx)?;
        let server = self.server;
        std::task::ready!(self.io.poll_established(cx, server))?;
        self.io.stream().poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.check(cx)?;
        let server = self.server;
        std::task::ready!(self.io.poll_established(cx, server))?;
        self.io.stream().poll_write_vectored(cx, data)
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Socket::Plain(tcp) => tcp.is_write_vectored(),
            Socket::Tls(tls) => tls.is_write_vectored(),
            _ => false,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check(cx)?;
        let server = self.server;
        std::task::ready!(self.io.poll_established(cx, server))?;
        self.io.stream().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.io {
            Socket::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Socket::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
            Socket::Sniffing(tcp, ..) | Socket::Refusing(tcp, _) => Pin::new(tcp).poll_shutdown(cx),
            Socket::Handshaking(_) | Socket::Closed => Poll::Ready(Ok(())),
        }
    }
}

impl Connected for GuardedIo {
    type ConnectInfo = ConnectionInfo;

    fn connect_info(&self) -> ConnectionInfo {
        ConnectionInfo { tcp: self.peer.clone(), state: self.state.clone() }
    }
}

/// The server's accepted sockets under `limits`: beyond its address's share,
/// a connection is closed as soon as it is accepted. Cancelling `cut_all`
/// closes every connection at once (a stop's grace is over).
pub fn guard<S>(
    accepted: S,
    tls: Option<TlsAcceptor>,
    limits: ConnectionLimits,
    server: &'static str,
    cut_all: CancellationToken,
) -> impl Stream<Item = io::Result<GuardedIo>> + Send + 'static
where
    S: Stream<Item = io::Result<TcpStream>> + Send + 'static,
{
    let counts = PerAddress::default();
    let table = Arc::new(Table::default());
    let refusals = LogLimit::every(REFUSAL_WARNING_PERIOD);
    accepted.filter_map(move |accepted| match accepted {
        Ok(socket) => {
            // The address's share first: an address over its share must not
            // make a full table close someone else's connection.
            let slot = match socket.peer_addr() {
                Ok(peer) if limits.per_addr > 0 => match counts.take(peer.ip(), limits.per_addr) {
                    Some(slot) => Some(slot),
                    None => {
                        metrics::counter!("shop_connections_closed_total", "server" => server, "reason" => "per_addr")
                            .increment(1);
                        tracing::debug!(server, client = %peer.ip(), "too many connections from one address");
                        return None;
                    }
                },
                _ => None,
            };
            let state = Arc::new(ConnectionState::killed_with(cut_all.child_token()));
            let Ok(held) = table.admit(&state, limits.total, server) else {
                metrics::counter!("shop_connections_closed_total", "server" => server, "reason" => "total")
                    .increment(1);
                if let Some(held_back) = refusals.allow() {
                    tracing::warn!(
                        server,
                        max_connections = limits.total,
                        held_back,
                        "connection refused: the server holds its most connections (SHOP_MAX_CONNECTIONS), every one of them busy"
                    );
                }
                return None;
            };
            Some(Ok(GuardedIo::new(socket, tls.as_ref(), limits, state, (held, slot), server)))
        }
        Err(error) => Some(Err(error)),
    })
}

/// Counts each call as in flight on its connection until its answer is
/// dropped, and puts `TcpConnectInfo` where tonic's `remote_addr()` finds it.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionGuardLayer;

impl<S> tower::Layer<S> for ConnectionGuardLayer {
    type Service = ConnectionGuard<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ConnectionGuard { inner }
    }
}

#[derive(Debug, Clone)]
pub struct ConnectionGuard<S> {
    inner: S,
}

impl<S, B, R> tower::Service<http::Request<B>> for ConnectionGuard<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<InFlightBody<R>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let in_flight = request.extensions().get::<ConnectionInfo>().cloned().map(|info| {
            info.state.call_started();
            request.extensions_mut().insert(info.tcp);
            CallInFlight(info.state)
        });
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            Ok(response.map(|body| InFlightBody { body, _in_flight: in_flight }))
        })
    }
}

/// A response body that keeps its call counted until the body is dropped.
#[derive(Debug)]
pub struct InFlightBody<B> {
    body: B,
    _in_flight: Option<CallInFlight>,
}

impl<B: http_body::Body + Unpin> http_body::Body for InFlightBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_holds_at_most_its_share_and_gets_slots_back() {
        let counts = PerAddress::default();
        let addr: IpAddr = "203.0.113.7".parse().unwrap();
        let first = counts.take(addr, 2).unwrap();
        let _second = counts.take(addr, 2).unwrap();
        assert!(counts.take(addr, 2).is_none());
        assert!(counts.take("203.0.113.8".parse().unwrap(), 2).is_some(), "other addresses have their own share");
        drop(first);
        assert!(counts.take(addr, 2).is_some());
    }

    #[test]
    fn a_full_table_makes_room_with_half_open_then_idle_connections_and_never_busy_ones() {
        let table = Arc::new(Table::default());
        let long_ago = Instant::now() - Duration::from_secs(5);
        let old = || {
            let mut state = ConnectionState::new();
            state.opened = long_ago;
            *state.idle_since.get_mut().unwrap() = long_ago;
            Arc::new(state)
        };
        let busy = old();
        busy.established.store(true, Ordering::SeqCst);
        busy.call_started();
        let idle = old();
        idle.established.store(true, Ordering::SeqCst);
        // A handshake that has lasted longer than the idle one has idled.
        let mut half_open = ConnectionState::new();
        half_open.opened = long_ago - Duration::from_secs(1);
        let half_open = Arc::new(half_open);
        let _slots: Vec<_> =
            [&busy, &idle, &half_open].into_iter().map(|state| table.admit(state, 3, "test").unwrap()).collect();

        let first = Arc::new(ConnectionState::new());
        let _first = table.admit(&first, 3, "test").expect("room made");
        assert!(half_open.kill.is_cancelled(), "the half-open connection went first");
        assert!(!idle.kill.is_cancelled() && !busy.kill.is_cancelled());
        // The half-open one is on its way out and still counted: the next
        // newcomer needs room of its own.
        first.established.store(true, Ordering::SeqCst);
        first.call_started();
        let second = Arc::new(ConnectionState::new());
        let _second = table.admit(&second, 3, "test").expect("room made");
        assert!(idle.kill.is_cancelled(), "then the idle one");
        second.established.store(true, Ordering::SeqCst);
        second.call_started();
        let third = Arc::new(ConnectionState::new());
        assert!(table.admit(&third, 3, "test").is_err(), "busy connections never give way");
        assert!(!busy.kill.is_cancelled());
    }

    #[test]
    fn a_connection_of_no_use_for_a_moment_only_keeps_its_place() {
        let table = Arc::new(Table::default());
        let fresh = Arc::new(ConnectionState::new());
        let _slot = table.admit(&fresh, 1, "test").unwrap();
        let newcomer = Arc::new(ConnectionState::new());
        assert!(table.admit(&newcomer, 1, "test").is_err(), "a handshake of a few milliseconds is not given up");
        assert!(!fresh.kill.is_cancelled());
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ClientKey::of(a), ClientKey::of(b));
        assert_ne!(ClientKey::of(a), ClientKey::of(c));
        let mapped: IpAddr = "::ffff:203.0.113.7".parse().unwrap();
        assert_eq!(ClientKey::of(mapped), ClientKey::of("203.0.113.7".parse().unwrap()));
        let counts = PerAddress::default();
        let _first = counts.take(a, 1).unwrap();
        assert!(counts.take(b, 1).is_none(), "another address of the same /64 shares its count");
    }

    #[test]
    fn a_connection_is_idle_only_without_calls() {
        let state = Arc::new(ConnectionState::new());
        state.call_started();
        assert!(state.idle_deadline(Duration::from_secs(1)).is_none());
        drop(CallInFlight(state.clone()));
        assert!(state.idle_deadline(Duration::from_secs(1)).is_some());
    }
}
