//! One grouped audit event → document.
//!
//! Native fields: `sequence`, `node`, `record_types` (in order) and one key
//! per record type holding that record's fields (`SYSCALL.exe`,
//! `EXECVE.a0`, `CWD.cwd`); `PATH` is always an array, any other type that
//! repeats becomes an array. ENRICHED names (`AUID`, `UID`, ...) stay in their
//! record next to the raw ids.

use serde_json::{Map, Value};

use super::{Group, PidCache, Record};
use crate::auditd_record::decode_sockaddr;
use crate::ecs::{self, set, set_address, set_categories, set_outcome, set_str, Outcome};
use crate::Dataset;

type Doc = Map<String, Value>;

/// Syscall names for the numbers that matter to detection (x86_64, aarch64, i386).
fn syscall_name(arch: &str, nr: &str) -> Option<&'static str> {
    let nr: u32 = nr.parse().ok()?;
    let x86_64: &[(u32, &str)] = &[
        (0, "read"),
        (1, "write"),
        (2, "open"),
        (3, "close"),
        (4, "stat"),
        (9, "mmap"),
        (10, "mprotect"),
        (16, "ioctl"),
        (21, "access"),
        (41, "socket"),
        (42, "connect"),
        (43, "accept"),
        (44, "sendto"),
        (49, "bind"),
        (50, "listen"),
        (56, "clone"),
        (57, "fork"),
        (58, "vfork"),
        (59, "execve"),
        (62, "kill"),
        (76, "truncate"),
        (82, "rename"),
        (83, "mkdir"),
        (84, "rmdir"),
        (86, "link"),
        (87, "unlink"),
        (88, "symlink"),
        (90, "chmod"),
        (91, "fchmod"),
        (92, "chown"),
        (101, "ptrace"),
        (105, "setuid"),
        (106, "setgid"),
        (113, "setreuid"),
        (117, "setresuid"),
        (157, "prctl"),
        (159, "adjtimex"),
        (165, "mount"),
        (166, "umount2"),
        (175, "init_module"),
        (176, "delete_module"),
        (188, "setxattr"),
        (257, "openat"),
        (263, "unlinkat"),
        (264, "renameat"),
        (265, "linkat"),
        (266, "symlinkat"),
        (268, "fchmodat"),
        (288, "accept4"),
        (313, "finit_module"),
        (316, "renameat2"),
        (321, "bpf"),
        (322, "execveat"),
    ];
    let aarch64: &[(u32, &str)] = &[
        (35, "unlinkat"),
        (37, "linkat"),
        (56, "openat"),
        (198, "socket"),
        (200, "bind"),
        (201, "listen"),
        (202, "accept"),
        (203, "connect"),
        (220, "clone"),
        (221, "execve"),
        (281, "execveat"),
    ];
    let i386: &[(u32, &str)] = &[
        (5, "open"),
        (10, "unlink"),
        (11, "execve"),
        (102, "socketcall"),
    ];
    let table = match arch {
        "c000003e" | "x86_64" => x86_64,
        "c00000b7" | "aarch64" => aarch64,
        "40000003" | "i386" => i386,
        _ => return None,
    };
    table.iter().find(|(n, _)| *n == nr).map(|(_, s)| *s)
}

fn record_object(r: &Record) -> Value {
    let mut m = Map::new();
    for (k, v) in r.fields.iter().chain(r.enriched.iter()) {
        m.insert(k.clone(), Value::String(v.clone()));
    }
    Value::Object(m)
}

/// EXECVE arguments, joining `aN[i]` chunks of long arguments.
pub fn execve_args(r: &Record) -> Vec<String> {
    let argc: usize = r.get("argc").and_then(|a| a.parse().ok()).unwrap_or(0);
    let mut args = Vec::new();
    for i in 0..argc.min(100_000) {
        let key = format!("a{i}");
        if let Some(v) = r.get(&key) {
            args.push(v.to_string());
            continue;
        }
        let prefix = format!("a{i}[");
        let chunks: String = r
            .fields
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(_, v)| v.as_str())
            .collect();
        if chunks.is_empty() && !r.fields.iter().any(|(k, _)| k.starts_with(&key)) {
            break;
        }
        args.push(chunks);
    }
    args
}

fn outcome_of(r: &Record) -> Option<Outcome> {
    let v = r.get("success").or_else(|| r.get("res"))?;
    Some(match v {
        "yes" | "success" | "1" => Outcome::Success,
        "no" | "failed" | "fail" | "0" => Outcome::Failure,
        _ => Outcome::Unknown,
    })
}

fn categories(rtype: &str) -> (&'static [&'static str], &'static [&'static str]) {
    match rtype {
        "USER_LOGIN"
        | "USER_AUTH"
        | "USER_ACCT"
        | "USER_ERR"
        | "CRED_ACQ"
        | "CRED_DISP"
        | "CRED_REFR"
        | "ANOM_LOGIN_FAILURES"
        | "USER_LOGOUT" => (&["authentication"], &["info"]),
        "USER_START" | "LOGIN" => (&["session"], &["start"]),
        "USER_END" => (&["session"], &["end"]),
        "ADD_USER" => (&["iam"], &["user", "creation"]),
        "DEL_USER" => (&["iam"], &["user", "deletion"]),
        "ADD_GROUP" => (&["iam"], &["group", "creation"]),
        "DEL_GROUP" => (&["iam"], &["group", "deletion"]),
        "USER_MGMT" | "USER_CHAUTHTOK" | "ACCT_LOCK" | "ACCT_UNLOCK" => {
            (&["iam"], &["user", "change"])
        }
        "GRP_MGMT" | "GRP_CHAUTHTOK" => (&["iam"], &["group", "change"]),
        "CONFIG_CHANGE" | "DAEMON_CONFIG" | "USYS_CONFIG" | "NETFILTER_CFG" => {
            (&["configuration"], &["change"])
        }
        "USER_CMD" => (&["process"], &["start"]),
        "AVC" | "USER_AVC" | "SELINUX_ERR" => (&["intrusion_detection"], &["denied"]),
        "SERVICE_START" => (&["process"], &["start"]),
        "SERVICE_STOP" => (&["process"], &["end"]),
        "DAEMON_START" | "DAEMON_END" | "DAEMON_ABORT" => (&["process"], &["info"]),
        "ANOM_ABEND" | "ANOM_PROMISCUOUS" => (&["host"], &["info"]),
        _ => (&[], &[]),
    }
}

const AUX: &[&str] = &[
    "EOE",
    "CWD",
    "PATH",
    "PROCTITLE",
    "EXECVE",
    "SOCKADDR",
    "SOCKETCALL",
    "BPRM_FCAPS",
    "OBJ_PID",
    "FD_PAIR",
    "MMAP",
    "IPC",
    "CAPSET",
    "KERN_MODULE",
];

/// Builds the document of one event and feeds the pid cache.
pub fn normalize(g: &Group, pids: &mut PidCache) -> Value {
    let mut doc: Doc = ecs::new_doc(Dataset::Auditd.as_str());
    let first = &g.records[0];
    if let Some(t) = ecs::epoch_to_rfc3339(&first.time) {
        set_str(&mut doc, "@timestamp", &t);
    }
    doc.insert("sequence".into(), Value::from(first.serial));
    let host = first.node.clone().unwrap_or_default();
    if let Some(n) = &first.node {
        doc.insert("node".into(), Value::from(n.as_str()));
        set_str(&mut doc, "host.name", n);
    }
    let types: Vec<&str> = g.records.iter().map(|r| r.rtype.as_str()).collect();
    doc.insert("record_types".into(), ecs::strings(&types));
    for r in &g.records {
        if r.rtype == "EOE" {
            continue;
        }
        let obj = record_object(r);
        match doc.get_mut(&r.rtype) {
            Some(Value::Array(a)) => a.push(obj),
            Some(existing) => {
                let prev = existing.take();
                *existing = Value::Array(vec![prev, obj]);
            }
            None => {
                let v = if r.rtype == "PATH" {
                    Value::Array(vec![obj])
                } else {
                    obj
                };
                doc.insert(r.rtype.clone(), v);
            }
        }
    }
    let find = |t: &str| g.records.iter().find(|r| r.rtype == t);
    let primary = g
        .records
        .iter()
        .find(|r| r.rtype == "SYSCALL")
        .or_else(|| g.records.iter().find(|r| !AUX.contains(&r.rtype.as_str())))
        .unwrap_or(first);
    let syscall = find("SYSCALL");
    let execve = find("EXECVE");
    let sc_name = syscall
        .and_then(|s| syscall_name(s.get("arch").unwrap_or(""), s.get("syscall").unwrap_or("")));
    let is_exec = execve.is_some() || matches!(sc_name, Some("execve" | "execveat"));

    // Keys (`key="a"`, several joined by \x01) → tags.
    let keys: Vec<&str> = g
        .records
        .iter()
        .filter_map(|r| r.get("key"))
        .flat_map(|k| k.split('\u{1}'))
        .filter(|k| !k.is_empty() && *k != "(null)")
        .collect();
    if !keys.is_empty() {
        doc.insert("tags".into(), ecs::strings(&keys));
    }

    // event.*
    let action = if is_exec {
        "executed".to_string()
    } else if primary.rtype == "SYSCALL" {
        sc_name.map_or_else(
            || format!("syscall_{}", primary.get("syscall").unwrap_or("")),
            str::to_string,
        )
    } else {
        primary.rtype.to_ascii_lowercase()
    };
    set_str(&mut doc, "event.action", &action);
    set_outcome(&mut doc, outcome_of(primary).unwrap_or(Outcome::Unknown));
    let (mut cats, mut tys) = categories(&primary.rtype);
    if is_exec {
        (cats, tys) = (&["process"], &["start"]);
    } else if matches!(
        sc_name,
        Some("connect" | "accept" | "accept4" | "bind" | "listen")
    ) {
        (cats, tys) = (&["network"], &["connection"]);
    } else if find("PATH").is_some() && syscall.is_some() {
        (cats, tys) = (&["file"], &["info"]);
    }
    set_categories(&mut doc, cats, tys);

    // user.*
    let get = |k: &str| g.records.iter().find_map(|r| r.get(k));
    let enriched = |k: &str| g.records.iter().find_map(|r| r.enriched(k));
    fn id(v: Option<&str>) -> Option<&str> {
        v.filter(|s| *s != "4294967295" && *s != "-1" && !s.is_empty())
    }
    if let Some(uid) = id(primary.get("uid").or_else(|| get("uid"))) {
        set_str(&mut doc, "user.id", uid);
    }
    let acct = primary.get("acct").filter(|a| *a != "?" && !a.is_empty());
    if let Some(name) = enriched("UID").or(acct) {
        set_str(&mut doc, "user.name", name);
    }
    if let Some(auid) = id(primary.get("auid").or_else(|| get("auid"))) {
        set_str(&mut doc, "user.audit.id", auid);
    }
    if let Some(n) = enriched("AUID").filter(|n| *n != "unset") {
        set_str(&mut doc, "user.audit.name", n);
    }
    if let Some(e) = id(primary.get("euid")) {
        set_str(&mut doc, "user.effective.id", e);
    }
    if let Some(n) = enriched("EUID") {
        set_str(&mut doc, "user.effective.name", n);
    }
    if let Some(a) = primary.get("addr") {
        set_address(&mut doc, "source", a);
    }
    if let Some(h) = primary.get("hostname").filter(|h| *h != "?") {
        if ecs::parse_ip(h).is_none() {
            set_str(&mut doc, "source.domain", h);
        }
    }

    // The peer of connect (destination) and accept (source).
    if let Some((addr, port)) = find("SOCKADDR")
        .and_then(|r| r.get("saddr"))
        .and_then(decode_sockaddr)
    {
        let side = match sc_name {
            Some("connect" | "sendto") => Some("destination"),
            Some("accept" | "accept4") => Some("source"),
            _ => None,
        };
        if let (Some(side), Some(port)) = (side, port) {
            set_address(&mut doc, side, &addr);
            set(&mut doc, &format!("{side}.port"), Value::from(port));
        }
    }

    // process.*
    let pid = primary.get("pid").and_then(|p| p.parse::<u32>().ok());
    let ppid = primary.get("ppid").and_then(|p| p.parse::<u32>().ok());
    let exe = primary.get("exe").filter(|e| *e != "(null)");
    if let Some(p) = pid {
        set(&mut doc, "process.pid", Value::from(p));
    }
    if let Some(p) = ppid {
        set(&mut doc, "process.parent.pid", Value::from(p));
    }
    if let Some(e) = exe {
        set_str(&mut doc, "process.executable", e);
    }
    if let Some(c) = primary.get("comm") {
        set_str(&mut doc, "process.name", c);
    }
    let cwd = find("CWD")
        .and_then(|r| r.get("cwd"))
        .or_else(|| primary.get("cwd"));
    if let Some(c) = cwd {
        set_str(&mut doc, "process.working_directory", c);
    }
    if let Some(t) = find("PROCTITLE").and_then(|r| r.get("proctitle")) {
        set_str(&mut doc, "process.title", t);
    }
    let args = execve.map(execve_args).unwrap_or_default();
    let cmdline = args.join(" ");
    if !args.is_empty() {
        set(&mut doc, "process.args", Value::from(args.clone()));
        set_str(&mut doc, "process.command_line", &cmdline);
    } else if let Some(cmd) = primary.get("cmd") {
        set_str(&mut doc, "process.command_line", cmd);
    }
    let parent = ppid.and_then(|p| pids.get(&host, p).map(str::to_string));
    if let Some(pi) = &parent {
        set_str(&mut doc, "process.parent.executable", pi);
    }

    // Sysmon-for-Linux names used by Sigma process_creation rules.
    if is_exec {
        let sig = |doc: &mut Doc, k: &str, v: Option<String>| {
            if let Some(v) = v {
                doc.insert(k.into(), Value::String(v));
            }
        };
        sig(&mut doc, "Image", exe.map(str::to_string));
        sig(
            &mut doc,
            "CommandLine",
            (!cmdline.is_empty()).then(|| cmdline.clone()),
        );
        sig(&mut doc, "ParentImage", parent.clone());
        let user = enriched("UID")
            .map(str::to_string)
            .or_else(|| primary.get("uid").map(str::to_string));
        sig(&mut doc, "User", user);
        sig(&mut doc, "CurrentDirectory", cwd.map(str::to_string));
        sig(&mut doc, "ProcessId", pid.map(|p| p.to_string()));
        sig(&mut doc, "ParentProcessId", ppid.map(|p| p.to_string()));
    }
    if let (Some(p), Some(e)) = (pid, exe) {
        if syscall.is_some() {
            pids.insert(&host, p, e);
        }
    }
    set_str(&mut doc, "message", &g.lines.join("\n"));
    ecs::add_related(&mut doc);
    Value::Object(doc)
}
