//! What the translators read from the cluster: watches (list, then watch, retried with
//! backoff) of Pods, Services and the routing objects, kept in stores; a change of any of them
//! wakes the translator, which renders from a snapshot.
//!
//! Endpoints are computed here the way the endpoint controller does, with one twist: the
//! address of a pod is `127.0.0.1:<fake-kubelet/port>` (the port the fake kubelet serves the
//! pod on), never the pod IP, which nothing on this machine can reach.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, Resource, ResourceExt};
use tokio::sync::Notify;
use tracing::warn;

/// The annotation in which the fake kubelet publishes the 127.0.0.1 port of a pod.
pub const PORT_ANNOTATION: &str = "fake-kubelet/port";

/// The Gateway API HTTPRoute resource (v1).
pub fn http_route_resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute");
    ApiResource::from_gvk_with_plural(&gvk, "httproutes")
}

/// A resource of a routing kind read as raw JSON (`group`, `version`, `kind`, `plural`).
pub fn dynamic_resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

/// Which routing objects to watch, besides Pods and Services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routing {
    /// networking.k8s.io/v1 Ingresses.
    Ingresses,
    /// gateway.networking.k8s.io/v1 HTTPRoutes, Istio VirtualServices and DestinationRules
    /// (networking.istio.io/v1alpha3), SMI TrafficSplits (split.smi-spec.io/v1alpha1).
    HttpRoutes,
}

/// The stores the watches fill, and the signal that one of them changed.
pub struct Cluster {
    pods: Store<Pod>,
    services: Store<Service>,
    ingresses: Option<Store<Ingress>>,
    routes: Option<Store<DynamicObject>>,
    /// Istio VirtualServices, DestinationRules, SMI TrafficSplits.
    mesh: Option<[Store<DynamicObject>; 3]>,
    changed: Arc<Notify>,
}

/// Everything a translator renders from, at one instant.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub pods: Vec<Arc<Pod>>,
    pub services: Vec<Arc<Service>>,
    pub ingresses: Vec<Arc<Ingress>>,
    pub routes: Vec<Arc<DynamicObject>>,
    pub virtual_services: Vec<Arc<DynamicObject>>,
    pub destination_rules: Vec<Arc<DynamicObject>>,
    pub traffic_splits: Vec<Arc<DynamicObject>>,
}

impl Cluster {
    /// Starts the watches (each on a task of its own; errors are logged and retried).
    pub fn watch(client: &Client, routing: Routing) -> Cluster {
        let changed = Arc::new(Notify::new());
        let pods = spawn_watch(Api::<Pod>::all(client.clone()), (), &changed);
        let services = spawn_watch(Api::<Service>::all(client.clone()), (), &changed);
        let dynamic = |resource: ApiResource| {
            let api = Api::<DynamicObject>::all_with(client.clone(), &resource);
            spawn_watch(api, resource, &changed)
        };
        let (ingresses, routes, mesh) = match routing {
            Routing::Ingresses => {
                let api = Api::<Ingress>::all(client.clone());
                (Some(spawn_watch(api, (), &changed)), None, None)
            }
            Routing::HttpRoutes => (
                None,
                Some(dynamic(http_route_resource())),
                Some([
                    dynamic(dynamic_resource("networking.istio.io", "v1alpha3", "VirtualService", "virtualservices")),
                    dynamic(dynamic_resource("networking.istio.io", "v1alpha3", "DestinationRule", "destinationrules")),
                    dynamic(dynamic_resource("split.smi-spec.io", "v1alpha1", "TrafficSplit", "trafficsplits")),
                ]),
            ),
        };
        Cluster {
            pods,
            services,
            ingresses,
            routes,
            mesh,
            changed,
        }
    }

    /// Waits until something changed since the last call (or since the start).
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Waits (up to `timeout`) until every watch has listed once, so that the first
    /// configuration is not rendered from half a cluster.
    pub async fn wait_listed(&self, timeout: std::time::Duration) {
        let all = async {
            let _ = self.pods.wait_until_ready().await;
            let _ = self.services.wait_until_ready().await;
            if let Some(s) = &self.ingresses {
                let _ = s.wait_until_ready().await;
            }
            if let Some(s) = &self.routes {
                let _ = s.wait_until_ready().await;
            }
            for s in self.mesh.iter().flatten() {
                let _ = s.wait_until_ready().await;
            }
        };
        if tokio::time::timeout(timeout, all).await.is_err() {
            warn!("not every watch has listed after {timeout:?}; rendering what is known");
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            pods: self.pods.state(),
            services: self.services.state(),
            ingresses: self
                .ingresses
                .as_ref()
                .map(Store::state)
                .unwrap_or_default(),
            routes: self.routes.as_ref().map(Store::state).unwrap_or_default(),
            virtual_services: self.mesh.as_ref().map(|m| m[0].state()).unwrap_or_default(),
            destination_rules: self.mesh.as_ref().map(|m| m[1].state()).unwrap_or_default(),
            traffic_splits: self.mesh.as_ref().map(|m| m[2].state()).unwrap_or_default(),
        }
    }
}

fn spawn_watch<K>(api: Api<K>, dyntype: K::DynamicType, changed: &Arc<Notify>) -> Store<K>
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
{
    let kind = K::kind(&dyntype).to_string();
    let writer = reflector::store::Writer::new(dyntype);
    let reader = writer.as_reader();
    let changed = changed.clone();
    tokio::spawn(async move {
        let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()))
            .default_backoff();
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(_) => changed.notify_one(),
                Err(e) => warn!(kind, error = %e, "watch error; retrying"),
            }
        }
    });
    reader
}

type Labels = BTreeMap<String, String>;

/// The ready endpoints of every Service, as 127.0.0.1 ports.
#[derive(Debug, Default, Clone)]
pub struct Endpoints {
    /// Services by (namespace, name): the ports of their ready pods, sorted.
    services: BTreeMap<(String, String), Vec<u16>>,
    /// Services' selectors by (namespace, name).
    selectors: BTreeMap<(String, String), Labels>,
    /// The ready pods of each namespace: their labels and ports.
    ready: BTreeMap<String, Vec<(Labels, u16)>>,
}

impl Endpoints {
    /// The endpoints of every Service in `snapshot`: the Running, Ready pods of its namespace
    /// that match its selector, are not being deleted and have a published port. A Service
    /// without a selector has none (its Endpoints would be managed by hand).
    pub fn of(snapshot: &Snapshot) -> Endpoints {
        // The ready pods of each namespace: their labels and ports.
        let mut ready: BTreeMap<&str, Vec<(&Labels, u16)>> = BTreeMap::new();
        for pod in &snapshot.pods {
            if let Some(port) = ready_port(pod) {
                let ns = pod.meta().namespace.as_deref().unwrap_or_default();
                ready.entry(ns).or_default().push((pod.labels(), port));
            }
        }
        let mut services = BTreeMap::new();
        let mut selectors = BTreeMap::new();
        for service in &snapshot.services {
            let ns = service.namespace().unwrap_or_default();
            let selector = service.spec.as_ref().and_then(|s| s.selector.as_ref());
            let mut ports: Vec<u16> = match selector {
                Some(selector) if !selector.is_empty() => ready
                    .get(ns.as_str())
                    .into_iter()
                    .flatten()
                    .filter(|(labels, _)| selector.iter().all(|(k, v)| labels.get(k) == Some(v)))
                    .map(|(_, port)| *port)
                    .collect(),
                _ => Vec::new(),
            };
            ports.sort_unstable();
            if let Some(selector) = selector {
                selectors.insert((ns.clone(), service.name_any()), selector.clone());
            }
            services.insert((ns, service.name_any()), ports);
        }
        let ready = ready
            .into_iter()
            .map(|(ns, pods)| (ns.to_string(), pods.into_iter().map(|(l, p)| (l.clone(), p)).collect()))
            .collect();
        Endpoints { services, selectors, ready }
    }

    /// The ports of a Service's ready pods that also carry `labels` (an Istio
    /// DestinationRule subset); None when there is no such Service.
    pub fn subset(&self, namespace: &str, service: &str, labels: &Labels) -> Option<Vec<u16>> {
        let key = (namespace.to_string(), service.to_string());
        self.services.get(&key)?;
        let Some(selector) = self.selectors.get(&key).filter(|s| !s.is_empty()) else { return Some(Vec::new()) };
        let mut ports: Vec<u16> = self
            .ready
            .get(namespace)
            .into_iter()
            .flatten()
            .filter(|(l, _)| selector.iter().chain(labels).all(|(k, v)| l.get(k) == Some(v)))
            .map(|(_, p)| *p)
            .collect();
        ports.sort_unstable();
        Some(ports)
    }

    /// The ports of a Service's ready pods; None when there is no such Service.
    pub fn get(&self, namespace: &str, service: &str) -> Option<&[u16]> {
        let key = (namespace.to_string(), service.to_string());
        self.services.get(&key).map(Vec::as_slice)
    }

    /// For tests: a Service with these ready ports.
    #[cfg(test)]
    pub fn insert(&mut self, namespace: &str, service: &str, ports: Vec<u16>) {
        self.services
            .insert((namespace.into(), service.into()), ports);
    }
}

/// The published port of a pod that can take traffic (Running, Ready, not being deleted).
fn ready_port(pod: &Pod) -> Option<u16> {
    if pod.meta().deletion_timestamp.is_some() {
        return None;
    }
    let status = pod.status.as_ref()?;
    if status.phase.as_deref() != Some("Running") {
        return None;
    }
    let ready = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    if !ready {
        return None;
    }
    pod.annotations().get(PORT_ANNOTATION)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, labels: serde_json::Value, ready: bool, port: Option<u16>) -> Arc<Pod> {
        let mut annotations = json!({});
        if let Some(port) = port {
            annotations[PORT_ANNOTATION] = json!(port.to_string());
        }
        let status = if ready { "True" } else { "False" };
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "ns", "labels": labels, "annotations": annotations},
                "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": status}]},
            }))
            .unwrap(),
        )
    }

    fn service(name: &str, selector: Option<serde_json::Value>) -> Arc<Service> {
        let spec = match selector {
            Some(s) => json!({"selector": s}),
            None => json!({}),
        };
        Arc::new(
            serde_json::from_value(
                json!({"metadata": {"name": name, "namespace": "ns"}, "spec": spec}),
            )
            .unwrap(),
        )
    }

    #[test]
    fn endpoints_are_the_published_ports_of_ready_pods_matching_the_selector() {
        let snapshot = Snapshot {
            pods: vec![
                pod("a", json!({"app": "x", "h": "1"}), true, Some(2000)),
                pod("b", json!({"app": "x", "h": "2"}), true, Some(1000)),
                pod("unready", json!({"app": "x"}), false, Some(3000)),
                pod("unpublished", json!({"app": "x"}), true, None),
                pod("other", json!({"app": "y"}), true, Some(4000)),
            ],
            services: vec![
                service("all", Some(json!({"app": "x"}))),
                service("one", Some(json!({"app": "x", "h": "1"}))),
                service("manual", None),
            ],
            ..Snapshot::default()
        };
        let endpoints = Endpoints::of(&snapshot);
        assert_eq!(endpoints.get("ns", "all"), Some(&[1000, 2000][..]));
        assert_eq!(endpoints.get("ns", "one"), Some(&[2000][..]));
        assert_eq!(endpoints.get("ns", "manual"), Some(&[][..]));
        assert_eq!(endpoints.get("ns", "missing"), None);
        assert_eq!(endpoints.get("other", "all"), None);
    }

    #[test]
    fn a_pod_being_deleted_is_no_endpoint() {
        let mut deleting = (*pod("a", json!({"app": "x"}), true, Some(1000))).clone();
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        assert_eq!(ready_port(&deleting), None);
    }
}
