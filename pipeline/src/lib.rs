//! gated, the station gate daemon, as a library: the binary, the tests and the benchmarks all drive
//! the same code. The modules follow a frame from camera to door:
//!
//! capture → normalise → recognise (the tick: detect → align → embed → match) → decide → drive
//!
//! with the gallery's `sync` from the centre, the station's `store` and `telemetry` beside the path;
//! `config` assembles every stage's settings from one file and `station` wires the stages and runs
//! the loop. `demo` is not on the daemon's path: only `gated demo` and the tests reach it.

pub mod capture;

pub mod normalise;

pub mod recognise;

pub mod decide;

pub mod drive;

pub mod sync;

pub mod store;

pub mod telemetry;

pub mod config;

pub mod station;

pub mod ctl;

pub(crate) mod table;

pub mod demo;
