//! End-to-end tests: the real binary, real files, real DuckDB.

mod archive;
mod avro;
mod bad_config;
mod broker;
mod chaos;
mod crash;
mod dead_letters;
mod delta;
mod demo;
mod deploy;
mod evolve;
mod faults;
mod fixture;
mod gc;
mod kafka;
mod kafka_support;
mod layering;
mod maintenance;
mod ops;
mod promote_race;
mod rebuild;
mod security;
mod shard;
mod stores;
mod support;
mod transform;
