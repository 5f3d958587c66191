//! The axon's HTTP server: `POST /{Synapse}` on a pool of worker threads, each request
//! read up to the gate's size limit and handed to the [`Gate`].

use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::error::AxonError;
use crate::gate::{Caller, Gate};
use crate::synapse::Synapse;

/// Answers an admitted synapse (sets `prediction`) or refuses it with a status and message.
pub type Handler = Arc<dyn Fn(&mut Synapse, &Caller) -> Result<(), (u16, String)> + Send + Sync>;

/// Nanoseconds since the Unix epoch (replaceable in tests).
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(crate::dendrite::now_ns)
}

/// A running server.
pub struct Running {
    server: Arc<tiny_http::Server>,
    workers: Vec<JoinHandle<()>>,
    /// The address it listens on.
    pub addr: SocketAddr,
}

impl Running {
    /// Stop accepting and wait for the workers to finish their requests.
    pub fn shutdown(self) {
        for _ in &self.workers {
            self.server.unblock();
        }
        for w in self.workers {
            let _ = w.join();
        }
    }
}

/// Listen on `addr` (port 0 picks one) with `workers` threads.
pub fn serve(
    addr: &str,
    gate: Arc<Gate>,
    handler: Handler,
    clock: Clock,
    workers: usize,
) -> Result<Running, AxonError> {
    let server = Arc::new(
        tiny_http::Server::http(addr)
            .map_err(|e| AxonError::BadRequest(format!("listen {addr}: {e}")))?,
    );
    let bound = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| AxonError::BadRequest(format!("listen {addr}: not an IP address")))?;
    let workers = (0..workers.max(1))
        .map(|_| {
            let (server, gate, handler, clock) =
                (server.clone(), gate.clone(), handler.clone(), clock.clone());
            std::thread::spawn(move || {
                while let Ok(mut request) = server.recv() {
                    let reply = answer(&gate, &handler, &clock, &mut request);
                    let _ = request.respond(reply);
                }
            })
        })
        .collect();
    Ok(Running {
        server,
        workers,
        addr: bound,
    })
}

fn answer(
    gate: &Gate,
    handler: &Handler,
    clock: &Clock,
    request: &mut tiny_http::Request,
) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    let now = clock();
    let route = request.url().trim_start_matches('/').to_string();
    let headers: HashMap<String, String> = request
        .headers()
        .iter()
        .map(|h| {
            (
                h.field.as_str().as_str().to_ascii_lowercase(),
                h.value.as_str().to_string(),
            )
        })
        .collect();
    // Read at most one byte past the limit: enough to refuse without buffering a flood.
    let mut body = Vec::new();
    let limit = gate.max_body as u64 + 1;
    let read = request.as_reader().take(limit).read_to_end(&mut body);
    let reply = if request.method() != &tiny_http::Method::Post {
        gate.process("", &headers, b"", now, |_, _| Ok(()))
    } else if read.is_err() {
        gate.process(
            &route,
            &headers,
            &vec![0; gate.max_body + 1],
            now,
            |_, _| Ok(()),
        )
    } else {
        gate.process(&route, &headers, &body, now, |s, c| handler(s, c))
    };
    let mut response = tiny_http::Response::from_data(reply.body).with_status_code(reply.status);
    let content_type =
        tiny_http::Header::from_bytes(&b"content-type"[..], &b"application/json"[..])
            .expect("header");
    response.add_header(content_type);
    for (k, v) in reply.headers {
        if let Ok(h) = tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()) {
            response.add_header(h);
        }
    }
    response
}
