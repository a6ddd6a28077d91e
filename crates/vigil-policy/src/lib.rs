//! Kubernetes audit policy with kube-apiserver's exact semantics. Pure: no I/O.

pub mod types;

pub use types::{GroupResources, Policy, PolicyRule};
