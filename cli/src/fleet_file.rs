//! The file `mssp tenants import` reads: one tenant per line, as CSV with a header or as JSON
//! lines, with the values `mssp tenants add` takes (`id`, `name`, `model`, `api`, and optionally
//! `siem_region` — or `region` — and `cloud`), checked by the same parsers and rules. A bad line is reported with its number and
//! skipped; only a file whose shape cannot be read (no header, an unknown or missing column) is
//! refused as a whole.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use shared::config::Cloud;
use shared::domain::{AlertApi, AuthModel, SiemRegion, TenantId};
use shared::flows::onboarding::NewTenant;

/// Longest customer name accepted.
const MAX_NAME: usize = 256;

/// How the file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// CSV with a header row.
    Csv,
    /// One JSON object per line.
    JsonLines,
}

/// A tenant read from line `number` (1-based, counting every physical line).
#[derive(Debug, Clone)]
pub struct Line {
    /// The line number.
    pub number: usize,
    /// The tenant.
    pub tenant: NewTenant,
}

/// A line that could not be read, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// The line number.
    pub number: usize,
    /// What is wrong with it.
    pub reason: String,
}

/// What a file holds.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// How it was written.
    pub format: FileFormat,
    /// The tenants of the good lines, in file order.
    pub tenants: Vec<Line>,
    /// The bad lines.
    pub bad: Vec<BadLine>,
}

/// The format of `path`: told by its extension, else by the first character of `text` (`{`
/// starts JSON lines).
pub fn format_of(path: &Path, text: &str) -> FileFormat {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("csv") => FileFormat::Csv,
        Some("jsonl" | "ndjson" | "json") => FileFormat::JsonLines,
        _ if text
            .trim_start_matches('\u{feff}')
            .trim_start()
            .starts_with('{') =>
        {
            FileFormat::JsonLines
        }
        _ => FileFormat::Csv,
    }
}

/// Where the consent links go by default: beside `file`, `{stem}.consent-links.csv`.
pub fn default_links(file: &Path) -> PathBuf {
    let stem = file
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| !s.is_empty())
        .unwrap_or("tenants");
    file.with_file_name(format!("{stem}.consent-links.csv"))
}

/// Reads `text` (the contents of `path`). `Err` names what makes the whole file unreadable.
pub fn parse(path: &Path, text: &str) -> Result<Parsed, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let format = format_of(path, text);
    let mut parsed = Parsed {
        format,
        tenants: Vec::new(),
        bad: Vec::new(),
    };
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.trim().is_empty());
    let header = match format {
        FileFormat::Csv => {
            let (_, first) = lines
                .next()
                .ok_or("the file is empty (a CSV file starts with a header: id,name,model,api)")?;
            Some(Header::read(first)?)
        }
        FileFormat::JsonLines => None,
    };
    let mut seen: HashMap<TenantId, usize> = HashMap::new();
    for (number, line) in lines {
        let read = match &header {
            Some(h) => h.row(line),
            None => json_row(line),
        };
        let checked = read.and_then(|fields| {
            let tenant = fields.tenant()?;
            match seen.get(&tenant.id) {
                Some(first) => Err(format!("tenant {} is already on line {first}", tenant.id)),
                None => {
                    seen.insert(tenant.id.clone(), number);
                    Ok(tenant)
                }
            }
        });
        match checked {
            Ok(tenant) => parsed.tenants.push(Line { number, tenant }),
            Err(reason) => parsed.bad.push(BadLine { number, reason }),
        }
    }
    Ok(parsed)
}

/// The values of one line, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fields {
    id: String,
    name: String,
    model: String,
    api: String,
    #[serde(default, alias = "region")]
    siem_region: Option<String>,
    #[serde(default)]
    cloud: Option<String>,
}

/// A value from the file, quoted and cut short for a message.
fn shown(v: &str) -> String {
    let cut: String = v.chars().take(60).collect();
    if cut.len() < v.len() {
        format!("{cut:?}…")
    } else {
        format!("{cut:?}")
    }
}

impl Fields {
    /// The tenant, checked as `mssp tenants add` checks its arguments.
    fn tenant(self) -> Result<NewTenant, String> {
        let id = TenantId::parse(&self.id).map_err(|e| format!("id {}: {e}", shown(&self.id)))?;
        let name = self.name.trim();
        if name.is_empty() {
            return Err("name is empty".into());
        }
        if name.chars().count() > MAX_NAME {
            return Err(format!("name is longer than {MAX_NAME} characters"));
        }
        if name.chars().any(char::is_control) {
            return Err(format!("name {} holds control characters", shown(name)));
        }
        let model: AuthModel = self
            .model
            .parse()
            .map_err(|e| format!("model {}: {e}", shown(&self.model)))?;
        let api: AlertApi = self
            .api
            .parse()
            .map_err(|e| format!("api {}: {e}", shown(&self.api)))?;
        let siem_region = match self.siem_region.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(_) if api != AlertApi::Siem => {
                return Err("siem_region applies to tenants read through the siem API only".into());
            }
            Some(r) => Some(
                r.parse::<SiemRegion>()
                    .map_err(|e| format!("siem_region {}: {e}", shown(r)))?,
            ),
        };
        let cloud = match self.cloud.as_deref().map(str::trim) {
            None | Some("") => Cloud::Commercial,
            Some(c) => c
                .parse::<Cloud>()
                .map_err(|e| format!("cloud {}: {e}", shown(c)))?,
        };
        Ok(NewTenant {
            id,
            display_name: name.to_string(),
            auth_model: model,
            alert_api: api,
            cloud,
            backfill: None,
            siem_region,
        })
    }
}

fn json_row(line: &str) -> Result<Fields, String> {
    serde_json::from_str(line).map_err(|e| {
        format!(
            "not a JSON object with id, name, model, api and optionally siem_region, cloud: {e}"
        )
    })
}

/// The columns of a CSV file.
#[derive(Debug)]
struct Header {
    columns: Vec<Column>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Id,
    Name,
    Model,
    Api,
    SiemRegion,
    Cloud,
}

impl Column {
    const ALL: [(Column, &'static str); 6] = [
        (Column::Id, "id"),
        (Column::Name, "name"),
        (Column::Model, "model"),
        (Column::Api, "api"),
        (Column::SiemRegion, "siem_region"),
        (Column::Cloud, "cloud"),
    ];
}

impl Header {
    fn read(line: &str) -> Result<Header, String> {
        let names = split_csv(line).map_err(|e| format!("the header line: {e}"))?;
        let mut columns = Vec::with_capacity(names.len());
        for name in &names {
            let name = name.trim();
            let column = Column::ALL
                .iter()
                .find(|(_, n)| n.eq_ignore_ascii_case(name))
                .map(|(c, _)| *c)
                .or_else(|| {
                    name.eq_ignore_ascii_case("region")
                        .then_some(Column::SiemRegion)
                })
                .ok_or_else(|| {
                    format!(
                        "the header names a column {}; the columns are id, name, model, api, \
                         siem_region (or region), cloud",
                        shown(name)
                    )
                })?;
            if columns.contains(&column) {
                return Err(format!("the header names {} twice", shown(name)));
            }
            columns.push(column);
        }
        for (required, name) in &Column::ALL[..4] {
            if !columns.contains(required) {
                return Err(format!(
                    "the header has no {name} column (the first line names the columns: \
                     id,name,model,api and optionally siem_region,cloud)"
                ));
            }
        }
        Ok(Header { columns })
    }

    fn row(&self, line: &str) -> Result<Fields, String> {
        let values = split_csv(line)?;
        if values.len() != self.columns.len() {
            return Err(format!(
                "{} fields where the header names {}",
                values.len(),
                self.columns.len()
            ));
        }
        let mut f = Fields::default();
        for (column, value) in self.columns.iter().zip(values) {
            match column {
                Column::Id => f.id = value,
                Column::Name => f.name = value,
                Column::Model => f.model = value,
                Column::Api => f.api = value,
                Column::SiemRegion => f.siem_region = Some(value),
                Column::Cloud => f.cloud = Some(value),
            }
        }
        Ok(f)
    }
}

/// The fields of one CSV record on one line (RFC 4180 quoting: `"a, b"`, `""` for a quote;
/// a quoted field may not span lines).
fn split_csv(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut was_quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                _ => field.push(c),
            }
            continue;
        }
        match c {
            ',' => {
                fields.push(std::mem::take(&mut field));
                was_quoted = false;
            }
            '"' if field.trim().is_empty() && !was_quoted => {
                field.clear();
                quoted = true;
                was_quoted = true;
            }
            '"' => return Err("a quote inside a field that is not quoted".into()),
            _ if was_quoted && c.is_whitespace() => {}
            _ if was_quoted => return Err("text after a quoted field's closing quote".into()),
            _ => field.push(c),
        }
    }
    if quoted {
        return Err("a quoted field is not closed (a field cannot span lines)".into());
    }
    fields.push(field);
    Ok(fields)
}

/// `value` as one CSV field: quoted when it holds a comma, a quote, a line break or edge spaces.
pub fn csv_field(value: &str) -> String {
    let plain = !value.contains([',', '"', '\n', '\r']) && value.trim() == value;
    if plain {
        value.to_string()
    } else {
        format!("\"{}\"", value.replace('"', "\"\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "11111111-1111-4111-8111-111111111111";
    const B: &str = "22222222-2222-4222-8222-222222222222";

    #[test]
    fn csv_fields_follow_rfc_4180_quoting() {
        assert_eq!(
            split_csv(r#"a, "b, c" ,"say ""hi""",,d"#).expect("valid"),
            vec!["a", "b, c", "say \"hi\"", "", "d"]
        );
        assert!(split_csv(r#"a,"open"#).is_err());
        assert!(split_csv(r#"a,b"c"#).is_err());
        assert!(split_csv(r#"a,"b"c"#).is_err());
        assert_eq!(csv_field("Contoso, Ltd"), "\"Contoso, Ltd\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("plain"), "plain");
    }

    #[test]
    fn a_csv_file_reads_its_columns_by_the_header_in_any_order() {
        let text = format!(
            "\u{feff}API,id,name,model,cloud\n\
             graph,{A},\"Contoso, Ltd\",application,gcc\n\
             \n\
             mde,{B},Fabrikam,delegated-v2,\n"
        );
        let p = parse(Path::new("fleet.txt"), &text).expect("readable");
        assert_eq!(p.format, FileFormat::Csv);
        assert!(p.bad.is_empty(), "{:?}", p.bad);
        let lines: Vec<usize> = p.tenants.iter().map(|l| l.number).collect();
        assert_eq!(
            lines,
            vec![2, 4],
            "physical line numbers, blank lines counted"
        );
        let c = &p.tenants[0].tenant;
        assert_eq!(c.display_name, "Contoso, Ltd");
        assert_eq!(c.alert_api, AlertApi::Graph);
        assert_eq!(c.cloud, Cloud::Gcc);
        assert_eq!(p.tenants[1].tenant.cloud, Cloud::Commercial);
        assert_eq!(p.tenants[1].tenant.siem_region, None);
    }

    #[test]
    fn a_bad_line_fails_alone_with_its_number_and_reason() {
        let text = format!(
            "id,name,model,api,region\n\
             {A},Contoso,application,siem,eu\n\
             not-a-guid,X,application,graph,\n\
             {B},Fabrikam,delegated,mde,\n\
             {B},Fabrikam,delegated-v1,siem,mars\n\
             {B},Fabrikam,delegated-v2,mde\n\
             {A},Again,application,mde,\n\
             {B},  ,application,mde,\n\
             {B},Fabrikam,delegated-v2,mde,uk\n\
             {B},Fabrikam,delegated-v1,siem,UK\n"
        );
        let p = parse(Path::new("fleet.csv"), &text).expect("readable");
        let bad: Vec<(usize, &str)> = p
            .bad
            .iter()
            .map(|b| (b.number, b.reason.as_str()))
            .collect();
        let expected = [
            (3, "GUID"),
            (4, "delegated-v1"),
            (5, "siem_region \"mars\""),
            (6, "4 fields"),
            (7, "line 2"),
            (8, "name"),
            (9, "siem API only"),
        ];
        assert_eq!(bad.len(), expected.len(), "{bad:?}");
        for ((line, reason), (want_line, says)) in bad.iter().zip(expected) {
            assert!(
                *line == want_line && reason.contains(says),
                "line {want_line} should say {says:?}: {bad:?}"
            );
        }
        let good: Vec<usize> = p.tenants.iter().map(|l| l.number).collect();
        assert_eq!(good, vec![2, 10]);
        assert_eq!(p.tenants[0].tenant.siem_region, Some(SiemRegion::Eu));
        assert_eq!(p.tenants[1].tenant.siem_region, Some(SiemRegion::Uk));
    }

    #[test]
    fn json_lines_are_told_by_extension_or_first_character() {
        let text = format!(
            "{{\"id\":\"{A}\",\"name\":\"Contoso\",\"model\":\"application\",\"api\":\"graph\"}}\n\
             {{\"id\":\"{B}\",\"name\":\"Fabrikam\",\"model\":\"application\",\"api\":\"siem\",\"siem_region\":\"us\",\"cloud\":\"dod\"}}\n\
             {{\"id\":\"{B}\",\"nme\":\"typo\"}}\n\
             not json\n"
        );
        for path in ["fleet.jsonl", "fleet.ndjson", "fleet"] {
            let p = parse(Path::new(path), &text).expect("readable");
            assert_eq!(p.format, FileFormat::JsonLines, "{path}");
            assert_eq!(p.tenants.len(), 2);
            assert_eq!(p.tenants[1].tenant.cloud, Cloud::Dod);
            assert_eq!(
                p.bad.iter().map(|b| b.number).collect::<Vec<_>>(),
                vec![3, 4]
            );
        }
        assert_eq!(
            format_of(Path::new("fleet.csv"), "{"),
            FileFormat::Csv,
            "the extension wins"
        );
    }

    #[test]
    fn a_file_without_a_usable_header_is_refused_whole() {
        for (text, says) in [
            ("", "empty"),
            ("id,name,model\n", "api"),
            ("id,name,model,api,colour\n", "colour"),
            ("id,name,model,api,id\n", "twice"),
        ] {
            let e = parse(Path::new("f.csv"), text).expect_err(text);
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn links_go_beside_the_input_by_default() {
        assert_eq!(
            default_links(Path::new("/srv/fleet.csv")),
            PathBuf::from("/srv/fleet.consent-links.csv")
        );
        assert_eq!(
            default_links(Path::new("fleet")),
            PathBuf::from("fleet.consent-links.csv")
        );
    }
}
