//! Which source a file is, from its first non-empty lines.

use serde_json::Value;

use crate::{linux_auth, vpcflow, Dataset, YearHint};

fn classify(line: &str) -> Option<Dataset> {
    let t = line.trim();
    if t.is_empty() {
        return None;
    }
    if let Some(rest) = t.strip_prefix('#') {
        let zeek = [
            "separator",
            "fields",
            "types",
            "path",
            "set_separator",
            "unset_field",
            "empty_field",
        ];
        return zeek
            .iter()
            .any(|k| rest.starts_with(k))
            .then_some(Dataset::ZeekConn);
    }
    if t.starts_with('{') {
        let Ok(Value::Object(m)) = serde_json::from_str::<Value>(t) else {
            return None;
        };
        let api = m.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        if api.starts_with("audit.k8s.io/") || (m.contains_key("auditID") && m.contains_key("verb"))
        {
            return Some(Dataset::K8sAudit);
        }
        if m.contains_key("id.orig_h") || (m.contains_key("_path") && m.contains_key("ts")) {
            return Some(Dataset::ZeekConn);
        }
        return None;
    }
    let body = match t.strip_prefix("node=") {
        Some(r) => r.split_once(' ').map_or("", |(_, b)| b),
        None => t,
    };
    if body.starts_with("type=") && body.contains(" msg=audit(") {
        return Some(Dataset::Auditd);
    }
    if vpcflow::is_header(t) {
        return Some(Dataset::AwsVpcFlow);
    }
    let toks: Vec<&str> = t.split_whitespace().collect();
    if toks.len() >= 14
        && toks[0].bytes().all(|b| b.is_ascii_digit())
        && (toks[2].starts_with("eni-") || toks[2] == "-")
    {
        return Some(Dataset::AwsVpcFlow);
    }
    // Any time works for detection.
    let env = linux_auth::parse_envelope(t, YearHint::Year(2000))?;
    (env.timestamp.is_some() || env.appname.is_some()).then_some(Dataset::LinuxAuth)
}

/// The dataset most of the first (up to 20) non-empty lines look like, or
/// None. Generic JSON is never detected: it needs its mapping.
pub fn detect_format(sample_lines: &[&str]) -> Option<Dataset> {
    let mut votes: Vec<(Dataset, usize)> = Vec::new();
    for line in sample_lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .take(20)
    {
        if let Some(d) = classify(line) {
            match votes.iter_mut().find(|(v, _)| *v == d) {
                Some((_, n)) => *n += 1,
                None => votes.push((d, 1)),
            }
        }
    }
    let best = votes.iter().map(|(_, n)| *n).max()?;
    votes.into_iter().find(|(_, n)| *n == best).map(|(d, _)| d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_each_source() {
        let cases: &[(&str, Option<Dataset>)] = &[
            ("Mar  1 12:00:00 host sshd[123]: Accepted password for a from 1.2.3.4 port 1 ssh2", Some(Dataset::LinuxAuth)),
            ("2024-03-01T12:00:00.123456+00:00 host sshd[123]: x", Some(Dataset::LinuxAuth)),
            ("type=SYSCALL msg=audit(1700000000.123:456): arch=c000003e", Some(Dataset::Auditd)),
            ("node=h1 type=EOE msg=audit(1700000000.123:456): ", Some(Dataset::Auditd)),
            ("#separator \\x09\n", Some(Dataset::ZeekConn)),
            (r#"{"ts":1.5,"uid":"C","id.orig_h":"1.2.3.4"}"#, Some(Dataset::ZeekConn)),
            (r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","verb":"get"}"#, Some(Dataset::K8sAudit)),
            ("2 123456789010 eni-abc 1.1.1.1 2.2.2.2 1 2 6 1 1 1 2 ACCEPT OK", Some(Dataset::AwsVpcFlow)),
            ("version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status", Some(Dataset::AwsVpcFlow)),
            (r#"{"a":1}"#, None),
            ("just some words", None),
            ("", None),
        ];
        for (line, want) in cases {
            assert_eq!(&detect_format(&[line]), want, "{line}");
        }
    }

    #[test]
    fn majority_and_comments() {
        let lines = [
            "# failJSON: { \"match\": true }",
            "",
            "type=USER_LOGIN msg=audit(1373330716.415:4063): pid=1 res=failed",
            "type=USER_LOGIN msg=audit(1373330716.415:4064): pid=1 res=failed",
        ];
        assert_eq!(detect_format(&lines), Some(Dataset::Auditd));
    }
}
