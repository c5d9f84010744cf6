//! The Terraform module gives each function exactly the environment its Rust `Config` reads: it
//! sets no variable the function does not read, sets every required one unconditionally, and
//! leaves no variable of the `Config` out of reach.
//!
//! The module's source (`infra/modules/mssp-alerts/*.tf`) is read with a small HCL reader that
//! knows the shapes the module uses: one `aws_lambda_function` resource whose `for_each` map (an
//! object literal, or `local.<name>` of one) holds each function's entry, its `environment`
//! block reading `each.value.<field>` of the entry; and for environments, object literals,
//! `merge(...)` of them, `local.<name>` references, and `{ for k, v in {...} : k => v if ... }`
//! filters, whose keys are "set when given". Any other shape fails the test, so the module stays
//! checkable.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use shared::config::deployment::{FetcherConfig, ServiceConfig};
use shared::config::{ConfigError, Env};

// --- a small HCL reader -------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// Identifier, keyword, number or traversal (`local.x`, `var.a.b`, `consent-callback`).
    Word(String),
    /// A quoted string's raw content (interpolations kept as text).
    Str(String),
    /// Punctuation or operator: `{ } ( ) [ ] = , : ? => == != && || …`.
    Op(String),
    Newline,
}

fn tokenize(src: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            ' ' | '\t' | '\r' => i += 1,
            '\n' => {
                out.push(Tok::Newline);
                i += 1;
            }
            '#' => i = skip_line(&chars, i),
            '/' if next == Some('/') => i = skip_line(&chars, i),
            '/' if next == Some('*') => {
                let rest: String = chars[i + 2..].iter().collect();
                let end = rest.find("*/").ok_or("unterminated /* comment")?;
                let skipped = &rest[..end];
                // Keep line structure: a block comment may span lines.
                out.extend(skipped.matches('\n').map(|_| Tok::Newline));
                i += 2 + skipped.chars().count() + 2;
            }
            '"' => {
                let (s, end) = read_string(&chars, i)?;
                out.push(Tok::Str(s));
                i = end;
            }
            '<' if next == Some('<') => {
                // Heredoc: <<MARKER or <<-MARKER, up to a line holding only the marker.
                let mut j = i + 2;
                if chars.get(j) == Some(&'-') {
                    j += 1;
                }
                let start = j;
                while j < chars.len() && chars[j] != '\n' {
                    j += 1;
                }
                let marker: String = chars[start..j].iter().collect::<String>().trim().to_owned();
                let rest: String = chars[j..].iter().collect();
                let mut consumed = 0;
                let mut found = false;
                for line in rest.split_inclusive('\n').skip(1) {
                    consumed += line.chars().count();
                    if line.trim() == marker {
                        found = true;
                        break;
                    }
                }
                if !found {
                    return Err(format!("unterminated heredoc {marker}"));
                }
                out.push(Tok::Str(String::new()));
                i = j + 1 + consumed;
            }
            c if c.is_ascii_alphanumeric() || c == '_' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '_' | '-' | '.'))
                {
                    i += 1;
                }
                out.push(Tok::Word(chars[start..i].iter().collect()));
            }
            _ => {
                let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
                if ["==", "!=", "=>", "<=", ">=", "&&", "||"].contains(&two.as_str()) {
                    out.push(Tok::Op(two));
                    i += 2;
                } else {
                    out.push(Tok::Op(c.to_string()));
                    i += 1;
                }
            }
        }
    }
    Ok(out)
}

fn skip_line(chars: &[char], mut i: usize) -> usize {
    while i < chars.len() && chars[i] != '\n' {
        i += 1;
    }
    i
}

/// Reads the string starting at `chars[start] == '"'`, with `${ … }` interpolations (which may
/// hold strings of their own); returns its raw content and the index after the closing quote.
fn read_string(chars: &[char], start: usize) -> Result<(String, usize), String> {
    let mut i = start + 1;
    let mut s = String::new();
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                s.extend(chars.get(i..i + 2).into_iter().flatten());
                i += 2;
            }
            '"' => return Ok((s, i + 1)),
            '$' if chars.get(i + 1) == Some(&'{') => {
                let mut depth = 0;
                while i < chars.len() {
                    match chars[i] {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                s.push('}');
                                i += 1;
                                break;
                            }
                        }
                        '"' => {
                            let (inner, end) = read_string(chars, i)?;
                            s.push_str(&format!("\"{inner}\""));
                            i = end;
                            continue;
                        }
                        _ => {}
                    }
                    s.push(chars[i]);
                    i += 1;
                }
            }
            c => {
                s.push(c);
                i += 1;
            }
        }
    }
    Err("unterminated string".into())
}

/// A block's body: attributes (name → expression tokens) and nested blocks.
#[derive(Debug, Default)]
struct Body {
    attrs: BTreeMap<String, Vec<Tok>>,
    blocks: Vec<Block>,
}

#[derive(Debug)]
struct Block {
    kind: String,
    labels: Vec<String>,
    body: Body,
}

fn is_open(t: &Tok) -> bool {
    matches!(t, Tok::Op(o) if o == "{" || o == "(" || o == "[")
}

fn is_close(t: &Tok) -> bool {
    matches!(t, Tok::Op(o) if o == "}" || o == ")" || o == "]")
}

fn op(t: Option<&Tok>, o: &str) -> bool {
    matches!(t, Some(Tok::Op(x)) if x == o)
}

/// Parses body items from `toks[*i..]` until the closing `}` (or the end, for a file).
fn parse_body(toks: &[Tok], i: &mut usize) -> Result<Body, String> {
    let mut body = Body::default();
    while *i < toks.len() {
        match &toks[*i] {
            Tok::Newline => *i += 1,
            Tok::Op(o) if o == "}" => {
                *i += 1;
                return Ok(body);
            }
            Tok::Word(name) => {
                let name = name.clone();
                *i += 1;
                if op(toks.get(*i), "=") {
                    *i += 1;
                    let start = *i;
                    let mut depth = 0usize;
                    while *i < toks.len() {
                        let t = &toks[*i];
                        if depth == 0 && *t == Tok::Newline {
                            break;
                        }
                        if is_open(t) {
                            depth += 1;
                        } else if is_close(t) {
                            if depth == 0 {
                                break;
                            }
                            depth -= 1;
                        }
                        *i += 1;
                    }
                    body.attrs.insert(name, toks[start..*i].to_vec());
                } else {
                    let mut labels = Vec::new();
                    while let Some(Tok::Str(l)) = toks.get(*i) {
                        labels.push(l.clone());
                        *i += 1;
                    }
                    if !op(toks.get(*i), "{") {
                        return Err(format!("expected {{ after block {name} {labels:?}"));
                    }
                    *i += 1;
                    let inner = parse_body(toks, i)?;
                    body.blocks.push(Block {
                        kind: name,
                        labels,
                        body: inner,
                    });
                }
            }
            other => return Err(format!("unexpected {other:?} at token {}", *i)),
        }
    }
    Ok(body)
}

/// A Terraform configuration directory: its top-level blocks, and every local.
struct Module {
    blocks: Vec<Block>,
    locals: BTreeMap<String, Vec<Tok>>,
}

impl Module {
    fn read(dir: &Path) -> Result<Module, String> {
        let mut blocks = Vec::new();
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "tf"))
            .collect();
        paths.sort();
        for path in paths {
            let src = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
            let toks = tokenize(&src).map_err(|e| format!("{}: {e}", path.display()))?;
            let mut i = 0;
            let body = parse_body(&toks, &mut i).map_err(|e| format!("{}: {e}", path.display()))?;
            blocks.extend(body.blocks);
        }
        Ok(Module::from_blocks(blocks))
    }

    fn from_blocks(blocks: Vec<Block>) -> Module {
        let mut locals = BTreeMap::new();
        for b in blocks.iter().filter(|b| b.kind == "locals") {
            locals.extend(b.body.attrs.clone());
        }
        Module { blocks, locals }
    }

    /// The one `aws_lambda_function` resource: every function has the same shape, the
    /// `for_each` map holds what sets each apart.
    fn lambda(&self) -> Result<&Block, String> {
        let all: Vec<&Block> = self
            .blocks
            .iter()
            .filter(|b| {
                b.kind == "resource" && b.labels.first().is_some_and(|l| l == "aws_lambda_function")
            })
            .collect();
        match all.as_slice() {
            [one] => Ok(one),
            _ => Err(format!(
                "expected one aws_lambda_function resource with for_each over the functions, found {}",
                all.len()
            )),
        }
    }

    /// Function name → its entry (expression tokens) in the function resource's `for_each` map.
    fn functions(&self) -> Result<BTreeMap<String, Vec<Tok>>, String> {
        let for_each = self
            .lambda()?
            .body
            .attrs
            .get("for_each")
            .ok_or("the aws_lambda_function resource has no for_each")?;
        self.object(for_each, 0)
    }

    /// The value of `local.<name>` when `expr` is that reference, `None` for any other expression.
    fn local_value(&self, expr: &[Tok]) -> Result<Option<&[Tok]>, String> {
        let [Tok::Word(w)] = trim_newlines(expr) else {
            return Ok(None);
        };
        let Some(name) = w.strip_prefix("local.") else {
            return Ok(None);
        };
        let value = self
            .locals
            .get(name)
            .ok_or_else(|| format!("no local {name}"))?;
        Ok(Some(value))
    }

    /// The items (key → value tokens) of the object literal `expr`, through `local.<name>`.
    fn object(&self, expr: &[Tok], depth: usize) -> Result<BTreeMap<String, Vec<Tok>>, String> {
        if depth > 16 {
            return Err("locals nested too deeply".into());
        }
        if let Some(value) = self.local_value(expr)? {
            return self.object(value, depth + 1);
        }
        match trim_newlines(expr) {
            [Tok::Op(open), inner @ .., Tok::Op(close)]
                if open == "{"
                    && close == "}"
                    && !matches!(trim_newlines(inner).first(), Some(Tok::Word(w)) if w == "for") =>
            {
                object_items(inner)
            }
            // { for k, v in COLLECTION : k => v [if COND] }: the collection's items (a filter
            // may drop some at apply time; the optional ocsf-exporter is one).
            [Tok::Op(open), inner @ .., Tok::Op(close)] if open == "{" && close == "}" => {
                let inner = trim_newlines(inner);
                let in_at = inner
                    .iter()
                    .position(|t| *t == Tok::Word("in".into()))
                    .ok_or("for without in")?;
                let collection = split_top(&inner[in_at + 1..], ":")
                    .first()
                    .copied()
                    .ok_or("for without :")?;
                self.object(collection, depth + 1)
            }
            other => Err(format!(
                "expected an object literal or local.NAME (the functions' map): {other:?}"
            )),
        }
    }

    /// Variable name → set always (`true`) or only when given (`false`), of the `environment`
    /// block of the function resource for the function `name`: the block's `variables`,
    /// `each.value.<field>` read from the function's entry in the `for_each` map.
    fn function_environment(&self, name: &str) -> Result<BTreeMap<String, bool>, String> {
        let entry = self
            .functions()?
            .remove(name)
            .ok_or_else(|| format!("no function {name} in the function resource's for_each map"))?;
        let env = self
            .lambda()?
            .body
            .blocks
            .iter()
            .find(|b| b.kind == "environment")
            .ok_or("the aws_lambda_function resource has no environment block")?;
        let vars = env
            .body
            .attrs
            .get("variables")
            .ok_or("environment without variables")?;
        let vars = match trim_newlines(vars) {
            [Tok::Word(w)] if w.starts_with("each.value.") => {
                let field = &w["each.value.".len()..];
                self.object(&entry, 0)?
                    .remove(field)
                    .ok_or_else(|| format!("function {name} has no {field}"))?
            }
            other => other.to_vec(),
        };
        let mut out = BTreeMap::new();
        self.keys(&vars, true, &mut out, 0)?;
        Ok(out)
    }

    /// Collects the keys of the object expression `expr` into `out`.
    fn keys(
        &self,
        expr: &[Tok],
        always: bool,
        out: &mut BTreeMap<String, bool>,
        depth: usize,
    ) -> Result<(), String> {
        if depth > 16 {
            return Err("locals nested too deeply".into());
        }
        if let Some(value) = self.local_value(expr)? {
            return self.keys(value, always, out, depth + 1);
        }
        match trim_newlines(expr) {
            [Tok::Word(f), Tok::Op(open), inner @ .., Tok::Op(close)]
                if f == "merge" && open == "(" && close == ")" =>
            {
                for arg in split_top(inner, ",") {
                    if !trim_newlines(arg).is_empty() {
                        self.keys(arg, always, out, depth + 1)?;
                    }
                }
                Ok(())
            }
            [Tok::Op(open), inner @ .., Tok::Op(close)] if open == "{" && close == "}" => {
                let inner = trim_newlines(inner);
                if matches!(inner.first(), Some(Tok::Word(w)) if w == "for") {
                    // { for k, v in COLLECTION : k => v [if COND] }
                    let in_at = inner
                        .iter()
                        .position(|t| *t == Tok::Word("in".into()))
                        .ok_or("for without in")?;
                    let rest = &inner[in_at + 1..];
                    let parts = split_top(rest, ":");
                    let collection = parts.first().ok_or("for without :")?;
                    let filtered = parts
                        .get(1)
                        .is_some_and(|p| p.iter().any(|t| *t == Tok::Word("if".into())));
                    self.keys(collection, always && !filtered, out, depth + 1)
                } else {
                    out.extend(object_items(inner)?.into_keys().map(|k| (k, always)));
                    Ok(())
                }
            }
            other => Err(format!(
                "unsupported environment expression (use literal maps, merge, local.NAME, or a for filter): {other:?}"
            )),
        }
    }
}

/// Key → value tokens of the items of an object literal's body (`inner`, between the braces).
fn object_items(inner: &[Tok]) -> Result<BTreeMap<String, Vec<Tok>>, String> {
    let mut items = BTreeMap::new();
    for item in split_items(inner) {
        match item {
            [Tok::Word(k) | Tok::Str(k), Tok::Op(eq), value @ ..] if eq == "=" || eq == ":" => {
                items.insert(k.clone(), value.to_vec());
            }
            other => return Err(format!("unsupported object item {other:?}")),
        }
    }
    Ok(items)
}

fn trim_newlines(toks: &[Tok]) -> &[Tok] {
    let start = toks
        .iter()
        .position(|t| *t != Tok::Newline)
        .unwrap_or(toks.len());
    let end = toks
        .iter()
        .rposition(|t| *t != Tok::Newline)
        .map_or(start, |e| e + 1);
    &toks[start..end]
}

/// Splits `toks` at the top-level (bracket depth 0) tokens `is_separator` accepts.
fn split_depth0(toks: &[Tok], is_separator: impl Fn(&Tok) -> bool) -> Vec<&[Tok]> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, t) in toks.iter().enumerate() {
        if is_open(t) {
            depth += 1;
        } else if is_close(t) {
            depth = depth.saturating_sub(1);
        } else if depth == 0 && is_separator(t) {
            parts.push(&toks[start..i]);
            start = i + 1;
        }
    }
    parts.push(&toks[start..]);
    parts
}

/// Splits `toks` at the top-level occurrences of the operator `sep`.
fn split_top<'a>(toks: &'a [Tok], sep: &str) -> Vec<&'a [Tok]> {
    split_depth0(toks, |t| op(Some(t), sep))
}

/// The items of an object literal's body: separated by newlines or commas at depth 0.
fn split_items(toks: &[Tok]) -> Vec<&[Tok]> {
    split_depth0(toks, |t| *t == Tok::Newline || op(Some(t), ","))
        .into_iter()
        .map(trim_newlines)
        .filter(|i| !i.is_empty())
        .collect()
}

// --- the checks ---------------------------------------------------------------------------------

fn module() -> Module {
    let dir = tests::workspace_root().join("infra/modules/mssp-alerts");
    Module::read(&dir).unwrap_or_else(|e| panic!("reading the Terraform module: {e}"))
}

/// A value `from_env` accepts for `var`.
fn placeholder(var: &str) -> &'static str {
    if var == ServiceConfig::PUBLIC_BASE_URL_VAR {
        "https://consent.example.com"
    } else if var.ends_with("_URL") {
        "https://service.example.com/x"
    } else if var == "MSSP_CLOUD" {
        "commercial"
    } else if var == ServiceConfig::SIEM_REGION_VAR {
        "eu"
    } else if var.ends_with("_CONCURRENCY") {
        "4"
    } else if var == ServiceConfig::METRICS_PER_TENANT_VAR {
        "true"
    } else if var == FetcherConfig::OUTPUT_FORMAT_VAR {
        "raw+ocsf"
    } else if var.ends_with("_LEVEL") {
        "6"
    } else {
        "placeholder"
    }
}

fn env_of<'a>(vars: impl IntoIterator<Item = &'a str>) -> Env {
    vars.into_iter().map(|v| (v, placeholder(v))).collect()
}

/// Checks the environment Terraform gives the function `resource` against the `variables` its
/// `Config` reads and its `from_env`.
fn check_function(
    resource: &str,
    variables: &[&str],
    from_env: impl Fn(&Env) -> Result<(), ConfigError>,
) {
    let tf = module()
        .function_environment(resource)
        .unwrap_or_else(|e| panic!("{resource}: {e}"));
    let read: BTreeSet<&str> = variables.iter().copied().collect();
    let set: BTreeSet<&str> = tf.keys().map(String::as_str).collect();
    let unread: Vec<_> = set.difference(&read).collect();
    assert!(
        unread.is_empty(),
        "{resource}: Terraform sets {unread:?}, which the function does not read"
    );
    let unreachable: Vec<_> = read.difference(&set).collect();
    assert!(
        unreachable.is_empty(),
        "{resource}: the function reads {unreachable:?}, which Terraform can never set"
    );
    // Required = the variables whose absence from an otherwise complete environment fails
    // `from_env` naming them.
    let always: Vec<&str> = tf
        .iter()
        .filter(|(_, a)| **a)
        .map(|(k, _)| k.as_str())
        .collect();
    from_env(&env_of(variables.iter().copied()))
        .unwrap_or_else(|e| panic!("{resource}: placeholders refused: {e}"));
    let mut required = Vec::new();
    for var in variables {
        if let Err(e) = from_env(&env_of(variables.iter().copied().filter(|v| v != var))) {
            assert_eq!(e.var(), *var, "{resource}: {e}");
            required.push(*var);
            assert!(
                always.contains(var),
                "{resource}: {var} is required but Terraform sets it only when given"
            );
        }
    }
    assert!(
        !required.is_empty(),
        "{resource}: no required variable found"
    );
    from_env(&env_of(always.iter().copied())).unwrap_or_else(|e| {
        panic!("{resource}: the variables Terraform always sets do not configure it: {e}")
    });
}

fn service_config(env: &Env) -> Result<(), ConfigError> {
    ServiceConfig::from_env(env).map(|_| ())
}

#[test]
fn terraform_gives_consent_callback_exactly_the_service_configuration() {
    check_function(
        "consent-callback",
        &ServiceConfig::VARIABLES,
        service_config,
    );
}

#[test]
fn terraform_gives_token_refresh_exactly_the_service_configuration() {
    check_function("token-refresh", &ServiceConfig::VARIABLES, service_config);
}

#[test]
fn terraform_gives_alert_fetcher_exactly_the_fetcher_configuration() {
    check_function("alert-fetcher", &FetcherConfig::variables(), |env| {
        FetcherConfig::from_env(env).map(|_| ())
    });
}

#[test]
fn terraform_gives_ocsf_exporter_exactly_the_exporter_configuration() {
    check_function(
        "ocsf-exporter",
        &ocsf_exporter::ExporterConfig::VARIABLES,
        |env| ocsf_exporter::ExporterConfig::from_env(env).map(|_| ()),
    );
}

#[test]
fn terraform_defines_exactly_the_workspace_functions() {
    // Crate = folder = binary = Terraform function name (STYLE.md habit 1).
    let dir = tests::workspace_root().join("functions");
    let crates: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let functions: BTreeSet<String> = module()
        .functions()
        .unwrap_or_else(|e| panic!("the functions' map: {e}"))
        .into_keys()
        .collect();
    assert_eq!(functions, crates);
}

#[test]
fn the_hcl_reader_follows_merge_locals_and_for_filters() {
    let src = r#"
locals {
  base = { A = "x", B = "${var.y}" }   # comment
  opt = { for k, v in {
    C = var.c == null ? null : tostring(var.c)
    "D" = jsonencode({ E = 1 })
  } : k => v if v != null }
  fns = {
    f = {
      description = "f: { not an object }"
      environment = merge(local.base, local.opt, {
        F = <<EOT
  text { with braces
EOT
      })
    }
    g-h = { environment = local.base }
  }
}
resource "aws_lambda_function" "all" {
  for_each = local.fns
  environment {
    variables = each.value.environment
  }
}
"#;
    let parse = |src: &str| {
        let toks = tokenize(src).expect("tokens");
        let mut i = 0;
        Module::from_blocks(parse_body(&toks, &mut i).expect("parse").blocks)
    };
    let m = parse(src);
    let env = m.function_environment("f").expect("environment");
    let expected: BTreeMap<String, bool> = [
        ("A", true),
        ("B", true),
        ("C", false),
        ("D", false),
        ("F", true),
    ]
    .into_iter()
    .map(|(k, a)| (k.to_owned(), a))
    .collect();
    assert_eq!(env, expected);
    let names: Vec<String> = m.functions().expect("functions").into_keys().collect();
    assert_eq!(names, ["f", "g-h"]);
    assert_eq!(m.function_environment("g-h").expect("environment").len(), 2);
    assert!(m.function_environment("g").is_err());
    // A second function resource, or one without for_each, is not the checkable shape.
    let two = format!("{src}\nresource \"aws_lambda_function\" \"other\" {{\n}}\n");
    assert!(parse(&two).function_environment("f").is_err());
    let no_for_each = src.replace("for_each = local.fns", "");
    assert!(parse(&no_for_each).function_environment("f").is_err());
}
