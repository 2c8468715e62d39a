//! The sled store (to be written).
