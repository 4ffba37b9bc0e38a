//! CF v3 process stats (`/v3/processes/:guid/stats`): JSON resources built
//! from the instances DEAs report and the app's recent crashes.

use std::collections::BTreeMap;

use proto::{FindDropletResponse, InstanceState};
use serde_json::{json, Value};

use crate::context::Ctx;
use crate::runtime::{IndexCrashes, FLAPPING_WINDOW_S};
use crate::store::{App, Process};

/// CF process stats: one resource per index `0..instances`.
pub async fn process_stats(ctx: &Ctx, app: &App, process: &Process) -> Vec<Value> {
    let (found, crashes) = if app.started() {
        (
            ctx.find_instances(process.bus_id()).await,
            ctx.recent_crashes(app, &process.kind).await,
        )
    } else {
        (Vec::new(), BTreeMap::new())
    };
    let mut out = stats_resources(process, &app.version, &found, &crashes, proto::now_unix());
    let never = app
        .started()
        .then(|| ctx.placement.lock().ok()?.unplaceable(process.bus_id()))
        .flatten();
    if let Some(what) = never {
        // CF: an instance no cell can hold is DOWN, "insufficient resources".
        for r in out.iter_mut() {
            if r["state"] == "DOWN" && r["details"].is_null() {
                r["details"] = Value::String(format!("insufficient resources: {what}"));
            }
        }
    }
    out
}

impl IndexCrashes {
    /// The `details` of a crashed index in process stats.
    pub fn details(&self) -> String {
        let status = self
            .last_exit_status
            .map(|s| format!(", exit status {s}"))
            .unwrap_or_default();
        let what = if self.flapping() { "flapping: " } else { "" };
        let times = if self.count == 1 { "time" } else { "times" };
        format!(
            "{what}crashed {} {times} in {} min (last: {}{status})",
            self.count,
            FLAPPING_WINDOW_S / 60,
            if self.last_reason.is_empty() {
                "exited"
            } else {
                &self.last_reason
            }
        )
    }
}

fn state_rank(s: InstanceState) -> u8 {
    match s {
        InstanceState::Running => 0,
        InstanceState::Starting | InstanceState::Born => 1,
        InstanceState::Crashed => 2,
        _ => 3,
    }
}

/// Pure: builds stats resources for indices `0..instances`, preferring
/// RUNNING (then current version) when several instances share an index.
/// An index with no running instance and recent crashes shows as CRASHED,
/// with the crash count (and "flapping") in `details`.
pub fn stats_resources(
    process: &Process,
    version: &str,
    found: &[FindDropletResponse],
    crashes: &BTreeMap<u32, IndexCrashes>,
    now: f64,
) -> Vec<Value> {
    // Seconds since `t` (unix seconds): CF's `uptime` is the time since the
    // instance's last state change, in every state.
    let age = |t: f64| (now - t).max(0.0) as u64;
    let mut best: BTreeMap<u32, &FindDropletResponse> = BTreeMap::new();
    for f in found {
        let better = match best.get(&f.index) {
            None => true,
            Some(cur) => {
                (state_rank(f.state), f.version != version)
                    < (state_rank(cur.state), cur.version != version)
            }
        };
        if better {
            best.insert(f.index, f);
        }
    }
    let mem_quota = process.memory_in_mb.max(0) as u64 * 1024 * 1024;
    let disk_quota = process.disk_in_mb.max(0) as u64 * 1024 * 1024;
    let n = u32::try_from(process.instances.max(0)).unwrap_or(0);
    (0..n)
        .map(|index| match best.get(&index) {
            Some(f) => {
                let crashed = crashes.get(&index).filter(|c| c.count > 0);
                let state = match (f.state, crashed) {
                    (InstanceState::Running, _) => "RUNNING",
                    (InstanceState::Born | InstanceState::Starting, _) => "STARTING",
                    (InstanceState::Crashed, _) | (_, Some(_)) => "CRASHED",
                    _ => "DOWN",
                };
                let details = match (state, crashed) {
                    ("CRASHED" | "STARTING", Some(c)) => Value::String(c.details()),
                    _ => Value::Null,
                };
                let stats = f.stats.unwrap_or_default();
                let uptime = match f.stats {
                    Some(s) if state == "RUNNING" => s.uptime,
                    _ => age(f.since),
                };
                json!({
                    "type": process.kind, "index": index, "state": state,
                    "host": f.host,
                    "instance_ports": [{"external": f.port, "internal": f.port}],
                    "uptime": uptime,
                    "usage": {"time": proto::now_rfc3339(), "cpu": stats.cpu, "mem": stats.mem, "disk": stats.disk},
                    "mem_quota": mem_quota, "disk_quota": disk_quota, "fds_quota": 16384,
                    "details": details,
                })
            }
            None => match crashes.get(&index).filter(|c| c.count > 0) {
                Some(c) => json!({
                    "type": process.kind, "index": index, "state": "CRASHED",
                    "host": "", "instance_ports": [], "uptime": age(c.last_at),
                    "usage": {"time": proto::now_rfc3339(), "cpu": 0.0, "mem": 0, "disk": 0},
                    "mem_quota": mem_quota, "disk_quota": disk_quota, "fds_quota": 16384,
                    "details": c.details(),
                }),
                None => json!({
                "type": process.kind, "index": index, "state": "DOWN",
                "host": "", "instance_ports": [], "uptime": 0,
                "usage": {"time": proto::now_rfc3339(), "cpu": 0.0, "mem": 0, "disk": 0},
                "mem_quota": mem_quota, "disk_quota": disk_quota, "fds_quota": 16384,
                "details": null,
                }),
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(instances: i64) -> Process {
        Process::for_tests(instances)
    }

    fn found(index: u32, state: InstanceState, version: &str, port: u16) -> FindDropletResponse {
        FindDropletResponse {
            dea_id: "d".into(),
            app_id: "a".into(),
            version: version.into(),
            instance_id: format!("i{index}{port}"),
            index,
            state,
            since: 0.0,
            host: "127.0.0.1".into(),
            port,
            stats: None,
            ready: true,
        }
    }

    #[test]
    fn stats_one_per_index_preferring_running() {
        let f = [
            found(0, InstanceState::Crashed, "v", 1),
            found(0, InstanceState::Running, "v", 2),
            found(1, InstanceState::Starting, "v", 3),
            found(5, InstanceState::Running, "v", 4),
            found(2, InstanceState::Running, "old", 5),
            found(2, InstanceState::Running, "v", 6),
        ];
        let r = stats_resources(&process(4), "v", &f, &BTreeMap::new(), 100.0);
        assert_eq!(r.len(), 4);
        assert_eq!(
            (
                r[0]["state"].as_str(),
                r[0]["instance_ports"][0]["external"].as_u64()
            ),
            (Some("RUNNING"), Some(2))
        );
        assert_eq!(r[1]["state"], "STARTING");
        assert_eq!(r[2]["instance_ports"][0]["external"], 6);
        assert_eq!(r[3]["state"], "DOWN");
        assert_eq!(r[3]["mem_quota"], 256u64 * 1024 * 1024);
    }

    #[test]
    fn crashed_and_flapping_indices() {
        let crash = |count| IndexCrashes {
            count,
            last_reason: "exited with status 3".into(),
            last_exit_status: Some(3),
            last_at: 40.0,
        };
        // 0: running despite crashes; 1: crashing, nothing live (flapping);
        // 2: crashed once, restarting; 3: never crashed, nothing live.
        let f = [
            found(0, InstanceState::Running, "v", 1),
            found(2, InstanceState::Starting, "v", 2),
        ];
        let crashes = BTreeMap::from([(0, crash(5)), (1, crash(4)), (2, crash(1))]);
        let r = stats_resources(&process(4), "v", &f, &crashes, 100.0);
        assert_eq!(
            (r[0]["state"].as_str(), &r[0]["details"]),
            (Some("RUNNING"), &Value::Null)
        );
        assert_eq!(r[1]["state"], "CRASHED");
        // Every state has an uptime (time since its last change).
        assert_eq!(r[1]["uptime"], 60);
        assert_eq!(r[2]["uptime"], 100);
        assert_eq!(
            r[1]["details"],
            "flapping: crashed 4 times in 10 min (last: exited with status 3, exit status 3)"
        );
        assert_eq!(r[2]["state"], "STARTING");
        assert!(r[2]["details"]
            .as_str()
            .is_some_and(|d| !d.contains("flapping")));
        assert_eq!(
            (r[3]["state"].as_str(), &r[3]["details"]),
            (Some("DOWN"), &Value::Null)
        );
    }
}
