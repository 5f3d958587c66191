//! The process's own figures in Prometheus's standard names (`process_*`), read from
//! `/proc/self` at each scrape: resident memory (`status`), CPU time and start time
//! (`stat`), open descriptors (`fd`).
//! On systems without `/proc` nothing is written.

use std::fmt::Write;

/// Clock ticks per second of `/proc/<pid>/stat`'s times (`sysconf(_SC_CLK_TCK)`, 100 on
/// Linux for every architecture that matters here).
const TICKS: f64 = 100.0;

/// Append the `process_*` metrics to `out`.
pub fn render(out: &mut String) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return;
    };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state): utime 14 → f[11], stime 15 → f[12], starttime 22 →
    // f[19].
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
    let mut metric = |name: &str, kind: &str, help: &str, v: f64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
        );
    };
    if let (Some(u), Some(s)) = (num(11), num(12)) {
        metric(
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time spent, seconds.",
            (u + s) / TICKS,
        );
    }
    // VmRSS is in KiB whatever the page size (stat's rss counts pages).
    let rss_kib = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        });
    if let Some(kib) = rss_kib {
        metric(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size, bytes.",
            kib * 1024.0,
        );
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        metric(
            "process_open_fds",
            "gauge",
            "Open file descriptors.",
            fds.count() as f64,
        );
    }
    let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<f64>().ok())
    });
    if let (Some(boot), Some(start)) = (boot, num(19)) {
        metric(
            "process_start_time_seconds",
            "gauge",
            "Start time since the Unix epoch, seconds.",
            boot + start / TICKS,
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_process_figures_are_plausible() {
        let mut out = String::new();
        super::render(&mut out);
        if !std::path::Path::new("/proc/self/stat").exists() {
            return;
        }
        let value = |name: &str| -> f64 {
            out.lines()
                .find_map(|l| l.strip_prefix(&format!("{name} ")))
                .unwrap_or_else(|| panic!("{name} missing:\n{out}"))
                .parse()
                .unwrap()
        };
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let rss_kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap();
        // Both read within moments of each other: within 50 %.
        let rss = value("process_resident_memory_bytes");
        assert!(
            (rss / (rss_kib * 1024.0) - 1.0).abs() < 0.5,
            "{rss} vs {rss_kib} KiB"
        );
        assert!(value("process_open_fds") >= 3.0);
        assert!(value("process_cpu_seconds_total") >= 0.0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let start = value("process_start_time_seconds");
        assert!(
            start <= now + 1.0 && start > now - 86_400.0,
            "{start} vs {now}"
        );
    }
}
