//! Leader election on a `coordination.k8s.io/v1` Lease, the way client-go's leader elector
//! does it: a candidate takes the lease when its holder has not renewed it for a lease
//! duration (judged by this process's own clock, from when it last saw the record
//! change), the leader renews every retry period, and a leader that cannot renew within
//! the renew deadline stops leading.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::sync::watch;

/// Timing and identity of the election.
#[derive(Clone, Debug)]
pub struct LeaderConfig {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

/// Why the lease can never be taken as things are: the controller says so and stops instead of
/// retrying quietly forever.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LeaseError {
    #[error(
        "leader election: the namespace {namespace:?} of the lease does not exist ({message}). Create it \
         (`kubectl create namespace {namespace}`), elect the leader in a namespace that exists \
         (`--leader-election-namespace <namespace>`), or run a single controller without election \
         (`--leader-elect=false`)"
    )]
    NamespaceMissing { namespace: String, message: String },
    #[error(
        "leader election: not allowed to read or write Leases in namespace {namespace:?} ({message}). Grant get, \
         create and update on leases.coordination.k8s.io there (deploy/rbac.yaml), choose another namespace \
         (`--leader-election-namespace <namespace>`), or run a single controller without election \
         (`--leader-elect=false`)"
    )]
    Forbidden { namespace: String, message: String },
}

impl LeaseError {
    /// The lasting cause of a failed attempt, if it is one: a 404 about the namespace (a
    /// missing Lease reads as `None`; creating it in a missing namespace answers 404 with
    /// details of kind `namespaces`), or 403. A 404 about the Lease itself (deleted between
    /// read and write) is retried.
    pub fn of(error: &kube::Error, namespace: &str) -> Option<LeaseError> {
        let kube::Error::Api(s) = error else { return None };
        let about_namespace = s.details.as_ref().is_some_and(|d| d.kind == "namespaces") || s.message.starts_with("namespaces ");
        let (namespace, message) = (namespace.to_string(), s.message.clone());
        match s.code {
            404 if about_namespace => Some(LeaseError::NamespaceMissing { namespace, message }),
            403 => Some(LeaseError::Forbidden { namespace, message }),
            _ => None,
        }
    }
}

/// What a candidate remembers of the lease record it last saw.
struct Observed {
    /// holder, renew time and transitions: the record's identity for change detection.
    record: (Option<String>, Option<MicroTime>, Option<i32>),
    at: Instant,
}

/// A candidate for the lease.
pub struct Elector {
    api: Api<Lease>,
    config: LeaderConfig,
    observed: Option<Observed>,
}

/// The outcome of one attempt.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    Leading,
    Following(Option<String>),
}

impl Elector {
    pub fn new(client: Client, config: LeaderConfig) -> Self {
        Elector { api: Api::namespaced(client, &config.namespace), config, observed: None }
    }

    /// Waits until this process holds the lease. Fails at once when the lease can never be
    /// taken without a change to the cluster or to the flags (its namespace does not exist,
    /// RBAC forbids it); other errors (timeouts, 5xx) are retried every retry period.
    pub async fn acquire(&mut self) -> Result<(), LeaseError> {
        let mut last_holder: Option<String> = None;
        loop {
            match self.try_acquire_or_renew().await {
                Ok(Attempt::Leading) => {
                    tracing::info!(lease = %self.config.name, identity = %self.config.identity, "became leader");
                    return Ok(());
                }
                Ok(Attempt::Following(holder)) => {
                    if holder != last_holder {
                        tracing::info!(lease = %self.config.name, holder = ?holder, "waiting for the lease");
                        last_holder = holder;
                    }
                }
                Err(e) => match LeaseError::of(&e, &self.config.namespace) {
                    Some(fatal) => return Err(fatal),
                    None => tracing::warn!(lease = %self.config.name, error = %e, "cannot read or take the lease"),
                },
            }
            tokio::time::sleep(self.config.retry_period).await;
        }
    }

    /// Renews the lease every retry period; returns (and sets `lost`) when it could not be
    /// renewed within the renew deadline or another process took it.
    pub async fn keep(mut self, lost: watch::Sender<bool>) {
        let mut last_renewed = Instant::now();
        loop {
            tokio::time::sleep(self.config.retry_period).await;
            match self.try_acquire_or_renew().await {
                Ok(Attempt::Leading) => last_renewed = Instant::now(),
                Ok(Attempt::Following(holder)) => {
                    tracing::error!(lease = %self.config.name, holder = ?holder, "leadership lost to another process");
                    let _ = lost.send(true);
                    return;
                }
                Err(e) => {
                    tracing::warn!(lease = %self.config.name, error = %e, "cannot renew the lease");
                    if last_renewed.elapsed() >= self.config.renew_deadline {
                        tracing::error!(lease = %self.config.name, "leadership lost: renew deadline passed");
                        let _ = lost.send(true);
                        return;
                    }
                }
            }
        }
    }

    async fn try_acquire_or_renew(&mut self) -> Result<Attempt, kube::Error> {
        let now = MicroTime(jiff::Timestamp::now());
        let duration_secs = i32::try_from(self.config.lease_duration.as_secs()).unwrap_or(i32::MAX).max(1);
        let existing = match self.api.get_opt(&self.config.name).await? {
            Some(l) => l,
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.config.name.clone()),
                        namespace: Some(self.config.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.config.identity.clone()),
                        lease_duration_seconds: Some(duration_secs),
                        acquire_time: Some(now.clone()),
                        renew_time: Some(now),
                        lease_transitions: Some(0),
                        ..LeaseSpec::default()
                    }),
                };
                return match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(Attempt::Leading),
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::Following(None)),
                    Err(e) => Err(e),
                };
            }
        };
        let spec = existing.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let record = (holder.clone(), spec.renew_time.clone(), spec.lease_transitions);
        if self.observed.as_ref().is_none_or(|o| o.record != record) {
            self.observed = Some(Observed { record, at: Instant::now() });
        }
        let mine = holder.as_deref() == Some(self.config.identity.as_str());
        let held_duration = spec
            .lease_duration_seconds
            .map_or(self.config.lease_duration, |s| Duration::from_secs(u64::try_from(s.max(1)).unwrap_or(1)));
        let expired = holder.is_none() || self.observed.as_ref().is_some_and(|o| o.at.elapsed() >= held_duration);
        if !mine && !expired {
            return Ok(Attempt::Following(holder));
        }
        let mut lease = existing;
        let transitions = spec.lease_transitions.unwrap_or(0);
        lease.spec = Some(LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(duration_secs),
            acquire_time: if mine { spec.acquire_time.clone() } else { Some(now.clone()) },
            renew_time: Some(now),
            lease_transitions: Some(if mine { transitions } else { transitions + 1 }),
            ..LeaseSpec::default()
        });
        // The resourceVersion read above makes this a compare-and-swap.
        match self.api.replace(&self.config.name, &PostParams::default(), &lease).await {
            Ok(l) => {
                let s = l.spec.unwrap_or_default();
                self.observed = Some(Observed {
                    record: (s.holder_identity, s.renew_time, s.lease_transitions),
                    at: Instant::now(),
                });
                Ok(Attempt::Leading)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::Following(holder)),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16, message: &str) -> kube::Error {
        let status: kube::core::Status = serde_json::from_value(serde_json::json!({"code": code, "message": message})).unwrap();
        kube::Error::Api(Box::new(status))
    }

    #[test]
    fn a_missing_namespace_or_a_forbidden_lease_is_fatal_and_says_what_to_do() {
        let e = LeaseError::of(&api_error(404, "namespaces \"argo-rollouts\" not found"), "argo-rollouts").unwrap();
        let text = e.to_string();
        for want in ["\"argo-rollouts\" of the lease does not exist", "kubectl create namespace argo-rollouts", "--leader-election-namespace", "--leader-elect=false"] {
            assert!(text.contains(want), "{want:?} missing from {text}");
        }
        assert!(matches!(LeaseError::of(&api_error(403, "forbidden"), "ns"), Some(LeaseError::Forbidden { .. })));
        let lease_gone = api_error(404, "leases.coordination.k8s.io \"argo-rollouts-controller-lock\" not found");
        assert_eq!(LeaseError::of(&lease_gone, "ns"), None, "a lease deleted meanwhile is retried");
        for transient in [409, 429, 500, 503] {
            assert_eq!(LeaseError::of(&api_error(transient, "x"), "ns"), None, "{transient}");
        }
    }
}
