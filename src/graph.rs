//! The dependency graph of schema versions (petgraph): one node per
//! `(subject, version)`, an edge from a version to each version it needs
//! first (a reference, or the subject's previous version).
//!
//! The graph only knows keys and edges. It answers two questions, both
//! deterministically whatever order nodes and edges were added in: is there a
//! cycle (and which chain of nodes makes it), and in which order can the nodes
//! be visited so that every node comes after what it points to, ties broken
//! by the keys' own order.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use petgraph::Direction;
use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

/// A directed graph over ordered keys; an edge `a -> b` means "`a` needs `b`".
#[derive(Debug, Clone)]
pub struct DependencyGraph<K> {
    graph: DiGraph<K, ()>,
    index: BTreeMap<K, NodeIndex>,
}

impl<K: Ord + Clone> Default for DependencyGraph<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Ord + Clone> DependencyGraph<K> {
    /// An empty graph.
    pub fn new() -> Self {
        Self {
            graph: DiGraph::new(),
            index: BTreeMap::new(),
        }
    }

    /// Adds `key` (once: adding it again is a no-op).
    pub fn add_node(&mut self, key: K) -> NodeIndex {
        if let Some(&i) = self.index.get(&key) {
            return i;
        }
        let i = self.graph.add_node(key.clone());
        self.index.insert(key, i);
        i
    }

    /// Records that `from` needs `to` (both added if absent; duplicates ignored).
    pub fn add_edge(&mut self, from: K, to: K) {
        let a = self.add_node(from);
        let b = self.add_node(to);
        self.graph.update_edge(a, b, ());
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    /// The graph has no node.
    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }

    /// Whether `key` is a node.
    pub fn contains(&self, key: &K) -> bool {
        self.index.contains_key(key)
    }

    /// What `key` points to, in key order.
    pub fn needs(&self, key: &K) -> Vec<&K> {
        let Some(&i) = self.index.get(key) else {
            return Vec::new();
        };
        let mut out: Vec<&K> = self
            .graph
            .neighbors_directed(i, Direction::Outgoing)
            .map(|n| &self.graph[n])
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// A cycle, if there is one: `[a, b, .., a]`, starting at the smallest key
    /// that lies on a cycle and following the smallest next key each time, so
    /// the same graph always reports the same chain.
    pub fn find_cycle(&self) -> Option<Vec<K>> {
        let mut start: Option<NodeIndex> = None;
        for scc in tarjan_scc(&self.graph) {
            let cyclic = scc.len() > 1 || self.graph.contains_edge(scc[0], scc[0]);
            if !cyclic {
                continue;
            }
            let smallest = *scc
                .iter()
                .min_by(|a, b| self.graph[**a].cmp(&self.graph[**b]))
                .expect("an scc is never empty");
            if start.is_none_or(|s| self.graph[smallest] < self.graph[s]) {
                start = Some(smallest);
            }
        }
        let start = start?;
        // shortest path back to `start`, smallest keys first (BFS)
        let mut parent: BTreeMap<NodeIndex, NodeIndex> = BTreeMap::new();
        let mut queue = VecDeque::from([start]);
        let mut seen = BTreeSet::from([start]);
        while let Some(n) = queue.pop_front() {
            let mut next: Vec<NodeIndex> = self
                .graph
                .neighbors_directed(n, Direction::Outgoing)
                .collect();
            next.sort_by(|a, b| self.graph[*a].cmp(&self.graph[*b]));
            next.dedup();
            for m in next {
                if m == start {
                    let mut chain = vec![self.graph[start].clone()];
                    let mut cur = n;
                    let mut back = Vec::new();
                    while cur != start {
                        back.push(self.graph[cur].clone());
                        cur = parent[&cur];
                    }
                    chain.extend(back.into_iter().rev());
                    chain.push(self.graph[start].clone());
                    return Some(chain);
                }
                if seen.insert(m) {
                    parent.insert(m, n);
                    queue.push_back(m);
                }
            }
        }
        unreachable!("a node of a cyclic component reaches itself")
    }

    /// Every node, each after all the nodes it points to; among the nodes
    /// ready at the same time the smallest key goes first. A cycle is
    /// returned as the error (see [`Self::find_cycle`]).
    pub fn topo_order(&self) -> Result<Vec<K>, Vec<K>> {
        let mut pending: Vec<usize> = self
            .graph
            .node_indices()
            .map(|i| {
                let mut out: Vec<NodeIndex> = self
                    .graph
                    .neighbors_directed(i, Direction::Outgoing)
                    .collect();
                out.sort();
                out.dedup();
                out.len()
            })
            .collect();
        let mut ready: BTreeSet<(&K, NodeIndex)> = self
            .graph
            .node_indices()
            .filter(|i| pending[i.index()] == 0)
            .map(|i| (&self.graph[i], i))
            .collect();
        let mut order = Vec::with_capacity(self.graph.node_count());
        while let Some((key, i)) = ready.pop_first() {
            order.push(key.clone());
            let mut users: Vec<NodeIndex> = self
                .graph
                .neighbors_directed(i, Direction::Incoming)
                .collect();
            users.sort();
            users.dedup();
            for u in users {
                pending[u.index()] -= 1;
                if pending[u.index()] == 0 {
                    ready.insert((&self.graph[u], u));
                }
            }
        }
        if order.len() < self.graph.node_count() {
            return Err(self
                .find_cycle()
                .expect("nodes left over after a topological sort lie on a cycle"));
        }
        Ok(order)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&'static str, &'static str)]) -> DependencyGraph<&'static str> {
        let mut g = DependencyGraph::new();
        for (a, b) in edges {
            g.add_edge(*a, *b);
        }
        g
    }

    #[test]
    fn dependencies_first_ties_by_key() {
        // diamond: d needs b and c, both need a; e stands alone
        let mut g = graph(&[("d", "c"), ("d", "b"), ("c", "a"), ("b", "a")]);
        g.add_node("e");
        assert_eq!(g.topo_order().unwrap(), vec!["a", "b", "c", "d", "e"]);
        assert_eq!(g.find_cycle(), None);
        assert_eq!(g.needs(&"d"), vec![&"b", &"c"]);
    }

    #[test]
    fn order_does_not_depend_on_insertion_order() {
        let a = graph(&[("z", "y"), ("m", "a"), ("y", "a"), ("b", "a")]);
        let b = graph(&[("b", "a"), ("y", "a"), ("m", "a"), ("z", "y")]);
        assert_eq!(a.topo_order(), b.topo_order());
    }

    #[test]
    fn a_cycle_is_reported_as_a_chain_from_its_smallest_node() {
        let g = graph(&[("d", "a"), ("a", "c"), ("c", "b"), ("b", "a")]);
        assert_eq!(g.find_cycle(), Some(vec!["a", "c", "b", "a"]));
        assert_eq!(g.topo_order(), Err(vec!["a", "c", "b", "a"]));
        let self_loop = graph(&[("x", "x")]);
        assert_eq!(self_loop.find_cycle(), Some(vec!["x", "x"]));
    }
}
