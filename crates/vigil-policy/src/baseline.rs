//! Vigil's recommended audit policy.
//!
//! [`BASELINE`] is a production-grade `audit.k8s.io/v1` Policy: the well-known GCE/GKE policy,
//! improved (health and metrics probes, routine control-plane traffic and events dropped;
//! RequestReceived omitted; secrets, configmaps and tokens at Metadata only; exec, attach,
//! port-forward, proxies and RBAC changes always recorded; managedFields stripped; a Metadata
//! catch-all). `vigil policy baseline` prints it; every rule is commented in the YAML.

/// The recommended policy, as YAML with comments.
pub const BASELINE: &str = include_str!("baseline.yaml");
