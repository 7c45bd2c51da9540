//! gourd-lineage's tests against its public API, on real git repositories
//! in temporary folders: one binary (each test binary is linked again for
//! every mutant cargo-mutants tries), one module per subject.

mod common;

mod lineage;
mod record;
mod registry;
mod state;
mod tag;
mod time;
