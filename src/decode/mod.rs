//! Decoding raw records into Arrow, and the dead-letter path for records that do not decode.

pub mod dead_letter;
pub mod json;

pub use dead_letter::{DeadLetter, DeadLetterBuffer, Stage};
pub use json::JsonDecoder;
