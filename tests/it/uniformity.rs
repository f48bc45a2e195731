//! Codes are uniform and keep their leading zeros (SECURITY.md: INV-1, CHK-1; ASVS 2.7.6 /
//! 6.5.3).
//!
//! Email codes are collected through the public API (`send_verification_code` for many users, the
//! code read from the delivered message as the user reads it); backup codes through
//! `BackupCodeSet::generate`. Each character position gets a chi-square goodness-of-fit test
//! against the uniform distribution.
//!
//! # Thresholds
//!
//! Every chi-square test here uses the critical value at which a correct (uniform) generator
//! fails with probability below `ALPHA = 1e-7`. The file runs fewer than 25 such tests plus a few
//! binomial checks at 6 standard deviations (two-sided tail 2e-9 each), so a correct generator
//! fails a run with probability below 1e-5 (union bound).
//!
//! The critical values are the upper `1e-7` quantiles of the chi-square distribution with
//! `df + 1` degrees of freedom for odd `df`, rounded up: 52.31 (df 10, used for df 9), 92.09
//! (df 32, used for df 31), 191.60 (df 100, used for df 99), and 126.32 (df 54). They were computed from the
//! regularised upper incomplete gamma function, Q(df/2, x/2), and `critical_values_hold`
//! re-derives them in this file: for an even number of degrees of freedom `2m` the survival
//! function has the closed form `exp(-x/2) * sum_{j<m} (x/2)^j / j!`, and since
//! `chi2(k+1) = chi2(k) + chi2(1)` is stochastically larger than `chi2(k)`, the even bound at
//! `df + 1` bounds the tail at `df` from above.
//!
//! The same statistics are also run on a deliberately biased generator (the classic modulo bias)
//! with a fixed seed, to show they catch it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use twofactor::{
    account::BackupCodeSet, clock::Timestamp, error::DeliveryError, mail::Mailer, mail::Message,
    store::MemoryEnrollmentStore, store::MemoryOtpStore, testing::ManualClock,
    testing::RecordingEvents, Keyring, TwoFactorService,
};

use crate::support;

/// The largest probability with which a uniform generator may fail any one test.
const ALPHA: f64 = 1e-7;
/// Critical values of chi-square at `ALPHA` (see the module docs).
const CRIT_DF9: f64 = 52.31;
const CRIT_DF31: f64 = 92.09;
const CRIT_DF99: f64 = 191.60;
const CRIT_DF54: f64 = 126.32;

/// Email codes collected through the service (about 10 s in a debug build).
const EMAIL_CODES: usize = 50_000;
/// Backup codes generated (12 positions each), and synthetic codes for the bias controls.
const BACKUP_CODES: usize = 200_000;

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// `P(chi2(df) > x)` for an even `df`, exactly (closed form).
fn chi2_sf_even(x: f64, df: u32) -> f64 {
    assert!(df.is_multiple_of(2));
    let half = x / 2.0;
    let mut term = 1.0;
    let mut sum = 1.0;
    for j in 1..df / 2 {
        term *= half / f64::from(j);
        sum += term;
    }
    (-half).exp() * sum
}

/// An upper bound of `P(chi2(df) > x)` for any `df`.
fn chi2_sf_bound(x: f64, df: u32) -> f64 {
    chi2_sf_even(x, df + df % 2)
}

/// Pearson's statistic of `counts` against a uniform expectation.
fn chi_square(counts: &[u64]) -> f64 {
    let n: u64 = counts.iter().sum();
    let expected = n as f64 / counts.len() as f64;
    counts
        .iter()
        .map(|&c| {
            let d = c as f64 - expected;
            d * d / expected
        })
        .sum()
}

/// Per-position counts of symbol indices: `counts[pos][symbol]`.
fn position_counts(codes: &[Vec<usize>], symbols: usize) -> Vec<Vec<u64>> {
    let len = codes[0].len();
    let mut counts = vec![vec![0u64; symbols]; len];
    for code in codes {
        assert_eq!(code.len(), len);
        for (pos, &s) in code.iter().enumerate() {
            counts[pos][s] += 1;
        }
    }
    counts
}

/// The positions whose chi-square exceeds `crit`, with their statistic.
fn failing_positions(counts: &[Vec<u64>], crit: f64) -> Vec<(usize, f64)> {
    counts
        .iter()
        .enumerate()
        .map(|(pos, c)| (pos, chi_square(c)))
        .filter(|(_, x)| *x > crit)
        .collect()
}

/// Whether `count` successes out of `n` trials lie within 6 standard deviations of `n * p`.
fn within_six_sigma(count: u64, n: u64, p: f64) -> bool {
    let mean = n as f64 * p;
    let sd = (n as f64 * p * (1.0 - p)).sqrt();
    (count as f64 - mean).abs() <= 6.0 * sd
}

/// A mailer that keeps only the code of each message, as the user reads it.
#[derive(Clone, Default)]
struct CodeCollector {
    codes: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl Mailer for CodeCollector {
    async fn send(&self, message: &Message) -> Result<(), DeliveryError> {
        let code = support::code_in(&message.text).expect("a code in the message");
        self.codes.lock().unwrap().push(code);
        Ok(())
    }
}

/// Collects `n` registration codes from the service, for many users.
async fn email_codes(n: usize) -> Vec<String> {
    const USERS: usize = 2_000;
    let clock = ManualClock::new(Timestamp::from_unix_secs(support::START));
    let mailer = CodeCollector::default();
    let otp = Arc::new(MemoryOtpStore::new());
    let tf = TwoFactorService::builder()
        .issuer("Acme")
        .keys(Keyring::generate())
        .otp_store(otp.clone())
        .enrollments(MemoryEnrollmentStore::new())
        .mailer(mailer.clone())
        .events(RecordingEvents::new())
        .clock(clock.clone())
        .build()
        .unwrap();
    let mut sent = 0;
    while sent < n {
        for u in 0..USERS.min(n - sent) {
            let user = format!("user-{u}");
            tf.email()
                .send_verification_code(&user, &format!("{user}@example.com"))
                .await
                .unwrap();
            sent += 1;
        }
        // Past every cooldown, send window and code lifetime: the next round starts afresh.
        clock.advance(Duration::from_secs(16 * 60));
        otp.purge_expired(twofactor::clock::Clock::now(&clock));
    }
    let codes = mailer.codes.lock().unwrap().clone();
    assert_eq!(codes.len(), n);
    codes
}

fn digits_of(code: &str) -> Vec<usize> {
    code.bytes()
        .map(|b| {
            assert!(b.is_ascii_digit(), "non-digit in {code:?}");
            usize::from(b - b'0')
        })
        .collect()
}

fn crockford_of(code: &str) -> Vec<usize> {
    code.bytes()
        .filter(|b| *b != b'-')
        .map(|b| {
            CROCKFORD
                .iter()
                .position(|c| *c == b)
                .unwrap_or_else(|| panic!("{b} is not Crockford base32"))
        })
        .collect()
}

#[test]
fn critical_values_hold() {
    for (crit, df) in [
        (CRIT_DF9, 9),
        (CRIT_DF31, 31),
        (CRIT_DF99, 99),
        (CRIT_DF54, 54),
    ] {
        let bound = chi2_sf_bound(crit, df);
        assert!(bound <= ALPHA, "df {df}: P(chi2 > {crit}) <= {bound}");
        // And the value is tight: 5% lower would already exceed the budget.
        assert!(chi2_sf_bound(crit * 0.95, df) > ALPHA / 10.0);
    }
    // The closed form against two textbook values: P(chi2(2) > x) = exp(-x/2), and the median
    // of chi2(10), 9.342.
    assert!((chi2_sf_even(3.0, 2) - (-1.5f64).exp()).abs() < 1e-15);
    assert!((chi2_sf_even(9.342, 10) - 0.5).abs() < 1e-3);
}

#[tokio::test]
async fn email_codes_are_uniform_per_digit_and_keep_leading_zeros() {
    let codes = email_codes(EMAIL_CODES).await;
    // Every code has exactly six digits: leading zeros are kept, not dropped.
    assert!(
        codes.iter().all(|c| c.len() == 6),
        "a code of another length"
    );
    let digits: Vec<Vec<usize>> = codes.iter().map(|c| digits_of(c)).collect();

    let counts = position_counts(&digits, 10);
    let failing = failing_positions(&counts, CRIT_DF9);
    assert!(
        failing.is_empty(),
        "non-uniform digit positions: {failing:?}"
    );
    // The six positions pooled (independent under uniformity: 54 degrees of freedom), which
    // catches a small bias shared by every position with fewer codes.
    let pooled: f64 = counts.iter().map(|c| chi_square(c)).sum();
    assert!(
        pooled <= CRIT_DF54,
        "pooled digit positions: chi2 = {pooled}"
    );
    eprintln!(
        "{} email codes: chi2 per position {:.1?}, pooled {pooled:.1}",
        codes.len(),
        counts.iter().map(|c| chi_square(c)).collect::<Vec<_>>()
    );

    // The first two digits together (100 cells): catches dependence between positions.
    let mut pairs = vec![0u64; 100];
    for d in &digits {
        pairs[d[0] * 10 + d[1]] += 1;
    }
    let x = chi_square(&pairs);
    assert!(x <= CRIT_DF99, "first two digits: chi2 = {x}");

    // Leading zeros at the rate a uniform code has them: 1 in 10 start with 0, 1 in 100 with 00,
    // 1 in 1000 with 000.
    let n = codes.len() as u64;
    for (prefix, p) in [("0", 0.1), ("00", 0.01), ("000", 0.001)] {
        let k = codes.iter().filter(|c| c.starts_with(prefix)).count() as u64;
        assert!(
            within_six_sigma(k, n, p),
            "{k} of {n} codes start with {prefix:?}, expected about {}",
            n as f64 * p
        );
    }
    // The numeric value spread over ten equal ranges (catches a range of 0..900000 and
    // similar), the lowest range being the leading-zero codes.
    let mut deciles = vec![0u64; 10];
    for c in &codes {
        let v: u32 = c.parse().unwrap();
        deciles[(v / 100_000) as usize] += 1;
    }
    let x = chi_square(&deciles);
    assert!(x <= CRIT_DF9, "value deciles: chi2 = {x}, {deciles:?}");
}

#[test]
fn backup_codes_are_uniform_per_position() {
    let mut codes: Vec<Vec<usize>> = Vec::with_capacity(BACKUP_CODES);
    while codes.len() < BACKUP_CODES {
        let set = BackupCodeSet::generate(10);
        for c in set.codes() {
            let s = c.expose();
            assert_eq!(s.len(), 14);
            assert_eq!((&s[4..5], &s[9..10]), ("-", "-"));
            codes.push(crockford_of(s));
        }
    }
    assert!(codes.iter().all(|c| c.len() == 12));
    let counts = position_counts(&codes, 32);
    let failing = failing_positions(&counts, CRIT_DF31);
    assert!(failing.is_empty(), "non-uniform positions: {failing:?}");
    // Codes starting with the zero symbol keep it: 1 in 32.
    let zeros = codes.iter().filter(|c| c[0] == 0).count() as u64;
    assert!(within_six_sigma(zeros, codes.len() as u64, 1.0 / 32.0));
}

/// The statistics catch the classic modulo bias: a digit drawn as a random byte modulo 10
/// (digits 0-5 come up 26 times in 256, digits 6-9 only 25), a noncentrality of 3.66e-4 per code
/// and position. With 200,000 codes each position fails its test with probability about 0.95;
/// with the 50,000 email codes collected above, the pooled statistic (noncentrality 110) fails
/// with probability about 0.95. A Crockford symbol drawn as a value in 0..240 modulo 32 (symbols
/// 0-15 come up 8 times in 240, the others 7) fails with certainty. The seed is fixed, so the
/// outcome is too.
#[test]
fn the_statistics_catch_modulo_bias() {
    let mut rng = StdRng::seed_from_u64(0x2fa_2fa);

    let biased_digits: Vec<Vec<usize>> = (0..BACKUP_CODES)
        .map(|_| {
            (0..6)
                .map(|_| (rng.next_u32() & 0xff) as usize % 10)
                .collect()
        })
        .collect();
    let counts = position_counts(&biased_digits, 10);
    let caught = failing_positions(&counts, CRIT_DF9).len();
    assert!(
        caught >= 5,
        "only {caught} positions show the bias: {:?}",
        counts.iter().map(|c| chi_square(c)).collect::<Vec<_>>()
    );
    let counts = position_counts(&biased_digits[..EMAIL_CODES], 10);
    let pooled: f64 = counts.iter().map(|c| chi_square(c)).sum();
    assert!(pooled > CRIT_DF54, "pooled statistic {pooled}");

    let biased_crockford: Vec<Vec<usize>> = (0..BACKUP_CODES)
        .map(|_| {
            (0..12)
                .map(|_| (rng.next_u32() % 240) as usize % 32)
                .collect()
        })
        .collect();
    let counts = position_counts(&biased_crockford, 32);
    assert_eq!(failing_positions(&counts, CRIT_DF31).len(), 12);

    // An unbiased draw of the same size passes: the statistic itself is sound.
    let fair: Vec<Vec<usize>> = (0..BACKUP_CODES)
        .map(|_| (0..6).map(|_| (rng.next_u32() % 10) as usize).collect())
        .collect();
    let counts = position_counts(&fair, 10);
    assert!(failing_positions(&counts, CRIT_DF9).is_empty());
    assert!(counts.iter().map(|c| chi_square(c)).sum::<f64>() <= CRIT_DF54);
}
