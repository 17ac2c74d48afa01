#![allow(dead_code)]
pub mod cli;
pub mod e2e;
pub mod fixtures;
