//! JSON read the way Go's encoding/json reads it into a struct, which is how every CNI
//! runtime and reference plugin reads it: an object key matches a field by exact name or,
//! failing that, case-insensitively (Unicode simple folding, so `HostPort`, `hostport` and
//! `hostPort` are the same field); when several keys match one field, the last one wins; unknown
//! keys are ignored. containerd's go-cni sends `{"HostPort":18080,"ContainerPort":8080,...}`
//! where the CNI conventions write `hostPort`, and both must work.
//!
//! serde_json's `Value` sorts object keys, losing the order that decides "the last one", so
//! objects are kept here as the list of (key, value) pairs the document holds.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};
use std::fmt;

/// A JSON value with objects in document order, duplicates included.
#[derive(Clone, Debug, PartialEq)]
pub enum GoValue {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<GoValue>),
    Object(Vec<(String, GoValue)>),
}

/// The case folding Go applies to field names: simple folding, in which `ſ` (U+017F) is an
/// `s` and the Kelvin sign (U+212A) a `k`.
fn fold(c: char) -> char {
    match c {
        '\u{17f}' => 's',
        '\u{212a}' => 'k',
        c => {
            let mut l = c.to_lowercase();
            match (l.next(), l.next()) {
                (Some(one), None) => one,
                _ => c,
            }
        }
    }
}

/// Whether an object key names the field `name` for Go's decoder.
pub fn key_matches(key: &str, name: &str) -> bool {
    key == name
        || (key.chars().count() == name.chars().count()
            && key.chars().map(fold).eq(name.chars().map(fold)))
}

impl GoValue {
    /// The value of field `name`: the last key matching it, as Go's decoder assigns.
    pub fn field(&self, name: &str) -> Option<&GoValue> {
        match self {
            GoValue::Object(kv) => kv
                .iter()
                .rev()
                .find(|(k, _)| key_matches(k, name))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The field, unless it is absent or `null` (Go leaves the field unset for both).
    pub fn get(&self, name: &str) -> Option<&GoValue> {
        self.field(name).filter(|v| !matches!(v, GoValue::Null))
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            GoValue::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[GoValue]> {
        match self {
            GoValue::Array(a) => Some(a),
            _ => None,
        }
    }

    /// An integer (Go refuses a fraction or a string for an int field).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            GoValue::Number(n) => n.as_i64(),
            _ => None,
        }
    }

    /// As serde_json's `Value` (object keys deduplicated, the last one kept).
    pub fn to_json(&self) -> Value {
        match self {
            GoValue::Null => Value::Null,
            GoValue::Bool(b) => Value::Bool(*b),
            GoValue::Number(n) => Value::Number(n.clone()),
            GoValue::String(s) => Value::String(s.clone()),
            GoValue::Array(a) => Value::Array(a.iter().map(GoValue::to_json).collect()),
            GoValue::Object(kv) => {
                let mut m = serde_json::Map::new();
                for (k, v) in kv {
                    m.insert(k.clone(), v.to_json());
                }
                Value::Object(m)
            }
        }
    }

    /// A short description for error messages (`a string`, `an object`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            GoValue::Null => "null",
            GoValue::Bool(_) => "a boolean",
            GoValue::Number(_) => "a number",
            GoValue::String(_) => "a string",
            GoValue::Array(_) => "a list",
            GoValue::Object(_) => "an object",
        }
    }
}

struct GoVisitor;

impl<'de> Visitor<'de> for GoVisitor {
    type Value = GoValue;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<GoValue, E> {
        Ok(GoValue::Null)
    }
    fn visit_none<E>(self) -> Result<GoValue, E> {
        Ok(GoValue::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<GoValue, E> {
        Ok(GoValue::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<GoValue, E> {
        Ok(GoValue::Number(n.into()))
    }
    fn visit_u64<E>(self, n: u64) -> Result<GoValue, E> {
        Ok(GoValue::Number(n.into()))
    }
    fn visit_f64<E>(self, n: f64) -> Result<GoValue, E> {
        Ok(Number::from_f64(n).map_or(GoValue::Null, GoValue::Number))
    }
    fn visit_str<E>(self, s: &str) -> Result<GoValue, E> {
        Ok(GoValue::String(s.into()))
    }
    fn visit_string<E>(self, s: String) -> Result<GoValue, E> {
        Ok(GoValue::String(s))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<GoValue, A::Error> {
        let mut v = Vec::new();
        while let Some(x) = seq.next_element()? {
            v.push(x);
        }
        Ok(GoValue::Array(v))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<GoValue, A::Error> {
        let mut v = Vec::new();
        while let Some((k, x)) = map.next_entry::<String, GoValue>()? {
            v.push((k, x));
        }
        Ok(GoValue::Object(v))
    }
}

impl<'de> Deserialize<'de> for GoValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<GoValue, D::Error> {
        d.deserialize_any(GoVisitor)
    }
}

/// Parses a document (with serde_json's limits: nesting depth 128).
pub fn parse(text: &str) -> Result<GoValue, serde_json::Error> {
    serde_json::from_str(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_fold_like_go() {
        let v =
            parse(r#"{"HostPort":1,"hostport":2,"containerPort":3,"PROTOCOL":"udp","hostIP":""}"#)
                .unwrap();
        assert_eq!(
            v.field("hostPort").unwrap().as_i64(),
            Some(2),
            "last match wins"
        );
        assert_eq!(v.field("containerPort").unwrap().as_i64(), Some(3));
        assert_eq!(v.field("protocol").unwrap().as_str(), Some("udp"));
        assert!(v.field("hostIp").is_some());
        assert!(v.field("host_port").is_none());
        // Go's simple folding: the long s and the Kelvin sign.
        assert!(key_matches("ho\u{17f}tPort", "hostPort"));
        assert!(key_matches("\u{212a}ey", "key"));
        assert!(!key_matches("hostPorts", "hostPort"));
        assert!(!key_matches("h\u{130}stPort", "hiostPort"));
    }

    #[test]
    fn order_and_types_survive() {
        let v = parse(r#"{"b":[1,{"x":null}],"a":true,"n":-3,"f":1.5}"#).unwrap();
        let GoValue::Object(kv) = &v else { panic!() };
        assert_eq!(
            kv.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            ["b", "a", "n", "f"]
        );
        assert!(
            v.get("b").unwrap().as_array().unwrap()[1]
                .get("x")
                .is_none(),
            "null is unset"
        );
        assert_eq!(v.get("n").unwrap().as_i64(), Some(-3));
        assert_eq!(v.get("f").unwrap().as_i64(), None, "no fraction for an int");
        assert_eq!(v.to_json()["a"], Value::Bool(true));
        assert!(parse("{").is_err());
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(parse(&deep).is_err(), "bounded nesting");
    }
}
