//! A pod's one-word status, as `kubectl get pods` and Argo's plugin print it.

use k8s_openapi::api::core::v1::{ContainerStateTerminated, Pod};

/// Pod status reason when the node is unreachable (`k8s.io/kubernetes/pkg/util/node`).
const NODE_UNREACHABLE_REASON: &str = "NodeLost";

/// What the tree shows for a pod: its status word, `ready/total` and restarts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSummary {
    /// `Running`, `Pending`, `Init:0/1`, `CrashLoopBackOff`, `ExitCode:1`, `Terminating`, …
    pub status: String,
    /// Ready containers of all containers, `1/1`.
    pub ready: String,
    /// Container restarts (init containers while initializing, else app containers).
    pub restarts: i32,
}

fn terminated_reason(t: &ContainerStateTerminated, prefix: &str) -> String {
    match t.reason.as_deref() {
        Some(r) if !r.is_empty() => format!("{prefix}{r}"),
        _ if t.signal.unwrap_or(0) != 0 => format!("{prefix}Signal:{}", t.signal.unwrap_or(0)),
        _ => format!("{prefix}ExitCode:{}", t.exit_code),
    }
}

/// Summarises a pod the way kubectl's printer does.
pub fn summarize(pod: &Pod) -> PodSummary {
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let total = spec.map_or(0, |s| s.containers.len());
    let init_specs = spec.and_then(|s| s.init_containers.as_deref()).unwrap_or_default();
    // Init containers with `restartPolicy: Always` are sidecars: they keep running.
    let is_sidecar = |name: &str| {
        init_specs
            .iter()
            .any(|c| c.name == name && c.restart_policy.as_deref() == Some("Always"))
    };

    let mut reason = status.and_then(|s| s.phase.clone()).unwrap_or_default();
    if let Some(r) = status.and_then(|s| s.reason.as_deref()).filter(|r| !r.is_empty()) {
        reason = r.to_string();
    }

    let mut restarts = 0;
    let mut initializing = false;
    let init_statuses = status.and_then(|s| s.init_container_statuses.as_deref()).unwrap_or_default();
    for (i, c) in init_statuses.iter().enumerate() {
        restarts += c.restart_count;
        let state = c.state.as_ref();
        let terminated = state.and_then(|s| s.terminated.as_ref());
        let waiting = state.and_then(|s| s.waiting.as_ref());
        if let Some(t) = terminated {
            if t.exit_code == 0 {
                continue;
            }
            reason = terminated_reason(t, "Init:");
            initializing = true;
        } else if is_sidecar(&c.name) && c.started == Some(true) {
            if c.ready {
                continue;
            }
        } else if let Some(w) = waiting
            .and_then(|w| w.reason.as_deref())
            .filter(|r| !r.is_empty() && *r != "PodInitializing")
        {
            reason = format!("Init:{w}");
            initializing = true;
        } else {
            reason = format!("Init:{i}/{}", init_specs.len());
            initializing = true;
        }
        break;
    }

    let mut ready = 0;
    if !initializing {
        restarts = 0;
        let mut has_running = false;
        let statuses = status.and_then(|s| s.container_statuses.as_deref()).unwrap_or_default();
        for c in statuses.iter().rev() {
            restarts += c.restart_count;
            let state = c.state.as_ref();
            let waiting = state.and_then(|s| s.waiting.as_ref()).and_then(|w| w.reason.as_deref());
            let terminated = state.and_then(|s| s.terminated.as_ref());
            if let Some(w) = waiting.filter(|w| !w.is_empty()) {
                reason = w.to_string();
            } else if let Some(t) = terminated {
                reason = terminated_reason(t, "");
            } else if c.ready && state.is_some_and(|s| s.running.is_some()) {
                has_running = true;
                ready += 1;
            }
        }
        // A pod with one container still running is Running even when another completed.
        if reason == "Completed" && has_running {
            reason = "Running".into();
        }
    }

    if pod.metadata.deletion_timestamp.is_some() {
        reason = if status.and_then(|s| s.reason.as_deref()) == Some(NODE_UNREACHABLE_REASON) {
            "Unknown".into()
        } else {
            "Terminating".into()
        };
    }

    PodSummary { status: reason, ready: format!("{ready}/{total}"), restarts }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_ready_pod_is_running() {
        let p = pod(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "app"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "app", "ready": true, "restartCount": 2, "image": "x", "imageID": "",
                 "state": {"running": {}}}
            ]}
        }));
        assert_eq!(summarize(&p), PodSummary { status: "Running".into(), ready: "1/1".into(), restarts: 2 });
    }

    #[test]
    fn a_pod_without_status_is_pending_with_nothing_ready() {
        let p = pod(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]}, "status": {"phase": "Pending"}}));
        assert_eq!(summarize(&p).status, "Pending");
        assert_eq!(summarize(&p).ready, "0/2");
    }

    #[test]
    fn a_waiting_container_gives_its_reason() {
        let p = pod(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "app"}]},
            "status": {"phase": "Pending", "containerStatuses": [
                {"name": "app", "ready": false, "restartCount": 0, "image": "x", "imageID": "",
                 "state": {"waiting": {"reason": "ImagePullBackOff"}}}
            ]}
        }));
        assert_eq!(summarize(&p).status, "ImagePullBackOff");
    }

    #[test]
    fn a_failed_init_container_and_an_unfinished_one() {
        let failed = pod(json!({
            "metadata": {"name": "p"},
            "spec": {"initContainers": [{"name": "i"}], "containers": [{"name": "app"}]},
            "status": {"phase": "Pending", "initContainerStatuses": [
                {"name": "i", "ready": false, "restartCount": 3, "image": "x", "imageID": "",
                 "state": {"terminated": {"exitCode": 2}}}
            ]}
        }));
        assert_eq!(summarize(&failed), PodSummary { status: "Init:ExitCode:2".into(), ready: "0/1".into(), restarts: 3 });
        let waiting = pod(json!({
            "metadata": {"name": "p"},
            "spec": {"initContainers": [{"name": "i"}, {"name": "j"}], "containers": [{"name": "app"}]},
            "status": {"phase": "Pending", "initContainerStatuses": [
                {"name": "i", "ready": true, "restartCount": 0, "image": "x", "imageID": "",
                 "state": {"terminated": {"exitCode": 0}}},
                {"name": "j", "ready": false, "restartCount": 0, "image": "x", "imageID": "",
                 "state": {"running": {}}}
            ]}
        }));
        assert_eq!(summarize(&waiting).status, "Init:1/2");
    }

    #[test]
    fn a_terminated_container_without_reason_shows_its_signal_or_exit_code() {
        let p = pod(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "app"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "app", "ready": false, "restartCount": 0, "image": "x", "imageID": "",
                 "state": {"terminated": {"exitCode": 137, "signal": 9}}}
            ]}
        }));
        assert_eq!(summarize(&p).status, "Signal:9");
    }

    #[test]
    fn a_deleted_pod_is_terminating() {
        let p = pod(json!({
            "metadata": {"name": "p", "deletionTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "app"}]},
            "status": {"phase": "Running"}
        }));
        assert_eq!(summarize(&p).status, "Terminating");
    }
}
