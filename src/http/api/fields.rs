//! Fields of request bodies, typed as the document says.
//!
//! Strings: poem-openapi's `String` also takes JSON numbers and booleans
//! (`{"body": 5}` would be stored as "5") although the document says `type: string`; [`Text`]
//! takes JSON strings only. Its rule puts the lengths and pattern of `docs/protocol.md` into the
//! OpenAPI document; the domain types still enforce them, with their own error codes.
use std::{borrow::Cow, fmt, marker::PhantomData, ops::Deref};

use poem_openapi::{
    registry::{MetaSchema, MetaSchemaRef},
    types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type},
};
use serde_json::Value;

/// The characters Rust's `str::trim` removes (Unicode `White_Space`), for patterns.
const WHITE_SPACE: &str = r"\t\n\u000b\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

/// What the document says about one kind of string. The server enforces the same rules.
pub trait TextRule: Send + Sync + 'static {
    const MIN_LENGTH: Option<usize> = None;
    const MAX_LENGTH: Option<usize> = None;
    fn pattern() -> Option<String> {
        None
    }
}

/// A JSON string, never a number or boolean turned into one.
pub struct Text<R>(String, PhantomData<R>);

impl<R> Text<R> {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<R> From<String> for Text<R> {
    fn from(value: String) -> Self {
        Self(value, PhantomData)
    }
}

impl<R> Deref for Text<R> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl<R> PartialEq for Text<R> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl<R> Eq for Text<R> {}

impl<R> std::hash::Hash for Text<R> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl<R> fmt::Debug for Text<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl<R: TextRule> Type for Text<R> {
    const IS_REQUIRED: bool = true;
    type RawValueType = String;
    type RawElementValueType = String;

    fn name() -> Cow<'static, str> {
        "string".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            min_length: R::MIN_LENGTH,
            max_length: R::MAX_LENGTH,
            pattern: R::pattern(),
            ..MetaSchema::new("string")
        }))
    }

    fn as_raw_value(&self) -> Option<&String> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a String> + 'a> {
        Box::new(std::iter::once(&self.0))
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<R: TextRule> ParseFromJSON for Text<R> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value.unwrap_or_default() {
            Value::String(text) => Ok(Self(text, PhantomData)),
            other => Err(ParseError::expected_type(other)),
        }
    }
}

impl<R: TextRule> ToJSON for Text<R> {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

/// 3–32 characters of `A-Z a-z 0-9 _ . -` (canonicalised to lowercase).
pub struct UsernameRule;
impl TextRule for UsernameRule {
    const MIN_LENGTH: Option<usize> = Some(3);
    const MAX_LENGTH: Option<usize> = Some(32);
    fn pattern() -> Option<String> {
        Some("^[A-Za-z0-9_.-]{3,32}$".into())
    }
}

/// 8–128 characters, any.
pub struct PasswordRule;
impl TextRule for PasswordRule {
    const MIN_LENGTH: Option<usize> = Some(8);
    const MAX_LENGTH: Option<usize> = Some(128);
}

/// At least one character that is not white space; the document states the default maximum.
pub struct BodyRule;
impl TextRule for BodyRule {
    const MIN_LENGTH: Option<usize> = Some(1);
    const MAX_LENGTH: Option<usize> = Some(crate::config::InputLimitsConfig::DEFAULT_MAX_MESSAGE_CHARS);
    fn pattern() -> Option<String> {
        Some(format!("[^{WHITE_SPACE}]"))
    }
}

/// 1–64 characters, none of them a control character, not starting with `event-`.
pub struct ClientIdRule;
impl TextRule for ClientIdRule {
    const MIN_LENGTH: Option<usize> = Some(1);
    const MAX_LENGTH: Option<usize> = Some(64);
    fn pattern() -> Option<String> {
        Some(r"^(?!event-)[^\u0000-\u001f\u007f-\u009f]*$".into())
    }
}

/// A conversation's name: 1–80 characters after trimming, no control characters.
pub struct NameRule;
impl TextRule for NameRule {
    const MIN_LENGTH: Option<usize> = Some(1);
    const MAX_LENGTH: Option<usize> = Some(80);
    fn pattern() -> Option<String> {
        Some(format!("^[^\\u0000-\\u001f\\u007f-\\u009f]*[^{WHITE_SPACE}\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"))
    }
}

/// A room's topic: at most 250 characters after trimming; empty clears it.
pub struct TopicRule;
impl TextRule for TopicRule {
    const MAX_LENGTH: Option<usize> = Some(250);
    fn pattern() -> Option<String> {
        Some(r"^[^\u0000-\u0009\u000b-\u001f\u007f-\u009f]*$".into())
    }
}

/// A message id in a request body: a JSON integer, documented as at least 0. A negative one parses
/// so that the domain can refuse it as `invalid_parameter`, as it does over the WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageIdField(pub i64);

impl Type for MessageIdField {
    const IS_REQUIRED: bool = true;
    type RawValueType = i64;
    type RawElementValueType = i64;

    fn name() -> Cow<'static, str> {
        "integer_int64".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema { minimum: Some(0.0), ..MetaSchema::new_with_format("integer", "int64") }))
    }

    fn as_raw_value(&self) -> Option<&i64> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a i64> + 'a> {
        Box::new(std::iter::once(&self.0))
    }
}

impl ParseFromJSON for MessageIdField {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        // JSON Schema counts `42.0` as an integer, so the document's clients may send one.
        if let Some(Value::Number(number)) = &value
            && let Some(float) = number.as_f64().filter(|f| !number.is_i64() && f.fract() == 0.0 && f.abs() < 9.0e15)
        {
            return Ok(Self(float as i64));
        }
        i64::parse_from_json(value).map(Self).map_err(ParseError::propagate)
    }
}

impl ToJSON for MessageIdField {
    fn to_json(&self) -> Option<Value> {
        Some(Value::from(self.0))
    }
}

/// A time as sent in responses: RFC 3339 in UTC with milliseconds, `format: date-time`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timestamp(String);

impl Timestamp {
    /// From the stored milliseconds since the epoch.
    pub fn from_millis(millis: i64) -> Self {
        Self(crate::domain::format_time(millis))
    }
}

impl Type for Timestamp {
    const IS_REQUIRED: bool = true;
    type RawValueType = String;
    type RawElementValueType = String;

    fn name() -> Cow<'static, str> {
        "string_date-time".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema::new_with_format("string", "date-time")))
    }

    fn as_raw_value(&self) -> Option<&String> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a String> + 'a> {
        Box::new(std::iter::once(&self.0))
    }
}

impl ParseFromJSON for Timestamp {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        String::parse_from_json(value).map(Self).map_err(ParseError::propagate)
    }
}

impl ToJSON for Timestamp {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_json_strings_are_text() {
        let parse = |value: Value| Text::<PasswordRule>::parse_from_json(Some(value)).map(|t| t.0).ok();
        assert_eq!(parse(Value::String("5".into())), Some("5".into()));
        for value in [serde_json::json!(5), serde_json::json!(true), Value::Null, serde_json::json!([]), serde_json::json!({})] {
            assert_eq!(parse(value), None);
        }
        assert!(Text::<PasswordRule>::parse_from_json(None).is_err());
    }

    #[test]
    fn a_message_id_is_any_integral_json_number() {
        let parse = |value: Value| MessageIdField::parse_from_json(Some(value)).ok().map(|m| m.0);
        assert_eq!(parse(serde_json::json!(42)), Some(42));
        assert_eq!(parse(serde_json::json!(42.0)), Some(42));
        assert_eq!(parse(serde_json::json!(-3)), Some(-3));
        for value in [serde_json::json!(42.5), serde_json::json!(1e300), serde_json::json!("42"), Value::Null] {
            assert_eq!(parse(value.clone()), None, "{value}");
        }
    }

    #[test]
    fn the_white_space_class_is_what_trim_removes() {
        // Every character `char::is_whitespace` accepts is listed, and nothing else.
        let listed = |c: char| {
            matches!(c, '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{85}' | '\u{a0}' | '\u{1680}' | '\u{2000}'..='\u{200a}' | '\u{2028}' | '\u{2029}' | '\u{202f}' | '\u{205f}' | '\u{3000}')
        };
        for c in (0..=0x10ffff).filter_map(char::from_u32) {
            assert_eq!(c.is_whitespace(), listed(c), "{:?}", c);
        }
    }
}
