//! CARP v2: the election state machine and the wire format.
pub mod fsm;
pub mod ipv4;
pub mod ipv6;
pub mod packet;

/// Deterministic pseudo-random numbers for the decoders' fuzz loops.
#[cfg(test)]
pub(crate) mod test_rng {
    /// xorshift64: no crate, the same sequence every run.
    pub(crate) struct Rng(pub(crate) u64);

    impl Rng {
        pub(crate) fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        pub(crate) fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }
}
