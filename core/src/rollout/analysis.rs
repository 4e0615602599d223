//! AnalysisRuns owned by a rollout: created at the right moments (background, step,
//! blue-green pre- and post-promotion), read for their outcome (Inconclusive pauses,
//! Failed or Error aborts), cancelled and deleted (Argo's `rollout/analysis.go`).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde_json::Value;

use super::context::Ctx;
use crate::analysis::args::{
    flatten_templates, merge_args, merge_dry_run, merge_measurement_retention, TemplateError,
};
use crate::api::{
    keys, AnalysisPhase, AnalysisRun, AnalysisRunArgument, AnalysisRunSpec, AnalysisTemplate, Argument,
    PauseReason, Rollout, RolloutAnalysis, RolloutAnalysisRunStatus, RolloutAnalysisTemplate, StepKind, ValueFrom,
};
use crate::objects::ReplicaSetExt;
use crate::state::{Action, State};

/// Label telling how the rollout created a run.
pub const ROLLOUT_TYPE_LABEL: &str = "rollout-type";
/// Label with the step index of a step run.
pub const STEP_INDEX_LABEL: &str = "step-index";

/// Which of the rollout's analyses a run belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum RunKind {
    /// An `analysis` canary step.
    Step,
    /// `strategy.canary.analysis`.
    Background,
    /// `strategy.blueGreen.prePromotionAnalysis`.
    PrePromotion,
    /// `strategy.blueGreen.postPromotionAnalysis`.
    PostPromotion,
}

impl RunKind {
    fn label(self) -> &'static str {
        match self {
            RunKind::Step => "Step",
            RunKind::Background => "Background",
            RunKind::PrePromotion => "PrePromotion",
            RunKind::PostPromotion => "PostPromotion",
        }
    }

    /// The start of the abort message when a run of this kind fails.
    fn abort_prefix(self) -> &'static str {
        match self {
            RunKind::Step => "Step-based analysis phase error/failed",
            RunKind::Background => "Background analysis phase error/failed",
            RunKind::PrePromotion => "Blue/green pre-promotion analysis phase error/failed",
            RunKind::PostPromotion => "Blue/green post-promotion analysis phase error/failed",
        }
    }
}

/// The runs the rollout status names as current, by kind.
#[derive(Clone, Debug, Default)]
pub(super) struct CurrentRuns {
    pub step: Option<AnalysisRun>,
    pub background: Option<AnalysisRun>,
    pub pre: Option<AnalysisRun>,
    pub post: Option<AnalysisRun>,
}

impl CurrentRuns {
    fn names(&self) -> BTreeSet<String> {
        [&self.step, &self.background, &self.pre, &self.post]
            .into_iter()
            .flatten()
            .filter_map(|r| r.metadata.name.clone())
            .collect()
    }
}

fn run_name(r: &AnalysisRun) -> String {
    r.metadata.name.clone().unwrap_or_default()
}

fn run_phase(r: &AnalysisRun) -> Option<AnalysisPhase> {
    r.status.phase
}

fn run_status(r: &AnalysisRun) -> RolloutAnalysisRunStatus {
    RolloutAnalysisRunStatus {
        name: run_name(r),
        status: r.status.phase.map(|p| p.as_str().to_string()).unwrap_or_default(),
        message: r.status.message.clone(),
    }
}

impl Ctx<'_> {
    /// The runs named in the rollout status, as currently known.
    pub(super) fn current_runs(&self) -> CurrentRuns {
        let st = &self.ro.status;
        let get = |s: &Option<RolloutAnalysisRunStatus>| {
            s.as_ref().and_then(|s| self.state.analysis_runs.get(&s.name)).cloned()
        };
        CurrentRuns {
            step: get(&st.canary.current_step_analysis_run_status),
            background: get(&st.canary.current_background_analysis_run_status),
            pre: get(&st.blue_green.pre_promotion_analysis_run_status),
            post: get(&st.blue_green.post_promotion_analysis_run_status),
        }
    }

    /// Records the current runs' name, phase and message in the new status.
    fn set_current_runs(&mut self, runs: &CurrentRuns) {
        let s = &mut self.new_status;
        s.canary.current_step_analysis_run_status = runs.step.as_ref().map(run_status);
        s.canary.current_background_analysis_run_status = runs.background.as_ref().map(run_status);
        s.blue_green.pre_promotion_analysis_run_status = runs.pre.as_ref().map(run_status);
        s.blue_green.post_promotion_analysis_run_status = runs.post.as_ref().map(run_status);
    }

    /// Argo's `reconcileAnalysisRuns`.
    pub(super) fn reconcile_analysis_runs(&mut self) {
        // Without runs and without any analysis in the spec there is nothing to create,
        // cancel, delete or report, and the new status already names no run.
        if self.state.analysis_runs.is_empty() && !self.spec_has_analysis() {
            return;
        }
        let current = self.current_runs();
        let aborted = self.pause.is_aborted(&self.ro.status);
        let rollback_to_delay = self.new_rs().is_some_and(|r| r.has_scale_down_deadline());
        let initial_deploy = self.ro.status.stable_rs.is_empty();
        if aborted || self.ro.status.promote_full || rollback_to_delay || initial_deploy {
            self.set_current_runs(&current);
            let all: Vec<String> = self.state.analysis_runs.keys().cloned().collect();
            self.cancel_runs(&all);
            return;
        }
        let mut next = CurrentRuns::default();
        if self.ro.spec.canary().is_some() {
            next.step = self.reconcile_step_run(current.step.clone());
            next.background = self.reconcile_background_run(current.background.clone());
        }
        if self.ro.spec.blue_green().is_some() {
            next.pre = self.reconcile_pre_promotion_run(current.pre.clone());
            self.pause_or_abort(next.pre.as_ref(), RunKind::PrePromotion);
            next.post = self.reconcile_post_promotion_run(current.post.clone());
            self.pause_or_abort(next.post.as_ref(), RunKind::PostPromotion);
        }
        self.set_current_runs(&next);
        let keep = next.names();
        let others: Vec<String> = self
            .state
            .analysis_runs
            .iter()
            .filter(|(n, r)| !keep.contains(*n) && !self.is_ahead_of_a_lost_write(r))
            .map(|(n, _)| n.clone())
            .collect();
        self.cancel_runs(&others);
        self.delete_old_runs(&others);
        self.emit_run_status_changes(&next);
    }

    /// A step run of the current revision, for a step the status has not reached yet,
    /// created less than a minute ago and still going: this controller made it in a
    /// reconcile whose status write was lost (the status read back is from before that
    /// step). It is that step's run when the step is entered again (`create_run` adopts an
    /// equal run); cancelling it as a stranger would make the step create `<name>.1` and
    /// measure twice. Older ones are strangers after all (a spec edited since, say).
    fn is_ahead_of_a_lost_write(&self, run: &AnalysisRun) -> bool {
        const RECENT: i64 = 60;
        let labels = run.metadata.labels.as_ref();
        let label = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
        let index = self.ro.status.current_step_index.unwrap_or(0);
        let ahead = label(STEP_INDEX_LABEL).and_then(|i| i.parse::<i32>().ok()).is_some_and(|i| i > index);
        let recent = run
            .metadata
            .creation_timestamp
            .as_ref()
            .is_some_and(|t| self.now.since(crate::objects::from_kube_time(t)).0 < RECENT);
        ahead
            && recent
            && label(ROLLOUT_TYPE_LABEL) == Some(RunKind::Step.label())
            && label(keys::POD_TEMPLATE_HASH) == Some(self.new_hash().as_str())
            && !run.spec.terminate
            && !run.status.phase.is_some_and(|p| p.completed())
    }

    /// Whether the spec asks for any AnalysisRun (a step, background, pre- or
    /// post-promotion analysis).
    fn spec_has_analysis(&self) -> bool {
        let spec = &self.ro.spec;
        let canary = spec.canary().is_some_and(|c| c.analysis.is_some() || c.steps.iter().any(|s| s.analysis.is_some()));
        let blue_green = spec
            .blue_green()
            .is_some_and(|b| b.pre_promotion_analysis.is_some() || b.post_promotion_analysis.is_some());
        canary || blue_green
    }

    fn pause_or_abort(&mut self, run: Option<&AnalysisRun>, kind: RunKind) {
        let Some(run) = run else { return };
        match run_phase(run) {
            Some(AnalysisPhase::Inconclusive) => self.pause.add_pause(PauseReason::InconclusiveAnalysisRun),
            Some(AnalysisPhase::Error | AnalysisPhase::Failed) => {
                let mut msg = kind.abort_prefix().to_string();
                if !run.status.message.is_empty() {
                    msg = format!("{msg}: {}", run.status.message);
                }
                self.pause.add_abort(msg);
            }
            Some(AnalysisPhase::Pending | AnalysisPhase::Running | AnalysisPhase::Successful) | None => {}
        }
    }

    /// Argo's `needsNewAnalysisRun`.
    fn needs_new_run(&self, current: Option<&AnalysisRun>) -> bool {
        let Some(current) = current else { return true };
        let st = &self.ro.status;
        if st.controller_pause && !st.pause_conditions.iter().any(|p| p.reason == PauseReason::BlueGreenPause) {
            return run_phase(current) == Some(AnalysisPhase::Inconclusive);
        }
        st.aborted_at.is_some()
    }

    fn has_inconclusive_pause(&self) -> bool {
        self.ro.status.pause_conditions.iter().any(|p| p.reason == PauseReason::InconclusiveAnalysisRun)
    }

    fn reconcile_step_run(&mut self, current: Option<AnalysisRun>) -> Option<AnalysisRun> {
        if !self.ro.status.pause_conditions.is_empty() || self.ro.status.abort {
            return current;
        }
        let index = self.ro.status.current_step_index.unwrap_or(0);
        let Some(StepKind::Analysis(analysis)) = self.current_step().map(|s| s.kind()) else {
            if let Some(c) = &current {
                self.cancel_runs(&[run_name(c)]);
            }
            return None;
        };
        let analysis = analysis.clone();
        // A run from an earlier step (the user promoted past it) is not this step's run.
        let current = match current {
            Some(c) if c.metadata.labels.as_ref().and_then(|l| l.get(STEP_INDEX_LABEL)) != Some(&index.to_string()) => {
                self.cancel_runs(&[run_name(&c)]);
                None
            }
            other => other,
        };
        if self.needs_new_run(current.as_ref()) {
            return self.create_run(&analysis, RunKind::Step, Some(index));
        }
        self.pause_or_abort(current.as_ref(), RunKind::Step);
        current
    }

    fn before_starting_step(&self) -> bool {
        let Some(start) = self.ro.spec.canary().and_then(|c| c.analysis.as_ref()).and_then(|a| a.starting_step) else {
            return false;
        };
        if self.ro.spec.steps().is_empty() {
            return false;
        }
        self.ro.status.current_step_index.unwrap_or(0) < start
    }

    fn reconcile_background_run(&mut self, current: Option<AnalysisRun>) -> Option<AnalysisRun> {
        let Some(bg) = self.ro.spec.canary().and_then(|c| c.analysis.clone()) else {
            if let Some(c) = &current {
                self.cancel_runs(&[run_name(c)]);
            }
            return None;
        };
        let st = &self.ro.status;
        if self.is_fully_promoted() || st.stable_rs.is_empty() || st.current_pod_hash.is_empty() || self.before_starting_step()
        {
            return None;
        }
        if self.has_inconclusive_pause() {
            return current;
        }
        if self.needs_new_run(current.as_ref()) {
            let analysis = RolloutAnalysis {
                templates: bg.templates,
                args: bg.args,
                dry_run: bg.dry_run,
                measurement_retention: bg.measurement_retention,
                analysis_run_metadata: bg.analysis_run_metadata,
            };
            return self.create_run(&analysis, RunKind::Background, None);
        }
        self.pause_or_abort(current.as_ref(), RunKind::Background);
        current
    }

    fn skip_pre_promotion(&self) -> bool {
        let Some(new) = self.new_rs() else { return true };
        let hash = new.pod_hash();
        let st = &self.ro.status;
        let active = &st.blue_green.active_selector;
        if st.stable_rs == hash || active.is_empty() || active == hash || hash.is_empty() {
            return true;
        }
        match self.ro.spec.blue_green().and_then(|b| b.preview_replica_count) {
            Some(p) => new.spec_replicas() != p || new.available() != p,
            None => !self.is_saturated(new),
        }
    }

    /// Whether post-promotion analysis does not apply yet (Argo's `skipPostPromotionAnalysisRun`).
    pub(super) fn skip_post_promotion(&self) -> bool {
        let Some(new) = self.new_rs() else { return true };
        let hash = new.pod_hash();
        let st = &self.ro.status;
        st.stable_rs == hash || st.blue_green.active_selector != hash || hash.is_empty() || !self.is_saturated(new)
    }

    fn reconcile_pre_promotion_run(&mut self, current: Option<AnalysisRun>) -> Option<AnalysisRun> {
        let Some(analysis) = self.ro.spec.blue_green().and_then(|b| b.pre_promotion_analysis.clone()) else {
            if let Some(c) = &current {
                self.cancel_runs(&[run_name(c)]);
            }
            return None;
        };
        if self.skip_pre_promotion() {
            if let Some(c) = &current {
                self.cancel_runs(&[run_name(c)]);
            }
            return current;
        }
        if self.has_inconclusive_pause() {
            return current;
        }
        if self.needs_new_run(current.as_ref()) {
            return self.create_run(&analysis, RunKind::PrePromotion, None);
        }
        current
    }

    fn reconcile_post_promotion_run(&mut self, current: Option<AnalysisRun>) -> Option<AnalysisRun> {
        let Some(analysis) = self.ro.spec.blue_green().and_then(|b| b.post_promotion_analysis.clone()) else {
            if let Some(c) = &current {
                self.cancel_runs(&[run_name(c)]);
            }
            return None;
        };
        if self.skip_post_promotion() {
            if let Some(c) = &current {
                self.cancel_runs(&[run_name(c)]);
            }
            return current;
        }
        if self.has_inconclusive_pause() {
            return current;
        }
        if self.needs_new_run(current.as_ref()) {
            return self.create_run(&analysis, RunKind::PostPromotion, None);
        }
        current
    }

    /// Whether pre-promotion analysis is done (or not configured).
    pub(super) fn completed_pre_promotion_analysis(&self) -> bool {
        if self.ro.spec.blue_green().and_then(|b| b.pre_promotion_analysis.as_ref()).is_none() {
            return true;
        }
        // Before this reconcile's runs are settled, the run named in the status is current.
        let name = self
            .new_status
            .blue_green
            .pre_promotion_analysis_run_status
            .as_ref()
            .or(self.ro.status.blue_green.pre_promotion_analysis_run_status.as_ref())
            .map(|s| s.name.clone());
        name.and_then(|n| self.state.analysis_runs.get(&n)).is_some_and(|r| run_phase(r) == Some(AnalysisPhase::Successful))
    }

    /// The current post-promotion run succeeded.
    pub(super) fn post_promotion_succeeded(&self) -> bool {
        let name = self.new_status.blue_green.post_promotion_analysis_run_status.as_ref().map(|s| s.name.clone());
        name.and_then(|n| self.state.analysis_runs.get(&n)).is_some_and(|r| run_phase(r) == Some(AnalysisPhase::Successful))
    }

    /// The post-promotion run named in the rollout's status succeeded (used before this
    /// reconcile's runs are known).
    pub(super) fn post_promotion_succeeded_now(&self) -> bool {
        let name = self.ro.status.blue_green.post_promotion_analysis_run_status.as_ref().map(|s| s.name.clone());
        name.and_then(|n| self.state.analysis_runs.get(&n)).is_some_and(|r| run_phase(r) == Some(AnalysisPhase::Successful))
    }

    /// The current step run succeeded.
    pub(super) fn step_run_succeeded(&self) -> bool {
        let name = self.new_status.canary.current_step_analysis_run_status.as_ref().map(|s| s.name.clone());
        name.and_then(|n| self.state.analysis_runs.get(&n)).is_some_and(|r| run_phase(r) == Some(AnalysisPhase::Successful))
    }

    /// Sets `spec.terminate` on runs that are still going.
    pub(super) fn cancel_runs(&mut self, names: &[String]) {
        for name in names {
            let Some(run) = self.state.analysis_runs.get_mut(name) else { continue };
            let completed = run.status.phase.is_some_and(|p| p.completed());
            if run.spec.terminate || completed {
                continue;
            }
            run.spec.terminate = true;
            self.actions.push(Action::PatchAnalysisRun {
                name: name.clone(),
                patch: serde_json::json!({"spec": {"terminate": true}}),
            });
        }
    }

    /// Argo's `FilterAnalysisRunsToDelete`: runs of ReplicaSets that are gone, and runs
    /// beyond the successful / unsuccessful history limits (newest kept).
    fn delete_old_runs(&mut self, others: &[String]) {
        if others.is_empty() {
            return;
        }
        let limits = self.ro.spec.analysis.as_ref();
        let max_ok = limits
            .and_then(|l| l.successful_run_history_limit)
            .unwrap_or(crate::api::defaults::RUN_HISTORY_LIMIT);
        let max_bad = limits
            .and_then(|l| l.unsuccessful_run_history_limit)
            .unwrap_or(crate::api::defaults::RUN_HISTORY_LIMIT);
        let hashes: BTreeSet<String> = self
            .all_rs()
            .filter(|r| !r.is_deleting())
            .map(|r| r.pod_hash().to_string())
            .collect();
        let mut runs: Vec<&AnalysisRun> = others
            .iter()
            .filter_map(|n| self.state.analysis_runs.get(n))
            .filter(|r| r.metadata.deletion_timestamp.is_none())
            .collect();
        runs.sort_by(|a, b| {
            let key = |r: &AnalysisRun| (r.metadata.creation_timestamp.as_ref().map(|t| t.0), run_name(r));
            key(b).cmp(&key(a))
        });
        let (mut ok, mut bad) = (0, 0);
        let mut doomed = Vec::new();
        for r in runs {
            let hash = r.metadata.labels.as_ref().and_then(|l| l.get(keys::POD_TEMPLATE_HASH));
            if hash.is_none_or(|h| !hashes.contains(h)) {
                doomed.push(run_name(r));
                continue;
            }
            match run_phase(r) {
                Some(AnalysisPhase::Successful) => {
                    ok += 1;
                    if ok > max_ok {
                        doomed.push(run_name(r));
                    }
                }
                Some(AnalysisPhase::Failed | AnalysisPhase::Error | AnalysisPhase::Inconclusive) => {
                    bad += 1;
                    if bad > max_bad {
                        doomed.push(run_name(r));
                    }
                }
                Some(AnalysisPhase::Pending | AnalysisPhase::Running) | None => {}
            }
        }
        for name in doomed {
            self.state.analysis_runs.remove(&name);
            self.actions.push(Action::DeleteAnalysisRun { name });
        }
    }

    /// Deletes the runs labelled with a ReplicaSet's hash (when the ReplicaSet is deleted).
    pub(super) fn delete_runs_of_hash(&mut self, hash: &str) {
        let doomed: Vec<String> = self
            .state
            .analysis_runs
            .iter()
            .filter(|(_, r)| r.metadata.labels.as_ref().and_then(|l| l.get(keys::POD_TEMPLATE_HASH)).map(String::as_str) == Some(hash))
            .map(|(n, _)| n.clone())
            .collect();
        for name in doomed {
            self.state.analysis_runs.remove(&name);
            self.actions.push(Action::DeleteAnalysisRun { name });
        }
    }

    /// Events `AnalysisRun<Phase>` when a current run's phase changed.
    fn emit_run_status_changes(&mut self, next: &CurrentRuns) {
        let old = &self.ro.status;
        let pairs = [
            (
                old.blue_green.post_promotion_analysis_run_status.clone(),
                next.post.as_ref(),
                RunKind::PostPromotion,
            ),
            (
                old.blue_green.pre_promotion_analysis_run_status.clone(),
                next.pre.as_ref(),
                RunKind::PrePromotion,
            ),
            (
                old.canary.current_step_analysis_run_status.clone(),
                next.step.as_ref(),
                RunKind::Step,
            ),
            (
                old.canary.current_background_analysis_run_status.clone(),
                next.background.as_ref(),
                RunKind::Background,
            ),
        ];
        for (prev, run, kind) in pairs {
            let Some(run) = run else { continue };
            let Some(phase) = run_phase(run) else {
                continue;
            };
            let changed = match &prev {
                None => true,
                Some(p) => p.name == run_name(run) && p.status != phase.as_str(),
            };
            if !changed {
                continue;
            }
            let previous = prev.map(|p| p.status).filter(|s| !s.is_empty()).unwrap_or_else(|| "NoPreviousStatus".into());
            let msg = format!(
                "{} Analysis Run '{}' Status New: '{}' Previous: '{previous}'",
                kind.label(),
                run_name(run),
                phase.as_str()
            );
            let reason = format!("AnalysisRun{}", phase.as_str());
            if matches!(phase, AnalysisPhase::Failed | AnalysisPhase::Error) {
                self.warning(&reason, msg);
            } else {
                self.event(&reason, msg);
            }
        }
    }

    /// Creates the run for `analysis` (or adopts an equal one still going), with Argo's
    /// name `<rollout>-<hash>-<revision>[-<infix>]` and collision suffixes `.1`, `.2`, ...
    fn create_run(&mut self, analysis: &RolloutAnalysis, kind: RunKind, step: Option<i32>) -> Option<AnalysisRun> {
        let mut run = match build_run(&self.ro, self.state, analysis, kind, step, &self.new_hash(), self.stable_hash()) {
            Ok(r) => r,
            Err(e) => {
                self.warning("AnalysisRunError", format!("cannot create the {} AnalysisRun: {e}", kind.label()));
                return None;
            }
        };
        let base = run_name(&run);
        let mut name = base.clone();
        for n in 1.. {
            match self.state.analysis_runs.get(&name) {
                None => break,
                Some(existing) => {
                    let completed = existing.status.phase.is_some_and(|p| p.completed());
                    let same_owner = existing
                        .metadata
                        .owner_references
                        .iter()
                        .flatten()
                        .any(|o| o.controller == Some(true) && o.name == self.name());
                    if same_owner && !completed && !existing.spec.terminate && existing.spec == run.spec {
                        return Some(existing.clone());
                    }
                }
            }
            name = format!("{base}.{n}");
            if n > 1000 {
                return None;
            }
        }
        run.metadata.name = Some(name.clone());
        self.actions.push(Action::CreateAnalysisRun { run: Box::new(run.clone()) });
        let mut observed = run.clone();
        observed.metadata.creation_timestamp = Some(crate::objects::to_kube_time(self.now));
        self.state.analysis_runs.insert(name, observed.clone());
        Some(observed)
    }

    fn stable_hash(&self) -> Option<String> {
        self.stable_rs().map(|r| r.pod_hash().to_string())
    }
}

/// Why the core cannot build an AnalysisRun for a rollout (or validate its references).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// A referenced template is not in the state.
    #[error("{kind}.argoproj.io {name:?} not found")]
    TemplateNotFound {
        /// `analysistemplate` or `clusteranalysistemplate`.
        kind: &'static str,
        /// The template's name.
        name: String,
    },
    /// A referenced template did not decode.
    #[error("{kind}.argoproj.io {name:?} is invalid: {source}")]
    TemplateInvalid {
        /// `analysistemplate` or `clusteranalysistemplate`.
        kind: &'static str,
        /// The template's name.
        name: String,
        /// The decode error.
        #[source]
        source: crate::api::SpecError,
    },
    /// `valueFrom.podTemplateHashValue` is neither `Latest` nor `Stable`.
    #[error("args.{arg}: unknown podTemplateHashValue {value:?}")]
    UnknownPodTemplateHashValue {
        /// The argument.
        arg: String,
        /// The value given.
        value: String,
    },
    /// `valueFrom.fieldRef.fieldPath` does not name a readable field of the Rollout.
    #[error("failed to resolve fieldPath {path:?}")]
    FieldPath {
        /// The path.
        path: String,
    },
    /// The templates, rules and arguments do not merge.
    #[error(transparent)]
    Templates(#[from] TemplateError),
}

/// Argo's `newAnalysisRunFromRollout`: templates flattened, arguments merged, labels,
/// annotations and the owner reference set.
fn build_run(
    ro: &Rollout,
    state: &State,
    analysis: &RolloutAnalysis,
    kind: RunKind,
    step: Option<i32>,
    new_hash: &str,
    stable_hash: Option<String>,
) -> Result<AnalysisRun, RunError> {
    let args = rollout_args(&analysis.args, ro, new_hash, stable_hash.as_deref())?;
    let (namespaced, cluster) = referenced_templates(state, &analysis.templates)?;
    let flat = flatten_templates(&namespaced, &cluster)?;
    let merged = merge_args(&flat.args, &args)?;
    let revision = ro
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(keys::REVISION))
        .cloned()
        .unwrap_or_default();
    let rollout_name = ro.metadata.name.clone().unwrap_or_default();
    let mut name = format!("{rollout_name}-{new_hash}-{revision}");
    match kind {
        RunKind::Step => name = format!("{name}-{}", step.unwrap_or(0)),
        RunKind::PrePromotion => name.push_str("-pre"),
        RunKind::PostPromotion => name.push_str("-post"),
        RunKind::Background => {}
    }
    let mut labels = BTreeMap::new();
    labels.insert(ROLLOUT_TYPE_LABEL.to_string(), kind.label().to_string());
    if let Some(i) = step {
        labels.insert(STEP_INDEX_LABEL.to_string(), i.to_string());
    }
    labels.insert(keys::POD_TEMPLATE_HASH.to_string(), new_hash.to_string());
    if let Some(meta) = &analysis.analysis_run_metadata {
        labels.extend(meta.labels.clone());
    }
    if let Some(sel) = ro.spec.selector.as_ref().and_then(|s| s.match_labels.clone()) {
        labels.extend(sel);
    }
    if let Some(id) = ro.metadata.labels.as_ref().and_then(|l| l.get(keys::CONTROLLER_INSTANCE_ID)) {
        labels.insert(keys::CONTROLLER_INSTANCE_ID.to_string(), id.clone());
    }
    let mut annotations = BTreeMap::new();
    annotations.insert(keys::REVISION.to_string(), revision);
    if let Some(meta) = &analysis.analysis_run_metadata {
        annotations.extend(meta.annotations.clone());
    }
    let dry_run = merge_dry_run(&analysis.dry_run, &flat.dry_run)?;
    let retention = merge_measurement_retention(&analysis.measurement_retention, &flat.measurement_retention)?;
    Ok(AnalysisRun {
        api_version: crate::api::API_VERSION.to_string(),
        kind: "AnalysisRun".to_string(),
        metadata: ObjectMeta {
            name: Some(name),
            namespace: ro.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: Some(vec![OwnerReference {
                api_version: crate::api::API_VERSION.to_string(),
                kind: "Rollout".to_string(),
                name: rollout_name,
                uid: ro.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..Default::default()
        },
        spec: AnalysisRunSpec {
            metrics: flat.metrics,
            args: merged,
            terminate: false,
            dry_run,
            measurement_retention: retention,
            ttl_strategy: None,
        },
        status: Default::default(),
    })
}

/// The templates a rollout analysis references, nested references included (each once).
pub(crate) fn referenced_templates(
    state: &State,
    refs: &[RolloutAnalysisTemplate],
) -> Result<(Vec<AnalysisTemplate>, Vec<AnalysisTemplate>), RunError> {
    let mut namespaced: Vec<AnalysisTemplate> = Vec::new();
    let mut cluster: Vec<AnalysisTemplate> = Vec::new();
    let mut seen: BTreeSet<(bool, String)> = BTreeSet::new();
    let mut queue: Vec<(bool, String)> = refs.iter().map(|r| (r.cluster_scope, r.template_name.clone())).collect();
    queue.reverse();
    while let Some((cluster_scope, name)) = queue.pop() {
        if !seen.insert((cluster_scope, name.clone())) {
            continue;
        }
        let (store, kind) = if cluster_scope {
            (&state.cluster_analysis_templates, "clusteranalysistemplate")
        } else {
            (&state.analysis_templates, "analysistemplate")
        };
        let template = match store.get(&name) {
            None => return Err(RunError::TemplateNotFound { kind, name }),
            Some(Err(e)) => return Err(RunError::TemplateInvalid { kind, name, source: e.clone() }),
            Some(Ok(t)) => t.clone(),
        };
        let mut nested: Vec<(bool, String)> =
            template.spec.templates.iter().map(|t| (t.cluster_scope, t.template_name.clone())).collect();
        nested.reverse();
        queue.extend(nested);
        if cluster_scope {
            cluster.push(template);
        } else {
            namespaced.push(template);
        }
    }
    Ok((namespaced, cluster))
}

/// Argo's `BuildArgumentsForRolloutAnalysisRun`: values, pod-template hashes and fields of
/// the Rollout.
pub(super) fn rollout_args(
    args: &[AnalysisRunArgument],
    ro: &Rollout,
    new_hash: &str,
    stable_hash: Option<&str>,
) -> Result<Vec<Argument>, RunError> {
    let mut out = Vec::new();
    for a in args {
        let value = match &a.value_from {
            None => a.value.clone(),
            Some(from) => {
                if let Some(which) = &from.pod_template_hash_value {
                    match which.as_str() {
                        "Latest" => Some(new_hash.to_string()),
                        "Stable" => stable_hash.map(str::to_string),
                        other => {
                            return Err(RunError::UnknownPodTemplateHashValue {
                                arg: a.name.clone(),
                                value: other.to_string(),
                            })
                        }
                    }
                } else if let Some(field) = &from.field_ref {
                    Some(field_value(ro, &field.field_path)?)
                } else {
                    a.value.clone()
                }
            }
        };
        out.push(Argument { name: a.name.clone(), value, value_from: None::<ValueFrom> });
    }
    Ok(out)
}

/// Reads `fieldPath` from the Rollout: `metadata.name`, `metadata.labels['k']`, ..., or any
/// dotted path to a primitive.
pub(crate) fn field_value(ro: &Rollout, path: &str) -> Result<String, RunError> {
    let err = || RunError::FieldPath { path: path.to_string() };
    let meta = &ro.metadata;
    let map_key = |prefix: &str| -> Option<String> {
        let rest = path.strip_prefix(prefix)?;
        let inner = rest.strip_prefix("['").and_then(|r| r.strip_suffix("']"))?;
        Some(inner.to_string())
    };
    // A label or annotation the object does not have reads as "", as Kubernetes'
    // `fieldpath.ExtractFieldPathAsString` does (a Go map lookup of a missing key).
    if let Some(k) = map_key("metadata.labels") {
        return Ok(meta
            .labels
            .as_ref()
            .and_then(|l| l.get(&k))
            .cloned()
            .unwrap_or_default());
    }
    if let Some(k) = map_key("metadata.annotations") {
        return Ok(meta
            .annotations
            .as_ref()
            .and_then(|l| l.get(&k))
            .cloned()
            .unwrap_or_default());
    }
    match path {
        "metadata.name" => return meta.name.clone().ok_or_else(err),
        "metadata.namespace" => return meta.namespace.clone().ok_or_else(err),
        "metadata.uid" => return meta.uid.clone().ok_or_else(err),
        _ => {}
    }
    let json = serde_json::to_value(ro).map_err(|_| err())?;
    let mut cur = &json;
    for part in path.split(['.', '[', ']']).filter(|p| !p.is_empty()) {
        cur = match cur {
            Value::Object(m) => m.get(part).ok_or_else(err)?,
            Value::Array(a) => a.get(part.parse::<usize>().map_err(|_| err())?).ok_or_else(err)?,
            Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => return Err(err()),
        };
    }
    match cur {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => Err(err()),
    }
}

#[cfg(test)]
#[path = "analysis_tests.rs"]
mod tests;
