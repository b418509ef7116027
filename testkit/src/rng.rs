//! One small pseudo-random generator for tests (xorshift64): spreading probed ports, picking
//! message recipients. Not for anything that needs real randomness.

/// Marsaglia's xorshift64.
pub struct XorShift(u64);

impl XorShift {
    /// A generator from `seed` (zero would stay zero forever, so it is replaced).
    pub fn new(seed: u64) -> XorShift {
        XorShift(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A value in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}
