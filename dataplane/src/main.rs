//! `rollouts-dataplane`: real data planes for the local control plane (`deploy/dev-cluster/`).
//!
//! It watches the cluster (`KUBECONFIG`) and keeps a real proxy configured the way the
//! routing objects say, so that end-to-end tests prove traffic weights with real requests:
//!
//! - `rollouts-dataplane nginx --nginx BIN --state DIR --port P`: Debian's nginx, following
//!   networking.k8s.io/v1 Ingresses by ingress-nginx's canary rules (`ingress.rs`,
//!   `nginx.rs`);
//! - `rollouts-dataplane envoy --envoy BIN --state DIR --port P`: Envoy, following Gateway
//!   API HTTPRoutes (`gateway.rs`), Istio VirtualServices and DestinationRules and SMI
//!   TrafficSplits (`mesh.rs`), written by `envoy.rs`.
//!
//! Both listen on `127.0.0.1:P` only, route by the Host header, reach pods at
//! `127.0.0.1:<fake-kubelet/port>` (Ready pods only, as Endpoints do) and answer
//! `GET /.rollouts/served` with what they serve and its generation (`served.rs`). The proxy
//! is a child process: reconfigured on every change without a restart, stopped when the
//! translator gets SIGTERM or SIGINT; the translator exits with an error when the proxy dies.

mod cluster;
mod crds;
mod envoy;
mod gateway;
mod ingress;
mod mesh;
mod nginx;
mod served;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use clap::{Parser, Subcommand};
use kube::Client;
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info};

use crate::cluster::{Cluster, Routing, Snapshot};

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The proxy refused a configuration, did not serve it, or died.
    #[error("{0}")]
    Proxy(String),
    #[error("the Kubernetes API: {0}")]
    Kube(#[source] kube::Error),
    #[error("{0}")]
    Crds(String),
}

impl Error {
    pub fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A proxy the translator drives: it renders a configuration from the cluster and applies it.
pub(crate) trait Proxy {
    type Config: PartialEq;
    /// The configuration for `snapshot`, stamped with `generation`.
    fn render(&self, snapshot: &Snapshot, generation: u64) -> Self::Config;
    /// Starts the proxy with `config`, or reconfigures it; returns once `generation` is served.
    async fn apply(&mut self, config: &Self::Config, generation: u64) -> Result<(), Error>;
    /// The proxy process, once started.
    fn child_mut(&mut self) -> Option<&mut tokio::process::Child>;
    /// Returns when the proxy process exits (never before it is started).
    async fn exited(&mut self) -> std::io::Result<ExitStatus> {
        match self.child_mut() {
            Some(child) => child.wait().await,
            None => std::future::pending().await,
        }
    }
    /// Stops the proxy process.
    async fn stop(&mut self);
}

#[derive(Debug, Parser)]
#[command(
    name = "rollouts-dataplane",
    about = "Keeps a real proxy configured from the cluster's routing objects"
)]
struct Args {
    #[command(subcommand)]
    proxy: ProxyArgs,
}

#[derive(Debug, Subcommand)]
enum ProxyArgs {
    /// nginx, following Ingresses by ingress-nginx's canary rules.
    Nginx {
        /// The nginx binary.
        #[arg(long)]
        nginx: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// Envoy, following Gateway API HTTPRoutes.
    Envoy {
        /// The envoy binary.
        #[arg(long)]
        envoy: PathBuf,
        /// CRD manifests (YAML, several documents) to apply (server-side) before watching,
        /// e.g. deploy/dev-cluster/crds/gateway-api.yaml.
        #[arg(long, value_name = "FILE")]
        apply_crds: Vec<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Debug, clap::Args)]
struct Common {
    /// The directory for the proxy's configuration, pid and temporary files.
    #[arg(long)]
    state: PathBuf,
    /// The 127.0.0.1 port to listen on.
    #[arg(long)]
    port: u16,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Error> {
    let client = Client::try_default().await.map_err(Error::Kube)?;
    match args.proxy {
        ProxyArgs::Nginx { nginx, common } => {
            let dir = state_dir(&common.state)?;
            let cluster = Cluster::watch(&client, Routing::Ingresses);
            serve(
                cluster,
                nginx::Nginx::new(absolute(&nginx)?, dir, common.port),
            )
            .await
        }
        ProxyArgs::Envoy {
            envoy,
            apply_crds,
            common,
        } => {
            for file in &apply_crds {
                crds::apply(&client, file).await?;
            }
            let dir = state_dir(&common.state)?;
            let cluster = Cluster::watch(&client, Routing::HttpRoutes);
            serve(
                cluster,
                envoy::Envoy::new(absolute(&envoy)?, dir, common.port),
            )
            .await
        }
    }
}

fn absolute(path: &Path) -> Result<PathBuf, Error> {
    std::path::absolute(path).map_err(|e| Error::io(path, e))
}

/// The state directory, created when missing.
fn state_dir(path: &Path) -> Result<PathBuf, Error> {
    std::fs::create_dir_all(path).map_err(|e| Error::io(path, e))?;
    absolute(path)
}

/// What woke the loop.
enum Wake {
    Changed,
    Exited(std::io::Result<ExitStatus>),
    Stop(&'static str),
}

/// Renders on every change and applies what differs, until a signal or the proxy's death.
async fn serve<P: Proxy>(cluster: Cluster, mut proxy: P) -> Result<(), Error> {
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| Error::io(Path::new("SIGTERM"), e))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| Error::io(Path::new("SIGINT"), e))?;
    cluster.wait_listed(Duration::from_secs(10)).await;
    let mut generation = 0;
    let mut current: Option<P::Config> = None;
    loop {
        let snapshot = cluster.snapshot();
        let key = proxy.render(&snapshot, 0);
        if current.as_ref() != Some(&key) {
            generation += 1;
            let config = proxy.render(&snapshot, generation);
            let applied = tokio::select! {
                result = proxy.apply(&config, generation) => Ok(result),
                _ = term.recv() => Err("SIGTERM"),
                _ = int.recv() => Err("SIGINT"),
            };
            match applied {
                Ok(Ok(())) => info!(generation, "serving"),
                Ok(Err(e)) if current.is_none() => {
                    proxy.stop().await;
                    return Err(e);
                }
                Ok(Err(e)) => error!(generation, "{e}"),
                Err(signal) => {
                    info!(signal, "stopping");
                    proxy.stop().await;
                    return Ok(());
                }
            }
            // A configuration that failed is not retried until something changes.
            current = Some(key);
        }
        let wake = tokio::select! {
            _ = cluster.changed() => Wake::Changed,
            status = proxy.exited() => Wake::Exited(status),
            _ = term.recv() => Wake::Stop("SIGTERM"),
            _ = int.recv() => Wake::Stop("SIGINT"),
        };
        match wake {
            // Events come in bursts (a rollout step touches several objects): render once.
            Wake::Changed => tokio::time::sleep(Duration::from_millis(50)).await,
            Wake::Exited(status) => {
                return Err(Error::Proxy(format!("the proxy exited: {status:?}")))
            }
            Wake::Stop(signal) => {
                info!(signal, "stopping");
                proxy.stop().await;
                return Ok(());
            }
        }
    }
}
