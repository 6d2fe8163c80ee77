//! Writing a version: Parquet files (which only *write* bytes) and the commit log (which makes
//! them visible together with the source offsets they cover).

pub mod commit;
pub mod lease;
pub mod parquet;

pub use commit::{CommitLog, FileEntry, PendingCommit, SourcePosition};
pub use parquet::PartitionedWriter;
