//! One file per command. A command imports the shared leaves (`args`, `plan`, `execute`, `decide`,
//! `documents`, `server`, `signal`, `exit`), never another command.

pub mod ab;
pub mod bench;
pub mod benchmark;
pub mod compare;
pub mod detect;
pub mod history;
pub mod optimize;
pub mod proxy;
pub mod report;
pub mod scenario;
pub mod selfcheck;
pub mod tune;
