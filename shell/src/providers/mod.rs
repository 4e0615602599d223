//! Metric providers: the shell takes the measurements the core asks for
//! (`Action::Measure`) and reports each answer as `Event::Measured`; `rollouts analyze`
//! takes them from the command line.
//!
//! One module per provider, each implementing [`Provider`] on the core's spec type: it
//! measures a spec whose arguments are all resolved and returns the value (what `result`
//! is in the metric's conditions), a phase for providers that judge themselves (Kayenta),
//! or an error. Everything else — conditions, limits, intervals, phases — is the core's.
//!
//! Secrets: a measurement's secret arguments are read from Secrets in the run's namespace
//! just before the request; credentials a provider reads itself (Datadog's keys, New Relic's
//! profile, …) come from Secrets in the controller's namespace, by name, never listed. Every
//! value read is redacted (`*****`) from everything the answer carries back: value, error
//! and metadata.

pub mod cloudwatch;
pub mod datadog;
pub mod graphite;
pub mod http;
pub mod influxdb;
pub mod kayenta;
pub mod newrelic;
pub mod oauth2;
pub mod prometheus;
pub mod sigv4;
pub mod skywalking;
#[cfg(test)]
pub(crate) mod vendor_stub;
pub mod wavefront;
pub mod web;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::SystemTime;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use rollouts_core::analysis::run::{MeasureContext, MeasurementAnswer};
use rollouts_core::api::{MetricProvider, ProviderKind, SecretKeyRef};
use rollouts_core::secrets::{self, SecretValues};

/// The namespace Argo reads provider credentials from when `POD_NAMESPACE` is unset.
pub const DEFAULT_CONTROLLER_NAMESPACE: &str = "argo-rollouts";

/// The controller's namespace, as Argo's `defaults.Namespace()`: `$POD_NAMESPACE`, else
/// `argo-rollouts`.
pub fn controller_namespace() -> String {
    std::env::var("POD_NAMESPACE").ok().filter(|n| !n.is_empty()).unwrap_or_else(|| DEFAULT_CONTROLLER_NAMESPACE.to_string())
}

/// A provider's answer: the measurement, or an error that makes it Error.
pub type Measured = Result<MeasurementAnswer, String>;

/// One metric provider: measures a spec whose arguments are all resolved.
pub trait Provider {
    /// Takes one measurement (or resumes one: `ctx.context().resume`).
    fn measure(&self, ctx: &Ctx<'_>) -> impl Future<Output = Measured> + Send;
}

/// Where and when a measurement is taken, and the Secrets it may read.
pub struct Ctx<'a> {
    kube: Option<&'a Client>,
    controller_namespace: &'a str,
    run_namespace: Option<&'a str>,
    now: SystemTime,
    context: &'a MeasureContext,
    /// Every secret value read for this measurement, for the redaction of the answer.
    read: Mutex<SecretValues>,
}

impl<'a> Ctx<'a> {
    /// A measurement taken `now`, with (or, offline, without) a cluster to read Secrets from.
    pub fn new(kube: Option<&'a Client>, controller_namespace: &'a str, now: SystemTime, context: &'a MeasureContext) -> Self {
        Ctx { kube, controller_namespace, run_namespace: None, now, context, read: Mutex::new(SecretValues::default()) }
    }

    /// The same, for a run in `namespace`.
    pub fn with_run_namespace(mut self, namespace: &'a str) -> Self {
        self.run_namespace = Some(namespace);
        self
    }

    /// The run's namespace (Datadog's `secretRef.namespaced`), when known.
    pub fn run_namespace(&self) -> Option<&str> {
        self.run_namespace
    }

    /// The instant of the measurement (the clock for the controller, `--at` for `analyze`).
    pub fn now(&self) -> SystemTime {
        self.now
    }

    /// The instant of the measurement as a `jiff` timestamp, for formatting.
    pub fn now_jiff(&self) -> jiff::Timestamp {
        jiff::Timestamp::try_from(self.now).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
    }

    /// The metric's interval, when the run started, and what a resumed measurement carries.
    pub fn context(&self) -> &MeasureContext {
        self.context
    }

    /// The controller's namespace (where Argo reads provider credentials).
    pub fn controller_namespace(&self) -> &str {
        self.controller_namespace
    }

    /// Reads the Secret `name` in `namespace` (the controller's when None): None when it
    /// does not exist. Every value of a Secret read is redacted from the answer. The error
    /// names the Secret, never a value.
    pub async fn secret(&self, namespace: Option<&str>, name: &str) -> Result<Option<BTreeMap<String, String>>, String> {
        let namespace = namespace.unwrap_or(self.controller_namespace);
        let Some(client) = self.kube else {
            return Err(format!("secret {namespace}/{name} cannot be read: no cluster (offline)"));
        };
        let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let secret = match api.get_opt(name).await {
            Ok(Some(s)) => s,
            Ok(None) => return Ok(None),
            Err(e) => return Err(format!("failed to read secret {namespace}/{name}: {}", status_message(&e))),
        };
        let mut keys: Vec<String> = secret.data.iter().flatten().map(|(k, _)| k.clone()).collect();
        keys.extend(secret.string_data.iter().flatten().map(|(k, _)| k.clone()));
        let mut values = BTreeMap::new();
        for key in keys {
            if let Some(v) = secrets::value_of(&secret, &key) {
                self.redact_also(&format!("{name}/{key}"), &v);
                values.insert(key, v);
            }
        }
        Ok(Some(values))
    }

    /// Marks `value` (a credential the provider found, e.g. in the environment) as secret:
    /// it is redacted from the answer.
    pub fn redact_also(&self, label: &str, value: &str) {
        if let Ok(mut read) = self.read.lock() {
            read.insert(label, value);
        }
    }

    fn redact(&self, answer: MeasurementAnswer) -> MeasurementAnswer {
        match self.read.lock() {
            Ok(read) => read.redact(answer),
            // A poisoned lock means a panic while adding a value: say nothing at all.
            Err(_) => error_answer("the measurement's secrets could not be redacted".to_string()),
        }
    }
}

/// Takes one measurement in the controller.
pub async fn measure(
    client: &Client,
    namespace: &str,
    provider: &MetricProvider,
    secrets: &BTreeMap<String, SecretKeyRef>,
    context: &MeasureContext,
) -> MeasurementAnswer {
    let values = match read_secrets(client, namespace, secrets).await {
        Ok(v) => v,
        Err(message) => return MeasurementAnswer { args_error: Some(message), ..MeasurementAnswer::default() },
    };
    let controller_ns = controller_namespace();
    let ctx = Ctx::new(Some(client), &controller_ns, SystemTime::now(), context).with_run_namespace(namespace);
    values.redact(measure_resolved(&ctx, &values, provider).await)
}

/// Takes one measurement of a provider whose secret arguments are `values`; the answer is
/// redacted of everything the providers read (the caller redacts `values`).
pub async fn measure_resolved(ctx: &Ctx<'_>, values: &SecretValues, provider: &MetricProvider) -> MeasurementAnswer {
    let provider = match values.substitute(provider) {
        Ok(p) => p,
        Err(message) => return error_answer(message),
    };
    let measured = dispatch(ctx, &provider).await;
    ctx.redact(measured.unwrap_or_else(error_answer))
}

/// The one provider set, in Argo's selection order (validation rejects more than one).
async fn dispatch(ctx: &Ctx<'_>, p: &MetricProvider) -> Measured {
    match p.kinds().first() {
        Some(ProviderKind::Prometheus) => run(ctx, p.prometheus.as_ref()).await,
        Some(ProviderKind::Kayenta) => run(ctx, p.kayenta.as_ref()).await,
        Some(ProviderKind::Web) => run(ctx, p.web.as_ref()).await,
        Some(ProviderKind::Datadog) => run(ctx, p.datadog.as_ref()).await,
        Some(ProviderKind::Wavefront) => run(ctx, p.wavefront.as_ref()).await,
        Some(ProviderKind::NewRelic) => run(ctx, p.new_relic.as_ref()).await,
        Some(ProviderKind::CloudWatch) => run(ctx, p.cloud_watch.as_ref()).await,
        Some(ProviderKind::Graphite) => run(ctx, p.graphite.as_ref()).await,
        Some(ProviderKind::Influxdb) => run(ctx, p.influxdb.as_ref()).await,
        Some(ProviderKind::SkyWalking) => run(ctx, p.skywalking.as_ref()).await,
        // The core turns a job metric into a Job; nothing to measure here.
        Some(ProviderKind::Job) => Err("job metrics are measured by their Job, not by a request".to_string()),
        Some(ProviderKind::Plugin) => {
            let name = p.plugin.iter().flatten().next().map(|(n, _)| n.as_str()).unwrap_or_default();
            Err(format!("metric provider plugin {name:?} is not supported: Rollouts runs no plugins (see the README)"))
        }
        None => Err("the metric has no provider".to_string()),
    }
}

async fn run<P: Provider>(ctx: &Ctx<'_>, spec: Option<&P>) -> Measured {
    match spec {
        Some(s) => s.measure(ctx).await,
        None => Err("the metric has no provider".to_string()),
    }
}

/// An answer that makes the measurement Error with `message`.
pub fn error_answer(message: String) -> MeasurementAnswer {
    MeasurementAnswer { error: Some(message), ..MeasurementAnswer::default() }
}

/// An answer whose `result` is `value`.
pub fn value_answer(value: serde_json::Value) -> MeasurementAnswer {
    MeasurementAnswer { value, ..MeasurementAnswer::default() }
}

/// Reads the Secrets the arguments name and resolves the arguments through the core. The
/// error names the argument or the Secret, never a value.
pub async fn read_secrets(client: &Client, namespace: &str, refs: &BTreeMap<String, SecretKeyRef>) -> Result<SecretValues, String> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut found = BTreeMap::new();
    for name in secrets::secret_names(refs) {
        match api.get_opt(&name).await {
            Ok(Some(secret)) => {
                found.insert(name, secret);
            }
            // Reported by the core, in Argo's words.
            Ok(None) => {}
            Err(e) => return Err(format!("failed to read secret {name:?}: {}", status_message(&e))),
        }
    }
    secrets::resolve(refs, &found).map_err(|e| e.to_string())
}

fn status_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}
