//! See [`crate::actions`].
