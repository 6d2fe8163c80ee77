//! Where a table's objects live, relative to the root:
//!
//! ```text
//! <table>/_kappa/current.json             the pointer (compare-and-swap only)
//! <table>/_kappa/versions/v3.json         frozen definition of v3
//! <table>/v3/date=…/hour=…/part-….zstd.parquet
//! <table>/v3/_kappa_log/000…0007.json     Parquet-mode commit records
//! <table>/_dead_letters/v3/…              dead-lettered records, committed with the data
//! ```
//! Table names are validated (see [`crate::config::validate_table_name`]) and partition
//! values are formatted from integers, so no path built here escapes `<table>/`.

use object_store::path::Path;

/// Paths of one table.
#[derive(Debug, Clone)]
pub struct TableLayout {
    table: String,
}

impl TableLayout {
    /// The layout of `table` (a validated name).
    pub fn new(table: &str) -> Self {
        TableLayout {
            table: table.to_string(),
        }
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// `<table>/_kappa/current.json`
    pub fn pointer(&self) -> Path {
        Path::from_iter([self.table.as_str(), "_kappa", "current.json"])
    }

    /// `<table>/_kappa/versions/`
    pub fn versions_dir(&self) -> Path {
        Path::from_iter([self.table.as_str(), "_kappa", "versions"])
    }

    /// `<table>/_kappa/versions/v{n}.json`
    pub fn version_definition(&self, version: u32) -> Path {
        self.versions_dir().join(format!("v{version}.json"))
    }

    /// `<table>/_kappa/versions/v{n}.gaps.json`: the offset ranges a rebuild with
    /// `--allow-gap` built version `n` without.
    pub fn version_gaps(&self, version: u32) -> Path {
        self.versions_dir().join(format!("v{version}.gaps.json"))
    }

    /// `<table>/v{n}`
    pub fn version_dir(&self, version: u32) -> Path {
        Path::from_iter([self.table.clone(), format!("v{version}")])
    }

    /// `<table>/v{n}/_kappa_log`
    pub fn commit_log_dir(&self, version: u32) -> Path {
        self.version_dir(version).join("_kappa_log")
    }

    /// `<table>/v{n}/_kappa_archive/index.json`: a raw archive version's index (per file, the
    /// offsets of each Kafka partition it holds), saved by the rebuilds that read it.
    pub fn archive_index(&self, version: u32) -> Path {
        self.version_dir(version)
            .join("_kappa_archive")
            .join("index.json")
    }

    /// `<table>/v{n}/_kappa_writers`: one lease (with run metrics) per writer process.
    pub fn writers_dir(&self, version: u32) -> Path {
        self.version_dir(version).join("_kappa_writers")
    }

    /// A writer's lease and run metrics in version `version`.
    pub fn writer_lease(&self, version: u32, writer: &str) -> Path {
        self.writers_dir(version).join(format!("{writer}.json"))
    }

    /// `<table>/v{n}/_kappa_log/{seq:020}.json`
    pub fn commit_record(&self, version: u32, seq: u64) -> Path {
        self.commit_log_dir(version).join(format!("{seq:020}.json"))
    }

    /// `<table>/_dead_letters/v{n}`
    pub fn dead_letter_dir(&self, version: u32) -> Path {
        Path::from_iter([
            self.table.clone(),
            "_dead_letters".into(),
            format!("v{version}"),
        ])
    }

    /// Parses `v{n}.json` back into `n`.
    pub fn parse_version_file(name: &str) -> Option<u32> {
        name.strip_prefix('v')?.strip_suffix(".json")?.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let l = TableLayout::new("orders");
        assert_eq!(l.pointer().as_ref(), "orders/_kappa/current.json");
        assert_eq!(
            l.version_definition(3).as_ref(),
            "orders/_kappa/versions/v3.json"
        );
        assert_eq!(
            l.commit_record(3, 7).as_ref(),
            "orders/v3/_kappa_log/00000000000000000007.json"
        );
        assert_eq!(l.dead_letter_dir(2).as_ref(), "orders/_dead_letters/v2");
        assert_eq!(TableLayout::parse_version_file("v12.json"), Some(12));
        assert_eq!(TableLayout::parse_version_file("v12.tmp"), None);
    }
}
