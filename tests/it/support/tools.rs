//! Outside programs the tests use when they are there: `oathtool` and `zbarimg` (Debian
//! packages `oathtool` and `zbar-tools`) as outside witnesses, and the examples `cargo test`
//! builds. A missing one is a visible skip (see [`skip`](super::skip)).

use std::path::PathBuf;
use std::process::Command;

use super::skip;

/// Whether `tool` runs; when it does not, the test skips and says so (or fails under
/// `TWOFACTOR_REQUIRE_SERVERS=1`).
pub(crate) fn have(tool: &str, package: &str) -> bool {
    match Command::new(tool).arg("--version").output() {
        Ok(_) => true,
        Err(e) => {
            if skip::servers_required() {
                panic!("{tool} is required (TWOFACTOR_REQUIRE_SERVERS=1) but not runnable: {e}");
            }
            skip::skipped(
                &format!("outside-witness tests: {tool} not installed (apt-get install {package})"),
                Some(&e.to_string()),
            );
            false
        }
    }
}

pub(crate) fn oathtool(mode: &str, digits: u32, secret_b32: &str, time: u64) -> String {
    let out = Command::new("oathtool")
        .args([
            mode,
            "-d",
            &digits.to_string(),
            "-b",
            secret_b32,
            "-N",
            &format!("@{time}"),
        ])
        .output()
        .expect("oathtool runs");
    assert!(
        out.status.success(),
        "oathtool failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The built example `name`, when `cargo test` built the examples; else `None`, and the test
/// skips and says so (only this binary was built: `cargo test --test it`).
pub(crate) fn example_binary(name: &str) -> Option<PathBuf> {
    let bin = built_example(name);
    if bin.is_none() {
        skip::skipped(
            "example tests: the examples are not built (run the whole `cargo test`)",
            Some(&format!("no built {name} example")),
        );
    }
    bin
}

fn built_example(name: &str) -> Option<PathBuf> {
    // target/<profile>/deps/it-<hash> → target/<profile>/examples/<name>
    let exe = std::env::current_exe().ok()?;
    let profile_dir = exe.parent()?.parent()?;
    let bin = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    bin.is_file().then_some(bin)
}
