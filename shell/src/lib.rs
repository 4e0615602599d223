//! The shell around the pure core: the controller (kube-rs watches in, actions out), the
//! kubectl-style CLI, CRD generation and the metric-provider clients.
//!
//! Everything here does I/O; every decision is the core's (`rollouts_core::rollout::step`).

pub mod charts;
pub mod cli;
pub mod providers;
pub mod controller;
pub mod crds;
pub mod dashboard;
pub mod kubeapi;
pub mod notifications;
