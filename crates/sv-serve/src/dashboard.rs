//! The miner's dashboard: one server-rendered HTML page on the metrics listener, with
//! inline SVG charts and no script, so it works offline and behind any proxy. It shows
//! the model (version, age, warning band), requests per validator and outcome, latency
//! and batch sizes over the last six hours, the distribution of answers, the latest
//! wrong and unsure answers with thumbnails from the prediction log, the improvement
//! loop's journal when its folder is configured, and the chain link.

use std::fmt::Write;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde_json::Value;
use sv_records::predlog::{CURRENT, Entry};

use crate::history::{BUCKET_SECONDS, Point};
use crate::metrics::Snapshot;

/// Bytes of the prediction log's tail read for the latest answers.
const LOG_TAIL: u64 = 512 << 10;
/// Answers listed per kind (wrong, unsure).
const LISTED: usize = 8;

/// Where the dashboard reads files from.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The prediction log folder.
    pub log_dir: PathBuf,
    /// The improvement loop's `work_dir`, when it is on this host.
    pub loop_dir: Option<PathBuf>,
}

/// What the page says about the miner's health beyond the metrics.
#[derive(Debug, Clone, Copy)]
pub struct Health {
    /// The axon listener accepts connections.
    pub listening: bool,
    /// The inference worker runs.
    pub inference: bool,
    /// The served model's age in days, when known.
    pub model_age_days: Option<f64>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn clock(unix: u64) -> String {
    let s = unix % 86_400;
    format!("{:02}:{:02}", s / 3600, (s % 3600) / 60)
}

fn ago(now: u64, then: u64) -> String {
    let s = now.saturating_sub(then);
    match s {
        0..120 => format!("{s} s ago"),
        120..7200 => format!("{} min ago", s / 60),
        7200..172_800 => format!("{} h ago", s / 3600),
        _ => format!("{} days ago", s / 86_400),
    }
}

/// The warning band of a model `days` old: (`data-warning` value, words).
fn age_band(days: Option<f64>) -> (&'static str, String) {
    match days {
        None => ("unknown", "age unknown".into()),
        Some(d) => match crate::age::band(d) {
            None => ("ok", format!("{d:.1} days old")),
            Some(b) => {
                let past = crate::age::BANDS[b];
                let key = ["past-45", "past-60", "past-75", "past-90"][b];
                (
                    key,
                    format!("{d:.1} days old, past {past:.0}: retrain and publish"),
                )
            }
        },
    }
}

/// The page at `now` (Unix seconds).
pub fn page(snap: &Snapshot, health: Health, src: &Sources, now: u64) -> String {
    let mut h = String::with_capacity(32 << 10);
    h.push_str(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"30\"><link rel=\"icon\" href=\"data:,\">\
         <title>sv-miner</title><style>\
         body{font:14px system-ui,sans-serif;margin:16px;background:#f6f7f9;color:#1d2430}\
         h1{font-size:20px;margin:0 0 12px}h2{font-size:15px;margin:0 0 8px}\
         .grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:12px}\
         section{background:#fff;border:1px solid #d8dde5;border-radius:6px;padding:12px}\
         table{border-collapse:collapse;width:100%}td,th{padding:3px 6px;text-align:left;\
         border-bottom:1px solid #eef0f3}th{font-weight:600}.num{text-align:right}\
         .banner{padding:8px 12px;border-radius:6px;margin-bottom:8px;font-weight:600}\
         .warn{background:#fff3cd;border:1px solid #e0b84c}.bad{background:#fde2e1;\
         border:1px solid #d9534f}.muted{color:#6b7482}svg text{font-size:10px;fill:#4a5261}\
         img.thumb{width:56px;height:56px;object-fit:cover;border-radius:3px}\
         </style></head><body>",
    );
    let _ = write!(
        h,
        "<h1>sv-miner <span class=\"muted\">· {} UTC</span></h1>",
        clock(now)
    );
    banners(&mut h, snap, health);
    h.push_str("<div class=\"grid\">");
    model_panel(&mut h, snap, health, now);
    requests_panel(&mut h, snap);
    chain_panel(&mut h, snap, now);
    latency_panel(&mut h, &snap.points);
    answers_panel(&mut h, &snap.answers);
    loop_panel(&mut h, src.loop_dir.as_deref(), now);
    failures_panel(&mut h, &src.log_dir, now);
    h.push_str("</div></body></html>");
    h
}

fn banners(h: &mut String, snap: &Snapshot, health: Health) {
    let mut banner = |class: &str, id: &str, text: String| {
        let _ = write!(
            h,
            "<div class=\"banner {class}\" id=\"{id}\">{}</div>",
            esc(&text)
        );
    };
    if !(health.listening && health.inference) {
        banner(
            "bad",
            "banner-health",
            format!(
                "Not healthy: axon listening {}, inference worker {}",
                health.listening, health.inference
            ),
        );
    }
    if let Some(c) = &snap.chain {
        if c.registered == Some(false) {
            banner(
                "bad",
                "banner-deregistered",
                "The hotkey is no longer registered on the subnet: validators stop sending \
                 challenges. Register again with `sv-miner register`."
                    .into(),
            );
        }
        if !c.connected {
            banner(
                "warn",
                "banner-chain",
                "The chain does not answer: serving on the last metagraph.".into(),
            );
        }
    }
    if let (key, words) = age_band(health.model_age_days)
        && key.starts_with("past")
    {
        let class = if key == "past-90" { "bad" } else { "warn" };
        banner(class, "banner-age", format!("The model is {words}."));
    }
}

fn model_panel(h: &mut String, snap: &Snapshot, health: Health, now: u64) {
    let (key, words) = age_band(health.model_age_days);
    let _ = write!(
        h,
        "<section id=\"model\"><h2>Model</h2><table>\
         <tr><th>version</th><td id=\"model-version\">{}</td></tr>\
         <tr><th>age</th><td id=\"model-age\" data-warning=\"{key}\">{}</td></tr>\
         <tr><th>in service since</th><td>{}</td></tr>\
         <tr><th>swaps</th><td id=\"model-swaps\">{} ({} refused)</td></tr>\
         <tr><th>log lines dropped</th><td>{}</td></tr></table></section>",
        esc(&snap.model_version),
        esc(&words),
        ago(now, snap.model_loaded_unix),
        snap.swaps,
        snap.swap_failures,
        snap.log_dropped
    );
}

fn requests_panel(h: &mut String, snap: &Snapshot) {
    let mut outcomes: Vec<&str> = snap.requests.iter().map(|(o, _, _)| o.as_str()).collect();
    outcomes.sort_unstable();
    outcomes.dedup();
    let mut validators: Vec<&str> = snap.requests.iter().map(|(_, v, _)| v.as_str()).collect();
    validators.sort_unstable();
    validators.dedup();
    let answered: u64 = snap
        .requests
        .iter()
        .filter(|(o, _, _)| o == "answered")
        .map(|(_, _, n)| n)
        .sum();
    let total: u64 = snap.requests.iter().map(|(_, _, n)| n).sum();
    let _ = write!(
        h,
        "<section id=\"requests\"><h2>Requests <span class=\"muted\">(<span id=\"answered-total\">{answered}</span> answered of <span id=\"requests-total\">{total}</span>)</span></h2><table><tr><th>validator</th>"
    );
    for o in &outcomes {
        let _ = write!(h, "<th class=\"num\">{}</th>", esc(o));
    }
    h.push_str("</tr>");
    for v in &validators {
        let short = match v.get(..12) {
            Some(head) if v.len() > 13 => format!("{head}…"),
            _ => v.to_string(),
        };
        let _ = write!(
            h,
            "<tr class=\"validator\" data-hotkey=\"{}\"><td title=\"{}\">{}</td>",
            esc(v),
            esc(v),
            esc(&short)
        );
        for o in &outcomes {
            let n: u64 = snap
                .requests
                .iter()
                .filter(|(oo, vv, _)| oo == o && vv == v)
                .map(|(_, _, n)| n)
                .sum();
            let _ = write!(h, "<td class=\"num\" data-outcome=\"{}\">{n}</td>", esc(o));
        }
        h.push_str("</tr>");
    }
    if validators.is_empty() {
        h.push_str("<tr><td class=\"muted\">no requests yet</td></tr>");
    }
    h.push_str("</table></section>");
}

/// A line chart of `series` (each: colour, label, values) over `points` buckets.
fn line_chart(h: &mut String, id: &str, points: &[Point], series: &[(&str, &str, Vec<f64>)]) {
    let (w, ht, left, bottom) = (400.0, 150.0, 44.0, 18.0);
    let max = series
        .iter()
        .flat_map(|(_, _, v)| v.iter().copied())
        .fold(0.0f64, f64::max)
        .max(1.0);
    let n = points.len().max(2) as f64 - 1.0;
    let x = |i: usize| left + (w - left - 6.0) * i as f64 / n;
    let top = 22.0;
    let y = |v: f64| top + (ht - bottom - top) * (1.0 - v / max);
    let _ = write!(
        h,
        "<svg id=\"{id}\" viewBox=\"0 0 {w} {ht}\" width=\"100%\" role=\"img\">\
         <line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#c5cbd5\"/>\
         <text x=\"2\" y=\"{}\">{max:.0}</text><text x=\"2\" y=\"{}\">0</text>",
        ht - bottom,
        w - 6.0,
        ht - bottom,
        top + 4.0,
        ht - bottom
    );
    if let (Some(first), Some(last)) = (points.first(), points.last()) {
        let _ = write!(
            h,
            "<text x=\"{left}\" y=\"{}\">{}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            ht - 4.0,
            clock(first.start),
            w - 6.0,
            ht - 4.0,
            clock(last.start + BUCKET_SECONDS)
        );
    }
    for (k, (colour, label, values)) in series.iter().enumerate() {
        let path: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
            .collect();
        if path.len() == 1 {
            let _ = write!(
                h,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"/>",
                x(0),
                y(values[0])
            );
        } else if !path.is_empty() {
            let _ = write!(
                h,
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
                path.join(" ")
            );
        }
        let _ = write!(
            h,
            "<text x=\"{}\" y=\"12\" fill=\"{colour}\" style=\"fill:{colour}\">{label}</text>",
            left + 10.0 + 70.0 * k as f64
        );
    }
    h.push_str("</svg>");
}

fn latency_panel(h: &mut String, points: &[Point]) {
    h.push_str("<section id=\"latency\"><h2>Latency (ms) and batch size, last 6 hours</h2>");
    if points.is_empty() {
        h.push_str("<p class=\"muted\">no answers yet</p></section>");
        return;
    }
    let p50: Vec<f64> = points.iter().map(|p| p.p50_ms).collect();
    let p99: Vec<f64> = points.iter().map(|p| p.p99_ms).collect();
    line_chart(
        h,
        "latency-chart",
        points,
        &[("#2f6fde", "p50", p50), ("#e07b24", "p99", p99)],
    );
    let batch: Vec<f64> = points.iter().map(|p| p.mean_batch).collect();
    line_chart(
        h,
        "batch-chart",
        points,
        &[("#3c9a5f", "mean batch", batch)],
    );
    let last = points.last().expect("not empty");
    let _ = write!(
        h,
        "<p>last 5 minutes: <span id=\"latency-p50\">{:.1}</span> ms p50, \
         <span id=\"latency-p99\">{:.1}</span> ms p99, {} answered, mean batch {:.1}</p></section>",
        last.p50_ms, last.p99_ms, last.answered, last.mean_batch
    );
}

fn answers_panel(h: &mut String, answers: &[u64; 10]) {
    let total: u64 = answers.iter().sum();
    let max = answers.iter().copied().max().unwrap_or(0).max(1) as f64;
    let _ = write!(
        h,
        "<section id=\"answers\"><h2>Answers <span class=\"muted\">(P(roadwork), <span id=\"answers-total\">{total}</span> since start)</span></h2>\
         <svg id=\"answers-chart\" viewBox=\"0 0 400 150\" width=\"100%\" role=\"img\">"
    );
    for (i, n) in answers.iter().enumerate() {
        let bh = 108.0 * *n as f64 / max;
        let x = 10.0 + 38.0 * i as f64;
        let colour = if i >= 5 { "#d9822b" } else { "#4a7bd0" };
        let _ = write!(
            h,
            "<rect class=\"bin\" data-count=\"{n}\" x=\"{x}\" y=\"{:.1}\" width=\"32\" height=\"{bh:.1}\" fill=\"{colour}\"/>\
             <text x=\"{:.0}\" y=\"146\" text-anchor=\"middle\">{:.1}</text>",
            130.0 - bh,
            x + 16.0,
            i as f64 / 10.0
        );
        if *n > 0 {
            let _ = write!(
                h,
                "<text x=\"{:.0}\" y=\"{:.1}\" text-anchor=\"middle\">{n}</text>",
                x + 16.0,
                126.0 - bh
            );
        }
    }
    h.push_str("</svg></section>");
}

/// The last entries of the current prediction log (its last [`LOG_TAIL`] bytes).
fn recent_entries(log_dir: &Path) -> Vec<Entry> {
    let Ok(mut f) = std::fs::File::open(log_dir.join(CURRENT)) else {
        return Vec::new();
    };
    let len = f.metadata().map_or(0, |m| m.len());
    let from = len.saturating_sub(LOG_TAIL);
    if f.seek(SeekFrom::Start(from)).is_err() {
        return Vec::new();
    }
    let mut bytes = Vec::new();
    if f.take(LOG_TAIL).read_to_end(&mut bytes).is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut lines = text.lines();
    if from > 0 {
        lines.next();
    }
    lines
        .filter_map(|l| serde_json::from_str::<Entry>(l).ok())
        .collect()
}

/// The stored image of `sha256` in `log_dir`, if any: its path and content type. Only
/// a 64-digit lowercase hex id is looked up, so no path can be named from outside.
pub fn image_file(log_dir: &Path, sha256: &str) -> Option<(PathBuf, &'static str)> {
    if sha256.len() != 64
        || !sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    for (ext, kind) in [
        ("jpg", "image/jpeg"),
        ("png", "image/png"),
        ("webp", "image/webp"),
        ("bin", "application/octet-stream"),
    ] {
        let path = log_dir
            .join("images")
            .join(&sha256[..2])
            .join(format!("{sha256}.{ext}"));
        if path.is_file() {
            return Some((path, kind));
        }
    }
    None
}

fn failures_panel(h: &mut String, log_dir: &Path, now: u64) {
    let entries = recent_entries(log_dir);
    let wrong = |e: &Entry| e.label.is_some_and(|l| (e.prediction >= 0.5) != (l == 1));
    let unsure = |e: &Entry| (e.prediction - 0.5).abs() * 2.0 < 0.2;
    let mut seen = std::collections::HashSet::new();
    let mut rows: Vec<(&str, &Entry)> = Vec::new();
    for (kind, pick) in [
        ("wrong", &wrong as &dyn Fn(&Entry) -> bool),
        ("unsure", &unsure),
    ] {
        let mut n = 0;
        for e in entries.iter().rev() {
            if n == LISTED {
                break;
            }
            if pick(e) && seen.insert(e.image_sha256.clone()) {
                rows.push((kind, e));
                n += 1;
            }
        }
    }
    let _ = write!(
        h,
        "<section id=\"failures\"><h2>Latest wrong and unsure answers <span class=\"muted\">(from {})</span></h2><table>\
         <tr><th></th><th>kind</th><th class=\"num\">P(roadwork)</th><th>label</th><th>when</th></tr>",
        esc(&log_dir.display().to_string())
    );
    for (kind, e) in &rows {
        let thumb = if image_file(log_dir, &e.image_sha256).is_some() {
            format!(
                "<a href=\"/dashboard/image/{0}\"><img class=\"thumb\" alt=\"challenge {1}\" src=\"/dashboard/image/{0}\"></a>",
                esc(&e.image_sha256),
                esc(&e.image_sha256[..e.image_sha256.len().min(8)])
            )
        } else {
            "<span class=\"muted\">not stored</span>".to_string()
        };
        let label = match e.label {
            Some(1) => "roadwork",
            Some(_) => "no roadwork",
            None => "—",
        };
        let _ = write!(
            h,
            "<tr class=\"failure\" data-kind=\"{kind}\"><td>{thumb}</td><td>{kind}</td><td class=\"num\">{:.3}</td><td>{label}</td><td>{}</td></tr>",
            e.prediction,
            ago(now, e.time as u64)
        );
    }
    if rows.is_empty() {
        h.push_str("<tr><td colspan=\"5\" class=\"muted\">none in the log's tail</td></tr>");
    }
    h.push_str("</table></section>");
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// The latest cycle folder of a loop's `work_dir`.
fn latest_cycle(work: &Path) -> Option<(u64, PathBuf)> {
    std::fs::read_dir(work.join("cycles"))
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| Some((e.file_name().to_str()?.parse::<u64>().ok()?, e.path())))
        .max_by_key(|(n, _)| *n)
}

fn loop_panel(h: &mut String, loop_dir: Option<&Path>, now: u64) {
    h.push_str("<section id=\"loop\"><h2>Improvement loop</h2>");
    let Some(work) = loop_dir else {
        h.push_str(
            "<p class=\"muted\">not configured (loop_dir in miner.toml: the loop's work_dir)</p></section>",
        );
        return;
    };
    h.push_str("<table>");
    let row = |h: &mut String, id: &str, k: &str, v: String| {
        let _ = write!(h, "<tr><th>{k}</th><td id=\"{id}\">{v}</td></tr>");
    };
    match read_json(&work.join("production.json")) {
        Some(p) => {
            let commit = p["commit"].as_str().unwrap_or("");
            row(
                h,
                "loop-production",
                "production",
                format!(
                    "{} @ {} (cycle {}){}",
                    esc(p["repo"].as_str().unwrap_or("—")),
                    esc(&commit[..commit.len().min(10)]),
                    p["cycle"].as_u64().map_or("—".into(), |c| c.to_string()),
                    p["submission_time"]
                        .as_u64()
                        .map_or(String::new(), |t| format!(", published {}", ago(now, t)))
                ),
            );
        }
        None => row(
            h,
            "loop-production",
            "production",
            "the starting model (nothing published by the loop yet)".into(),
        ),
    }
    match latest_cycle(work) {
        None => row(h, "loop-last", "last cycle", "none yet".into()),
        Some((n, dir)) => {
            let journal = read_json(&dir.join("journal.json")).unwrap_or(Value::Null);
            let steps: Vec<&str> = journal["steps"]
                .as_array()
                .map(|a| a.iter().filter_map(|s| s["step"].as_str()).collect())
                .unwrap_or_default();
            let started = journal["started"].as_u64().unwrap_or(0);
            row(
                h,
                "loop-last",
                "last cycle",
                format!(
                    "{n}, started {}; {} steps done{}",
                    ago(now, started),
                    steps.len(),
                    steps
                        .last()
                        .map_or(String::new(), |s| format!(" (last: {s})"))
                ),
            );
            let outcome = &journal["outcome"];
            let (state, text) = match outcome["kind"].as_str() {
                Some("published") => (
                    "published",
                    format!(
                        "published {} commit {}",
                        esc(outcome["repo"].as_str().unwrap_or("")),
                        esc(outcome["commit"].as_str().unwrap_or(""))
                    ),
                ),
                Some("kept") => (
                    "kept",
                    format!(
                        "production kept: {}",
                        esc(outcome["reason"].as_str().unwrap_or(""))
                    ),
                ),
                _ => (
                    "unfinished",
                    "unfinished: the next run continues it at its first unfinished step".into(),
                ),
            };
            let _ = write!(
                h,
                "<tr><th>outcome</th><td id=\"loop-outcome\" data-state=\"{state}\">{text}</td></tr>"
            );
            if let Some(g) = read_json(&dir.join("gate.json")) {
                let (lo, hi) = (
                    g["interval_points"][0].as_f64().unwrap_or(f64::NAN),
                    g["interval_points"][1].as_f64().unwrap_or(f64::NAN),
                );
                row(
                    h,
                    "loop-gate",
                    "gate",
                    format!(
                        "{}: reward {:+.2} points (95 % interval [{lo:+.2}, {hi:+.2}])",
                        if g["pass"].as_bool() == Some(true) {
                            "deploy"
                        } else {
                            "keep"
                        },
                        g["reward_difference_points"].as_f64().unwrap_or(f64::NAN)
                    ),
                );
            }
            if let Some(p) = read_json(&dir.join("published.json")) {
                row(
                    h,
                    "loop-published",
                    "published revision",
                    format!(
                        "{} {} ({})",
                        esc(p["repo"].as_str().unwrap_or("")),
                        esc(p["commit"].as_str().unwrap_or("")),
                        esc(p["revision"].as_str().unwrap_or(""))
                    ),
                );
            }
            let next = if state == "unfinished" {
                "its next run continues this cycle".to_string()
            } else {
                "a new cycle once production is retrain_after_days old (loop.toml)".to_string()
            };
            row(h, "loop-next", "next run", next);
        }
    }
    h.push_str("</table></section>");
}

fn chain_panel(h: &mut String, snap: &Snapshot, now: u64) {
    h.push_str("<section id=\"chain\"><h2>Chain</h2>");
    let Some(c) = &snap.chain else {
        h.push_str("<p id=\"chain-mode\" class=\"muted\">offline mode: callers from an allowlist or metagraph file</p></section>");
        return;
    };
    let yes_no = |v: Option<bool>| match v {
        Some(true) => "yes",
        Some(false) => "no",
        None => "—",
    };
    let _ = write!(
        h,
        "<table id=\"chain-table\"><tr><th>connected</th><td id=\"chain-connected\">{}</td></tr>\
         <tr><th>registered</th><td id=\"chain-registered\">{}</td></tr>\
         <tr><th>uid</th><td id=\"chain-uid\">{}</td></tr>\
         <tr><th>axon announced</th><td id=\"chain-axon\">{} (served: {})</td></tr>\
         <tr><th>metagraph</th><td id=\"chain-block\">block {}, {} neurons, read {}</td></tr>\
         <tr><th>errors</th><td>{}</td></tr></table></section>",
        yes_no(Some(c.connected)),
        yes_no(c.registered),
        c.uid.map_or("—".into(), |u| u.to_string()),
        esc(c.axon.as_deref().unwrap_or("—")),
        yes_no(c.axon_served),
        c.block,
        c.neurons,
        c.refreshed_unix.map_or("never".into(), |t| ago(now, t)),
        c.errors
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hex_ids_name_images() {
        let dir = tempfile::tempdir().unwrap();
        let sha = "ab".repeat(32);
        let at = dir.path().join("images/ab");
        std::fs::create_dir_all(&at).unwrap();
        std::fs::write(at.join(format!("{sha}.jpg")), b"x").unwrap();
        assert!(image_file(dir.path(), &sha).is_some());
        for bad in ["../../etc/passwd", &"AB".repeat(32), &"ab".repeat(31), ""] {
            assert!(image_file(dir.path(), bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn text_from_the_log_and_the_loop_is_escaped() {
        assert_eq!(esc("<script>\"&'"), "&lt;script&gt;&quot;&amp;&#39;");
    }
}
