//! `vigil serve` end to end, with real clients: the webhook over TLS (mTLS and bearer tokens),
//! kube-apiserver's own webhook backend (interop/k8s-webhook-client, when built), `logger` to
//! the syslog source, files followed across rotation, sinks that are down, and `kill -9` in the
//! middle of it all. Certificates are made at test time (rcgen). Loopback only.
//!
//! One test binary with a module per topic, so that these slow tests still run side by side;
//! `server` (certificates, ports, configurations, the process) and `events` (what is sent and
//! what is read back from the store) are what the topics share.

mod alerts;
mod config;
mod events;
mod files;
mod server;
mod syslog;
mod webhook;
