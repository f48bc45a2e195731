//! Visible skips. A test that cannot run for want of a server, a tool or a built example says
//! so on the process's real standard error, which libtest does not capture (it captures only
//! `print!`/`eprint!` and their kin, not writes to `std::io::stderr()`), so that a run without
//! servers shows what it left untested even without `--nocapture`. One line per kind of skip
//! when the first test skips for it, and again at 10, 100, … tests, with the count so far:
//!
//! ```text
//! twofactor tests: SKIPPED server-backed tests: TWOFACTOR_TEST_REDIS_URL not set (1 test skipped so far)
//! ```
//!
//! `TWOFACTOR_REQUIRE_SERVERS=1` (set by CI) turns a missing server into a failure instead.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::Mutex;

/// What a server-backed test does, given its server's URL variable.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Run on the server at this URL.
    Run(String),
    /// Skip, visibly.
    Skip,
    /// Fail: the server is required.
    Fail,
}

/// The decision for a URL variable's value and `TWOFACTOR_REQUIRE_SERVERS`'s: an empty URL is
/// no URL; only `1` requires the servers.
pub(crate) fn decide(url: Option<&str>, require_servers: Option<&str>) -> Decision {
    match url {
        Some(url) if !url.is_empty() => Decision::Run(url.to_owned()),
        _ if require_servers == Some("1") => Decision::Fail,
        _ => Decision::Skip,
    }
}

/// Whether absent servers fail the run (CI) instead of skipping.
pub(crate) fn servers_required() -> bool {
    std::env::var("TWOFACTOR_REQUIRE_SERVERS").is_ok_and(|v| v == "1")
}

/// The tests that skipped so far, per kind of skip.
static SKIPPED: Mutex<BTreeMap<String, BTreeSet<String>>> = Mutex::new(BTreeMap::new());

/// Records that the running test skips for `kind` (e.g. `server-backed tests:
/// TWOFACTOR_TEST_REDIS_URL not set`) and, when it is the first, the tenth, the hundredth, …
/// test to skip for it, writes the line that says so to the real standard error, with
/// `detail` (what failed, when there is more to say) after it.
pub(crate) fn skipped(kind: &str, detail: Option<&str>) {
    if let Some(line) = count(kind, detail) {
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

/// Counts the skip (a test is counted once per kind: libtest names each test's thread after
/// it) and gives the line to write, if any.
fn count(kind: &str, detail: Option<&str>) -> Option<String> {
    let test = std::thread::current().name().map_or_else(
        || format!("{:?}", std::thread::current().id()),
        str::to_owned,
    );
    let mut skipped = SKIPPED.lock().unwrap_or_else(|e| e.into_inner());
    let tests = skipped.entry(kind.to_owned()).or_default();
    if !tests.insert(test) {
        return None;
    }
    line(kind, detail, tests.len())
}

/// The line for the `n`-th test to skip for `kind`, at 1, 10, 100, …
pub(crate) fn line(kind: &str, detail: Option<&str>, n: usize) -> Option<String> {
    if n != 10usize.pow(n.ilog10()) {
        return None;
    }
    let tests = if n == 1 { "test" } else { "tests" };
    let detail = detail.map(|d| format!(": {d}")).unwrap_or_default();
    Some(format!(
        "twofactor tests: SKIPPED {kind} ({n} {tests} skipped so far){detail}\n"
    ))
}
