//! Replication links as a graph: every replica has exactly one source, so each service has
//! at most one outgoing `from` edge and a cycle is found by walking the chain.

use std::collections::{BTreeMap, BTreeSet};

/// The cycles among `from` links (`replica key → source key`), each starting at its smallest
/// key and listed in `from` order, e.g. `["a", "b", "c"]` for a→b→c→a. Deterministic.
/// Self-links are left to the caller (they get their own message).
pub(super) fn cycles(from: &BTreeMap<String, String>) -> Vec<Vec<String>> {
    let mut done: BTreeSet<&str> = BTreeSet::new();
    let mut found = Vec::new();
    for start in from.keys() {
        let mut path: Vec<&str> = Vec::new();
        let mut current = Some(start.as_str());
        while let Some(key) = current {
            if done.contains(key) {
                break;
            }
            if let Some(i) = path.iter().position(|k| *k == key) {
                let cycle = &path[i..];
                // Rotate so the cycle starts at its smallest key (stable output).
                let min = cycle
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, k)| **k)
                    .map_or(0, |(i, _)| i);
                let rotated = cycle[min..].iter().chain(&cycle[..min]);
                found.push(rotated.map(|k| k.to_string()).collect());
                break;
            }
            path.push(key);
            current = from
                .get(key)
                .map(String::as_str)
                .filter(|next| *next != key);
        }
        done.extend(path);
    }
    found
}

/// `a -> b -> c -> a`
pub(super) fn describe(cycle: &[String]) -> String {
    let mut parts: Vec<&str> = cycle.iter().map(String::as_str).collect();
    if let Some(first) = cycle.first() {
        parts.push(first);
    }
    parts.join(" -> ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn chains_and_fan_outs_have_no_cycle() {
        assert!(cycles(&links(&[("b", "a"), ("c", "b"), ("d", "a")])).is_empty());
        assert!(cycles(&links(&[])).is_empty());
    }

    #[test]
    fn finds_two_and_three_cycles_once_each() {
        let c = cycles(&links(&[("a", "b"), ("b", "a")]));
        assert_eq!(c, vec![vec!["a", "b"]]);
        let c = cycles(&links(&[("x", "z"), ("y", "x"), ("z", "y")]));
        assert_eq!(c, vec![vec!["x", "z", "y"]]);
        assert_eq!(describe(&c[0]), "x -> z -> y -> x");
    }

    #[test]
    fn tails_into_a_cycle_are_not_part_of_it() {
        let c = cycles(&links(&[("a", "b"), ("b", "c"), ("c", "b"), ("d", "a")]));
        assert_eq!(c, vec![vec!["b", "c"]]);
    }

    #[test]
    fn separate_cycles_are_all_reported() {
        let c = cycles(&links(&[("a", "b"), ("b", "a"), ("c", "d"), ("d", "c")]));
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn self_links_and_dangling_links_are_ignored() {
        assert!(cycles(&links(&[("a", "a"), ("b", "missing")])).is_empty());
    }
}
