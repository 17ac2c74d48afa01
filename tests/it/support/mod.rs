pub(crate) mod app;
pub(crate) mod cli;
pub(crate) mod dr;
pub(crate) mod e2e;
pub(crate) mod fixtures;
pub(crate) mod spec;
