//! Storm control: a token bucket per port for broadcast, multicast and unknown-unicast
//! frames (what a switch floods). A loop or a flooding host can then cost the other ports
//! at most the configured rate.

use crate::Millis;

/// A token bucket refilled at `rate` tokens per second, holding at most a tenth of a
/// second's worth (at least 64), so a storm cannot save up a large burst.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBucket {
    rate: u64,
    /// Thousandths of a token, so that millisecond refills stay exact.
    milli_tokens: u64,
    capacity_milli: u64,
    last: Millis,
}

impl TokenBucket {
    /// A full bucket for `rate` frames per second; 0 means no limit.
    pub fn new(rate: u64) -> TokenBucket {
        let capacity_milli = (rate / 10).max(64) * 1000;
        TokenBucket {
            rate,
            milli_tokens: capacity_milli,
            capacity_milli,
            last: 0,
        }
    }

    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// Takes a token at `now`; false when the bucket is empty (the frame is over the rate).
    pub fn take(&mut self, now: Millis) -> bool {
        if self.rate == 0 {
            return true;
        }
        let elapsed = now.saturating_sub(self.last);
        self.last = self.last.max(now);
        self.milli_tokens = self
            .milli_tokens
            .saturating_add(elapsed.saturating_mul(self.rate))
            .min(self.capacity_milli);
        if self.milli_tokens >= 1000 {
            self.milli_tokens -= 1000;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_a_storm_at_the_rate() {
        let mut b = TokenBucket::new(1000);
        // The initial burst: a tenth of a second's worth.
        let burst = (0..1000).filter(|_| b.take(0)).count();
        assert_eq!(burst, 100);
        // Then 1000 per second, whatever is offered.
        let mut passed = 0;
        for ms in 1..=10_000u64 {
            for _ in 0..50 {
                if b.take(ms) {
                    passed += 1;
                }
            }
        }
        assert_eq!(passed, 10_000);
    }

    #[test]
    fn zero_is_unlimited_and_time_never_runs_backwards() {
        let mut b = TokenBucket::new(0);
        assert!((0..100_000).all(|_| b.take(0)));
        let mut b = TokenBucket::new(10);
        while b.take(1000) {}
        assert!(!b.take(500), "an older timestamp must not refill");
        assert!(b.take(1100));
    }
}
