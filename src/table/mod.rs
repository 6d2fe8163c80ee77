//! One table's persistent state: its layout, its frozen version definitions and the
//! `current` pointer.

pub mod layout;
pub mod plan;
pub mod pointer;
pub mod schema_check;
pub mod version;

pub use layout::TableLayout;
pub use pointer::Pointer;
pub use version::{Definition, VersionDefinition, VersionState};
