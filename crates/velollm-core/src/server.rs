//! Layer 3, **server and machine**: what was observed of the server under test and of the machine it runs
//! on, and the settings recommended for them. Imports only the layers below.
//!
//! * [`launch`] — the server report: launch, cold start, health events, Prometheus metrics per step.
//! * [`resources`] — the server's resource timeline (RSS, CPU, GPU) and its summary.
//! * [`hardware`] — the machine as `velollm detect` reports it.
//! * [`gguf`] — a model file's header, read without loading the weights.
//! * [`optimize`] — the settings recommended for a machine and a model (`velollm optimize`).

pub mod gguf;
pub mod hardware;
pub mod launch;
pub mod optimize;
pub mod resources;
