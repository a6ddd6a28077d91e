//! The audit policy, `audit.k8s.io/v1` `Policy`, as kube-apiserver holds it after loading.

use vigil_model::{Level, Stage};

/// A loaded policy. Rule order matters: the first matching rule wins.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Policy {
    pub rules: Vec<PolicyRule>,
    /// Policy-level omitStages, unioned into every rule's at evaluation.
    pub omit_stages: Vec<Stage>,
    /// Policy-level default; a rule's own value, when set, overrides it.
    pub omit_managed_fields: bool,
    /// 1-based YAML line of each rule (same index as `rules`), for messages.
    pub rule_lines: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct PolicyRule {
    pub level: Level,
    pub users: Vec<String>,
    pub user_groups: Vec<String>,
    pub verbs: Vec<String>,
    pub resources: Vec<GroupResources>,
    pub namespaces: Vec<String>,
    pub non_resource_urls: Vec<String>,
    pub omit_stages: Vec<Stage>,
    /// `None` when the rule does not set it (the policy default applies).
    pub omit_managed_fields: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct GroupResources {
    /// `""` is the core group, `"*"` any group.
    pub group: String,
    pub resources: Vec<String>,
    pub resource_names: Vec<String>,
}
