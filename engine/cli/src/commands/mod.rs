pub mod check;
pub mod dag;
pub mod eval;
pub mod explain;
pub mod init;
pub mod run;
pub mod status;
