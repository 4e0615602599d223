//! The `argoproj.io/v1alpha1` API as Rollouts reads and writes it.

pub mod alb;
pub mod analysis;
pub mod experiment;
pub mod intstr;
pub mod keys;
pub mod lenient;
pub mod merge;
pub mod mesh;
pub mod parse;
pub mod proxies;
pub mod rollout;
pub mod status;
pub mod traffic;

pub use alb::*;
pub use analysis::*;
pub use experiment::*;
pub use intstr::IntOrString;
pub use mesh::*;
pub use parse::SpecError;
pub use proxies::*;
pub use rollout::*;
pub use status::*;
pub use traffic::*;
