//! Integration tests: the real `dualsync` binary on real SQLite files, each
//! test in its own temporary folder.

mod util;

mod serve;
mod sync;
