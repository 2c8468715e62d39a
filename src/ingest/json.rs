//! The JSON object builder the pollers use to turn an SDK finding back into the document its
//! parser reads ([`super::guardduty::finding_to_json`], [`super::securityhub::asff_to_json`]).
//!
//! Absent values are left out, as the APIs leave them out, so the parsers see the same shape
//! whichever path a finding took.

use std::collections::HashMap;

use serde_json::{Map, Value};

/// An object under construction; [`Obj::done`] gives the [`Value`].
#[derive(Default)]
pub(super) struct Obj(Map<String, Value>);

impl Obj {
    /// A string field, left out when `None`.
    pub(super) fn s(self, key: &str, v: Option<&str>) -> Self {
        self.v(key, v.map(Value::from))
    }

    /// A boolean field, left out when `None`.
    pub(super) fn b(self, key: &str, v: Option<bool>) -> Self {
        self.v(key, v.map(Value::Bool))
    }

    /// Any value, left out when `None`.
    pub(super) fn v(mut self, key: &str, v: Option<Value>) -> Self {
        if let Some(v) = v {
            self.0.insert(key.into(), v);
        }
        self
    }

    /// A list, left out when empty (the SDK gives `[]` for an absent list).
    pub(super) fn list(self, key: &str, items: Vec<Value>) -> Self {
        if items.is_empty() {
            self
        } else {
            self.v(key, Some(Value::Array(items)))
        }
    }

    /// A string-to-string map (tags, product fields), left out when `None`.
    pub(super) fn map(self, key: &str, m: Option<&HashMap<String, String>>) -> Self {
        self.v(
            key,
            m.map(|m| {
                Value::Object(
                    m.iter()
                        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                        .collect(),
                )
            }),
        )
    }

    pub(super) fn done(self) -> Value {
        Value::Object(self.0)
    }
}
