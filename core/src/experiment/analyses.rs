//! An Experiment's analyses: templates verified before the experiment is available, runs
//! created after, their phases tracked, running ones terminated when the experiment
//! terminates (Argo's `reconcileAnalysisRun`, `createAnalysisRun`, `newAnalysisRun`,
//! experiments/experiment.go; `ResolveExperimentArgsValue`, utils/template/template.go;
//! `CreateWithCollisionCounter`, utils/analysis/helpers.go).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{duration_text, is_controller, Ctx};
use crate::analysis::args::{flatten_templates, merge_args, merge_dry_run, merge_measurement_retention};
use crate::analysis::condition::go_quote;
use crate::api::{
    AnalysisPhase, AnalysisRun, AnalysisRunSpec, AnalysisTemplate, Argument, ExperimentAnalysisRunStatus,
    ExperimentAnalysisTemplateRef, ValueFrom,
};
use crate::objects::ReplicaSetExt;
use crate::state::{Action, EventType};
use crate::time::parse_duration;

impl Ctx<'_> {
    /// Argo's `reconcileAnalysisRun`, with its phase-change events.
    pub(super) fn reconcile_analysis(&mut self, analysis: &ExperimentAnalysisTemplateRef) {
        let prev = self
            .ex
            .status
            .analysis_runs
            .iter()
            .find(|r| r.name == analysis.name)
            .cloned()
            .unwrap_or_else(|| ExperimentAnalysisRunStatus { name: analysis.name.clone(), ..Default::default() });
        let mut next = prev.clone();
        self.assess_analysis(analysis, &prev, &mut next);

        if let Some(phase) = next.phase.filter(|p| prev.phase != Some(*p)) {
            let mut msg = format!(
                "AnalysisRun '{}' transitioned from {} -> {}",
                analysis.name,
                prev.phase.map_or("", AnalysisPhase::as_str),
                phase.as_str()
            );
            if !next.message.is_empty() {
                msg = format!("{msg}: {}", next.message);
            }
            let kind = match phase {
                AnalysisPhase::Failed | AnalysisPhase::Error | AnalysisPhase::Inconclusive => EventType::Warning,
                AnalysisPhase::Pending | AnalysisPhase::Running | AnalysisPhase::Successful => EventType::Normal,
            };
            let reason = format!("AnalysisRun{}", phase.as_str());
            if self.ex.metadata.owner_references.iter().flatten().any(|o| o.kind == "Rollout") {
                self.rollout_events.push(Action::RecordEvent {
                    kind: EventType::Warning,
                    reason: reason.clone(),
                    message: msg.clone(),
                });
            }
            self.event(kind, reason, msg);
        }
        match self.status.analysis_runs.iter_mut().find(|r| r.name == next.name) {
            Some(slot) => *slot = next,
            None => self.status.analysis_runs.push(next),
        }
    }

    fn assess_analysis(
        &mut self,
        analysis: &ExperimentAnalysisTemplateRef,
        prev: &ExperimentAnalysisRunStatus,
        next: &mut ExperimentAnalysisRunStatus,
    ) {
        if self.ex.status.available_at.is_none() {
            // Not available yet: only check that the template exists.
            let (kind, store) = self.template_store(analysis.cluster_scope);
            if !store.contains_key(&analysis.template_name) {
                let which = if analysis.cluster_scope { "ClusterAnalysisTemplate" } else { "AnalysisTemplate" };
                next.phase = Some(AnalysisPhase::Error);
                next.message = format!(
                    "{which} verification failed for analysis '{}': {kind}.argoproj.io {} not found",
                    analysis.name,
                    go_quote(&analysis.template_name)
                );
            }
            return;
        }
        if prev.analysis_run.is_empty() {
            if self.terminating {
                return;
            }
            match self.create_run(analysis) {
                Ok(name) => {
                    next.phase = Some(AnalysisPhase::Pending);
                    next.analysis_run = name;
                }
                Err(e) => {
                    next.phase = Some(AnalysisPhase::Error);
                    next.message = format!("Failed to create AnalysisRun for analysis '{}': {e}", analysis.name);
                }
            }
            return;
        }
        if prev.phase.is_some_and(AnalysisPhase::completed) {
            return;
        }
        let Some(run) = self.observed.analysis_runs.get(&prev.analysis_run) else {
            next.phase = Some(AnalysisPhase::Error);
            next.message = format!("analysisruns.argoproj.io {} not found", go_quote(&prev.analysis_run));
            return;
        };
        if self.terminating && !run.status.phase.is_some_and(AnalysisPhase::completed) && !run.spec.terminate {
            self.event(
                EventType::Normal,
                "AnalysisRunTerminating",
                format!("Terminating {} ({})", analysis.name, prev.analysis_run),
            );
            self.actions.push(Action::PatchAnalysisRun {
                name: prev.analysis_run.clone(),
                patch: serde_json::json!({"spec": {"terminate": true}}),
            });
        }
        // Divergence: when terminating, Argo stops reading the run here, so a required
        // analysis still running when the experiment terminates keeps the experiment
        // Running forever; its phase is followed until the terminated run ends.
        // Divergence: Argo copies a run's empty phase (before the run's first reconcile),
        // which ranks as Successful and can end an experiment before a required analysis
        // started; the recorded phase (Pending) is kept until the run has one.
        next.phase = run.status.phase.or(prev.phase);
        next.message = run.status.message.clone();
    }

    fn template_store(
        &self,
        cluster_scope: bool,
    ) -> (&'static str, &BTreeMap<String, Result<AnalysisTemplate, crate::api::SpecError>>) {
        if cluster_scope {
            ("clusteranalysistemplate", self.observed.cluster_analysis_templates)
        } else {
            ("analysistemplate", self.observed.analysis_templates)
        }
    }

    /// Builds the run and picks its name: `<experiment>-<analysis>`, or `.1`, `.2`, ... when
    /// that name is taken by another run (one of ours, unfinished and equal, is adopted
    /// without a create).
    fn create_run(&mut self, analysis: &ExperimentAnalysisTemplateRef) -> Result<String, String> {
        let mut run = self.new_run(analysis)?;
        let base = format!("{}-{}", self.name(), analysis.name);
        let mut name = base.clone();
        let mut collisions = 1;
        while let Some(existing) = self.observed.analysis_runs.get(&name) {
            let equal = existing.spec.metrics == run.spec.metrics
                && existing.spec.dry_run == run.spec.dry_run
                && existing.spec.measurement_retention == run.spec.measurement_retention
                && existing.spec.args == run.spec.args;
            if equal
                && !existing.status.phase.is_some_and(AnalysisPhase::completed)
                && is_controller(self.ex, &existing.metadata)
            {
                return Ok(name);
            }
            name = format!("{base}.{collisions}");
            collisions += 1;
        }
        run.metadata.name = Some(name.clone());
        self.actions.push(Action::CreateAnalysisRun { run: Box::new(run) });
        Ok(name)
    }

    /// Argo's `newAnalysisRun`: the template (and its nested ones) flattened, the
    /// experiment's arguments merged, its dry-run and retention rules first, its
    /// `analysisRunMetadata`, owned by the Experiment.
    fn new_run(&self, analysis: &ExperimentAnalysisTemplateRef) -> Result<AnalysisRun, String> {
        let args = self.experiment_args(&analysis.args)?;
        let (namespaced, cluster) = self.referenced_templates(analysis)?;
        let flat = flatten_templates(&namespaced, &cluster).map_err(|e| e.to_string())?;
        let args = merge_args(&flat.args, &args).map_err(|e| e.to_string())?;
        let dry_run = merge_dry_run(&self.ex.spec.dry_run, &flat.dry_run).map_err(|e| e.to_string())?;
        let measurement_retention =
            merge_measurement_retention(&self.ex.spec.measurement_retention, &flat.measurement_retention)
                .map_err(|e| e.to_string())?;
        let mut meta = self.ex.spec.analysis_run_metadata.clone().unwrap_or_default();
        let instance = crate::api::keys::CONTROLLER_INSTANCE_ID;
        if let Some(id) = self.ex.metadata.labels.as_ref().and_then(|l| l.get(instance)) {
            meta.labels.insert(instance.to_string(), id.clone());
        }
        Ok(AnalysisRun {
            api_version: crate::api::API_VERSION.to_string(),
            kind: "AnalysisRun".to_string(),
            metadata: ObjectMeta {
                name: Some(format!("{}-{}", self.name(), analysis.name)),
                namespace: self.ex.metadata.namespace.clone(),
                labels: (!meta.labels.is_empty()).then_some(meta.labels),
                annotations: (!meta.annotations.is_empty()).then_some(meta.annotations),
                owner_references: Some(vec![self.owner_reference()]),
                ..ObjectMeta::default()
            },
            spec: AnalysisRunSpec {
                metrics: flat.metrics,
                args,
                terminate: false,
                dry_run,
                measurement_retention,
                ttl_strategy: None,
            },
            status: Default::default(),
        })
    }

    /// The analysis' template and every template it nests, each once, namespaced and
    /// cluster-scoped apart (Argo's `getAnalysisTemplatesFromAnalysis`).
    fn referenced_templates(
        &self,
        analysis: &ExperimentAnalysisTemplateRef,
    ) -> Result<(Vec<AnalysisTemplate>, Vec<AnalysisTemplate>), String> {
        let mut namespaced = Vec::new();
        let mut cluster = Vec::new();
        let mut seen = BTreeSet::new();
        let mut stack = vec![(analysis.cluster_scope, analysis.template_name.clone())];
        while let Some((cluster_scope, name)) = stack.pop() {
            if !seen.insert((cluster_scope, name.clone())) {
                continue;
            }
            let (kind, store) = self.template_store(cluster_scope);
            let template = match store.get(&name) {
                None => return Err(format!("{kind}.argoproj.io {} not found", go_quote(&name))),
                Some(Err(e)) => return Err(format!("{kind}.argoproj.io {} is invalid: {e}", go_quote(&name))),
                Some(Ok(t)) => t.clone(),
            };
            stack.extend(template.spec.templates.iter().rev().map(|t| (t.cluster_scope, t.template_name.clone())));
            if cluster_scope {
                cluster.push(template);
            } else {
                namespaced.push(template);
            }
        }
        Ok((namespaced, cluster))
    }

    /// Argo's `ResolveAnalysisRunArgs`: each value with the experiment's placeholders
    /// resolved. Divergence: a `valueFrom.secretKeyRef` is kept (Argo drops every
    /// `valueFrom`, so a secret argument can never reach the run).
    fn experiment_args(&self, args: &[Argument]) -> Result<Vec<Argument>, String> {
        let mut values = BTreeMap::new();
        if let Some(at) = self.ex.status.available_at {
            values.insert("experiment.availableAt".to_string(), at.to_rfc3339());
            if let Some(text) = duration_text(self.ex) {
                let d = parse_duration(text).map_err(|e| e.to_string())?;
                values.insert("experiment.finishedAt".to_string(), at.plus(d).to_rfc3339());
            }
        }
        for t in &self.ex.spec.templates {
            if let Some(rs) = self.template_rss.get(&t.name) {
                values.insert(format!("templates.{}.podTemplateHash", t.name), rs.pod_hash().to_string());
                values.insert(format!("templates.{}.replicaset.name", t.name), rs.name().to_string());
            }
        }
        args.iter()
            .map(|a| {
                let value = a.value.as_deref().map(|v| resolve(v, &values)).transpose()?;
                let value_from = a
                    .value_from
                    .as_ref()
                    .and_then(|f| f.secret_key_ref.clone())
                    .map(|s| ValueFrom { secret_key_ref: Some(s), field_ref: None });
                Ok(Argument { name: a.name.clone(), value, value_from })
            })
            .collect()
    }
}

/// Substitutes `{{...}}` placeholders from `values` (fasttemplate's rules: a tag runs to
/// the first `}}`, surrounding whitespace ignored). Errors are Argo's: a `{{` without `}}`,
/// or the last placeholder that names nothing known.
fn resolve(text: &str, values: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut unresolved = None;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            return Err(format!(
                "Cannot find end tag=\"}}}}\" in the template={} starting from {}",
                go_quote(text),
                go_quote(after)
            ));
        };
        let tag = &after[..close];
        match values.get(tag.trim()) {
            Some(v) => out.push_str(v),
            None => unresolved = Some(format!("failed to resolve {{{{{tag}}}}}")),
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    match unresolved {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_resolve_with_argo_errors() {
        let values = BTreeMap::from([("templates.a.podTemplateHash".to_string(), "abc".to_string())]);
        assert_eq!(resolve("h={{ templates.a.podTemplateHash }}", &values).unwrap(), "h=abc");
        assert_eq!(resolve("{{x}} and {{y}}", &values).unwrap_err(), "failed to resolve {{y}}");
        assert!(resolve("{{oops", &values).unwrap_err().starts_with("Cannot find end tag=\"}}\""));
    }
}
