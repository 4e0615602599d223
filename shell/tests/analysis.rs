//! Analysis end to end: the real controller measures metric providers that run on this
//! machine (each started by its test on 127.0.0.1 and stopped after), and a canary step's
//! analysis passes (the rollout finishes) or fails (it aborts).
//!
//! Each provider has its module; each test has its own namespace and controller, so they run
//! in parallel on one plane.

mod support;

use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);

#[path = "analysis/prometheus.rs"]
mod prometheus;

#[path = "analysis/analyze.rs"]
mod analyze;

#[path = "analysis/graphite.rs"]
mod graphite;

#[path = "analysis/cloudwatch.rs"]
mod cloudwatch;
