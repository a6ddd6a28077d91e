use super::*;
use proptest::prelude::*;
use serde_json::json;

fn key() -> SigningKey {
    SigningKey::from_bytes(&[3u8; 32])
}

fn row(i: usize) -> Row {
    Row {
        dataset: "k8s.audit".into(),
        who: format!("user{} (10.0.0.{})", i % 5, i % 250),
        what: format!("get pods ns/p{i}"),
        result: if i.is_multiple_of(7) {
            String::new()
        } else {
            "200".into()
        },
    }
}

fn frame_of(bytes: &[u8]) -> FramePos {
    FramePos::parse(bytes[..FRAME_HEADER_LEN].try_into().unwrap(), 0).unwrap()
}

#[test]
fn a_frame_decodes_to_its_rows_all_or_picked() {
    let rows: Vec<Row> = (0..300).map(row).collect();
    let bytes = encode_frame("k8s.audit/2026-11-20", 5, &rows, 3, &key()).unwrap();
    let f = frame_of(&bytes);
    assert_eq!((f.first_seq, f.count, f.end()), (5, 300, 305));
    let payload = &bytes[FRAME_HEADER_LEN..];
    assert!(f.checks(payload));
    assert!(f.signed_by(&key().verifying_key(), "k8s.audit/2026-11-20"));
    assert!(!f.signed_by(&key().verifying_key(), "k8s.audit/2026-11-21"));
    let all = decode_frame(&f, payload, None).unwrap();
    assert_eq!(all.into_iter().map(|x| x.1).collect::<Vec<_>>(), rows);
    let picked = decode_frame(&f, payload, Some(&[0usize, 7, 7, 299][..])).unwrap();
    let want: Vec<(usize, Row)> = vec![(0, row(0)), (7, row(7)), (299, row(299))];
    assert_eq!(picked, want);
}

#[test]
fn a_changed_byte_fails_the_checksum_or_the_signature() {
    let rows: Vec<Row> = (0..50).map(row).collect();
    let bytes = encode_frame("p", 0, &rows, 3, &key()).unwrap();
    for at in [
        5,
        13,
        17,
        21,
        30,
        40,
        90,
        FRAME_HEADER_LEN + 3,
        bytes.len() - 1,
    ] {
        let mut b = bytes.clone();
        b[at] ^= 0x10;
        let ok = FramePos::parse(b[..FRAME_HEADER_LEN].try_into().unwrap(), 0).is_some_and(|f| {
            b.len() >= FRAME_HEADER_LEN + f.len as usize
                && f.checks(&b[FRAME_HEADER_LEN..][..f.len as usize])
                && f.signed_by(&key().verifying_key(), "p")
        });
        assert!(!ok, "byte {at} changed and still accepted");
    }
}

#[test]
fn scan_keeps_the_frames_that_follow_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(ROWS_FILE);
    let a = encode_frame("p", 0, &[row(0), row(1)], 3, &key()).unwrap();
    let b = encode_frame("p", 2, &[row(2)], 3, &key()).unwrap();
    let gap = encode_frame("p", 9, &[row(9)], 3, &key()).unwrap();
    let mut file = [a.clone(), b.clone(), gap].concat();
    std::fs::write(&path, &file).unwrap();
    let (frames, len) = scan(&path, true).unwrap();
    assert_eq!(frames.len(), 2, "the frame after a gap is not served");
    assert_eq!(len, (a.len() + b.len()) as u64);
    // Cut inside the second frame.
    file.truncate(a.len() + b.len() - 1);
    std::fs::write(&path, &file).unwrap();
    let (frames, len) = scan(&path, false).unwrap();
    assert_eq!((frames.len(), len), (1, a.len() as u64));
    assert_eq!(scan(&dir.path().join("none"), true).unwrap().0, vec![]);
}

#[test]
fn rows_of_events_and_alerts() {
    let k8s = json!({
        "verb": "create", "objectRef": {"resource": "pods", "subresource": "exec",
        "namespace": "shop", "name": "web-1"}, "user": {"name": "bob", "effective": {"name": "admin"}},
        "source": {"ip": "10.0.0.1"}, "http": {"response": {"status_code": 201}}
    });
    let r = row_of(false, "k8s.audit", &k8s);
    assert_eq!(r.who, "bob as admin (10.0.0.1)");
    assert_eq!(r.what, "create pods/exec shop/web-1");
    assert_eq!(r.result, "201");
    let url = json!({"verb": "get", "requestURI": "/healthz", "source": {"ip": "10.0.0.2"}});
    let r = row_of(false, "k8s.audit", &url);
    assert_eq!(
        (r.who.as_str(), r.what.as_str()),
        ("10.0.0.2", "get /healthz")
    );
    let auth =
        json!({"event": {"action": "ssh_login", "outcome": "failure"}, "message": "x".repeat(100)});
    let r = row_of(false, "linux.auth", &auth);
    assert_eq!(r.what, format!("ssh_login {}", "x".repeat(80)));
    assert_eq!(
        (r.result.as_str(), r.dataset.as_str()),
        ("failure", "linux.auth")
    );
    let alert = json!({"rule": {"level": "high", "name": "Exec"}, "event": {"id": "a1"},
        "vigil": {"evidence": {"dataset": "k8s.audit"}}, "user": {"name": "bob"}});
    let r = row_of(true, "vigil.alert", &alert);
    assert_eq!(
        (
            r.dataset.as_str(),
            r.what.as_str(),
            r.result.as_str(),
            r.who.as_str()
        ),
        ("k8s.audit", "[high] Exec", "a1", "bob")
    );
}

#[test]
fn a_frame_claiming_more_rows_than_its_bytes_hold_is_refused() {
    let bytes = encode_frame("p", 0, &[row(1)], 3, &key()).unwrap();
    let mut f = frame_of(&bytes);
    f.count = u32::MAX;
    assert!(decode_frame(&f, &bytes[FRAME_HEADER_LEN..], None).is_none());
}

#[test]
fn check_agrees_with_decoding_every_row() {
    let mut d = FrameDecoder::new().unwrap();
    let bytes = encode_frame("p", 0, &[row(1), row(2)], 3, &key()).unwrap();
    let f = frame_of(&bytes);
    assert!(d.check(&f, &bytes[FRAME_HEADER_LEN..]));
    // Two rows whose second `who` is not UTF-8.
    let mut raw = Vec::new();
    for col in [
        &b"k8s"[..],
        b"bob",
        b"get",
        b"200",
        b"k8s",
        b"\xff\xfe",
        b"get",
        b"200",
    ] {
        put_varint(&mut raw, col.len() as u64);
        raw.extend_from_slice(col);
    }
    let payload = zstd::bulk::compress(&raw, 1).unwrap();
    let bad = FramePos {
        count: 2,
        raw_len: raw.len() as u32,
        len: payload.len() as u32,
        ..f.clone()
    };
    assert!(!d.check(&bad, &payload));
    assert!(decode_frame(&bad, &payload, None).is_none());
    // Short of rows, or with bytes left over.
    assert!(!d.check(
        &FramePos {
            count: 3,
            ..bad.clone()
        },
        &payload
    ));
    assert!(!d.check(&FramePos { count: 1, ..bad }, &payload));
}

proptest! {
    #[test]
    fn any_rows_round_trip(rows in prop::collection::vec(
        (".{0,12}", ".{0,30}", ".{0,40}", "[0-9a-z]{0,5}"), 1..40)) {
        let rows: Vec<Row> = rows.into_iter().map(|(dataset, who, what, result)| Row { dataset, who, what, result }).collect();
        let bytes = encode_frame("p", 11, &rows, 1, &key()).unwrap();
        let f = frame_of(&bytes);
        let back = decode_frame(&f, &bytes[FRAME_HEADER_LEN..], None).unwrap();
        prop_assert_eq!(back.into_iter().map(|x| x.1).collect::<Vec<_>>(), rows);
    }
}
