//! The scheduler with what the environment gives it: the GPU pool (devices
//! from `GOURD_GPUS`, then from the probe) and secrets. One test only, in a
//! binary of its own, because it sets variables for the whole process.

mod common;

use common::{Fixture, options, stage};
use gourd_core::model::{Executor, Stage};
use gourd_core::run::Outcome;

/// A 'cuda stage asking `gpus`, writing what it was given.
fn gpu_stage(name: &str, gpus: u32, script: &str) -> Stage {
    let mut s = stage(
        name,
        &format!("{script}; echo \"${{CUDA_VISIBLE_DEVICES-unset}}\" > {name}.txt"),
        &[],
        &[&format!("{name}.txt")],
    );
    s.executor = Executor::Cuda;
    s.resources.gpus = gpus;
    s
}

fn set_var(name: &str, value: Option<&str>) {
    // SAFETY: this binary's only test; nothing else reads the environment
    // while it changes.
    unsafe {
        match value {
            Some(value) => std::env::set_var(name, value),
            None => std::env::remove_var(name),
        }
    }
}

#[test]
fn gpus_and_secrets_from_the_environment() {
    set_var("GOURD_GPUS", Some("3,5"));
    let fx = Fixture::new();
    let mut fallback = gpu_stage("fallback", 3, "true");
    fallback.cpu_fallback = true;
    let pipeline =
        vec![gpu_stage("one", 1, "true"), gpu_stage("two", 2, "true"), gpu_stage("three", 3, "true"), fallback];
    let mut opts = options();
    opts.keep_going = true;
    let (summary, _) = fx.run(&pipeline, opts);
    assert_eq!((summary.ran, summary.failed), (3, 1), "{:?}", summary.reports);
    assert_eq!(fx.read("one.txt"), "3\n");
    assert_eq!(fx.read("two.txt"), "3,5\n");
    // Not enough GPUs here: on the CPU, with none visible.
    assert_eq!(fx.read("fallback.txt"), "\n");
    let three = fx.report(&summary, "three");
    assert_eq!(three.outcome, Outcome::Failed);
    assert_eq!(
        three.message.as_deref(),
        Some(
            "stage needs 3 GPU(s) but only 2 GPU(s) were found (set `GOURD_GPUS` to the device ids to use, e.g. `GOURD_GPUS=0,1`)"
        )
    );

    // A stage that cannot get its GPUs stops the run like any failure.
    let fx = Fixture::new();
    set_var("GOURD_GPUS", Some(""));
    let pipeline = vec![gpu_stage("a", 1, "true"), stage("z", "echo z > z.txt", &["a.txt"], &["z.txt"])];
    let (summary, _) = fx.run(&pipeline, options());
    assert_eq!(
        fx.report(&summary, "a").message.as_deref(),
        Some(
            "stage needs 1 GPU(s) but no GPU was found (set `GOURD_GPUS` to the device ids to use, e.g. `GOURD_GPUS=0,1`)"
        )
    );
    assert_eq!(fx.report(&summary, "z").message.as_deref(), Some("upstream `a` failed"));
    assert!(fx.report(&summary, "a").key.is_some(), "it was assessed: its key is known");

    // A result made where there were GPUs is restored where there are none.
    set_var("GOURD_GPUS", Some("0"));
    let fx = Fixture::new();
    let trained = vec![gpu_stage("train", 1, "true")];
    assert_eq!(fx.run(&trained, options()).0.ran, 1);
    std::fs::remove_file(fx.root().join("train.txt")).unwrap();
    set_var("GOURD_GPUS", Some(""));
    let (summary, _) = fx.run(&trained, options());
    assert_eq!((summary.restored, summary.failed), (1, 0), "{:?}", summary.reports);
    assert_eq!(fx.read("train.txt"), "0\n");
    // Forced, it has to run, and cannot.
    let mut opts = options();
    opts.force.insert("train".to_string());
    let (summary, _) = fx.run(&trained, opts);
    assert_eq!(summary.failed, 1, "{:?}", summary.reports);

    // One device, two stages wanting it: one after the other, each alone
    // on it, whatever the free jobs.
    set_var("GOURD_GPUS", Some("7"));
    let fx = Fixture::new();
    let alone = |me: &str, other: &str| {
        format!(
            "touch {me}.started; sleep 0.5; if [ -e {other}.started ] && [ ! -e {other}.done ]; then exit 7; fi; touch {me}.done"
        )
    };
    let pipeline = vec![gpu_stage("x", 1, &alone("x", "y")), gpu_stage("y", 1, &alone("y", "x"))];
    let mut opts = options();
    opts.jobs = 4;
    let (summary, _) = fx.run(&pipeline, opts);
    assert_eq!(summary.ran, 2, "{:?}", summary.reports);
    assert_eq!((fx.read("x.txt"), fx.read("y.txt")), ("7\n".to_string(), "7\n".to_string()));

    // Without `GOURD_GPUS`, the probe counts the devices.
    set_var("GOURD_GPUS", None);
    let fx = Fixture::new();
    let mut opts = options();
    opts.gpu_probe = Some(|| 2);
    let (summary, _) = fx.run(&[gpu_stage("two", 2, "true")], opts);
    assert_eq!(summary.ran, 1, "{:?}", summary.reports);
    assert_eq!(fx.read("two.txt"), "0,1\n");

    // Neither `GOURD_GPUS` nor the probe: `nvidia-smi -L` lists them.
    let bin = tempfile::tempdir().unwrap();
    let smi = bin.path().join("nvidia-smi");
    std::fs::write(&smi, "#!/bin/sh\n[ \"$1\" = -L ] || exit 2\nprintf 'GPU 0: A (UUID: x)\\n  MIG 1g.5gb Device 0\\nGPU 1: B (UUID: y)\\n'\n").unwrap();
    std::fs::set_permissions(&smi, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.path().display(), std::env::var("PATH").unwrap_or_default());
    set_var("PATH", Some(&path));
    let fx = Fixture::new();
    let mut opts = options();
    opts.gpu_probe = Some(|| 0);
    let (summary, _) = fx.run(&[gpu_stage("two", 2, "true"), gpu_stage("three", 3, "true")], opts);
    assert_eq!((summary.ran, summary.failed), (1, 1), "{:?}", summary.reports);
    assert_eq!(fx.read("two.txt"), "0,1\n");
    // An `nvidia-smi` that fails: no GPU.
    std::fs::write(&smi, "#!/bin/sh\nexit 9\n").unwrap();
    let fx = Fixture::new();
    let (summary, _) = fx.run(&[gpu_stage("one", 1, "true")], options());
    assert_eq!(
        fx.report(&summary, "one").message.as_deref(),
        Some(
            "stage needs 1 GPU(s) but no GPU was found (set `GOURD_GPUS` to the device ids to use, e.g. `GOURD_GPUS=0,1`)"
        )
    );

    // A secret reaches the stage and is redacted from its log.
    set_var("GOURD_TEST_SECRET_TOKEN", Some("hunter2-correct-horse"));
    let fx = Fixture::new();
    let mut secret = stage("s", "echo \"token=$GOURD_TEST_SECRET_TOKEN\"; echo ok > s.txt", &[], &["s.txt"]);
    secret.secrets = vec!["GOURD_TEST_SECRET_TOKEN".to_string()];
    let (summary, _) = fx.run(&[secret], options());
    assert_eq!(summary.ran, 1, "{:?}", summary.reports);
    let log = std::fs::read_to_string(fx.report(&summary, "s").log.as_ref().unwrap()).unwrap();
    assert_eq!(log, "token=***\n");
}
