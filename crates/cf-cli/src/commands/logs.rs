//! `cf logs NAME [--recent]`.

use super::common::{find_app, read_log_stream, Ctx};
use crate::error::Result;
use crate::format::log_line;
use proto::LogMessage;
use serde::Deserialize;
use std::io::Write;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Name of the app
    pub name: String,
    /// Dump recent logs instead of tailing
    #[arg(long)]
    pub recent: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Recent {
    resources: Vec<LogMessage>,
}

fn print(m: &LogMessage) {
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{}", log_line(m));
    let _ = out.flush();
}

pub async fn run(args: Args) -> Result<()> {
    let ctx = Ctx::load()?;
    println!(
        "Retrieving logs for app {} {}...\n",
        args.name,
        ctx.where_()
    );
    let app = find_app(&ctx, &args.name).await?;
    if args.recent {
        let r: Recent = ctx
            .client
            .get(&format!("/v3/apps/{}/logs/recent?limit=1000", app.guid))
            .await?;
        let mut lines = r.resources;
        by_time(&mut lines);
        lines.iter().for_each(print);
        return Ok(());
    }
    let path = format!("/v3/apps/{}/logs/stream", app.guid);
    let tail = async {
        loop {
            match ctx.client.stream(&path).await {
                Ok(resp) => {
                    if let Err(e) = read_log_stream(resp, |m| print(&m)).await {
                        eprintln!("Log stream interrupted: {e}; reconnecting...");
                    }
                }
                Err(e) if e.status() == Some(404) => return Err(e),
                Err(e) => eprintln!("Cannot reach the log stream: {e}; retrying..."),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    };
    tokio::select! {
        r = tail => r,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

/// Orders log lines by their timestamps, as the cf CLI does for `--recent`
/// (lines from the API, the cell and the app arrive by different paths);
/// lines with the same or an unreadable time keep their order.
fn by_time(lines: &mut [LogMessage]) {
    lines.sort_by_key(|m| {
        chrono::DateTime::parse_from_rfc3339(&m.timestamp)
            .map(|t| t.timestamp_nanos_opt().unwrap_or(i64::MAX))
            .unwrap_or(i64::MAX)
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::{LogSource, LogStream};

    #[test]
    fn recent_lines_are_ordered_by_time() {
        let at = |ts: &str, line: &str| {
            let mut m = LogMessage::new("a", LogSource::App, Some(0), LogStream::Stdout, line);
            m.timestamp = ts.into();
            m
        };
        let mut lines = vec![
            at("2026-12-06T10:00:01.5Z", "third"),
            at("2026-12-06T10:00:01.25Z", "second"),
            at("2026-12-06T10:00:00Z", "first"),
            at("2026-12-06T10:00:01.5Z", "fourth"),
        ];
        by_time(&mut lines);
        let order: Vec<&str> = lines.iter().map(|m| m.line.as_str()).collect();
        assert_eq!(order, ["first", "second", "third", "fourth"]);
    }
}
