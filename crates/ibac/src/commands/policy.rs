//! `ibac policy`: per server, protected or shadow, and who may call it with what.

use ibac_policy::view::view;

use crate::docs;
use crate::exit;
use crate::output::{Output, print_data, render, table, write_stdout};

/// Arguments of `ibac policy`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    report: docs::ReportArgs,
}

/// Runs the command.
pub fn run(args: &Args, namespace: &str) -> anyhow::Result<u8> {
    let (_, policy) = match docs::load_policy(&args.report.paths, namespace)? {
        Ok(loaded) => loaded,
        Err(n) => {
            eprintln!("error: {}", docs::problems(n));
            return Ok(exit::INPUT);
        }
    };
    let view = view(&policy);
    if args.report.output != Output::Table {
        print_data(&view, args.report.output)?;
        return Ok(exit::OK);
    }
    let mut t = table(&["server", "mode", "client", "allows", "declared at"]);
    for server in &view.servers {
        if server.clients.is_empty() {
            t.add_row(vec![
                server.server.to_string(),
                server.mode.to_string(),
                "-".into(),
                "nothing: every call is refused".into(),
                String::new(),
            ]);
        }
        let mut first = true;
        for client in &server.clients {
            for allow in &client.allows {
                let (s, m) = if first {
                    (server.server.to_string(), server.mode.to_string())
                } else {
                    (String::new(), String::new())
                };
                first = false;
                t.add_row(vec![
                    s,
                    m,
                    client.client.to_string(),
                    allow.what.clone(),
                    allow.at.clone(),
                ]);
            }
        }
    }
    let mut text = render(&t);
    let protected = view
        .servers
        .iter()
        .filter(|s| s.mode == "protected")
        .count();
    text.push_str(&format!(
        "\nmode {}; {} of {} servers protected{}\n",
        view.mode,
        protected,
        view.servers.len(),
        if view.enforced_namespaces.is_empty() {
            String::new()
        } else {
            format!(
                "; enforced namespaces: {}",
                view.enforced_namespaces.join(", ")
            )
        }
    ));
    for u in &view.unenforced {
        text.push_str(&format!(
            "note: {} → {} ({}): {}\n",
            u.client, u.target, u.at, u.note
        ));
    }
    write_stdout(&text)?;
    Ok(exit::OK)
}
