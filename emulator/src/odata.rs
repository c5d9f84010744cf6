//! The small part of OData the alert APIs accept: query-string decoding, system query options
//! (`$filter`, `$top`, …) and a strict `$filter` parser.
//!
//! `$filter` grammar (reference §2.3, §3.2, §6 items 14 and 20):
//!
//! ```text
//! or    := and ('or' and)*
//! and   := term ('and' term)*
//! term  := '(' or ')' | property op literal
//! op    := eq | ne | gt | ge | lt | le
//! literal := 'string' ('' escapes a quote) | 2024-01-01T00:00:00.1234567Z | 42 | -1.5 | null | true | false
//! ```
//!
//! Operators and `null` are read case-insensitively (ASP.NET OData services accept `EQ`); property
//! names are matched case-insensitively against the API's [`Schema`]. Functions (`startswith(…)`),
//! `not`, lambdas and arithmetic are refused. The query string is decoded as
//! `application/x-www-form-urlencoded`, so a `+` in the raw query is a space (the documented
//! `lastUpdateTime+ge+2019-11-22T00:00:00Z`) and `%2B` is a plus.
//!
//! A parsed [`Filter`] is bound to a [`Schema`] into a [`BoundFilter`], which checks property names,
//! literal types and enum members once, then evaluates per row through a lookup closure without
//! allocating. Timestamps compare at full precision; strings and enum members compare
//! case-insensitively (Graph renders `inProgress`, MDE `InProgress`: both match either spelling).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, Utc};

/// Why a query was refused; the message is meant for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ODataError(pub String);

impl ODataError {
    fn new(msg: impl Into<String>) -> Self {
        ODataError(msg.into())
    }
}

/// Deepest parenthesis nesting accepted (hostile input must not exhaust the stack).
const MAX_DEPTH: usize = 32;
/// Most comparisons in one filter (ASP.NET OData's default `MaxNodeCount` is 100; we are laxer).
const MAX_COMPARISONS: usize = 1000;

/// Decodes a raw query string as `application/x-www-form-urlencoded` (`+` is a space).
pub fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .into_owned()
            .collect()
    })
    .unwrap_or_default()
}

/// Encodes pairs back into a query string; a leading `$` of a name stays literal, as in
/// Microsoft's own `@odata.nextLink`s.
pub fn encode_query(pairs: &[(String, String)]) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    pairs
        .iter()
        .map(|(k, v)| match k.strip_prefix('$') {
            Some(rest) => format!("${}={}", enc(rest), enc(v)),
            None => format!("{}={}", enc(k), enc(v)),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The `$`-prefixed (system) query options of a request: each at most once, names lowercased.
/// Options without `$` are not system options and are left to the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemOptions {
    options: BTreeMap<String, String>,
}

impl SystemOptions {
    /// Collects the system options of `pairs`, refusing repeats and any option not in `allowed`
    /// (lowercase names, with the `$`).
    pub fn from_pairs(pairs: &[(String, String)], allowed: &[&str]) -> Result<Self, ODataError> {
        let mut options = BTreeMap::new();
        for (k, v) in pairs {
            if !k.starts_with('$') {
                continue;
            }
            let name = k.to_ascii_lowercase();
            if !allowed.contains(&name.as_str()) {
                return Err(ODataError::new(format!(
                    "Query option '{k}' is not supported."
                )));
            }
            if options.insert(name, v.clone()).is_some() {
                return Err(ODataError::new(format!(
                    "Query option '{k}' was specified more than once, but it must be specified at most once."
                )));
            }
        }
        Ok(SystemOptions { options })
    }

    /// The value of an option (name lowercase, with the `$`).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.options.get(name).map(String::as_str)
    }

    /// An option as a non-negative integer, if present.
    pub fn count_option(&self, name: &str) -> Result<Option<usize>, ODataError> {
        self.get(name)
            .map(|v| {
                v.trim().parse::<usize>().map_err(|_| {
                    ODataError::new(format!(
                        "Invalid value '{v}' for {name} query option found. The {name} query option requires a non-negative integer value."
                    ))
                })
            })
            .transpose()
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `eq`
    Eq,
    /// `ne`
    Ne,
    /// `gt`
    Gt,
    /// `ge`
    Ge,
    /// `lt`
    Lt,
    /// `le`
    Le,
}

impl CmpOp {
    fn from_word(w: &str) -> Option<CmpOp> {
        Some(match w.to_ascii_lowercase().as_str() {
            "eq" => CmpOp::Eq,
            "ne" => CmpOp::Ne,
            "gt" => CmpOp::Gt,
            "ge" => CmpOp::Ge,
            "lt" => CmpOp::Lt,
            "le" => CmpOp::Le,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            CmpOp::Eq => "Equal",
            CmpOp::Ne => "NotEqual",
            CmpOp::Gt => "GreaterThan",
            CmpOp::Ge => "GreaterThanOrEqual",
            CmpOp::Lt => "LessThan",
            CmpOp::Le => "LessThanOrEqual",
        }
    }

    fn holds(self, o: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            CmpOp::Eq => o == Equal,
            CmpOp::Ne => o != Equal,
            CmpOp::Gt => o == Greater,
            CmpOp::Ge => o != Less,
            CmpOp::Lt => o == Less,
            CmpOp::Le => o != Greater,
        }
    }
}

/// A literal in a filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// `'text'`, quotes removed and `''` unescaped.
    Str(String),
    /// An integer.
    Int(i64),
    /// A number with a fraction or exponent.
    Float(f64),
    /// An unquoted timestamp.
    Time(DateTime<Utc>),
    /// `true` / `false`.
    Bool(bool),
    /// `null`.
    Null,
}

impl Literal {
    fn edm_type(&self) -> &'static str {
        match self {
            Literal::Str(_) => "Edm.String",
            Literal::Int(_) => "Edm.Int64",
            Literal::Float(_) => "Edm.Double",
            Literal::Time(_) => "Edm.DateTimeOffset",
            Literal::Bool(_) => "Edm.Boolean",
            Literal::Null => "null",
        }
    }
}

/// A parsed `$filter`, not yet checked against any entity.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Every part holds (`and`).
    All(Vec<Filter>),
    /// Some part holds (`or`).
    Any(Vec<Filter>),
    /// `property op literal`.
    Cmp {
        /// Property name as written.
        property: String,
        /// Operator.
        op: CmpOp,
        /// Literal.
        value: Literal,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Open,
    Close,
    Word(String),
    Lit(Literal),
}

fn lex(s: &str) -> Result<Vec<(usize, Tok)>, ODataError> {
    let chars: Vec<(usize, char)> = s.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (pos, c) = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' {
            out.push((pos, Tok::Open));
            i += 1;
        } else if c == ')' {
            out.push((pos, Tok::Close));
            i += 1;
        } else if c == '\'' {
            let mut text = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => {
                        return Err(ODataError::new(format!(
                            "There is an unterminated string literal at position {pos} in '{s}'."
                        )));
                    }
                    Some((_, '\'')) if matches!(chars.get(i + 1), Some((_, '\''))) => {
                        text.push('\'');
                        i += 2;
                    }
                    Some((_, '\'')) => {
                        i += 1;
                        break;
                    }
                    Some((_, ch)) => {
                        text.push(*ch);
                        i += 1;
                    }
                }
            }
            out.push((pos, Tok::Lit(Literal::Str(text))));
        } else if c.is_ascii_digit()
            || (c == '-' && chars.get(i + 1).is_some_and(|(_, d)| d.is_ascii_digit()))
        {
            let start = i;
            i += 1;
            while chars.get(i).is_some_and(|(_, d)| {
                d.is_ascii_alphanumeric() || matches!(d, ':' | '.' | '+' | '-')
            }) {
                i += 1;
            }
            let text: String = chars[start..i].iter().map(|(_, ch)| *ch).collect();
            out.push((pos, Tok::Lit(number_or_time(&text, pos, s)?)));
        } else if c.is_alphabetic() || c == '_' || c == '$' || c == '@' {
            let start = i;
            i += 1;
            while chars
                .get(i)
                .is_some_and(|(_, d)| d.is_alphanumeric() || matches!(d, '_' | '.' | '/'))
            {
                i += 1;
            }
            let text: String = chars[start..i].iter().map(|(_, ch)| *ch).collect();
            let tok = match text.to_ascii_lowercase().as_str() {
                "null" => Tok::Lit(Literal::Null),
                "true" => Tok::Lit(Literal::Bool(true)),
                "false" => Tok::Lit(Literal::Bool(false)),
                _ => Tok::Word(text),
            };
            out.push((pos, tok));
        } else {
            return Err(ODataError::new(format!(
                "Syntax error: character '{c}' is not valid at position {pos} in '{s}'."
            )));
        }
    }
    Ok(out)
}

fn number_or_time(text: &str, pos: usize, whole: &str) -> Result<Literal, ODataError> {
    if text.contains('T') || text.contains('t') {
        return parse_timestamp(text).map(Literal::Time).ok_or_else(|| {
            ODataError::new(format!(
                "The DateTimeOffset text '{text}' at position {pos} in '{whole}' is not valid."
            ))
        });
    }
    if let Ok(n) = text.parse::<i64>() {
        return Ok(Literal::Int(n));
    }
    match text.parse::<f64>() {
        Ok(f) if f.is_finite() => Ok(Literal::Float(f)),
        _ => Err(ODataError::new(format!(
            "Syntax error: '{text}' at position {pos} in '{whole}' is not a valid literal."
        ))),
    }
}

/// Parses an ISO 8601 timestamp at full precision: with `Z` or an offset, or without one (then
/// UTC, as .NET services read it), fractional seconds optional.
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .map(|n| n.and_utc())
}

struct Parser<'a> {
    toks: Vec<(usize, Tok)>,
    at: usize,
    src: &'a str,
    comparisons: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at).map(|(_, t)| t)
    }

    fn pos(&self) -> usize {
        self.toks
            .get(self.at)
            .map(|(p, _)| *p)
            .unwrap_or(self.src.len())
    }

    fn err(&self, what: &str) -> ODataError {
        ODataError::new(format!(
            "Syntax error at position {} in '{}': {what}.",
            self.pos(),
            self.src
        ))
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(x)) if x.eq_ignore_ascii_case(w))
    }

    fn or(&mut self, depth: usize) -> Result<Filter, ODataError> {
        self.joined(depth, "or", Self::and, Filter::Any)
    }

    fn and(&mut self, depth: usize) -> Result<Filter, ODataError> {
        self.joined(depth, "and", Self::term, Filter::All)
    }

    /// One or more operands read by `operand`, joined by the operator `word` into `join` (a
    /// single operand stands alone).
    fn joined(
        &mut self,
        depth: usize,
        word: &str,
        operand: fn(&mut Self, usize) -> Result<Filter, ODataError>,
        join: fn(Vec<Filter>) -> Filter,
    ) -> Result<Filter, ODataError> {
        let mut parts = vec![operand(self, depth)?];
        while self.is_word(word) {
            self.at += 1;
            parts.push(operand(self, depth)?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            join(parts)
        })
    }

    fn term(&mut self, depth: usize) -> Result<Filter, ODataError> {
        match self.peek().cloned() {
            Some(Tok::Open) => {
                if depth >= MAX_DEPTH {
                    return Err(ODataError::new(format!(
                        "The filter nests parentheses deeper than {MAX_DEPTH} levels."
                    )));
                }
                self.at += 1;
                let inner = self.or(depth + 1)?;
                if self.peek() != Some(&Tok::Close) {
                    return Err(self.err("')' expected"));
                }
                self.at += 1;
                Ok(inner)
            }
            Some(Tok::Word(w)) => {
                if w.eq_ignore_ascii_case("not") {
                    return Err(self.err("the 'not' operator is not supported"));
                }
                self.at += 1;
                if self.peek() == Some(&Tok::Open) {
                    return Err(ODataError::new(format!(
                        "An unknown function with name '{w}' was found. This may also be a function import or a key lookup on a navigation property, which is not allowed."
                    )));
                }
                let op = match self.peek() {
                    Some(Tok::Word(o)) => CmpOp::from_word(o),
                    _ => None,
                }
                .ok_or_else(|| {
                    self.err("a comparison operator (eq, ne, gt, ge, lt, le) expected")
                })?;
                self.at += 1;
                let value = match self.peek() {
                    Some(Tok::Lit(l)) => l.clone(),
                    _ => return Err(self.err("a literal expected")),
                };
                self.at += 1;
                self.comparisons += 1;
                if self.comparisons > MAX_COMPARISONS {
                    return Err(ODataError::new(format!(
                        "The filter has more than {MAX_COMPARISONS} comparisons."
                    )));
                }
                Ok(Filter::Cmp {
                    property: w,
                    op,
                    value,
                })
            }
            Some(Tok::Lit(_)) => Err(self.err("a property name expected, found a literal")),
            Some(Tok::Close) => Err(self.err("unexpected ')'")),
            None => Err(self.err("unexpected end of the expression")),
        }
    }
}

impl Filter {
    /// Parses a `$filter` value (already URL-decoded).
    pub fn parse(src: &str) -> Result<Filter, ODataError> {
        let toks = lex(src)?;
        let mut p = Parser {
            toks,
            at: 0,
            src,
            comparisons: 0,
        };
        let f = p.or(0)?;
        if p.at != p.toks.len() {
            return Err(p.err("unexpected token after the end of the expression"));
        }
        Ok(f)
    }
}

/// The type of a filterable property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Free text, compared case-insensitively.
    Str,
    /// An enum; a literal must name one of the members (case-insensitive).
    Enum(&'static [&'static str]),
    /// A timestamp (`DateTimeOffset`).
    Time,
    /// An integer.
    Int,
}

impl Kind {
    fn edm_type(self) -> &'static str {
        match self {
            Kind::Str => "Edm.String",
            Kind::Enum(_) => "Edm.Enum",
            Kind::Time => "Edm.DateTimeOffset",
            Kind::Int => "Edm.Int64",
        }
    }
}

/// A filterable property of an entity.
#[derive(Debug, Clone, Copy)]
pub struct Prop<K: 'static> {
    /// Accepted names (first is canonical), matched case-insensitively.
    pub names: &'static [&'static str],
    /// Its type.
    pub kind: Kind,
    /// What the caller's lookup receives.
    pub key: K,
}

/// The filterable properties of an entity.
#[derive(Debug, Clone, Copy)]
pub struct Schema<K: 'static> {
    /// Entity type name for messages, e.g. `microsoft.graph.security.alert`.
    pub entity: &'static str,
    /// The properties `$filter` may name.
    pub props: &'static [Prop<K>],
}

/// A property's value in one row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// Text or enum member (`None` is null).
    Str(Option<&'a str>),
    /// Timestamp.
    Time(Option<DateTime<Utc>>),
    /// Integer.
    Int(Option<i64>),
}

#[derive(Debug, Clone, PartialEq)]
enum Typed {
    Str(String),
    Time(DateTime<Utc>),
    Int(i64),
    Null,
}

#[derive(Debug, Clone, PartialEq)]
enum Node<K> {
    All(Vec<Node<K>>),
    Any(Vec<Node<K>>),
    Cmp { key: K, op: CmpOp, value: Typed },
}

/// A filter checked against a [`Schema`], ready to evaluate rows.
#[derive(Debug, Clone, PartialEq)]
pub struct BoundFilter<K> {
    node: Node<K>,
}

fn incompatible(kind: Kind, lit: &Literal, op: CmpOp) -> ODataError {
    ODataError::new(format!(
        "A binary operator with incompatible types was detected. Found operand types '{}' and '{}' for operator kind '{}'.",
        kind.edm_type(),
        lit.edm_type(),
        op.name()
    ))
}

fn bind_node<K: Copy>(f: &Filter, schema: &Schema<K>) -> Result<Node<K>, ODataError> {
    Ok(match f {
        Filter::All(parts) => Node::All(
            parts
                .iter()
                .map(|p| bind_node(p, schema))
                .collect::<Result<_, _>>()?,
        ),
        Filter::Any(parts) => Node::Any(
            parts
                .iter()
                .map(|p| bind_node(p, schema))
                .collect::<Result<_, _>>()?,
        ),
        Filter::Cmp {
            property,
            op,
            value,
        } => {
            let prop = schema
                .props
                .iter()
                .find(|p| p.names.iter().any(|n| n.eq_ignore_ascii_case(property)))
                .ok_or_else(|| {
                    ODataError::new(format!(
                        "Could not find a property named '{property}' on type '{}'.",
                        schema.entity
                    ))
                })?;
            let typed = match (prop.kind, value) {
                (_, Literal::Null) => Typed::Null,
                (Kind::Str, Literal::Str(s)) => Typed::Str(s.clone()),
                (Kind::Enum(members), Literal::Str(s)) => {
                    if !members.is_empty() && !members.iter().any(|m| m.eq_ignore_ascii_case(s)) {
                        return Err(ODataError::new(format!(
                            "The string '{s}' is not a valid enumeration type constant."
                        )));
                    }
                    Typed::Str(s.clone())
                }
                (Kind::Time, Literal::Time(t)) => Typed::Time(*t),
                (Kind::Time, Literal::Str(s)) => match parse_timestamp(s) {
                    Some(t) => Typed::Time(t),
                    None => return Err(incompatible(prop.kind, value, *op)),
                },
                (Kind::Int, Literal::Int(n)) => Typed::Int(*n),
                _ => return Err(incompatible(prop.kind, value, *op)),
            };
            Node::Cmp {
                key: prop.key,
                op: *op,
                value: typed,
            }
        }
    })
}

fn cmp_ignore_case(a: &str, b: &str) -> std::cmp::Ordering {
    a.chars()
        .flat_map(char::to_lowercase)
        .cmp(b.chars().flat_map(char::to_lowercase))
}

fn eval<'a, K: Copy>(node: &Node<K>, get: &impl Fn(K) -> Value<'a>) -> bool {
    match node {
        Node::All(parts) => parts.iter().all(|p| eval(p, get)),
        Node::Any(parts) => parts.iter().any(|p| eval(p, get)),
        Node::Cmp { key, op, value } => {
            let ordering = match (get(*key), value) {
                // OData null semantics: only eq/ne compare with null; ordering is false.
                (Value::Str(None) | Value::Time(None) | Value::Int(None), Typed::Null) => {
                    return *op == CmpOp::Eq;
                }
                (_, Typed::Null) => return *op == CmpOp::Ne,
                (Value::Str(None) | Value::Time(None) | Value::Int(None), _) => {
                    return *op == CmpOp::Ne;
                }
                (Value::Str(Some(a)), Typed::Str(b)) => cmp_ignore_case(a, b),
                (Value::Time(Some(a)), Typed::Time(b)) => a.cmp(b),
                (Value::Int(Some(a)), Typed::Int(b)) => a.cmp(b),
                // A lookup answering with another type than the schema says: no match.
                _ => return false,
            };
            op.holds(ordering)
        }
    }
}

impl<K: Copy> BoundFilter<K> {
    /// Checks `filter` against `schema`: property names, literal types, enum members.
    pub fn bind(filter: &Filter, schema: &Schema<K>) -> Result<Self, ODataError> {
        Ok(BoundFilter {
            node: bind_node(filter, schema)?,
        })
    }

    /// Parses and binds a `$filter` value in one step.
    pub fn parse(src: &str, schema: &Schema<K>) -> Result<Self, ODataError> {
        Self::bind(&Filter::parse(src)?, schema)
    }

    /// Whether a row matches; `get` answers a property's value in the row.
    pub fn matches<'a>(&self, get: impl Fn(K) -> Value<'a>) -> bool {
        eval(&self.node, &get)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum P {
        Status,
        Updated,
        Owner,
        Incident,
    }

    const SCHEMA: Schema<P> = Schema {
        entity: "test.alert",
        props: &[
            Prop {
                names: &["status"],
                kind: Kind::Enum(&["new", "inProgress", "resolved"]),
                key: P::Status,
            },
            Prop {
                names: &["lastUpdateDateTime"],
                kind: Kind::Time,
                key: P::Updated,
            },
            Prop {
                names: &["assignedTo", "asssignedTo"],
                kind: Kind::Str,
                key: P::Owner,
            },
            Prop {
                names: &["incidentId"],
                kind: Kind::Int,
                key: P::Incident,
            },
        ],
    };

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("valid")
            .with_timezone(&Utc)
    }

    struct Row {
        status: &'static str,
        updated: DateTime<Utc>,
        owner: Option<&'static str>,
        incident: i64,
    }

    fn row() -> Row {
        Row {
            status: "inProgress",
            updated: t("2024-01-01T00:00:00.1234567Z"),
            owner: None,
            incident: 7587,
        }
    }

    fn holds(filter: &str, r: &Row) -> bool {
        let f = BoundFilter::parse(filter, &SCHEMA).expect("filter binds");
        f.matches(|k| match k {
            P::Status => Value::Str(Some(r.status)),
            P::Updated => Value::Time(Some(r.updated)),
            P::Owner => Value::Str(r.owner),
            P::Incident => Value::Int(Some(r.incident)),
        })
    }

    #[test]
    fn plus_in_the_raw_query_is_a_space_and_percent_2b_is_a_plus() {
        let pairs = query_pairs(Some(
            "$filter=lastUpdateTime+ge+2019-11-22T00:00:00%2B01:00&x=a%20b",
        ));
        assert_eq!(
            pairs,
            vec![
                (
                    "$filter".to_string(),
                    "lastUpdateTime ge 2019-11-22T00:00:00+01:00".to_string()
                ),
                ("x".to_string(), "a b".to_string()),
            ]
        );
    }

    #[test]
    fn encoded_queries_decode_to_the_same_pairs_and_keep_the_dollar() {
        let pairs = vec![
            ("$filter".to_string(), "status eq 'it''s + new'".to_string()),
            ("$top".to_string(), "10".to_string()),
        ];
        let q = encode_query(&pairs);
        assert!(q.starts_with("$filter="), "{q}");
        assert_eq!(query_pairs(Some(&q)), pairs);
    }

    #[test]
    fn system_options_refuse_repeats_and_unsupported_options() {
        let pairs = query_pairs(Some("$top=1&$TOP=2"));
        assert!(SystemOptions::from_pairs(&pairs, &["$top"]).is_err());
        let pairs = query_pairs(Some("$orderby=x&other=1"));
        let e = SystemOptions::from_pairs(&pairs, &["$top"]).expect_err("refused");
        assert!(e.0.contains("$orderby"), "{e}");
        let pairs = query_pairs(Some("$Top=5&other=1"));
        let o = SystemOptions::from_pairs(&pairs, &["$top"]).expect("ok");
        assert_eq!(o.count_option("$top"), Ok(Some(5)));
        let pairs = query_pairs(Some("$top=-1"));
        let o = SystemOptions::from_pairs(&pairs, &["$top"]).expect("ok");
        assert!(o.count_option("$top").is_err());
    }

    #[test]
    fn comparisons_and_or_and_parentheses_evaluate() {
        let r = row();
        assert!(holds("status eq 'inProgress'", &r));
        assert!(holds("status eq 'InProgress'", &r));
        assert!(!holds("status ne 'inprogress'", &r));
        assert!(holds(
            "status eq 'new' or (incidentId eq 7587 and assignedTo eq null)",
            &r
        ));
        assert!(!holds(
            "(status eq 'new' or incidentId gt 7587) and assignedTo eq null",
            &r
        ));
        assert!(holds("incidentId ge 7587 and incidentId LE 7587", &r));
        assert!(holds("assignedTo ne 'x'", &r));
        assert!(!holds("assignedTo gt 'a'", &r));
        assert!(holds("asssignedTo eq null", &r));
    }

    #[test]
    fn timestamps_compare_at_full_precision_quoted_or_not() {
        let r = row();
        assert!(holds(
            "lastUpdateDateTime gt 2024-01-01T00:00:00.1234566Z",
            &r
        ));
        assert!(!holds(
            "lastUpdateDateTime gt 2024-01-01T00:00:00.1234567Z",
            &r
        ));
        assert!(holds(
            "lastUpdateDateTime ge 2024-01-01T00:00:00.1234567Z",
            &r
        ));
        assert!(holds(
            "lastUpdateDateTime lt 2024-01-01T00:00:00.1234568Z",
            &r
        ));
        assert!(holds(
            "lastUpdateDateTime eq '2024-01-01T01:00:00.1234567+01:00'",
            &r
        ));
        assert!(holds("lastUpdateDateTime gt 2023-12-31T23:59:59", &r));
        // 2023-12-31T23:00:00-01:00 is midnight UTC, 0.1234567 s before the row's update.
        assert!(holds("lastUpdateDateTime gt 2023-12-31T23:00:00-01:00", &r));
        assert!(!holds(
            "lastUpdateDateTime lt 2024-01-01T00:00:00.1234567+00:00",
            &r
        ));
    }

    #[test]
    fn strings_unescape_doubled_quotes() {
        let f = Filter::parse("assignedTo eq 'O''Brien'").expect("parses");
        assert_eq!(
            f,
            Filter::Cmp {
                property: "assignedTo".into(),
                op: CmpOp::Eq,
                value: Literal::Str("O'Brien".into())
            }
        );
    }

    #[test]
    fn bad_filters_are_refused_with_a_message() {
        for bad in [
            "",
            "status",
            "status eq",
            "status eq 'new",
            "status eq 'new')",
            "(status eq 'new'",
            "status eq 'bogus'",
            "investigationState eq 'running'",
            "startswith(assignedTo,'a')",
            "not status eq 'new'",
            "lastUpdateDateTime gt 'yesterday'",
            "lastUpdateDateTime gt 2024-13-01T00:00:00Z",
            "incidentId eq '7'",
            "incidentId eq 1.5",
            "status eq new",
            "status eq 'new' and",
            "'new' eq status",
            "status eq 'new' xor status eq 'resolved'",
            "status eq 'new' ; drop",
        ] {
            let e = BoundFilter::parse(bad, &SCHEMA).expect_err(bad);
            assert!(!e.0.is_empty());
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let deep = format!("{}status eq 'new'{}", "(".repeat(5000), ")".repeat(5000));
        assert!(Filter::parse(&deep).is_err());
        let ok = format!("{}status eq 'new'{}", "(".repeat(10), ")".repeat(10));
        assert!(Filter::parse(&ok).is_ok());
        let long = vec!["status eq 'new'"; 5000].join(" or ");
        assert!(Filter::parse(&long).is_err());
        let fine = vec!["status eq 'new'"; 500].join(" or ");
        assert!(Filter::parse(&fine).is_ok());
    }

    #[test]
    fn random_input_never_panics() {
        let alphabet: Vec<char> =
            "()' eqnandorgtlt0123456789-:.TZ+$/_,ństatusincidentIdlastUpdateDateTime\u{0}\u{1F600}"
                .chars()
                .collect();
        let mut rng = StdRng::seed_from_u64(7);
        let r = row();
        for _ in 0..20_000 {
            let len = rng.random_range(0..60);
            let s: String = (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect();
            if let Ok(f) = BoundFilter::parse(&s, &SCHEMA) {
                let _ = f.matches(|k| match k {
                    P::Status => Value::Str(Some(r.status)),
                    P::Updated => Value::Time(None),
                    P::Owner => Value::Str(r.owner),
                    P::Incident => Value::Int(Some(r.incident)),
                });
            }
        }
        // Structured fragments too, so many inputs get past the lexer.
        let parts = [
            "status",
            "eq",
            "'new'",
            "(",
            ")",
            "and",
            "or",
            "incidentId",
            "7",
            "null",
            "2024-01-01T00:00:00Z",
            "lastUpdateDateTime",
            "gt",
            "'",
            "-",
            "''",
        ];
        for _ in 0..20_000 {
            let n = rng.random_range(0..12);
            let s = (0..n)
                .map(|_| parts[rng.random_range(0..parts.len())])
                .collect::<Vec<_>>()
                .join(" ");
            let _ = BoundFilter::parse(&s, &SCHEMA);
        }
    }
}
