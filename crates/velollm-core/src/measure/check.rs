//! Quality checks on a request's output: regex, contains, number-equals, tool-call validity against a JSON
//! schema, and an external command (run by the engine, which owns processes).
//!
//! Each check yields a [`CheckOutcome`] per successful request; a step reports each criterion's pass rate
//! and a score (the mean share of criteria passed).

use regex::RegexBuilder;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One criterion applied to every successful request of a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// Criterion name, as reported (defaults to a description of the check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What is checked.
    #[serde(flatten)]
    pub kind: CheckKind,
}

/// The kinds of check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// The answer matches this regular expression (case-insensitive, `.` matches newlines).
    Regex(String),
    /// The answer contains this text (case-insensitive).
    Contains(String),
    /// The last number in the answer equals this value (within 1e-6 relative).
    NumberEquals(f64),
    /// The answer made a tool call whose arguments are valid JSON matching this schema; with `tool`, the
    /// call must be to that function.
    ToolCall {
        /// Expected function name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tool: Option<String>,
        /// JSON Schema (subset: type, properties, required, enum, items, minimum, maximum) of the arguments.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        schema: Option<Value>,
        /// Expected argument values (each listed key must be present and equal).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        arguments: Option<Value>,
    },
    /// Run this shell command with the answer on standard input (also in the file `$VELOLLM_OUTPUT`); exit 0
    /// passes. Use it to compile, lint or test generated code.
    Command(String),
}

impl Check {
    /// The name shown in reports.
    pub fn label(&self) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        match &self.kind {
            CheckKind::Regex(r) => format!("regex /{r}/"),
            CheckKind::Contains(t) => format!("contains \"{t}\""),
            CheckKind::NumberEquals(v) => format!("answer = {v}"),
            CheckKind::ToolCall { tool: Some(t), .. } => format!("tool call {t}"),
            CheckKind::ToolCall { tool: None, .. } => "valid tool call".to_string(),
            CheckKind::Command(c) => format!("command `{c}`"),
        }
    }

    /// Compile-time validation of the check (e.g. the regex); the error says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if let CheckKind::Regex(r) = &self.kind {
            RegexBuilder::new(r).build().map_err(|e| format!("invalid regex /{r}/: {e}"))?;
        }
        Ok(())
    }
}

/// A tool call made by the model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ToolCall {
    /// Function name.
    pub name: String,
    /// Arguments as the model wrote them (should be a JSON object).
    pub arguments: String,
}

/// The outcome of one check on one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CheckOutcome {
    /// Criterion name.
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
    /// Why it failed (or what was seen), briefly.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// Evaluate a check that needs no process; `None` for [`CheckKind::Command`], which the engine runs.
pub fn evaluate(check: &Check, text: &str, tool_calls: &[ToolCall]) -> Option<CheckOutcome> {
    let (passed, detail) = match &check.kind {
        CheckKind::Regex(r) => match RegexBuilder::new(r).case_insensitive(true).dot_matches_new_line(true).build() {
            Ok(re) => (re.is_match(text), String::new()),
            Err(e) => (false, format!("invalid regex: {e}")),
        },
        CheckKind::Contains(t) => (text.to_lowercase().contains(&t.to_lowercase()), String::new()),
        CheckKind::NumberEquals(want) => match last_number(text) {
            Some(got) => ((got - want).abs() <= 1e-6 * want.abs().max(1.0), format!("last number {got}")),
            None => (false, "no number in the answer".to_string()),
        },
        CheckKind::ToolCall { tool, schema, arguments } => {
            tool_call(tool.as_deref(), schema.as_ref(), arguments.as_ref(), tool_calls)
        }
        CheckKind::Command(_) => return None,
    };
    Some(CheckOutcome { name: check.label(), passed, detail })
}

/// The last number written in `text` (digits with an optional sign, decimal point and thousands commas).
pub fn last_number(text: &str) -> Option<f64> {
    let re = regex::Regex::new(r"-?\d[\d,]*(?:\.\d+)?").expect("a valid pattern");
    re.find_iter(text).filter_map(|m| m.as_str().replace(',', "").parse().ok()).last()
}

fn tool_call(
    tool: Option<&str>,
    schema: Option<&Value>,
    expected: Option<&Value>,
    calls: &[ToolCall],
) -> (bool, String) {
    let candidates: Vec<&ToolCall> = calls.iter().filter(|c| tool.is_none_or(|t| c.name == t)).collect();
    if candidates.is_empty() {
        let seen: Vec<&str> = calls.iter().map(|c| c.name.as_str()).collect();
        return (false, if seen.is_empty() { "no tool call".into() } else { format!("called {}", seen.join(", ")) });
    }
    let mut last_error = String::new();
    for c in candidates {
        let args: Value = match serde_json::from_str(&c.arguments) {
            Ok(v) => v,
            Err(e) => {
                last_error = format!("{}: arguments are not JSON ({e})", c.name);
                continue;
            }
        };
        if let Some(s) = schema
            && let Err(e) = validate(s, &args, "$")
        {
            last_error = format!("{}: {e}", c.name);
            continue;
        }
        if let Some(Value::Object(want)) = expected
            && let Some((k, v)) = want.iter().find(|(k, v)| !loosely_equal(args.get(k.as_str()), v))
        {
            last_error =
                format!("{}: argument {k} is {} (expected {v})", c.name, args.get(k.as_str()).unwrap_or(&Value::Null));
            continue;
        }
        return (true, String::new());
    }
    (false, last_error)
}

/// Equality that accepts `"5"` for `5` and ignores case and surrounding space in strings.
fn loosely_equal(got: Option<&Value>, want: &Value) -> bool {
    match (got, want) {
        (Some(Value::String(g)), Value::String(w)) => g.trim().eq_ignore_ascii_case(w.trim()),
        (Some(Value::String(g)), Value::Number(w)) => g.trim().parse::<f64>().ok() == w.as_f64(),
        (Some(Value::Number(g)), Value::Number(w)) => g.as_f64() == w.as_f64(),
        (Some(g), w) => g == w,
        (None, _) => false,
    }
}

/// Validate `v` against a JSON Schema subset: `type`, `properties`, `required`, `enum`, `items`, `minimum`,
/// `maximum`. Unknown keywords are ignored.
pub fn validate(schema: &Value, v: &Value, path: &str) -> Result<(), String> {
    if let Some(t) = schema.get("type").and_then(Value::as_str) {
        let ok = match t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => v.as_i64().is_some() || v.as_u64().is_some(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            _ => true,
        };
        if !ok {
            return Err(format!("{path} should be {t}, got {v}"));
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(v)
    {
        return Err(format!("{path} = {v} is not one of {}", Value::Array(options.clone())));
    }
    if let (Some(min), Some(x)) = (schema.get("minimum").and_then(Value::as_f64), v.as_f64())
        && x < min
    {
        return Err(format!("{path} = {x} is below {min}"));
    }
    if let (Some(max), Some(x)) = (schema.get("maximum").and_then(Value::as_f64), v.as_f64())
        && x > max
    {
        return Err(format!("{path} = {x} is above {max}"));
    }
    if let Some(obj) = v.as_object() {
        for req in schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
            if !obj.contains_key(req) {
                return Err(format!("{path}.{req} is required"));
            }
        }
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (k, s) in props {
                if let Some(x) = obj.get(k) {
                    validate(s, x, &format!("{path}.{k}"))?;
                }
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, x) in arr.iter().enumerate() {
            validate(items, x, &format!("{path}[{i}]"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(kind: CheckKind) -> Check {
        Check { name: None, kind }
    }

    #[test]
    fn text_checks() {
        let text = "Step 1: read.\nSo A = 10, and B is between 5 and 10. Final answer: 1,250.5";
        assert!(evaluate(&check(CheckKind::Regex(r"A\s*=\s*10".into())), text, &[]).unwrap().passed);
        assert!(evaluate(&check(CheckKind::Contains("final ANSWER".into())), text, &[]).unwrap().passed);
        assert!(evaluate(&check(CheckKind::NumberEquals(1250.5)), text, &[]).unwrap().passed);
        let miss = evaluate(&check(CheckKind::NumberEquals(3.0)), text, &[]).unwrap();
        assert!(!miss.passed && miss.detail.contains("1250.5"));
        assert!(evaluate(&check(CheckKind::Command("true".into())), text, &[]).is_none());
        assert!(check(CheckKind::Regex("(".into())).validate().is_err());
    }

    #[test]
    fn tool_calls_against_schema_and_expected_arguments() {
        let schema = json!({"type": "object", "required": ["city"], "properties": {
            "city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}}});
        let c = check(CheckKind::ToolCall {
            tool: Some("get_weather".into()),
            schema: Some(schema),
            arguments: Some(json!({"city": "Paris"})),
        });
        let good = [ToolCall { name: "get_weather".into(), arguments: r#"{"city":"paris","unit":"celsius"}"#.into() }];
        assert!(evaluate(&c, "", &good).unwrap().passed);
        let bad_enum =
            [ToolCall { name: "get_weather".into(), arguments: r#"{"city":"Paris","unit":"kelvin"}"#.into() }];
        assert!(evaluate(&c, "", &bad_enum).unwrap().detail.contains("kelvin"));
        let missing = [ToolCall { name: "get_weather".into(), arguments: r#"{"unit":"celsius"}"#.into() }];
        assert!(evaluate(&c, "", &missing).unwrap().detail.contains("city is required"));
        let broken = [ToolCall { name: "get_weather".into(), arguments: r#"{"city":"#.into() }];
        assert!(evaluate(&c, "", &broken).unwrap().detail.contains("not JSON"));
        assert_eq!(evaluate(&c, "", &[]).unwrap().detail, "no tool call");
    }

    #[test]
    fn parses_from_toml() {
        #[derive(Deserialize)]
        struct W {
            checks: Vec<Check>,
        }
        let w: W = toml::from_str(
            "checks = [{ regex = 'A = 10', name = 'computes A' }, { number_equals = 10 }, { command = 'python3 -' }]",
        )
        .unwrap();
        assert_eq!(w.checks[0].label(), "computes A");
        assert_eq!(w.checks[1].kind, CheckKind::NumberEquals(10.0));
    }
}
