//! linux.auth over fail2ban's sshd test logs and loghub's Linux_2k.log.
mod common;

use chrono::{TimeZone, Utc};
use common::*;
use serde_json::Value;
use vigil_normalize::{Dataset, YearHint};

/// fail2ban's tests run "now" at 2005-08-14 (MyTime.setTime(1124013600)):
/// its expected years come from that reference, as ours do.
fn fail2ban_now() -> YearHint {
    YearHint::Reference(Utc.with_ymd_and_hms(2005, 8, 14, 10, 0, 0).unwrap())
}

fn not_comment(l: &str) -> bool {
    !l.trim_start().starts_with('#')
}

#[derive(Default, Debug)]
struct Tally {
    checked_true: usize,
    checked_false: usize,
    stateful: usize,
    constrained: usize,
    time_ok: usize,
    time_checked: usize,
    elsewhere: std::collections::BTreeMap<&'static str, usize>,
    failures: Vec<String>,
}

fn is_failure_from(doc: &Value) -> bool {
    get_str(doc, "event.outcome") == "failure" && get(doc, "source.address").is_some()
}

/// Lines fail2ban leaves uncounted because it counts the same attempt on
/// another line (or only in its aggressive mode), while each one alone is a
/// failed authentication from that source, and we say so:
/// - pam_unix "authentication failure" (sshd's "Failed password" follows);
/// - "Failed publickey" (key probing before an accepted key);
/// - auditd USER_LOGIN res=failed (USER_AUTH/USER_ERR is counted);
/// - "Disconnect(ing|ed) ... user U IP port P ... [preauth]" after "Invalid user".
fn counted_elsewhere(doc: &Value) -> Option<&'static str> {
    let action = get_str(doc, "event.action");
    Some(match action {
        "pam_auth_failure" => "pam_unix failure",
        "ssh_login" if get_str(doc, "ssh.method") == "publickey" => "Failed publickey",
        "user_login" => "auditd USER_LOGIN",
        "ssh_disconnect" if get(doc, "user.name").is_some() => "preauth disconnect of a user",
        _ => return None,
    })
}

fn check_fail_json(name: &str, text: &str, run: &Run, t: &mut Tally) {
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let Some(js) = line.trim_start().strip_prefix("# failJSON:") else {
            continue;
        };
        let want: Value =
            serde_json::from_str(js.trim()).unwrap_or_else(|e| panic!("{name}:{}: {e}", i + 1));
        let (no, target) = (i + 2, lines.get(i + 1).copied().unwrap_or(""));
        if want.get("constraint").is_some() {
            // Depends on fail2ban's mode or jail name: not a property of the line.
            t.constrained += 1;
            continue;
        }
        let Some(doc) = run.docs.get(&no) else {
            t.failures
                .push(format!("{name}:{no}: no event for {target}"));
            continue;
        };
        let matched = want["match"].as_bool().unwrap_or(false);
        let host = want.get("host").and_then(Value::as_str);
        if matched {
            // fail2ban's multi-line state: a later "Accepted" after failures of
            // other users, or a "Too many failures" line whose host was on an
            // earlier line, or a plain "Connection closed" after a failed key
            // exchange of the same pid. One line alone cannot say that.
            if target.contains("Accepted ")
                || (target.contains("Connection closed by") && !target.contains("[preauth]"))
            {
                t.stateful += 1;
                continue;
            }
            t.checked_true += 1;
            if get_str(doc, "event.outcome") != "failure" {
                t.failures
                    .push(format!("{name}:{no}: not a failure: {target}"));
                continue;
            }
            match host {
                Some(h)
                    if target.contains(h) || target.contains(&h.replace("192.030", "192.30")) =>
                {
                    let ip = get_str(doc, "source.ip");
                    let addr = get_str(doc, "source.address");
                    let canon = vigil_normalize::ecs::parse_ip(h).map(|ip| ip.to_string());
                    if addr != h && Some(ip.to_string()) != canon {
                        t.failures.push(format!(
                            "{name}:{no}: source {addr:?}/{ip:?} != {h:?}: {target}"
                        ));
                    }
                }
                Some(_) => t.stateful += 1, // host from an earlier line (by pid)
                None => {}
            }
            if let Some(u) = want.get("user").and_then(Value::as_str) {
                if get_str(doc, "user.name") != u {
                    t.failures.push(format!(
                        "{name}:{no}: user {:?} != {u:?}",
                        get_str(doc, "user.name")
                    ));
                }
            }
        } else {
            t.checked_false += 1;
            if let Some(class) = counted_elsewhere(doc) {
                *t.elsewhere.entry(class).or_default() += 1;
            } else if is_failure_from(doc) {
                t.failures.push(format!(
                    "{name}:{no}: a failure from a source, fail2ban says no match: {target}"
                ));
            }
        }
        if let (Some(time), true) = (
            want.get("time").and_then(Value::as_str),
            starts_with_month(target),
        ) {
            if let Some(ts) = doc.get("@timestamp").and_then(Value::as_str) {
                t.time_checked += 1;
                if ts.trim_end_matches('Z').starts_with(time) {
                    t.time_ok += 1;
                } else {
                    t.failures.push(format!("{name}:{no}: time {ts} != {time}"));
                }
            }
        }
    }
}

/// Classic syslog dates (fail2ban reads other stamps in its local zone).
fn starts_with_month(line: &str) -> bool {
    let m = line.get(..4).unwrap_or("");
    [
        "Jan ", "Feb ", "Mar ", "Apr ", "May ", "Jun ", "Jul ", "Aug ", "Sep ", "Oct ", "Nov ",
        "Dec ",
    ]
    .contains(&m)
}

#[test]
fn fail2ban_sshd_logs() {
    let Some(dir) = samples("fail2ban_sshd_logs") else {
        return;
    };
    let mut total = Tally::default();
    for path in files(&dir.join("sshd"), ".log") {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = read(&path);
        if text.lines().all(|l| !not_comment(l) || l.trim().is_empty()) {
            eprintln!("sshd/{name}: only comments, nothing to parse");
            continue;
        }
        let run = run(&text, fail2ban_now(), not_comment);
        let want = if name.starts_with("selinux") {
            Dataset::Auditd
        } else {
            Dataset::LinuxAuth
        };
        assert_eq!(run.dataset, want, "{name}: detected format");
        let mut t = Tally::default();
        check_fail_json(&name, &text, &run, &mut t);
        eprintln!(
            "sshd/{name}: {} lines, {} events, {} rejected; failJSON: {} match:true checked, {} match:false checked, {} stateful, {} mode-constrained skipped; time {}/{}; match:false counted elsewhere by fail2ban: {:?}; {} disagreements",
            run.lines_in, run.events.len(), run.rejects.len(), t.checked_true, t.checked_false, t.stateful, t.constrained, t.time_ok, t.time_checked, t.elsewhere, t.failures.len()
        );
        assert_eq!(run.lines_out(), run.lines_in, "{name}: lines lost");
        assert!(run.rejects.is_empty(), "{name}: rejects {:#?}", run.rejects);
        total.failures.extend(t.failures);
        total.checked_true += t.checked_true;
        total.checked_false += t.checked_false;
        for (k, n) in t.elsewhere {
            *total.elsewhere.entry(k).or_default() += n;
        }
    }
    assert!(
        total.checked_true >= 190,
        "too few failJSON checks: {}",
        total.checked_true
    );
    // The deliberate differences stay a minority of the match:false lines.
    let elsewhere: usize = total.elsewhere.values().sum();
    assert!(
        elsewhere * 2 < total.checked_false,
        "{elsewhere} of {} match:false differ",
        total.checked_false
    );
    assert!(
        total.failures.is_empty(),
        "{} disagreements:\n{}",
        total.failures.len(),
        total.failures.join("\n")
    );
}

#[test]
fn loghub_linux_2k() {
    let Some(dir) = samples("loghub_linux_2k") else {
        return;
    };
    let text = read(&dir.join("linux/Linux_2k.log"));
    // The log is from 2005 (loghub): any reference in the following January works.
    let run = run(
        &text,
        YearHint::Reference(Utc.with_ymd_and_hms(2006, 1, 10, 0, 0, 0).unwrap()),
        |_| true,
    );
    assert_eq!(run.dataset, Dataset::LinuxAuth);
    let count = |f: &dyn Fn(&Value) -> bool| run.events.iter().filter(|d| f(d)).count();
    let failures = count(&|d| get_str(d, "event.action") == "pam_auth_failure");
    let with_ip = count(&|d| {
        get_str(d, "event.action") == "pam_auth_failure" && get(d, "source.ip").is_some()
    });
    let sessions = count(&|d| get_str(d, "event.action").starts_with("session_"));
    let classified = count(&|d| get(d, "event.action").is_some());
    let no_time = count(&|d| d.get("@timestamp").is_none());
    eprintln!(
        "linux/Linux_2k.log: {} lines, {} events, {} rejected; {} classified ({} pam_auth_failure, {} with source.ip, {} session), {} without time",
        run.lines_in, run.events.len(), run.rejects.len(), classified, failures, with_ip, sessions, no_time
    );
    for r in &run.rejects {
        eprintln!("  reject: {r}");
    }
    assert_eq!(run.lines_out(), run.lines_in, "lines lost");
    // Each reject must be a line with no syslog header at all.
    for r in &run.rejects {
        assert!(!r.detail.contains("sshd"), "unexpected reject {r}");
    }
    assert!(run.rejects.len() <= 2, "{:#?}", run.rejects);
    assert_eq!(no_time, 0);
    // `grep -c 'authentication failure' Linux_2k.log`, less the rhost-less ones.
    let expected = text
        .lines()
        .filter(|l| l.contains("authentication failure;"))
        .count();
    assert_eq!(failures, expected);
    assert!(
        with_ip > 0 && with_ip < failures,
        "rhost is a host name on some lines"
    );
    let first = &run.events[0];
    assert_eq!(first["@timestamp"], "2005-06-14T15:16:01Z");
    assert_eq!(get_str(first, "host.name"), "combo");
}
