//! JSON with paths: the one reader every finding parser (and [`crate::posture`]) reads
//! untrusted documents with, and the builder the pollers write documents with.
//!
//! * [`Obj`] and [`Arr`] wrap a `serde_json` object or array with the JSON path it was found
//!   at (`$.findings[2].service`). Every accessor treats `null` as absent and returns a
//!   [`ParseError`] naming the exact path of a missing or mistyped field; nothing here panics
//!   on any input.
//! * The value readers ([`parse_time_str`], counts, booleans) accept the spellings the AWS
//!   documents use (RFC 3339 or epoch seconds, numbers or numeric strings).
//! * [`ObjectBuilder`] is the other direction: the GuardDuty and Security Hub pollers turn an
//!   SDK finding back into the document its parser reads, leaving absent values out as the
//!   APIs do, so the parsers see the same shape whichever path a finding took.
//!
//! Pure: serde_json and chrono only.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::ParseError;

pub(crate) fn parse_json(text: &str) -> Result<Value, ParseError> {
    serde_json::from_str(text).map_err(|e| ParseError::NotJson(e.to_string()))
}

pub(crate) fn parse_count_str(s: &str, path: String) -> Result<u64, ParseError> {
    s.trim().parse().map_err(|_| ParseError::Invalid {
        path,
        message: format!("{} is not a whole number", snippet(s)),
    })
}

pub(crate) fn parse_bool_str(s: &str, path: String) -> Result<bool, ParseError> {
    match s.trim() {
        "true" | "TRUE" | "True" => Ok(true),
        "false" | "FALSE" | "False" => Ok(false),
        other => Err(ParseError::Invalid {
            path,
            message: format!("{} is neither true nor false", snippet(other)),
        }),
    }
}

pub(crate) fn parse_time_str(s: &str, path: String) -> Result<DateTime<Utc>, ParseError> {
    DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| ParseError::Invalid {
            path,
            message: format!("{} is not an RFC 3339 time", snippet(s)),
        })
}

/// Epoch seconds, as some serializations of the same documents write times.
fn epoch_seconds(secs: f64, path: String) -> Result<DateTime<Utc>, ParseError> {
    let invalid = || ParseError::Invalid {
        path: path.clone(),
        message: format!("{secs} is not a time in epoch seconds"),
    };
    // Beyond ±2^53 an f64 no longer holds whole seconds; chrono's own range is narrower still.
    if !secs.is_finite() || secs.abs() > 9_007_199_254_740_992.0 {
        return Err(invalid());
    }
    let whole = secs.floor();
    let nanos = ((secs - whole) * 1e9).round().clamp(0.0, 999_999_999.0) as u32;
    DateTime::from_timestamp(whole as i64, nanos).ok_or_else(invalid)
}

/// Untrusted text quoted in an error message: bounded, and debug-escaped.
pub(crate) fn snippet(s: &str) -> String {
    const MAX: usize = 64;
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}...", &s[..cut]),
        None => format!("{s:?}"),
    }
}

pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

pub(crate) fn wrong_type(path: String, expected: &'static str, found: &Value) -> ParseError {
    ParseError::WrongType {
        path,
        expected,
        found: type_name(found),
    }
}

/// `$.a` + `b` = `$.a.b`; keys that are not plain identifiers are quoted:
/// `$.ProductFields["action/actionType"]`, `$["detail-type"]`.
fn key_path(parent: &str, key: &str) -> String {
    let plain = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if plain {
        format!("{parent}.{key}")
    } else {
        // A JSON string literal is a safe, unambiguous spelling of any key.
        let quoted = serde_json::to_string(key).unwrap_or_else(|_| format!("{key:?}"));
        format!("{parent}[{quoted}]")
    }
}

/// A JSON object and the path it was found at. Every accessor treats `null` as absent and
/// names the field's path in its error.
pub(crate) struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

impl<'a> Obj<'a> {
    pub(crate) fn new(v: &'a Value, path: &str) -> Result<Self, ParseError> {
        match v {
            Value::Object(map) => Ok(Obj {
                map,
                path: path.to_string(),
            }),
            other => Err(wrong_type(path.to_string(), "object", other)),
        }
    }

    /// The object as parsed (`null` values included).
    pub(crate) fn map(&self) -> &'a Map<String, Value> {
        self.map
    }

    /// Whether `key` is present at all (even as `null`).
    pub(crate) fn contains_key(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// The keys, in the document's order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &'a String> {
        self.map.keys()
    }

    pub(crate) fn path_of(&self, key: &str) -> String {
        key_path(&self.path, key)
    }

    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub(crate) fn str(&self, key: &str) -> Result<Option<&'a str>, ParseError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(wrong_type(self.path_of(key), "string", other)),
        }
    }

    pub(crate) fn opt_string(&self, key: &str) -> Result<Option<String>, ParseError> {
        Ok(self.str(key)?.map(str::to_string))
    }

    pub(crate) fn string_or_empty(&self, key: &str) -> Result<String, ParseError> {
        Ok(self.str(key)?.unwrap_or_default().to_string())
    }

    /// A string that must be present and non-empty.
    pub(crate) fn required_str(&self, key: &str) -> Result<&'a str, ParseError> {
        match self.str(key)? {
            None => Err(ParseError::Missing {
                path: self.path_of(key),
            }),
            Some(s) if s.trim().is_empty() => Err(ParseError::Invalid {
                path: self.path_of(key),
                message: "must not be empty".into(),
            }),
            Some(s) => Ok(s),
        }
    }

    pub(crate) fn f64(&self, key: &str) -> Result<Option<f64>, ParseError> {
        match self.get(key) {
            None => Ok(None),
            Some(v @ Value::Number(n)) => match n.as_f64() {
                Some(x) => Ok(Some(x)),
                None => Err(wrong_type(self.path_of(key), "number", v)),
            },
            Some(other) => Err(wrong_type(self.path_of(key), "number", other)),
        }
    }

    pub(crate) fn bool(&self, key: &str) -> Result<Option<bool>, ParseError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(wrong_type(self.path_of(key), "boolean", other)),
        }
    }

    /// A count: a whole number, or a string holding one (ASFF writes counts as strings).
    pub(crate) fn count(&self, key: &str) -> Result<Option<u64>, ParseError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(c) => Ok(Some(c)),
                None => Err(ParseError::Invalid {
                    path: self.path_of(key),
                    message: format!("{n} is not a whole number"),
                }),
            },
            Some(Value::String(s)) => parse_count_str(s, self.path_of(key)).map(Some),
            Some(other) => Err(wrong_type(self.path_of(key), "number", other)),
        }
    }

    /// A time: an RFC 3339 string, or a number of epoch seconds.
    pub(crate) fn time(&self, key: &str) -> Result<Option<DateTime<Utc>>, ParseError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => parse_time_str(s, self.path_of(key)).map(Some),
            Some(v @ Value::Number(n)) => match n.as_f64() {
                Some(secs) => epoch_seconds(secs, self.path_of(key)).map(Some),
                None => Err(wrong_type(self.path_of(key), "RFC 3339 string", v)),
            },
            Some(other) => Err(wrong_type(self.path_of(key), "RFC 3339 string", other)),
        }
    }

    pub(crate) fn obj(&self, key: &str) -> Result<Option<Obj<'a>>, ParseError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => Obj::new(v, &self.path_of(key)).map(Some),
        }
    }

    pub(crate) fn required_obj(&self, key: &str) -> Result<Obj<'a>, ParseError> {
        self.obj(key)?.ok_or_else(|| ParseError::Missing {
            path: self.path_of(key),
        })
    }

    pub(crate) fn arr(&self, key: &str) -> Result<Option<Arr<'a>>, ParseError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => Ok(Some(Arr::new(items, &self.path_of(key)))),
            Some(other) => Err(wrong_type(self.path_of(key), "array", other)),
        }
    }

    pub(crate) fn required_arr(&self, key: &str) -> Result<Arr<'a>, ParseError> {
        self.arr(key)?.ok_or_else(|| ParseError::Missing {
            path: self.path_of(key),
        })
    }
}

/// A JSON array and the path it was found at. `null` elements are skipped.
pub(crate) struct Arr<'a> {
    items: &'a [Value],
    path: String,
}

impl<'a> Arr<'a> {
    pub(crate) fn new(items: &'a [Value], path: &str) -> Self {
        Arr {
            items,
            path: path.to_string(),
        }
    }

    /// Where the array was found, e.g. `$.Types`.
    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    pub(crate) fn element_path(&self, i: usize) -> String {
        format!("{}[{i}]", self.path)
    }

    /// Each element as an object (a non-object element is an error at its own path).
    pub(crate) fn objects(&self) -> impl Iterator<Item = Result<Obj<'a>, ParseError>> + '_ {
        self.items
            .iter()
            .enumerate()
            .filter(|(_, v)| !v.is_null())
            .map(|(i, v)| Obj::new(v, &self.element_path(i)))
    }

    /// Every element as a string.
    pub(crate) fn strings(&self) -> Result<Vec<&'a str>, ParseError> {
        self.items
            .iter()
            .enumerate()
            .filter(|(_, v)| !v.is_null())
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.as_str()),
                other => Err(wrong_type(self.element_path(i), "string", other)),
            })
            .collect()
    }
}

/// An object under construction; [`ObjectBuilder::done`] gives the [`Value`].
#[derive(Default)]
pub(crate) struct ObjectBuilder(Map<String, Value>);

impl ObjectBuilder {
    /// A string field, left out when `None`.
    pub(crate) fn s(self, key: &str, v: Option<&str>) -> Self {
        self.v(key, v.map(Value::from))
    }

    /// A boolean field, left out when `None`.
    pub(crate) fn b(self, key: &str, v: Option<bool>) -> Self {
        self.v(key, v.map(Value::Bool))
    }

    /// Any value, left out when `None`.
    pub(crate) fn v(mut self, key: &str, v: Option<Value>) -> Self {
        if let Some(v) = v {
            self.0.insert(key.into(), v);
        }
        self
    }

    /// A list, left out when empty (the SDK gives `[]` for an absent list).
    pub(crate) fn list(self, key: &str, items: Vec<Value>) -> Self {
        if items.is_empty() {
            self
        } else {
            self.v(key, Some(Value::Array(items)))
        }
    }

    /// A string-to-string map (tags, product fields), left out when `None`.
    pub(crate) fn map(self, key: &str, m: Option<&HashMap<String, String>>) -> Self {
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

    pub(crate) fn done(self) -> Value {
        Value::Object(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths_quote_keys_that_are_not_identifiers() {
        assert_eq!(key_path("$", "id"), "$.id");
        assert_eq!(key_path("$", "detail-type"), "$[\"detail-type\"]");
        assert_eq!(key_path("$.a", "x/y"), "$.a[\"x/y\"]");
        assert_eq!(key_path("$", "q\""), "$[\"q\\\"\"]");
    }

    #[test]
    fn snippets_are_bounded() {
        let long = "é".repeat(500);
        assert!(snippet(&long).chars().count() < 80);
    }

    #[test]
    fn paths_name_the_exact_place() {
        let v = serde_json::json!({"a": {"b-c": [null, {"d": 7}]}, "n": null});
        let root = Obj::new(&v, "$").unwrap();
        assert!(root.contains_key("n"));
        assert_eq!(root.obj("n").unwrap().map(|o| o.map().len()), None);
        let list = root.required_obj("a").unwrap().required_arr("b-c").unwrap();
        assert_eq!(list.path(), "$.a[\"b-c\"]");
        let d = list.objects().next().unwrap().unwrap();
        assert_eq!(
            d.str("d").unwrap_err(),
            ParseError::WrongType {
                path: "$.a[\"b-c\"][1].d".into(),
                expected: "string",
                found: "number",
            }
        );
        assert_eq!(root.required_str("x").unwrap_err().path(), Some("$.x"));
    }

    #[test]
    fn the_builder_leaves_absent_values_out() {
        let tags: HashMap<String, String> = [("k".to_string(), "v".to_string())].into();
        let v = ObjectBuilder::default()
            .s("id", Some("f1"))
            .s("gone", None)
            .b("archived", Some(false))
            .b("sample", None)
            .list("empty", Vec::new())
            .list("one", vec![Value::from(1)])
            .map("tags", Some(&tags))
            .map("none", None)
            .done();
        assert_eq!(
            v,
            serde_json::json!({"id": "f1", "archived": false, "one": [1], "tags": {"k": "v"}})
        );
    }
}
