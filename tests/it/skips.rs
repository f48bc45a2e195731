//! The visible skips of `support::skip`: the decision between running, skipping and failing, the
//! lines and their count, and, in a child run of this test binary without a Redis URL, that a
//! real server-backed test says so in the run's output under libtest's capture, once per kind,
//! and fails instead when servers are required.

use crate::support::skip::{decide, line, Decision};

#[test]
fn a_url_runs_an_absent_one_skips_unless_servers_are_required() {
    let url = "redis://127.0.0.1:6379";
    for require in [None, Some("1"), Some("0"), Some("")] {
        assert_eq!(decide(Some(url), require), Decision::Run(url.to_owned()));
    }
    for absent in [None, Some("")] {
        assert_eq!(decide(absent, None), Decision::Skip);
        assert_eq!(decide(absent, Some("0")), Decision::Skip);
        assert_eq!(decide(absent, Some("yes")), Decision::Skip);
        assert_eq!(decide(absent, Some("1")), Decision::Fail);
    }
}

#[test]
fn a_line_at_the_first_tenth_and_hundredth_skip_only() {
    let kind = "server-backed tests: TWOFACTOR_TEST_REDIS_URL not set";
    assert_eq!(
        line(kind, None, 1).as_deref(),
        Some(
            "twofactor tests: SKIPPED server-backed tests: TWOFACTOR_TEST_REDIS_URL not set \
             (1 test skipped so far)\n"
        )
    );
    assert_eq!(
        line(kind, Some("connection refused"), 10).as_deref(),
        Some(
            "twofactor tests: SKIPPED server-backed tests: TWOFACTOR_TEST_REDIS_URL not set \
             (10 tests skipped so far): connection refused\n"
        )
    );
    let said: Vec<usize> = (1..=1000)
        .filter(|&n| line(kind, None, n).is_some())
        .collect();
    assert_eq!(said, [1, 10, 100, 1000]);
}

/// Runs this test binary on the tests matching `filter`, without the Redis URL (and with
/// `TWOFACTOR_REQUIRE_SERVERS` as `require` says), capturing as libtest does by default: the
/// exit status, stdout and stderr.
#[cfg(all(feature = "redis", feature = "test-util"))]
fn child_run(filter: &str, require: bool, list: bool) -> (bool, String, String) {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.arg(filter)
        .args(if list {
            &["--list"][..]
        } else {
            &["--test-threads=2"][..]
        })
        .env_remove("TWOFACTOR_TEST_REDIS_URL")
        .env_remove("RUST_TEST_NOCAPTURE")
        .env_remove("TWOFACTOR_REQUIRE_SERVERS");
    if require {
        cmd.env("TWOFACTOR_REQUIRE_SERVERS", "1");
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The Redis-only store setup of every `every_store!` body, run without the Redis URL: each
/// test passes, and stderr holds one line for the kind at the first and at the tenth skip (not
/// one per test), plus the conformance runner's own line; with servers required, each fails.
#[cfg(all(feature = "redis", feature = "test-util"))]
#[test]
fn server_backed_tests_say_they_skip_under_capture_and_fail_when_required() {
    let filter = "::redis_for_both";
    let (listed, stdout, _) = child_run(filter, false, true);
    assert!(listed, "{stdout}");
    let n = stdout.lines().filter(|l| l.ends_with(": test")).count();
    assert!(
        n >= 10,
        "every_store! bodies with a Redis-only setup: {stdout}"
    );

    let (passed, stdout, stderr) = child_run(filter, false, false);
    assert!(passed, "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("test result: ok. {n} passed")),
        "{stdout}"
    );
    let kind = "twofactor tests: SKIPPED server-backed tests: TWOFACTOR_TEST_REDIS_URL not set";
    let said: Vec<&str> = stderr.lines().filter(|l| l.starts_with(kind)).collect();
    let expected: Vec<String> = [1, 10, 100]
        .into_iter()
        .filter(|&k| k <= n)
        .map(|k| {
            let tests = if k == 1 { "test" } else { "tests" };
            format!("{kind} ({k} {tests} skipped so far)")
        })
        .collect();
    assert_eq!(said, expected, "{stderr}");
    assert!(
        stderr.contains(
            "twofactor conformance: SKIPPED store tests: no store configured \
             (1 test skipped so far, latest: "
        ),
        "{stderr}"
    );

    let (passed, stdout, stderr) = child_run(filter, true, false);
    assert!(!passed, "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("test result: FAILED. 0 passed; {n} failed")),
        "{stdout}"
    );
    assert!(
        stdout.contains("TWOFACTOR_TEST_REDIS_URL is not set but TWOFACTOR_REQUIRE_SERVERS=1"),
        "{stdout}"
    );
    assert!(!stderr.contains(kind), "{stderr}");
}
