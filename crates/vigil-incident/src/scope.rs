//! Scope: for each entity of an incident, what it touched — secrets read; objects created,
//! changed or deleted; exec sessions; RBAC changes; other identities seen from the same
//! addresses; hosts reached.
//!
//! Pure: it reads already-loaded events ([`Ev`]), normally the incident's timeline plus every
//! event from the addresses its identities used (so that other identities show up).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use crate::model::{Entity, EntityKind, Incident};

/// One stored event or alert, as the incident commands use it.
#[derive(Debug, Clone)]
pub struct Ev {
    /// Store location (`vigil_store::Reader::get`).
    pub loc: u64,
    pub partition: String,
    pub seq: u64,
    /// Event time, microseconds since the epoch.
    pub time: i64,
    pub received: i64,
    pub source: String,
    pub dataset: String,
    pub alert: bool,
    /// The event as received (JSON when it is JSON, else the text).
    pub raw: Value,
    /// The normalized document.
    pub doc: Value,
}

impl Ev {
    pub fn from_stored(e: &vigil_store::StoredEvent) -> Ev {
        Ev {
            loc: e.loc,
            partition: e.partition.clone(),
            seq: e.seq,
            time: e.record.event_time,
            received: e.record.received,
            source: e.record.source.clone(),
            dataset: e.dataset.clone(),
            alert: e.is_alert(),
            raw: e.original(),
            doc: e.doc.clone(),
        }
    }

    pub fn time_rfc3339(&self) -> String {
        vigil_store::reader::micros_rfc3339(self.time)
    }

    /// A string at a dotted path of the document.
    pub fn str(&self, path: &str) -> Option<&str> {
        get(&self.doc, path).and_then(Value::as_str)
    }

    /// Who acted: `user.name`, else `source.ip`.
    pub fn actor(&self) -> String {
        self.str("user.name")
            .or_else(|| self.str("source.ip"))
            .unwrap_or("")
            .to_string()
    }

    /// Kubernetes audit: `verb resource[/sub] ns/name`; else `event.action` and the message.
    pub fn what(&self) -> String {
        if self.alert {
            return format!(
                "alert {} ({})",
                self.str("rule.name").unwrap_or(""),
                self.raw
                    .pointer("/rule/level")
                    .and_then(Value::as_str)
                    .unwrap_or("")
            );
        }
        if let Some(o) = ObjectRef::of(self) {
            return format!("{} {}", self.str("verb").unwrap_or(""), o);
        }
        let action = self.str("event.action").unwrap_or("");
        let detail = self
            .str("process.command_line")
            .or_else(|| self.str("syslog.msg"))
            .or_else(|| self.str("destination.ip"))
            .unwrap_or("");
        format!("{action} {detail}").trim().to_string()
    }

    pub fn code(&self) -> Option<i64> {
        get(&self.doc, "http.response.status_code").and_then(Value::as_i64)
    }

    pub fn succeeded(&self) -> bool {
        match self.code() {
            Some(c) => c < 400,
            None => self.str("event.outcome") != Some("failure"),
        }
    }
}

/// A dotted path into a JSON document (`a.b.c`; a key may itself hold dots at the last step).
pub fn get<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    if let Some(v) = doc.get(path) {
        return Some(v);
    }
    let (head, rest) = path.split_once('.')?;
    get(doc.get(head)?, rest)
}

/// The Kubernetes object of an audit event.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ObjectRef {
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    pub api_group: String,
}

impl ObjectRef {
    pub fn of(e: &Ev) -> Option<ObjectRef> {
        let o = e.doc.get("objectRef")?;
        let s = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        Some(ObjectRef {
            resource: s("resource"),
            subresource: s("subresource"),
            namespace: s("namespace"),
            name: s("name"),
            api_group: s("apiGroup"),
        })
    }
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.resource)?;
        if !self.subresource.is_empty() {
            write!(f, "/{}", self.subresource)?;
        }
        match (self.namespace.is_empty(), self.name.is_empty()) {
            (true, true) => Ok(()),
            (true, false) => write!(f, " {}", self.name),
            (false, true) => write!(f, " {}/*", self.namespace),
            (false, false) => write!(f, " {}/{}", self.namespace, self.name),
        }
    }
}

/// Something an entity did to something, with the event that shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Touch {
    pub time: String,
    pub verb: String,
    pub target: String,
    /// HTTP status (Kubernetes) or outcome.
    pub result: String,
    pub loc: u64,
    /// The account used, for logins to hosts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip)]
    pub object: Option<ObjectRef>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct EntityScope {
    pub entity: Option<Entity>,
    /// Events where the entity acts (or is acted on, for pods, nodes and hosts).
    pub events: usize,
    pub first: Option<String>,
    pub last: Option<String>,
    pub addresses: Vec<String>,
    pub secrets_read: Vec<Touch>,
    pub objects_created: Vec<Touch>,
    pub objects_changed: Vec<Touch>,
    pub objects_deleted: Vec<Touch>,
    pub exec_sessions: Vec<Touch>,
    pub rbac_changes: Vec<Touch>,
    /// Address → other identities seen from it.
    pub other_identities: BTreeMap<String, Vec<String>>,
    pub hosts_reached: Vec<Touch>,
    /// Requests refused (401/403), failed logins and connections: probing.
    pub denied: usize,
    /// Addresses (`ip:port`) connected to without success (scans, fan-out).
    pub hosts_probed: Vec<String>,
    /// Hosts and nodes: the successful logins to them (`user from address`).
    pub logins: Vec<Touch>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Scope {
    pub incident: String,
    pub entities: Vec<EntityScope>,
}

const RBAC: &[&str] = &[
    "roles",
    "rolebindings",
    "clusterroles",
    "clusterrolebindings",
];
const READS: &[&str] = &["get", "list", "watch"];

/// Whether `e` is an action of `entity` (identities and addresses act; pods, nodes and hosts
/// are acted on or are where things happen).
pub fn acts(entity: &Entity, e: &Ev) -> bool {
    let v = entity.value.as_str();
    match entity.kind {
        EntityKind::User | EntityKind::ServiceAccount => e.str("user.name") == Some(v),
        EntityKind::Ip => e.str("source.ip") == Some(v),
        EntityKind::Pod => ObjectRef::of(e)
            .is_some_and(|o| o.resource == "pods" && format!("{}/{}", o.namespace, o.name) == v),
        EntityKind::Node => {
            e.str("host.name") == Some(v)
                || ObjectRef::of(e).is_some_and(|o| o.resource == "nodes" && o.name == v)
        }
        EntityKind::Host => e.str("host.name") == Some(v) || e.str("destination.ip") == Some(v),
    }
}

fn is_connection(e: &Ev) -> bool {
    e.dataset.starts_with("zeek") || e.dataset.contains("flow")
}

/// `ip:port` of a connection.
fn destination(e: &Ev) -> Option<String> {
    let d = e.str("destination.ip")?;
    let port = get(&e.doc, "destination.port")
        .map(|p| format!(":{p}"))
        .unwrap_or_default();
    Some(format!("{d}{port}"))
}

fn touch(e: &Ev, target: String) -> Touch {
    let result = match e.code() {
        Some(c) => c.to_string(),
        None => e.str("event.outcome").unwrap_or("").to_string(),
    };
    Touch {
        time: e.time_rfc3339(),
        verb: e
            .str("verb")
            .or_else(|| e.str("event.action"))
            .unwrap_or("")
            .to_string(),
        target,
        result,
        loc: e.loc,
        user: None,
        object: ObjectRef::of(e),
    }
}

/// The scope of every entity of `inc` over `events` (time order is not required).
pub fn scope(inc: &Incident, events: &[Ev]) -> Scope {
    let mut evs: Vec<&Ev> = events.iter().filter(|e| !e.alert).collect();
    evs.sort_by_key(|e| (e.time, e.loc));
    evs.dedup_by_key(|e| e.loc);
    let entities = inc
        .entities
        .iter()
        .map(|ent| entity_scope(ent, &evs))
        .collect();
    Scope {
        incident: inc.id.clone(),
        entities,
    }
}

fn entity_scope(ent: &Entity, evs: &[&Ev]) -> EntityScope {
    let mut s = EntityScope {
        entity: Some(ent.clone()),
        ..Default::default()
    };
    let mut addrs = BTreeSet::new();
    for e in evs.iter().filter(|e| acts(ent, e)) {
        s.events += 1;
        s.first.get_or_insert_with(|| e.time_rfc3339());
        s.last = Some(e.time_rfc3339());
        if let Some(ip) = e.str("source.ip") {
            addrs.insert(ip.to_string());
        }
        if !e.succeeded() {
            s.denied += 1;
            if is_connection(e) {
                if let Some(d) = destination(e) {
                    if !s.hosts_probed.contains(&d) {
                        s.hosts_probed.push(d);
                    }
                }
            }
            continue;
        }
        if let Some(o) = ObjectRef::of(e) {
            let verb = e.str("verb").unwrap_or("");
            let t = touch(e, o.to_string());
            if o.resource == "secrets" && READS.contains(&verb) {
                s.secrets_read.push(t);
            } else if o.resource == "pods" && matches!(o.subresource.as_str(), "exec" | "attach") {
                s.exec_sessions.push(t);
            } else if RBAC.contains(&o.resource.as_str())
                && matches!(
                    verb,
                    "create" | "update" | "patch" | "delete" | "deletecollection"
                )
            {
                s.rbac_changes.push(t);
            } else if verb == "create"
                && o.subresource.is_empty()
                && !o.resource.ends_with("reviews")
            {
                s.objects_created.push(t);
            } else if matches!(verb, "update" | "patch") {
                s.objects_changed.push(t);
            } else if matches!(verb, "delete" | "deletecollection") {
                s.objects_deleted.push(t);
            }
            continue;
        }
        // Host and network sources.
        let action = e.str("event.action").unwrap_or("");
        if matches!(
            ent.kind,
            EntityKind::User | EntityKind::ServiceAccount | EntityKind::Ip
        ) {
            if action == "ssh_login" {
                if let Some(h) = e.str("host.name") {
                    let mut t = touch(e, format!("{h} (ssh)"));
                    t.user = e.str("user.name").map(str::to_string);
                    s.hosts_reached.push(t);
                }
            } else if is_connection(e) {
                if let Some(d) = destination(e) {
                    s.hosts_reached.push(touch(e, d));
                }
            }
        } else if action == "ssh_login" && e.str("host.name") == Some(ent.value.as_str()) {
            // A host or node: who logged in to it.
            let user = e.str("user.name").unwrap_or("?");
            let from = e.str("source.ip").unwrap_or("?");
            let mut t = touch(e, format!("{user} from {from}"));
            t.user = e.str("user.name").map(str::to_string);
            s.logins.push(t);
        }
    }
    // Other identities from the same addresses (over every event given, not only the entity's).
    if matches!(
        ent.kind,
        EntityKind::User | EntityKind::ServiceAccount | EntityKind::Ip
    ) {
        for e in evs {
            let (Some(ip), Some(user)) = (e.str("source.ip"), e.str("user.name")) else {
                continue;
            };
            if addrs.contains(ip) && user != ent.value {
                let v = s.other_identities.entry(ip.to_string()).or_default();
                if !v.iter().any(|u| u == user) {
                    v.push(user.to_string());
                }
            }
        }
    }
    // One line per distinct host (the first time it was reached).
    let mut seen = BTreeSet::new();
    s.hosts_reached.retain(|t| seen.insert(t.target.clone()));
    s.addresses = addrs.into_iter().collect();
    s
}

impl Scope {
    /// For people: one block per entity.
    pub fn to_text(&self) -> String {
        let mut out = format!("Scope of {}\n", self.incident);
        for s in &self.entities {
            let Some(ent) = &s.entity else { continue };
            out.push_str(&format!("\n{ent}: {} events", s.events));
            if let (Some(f), Some(l)) = (&s.first, &s.last) {
                out.push_str(&format!(", {f} .. {l}"));
            }
            if s.denied > 0 {
                out.push_str(&format!(", {} refused or failed", s.denied));
            }
            out.push('\n');
            if !s.addresses.is_empty() {
                out.push_str(&format!("  from: {}\n", s.addresses.join(", ")));
            }
            for (title, list) in [
                ("secrets read", &s.secrets_read),
                ("objects created", &s.objects_created),
                ("objects changed", &s.objects_changed),
                ("objects deleted", &s.objects_deleted),
                ("exec sessions", &s.exec_sessions),
                ("RBAC changes", &s.rbac_changes),
                ("hosts reached", &s.hosts_reached),
                ("logins to it", &s.logins),
            ] {
                if list.is_empty() {
                    continue;
                }
                out.push_str(&format!("  {title} ({}):\n", list.len()));
                for t in list {
                    out.push_str(&format!(
                        "    {}  {} {}  [{}]\n",
                        t.time, t.verb, t.target, t.result
                    ));
                }
            }
            if !s.hosts_probed.is_empty() {
                out.push_str(&format!(
                    "  hosts probed without success ({}): {}\n",
                    s.hosts_probed.len(),
                    s.hosts_probed.join(", ")
                ));
            }
            for (ip, users) in &s.other_identities {
                out.push_str(&format!(
                    "  other identities from {ip}: {}\n",
                    users.join(", ")
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
