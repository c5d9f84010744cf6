//! Reading a page of alerts in one pass, without building a JSON tree: each alert is kept as its
//! bytes in the page ([`RawAlert`], a range of the page body shared by its alerts) and only the
//! few fields the fetch needs are read, borrowed from the page ([`Item::field`]).
//!
//! The pass is `serde_json`'s own (it validates the whole page as JSON); it hands every field of
//! an alert as a borrowed [`RawValue`], whose address in the page says where the field lies, so
//! the alert's extent is known without reading its bytes a second time.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use serde::Deserializer as _;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::microsoft::http::Unreadable;

/// One alert exactly as the API returned it: its bytes in the page body, which its alerts share
/// (cloning is cheap; the page is freed with its last alert). Always one JSON object.
#[derive(Clone)]
pub struct RawAlert {
    page: Arc<String>,
    span: Range<usize>,
}

impl RawAlert {
    /// The alert's JSON text, as bytes (what the sinks write).
    pub fn bytes(&self) -> &[u8] {
        self.page.as_bytes().get(self.span.clone()).unwrap_or(b"{}")
    }

    /// The alert's JSON text.
    pub fn get(&self) -> &str {
        // The span was cut at ASCII delimiters of the page (`{`, `}`): always char boundaries.
        self.page.get(self.span.clone()).unwrap_or("{}")
    }

    /// An alert from its JSON text (already validated as JSON).
    fn whole(text: String) -> RawAlert {
        let span = 0..text.len();
        RawAlert {
            page: Arc::new(text),
            span,
        }
    }
}

impl From<Box<RawValue>> for RawAlert {
    fn from(raw: Box<RawValue>) -> RawAlert {
        RawAlert::whole(Box::<str>::from(raw).into_string())
    }
}

impl PartialEq for RawAlert {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl fmt::Debug for RawAlert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}

/// Written verbatim. The sinks write records with [`crate::record::AlertRecord::write_line`],
/// which copies the bytes as they are; this generic path (answers of the on-demand fetch, tests)
/// checks them as JSON first, because `serde` can pass raw JSON on only as a [`RawValue`].
impl serde::Serialize for RawAlert {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw: &RawValue = serde_json::from_str(self.get()).map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for RawAlert {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<RawAlert, D::Error> {
        Box::<RawValue>::deserialize(d).map(RawAlert::from)
    }
}

/// An alert of a page, as the one pass left it: where it lies, and the named fields it holds.
pub struct Item<'a, const N: usize> {
    span: Range<usize>,
    fields: [Option<&'a RawValue>; N],
}

impl<'a, const N: usize> Item<'a, N> {
    /// The `i`th named field as text, borrowed from the page when it holds no escapes; `None`
    /// when absent, `null` or not a string.
    pub fn field(&self, i: usize) -> Option<Cow<'a, str>> {
        let raw = self.fields.get(i).copied().flatten()?;
        serde_json::from_str::<Text<'a>>(raw.get()).ok()?.0
    }

    /// The `i`th named field as a key: a string of 1 to `max` bytes.
    pub fn key(&self, i: usize, max: usize) -> Option<String> {
        self.field(i)
            .filter(|s| !s.is_empty() && s.len() <= max)
            .map(Cow::into_owned)
    }

    /// The `i`th named field as a time ([`super::parse_time`]).
    pub fn time(&self, i: usize) -> Option<chrono::DateTime<chrono::Utc>> {
        self.field(i).as_deref().and_then(super::parse_time)
    }

    /// The alert's bytes, kept.
    pub fn raw(&self, page: &Arc<String>) -> RawAlert {
        RawAlert {
            page: Arc::clone(page),
            span: self.span.clone(),
        }
    }
}

/// A page that is an object with the alerts in its `value` array and maybe a next link
/// (Graph and MDE).
pub struct ODataItems<'a, const N: usize> {
    /// The alerts.
    pub items: Vec<Item<'a, N>>,
    /// `@odata.nextLink`.
    pub next_link: Option<Cow<'a, str>>,
}

/// Reads an OData page: `{"value": [ … ], "@odata.nextLink": …}`, taking the fields `names` of
/// each alert.
///
/// # Errors
///
/// [`Unreadable::NotJson`] for a body that is not JSON, [`Unreadable::Shape`] for one without a
/// `value` array of non-empty objects.
pub fn odata_page<'a, const N: usize>(
    page: &'a str,
    names: &'static [&'static str; N],
) -> Result<ODataItems<'a, N>, Unreadable> {
    let mut de = serde_json::Deserializer::from_str(page);
    de.deserialize_map(PageSeed { page, names })
        .and_then(|items| de.end().map(|()| items))
        .map_err(|e| Unreadable::of(&e, "the page has no value array of alerts"))
}

/// Reads a page that is a bare array of alerts (the SIEM API), taking the fields `names` of each.
///
/// # Errors
///
/// As [`odata_page`], for a body that is not an array of non-empty objects.
pub fn array_page<'a, const N: usize>(
    page: &'a str,
    names: &'static [&'static str; N],
) -> Result<Vec<Item<'a, N>>, Unreadable> {
    let seed = ItemsSeed { page, names };
    let mut de = serde_json::Deserializer::from_str(page);
    let items = seed
        .deserialize(&mut de)
        .and_then(|items| de.end().map(|()| items))
        .map_err(|e| Unreadable::of(&e, "the answer is not an array of alerts"))?;
    Ok(items)
}

// ---------------------------------------------------------------------------------------------
// The seeds.

/// A string borrowed from the page when it holds no escape; anything else is `None`.
struct Text<'a>(Option<Cow<'a, str>>);

impl<'de> serde::Deserialize<'de> for Text<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Some(Cow::Borrowed(s))))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Text<'de>, E> {
                Ok(Text(Some(Cow::Owned(s.to_string()))))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Text<'de>, E> {
                Ok(Text(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Text<'de>, E> {
                Ok(Text(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Text<'de>, E> {
                Ok(Text(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Text<'de>, E> {
                Ok(Text(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Text<'de>, E> {
                Ok(Text(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Text<'de>, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Text(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Text<'de>, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Text(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// The offset of `part` (borrowed from `page`) in `page`.
fn offset_in(page: &str, part: &str) -> Option<usize> {
    let at = (part.as_ptr() as usize).checked_sub(page.as_ptr() as usize)?;
    (at + part.len() <= page.len()).then_some(at)
}

/// Where the object whose first value starts at `first` and whose last value ends at `last_end`
/// lies in `page`: back over `:`, the first key (a JSON string: its opening quote is the first
/// quote before its closing one that no odd run of backslashes escapes) and `{`; forward to `}`.
/// JSON allows only whitespace between those tokens, and `serde_json` has checked the page.
fn object_span(page: &str, first: usize, last_end: usize) -> Option<Range<usize>> {
    let bytes = page.as_bytes();
    let before = page.get(..first)?.trim_end();
    let before = before.strip_suffix(':')?.trim_end();
    let close = before.len().checked_sub(1)?;
    let mut open = None;
    let mut i = close;
    while i > 0 {
        i -= 1;
        if bytes[i] == b'"' {
            let backslashes = bytes[..i].iter().rev().take_while(|b| **b == b'\\').count();
            if backslashes % 2 == 0 {
                open = Some(i);
                break;
            }
        }
    }
    let start = page.get(..open?)?.trim_end().strip_suffix('{')?.len();
    let after = page.get(last_end..)?;
    let end = page.len() - after.trim_start().strip_prefix('}')?.len();
    Some(start..end)
}

/// One alert: a non-empty object, every value taken as a borrowed [`RawValue`].
struct ItemSeed<'a, const N: usize> {
    page: &'a str,
    names: &'static [&'static str; N],
}

impl<'de, const N: usize> DeserializeSeed<'de> for ItemSeed<'de, N> {
    type Value = Item<'de, N>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, const N: usize> Visitor<'de> for ItemSeed<'de, N> {
    type Value = Item<'de, N>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an alert (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = [None; N];
        let (mut first, mut last_end) = (None, 0);
        while let Some(key) = map.next_key::<Text<'de>>()? {
            let value: &'de RawValue = map.next_value()?;
            let at = offset_in(self.page, value.get())
                .ok_or_else(|| de::Error::custom("a value outside the page"))?;
            first.get_or_insert(at);
            last_end = at + value.get().len();
            if let Some(i) = key.0.and_then(|k| self.names.iter().position(|n| *n == k)) {
                fields[i] = Some(value);
            }
        }
        let first = first.ok_or_else(|| de::Error::invalid_length(0, &"a non-empty object"))?;
        let span = object_span(self.page, first, last_end)
            .ok_or_else(|| de::Error::custom("an alert's extent"))?;
        Ok(Item { span, fields })
    }
}

/// The alerts: an array of [`ItemSeed`]s.
struct ItemsSeed<'a, const N: usize> {
    page: &'a str,
    names: &'static [&'static str; N],
}

impl<'de, const N: usize> DeserializeSeed<'de> for ItemsSeed<'de, N> {
    type Value = Vec<Item<'de, N>>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, const N: usize> Visitor<'de> for ItemsSeed<'de, N> {
    type Value = Vec<Item<'de, N>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of alerts")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(10_000));
        while let Some(item) = seq.next_element_seed(ItemSeed {
            page: self.page,
            names: self.names,
        })? {
            items.push(item);
        }
        Ok(items)
    }
}

/// An OData page's top level.
struct PageSeed<'a, const N: usize> {
    page: &'a str,
    names: &'static [&'static str; N],
}

impl<'de, const N: usize> Visitor<'de> for PageSeed<'de, N> {
    type Value = ODataItems<'de, N>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object with a value array")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut items, mut next_link) = (None, None);
        while let Some(key) = map.next_key::<Text<'de>>()? {
            match key.0.as_deref().unwrap_or_default() {
                "value" => {
                    items = Some(map.next_value_seed(ItemsSeed {
                        page: self.page,
                        names: self.names,
                    })?);
                }
                "@odata.nextLink" => next_link = map.next_value::<Text<'de>>()?.0,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let items = items.ok_or_else(|| de::Error::missing_field("value"))?;
        Ok(ODataItems { items, next_link })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: [&str; 2] = ["id", "t"];

    fn texts(page: &str) -> Vec<(String, Option<String>, Option<String>)> {
        let shared = Arc::new(page.to_string());
        let read = odata_page(&shared, &NAMES).expect("a page");
        read.items
            .iter()
            .map(|i| {
                let field = |n| i.field(n).map(Cow::into_owned);
                (i.raw(&shared).get().to_string(), field(0), field(1))
            })
            .collect()
    }

    #[test]
    fn each_alert_is_cut_from_the_page_exactly_as_written() {
        let a = r#"{ "id" : "a1", "t":"x", "nested": {"id": "inner", "l": [1, {"}": "{"}]} }"#;
        let b = r#"{"\"k\\":"esc","id":"b\u00e9\"2","t":null}"#;
        let c = "{\n\t\"t\": \"τ 🛡\",\r\n \"id\":\"c\" \n}";
        let page = format!(
            "{{\"@odata.context\":\"x\", \"value\" : [ {a} ,{b},\n{c}\n], \"@odata.nextLink\":\"https://n/x?$skip=2\"}}"
        );
        let got = texts(&page);
        assert_eq!(got[0], (a.into(), Some("a1".into()), Some("x".into())));
        assert_eq!(got[1], (b.into(), Some("bé\"2".into()), None));
        assert_eq!(got[2], (c.into(), Some("c".into()), Some("τ 🛡".into())));
        let read = odata_page(&page, &NAMES).expect("a page");
        assert_eq!(read.next_link.as_deref(), Some("https://n/x?$skip=2"));
    }

    #[test]
    fn pages_that_are_not_arrays_of_objects_are_refused_by_kind() {
        let shape = |p: &str| matches!(odata_page(p, &NAMES), Err(Unreadable::Shape(_)));
        assert!(shape(r#"{"value":[{}]}"#));
        assert!(shape(r#"{"value":[1]}"#));
        assert!(shape(r#"{"other":[]}"#));
        assert!(shape("[]"));
        assert!(matches!(
            odata_page(r#"{"value":[{"id":"a"}"#, &NAMES),
            Err(Unreadable::NotJson)
        ));
        assert!(matches!(
            odata_page(r#"{"value":[]} trailing"#, &NAMES),
            Err(Unreadable::NotJson)
        ));
        let items = array_page(r#" [ {"id":"a"} ] "#, &NAMES).expect("an array");
        assert_eq!(items.len(), 1);
        assert!(matches!(
            array_page(r#"{"id":"a"}"#, &NAMES),
            Err(Unreadable::Shape(_))
        ));
    }
}
