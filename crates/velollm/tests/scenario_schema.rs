//! The committed JSON Schema of scenario files (`docs/scenario-schema.json`) is generated from the types and
//! must not go stale. Regenerate it with `UPDATE_SCHEMA=1 cargo test -p velollm --test cli scenario_schema`.
//!
//! Every built-in scenario, converted from TOML to JSON, must validate against it, so that editors using the
//! schema never flag a file velollm accepts.

use std::path::{Path, PathBuf};
use velollm_core::document::scenario::{BUILTINS, Scenario};

fn schema_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/scenario-schema.json")
}

fn generated() -> String {
    serde_json::to_string_pretty(&schemars::schema_for!(Scenario)).unwrap() + "\n"
}

#[test]
fn committed_scenario_schema_matches_the_types() {
    let generated = generated();
    let path = schema_path();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/scenario-schema.json is stale: run `UPDATE_SCHEMA=1 cargo test -p velollm --test cli scenario_schema` \
         and commit it"
    );
}

fn validator() -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_str(&generated()).unwrap();
    jsonschema::validator_for(&schema).expect("the scenario schema compiles")
}

fn errors(validator: &jsonschema::Validator, doc: &serde_json::Value) -> Vec<String> {
    validator.iter_errors(doc).map(|e| format!("{} at {}", e, e.instance_path)).collect()
}

#[test]
fn every_builtin_scenario_validates_against_the_schema() {
    let validator = validator();
    assert_eq!(BUILTINS.len(), 14);
    for (name, text) in BUILTINS {
        let doc: serde_json::Value =
            toml::from_str(text).unwrap_or_else(|e| panic!("built-in {name} is not TOML: {e}"));
        let errors = errors(&validator, &doc);
        assert!(errors.is_empty(), "built-in {name} does not match docs/scenario-schema.json: {errors:#?}");
    }
}

#[test]
fn the_schema_rejects_what_velollm_rejects() {
    let validator = validator();
    let cases = [
        // misspelt field
        "name = 'x'\n[[steps]]\nname = 'a'\nprompt = 'hi'\nmax_token = 5\n",
        // max_tokens is required
        "name = 'x'\n[[steps]]\nname = 'a'\nprompt = 'hi'\n",
        // steps is required
        "name = 'x'\n",
        // unknown connection mode
        "name = 'x'\n[[steps]]\nname = 'a'\nprompt = 'hi'\nmax_tokens = 5\nconnection = 'pooled'\n",
        // unknown analysis kind
        "name = 'x'\n[[analyses]]\nkind = 'median'\n[[steps]]\nname = 'a'\nprompt = 'hi'\nmax_tokens = 5\n",
        // unknown load field
        "name = 'x'\n[[steps]]\nname = 'a'\nprompt = 'hi'\nmax_tokens = 5\nload = { workers = 3 }\n",
        // a check with an unknown key
        "name = 'x'\n[[steps]]\nname = 'a'\nprompt = 'hi'\nmax_tokens = 5\nchecks = [{ regex = 'a', weight = 2 }]\n",
        // a check with no kind
        "name = 'x'\n[[steps]]\nname = 'a'\nprompt = 'hi'\nmax_tokens = 5\nchecks = [{ name = 'a' }]\n",
        // a check with two kinds
        "name = 'x'\n[[steps]]\nname = 'a'\nprompt = 'hi'\nmax_tokens = 5\nchecks = [{ regex = 'a', contains = 'b' }]\n",
        // a turn without its message
        "name = 'x'\n[[steps]]\nname = 'a'\nmax_tokens = 5\n[[steps.turns]]\nlabel = 'miss'\n",
    ];
    for text in cases {
        assert!(Scenario::parse("case.toml", text).is_err(), "velollm accepts:\n{text}");
        let doc: serde_json::Value = toml::from_str(text).unwrap();
        assert!(!errors(&validator, &doc).is_empty(), "the schema accepts:\n{text}");
    }
}

#[test]
fn checks_of_every_kind_validate() {
    let text = r#"
name = "checks"
[[steps]]
name = "a"
prompt = "hi"
max_tokens = 5
retries = 2
tags = { provider = "local", task = "code" }
checks = [
  { name = "r", regex = "x" },
  { contains = "y" },
  { number_equals = 10 },
  { tool_call = { tool = "f", schema = { type = "object" }, arguments = { a = 1 } } },
  { name = "compiles", command = "python3 -m py_compile \"$VELOLLM_CODE\"" },
]
"#;
    Scenario::parse("checks.toml", text).unwrap();
    let doc: serde_json::Value = toml::from_str(text).unwrap();
    let errors = errors(&validator(), &doc);
    assert!(errors.is_empty(), "{errors:#?}");
}

/// The complete example of docs/scenarios.md (section 10) is a valid scenario.
#[test]
fn the_documented_example_is_valid() {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/scenarios.md")).unwrap();
    let section = &doc[doc.find("## 10. Example").expect("section 10 of docs/scenarios.md")..];
    let start = section.find("```toml\n").expect("a TOML block") + "```toml\n".len();
    let text = &section[start..start + section[start..].find("```").unwrap()];
    let scenario = Scenario::parse("docs/scenarios.md", text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(scenario.steps.len(), 3);
    assert!(scenario.steps.iter().all(|s| s.tags.contains_key("provider") && s.tags.contains_key("task")));
    let json: serde_json::Value = toml::from_str(text).unwrap();
    let errors = errors(&validator(), &json);
    assert!(errors.is_empty(), "{errors:#?}");
}
