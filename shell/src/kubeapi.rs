//! Cluster access shared by the controller and the CLI: the client, the namespace, and the
//! `ApiResource`s of Argo's kinds (handled as `DynamicObject`s: the core parses them).

use std::path::PathBuf;

use clap::Args;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, Config};

/// The API group and version of Argo's kinds.
pub const GROUP: &str = "argoproj.io";
pub const VERSION: &str = "v1alpha1";

fn argo(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, VERSION, kind), plural)
}

/// `argoproj.io/v1alpha1` Rollout.
pub fn rollout_resource() -> ApiResource {
    argo("Rollout", "rollouts")
}

/// The API versions of the router kinds whose version is the controller's choice (Argo's
/// `--istio-api-version` and `--traffic-split-api-version`), set once at start.
static ROUTER_VERSIONS: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();

/// Sets the Istio and SMI TrafficSplit API versions (`v1alpha3`, `v1alpha1` by default);
/// the first call wins.
pub fn set_router_api_versions(istio: &str, traffic_split: &str) {
    let _ = ROUTER_VERSIONS.set((istio.to_string(), traffic_split.to_string()));
}

/// Traefik's API group and version, and Ambassador's Mapping API version (Argo's
/// `--traefik-api-group`, `--traefik-api-version`, `--ambassador-api-version`), set once at
/// start.
static PROXY_VERSIONS: std::sync::OnceLock<(String, String, String)> = std::sync::OnceLock::new();

/// App Mesh's CRD version (Argo's `--appmesh-crd-version`), set once at start.
static APPMESH_VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Sets App Mesh's CRD version (`v1beta2` by default); the first call wins.
pub fn set_appmesh_crd_version(version: &str) {
    let _ = APPMESH_VERSION.set(version.to_string());
}

/// Sets the Traefik API group and version (`traefik.io`, `traefik.io/v1alpha1` by default)
/// and the Ambassador Mapping API version (`getambassador.io/v2`); the first call wins.
pub fn set_proxy_api_versions(traefik_group: &str, traefik_version: &str, ambassador: &str) {
    let _ = PROXY_VERSIONS.set((traefik_group.to_string(), traefik_version.to_string(), ambassador.to_string()));
}

/// The last `/`-separated part of an API version (`traefik.io/v1alpha1` → `v1alpha1`).
fn version_part(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or(api_version, |(_, v)| v)
}

/// The API group of the Ambassador Mapping API version (Argo's `toMappingGVR`: the part
/// before `/`, `getambassador.io` without one).
fn ambassador_group(api_version: &str) -> &str {
    api_version.split_once('/').map_or("getambassador.io", |(g, _)| g)
}

/// The API version the controller reads and writes `kind` in (`group/version`).
pub fn route_api_version(kind: rollouts_core::api::RouteKind) -> String {
    use rollouts_core::api::{RouteKind, ISTIO_DEFAULT_VERSION, SMI_DEFAULT_VERSION};
    let (istio, smi) = ROUTER_VERSIONS.get().map(|(i, s)| (i.as_str(), s.as_str())).unwrap_or((ISTIO_DEFAULT_VERSION, SMI_DEFAULT_VERSION));
    let (traefik_group, traefik_version, ambassador) = proxy_versions();
    match kind {
        RouteKind::Http | RouteKind::Grpc | RouteKind::Tcp | RouteKind::ApisixRoute => kind.api_version().to_string(),
        RouteKind::VirtualService | RouteKind::DestinationRule => format!("{}/{istio}", kind.group()),
        RouteKind::TrafficSplit => format!("{}/{smi}", kind.group()),
        RouteKind::TraefikService => format!("{traefik_group}/{}", version_part(&traefik_version)),
        RouteKind::Mapping => format!("{}/{}", ambassador_group(&ambassador), version_part(&ambassador)),
        RouteKind::AppMeshVirtualService | RouteKind::VirtualRouter | RouteKind::VirtualNode => {
            let version = APPMESH_VERSION.get().map_or(rollouts_core::api::APPMESH_DEFAULT_VERSION, String::as_str);
            format!("{}/{version}", kind.group())
        }
    }
}

fn proxy_versions() -> (String, String, String) {
    use rollouts_core::api::{AMBASSADOR_DEFAULT_VERSION, TRAEFIK_DEFAULT_GROUP, TRAEFIK_DEFAULT_VERSION};
    PROXY_VERSIONS.get().cloned().unwrap_or_else(|| {
        (TRAEFIK_DEFAULT_GROUP.to_string(), TRAEFIK_DEFAULT_VERSION.to_string(), AMBASSADOR_DEFAULT_VERSION.to_string())
    })
}

/// A router kind held as raw JSON (a Gateway API route, an Istio VirtualService or
/// DestinationRule, an SMI TrafficSplit, a TraefikService, an Ambassador Mapping, an
/// ApisixRoute), in the version [`route_api_version`] says. Ambassador's
/// `x.getambassador.io` group serves Mappings as `ambassadormappings`
/// (`AmbassadorMapping`), as Argo's `toMappingGVR` says.
pub fn route_resource(kind: rollouts_core::api::RouteKind) -> ApiResource {
    let api_version = route_api_version(kind);
    let (group, version) = api_version.rsplit_once('/').unwrap_or((kind.group(), api_version.as_str()));
    let (kind_name, plural) = match (kind, group) {
        (rollouts_core::api::RouteKind::Mapping, "x.getambassador.io") => ("AmbassadorMapping".to_string(), "ambassadormappings".to_string()),
        _ => (kind.as_str().to_string(), kind.plural()),
    };
    let gvk = GroupVersionKind::gvk(group, version, &kind_name);
    ApiResource::from_gvk_with_plural(&gvk, &plural)
}

/// `argoproj.io/v1alpha1` AnalysisRun.
pub fn analysis_run_resource() -> ApiResource {
    argo("AnalysisRun", "analysisruns")
}

/// `argoproj.io/v1alpha1` AnalysisTemplate.
pub fn analysis_template_resource() -> ApiResource {
    argo("AnalysisTemplate", "analysistemplates")
}

/// `argoproj.io/v1alpha1` ClusterAnalysisTemplate (cluster scoped).
pub fn cluster_analysis_template_resource() -> ApiResource {
    argo("ClusterAnalysisTemplate", "clusteranalysistemplates")
}

/// The kubectl-style connection flags every cluster verb takes.
#[derive(Debug, Clone, Default, Args)]
pub struct KubeArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// The namespace (default: the context's namespace, then `default`).
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
}

/// A connected client and the namespace the command acts in.
#[derive(Clone)]
pub struct Connection {
    pub client: Client,
    pub namespace: String,
}

/// Why we could not connect; the message says which file or context.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot read kubeconfig {path}: {source}")]
    Kubeconfig {
        path: String,
        source: kube::config::KubeconfigError,
    },
    #[error("cannot use kubeconfig {what}: {source}")]
    Config {
        what: String,
        source: kube::config::KubeconfigError,
    },
    #[error("no cluster configuration found (set --kubeconfig or KUBECONFIG): {0}")]
    Infer(kube::config::InferConfigError),
    #[error("cannot build a client: {0}")]
    Client(kube::Error),
}

impl KubeArgs {
    /// The client configuration these flags select.
    pub async fn config(&self) -> Result<Config, ConnectError> {
        let options = KubeConfigOptions {
            context: self.context.clone(),
            ..KubeConfigOptions::default()
        };
        let mut config = match &self.kubeconfig {
            Some(path) => {
                let kubeconfig =
                    Kubeconfig::read_from(path).map_err(|source| ConnectError::Kubeconfig {
                        path: path.display().to_string(),
                        source,
                    })?;
                Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(|source| ConnectError::Config {
                        what: path.display().to_string(),
                        source,
                    })?
            }
            None if self.context.is_some() => Config::from_kubeconfig(&options)
                .await
                .map_err(|source| ConnectError::Config {
                    what: format!("context {:?}", self.context.as_deref().unwrap_or_default()),
                    source,
                })?,
            None => Config::infer().await.map_err(ConnectError::Infer)?,
        };
        if let Some(ns) = &self.namespace {
            config.default_namespace = ns.clone();
        }
        Ok(config)
    }

    /// Connects and resolves the namespace.
    pub async fn connect(&self) -> Result<Connection, ConnectError> {
        let config = self.config().await?;
        let namespace = config.default_namespace.clone();
        let client = Client::try_from(config).map_err(ConnectError::Client)?;
        Ok(Connection { client, namespace })
    }
}

/// `argoproj.io/v1alpha1` Experiment.
pub fn experiment_resource() -> ApiResource {
    argo("Experiment", "experiments")
}
