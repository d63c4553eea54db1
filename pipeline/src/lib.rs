//! gated, the station gate daemon, as a library: the binary, the tests and the benchmarks all drive
//! the same code. Modules follow the data path: capture → normalise → (detect → align → embed → match,
//! in the engine) → decide → drive; plus the station loop, config, store and telemetry around it.

pub mod capture;
pub mod config;
pub mod ctl;
pub mod decide;
pub mod decisions;
pub mod demo;
pub mod drive;
pub mod drivers;
pub mod gpu_stage;
pub mod normalise;
pub mod recognise;
pub mod station;
pub mod store;
pub mod sync;
pub mod telemetry;
