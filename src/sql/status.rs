//! The parsing of what the `sky.*` procedures return lives in the core (pure, tested there);
//! re-exported here, where the SQL layer reads the rows.

pub use skyplan_core::status::*;
