//! Pure rendering of tables, key/value blocks, log lines and the `cf app` block.

use crate::size::{format_bytes, format_mb};
use chrono::{DateTime, Utc};
use proto::{LogMessage, LogSource, LogStream};

/// Space-aligned table; columns separated by 3 spaces, no trailing spaces.
pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 < r.len() {
                line.push_str(&format!("{cell:<w$}   ", w = widths[c]));
            } else {
                line.push_str(cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `key:` padded to `width` columns, then the value.
pub fn kv(pairs: &[(&str, String)], width: usize) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            format!("{:<width$}{v}\n", format!("{k}:"))
                .trim_end()
                .to_string()
                + "\n"
        })
        .collect()
}

/// Aligned block with the longest key + 3 spaces (the `cf api` / `cf target` style).
pub fn kv_auto(pairs: &[(&str, String)]) -> String {
    let w = pairs.iter().map(|(k, _)| k.len() + 1).max().unwrap_or(0) + 3;
    kv(pairs, w)
}

/// `2026-11-22T03:00:01.12+0000` from an RFC 3339 timestamp.
pub fn log_time(ts: &str) -> String {
    match DateTime::parse_from_rfc3339(ts) {
        Ok(t) => {
            let t = t.with_timezone(&Utc);
            let cs = t.timestamp_subsec_millis() / 10;
            format!("{}.{cs:02}+0000", t.format("%Y-%m-%dT%H:%M:%S"))
        }
        Err(_) => ts.to_string(),
    }
}

/// `[APP/PROC/WEB/0]` (`[APP/PROC/WORKER/0]` for a `worker` process,
/// `[APP/TASK/<name>/0]` for a task), `[STG/0]`, `[RTR/0]`, `[API/0]`,
/// `[HM/0]`.
pub fn log_tag(m: &LogMessage) -> String {
    let i = m.instance_index.unwrap_or(0);
    match (m.source, &m.task_name) {
        (LogSource::App, Some(task)) => format!("[APP/TASK/{task}/{i}]"),
        (LogSource::App, None) => format!(
            "[APP/PROC/{}/{i}]",
            m.process_type
                .as_deref()
                .unwrap_or("web")
                .to_ascii_uppercase()
        ),
        (other, _) => format!("[{}/{i}]", other.as_str()),
    }
}

/// One `cf logs` line: `   <time> [TAG] OUT text`.
pub fn log_line(m: &LogMessage) -> String {
    let stream = match m.stream {
        LogStream::Stdout => "OUT",
        LogStream::Stderr => "ERR",
    };
    format!(
        "   {} {} {stream} {}",
        log_time(&m.timestamp),
        log_tag(m),
        m.line.trim_end_matches(['\n', '\r'])
    )
}

/// `Sun 22 Nov 03:00:00 UTC 2026`.
pub fn uploaded_time(ts: &str) -> String {
    match DateTime::parse_from_rfc3339(ts) {
        Ok(t) => t
            .with_timezone(&Utc)
            .format("%a %d %b %H:%M:%S UTC %Y")
            .to_string(),
        Err(_) => ts.to_string(),
    }
}

/// One instance row of a process.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceView {
    pub index: u32,
    pub state: String,
    /// RFC 3339 start time (now - uptime), empty when unknown.
    pub since: String,
    pub cpu: f64,
    pub mem: u64,
    pub mem_quota: u64,
    pub disk: u64,
    pub disk_quota: u64,
    pub details: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessView {
    pub kind: String,
    pub instances: u32,
    pub memory_mb: u64,
    pub disk_mb: u64,
    pub command: String,
    pub stats: Vec<InstanceView>,
}

impl ProcessView {
    pub fn running(&self) -> usize {
        self.stats
            .iter()
            .filter(|s| s.state.eq_ignore_ascii_case("RUNNING"))
            .count()
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppView {
    pub name: String,
    pub state: String,
    pub routes: Vec<String>,
    pub last_uploaded: Option<String>,
    pub stack: String,
    pub buildpacks: Vec<String>,
    pub processes: Vec<ProcessView>,
}

/// The `cf app` block (after the "Showing health..." line).
pub fn app_block(app: &AppView) -> String {
    let mut out = kv(
        &[
            ("name", app.name.clone()),
            ("requested state", app.state.to_ascii_lowercase()),
            ("routes", app.routes.join(", ")),
            (
                "last uploaded",
                app.last_uploaded
                    .as_deref()
                    .map(uploaded_time)
                    .unwrap_or_default(),
            ),
            ("stack", app.stack.clone()),
            ("buildpacks", app.buildpacks.join(", ")),
        ],
        19,
    );
    for p in &app.processes {
        out.push('\n');
        out.push_str(&kv(
            &[
                ("type", p.kind.clone()),
                ("instances", {
                    // The controller marks an index that keeps crashing.
                    let flapping = p.stats.iter().any(|s| {
                        s.details
                            .as_deref()
                            .is_some_and(|d| d.starts_with("flapping"))
                    });
                    let flag = if flapping { " (flapping)" } else { "" };
                    format!("{}/{}{flag}", p.running(), p.instances)
                }),
                ("memory usage", format_mb(p.memory_mb)),
                ("start command", p.command.clone()),
            ],
            16,
        ));
        // (Down instances with details, e.g. "insufficient resources:
        // memory", are listed: the details say why.)
        if p.stats
            .iter()
            .all(|s| s.state.eq_ignore_ascii_case("DOWN") && s.details.is_none())
        {
            out.push_str("There are no running instances of this process.\n");
            continue;
        }
        let with_details = p.stats.iter().any(|s| s.details.is_some());
        let mut rows = vec![vec![
            String::new(),
            "state".into(),
            "since".into(),
            "cpu".into(),
            "memory".into(),
            "disk".into(),
        ]];
        if with_details {
            rows[0].push("details".into());
        }
        for s in &p.stats {
            let mut row = vec![
                format!("#{}", s.index),
                s.state.to_ascii_lowercase(),
                s.since.clone(),
                format!("{:.1}%", s.cpu * 100.0),
                format!("{} of {}", format_bytes(s.mem), format_bytes(s.mem_quota)),
                format!("{} of {}", format_bytes(s.disk), format_bytes(s.disk_quota)),
            ];
            if with_details {
                row.push(s.details.clone().unwrap_or_default());
            }
            rows.push(row);
        }
        out.push_str(&table(&rows));
    }
    out
}

/// `cf apps` table.
pub fn apps_table(apps: &[AppView]) -> String {
    let mut rows = vec![vec![
        "name".to_string(),
        "requested state".into(),
        "processes".into(),
        "routes".into(),
    ]];
    for a in apps {
        let procs = a
            .processes
            .iter()
            .map(|p| format!("{}:{}/{}", p.kind, p.running(), p.instances))
            .collect::<Vec<_>>()
            .join(", ");
        rows.push(vec![
            a.name.clone(),
            a.state.to_ascii_lowercase(),
            procs,
            a.routes.join(", "),
        ]);
    }
    table(&rows)
}

/// `since` column: start time from the uptime in seconds.
pub fn since(now: DateTime<Utc>, uptime_s: u64) -> String {
    let t = now - chrono::Duration::seconds(i64::try_from(uptime_s).unwrap_or(0));
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> AppView {
        let inst = |i, st: &str, mem| InstanceView {
            index: i,
            state: st.into(),
            since: "2026-11-22T03:00:05Z".into(),
            cpu: 0.003,
            mem,
            mem_quota: 256 << 20,
            disk: 12 << 20,
            disk_quota: 1 << 30,
            details: None,
        };
        AppView {
            name: "myapp".into(),
            state: "STARTED".into(),
            routes: vec!["myapp.localhost".into()],
            last_uploaded: Some("2026-11-22T03:00:00Z".into()),
            stack: "host".into(),
            buildpacks: vec!["python".into()],
            processes: vec![ProcessView {
                kind: "web".into(),
                instances: 3,
                memory_mb: 256,
                disk_mb: 1024,
                command: "python3 app.py".into(),
                stats: vec![
                    inst(0, "RUNNING", 21_076_377),
                    inst(1, "RUNNING", 20_000_000),
                    inst(2, "CRASHED", 0),
                ],
            }],
        }
    }

    #[test]
    fn app_block_has_the_cli_md_shape() {
        let s = app_block(&view());
        let expected_head = "name:              myapp\nrequested state:   started\nroutes:            myapp.localhost\nlast uploaded:     Sun 22 Nov 03:00:00 UTC 2026\nstack:             host\nbuildpacks:        python\n\ntype:           web\ninstances:      2/3\nmemory usage:   256M\nstart command:  python3 app.py\n";
        assert!(s.starts_with(expected_head), "{s}");
        assert!(
            s.contains("     state     since                  cpu    memory"),
            "{s}"
        );
        assert!(
            s.contains("#0   running   2026-11-22T03:00:05Z   0.3%   20.1M of 256M   12M of 1G"),
            "{s}"
        );
        assert!(
            s.contains("#2   crashed   2026-11-22T03:00:05Z   0.3%   0 of 256M"),
            "{s}"
        );
        assert!(!s.lines().any(|l| l.ends_with(' ')));
    }

    #[test]
    fn app_block_flags_flapping() {
        let mut v = view();
        v.processes[0].stats[2].details =
            Some("flapping: crashed 4 times in 10 min (last: exited with status 3)".into());
        let s = app_block(&v);
        assert!(s.contains("instances:      2/3 (flapping)\n"), "{s}");
        assert!(s.contains("details"), "{s}");
        assert!(s.contains("flapping: crashed 4 times"), "{s}");
    }

    #[test]
    fn apps_table_shape() {
        let s = apps_table(&[view()]);
        assert_eq!(s, "name    requested state   processes   routes\nmyapp   started           web:2/3     myapp.localhost\n");
    }

    #[test]
    fn log_lines() {
        let mut m = LogMessage::new(
            "a",
            LogSource::App,
            Some(0),
            LogStream::Stdout,
            "listening on 8080\n",
        );
        m.timestamp = "2026-11-22T03:00:05.401Z".into();
        assert_eq!(
            log_line(&m),
            "   2026-11-22T03:00:05.40+0000 [APP/PROC/WEB/0] OUT listening on 8080"
        );
        m.source = LogSource::Stg;
        m.instance_index = None;
        m.stream = LogStream::Stderr;
        assert_eq!(
            log_line(&m),
            "   2026-11-22T03:00:05.40+0000 [STG/0] ERR listening on 8080"
        );
        let tag = |source, index, process_type: Option<&str>, task_name: Option<&str>| {
            let mut m = LogMessage::new("a", source, index, LogStream::Stdout, "x");
            m.process_type = process_type.map(str::to_string);
            m.task_name = task_name.map(str::to_string);
            log_tag(&m)
        };
        assert_eq!(tag(LogSource::Rtr, Some(1), None, None), "[RTR/1]");
        assert_eq!(tag(LogSource::Api, None, None, None), "[API/0]");
        assert_eq!(tag(LogSource::Hm, None, None, None), "[HM/0]");
        assert_eq!(tag(LogSource::App, Some(2), None, None), "[APP/PROC/WEB/2]");
        assert_eq!(
            tag(LogSource::App, Some(1), Some("worker"), None),
            "[APP/PROC/WORKER/1]"
        );
        assert_eq!(
            tag(LogSource::App, Some(0), None, Some("migrate")),
            "[APP/TASK/migrate/0]"
        );
        assert_eq!(
            log_time("2026-11-22T04:00:01.129+01:00"),
            "2026-11-22T03:00:01.12+0000"
        );
    }

    #[test]
    fn kv_and_table_alignment() {
        assert_eq!(
            kv_auto(&[("a", "1".into()), ("long key", "2".into())]),
            "a:          1\nlong key:   2\n"
        );
        assert_eq!(
            table(&[vec!["x".into(), "".into()], vec!["yy".into(), "z".into()]]),
            "x\nyy   z\n"
        );
        let now = DateTime::parse_from_rfc3339("2026-11-22T03:01:05Z")
            .expect("t")
            .with_timezone(&Utc);
        assert_eq!(since(now, 60), "2026-11-22T03:00:05Z");
    }
}
