//! `successCondition` / `failureCondition` evaluation (Argo's `EvaluateResult` and
//! `EvalCondition`, utils/evaluate/evaluate.go).
//!
//! Conditions are written in [expr](https://expr-lang.org/); Argo runs them with Go's
//! `expr-lang/expr`, we run them with the Rust `expr-lang` crate, built without its
//! `temporal` feature so that `now()` cannot read the clock. The environment is Argo's:
//! `result` plus `asInt`, `asFloat`, `isNaN`, `isInf`, `isNil` and `default`.
//!
//! Known differences from Go's expr, all consequences of the Rust evaluator being dynamically
//! typed (Go's compiles the expression against the types of the measured value):
//! - a comparison between mismatched types is `false` rather than a compile error
//!   (`result == 'true'` against the number `1` is `false`, Argo reports `mismatched types`);
//! - an array index past the end is `nil` rather than an error, so `result[1] == nil` is
//!   `true` on a one-element result (`result[1] >= 0.5` still errors, as in Argo);
//! - error texts of the evaluator itself differ (`Invalid operands for operator >=` where Go
//!   says `invalid operation: >= (mismatched types ...)`). The `could not evaluate ...`
//!   wrapping and the texts of Argo's own functions are reproduced exactly.
//!
//! On top of Argo, expressions are screened before they are parsed (see [`check_condition`]):
//! they are limited in length and nesting, and the range operator `..` must have integer
//! literal bounds spanning at most 1 000 000 elements. Go's expr has a memory budget and a
//! growable stack; the Rust evaluator has neither, and a deeply nested or range-amplified
//! expression would abort the process instead of failing one measurement.

// The expression language's values and errors are another crate's enums: a catch-all arm
// here means "any other kind is refused", which is also right for kinds a newer expr-lang adds.
#![allow(clippy::wildcard_enum_match_arm)]

use std::panic::{catch_unwind, AssertUnwindSafe};

use expr::{Context, Environment, Program, Value as ExprValue};
use serde_json::Value;

use crate::api::{AnalysisPhase, Metric};

/// Longest expression accepted, in bytes. Real conditions are a few dozen characters.
pub const MAX_CONDITION_LEN: usize = 16 * 1024;

/// Bound on the estimated nesting of an expression (operators chained within one operand
/// count one each, an open bracket counts two). The Rust parser and evaluator recurse once
/// per level; this bound keeps them far from the end of a 2 MiB thread stack.
pub const MAX_CONDITION_NESTING: usize = 256;

/// Largest range (`a..b`) an expression may build, in elements: Go expr's default memory
/// budget.
pub const MAX_RANGE_ELEMENTS: i128 = 1_000_000;

/// Deepest JSON result converted for evaluation. `serde_json` refuses deeper documents when
/// parsing, so only a hand-built value can be deeper.
const MAX_RESULT_DEPTH: usize = 128;

/// Judges a measured `result` (JSON; `Null` when the provider returned nothing) against
/// the metric's conditions. `Err` is a measurement error with Argo's message.
///
/// | successCondition | failureCondition | outcome |
/// |---|---|---|
/// | empty | empty | Inconclusive (a deliberate divergence, see below) |
/// | set | empty | Successful if true, else Failed |
/// | empty | set | Failed if true, else Successful |
/// | set | set | Failed if failure is true, else Successful if success is true, else Inconclusive |
///
/// The success condition is evaluated first; the first error wins:
/// `could not evaluate successCondition "<expr>": <error>`, or, whenever the result is
/// `null` or an empty array, `could not evaluate successCondition "<expr>": metric result
/// is nil or empty: no data returned from the metric provider`.
pub fn evaluate_result(metric: &Metric, result: &Value) -> Result<AnalysisPhase, String> {
    // Argo tests the strings against "": an explicitly empty condition is no condition.
    let success = metric
        .success_condition
        .as_deref()
        .filter(|c| !c.is_empty());
    let failure = metric
        .failure_condition
        .as_deref()
        .filter(|c| !c.is_empty());

    let success_met = match success {
        Some(condition) => eval_condition(result, condition)
            .map_err(|err| format_eval_error(&err, "successCondition", condition, result))?,
        None => false,
    };
    let failure_met = match failure {
        Some(condition) => eval_condition(result, condition)
            .map_err(|err| format_eval_error(&err, "failureCondition", condition, result))?,
        None => false,
    };

    Ok(match (success, failure) {
        // Divergence: Argo's current code counts a measurement without conditions as
        // Successful; its documentation (and the seed walkthrough) call it Inconclusive, so
        // that a person judges the numbers. The documented behaviour is the one kept.
        (None, None) => AnalysisPhase::Inconclusive,
        (Some(_), None) if success_met => AnalysisPhase::Successful,
        (Some(_), None) => AnalysisPhase::Failed,
        (None, Some(_)) if failure_met => AnalysisPhase::Failed,
        (None, Some(_)) => AnalysisPhase::Successful,
        (Some(_), Some(_)) if failure_met => AnalysisPhase::Failed,
        (Some(_), Some(_)) if success_met => AnalysisPhase::Successful,
        (Some(_), Some(_)) => AnalysisPhase::Inconclusive,
    })
}

/// Whether a condition expression compiles; `Err` names what is wrong. Nothing is
/// evaluated: an unknown variable or function is only found when the condition runs.
///
/// Besides syntax, this rejects what the Rust evaluator cannot run safely (longer than
/// [`MAX_CONDITION_LEN`], nested deeper than [`MAX_CONDITION_NESTING`], a range `..`
/// without small integer literal bounds); Argo accepts those.
pub fn check_condition(expression: &str) -> Result<(), String> {
    compile_condition(expression).map(|_| ())
}

/// Evaluates one condition against `result` (Argo's `EvalCondition`): `Ok` with the
/// boolean outcome, `Err` with the bare evaluation error (not yet wrapped in
/// `could not evaluate ...`; [`evaluate_result`] does that).
pub fn eval_condition(result: &Value, condition: &str) -> Result<bool, String> {
    let program = compile_condition(condition)?;
    let value = json_to_expr(result, 0)?;
    let env = argo_environment(&value);
    let mut ctx = Context::default();
    ctx.insert("result", value.clone());
    // Argo recovers from panics inside the evaluator; so do we. None is known (the inputs
    // that made the evaluator panic are rejected by `screen` before this point); this is
    // the last line of defence for the "never panics" promise of the core.
    let output = catch_unwind(AssertUnwindSafe(|| env.run(&program, &ctx)))
        .map_err(|_| "evaluation logic panicked".to_string())?
        .map_err(|err| err.to_string())?;
    match output {
        ExprValue::Bool(b) => Ok(b),
        other => Err(format!("expected bool, but got {}", go_type_name(&other))),
    }
}

/// Argo's `formatEvalError`: a nil or empty result hides whatever went wrong behind the
/// "no data" message, because that is nearly always the cause (`result[0]` on `[]`).
fn format_eval_error(err: &str, condition_type: &str, expression: &str, result: &Value) -> String {
    if is_nil_or_empty(result) {
        format!(
            "could not evaluate {condition_type} \"{expression}\": metric result is nil or empty: no data returned from the metric provider"
        )
    } else {
        format!("could not evaluate {condition_type} \"{expression}\": {err}")
    }
}

/// Argo's `isNilOrEmpty`: nil, or a slice of length 0. An empty map or string is data.
fn is_nil_or_empty(result: &Value) -> bool {
    match result {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        Value::Bool(_) | Value::Number(_) | Value::String(_) | Value::Object(_) => false,
    }
}

fn compile_condition(expression: &str) -> Result<Program, String> {
    let expression = closure_member_shorthand(expression);
    screen(&expression)?;
    expr::compile(&expression).map_err(|err| describe_compile_error(&expression, &err))
}

/// expr's shorthand for a member of a closure's element: `{.value > 1}` is `{#.value > 1}`
/// (Argo's SkyWalking example, `all(result.x, {asFloat(.value) >= 9900})`). The Rust
/// evaluator only knows `#.value`, so a `.` that starts an operand (not a member access
/// after a name, `)`, `]` or a literal, not `?.`, `..` or a number's point) gets its `#`.
fn closure_member_shorthand(expression: &str) -> std::borrow::Cow<'_, str> {
    let bytes = expression.as_bytes();
    let mut inserts = Vec::new();
    let mut quote: Option<u8> = None;
    let mut prev: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if let Some(q) = quote {
            if c == b'\\' && q != b'`' {
                i += 2;
                continue;
            }
            if c == q {
                quote = None;
                prev = Some(c);
            }
            i += 1;
            continue;
        }
        match c {
            b'\'' | b'"' | b'`' => quote = Some(c),
            b'.' => {
                let starts_name = bytes.get(i + 1).is_some_and(|n| n.is_ascii_alphabetic() || *n == b'_');
                let operand_start = prev.is_none_or(|p| !(p.is_ascii_alphanumeric() || matches!(p, b'_' | b'$' | b'#' | b')' | b']' | b'.' | b'?' | b'\'' | b'"' | b'`')));
                if starts_name && operand_start {
                    inserts.push(i);
                }
            }
            _ => {}
        }
        if !c.is_ascii_whitespace() {
            prev = Some(c);
        }
        i += 1;
    }
    if inserts.is_empty() {
        return std::borrow::Cow::Borrowed(expression);
    }
    let mut out = String::with_capacity(expression.len() + inserts.len());
    let mut last = 0;
    for at in inserts {
        out.push_str(&expression[last..at]);
        out.push('#');
        last = at;
    }
    out.push_str(&expression[last..]);
    std::borrow::Cow::Owned(out)
}

/// Condenses the parser's multi-line report (` --> 1:10`, a source excerpt, `= expected
/// conditional_if, negation_op, ...`) into one line that says where and what.
fn describe_compile_error(expression: &str, err: &expr::Error) -> String {
    match err {
        expr::Error::PestError(_) => {
            let text = err.to_string();
            let position = text
                .lines()
                .find_map(|l| l.trim_start().strip_prefix("--> "))
                .and_then(|p| {
                    let (line, col) = p.trim().split_once(':')?;
                    Some((line.parse::<usize>().ok()?, col.parse::<usize>().ok()?))
                });
            match position {
                Some((line, col)) => {
                    let rest: String = expression
                        .lines()
                        .nth(line.saturating_sub(1))
                        .unwrap_or("")
                        .chars()
                        .skip(col.saturating_sub(1))
                        .collect();
                    let rest = rest.trim_end();
                    if rest.is_empty() && line >= expression.lines().count().max(1) {
                        format!("syntax error at {line}:{col}: unexpected end of expression")
                    } else if rest.is_empty() {
                        format!("syntax error at {line}:{col}: unexpected end of line")
                    } else {
                        let near: String = rest.chars().take(20).collect();
                        format!("syntax error at {line}:{col}: unexpected {near:?}")
                    }
                }
                None => format!("syntax error: {}", text.replace('\n', " ")),
            }
        }
        other => other.to_string(),
    }
}

/// The environment Argo gives a condition. `isNil` and `default` close over the measured
/// value rather than looking at their argument, like Argo's `isNilFunc` / `defaultFunc`.
fn argo_environment(result: &ExprValue) -> Environment<'static> {
    let mut env = Environment::new();
    env.add_function("asInt", |call| {
        let arg = single_arg("asInt", &call.args)?;
        as_int(arg)
            .map(ExprValue::Integer)
            .map_err(expr::Error::ExprError)
    });
    env.add_function("asFloat", |call| {
        let arg = single_arg("asFloat", &call.args)?;
        as_float(arg)
            .map(ExprValue::Float)
            .map_err(expr::Error::ExprError)
    });
    env.add_function("isNaN", |call| {
        let f = float_arg("isNaN", single_arg("isNaN", &call.args)?)?;
        Ok(ExprValue::Bool(f.is_nan()))
    });
    env.add_function("isInf", |call| {
        let f = float_arg("isInf", single_arg("isInf", &call.args)?)?;
        Ok(ExprValue::Bool(f.is_infinite()))
    });
    let nil = matches!(result, ExprValue::Nil);
    // Argo quirk: `isNil(x)` ignores `x` and tests the measured result.
    env.add_function("isNil", move |call| {
        single_arg("isNil", &call.args)?;
        Ok(ExprValue::Bool(nil))
    });
    let measured = result.clone();
    // Argo quirk: `default(x, d)` ignores `x`: `d` when the measured result is nil, else the
    // measured result.
    env.add_function("default", move |call| match call.args.as_slice() {
        [_, fallback] if nil => Ok(fallback.clone()),
        [_, _] => Ok(measured.clone()),
        [] | [_] => Err(expr::Error::ExprError(
            "not enough arguments to call default".into(),
        )),
        _ => Err(expr::Error::ExprError(
            "too many arguments to call default".into(),
        )),
    });
    env
}

/// Go expr checks a call's arity when compiling; same wording.
fn single_arg<'v>(name: &str, args: &'v [ExprValue]) -> Result<&'v ExprValue, expr::Error> {
    match args {
        [arg] => Ok(arg),
        [] => Err(expr::Error::ExprError(format!(
            "not enough arguments to call {name}"
        ))),
        _ => Err(expr::Error::ExprError(format!(
            "too many arguments to call {name}"
        ))),
    }
}

/// `isNaN` / `isInf` take a float64 in Go; integers convert, anything else is refused.
fn float_arg(name: &str, arg: &ExprValue) -> Result<f64, expr::Error> {
    match arg {
        ExprValue::Float(f) => Ok(*f),
        ExprValue::Integer(i) => Ok(*i as f64),
        other => Err(expr::Error::ExprError(format!(
            "cannot use {} as argument (type float64) to call {name}",
            go_type_name(other)
        ))),
    }
}

/// Argo's `asInt`: numbers truncate toward zero, strings parse as base-10 int64, anything
/// else is an error with Argo's panic text.
fn as_int(value: &ExprValue) -> Result<i64, String> {
    match value {
        ExprValue::Integer(i) => Ok(*i),
        // Go's int64(f) is unspecified for NaN and out-of-range values; Rust saturates.
        ExprValue::Float(f) => Ok(*f as i64),
        ExprValue::String(s) => s.parse::<i64>().map_err(|err| {
            let reason = match err.kind() {
                std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                    "value out of range"
                }
                _ => "invalid syntax",
            };
            format!("strconv.ParseInt: parsing {}: {reason}", go_quote(s))
        }),
        other => Err(format!(
            "asInt() not supported on {} {}",
            go_type_name(other),
            go_format(other)
        )),
    }
}

/// Argo's `asFloat`: numbers convert, strings parse as float64 (`NaN` and `Inf` included).
fn as_float(value: &ExprValue) -> Result<f64, String> {
    match value {
        ExprValue::Float(f) => Ok(*f),
        ExprValue::Integer(i) => Ok(*i as f64),
        ExprValue::String(s) => s.parse::<f64>().map_err(|_| {
            format!(
                "strconv.ParseFloat: parsing {}: invalid syntax",
                go_quote(s)
            )
        }),
        other => Err(format!(
            "asFloat() not supported on {} {}",
            go_type_name(other),
            go_format(other)
        )),
    }
}

/// The measured JSON as the evaluator sees it. Integral JSON numbers stay integers (Go
/// would see every JSON number as float64; comparisons and arithmetic give the same
/// answers either way).
fn json_to_expr(value: &Value, depth: usize) -> Result<ExprValue, String> {
    if depth > MAX_RESULT_DEPTH {
        return Err(format!(
            "metric result is nested deeper than {MAX_RESULT_DEPTH} levels"
        ));
    }
    Ok(match value {
        Value::Null => ExprValue::Nil,
        Value::Bool(b) => ExprValue::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => ExprValue::Integer(i),
            (None, Some(f)) => ExprValue::Float(f),
            (None, None) => ExprValue::Nil,
        },
        Value::String(s) => ExprValue::String(s.clone()),
        Value::Array(items) => ExprValue::Array(
            items
                .iter()
                .map(|v| json_to_expr(v, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => ExprValue::Map(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), json_to_expr(v, depth + 1)?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

/// Go's `%T` for the value Go's expr would hold.
fn go_type_name(value: &ExprValue) -> &'static str {
    match value {
        ExprValue::Nil => "<nil>",
        ExprValue::Bool(_) => "bool",
        ExprValue::Integer(_) => "int",
        ExprValue::Float(_) => "float64",
        ExprValue::String(_) => "string",
        ExprValue::Array(_) => "[]interface {}",
        ExprValue::Bytes(_) => "[]uint8",
        ExprValue::Map(_) => "map[string]interface {}",
        ExprValue::KeyedMap(_) => "map[interface {}]interface {}",
        // Only reachable if another crate of the build turns on expr-lang's `temporal`.
        #[allow(unreachable_patterns)]
        _ => "interface {}",
    }
}

/// Go's `%v`, close enough for error messages.
fn go_format(value: &ExprValue) -> String {
    match value {
        ExprValue::Nil => "<nil>".to_string(),
        ExprValue::Bool(b) => b.to_string(),
        ExprValue::Integer(i) => i.to_string(),
        ExprValue::Float(f) => go_format_float(*f),
        ExprValue::String(s) => s.clone(),
        ExprValue::Array(items) => {
            format!(
                "[{}]",
                items.iter().map(go_format).collect::<Vec<_>>().join(" ")
            )
        }
        ExprValue::Bytes(bytes) => {
            format!(
                "[{}]",
                bytes
                    .iter()
                    .map(u8::to_string)
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        }
        ExprValue::Map(map) => {
            // Go prints maps with sorted keys.
            let mut entries: Vec<_> = map
                .iter()
                .map(|(k, v)| format!("{k}:{}", go_format(v)))
                .collect();
            entries.sort();
            format!("map[{}]", entries.join(" "))
        }
        ExprValue::KeyedMap(entries) => format!(
            "map[{}]",
            entries
                .iter()
                .map(|(k, v)| format!("{}:{}", go_format(k), go_format(v)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        #[allow(unreachable_patterns)]
        _ => String::new(),
    }
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 64)`: shortest representation, exponent form
/// below 1e-4 and from 1e21 up.
fn go_format_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-4..1e21).contains(&abs) {
        let s = format!("{f:e}");
        // Rust writes `1e21` / `1.5e-7`; Go writes `1e+21` / `1.5e-07`.
        match s.split_once('e') {
            Some((mantissa, exp)) => {
                let (sign, digits) = match exp.strip_prefix('-') {
                    Some(d) => ('-', d),
                    None => ('+', exp),
                };
                format!("{mantissa}e{sign}{digits:0>2}")
            }
            None => s,
        }
    } else {
        format!("{f}")
    }
}

/// Go's `strconv.Quote`, approximately: quotes, backslash escapes for quotes, backslashes
/// and control characters.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() || (c.is_whitespace() && c != ' ') => {
                if (c as u32) < 0x10000 {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// ---------------------------------------------------------------------------------------
// Screening: a light tokenizer that bounds what the parser and the evaluator will do.
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
enum Token<'a> {
    /// An integer literal as written (`42`, `0x2A`, `1_000`).
    Int(&'a str),
    /// Any other literal: float, string, bytes.
    Literal,
    /// An identifier or keyword.
    Word(&'a str),
    /// Punctuation, longest match (`..`, `??`, `?.`, `**`, `==`, `&&`, ...).
    Punct(&'a str),
}

const TWO_CHAR_PUNCT: [&str; 10] = ["..", "?.", "??", "**", "==", "!=", "<=", ">=", "&&", "||"];

/// Words that act as operators: each can add a level to the syntax tree.
const OPERATOR_WORDS: [&str; 11] = [
    "and",
    "or",
    "not",
    "in",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "if",
    "else",
    "let",
];

fn tokenize(s: &str) -> Vec<Token<'_>> {
    let bytes = s.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if s[i..].starts_with("//") {
            i = s[i..].find('\n').map_or(bytes.len(), |n| i + n);
        } else if s[i..].starts_with("/*") {
            i = s[i + 2..].find("*/").map_or(bytes.len(), |n| i + 2 + n + 2);
        } else if c == b'\'' || c == b'"' {
            i += 1;
            while i < bytes.len() && bytes[i] != c {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            tokens.push(Token::Literal);
        } else if c == b'`' {
            i = s[i + 1..].find('`').map_or(bytes.len(), |n| i + 1 + n + 1);
            tokens.push(Token::Literal);
        } else if c.is_ascii_digit()
            || (c == b'.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            let start = i;
            let mut float = c == b'.';
            i += 1;
            while i < bytes.len() {
                let b = bytes[i];
                let hex = s[start..].starts_with("0x") || s[start..].starts_with("0X");
                if b.is_ascii_alphanumeric() || b == b'_' {
                    i += 1;
                } else if ((b == b'+' || b == b'-') && !hex && matches!(bytes[i - 1], b'e' | b'E'))
                    || (b == b'.' && !float && bytes.get(i + 1) != Some(&b'.'))
                {
                    // An exponent sign or a decimal point: either way a float.
                    float = true;
                    i += 1;
                } else {
                    break;
                }
            }
            let text = &s[start..i.min(bytes.len())];
            let is_exp =
                !text.starts_with("0x") && !text.starts_with("0X") && text.contains(['e', 'E']);
            tokens.push(if float || is_exp {
                Token::Literal
            } else {
                Token::Int(text)
            });
        } else if c.is_ascii_alphabetic() || c == b'_' || c == b'$' || c == b'#' {
            let start = i;
            i += 1;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            tokens.push(Token::Word(&s[start..i]));
        } else if let Some(p) = TWO_CHAR_PUNCT.iter().find(|p| s[i..].starts_with(**p)) {
            tokens.push(Token::Punct(p));
            i += 2;
        } else {
            // One character, however many bytes it takes.
            let len = s[i..].chars().next().map_or(1, char::len_utf8);
            tokens.push(Token::Punct(&s[i..i + len]));
            i += len;
        }
        // An unterminated string or comment ran past the end; `i` must stay a char boundary.
        i = i.min(bytes.len());
        while i < bytes.len() && !s.is_char_boundary(i) {
            i += 1;
        }
    }
    tokens
}

/// Rejects what the evaluator cannot run safely; see the module documentation.
fn screen(expression: &str) -> Result<(), String> {
    if expression.len() > MAX_CONDITION_LEN {
        return Err(format!(
            "expression is too long ({} bytes, at most {MAX_CONDITION_LEN})",
            expression.len()
        ));
    }
    let tokens = tokenize(expression);
    // One counter per open bracket: operators seen in the current element at that level.
    let mut levels: Vec<usize> = vec![0];
    let mut nesting: usize = 0;
    for (i, token) in tokens.iter().enumerate() {
        match token {
            Token::Punct("(" | "[" | "{") => {
                levels.push(0);
                nesting += 2;
            }
            Token::Punct(")" | "]" | "}") => {
                if levels.len() > 1 {
                    let ops = levels.pop().unwrap_or(0);
                    nesting = nesting.saturating_sub(2 + ops);
                }
            }
            Token::Punct("," | ";") => {
                let ops = levels.last_mut().map(std::mem::take).unwrap_or(0);
                nesting = nesting.saturating_sub(ops);
            }
            Token::Punct(p) => {
                if *p == ".." {
                    check_range(&tokens, i)?;
                }
                if let Some(ops) = levels.last_mut() {
                    *ops += 1;
                }
                nesting += 1;
            }
            Token::Word(w) if OPERATOR_WORDS.contains(w) => {
                if let Some(ops) = levels.last_mut() {
                    *ops += 1;
                }
                nesting += 1;
            }
            Token::Word(_) | Token::Int(_) | Token::Literal => {}
        }
        if nesting > MAX_CONDITION_NESTING {
            return Err(format!(
                "expression is nested too deeply (more than {MAX_CONDITION_NESTING} levels)"
            ));
        }
    }
    Ok(())
}

/// Tokens after which a literal starts a new operand of the range operator (nothing of
/// higher precedence than `..` can reach it from the left).
fn is_left_boundary(token: Option<&Token<'_>>) -> bool {
    match token {
        None => true,
        Some(Token::Punct(p)) => {
            matches!(
                *p,
                "(" | "["
                    | "{"
                    | ","
                    | ";"
                    | ":"
                    | "?"
                    | "="
                    | "=="
                    | "!="
                    | "<"
                    | ">"
                    | "<="
                    | ">="
                    | "&&"
                    | "||"
            )
        }
        Some(Token::Word(w)) => matches!(*w, "and" | "or" | "in"),
        Some(Token::Int(_) | Token::Literal) => false,
    }
}

/// Tokens before which a literal ends the right operand of the range operator.
fn is_right_boundary(token: Option<&Token<'_>>) -> bool {
    match token {
        None => true,
        Some(Token::Punct(p)) => matches!(
            *p,
            ")" | "]"
                | "}"
                | ","
                | ";"
                | ":"
                | "?"
                | "=="
                | "!="
                | "<"
                | ">"
                | "<="
                | ">="
                | "&&"
                | "||"
                | "|"
                | ".."
        ),
        Some(Token::Word(w)) => {
            matches!(
                *w,
                "and" | "or" | "in" | "not" | "contains" | "startsWith" | "endsWith" | "matches"
            )
        }
        Some(Token::Int(_) | Token::Literal) => false,
    }
}

/// The range at `tokens[at]` (`..`) must be `[sign]INT .. [sign]INT` with both integers
/// standing alone, and must not build more than [`MAX_RANGE_ELEMENTS`] elements.
fn check_range(tokens: &[Token<'_>], at: usize) -> Result<(), String> {
    let unsupported =
        || Err("the range operator `..` needs integer literal bounds (e.g. `1..10`)".to_string());
    let token = |i: Option<usize>| i.and_then(|i| tokens.get(i));

    // Left operand: INT, optionally preceded by a sign that is a prefix (not a subtraction).
    let Some(Token::Int(left)) = token(at.checked_sub(1)) else {
        return unsupported();
    };
    let Some(mut start) = parse_int_literal(left) else {
        return unsupported();
    };
    let before = at.checked_sub(2);
    match token(before) {
        Some(Token::Punct(sign @ ("-" | "+")))
            if is_left_boundary(token(before.and_then(|b| b.checked_sub(1)))) =>
        {
            if *sign == "-" {
                start = -start;
            }
        }
        other if is_left_boundary(other) => {}
        _ => return unsupported(),
    }

    // Right operand: optional prefix sign, INT, then something of lower precedence.
    let mut next = at + 1;
    let negative = match tokens.get(next) {
        Some(Token::Punct(sign @ ("-" | "+"))) => {
            next += 1;
            *sign == "-"
        }
        _ => false,
    };
    let Some(Token::Int(right)) = tokens.get(next) else {
        return unsupported();
    };
    let Some(end) = parse_int_literal(right) else {
        return unsupported();
    };
    let end = if negative { -end } else { end };
    if !is_right_boundary(tokens.get(next + 1)) {
        return unsupported();
    }
    if end - start + 1 > MAX_RANGE_ELEMENTS {
        return Err(format!(
            "memory budget exceeded: the range {start}..{end} has more than {MAX_RANGE_ELEMENTS} elements"
        ));
    }
    Ok(())
}

/// An expr integer literal (`42`, `1_000`, `0x2A`, `0o17`, `0b101`), widened so that a sign
/// and a difference cannot overflow.
fn parse_int_literal(text: &str) -> Option<i128> {
    let digits = text.replace('_', "");
    let (body, radix) = match digits.get(..2) {
        Some("0x" | "0X") => (&digits[2..], 16),
        Some("0o" | "0O") => (&digits[2..], 8),
        Some("0b" | "0B") => (&digits[2..], 2),
        _ => (digits.as_str(), 10),
    };
    i64::from_str_radix(body, radix).ok().map(i128::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn metric(success: Option<&str>, failure: Option<&str>) -> Metric {
        Metric {
            name: "m".into(),
            success_condition: success.map(str::to_string),
            failure_condition: failure.map(str::to_string),
            ..Metric::default()
        }
    }

    fn eval(condition: &str, result: Value) -> Result<bool, String> {
        eval_condition(&result, condition)
    }

    // §4.7: the four combinations of conditions.

    #[test]
    fn a_closure_member_shorthand_reads_the_element() {
        assert_eq!(closure_member_shorthand("all(result.x, {asFloat(.value) >= 9900})"), "all(result.x, {asFloat(#.value) >= 9900})");
        assert_eq!(closure_member_shorthand("result.a.b > 0.5 && x?.y == '.z' && 1..3"), "result.a.b > 0.5 && x?.y == '.z' && 1..3");
        let data = serde_json::json!({"x": [{"value": "9950"}, {"value": "9990.5"}]});
        assert_eq!(eval("all(result.x, {asFloat(.value) >= 9900})", data.clone()), Ok(true));
        assert_eq!(eval("any(result.x, {asFloat(.value) < 9900})", data), Ok(false));
    }

    #[test]
    fn no_condition_is_inconclusive() {
        assert_eq!(
            evaluate_result(&metric(None, None), &json!(0)),
            Ok(AnalysisPhase::Inconclusive)
        );
        assert_eq!(
            evaluate_result(&metric(Some(""), Some("")), &json!(null)),
            Ok(AnalysisPhase::Inconclusive)
        );
    }

    #[test]
    fn success_condition_alone_fails_when_false() {
        let m = metric(Some("result > 5"), None);
        assert_eq!(
            evaluate_result(&m, &json!(6)),
            Ok(AnalysisPhase::Successful)
        );
        assert_eq!(evaluate_result(&m, &json!(5)), Ok(AnalysisPhase::Failed));
    }

    #[test]
    fn failure_condition_alone_succeeds_when_false() {
        let m = metric(None, Some("result > 5"));
        assert_eq!(evaluate_result(&m, &json!(6)), Ok(AnalysisPhase::Failed));
        assert_eq!(
            evaluate_result(&m, &json!(5)),
            Ok(AnalysisPhase::Successful)
        );
    }

    #[test]
    fn both_conditions_give_inconclusive_when_neither_holds() {
        // The seed's pair: success >= 0.90, failure < 0.50.
        let m = metric(Some("result[0] >= 0.90"), Some("result[0] < 0.50"));
        assert_eq!(
            evaluate_result(&m, &json!([0.95])),
            Ok(AnalysisPhase::Successful)
        );
        assert_eq!(
            evaluate_result(&m, &json!([0.42])),
            Ok(AnalysisPhase::Failed)
        );
        assert_eq!(
            evaluate_result(&m, &json!([0.70])),
            Ok(AnalysisPhase::Inconclusive)
        );
    }

    #[test]
    fn failure_wins_when_both_conditions_hold() {
        let m = metric(Some("result > 1"), Some("result > 2"));
        assert_eq!(evaluate_result(&m, &json!(3)), Ok(AnalysisPhase::Failed));
    }

    // The seed document's conditions.

    #[test]
    fn seed_prometheus_conditions() {
        assert_eq!(eval("result[0] >= 0.95", json!([0.99])), Ok(true));
        assert_eq!(eval("result[0] >= 0.95", json!([0.94])), Ok(false));
        assert_eq!(eval("result[0] <= 0.95", json!([0.95])), Ok(true));
        assert_eq!(eval("result[0] >= 10", json!([12])), Ok(true));
        assert_eq!(eval("result[0] >= 10", json!([9.5])), Ok(false));
    }

    #[test]
    fn seed_failure_only_metric() {
        // "10 or more errors fail the run"; success otherwise.
        let m = metric(None, Some("result[0] >= 10"));
        assert_eq!(evaluate_result(&m, &json!([12])), Ok(AnalysisPhase::Failed));
        assert_eq!(
            evaluate_result(&m, &json!([10.0])),
            Ok(AnalysisPhase::Failed)
        );
        assert_eq!(
            evaluate_result(&m, &json!([3])),
            Ok(AnalysisPhase::Successful)
        );
    }

    #[test]
    fn seed_web_conditions() {
        assert_eq!(eval("result == 'true'", json!("true")), Ok(true));
        assert_eq!(eval("result == 'true'", json!("false")), Ok(false));
        assert_eq!(eval("result == true", json!(true)), Ok(true));
        assert_eq!(eval("result == true", json!("true")), Ok(false));
        let ok = json!({"ok": true, "successPercent": 0.95});
        assert_eq!(
            eval("result.ok && result.successPercent >= 0.90", ok),
            Ok(true)
        );
        let low = json!({"ok": true, "successPercent": 0.85});
        assert_eq!(
            eval("result.ok && result.successPercent >= 0.90", low),
            Ok(false)
        );
        assert_eq!(
            eval("result.major == '1'", json!({"major": "1", "minor": "27"})),
            Ok(true)
        );
    }

    #[test]
    fn builtins_and_argo_functions() {
        assert_eq!(eval("asInt(result) > 5", json!("6")), Ok(true));
        assert_eq!(eval("asInt(result) > 5", json!(6.9)), Ok(true));
        assert_eq!(eval("asInt(result) == 6", json!(6.9)), Ok(true));
        assert_eq!(eval("asFloat(result) > 0.5", json!("0.75")), Ok(true));
        assert_eq!(eval("asFloat(result) == 3", json!(3)), Ok(true));
        assert_eq!(eval("len(result) > 0", json!([1])), Ok(true));
        assert_eq!(eval("len(result) > 0", json!([])), Ok(false));
        assert_eq!(
            eval("all(result, {# > 0.9})", json!([0.95, 0.99])),
            Ok(true)
        );
        assert_eq!(eval("isNaN(asFloat(result))", json!("NaN")), Ok(true));
        assert_eq!(eval("isNaN(result)", json!(1)), Ok(false));
        assert_eq!(eval("isInf(asFloat(result))", json!("-Inf")), Ok(true));
        assert_eq!(eval("isInf(result[0])", json!([1.5])), Ok(false));
    }

    #[test]
    fn as_int_errors_carry_go_messages() {
        assert_eq!(
            eval("asInt(result) > 0", json!("abc")),
            Err("strconv.ParseInt: parsing \"abc\": invalid syntax".into())
        );
        assert_eq!(
            eval("asInt(result) > 0", json!("99999999999999999999")),
            Err("strconv.ParseInt: parsing \"99999999999999999999\": value out of range".into())
        );
        assert_eq!(
            eval("asInt(result) > 0", json!(true)),
            Err("asInt() not supported on bool true".into())
        );
        assert_eq!(
            eval("asFloat(result) > 0", json!("x")),
            Err("strconv.ParseFloat: parsing \"x\": invalid syntax".into())
        );
        assert_eq!(
            eval("asInt() > 0", json!(1)),
            Err("not enough arguments to call asInt".into())
        );
        assert_eq!(
            eval("isInf(result, 0)", json!(1)),
            Err("too many arguments to call isInf".into())
        );
    }

    #[test]
    fn is_nil_ignores_its_argument_and_looks_at_result() {
        // Argo quirk: the argument does not matter.
        assert_eq!(eval("isNil(1)", json!(null)), Ok(true));
        assert_eq!(eval("isNil(nil)", json!(0.5)), Ok(false));
        assert_eq!(eval("isNil(result)", json!(null)), Ok(true));
        // An empty array is not nil.
        assert_eq!(eval("isNil(result)", json!([])), Ok(false));
    }

    #[test]
    fn default_ignores_its_first_argument() {
        assert_eq!(eval("default(result, 0) < 0.05", json!(null)), Ok(true));
        assert_eq!(eval("default(result, 1) < 0.05", json!(null)), Ok(false));
        assert_eq!(eval("default(result, 0) < 0.05", json!(0.01)), Ok(true));
        // Argo quirk: `default(x, d)` returns the measured result, not `x`.
        assert_eq!(eval("default(42, 0) == 0.5", json!(0.5)), Ok(true));
        assert_eq!(eval("default(nil, 7) == 7", json!(null)), Ok(true));
    }

    #[test]
    fn empty_or_nil_results_report_no_data() {
        let m = metric(Some("result[0] >= 0.95"), None);
        let no_data = "could not evaluate successCondition \"result[0] >= 0.95\": metric result is nil or empty: no data returned from the metric provider";
        assert_eq!(evaluate_result(&m, &json!([])), Err(no_data.into()));
        assert_eq!(evaluate_result(&m, &json!(null)), Err(no_data.into()));
        let f = metric(None, Some("result < 0.5"));
        assert_eq!(
            evaluate_result(&f, &json!(null)),
            Err("could not evaluate failureCondition \"result < 0.5\": metric result is nil or empty: no data returned from the metric provider".into())
        );
    }

    #[test]
    fn evaluation_errors_are_wrapped_with_the_condition() {
        let m = metric(Some("result"), None);
        assert_eq!(
            evaluate_result(&m, &json!(0.5)),
            Err(
                "could not evaluate successCondition \"result\": expected bool, but got float64"
                    .into()
            )
        );
        let m = metric(None, Some("asInt(result) > 1"));
        assert_eq!(
            evaluate_result(&m, &json!("x")),
            Err("could not evaluate failureCondition \"asInt(result) > 1\": strconv.ParseInt: parsing \"x\": invalid syntax".into())
        );
        // The success condition is evaluated first: its error wins.
        let both = metric(Some("nope > 1"), Some("asInt(result) > 1"));
        let err = evaluate_result(&both, &json!("x")).unwrap_err();
        assert!(
            err.starts_with("could not evaluate successCondition \"nope > 1\": "),
            "{err}"
        );
    }

    #[test]
    fn check_condition_reports_syntax_errors_without_evaluating() {
        assert_eq!(check_condition("result[0] >= 0.95"), Ok(()));
        assert_eq!(check_condition("unknownThing(result) > 1"), Ok(()));
        assert_eq!(
            check_condition("result >="),
            Err("syntax error at 1:10: unexpected end of expression".into())
        );
        assert_eq!(
            check_condition("result ==== 1"),
            Err("syntax error at 1:10: unexpected \"== 1\"".into())
        );
        assert!(check_condition("").is_err());
        assert!(check_condition("1e9999 > result").is_err());
        assert!(check_condition("{{args.x}} > 1").is_err());
    }

    #[test]
    fn no_clock_in_conditions() {
        let err = eval("now() > 0", json!(1)).unwrap_err();
        assert!(err.contains("temporal"), "{err}");
    }

    #[test]
    fn ranges_need_small_literal_bounds() {
        assert_eq!(eval("len(1..3) == 3", json!(1)), Ok(true));
        assert_eq!(eval("all(0..2, {# >= 0})", json!(1)), Ok(true));
        assert_eq!(eval("(-5..-3)[0] == -5", json!(1)), Ok(true));
        assert!(check_condition("1..100000000000 == nil")
            .unwrap_err()
            .contains("memory budget"));
        assert!(check_condition("-1000000..1000000 == nil")
            .unwrap_err()
            .contains("memory budget"));
        assert!(check_condition("result..5 == nil").is_err());
        assert!(check_condition("1..result == nil").is_err());
        assert!(check_condition("1..5*1000000000 == nil").is_err());
        assert!(check_condition("x - 5..10 == nil").is_err());
        assert!(check_condition("1.5 > 1 && [1.5, 2.5] != nil").is_ok());
    }

    #[test]
    fn nesting_is_bounded() {
        let deep_parens = format!("{}1{} > 0", "(".repeat(200), ")".repeat(200));
        assert!(check_condition(&deep_parens)
            .unwrap_err()
            .contains("nested too deeply"));
        let long_chain = format!("1{} > 0", " + 1".repeat(300));
        assert!(check_condition(&long_chain)
            .unwrap_err()
            .contains("nested too deeply"));
        let long_list = format!(
            "result in [{}]",
            (0..2000)
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        assert_eq!(eval(&long_list, json!(1999)), Ok(true));
        let huge = "1".repeat(MAX_CONDITION_LEN + 1);
        assert!(check_condition(&huge).unwrap_err().contains("too long"));
    }

    #[test]
    fn accepted_nesting_runs_on_a_small_stack() {
        // The deepest expressions the screen lets through must not overflow a 2 MiB stack.
        let chain = format!("1{} > 0", " + 1".repeat(MAX_CONDITION_NESTING - 2));
        let parens = format!(
            "{}1{} > 0",
            "(".repeat(MAX_CONDITION_NESTING / 2 - 1),
            ")".repeat(MAX_CONDITION_NESTING / 2 - 1)
        );
        let ternary = format!(
            "{}true",
            "true ? true : ".repeat(MAX_CONDITION_NESTING / 2 - 1)
        );
        for code in [chain, parens, ternary] {
            assert_eq!(check_condition(&code), Ok(()), "{code}");
            let handle = std::thread::Builder::new()
                .stack_size(2 * 1024 * 1024)
                .spawn(move || eval_condition(&json!(1), &code).is_ok())
                .expect("spawn");
            assert_eq!(handle.join().ok(), Some(true));
        }
    }

    #[test]
    fn garbage_never_panics() {
        let expressions = [
            "",
            " ",
            "(",
            ")",
            "[",
            "]",
            "{",
            "}",
            "{{",
            "}}",
            "'",
            "\"",
            "`",
            "/*",
            "//",
            "..",
            "...",
            "1..",
            "..1",
            "result[",
            "result.",
            "result?.",
            "result??",
            "#",
            "#acc",
            "$env",
            "$env.result",
            "result[-1]",
            "result[9223372036854775807]",
            "-9223372036854775807 - 1",
            "(-9223372036854775807 - 1) / -1",
            "(-9223372036854775807 - 1) % -1",
            "abs(-9223372036854775807 - 1)",
            "2 ** 64 > 0",
            "1 % 0 == 0",
            "result % 0",
            "int('99999999999999999999')",
            "result[1:0]",
            "result[-100:100]",
            "'é€'[0:1] == ''",
            "take(result, -1)",
            "repeat('ab', 9223372036854775807)",
            "split('abc', '', -5)",
            "bitshl(1, 64)",
            "fromJSON('{')",
            "toJSON(result) != ''",
            "result matches '('",
            "result matches result",
            "sortBy(result, #)",
            "reduce(result, #acc + #)",
            "median([])",
            "min([])",
            "result | map(# * 2)",
            "let x = result; x",
            "if result { 1 } else { 2 }",
            "asInt(result)",
            "asFloat(result)",
            "isNaN(result)",
            "isInf(result)",
            "isNil()",
            "default(result)",
            "default(1, 2, 3)",
            "date('x')",
            "now()",
            "duration('1h')",
            "é > 1",
            "\u{0}",
            "result\u{0}",
            "1__0",
            "0x",
            "0b2",
            "1e",
            "b'\\xff' == result",
            "result.x()",
            "result.Year()",
            "1..3..5",
            "-1..-9223372036854775807",
            "0x7FFFFFFFFFFFFFFF..0x7FFFFFFFFFFFFFFF == nil",
            "'\\u0000' == result",
        ];
        let results = [
            json!(null),
            json!(true),
            json!(-1),
            json!(i64::MIN),
            json!(u64::MAX),
            json!(1.5e308),
            json!(-0.0),
            json!(""),
            json!("é€"),
            json!([]),
            json!([1, 2.5, "x", null]),
            json!({}),
            json!({"a": {"b": [1]}}),
        ];
        for code in expressions {
            let _ = check_condition(code);
            for result in &results {
                let _ = eval_condition(result, code);
                let _ = evaluate_result(&metric(Some(code), Some(code)), result);
            }
        }
    }

    #[test]
    fn deeply_nested_results_are_refused_not_overflowed() {
        let mut deep = json!(1);
        for _ in 0..(MAX_RESULT_DEPTH + 10) {
            deep = json!([deep]);
        }
        let err = eval("len(result) > 0", deep).unwrap_err();
        assert!(err.contains("nested deeper"), "{err}");
    }

    #[test]
    fn go_float_formatting() {
        assert_eq!(go_format_float(0.5), "0.5");
        assert_eq!(go_format_float(100000.0), "100000");
        assert_eq!(go_format_float(1e21), "1e+21");
        assert_eq!(go_format_float(1.5e-7), "1.5e-07");
        assert_eq!(go_quote("a\"b\n"), "\"a\\\"b\\n\"");
    }
}
