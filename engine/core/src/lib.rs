//! The gourd engine: the pipeline model, its graph, stage keys, staleness, the
//! content-addressed store, and the scheduler that runs stages.
//!
//! The engine never prints and never parses command-line flags: it reports
//! what happens through [`run::Event`]s and returns typed results, and the
//! CLI decides how to show them.

pub mod changes;
pub mod fsutil;
pub mod gate;
pub mod gpu;
pub mod graph;
pub mod guard;
pub mod hash;
pub mod journal;
pub mod key;
pub mod lock;
pub mod metrics;
pub mod model;
pub mod orphans;
pub mod path;
pub mod plan;
pub mod remote;
pub mod run;
pub mod secrets;
pub mod store;
pub mod suggest;
pub mod time;
pub mod workspace;

mod exec;
#[cfg(test)]
mod testing;
