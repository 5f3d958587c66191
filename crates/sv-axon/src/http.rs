//! A bounded HTTP/1.1 listener for servers exposed to the internet (the axon and the
//! miner's metrics port): hyper on a small tokio runtime, one task per connection and
//! no thread per connection, with every resource a client can hold capped.
//!
//! | what a client can do | bound |
//! |---|---|
//! | open connections | [`HttpLimits::max_connections_per_peer`] per IP address (more are closed at once) and [`HttpLimits::max_connections`] in all: at that cap the connection idle the longest is closed to make room, and a new one is refused only when every connection has a request in flight |
//! | stay idle, or send a request head slowly | [`HttpLimits::idle_timeout`] from connecting or from the last answer until the whole head has arrived |
//! | send a body slowly | [`HttpLimits::body_timeout`] (408) |
//! | send big or many headers | [`HttpLimits::max_header_bytes`] and [`HttpLimits::max_headers`] (431) |
//! | send a big body | [`HttpLimits::max_body`] (413, refused from `Content-Length` before reading); bodies held at once share [`HttpLimits::body_memory`] (503 when spent) |
//! | send two different `Content-Length`s | 400 (the same length twice is one length, as RFC 9110 §8.6 allows) |
//! | make the handler panic | 500 for that request; the listener and other requests go on |
//!
//! Handlers are plain blocking functions run on at most [`HttpLimits::handler_threads`]
//! threads. Accept errors (out of file descriptors, say) are counted and retried after a
//! pause, never fatal; [`HttpServer::is_alive`] says whether the accept loop still runs.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::CONTENT_LENGTH;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{Semaphore, watch};

use crate::error::AxonError;

/// What a client may hold of a server.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HttpLimits {
    /// Open connections in all.
    pub max_connections: usize,
    /// Open connections from one IP address.
    pub max_connections_per_peer: usize,
    /// Longest a connection may go from connecting, or from its last answer, to a complete
    /// request head: closes idle keep-alive connections and slow header senders alike.
    pub idle_timeout: Duration,
    /// Longest the body of a request may take to arrive.
    pub body_timeout: Duration,
    /// Largest request head (request line and headers), in bytes.
    pub max_header_bytes: usize,
    /// Most header fields in a request.
    pub max_headers: usize,
    /// Largest request body, in bytes.
    pub max_body: usize,
    /// Bytes of request bodies held in memory at once, over all connections.
    pub body_memory: usize,
    /// Requests handled at once (blocking handler threads).
    pub handler_threads: usize,
    /// Longest a received request waits for a free handler thread (503 after).
    pub queue_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_connections_per_peer: 64,
            idle_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(10),
            max_header_bytes: 16 << 10,
            max_headers: 64,
            max_body: 4 << 20,
            body_memory: 64 << 20,
            handler_threads: 32,
            queue_timeout: Duration::from_secs(12),
        }
    }
}

/// A request as a handler sees it: the body complete and within the limits.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// Header fields by lower-case name (the last value where a name repeats).
    pub headers: HashMap<String, String>,
    /// The body.
    pub body: Vec<u8>,
    /// The client's address.
    pub peer: SocketAddr,
    /// When the request head arrived.
    pub received: Instant,
}

/// An answer.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header fields (invalid names or values are left out).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A JSON body `{"message": message}` with `status`.
    pub fn message(status: u16, message: &str) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::to_vec(&serde_json::json!({ "message": message }))
                .unwrap_or_default(),
        }
    }
}

/// A blocking request handler.
pub type HttpHandler = Arc<dyn Fn(HttpRequest) -> HttpResponse + Send + Sync>;

/// Counters of what the listener refused or survived.
#[derive(Debug, Default)]
pub struct HttpStats {
    /// Connections open now.
    pub open: AtomicUsize,
    /// Connections accepted since start.
    pub accepted: AtomicU64,
    /// Connections closed at once because a cap was reached.
    pub refused: AtomicU64,
    /// Idle connections closed to make room for a new one at the total cap.
    pub evicted: AtomicU64,
    /// Accept errors (such as running out of file descriptors), each retried.
    pub accept_errors: AtomicU64,
    /// Requests refused before the handler: too large, too slow, malformed, or no
    /// capacity left.
    pub rejected: AtomicU64,
    /// Handler panics, each answered with 500.
    pub panics: AtomicU64,
}

struct Shared {
    limits: HttpLimits,
    handler: HttpHandler,
    stats: Arc<HttpStats>,
    per_peer: Mutex<HashMap<IpAddr, usize>>,
    /// Open connections by id, for choosing one to close when the total cap is reached.
    connections: Mutex<HashMap<u64, Arc<Connection>>>,
    next_id: AtomicU64,
    started: Instant,
    body_memory: Semaphore,
    handlers: Semaphore,
    alive: AtomicBool,
}

/// What the listener knows of one open connection.
struct Connection {
    /// Accept order.
    id: u64,
    /// Requests being answered on it now.
    in_flight: AtomicUsize,
    /// Milliseconds after the server started when it last became idle.
    idle_since_ms: AtomicU64,
    /// Chosen to make room: not chosen again.
    evicted: AtomicBool,
    /// Closes it.
    close: tokio::sync::Notify,
}

/// One admitted connection; gives its place back when dropped.
struct Admission {
    shared: Arc<Shared>,
    peer: IpAddr,
    id: u64,
    connection: Arc<Connection>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.shared.stats.open.fetch_sub(1, Ordering::SeqCst);
        lock(&self.shared.connections).remove(&self.id);
        let mut peers = lock(&self.shared.per_peer);
        if let Some(n) = peers.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                peers.remove(&self.peer);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Admit a connection from `peer`: refused over the per-address cap; at the total
    /// cap, the connection idle the longest (no request in flight) is closed to make
    /// room, and only when none is idle is the new one refused.
    fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<Admission> {
        let mut peers = lock(&self.per_peer);
        let from_peer = peers.get(&peer).copied().unwrap_or(0);
        if from_peer >= self.limits.max_connections_per_peer {
            return None;
        }
        if self.stats.open.load(Ordering::SeqCst) >= self.limits.max_connections {
            let connections = lock(&self.connections);
            let victim = connections
                .values()
                .filter(|c| {
                    c.in_flight.load(Ordering::SeqCst) == 0 && !c.evicted.load(Ordering::SeqCst)
                })
                .min_by_key(|c| (c.idle_since_ms.load(Ordering::SeqCst), c.id))?;
            victim.evicted.store(true, Ordering::SeqCst);
            victim.close.notify_one();
            self.stats.evicted.fetch_add(1, Ordering::Relaxed);
        }
        peers.insert(peer, from_peer + 1);
        self.stats.open.fetch_add(1, Ordering::SeqCst);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let connection = Arc::new(Connection {
            id,
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(self.now_ms()),
            evicted: AtomicBool::new(false),
            close: tokio::sync::Notify::new(),
        });
        lock(&self.connections).insert(id, connection.clone());
        Some(Admission {
            shared: self.clone(),
            peer,
            id,
            connection,
        })
    }
}

/// A running listener.
pub struct HttpServer {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Its counters.
    pub stats: Arc<HttpStats>,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Listen on `addr` (port 0 picks one) and answer with `handler` within `limits`.
    pub fn bind(addr: &str, limits: HttpLimits, handler: HttpHandler) -> Result<Self, AxonError> {
        let fail = |e: &dyn std::fmt::Display| AxonError::BadRequest(format!("listen {addr}: {e}"));
        let limits = HttpLimits {
            max_connections: limits.max_connections.clamp(1, fd_budget()),
            max_connections_per_peer: limits.max_connections_per_peer.max(1),
            handler_threads: limits.handler_threads.max(1),
            body_memory: limits
                .body_memory
                .max(limits.max_body)
                .min(u32::MAX as usize),
            max_header_bytes: limits.max_header_bytes.max(1024),
            max_headers: limits.max_headers.max(8),
            ..limits
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(limits.handler_threads + 2)
            .thread_name("sv-http")
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| fail(&e))?;
        let std_listener = listen(addr).map_err(|e| fail(&e))?;
        let bound = std_listener.local_addr().map_err(|e| fail(&e))?;
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(std_listener).map_err(|e| fail(&e))?
        };
        let stats = Arc::new(HttpStats::default());
        let shared = Arc::new(Shared {
            limits,
            handler,
            stats: stats.clone(),
            per_peer: Mutex::new(HashMap::new()),
            connections: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            started: Instant::now(),
            body_memory: Semaphore::new(limits.body_memory),
            handlers: Semaphore::new(limits.handler_threads),
            alive: AtomicBool::new(true),
        });
        let (stop, stopped) = watch::channel(false);
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("sv-http-{}", bound.port()))
                .spawn(move || {
                    runtime.block_on(accept_loop(listener, shared.clone(), stopped));
                    shared.alive.store(false, Ordering::SeqCst);
                    // Requests in flight get a moment to finish their answers.
                    runtime.shutdown_timeout(Duration::from_secs(5));
                })
                .map_err(|e| fail(&e))?
        };
        Ok(Self {
            addr: bound,
            stats,
            shared,
            stop,
            thread: Some(thread),
        })
    }

    /// Whether the accept loop still runs (false once it has stopped for any reason).
    pub fn is_alive(&self) -> bool {
        self.shared.alive.load(Ordering::SeqCst)
            && self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// The limits in force (the connection cap lowered to what the process's file
    /// descriptor limit allows).
    pub fn limits(&self) -> HttpLimits {
        self.shared.limits
    }

    /// Stop accepting, let requests in flight finish (a few seconds at most), close.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// A non-blocking listener on `addr` with a backlog deep enough for a burst of
/// connections (the standard library's is 128).
fn listen(addr: &str) -> std::io::Result<std::net::TcpListener> {
    use std::net::ToSocketAddrs;
    let mut last = None;
    for candidate in addr.to_socket_addrs()? {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(candidate),
            socket2::Type::STREAM,
            None,
        )?;
        socket.set_reuse_address(true)?;
        match socket
            .bind(&candidate.into())
            .and_then(|()| socket.listen(1024))
        {
            Ok(()) => {
                socket.set_nonblocking(true)?;
                return Ok(socket.into());
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to listen on")
    }))
}

/// This process's file-descriptor limits, if they can be read.
fn nofile_limit() -> Option<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct passed; no other memory is touched.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0).then_some(limit)
}

/// Connections this process can open: the soft file-descriptor limit less a reserve for
/// model files, logs and the chain client.
fn fd_budget() -> usize {
    const RESERVE: u64 = 256;
    match nofile_limit() {
        Some(limit) if limit.rlim_cur != libc::RLIM_INFINITY => {
            usize::try_from(limit.rlim_cur.saturating_sub(RESERVE).max(16)).unwrap_or(usize::MAX)
        }
        _ => usize::MAX,
    }
}

/// Raise this process's soft file-descriptor limit to its hard limit (at most 65,536),
/// so the connection cap, not the default of 1,024 descriptors, is what bounds a flood.
/// Returns the soft limit in force after.
pub fn raise_fd_limit() -> u64 {
    let Some(limit) = nofile_limit() else {
        return 0;
    };
    let wanted = limit.rlim_max.min(65_536);
    if wanted > limit.rlim_cur {
        let raised = libc::rlimit {
            rlim_cur: wanted,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads the struct passed.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return wanted;
        }
    }
    limit.rlim_cur
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(shared.limits.idle_timeout)
        .max_header_size(shared.limits.max_header_bytes)
        .max_buf_size(shared.limits.max_header_bytes.max(8192) + 8192)
        .max_headers(shared.limits.max_headers);
    let builder = Arc::new(builder);
    loop {
        let accepted = tokio::select! {
            _ = stopped.changed() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(_) => {
                // EMFILE, ENFILE, ENOBUFS, ECONNABORTED…: the listener itself is fine;
                // pause so a descriptor shortage does not become a busy loop.
                shared.stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(admission) = shared.admit(peer.ip()) else {
            shared.stats.refused.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        };
        shared.stats.accepted.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let (shared, builder, mut stopped) = (shared.clone(), builder.clone(), stopped.clone());
        tokio::spawn(async move {
            let state = admission.connection.clone();
            let service = {
                let state = state.clone();
                service_fn(move |request| {
                    let (shared, state) = (shared.clone(), state.clone());
                    async move {
                        state.in_flight.fetch_add(1, Ordering::SeqCst);
                        let answer = respond(&shared, request, peer).await;
                        state.idle_since_ms.store(shared.now_ms(), Ordering::SeqCst);
                        state.in_flight.fetch_sub(1, Ordering::SeqCst);
                        Ok::<_, Infallible>(answer)
                    }
                })
            };
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = state.close.notified() => {
                    // Evicted to make room: closed at once when idle; a request that
                    // arrived meanwhile is answered first.
                    if state.in_flight.load(Ordering::SeqCst) > 0 {
                        connection.as_mut().graceful_shutdown();
                        let _ = tokio::time::timeout(Duration::from_secs(30), connection).await;
                    }
                }
                _ = stopped.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(5), connection).await;
                }
            }
            drop(admission);
        });
    }
}

async fn respond(
    shared: &Arc<Shared>,
    request: hyper::Request<Incoming>,
    peer: SocketAddr,
) -> hyper::Response<Full<Bytes>> {
    let answer = match read_request(shared, request, peer).await {
        Ok((request, _memory)) => run_handler(shared, request).await,
        Err(refusal) => {
            shared.stats.rejected.fetch_add(1, Ordering::Relaxed);
            refusal
        }
    };
    to_hyper(answer)
}

/// The request with its body read within the limits, and the body's share of memory.
async fn read_request<'a>(
    shared: &'a Shared,
    request: hyper::Request<Incoming>,
    peer: SocketAddr,
) -> Result<(HttpRequest, tokio::sync::SemaphorePermit<'a>), HttpResponse> {
    let received = Instant::now();
    let limits = &shared.limits;
    let lengths = request.headers().get_all(CONTENT_LENGTH).iter().count();
    if lengths > 1 {
        return Err(HttpResponse::message(
            400,
            "more than one Content-Length header",
        ));
    }
    let declared = match request.headers().get(CONTENT_LENGTH) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| HttpResponse::message(400, "Content-Length is not a number"))?,
        ),
    };
    if declared.is_some_and(|n| n > limits.max_body as u64) {
        return Err(HttpResponse::message(
            413,
            &format!(
                "body of {} bytes is over the {}-byte limit",
                declared.unwrap_or(0),
                limits.max_body
            ),
        ));
    }
    // Reserve the body's memory before reading it: what Content-Length says, or the
    // most a body may be when it is chunked.
    let reserve = declared.map_or(limits.max_body, |n| n as usize).max(1);
    let memory = u32::try_from(reserve)
        .ok()
        .and_then(|n| shared.body_memory.try_acquire_many(n).ok())
        .ok_or_else(|| HttpResponse::message(503, "too many request bodies in flight"))?;
    let (parts, body) = request.into_parts();
    let body = match tokio::time::timeout(
        limits.body_timeout,
        Limited::new(body, limits.max_body).collect(),
    )
    .await
    {
        Err(_) => {
            return Err(HttpResponse::message(
                408,
                &format!(
                    "the body did not arrive within {:.0} s",
                    limits.body_timeout.as_secs_f64()
                ),
            ));
        }
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(HttpResponse::message(
                413,
                &format!("body is over the {}-byte limit", limits.max_body),
            ));
        }
        Ok(Err(e)) => return Err(HttpResponse::message(400, &format!("body: {e}"))),
        Ok(Ok(collected)) => collected.to_bytes().to_vec(),
    };
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    Ok((
        HttpRequest {
            method: parts.method.as_str().to_string(),
            path: parts.uri.path().to_string(),
            headers,
            body,
            peer,
            received,
        },
        memory,
    ))
}

async fn run_handler(shared: &Arc<Shared>, request: HttpRequest) -> HttpResponse {
    let Ok(Ok(_slot)) =
        tokio::time::timeout(shared.limits.queue_timeout, shared.handlers.acquire()).await
    else {
        shared.stats.rejected.fetch_add(1, Ordering::Relaxed);
        return HttpResponse::message(503, "every handler is busy");
    };
    let handler = shared.handler.clone();
    match tokio::task::spawn_blocking(move || handler(request)).await {
        Ok(answer) => answer,
        Err(_) => {
            shared.stats.panics.fetch_add(1, Ordering::Relaxed);
            HttpResponse::message(500, "internal error")
        }
    }
}

fn to_hyper(answer: HttpResponse) -> hyper::Response<Full<Bytes>> {
    let mut response = hyper::Response::new(Full::new(Bytes::from(answer.body)));
    *response.status_mut() = hyper::StatusCode::from_u16(answer.status)
        .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    for (k, v) in answer.headers {
        if let (Ok(name), Ok(value)) = (
            hyper::header::HeaderName::from_bytes(k.as_bytes()),
            hyper::header::HeaderValue::from_str(&v),
        ) {
            headers.append(name, value);
        }
    }
    response
}
