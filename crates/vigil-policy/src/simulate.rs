//! `vigil policy simulate`: what a policy would have logged, replayed over recorded events.
//!
//! Feed events recorded under a more verbose policy (ideally RequestResponse for everything)
//! to [`Simulation::add`]; [`Simulation::report`] then says how many events and bytes the
//! candidate policy keeps, broken down by level, stage, resource, user and rule.
//!
//! **Sizes.** An event's size at the new level is its recorded size minus what the new level no
//! longer writes: `requestObject` below Request (and always for non-resource requests),
//! `responseObject` below RequestResponse, `metadata.managedFields` inside the kept bodies
//! (single objects, list items, Table rows; never a patch) when the rule omits managed fields,
//! plus the change in the `level` string. This equals `serde_json::to_vec` of the trimmed Event
//! for compact input (kube-apiserver's JSON-lines output), costs no serialization, and stays
//! consistent with `raw_len` for any formatting. Events whose level is unchanged and need no
//! trimming cost nothing beyond the policy evaluation.
//!
//! **Under-recorded events.** An event recorded at a lower level than the policy now asks for
//! cannot grow: its missing bodies are unknown. It is counted in
//! [`Totals::under_recorded`] and kept at its recorded size, so byte totals are then a lower
//! bound.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use vigil_model::{Event, Level, Stage};

use crate::{Attributes, Policy};

/// Distinct keys kept per breakdown; the rest are summed under [`OTHER`]. Users and
/// non-resource paths are client-controlled, so their number must not be unbounded.
pub const MAX_KEYS: usize = 10_000;
/// The key rows beyond [`MAX_KEYS`] are summed under.
pub const OTHER: &str = "(other)";
/// The user key of requests without an authenticated user.
pub const NO_USER: &str = "(no user)";
/// The stage key of events without a stage.
pub const NO_STAGE: &str = "(none)";

/// Events and bytes, in (recorded) and kept (under the simulated policy).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub events_in: u64,
    pub events_kept: u64,
    pub bytes_in: u64,
    pub bytes_kept: u64,
}

impl Counts {
    fn add(&mut self, bytes_in: u64, kept: Option<u64>) {
        self.events_in += 1;
        self.bytes_in += bytes_in;
        if let Some(b) = kept {
            self.events_kept += 1;
            self.bytes_kept += b;
        }
    }
}

/// The whole input.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Totals {
    pub events_in: u64,
    pub events_kept: u64,
    pub bytes_in: u64,
    pub bytes_kept: u64,
    /// `100 * (1 - events_kept / events_in)`, 2 decimals; 0 for no input.
    pub events_reduction_percent: f64,
    /// `100 * (1 - bytes_kept / bytes_in)`, 2 decimals; 0 for no input. Negative when the
    /// policy logs more than was recorded.
    pub reduction_percent: f64,
    /// Kept events recorded at a lower level than the policy asks for (kept at recorded size).
    pub under_recorded: u64,
}

/// One breakdown row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub key: String,
    #[serde(flatten)]
    pub counts: Counts,
}

/// One row of the by-rule breakdown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleRow {
    /// 0-based rule index; `None` for requests no rule matches (level None).
    pub rule: Option<usize>,
    /// The rule's YAML line, when known.
    pub line: Option<usize>,
    pub level: Level,
    #[serde(flatten)]
    pub counts: Counts,
}

/// What [`Simulation::report`] returns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimulationReport {
    pub totals: Totals,
    /// By the level the simulated policy assigns, `None` to `RequestResponse`; every level listed.
    pub by_level: Vec<Row>,
    /// By stage, in life-cycle order, then [`NO_STAGE`]; only stages seen.
    pub by_stage: Vec<Row>,
    /// By `group/resource[/subresource]` (`core` for the core group) or the non-resource path;
    /// largest `bytes_in` first.
    pub by_resource: Vec<Row>,
    /// By authenticated username ([`NO_USER`] when none); largest `bytes_in` first.
    pub by_user: Vec<Row>,
    /// By matching rule, in policy order, then requests no rule matches; only rules that matched.
    pub by_rule: Vec<RuleRow>,
}

#[derive(Debug, Default)]
struct Breakdown {
    rows: HashMap<String, Counts>,
    other: Counts,
}

impl Breakdown {
    fn add(&mut self, key: &str, bytes_in: u64, kept: Option<u64>) {
        if let Some(c) = self.rows.get_mut(key) {
            c.add(bytes_in, kept);
        } else if self.rows.len() < MAX_KEYS {
            self.rows
                .entry(key.to_string())
                .or_default()
                .add(bytes_in, kept);
        } else {
            self.other.add(bytes_in, kept);
        }
    }

    fn rows(&self) -> Vec<Row> {
        let mut rows: Vec<Row> = self
            .rows
            .iter()
            .map(|(k, c)| Row {
                key: k.clone(),
                counts: *c,
            })
            .collect();
        rows.sort_by(|a, b| {
            b.counts
                .bytes_in
                .cmp(&a.counts.bytes_in)
                .then_with(|| a.key.cmp(&b.key))
        });
        if self.other.events_in > 0 {
            rows.push(Row {
                key: OTHER.to_string(),
                counts: self.other,
            });
        }
        rows
    }
}

/// Replays events through a policy. See the module docs.
#[derive(Debug)]
pub struct Simulation {
    policy: Policy,
    totals: Counts,
    under_recorded: u64,
    by_level: [Counts; 4],
    /// Indexed like [`Stage::ALL`], then no stage.
    by_stage: [Counts; 5],
    by_resource: Breakdown,
    by_user: Breakdown,
    /// Indexed by rule; the last slot is "no rule".
    by_rule: Vec<Counts>,
    key: String,
}

impl Simulation {
    pub fn new(policy: &Policy) -> Self {
        Simulation {
            policy: policy.clone(),
            totals: Counts::default(),
            under_recorded: 0,
            by_level: [Counts::default(); 4],
            by_stage: [Counts::default(); 5],
            by_resource: Breakdown::default(),
            by_user: Breakdown::default(),
            by_rule: vec![Counts::default(); policy.rules.len() + 1],
            key: String::new(),
        }
    }

    /// Adds one recorded event; `raw_len` is its size as recorded (e.g. its JSON line's length).
    pub fn add(&mut self, event: &Event, raw_len: usize) {
        let attrs = Attributes::from_event(event);
        let decision = self.policy.evaluate(&attrs);
        let stage_omitted = event
            .stage
            .is_some_and(|s| decision.omit_stages.contains(&s));
        let bytes_in = raw_len as u64;
        let kept = if decision.level == Level::None || stage_omitted {
            None
        } else {
            let (bytes, under) = kept_size(
                event,
                raw_len,
                &attrs,
                decision.level,
                decision.omit_managed_fields,
            );
            if under {
                self.under_recorded += 1;
            }
            Some(bytes as u64)
        };

        self.totals.add(bytes_in, kept);
        self.by_level[decision.level as usize].add(bytes_in, kept);
        let stage = event.stage.map_or(4, |s| s as usize);
        self.by_stage[stage].add(bytes_in, kept);
        let rule = match decision.rule {
            Some(i) if i < self.policy.rules.len() => i,
            _ => self.policy.rules.len(),
        };
        self.by_rule[rule].add(bytes_in, kept);

        self.key.clear();
        if attrs.resource_request {
            self.key.push_str(if attrs.api_group.is_empty() {
                "core"
            } else {
                &attrs.api_group
            });
            self.key.push('/');
            self.key.push_str(&attrs.resource);
            if !attrs.subresource.is_empty() {
                self.key.push('/');
                self.key.push_str(&attrs.subresource);
            }
        } else {
            self.key.push_str(&attrs.path);
        }
        self.by_resource.add(&self.key, bytes_in, kept);
        let user = match &attrs.user {
            Some(u) if !u.name.is_empty() => u.name.as_str(),
            _ => NO_USER,
        };
        self.by_user.add(user, bytes_in, kept);
    }

    pub fn report(&self) -> SimulationReport {
        let t = self.totals;
        let totals = Totals {
            events_in: t.events_in,
            events_kept: t.events_kept,
            bytes_in: t.bytes_in,
            bytes_kept: t.bytes_kept,
            events_reduction_percent: reduction(t.events_in, t.events_kept),
            reduction_percent: reduction(t.bytes_in, t.bytes_kept),
            under_recorded: self.under_recorded,
        };
        let by_level = Level::ALL
            .iter()
            .map(|l| Row {
                key: l.as_str().to_string(),
                counts: self.by_level[*l as usize],
            })
            .collect();
        let by_stage = Stage::ALL
            .iter()
            .map(|s| s.as_str())
            .chain([NO_STAGE])
            .zip(self.by_stage)
            .filter(|(_, c)| c.events_in > 0)
            .map(|(k, counts)| Row {
                key: k.to_string(),
                counts,
            })
            .collect();
        let n = self.policy.rules.len();
        let by_rule = self
            .by_rule
            .iter()
            .enumerate()
            .filter(|(_, c)| c.events_in > 0)
            .map(|(i, c)| {
                let rule = (i < n).then_some(i);
                RuleRow {
                    rule,
                    line: rule.and_then(|i| self.policy.rule_lines.get(i).copied()),
                    level: rule.map_or(Level::None, |i| self.policy.rules[i].level),
                    counts: *c,
                }
            })
            .collect();
        SimulationReport {
            totals,
            by_level,
            by_stage,
            by_resource: self.by_resource.rows(),
            by_user: self.by_user.rows(),
            by_rule,
        }
    }
}

fn reduction(before: u64, after: u64) -> f64 {
    if before == 0 {
        return 0.0;
    }
    let r = 100.0 * (1.0 - after as f64 / before as f64);
    (r * 100.0).round() / 100.0
}

/// The level an event was recorded at: its `level`, else what its bodies show.
fn recorded_level(ev: &Event) -> Level {
    ev.level.unwrap_or(if ev.response_object.is_some() {
        Level::RequestResponse
    } else if ev.request_object.is_some() {
        Level::Request
    } else {
        Level::Metadata
    })
}

/// The event's size at `level`, and whether it was under-recorded (kept at its recorded size).
fn kept_size(
    ev: &Event,
    raw_len: usize,
    attrs: &Attributes,
    level: Level,
    omit_managed_fields: bool,
) -> (usize, bool) {
    let recorded = recorded_level(ev);
    // Bodies exist only for resource requests: above Metadata, a non-resource event is the same.
    let bodies = |l: Level| {
        if attrs.resource_request {
            l
        } else {
            l.min(Level::Metadata)
        }
    };
    if bodies(level) > bodies(recorded) {
        return (raw_len, true);
    }
    let mut removed = 0usize;
    let keep_request = level >= Level::Request && attrs.resource_request;
    let keep_response = level >= Level::RequestResponse && attrs.resource_request;
    if let Some(body) = &ev.request_object {
        if !keep_request {
            removed += member_len("requestObject", body.get().len());
        } else if omit_managed_fields && ev.verb != "patch" {
            removed += managed_fields_len(body);
        }
    }
    if let Some(body) = &ev.response_object {
        if !keep_response {
            removed += member_len("responseObject", body.get().len());
        } else if omit_managed_fields {
            removed += managed_fields_len(body);
        }
    }
    let size = raw_len.saturating_sub(removed);
    let size = match ev.level {
        Some(old) => (size + level.as_str().len()).saturating_sub(old.as_str().len()),
        // `"level":"X",`
        None => size + member_len("level", level.as_str().len() + 2),
    };
    (size, false)
}

/// Bytes of `,"key":value` in compact JSON.
fn member_len(key: &str, value_len: usize) -> usize {
    1 + key.len() + 2 + 1 + value_len
}

#[derive(Deserialize)]
struct Object<'a> {
    #[serde(borrow, default)]
    metadata: Option<&'a RawValue>,
    #[serde(borrow, default)]
    items: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default)]
    rows: Option<Vec<TableRow<'a>>>,
}

#[derive(Deserialize)]
struct TableRow<'a> {
    #[serde(borrow, default)]
    object: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Metadata<'a> {
    #[serde(borrow, default, rename = "managedFields")]
    managed_fields: Option<&'a RawValue>,
}

/// Bytes `metadata.managedFields` takes in an object, a list's items or a Table's row objects.
fn managed_fields_len(body: &RawValue) -> usize {
    // Cheap rejection: most bodies without the key never need parsing.
    if !body.get().contains("\"managedFields\"") {
        return 0;
    }
    let Ok(obj) = serde_json::from_str::<Object>(body.get()) else {
        return 0;
    };
    let mut n = obj.metadata.map_or(0, in_metadata);
    for item in obj.items.iter().flatten() {
        n += object_managed_fields_len(item);
    }
    for row in obj.rows.iter().flatten() {
        n += row.object.map_or(0, object_managed_fields_len);
    }
    n
}

fn object_managed_fields_len(obj: &RawValue) -> usize {
    serde_json::from_str::<Object>(obj.get())
        .ok()
        .and_then(|o| o.metadata)
        .map_or(0, in_metadata)
}

fn in_metadata(meta: &RawValue) -> usize {
    let Ok(m) = serde_json::from_str::<Metadata>(meta.get()) else {
        return 0;
    };
    let Some(v) = m.managed_fields else { return 0 };
    // `"managedFields":v` plus the comma separating it from a neighbour, if it has one.
    let member = "\"managedFields\":".len() + v.get().len();
    if meta.get().len() > member + 2 {
        member + 1
    } else {
        member
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn managed_fields_spans_are_exact_for_compact_json() {
        let with = r#"{"kind":"Pod","metadata":{"name":"a","managedFields":[{"manager":"kubectl"}],"uid":"1"},"spec":{}}"#;
        let without = r#"{"kind":"Pod","metadata":{"name":"a","uid":"1"},"spec":{}}"#;
        let raw = RawValue::from_string(with.to_string()).unwrap();
        assert_eq!(managed_fields_len(&raw), with.len() - without.len());

        let list = r#"{"kind":"PodList","items":[{"metadata":{"managedFields":[1]}},{"metadata":{"name":"b","managedFields":[]}},{"metadata":{}}]}"#;
        let stripped = r#"{"kind":"PodList","items":[{"metadata":{}},{"metadata":{"name":"b"}},{"metadata":{}}]}"#;
        let raw = RawValue::from_string(list.to_string()).unwrap();
        assert_eq!(managed_fields_len(&raw), list.len() - stripped.len());

        let table = r#"{"kind":"Table","rows":[{"cells":[],"object":{"metadata":{"name":"x","managedFields":[2]}}}]}"#;
        let stripped =
            r#"{"kind":"Table","rows":[{"cells":[],"object":{"metadata":{"name":"x"}}}]}"#;
        let raw = RawValue::from_string(table.to_string()).unwrap();
        assert_eq!(managed_fields_len(&raw), table.len() - stripped.len());
    }

    #[test]
    fn odd_bodies_do_not_panic() {
        for body in [
            r#"[{"op":"add"}]"#,
            r#""managedFields""#,
            r#"{"metadata":"managedFields"}"#,
            r#"{"items":[1,"managedFields"]}"#,
            "null",
        ] {
            let raw = RawValue::from_string(body.to_string()).unwrap();
            assert_eq!(managed_fields_len(&raw), 0, "{body}");
        }
    }

    #[test]
    fn reduction_rounds_and_handles_zero() {
        assert_eq!(reduction(0, 0), 0.0);
        assert_eq!(reduction(3, 1), 66.67);
        assert_eq!(reduction(100, 150), -50.0);
    }
}
