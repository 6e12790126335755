//! The one retry delay policy of the product: capped exponential backoff with jitter (the sinks'
//! failed writes, the bid service's tailer, the gateway's live stream).

use std::time::Duration;

use rand::Rng;

/// Delays between attempts of a failing operation: `initial`, doubling up to `max`, each drawn
/// uniformly from `[delay / 2, delay]` so that several sink instances do not retry in step.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// A policy starting at `initial` and never waiting longer than `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial: initial.max(Duration::from_millis(1)),
            max: max.max(initial),
            attempt: 0,
        }
    }

    /// The ceiling of the next delay, before jitter.
    fn ceiling(&self) -> Duration {
        let factor = 2u32.saturating_pow(self.attempt.min(30));
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The delay before the next attempt; each call backs off further.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let low = ceiling / 2;
        let spread = ceiling.saturating_sub(low).as_micros() as u64;
        let jitter = if spread == 0 {
            0
        } else {
            rand::rng().random_range(0..=spread)
        };
        low + Duration::from_micros(jitter)
    }

    /// How many delays have been handed out since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Starts over after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_exponentially_within_the_cap_and_jitter_band() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let expected_ceilings = [100, 200, 400, 800, 1600, 2000, 2000];
        for ceiling in expected_ceilings {
            let delay = backoff.next_delay();
            let ceiling = Duration::from_millis(ceiling);
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "{delay:?} not in [{:?}, {ceiling:?}]",
                ceiling / 2
            );
        }
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn jitter_spreads_delays() {
        let delays: std::collections::HashSet<_> = (0..20)
            .map(|_| Backoff::new(Duration::from_secs(1), Duration::from_secs(1)).next_delay())
            .collect();
        assert!(delays.len() > 1, "twenty draws gave one delay");
    }
}
