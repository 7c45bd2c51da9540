//! The engine's own tests, against its public API: one binary (each test
//! binary is linked again for every mutant cargo-mutants tries), one module
//! per subject.

#[path = "../common/mod.rs"]
mod common;

mod changes;
mod fsutil;
mod gate;
mod graph;
mod guard;
mod hash;
mod journal;
mod key;
mod model;
mod orphans;
mod path;
mod plan;
mod scheduler;
mod scheduler_remote;
mod time;
mod workspace;
