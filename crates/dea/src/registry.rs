//! The registry of instances on this DEA and the pure computations over it
//! (filters, advertise, heartbeat).

use std::collections::{BTreeMap, HashMap, HashSet};

use proto::{InstanceHeartbeat, InstanceState, Limits, LogOwner};

use crate::backend::Container;
use crate::state::Lifecycle;

#[derive(Debug, Clone)]
pub struct Instance {
    pub id: String,
    /// The scheduling id: the app's guid for its web process, the process
    /// guid for any other.
    pub app_id: String,
    /// Whose log it writes to (its app, and its process type if not web).
    pub log: LogOwner,
    pub version: String,
    pub index: u32,
    pub limits: Limits,
    pub uris: Vec<String>,
    pub life: Lifecycle,
    /// Host port (0 until picked).
    pub port: u16,
    pub container: Option<Container>,
    /// The droplet's sha256 (lower case) as the start request named it:
    /// kept in the droplet cache while the instance is on record
    /// (`crate::droplet_cache`).
    pub droplet_sha256: String,
    /// A one-off task (`StartRequest::task_name`): left out of heartbeats,
    /// so the health manager neither restarts nor stops it.
    pub task: bool,
    /// Whether its readiness check passes (always, without one): only a
    /// ready instance is routed.
    pub ready: bool,
}

impl Instance {
    pub fn heartbeat(&self) -> InstanceHeartbeat {
        InstanceHeartbeat {
            app_id: self.app_id.clone(),
            version: self.version.clone(),
            index: self.index,
            instance_id: self.id.clone(),
            state: self.life.state,
            since: self.life.since,
        }
    }

    /// Whether the instance holds resources (counts against capacity).
    pub fn reserves(&self) -> bool {
        self.life.state.is_live() || self.life.state == InstanceState::Stopping
    }
}

/// A `dea.stop` / `dea.find.droplet` filter; absent fields match anything.
#[derive(Debug, Clone, Default)]
pub struct Filter<'a> {
    pub app_id: &'a str,
    pub version: Option<&'a str>,
    pub instance_ids: Option<&'a [String]>,
    pub indices: Option<&'a [u32]>,
}

impl Filter<'_> {
    pub fn matches(&self, i: &Instance) -> bool {
        i.app_id == self.app_id
            && self.version.is_none_or(|v| v == i.version)
            && self.instance_ids.is_none_or(|ids| ids.contains(&i.id))
            && self.indices.is_none_or(|ix| ix.contains(&i.index))
    }
}

#[derive(Debug, Default)]
pub struct Registry {
    pub instances: HashMap<String, Instance>,
}

/// What `dea.advertise` says about capacity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capacity {
    pub available_memory_mb: u64,
    pub available_disk_mb: u64,
    pub app_id_to_count: BTreeMap<String, u32>,
}

impl Registry {
    /// The droplets of every instance on record, whatever its state
    /// (starting, running, stopping, crashed and kept).
    pub fn droplets_in_use(&self) -> HashSet<String> {
        self.instances
            .values()
            .map(|i| i.droplet_sha256.clone())
            .filter(|s| !s.is_empty())
            .collect()
    }

    pub fn capacity(&self, memory_mb: u64, disk_mb: u64) -> Capacity {
        let mut mem = 0u64;
        let mut disk = 0u64;
        let mut counts = BTreeMap::new();
        for i in self.instances.values().filter(|i| i.reserves()) {
            mem = mem.saturating_add(i.limits.memory_mb);
            disk = disk.saturating_add(i.limits.disk_mb);
            if i.life.state.is_live() {
                *counts.entry(i.app_id.clone()).or_insert(0) += 1;
            }
        }
        Capacity {
            available_memory_mb: memory_mb.saturating_sub(mem),
            available_disk_mb: disk_mb.saturating_sub(disk),
            app_id_to_count: counts,
        }
    }

    /// Every known instance, sorted for stable output.
    pub fn heartbeats(&self) -> Vec<InstanceHeartbeat> {
        let mut v: Vec<_> = self
            .instances
            .values()
            .filter(|i| !i.task)
            .map(Instance::heartbeat)
            .collect();
        v.sort_by(|a, b| {
            (&a.app_id, a.index, &a.instance_id).cmp(&(&b.app_id, b.index, &b.instance_id))
        });
        v
    }

    pub fn matching(&self, f: &Filter) -> Vec<String> {
        self.instances
            .values()
            .filter(|i| f.matches(i))
            .map(|i| i.id.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(id: &str, app: &str, index: u32, state: InstanceState, mem: u64) -> Instance {
        Instance {
            id: id.into(),
            app_id: app.into(),
            log: LogOwner::app(app),
            version: "v1".into(),
            index,
            limits: Limits {
                memory_mb: mem,
                disk_mb: 100,
                fds: 10,
            },
            uris: vec![],
            life: Lifecycle { state, since: 0.0 },
            port: 0,
            container: None,
            droplet_sha256: String::new(),
            task: false,
            ready: true,
        }
    }

    fn reg(list: Vec<Instance>) -> Registry {
        Registry {
            instances: list.into_iter().map(|i| (i.id.clone(), i)).collect(),
        }
    }

    #[test]
    fn advertise_computation() {
        let r = reg(vec![
            inst("1", "a", 0, InstanceState::Running, 256),
            inst("2", "a", 1, InstanceState::Starting, 256),
            inst("3", "b", 0, InstanceState::Crashed, 1024),
            inst("4", "b", 1, InstanceState::Stopping, 512),
        ]);
        let c = r.capacity(2048, 1000);
        assert_eq!(c.available_memory_mb, 2048 - 256 - 256 - 512);
        assert_eq!(c.available_disk_mb, 700);
        assert_eq!(c.app_id_to_count, BTreeMap::from([("a".to_string(), 2)]));
        assert_eq!(r.capacity(100, 100).available_memory_mb, 0);
    }

    #[test]
    fn filters() {
        let r = reg(vec![
            inst("1", "a", 0, InstanceState::Running, 1),
            inst("2", "a", 1, InstanceState::Running, 1),
            inst("3", "b", 0, InstanceState::Running, 1),
        ]);
        let mut all = r.matching(&Filter {
            app_id: "a",
            ..Default::default()
        });
        all.sort();
        assert_eq!(all, vec!["1", "2"]);
        assert_eq!(
            r.matching(&Filter {
                app_id: "a",
                indices: Some(&[1]),
                ..Default::default()
            }),
            vec!["2"]
        );
        let ids = vec!["3".to_string()];
        assert!(r
            .matching(&Filter {
                app_id: "a",
                instance_ids: Some(&ids),
                ..Default::default()
            })
            .is_empty());
        assert!(r
            .matching(&Filter {
                app_id: "a",
                version: Some("v2"),
                ..Default::default()
            })
            .is_empty());
        assert_eq!(r.heartbeats().len(), 3);
    }
}
