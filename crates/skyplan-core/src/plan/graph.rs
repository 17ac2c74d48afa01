//! The dependency graph of a plan's actions, one petgraph graph: explicit edges from the rules
//! below, a stable dependency order (Kahn's algorithm with a fixed tie-break), cycle detection
//! and DOT output.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use petgraph::Direction::{Incoming, Outgoing};

use super::action::{Action, ActionKind};
use super::diff::Planned;
use super::PlanError;
use crate::state::State;

/// Order among actions that are ready at the same time: teardown first, then services, then
/// the seeding chain. Only a tie-break; correctness comes from the edges.
fn rank(kind: &ActionKind) -> u8 {
    match kind {
        // A failover restores writes after an outage: nothing comes before it.
        ActionKind::Failover { .. } => 0,
        ActionKind::StopReplication { .. } | ActionKind::DropReplicationUser { .. } => 0,
        ActionKind::AllowlistRevoke { .. } => 1,
        ActionKind::DeleteService { .. } => 2,
        ActionKind::CreateService { .. }
        | ActionKind::AdoptService { .. }
        | ActionKind::UpdateService { .. }
        | ActionKind::ReplaceService { .. } => 3,
        ActionKind::Backup { .. } => 4,
        ActionKind::Restore { .. } => 5,
        ActionKind::AllowlistGrant { .. } => 6,
        ActionKind::Switchover { .. } => 7,
        ActionKind::SetRole { .. } => 8,
        ActionKind::Replicate { .. } => 9,
        // A start comes with the services; a stop after everything else.
        ActionKind::SetPower { active: true, .. } => 3,
        ActionKind::SetPower { active: false, .. } => 10,
        ActionKind::ConfigureService { .. } => 3,
        ActionKind::RestartService { .. } => 9,
    }
}

/// The service an action is about: the one whose chain depth orders it among equals.
pub(crate) fn subject(kind: &ActionKind) -> &str {
    match kind {
        ActionKind::CreateService { key, .. }
        | ActionKind::AdoptService { key, .. }
        | ActionKind::UpdateService { key, .. }
        | ActionKind::ReplaceService { key, .. }
        | ActionKind::DeleteService { key, .. } => key,
        ActionKind::Backup { source, .. } => source,
        ActionKind::Restore { replica, .. }
        | ActionKind::AllowlistGrant { replica, .. }
        | ActionKind::AllowlistRevoke { replica, .. }
        | ActionKind::Replicate { replica, .. }
        | ActionKind::StopReplication { replica, .. } => replica,
        ActionKind::DropReplicationUser { on, .. } => on,
        ActionKind::Switchover { new, .. } | ActionKind::Failover { new, .. } => new,
        ActionKind::SetRole { key, .. }
        | ActionKind::SetPower { key, .. }
        | ActionKind::ConfigureService { key, .. }
        | ActionKind::RestartService { key, .. } => key,
    }
}

/// How deep in a replication chain each action's service sits (0 = not a replica), so that
/// among actions ready together a reviewer reads a primary before its replicas.
fn depths(planned: &[Planned], state: &State) -> Vec<u32> {
    let mut parent: HashMap<&str, &str> = HashMap::new();
    for (r, link) in &state.resources.replications {
        parent.insert(r, &link.source);
    }
    for p in planned {
        if let ActionKind::Replicate {
            source, replica, ..
        } = &p.kind
        {
            parent.insert(replica, source);
        }
    }
    planned
        .iter()
        .map(|p| {
            let mut d = 0;
            let mut cur = subject(&p.kind);
            // Chains are short; the cap only guards against a cycle in a corrupt state.
            while let Some(s) = parent.get(cur) {
                d += 1;
                cur = s;
                if d > 64 {
                    break;
                }
            }
            d
        })
        .collect()
}

/// Edges `dependency → dependent` between indices of `planned`, sorted and without
/// duplicates: a fixed order in which they enter the graph, so the cycle named is stable.
fn edges(planned: &[Planned], state: &State) -> Vec<(usize, usize)> {
    let mut ix = Index::of(planned);
    let power_edges = ix.power_edges(planned);
    // Replicas by source, as recorded in state (for deleting sources after their replicas).
    let mut replicas_of: HashMap<&str, Vec<&str>> = HashMap::new();
    for (r, link) in &state.resources.replications {
        replicas_of.entry(&link.source).or_default().push(r);
    }

    // A failover that catches its candidate up from a sibling reads that sibling as it is:
    // every other change to the sibling (a re-seed, a delete, a stop) waits for it.
    let catch_up: HashMap<&str, usize> = planned
        .iter()
        .enumerate()
        .filter_map(|(i, p)| match &p.kind {
            ActionKind::Failover {
                catch_up_from: Some(s),
                ..
            } => Some((s.as_str(), i)),
            _ => None,
        })
        .collect();
    let mut e = Vec::new();
    for (i, p) in planned.iter().enumerate() {
        let mut deps: Vec<usize> = p
            .kind
            .mutated_services()
            .into_iter()
            .filter_map(|k| catch_up.get(k).copied())
            .collect();
        deps.extend(ix.dependencies(&p.kind, &replicas_of));
        e.extend(deps.into_iter().filter(|&f| f != i).map(|f| (f, i)));
    }
    e.extend(power_edges);
    e.sort_unstable();
    e.dedup();
    e
}

/// The planned actions by what they act on, for [`edges`].
#[derive(Default)]
struct Index<'a> {
    svc: HashMap<&'a str, usize>,
    del: HashMap<&'a str, usize>,
    del_by_name: HashMap<&'a str, usize>,
    backup_for: HashMap<&'a str, usize>,
    restore: HashMap<&'a str, usize>,
    grant: HashMap<(&'a str, &'a str), usize>,
    revokes_of_replica: HashMap<&'a str, Vec<usize>>,
    replicate: HashMap<&'a str, usize>,
    stop: HashMap<&'a str, usize>,
    drops: Vec<usize>,
    switch: HashMap<&'a str, usize>,
    fence: HashMap<&'a str, usize>,
    starts: Vec<(&'a str, usize)>,
    stops: Vec<(&'a str, usize)>,
    configure: HashMap<&'a str, usize>,
}

impl<'a> Index<'a> {
    fn of(planned: &'a [Planned]) -> Index<'a> {
        let mut ix = Index::default();
        for (i, p) in planned.iter().enumerate() {
            match &p.kind {
                ActionKind::CreateService { key, .. }
                | ActionKind::AdoptService { key, .. }
                | ActionKind::UpdateService { key, .. }
                | ActionKind::ReplaceService { key, .. } => {
                    ix.svc.insert(key, i);
                }
                ActionKind::DeleteService { key, spec } => {
                    ix.del.insert(key, i);
                    ix.del_by_name.insert(&spec.name, i);
                }
                ActionKind::Backup { replicas, .. } => {
                    for r in replicas {
                        ix.backup_for.insert(r, i);
                    }
                }
                ActionKind::Restore { replica, .. } => {
                    ix.restore.insert(replica, i);
                }
                ActionKind::AllowlistGrant { source, replica } => {
                    ix.grant.insert((source, replica), i);
                }
                ActionKind::AllowlistRevoke { replica, .. } => {
                    ix.revokes_of_replica.entry(replica).or_default().push(i);
                }
                ActionKind::Replicate { replica, .. } => {
                    ix.replicate.insert(replica, i);
                }
                ActionKind::StopReplication { replica, .. } => {
                    ix.stop.insert(replica, i);
                }
                ActionKind::DropReplicationUser { .. } => ix.drops.push(i),
                ActionKind::Switchover { old, new, .. } | ActionKind::Failover { old, new, .. } => {
                    ix.switch.insert(old, i);
                    ix.switch.insert(new, i);
                }
                ActionKind::SetRole {
                    key,
                    writable: false,
                } => {
                    ix.fence.insert(key, i);
                }
                ActionKind::SetRole { .. } => {}
                ActionKind::SetPower { key, active } => {
                    if *active {
                        &mut ix.starts
                    } else {
                        &mut ix.stops
                    }
                    .push((key, i));
                }
                ActionKind::ConfigureService { key, .. } => {
                    ix.configure.insert(key, i);
                }
                ActionKind::RestartService { .. } => {}
            }
        }
        ix
    }

    /// Where the power changes go (see below); a start takes its service's place in `svc`.
    fn power_edges(&mut self, planned: &[Planned]) -> Vec<(usize, usize)> {
        let mut power_edges = Vec::new();
        // A start goes first among what happens to its service: an update waits for it, and
        // everything that depends on the service depends on the start (it takes the service's
        // place in `svc`). An adoption records the service first, so the start follows it.
        for &(key, i) in &std::mem::take(&mut self.starts) {
            match self.svc.get(key).copied() {
                Some(a) if matches!(planned[a].kind, ActionKind::AdoptService { .. }) => {
                    power_edges.push((a, i));
                    self.svc.insert(key, i);
                }
                Some(u) => power_edges.push((i, u)),
                None => {
                    self.svc.insert(key, i);
                }
            }
        }
        // A stop comes after every other change to its service: one pass over the actions, by
        // the services they change (not one pass per stop: a file of 10,000 services kept
        // stopped plans 10,000 stops).
        if !self.stops.is_empty() {
            let stop_of: HashMap<&str, usize> = self.stops.iter().copied().collect();
            for (j, p) in planned.iter().enumerate() {
                for key in p.kind.mutated_services() {
                    match stop_of.get(key) {
                        Some(&i) if i != j => power_edges.push((j, i)),
                        _ => {}
                    }
                }
            }
        }
        power_edges
    }

    /// The actions `kind` depends on (by index), as `edges` adds them.
    fn dependencies(
        &self,
        kind: &ActionKind,
        replicas_of: &HashMap<&str, Vec<&str>>,
    ) -> Vec<usize> {
        let mut out = Vec::new();
        let mut d = |from: Option<&usize>| out.extend(from.copied());
        match kind {
            ActionKind::CreateService { spec, .. }
            | ActionKind::ReplaceService { to: spec, .. } => {
                // A name is unique in SkySQL: a service renamed to another key goes first.
                d(self.del_by_name.get(spec.name.as_str()));
            }
            ActionKind::UpdateService { .. } | ActionKind::AdoptService { .. } => {}
            ActionKind::DeleteService { key, .. } => {
                d(self.stop.get(key.as_str()));
                for &rv in self
                    .revokes_of_replica
                    .get(key.as_str())
                    .into_iter()
                    .flatten()
                {
                    d(Some(&rv));
                }
                for r in replicas_of.get(key.as_str()).into_iter().flatten() {
                    d(self.del.get(r));
                    d(self.stop.get(r));
                }
            }
            ActionKind::Backup { source, .. } => {
                d(self.svc.get(source.as_str()));
                d(self.replicate.get(source.as_str()));
            }
            ActionKind::Restore { replica, .. } => {
                d(self.backup_for.get(replica.as_str()));
                d(self.svc.get(replica.as_str()));
                d(self.stop.get(replica.as_str()));
                // A replaced primary is fenced before it is overwritten.
                d(self.fence.get(replica.as_str()));
                // The restore starts the server again: with its configuration attached, the
                // replica comes up with its variables and its fence (read_only) in force.
                d(self.configure.get(replica.as_str()));
            }
            ActionKind::AllowlistGrant { source, replica } => {
                d(self.svc.get(source.as_str()));
                d(self.svc.get(replica.as_str()));
            }
            ActionKind::AllowlistRevoke {
                source, replica, ..
            } => {
                d(self.stop.get(replica.as_str()));
                d(self.replicate.get(replica.as_str()));
                // The candidate's entry on the old primary goes once the roles have changed.
                d(self.switch.get(source.as_str()));
            }
            ActionKind::Replicate {
                source, replica, ..
            } => {
                d(self.restore.get(replica.as_str()));
                d(self.grant.get(&(source.as_str(), replica.as_str())));
                d(self.svc.get(replica.as_str()));
                d(self.svc.get(source.as_str()));
                d(self.replicate.get(source.as_str()));
                // An orphaned user goes before any wiring: a replica re-wired now (whose user
                // the state did not record, after a crash) gets its grant again afterwards.
                for x in &self.drops {
                    d(Some(x));
                }
                // Replicas follow the new primary once it is open.
                d(self.switch.get(source.as_str()));
                // A replaced primary is fenced before it is wired to the new one.
                d(self.fence.get(replica.as_str()));
            }
            ActionKind::Switchover { old, new, .. } => {
                d(self.svc.get(old.as_str()));
                d(self.svc.get(new.as_str()));
                // The old primary's outbound IPs are allowed on the new one first, so it can
                // follow it at once.
                d(self.grant.get(&(new.as_str(), old.as_str())));
                for x in &self.drops {
                    d(Some(x));
                }
            }
            ActionKind::Failover { new, .. } => d(self.svc.get(new.as_str())),
            ActionKind::StopReplication { .. } | ActionKind::DropReplicationUser { .. } => {}
            // Ordered above.
            ActionKind::SetPower { .. } => {}
            ActionKind::SetRole { key, .. } => {
                d(self.svc.get(key.as_str()));
                d(self.switch.get(key.as_str()));
                // A former replica is opened only once it no longer replicates.
                d(self.stop.get(key.as_str()));
            }
            ActionKind::ConfigureService { key, .. } => {
                d(self.svc.get(key.as_str()));
                // A role change sets read_only in both configurations itself, at its moment;
                // the rest of the configuration follows it.
                d(self.switch.get(key.as_str()));
            }
            ActionKind::RestartService { key, .. } => {
                d(self.configure.get(key.as_str()));
                d(self.svc.get(key.as_str()));
                // Not while its data is being replaced or its replication wired.
                d(self.restore.get(key.as_str()));
                d(self.replicate.get(key.as_str()));
                d(self.switch.get(key.as_str()));
            }
        }
        out
    }
}

/// The one way a graph of actions is built, for the plan and for its DOT: node `i` is the
/// `i`th of `nodes`, and an edge `(a, b)` says that action `b` depends on action `a`. Edges
/// are added in the order given, which is the order petgraph's algorithms visit them in.
fn graph<N>(
    nodes: impl IntoIterator<Item = N>,
    edges: impl IntoIterator<Item = (usize, usize)>,
) -> DiGraph<N, ()> {
    let (nodes, edges) = (nodes.into_iter(), edges.into_iter());
    let mut g = DiGraph::with_capacity(nodes.size_hint().0, edges.size_hint().0);
    for node in nodes {
        g.add_node(node);
    }
    for (a, b) in edges {
        g.add_edge(NodeIndex::new(a), NodeIndex::new(b), ());
    }
    g
}

/// Order the planned actions by dependency and turn them into numbered actions.
///
/// Linear in actions + edges, plus one sort: the ready set is a heap of integer priorities
/// (each action's place in the (rank, address) order, computed once), in-degrees are counted
/// once from the graph, and each action is moved once into its place. A node carries only
/// the action's address: the large planned actions stay in their vector rather than being
/// copied into the graph and out again.
pub fn build(planned: Vec<Planned>, state: &State) -> Result<Vec<Action>, PlanError> {
    let n = planned.len();
    // Node `i` is `planned[i]`.
    let mut g = graph(
        planned.iter().map(|p| p.kind.address()),
        edges(&planned, state),
    );

    // priority[i]: i's place among all actions by (rank, chain depth, address): the tie-break
    // as an integer.
    // The keys sit in one small array so the sort does not stride through the large actions.
    let depth = depths(&planned, state);
    let keys: Vec<(u8, u32, &str)> = planned
        .iter()
        .zip(g.node_weights())
        .zip(&depth)
        .map(|((p, a), d)| (rank(&p.kind), *d, a.as_str()))
        .collect();
    let mut by_key: Vec<usize> = (0..n).collect();
    by_key.sort_unstable_by(|&a, &b| (keys[a], a).cmp(&(keys[b], b)));
    drop(keys);
    let mut priority = vec![0usize; n];
    for (p, &i) in by_key.iter().enumerate() {
        priority[i] = p;
    }

    // Kahn's algorithm: an action is ready once everything it depends on is ordered.
    let mut indegree: Vec<usize> = g
        .node_indices()
        .map(|i| g.neighbors_directed(i, Incoming).count())
        .collect();
    let mut ready: BinaryHeap<Reverse<usize>> = (0..n)
        .filter(|&i| indegree[i] == 0)
        .map(|i| Reverse(priority[i]))
        .collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(p)) = ready.pop() {
        let i = by_key[p];
        order.push(i);
        for j in g.neighbors_directed(NodeIndex::new(i), Outgoing) {
            let j = j.index();
            indegree[j] -= 1;
            if indegree[j] == 0 {
                ready.push(Reverse(priority[j]));
            }
        }
    }
    if order.len() < n {
        return Err(PlanError::Cycle(describe_cycle(&g)));
    }
    let mut new_id = vec![0usize; n];
    for (pos, &old) in order.iter().enumerate() {
        new_id[old] = pos;
    }
    let mut slots: Vec<Option<Planned>> = planned.into_iter().map(Some).collect();
    let mut actions = Vec::with_capacity(n);
    for (pos, &old) in order.iter().enumerate() {
        let node = NodeIndex::new(old);
        let p = slots[old].take().expect("each action is ordered once");
        let mut depends_on: Vec<usize> = g
            .neighbors_directed(node, Incoming)
            .map(|d| new_id[d.index()])
            .collect();
        depends_on.sort_unstable();
        actions.push(Action {
            id: pos,
            address: std::mem::take(&mut g[node]),
            change: p.change,
            kind: p.kind,
            summary: p.summary,
            depends_on,
            before: p.before,
            after: p.after,
            wipes_data: p.wipes_data,
            reason: p.reason,
            estimated_ms: None,
        });
    }
    Ok(actions)
}

/// Name one cycle among the actions that could not be ordered, e.g. `a -> b -> a`.
fn describe_cycle(g: &DiGraph<String, ()>) -> String {
    for scc in petgraph::algo::tarjan_scc(g) {
        if scc.len() > 1 {
            let mut names: Vec<&str> = scc.iter().rev().map(|ix| g[*ix].as_str()).collect();
            names.push(names[0]);
            return names.join(" -> ");
        }
    }
    "unknown cycle".into()
}

/// `--target`: only the actions about the targets (an exact address or its sub-addresses, or,
/// for `service.KEY`, every action whose service is KEY) and what they depend on, numbered
/// again in the same order. Everything else is left for a later, full plan.
pub fn only(actions: Vec<Action>, targets: &[String]) -> Vec<Action> {
    // The services an action is for: a backup belongs to the replicas it seeds, not to the
    // source it copies (targeting a primary must not take a backup of it).
    let belongs = |a: &Action, key: &str| match &a.kind {
        ActionKind::Backup { replicas, .. } => replicas.iter().any(|r| r == key),
        kind => subject(kind) == key,
    };
    let selected = |a: &Action| {
        targets.iter().any(|t| {
            a.address == *t
                || a.address.starts_with(&format!("{t}."))
                || t.strip_prefix("service.").is_some_and(|k| belongs(a, k))
        })
    };
    let mut keep = vec![false; actions.len()];
    let mut stack: Vec<usize> = actions
        .iter()
        .filter(|a| selected(a))
        .map(|a| a.id)
        .collect();
    while let Some(id) = stack.pop() {
        if id >= keep.len() || keep[id] {
            continue;
        }
        keep[id] = true;
        stack.extend(actions[id].depends_on.iter().copied());
    }
    let mut new_id = vec![usize::MAX; actions.len()];
    let mut out = Vec::new();
    for a in actions {
        if keep.get(a.id).copied().unwrap_or(false) {
            new_id[a.id] = out.len();
            out.push(a);
        }
    }
    for a in &mut out {
        a.id = new_id[a.id];
        a.depends_on = a
            .depends_on
            .iter()
            .filter_map(|d| new_id.get(*d).copied().filter(|n| *n != usize::MAX))
            .collect();
    }
    out
}

/// The plan's graph in Graphviz DOT.
pub fn to_dot(actions: &[Action]) -> String {
    to_graph(actions, super::dot::Dot::new())
}

/// The plan's graph in Mermaid (see [`to_dot`]).
pub fn to_mermaid(actions: &[Action]) -> String {
    to_graph(actions, super::mermaid::Mermaid::new())
}

/// What the state manages, in Mermaid (see [`state_to_dot`]).
pub fn state_to_mermaid(state: &State) -> String {
    state_to_graph(state, super::mermaid::Mermaid::new())
}

fn to_graph(actions: &[Action], mut d: impl super::dot::GraphWriter) -> String {
    // Node `i` is `actions[i]` (a plan's ids are its positions); edges are added action by
    // action in `depends_on` order, the order they print in.
    let g = graph(
        actions,
        actions
            .iter()
            .flat_map(|a| a.depends_on.iter().map(move |&d| (d, a.id))),
    );
    for a in g.node_weights() {
        let label = format!(
            "{} {}{}",
            a.change.marker(),
            a.address,
            if a.wipes_data { " (wipes data)" } else { "" }
        );
        let red: &[(&str, &str)] = if a.wipes_data {
            &[("color", "red")]
        } else {
            &[]
        };
        d.node(&a.address, &label, red);
    }
    for e in g.edge_references() {
        d.edge(&g[e.source()].address, &g[e.target()].address, &[]);
    }
    d.finish()
}

/// What the state manages, in Graphviz DOT: each service a node, each replication link an
/// edge from its source to its replica, each allowlist entry skyplan added a dashed edge from
/// the replica it admits to the service whose allowlist holds it. For `graph` when nothing is
/// planned: the plan's graph would be empty, while a reader asked to see the topology.
pub fn state_to_dot(state: &State) -> String {
    state_to_graph(state, super::dot::Dot::new())
}

fn state_to_graph(state: &State, mut d: impl super::dot::GraphWriter) -> String {
    let r = &state.resources;
    for (key, svc) in &r.services {
        d.node(
            &format!("service.{key}"),
            &format!(
                "service.{key}\n{} ({} {})",
                svc.spec.name, svc.spec.provider, svc.spec.region
            ),
            &[],
        );
    }
    for (replica, link) in &r.replications {
        let mut label = format!("replication.{replica}");
        if link.ssl {
            label.push_str(" (ssl)");
        }
        if !link.healthy {
            label.push_str(", not verified");
        }
        let mut attrs = vec![("label", label.as_str())];
        if !link.healthy {
            attrs.push(("color", "red"));
        }
        d.edge(
            &format!("service.{}", link.source),
            &format!("service.{replica}"),
            &attrs,
        );
    }
    for (replica, a) in &r.allowlists {
        d.edge(
            &format!("service.{replica}"),
            &format!("service.{}", a.on),
            &[
                ("label", &format!("allowlist.{}.{replica}", a.on)),
                ("style", "dashed"),
            ],
        );
    }
    d.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cycle_is_named_in_dependency_order() {
        let addresses: Vec<String> = ["service.a", "backup.a", "restore.b", "service.c"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        // a → backup → restore → a, and c on its own.
        let edges = [(0, 1), (1, 2), (2, 0), (3, 0)];
        let named = describe_cycle(&graph(addresses.iter().cloned(), edges));
        let ring: Vec<&str> = named.split(" -> ").collect();
        assert_eq!(ring.len(), 4, "{named}");
        assert_eq!(ring.first(), ring.last(), "{named}");
        for a in ["service.a", "backup.a", "restore.b"] {
            assert!(named.contains(a), "{named}");
        }
        assert!(!named.contains("service.c"), "{named}");
        // Each step of the named ring is a real edge.
        for w in ring.windows(2) {
            let i = addresses.iter().position(|x| x == w[0]).unwrap();
            let j = addresses.iter().position(|x| x == w[1]).unwrap();
            assert!(edges.contains(&(i, j)), "{w:?} is not an edge in {named}");
        }
    }

    fn planned(kind: ActionKind) -> Planned {
        Planned {
            kind,
            change: super::super::Change::Create,
            summary: String::new(),
            before: None,
            after: None,
            wipes_data: false,
            reason: None,
        }
    }

    fn create(key: &str) -> Planned {
        let spec = crate::topology::ServiceSpec::for_test(key);
        planned(ActionKind::CreateService {
            key: key.into(),
            spec,
        })
    }

    /// The seeding chain of replica `r` from primary `p`, planned in a scrambled order.
    fn seeding_chain() -> Vec<Action> {
        let (p, r) = (String::from("p"), String::from("r"));
        build(
            vec![
                planned(ActionKind::Replicate {
                    source: p.clone(),
                    replica: r.clone(),
                    ssl: true,
                    mode: super::super::WireMode::Fresh,
                }),
                create("r"),
                planned(ActionKind::AllowlistGrant {
                    source: p.clone(),
                    replica: r.clone(),
                }),
                planned(ActionKind::Restore {
                    source: p.clone(),
                    replica: r.clone(),
                }),
                create("p"),
                planned(ActionKind::Backup {
                    source: p.clone(),
                    seed: crate::topology::Seed::NewBackup,
                    replicas: vec![r.clone()],
                }),
            ],
            &State::with_lineage("00000000-0000-4000-8000-000000000000"),
        )
        .unwrap()
    }

    #[test]
    fn dependencies_first_then_rank_then_address() {
        let actions = seeding_chain();
        let order: Vec<&str> = actions.iter().map(|a| a.address.as_str()).collect();
        assert_eq!(
            order,
            [
                "service.p",
                "service.r",
                "backup.p",
                "restore.r",
                "allowlist.p.r",
                "replication.r"
            ]
        );
        for (i, a) in actions.iter().enumerate() {
            assert_eq!(a.id, i);
        }
        assert_eq!(actions[2].depends_on, vec![0]);
        assert_eq!(actions[3].depends_on, vec![1, 2]);
        assert_eq!(actions[5].depends_on, vec![0, 1, 3, 4]);
    }

    #[test]
    fn dot_edges_are_the_plans_dependencies_in_plan_order() {
        let actions = seeding_chain();
        let dot = to_dot(&actions);
        let printed: Vec<&str> = dot.lines().filter(|l| l.contains(" -> ")).collect();
        let mut expected = Vec::new();
        for a in &actions {
            for &d in &a.depends_on {
                expected.push(format!(
                    "  \"{}\" -> \"{}\";",
                    actions[d].address, a.address
                ));
            }
        }
        assert_eq!(expected.len(), 9);
        assert_eq!(printed, expected, "{dot}");
    }

    #[test]
    fn an_applied_state_draws_its_services_and_their_links() {
        use crate::state::{AllowlistRecord, ReplicationRecord, ServiceRecord};
        let mut state = State::with_lineage("00000000-0000-4000-8000-000000000000");
        for key in ["p", "r"] {
            let ActionKind::CreateService { spec, .. } = create(key).kind else {
                unreachable!()
            };
            state.resources.services.insert(
                key.into(),
                ServiceRecord {
                    id: format!("id-{key}"),
                    spec,
                    fqdn: None,
                    port: None,
                    outbound_ips: vec![],
                    status: None,
                    credentials_from: None,
                    in_flight: None,
                    failed_over_to: None,
                    role_change: None,
                    replace_requested: None,
                    last_seen: None,
                    config_id: None,
                    config: Default::default(),
                },
            );
        }
        state.resources.replications.insert(
            "r".into(),
            ReplicationRecord {
                source: "p".into(),
                source_host: "p.example".into(),
                source_port: 3306,
                gtid_position: Some(String::new()),
                ssl: true,
                replication_user: None,
                healthy: true,
                wired_at: None,
            },
        );
        state.resources.allowlists.insert(
            "r".into(),
            AllowlistRecord {
                on: "p".into(),
                entries: vec!["10.0.0.2/32".into()],
                ..Default::default()
            },
        );
        assert_eq!(
            state_to_dot(&state),
            r#"digraph skyplan {
  rankdir = "LR";
  node [shape = box];
  "service.p" [label = "service.p\np (gcp us-east4)"];
  "service.r" [label = "service.r\nr (gcp us-east4)"];
  "service.p" -> "service.r" [label = "replication.r (ssl)"];
  "service.r" -> "service.p" [label = "allowlist.p.r", style = "dashed"];
}
"#
        );
        state.resources.replications.get_mut("r").unwrap().healthy = false;
        assert!(state_to_dot(&state).contains(
            r#""service.p" -> "service.r" [label = "replication.r (ssl), not verified", color = "red"];"#
        ));
    }

    #[test]
    fn plan_errors_name_the_cycle() {
        let e = PlanError::Cycle("a -> b -> a".into());
        assert!(e.to_string().contains("a -> b -> a"));
    }
}
