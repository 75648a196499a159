//! One module per command.

pub mod demo;
pub mod hash;
pub mod import;
pub mod preview;
pub mod sandbox;
pub mod send;
pub mod serve;
pub mod status;
pub mod sync;
pub mod validate;
