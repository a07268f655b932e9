//! The dependency graph of a workflow's steps, by index: explicit `depends` resolved to
//! indices, plus the implicit "previous step" dependency that `chain` workflows give a step
//! without `depends`. Validation uses it to find cycles and out-of-scope references; the local
//! runner's scheduler uses it to decide what may start.

use std::collections::{HashMap, HashSet};

use super::model::{Workflow, WorkflowKind};

/// Resolved dependencies: `dependencies[i]` are the indices step `i` waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DependencyGraph {
    dependencies: Vec<Vec<usize>>,
}

impl DependencyGraph {
    /// Builds the graph, ignoring names that match no step (validation reports those). When
    /// two steps share a name, the first one is meant.
    pub fn new(workflow: &Workflow) -> Self {
        let mut index_of: HashMap<&str, usize> = HashMap::new();
        for (index, step) in workflow.steps.iter().enumerate() {
            index_of.entry(step.name.as_str()).or_insert(index);
        }
        let chain = workflow.kind() == WorkflowKind::Chain;
        let dependencies = workflow
            .steps
            .iter()
            .enumerate()
            .map(|(index, step)| match &step.depends {
                None if chain && index > 0 => vec![index - 1],
                None => Vec::new(),
                Some(depends) => {
                    let mut resolved: Vec<usize> = Vec::new();
                    for name in depends.names() {
                        if let Some(&dependency) = index_of.get(name.as_str())
                            && !resolved.contains(&dependency)
                        {
                            resolved.push(dependency);
                        }
                    }
                    resolved
                }
            })
            .collect();
        Self { dependencies }
    }

    pub fn len(&self) -> usize {
        self.dependencies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dependencies.is_empty()
    }

    /// Each step of `workflow` by name with the names of the steps it waits for directly, in
    /// declaration order: what a client needs to draw the graph.
    pub fn named_steps(workflow: &Workflow) -> impl Iterator<Item = (String, Vec<String>)> {
        let graph = Self::new(workflow);
        workflow.steps.iter().enumerate().map(move |(index, step)| {
            let depends = graph.dependencies[index]
                .iter()
                .map(|&dependency| workflow.steps[dependency].name.clone())
                .collect();
            (step.name.clone(), depends)
        })
    }

    /// The steps `step` waits for directly.
    pub fn dependencies_of(&self, step: usize) -> &[usize] {
        &self.dependencies[step]
    }

    /// Every step `step` waits for, directly or indirectly (never `step` itself unless it is on
    /// a cycle).
    pub fn transitive_dependencies(&self, step: usize) -> HashSet<usize> {
        let mut seen = HashSet::new();
        let mut pending: Vec<usize> = self.dependencies[step].clone();
        while let Some(next) = pending.pop() {
            if seen.insert(next) {
                pending.extend_from_slice(&self.dependencies[next]);
            }
        }
        seen
    }

    /// Every step's transitive dependencies at once, as bit sets: linear in the edges times
    /// a word per 64 steps, where asking [`transitive_dependencies`](Self::transitive_dependencies)
    /// of each step would cost time quadratic in a chain's length.
    pub fn ancestry(&self) -> Ancestry {
        let words = self.len().div_ceil(64);
        let mut ancestry = Ancestry {
            words,
            bits: vec![0; words * self.len()],
        };
        let order = self.dependency_order();
        let cyclic = !self.cycles().is_empty();
        // One pass in dependency order is enough without cycles; each further pass carries
        // what a cycle hides one more step around it (cyclic workflows are refused anyway).
        let mut changed = true;
        let mut passes = 0;
        while changed && passes <= self.len() {
            changed = false;
            passes += 1;
            for &step in &order {
                for &dependency in &self.dependencies[step] {
                    changed |= ancestry.absorb(step, dependency);
                }
            }
            if !cyclic {
                break;
            }
        }
        ancestry
    }

    /// The steps, each after the steps it depends on (as far as cycles allow): a depth-first
    /// post-order.
    fn dependency_order(&self) -> Vec<usize> {
        let mut order = Vec::with_capacity(self.len());
        let mut visited = vec![false; self.len()];
        for root in 0..self.len() {
            if visited[root] {
                continue;
            }
            visited[root] = true;
            let mut path: Vec<(usize, usize)> = vec![(root, 0)];
            while let Some((node, edge)) = path.last_mut() {
                if let Some(&dependency) = self.dependencies[*node].get(*edge) {
                    *edge += 1;
                    if !visited[dependency] {
                        visited[dependency] = true;
                        path.push((dependency, 0));
                    }
                } else {
                    order.push(*node);
                    path.pop();
                }
            }
        }
        order
    }

    /// One cycle per strongly connected group of steps, each as the list of step indices in
    /// dependency order (each depends on the next; the last depends on the first). Self
    /// dependencies are cycles of one.
    pub fn cycles(&self) -> Vec<Vec<usize>> {
        let mut cycles: Vec<Vec<usize>> = Vec::new();
        let mut reported: HashSet<usize> = HashSet::new();
        // 0 = unvisited, 1 = on the current path, 2 = done.
        let mut state = vec![0u8; self.len()];
        for root in 0..self.len() {
            if state[root] != 0 {
                continue;
            }
            let mut path: Vec<usize> = vec![root];
            let mut next_edge: Vec<usize> = vec![0];
            state[root] = 1;
            while let Some(&node) = path.last() {
                let edge = next_edge.last_mut().expect("one edge cursor per path node");
                if let Some(&dependency) = self.dependencies[node].get(*edge) {
                    *edge += 1;
                    match state[dependency] {
                        0 => {
                            state[dependency] = 1;
                            path.push(dependency);
                            next_edge.push(0);
                        }
                        1 => {
                            let start =
                                path.iter().position(|&p| p == dependency).expect("on path");
                            let cycle = path[start..].to_vec();
                            if cycle.iter().all(|member| !reported.contains(member)) {
                                reported.extend(cycle.iter().copied());
                                cycles.push(cycle);
                            }
                        }
                        _ => {}
                    }
                } else {
                    state[node] = 2;
                    path.pop();
                    next_edge.pop();
                }
            }
        }
        cycles
    }
}

/// Which steps each step waits for, directly or indirectly; from [`DependencyGraph::ancestry`].
#[derive(Debug, Clone)]
pub struct Ancestry {
    /// Words per step.
    words: usize,
    /// Step `i`'s set is `bits[i * words..(i + 1) * words]`.
    bits: Vec<u64>,
}

impl Ancestry {
    /// Whether `step` waits for `dependency`, directly or indirectly.
    pub fn waits_for(&self, step: usize, dependency: usize) -> bool {
        self.bits[step * self.words + dependency / 64] & (1 << (dependency % 64)) != 0
    }

    /// Adds `dependency` and everything it waits for to `step`'s set; whether that grew.
    fn absorb(&mut self, step: usize, dependency: usize) -> bool {
        let words = self.words;
        let mut changed = false;
        for word in 0..words {
            let mut incoming = self.bits[dependency * words + word];
            if word == dependency / 64 {
                incoming |= 1 << (dependency % 64);
            }
            let own = &mut self.bits[step * words + word];
            changed |= *own | incoming != *own;
            *own |= incoming;
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn graph(document: serde_json::Value) -> DependencyGraph {
        DependencyGraph::new(&Workflow::from_value(document).expect("parses"))
    }

    #[test]
    fn chain_steps_without_depends_follow_the_previous_step() {
        let graph = graph(json!({"name":"w","steps":[
            {"name":"a","command":"x"},{"name":"b","command":"x"},
            {"name":"c","command":"x","depends":["a"]}]}));
        assert_eq!(graph.dependencies_of(0), &[] as &[usize]);
        assert_eq!(graph.dependencies_of(1), &[0]);
        assert_eq!(graph.dependencies_of(2), &[0]);
    }

    #[test]
    fn graph_steps_may_depend_on_later_steps() {
        let graph = graph(json!({"name":"w","type":"graph","steps":[
            {"name":"a","command":"x","depends":"b"},{"name":"b","command":"x"}]}));
        assert_eq!(graph.dependencies_of(0), &[1]);
        assert_eq!(graph.dependencies_of(1), &[] as &[usize]);
        assert_eq!(graph.transitive_dependencies(0), HashSet::from([1]));
    }

    #[test]
    fn ancestry_is_every_step_waited_for_cycles_included() {
        let graph = graph(json!({"name":"w","type":"graph","steps":[
            {"name":"a","command":"x"},
            {"name":"b","command":"x","depends":["a"]},
            {"name":"c","command":"x","depends":["b","e"]},
            {"name":"d","command":"x","depends":["c"]},
            {"name":"e","command":"x","depends":["d"]},
            {"name":"f","command":"x"}]}));
        let ancestry = graph.ancestry();
        for step in 0..graph.len() {
            for other in 0..graph.len() {
                assert_eq!(
                    ancestry.waits_for(step, other),
                    graph.transitive_dependencies(step).contains(&other),
                    "step {step}, other {other}"
                );
            }
        }
    }

    #[test]
    fn ancestry_of_a_long_chain() {
        let steps: Vec<_> = (0..200)
            .map(|i| json!({"name": format!("s{i}"), "command": "x"}))
            .collect();
        let ancestry = graph(json!({"name": "w", "steps": steps})).ancestry();
        assert!(ancestry.waits_for(199, 0));
        assert!(ancestry.waits_for(130, 64));
        assert!(!ancestry.waits_for(64, 130));
        assert!(!ancestry.waits_for(0, 0));
    }

    #[test]
    fn cycles_are_found_once() {
        let graph = graph(json!({"name":"w","type":"graph","steps":[
            {"name":"a","command":"x","depends":["b"]},{"name":"b","command":"x","depends":["c"]},
            {"name":"c","command":"x","depends":["a"]},{"name":"d","command":"x","depends":["d"]},
            {"name":"e","command":"x","depends":["a"]}]}));
        assert_eq!(graph.cycles(), vec![vec![0, 1, 2], vec![3]]);
    }
}
