//! The configuration of the Traefik, Ambassador, APISIX and App Mesh routers
//! (`trafficRouting.traefik`, `.ambassador`, `.apisix`, `.appMesh`), with Argo's field
//! names, and the API groups and versions Argo uses for their objects.

use serde::{Deserialize, Serialize};

/// Traefik's API group Argo uses by default (`--traefik-api-group`).
pub const TRAEFIK_DEFAULT_GROUP: &str = "traefik.io";
/// Traefik's `apiVersion` Argo uses by default (`--traefik-api-version`).
pub const TRAEFIK_DEFAULT_VERSION: &str = "traefik.io/v1alpha1";
/// Ambassador's Mapping `apiVersion` Argo uses by default (`--ambassador-api-version`).
pub const AMBASSADOR_DEFAULT_VERSION: &str = "getambassador.io/v2";
/// APISIX's ApisixRoute `apiVersion` (fixed in Argo: no flag).
pub const APISIX_VERSION: &str = "apisix.apache.org/v2";
/// App Mesh's API group.
pub const APPMESH_GROUP: &str = "appmesh.k8s.aws";
/// App Mesh's CRD version Argo uses by default (`--appmesh-crd-version`).
pub const APPMESH_DEFAULT_VERSION: &str = "v1beta2";

/// `trafficRouting.traefik`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TraefikTrafficRouting {
    /// The TraefikService whose `spec.weighted.services` carry the canary and stable
    /// Services' weights.
    #[serde(default)]
    pub weighted_traefik_service_name: String,
}

/// `trafficRouting.ambassador`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AmbassadorTrafficRouting {
    /// The Mappings routing to the stable Service: each gets a `<name>-canary` clone
    /// routing to the canary Service with the canary's weight.
    #[serde(default)]
    pub mappings: Vec<String>,
}

/// `trafficRouting.apisix`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApisixTrafficRouting {
    /// The ApisixRoute whose HTTP rules' backends carry the weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<ApisixRouteRef>,
}

/// `apisix.route`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApisixRouteRef {
    /// The ApisixRoute's name (in the Rollout's namespace).
    #[serde(default)]
    pub name: String,
    /// The names of its `spec.http[]` rules whose backends are weighted; none: the rule
    /// named like the route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<String>>,
}

impl ApisixRouteRef {
    /// The rules whose backends are weighted (`rules`, else the route's name: Argo's
    /// default when `rules` is unset).
    pub fn rule_names(&self) -> Vec<String> {
        self.rules.clone().unwrap_or_else(|| vec![self.name.clone()])
    }
}

/// `trafficRouting.appMesh`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppMeshTrafficRouting {
    /// The App Mesh VirtualService, whose VirtualRouter's routes are weighted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_service: Option<AppMeshVirtualService>,
    /// The VirtualNodes selecting the canary and the stable pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_node_group: Option<AppMeshVirtualNodeGroup>,
}

/// `appMesh.virtualService`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppMeshVirtualService {
    /// The VirtualService's name (in the Rollout's namespace).
    #[serde(default)]
    pub name: String,
    /// The VirtualRouter routes to weigh; none: every route.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<String>,
}

/// `appMesh.virtualNodeGroup`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppMeshVirtualNodeGroup {
    /// The VirtualNode whose pod selector gets the canary's pod-template hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_virtual_node_ref: Option<AppMeshVirtualNodeReference>,
    /// The VirtualNode whose pod selector gets the stable's pod-template hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_virtual_node_ref: Option<AppMeshVirtualNodeReference>,
}

/// A VirtualNode named in [`AppMeshVirtualNodeGroup`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppMeshVirtualNodeReference {
    /// The VirtualNode's name (in the Rollout's namespace).
    #[serde(default)]
    pub name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configurations_decode_with_argo_s_field_names_and_refuse_unknown_ones() {
        let t: TraefikTrafficRouting = serde_json::from_value(serde_json::json!({"weightedTraefikServiceName": "ts"})).unwrap();
        assert_eq!(t.weighted_traefik_service_name, "ts");
        assert!(serde_json::from_value::<TraefikTrafficRouting>(serde_json::json!({"service": "ts"})).is_err());
        let a: ApisixTrafficRouting = serde_json::from_value(serde_json::json!({"route": {"name": "r"}})).unwrap();
        assert_eq!(a.route.unwrap().rule_names(), vec!["r".to_string()]);
        let m: AppMeshTrafficRouting = serde_json::from_value(serde_json::json!({
            "virtualService": {"name": "vs", "routes": ["primary"]},
            "virtualNodeGroup": {"canaryVirtualNodeRef": {"name": "c"}, "stableVirtualNodeRef": {"name": "s"}}}))
        .unwrap();
        assert_eq!(m.virtual_node_group.unwrap().canary_virtual_node_ref.unwrap().name, "c");
    }
}
