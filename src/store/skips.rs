//! Skipped server-backed tests, said on the process's standard error with `write_all`: the
//! libtest harness captures what the print macros write, so a skip said with `eprintln!` would
//! show only for a failing test or under `--nocapture`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::sync::Mutex;

/// The tests skipped so far in this process, per kind of skip.
static SKIPPED: Mutex<BTreeMap<String, BTreeSet<String>>> = Mutex::new(BTreeMap::new());

/// Counts the test `name` as skipped for `kind` (once per test) and, at the first, the tenth,
/// the hundredth, … test to skip for it, writes
/// `twofactor <kind> (<n> tests skipped so far, latest: <name>)`.
pub(crate) fn report(kind: &str, name: &str) {
    let mut skipped = SKIPPED.lock().unwrap_or_else(|e| e.into_inner());
    let tests = skipped.entry(kind.to_owned()).or_default();
    if !tests.insert(name.to_owned()) {
        return;
    }
    let n = tests.len();
    if n == 10usize.pow(n.ilog10()) {
        let noun = if n == 1 { "test" } else { "tests" };
        let line = format!("twofactor {kind} ({n} {noun} skipped so far, latest: {name})\n");
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

/// The server URL in the variable `var` for the unit test `name`. When it is not set: a panic
/// under `TWOFACTOR_REQUIRE_SERVERS=1` (set by CI), else `None` after [`report`]ing the skip.
#[cfg(all(test, any(feature = "redis", feature = "postgres")))]
pub(crate) fn server_url(var: &str, name: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("TWOFACTOR_REQUIRE_SERVERS").is_ok_and(|v| v == "1") => panic!(
            "{name}: {var} is not set but TWOFACTOR_REQUIRE_SERVERS=1: the server-backed tests \
             must run"
        ),
        _ => {
            report(
                &format!("unit tests: SKIPPED server-backed tests: {var} not set"),
                name,
            );
            None
        }
    }
}
