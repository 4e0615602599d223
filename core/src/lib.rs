//! The pure core of Rollouts: Argo Rollouts' controller as a deterministic state machine.
//!
//! # The run-loop contract
//!
//! ```text
//! step(state, event, now) -> (state, actions)
//! ```
//!
//! The caller (the controller shell, the simulator, a test) owns the loop:
//!
//! 1. Feed every observation of the rollout's objects as [`Event::Applied`] /
//!    [`Event::Deleted`], and call with [`Event::Tick`] when a requested wake-up is due.
//! 2. Execute the returned [`Action`]s in order. They are idempotent intentions with
//!    deterministic names; executing one twice does no harm.
//! 3. Keep at most one timer: the latest [`Action::WakeAt`] replaces the previous one.
//! 4. When an action fails, send [`Event::ActionFailed`] and re-list the object.
//! 5. Several watch events that arrived together are stepped as one batch with
//!    [`step_batch`] (observe them all, reconcile once): the reconcile then sees the
//!    newest version of every object, not an intermediate one written by its own earlier
//!    actions.
//! 6. When the shell starts driving a rollout (a new process, a new leader), it sends
//!    [`Event::Resync`] after the objects it listed, so work in flight is taken up again.
//!
//! The core never reads a clock, the environment, files or randomness; maps are
//! `BTreeMap`s; identical inputs give byte-identical outputs. It never panics: an invalid
//! spec becomes an `InvalidSpec` condition naming the field.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
// No `_ =>` over an enum: a new variant (of ours, or of serde_json's `Value`) must make every
// match be looked at again. Modules matching another crate's open-ended enums opt out.
#![warn(clippy::wildcard_enum_match_arm)]

pub mod analysis;
pub mod api;
pub mod commands;
pub mod experiment;
pub mod hash;
pub mod objects;
pub mod replicas;
pub mod rollout;
pub mod secrets;
pub mod sim;
pub mod state;
pub mod time;
pub mod traffic;

pub use rollout::{observe, reconcile, step, step_batch};
pub use state::{Action, Event, Object, ObjectKind, State, WakeReason};
pub use time::Timestamp;
