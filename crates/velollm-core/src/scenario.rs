//! Scenario files: a named sequence of steps, each with a workload and generation parameters.
//!
//! Built-in scenarios are TOML files under `scenarios/` embedded in the binary; users write their own in
//! the same format (`docs/scenarios.md`). Unknown fields are rejected, and parse errors name the file, the
//! line and the field.

use crate::analysis::AnalysisSpec;
use crate::check::Check;
use crate::threshold::Threshold;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
    /// Scenario-level thresholds over analysis figures (e.g. `degradation < 20%`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<String>,
    /// Figures computed from the steps once they have run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub analyses: Vec<AnalysisSpec>,
    /// The steps, run in order.
    pub steps: Vec<Step>,
}

/// One turn of a conversation step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Turn {
    /// The user's message. Earlier turns and the model's real answers to them are sent before it.
    pub user: String,
    /// A label used by analyses (`miss`, `hit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Start the message with a unique nonce so that no earlier request shares its prefix (a cache MISS).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub salt: bool,
}

/// How a step uses connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ConnectionMode {
    /// Reuse each worker's connection while the server keeps it open.
    #[default]
    KeepAlive,
    /// Open a new connection for every request.
    New,
}

/// A step's own load profile and bounds (command-line flags override them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepLoad {
    /// Closed-loop workers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// Open-loop rate, requests per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// `constant`, `poisson` or `gamma`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrival: Option<String>,
    /// Gamma shape for `arrival = "gamma"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burstiness: Option<f64>,
    /// Measured requests (conversations for multi-turn steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
    /// Measurement duration (`30s`, `30m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Warm-up: a request count (`"2"`) or a duration (`"10s"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup: Option<String>,
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
    /// A file of prompts, one per non-empty line (relative to the scenario file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_file: Option<String>,
    /// Synthetic prompts of about this many tokens, each one different (no accidental prefix caching).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<u32>,
    /// A conversation: the turns are sent in order, each with the real previous answers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub turns: Vec<Turn>,
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
    /// Sequential repetitions (conversations, for multi-turn steps) when no other load is given.
    #[serde(default = "one")]
    pub iterations: u32,
    /// The step's own load profile and bounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<StepLoad>,
    /// Connection reuse.
    #[serde(default, skip_serializing_if = "is_default")]
    pub connection: ConnectionMode,
    /// Unload the model before the step (Ollama `keep_alive: 0`), so its first request is a cold start.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cold: bool,
    /// Tool definitions (OpenAI `tools` format).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<serde_json::Value>,
    /// Checks applied to every answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
    /// After an answer fails a check, send up to this many correction turns with the failure.
    #[serde(default, skip_serializing_if = "is_default")]
    pub retries: u32,
    /// Thresholds over this step's aggregates (e.g. `ttft.p95 < 2s`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<String>,
    /// Tags for plan breakdowns (`provider`, `task`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
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
    /// A multi-turn conversation.
    Conversation(Vec<Turn>),
}

impl Step {
    /// The step's workload (prompt files are read by the caller); an error names what is wrong.
    pub fn workload(&self) -> Result<Workload, String> {
        let mut prompts = self.prompts.clone();
        if let Some(p) = &self.prompt {
            prompts.insert(0, p.clone());
        }
        let kinds =
            [!prompts.is_empty() || self.prompt_file.is_some(), self.prompt_tokens.is_some(), !self.turns.is_empty()];
        match kinds.iter().filter(|k| **k).count() {
            0 => {
                return Err(format!(
                    "step '{}' has no workload: set `prompt`, `prompts`, `prompt_file`, `prompt_tokens` or `turns`",
                    self.name
                ));
            }
            1 => {}
            _ => {
                return Err(format!(
                    "step '{}' mixes workloads: keep one of prompts, prompt_tokens and turns",
                    self.name
                ));
            }
        }
        if !self.turns.is_empty() {
            return Ok(Workload::Conversation(self.turns.clone()));
        }
        match self.prompt_tokens {
            Some(0) => Err(format!("step '{}': prompt_tokens must be at least 1", self.name)),
            Some(n) => Ok(Workload::Synthetic { prompt_tokens: n }),
            None => Ok(Workload::Prompts(prompts)),
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
pub const BUILTINS: &[(&str, &str)] = &[
    ("standard", include_str!("../../../scenarios/standard.toml")),
    ("warm", include_str!("../../../scenarios/warm.toml")),
    ("cold-start", include_str!("../../../scenarios/cold-start.toml")),
    ("context-size", include_str!("../../../scenarios/context-size.toml")),
    ("max-tokens", include_str!("../../../scenarios/max-tokens.toml")),
    ("prefix-cache", include_str!("../../../scenarios/prefix-cache.toml")),
    ("long-conversation", include_str!("../../../scenarios/long-conversation.toml")),
    ("reasoning", include_str!("../../../scenarios/reasoning.toml")),
    ("tool-calling", include_str!("../../../scenarios/tool-calling.toml")),
    ("stability", include_str!("../../../scenarios/stability.toml")),
    ("load", include_str!("../../../scenarios/load.toml")),
    ("connections", include_str!("../../../scenarios/connections.toml")),
];

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
        let names: Vec<&str> = scenario.steps.iter().map(|s| s.name.as_str()).collect();
        for (i, n) in names.iter().enumerate() {
            if names[..i].contains(n) {
                return Err(invalid(format!("two steps are named '{n}': step names must be unique")));
            }
        }
        for t in &scenario.thresholds {
            t.parse::<Threshold>().map_err(|e| invalid(e.to_string()))?;
        }
        for a in &scenario.analyses {
            for step in a.steps() {
                if !names.contains(&step) {
                    return Err(invalid(format!("an analysis names step '{step}', which the scenario does not have")));
                }
            }
        }
        for step in &scenario.steps {
            step.workload().map_err(&invalid)?;
            for t in &step.thresholds {
                t.parse::<Threshold>().map_err(|e| invalid(format!("step '{}': {e}", step.name)))?;
            }
            for c in &step.checks {
                c.validate().map_err(|e| invalid(format!("step '{}': {e}", step.name)))?;
            }
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
