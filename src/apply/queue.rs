//! The apply scheduler's bookkeeping, free of async and I/O (the shape of cargo's
//! `DependencyQueue`): an action becomes ready the moment its last dependency finishes, and
//! at most one action at a time mutates a given service.

use std::collections::{BTreeSet, HashSet};

/// Nodes are plan action ids (0..n); `deps[i]` are the ids `i` waits for.
#[derive(Debug)]
pub(crate) struct DependencyQueue {
    pending_deps: Vec<usize>,
    dependents: Vec<Vec<usize>>,
    /// Services each node mutates.
    services: Vec<Vec<String>>,
    /// Nodes whose dependencies are done, in id order (= the plan's dependency order).
    ready: BTreeSet<usize>,
    busy: HashSet<String>,
    running: HashSet<usize>,
    done: HashSet<usize>,
    failed: HashSet<usize>,
    total: usize,
}

impl DependencyQueue {
    pub(crate) fn new(deps: &[Vec<usize>], services: Vec<Vec<String>>) -> DependencyQueue {
        let n = deps.len();
        let mut dependents = vec![Vec::new(); n];
        for (i, ds) in deps.iter().enumerate() {
            for &d in ds {
                dependents[d].push(i);
            }
        }
        let pending_deps: Vec<usize> = deps.iter().map(Vec::len).collect();
        let ready = (0..n).filter(|&i| pending_deps[i] == 0).collect();
        DependencyQueue {
            pending_deps,
            dependents,
            services,
            ready,
            busy: HashSet::new(),
            running: HashSet::new(),
            done: HashSet::new(),
            failed: HashSet::new(),
            total: n,
        }
    }

    /// The next ready node whose services are free, marked running. None when nothing can
    /// start now (everything is waiting on a dependency or a busy service).
    pub(crate) fn dequeue(&mut self) -> Option<usize> {
        let pick = self
            .ready
            .iter()
            .copied()
            .find(|&i| self.services[i].iter().all(|s| !self.busy.contains(s)))?;
        self.ready.remove(&pick);
        for s in &self.services[pick] {
            self.busy.insert(s.clone());
        }
        self.running.insert(pick);
        Some(pick)
    }

    /// Mark `node` finished successfully: its dependents whose last dependency it was become ready.
    pub(crate) fn finish(&mut self, node: usize) {
        self.release(node);
        self.done.insert(node);
        for j in self.dependents[node].clone() {
            self.pending_deps[j] -= 1;
            if self.pending_deps[j] == 0 {
                self.ready.insert(j);
            }
        }
    }

    /// Mark `node` failed: its dependents never become ready.
    pub(crate) fn fail(&mut self, node: usize) {
        self.release(node);
        self.failed.insert(node);
    }

    fn release(&mut self, node: usize) {
        self.running.remove(&node);
        for s in &self.services[node] {
            self.busy.remove(s);
        }
    }

    #[cfg(test)]
    fn is_finished(&self) -> bool {
        self.done.len() == self.total
    }

    /// Nodes that did not run (blocked by a failure or never started), in id order.
    pub(crate) fn not_started(&self) -> Vec<usize> {
        (0..self.total)
            .filter(|i| {
                !self.done.contains(i) && !self.failed.contains(i) && !self.running.contains(i)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(deps: &[&[usize]], svc: &[&[&str]]) -> DependencyQueue {
        DependencyQueue::new(
            &deps.iter().map(|d| d.to_vec()).collect::<Vec<_>>(),
            svc.iter()
                .map(|s| s.iter().map(|x| x.to_string()).collect())
                .collect(),
        )
    }

    #[test]
    fn dependents_start_as_soon_as_their_last_dependency_finishes() {
        // 0 and 1 independent; 2 needs 0; 3 needs 0 and 1.
        let mut q = q(
            &[&[], &[], &[0], &[0, 1]],
            &[&["a"], &["b"], &["c"], &["d"]],
        );
        assert_eq!(q.dequeue(), Some(0));
        assert_eq!(q.dequeue(), Some(1));
        assert_eq!(q.dequeue(), None);
        q.finish(0);
        // 2 is ready although 1 still runs: not level by level.
        assert_eq!(q.dequeue(), Some(2));
        assert_eq!(q.dequeue(), None);
        q.finish(1);
        assert_eq!(q.dequeue(), Some(3));
        q.finish(2);
        q.finish(3);
        assert!(q.is_finished());
    }

    #[test]
    fn one_mutation_per_service_at_a_time() {
        let mut q = q(&[&[], &[], &[]], &[&["a"], &["a"], &["b"]]);
        assert_eq!(q.dequeue(), Some(0));
        assert_eq!(q.dequeue(), Some(2), "1 waits for service a");
        assert_eq!(q.dequeue(), None);
        q.finish(0);
        assert_eq!(q.dequeue(), Some(1));
    }

    #[test]
    fn failure_blocks_dependents_only() {
        let mut q = q(&[&[], &[0], &[]], &[&["a"], &["b"], &["c"]]);
        assert_eq!(q.dequeue(), Some(0));
        assert_eq!(q.dequeue(), Some(2));
        q.fail(0);
        assert_eq!(q.dequeue(), None);
        q.finish(2);
        assert_eq!(q.not_started(), vec![1]);
        assert!(!q.is_finished());
    }
}
