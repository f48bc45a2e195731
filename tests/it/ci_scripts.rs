//! The repository's scripts fail when they would otherwise prove nothing.

use std::path::Path;
use std::process::Command;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `fuzz/run.sh` with a `cargo` whose `fuzz list` answers nothing (and whose `fuzz build`
/// "succeeds"): no target found is a failure, not a green run of nothing.
#[test]
fn the_fuzz_script_fails_when_it_finds_no_target() {
    let shim = tempdir();
    let cargo = shim.join("cargo");
    std::fs::write(
        &cargo,
        "#!/bin/sh\ncase \"$*\" in *\"fuzz list\"*) exit 0;; *\"fuzz build\"*) exit 0;; esac\nexit 3\n",
    )
    .unwrap();
    make_executable(&cargo);
    let path = format!(
        "{}:{}",
        shim.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .arg(repo().join("fuzz/run.sh"))
        .arg("1")
        .env("PATH", path)
        .env("FUZZ_TOOLCHAIN", "")
        .output()
        .expect("bash runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "exit {:?}: {stderr}", out.status);
    assert!(stderr.contains("no fuzz target found"), "{stderr}");
    std::fs::remove_dir_all(&shim).ok();
}

/// The CI script's figure steps cannot swallow a failure: no `|| true` after the cluster
/// spread rerun or the reshard log.
#[test]
fn the_ci_figure_steps_do_not_ignore_failures() {
    let script = std::fs::read_to_string(repo().join(".ci/run")).unwrap();
    let start = script
        .find("== Redis Cluster figures")
        .expect("the figures step");
    let end = start + script[start..].find("\n\n").expect("the step ends");
    let step = &script[start..end];
    assert!(step.contains("grep '^cluster:'"), "{step}");
    assert!(step.contains("cluster_reshard.log"), "{step}");
    assert!(!step.contains("|| true"), "{step}");
    assert!(script.starts_with("#!/usr/bin/env bash") && script.contains("set -euo pipefail"));
}

fn tempdir() -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "ci-scripts-{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut perms = std::fs::metadata(path).unwrap().permissions();
    perms.set_mode(0o755);
    std::fs::set_permissions(path, perms).unwrap();
}
