//! The stages of the data path a record can fail in. (Its own file: the fuzz targets in
//! `tests/fuzz` build the decoders from their sources without the rest of the crate.)

use serde::Serialize;

/// The stage of the data path a record failed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Reading the record (too large, not UTF-8, empty).
    Read,
    /// Decoding it against the schema.
    Decode,
    /// Finding its event time.
    EventTime,
    /// Evaluating the version's SQL transform on it.
    Transform,
}

impl Stage {
    /// The stage's name, as in dead-letter files and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Read => "read",
            Stage::Decode => "decode",
            Stage::EventTime => "event_time",
            Stage::Transform => "transform",
        }
    }
}
