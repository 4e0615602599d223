//! The traffic-router configuration of a canary (`trafficRouting`) and the header and mirror
//! route steps, with Argo's field names.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The plugin name under which Argo users configure the Gateway API router
/// (`trafficRouting.plugins["argoproj-labs/gatewayAPI"]`).
pub const GATEWAY_API_PLUGIN: &str = "argoproj-labs/gatewayAPI";

/// `trafficRouting.nginx`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NginxTrafficRouting {
    /// Prefix of the canary annotations (default `nginx.ingress.kubernetes.io`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub annotation_prefix: String,
    /// The Ingress whose rules point at the stable Service.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stable_ingress: String,
    /// Several such Ingresses (instead of `stableIngress`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stable_ingresses: Vec<String>,
    /// Annotations for the canary Ingress; the prefix is added when missing.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub additional_ingress_annotations: BTreeMap<String, String>,
    /// Annotations for the canary Ingress, verbatim.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub canary_ingress_annotations: BTreeMap<String, String>,
}

impl NginxTrafficRouting {
    /// The annotation prefix, defaulted.
    pub fn prefix(&self) -> &str {
        if self.annotation_prefix.is_empty() {
            "nginx.ingress.kubernetes.io"
        } else {
            &self.annotation_prefix
        }
    }

    /// The stable Ingresses, in the order configured.
    pub fn stable_ingress_names(&self) -> Vec<&str> {
        if self.stable_ingresses.is_empty() {
            vec![self.stable_ingress.as_str()]
        } else {
            self.stable_ingresses.iter().map(String::as_str).collect()
        }
    }
}

/// The Gateway API router: the configuration of Argo's `argoproj-labs/gatewayAPI` plugin,
/// also accepted as `trafficRouting.gatewayAPI`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewayApiTrafficRouting {
    /// One HTTPRoute (header routes are added to it).
    #[serde(rename = "httpRoute", default, skip_serializing_if = "String::is_empty")]
    pub http_route: String,
    /// HTTPRoutes.
    #[serde(rename = "httpRoutes", default, skip_serializing_if = "Vec::is_empty")]
    pub http_routes: Vec<GatewayRouteRef>,
    /// One GRPCRoute (header routes are added to it).
    #[serde(rename = "grpcRoute", default, skip_serializing_if = "String::is_empty")]
    pub grpc_route: String,
    /// GRPCRoutes.
    #[serde(rename = "grpcRoutes", default, skip_serializing_if = "Vec::is_empty")]
    pub grpc_routes: Vec<GatewayRouteRef>,
    /// One TCPRoute.
    #[serde(rename = "tcpRoute", default, skip_serializing_if = "String::is_empty")]
    pub tcp_route: String,
    /// TCPRoutes.
    #[serde(rename = "tcpRoutes", default, skip_serializing_if = "Vec::is_empty")]
    pub tcp_routes: Vec<GatewayRouteRef>,
    /// Namespace of the routes (default: the Rollout's).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Do not label routes while a canary has weight.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disable_in_progress_label: bool,
    /// The in-progress label's key (default `rollouts.argoproj.io/gatewayapi-canary`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub in_progress_label_key: String,
    /// The in-progress label's value (default `in-progress`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub in_progress_label_value: String,
}

/// A route named in [`GatewayApiTrafficRouting`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewayRouteRef {
    /// The route's name.
    pub name: String,
    /// Whether `setHeaderRoute` / `setMirrorRoute` steps add rules to this route.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub use_header_routes: bool,
}

/// The kind of a traffic-router object the core holds as raw JSON and patches: a Gateway
/// API route, an Istio VirtualService or DestinationRule, or an SMI TrafficSplit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RouteKind {
    /// `gateway.networking.k8s.io/v1` HTTPRoute.
    #[serde(rename = "HTTPRoute")]
    Http,
    /// `gateway.networking.k8s.io/v1` GRPCRoute.
    #[serde(rename = "GRPCRoute")]
    Grpc,
    /// `gateway.networking.k8s.io/v1alpha2` TCPRoute.
    #[serde(rename = "TCPRoute")]
    Tcp,
    /// `networking.istio.io` VirtualService.
    VirtualService,
    /// `networking.istio.io` DestinationRule.
    DestinationRule,
    /// `split.smi-spec.io` TrafficSplit.
    TrafficSplit,
    /// `traefik.io` TraefikService (Traefik's weighted service).
    TraefikService,
    /// `getambassador.io` Mapping (Ambassador).
    Mapping,
    /// `apisix.apache.org` ApisixRoute.
    ApisixRoute,
    /// `appmesh.k8s.aws` VirtualService (App Mesh's, not Istio's: told apart by the API
    /// group, see [`RouteKind::of`]).
    AppMeshVirtualService,
    /// `appmesh.k8s.aws` VirtualRouter (App Mesh's weighted targets).
    VirtualRouter,
    /// `appmesh.k8s.aws` VirtualNode (App Mesh's pod selector).
    VirtualNode,
}

/// Istio's API group.
pub const ISTIO_GROUP: &str = "networking.istio.io";
/// Istio's API version Argo uses by default (`--istio-api-version`).
pub const ISTIO_DEFAULT_VERSION: &str = "v1alpha3";
/// SMI's TrafficSplit API group.
pub const SMI_GROUP: &str = "split.smi-spec.io";
/// The TrafficSplit API version Argo uses by default (`--traffic-split-api-version`).
pub const SMI_DEFAULT_VERSION: &str = "v1alpha1";

impl RouteKind {
    /// Every kind.
    pub const ALL: [RouteKind; 12] = [
        RouteKind::Http,
        RouteKind::Grpc,
        RouteKind::Tcp,
        RouteKind::VirtualService,
        RouteKind::DestinationRule,
        RouteKind::TrafficSplit,
        RouteKind::TraefikService,
        RouteKind::Mapping,
        RouteKind::ApisixRoute,
        RouteKind::AppMeshVirtualService,
        RouteKind::VirtualRouter,
        RouteKind::VirtualNode,
    ];

    /// The kind's name.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::Http => "HTTPRoute",
            RouteKind::Grpc => "GRPCRoute",
            RouteKind::Tcp => "TCPRoute",
            RouteKind::VirtualService => "VirtualService",
            RouteKind::DestinationRule => "DestinationRule",
            RouteKind::TrafficSplit => "TrafficSplit",
            RouteKind::TraefikService => "TraefikService",
            RouteKind::Mapping => "Mapping",
            RouteKind::ApisixRoute => "ApisixRoute",
            RouteKind::AppMeshVirtualService => "VirtualService",
            RouteKind::VirtualRouter => "VirtualRouter",
            RouteKind::VirtualNode => "VirtualNode",
        }
    }

    /// The kind's name in keys ([`crate::state::route_key`], the simulator's store): its
    /// name, but `AppMeshVirtualService` for App Mesh's VirtualService (Istio's has the
    /// same kind name).
    pub fn key_name(self) -> &'static str {
        match self {
            RouteKind::AppMeshVirtualService => "AppMeshVirtualService",
            RouteKind::Http
            | RouteKind::Grpc
            | RouteKind::Tcp
            | RouteKind::VirtualService
            | RouteKind::DestinationRule
            | RouteKind::TrafficSplit
            | RouteKind::TraefikService
            | RouteKind::Mapping
            | RouteKind::ApisixRoute
            | RouteKind::VirtualRouter
            | RouteKind::VirtualNode => self.as_str(),
        }
    }

    /// Whether the kind is one of App Mesh's.
    pub fn is_app_mesh(self) -> bool {
        matches!(self, RouteKind::AppMeshVirtualService | RouteKind::VirtualRouter | RouteKind::VirtualNode)
    }

    /// The kind's API group.
    pub fn group(self) -> &'static str {
        match self {
            RouteKind::Http | RouteKind::Grpc | RouteKind::Tcp => "gateway.networking.k8s.io",
            RouteKind::VirtualService | RouteKind::DestinationRule => ISTIO_GROUP,
            RouteKind::TrafficSplit => SMI_GROUP,
            RouteKind::TraefikService => super::TRAEFIK_DEFAULT_GROUP,
            RouteKind::Mapping => "getambassador.io",
            RouteKind::ApisixRoute => "apisix.apache.org",
            RouteKind::AppMeshVirtualService | RouteKind::VirtualRouter | RouteKind::VirtualNode => super::APPMESH_GROUP,
        }
    }

    /// The resource's plural name (`virtualservices`).
    pub fn plural(self) -> String {
        format!("{}s", self.as_str().to_ascii_lowercase())
    }

    /// The kind's `apiVersion` (for Istio and SMI, the version Argo uses by default).
    pub fn api_version(self) -> &'static str {
        match self {
            RouteKind::Http | RouteKind::Grpc => "gateway.networking.k8s.io/v1",
            RouteKind::Tcp => "gateway.networking.k8s.io/v1alpha2",
            RouteKind::VirtualService | RouteKind::DestinationRule => "networking.istio.io/v1alpha3",
            RouteKind::TrafficSplit => "split.smi-spec.io/v1alpha1",
            RouteKind::TraefikService => super::TRAEFIK_DEFAULT_VERSION,
            RouteKind::Mapping => super::AMBASSADOR_DEFAULT_VERSION,
            RouteKind::ApisixRoute => super::APISIX_VERSION,
            RouteKind::AppMeshVirtualService | RouteKind::VirtualRouter | RouteKind::VirtualNode => "appmesh.k8s.aws/v1beta2",
        }
    }

    /// The kind named `kind`, if it is one (by name alone: `VirtualService` is Istio's; see
    /// [`RouteKind::of`] to tell App Mesh's apart).
    pub fn from_kind(kind: &str) -> Option<RouteKind> {
        RouteKind::ALL.into_iter().find(|k| k.as_str() == kind)
    }

    /// The kind of an object with this `apiVersion` and `kind`: App Mesh's kinds in the
    /// `appmesh.k8s.aws` group (and only there), the others by name.
    pub fn of(api_version: &str, kind: &str) -> Option<RouteKind> {
        let group = api_version.split_once('/').map_or("", |(g, _)| g);
        let app_mesh = group == super::APPMESH_GROUP;
        RouteKind::ALL.into_iter().find(|k| k.as_str() == kind && k.is_app_mesh() == app_mesh)
    }

    /// The kind of a raw object, by its `apiVersion` and `kind` ([`RouteKind::of`]).
    pub fn of_object(obj: &serde_json::Value) -> Option<RouteKind> {
        let s = |f: &str| obj.get(f).and_then(serde_json::Value::as_str).unwrap_or_default();
        RouteKind::of(s("apiVersion"), s("kind"))
    }
}

impl GatewayApiTrafficRouting {
    /// Every route, in the plugin's order (HTTP, gRPC, TCP), the single-route fields last
    /// within each kind and with header routes on, as the plugin does.
    pub fn routes(&self) -> Vec<(RouteKind, GatewayRouteRef)> {
        let mut out = Vec::new();
        for (kind, list, single) in [
            (RouteKind::Http, &self.http_routes, &self.http_route),
            (RouteKind::Grpc, &self.grpc_routes, &self.grpc_route),
            (RouteKind::Tcp, &self.tcp_routes, &self.tcp_route),
        ] {
            out.extend(list.iter().map(|r| (kind, r.clone())));
            if !single.is_empty() {
                out.push((kind, GatewayRouteRef { name: single.clone(), use_header_routes: true }));
            }
        }
        out
    }

    /// The in-progress label, unless disabled.
    pub fn in_progress_label(&self) -> Option<(&str, &str)> {
        if self.disable_in_progress_label {
            return None;
        }
        let key = if self.in_progress_label_key.is_empty() {
            "rollouts.argoproj.io/gatewayapi-canary"
        } else {
            &self.in_progress_label_key
        };
        let value = if self.in_progress_label_value.is_empty() { "in-progress" } else { &self.in_progress_label_value };
        Some((key, value))
    }
}

/// `trafficRouting.managedRoutes[]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManagedRoute {
    /// The route's name.
    pub name: String,
}

/// A string match: exactly one of `exact`, `prefix`, `regex`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StringMatch {
    /// Equal to.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub exact: String,
    /// Starts with.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    /// Matches this regular expression.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub regex: String,
}

/// The one kind of a [`StringMatch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StringMatchKind<'a> {
    /// `exact`.
    Exact(&'a str),
    /// `prefix`.
    Prefix(&'a str),
    /// `regex`.
    Regex(&'a str),
}

impl StringMatch {
    /// The match, when exactly one kind is set.
    pub fn kind(&self) -> Option<StringMatchKind<'_>> {
        match (self.exact.is_empty(), self.prefix.is_empty(), self.regex.is_empty()) {
            (false, true, true) => Some(StringMatchKind::Exact(&self.exact)),
            (true, false, true) => Some(StringMatchKind::Prefix(&self.prefix)),
            (true, true, false) => Some(StringMatchKind::Regex(&self.regex)),
            _ => None,
        }
    }

    /// The match as a regular expression (prefix `p` ⇒ `p.*`, as the Gateway API plugin
    /// writes it; exact values escaped).
    pub fn to_regex(&self) -> Option<String> {
        Some(match self.kind()? {
            StringMatchKind::Exact(e) => regex_escape(e),
            StringMatchKind::Prefix(p) => format!("{p}.*"),
            StringMatchKind::Regex(r) => r.to_string(),
        })
    }
}

/// Escapes the characters that mean something in a regular expression.
pub fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `setHeaderRoute`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetHeaderRoute {
    /// The managed route's name.
    #[serde(default)]
    pub name: String,
    /// Requests matching all of these go to the canary; none removes the route.
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<Vec<HeaderRoutingMatch>>,
}

/// One header condition of a `setHeaderRoute`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderRoutingMatch {
    /// The header.
    pub header_name: String,
    /// Its value.
    #[serde(default)]
    pub header_value: StringMatch,
}

/// `setMirrorRoute`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetMirrorRoute {
    /// The managed route's name.
    #[serde(default)]
    pub name: String,
    /// Requests matching any of these are mirrored; none removes the route.
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<Vec<RouteMatch>>,
    /// Percentage of the matching requests mirrored (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<i32>,
}

/// One condition of a `setMirrorRoute`: all of its fields must match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteMatch {
    /// HTTP method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<StringMatch>,
    /// Path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<StringMatch>,
    /// Headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, StringMatch>,
}

/// Why a `trafficRouting` block cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct TrafficConfigError {
    /// The field.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl super::RolloutTrafficRouting {
    /// The Gateway API router's configuration: `gatewayAPI`, or the
    /// `argoproj-labs/gatewayAPI` plugin's (decoded strictly; both at once is an error).
    pub fn gateway_api_config(&self) -> Result<Option<GatewayApiTrafficRouting>, TrafficConfigError> {
        let plugin = self.plugins.as_ref().and_then(|p| p.get(GATEWAY_API_PLUGIN));
        let base = "spec.strategy.canary.trafficRouting";
        match (&self.gateway_api, plugin) {
            (Some(_), Some(_)) => Err(TrafficConfigError {
                path: format!("{base}.gatewayAPI"),
                message: format!("set either gatewayAPI or plugins[\"{GATEWAY_API_PLUGIN}\"], not both"),
            }),
            (Some(g), None) => Ok(Some(g.clone())),
            (None, Some(raw)) => crate::api::parse::from_value_strict::<GatewayApiTrafficRouting>(raw)
                .map(Some)
                .map_err(|e| TrafficConfigError {
                    path: format!("{base}.plugins[\"{GATEWAY_API_PLUGIN}\"]"),
                    message: e.to_string(),
                }),
            (None, None) => Ok(None),
        }
    }

    /// Whether Traefik, Ambassador, APISIX or App Mesh is configured.
    pub fn has_proxy_router(&self) -> bool {
        self.traefik.is_some() || self.ambassador.is_some() || self.apisix.is_some() || self.app_mesh.is_some()
    }

    /// The routers configured that this version does not drive (plugins other than the
    /// Gateway API), by field name.
    pub fn unsupported_routers(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(plugins) = self.plugins.as_ref().and_then(serde_json::Value::as_object) {
            out.extend(plugins.keys().filter(|k| k.as_str() != GATEWAY_API_PLUGIN).map(|k| format!("plugins[\"{k}\"]")));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_mesh_kinds_are_told_from_istio_s_by_the_api_group() {
        assert_eq!(RouteKind::of("networking.istio.io/v1beta1", "VirtualService"), Some(RouteKind::VirtualService));
        assert_eq!(RouteKind::of("appmesh.k8s.aws/v1beta2", "VirtualService"), Some(RouteKind::AppMeshVirtualService));
        assert_eq!(RouteKind::of("appmesh.k8s.aws/v1beta2", "VirtualRouter"), Some(RouteKind::VirtualRouter));
        assert_eq!(RouteKind::of("appmesh.k8s.aws/v1beta2", "VirtualNode"), Some(RouteKind::VirtualNode));
        assert_eq!(RouteKind::of("appmesh.k8s.aws/v1beta2", "Mesh"), None);
        assert_eq!(RouteKind::of("example.com/v1", "VirtualRouter"), None);
        assert_eq!(RouteKind::of("traefik.containo.us/v1alpha1", "TraefikService"), Some(RouteKind::TraefikService));
        // Keys and plurals keep them apart.
        assert_ne!(RouteKind::AppMeshVirtualService.key_name(), RouteKind::VirtualService.key_name());
        assert_eq!(RouteKind::AppMeshVirtualService.plural(), "virtualservices");
        assert_eq!(RouteKind::AppMeshVirtualService.group(), "appmesh.k8s.aws");
    }
}
