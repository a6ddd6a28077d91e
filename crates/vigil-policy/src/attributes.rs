//! What the policy checker sees of a request (the apiserver's `authorizer.Attributes`), and how
//! to rebuild it from an audit event after the fact.

use vigil_model::Event;

use crate::requestinfo::parse_request_info;

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
}

/// A request as the policy checker sees it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Attributes {
    /// `None` when authentication failed: such a request matches no users/userGroups rule.
    pub user: Option<User>,
    pub verb: String,
    pub namespace: String,
    pub api_group: String,
    pub api_version: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
    pub resource_request: bool,
    /// The decoded request path, without the query.
    pub path: String,
}

/// The HTTP method that produces an audit verb, for re-parsing a request URI.
fn method_for_verb(verb: &str) -> String {
    match verb {
        "get" | "list" | "watch" => "GET".into(),
        "create" => "POST".into(),
        "update" => "PUT".into(),
        "patch" => "PATCH".into(),
        "delete" | "deletecollection" => "DELETE".into(),
        other => other.to_uppercase(),
    }
}

impl Attributes {
    /// The attributes the apiserver evaluated its policy on when it produced `ev`.
    ///
    /// - The user is the authenticated one (the impersonator, never `impersonatedUser`): the
    ///   policy runs before impersonation. An empty user (`{}`) means failed authentication.
    /// - A request is a resource request iff it has an `objectRef`, or (for events without one)
    ///   its URI parses as a resource request.
    /// - Name and namespace come from the URI when it parses as a resource request: the
    ///   apiserver fills `objectRef.name`/`namespace` in from the request body later (e.g. on
    ///   create), after the policy was evaluated on the URL's values.
    pub fn from_event(ev: &Event) -> Attributes {
        let u = &ev.user;
        let user = (!u.username.is_empty()
            || !u.uid.is_empty()
            || !u.groups.is_empty()
            || !u.extra.is_empty())
        .then(|| User {
            name: u.username.clone(),
            groups: u.groups.clone(),
        });
        let info = parse_request_info(&method_for_verb(&ev.verb), &ev.request_uri);
        let mut attrs = Attributes {
            user,
            verb: ev.verb.clone(),
            path: info.path.clone(),
            ..Attributes::default()
        };
        match &ev.object_ref {
            Some(r) => {
                attrs.resource_request = true;
                attrs.api_group = r.api_group.clone();
                attrs.api_version = r.api_version.clone();
                attrs.resource = r.resource.clone();
                attrs.subresource = r.subresource.clone();
                if info.is_resource_request {
                    attrs.namespace = info.namespace;
                    attrs.name = info.name;
                } else {
                    attrs.namespace = r.namespace.clone();
                    attrs.name = r.name.clone();
                }
            }
            None if info.is_resource_request => {
                attrs.resource_request = true;
                attrs.api_group = info.api_group;
                attrs.api_version = info.api_version;
                attrs.resource = info.resource;
                attrs.subresource = info.subresource;
                attrs.namespace = info.namespace;
                attrs.name = info.name;
            }
            None => {}
        }
        attrs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: &str) -> Event {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn create_uses_the_url_name_not_the_body_name() {
        let ev = event(
            r#"{"verb":"create","requestURI":"/api/v1/namespaces/ns/pods",
                "user":{"username":"alice","groups":["dev"]},
                "impersonatedUser":{"username":"bob"},
                "objectRef":{"resource":"pods","namespace":"ns","name":"from-body","apiVersion":"v1"}}"#,
        );
        let a = Attributes::from_event(&ev);
        assert_eq!(a.user.as_ref().unwrap().name, "alice");
        assert_eq!(a.name, "");
        assert_eq!(a.namespace, "ns");
        assert!(a.resource_request);
        assert_eq!(a.path, "/api/v1/namespaces/ns/pods");
    }

    #[test]
    fn failed_authentication_has_no_user() {
        let ev = event(r#"{"verb":"get","requestURI":"/healthz?verbose","user":{}}"#);
        let a = Attributes::from_event(&ev);
        assert_eq!(a.user, None);
        assert!(!a.resource_request);
        assert_eq!(a.path, "/healthz");
    }

    #[test]
    fn resource_url_without_object_ref() {
        let ev = event(
            r#"{"verb":"watch","requestURI":"/apis/apps/v1/namespaces/x/deployments?watch=1&fieldSelector=metadata.name%3Dweb","user":{"username":"u"}}"#,
        );
        let a = Attributes::from_event(&ev);
        assert!(a.resource_request);
        assert_eq!(
            (
                a.api_group.as_str(),
                a.api_version.as_str(),
                a.resource.as_str()
            ),
            ("apps", "v1", "deployments")
        );
        assert_eq!((a.namespace.as_str(), a.name.as_str()), ("x", "web"));
        assert_eq!(a.verb, "watch");
    }
}
