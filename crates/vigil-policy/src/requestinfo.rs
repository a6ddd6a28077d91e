//! What kube-apiserver reads from a request line before authorization and auditing: a port of
//! `k8s.io/apiserver/pkg/endpoints/request` `RequestInfoFactory.NewRequestInfo`, with the
//! apiserver's default configuration (API prefixes `api` and `apis`, `api` without a group).
//!
//! URL forms it understands:
//! - `/api/{version}/{resource}[/{name}[/{subresource}[/...]]]`
//! - `/apis/{group}/{version}/...` likewise
//! - `.../namespaces/{namespace}/{resource}/...`; `.../namespaces/{ns}` is the Namespace object
//!   itself (and its namespace is `{ns}`), as are `.../namespaces/{ns}/status|finalize`
//! - `/{prefix}/.../{version}/watch/...` and `.../proxy/...`: verbs given by the path (legacy)
//!
//! Anything else (fewer segments, another prefix) is a non-resource request.

use crate::selectors::{list_info, parse_query, unescape};

/// The parsed request line, field for field as the apiserver's `RequestInfo`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RequestInfo {
    pub is_resource_request: bool,
    /// The decoded path, without the query.
    pub path: String,
    /// The Kubernetes verb for resource requests, else the lower-cased HTTP method.
    pub verb: String,
    pub api_prefix: String,
    pub api_group: String,
    pub api_version: String,
    pub namespace: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
    /// The path segments from the resource on (after any namespace), uninterpreted.
    pub parts: Vec<String>,
}

/// Why a request line has no request info. The apiserver answers such requests with an error
/// before auditing them.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RequestInfoError {
    /// Not a request-target net/http accepts: a control character or a bad `%` escape.
    #[error("invalid request URI {uri:?}: {reason}")]
    InvalidUri { uri: String, reason: &'static str },
    /// `/api/v1/watch` or `/api/v1/proxy` with nothing after the verb.
    #[error("unable to determine kind and namespace from url {uri}")]
    NoResource {
        uri: String,
        /// What was known when parsing stopped.
        partial: Box<RequestInfo>,
    },
}

/// Parses a request; never fails. Where the apiserver would return an error, this returns what
/// it knew at that point (the apiserver's behaviour too); an undecodable path is kept raw.
pub fn parse_request_info(method: &str, uri: &str) -> RequestInfo {
    match try_parse_request_info(method, uri) {
        Ok(info) => info,
        Err(RequestInfoError::NoResource { partial, .. }) => *partial,
        Err(RequestInfoError::InvalidUri { .. }) => {
            let (path, query) = split_uri(uri);
            resolve(method, path.to_string(), query).0
        }
    }
}

/// Parses a request, with the apiserver's errors.
pub fn try_parse_request_info(method: &str, uri: &str) -> Result<RequestInfo, RequestInfoError> {
    if uri.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(RequestInfoError::InvalidUri {
            uri: uri.to_string(),
            reason: "control character in URL",
        });
    }
    let (raw_path, query) = split_uri(uri);
    let path = unescape(raw_path, false).ok_or_else(|| RequestInfoError::InvalidUri {
        uri: uri.to_string(),
        reason: "malformed %-escape in path",
    })?;
    match resolve(method, path, query) {
        (info, false) => Ok(info),
        (partial, true) => Err(RequestInfoError::NoResource {
            uri: uri.to_string(),
            partial: Box::new(partial),
        }),
    }
}

/// Splits a request-target into the raw path and raw query. An absolute-form target
/// (`http://host/path`) contributes only its path, as net/http's parsing does.
fn split_uri(uri: &str) -> (&str, &str) {
    let (mut path, query) = uri.split_once('?').unwrap_or((uri, ""));
    if let Some(i) = scheme_len(path) {
        let rest = &path[i + 1..];
        path = match rest.strip_prefix("//") {
            Some(auth_and_path) => auth_and_path.find('/').map_or("", |j| &auth_and_path[j..]),
            None => "", // opaque ("mailto:x"): no path
        };
    }
    (path, query)
}

/// Length of a URL scheme (`[A-Za-z][A-Za-z0-9+.-]*` before a `:`), if the target has one.
fn scheme_len(s: &str) -> Option<usize> {
    for (i, c) in s.char_indices() {
        match c {
            'a'..='z' | 'A'..='Z' => {}
            '0'..='9' | '+' | '-' | '.' if i > 0 => {}
            ':' if i > 0 => return Some(i),
            _ => return None,
        }
    }
    None
}

/// The request info, and whether parsing stopped at a path verb with nothing after it.
fn resolve(method: &str, path: String, raw_query: &str) -> (RequestInfo, bool) {
    let verb = method.to_lowercase();
    let mut info = RequestInfo {
        path,
        verb,
        ..RequestInfo::default()
    };
    // Leading and trailing slashes are dropped; empty segments inside are kept.
    let trimmed = info.path.trim_matches('/');
    let segments: Vec<String> = if trimmed.is_empty() {
        Vec::new()
    } else {
        trimmed.split('/').map(str::to_string).collect()
    };
    if segments.len() < 3 || !matches!(segments[0].as_str(), "api" | "apis") {
        return (info, false);
    }
    info.api_prefix = segments[0].clone();
    let mut parts = &segments[1..];
    if info.api_prefix != "api" {
        // A group is needed too: /apis/{group}/{version}/{resource} at the least.
        // (The prefix stays set on such a non-resource request, as upstream.)
        if parts.len() < 3 {
            return (info, false);
        }
        info.api_group = parts[0].clone();
        parts = &parts[1..];
    }
    info.is_resource_request = true;
    info.api_version = parts[0].clone();
    parts = &parts[1..];

    let verb_via_path = matches!(parts[0].as_str(), "proxy" | "watch");
    if verb_via_path {
        if parts.len() < 2 {
            return (info, true);
        }
        info.verb = parts[0].clone();
        parts = &parts[1..];
    } else {
        info.verb = match method {
            "POST" => "create",
            "GET" | "HEAD" => "get",
            "PUT" => "update",
            "PATCH" => "patch",
            "DELETE" => "delete",
            _ => "",
        }
        .to_string();
    }

    // /namespaces/{ns} alone is the Namespace object, whose namespace is itself.
    if parts[0] == "namespaces" && parts.len() > 1 {
        info.namespace = parts[1].clone();
        // /namespaces/{ns}/{resource}/...: a namespaced resource, unless the next segment is
        // one of the Namespace object's own subresources.
        if parts.len() > 2 && !matches!(parts[2].as_str(), "status" | "finalize") {
            parts = &parts[2..];
        }
    }
    info.parts = parts.to_vec();

    // resource/name/subresource/anything/else; proxy takes no subresource.
    if info.parts.len() >= 3 && info.verb != "proxy" {
        info.subresource = info.parts[2].clone();
    }
    if info.parts.len() >= 2 {
        info.name = info.parts[1].clone();
    }
    if !info.parts.is_empty() {
        info.resource = info.parts[0].clone();
    }

    // A GET without a name is a list or a watch, and a field selector can name the object.
    if info.name.is_empty() && info.verb == "get" {
        let list = list_info(&parse_query(raw_query));
        info.verb = if list.watch { "watch" } else { "list" }.to_string();
        if let Some(name) = list.name {
            info.name = name;
        }
    }
    if info.name.is_empty() && info.verb == "delete" {
        info.verb = "deletecollection".to_string();
    }
    (info, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_splitting() {
        assert_eq!(split_uri("/a/b?x=1"), ("/a/b", "x=1"));
        assert_eq!(
            split_uri("https://h:6443/api/v1/pods?w"),
            ("/api/v1/pods", "w")
        );
        assert_eq!(split_uri("//x/y"), ("//x/y", ""));
        assert_eq!(split_uri("mailto:x"), ("", ""));
    }

    #[test]
    fn errors() {
        assert!(matches!(
            try_parse_request_info("GET", "/api/v1/watch"),
            Err(RequestInfoError::NoResource { .. })
        ));
        assert!(matches!(
            try_parse_request_info("GET", "/api/v1/pods/%zz"),
            Err(RequestInfoError::InvalidUri { .. })
        ));
        let partial = parse_request_info("GET", "/apis/apps/v1/proxy");
        assert!(partial.is_resource_request);
        assert_eq!(partial.verb, "get");
        assert_eq!(partial.api_group, "apps");
    }
}
