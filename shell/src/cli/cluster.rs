//! Cluster access for the verbs: the Rollout or Experiment as a `DynamicObject` (so fields of
//! a newer Argo Rollouts survive a round trip), the objects it owns, and the patch requests.

use std::future::Future;
use std::process::ExitCode;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::ApiResource;
use kube::Client;
use serde::de::DeserializeOwned;
use rollouts_core::commands::Change;
use serde_json::Value;

use super::error::CliError;
use super::experiment::ExperimentObjects;
use super::info::Objects;
use crate::kubeapi::{analysis_run_resource, experiment_resource, rollout_resource, KubeArgs};

/// Runs a cluster verb on a small runtime and turns its error into `error: …` and exit 1.
pub fn run<F>(verb: F) -> ExitCode
where
    F: Future<Output = Result<ExitCode, CliError>>,
{
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(verb) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A connection and the namespace the verb acts in.
#[derive(Clone)]
pub struct Cluster {
    pub client: Client,
    pub namespace: String,
}

impl Cluster {
    pub async fn connect(args: &KubeArgs) -> Result<Self, CliError> {
        let c = args.connect().await?;
        Ok(Cluster { client: c.client, namespace: c.namespace })
    }

    fn dynamic(&self, resource: &ApiResource) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &self.namespace, resource)
    }

    /// The Rollouts of the namespace.
    pub fn rollouts(&self) -> Api<DynamicObject> {
        self.dynamic(&rollout_resource())
    }

    /// All Rollouts, in every namespace.
    pub fn all_rollouts(&self) -> Api<DynamicObject> {
        Api::all_with(self.client.clone(), &rollout_resource())
    }

    pub fn analysis_runs(&self) -> Api<DynamicObject> {
        self.dynamic(&analysis_run_resource())
    }

    pub fn experiments(&self) -> Api<DynamicObject> {
        self.dynamic(&experiment_resource())
    }

    pub fn replica_sets(&self) -> Api<ReplicaSet> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// All Experiments, in every namespace.
    pub fn all_experiments(&self) -> Api<DynamicObject> {
        Api::all_with(self.client.clone(), &experiment_resource())
    }

    /// The Rollout, or the API server's `rollouts.argoproj.io "x" not found`.
    pub async fn get_rollout(&self, name: &str) -> Result<DynamicObject, CliError> {
        Ok(self.rollouts().get(name).await?)
    }

    /// A JSON merge patch on the Rollout itself.
    pub async fn merge_patch(&self, name: &str, patch: &Value) -> Result<DynamicObject, CliError> {
        Ok(self.rollouts().patch(name, &PatchParams::default(), &Patch::Merge(patch)).await?)
    }

    /// A JSON merge patch on the status subresource. A 404 there (a CRD without the status
    /// subresource, as before Argo Rollouts 0.10) sends `fallback` to the object instead, as
    /// Argo's plugin does; `None` when the caller handles that itself.
    pub async fn status_patch(
        &self,
        name: &str,
        patch: &Value,
        fallback: Option<&Value>,
    ) -> Result<Option<DynamicObject>, CliError> {
        match self.rollouts().patch_status(name, &PatchParams::default(), &Patch::Merge(patch)).await {
            Ok(ro) => Ok(Some(ro)),
            Err(e) => {
                let e = CliError::from(e);
                if !e.is_not_found() {
                    return Err(e);
                }
                match fallback {
                    Some(f) => Ok(Some(self.merge_patch(name, f).await?)),
                    None => Ok(None),
                }
            }
        }
    }

    /// A JSON patch (RFC 6902) on the Rollout.
    pub async fn json_patch(&self, name: &str, patch: &Value) -> Result<DynamicObject, CliError> {
        let ops = serde_json::from_value(patch.clone())
            .map_err(|e| CliError::refused(format!("internal error: not a JSON patch: {e}")))?;
        Ok(self.rollouts().patch(name, &PatchParams::default(), &Patch::<()>::Json(ops)).await?)
    }

    /// Sends a user command's change of the Rollout `name` (see [`Change`]): the status
    /// patch first (or `unified` to the object when there is no status subresource), then
    /// the object patch; a JSON patch; or an update. Nothing for [`Change::Skip`].
    pub async fn send(&self, name: &str, change: &Change) -> Result<(), CliError> {
        match change {
            Change::Merge { status, object, unified } => {
                let mut object = object.as_ref();
                if let Some(status) = status {
                    if self.status_patch(name, status, None).await?.is_none() {
                        // No status subresource: one patch of the object carries both.
                        object = unified.as_ref();
                    }
                }
                if let Some(patch) = object {
                    self.merge_patch(name, patch).await?;
                }
            }
            Change::JsonPatch(ops) => {
                self.json_patch(name, ops).await?;
            }
            Change::Replace(object) => {
                self.rollouts().replace(name, &PostParams::default(), &from_value(object.clone())?).await?;
            }
            Change::Skip(_) => {}
        }
        Ok(())
    }

    /// Everything `get rollout` shows about `name`, read once.
    pub async fn objects(&self, name: &str) -> Result<Objects, CliError> {
        Ok(self.tree(Root::Rollout, name).await?.into_objects())
    }

    /// The API of the kind at the root of a tree.
    pub fn root_api(&self, root: Root) -> Api<DynamicObject> {
        match root {
            Root::Rollout => self.rollouts(),
            Root::Experiment => self.experiments(),
        }
    }

    /// The object `name` of kind `root` and the namespace's objects that may hang below it,
    /// read once. A missing root is the API server's `… "x" not found`.
    pub async fn tree(&self, root: Root, name: &str) -> Result<Tree, CliError> {
        let object = self.root_api(root).get(name).await?;
        let lp = ListParams::default();
        let replica_sets = self.replica_sets().list(&lp).await?.items;
        let pods = self.pods().list(&lp).await?.items;
        let analysis_runs = list_if_served(&self.analysis_runs()).await?.unwrap_or_default();
        let experiments = match root {
            Root::Rollout => list_if_served(&self.experiments()).await?.unwrap_or_default(),
            // An experiment owns no experiments.
            Root::Experiment => Vec::new(),
        };
        Ok(Tree { root: to_value(&object), replica_sets, pods, analysis_runs, experiments })
    }
}

/// The kind of object a tree view starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Root {
    Rollout,
    Experiment,
}

/// A root object and the namespace's objects that may belong to it, as one read or one
/// watch has them.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    /// The Rollout or Experiment, as the API server returned it.
    pub root: Value,
    pub replica_sets: Vec<ReplicaSet>,
    pub pods: Vec<Pod>,
    /// AnalysisRuns, as JSON (empty when their CRD is not installed).
    pub analysis_runs: Vec<Value>,
    /// Experiments, as JSON: read for a Rollout root only.
    pub experiments: Vec<Value>,
}

impl Tree {
    /// The objects of `get rollout` (the root is the Rollout).
    pub fn into_objects(self) -> Objects {
        Objects {
            rollout: self.root,
            replica_sets: self.replica_sets,
            pods: self.pods,
            analysis_runs: self.analysis_runs,
            experiments: self.experiments,
        }
    }

    /// The objects of `get experiment` (the root is the Experiment).
    pub fn into_experiment_objects(self) -> ExperimentObjects {
        ExperimentObjects {
            experiment: self.root,
            replica_sets: self.replica_sets,
            pods: self.pods,
            analysis_runs: self.analysis_runs,
        }
    }
}

/// A JSON merge patch on the status subresource of `name`; a 404 there (a CRD without the
/// status subresource, as Argo's Experiment and AnalysisRun CRDs are) sends it to the object
/// itself. A missing object is reported by that second request.
pub async fn patch_status_or_object(api: &Api<DynamicObject>, name: &str, patch: &Value) -> Result<DynamicObject, CliError> {
    match api.patch_status(name, &PatchParams::default(), &Patch::Merge(patch)).await {
        Ok(object) => Ok(object),
        Err(e) => {
            let e = CliError::from(e);
            if !e.is_not_found() {
                return Err(e);
            }
            Ok(api.patch(name, &PatchParams::default(), &Patch::Merge(patch)).await?)
        }
    }
}

/// Lists a kind whose CRD may not be installed: `None` when the server does not serve it.
pub async fn list_if_served(api: &Api<DynamicObject>) -> Result<Option<Vec<Value>>, CliError> {
    match api.list(&ListParams::default()).await {
        Ok(list) => Ok(Some(list.items.iter().map(to_value).collect())),
        Err(e) => {
            let e = CliError::from(e);
            if e.is_not_found() {
                Ok(None)
            } else {
                Err(e)
            }
        }
    }
}

/// The object as the API server sent it.
pub fn to_value(object: &DynamicObject) -> Value {
    serde_json::to_value(object).unwrap_or(Value::Null)
}

/// Decodes an object that was just encoded from an API object of the same kind.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, CliError> {
    serde_json::from_value(value).map_err(|e| CliError::refused(format!("cannot decode the object: {e}")))
}
