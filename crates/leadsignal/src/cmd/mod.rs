//! One module per command.

pub(crate) mod dataset;
pub(crate) mod demo;
pub(crate) mod doctor;
pub(crate) mod hash;
pub(crate) mod import;
pub(crate) mod preview;
pub(crate) mod sandbox;
pub(crate) mod send;
pub(crate) mod serve;
pub(crate) mod status;
pub(crate) mod sync;
pub(crate) mod validate;
