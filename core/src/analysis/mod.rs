//! Analysis: AnalysisRuns measured, judged and summarised exactly by Argo's rules.
//!
//! - [`condition`]: `successCondition` / `failureCondition` in Argo's expression language.
//! - [`args`]: templates merged, arguments merged, `{{args.*}}` placeholders resolved.
//! - [`validate`]: metric validation with Argo's messages.
//! - [`run`]: the AnalysisRun machine: when each metric is measured, measurement
//!   bookkeeping, metric and run phases.
//!
//! Measuring is I/O, so the core only asks for it: [`run::reconcile_run`] returns the
//! measurements to start, the shell (or the simulator) takes them, and the answer comes
//! back through [`run::record_answer`].

pub mod args;
pub mod condition;
pub mod run;
pub mod validate;
