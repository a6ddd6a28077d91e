use super::*;
use vigil_detect::Config;

const RULES: &str = "title: Delete\nid: del\nname: del\nlogsource: {product: kubernetes, service: audit}\ndetection:\n  selection:\n    verb: delete\n  condition: selection\nlevel: low\n---\ntitle: Two deletes\nid: two-deletes\ncorrelation:\n  type: event_count\n  rules: [del]\n  group-by: [user.username]\n  timespan: 10s\n  condition:\n    gte: 2\nlevel: high\n";

fn item(seq: u64, t_s: i64) -> DetectItem {
    let ts = vigil_store::reader::micros_rfc3339(t_s * 1_000_000);
    DetectItem {
        dataset: "k8s.audit".into(),
        source: "test".into(),
        raw: Some(format!(
            r#"{{"kind":"Event","auditID":"id-{seq}","stage":"ResponseComplete","verb":"delete","user":{{"username":"eve"}},"objectRef":{{"resource":"pods"}},"stageTimestamp":"{ts}","requestReceivedTimestamp":"{ts}"}}"#
        )),
        doc: None,
        time_us: t_s * 1_000_000,
        received_us: 0,
        pid: 1,
        seq,
        arrived: Some(Instant::now()),
    }
}

fn detection() -> (Detection, std::sync::mpsc::Receiver<WriterMsg>, Arc<Shared>) {
    detection_with(RULES, None)
}

fn detection_with(
    rules: &str,
    restored: Option<Checkpoint>,
) -> (Detection, std::sync::mpsc::Receiver<WriterMsg>, Arc<Shared>) {
    let sources = vec![RuleSource::new("t.yml", rules)];
    let (set, errors) = RuleSet::compile(&sources, &Config::default());
    assert!(errors.is_empty(), "{errors:?}");
    let shared = Arc::new(Shared::new(1000, std::env::temp_dir()));
    let (tx, rx) = std::sync::mpsc::channel();
    let d = Detection::new(
        Rules::new(set, &sources),
        restored,
        Duration::from_secs(10),
        Duration::from_secs(60),
        Vec::new(),
        Vec::new(),
        shared.clone(),
        tx,
    );
    (d, rx, shared)
}

fn alerts(rx: &std::sync::mpsc::Receiver<WriterMsg>) -> Vec<String> {
    rx.try_iter()
        .filter_map(|m| match m {
            WriterMsg::Submit(s) => Some(s.alerts.unwrap_or_default()),
            _ => None,
        })
        .flatten()
        .map(|a| a.json)
        .collect()
}

#[test]
fn events_are_evaluated_in_event_time_and_late_ones_are_counted() {
    let (mut d, rx, shared) = detection();
    // Out of order within the allowed lateness: reordered, the correlation fires once.
    d.push(item(1, 1000));
    d.push(item(2, 1030));
    d.push(item(3, 1005));
    d.release(false);
    d.emit();
    // 1000 and 1005 are due (10 s of lateness behind 1030; 1030 is not); they correlate.
    let a = alerts(&rx);
    assert_eq!(
        a.iter().filter(|j| j.contains("two-deletes")).count(),
        1,
        "{a:?}"
    );
    assert_eq!(d.buffer.len(), 1);
    // An event older than what was evaluated: late, counted, still evaluated.
    d.push(item(4, 900));
    assert_eq!(d.late, 1);
    assert_eq!(shared.metrics.get("vigil_events_late_total", &[]), 1.0);
    // Checkpoint round trip keeps the buffered event and the position.
    let cp: Checkpoint = serde_json::from_slice(&d.checkpoint_bytes()).unwrap();
    assert_eq!(cp.buffered.len(), 1);
    assert_eq!(cp.positions.get(&1), Some(&5));
    d.release(true);
    assert!(d.buffer.is_empty());
}

#[test]
fn a_restart_with_edited_rules_keeps_the_unchanged_correlations() {
    let (mut d, _rx, _) = detection();
    d.push(item(1, 1000));
    d.release(true);
    let cp: Checkpoint = serde_json::from_slice(&d.checkpoint_bytes()).unwrap();
    assert!(cp.layout.is_some());
    // A rule added in front renumbers every rule and correlation.
    let edited = format!(
        "title: Get\nid: get\nlogsource: {{product: kubernetes, service: audit}}\ndetection: {{sel: {{verb: get}}, condition: sel}}\nlevel: low\n---\n{RULES}"
    );
    let (mut d, rx, _) = detection_with(&edited, Some(cp));
    d.push(item(2, 1003));
    d.release(true);
    d.emit();
    let a = alerts(&rx);
    assert_eq!(
        a.iter().filter(|j| j.contains("two-deletes")).count(),
        1,
        "the delete before the restart still counts: {a:?}"
    );
}

#[test]
fn a_checkpoint_without_a_layout_starts_correlations_empty() {
    let (mut d, _rx, _) = detection();
    d.push(item(1, 1000));
    d.release(true);
    let mut cp: Checkpoint = serde_json::from_slice(&d.checkpoint_bytes()).unwrap();
    cp.layout = None;
    let (mut d, rx, _) = detection_with(RULES, Some(cp));
    d.push(item(2, 1003));
    d.release(true);
    d.emit();
    assert!(alerts(&rx).iter().all(|j| !j.contains("two-deletes")));
}
