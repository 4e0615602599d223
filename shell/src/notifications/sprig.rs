//! The Sprig template functions notification templates use (Sprig's `TxtFuncMap`, as
//! notifications-engine registers it, without `env` and `expandenv`), for the Go template
//! engine (`gotmpl`).
//!
//! Covered: strings (`upper`, `lower`, `title`, `trim*`, `trunc`, `replace`, `contains`,
//! `hasPrefix`, `quote`, `indent`, `nindent`, `join`, `splitList`, `repeat`, `substr`, …),
//! integer and float arithmetic (`add`, `sub`, `mul`, `div`, `mod`, `max`, `min`, `add1`,
//! `addf`, …), defaults (`default`, `empty`, `coalesce`, `ternary`), JSON and base64
//! (`toJson`, `toPrettyJson`, `fromJson`, `b64enc`, `b64dec`, `sha1sum`), lists and dicts
//! (`list`, `first`, `last`, `rest`, `append`, `has`, `uniq`, `dict`, `get`, `hasKey`,
//! `keys`, `pick`, `omit`), conversions (`int`, `int64`, `float64`, `atoi`, `toString`),
//! regular expressions (`regexMatch`, `regexFind`, `regexReplaceAll`) and time (`now`,
//! `date`, `unixEpoch`). Times are RFC 3339 strings (Go's are `time.Time` values): `date`
//! takes one, or Unix seconds, and a Go layout (`"2006-01-02 15:04"`).

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use base64::Engine;
use gotmpl::{FuncMap, TemplateError, Value};
use sha1::Digest;

type Result<T> = std::result::Result<T, TemplateError>;

fn err(msg: impl Into<String>) -> TemplateError {
    TemplateError::Exec(msg.into())
}

/// The functions, built once.
pub fn funcs() -> FuncMap {
    static FUNCS: LazyLock<FuncMap> = LazyLock::new(build);
    FUNCS.clone()
}

fn s(v: impl Into<String>) -> Value {
    Value::String(Arc::from(v.into()))
}

/// A value as Sprig's `toString` / Go's `%v` shows it (nil is the empty string for strings).
pub fn text(v: &Value) -> String {
    match v {
        Value::Nil => String::new(),
        other => other.to_string(),
    }
}

/// Sprig's `toInt64` (spf13/cast): numbers truncate, strings parse (0 when they do not),
/// booleans are 0 or 1.
pub fn int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        Value::Uint(u) => i64::try_from(*u).unwrap_or(i64::MAX),
        Value::Float(f) => *f as i64,
        Value::Bool(b) => i64::from(*b),
        Value::String(s) => {
            let t = s.trim();
            t.parse::<i64>().ok().or_else(|| t.parse::<f64>().ok().map(|f| f as i64)).unwrap_or(0)
        }
        _ => 0,
    }
}

fn float(v: &Value) -> f64 {
    match v {
        Value::Int(i) => *i as f64,
        Value::Uint(u) => *u as f64,
        Value::Float(f) => *f,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::String(s) => s.trim().parse().unwrap_or(0.0),
        _ => 0.0,
    }
}

/// Go's zero values are empty.
pub fn empty(v: &Value) -> bool {
    !v.is_truthy()
}

fn arg(args: &[Value], i: usize, name: &str) -> Result<Value> {
    args.get(i).cloned().ok_or_else(|| err(format!("{name}: missing argument {}", i + 1)))
}

fn str_arg(args: &[Value], i: usize, name: &str) -> Result<String> {
    arg(args, i, name).map(|v| text(&v))
}

fn list_arg(args: &[Value], i: usize, name: &str) -> Result<Vec<Value>> {
    match arg(args, i, name)? {
        Value::List(l) => Ok(l.to_vec()),
        Value::Nil => Ok(Vec::new()),
        other => Err(err(format!("{name}: expected a list, got {}", other.type_name()))),
    }
}

fn map_arg(args: &[Value], i: usize, name: &str) -> Result<BTreeMap<Arc<str>, Value>> {
    match arg(args, i, name)? {
        Value::Map(m) => Ok((*m).clone()),
        Value::Nil => Ok(BTreeMap::new()),
        other => Err(err(format!("{name}: expected a dict, got {}", other.type_name()))),
    }
}

fn list(items: Vec<Value>) -> Value {
    Value::List(Arc::from(items))
}

fn dict(m: BTreeMap<Arc<str>, Value>) -> Value {
    Value::Map(Arc::new(m))
}

/// A template value as JSON.
pub fn to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Nil | Value::Function(_) => serde_json::Value::Null,
        Value::Bool(b) => (*b).into(),
        Value::Int(i) => (*i).into(),
        Value::Uint(u) => (*u).into(),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, serde_json::Value::Number),
        Value::String(s) => s.to_string().into(),
        Value::List(l) => l.iter().map(to_json).collect(),
        Value::Map(m) => m.iter().map(|(k, v)| (k.to_string(), to_json(v))).collect::<serde_json::Map<_, _>>().into(),
    }
}

/// JSON as a template value.
pub fn from_json(v: &serde_json::Value) -> Value {
    gotmpl::to_value(v).unwrap_or(Value::Nil)
}

type F = fn(&[Value]) -> Result<Value>;

fn build() -> FuncMap {
    let mut m: BTreeMap<&'static str, F> = BTreeMap::new();
    // Strings.
    m.insert("upper", |a| Ok(s(str_arg(a, 0, "upper")?.to_uppercase())));
    m.insert("lower", |a| Ok(s(str_arg(a, 0, "lower")?.to_lowercase())));
    m.insert("title", |a| Ok(s(title(&str_arg(a, 0, "title")?))));
    m.insert("untitle", |a| {
        let t = str_arg(a, 0, "untitle")?;
        Ok(s(t.split(' ').map(lower_first).collect::<Vec<_>>().join(" ")))
    });
    m.insert("trim", |a| Ok(s(str_arg(a, 0, "trim")?.trim())));
    m.insert("trimAll", |a| {
        let cut: Vec<char> = str_arg(a, 0, "trimAll")?.chars().collect();
        Ok(s(str_arg(a, 1, "trimAll")?.trim_matches(|c| cut.contains(&c))))
    });
    m.insert("trimPrefix", |a| {
        let (p, t) = (str_arg(a, 0, "trimPrefix")?, str_arg(a, 1, "trimPrefix")?);
        Ok(s(t.strip_prefix(p.as_str()).unwrap_or(&t)))
    });
    m.insert("trimSuffix", |a| {
        let (p, t) = (str_arg(a, 0, "trimSuffix")?, str_arg(a, 1, "trimSuffix")?);
        Ok(s(t.strip_suffix(p.as_str()).unwrap_or(&t)))
    });
    m.insert("trunc", |a| {
        let (n, t) = (int(&arg(a, 0, "trunc")?), str_arg(a, 1, "trunc")?);
        let len = t.chars().count() as i64;
        Ok(s(if n >= 0 {
            t.chars().take(n as usize).collect::<String>()
        } else {
            t.chars().skip((len + n).max(0) as usize).collect()
        }))
    });
    m.insert("abbrev", |a| {
        let (n, t) = (int(&arg(a, 0, "abbrev")?), str_arg(a, 1, "abbrev")?);
        if n < 4 || t.chars().count() as i64 <= n {
            return Ok(s(t));
        }
        Ok(s(format!("{}...", t.chars().take((n - 3) as usize).collect::<String>())))
    });
    m.insert("repeat", |a| Ok(s(str_arg(a, 1, "repeat")?.repeat(int(&arg(a, 0, "repeat")?).max(0) as usize))));
    m.insert("substr", |a| {
        let (start, end, t) = (int(&arg(a, 0, "substr")?), int(&arg(a, 1, "substr")?), str_arg(a, 2, "substr")?);
        let chars: Vec<char> = t.chars().collect();
        let start = start.clamp(0, chars.len() as i64) as usize;
        let end = if end < 0 || end as usize > chars.len() { chars.len() } else { end as usize };
        Ok(s(chars.get(start..end.max(start)).map(|c| c.iter().collect::<String>()).unwrap_or_default()))
    });
    m.insert("nospace", |a| Ok(s(str_arg(a, 0, "nospace")?.chars().filter(|c| !c.is_whitespace()).collect::<String>())));
    m.insert("contains", |a| Ok(Value::Bool(str_arg(a, 1, "contains")?.contains(&str_arg(a, 0, "contains")?))));
    m.insert("hasPrefix", |a| Ok(Value::Bool(str_arg(a, 1, "hasPrefix")?.starts_with(&str_arg(a, 0, "hasPrefix")?))));
    m.insert("hasSuffix", |a| Ok(Value::Bool(str_arg(a, 1, "hasSuffix")?.ends_with(&str_arg(a, 0, "hasSuffix")?))));
    m.insert("quote", |a| Ok(s(a.iter().filter(|v| !matches!(v, Value::Nil)).map(|v| format!("{:?}", text(v))).collect::<Vec<_>>().join(" "))));
    m.insert("squote", |a| Ok(s(a.iter().filter(|v| !matches!(v, Value::Nil)).map(|v| format!("'{}'", text(v))).collect::<Vec<_>>().join(" "))));
    m.insert("cat", |a| Ok(s(a.iter().filter(|v| !matches!(v, Value::Nil)).map(text).collect::<Vec<_>>().join(" "))));
    m.insert("indent", |a| Ok(s(indent(int(&arg(a, 0, "indent")?), &str_arg(a, 1, "indent")?))));
    m.insert("nindent", |a| Ok(s(format!("\n{}", indent(int(&arg(a, 0, "nindent")?), &str_arg(a, 1, "nindent")?)))));
    m.insert("replace", |a| {
        let (old, new, t) = (str_arg(a, 0, "replace")?, str_arg(a, 1, "replace")?, str_arg(a, 2, "replace")?);
        Ok(s(t.replace(&old, &new)))
    });
    m.insert("plural", |a| {
        let (one, many, n) = (str_arg(a, 0, "plural")?, str_arg(a, 1, "plural")?, int(&arg(a, 2, "plural")?));
        Ok(s(if n == 1 { one } else { many }))
    });
    m.insert("join", |a| {
        let sep = str_arg(a, 0, "join")?;
        let items = match arg(a, 1, "join")? {
            Value::List(l) => l.iter().map(text).collect::<Vec<_>>(),
            other => vec![text(&other)],
        };
        Ok(s(items.join(&sep)))
    });
    m.insert("splitList", |a| {
        let (sep, t) = (str_arg(a, 0, "splitList")?, str_arg(a, 1, "splitList")?);
        Ok(list(t.split(sep.as_str()).map(s).collect()))
    });
    m.insert("split", |a| {
        let (sep, t) = (str_arg(a, 0, "split")?, str_arg(a, 1, "split")?);
        Ok(dict(t.split(sep.as_str()).enumerate().map(|(i, p)| (Arc::from(format!("_{i}")), s(p))).collect()))
    });
    m.insert("toString", |a| Ok(s(text(&arg(a, 0, "toString")?))));
    m.insert("toStrings", |a| Ok(list(list_arg(a, 0, "toStrings")?.iter().map(|v| s(text(v))).collect())));
    // Integers (Sprig converts every argument with toInt64) and floats.
    m.insert("add", |a| Ok(Value::Int(a.iter().map(int).fold(0i64, i64::wrapping_add))));
    m.insert("add1", |a| Ok(Value::Int(int(&arg(a, 0, "add1")?).wrapping_add(1))));
    m.insert("sub", |a| Ok(Value::Int(int(&arg(a, 0, "sub")?).wrapping_sub(int(&arg(a, 1, "sub")?)))));
    m.insert("mul", |a| Ok(Value::Int(a.iter().map(int).fold(1i64, i64::wrapping_mul))));
    m.insert("div", |a| {
        let d = int(&arg(a, 1, "div")?);
        if d == 0 {
            return Err(err("div: integer divide by zero"));
        }
        Ok(Value::Int(int(&arg(a, 0, "div")?).wrapping_div(d)))
    });
    m.insert("mod", |a| {
        let d = int(&arg(a, 1, "mod")?);
        if d == 0 {
            return Err(err("mod: integer divide by zero"));
        }
        Ok(Value::Int(int(&arg(a, 0, "mod")?).wrapping_rem(d)))
    });
    m.insert("max", |a| Ok(Value::Int(a.iter().map(int).max().unwrap_or(0))));
    m.insert("min", |a| Ok(Value::Int(a.iter().map(int).min().unwrap_or(0))));
    m.insert("addf", |a| Ok(Value::Float(a.iter().map(float).sum())));
    m.insert("subf", |a| Ok(Value::Float(a.iter().skip(1).fold(a.first().map_or(0.0, float), |acc, v| acc - float(v)))));
    m.insert("mulf", |a| Ok(Value::Float(a.iter().map(float).product())));
    m.insert("divf", |a| Ok(Value::Float(a.iter().skip(1).fold(a.first().map_or(0.0, float), |acc, v| acc / float(v)))));
    m.insert("floor", |a| Ok(Value::Float(float(&arg(a, 0, "floor")?).floor())));
    m.insert("ceil", |a| Ok(Value::Float(float(&arg(a, 0, "ceil")?).ceil())));
    m.insert("round", |a| {
        let x = float(&arg(a, 0, "round")?);
        let p = a.get(1).map_or(0, int).clamp(0, 15) as i32;
        let f = 10f64.powi(p);
        Ok(Value::Float((x * f).round() / f))
    });
    m.insert("int", |a| Ok(Value::Int(int(&arg(a, 0, "int")?))));
    m.insert("int64", |a| Ok(Value::Int(int(&arg(a, 0, "int64")?))));
    m.insert("atoi", |a| Ok(Value::Int(str_arg(a, 0, "atoi")?.trim().parse().unwrap_or(0))));
    m.insert("float64", |a| Ok(Value::Float(float(&arg(a, 0, "float64")?))));
    // Defaults.
    m.insert("default", |a| {
        let d = arg(a, 0, "default")?;
        Ok(match a.get(1) {
            Some(v) if !empty(v) => v.clone(),
            _ => d,
        })
    });
    m.insert("empty", |a| Ok(Value::Bool(a.first().is_none_or(empty))));
    m.insert("coalesce", |a| Ok(a.iter().find(|v| !empty(v)).cloned().unwrap_or(Value::Nil)));
    m.insert("ternary", |a| {
        let (t, f, c) = (arg(a, 0, "ternary")?, arg(a, 1, "ternary")?, arg(a, 2, "ternary")?);
        Ok(if c.is_truthy() { t } else { f })
    });
    m.insert("fail", |a| Err(err(str_arg(a, 0, "fail")?)));
    // Encodings.
    m.insert("toJson", |a| Ok(s(to_json(&arg(a, 0, "toJson")?).to_string())));
    m.insert("toRawJson", |a| Ok(s(to_json(&arg(a, 0, "toRawJson")?).to_string())));
    m.insert("toPrettyJson", |a| Ok(s(serde_json::to_string_pretty(&to_json(&arg(a, 0, "toPrettyJson")?)).unwrap_or_default())));
    m.insert("fromJson", |a| {
        let t = str_arg(a, 0, "fromJson")?;
        Ok(serde_json::from_str::<serde_json::Value>(&t).map(|v| from_json(&v)).unwrap_or_else(|_| dict(BTreeMap::new())))
    });
    m.insert("b64enc", |a| Ok(s(base64::engine::general_purpose::STANDARD.encode(str_arg(a, 0, "b64enc")?))));
    m.insert("b64dec", |a| {
        let t = str_arg(a, 0, "b64dec")?;
        Ok(s(match base64::engine::general_purpose::STANDARD.decode(t.as_bytes()) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) => e.to_string(),
        }))
    });
    m.insert("sha1sum", |a| {
        let digest = sha1::Sha1::digest(str_arg(a, 0, "sha1sum")?.as_bytes());
        Ok(s(digest.iter().map(|b| format!("{b:02x}")).collect::<String>()))
    });
    // Lists.
    m.insert("list", |a| Ok(list(a.to_vec())));
    m.insert("first", |a| Ok(list_arg(a, 0, "first")?.first().cloned().unwrap_or(Value::Nil)));
    m.insert("last", |a| Ok(list_arg(a, 0, "last")?.last().cloned().unwrap_or(Value::Nil)));
    m.insert("rest", |a| Ok(list(list_arg(a, 0, "rest")?.into_iter().skip(1).collect())));
    m.insert("initial", |a| {
        let mut l = list_arg(a, 0, "initial")?;
        l.pop();
        Ok(list(l))
    });
    m.insert("append", |a| {
        let mut l = list_arg(a, 0, "append")?;
        l.push(arg(a, 1, "append")?);
        Ok(list(l))
    });
    m.insert("prepend", |a| {
        let mut l = list_arg(a, 0, "prepend")?;
        l.insert(0, arg(a, 1, "prepend")?);
        Ok(list(l))
    });
    m.insert("concat", |a| {
        let mut out = Vec::new();
        for i in 0..a.len() {
            out.extend(list_arg(a, i, "concat")?);
        }
        Ok(list(out))
    });
    m.insert("reverse", |a| Ok(list(list_arg(a, 0, "reverse")?.into_iter().rev().collect())));
    m.insert("uniq", |a| {
        let mut out: Vec<Value> = Vec::new();
        for v in list_arg(a, 0, "uniq")? {
            if !out.contains(&v) {
                out.push(v);
            }
        }
        Ok(list(out))
    });
    m.insert("compact", |a| Ok(list(list_arg(a, 0, "compact")?.into_iter().filter(|v| !empty(v)).collect())));
    m.insert("has", |a| Ok(Value::Bool(list_arg(a, 1, "has")?.contains(&arg(a, 0, "has")?))));
    m.insert("sortAlpha", |a| {
        let mut l: Vec<String> = list_arg(a, 0, "sortAlpha")?.iter().map(text).collect();
        l.sort();
        Ok(list(l.into_iter().map(s).collect()))
    });
    // Dicts.
    m.insert("dict", |a| {
        let mut d = BTreeMap::new();
        for pair in a.chunks(2) {
            d.insert(Arc::from(text(&pair[0])), pair.get(1).cloned().unwrap_or_else(|| s("")));
        }
        Ok(dict(d))
    });
    m.insert("get", |a| Ok(map_arg(a, 0, "get")?.get(str_arg(a, 1, "get")?.as_str()).cloned().unwrap_or_else(|| s(""))));
    m.insert("hasKey", |a| Ok(Value::Bool(map_arg(a, 0, "hasKey")?.contains_key(str_arg(a, 1, "hasKey")?.as_str()))));
    m.insert("keys", |a| {
        let mut keys = Vec::new();
        for i in 0..a.len() {
            keys.extend(map_arg(a, i, "keys")?.keys().map(|k| s(k.to_string())));
        }
        Ok(list(keys))
    });
    m.insert("values", |a| Ok(list(map_arg(a, 0, "values")?.into_values().collect())));
    m.insert("pick", |a| {
        let d = map_arg(a, 0, "pick")?;
        let want: Vec<String> = a.get(1..).unwrap_or_default().iter().map(text).collect();
        Ok(dict(d.into_iter().filter(|(k, _)| want.iter().any(|w| w.as_str() == &**k)).collect()))
    });
    m.insert("omit", |a| {
        let d = map_arg(a, 0, "omit")?;
        let drop: Vec<String> = a.get(1..).unwrap_or_default().iter().map(text).collect();
        Ok(dict(d.into_iter().filter(|(k, _)| !drop.iter().any(|w| w.as_str() == &**k)).collect()))
    });
    // Regular expressions.
    m.insert("regexMatch", |a| Ok(Value::Bool(regex(&str_arg(a, 0, "regexMatch")?)?.is_match(&str_arg(a, 1, "regexMatch")?))));
    m.insert("regexFind", |a| {
        let t = str_arg(a, 1, "regexFind")?;
        Ok(s(regex(&str_arg(a, 0, "regexFind")?)?.find(&t).map(|m| m.as_str().to_string()).unwrap_or_default()))
    });
    m.insert("regexReplaceAll", |a| {
        let (re, t, repl) = (regex(&str_arg(a, 0, "regexReplaceAll")?)?, str_arg(a, 1, "regexReplaceAll")?, str_arg(a, 2, "regexReplaceAll")?);
        Ok(s(re.replace_all(&t, repl.as_str()).into_owned()))
    });
    // Time.
    m.insert("now", |_| Ok(s(jiff::Timestamp::now().to_string())));
    m.insert("unixEpoch", |a| Ok(s(timestamp(&arg(a, 0, "unixEpoch")?)?.as_second().to_string())));
    m.insert("date", |a| {
        let layout = str_arg(a, 0, "date")?;
        let t = timestamp(&arg(a, 1, "date")?)?;
        Ok(s(go_format(&layout, t)))
    });
    m.into_iter().map(|(k, f)| (k.to_string(), Arc::new(f) as gotmpl::ValueFunc)).collect()
}

fn title(t: &str) -> String {
    let mut out = String::with_capacity(t.len());
    let mut start = true;
    for c in t.chars() {
        if start && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = !c.is_alphanumeric();
    }
    out
}

fn lower_first(w: &str) -> String {
    let mut c = w.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

fn indent(n: i64, t: &str) -> String {
    let pad = " ".repeat(n.max(0) as usize);
    format!("{pad}{}", t.replace('\n', &format!("\n{pad}")))
}

fn regex(pattern: &str) -> Result<regex::Regex> {
    regex::Regex::new(pattern).map_err(|e| err(format!("invalid regular expression {pattern:?}: {e}")))
}

/// A time argument: an RFC 3339 string, or Unix seconds.
fn timestamp(v: &Value) -> Result<jiff::Timestamp> {
    match v {
        Value::String(t) => t.parse::<jiff::Timestamp>().map_err(|e| err(format!("cannot read the time {t:?}: {e}"))),
        Value::Int(_) | Value::Uint(_) | Value::Float(_) => {
            jiff::Timestamp::from_second(int(v)).map_err(|e| err(format!("the time {v} is out of range: {e}")))
        }
        other => Err(err(format!("expected a time (RFC 3339 or Unix seconds), got {}", other.type_name()))),
    }
}

/// Formats `t` (in UTC) with a Go layout: the reference time `Mon Jan 2 15:04:05 MST 2006`.
pub fn go_format(layout: &str, t: jiff::Timestamp) -> String {
    let dt = t.to_zoned(jiff::tz::TimeZone::UTC);
    // Longest tokens first, so `2006` is not read as `2` and `06`.
    const TOKENS: [&str; 27] = [
        "2006", "January", "Monday", "Z07:00", "-07:00", "-0700", ".000000000", ".000000", ".000", "Jan", "Mon", "MST", "002",
        "01", "02", "_2", "03", "04", "05", "06", "15", "PM", "pm", "1", "2", "3", "Z",
    ];
    let mut out = String::new();
    let mut rest = layout;
    'outer: while !rest.is_empty() {
        for tok in TOKENS {
            if let Some(after) = rest.strip_prefix(tok) {
                let piece = match tok {
                    "2006" => format!("{:04}", dt.year()),
                    "January" => dt.strftime("%B").to_string(),
                    "Monday" => dt.strftime("%A").to_string(),
                    "Z07:00" | "Z" => "Z".to_string(),
                    "-07:00" => "+00:00".to_string(),
                    "-0700" => "+0000".to_string(),
                    ".000000000" => format!(".{:09}", dt.subsec_nanosecond()),
                    ".000000" => format!(".{:06}", dt.subsec_nanosecond() / 1000),
                    ".000" => format!(".{:03}", dt.subsec_nanosecond() / 1_000_000),
                    "Jan" => dt.strftime("%b").to_string(),
                    "Mon" => dt.strftime("%a").to_string(),
                    "MST" => "UTC".to_string(),
                    "002" => format!("{:03}", dt.day_of_year()),
                    "01" => format!("{:02}", dt.month()),
                    "02" => format!("{:02}", dt.day()),
                    "_2" => format!("{:>2}", dt.day()),
                    "03" => format!("{:02}", (dt.hour() + 11) % 12 + 1),
                    "04" => format!("{:02}", dt.minute()),
                    "05" => format!("{:02}", dt.second()),
                    "06" => format!("{:02}", dt.year() % 100),
                    "15" => format!("{:02}", dt.hour()),
                    "PM" => (if dt.hour() >= 12 { "PM" } else { "AM" }).to_string(),
                    "pm" => (if dt.hour() >= 12 { "pm" } else { "am" }).to_string(),
                    "1" => dt.month().to_string(),
                    "2" => dt.day().to_string(),
                    "3" => ((dt.hour() + 11) % 12 + 1).to_string(),
                    _ => tok.to_string(),
                };
                out.push_str(&piece);
                rest = after;
                continue 'outer;
            }
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            out.push(c);
        }
        rest = chars.as_str();
    }
    out
}
