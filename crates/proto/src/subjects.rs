//! Every NATS subject of docs/architecture.md §3.

pub const ROUTER_START: &str = "router.start";
pub const ROUTER_GREET: &str = "router.greet";
pub const ROUTER_REGISTER: &str = "router.register";
pub const ROUTER_UNREGISTER: &str = "router.unregister";
pub const DEA_ADVERTISE: &str = "dea.advertise";
pub const DEA_LOCATE: &str = "dea.locate";
pub const DEA_STOP: &str = "dea.stop";
pub const DEA_UPDATE: &str = "dea.update";
pub const DEA_FIND_DROPLET: &str = "dea.find.droplet";
pub const DEA_HEARTBEAT: &str = "dea.heartbeat";
pub const DEA_SHUTDOWN: &str = "dea.shutdown";
pub const DROPLET_EXITED: &str = "droplet.exited";
pub const HEALTH_START: &str = "health.start";
pub const HEALTH_STOP: &str = "health.stop";
pub const COMPONENT_ANNOUNCE: &str = "component.announce";
pub const COMPONENT_DISCOVER: &str = "component.discover";
/// Wildcard for every app's log subject.
pub const LOGS_ALL: &str = "logs.*";
/// Queue group used by cloud controllers for `health.*` so only one acts.
pub const CC_QUEUE_GROUP: &str = "cc";

/// `staging.active`: DEA → controllers, the builds a DEA works on.
pub const STAGING_ACTIVE: &str = "staging.active";
/// `staging.finished`: DEA → one controller (queue group `cc`), request.
pub const STAGING_FINISHED: &str = "staging.finished";
/// `dea.egress`: controller → DEAs, new egress rules for running instances.
pub const DEA_EGRESS: &str = "dea.egress";

/// `staging.<dea_id>.start`: controller → one DEA, request (answered at once).
pub fn staging_start(dea_id: &str) -> String {
    format!("staging.{dea_id}.start")
}

/// `staging.<dea_id>.stop`: controller → one DEA.
pub fn staging_stop(dea_id: &str) -> String {
    format!("staging.{dea_id}.stop")
}

/// `dea.<dea_id>.start`: controller → one DEA.
pub fn dea_start(dea_id: &str) -> String {
    format!("dea.{dea_id}.start")
}

/// `logs.<app_id>`.
pub fn logs(app_id: &str) -> String {
    format!("logs.{app_id}")
}

/// The app id part of a `logs.<app_id>` subject.
pub fn app_id_from_logs_subject(subject: &str) -> Option<&str> {
    subject.strip_prefix("logs.").filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directed_subjects() {
        assert_eq!(staging_start("d1"), "staging.d1.start");
        assert_eq!(staging_stop("d1"), "staging.d1.stop");
        assert_eq!(dea_start("d1"), "dea.d1.start");
        assert_eq!(logs("a"), "logs.a");
        assert_eq!(app_id_from_logs_subject("logs.a"), Some("a"));
        assert_eq!(app_id_from_logs_subject("logs."), None);
        assert_eq!(app_id_from_logs_subject("other.a"), None);
    }
}
