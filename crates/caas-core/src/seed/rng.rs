//! Determinism for demo data: a small seeded generator (splitmix64) for choices, and ids
//! derived by hashing what a document is (seed, tenant, collection, index), so the same
//! document gets the same `_id` on every run whatever order it was generated in.

use bson::oid::ObjectId;
use bson::DateTime;
use sha2::{Digest, Sha256};

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64, stream: &str) -> Rng {
        let h = Sha256::digest(format!("{seed}:{stream}").as_bytes());
        Rng(u64::from_le_bytes(h[..8].try_into().expect("8 bytes")))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }

    pub fn hex(&mut self, n: usize) -> String {
        hex::encode(self.bytes(n.div_ceil(2)))[..n].to_owned()
    }

    pub fn alnum(&mut self, n: usize) -> String {
        const A: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
        (0..n)
            .map(|_| A[self.below(A.len() as u64) as usize] as char)
            .collect()
    }
}

/// A stable ObjectId: its timestamp is the document's creation time (so `_id` order
/// follows time, as with real data), the rest a hash of what the document is.
pub fn oid(seed: u64, tenant: &str, collection: &str, index: u64, at: DateTime) -> ObjectId {
    let h = Sha256::digest(format!("{seed}/{tenant}/{collection}/{index}").as_bytes());
    let mut bytes = [0u8; 12];
    let secs = (at.timestamp_millis() / 1000).clamp(0, i64::from(u32::MAX)) as u32;
    bytes[..4].copy_from_slice(&secs.to_be_bytes());
    bytes[4..].copy_from_slice(&h[..8]);
    ObjectId::from_bytes(bytes)
}

pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_inputs_same_outputs() {
        let at = DateTime::from_millis(1_790_000_000_000);
        assert_eq!(oid(1, "t", "users", 3, at), oid(1, "t", "users", 3, at));
        assert_ne!(oid(1, "t", "users", 3, at), oid(2, "t", "users", 3, at));
        assert_ne!(oid(1, "t", "users", 3, at), oid(1, "u", "users", 3, at));
        let (mut a, mut b) = (Rng::new(7, "x"), Rng::new(7, "x"));
        assert_eq!((a.next_u64(), a.alnum(8)), (b.next_u64(), b.alnum(8)));
        assert_ne!(Rng::new(7, "x").next_u64(), Rng::new(8, "x").next_u64());
    }
}
