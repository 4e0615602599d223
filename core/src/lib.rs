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
//! 5. Several watch events that arrived together may be applied with
//!    [`rollout::observe`] and followed by a single [`rollout::reconcile`] (what `step`
//!    does for one event): the reconcile then sees the newest version of every object,
//!    not an intermediate one written by its own earlier actions.
//!
//! The core never reads a clock, the environment, files or randomness; maps are
//! `BTreeMap`s; identical inputs give byte-identical outputs. It never panics: an invalid
//! spec becomes an `InvalidSpec` condition naming the field.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod analysis;
pub mod api;
pub mod hash;
pub mod objects;
pub mod replicas;
pub mod rollout;
pub mod sim;
pub mod state;
pub mod time;

pub use rollout::{observe, reconcile, step};
pub use state::{Action, Event, Object, ObjectKind, State, WakeReason};
pub use time::Timestamp;
