//! Builders for unit tests.

use crate::model::{Command, Executor, Output, OutputKind, Pipeline, Resources, Stage};
use crate::path::WsPath;

pub fn stage(name: &str, deps: &[&str], outs: &[&str]) -> Stage {
    Stage {
        name: name.to_string(),
        cmd: Command::Shell("true".to_string()),
        deps: deps.iter().map(|d| WsPath::new(d).unwrap()).collect(),
        outs: outs
            .iter()
            .map(|o| Output { path: WsPath::new(o).unwrap(), kind: OutputKind::Data, cache: true, persist: false })
            .collect(),
        metrics: vec![],
        params: serde_json::json!({}),
        env: Default::default(),
        secrets: vec![],
        executor: Executor::Local,
        resources: Resources { cpus: 1, gpus: 0 },
        wdir: WsPath::root(),
        always_run: false,
        frozen: false,
        cpu_fallback: false,
        remote: false,
        timeout: None,
        desc: None,
    }
}

pub fn pipeline(mut stages: Vec<Stage>) -> Pipeline {
    stages.sort_by(|a, b| a.name.cmp(&b.name));
    Pipeline { stages, remote: None, registry: Default::default(), plots: vec![], link: Default::default() }
}
