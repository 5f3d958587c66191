//! `sv-miner serve` as a real process on loopback, attacked the way an outsider would:
//! idle-connection floods past the caps, slow headers and bodies, a header bomb, hostile
//! `timeout` headers and a replay with a raised one, 1×N and N×1 images and a PNG bomb,
//! a full disk under the prediction log and kill -9 while it is written. After each
//! case a valid request is answered and the resident memory stays under [`RSS_BOUND_MIB`].
//! Waits have generous deadlines; the latencies printed are for docs/benchmarks.md and
//! never asserted.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{MinerProcess, allowlist, image_fields, photos, validator};
use sv_axon::dendrite::{Dendrite, now_ns};
use sv_tests::fixture;

/// The most resident memory the miner may hold during and after any attack.
const RSS_BOUND_MIB: f64 = 1024.0;

/// One attack at a time: they measure memory and latency.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn start(dir: &Path, configure: impl FnOnce(&mut std::process::Command)) -> MinerProcess {
    MinerProcess::start_with(
        dir,
        "phrase",
        &format!(
            "model = {:?}\nallowlist = {:?}\nidle_timeout_ms = 2000\nbody_timeout_ms = 3000\nmax_connections = 256\nmax_connections_per_peer = 64\n",
            fixture("convnext/hf_cls.safetensors"),
            allowlist(dir)
        ),
        configure,
    )
}

/// A valid signed request; its status and latency.
fn valid(miner: &MinerProcess) -> (u16, Duration) {
    let d = Dendrite::new(validator());
    let photo = photos().swap_remove(0);
    let a = d.call("ImageSynapse", image_fields(&photo), &miner.target(), 30.0);
    (a.status, a.latency)
}

/// `n` valid requests one after another: (all answered, p99 in ms).
fn valid_traffic(miner: &MinerProcess, n: usize) -> (bool, f64) {
    let mut ms: Vec<f64> = Vec::new();
    let mut all = true;
    for _ in 0..n {
        let (status, took) = valid(miner);
        all &= status == 200;
        ms.push(took.as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    let p99 = ms[((ms.len() as f64 * 0.99).ceil() as usize).clamp(1, ms.len()) - 1];
    (all, p99)
}

fn after_attack(case: &str, miner: &MinerProcess) {
    let t0 = Instant::now();
    loop {
        let (status, _) = valid(miner);
        if status == 200 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "{case}: no valid answer after the attack (status {status})\n{}",
            miner.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let rss = miner.rss_mib();
    eprintln!("{case}: RSS after {rss:.0} MiB");
    assert!(rss < RSS_BOUND_MIB, "{case}: RSS {rss:.0} MiB");
    let health = miner.get("/healthz");
    assert!(health.contains("\"status\":\"ok\""), "{case}: {health}");
}

fn socket_from(ip: &str, to: SocketAddr) -> Option<TcpStream> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
    let local: SocketAddr = format!("{ip}:0").parse().unwrap();
    s.bind(&local.into()).ok()?;
    s.connect(&to.into()).ok()?;
    Some(s.into())
}

fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
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
fn idle_connection_floods_past_the_caps_do_not_take_the_axon_down() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    // This test process opens 1,200 sockets for the floods.
    sv_axon::http::raise_fd_limit();
    // The miner gets 512 descriptors, soft and hard, so the floods below are more
    // connections than it has descriptors: a server that holds whatever it accepts
    // runs out and stops accepting.
    let miner = start(dir.path(), |c| {
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            c.pre_exec(|| {
                let limit = libc::rlimit {
                    rlim_cur: 512,
                    rlim_max: 512,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    });
    // Three attacking addresses, 200 idle connections each: 64 each are held.
    let flood: Vec<TcpStream> = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
        .iter()
        .flat_map(|ip| (0..200).filter_map(|_| socket_from(ip, miner.axon)))
        .collect();
    let t0 = Instant::now();
    while miner.metric("sv_miner_http_refused_total") < 400.0 {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "refusals not counted"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let open = miner.metric("sv_miner_http_connections ");
    assert!(open <= 64.0 * 3.0 + 2.0, "{open} connections held");
    let (all, p99) = valid_traffic(&miner, 20);
    assert!(
        all,
        "valid traffic refused during a flood from other addresses"
    );
    eprintln!(
        "idle flood: {} connections attempted, {open} held, valid p99 {p99:.1} ms, RSS {:.0} MiB",
        flood.len(),
        miner.rss_mib()
    );
    // A flood from many addresses fills the whole cap; idle connections are closed
    // after the idle timeout.
    let wide: Vec<TcpStream> = (5..20)
        .flat_map(|i| {
            let ip = format!("127.0.0.{i}");
            (0..40)
                .filter_map(|_| socket_from(&ip, miner.axon))
                .collect::<Vec<_>>()
        })
        .collect();
    // At the total cap the longest-idle connection makes room: valid traffic goes on.
    let (all, p99) = valid_traffic(&miner, 20);
    assert!(
        all,
        "valid traffic refused during a flood that fills the cap"
    );
    let open = miner.metric("sv_miner_http_connections ");
    assert!(open <= 256.0 + 2.0, "{open} connections held");
    eprintln!(
        "wide idle flood: {} connections attempted, {open} held, {} evicted, valid p99 {p99:.1} ms, RSS {:.0} MiB",
        wide.len(),
        miner.metric("sv_miner_http_evicted_total"),
        miner.rss_mib()
    );
    for mut s in flood.into_iter().chain(wide) {
        assert!(
            closed_within(&mut s, Duration::from_secs(20)),
            "an idle connection was kept"
        );
    }
    after_attack("idle flood", &miner);
    assert!(miner.stop().success());
}

#[test]
fn slow_headers_slow_bodies_and_header_bombs_are_cut_off() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let miner = start(dir.path(), |_| {});
    // Slowloris: 50 connections sending one header byte every 200 ms.
    let mut slow: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut s = TcpStream::connect(miner.axon).unwrap();
            s.write_all(b"POST /ImageSynapse HTTP/1.1\r\nhost: x\r\n")
                .unwrap();
            s
        })
        .collect();
    let t0 = Instant::now();
    let (all, p99) = std::thread::scope(|scope| {
        let traffic = scope.spawn(|| valid_traffic(&miner, 10));
        while t0.elapsed() < Duration::from_secs(4) {
            for s in &mut slow {
                let _ = s.write_all(b"a");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        traffic.join().unwrap()
    });
    assert!(all);
    for s in &mut slow {
        assert!(
            closed_within(s, Duration::from_secs(20)),
            "slow headers kept"
        );
    }
    eprintln!("slowloris: 50 connections, valid p99 {p99:.1} ms");
    // A slow body: 408 after the body timeout.
    let mut s = TcpStream::connect(miner.axon).unwrap();
    s.write_all(b"POST /ImageSynapse HTTP/1.1\r\nhost: x\r\ncontent-length: 100000\r\n\r\n{")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    // A header bomb: a 300 MB header line is refused after the first 16 KiB.
    let before = miner.rss_mib();
    let mut s = TcpStream::connect(miner.axon).unwrap();
    s.write_all(b"POST /ImageSynapse HTTP/1.1\r\nx-bomb: ")
        .unwrap();
    let chunk = vec![b'a'; 1 << 20];
    let mut sent = 0usize;
    while sent < 300 << 20 {
        if s.write_all(&chunk).is_err() {
            break;
        }
        sent += chunk.len();
    }
    assert!(sent < 64 << 20, "{} MiB of header were read", sent >> 20);
    let grew = miner.rss_mib() - before;
    eprintln!(
        "header bomb: refused after {} MiB sent, RSS grew {grew:.0} MiB",
        sent >> 20
    );
    after_attack("slow clients and header bomb", &miner);
    assert!(miner.stop().success());
}

#[test]
fn hostile_timeouts_and_replays_with_a_raised_timeout_are_refused() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let miner = start(dir.path(), |_| {});
    let d = Dendrite::new(validator());
    let photo = photos().swap_remove(0);
    let send = |timeout_header: &str, nonce: u64| {
        let mut p = d.prepare(
            "ImageSynapse",
            image_fields(&photo),
            &miner.target(),
            12.0,
            nonce,
        );
        p.headers.insert("timeout".into(), timeout_header.into());
        d.send(&p, &miner.target(), 30.0).status
    };
    // More than the HTTP handler threads (32), so a panic per request would use them up.
    for i in 0..40 {
        let bad = ["nan", "inf", "-inf", "1e400", "-1", "soon"][i % 6];
        assert_eq!(send(bad, now_ns()), 400, "timeout {bad}");
    }
    // A huge timeout is clamped, not refused, on a fresh request.
    assert_eq!(send("1e300", now_ns()), 200);
    // A request captured 20 s ago, replayed with its timeout raised: refused.
    let captured = now_ns() - 20_000_000_000;
    let replay = Dendrite::new(validator());
    let mut p = replay.prepare(
        "ImageSynapse",
        image_fields(&photo),
        &miner.target(),
        12.0,
        captured,
    );
    p.headers.insert("timeout".into(), "3600".into());
    assert_eq!(replay.send(&p, &miner.target(), 30.0).status, 401);
    after_attack("hostile timeouts", &miner);
    assert!(miner.stop().success());
}

/// A PNG of `w`×`h` black pixels, compressed as far as it goes.
fn grey_png(w: u32, h: u32) -> Vec<u8> {
    use image::ImageEncoder;
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    let pixels = vec![0u8; w as usize * h as usize];
    let mut out = Vec::new();
    PngEncoder::new_with_quality(&mut out, CompressionType::Best, FilterType::NoFilter)
        .write_image(&pixels, w, h, image::ExtendedColorType::L8)
        .unwrap();
    out
}

/// A PNG whose header claims `w`×`h` with almost no data (a decompression bomb).
fn bomb_png(w: u32, h: u32) -> Vec<u8> {
    let mut png = grey_png(1, 1);
    // IHDR data starts at byte 16: width and height, then recompute the CRC.
    png[16..20].copy_from_slice(&w.to_be_bytes());
    png[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn extreme_aspect_ratios_and_png_bombs_are_refused_before_decoding() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let miner = start(dir.path(), |_| {});
    let d = Dendrite::new(validator());
    let cases = [
        ("1×16777216", grey_png(1, 16_777_216)),
        ("16777216×1", grey_png(16_777_216, 1)),
        ("2×4096", grey_png(2, 4096)),
        ("bomb 100000×100000", bomb_png(100_000, 100_000)),
        ("bomb 1×4000000000", bomb_png(1, 4_000_000_000)),
    ];
    for (name, png) in &cases {
        let t0 = Instant::now();
        let a = d.call("ImageSynapse", image_fields(png), &miner.target(), 30.0);
        assert_eq!(a.status, 400, "{name}: {:?}", a.message);
        eprintln!(
            "{name} ({} bytes): refused in {:.0} ms, RSS {:.0} MiB",
            png.len(),
            t0.elapsed().as_secs_f64() * 1e3,
            miner.rss_mib()
        );
    }
    // Within the limits, an odd shape is still answered.
    let a = d.call(
        "ImageSynapse",
        image_fields(&grey_png(640, 40)),
        &miner.target(),
        30.0,
    );
    assert_eq!(a.status, 200, "{:?}", a.message);
    after_attack("odd images", &miner);
    assert!(miner.stop().success());
}

/// Every line of `file` is a whole JSON object; returns how many.
fn whole_lines(file: &Path) -> usize {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    assert!(text.is_empty() || text.ends_with('\n'), "a torn last line");
    for (i, line) in text.lines().enumerate() {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "line {} is torn: {line}",
            i + 1
        );
    }
    text.lines().count()
}

#[test]
fn a_full_disk_and_kill_9_never_tear_a_log_line() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    // A file-size limit stands in for a full disk: writes past 8 KiB fail (EFBIG) or are
    // cut short, as on a full file system.
    let miner = start(dir.path(), |c| {
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            c.pre_exec(|| {
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                let limit = libc::rlimit {
                    rlim_cur: 8 << 10,
                    rlim_max: 8 << 10,
                };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    });
    let (all, _) = valid_traffic(&miner, 80);
    assert!(all, "answers go on when the log cannot be written");
    let log = dir.path().join("log").join("predictions.jsonl");
    // Every answer is written whole or counted as dropped, once the writer caught up.
    let t0 = Instant::now();
    let (lines, dropped) = loop {
        let (lines, dropped) = (
            whole_lines(&log),
            miner.metric("sv_miner_log_dropped_total"),
        );
        if lines as f64 + dropped == 80.0 {
            break (lines, dropped);
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "{lines} lines written and {dropped} counted of 80"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        lines > 0 && dropped > 0.0,
        "{lines} lines, {dropped} dropped"
    );
    assert!(miner.stop().success());
    whole_lines(&log);
    eprintln!("full disk: {lines} lines written whole, {dropped} counted as dropped");

    // kill -9 while answers are being logged, three times: the log holds whole lines.
    for round in 0..3 {
        let miner = start(dir.path(), |_| {});
        std::thread::scope(|scope| {
            let traffic = scope.spawn(|| {
                for _ in 0..200 {
                    if valid(&miner).0 != 200 {
                        break;
                    }
                }
            });
            let before = whole_lines(&log);
            let t0 = Instant::now();
            while whole_lines(&log) < before + 5 && t0.elapsed() < Duration::from_secs(30) {
                std::thread::sleep(Duration::from_millis(20));
            }
            miner.signal("-KILL");
            traffic.join().unwrap();
        });
        drop(miner);
        let text = std::fs::read_to_string(&log).unwrap();
        for line in text.lines() {
            assert!(
                serde_json::from_str::<serde_json::Value>(line).is_ok(),
                "round {round}: torn line {line}"
            );
        }
    }
    let miner = start(dir.path(), |_| {});
    after_attack("full disk and kill -9", &miner);
    assert!(miner.stop().success());
    whole_lines(&log);
}
