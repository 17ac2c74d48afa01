//! The plan: built by the pure core (`skyplan_core::plan`, re-exported here); this module adds
//! writing plan files.

pub(crate) mod saved;

pub use skyplan_core::plan::*;
pub use skyplan_core::plan::{action, diff, drift, graph, render};
