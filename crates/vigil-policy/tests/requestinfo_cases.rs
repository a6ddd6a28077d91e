//! The request-info parser against kube-apiserver's own tests
//! (`k8s.io/apiserver/pkg/endpoints/request/requestinfo_test.go`), as tables, plus the corners
//! the audit policy depends on.

use vigil_policy::{parse_request_info, try_parse_request_info, RequestInfo, RequestInfoError};

/// (method, url, verb, apiPrefix, apiGroup, apiVersion, namespace, resource, subresource, name,
/// parts). Upstream's table also lists a prefix but never checks it (and says "api" for
/// `/apis/...` URLs); here it is the real one and is checked.
type Row = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
);

/// `TestGetAPIRequestInfo` success cases.
#[rustfmt::skip]
const UPSTREAM_SUCCESS: &[Row] = &[
    // resource paths
    ("GET", "/api/v1/namespaces", "list", "api", "", "v1", "", "namespaces", "", "", &["namespaces"]),
    ("GET", "/api/v1/namespaces/other", "get", "api", "", "v1", "other", "namespaces", "", "other", &["namespaces", "other"]),
    ("GET", "/api/v1/namespaces/other/pods", "list", "api", "", "v1", "other", "pods", "", "", &["pods"]),
    ("GET", "/api/v1/namespaces/other/pods/foo", "get", "api", "", "v1", "other", "pods", "", "foo", &["pods", "foo"]),
    ("HEAD", "/api/v1/namespaces/other/pods/foo", "get", "api", "", "v1", "other", "pods", "", "foo", &["pods", "foo"]),
    ("GET", "/api/v1/pods", "list", "api", "", "v1", "", "pods", "", "", &["pods"]),
    ("HEAD", "/api/v1/pods", "list", "api", "", "v1", "", "pods", "", "", &["pods"]),
    ("GET", "/api/v1/namespaces/other/pods/foo", "get", "api", "", "v1", "other", "pods", "", "foo", &["pods", "foo"]),
    ("GET", "/api/v1/namespaces/other/pods", "list", "api", "", "v1", "other", "pods", "", "", &["pods"]),
    // special verbs
    ("GET", "/api/v1/proxy/namespaces/other/pods/foo", "proxy", "api", "", "v1", "other", "pods", "", "foo", &["pods", "foo"]),
    ("GET", "/api/v1/proxy/namespaces/other/pods/foo/subpath/not/a/subresource", "proxy", "api", "", "v1", "other", "pods", "", "foo", &["pods", "foo", "subpath", "not", "a", "subresource"]),
    ("GET", "/api/v1/watch/pods", "watch", "api", "", "v1", "", "pods", "", "", &["pods"]),
    ("GET", "/api/v1/pods?watch=true", "watch", "api", "", "v1", "", "pods", "", "", &["pods"]),
    ("GET", "/api/v1/pods?watch=false", "list", "api", "", "v1", "", "pods", "", "", &["pods"]),
    ("GET", "/api/v1/watch/namespaces/other/pods", "watch", "api", "", "v1", "other", "pods", "", "", &["pods"]),
    ("GET", "/api/v1/namespaces/other/pods?watch=1", "watch", "api", "", "v1", "other", "pods", "", "", &["pods"]),
    ("GET", "/api/v1/namespaces/other/pods?watch=0", "list", "api", "", "v1", "other", "pods", "", "", &["pods"]),
    // subresource identification
    ("GET", "/api/v1/namespaces/other/pods/foo/status", "get", "api", "", "v1", "other", "pods", "status", "foo", &["pods", "foo", "status"]),
    ("GET", "/api/v1/namespaces/other/pods/foo/proxy/subpath", "get", "api", "", "v1", "other", "pods", "proxy", "foo", &["pods", "foo", "proxy", "subpath"]),
    ("PUT", "/api/v1/namespaces/other/finalize", "update", "api", "", "v1", "other", "namespaces", "finalize", "other", &["namespaces", "other", "finalize"]),
    ("PUT", "/api/v1/namespaces/other/status", "update", "api", "", "v1", "other", "namespaces", "status", "other", &["namespaces", "other", "status"]),
    // verb identification
    ("PATCH", "/api/v1/namespaces/other/pods/foo", "patch", "api", "", "v1", "other", "pods", "", "foo", &["pods", "foo"]),
    ("DELETE", "/api/v1/namespaces/other/pods/foo", "delete", "api", "", "v1", "other", "pods", "", "foo", &["pods", "foo"]),
    ("POST", "/api/v1/namespaces/other/pods", "create", "api", "", "v1", "other", "pods", "", "", &["pods"]),
    // deletecollection verb identification
    ("DELETE", "/api/v1/nodes", "deletecollection", "api", "", "v1", "", "nodes", "", "", &["nodes"]),
    ("DELETE", "/api/v1/namespaces", "deletecollection", "api", "", "v1", "", "namespaces", "", "", &["namespaces"]),
    ("DELETE", "/api/v1/namespaces/other/pods", "deletecollection", "api", "", "v1", "other", "pods", "", "", &["pods"]),
    ("DELETE", "/apis/extensions/v1/namespaces/other/pods", "deletecollection", "apis", "extensions", "v1", "other", "pods", "", "", &["pods"]),
    // api group identification
    ("POST", "/apis/extensions/v1/namespaces/other/pods", "create", "apis", "extensions", "v1", "other", "pods", "", "", &["pods"]),
    // api version identification
    ("POST", "/apis/extensions/v1beta3/namespaces/other/pods", "create", "apis", "extensions", "v1beta3", "other", "pods", "", "", &["pods"]),
];

/// Corners the upstream table does not cover (each checked against the real parser by the
/// differential test too).
#[rustfmt::skip]
const EXTRA: &[Row] = &[
    // A method the parser does not know gives no verb; methods are case-sensitive.
    ("OPTIONS", "/api/v1/pods", "", "api", "", "v1", "", "pods", "", "", &["pods"]),
    ("get", "/api/v1/pods/x", "", "api", "", "v1", "", "pods", "", "x", &["pods", "x"]),
    // Namespace subresources vs namespaced resources named status/finalize.
    ("GET", "/api/v1/namespaces/status", "get", "api", "", "v1", "status", "namespaces", "", "status", &["namespaces", "status"]),
    ("GET", "/api/v1/namespaces/x/status/y", "get", "api", "", "v1", "x", "namespaces", "status", "x", &["namespaces", "x", "status", "y"]),
    ("GET", "/api/v1/namespaces/x/foo/y/z", "get", "api", "", "v1", "x", "foo", "z", "y", &["foo", "y", "z"]),
    // Decoding: %2F becomes a separator, '+' stays; slashes are trimmed, empty segments kept.
    ("GET", "/api/v1/namespaces/a%2Fb/pods", "get", "api", "", "v1", "a", "b", "", "pods", &["b", "pods"]),
    ("GET", "//api/v1/pods/c+d/", "get", "api", "", "v1", "", "pods", "", "c+d", &["pods", "c+d"]),
    ("GET", "/api//v1/pods", "get", "api", "", "", "", "v1", "", "pods", &["v1", "pods"]),
    // A field selector on metadata.name names a list or watch.
    ("GET", "/api/v1/pods?fieldSelector=metadata.name%3Dweb&watch=true", "watch", "api", "", "v1", "", "pods", "", "web", &["pods"]),
    ("GET", "/api/v1/pods?fieldSelector=metadata.name=web&labelSelector=a%3D%3Db%3Dc", "list", "api", "", "v1", "", "pods", "", "", &["pods"]),
    ("GET", "/api/v1/pods?fieldSelector=metadata.name=web&limit=ten&watch=yes", "watch", "api", "", "v1", "", "pods", "", "", &["pods"]),
    ("GET", "/api/v1/pods?fieldSelector=metadata.name=a%2Fb", "list", "api", "", "v1", "", "pods", "", "", &["pods"]),
    ("GET", "/api/v1/pods?watch", "watch", "api", "", "v1", "", "pods", "", "", &["pods"]),
    ("GET", "/api/v1/pods?watch=FALSE", "list", "api", "", "v1", "", "pods", "", "", &["pods"]),
    // Only a GET reads the field selector: a DELETE without a name stays a deletecollection.
    ("DELETE", "/api/v1/pods?fieldSelector=metadata.name=x", "deletecollection", "api", "", "v1", "", "pods", "", "", &["pods"]),
    // Groups need four segments.
    ("GET", "/apis/apps/v1", "get", "apis", "", "", "", "", "", "", &[]),
];

fn check(rows: &[Row]) {
    for &(method, url, verb, prefix, group, version, ns, resource, sub, name, parts) in rows {
        let info = parse_request_info(method, url);
        let got = (
            info.verb.as_str(),
            info.api_prefix.as_str(),
            info.api_group.as_str(),
            info.api_version.as_str(),
            info.namespace.as_str(),
            info.resource.as_str(),
            info.subresource.as_str(),
            info.name.as_str(),
        );
        assert_eq!(
            got,
            (verb, prefix, group, version, ns, resource, sub, name),
            "{method} {url}"
        );
        assert_eq!(info.parts, parts, "{method} {url}");
        let resource_request = !(version.is_empty() && resource.is_empty());
        assert_eq!(info.is_resource_request, resource_request, "{method} {url}");
    }
}

#[test]
fn upstream_success_cases() {
    check(UPSTREAM_SUCCESS);
}

#[test]
fn extra_cases() {
    check(EXTRA);
}

/// `TestGetAPIRequestInfo` error cases and `TestGetNonAPIRequestInfo`: resource or not.
#[test]
fn upstream_resource_or_not() {
    #[rustfmt::skip]
    let cases = [
        ("/", false),
        ("/api/version/", false),
        ("/apis/group/version/", false),
        ("/badprefix/version/resource", false),
        ("/apis/version/resource", false),
        ("/api/version/resource", true),
        ("/apis/group/version/resource/name/subresource", true),
        ("/api/version/resource/name/subresource", true),
        ("/apis/batch/v1/job", true),
        ("/apis/batch/v1/job/foo", true),
        ("/apis/batch/v1/job/foo/scale", true),
        ("/not-api/version/resource", false),
        ("/apis/extensions/v1beta1", false),
        ("/apis/extensions/v1beta1/", false),
        ("/api/version", false),
        ("/api", false),
        ("", false),
    ];
    for (url, resource) in cases {
        let info = try_parse_request_info("GET", url).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(info.is_resource_request, resource, "{url}");
        if !resource {
            // A non-resource request keeps the lower-cased method as its verb.
            assert_eq!(info.verb, "get", "{url}");
        }
    }
}

/// `TestSelectorParsing`: (method, url, name, verb).
#[test]
fn upstream_selector_parsing() {
    #[rustfmt::skip]
    let cases = [
        ("GET", "/apis/group/version/resource", "", "list"),
        ("GET", "/apis/group/version/resource?fieldSelector=metadata.name=name1", "name1", "list"),
        ("GET", "/apis/group/version/resource?watch=true&fieldSelector=metadata.name=name1", "name1", "watch"),
        ("GET", "/apis/group/version/resource?fieldSelector=foo=bar&labelSelector=baz=qux", "", "list"),
        ("GET", "/apis/group/version/resource?fieldSelector=metadata.name=name1,foo", "", "list"),
        ("GET", "/apis/group/version/resource?fieldSelector=metadata.name=name1,foo&watch=true", "", "watch"),
        ("GET", "/apis/group/version/resource?fieldSelector=metadata.name=name1,foo&watch=false", "", "list"),
        ("DELETE", "/apis/group/version/resource?fieldSelector=foo=bar&labelSelector=baz=qux", "", "deletecollection"),
        ("GET", "/apis/group/version/resource?fieldSelector=metadata.name=foo&fieldSelector=metadata.name=bar&labelSelector=foo=bar&labelSelector=foo=baz", "foo", "list"),
        ("GET", "/apis/group/version/resource/name?fieldSelector=foo=bar&labelSelector=foo=bar", "name", "get"),
        ("GET", "/apis/group/version/watch/resource?fieldSelector=metadata.name=foo&labelSelector=foo=bar", "", "watch"),
        ("GET", "/apis/group/version/watch/resource/name?fieldSelector=metadata.name=foo&labelSelector=foo=bar", "name", "watch"),
    ];
    for (method, url, name, verb) in cases {
        let info = parse_request_info(method, url);
        assert_eq!(
            (info.name.as_str(), info.verb.as_str()),
            (name, verb),
            "{method} {url}"
        );
    }
}

#[test]
fn errors_keep_what_was_known() {
    for url in ["/api/v1/watch", "/api/v1/proxy/", "/apis/apps/v1/watch"] {
        match try_parse_request_info("GET", url) {
            Err(RequestInfoError::NoResource { partial, .. }) => {
                assert!(partial.is_resource_request, "{url}");
                assert_eq!(partial.verb, "get", "{url}");
                assert_eq!(*partial, parse_request_info("GET", url), "{url}");
            }
            other => panic!("{url}: {other:?}"),
        }
    }
    for url in ["/api/v1/pods/%zz", "/api/v1/pods/%4", "/api/v1/po\nds"] {
        assert!(
            matches!(
                try_parse_request_info("GET", url),
                Err(RequestInfoError::InvalidUri { .. })
            ),
            "{url}"
        );
    }
    // Still a best effort without the decoding.
    let info = parse_request_info("GET", "/api/v1/namespaces/x/pods/%zz");
    assert_eq!((info.namespace.as_str(), info.name.as_str()), ("x", "%zz"));
    assert_eq!(
        parse_request_info("GET", ""),
        RequestInfo {
            verb: "get".into(),
            ..RequestInfo::default()
        }
    );
}
