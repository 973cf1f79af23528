//! A fixed-size key for a long text: two independent 64-bit hashes, randomly keyed per process
//! so that a client cannot aim for a collision. Maps holding thousands of queries or request
//! URIs keep 16 bytes a key instead of the text.

use std::hash::{BuildHasher, RandomState};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TextKey(u64, u64);

#[derive(Debug, Default)]
pub struct TextHasher {
    first: RandomState,
    second: RandomState,
}

impl TextHasher {
    pub fn key(&self, text: &str) -> TextKey {
        TextKey(self.first.hash_one(text), self.second.hash_one(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_share_a_key_and_different_ones_do_not() {
        let h = TextHasher::default();
        assert_eq!(h.key("up{a=\"b\"}"), h.key("up{a=\"b\"}"));
        assert_ne!(h.key("up{a=\"b\"}"), h.key("up{a=\"c\"}"));
    }
}
