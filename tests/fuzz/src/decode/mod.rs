//! `src/decode` of kappa-lake (the parts that decode; not the dead-letter writer), compiled
//! from its own files.

#[path = "../../../../src/decode/avro.rs"]
pub mod avro;
#[path = "../../../../src/decode/fast_json.rs"]
pub mod fast_json;
#[path = "../../../../src/decode/json.rs"]
pub mod json;
#[path = "../../../../src/decode/record.rs"]
pub mod record;
#[path = "../../../../src/decode/stage.rs"]
pub mod stage;

pub use stage::Stage;
