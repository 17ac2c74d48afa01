//! Fault injection: a seeded fraction of API requests fails the way a flaky cloud does.
//!
//! One RNG draws for every request in arrival order, so a fixed `--fault-seed` gives the same
//! sequence of faults for the same sequence of requests.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::Mutex;

/// What an injected fault answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 500, 502 or 503.
    ServerError(u16),
    /// 429 with `Retry-After: 1`.
    TooManyRequests,
}

impl Fault {
    pub fn status(self) -> u16 {
        match self {
            Fault::ServerError(code) => code,
            Fault::TooManyRequests => 429,
        }
    }
}

pub struct Faults {
    rate: f64,
    rng: Mutex<StdRng>,
}

impl Faults {
    /// `rate` is clamped to 0..=1.
    pub fn new(rate: f64, seed: u64) -> Faults {
        let rate = if rate.is_finite() {
            rate.clamp(0.0, 1.0)
        } else {
            0.0
        };
        Faults {
            rate,
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
        }
    }

    /// Decides the fate of one request.
    pub fn roll(&self) -> Option<Fault> {
        if self.rate <= 0.0 {
            return None;
        }
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        if rng.gen::<f64>() >= self.rate {
            return None;
        }
        Some(match rng.gen_range(0..4) {
            0 => Fault::ServerError(500),
            1 => Fault::ServerError(502),
            2 => Fault::ServerError(503),
            _ => Fault::TooManyRequests,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_faults_and_the_rate_holds() {
        let a = Faults::new(0.25, 7);
        let b = Faults::new(0.25, 7);
        let seq_a: Vec<_> = (0..4000).map(|_| a.roll()).collect();
        let seq_b: Vec<_> = (0..4000).map(|_| b.roll()).collect();
        assert_eq!(seq_a, seq_b);
        let hits = seq_a.iter().filter(|f| f.is_some()).count();
        assert!(
            (850..1150).contains(&hits),
            "{hits} faults of 4000 at rate 0.25"
        );
        assert!(seq_a.contains(&Some(Fault::TooManyRequests)));
    }

    #[test]
    fn zero_rate_never_faults() {
        let f = Faults::new(0.0, 1);
        assert!((0..1000).all(|_| f.roll().is_none()));
    }
}
