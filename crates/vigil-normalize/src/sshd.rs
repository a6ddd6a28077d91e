//! sshd messages: logins, invalid users, disconnects, pre-auth failures.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use crate::auth_msg::{action, opt, re, Doc};
use crate::ecs::{set, set_address, set_port, set_str, Outcome};

#[derive(Clone, Copy, Debug)]
enum Ssh {
    Auth,
    InvalidUser,
    Closed,
    ReceivedDisconnect,
    Disconnecting,
    MaxAuth,
    NotAllowed,
    NotAllowedNoHost,
    RootRefused,
    RefusedConnect,
    NoIdent,
    BadProtocol,
    Negotiate,
    Timeout,
    TimeoutConn,
    Connect,
    PamError,
    ProtoFatal,
    InputUserauth,
}

static SSHD: LazyLock<Vec<(Ssh, Regex)>> = LazyLock::new(|| {
    vec![
        (
            Ssh::Auth,
            re(
                r"^(Accepted|Failed|Postponed) (\S+) for (?:(invalid user|illegal user) )?(.*?) ?from (\S+)(?: port (\d+))?(?: (ssh\d?))?(?:: (.*))?$",
            ),
        ),
        (
            Ssh::InvalidUser,
            re(r"^(?:Invalid|Illegal) user (?:(.*?) )??from (\S+)(?: port (\d+))?$"),
        ),
        (
            Ssh::Closed,
            re(
                r"^(Connection closed|Disconnected|Connection reset) (?:by|from) (?:(invalid user|authenticating user|user) (?:(.*?) )??)?(\S+)(?: port (\d+))?$",
            ),
        ),
        (
            Ssh::ReceivedDisconnect,
            re(r"^Received disconnect from (\S+?)(?: port (\d+))?: ?(\d+): ?(.*)$"),
        ),
        (
            Ssh::Disconnecting,
            re(
                r"^Disconnecting(?: (invalid user|authenticating user|user) (.*?))?(?: (\S+) port (\d+))?: (.*?)(?: for (?:invalid user )?(\S+))?$",
            ),
        ),
        (
            Ssh::MaxAuth,
            re(
                r"^maximum authentication attempts exceeded for (?:(invalid user) )?(.*?) ?from (\S+)(?: port (\d+))?(?: ssh\d?)?$",
            ),
        ),
        (
            Ssh::NotAllowed,
            re(r"^User (.*?) from (\S+) not allowed because (.*)$"),
        ),
        (
            Ssh::NotAllowedNoHost,
            re(r"^User (\S+) not allowed because (.*)$"),
        ),
        (
            Ssh::RootRefused,
            re(r"(?i)^ROOT LOGIN REFUSED FROM (\S+?)(?: port (\d+))?$"),
        ),
        (
            Ssh::RefusedConnect,
            re(r"^refused connect from (\S+) \((\S+)\)$"),
        ),
        (
            Ssh::NoIdent,
            re(r"^Did not receive identification string from (\S+)(?: port (\d+))?$"),
        ),
        (
            Ssh::BadProtocol,
            re(r"^Bad protocol version identification '.*' from (\S+)(?: port (\d+))?$"),
        ),
        (
            Ssh::Negotiate,
            re(r"^Unable to negotiate with (\S+) port (\d+): (.*)$"),
        ),
        (
            Ssh::Timeout,
            re(r"^Timeout before authentication for (\S+)(?: port (\d+))?$"),
        ),
        (
            Ssh::TimeoutConn,
            re(r"^Timeout before authentication for connection from (\S+) to (\S+), pid = (\d+)$"),
        ),
        (
            Ssh::Connect,
            re(r"^Connection from (\S+) port (\d+)(?: on (\S+) port (\d+))?"),
        ),
        (
            Ssh::PamError,
            re(
                r"^PAM: (?:[Aa]uthentication (?:failure|error)|User not known to the underlying authentication module) for (?:(illegal user|invalid user) )?(.*?) ?from (\S+)(?: via \S+)?$",
            ),
        ),
        (
            Ssh::ProtoFatal,
            re(
                r"^(?:banner exchange|ssh_dispatch_run_fatal): Connection from (\S+) port (\d+): (.*)$",
            ),
        ),
        (
            Ssh::InputUserauth,
            re(r"^input_userauth_request: invalid user (.*)$"),
        ),
    ]
});

static KERNEL_PREFIX: LazyLock<Regex> = LazyLock::new(|| re(r"^kernel: ?\[\s*[\d.]+\]:? "));

pub(crate) fn sshd(msg: &str, doc: &mut Doc) {
    // Solaris "[ID 800047 auth.info] ", level prefixes, trailing "[preauth]".
    let mut m = msg;
    if m.starts_with("[ID ") {
        if let Some(i) = m.find("] ") {
            m = &m[i + 2..];
        }
    }
    if let Some(k) = KERNEL_PREFIX.find(m) {
        m = &m[k.end()..];
    }
    let mut fatal = false;
    for p in ["error: ", "fatal: ", "warning: "] {
        if let Some(r) = m.strip_prefix(p) {
            fatal |= p != "warning: ";
            m = r;
        }
    }
    let preauth = m.ends_with("[preauth]");
    if preauth {
        m = m.trim_end_matches("[preauth]").trim_end();
        set(doc, "ssh.preauth", Value::Bool(true));
    }
    let Some((kind, c)) = SSHD
        .iter()
        .find_map(|(k, r)| r.captures(m).map(|c| (*k, c)))
    else {
        if preauth || m.starts_with("kex_exchange_identification: ") {
            // The connection failed before authentication (no address on this line).
            let act = if fatal {
                "ssh_preauth_error"
            } else {
                "ssh_negotiation_failed"
            };
            action(doc, act, Outcome::Failure, &["network"], &["connection"]);
            set_str(doc, "ssh.reason", m);
        }
        return;
    };
    let src = |doc: &mut Doc, host: &str, port: &str| {
        set_address(doc, "source", host);
        set_port(doc, "source", port);
        if !port.is_empty() {
            set_str(doc, "network.transport", "tcp");
        }
    };
    let pre = if preauth {
        Outcome::Failure
    } else {
        Outcome::Unknown
    };
    match kind {
        Ssh::Auth => {
            let outcome = match &c[1] {
                "Accepted" => Outcome::Success,
                "Failed" => Outcome::Failure,
                _ => Outcome::Unknown,
            };
            action(doc, "ssh_login", outcome, &["authentication"], &["info"]);
            set_str(doc, "ssh.method", &c[2]);
            if c.get(3).is_some() {
                set(doc, "ssh.invalid_user", Value::Bool(true));
            }
            set_str(doc, "user.name", opt(&c, 4));
            src(doc, &c[5], opt(&c, 6));
            set_str(doc, "ssh.protocol", opt(&c, 7));
            set_str(doc, "ssh.signature", opt(&c, 8));
        }
        Ssh::InvalidUser | Ssh::InputUserauth => {
            action(
                doc,
                "ssh_invalid_user",
                Outcome::Failure,
                &["authentication"],
                &["info"],
            );
            set(doc, "ssh.invalid_user", Value::Bool(true));
            set_str(doc, "user.name", opt(&c, 1));
            if let Ssh::InvalidUser = kind {
                src(doc, &c[2], opt(&c, 3));
            }
        }
        Ssh::Closed => {
            let who = opt(&c, 2);
            let outcome = match who {
                _ if preauth => Outcome::Failure,
                "user" => Outcome::Success,
                _ => Outcome::Unknown,
            };
            action(
                doc,
                "ssh_disconnect",
                outcome,
                &["network", "session"],
                &["end"],
            );
            if who == "invalid user" {
                set(doc, "ssh.invalid_user", Value::Bool(true));
            }
            set_str(doc, "user.name", opt(&c, 3));
            src(doc, &c[4], opt(&c, 5));
            set_str(doc, "ssh.reason", &c[1]);
        }
        Ssh::ReceivedDisconnect => {
            // 14: no supported authentication methods; "Auth fail" from clients.
            let reason = opt(&c, 4);
            let failed = &c[3] == "14" || reason.ends_with("Auth fail");
            let outcome = if failed { Outcome::Failure } else { pre };
            action(
                doc,
                "ssh_disconnect",
                outcome,
                &["network", "session"],
                &["end"],
            );
            src(doc, &c[1], opt(&c, 2));
            set_str(doc, "ssh.code", &c[3]);
            set_str(doc, "ssh.reason", opt(&c, 4));
        }
        Ssh::Disconnecting => {
            let reason = opt(&c, 5);
            let failed = preauth || reason.contains("authentication failures");
            let outcome = if failed {
                Outcome::Failure
            } else {
                Outcome::Unknown
            };
            action(
                doc,
                "ssh_disconnect",
                outcome,
                &["network", "session"],
                &["end"],
            );
            if opt(&c, 1) == "invalid user" {
                set(doc, "ssh.invalid_user", Value::Bool(true));
            }
            set_str(doc, "user.name", opt(&c, 2));
            set_str(doc, "user.name", opt(&c, 6));
            if let Some(h) = c.get(3) {
                src(doc, h.as_str(), opt(&c, 4));
            }
            set_str(doc, "ssh.reason", reason);
        }
        Ssh::MaxAuth => {
            action(
                doc,
                "ssh_max_auth_exceeded",
                Outcome::Failure,
                &["authentication"],
                &["info"],
            );
            if c.get(1).is_some() {
                set(doc, "ssh.invalid_user", Value::Bool(true));
            }
            set_str(doc, "user.name", &c[2]);
            src(doc, &c[3], opt(&c, 4));
        }
        Ssh::NotAllowed => {
            action(
                doc,
                "ssh_user_not_allowed",
                Outcome::Failure,
                &["authentication"],
                &["info"],
            );
            set_str(doc, "user.name", &c[1]);
            src(doc, &c[2], "");
            set_str(doc, "ssh.reason", &c[3]);
        }
        Ssh::NotAllowedNoHost => {
            // No source: sshd logs the address on another line.
            action(
                doc,
                "ssh_user_not_allowed",
                Outcome::Unknown,
                &["authentication"],
                &["info"],
            );
            set_str(doc, "user.name", &c[1]);
            set_str(doc, "ssh.reason", &c[2]);
        }
        Ssh::RootRefused => {
            action(
                doc,
                "ssh_root_login_refused",
                Outcome::Failure,
                &["authentication"],
                &["info"],
            );
            set_str(doc, "user.name", "root");
            src(doc, &c[1], opt(&c, 2));
        }
        Ssh::RefusedConnect => {
            action(
                doc,
                "ssh_connection_refused",
                Outcome::Failure,
                &["network"],
                &["denied"],
            );
            src(doc, &c[2], "");
        }
        Ssh::NoIdent | Ssh::BadProtocol | Ssh::Timeout => {
            let act = match kind {
                Ssh::NoIdent => "ssh_no_identification",
                Ssh::BadProtocol => "ssh_bad_protocol",
                _ => "ssh_auth_timeout",
            };
            action(doc, act, Outcome::Failure, &["network"], &["connection"]);
            src(doc, &c[1], opt(&c, 2));
        }
        Ssh::TimeoutConn => {
            action(
                doc,
                "ssh_auth_timeout",
                Outcome::Failure,
                &["network"],
                &["connection"],
            );
            src(doc, &c[1], "");
            set_address(doc, "destination", &c[2]);
        }
        Ssh::Negotiate | Ssh::ProtoFatal => {
            action(
                doc,
                "ssh_negotiation_failed",
                Outcome::Failure,
                &["network"],
                &["connection"],
            );
            src(doc, &c[1], &c[2]);
            set_str(doc, "ssh.reason", &c[3]);
        }
        Ssh::Connect => {
            action(
                doc,
                "ssh_connect",
                Outcome::Unknown,
                &["network"],
                &["connection", "start"],
            );
            src(doc, &c[1], &c[2]);
            if let Some(d) = c.get(3) {
                set_address(doc, "destination", d.as_str());
                set_port(doc, "destination", opt(&c, 4));
            }
            set_str(doc, "network.transport", "tcp");
        }
        Ssh::PamError => {
            action(
                doc,
                "ssh_login",
                Outcome::Failure,
                &["authentication"],
                &["info"],
            );
            set_str(doc, "ssh.method", "pam");
            if c.get(1).is_some() {
                set(doc, "ssh.invalid_user", Value::Bool(true));
            }
            set_str(doc, "user.name", &c[2]);
            src(doc, &c[3], "");
        }
    }
}
