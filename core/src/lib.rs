//! The pure core of Rollouts. See the crate README for the run-loop contract.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod time;
pub mod replicas;
