//! The listener when the process runs out of file descriptors: accept fails (EMFILE),
//! the error is counted and retried, and once descriptors are free again the waiting
//! connection is answered. A test binary of its own: it uses up this process's
//! descriptors on purpose.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sv_axon::http::{HttpHandler, HttpLimits, HttpResponse, HttpServer};

#[test]
fn running_out_of_descriptors_is_survived() {
    // A low soft limit keeps the number of files to open small.
    let limit = libc::rlimit {
        rlim_cur: 256,
        rlim_max: 256,
    };
    // SAFETY: setrlimit reads the struct passed.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
    let handler: HttpHandler = Arc::new(|_| HttpResponse {
        status: 200,
        headers: vec![],
        body: b"fine".to_vec(),
    });
    let srv = HttpServer::bind("127.0.0.1:0", HttpLimits::default(), handler).unwrap();
    let mut hog = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        hog.push(f);
    }
    // One descriptor for the client; none left for the server's accept.
    hog.pop();
    let mut client = TcpStream::connect(srv.addr).unwrap();
    client
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .unwrap();
    let t0 = Instant::now();
    while srv.stats.accept_errors.load(Ordering::SeqCst) == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no accept error seen"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(srv.is_alive());
    drop(hog);
    client
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut reply = String::new();
    client.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.ends_with("fine"));
    assert!(srv.is_alive());
}
