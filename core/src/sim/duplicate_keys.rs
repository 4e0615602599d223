//! Refuses YAML with a key given twice in one map. Typed parts of a scenario are
//! checked by serde already; manifests are free-form JSON, where the last value would
//! silently win.

use std::collections::BTreeSet;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};

use crate::api::parse::yaml_error;
use crate::api::SpecError;

/// Walks the whole document; the error names the key's path and line.
pub(super) fn check_duplicate_keys(text: &str) -> Result<(), SpecError> {
    let de = serde_yaml_ng::Deserializer::from_str(text);
    for doc in de {
        Walk.deserialize(doc).map_err(|e| {
            let mut e = yaml_error(&e);
            // The parser points at the map; the second occurrence of the key is the line
            // to fix.
            if let (Some(key), Some(from)) = (e.message.strip_prefix("duplicate key "), e.line) {
                e.line = second_occurrence(text, key, from).or(e.line);
            }
            e
        })?;
    }
    Ok(())
}

/// The line (1-based) of the second `key:` at or after line `from`.
fn second_occurrence(text: &str, key: &str, from: usize) -> Option<usize> {
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

struct Walk;

impl<'de> DeserializeSeed<'de> for Walk {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(Walk)
    }
}

impl<'de> Visitor<'de> for Walk {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_i128<E>(self, _: i128) -> Result<(), E> {
        Ok(())
    }
    fn visit_u128<E>(self, _: u128) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_bytes<E>(self, _: &[u8]) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(Walk)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(Walk)
    }
    fn visit_enum<A: serde::de::EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        // A tagged value (`!tag x`): its content is checked like any value.
        let (_, variant) = data.variant::<serde::de::IgnoredAny>()?;
        serde::de::VariantAccess::newtype_variant_seed(variant, Walk)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Walk)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = BTreeSet::new();
        while let Some(key) = map.next_key::<serde_yaml_ng::Value>()? {
            let rendered = serde_yaml_ng::to_string(&key).unwrap_or_default().trim_end().to_string();
            if !seen.insert(rendered.clone()) {
                return Err(A::Error::custom(format!("duplicate key {rendered}")));
            }
            map.next_value_seed(Walk)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_given_twice_in_a_manifest_names_its_line() {
        let text = "objects:\n  - kind: Service\n    metadata:\n      name: a\n      name: b\n";
        let e = check_duplicate_keys(text).unwrap_err();
        assert_eq!(e.line, Some(5), "{e}");
        assert!(e.to_string().contains("duplicate key name"), "{e}");
        assert!(e.path.starts_with("objects[0].metadata"), "{e:?}");
    }

    #[test]
    fn the_same_key_in_sibling_maps_is_fine() {
        assert!(check_duplicate_keys("a: {x: 1}\nb: {x: 2}\nc: [{x: 1}, {x: 1}]\n").is_ok());
    }
}
