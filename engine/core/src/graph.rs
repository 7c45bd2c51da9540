//! The stage graph: an edge `a → b` wherever one of `b`'s deps lies at or
//! under one of `a`'s outputs, or the reverse.
//!
//! Path overlap is found with ordered maps rather than by comparing every dep
//! with every output, so building the graph of a 500-stage pipeline with
//! thousands of deps stays well under a millisecond per stage.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graph::{DiGraph, NodeIndex};

use crate::model::Pipeline;
use crate::path::WsPath;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GraphError {
    #[error("the stages {} form a cycle", quote_list(.stages))]
    Cycle { stages: Vec<String> },
    #[error("stage `{stage}` lists the output `{path}` twice")]
    OutputListedTwice { stage: String, path: String },
    #[error("stages `{first}` and `{second}` both write `{path}`")]
    DuplicateOutput { path: String, first: String, second: String },
    #[error("output `{inner}` of stage `{inner_stage}` lies inside output `{outer}` of stage `{outer_stage}`")]
    NestedOutput { outer: String, outer_stage: String, inner: String, inner_stage: String },
    #[error("stage `{stage}` depends on `{dep}`, which overlaps its own output `{out}`")]
    DepIsOwnOutput { stage: String, dep: String, out: String },
    #[error("stage `{stage}` depends on `{dep}`, which does not exist and no stage writes")]
    MissingDep {
        stage: String,
        dep: String,
        /// A stage's output or a file in the workspace with a name close to `dep`.
        suggestion: Option<Suggestion>,
    },
    #[error("stage `{stage}` depends on `{dep}`, a symbolic link that loops back on itself")]
    DepIsLinkLoop { stage: String, dep: String },
    #[error("stage `{stage}` depends on `{dep}`, which cannot be read: {reason}")]
    DepUnreadable { stage: String, dep: String, reason: String },
    #[error(
        "stage `{stage}` depends on `{dep}`, which is {what} through a symbolic link: gourd and git write there while stages run, so it would never settle"
    )]
    DepIsReserved { stage: String, dep: String, what: &'static str },
    #[error(
        "stage `{stage}` depends on `{dep}`, which is `{real}` through a symbolic link, written by stage `{producer}`: gourd orders stages by the paths they name, so `{stage}` could run before `{producer}` or keep an old result"
    )]
    DepIsAlias { stage: String, dep: String, real: String, producer: String },
    #[error(
        "stage `{stage}` runs in `{wdir}` (its `wdir`), inside its own output `{out}`, which gourd removes before the stage runs"
    )]
    WdirInOwnOutput { stage: String, wdir: String, out: String },
    #[error(
        "stage `{stage}` runs in `{wdir}` (its `wdir`), inside `{out}`, an output of stage `{producer}`, but nothing makes it run after `{producer}`: list `{out}` in its `deps`"
    )]
    WdirInOtherOutput { stage: String, wdir: String, out: String, producer: String },
    #[error("no stage is named `{name}`")]
    UnknownStage {
        name: String,
        /// The stage with the name nearest to `name`, if one is close.
        suggestion: Option<String>,
    },
}

impl GraphError {
    /// The error for a stage name that `pipeline` does not have, with the
    /// nearest name it does have.
    pub fn unknown_stage(pipeline: &Pipeline, name: &str) -> GraphError {
        let suggestion = crate::suggest::closest(name, pipeline.stages.iter().map(|s| s.name.as_str()));
        GraphError::UnknownStage { name: name.to_string(), suggestion: suggestion.map(str::to_string) }
    }
}

/// A path close to a dep that does not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Suggestion {
    /// An output of the named stage.
    Output { path: String, stage: String },
    /// A file or folder in the workspace.
    Existing { path: String },
    /// The same path under the stage's `wdir` (paths are relative to the
    /// workspace, not to `wdir`, unlike DVC's).
    UnderWdir { path: String, wdir: String },
}

fn quote_list(names: &[String]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

/// The validated DAG of a pipeline. Node weights are indexes into
/// `Pipeline::stages`.
#[derive(Debug)]
pub struct Dag {
    graph: DiGraph<usize, ()>,
    /// A topological order, stable for a given pipeline.
    order: Vec<usize>,
    /// Output path → stage index.
    outputs: BTreeMap<WsPath, usize>,
}

/// What the check of a dep found wrong with it.
enum Found {
    /// Not there, or not readable (a link loop, say).
    Unreadable(std::io::Error),
    /// It leads where gourd and git write (what, for the message).
    Reserved(&'static str),
    /// It leads, in the workspace, to `real`, at or under or above an
    /// output of the stage `producer`.
    Alias { real: String, producer: usize },
}

impl Dag {
    pub fn build(pipeline: &Pipeline) -> Result<Dag, GraphError> {
        let mut graph = DiGraph::new();
        let nodes: Vec<NodeIndex> = (0..pipeline.stages.len()).map(|i| graph.add_node(i)).collect();

        let mut outputs: BTreeMap<WsPath, usize> = BTreeMap::new();
        for (i, stage) in pipeline.stages.iter().enumerate() {
            for out in stage.outputs() {
                if let Some(&first) = outputs.get(&out.path) {
                    if first == i {
                        return Err(GraphError::OutputListedTwice {
                            stage: stage.name.clone(),
                            path: out.path.to_string(),
                        });
                    }
                    return Err(GraphError::DuplicateOutput {
                        path: out.path.to_string(),
                        first: pipeline.stages[first].name.clone(),
                        second: stage.name.clone(),
                    });
                }
                outputs.insert(out.path, i);
            }
        }
        for (path, &stage) in &outputs {
            // A stage's metrics file may sit in one of its own out folders
            // (`outs = ["eval"], metrics = ["eval/metrics.json"]`), as DVC
            // allows: it is stored with the folder and read as metrics.
            let own_metrics = pipeline.stages[stage].metrics.contains(path);
            if let Some((outer, outer_stage)) =
                ancestor_outputs(&outputs, path).into_iter().find(|(p, s)| *p != path && !(own_metrics && *s == stage))
            {
                return Err(GraphError::NestedOutput {
                    outer: outer.to_string(),
                    outer_stage: pipeline.stages[outer_stage].name.clone(),
                    inner: path.to_string(),
                    inner_stage: pipeline.stages[stage].name.clone(),
                });
            }
        }

        let mut edges = BTreeSet::new();
        for (i, stage) in pipeline.stages.iter().enumerate() {
            for dep in &stage.deps {
                for (out, producer) in overlapping_outputs(&outputs, dep) {
                    if producer == i {
                        return Err(GraphError::DepIsOwnOutput {
                            stage: stage.name.clone(),
                            dep: dep.to_string(),
                            out: out.to_string(),
                        });
                    }
                    edges.insert((producer, i));
                }
            }
        }
        for &(from, to) in &edges {
            graph.add_edge(nodes[from], nodes[to], ());
        }
        // A stage runs in its `wdir`: inside an output, that folder is
        // removed before its producer runs, so the producer must come first
        // (directly or through other stages).
        for (i, stage) in pipeline.stages.iter().enumerate().filter(|(_, s)| !s.wdir.is_root()) {
            for (out, producer) in ancestor_outputs(&outputs, &stage.wdir) {
                let (name, wdir, out) = (stage.name.clone(), stage.wdir.to_string(), out.to_string());
                if producer == i {
                    return Err(GraphError::WdirInOwnOutput { stage: name, wdir, out });
                }
                if !petgraph::algo::has_path_connecting(&graph, nodes[producer], nodes[i], None) {
                    let producer = pipeline.stages[producer].name.clone();
                    return Err(GraphError::WdirInOtherOutput { stage: name, wdir, out, producer });
                }
            }
        }

        let order = match toposort(&graph, None) {
            Ok(order) => order.into_iter().map(|n| graph[n]).collect(),
            Err(_) => {
                let mut cycle: Vec<String> = tarjan_scc(&graph)
                    .into_iter()
                    .find(|scc| scc.len() > 1)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|n| pipeline.stages[graph[n]].name.clone())
                    .collect();
                cycle.sort();
                return Err(GraphError::Cycle { stages: cycle });
            }
        };
        Ok(Dag { graph, order, outputs })
    }

    /// Stage indexes in a topological order.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    pub fn edge_count(&self) -> usize {
        self.graph.edge_count()
    }

    /// Edges as `(upstream, downstream)` stage indexes, sorted.
    pub fn edges(&self) -> Vec<(usize, usize)> {
        let mut edges: Vec<_> = self
            .graph
            .edge_indices()
            .filter_map(|e| self.graph.edge_endpoints(e))
            .map(|(a, b)| (self.graph[a], self.graph[b]))
            .collect();
        edges.sort();
        edges
    }

    /// Direct upstream stages of `stage`.
    pub fn upstream(&self, stage: usize) -> Vec<usize> {
        let mut up: Vec<usize> = self
            .graph
            .neighbors_directed(NodeIndex::new(stage), petgraph::Direction::Incoming)
            .map(|n| self.graph[n])
            .collect();
        up.sort();
        up
    }

    /// Direct downstream stages of `stage`.
    pub fn downstream(&self, stage: usize) -> Vec<usize> {
        let mut down: Vec<usize> = self
            .graph
            .neighbors_directed(NodeIndex::new(stage), petgraph::Direction::Outgoing)
            .map(|n| self.graph[n])
            .collect();
        down.sort();
        down
    }

    /// The stages needed to bring `targets` up to date: the targets and
    /// everything upstream of them. An empty target list means every stage.
    pub fn select(&self, pipeline: &Pipeline, targets: &[String]) -> Result<BTreeSet<usize>, GraphError> {
        if targets.is_empty() {
            return Ok((0..pipeline.stages.len()).collect());
        }
        let mut selected = BTreeSet::new();
        let mut todo = Vec::new();
        for target in targets {
            let index = pipeline
                .stages
                .iter()
                .position(|s| &s.name == target)
                .ok_or_else(|| GraphError::unknown_stage(pipeline, target))?;
            todo.push(index);
        }
        while let Some(stage) = todo.pop() {
            if selected.insert(stage) {
                todo.extend(self.upstream(stage));
            }
        }
        Ok(selected)
    }

    /// The stage writing `path` (or the output holding it), if any.
    pub fn producer(&self, path: &WsPath) -> Option<usize> {
        ancestor_outputs(&self.outputs, path).first().map(|&(_, stage)| stage)
    }

    /// Deps that exist nowhere (not on disk and not written by any stage),
    /// or that are there but cannot be looked at, such as a link loop, or
    /// that lead through a link where gourd and git write (see
    /// [`Dag::check_dep_links`]).
    /// `tracked`: paths that may be missing (sources `gourd run` restores).
    pub fn check_sources(&self, pipeline: &Pipeline, root: &Path, tracked: &[WsPath]) -> Result<(), GraphError> {
        self.check_deps(pipeline, root, tracked, false)
    }

    /// Deps that lie in a folder a symbolic link on the way leads into
    /// `.git` or `.gourd`, to the workspace itself or a folder above it:
    /// gourd and git write there while stages run, so such a dep never
    /// settles. Cheaper than [`Dag::check_sources`], for `gourd status`: only
    /// the folders deps lie in are resolved (once each), not each dep; a dep
    /// missing is left for the caller to report, and one that is itself a
    /// link to the workspace, `.git` or `.gourd` is refused when it is hashed.
    pub fn check_dep_links(&self, pipeline: &Pipeline, root: &Path) -> Result<(), GraphError> {
        self.check_deps(pipeline, root, &[], true)
    }

    /// `folders_only`: the cheaper check of [`Dag::check_dep_links`].
    fn check_deps(
        &self,
        pipeline: &Pipeline,
        root: &Path,
        tracked: &[WsPath],
        folders_only: bool,
    ) -> Result<(), GraphError> {
        use rayon::prelude::*;
        let dir = crate::fsutil::RootDir::open(root);
        // Whether a path is a link itself (not followed), and, for one that
        // is not, the error that says it is not there.
        let lstat = |path: &Path| match dir.as_ref().and_then(|d| d.lstat(path)) {
            Some(result) => result.map(|st| st.st_mode & libc::S_IFMT == libc::S_IFLNK),
            None => std::fs::symlink_metadata(path).map(|m| m.file_type().is_symlink()),
        };
        let canonical_root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
        // Where gourd and git write while stages run: a dep named so is
        // refused when the pipeline is read; one that leads there through a
        // link is found here, by where it really is.
        let reserved = |real: &Path| -> Option<&'static str> {
            if canonical_root.starts_with(real) {
                return Some("the whole workspace (which holds `.gourd`), or a folder above it");
            }
            match real.strip_prefix(&canonical_root).ok()?.components().next()?.as_os_str().to_str()? {
                ".git" => Some("in `.git`"),
                ".gourd" => Some("in `.gourd`"),
                _ => None,
            }
        };
        // Where a dep that a link moved really is, when that is somewhere
        // it must not be read from: where gourd and git write, or another
        // stage's output under a name the graph does not see.
        let misplaced = |real: &Path| -> Option<Found> {
            if let Some(what) = reserved(real) {
                return Some(Found::Reserved(what));
            }
            let inside = WsPath::new(real.strip_prefix(&canonical_root).ok()?.to_str()?).ok()?;
            let (_, producer) = overlapping_outputs(&self.outputs, &inside).into_iter().next()?;
            Some(Found::Alias { real: inside.to_string(), producer })
        };
        // The folders deps lie in, resolved once each: a link on the way
        // there moves every dep under it.
        let parents: BTreeSet<&str> = pipeline
            .stages
            .iter()
            .flat_map(|s| &s.deps)
            .filter_map(|dep| dep.as_str().rsplit_once('/').map(|(parent, _)| parent))
            .collect();
        let moved: BTreeMap<&str, std::path::PathBuf> = parents
            .into_par_iter()
            .filter_map(|parent| {
                let real = std::fs::canonicalize(root.join(parent)).ok()?;
                (real != canonical_root.join(parent)).then_some((parent, real))
            })
            .collect();
        // A frozen stage's deps are not read once it has run; if it has
        // not, running it says what is missing. Looked up on all cores (a
        // pipeline of a thousand shards names a hundred thousand files); the
        // first failing dep in the pipeline's order is the one reported.
        let failure = pipeline
            .stages
            .par_iter()
            .filter(|s| !s.frozen)
            .flat_map_iter(|stage| stage.deps.iter().map(move |dep| (stage, dep)))
            .find_map_first(|(stage, dep)| {
                // A stage's output (the usual case, looked up first) or a
                // path at, above or under one: written before it is read.
                if self.outputs.contains_key(dep) || !overlapping_outputs(&self.outputs, dep).is_empty() {
                    return None;
                }
                let within = |inner: &str, outer: &str| {
                    inner.strip_prefix(outer).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
                };
                let under = |t: &WsPath| within(dep.as_str(), t.as_str()) || within(t.as_str(), dep.as_str());
                if tracked.iter().any(under) {
                    return None;
                }
                // Where the dep is, if a link on the way moved it.
                let moved_to = || match dep.as_str().rsplit_once('/') {
                    Some((parent, name)) => moved.get(parent).map(|real| real.join(name)),
                    None => None,
                };
                if folders_only {
                    return moved_to().and_then(|real| misplaced(&real)).map(|found| (stage, dep, found));
                }
                let path = dep.to_path(root);
                let real = match lstat(&path) {
                    // A link: where it leads, if anywhere.
                    Ok(true) => match std::fs::canonicalize(&path) {
                        Ok(real) => real,
                        Err(err) => return Some((stage, dep, Found::Unreadable(err))),
                    },
                    Ok(false) => moved_to()?,
                    Err(err) => return Some((stage, dep, Found::Unreadable(err))),
                };
                misplaced(&real).map(|found| (stage, dep, found))
            });
        if let Some((stage, dep, found)) = failure {
            let (stage, dep) = (stage.name.clone(), dep.to_string());
            let err = match found {
                Found::Unreadable(err) => err,
                Found::Reserved(what) => return Err(GraphError::DepIsReserved { stage, dep, what }),
                Found::Alias { real, producer } => {
                    let producer = pipeline.stages[producer].name.clone();
                    return Err(GraphError::DepIsAlias { stage, dep, real, producer });
                }
            };
            return Err(match err.raw_os_error() {
                Some(libc::ELOOP) => GraphError::DepIsLinkLoop { stage, dep },
                Some(libc::ENOENT | libc::ENOTDIR) if let Some((real, producer)) = self.dangling_alias(root, &dep) => {
                    let producer = pipeline.stages[producer].name.clone();
                    GraphError::DepIsAlias { stage, dep, real, producer }
                }
                Some(libc::ENOENT | libc::ENOTDIR) => {
                    let under_wdir = format!("{}/{dep}", stage_wdir(pipeline, &stage));
                    let suggestion = if !stage_wdir(pipeline, &stage).is_empty() && root.join(&under_wdir).exists() {
                        Some(Suggestion::UnderWdir { path: under_wdir, wdir: stage_wdir(pipeline, &stage) })
                    } else {
                        self.near_dep(pipeline, root, &dep)
                    };
                    GraphError::MissingDep { stage, dep, suggestion }
                }
                _ => GraphError::DepUnreadable { stage, dep, reason: err.to_string() },
            });
        }
        Ok(())
    }
}

impl Dag {
    /// For a dep that is not there: a link on its way (read, not followed:
    /// what it leads to may not be written yet) that leads, in the
    /// workspace, to a stage's output; where, and the stage.
    fn dangling_alias(&self, root: &Path, dep: &str) -> Option<(String, usize)> {
        let parts: Vec<&str> = dep.split('/').collect();
        for end in 1..=parts.len() {
            let Ok(target) = std::fs::read_link(root.join(parts[..end].join("/"))) else {
                continue;
            };
            // Where it leads, as a path from the root: `..` taken lexically,
            // as the link is read.
            let mut real: Vec<String> = if target.is_absolute() {
                let canonical_root = std::fs::canonicalize(root).ok()?;
                let inside = target.strip_prefix(&canonical_root).or_else(|_| target.strip_prefix(root)).ok()?;
                inside.iter().map(|p| p.to_string_lossy().into_owned()).collect()
            } else {
                let mut from: Vec<String> = parts[..end - 1].iter().map(|p| p.to_string()).collect();
                for part in target.iter().map(|p| p.to_string_lossy().into_owned()) {
                    match part.as_str() {
                        "." => {}
                        ".." => {
                            from.pop()?;
                        }
                        _ => from.push(part),
                    }
                }
                from
            };
            real.extend(parts[end..].iter().map(|p| p.to_string()));
            let inside = WsPath::new(&real.join("/")).ok()?;
            let (_, producer) = overlapping_outputs(&self.outputs, &inside).into_iter().next()?;
            return Some((inside.to_string(), producer));
        }
        None
    }

    /// What a missing dep was probably meant to name: the nearest stage
    /// output, else the nearest entry of the folder it names.
    fn near_dep(&self, pipeline: &Pipeline, root: &Path, dep: &str) -> Option<Suggestion> {
        let outputs = self.outputs.keys().map(|p| p.as_str());
        if let Some(path) = crate::suggest::closest(dep, outputs) {
            let producer = self.outputs.iter().find(|(out, _)| out.as_str() == path).map(|(_, &stage)| stage)?;
            let stage = pipeline.stages[producer].name.clone();
            return Some(Suggestion::Output { path: path.to_string(), stage });
        }
        let (folder, name) = dep.rsplit_once('/').unwrap_or(("", dep));
        let entries: Vec<String> = std::fs::read_dir(root.join(folder))
            .ok()?
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|entry| entry != ".gourd" && entry != ".git")
            .collect();
        let near = crate::suggest::closest(name, entries.iter().map(String::as_str))?;
        let path = if folder.is_empty() { near.to_string() } else { format!("{folder}/{near}") };
        Some(Suggestion::Existing { path })
    }
}

/// A stage's `wdir`, `""` at the workspace root.
fn stage_wdir(pipeline: &Pipeline, stage: &str) -> String {
    pipeline.stage(stage).filter(|s| !s.wdir.is_root()).map(|s| s.wdir.to_string()).unwrap_or_default()
}

/// Outputs at `path` or above it.
fn ancestor_outputs<'a>(outputs: &'a BTreeMap<WsPath, usize>, path: &WsPath) -> Vec<(&'a WsPath, usize)> {
    let mut found = Vec::new();
    let mut prefix = path.as_str();
    loop {
        // A prefix of a valid path that ends at a `/` is a valid path.
        if let Some((key, &stage)) = outputs.get_key_value(prefix) {
            found.push((key, stage));
        }
        match prefix.rfind('/') {
            Some(i) => prefix = &prefix[..i],
            None => break,
        }
    }
    found
}

/// Outputs at, above or under `path`.
fn overlapping_outputs<'a>(outputs: &'a BTreeMap<WsPath, usize>, path: &WsPath) -> Vec<(&'a WsPath, usize)> {
    if path.is_root() {
        return outputs.iter().map(|(p, &s)| (p, s)).collect();
    }
    thread_local! {
        // The bounds of the range below, written in place: this runs for
        // every dep of the pipeline on all cores, and an allocation each
        // made the cores wait on the allocator's lock.
        static BOUNDS: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    }
    let mut found = ancestor_outputs(outputs, path);
    // Everything under `path/`: the range ["path/", "path0"), '0' being '/' + 1.
    BOUNDS.with_borrow_mut(|bounds| {
        bounds.clear();
        bounds.extend([path.as_str(), "/", path.as_str(), "0"]);
        let (start, end) = bounds.split_at(path.as_str().len() + 1);
        let range = (std::ops::Bound::Included(start), std::ops::Bound::Excluded(end));
        found.extend(outputs.range::<str, _>(range).map(|(p, &s)| (p, s)));
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Stage;
    use crate::testing::{pipeline, stage};

    #[test]
    fn edges_from_path_overlap() {
        let p = pipeline(vec![
            stage("a", &["src"], &["data/a"]),
            stage("b", &["data/a/part"], &["data/b"]),
            stage("c", &["data"], &["out"]),
        ]);
        let dag = Dag::build(&p).unwrap();
        assert_eq!(dag.edges(), vec![(0, 1), (0, 2), (1, 2)]);
        assert_eq!(dag.order(), &[0, 1, 2]);
    }

    #[test]
    fn cycle_names_every_stage() {
        let p = pipeline(vec![stage("a", &["y"], &["x"]), stage("b", &["x"], &["y"]), stage("c", &["x"], &["z"])]);
        assert_eq!(Dag::build(&p).unwrap_err(), GraphError::Cycle { stages: vec!["a".into(), "b".into()] });
    }

    #[test]
    fn duplicate_and_nested_outputs() {
        let p = pipeline(vec![stage("a", &[], &["x"]), stage("b", &[], &["x"])]);
        assert!(matches!(Dag::build(&p).unwrap_err(), GraphError::DuplicateOutput { .. }));
        let p = pipeline(vec![stage("a", &[], &["x", "x"])]);
        assert_eq!(Dag::build(&p).unwrap_err(), GraphError::OutputListedTwice { stage: "a".into(), path: "x".into() });
        let p = pipeline(vec![stage("a", &[], &["x"]), stage("b", &[], &["x/y"])]);
        assert!(matches!(Dag::build(&p).unwrap_err(), GraphError::NestedOutput { .. }));
    }

    #[test]
    fn dep_on_own_output() {
        let p = pipeline(vec![stage("a", &["x/y"], &["x"])]);
        assert!(matches!(Dag::build(&p).unwrap_err(), GraphError::DepIsOwnOutput { .. }));
    }

    /// A dep that a link leads to another stage's output, or where gourd
    /// and git write, is refused: the graph orders stages by the paths they
    /// name, and would not order these.
    #[test]
    fn deps_that_links_lead_to_outputs_or_reserved_places_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for folder in ["d", "src", ".git/refs", ".gourd"] {
            std::fs::create_dir_all(root.join(folder)).unwrap();
        }
        std::fs::write(root.join("d/g"), "v1").unwrap();
        std::fs::write(root.join("src/s"), "s").unwrap();
        for (link, target) in [("e", "d"), ("h", "d/g"), ("lib", "src"), ("gl", ".git"), ("up", "..")] {
            std::os::unix::fs::symlink(target, root.join(link)).unwrap();
        }
        let check = |dep: &str, folders_only: bool| {
            let p = pipeline(vec![stage("a", &[], &["d"]), stage("b", &[dep], &["o"])]);
            let dag = Dag::build(&p).unwrap();
            if folders_only { dag.check_dep_links(&p, root) } else { dag.check_sources(&p, root, &[]) }
        };
        let alias = |dep: &str, real: &str| GraphError::DepIsAlias {
            stage: "b".into(),
            dep: dep.into(),
            real: real.into(),
            producer: "a".into(),
        };
        // Through a folder that is a link, for `run` and `status` alike.
        for folders_only in [false, true] {
            assert_eq!(check("e/g", folders_only), Err(alias("e/g", "d/g")));
            assert_eq!(check("lib/s", folders_only), Ok(()), "a link to sources is fine");
            assert_eq!(
                check("gl/refs", folders_only),
                Err(GraphError::DepIsReserved { stage: "b".into(), dep: "gl/refs".into(), what: "in `.git`" })
            );
        }
        // A dep that is a link itself, when the pipeline is read to run it.
        assert_eq!(check("h", false), Err(alias("h", "d/g")));
        assert_eq!(check("e", false), Err(alias("e", "d")));
        assert!(matches!(check("up", false), Err(GraphError::DepIsReserved { .. })));
        assert_eq!(check("lib", false), Ok(()));
        assert_eq!(check("d/g", false), Ok(()), "the output as it is named");
        // Before the output is written, the link is read, not followed.
        std::fs::remove_dir_all(root.join("d")).unwrap();
        assert_eq!(check("e/g", false), Err(alias("e/g", "d/g")));
        assert_eq!(check("h", false), Err(alias("h", "d/g")));
        std::fs::create_dir_all(root.join("x/y")).unwrap();
        std::os::unix::fs::symlink("../../d/new", root.join("x/y/z")).unwrap();
        assert_eq!(check("x/y/z/f", false), Err(alias("x/y/z/f", "d/new/f")));
        // `.` parts are nothing, and a `..` after one leaves the folder.
        std::os::unix::fs::symlink("./../../d", root.join("x/y/dot")).unwrap();
        assert_eq!(check("x/y/dot/g", false), Err(alias("x/y/dot/g", "d/g")));
        std::os::unix::fs::symlink(root.join("d"), root.join("abs")).unwrap();
        assert_eq!(check("abs/g", false), Err(alias("abs/g", "d/g")));
        // A dangling link to anything else is a dep that is missing.
        std::os::unix::fs::symlink("nowhere", root.join("n")).unwrap();
        assert!(matches!(check("n/f", false), Err(GraphError::MissingDep { .. })));
        std::os::unix::fs::symlink("../../..", root.join("x/out")).unwrap();
        assert!(matches!(check("x/out/f", false), Err(GraphError::MissingDep { .. })));
    }

    #[test]
    fn a_wdir_inside_an_output_needs_its_producer_first() {
        let in_gen = |mut s: Stage| {
            s.wdir = WsPath::new("gen/sub").unwrap();
            s
        };
        let p = pipeline(vec![in_gen(stage("b", &[], &["gen"]))]);
        assert_eq!(
            Dag::build(&p).unwrap_err(),
            GraphError::WdirInOwnOutput { stage: "b".into(), wdir: "gen/sub".into(), out: "gen".into() }
        );
        let p = pipeline(vec![stage("mk", &[], &["gen"]), in_gen(stage("b", &[], &["o"]))]);
        assert_eq!(
            Dag::build(&p).unwrap_err(),
            GraphError::WdirInOtherOutput {
                stage: "b".into(),
                wdir: "gen/sub".into(),
                out: "gen".into(),
                producer: "mk".into()
            }
        );
        // Depending on it orders them, directly or through another stage.
        let p = pipeline(vec![stage("mk", &[], &["gen"]), in_gen(stage("b", &["gen"], &["o"]))]);
        assert_eq!(Dag::build(&p).unwrap().edges(), vec![(1, 0)]);
        let p = pipeline(vec![
            stage("mk", &[], &["gen"]),
            stage("c", &["gen"], &["c.txt"]),
            in_gen(stage("b", &["c.txt"], &["o"])),
        ]);
        assert!(Dag::build(&p).is_ok());
        // A wdir beside or above outputs is no concern.
        let mut beside = stage("c", &[], &["gen/x"]);
        beside.wdir = WsPath::new("gen").unwrap();
        assert!(Dag::build(&pipeline(vec![beside])).is_ok());
    }

    #[test]
    fn select_takes_upstream_closure() {
        let p = pipeline(vec![stage("a", &[], &["x"]), stage("b", &["x"], &["y"]), stage("c", &[], &["z"])]);
        let dag = Dag::build(&p).unwrap();
        assert_eq!(dag.select(&p, &["b".into()]).unwrap().into_iter().collect::<Vec<_>>(), vec![0, 1]);
        assert!(dag.select(&p, &["nope".into()]).is_err());
    }
}
