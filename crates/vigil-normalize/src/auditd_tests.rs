use super::*;
use crate::ecs::lookup;
use crate::{parse_all, YearHint};
use serde_json::json;

fn opts() -> Options {
    Options::new(YearHint::Year(2024))
}

fn f<'a>(v: &'a Value, path: &str) -> &'a Value {
    lookup(v, path).unwrap_or(&Value::Null)
}

const EXEC: &str = r#"type=SYSCALL msg=audit(1700000000.123:456): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=0 items=2 ppid=100 pid=200 auid=1000 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 ses=1 comm="ls" exe="/usr/bin/ls" key="exec"
type=EXECVE msg=audit(1700000000.123:456): argc=3 a0="ls" a1="-l" a2=2F746D702F6120622063
type=CWD msg=audit(1700000000.123:456): cwd="/root"
type=PATH msg=audit(1700000000.123:456): item=0 name="/usr/bin/ls" inode=1 dev=08:01 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL
type=PATH msg=audit(1700000000.123:456): item=1 name="/lib64/ld-linux-x86-64.so.2" inode=2 dev=08:01 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL
type=PROCTITLE msg=audit(1700000000.123:456): proctitle=6C73002D6C002F746D702F6120622063
type=EOE msg=audit(1700000000.123:456): "#;

#[test]
fn execve_event_grouped_into_one() {
    let out = parse_all(&mut AuditdParser::new(&opts()), EXEC);
    assert_eq!(out.len(), 1, "{out:?}");
    let p = out[0].as_ref().unwrap();
    assert_eq!(p.line, 1);
    let v = &p.doc;
    assert_eq!(v["sequence"], 456);
    assert_eq!(v["@timestamp"], "2023-11-14T22:13:20.123Z");
    assert_eq!(
        v["record_types"],
        json!([
            "SYSCALL",
            "EXECVE",
            "CWD",
            "PATH",
            "PATH",
            "PROCTITLE",
            "EOE"
        ])
    );
    assert_eq!(v["PATH"].as_array().unwrap().len(), 2);
    assert_eq!(v["EXECVE"]["a2"], "/tmp/a b c");
    assert_eq!(f(v, "event.action"), "executed");
    assert_eq!(f(v, "event.outcome"), "success");
    assert_eq!(f(v, "event.category"), &json!(["process"]));
    assert_eq!(f(v, "process.args"), &json!(["ls", "-l", "/tmp/a b c"]));
    assert_eq!(f(v, "process.command_line"), "ls -l /tmp/a b c");
    assert_eq!(f(v, "process.title"), "ls -l /tmp/a b c");
    assert_eq!(f(v, "process.pid"), 200);
    assert_eq!(f(v, "process.parent.pid"), 100);
    assert_eq!(f(v, "process.working_directory"), "/root");
    assert_eq!(v["Image"], "/usr/bin/ls");
    assert_eq!(v["CommandLine"], "ls -l /tmp/a b c");
    assert_eq!(v["CurrentDirectory"], "/root");
    assert_eq!(v["ProcessId"], "200");
    assert_eq!(v["ParentProcessId"], "100");
    assert_eq!(v["tags"], json!(["exec"]));
    assert_eq!(f(v, "user.id"), "0");
    assert_eq!(f(v, "user.audit.id"), "1000");
    assert_eq!(v["message"].as_str().unwrap().lines().count(), 7);
}

#[test]
fn parent_image_from_earlier_event_same_host_only() {
    let parent = "node=a type=SYSCALL msg=audit(1700000000.000:1): arch=c000003e syscall=59 success=yes exit=0 ppid=1 pid=100 uid=0 comm=\"bash\" exe=\"/usr/bin/bash\"\nnode=a type=EOE msg=audit(1700000000.000:1): \n";
    let child = EXEC
        .lines()
        .map(|l| format!("node=a {l}\n"))
        .collect::<String>();
    let other = EXEC
        .lines()
        .map(|l| format!("node=b {l}\n"))
        .collect::<String>();
    let text = format!("{parent}{child}{other}");
    let docs = parse_text(&text, &opts());
    assert_eq!(docs.len(), 3);
    assert_eq!(docs[1]["ParentImage"], "/usr/bin/bash");
    assert_eq!(f(&docs[1], "process.parent.executable"), "/usr/bin/bash");
    assert_eq!(f(&docs[1], "host.name"), "a");
    assert!(
        docs[2].get("ParentImage").is_none(),
        "host b has no pid 100"
    );
}

#[test]
fn interleaved_serials_and_no_eoe() {
    let text = "type=SYSCALL msg=audit(1.000:5): arch=c000003e syscall=2 success=no exit=-13 pid=1 comm=\"a\" exe=\"/a\"\n\
type=SYSCALL msg=audit(1.000:4): arch=c000003e syscall=2 success=yes exit=3 pid=2 comm=\"b\" exe=\"/b\"\n\
type=PROCTITLE msg=audit(1.000:4): proctitle=\"b\"\n\
type=PROCTITLE msg=audit(1.000:5): proctitle=\"a\"\n\
type=USER_LOGIN msg=audit(1.000:6): pid=3 uid=0 auid=4294967295 ses=4294967295 msg='op=login acct=\"root\" exe=\"/usr/sbin/sshd\" hostname=? addr=10.1.1.1 terminal=ssh res=failed'\n";
    let docs = parse_text(text, &opts());
    assert_eq!(docs.len(), 3);
    // The user-space record comes out at once; the others on flush.
    assert_eq!(f(&docs[0], "event.action"), "user_login");
    assert_eq!(f(&docs[0], "event.outcome"), "failure");
    assert_eq!(f(&docs[0], "source.ip"), "10.1.1.1");
    assert_eq!(f(&docs[0], "user.name"), "root");
    assert_eq!(f(&docs[0], "event.category"), &json!(["authentication"]));
    assert!(f(&docs[0], "user.audit.id").is_null());
    let by_seq = |s: u64| docs.iter().find(|d| d["sequence"] == s).unwrap();
    assert_eq!(by_seq(5)["record_types"], json!(["SYSCALL", "PROCTITLE"]));
    assert_eq!(f(by_seq(5), "event.outcome"), "failure");
    assert_eq!(f(by_seq(5), "event.action"), "open");
    assert_eq!(by_seq(4)["PROCTITLE"]["proctitle"], "b");
}

#[test]
fn newer_serial_ends_old_events_and_bound_holds() {
    let mut a = AuditdAssembler::new(3).with_reorder_window(2);
    let mut done = Vec::new();
    for s in 1..=3u64 {
        let l = format!("type=SYSCALL msg=audit(10.0:{s}): syscall=1 pid=1");
        a.push(parse_record(&l).unwrap(), &l, s as usize, &mut done);
    }
    assert!(done.is_empty());
    // Serial 10 is more than 2 ahead of 1..3 → all three end.
    let l = "type=SYSCALL msg=audit(10.0:10): syscall=1";
    a.push(parse_record(l).unwrap(), l, 4, &mut done);
    assert_eq!(done.len(), 3);
    assert_eq!(a.open_events(), 1);
    // Bound: never more than 3 open.
    let mut a = AuditdAssembler::new(3).with_reorder_window(1000);
    let mut done = Vec::new();
    for s in 1..=10u64 {
        let l = format!("type=SYSCALL msg=audit(10.0:{s}): syscall=1");
        a.push(parse_record(&l).unwrap(), &l, s as usize, &mut done);
        assert!(a.open_events() <= 3);
    }
    assert_eq!(done.len(), 7);
}

#[test]
fn enriched_names() {
    let text = "type=SYSCALL msg=audit(1700000000.5:9): arch=c000003e syscall=59 success=yes exit=0 ppid=1 pid=2 auid=1000 uid=0 euid=0 comm=\"id\" exe=\"/usr/bin/id\" key=(null)\x1dARCH=x86_64 SYSCALL=execve AUID=\"alice\" UID=\"root\" EUID=\"root\"\ntype=EXECVE msg=audit(1700000000.5:9): argc=1 a0=\"id\"\ntype=EOE msg=audit(1700000000.5:9): \n";
    let docs = parse_text(text, &opts());
    assert_eq!(docs.len(), 1);
    let v = &docs[0];
    assert_eq!(f(v, "user.name"), "root");
    assert_eq!(f(v, "user.audit.name"), "alice");
    assert_eq!(v["User"], "root");
    assert_eq!(v["SYSCALL"]["AUID"], "alice");
    assert!(v.get("tags").is_none());
}

#[test]
fn bad_lines_rejected_others_kept() {
    let text = format!("garbage\n{EXEC}\ntype=X msg=audit(nope)\n");
    let out = parse_all(&mut AuditdParser::new(&opts()), &text);
    let errs: Vec<usize> = out
        .iter()
        .filter_map(|r| r.as_ref().err().map(|e| e.line))
        .collect();
    assert_eq!(errs, vec![1, 9]);
    assert_eq!(out.iter().filter(|r| r.is_ok()).count(), 1);
}

#[test]
fn pid_cache_is_bounded() {
    let mut c = PidCache::new(2);
    c.insert("h", 1, "/a");
    c.insert("h", 2, "/b");
    c.insert("h", 1, "/c");
    c.insert("h", 3, "/d");
    assert_eq!(c.len(), 2);
    assert_eq!(c.get("h", 2), None);
    assert_eq!(c.get("h", 1), Some("/c"));
    assert_eq!(c.get("h", 3), Some("/d"));
}

#[test]
fn long_execve_argument_chunks() {
    let r = parse_record(
        "type=EXECVE msg=audit(1.0:1): argc=2 a0=\"sh\" a1_len=6 a1[0]=616263 a1[1]=646566",
    )
    .unwrap();
    assert_eq!(event::execve_args(&r), vec!["sh", "abcdef"]);
}

#[test]
fn sockaddr_decoding_and_peer() {
    assert_eq!(
        crate::auditd_record::decode_sockaddr("0200E31C4853E6640000000000000000"),
        Some(("72.83.230.100".to_string(), Some(58140)))
    );
    assert_eq!(
        crate::auditd_record::decode_sockaddr(
            "0A000050000000000000000000000000000000000000000100000000"
        ),
        Some(("::1".to_string(), Some(80)))
    );
    assert_eq!(
        crate::auditd_record::decode_sockaddr("01002F7661722F72756E2F6E7363642F736F636B657400"),
        Some(("/var/run/nscd/socket".to_string(), None))
    );
    assert_eq!(crate::auditd_record::decode_sockaddr("02"), None);
    let text = "type=SYSCALL msg=audit(1.5:9): arch=c000003e syscall=42 success=yes exit=0 pid=7 comm=\"curl\" exe=\"/usr/bin/curl\"\ntype=SOCKADDR msg=audit(1.5:9): saddr=02000050C000020A0000000000000000\ntype=EOE msg=audit(1.5:9): \n";
    let docs = parse_text(text, &opts());
    assert_eq!(f(&docs[0], "event.action"), "connect");
    assert_eq!(f(&docs[0], "event.category"), &json!(["network"]));
    assert_eq!(f(&docs[0], "destination.ip"), "192.0.2.10");
    assert_eq!(f(&docs[0], "destination.port"), 80);
}
