//! `velollm scenario list|show`: the built-in scenarios, listed or printed as editable TOML.

use crate::exit::{self, input};
use anyhow::Result;
use clap::Subcommand;
use velollm_core::document::scenario::{BUILTINS, Scenario, builtin};

/// `velollm scenario …`.
#[derive(Debug, Subcommand)]
pub enum ScenarioCommand {
    /// Every built-in scenario: name, purpose, what it measures.
    List,
    /// Print a built-in scenario's TOML (`velollm scenario show long-conversation > mine.toml`).
    Show {
        /// Scenario name.
        name: String,
    },
}

/// Run `velollm scenario list|show`.
pub fn run(command: ScenarioCommand) -> Result<u8> {
    match command {
        ScenarioCommand::List => {
            let scenarios: Vec<Scenario> = BUILTINS.iter().filter_map(|(n, _)| Scenario::builtin(n)).collect();
            print!("{}", velollm_report::terminal::render_scenarios(&scenarios));
            println!(
                "\nsemantic-cache: a semantic cache's labelled evaluation (hit and false-hit rates, threshold sweep); \
                 its labels: velollm scenario show semantic-cache\nvector-stores: the semantic cache's vector \
                 stores compared (insert rate, query latency, recall@1, memory; --vectors, --queries)\nrouting: \
                 small-model routing's labelled evaluation (share routed, calls saved, accuracy per tier and task \
                 type, latency alone and under load, quality-versus-share sweep; --large-url); its tasks: velollm \
                 scenario show routing"
            );
            Ok(exit::OK)
        }
        ScenarioCommand::Show { name } if name == crate::semantic_eval::SCENARIO => {
            print!("{}", velollm_core::analysis::semantic_eval::BUILTIN_LABELS);
            Ok(exit::OK)
        }
        ScenarioCommand::Show { name } if name == crate::routing_eval::SCENARIO => {
            print!("{}", velollm_core::analysis::routing_eval::BUILTIN_LABELS);
            Ok(exit::OK)
        }
        ScenarioCommand::Show { name } => match builtin(&name) {
            Some(text) => {
                print!("{text}");
                Ok(exit::OK)
            }
            None => {
                let mut names: Vec<&str> = BUILTINS.iter().map(|(n, _)| *n).collect();
                names.extend([crate::semantic_eval::SCENARIO, crate::routing_eval::SCENARIO]);
                Err(input(format!("no built-in scenario '{name}'; the built-ins are: {}", names.join(", "))).into())
            }
        },
    }
}
