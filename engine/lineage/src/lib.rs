//! Lineage in the git repository: one commit per `gourd run` that ran or
//! restored anything, on `refs/gourd/lineage`, its tree holding one JSON
//! record per stage. The only crate that links `git2`.
//!
//! ```text
//! refs/gourd/lineage → commit ─ parent → commit ─ …
//!                        └─ tree
//!                           ├── run.json             what this run changed
//!                           └── stages/
//!                               ├── prepare.json     latest record of each stage
//!                               └── train.json
//! ```
//!
//! A workspace below the repository root keeps its records under its own
//! path (`sub/dir/stages/…`), so several workspaces can share one repository.
//! Writing lineage builds blobs, trees and commits in the object database and
//! moves only the lineage ref, with a compare-and-swap: the working tree, the
//! index, HEAD and every branch stay untouched, and two runs racing to record
//! (serialised by `.git/gourd-lineage.lock`, checked again by the CAS)
//! both land, one on top of the other.

mod record;
pub mod registry;
mod repo;

pub use record::{Record, RunInfo};
pub use repo::{
    GITIGNORE_BEGIN, GITIGNORE_END, Integration, Lineage, LineageCommit, LineageError, gitignore_begin,
    is_gitignore_begin,
};

/// The ref holding lineage.
pub const LINEAGE_REF: &str = "refs/gourd/lineage";
