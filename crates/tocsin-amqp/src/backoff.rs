//! Jittered exponential backoff for reconnecting to the broker, so that a
//! fleet of gateways restarted together does not hammer a recovering broker
//! in lock-step.

use serde::Deserialize;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::Duration;

/// Reconnect backoff settings (`[amqp.reconnect]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackoffConfig {
    /// First delay, in milliseconds.
    pub min_ms: u64,
    /// Largest delay, in milliseconds.
    pub max_ms: u64,
    /// Fraction of each delay (0 to 1) removed at random.
    pub jitter: f64,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            min_ms: 200,
            max_ms: 30_000,
            jitter: 0.5,
        }
    }
}

impl BackoffConfig {
    /// Check the values make sense, naming the offending key.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.min_ms == 0 {
            return Err("reconnect.min_ms must be at least 1".into());
        }
        if self.max_ms < self.min_ms {
            return Err(format!(
                "reconnect.max_ms ({}) is below reconnect.min_ms ({})",
                self.max_ms, self.min_ms
            ));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(format!(
                "reconnect.jitter ({}) must be between 0 and 1",
                self.jitter
            ));
        }
        Ok(())
    }
}

/// The state of one backoff sequence: each call to [`Backoff::next_delay`]
/// doubles the base delay up to the maximum; [`Backoff::reset`] starts over
/// after a successful connection.
#[derive(Debug, Clone)]
pub struct Backoff {
    config: BackoffConfig,
    attempt: u32,
    rng: u64,
}

impl Backoff {
    /// A fresh sequence. The jitter source is seeded from the process's
    /// random hash keys: jitter needs spread, not cryptographic quality.
    #[must_use]
    pub fn new(config: BackoffConfig) -> Self {
        let seed = RandomState::new().hash_one(0x7065_7473_u64) | 1;
        Self {
            config,
            attempt: 0,
            rng: seed,
        }
    }

    /// The delay to wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let factor = 1u64.checked_shl(self.attempt.min(32)).unwrap_or(u64::MAX);
        let base = self
            .config
            .min_ms
            .saturating_mul(factor)
            .min(self.config.max_ms);
        self.attempt = self.attempt.saturating_add(1);
        let cut = self.config.jitter * self.unit();
        let ms = (base as f64 * (1.0 - cut)).max(1.0);
        Duration::from_millis(ms as u64)
    }

    /// Start again from the minimum delay.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// A number in [0, 1) from xorshift64*.
    fn unit(&mut self) -> f64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let x = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(min_ms: u64, max_ms: u64, jitter: f64) -> BackoffConfig {
        BackoffConfig {
            min_ms,
            max_ms,
            jitter,
        }
    }

    #[test]
    fn without_jitter_delays_double_up_to_the_maximum() {
        let mut b = Backoff::new(cfg(100, 1000, 0.0));
        let got: Vec<u64> = (0..6).map(|_| b.next_delay().as_millis() as u64).collect();
        assert_eq!(got, vec![100, 200, 400, 800, 1000, 1000]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }

    #[test]
    fn jitter_stays_within_its_fraction_and_varies() {
        let mut b = Backoff::new(cfg(1000, 1000, 0.5));
        let delays: Vec<u64> = (0..200)
            .map(|_| b.next_delay().as_millis() as u64)
            .collect();
        assert!(
            delays.iter().all(|d| (500..=1000).contains(d)),
            "{delays:?}"
        );
        let distinct: std::collections::HashSet<_> = delays.iter().collect();
        assert!(
            distinct.len() > 20,
            "jitter should spread delays: {distinct:?}"
        );
    }

    #[test]
    fn many_attempts_do_not_overflow() {
        let mut b = Backoff::new(cfg(u64::MAX / 2, u64::MAX, 0.0));
        for _ in 0..100 {
            assert!(b.next_delay() > Duration::ZERO);
        }
    }

    #[test]
    fn bad_settings_are_named() {
        assert!(cfg(0, 10, 0.1).validate().unwrap_err().contains("min_ms"));
        assert!(cfg(10, 5, 0.1).validate().unwrap_err().contains("max_ms"));
        assert!(cfg(1, 5, 1.5).validate().unwrap_err().contains("jitter"));
        assert!(BackoffConfig::default().validate().is_ok());
    }
}
