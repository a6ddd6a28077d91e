pub mod bench;
pub mod policy;
pub mod simulate;
