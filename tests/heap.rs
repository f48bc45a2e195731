//! Heap use of `MemoryOtpStore` and of a TOTP setup, measured by a counting global allocator.
//!
//! A `#[global_allocator]` serves every allocation of the binary it is linked into, so it must
//! own its test binary: this file is one on its own, and nothing else belongs in it. The counter
//! sees every thread, so the tests take one lock and run one after the other.
//!
//! - A flood of 1M pending challenge-like records (48-byte keys, 100-byte values) expires; then
//!   either `purge_expired` or ordinary writes alone (the incremental sweep) must bring the live
//!   heap back to within 10% of what it was before the flood.
//! - At 100k records, a record costs at most 256 bytes of heap: key, value and table.
//! - A TOTP setup draws no QR code: its peak heap is below one SVG rendering of its URI.
//!
//! Times are plain `Timestamp` values: nothing sleeps. Run with `--nocapture` to see the figures.
// Implementing `GlobalAlloc` takes `unsafe impl`. The crate denies unsafe code everywhere and the
// library forbids it outright (`#![forbid(unsafe_code)]` in src/lib.rs); only this test needs it.
#![allow(unsafe_code)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use twofactor::LoginContext;

use twofactor::{clock::Timestamp, store::MemoryOtpStore, store::OtpStore, store::StoreKey};

/// The system allocator, counting the bytes it has handed out and not yet taken back.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let live = LIVE.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

fn shrank(n: usize) {
    LIVE.fetch_sub(n, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to `System` with the caller's arguments unchanged; the
// counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is; the caller upholds `alloc`'s contract.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is; `ptr` came from `System` through this allocator.
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is; `ptr` came from `System` through this allocator.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            grew(new_size);
            shrank(layout.size());
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes allocated and not freed, all threads together.
fn live_bytes() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// Restarts the peak from what is live now.
fn reset_peak() {
    PEAK.store(live_bytes(), Ordering::Relaxed);
}

fn peak_bytes() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// One test at a time: the counters see every thread.
static SERIAL: Mutex<()> = Mutex::new(());

/// Drives a memory-store future, which never waits, to completion.
fn run<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the memory store never waits"),
    }
}

const FLOOD: usize = 1_000_000;
/// Records live before, during and after the flood (other users' pending challenges).
const STEADY: usize = 1_000;
const T0: u64 = 1_700_000_000;
/// A challenge's lifetime.
const TTL: u64 = 300;
/// A challenge-sized value.
const VALUE: [u8; 100] = [0x5a; 100];

fn at(secs: u64) -> Timestamp {
    Timestamp::from_unix_secs(secs)
}

/// A 48-byte key shaped like the service's challenge keys: `tf:c:{<31 hex>}:challenge`.
fn challenge_key(space: u8, i: usize) -> StoreKey {
    let k = StoreKey::new(format!("tf:c:{{{space:x}{i:030x}}}:challenge"));
    debug_assert_eq!(k.as_str().len(), 48);
    k
}

/// The heap the store holds: bytes live now beyond those live before it was made.
struct Meter {
    before: usize,
}

impl Meter {
    fn start() -> Self {
        Meter {
            before: live_bytes(),
        }
    }

    fn held(&self) -> usize {
        live_bytes().saturating_sub(self.before)
    }

    fn peak(&self) -> usize {
        peak_bytes().saturating_sub(self.before)
    }
}

/// A store holding `STEADY` live records that outlive the test.
fn steady_store() -> MemoryOtpStore {
    let store = MemoryOtpStore::new();
    for i in 0..STEADY {
        run(store.put(&challenge_key(0, i), &VALUE, at(T0 + 86_400), at(T0))).unwrap();
    }
    store
}

/// Puts `FLOOD` challenges at `T0`, expiring at `T0 + TTL`.
fn flood(store: &MemoryOtpStore) {
    reset_peak();
    // Keys are built in place and dropped at once: the heap holds only what the store keeps.
    for i in 0..FLOOD {
        run(store.put(&challenge_key(1, i), &VALUE, at(T0 + TTL), at(T0))).unwrap();
    }
    assert_eq!(store.len(), STEADY + FLOOD);
}

/// Prints the figures and checks the heap came back to within 10% of the baseline.
fn check(what: &str, meter: &Meter, baseline: usize, flooded: usize) {
    let after = meter.held();
    eprintln!(
        "{what}: store heap {baseline} B with {STEADY} records; {flooded} B after a flood of \
         {FLOOD} (peak {} B); {after} B once it expired = {:.3} x baseline",
        meter.peak(),
        after as f64 / baseline as f64
    );
    assert!(
        after as f64 <= baseline as f64 * 1.10,
        "{what}: {after} B after the flood expired, {baseline} B before it"
    );
}

#[test]
fn purge_after_a_flood_returns_the_heap() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let meter = Meter::start();
    let store = steady_store();
    let baseline = meter.held();
    flood(&store);
    let flooded = meter.held();

    let later = at(T0 + TTL);
    // Expired records are absent at once, swept or not.
    assert_eq!(run(store.get(&challenge_key(1, 7), later)).unwrap(), None);
    assert_eq!(store.purge_expired(later), FLOOD);
    assert_eq!(store.len(), STEADY);
    assert!(run(store.get(&challenge_key(0, 7), later))
        .unwrap()
        .is_some());
    check("purge_expired", &meter, baseline, flooded);
}

#[test]
fn ordinary_writes_after_a_flood_return_the_heap() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let meter = Meter::start();
    let store = steady_store();
    let baseline = meter.held();
    flood(&store);
    let flooded = meter.held();

    // Ordinary traffic once the flood has expired, and no purge: each login puts a fresh
    // challenge and takes it, and one of the steady records is renewed.
    let mut now = T0 + TTL;
    let mut writes = 0usize;
    for i in 0..100_000 {
        if store.len() == STEADY {
            break;
        }
        now += 1;
        let ch = challenge_key(2, i);
        run(store.put(&ch, &VALUE, at(now + TTL), at(now))).unwrap();
        assert!(run(store.take(&ch, at(now))).unwrap().is_some());
        let steady = challenge_key(0, i % STEADY);
        run(store.put(&steady, &VALUE, at(now + 86_400), at(now))).unwrap();
        writes += 2;
    }
    assert_eq!(store.len(), STEADY, "the sweep collected the flood");
    check(
        &format!("sweep alone, {writes} writes"),
        &meter,
        baseline,
        flooded,
    );
}

#[test]
fn a_pending_challenge_costs_at_most_256_bytes() {
    const N: usize = 100_000;
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let meter = Meter::start();
    let store = MemoryOtpStore::new();
    for i in 0..N {
        run(store.put(&challenge_key(3, i), &VALUE, at(T0 + TTL), at(T0))).unwrap();
    }
    let per_record = meter.held() as f64 / N as f64;
    eprintln!(
        "{N} records of a 48-byte key and a 100-byte value: {per_record:.1} B of heap each \
         ({:.1} B beyond key and value)",
        per_record - 148.0
    );
    assert!(per_record <= 256.0, "{per_record:.1} B per record");
}

/// A real pending login challenge, made by `begin_login` for a TOTP user, costs at most 256 bytes
/// of the store's heap: its key, its record (which carries the sealed TOTP secret the answer is
/// checked against) and its share of the table.
#[test]
fn a_pending_login_challenge_costs_at_most_256_bytes() {
    use std::sync::Arc;
    use twofactor::{
        store::EnrollmentStore, store::MemoryEnrollmentStore, testing::ManualClock,
        testing::RecordingMailer, totp::totp_code, totp::TotpParams, totp::TotpSecret, Keyring,
        LoginStep, TwoFactorService,
    };

    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    const USERS: usize = 100_000;
    let otp = Arc::new(MemoryOtpStore::new());
    let enrollments = Arc::new(MemoryEnrollmentStore::new());
    let clock = ManualClock::new(at(T0));
    let tf = TwoFactorService::builder()
        .issuer("Acme")
        .keys(Keyring::generate())
        .otp_store(otp.clone())
        .enrollments(enrollments.clone())
        .mailer(RecordingMailer::new())
        .clock(clock)
        .build()
        .unwrap();
    let name = |i: usize| format!("user-{i:06}");
    let setup = run(tf.totp().start_setup(&name(0), "a@example.com")).unwrap();
    let secret = TotpSecret::from_base32(setup.secret_base32()).unwrap();
    let code = totp_code(secret.as_bytes(), TotpParams::default(), T0);
    run(tf.totp().confirm_setup(&name(0), &code)).unwrap();
    // Every other user gets a copy of the record: begin_login stores the sealed secret without
    // opening it, so the copy costs a challenge exactly what a real enrolment would.
    let (record, _) = run(enrollments.load(&name(0))).unwrap().unwrap();
    for i in 1..USERS {
        run(enrollments.save(&name(i), &record, None)).unwrap();
    }
    let records_before = otp.len();
    let meter = Meter::start();
    for i in 0..USERS {
        let step = run(tf.begin_login(LoginContext::none(), &name(i))).unwrap();
        assert!(matches!(step, LoginStep::Challenge(_)));
    }
    assert_eq!(
        otp.len() - records_before,
        USERS,
        "one record per challenge"
    );
    let per_challenge = meter.held() / USERS;
    eprintln!(
        "{USERS} pending login challenges of TOTP users: {} B of heap, {per_challenge} B each",
        meter.held()
    );
    assert!(
        per_challenge <= 256,
        "{per_challenge} B per pending challenge"
    );
}

/// A TOTP setup renders no QR code: its peak heap stays below the size of one SVG rendering of
/// its own URI (a setup that drew the SVG, or the PNG, would hold at least that much). The QR
/// code is drawn from the URI only when asked for.
#[test]
fn a_totp_setup_renders_no_qr_code_until_asked() {
    use twofactor::{
        store::MemoryEnrollmentStore, testing::ManualClock, testing::RecordingMailer, Keyring,
        TwoFactorService,
    };

    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let tf = TwoFactorService::builder()
        .issuer("Acme")
        .keys(Keyring::generate())
        .otp_store(MemoryOtpStore::new())
        .enrollments(MemoryEnrollmentStore::new())
        .mailer(RecordingMailer::new())
        .clock(ManualClock::new(at(T0)))
        .build()
        .unwrap();
    // Warm up: the stores' tables exist before the measured setup.
    drop(run(tf.totp().start_setup("warm-up", "w@example.com")).unwrap());

    reset_peak();
    let meter = Meter::start();
    let setup = run(tf.totp().start_setup("user-1", "alice@example.com")).unwrap();
    let setup_peak = meter.peak();

    reset_peak();
    let meter = Meter::start();
    let svg = setup.qr_svg().unwrap();
    let svg_peak = meter.peak();
    eprintln!(
        "start_totp_setup: peak {setup_peak} B; qr_svg on demand: {} B document, peak {svg_peak} B",
        svg.len()
    );
    assert!(svg_peak >= svg.len());
    assert!(
        setup_peak < svg.len(),
        "the setup peaked at {setup_peak} B, more than one SVG of its URI ({} B): did it render?",
        svg.len()
    );
}
