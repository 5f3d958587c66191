//! The axon's HTTP server: `POST /{Synapse}` on the bounded [`http`](crate::http)
//! listener, each request's body read within the limits and handed to the [`Gate`].

use std::net::SocketAddr;
use std::sync::Arc;

use crate::error::AxonError;
use crate::gate::{Caller, Gate};
use crate::http::{HttpHandler, HttpLimits, HttpRequest, HttpResponse, HttpServer, HttpStats};
use crate::synapse::Synapse;

/// Answers an admitted synapse (sets `prediction`) or refuses it with a status and message.
pub type Handler = Arc<dyn Fn(&mut Synapse, &Caller) -> Result<(), (u16, String)> + Send + Sync>;

/// Nanoseconds since the Unix epoch (replaceable in tests).
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(crate::dendrite::now_ns)
}

/// A running axon.
pub struct Running {
    server: HttpServer,
    /// The address it listens on.
    pub addr: SocketAddr,
}

impl Running {
    /// Whether the listener still accepts connections.
    pub fn is_alive(&self) -> bool {
        self.server.is_alive()
    }

    /// The listener's counters (connections open, refused, accept errors, panics).
    pub fn stats(&self) -> Arc<HttpStats> {
        self.server.stats.clone()
    }

    /// Stop accepting and let the requests in flight finish.
    pub fn shutdown(self) {
        self.server.shutdown();
    }
}

/// Listen on `addr` (port 0 picks one) with `workers` handler threads and the default
/// connection limits.
pub fn serve(
    addr: &str,
    gate: Arc<Gate>,
    handler: Handler,
    clock: Clock,
    workers: usize,
) -> Result<Running, AxonError> {
    let limits = HttpLimits {
        handler_threads: workers,
        ..HttpLimits::default()
    };
    serve_with(addr, gate, handler, clock, limits)
}

/// Listen on `addr` within `limits`; the body limit is the gate's.
pub fn serve_with(
    addr: &str,
    gate: Arc<Gate>,
    handler: Handler,
    clock: Clock,
    limits: HttpLimits,
) -> Result<Running, AxonError> {
    let limits = HttpLimits {
        max_body: gate.max_body,
        ..limits
    };
    let answer: HttpHandler = Arc::new(move |request| answer(&gate, &handler, &clock, request));
    let server = HttpServer::bind(addr, limits, answer)?;
    Ok(Running {
        addr: server.addr,
        server,
    })
}

fn answer(gate: &Gate, handler: &Handler, clock: &Clock, request: HttpRequest) -> HttpResponse {
    let now = clock();
    let reply = if request.method != "POST" {
        gate.process("", &request.headers, b"", now, |_, _| Ok(()))
    } else {
        let route = request.path.trim_start_matches('/');
        gate.process_received(
            route,
            &request.headers,
            &request.body,
            now,
            request.received,
            |s, c| handler(s, c),
        )
    };
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    headers.extend(reply.headers);
    HttpResponse {
        status: reply.status,
        headers,
        body: reply.body,
    }
}
