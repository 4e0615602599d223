//! The service-mesh routers' configuration (`trafficRouting.istio`, `trafficRouting.smi`),
//! with Argo's field names.

use serde::{Deserialize, Serialize};

/// `trafficRouting.istio`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IstioTrafficRouting {
    /// One VirtualService (host-level, or subset-level with `destinationRule`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_service: Option<IstioVirtualService>,
    /// The DestinationRule whose subsets select the canary and stable pods (subset-level).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_rule: Option<IstioDestinationRule>,
    /// Several VirtualServices (instead of `virtualService`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub virtual_services: Vec<IstioVirtualService>,
}

/// A VirtualService named in [`IstioTrafficRouting`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IstioVirtualService {
    /// `name`, or `name.namespace` for one in another namespace.
    #[serde(default)]
    pub name: String,
    /// The HTTP routes whose weights are set; none: the only HTTP route (or the first
    /// unnamed one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<String>,
    /// The TLS routes whose weights are set, by port and SNI hosts; none: the only one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tls_routes: Vec<IstioTlsRoute>,
    /// The TCP routes whose weights are set, by port; none: the only one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tcp_routes: Vec<IstioTcpRoute>,
}

/// `tlsRoutes[]`: the TLS routes whose match has exactly this port and these SNI hosts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IstioTlsRoute {
    /// The port.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub port: i64,
    /// The SNI hosts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sni_hosts: Vec<String>,
}

/// `tcpRoutes[]`: the TCP routes whose match has exactly this port.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IstioTcpRoute {
    /// The port.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub port: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// `istio.destinationRule`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IstioDestinationRule {
    /// The DestinationRule's name (in the Rollout's namespace).
    #[serde(default)]
    pub name: String,
    /// The subset that gets the canary's pod-template hash.
    #[serde(default)]
    pub canary_subset_name: String,
    /// The subset that gets the stable's pod-template hash.
    #[serde(default)]
    pub stable_subset_name: String,
    /// Subsets the rollout leaves alone (their weights are kept and taken from the
    /// stable's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_subset_names: Vec<String>,
}

impl IstioTrafficRouting {
    /// The VirtualServices, in the order configured (`virtualServices`, else
    /// `virtualService`).
    pub fn all_virtual_services(&self) -> Vec<&IstioVirtualService> {
        if self.virtual_services.is_empty() {
            self.virtual_service.iter().collect()
        } else {
            self.virtual_services.iter().collect()
        }
    }
}

/// A VirtualService reference split as Istio's `name.namespace` shorthand reads (a
/// `.cluster.local` suffix dropped; the last segment is the namespace, since a namespace
/// has no dot): `(namespace, name)`, the namespace `None` without a dot.
pub fn virtual_service_namespace_name(reference: &str) -> (Option<String>, String) {
    let trimmed = reference.strip_suffix(".cluster.local").unwrap_or(reference);
    match trimmed.rsplit_once('.') {
        Some((name, namespace)) if !name.is_empty() && !namespace.is_empty() => {
            (Some(namespace.to_string()), name.to_string())
        }
        Some(_) | None => (None, trimmed.to_string()),
    }
}

/// `trafficRouting.smi`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SmiTrafficRouting {
    /// The Service clients call (default: the stable Service).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub root_service: String,
    /// The TrafficSplit's name (default: the Rollout's).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub traffic_split_name: String,
}

impl SmiTrafficRouting {
    /// The TrafficSplit's name for rollout `rollout`.
    pub fn split_name<'a>(&'a self, rollout: &'a str) -> &'a str {
        if self.traffic_split_name.is_empty() {
            rollout
        } else {
            &self.traffic_split_name
        }
    }
}

#[cfg(test)]
mod tests {
    use super::virtual_service_namespace_name as split;

    #[test]
    fn a_virtual_service_reference_reads_as_istio_s_name_namespace_shorthand() {
        assert_eq!(split("vs"), (None, "vs".into()));
        assert_eq!(split("vs.ns"), (Some("ns".into()), "vs".into()));
        assert_eq!(split("my.vs.ns"), (Some("ns".into()), "my.vs".into()));
        assert_eq!(split("vs.ns.cluster.local"), (Some("ns".into()), "vs".into()));
    }
}
