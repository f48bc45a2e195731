//! Outside programs the tests use when they are there: `oathtool` and `zbarimg` (Debian
//! packages `oathtool` and `zbar-tools`) as outside witnesses, and the examples `cargo test`
//! builds.

use std::path::PathBuf;
use std::process::Command;

/// Whether `tool` runs; when it does not, says so on stderr (or fails under
/// TWOFACTOR_REQUIRE_SERVERS=1).
pub(crate) fn have(tool: &str, package: &str) -> bool {
    match Command::new(tool).arg("--version").output() {
        Ok(_) => true,
        Err(e) => {
            if std::env::var("TWOFACTOR_REQUIRE_SERVERS").as_deref() == Ok("1") {
                panic!("{tool} is required (TWOFACTOR_REQUIRE_SERVERS=1) but not runnable: {e}");
            }
            eprintln!("skipped: {tool} not installed (apt-get install {package})");
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

/// The built example `name`, when `cargo test` built the examples.
pub(crate) fn example_binary(name: &str) -> Option<PathBuf> {
    // target/<profile>/deps/it-<hash> → target/<profile>/examples/<name>
    let exe = std::env::current_exe().ok()?;
    let profile_dir = exe.parent()?.parent()?;
    let bin = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    bin.is_file().then_some(bin)
}
