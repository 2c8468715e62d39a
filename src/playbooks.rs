//! Playbooks (to be written).
