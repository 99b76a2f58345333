//! `--tree`: processes grouped under their parent, like `ps f`. Shared by the table and the TUI,
//! which both hand in their rows already sorted; siblings keep that order, so a sort applies
//! among siblings and the tree's shape never depends on it.
//!
//! A process whose parent has no row (the parent moved no bytes, exited and was forgotten, or
//! is filtered out) stands at the top level, as `ps f -C NAME` shows a selected process whose
//! parent is not selected. A synthetic parent line was the alternative: it would be a row
//! without bytes that looks like one netmon counted, for a parent whose identity may be long
//! gone; the child's PPID column still names the parent.
use std::collections::HashMap;

use crate::aggregate::ProcessRow;

/// One row's place in the tree: its process, incarnation (a reused pid has several rows; the
/// newest is the one children belong to) and parent.
#[derive(Debug, Clone, Copy)]
pub struct Node {
    pub pid: u32,
    pub incarnation: u32,
    pub ppid: u32,
}

/// A node's place in the display order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    /// Index into the nodes given.
    pub index: usize,
    /// 0 at the top level.
    pub depth: usize,
    /// Index of its parent's node; None at the top level.
    pub parent: Option<usize>,
}

/// Display order: parents before their children, each parent's children in the order given.
/// Every node appears exactly once, also in a cycle (which pid reuse can make): the first node
/// of a cycle met in the given order becomes a root.
pub fn order(nodes: &[Node]) -> Vec<Placed> {
    let mut by_pid: HashMap<u32, usize> = HashMap::with_capacity(nodes.len());
    for (i, n) in nodes.iter().enumerate() {
        by_pid
            .entry(n.pid)
            .and_modify(|j| {
                if nodes[*j].incarnation < n.incarnation {
                    *j = i;
                }
            })
            .or_insert(i);
    }
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    let mut roots = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        match by_pid.get(&n.ppid) {
            Some(&p) if p != i && n.ppid != n.pid => children[p].push(i),
            _ => roots.push(i),
        }
    }
    let mut out = Vec::with_capacity(nodes.len());
    let mut seen = vec![false; nodes.len()];
    for &r in &roots {
        walk(r, &children, &mut seen, &mut out);
    }
    // Nodes only reachable from each other: a cycle, entered at its first node.
    for i in 0..nodes.len() {
        if !seen[i] {
            walk(i, &children, &mut seen, &mut out);
        }
    }
    out
}

/// Depth first from `start`, children in their order; iterative, so a deep chain of forks
/// cannot overflow the stack.
fn walk(start: usize, children: &[Vec<usize>], seen: &mut [bool], out: &mut Vec<Placed>) {
    let mut stack = vec![Placed {
        index: start,
        depth: 0,
        parent: None,
    }];
    while let Some(p) = stack.pop() {
        if std::mem::replace(&mut seen[p.index], true) {
            continue;
        }
        out.push(p);
        stack.extend(children[p.index].iter().rev().map(|&c| Placed {
            index: c,
            depth: p.depth + 1,
            parent: Some(p.index),
        }));
    }
}

/// The display order of a snapshot's process rows: as a tree with `tree`, else as given, every
/// row at the top level.
pub fn place(processes: &[ProcessRow], tree: bool) -> Vec<Placed> {
    if tree {
        let nodes: Vec<Node> = processes
            .iter()
            .map(|p| Node {
                pid: p.pid,
                incarnation: p.incarnation,
                ppid: p.ppid,
            })
            .collect();
        return order(&nodes);
    }
    (0..processes.len())
        .map(|index| Placed {
            index,
            depth: 0,
            parent: None,
        })
        .collect()
}

/// The prefix drawn before a name at `depth`: nothing at the top, then `└─ ` indented by two
/// more spaces per level, as `ps f` draws `\_ `.
pub fn prefix(depth: usize) -> String {
    if depth == 0 {
        String::new()
    } else {
        format!("{}└─ ", "  ".repeat(depth - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(pid: u32, ppid: u32) -> Node {
        Node {
            pid,
            incarnation: 0,
            ppid,
        }
    }

    #[test]
    fn three_levels_with_siblings_in_the_given_order() {
        // Given busiest first: a grandchild, the root, an orphan, two children of the root.
        let nodes = [
            node(30, 20),
            node(10, 1),
            node(99, 98),
            node(21, 10),
            node(20, 10),
        ];
        let got: Vec<(u32, usize, Option<u32>)> = order(&nodes)
            .into_iter()
            .map(|p| (nodes[p.index].pid, p.depth, p.parent.map(|i| nodes[i].pid)))
            .collect();
        assert_eq!(
            got,
            [
                (10, 0, None),
                (21, 1, Some(10)),
                (20, 1, Some(10)),
                (30, 2, Some(20)),
                (99, 0, None)
            ]
        );
    }

    #[test]
    fn cycles_and_self_parents_still_show_every_row_once() {
        let nodes = [node(5, 6), node(6, 5), node(7, 7)];
        let mut got: Vec<usize> = order(&nodes).into_iter().map(|p| p.index).collect();
        got.sort_unstable();
        assert_eq!(got, [0, 1, 2]);
    }

    #[test]
    fn children_belong_to_the_newest_incarnation_of_their_parent() {
        let old = Node {
            incarnation: 0,
            ..node(10, 1)
        };
        let new = Node {
            incarnation: 1,
            ..node(10, 1)
        };
        let nodes = [old, new, node(11, 10)];
        let got: Vec<(usize, Option<usize>)> =
            order(&nodes).iter().map(|p| (p.index, p.parent)).collect();
        assert_eq!(got, [(0, None), (1, None), (2, Some(1))]);
    }

    #[test]
    fn prefixes() {
        assert_eq!(prefix(0), "");
        assert_eq!(prefix(1), "└─ ");
        assert_eq!(prefix(3), "    └─ ");
    }
}
