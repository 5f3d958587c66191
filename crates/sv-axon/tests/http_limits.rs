//! The bounded HTTP listener against raw sockets on loopback: connection caps, header
//! limits, slow clients, duplicate Content-Length, a panicking handler. Every wait has a
//! generous deadline; nothing depends on how fast the machine is.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sv_axon::http::{HttpHandler, HttpLimits, HttpResponse, HttpServer};

fn server(limits: HttpLimits) -> HttpServer {
    let handler: HttpHandler = Arc::new(|request| {
        if request.path == "/panic" {
            panic!("a handler bug");
        }
        HttpResponse {
            status: 200,
            headers: vec![],
            body: format!("{} bytes", request.body.len()).into_bytes(),
        }
    });
    HttpServer::bind("127.0.0.1:0", limits, handler).unwrap()
}

fn limits() -> HttpLimits {
    HttpLimits {
        max_connections: 40,
        max_connections_per_peer: 10,
        idle_timeout: Duration::from_secs(1),
        body_timeout: Duration::from_secs(1),
        max_body: 1000,
        ..HttpLimits::default()
    }
}

/// Send `raw` and read what comes back until the server closes (or 30 s pass).
fn exchange(addr: SocketAddr, raw: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let _ = s.write_all(raw);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn status(reply: &str) -> u16 {
    reply
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn get(addr: SocketAddr, path: &str) -> String {
    exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(),
    )
}

/// Wait until `f` holds, failing after 30 s.
fn eventually(what: &str, f: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < Duration::from_secs(30), "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether the server closed `s` (EOF or reset) within 30 s.
fn closed_by_server(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // a 408/431 answer before the close
            Err(e) => {
                return !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                );
            }
        }
    }
}

#[test]
fn a_panicking_handler_answers_500_and_the_listener_goes_on() {
    let srv = server(limits());
    for _ in 0..40 {
        assert_eq!(status(&get(srv.addr, "/panic")), 500);
    }
    assert_eq!(status(&get(srv.addr, "/fine")), 200);
    assert!(srv.is_alive());
    assert_eq!(
        srv.stats.panics.load(std::sync::atomic::Ordering::SeqCst),
        40
    );
}

#[test]
fn connections_over_the_caps_are_closed_and_other_peers_still_get_in() {
    let srv = server(limits());
    // 30 idle connections from 127.0.0.2: 10 held, the rest closed at once.
    let attacker: Vec<TcpStream> = (0..30)
        .map(|_| {
            let s = socket2_from("127.0.0.2");
            s.connect(&srv.addr.into()).unwrap();
            s.into()
        })
        .collect();
    let open = || srv.stats.open.load(std::sync::atomic::Ordering::SeqCst);
    eventually("the per-peer cap holds", || {
        srv.stats.refused.load(std::sync::atomic::Ordering::SeqCst) >= 20
    });
    assert!(open() <= 10, "{} open", open());
    // Another peer is served meanwhile.
    assert_eq!(status(&get(srv.addr, "/x")), 200);
    // Idle connections are closed after the idle timeout, and their places come back.
    for mut s in attacker {
        assert!(closed_by_server(&mut s));
    }
    eventually("idle connections are closed", || open() == 0);
}

#[test]
fn at_the_total_cap_the_longest_idle_connection_makes_room() {
    let srv = server(HttpLimits {
        idle_timeout: Duration::from_secs(60),
        ..limits()
    });
    // 4 addresses × 10 idle connections fill the total cap of 40.
    let mut idle: Vec<TcpStream> = (2..6)
        .flat_map(|i| {
            let ip = format!("127.0.0.{i}");
            (0..10)
                .map(|_| {
                    let s = socket2_from(&ip);
                    s.connect(&srv.addr.into()).unwrap();
                    TcpStream::from(s)
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let open = || srv.stats.open.load(std::sync::atomic::Ordering::SeqCst);
    eventually("the cap is full", || open() == 40);
    // A new peer is answered: the connection idle the longest (the first) is closed.
    for _ in 0..5 {
        assert_eq!(status(&get(srv.addr, "/x")), 200);
    }
    assert!(closed_by_server(&mut idle[0]));
    assert!(srv.stats.evicted.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    eventually("the count comes back to the cap", || open() <= 40);
}

#[test]
fn slow_headers_and_slow_bodies_are_cut_off() {
    let srv = server(limits());
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.write_all(b"POST /x HTTP/1.1\r\nhost: x\r\n").unwrap();
    let t0 = Instant::now();
    // One header byte every 100 ms: never a complete head.
    while t0.elapsed() < Duration::from_secs(5) {
        if s.write_all(b"a").is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(closed_by_server(&mut s));
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.write_all(b"POST /x HTTP/1.1\r\nhost: x\r\ncontent-length: 900\r\n\r\nab")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    assert_eq!(status(&reply), 408, "{reply}");
}

#[test]
fn big_or_many_headers_bad_lengths_and_big_bodies_are_refused() {
    let srv = server(limits());
    let huge = format!(
        "GET / HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(1 << 20)
    );
    assert_eq!(status(&exchange(srv.addr, huge.as_bytes())), 431);
    let many: String = (0..200).map(|i| format!("x-{i}: v\r\n")).collect();
    let many = format!("GET / HTTP/1.1\r\nhost: x\r\n{many}\r\n");
    assert_eq!(status(&exchange(srv.addr, many.as_bytes())), 431);
    // Two lengths that differ (request smuggling) are refused; the same length twice
    // is one length, as RFC 9110 §8.6 allows.
    let differ = b"POST /x HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\ncontent-length: 3\r\nconnection: close\r\n\r\nabc";
    assert_eq!(status(&exchange(srv.addr, differ)), 400);
    let listed =
        b"POST /x HTTP/1.1\r\nhost: x\r\ncontent-length: 2, 3\r\nconnection: close\r\n\r\nabc";
    assert_eq!(status(&exchange(srv.addr, listed)), 400);
    let same = b"POST /x HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\ncontent-length: 2\r\nconnection: close\r\n\r\nab";
    assert!(exchange(srv.addr, same).ends_with("2 bytes"));
    let big = b"POST /x HTTP/1.1\r\nhost: x\r\ncontent-length: 5000\r\nconnection: close\r\n\r\n";
    assert_eq!(status(&exchange(srv.addr, big)), 413);
    let chunk = format!("{:x}\r\n{}\r\n0\r\n\r\n", 3000, "b".repeat(3000));
    let chunked = format!(
        "POST /x HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n{chunk}"
    );
    assert_eq!(status(&exchange(srv.addr, chunked.as_bytes())), 413);
    let ok = b"POST /x HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\nconnection: close\r\n\r\nabc";
    let reply = exchange(srv.addr, ok);
    assert_eq!(status(&reply), 200);
    assert!(reply.ends_with("3 bytes"), "{reply}");
    assert!(srv.is_alive());
}

#[test]
fn shutdown_stops_the_listener() {
    let srv = server(limits());
    let addr = srv.addr;
    assert!(srv.is_alive());
    srv.shutdown();
    eventually("the port is closed", || TcpStream::connect(addr).is_err());
}

/// A TCP socket bound to another loopback address (a second peer).
fn socket2_from(ip: &str) -> socket2::Socket {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let local: SocketAddr = format!("{ip}:0").parse().unwrap();
    s.bind(&local.into()).unwrap();
    s
}
