use super::*;
use crate::ecs::lookup;
use chrono::TimeZone;
use serde_json::json;

fn reference() -> YearHint {
    YearHint::Reference(Utc.with_ymd_and_hms(2024, 3, 2, 0, 0, 0).unwrap())
}

fn p(line: &str) -> Value {
    Value::Object(parse_line(line, reference()).unwrap_or_else(|| panic!("no parse: {line}")))
}

fn f<'a>(v: &'a Value, path: &str) -> &'a Value {
    lookup(v, path).unwrap_or(&Value::Null)
}

#[test]
fn year_inference_and_rollover() {
    let jan = YearHint::Reference(Utc.with_ymd_and_hms(2024, 1, 3, 8, 0, 0).unwrap());
    assert_eq!(infer_year(jan, (12, 31, 23, 59, 0)), 2023);
    assert_eq!(infer_year(jan, (1, 2, 10, 0, 0)), 2024);
    // Clock skew of a few hours stays in the same year.
    assert_eq!(infer_year(jan, (1, 3, 20, 0, 0)), 2024);
    assert_eq!(infer_year(YearHint::Year(2019), (12, 31, 0, 0, 0)), 2019);
    let v = Value::Object(
        parse_line(
            "Dec 31 23:59:58 h sshd[1]: Connection closed by 1.2.3.4 port 2",
            jan,
        )
        .unwrap(),
    );
    assert_eq!(v["@timestamp"], "2023-12-31T23:59:58Z");
}

#[test]
fn envelopes() {
    let v = p(
        "Mar  1 12:00:00 web1 sshd[123]: Accepted password for alice from 10.0.0.5 port 51000 ssh2",
    );
    assert_eq!(v["@timestamp"], "2024-03-01T12:00:00Z");
    assert_eq!(f(&v, "host.name"), "web1");
    assert_eq!(f(&v, "process.name"), "sshd");
    assert_eq!(f(&v, "process.pid"), 123);
    assert_eq!(f(&v, "event.dataset"), "linux.auth");
    assert!(f(&v, "message").as_str().unwrap().starts_with("Mar  1"));

    let v = p(
        "2024-03-01T12:00:00.123456+02:00 web1 sshd[123]: Invalid user bob from 10.0.0.6 port 4",
    );
    assert_eq!(v["@timestamp"], "2024-03-01T10:00:00.123456Z");
    assert_eq!(f(&v, "event.action"), "ssh_invalid_user");

    let v = p("<38>1 2019-07-08T17:40:16.954167-04:00 h.example.com sshd 57915 - - Failed unknown for invalid user redmond from 192.0.2.1 port 59197 ssh2");
    assert_eq!(v["@timestamp"], "2019-07-08T21:40:16.954167Z");
    assert_eq!(f(&v, "host.name"), "h.example.com");
    assert_eq!(f(&v, "process.pid"), 57915);
    assert_eq!(f(&v, "event.outcome"), "failure");
    assert_eq!(f(&v, "source.ip"), "192.0.2.1");

    let v = p("srv sshd[13709]: Failed password for root from 192.0.2.9 port 22 ssh2");
    assert!(v.get("@timestamp").is_none());
    assert_eq!(f(&v, "source.ip"), "192.0.2.9");

    let v = p("Mar  3 00:17:22 [sshd]: User root from 211.188.220.49 not allowed because not listed in AllowUsers");
    assert_eq!(f(&v, "process.name"), "sshd");
    assert_eq!(f(&v, "event.outcome"), "failure");

    assert!(parse_line("hello world", reference()).is_none());
}

#[test]
fn sshd_logins() {
    let v = p("Mar  1 12:00:00 h sshd[1]: Failed password for invalid user admin from 203.0.113.9 port 40022 ssh2");
    assert_eq!(f(&v, "event.action"), "ssh_login");
    assert_eq!(f(&v, "event.outcome"), "failure");
    assert_eq!(f(&v, "event.category"), &json!(["authentication"]));
    assert_eq!(f(&v, "user.name"), "admin");
    assert_eq!(f(&v, "source.ip"), "203.0.113.9");
    assert_eq!(f(&v, "source.port"), 40022);
    assert_eq!(f(&v, "ssh.invalid_user"), true);
    assert_eq!(f(&v, "ssh.method"), "password");
    assert_eq!(f(&v, "network.transport"), "tcp");
    assert_eq!(f(&v, "related.ip"), &json!(["203.0.113.9"]));
    assert_eq!(f(&v, "related.user"), &json!(["admin"]));
    assert_eq!(f(&v, "related.hosts"), &json!(["h"]));

    let v = p("Mar  1 12:00:00 h sshd[1]: Accepted publickey for git from 192.0.2.1 port 57904 ssh2: RSA SHA256:abc");
    assert_eq!(f(&v, "event.outcome"), "success");
    assert_eq!(f(&v, "ssh.signature"), "RSA SHA256:abc");

    let v = p("Mar  1 12:00:00 h sshd[1]: Failed keyboard-interactive/pam for root from ::ffff:1.2.3.4 port 1 ssh2");
    assert_eq!(f(&v, "source.ip"), "1.2.3.4");
    // Injection in the user name: the last "from H port P" is the peer.
    let v = p("Nov 11 08:04:52 h sshd[2]: Failed password for invalid user test from 10.10.1.2 port 55555 ssh2 from 127.0.0.1 port 58946 ssh2");
    assert_eq!(f(&v, "source.ip"), "127.0.0.1");
    assert_eq!(f(&v, "user.name"), "test from 10.10.1.2 port 55555 ssh2");
}

#[test]
fn sshd_disconnects_and_preauth() {
    let v = p("Mar  1 12:00:00 h sshd[1]: Connection closed by invalid user admin 192.0.2.3 port 5 [preauth]");
    assert_eq!(f(&v, "event.action"), "ssh_disconnect");
    assert_eq!(f(&v, "event.outcome"), "failure");
    assert_eq!(f(&v, "user.name"), "admin");
    assert_eq!(f(&v, "source.ip"), "192.0.2.3");
    let v = p("Mar  1 12:00:00 h sshd[1]: Connection closed by invalid user 192.0.2.68 port 34916 [preauth]");
    assert_eq!(f(&v, "source.ip"), "192.0.2.68");
    assert_eq!(f(&v, "source.port"), 34916);
    let v = p("Mar  1 12:00:00 h sshd[1]: Disconnected from user alice 192.0.2.4 port 7");
    assert_eq!(f(&v, "event.outcome"), "success");
    let v = p("Mar  1 12:00:00 h sshd[1]: Received disconnect from 198.51.100.76 port 58846:11: Bye Bye [preauth]");
    assert_eq!(f(&v, "source.ip"), "198.51.100.76");
    assert_eq!(f(&v, "ssh.code"), "11");
    assert_eq!(f(&v, "event.outcome"), "failure");
    let v = p("Mar  1 12:00:00 h sshd[1]: error: maximum authentication attempts exceeded for root from 61.0.0.1 port 49940 ssh2 [preauth]");
    assert_eq!(f(&v, "event.action"), "ssh_max_auth_exceeded");
    assert_eq!(f(&v, "source.ip"), "61.0.0.1");
    let v = p("Mar  1 12:00:00 h sshd[1]: Disconnecting invalid user xxx 192.0.2.7 port 49941: Too many authentication failures [preauth]");
    assert_eq!(f(&v, "user.name"), "xxx");
    assert_eq!(f(&v, "source.ip"), "192.0.2.7");
    assert_eq!(f(&v, "event.outcome"), "failure");
}

#[test]
fn repeated_messages() {
    let v = p("Mar  1 12:00:00 h sshd[1]: message repeated 3 times: [ Failed password for root from 192.0.2.1 port 1 ssh2]");
    assert_eq!(f(&v, "syslog.repeat_count"), 3);
    assert_eq!(f(&v, "event.outcome"), "failure");
    assert_eq!(f(&v, "source.ip"), "192.0.2.1");
}

#[test]
fn pam_lines() {
    let v = p("Mar  1 12:00:00 h sshd[9]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=1.2.3.4  user=root");
    assert_eq!(f(&v, "event.action"), "pam_auth_failure");
    assert_eq!(f(&v, "user.name"), "root");
    assert_eq!(f(&v, "source.ip"), "1.2.3.4");
    assert_eq!(f(&v, "pam.tty"), "ssh");
    assert_eq!(f(&v, "pam.service"), "sshd");
    let v = p("Mar  1 12:00:00 h sshd[9]: pam_unix(sshd:session): session opened for user bob(uid=1000) by (uid=0)");
    assert_eq!(f(&v, "event.action"), "session_open");
    assert_eq!(f(&v, "user.name"), "bob");
    assert_eq!(f(&v, "user.id"), "1000");
    // Old PAM tag form (loghub Linux).
    let v = p("Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=218.188.2.4 ");
    assert_eq!(f(&v, "process.name"), "sshd");
    assert_eq!(f(&v, "source.ip"), "218.188.2.4");
    assert_eq!(f(&v, "event.outcome"), "failure");
    let v = p("Jun 15 04:06:20 combo su(pam_unix)[21416]: session closed for user cyrus");
    assert_eq!(f(&v, "event.action"), "session_close");
    let v = p("Mar  1 12:00:00 h passwd[5]: pam_unix(passwd:chauthtok): password changed for bob");
    assert_eq!(f(&v, "event.action"), "password_change");
    assert_eq!(f(&v, "user.target.name"), "bob");
}

#[test]
fn sudo_and_su() {
    let v = p("Mar  1 12:00:00 h sudo[7]:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/bash -c id");
    assert_eq!(f(&v, "event.action"), "sudo");
    assert_eq!(f(&v, "event.outcome"), "success");
    assert_eq!(f(&v, "user.name"), "alice");
    assert_eq!(f(&v, "user.effective.name"), "root");
    assert_eq!(f(&v, "process.executable"), "/bin/bash");
    assert_eq!(f(&v, "process.command_line"), "/bin/bash -c id");
    assert_eq!(f(&v, "process.args"), &json!(["/bin/bash", "-c", "id"]));
    assert_eq!(f(&v, "sudo.PWD"), "/home/alice");
    let v = p("Mar  1 12:00:00 h sudo[7]:    alice : 3 incorrect password attempts ; TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/bash");
    assert_eq!(f(&v, "event.outcome"), "failure");
    assert_eq!(f(&v, "sudo.status"), "3 incorrect password attempts");
    let v = p("Mar  1 12:00:00 h su[8]: (to root) alice on pts/1");
    assert_eq!(f(&v, "event.action"), "su");
    assert_eq!(f(&v, "user.name"), "alice");
    assert_eq!(f(&v, "user.effective.name"), "root");
    let v = p("Mar  1 12:00:00 h su[8]: FAILED su for root by alice");
    assert_eq!(f(&v, "event.outcome"), "failure");
}

#[test]
fn account_changes() {
    let v = p("Mar  1 12:00:00 h useradd[10]: new user: name=bob, UID=1001, GID=1001, home=/home/bob, shell=/bin/bash, from=/dev/pts/0");
    assert_eq!(f(&v, "event.action"), "user_add");
    assert_eq!(f(&v, "event.category"), &json!(["iam"]));
    assert_eq!(f(&v, "user.target.name"), "bob");
    assert_eq!(f(&v, "user.target.id"), "1001");
    assert_eq!(f(&v, "account.shell"), "/bin/bash");
    let v = p("Mar  1 12:00:00 h groupadd[10]: new group: name=dev, GID=1002");
    assert_eq!(f(&v, "event.action"), "group_add");
    assert_eq!(f(&v, "group.name"), "dev");
    let v = p("Mar  1 12:00:00 h usermod[11]: add 'bob' to group 'sudo'");
    assert_eq!(f(&v, "event.action"), "user_modify");
    assert_eq!(f(&v, "group.name"), "sudo");
    assert_eq!(f(&v, "user.target.name"), "bob");
    let v =
        p("Mar  1 12:00:00 h usermod[11]: change user 'bob' shell from '/bin/sh' to '/bin/bash'");
    assert_eq!(f(&v, "event.action"), "user_modify");
    let v = p("Mar  1 12:00:00 h userdel[12]: delete user 'bob'");
    assert_eq!(f(&v, "event.action"), "user_delete");
    let v = p("Mar  1 12:00:00 h groupdel[12]: group 'dev' removed");
    assert_eq!(f(&v, "event.action"), "group_delete");
    let v = p(
        "Mar  1 12:00:00 h chpasswd[13]: pam_unix(chpasswd:chauthtok): password changed for carol",
    );
    assert_eq!(f(&v, "event.action"), "password_change");
}

#[test]
fn unknown_programs_keep_envelope() {
    let v = p("Jun 14 15:16:02 combo kernel: Linux version 2.6.5");
    assert_eq!(f(&v, "process.name"), "kernel");
    assert!(lookup(&v, "event.action").is_none());
    assert_eq!(f(&v, "event.dataset"), "linux.auth");
}

#[test]
fn parser_reports_bad_lines_and_continues() {
    let mut pr = LinuxAuthParser::new(reference());
    let mut out = Vec::new();
    pr.push_line("garbage", 1, &mut out);
    pr.push_line("", 2, &mut out);
    pr.push_line(
        "Mar  1 12:00:00 h sshd[1]: Invalid user x from 1.2.3.4",
        3,
        &mut out,
    );
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].as_ref().unwrap_err().line, 1);
    assert_eq!(out[1].as_ref().unwrap().line, 3);
}
