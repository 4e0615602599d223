//! Refuses YAML with a key given twice in one map, in the same pass that reads the
//! scenario. Typed parts of a scenario are checked by serde already; manifests are
//! free-form JSON, and maps keyed by name are `BTreeMap`s, where the last value would
//! silently win. The fields holding them read through the functions here
//! (`#[serde(deserialize_with = ...)]`); the error carries the key's path and the map's
//! line, and [`second_occurrence`] finds the line of the key given twice.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// The prefix of the error for a key given twice.
pub(super) const DUPLICATE_KEY: &str = "duplicate key ";

/// A JSON value read from YAML, each of its maps without a repeated key. Otherwise what
/// `serde_json::Value` reads.
struct Unique(Value);

impl<'de> Deserialize<'de> for Unique {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueVisitor).map(Unique)
    }
}

struct UniqueVisitor;

impl<'de> Visitor<'de> for UniqueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any valid JSON value")
    }
    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }
    fn visit_f64<E>(self, n: f64) -> Result<Value, E> {
        Ok(Number::from_f64(n).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_string()))
    }
    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(UniqueVisitor)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Unique(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(A::Error::custom(format!("{DUPLICATE_KEY}{key}")));
            }
            let Unique(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

/// A map keyed by string without a repeated key.
struct UniqueMap<T>(BTreeMap<String, T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for UniqueMap<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MapVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for MapVisitor<T> {
            type Value = BTreeMap<String, T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = BTreeMap::new();
                while let Some(key) = map.next_key::<String>()? {
                    if out.contains_key(&key) {
                        return Err(A::Error::custom(format!("{DUPLICATE_KEY}{key}")));
                    }
                    out.insert(key, map.next_value()?);
                }
                Ok(out)
            }
        }
        d.deserialize_map(MapVisitor(PhantomData)).map(UniqueMap)
    }
}

/// A list of manifests.
pub(super) fn values<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Value>, D::Error> {
    Ok(Vec::<Unique>::deserialize(d)?.into_iter().map(|u| u.0).collect())
}

/// An optional manifest or JSON value.
pub(super) fn opt_value<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Ok(Option::<Unique>::deserialize(d)?.map(|u| u.0))
}

/// A JSON value that may be `null` (`Some(Null)`: present; absent is `None` through
/// `#[serde(default)]`).
pub(super) fn present_value<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Ok(Some(Unique::deserialize(d)?.0))
}

/// An optional list of JSON values.
pub(super) fn opt_values<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Value>>, D::Error> {
    Ok(Option::<Vec<Unique>>::deserialize(d)?.map(|v| v.into_iter().map(|u| u.0).collect()))
}

/// A map of typed values by name.
pub(super) fn map<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<BTreeMap<String, T>, D::Error> {
    Ok(UniqueMap::<T>::deserialize(d)?.0)
}

/// A map of JSON values by name.
pub(super) fn value_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Value>, D::Error> {
    Ok(UniqueMap::<Unique>::deserialize(d)?.0.into_iter().map(|(k, u)| (k, u.0)).collect())
}

/// The line (1-based) of the second `key:` at or after line `from` (the parser points at
/// the map; the second occurrence of the key is the line to fix).
pub(super) fn second_occurrence(text: &str, key: &str, from: usize) -> Option<usize> {
    let pattern = format!("{key}:");
    let mut found = 0;
    for (i, line) in text.lines().enumerate().skip(from.saturating_sub(1)) {
        for (at, _) in line.match_indices(&pattern) {
            let before = line[..at].chars().next_back();
            if before.is_none_or(|c| c == ' ' || c == '{' || c == ',' || c == '-') {
                found += 1;
                if found == 2 {
                    return Some(i + 1);
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use crate::sim::parse_scenario;

    #[test]
    fn a_key_given_twice_in_a_manifest_names_its_line() {
        let text = "objects:\n  - kind: Service\n    metadata:\n      name: a\n      name: b\n";
        let e = parse_scenario(text).unwrap_err();
        assert_eq!(e.line, Some(5), "{e}");
        assert!(e.to_string().contains("duplicate key name"), "{e}");
        assert!(e.path.starts_with("objects[0].metadata"), "{e:?}");
    }

    #[test]
    fn a_name_given_twice_in_a_map_by_name_is_refused() {
        let text = "cluster:\n  images:\n    a: {ready: true}\n    a: {ready: false}\nobjects: [{kind: Service}]\n";
        let e = parse_scenario(text).unwrap_err();
        assert!(e.to_string().contains("duplicate key a"), "{e}");
        assert_eq!(e.line, Some(4), "{e}");
    }

    #[test]
    fn the_same_key_in_sibling_maps_is_fine() {
        let text = "objects:\n  - {apiVersion: v1, kind: Service, metadata: {name: a, labels: {x: '1'}}, spec: {selector: {x: '1'}}}\n  - {apiVersion: v1, kind: Service, metadata: {name: b, labels: {x: '1'}}}\n";
        parse_scenario(text).expect("no key is repeated within one map");
    }
}
