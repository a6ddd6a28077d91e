//! Vigil's data model. Pure: no I/O, no async.
//!
//! - [`alert`]: the alert every detection reports (a contract).
//! - [`audit`]: the Kubernetes audit `Event` and `EventList` (`audit.k8s.io/v1`).
//! - [`decode`]: turning bytes (a JSON line, an EventList document) into events, with errors that
//!   name the line and field.
//! - [`time`](crate::time): `MicroTime`.
//! - [`yaml`]: a YAML tree with positions, for loaders whose errors must name the line.

pub mod alert;
pub mod audit;
pub mod decode;
pub mod time;
pub mod yaml;

pub use audit::{Event, EventList, Level, ObjectReference, Stage, UserInfo};
pub use time::MicroTime;
