//! Scenario files: a named sequence of steps, each with a workload and generation parameters.
//!
//! Built-in scenarios are TOML files under `scenarios/` embedded in the binary; users write their own in
//! the same format (`docs/scenarios.md`). Unknown fields are rejected, and parse errors name the file, the
//! line and the field.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A scenario: steps run in order against one target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name (`standard`).
    pub name: String,
    /// One-line purpose.
    #[serde(default)]
    pub description: String,
    /// What the scenario measures.
    #[serde(default)]
    pub measures: String,
    /// The steps, run in order.
    pub steps: Vec<Step>,
}

/// One step of a scenario: a workload sent `iterations` times (or under the run's load profile).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Step name, used in reports (`short_completion`).
    pub name: String,
    /// A single user prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// Several user prompts, used in turn.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompts: Vec<String>,
    /// Synthetic prompts of about this many tokens, each one different (no accidental prefix caching).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<u32>,
    /// An optional system prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// Maximum tokens to generate.
    pub max_tokens: u32,
    /// Ask the server to generate exactly `max_tokens` (`ignore_eos`/`min_tokens` where supported).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exact_output: bool,
    /// Sampling temperature (server default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Sequential repetitions when the run gives no other load profile.
    #[serde(default = "one")]
    pub iterations: u32,
}

fn one() -> u32 {
    1
}

/// The prompts a step sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Workload {
    /// Fixed prompts, used round-robin.
    Prompts(Vec<String>),
    /// Synthetic prompts of about this many tokens each, distinct per request.
    Synthetic {
        /// Target prompt length in tokens.
        prompt_tokens: u32,
    },
}

impl Step {
    /// The step's workload; an error names what is missing.
    pub fn workload(&self) -> Result<Workload, String> {
        let mut prompts = self.prompts.clone();
        if let Some(p) = &self.prompt {
            prompts.insert(0, p.clone());
        }
        match (prompts.is_empty(), self.prompt_tokens) {
            (false, None) => Ok(Workload::Prompts(prompts)),
            (true, Some(n)) if n > 0 => Ok(Workload::Synthetic { prompt_tokens: n }),
            (false, Some(_)) => {
                Err(format!("step '{}' sets both prompts and prompt_tokens; keep one of them", self.name))
            }
            _ => Err(format!("step '{}' has no workload: set `prompt`, `prompts` or `prompt_tokens`", self.name)),
        }
    }
}

/// A scenario file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// TOML syntax or a field of the wrong type / unknown field.
    #[error("{source_name}: {message}")]
    Parse {
        /// File name or `built-in NAME`.
        source_name: String,
        /// The parser's message, with line, column and field.
        message: String,
    },
    /// The file parsed but is not usable.
    #[error("{source_name}: {message}")]
    Invalid {
        /// File name or `built-in NAME`.
        source_name: String,
        /// What is wrong and how to fix it.
        message: String,
    },
}

/// The built-in scenarios: `(name, TOML text)`.
pub const BUILTINS: &[(&str, &str)] = &[("standard", include_str!("../../../scenarios/standard.toml"))];

/// The TOML text of a built-in scenario.
pub fn builtin(name: &str) -> Option<&'static str> {
    BUILTINS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

impl Scenario {
    /// Parse and validate a scenario; `source_name` is used in error messages (a path or `built-in X`).
    pub fn parse(source_name: &str, text: &str) -> Result<Scenario, ScenarioError> {
        let scenario: Scenario = toml::from_str(text).map_err(|e| ScenarioError::Parse {
            source_name: source_name.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let invalid = |message: String| ScenarioError::Invalid { source_name: source_name.to_string(), message };
        if scenario.steps.is_empty() {
            return Err(invalid("the scenario has no [[steps]]".to_string()));
        }
        for step in &scenario.steps {
            step.workload().map_err(invalid)?;
            if step.max_tokens == 0 {
                return Err(invalid(format!("step '{}': max_tokens must be at least 1", step.name)));
            }
            if step.iterations == 0 {
                return Err(invalid(format!("step '{}': iterations must be at least 1", step.name)));
            }
        }
        Ok(scenario)
    }

    /// A built-in scenario by name.
    pub fn builtin(name: &str) -> Option<Scenario> {
        builtin(name).map(|text| Scenario::parse(&format!("built-in {name}"), text).expect("built-ins are valid"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_is_the_seed_suite() {
        let s = Scenario::builtin("standard").unwrap();
        let steps: Vec<_> = s.steps.iter().map(|s| (s.name.as_str(), s.max_tokens, s.iterations)).collect();
        assert_eq!(
            steps,
            vec![("short_completion", 50, 5), ("medium_completion", 150, 3), ("code_generation", 200, 3)]
        );
        assert_eq!(
            s.steps[0].workload().unwrap(),
            Workload::Prompts(vec!["Write a hello world program in Python".into()])
        );
    }

    #[test]
    fn every_builtin_parses() {
        for (name, _) in BUILTINS {
            assert!(Scenario::builtin(name).is_some());
        }
    }

    #[test]
    fn errors_name_the_file_line_and_field() {
        let text = "name = \"x\"\n[[steps]]\nname = \"a\"\nprompt = \"hi\"\nmax_token = 5\n";
        let e = Scenario::parse("mine.toml", text).unwrap_err().to_string();
        assert!(e.starts_with("mine.toml:"), "{e}");
        assert!(e.contains("line 5"), "{e}");
        assert!(e.contains("max_token"), "{e}");
        let e = Scenario::parse("m.toml", "name = \"x\"\n[[steps]]\nname = \"a\"\nmax_tokens = 5\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no workload"), "{e}");
    }
}
