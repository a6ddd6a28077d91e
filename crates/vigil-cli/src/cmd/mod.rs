pub mod bench;
pub mod detect;
pub mod policy;
pub mod rules;
pub mod serve;
pub mod simulate;
pub mod store;
