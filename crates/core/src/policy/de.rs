//! Typed decoding of a JSON value with field paths, in the way Kubernetes decodes a manifest.
//!
//! [`decode`] runs a type's `serde::Deserialize` over a [`serde_json::Value`] and
//! * names the path of a type error (`spec.rules[0].verifyImages[0].attestors[0].count: invalid
//!   type: string "one", expected i64`);
//! * collects every mapping member that the target struct does not know, with the struct's
//!   field names, so that the loader can warn and suggest the closest one. Kubernetes prunes
//!   such fields silently; sealgate says so.
//!
//! Members read into raw `serde_json::Value` fields (`context`, `preconditions`, …) are not
//! checked: only structs declare their fields.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};
use serde_json::{Map, Value};

use super::path::JsonPath;

/// A member the target type does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UnknownField {
    /// Path of the member.
    pub(crate) path: JsonPath,
    /// The field names the enclosing struct does know.
    pub(crate) known: &'static [&'static str],
}

/// A value of the wrong type (or a missing required field) at `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecodeError {
    /// The innermost node the error concerns.
    pub(crate) path: JsonPath,
    /// serde's description.
    pub(crate) message: String,
    located: bool,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for DecodeError {}

impl de::Error for DecodeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DecodeError {
            path: JsonPath::root(),
            message: msg.to_string(),
            located: false,
        }
    }
}

impl DecodeError {
    fn at(mut self, path: &JsonPath) -> Self {
        if !self.located {
            self.path = path.clone();
            self.located = true;
        }
        self
    }
}

/// Decodes `value` (found at `path` in its document) as a `T`, returning the unknown members
/// met on the way.
pub(crate) fn decode<T: de::DeserializeOwned>(
    value: &Value,
    path: &JsonPath,
) -> Result<(T, Vec<UnknownField>), DecodeError> {
    let unknown = RefCell::new(Vec::new());
    let decoded = T::deserialize(ValueDeserializer {
        value,
        path: path.clone(),
        unknown: &unknown,
    })?;
    Ok((decoded, unknown.into_inner()))
}

struct ValueDeserializer<'a> {
    value: &'a Value,
    path: JsonPath,
    unknown: &'a RefCell<Vec<UnknownField>>,
}

impl<'de> de::Deserializer<'de> for ValueDeserializer<'_> {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        let result = match self.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else {
                    visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => visitor.visit_str(s),
            Value::Array(items) => visitor.visit_seq(SeqAccess {
                items: items.iter().enumerate(),
                path: &self.path,
                unknown: self.unknown,
            }),
            Value::Object(map) => visitor.visit_map(MapAccess::new(map, &self.path, self.unknown)),
        };
        result.map_err(|e| e.at(&self.path))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        if self.value.is_null() {
            visitor
                .visit_none()
                .map_err(|e: DecodeError| e.at(&self.path))
        } else {
            let path = self.path.clone();
            visitor
                .visit_some(self)
                .map_err(|e: DecodeError| e.at(&path))
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        let Value::Object(map) = self.value else {
            return self.deserialize_any(visitor);
        };
        {
            let mut unknown = self.unknown.borrow_mut();
            for key in map.keys() {
                if !fields.contains(&key.as_str()) {
                    unknown.push(UnknownField {
                        path: self.path.field(key),
                        known: fields,
                    });
                }
            }
        }
        visitor
            .visit_map(MapAccess::new(map, &self.path, self.unknown))
            .map_err(|e| e.at(&self.path))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        match self.value {
            Value::String(s) => {
                let access: de::value::StrDeserializer<'_, DecodeError> =
                    s.as_str().into_deserializer();
                visitor.visit_enum(access).map_err(|e| e.at(&self.path))
            }
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        let path = self.path.clone();
        visitor
            .visit_newtype_struct(self)
            .map_err(|e: DecodeError| e.at(&path))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map identifier
    }
}

struct SeqAccess<'a, I> {
    items: I,
    path: &'a JsonPath,
    unknown: &'a RefCell<Vec<UnknownField>>,
}

impl<'de, 'a, I: Iterator<Item = (usize, &'a Value)>> de::SeqAccess<'de> for SeqAccess<'a, I> {
    type Error = DecodeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DecodeError> {
        let Some((index, value)) = self.items.next() else {
            return Ok(None);
        };
        let path = self.path.index(index);
        seed.deserialize(ValueDeserializer {
            value,
            path: path.clone(),
            unknown: self.unknown,
        })
        .map(Some)
        .map_err(|e| e.at(&path))
    }
}

struct MapAccess<'a> {
    entries: serde_json::map::Iter<'a>,
    current: Option<(&'a String, &'a Value)>,
    path: &'a JsonPath,
    unknown: &'a RefCell<Vec<UnknownField>>,
}

impl<'a> MapAccess<'a> {
    fn new(
        map: &'a Map<String, Value>,
        path: &'a JsonPath,
        unknown: &'a RefCell<Vec<UnknownField>>,
    ) -> Self {
        MapAccess {
            entries: map.iter(),
            current: None,
            path,
            unknown,
        }
    }
}

impl<'de> de::MapAccess<'de> for MapAccess<'_> {
    type Error = DecodeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DecodeError> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        self.current = Some((key, value));
        let key_path = self.path.field(key);
        let deserializer: de::value::StrDeserializer<'_, DecodeError> =
            key.as_str().into_deserializer();
        seed.deserialize(deserializer)
            .map(Some)
            .map_err(|e| e.at(&key_path))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DecodeError> {
        let Some((key, value)) = self.current.take() else {
            return Err(de::Error::custom("a value was read before its key"));
        };
        let path = self.path.field(key);
        seed.deserialize(ValueDeserializer {
            value,
            path: path.clone(),
            unknown: self.unknown,
        })
        .map_err(|e| e.at(&path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;
    use std::collections::BTreeMap;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase")]
    struct Outer {
        name: String,
        #[serde(default)]
        items: Vec<Inner>,
        #[serde(default)]
        labels: BTreeMap<String, String>,
        raw: Option<Value>,
        mode: Option<Mode>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase")]
    struct Inner {
        count: Option<u32>,
        nested: Option<Box<Inner>>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    enum Mode {
        Audit,
        Enforce,
    }

    fn root() -> JsonPath {
        JsonPath::root()
    }

    #[test]
    fn decodes_and_collects_unknown_fields() {
        let value = json!({
            "name": "n",
            "items": [{"count": 1}, {"nested": {"count": 2, "typo": 1}, "cout": 3}],
            "labels": {"any": "thing"},
            "raw": {"free": {"form": 1}},
            "mode": "Enforce",
            "extra": true,
        });
        let (outer, unknown): (Outer, _) = decode(&value, &root()).unwrap();
        assert_eq!(outer.items[1].nested.as_ref().unwrap().count, Some(2));
        assert_eq!(outer.mode, Some(Mode::Enforce));
        let paths: Vec<String> = unknown.iter().map(|u| u.path.to_string()).collect();
        assert_eq!(paths, ["extra", "items[1].cout", "items[1].nested.typo"]);
        assert!(unknown[1].known.contains(&"count"));
    }

    #[test]
    fn type_errors_name_their_path() {
        let value = json!({"name": "n", "items": [{}, {"nested": {"count": "two"}}]});
        let err = decode::<Outer>(&value, &root()).unwrap_err();
        assert_eq!(err.path.to_string(), "items[1].nested.count");
        assert!(
            err.message.contains("invalid type: string \"two\""),
            "{err}"
        );

        let err = decode::<Outer>(&json!({"items": []}), &root()).unwrap_err();
        assert_eq!(err.path.to_string(), "");
        assert_eq!(err.message, "missing field `name`");

        let err = decode::<Outer>(&json!({"name": "n", "mode": "enforce"}), &root()).unwrap_err();
        assert_eq!(err.path.to_string(), "mode");
        assert!(err.message.contains("unknown variant `enforce`"), "{err}");

        let err = decode::<Outer>(&json!({"name": "n", "labels": {"a": 1}}), &root()).unwrap_err();
        assert_eq!(err.path.to_string(), "labels.a");

        let err = decode::<Outer>(&json!({"name": "n", "items": {"a": 1}}), &root()).unwrap_err();
        assert_eq!(err.path.to_string(), "items");
        assert!(err.message.contains("expected a sequence"), "{err}");
    }
}
