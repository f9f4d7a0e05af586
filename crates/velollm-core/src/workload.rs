//! Layer 3, **workload**: what is sent and when. Imports only the layers below.
//!
//! * [`load`] — load profiles and seeded arrival schedules (constant, Poisson, gamma).
//! * [`trace`] — agent traces (one recorded model call per line) and their validation.

pub mod load;
pub mod trace;
