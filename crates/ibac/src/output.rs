//! Output for humans (tables) and machines (JSON, YAML).

use std::io::Write;

use anyhow::Context;
use clap::ValueEnum;
use comfy_table::{ContentArrangement, Table, presets};
use serde::Serialize;

/// How to print results.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns for people.
    Table,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

/// Writes `value` as JSON or YAML to stdout.
pub fn print_data<T: Serialize>(value: &T, output: Output) -> anyhow::Result<()> {
    let text = match output {
        Output::Json => serde_json::to_string_pretty(value).context("cannot write JSON")? + "\n",
        Output::Yaml | Output::Table => ibac_model::yaml::to_yaml(value)?,
    };
    write_stdout(&text)
}

/// Writes text to stdout; a closed pipe (`| head`) is not an error.
pub fn write_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("cannot write to stdout")
        }
        _ => Ok(()),
    }
}

/// A kubectl-style table: uppercase headers, no borders.
pub fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.iter().map(|h| h.to_uppercase()));
    for column in table.column_iter_mut() {
        column.set_padding((0, 3));
    }
    table
}

/// Renders a table with trailing spaces removed.
pub fn render(table: &Table) -> String {
    let mut out: String = table
        .lines()
        .map(|line| line.trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n");
    out.push('\n');
    out
}
