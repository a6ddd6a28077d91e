//! The message part of auth.log lines: sshd, PAM, sudo, su, logind and the
//! shadow-utils account tools. Sets `event.*`, `user.*`, `source.*` and a
//! small native object per program (`ssh`, `pam`, `sudo`, `su`, `account`).

use std::sync::LazyLock;

use regex::{Captures, Regex};
use serde_json::{Map, Value};

use crate::ecs::{self, set, set_address, set_categories, set_outcome, set_str, Outcome};

pub(crate) type Doc = Map<String, Value>;

pub(crate) fn re(p: &str) -> Regex {
    // Patterns are constants exercised by the unit tests.
    Regex::new(p).unwrap_or_else(|e| panic!("invalid built-in pattern {p}: {e}"))
}

static PAM_PREFIX: LazyLock<Regex> =
    LazyLock::new(|| re(r"^\(?(pam_[a-z0-9_]+)\)?(?:\(([^:)]*)(?::([^)]*))?\))?:? (.*)$"));
/// pam_unix's fixed field order; the second form takes a `ruser` with spaces.
static PAM_FAILURE: LazyLock<[Regex; 2]> = LazyLock::new(|| {
    [
        re(
            r"^\s*logname=(\S*)\s+uid=(\S*)\s+euid=(\S*)\s+tty=(\S*)\s+ruser=(\S*)\s+rhost=(\S*)(?:\s+user=(.*?))?\s*$",
        ),
        re(
            r"^\s*logname=(\S*)\s+uid=(\S*)\s+euid=(\S*)\s+tty=(\S*)\s+ruser=(.*)\s+rhost=(\S*)(?:\s+user=(\S*))?\s*$",
        ),
    ]
});
static PAM_SESSION: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^session (opened|closed) for user (\S+?)(?:\(uid=(\d+)\))?(?: by (\S*?)(?:\(uid=(\d+)\))?)?$",
    )
});
static REPEATED: LazyLock<Regex> =
    LazyLock::new(|| re(r"^message repeated (\d+) times: \[ ?(.*?) ?\]$"));
static SU: LazyLock<Vec<(bool, Regex)>> = LazyLock::new(|| {
    vec![
        (true, re(r"^\(to (\S+)\) (\S+) on (\S+)$")),
        (true, re(r"^Successful su for (\S+) by (\S+)$")),
        (false, re(r"^FAILED su for (\S+) by (\S+)$")),
        (false, re(r"^FAILED SU \(to (\S+)\) (\S+) on (\S+)$")),
        (true, re(r"^\+ (\S+) (\S+):(\S+)$")),
        (false, re(r"^- (\S+) (\S+):(\S+)$")),
    ]
});
static LOGIND: LazyLock<Regex> = LazyLock::new(|| re(r"^New session (\S+) of user (\S+?)\.?$"));

/// Fills the document from `program` (the syslog tag without `[pid]`) and the
/// message text.
pub(crate) fn classify(program: &str, msg: &str, doc: &mut Doc) {
    // "sshd(pam_unix)" (old PAM tag form), "sshd-session" (OpenSSH ≥ 9.8).
    let (prog, tag_pam) = match program.split_once('(') {
        Some((p, rest)) => (p, rest.strip_suffix(')')),
        None => (program, None),
    };
    let prog = prog.trim_matches(|c| c == '[' || c == ']');
    let msg = msg.trim();
    if let Some(c) = REPEATED.captures(msg) {
        if let Ok(n) = c[1].parse::<u64>() {
            set(doc, "syslog.repeat_count", Value::from(n));
        }
        let inner = c.get(2).map_or("", |m| m.as_str());
        return classify(program, inner, doc);
    }
    if let Some(module) = tag_pam {
        if pam_body(prog, module, msg, doc) {
            return;
        }
    }
    if let Some(c) = PAM_PREFIX.captures(msg) {
        let module = c.get(1).map_or("", |m| m.as_str());
        set_str(doc, "pam.module", module);
        if let Some(svc) = c.get(2) {
            set_str(doc, "pam.service", svc.as_str());
        }
        if let Some(kind) = c.get(3) {
            set_str(doc, "pam.type", kind.as_str());
        }
        if pam_body(prog, module, &c[4], doc) {
            return;
        }
    }
    match prog {
        "sshd" | "sshd-session" | "sshd-auth" => crate::sshd::sshd(msg, doc),
        "sudo" => sudo(msg, doc),
        "su" => su(msg, doc),
        "systemd-logind" => logind(msg, doc),
        "useradd" | "usermod" | "userdel" | "groupadd" | "groupmod" | "groupdel" | "passwd"
        | "chpasswd" | "chage" | "gpasswd" | "adduser" | "deluser" | "newusers" => {
            account(prog, msg, doc)
        }
        _ => {}
    }
}

pub(crate) fn action(doc: &mut Doc, action: &str, outcome: Outcome, cats: &[&str], types: &[&str]) {
    set_str(doc, "event.action", action);
    set_outcome(doc, outcome);
    set_categories(doc, cats, types);
}

pub(crate) fn opt<'a>(c: &'a Captures, i: usize) -> &'a str {
    c.get(i).map_or("", |m| m.as_str())
}

/// `k1=v1 k2=v2` where values may be empty (`ruser= rhost=h`).
fn pam_kv(s: &str, doc: &mut Doc) {
    let mut key: Option<&str> = None;
    let mut val = String::new();
    for tok in s.split_whitespace() {
        match tok.split_once('=') {
            Some((k, v))
                if !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
            {
                if let Some(k0) = key.take() {
                    set_str(doc, &format!("pam.{k0}"), &val);
                }
                key = Some(k);
                val = v.to_string();
            }
            _ => {
                // A value with spaces (rare): keep appending.
                if key.is_some() {
                    if !val.is_empty() {
                        val.push(' ');
                    }
                    val.push_str(tok);
                }
            }
        }
    }
    if let Some(k0) = key {
        set_str(doc, &format!("pam.{k0}"), &val);
    }
}

/// The text after a PAM module prefix. True when recognized.
fn pam_body(prog: &str, module: &str, body: &str, doc: &mut Doc) -> bool {
    let body = body.trim().trim_end_matches("[preauth]").trim_end();
    set_str(doc, "pam.module", module);
    if let Some(rest) = body.strip_prefix("authentication failure;") {
        match PAM_FAILURE.iter().find_map(|r| r.captures(rest)) {
            Some(c) => {
                for (i, k) in ["logname", "uid", "euid", "tty", "ruser", "rhost", "user"]
                    .iter()
                    .enumerate()
                {
                    set_str(doc, &format!("pam.{k}"), opt(&c, i + 1));
                }
            }
            None => pam_kv(rest, doc),
        }
        action(
            doc,
            "pam_auth_failure",
            Outcome::Failure,
            &["authentication"],
            &["info"],
        );
        let get = |doc: &Doc, k: &str| {
            ecs::lookup_map(doc, &format!("pam.{k}"))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        if let Some(u) = get(doc, "user").or_else(|| get(doc, "ruser")) {
            set_str(doc, "user.name", &u);
        }
        if let Some(h) = get(doc, "rhost") {
            set_address(doc, "source", &h);
        }
        return true;
    }
    if let Some(c) = PAM_SESSION.captures(body) {
        let open = &c[1] == "opened";
        let act = if open {
            "session_open"
        } else {
            "session_close"
        };
        let ty: &[&str] = if open { &["start"] } else { &["end"] };
        action(doc, act, Outcome::Success, &["session"], ty);
        set_str(doc, "user.name", &c[2]);
        set_str(doc, "user.id", opt(&c, 3));
        // "by alice(uid=1000)" is who opened it (sudo, su); "by (uid=0)" is a daemon.
        set_str(doc, "pam.by", opt(&c, 4));
        set_str(doc, "pam.by_uid", opt(&c, 5));
        return true;
    }
    if body.starts_with("check pass; user unknown") {
        action(
            doc,
            "pam_user_unknown",
            Outcome::Failure,
            &["authentication"],
            &["info"],
        );
        return true;
    }
    if let Some(u) = body.strip_prefix("password changed for ") {
        action(
            doc,
            "password_change",
            Outcome::Success,
            &["iam"],
            &["user", "change"],
        );
        set_str(doc, "user.target.name", u.trim());
        return true;
    }
    let _ = prog;
    false
}

fn sudo(msg: &str, doc: &mut Doc) {
    let Some((user, rest)) = msg.split_once(" : ") else {
        return;
    };
    let user = user.trim();
    if user.is_empty() || user.contains(' ') {
        return;
    }
    let mut status = Vec::new();
    let mut items = rest.split(" ; ").peekable();
    while let Some(item) = items.next() {
        match item.split_once('=') {
            Some((k, v))
                if !k.is_empty() && k.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') =>
            {
                if k == "COMMAND" {
                    // The command line may itself contain " ; ".
                    let rest: Vec<&str> = items.by_ref().collect();
                    let cmd = std::iter::once(v)
                        .chain(rest)
                        .collect::<Vec<_>>()
                        .join(" ; ");
                    set_str(doc, "sudo.COMMAND", &cmd);
                    set_str(doc, "process.command_line", &cmd);
                    if let Some(exe) = cmd.split_whitespace().next() {
                        set_str(doc, "process.executable", exe);
                        set(
                            doc,
                            "process.args",
                            Value::from(cmd.split_whitespace().collect::<Vec<_>>()),
                        );
                    }
                    break;
                }
                set_str(doc, &format!("sudo.{k}"), v);
            }
            _ => status.push(item.trim()),
        }
    }
    if ecs::lookup_map(doc, "sudo.COMMAND").is_none() && status.is_empty() {
        return;
    }
    let failed = !status.is_empty();
    if failed {
        set_str(doc, "sudo.status", &status.join(" ; "));
        action(
            doc,
            "sudo",
            Outcome::Failure,
            &["authentication", "process"],
            &["denied"],
        );
    } else {
        action(doc, "sudo", Outcome::Success, &["process"], &["start"]);
    }
    set_str(doc, "user.name", user);
    if let Some(Value::String(u)) = ecs::lookup_map(doc, "sudo.USER").cloned() {
        set_str(doc, "user.effective.name", &u);
    }
}

fn su(msg: &str, doc: &mut Doc) {
    for (i, (ok, r)) in SU.iter().enumerate() {
        if let Some(c) = r.captures(msg) {
            let outcome = if *ok {
                Outcome::Success
            } else {
                Outcome::Failure
            };
            action(
                doc,
                "su",
                outcome,
                &["authentication", "session"],
                &["start"],
            );
            let (target, by, tty) = match i {
                0 | 3 => (&c[1], &c[2], opt(&c, 3)),
                1 | 2 => (&c[1], &c[2], ""),
                _ => (&c[3], &c[2], opt(&c, 1)),
            };
            set_str(doc, "user.name", by);
            set_str(doc, "user.effective.name", target);
            set_str(doc, "su.tty", tty);
            return;
        }
    }
}

fn logind(msg: &str, doc: &mut Doc) {
    if let Some(c) = LOGIND.captures(msg) {
        action(
            doc,
            "session_open",
            Outcome::Success,
            &["session"],
            &["start"],
        );
        set_str(doc, "logind.session", &c[1]);
        set_str(doc, "user.name", &c[2]);
    }
}

/// `name=bob, UID=1001, GID=1001, home=/home/bob` → account.* fields.
fn comma_kv(s: &str, doc: &mut Doc) {
    for part in s.split(", ") {
        if let Some((k, v)) = part.split_once('=') {
            set_str(doc, &format!("account.{}", k.trim()), v.trim());
        }
    }
}

static ACCOUNT: LazyLock<Vec<(&'static str, Regex)>> = LazyLock::new(|| {
    vec![
        ("user_add", re(r"^new user: (.*)$")),
        ("group_add", re(r"^new group: (.*)$")),
        ("group_add", re(r"^group added to \S+: (.*)$")),
        (
            "user_modify",
            re(r"^(?:change user|lock user|unlock user|add|delete) '([^']*)'(?:.*)$"),
        ),
        ("user_delete", re(r"^delete user '([^']*)'$")),
        (
            "group_delete",
            re(
                r"^(?:removed (?:shadow )?group|group) '([^']*)'(?: owned by '[^']*'| removed(?: from \S+)?)$",
            ),
        ),
        (
            "group_modify",
            re(r"^group changed in \S+ \(group (\S+?)/\d+.*\)$"),
        ),
        (
            "password_change",
            re(r"^password for '([^']*)' changed by '([^']*)'$"),
        ),
        ("user_modify", re(r"^changed password expiry for (\S+)$")),
    ]
});

fn account(prog: &str, msg: &str, doc: &mut Doc) {
    let msg = msg.trim();
    for (act, r) in ACCOUNT.iter() {
        let Some(c) = r.captures(msg) else { continue };
        let act = if *act == "user_modify" && msg.starts_with("delete user '") {
            "user_delete"
        } else {
            act
        };
        let (ty, is_group): (&[&str], bool) = match act {
            "user_add" => (&["user", "creation"], false),
            "group_add" => (&["group", "creation"], true),
            "user_delete" => (&["user", "deletion"], false),
            "group_delete" => (&["group", "deletion"], true),
            "group_modify" => (&["group", "change"], true),
            _ => (&["user", "change"], false),
        };
        action(doc, act, Outcome::Success, &["iam"], ty);
        set_str(doc, "account.program", prog);
        if act == "user_add" || (act == "group_add" && msg.contains('=')) {
            comma_kv(&c[1], doc);
            let name = ecs::lookup_map(doc, "account.name")
                .and_then(Value::as_str)
                .map(str::to_string);
            let id = ecs::lookup_map(
                doc,
                if is_group {
                    "account.GID"
                } else {
                    "account.UID"
                },
            )
            .and_then(Value::as_str)
            .map(str::to_string);
            let side = if is_group { "group" } else { "user.target" };
            set_str(doc, &format!("{side}.name"), name.as_deref().unwrap_or(""));
            set_str(doc, &format!("{side}.id"), id.as_deref().unwrap_or(""));
        } else if is_group {
            set_str(doc, "group.name", &c[1]);
        } else {
            set_str(doc, "user.target.name", &c[1]);
            if act == "password_change" {
                set_str(doc, "user.name", opt(&c, 2));
            }
        }
        if act == "user_modify" {
            if let Some(g) = msg.split(" group '").nth(1) {
                set_str(doc, "group.name", g.trim_end_matches('\''));
            }
        }
        return;
    }
}
