//! The order in which an archive's files are read: disjoint sets of files (union-find), each
//! read in one step, ordered so that every partition's offsets increase from step to step.
//!
//! Invariant: [`Sets::order`] returns an order only when it agrees with every partition's
//! sequence; otherwise it names a cycle, which the caller merges into one set.

use std::collections::{BTreeMap, BTreeSet};

/// Disjoint sets of files (union-find), and the order in which to read them.
#[derive(Debug, Default)]
pub(super) struct Sets {
    parent: Vec<usize>,
}

impl Sets {
    pub(super) fn add(&mut self) -> usize {
        self.parent.push(self.parent.len());
        self.parent.len() - 1
    }

    pub(super) fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    pub(super) fn union(&mut self, a: usize, b: usize) {
        let (a, b) = (self.find(a), self.find(b));
        if a != b {
            self.parent[a.max(b)] = a.min(b);
        }
    }

    /// The sets in an order in which each of `sequences` (a partition's files in offset order)
    /// visits its sets in order; or a cycle of sets (by their roots) that no order allows.
    pub(super) fn order(
        &mut self,
        sequences: &[Vec<usize>],
    ) -> std::result::Result<Vec<usize>, Vec<usize>> {
        let mut after: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
        let mut before: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
        let roots: BTreeSet<usize> = (0..self.parent.len()).map(|x| self.find(x)).collect();
        for sequence in sequences {
            for pair in sequence.windows(2) {
                let (a, b) = (self.find(pair[0]), self.find(pair[1]));
                if a != b {
                    after.entry(a).or_default().insert(b);
                    before.entry(b).or_default().insert(a);
                }
            }
        }
        let mut waiting: BTreeMap<usize, usize> = roots
            .iter()
            .map(|&r| (r, before.get(&r).map_or(0, |b| b.len())))
            .collect();
        let mut ready: BTreeSet<usize> = waiting
            .iter()
            .filter(|&(_, &n)| n == 0)
            .map(|(&r, _)| r)
            .collect();
        let mut order = Vec::with_capacity(roots.len());
        while let Some(r) = ready.pop_first() {
            waiting.remove(&r);
            order.push(r);
            for next in after.get(&r).into_iter().flatten() {
                if let Some(n) = waiting.get_mut(next) {
                    *n -= 1;
                    if *n == 0 {
                        ready.insert(*next);
                    }
                }
            }
        }
        let Some((&start, _)) = waiting.first_key_value() else {
            return Ok(order);
        };
        // Every set left waits on another set left: walking back from one finds a cycle.
        let mut path = vec![start];
        loop {
            let last = path[path.len() - 1];
            let prev = before
                .get(&last)
                .and_then(|b| b.iter().find(|p| waiting.contains_key(p)))
                .copied()
                .unwrap_or(start);
            if let Some(at) = path.iter().position(|&p| p == prev) {
                return Err(path.split_off(at));
            }
            path.push(prev);
        }
    }
}
