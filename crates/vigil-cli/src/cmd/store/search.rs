//! `vigil search` and `vigil timeline`.

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;
use vigil_incident::entities::{self, Entity, EntityKind};
use vigil_store::query::{self, Query};
use vigil_store::reader::{Kinds, SearchOptions};

use super::{
    event_json_line, print_events, print_rendered, time_arg, timeline_packed, DataDirArg, Rendered,
};
use crate::output::Format;

#[derive(Args)]
pub struct SearchArgs {
    #[command(flatten)]
    pub dir: DataDirArg,
    /// Only events at or after T (RFC 3339, a day, or back from now: 24h, 7d).
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// Only events before T.
    #[arg(long, value_name = "T")]
    pub until: Option<String>,
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: Format,
    /// At most N events, the newest (0: all).
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Oldest first (default: newest first).
    #[arg(long)]
    pub oldest_first: bool,
    /// The query (see README.md, "Query language"); `*` means everything. Several words are
    /// joined with spaces.
    #[arg(required = true, value_name = "QUERY")]
    pub query: Vec<String>,
}

pub fn search(args: SearchArgs) -> Result<ExitCode> {
    let text = args.query.join(" ");
    let q = query::parse(&text)?;
    let mut names = Vec::new();
    query::fields(&q, &mut names);
    // Alerts are in the store too; a query about them (`vigil.kind:alert`) finds them.
    let kinds = if names
        .iter()
        .any(|f| f == "vigil.kind" || f == "rule.id" || f == "rule.name" || f == "rule.level")
    {
        Kinds::Both
    } else {
        Kinds::Events
    };
    let reader = args.dir.reader()?;
    let found = reader.search(
        &q,
        &SearchOptions {
            since: time_arg("--since", &args.since)?,
            until: time_arg("--until", &args.until)?,
            limit: args.limit,
            newest_first: !args.oldest_first,
            kinds,
        },
    )?;
    print_events(&found.events, args.format)?;
    if found.truncated {
        eprintln!(
            "vigil: showing {} events; more match (raise --limit, 0 for all)",
            found.events.len()
        );
    }
    if found.scanned_unindexed > 0 {
        eprintln!(
            "vigil: {} records are not indexed yet (an interrupted ingest?) and were scanned; the next ingest indexes them",
            found.scanned_unindexed
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
#[group(id = "entity", required = true, multiple = false)]
pub struct EntityArgs {
    /// A user (Kubernetes username, or a host account).
    #[arg(long, group = "entity", value_name = "U")]
    pub user: Option<String>,
    /// An IP address or CIDR block.
    #[arg(long, group = "entity", value_name = "A")]
    pub ip: Option<String>,
    /// A pod, as NAMESPACE/NAME.
    #[arg(long, group = "entity", value_name = "NS/NAME")]
    pub pod: Option<String>,
    /// A Kubernetes node.
    #[arg(long, group = "entity", value_name = "N")]
    pub node: Option<String>,
    /// A host (its logs, and the node of that name).
    #[arg(long, group = "entity", value_name = "H")]
    pub host: Option<String>,
}

#[derive(Args)]
pub struct TimelineArgs {
    #[command(flatten)]
    pub dir: DataDirArg,
    #[command(flatten)]
    pub entity: EntityArgs,
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    #[arg(long, value_name = "T")]
    pub until: Option<String>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// At most N entries, the first in time (0: all).
    #[arg(long, default_value_t = 0)]
    pub limit: usize,
}

/// The entity named by the flags (validated: an address or CIDR block, a pod as NS/NAME).
pub fn entity_of_args(e: &EntityArgs) -> Result<Entity> {
    let (kind, value) = if let Some(u) = &e.user {
        (EntityKind::User, u)
    } else if let Some(a) = &e.ip {
        if query::ip_range(a).is_none() {
            bail!("--ip {a}: expected an IP address or a CIDR block");
        }
        (EntityKind::Ip, a)
    } else if let Some(p) = &e.pod {
        if !p.contains('/') {
            bail!("--pod {p}: expected NAMESPACE/NAME");
        }
        (EntityKind::Pod, p)
    } else if let Some(n) = &e.node {
        (EntityKind::Node, n)
    } else if let Some(h) = &e.host {
        (EntityKind::Host, h)
    } else {
        bail!("give one of --user, --ip, --pod, --node, --host")
    };
    Ok(Entity {
        kind,
        value: value.clone(),
    })
}

/// The query for "everything about this entity" (`vigil_incident::entities::query`).
pub fn entity_query(e: &EntityArgs) -> Result<Query> {
    Ok(entities::query(&entity_of_args(e)?))
}

pub fn timeline(args: TimelineArgs) -> Result<ExitCode> {
    let q = entity_query(&args.entity)?;
    let reader = args.dir.reader()?;
    let opts = SearchOptions {
        since: time_arg("--since", &args.since)?,
        until: time_arg("--until", &args.until)?,
        limit: args.limit,
        newest_first: false,
        kinds: Kinds::Both,
    };
    // Each entry is rendered by the thread that read it; only the rendering is kept.
    let (rendered, truncated) = match args.format {
        Format::Jsonl => {
            let found = reader.search_map(&q, &opts, &|ev| event_json_line(&ev))?;
            (Rendered::Lines(found.items), found.truncated)
        }
        Format::Table => {
            let found = reader.search_rows_map(&q, &opts, &timeline_packed)?;
            (Rendered::Rows(found.items), found.truncated)
        }
    };
    print_rendered(rendered)?;
    if truncated {
        eprintln!("vigil: more entries follow (raise --limit, 0 for all)");
    }
    Ok(ExitCode::SUCCESS)
}
