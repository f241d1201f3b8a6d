//! SQL grants, from sql targets: PostgreSQL or MySQL statements, in the
//! dialect of the PostgreSQLServerConfig or MySQLServerConfig the target
//! names. The scripts are idempotent (create the user if missing, revoke then
//! grant per table or schema) and quote every identifier. Empty operations
//! parse (Otterize reads them as ALL) but are refused here: ibac never grants
//! ALL unless ALL is written. A target names its server config as Otterize
//! does: by name, found in any namespace when only one config has that name,
//! or as `name.namespace`. What cannot be rendered is skipped, with its place;
//! everything else is.

use std::collections::BTreeMap;

use ibac_model::SqlTarget;
use ibac_model::sql::SqlOperation;
use ibac_model::{
    DatabaseServerConfig, DocumentError, Location, SqlDialect, SqlPrivilege, TargetKind, WorkloadId,
};
use ibac_policy::Policy;

use crate::names::hex_digest;
use crate::{Rendered, ServerRendering};
use serde::Serialize;

/// The script for one server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SqlScript {
    /// The server config, `name.namespace`.
    pub server: WorkloadId,
    /// `postgresql` or `mysql`.
    pub dialect: &'static str,
    /// Its address.
    pub address: String,
    /// Statements, in order.
    pub statements: Vec<String>,
}

/// A PostgreSQL identifier, double-quoted.
pub fn pg_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A MySQL identifier, back-quoted.
pub fn mysql_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A MySQL string literal.
pub fn mysql_string(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

/// The database user of a client: `<name>_<namespace>` with `-` as `_`,
/// cut with a hash suffix when longer than the dialect allows.
pub fn user_name(client: &WorkloadId, dialect: SqlDialect) -> String {
    let full = format!("{}_{}", client.name(), client.namespace()).replace('-', "_");
    let max = match dialect {
        SqlDialect::PostgreSql => 63,
        SqlDialect::MySql => 32,
    };
    if full.len() <= max {
        return full;
    }
    format!("{}_{}", &full[..max - 7], hex_digest(&full, 3))
}

fn privileges(ops: &[SqlOperation]) -> String {
    if ops.contains(&SqlOperation::All) {
        return "ALL PRIVILEGES".into();
    }
    ops.iter()
        .map(|o| o.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn postgres(user: &str, grants: &[(&WorkloadId, &SqlPrivilege)]) -> Vec<String> {
    let u = pg_ident(user);
    let mut out = vec![format!(
        "DO $$ BEGIN CREATE ROLE {u} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;"
    )];
    let mut by_db: BTreeMap<&str, Vec<&SqlPrivilege>> = BTreeMap::new();
    for (_, p) in grants {
        by_db.entry(p.database.as_str()).or_default().push(p);
    }
    for (db, privs) in by_db {
        out.push(format!("\\connect {}", pg_ident(db)));
        out.push(format!(
            "GRANT CONNECT ON DATABASE {} TO {u};",
            pg_ident(db)
        ));
        for p in privs {
            let ops = privileges(&p.operations);
            match &p.table {
                Some(table) => {
                    let name = table.split('.').map(pg_ident).collect::<Vec<_>>().join(".");
                    out.push(format!("REVOKE ALL ON TABLE {name} FROM {u};"));
                    out.push(format!("GRANT {ops} ON TABLE {name} TO {u};"));
                }
                None => {
                    out.push(format!(
                        "REVOKE ALL ON ALL TABLES IN SCHEMA \"public\" FROM {u};"
                    ));
                    out.push(format!(
                        "GRANT {ops} ON ALL TABLES IN SCHEMA \"public\" TO {u};"
                    ));
                }
            }
        }
    }
    out
}

fn mysql(
    user: &str,
    grants: &[(&WorkloadId, &SqlPrivilege)],
) -> Result<Vec<String>, DocumentError> {
    let u = format!("{}@'%'", mysql_string(user));
    let mut out = vec![format!("CREATE USER IF NOT EXISTS {u};")];
    for (_, p) in grants {
        let on = match &p.table {
            Some(table) if table.contains('.') => {
                return Err(DocumentError::Invalid {
                    at: p.at.clone(),
                    message: format!(
                        "MySQL tables are named within `databaseName`: write `{}`",
                        table.rsplit('.').next().unwrap_or(table)
                    ),
                });
            }
            Some(table) => format!("{}.{}", mysql_ident(&p.database), mysql_ident(table)),
            None => format!("{}.*", mysql_ident(&p.database)),
        };
        out.push(format!(
            "REVOKE IF EXISTS ALL PRIVILEGES ON {on} FROM {u} IGNORE UNKNOWN USER;"
        ));
        out.push(format!(
            "GRANT {} ON {on} TO {u};",
            privileges(&p.operations)
        ));
    }
    Ok(out)
}

/// The server config a target names: `name.namespace` as written, or, when
/// the target gave no namespace and none of that name is in the client's, the
/// only config of that name in any namespace.
fn server_config<'a>(
    configs: &BTreeMap<WorkloadId, &'a DatabaseServerConfig>,
    sql: &SqlTarget,
) -> Result<(WorkloadId, &'a DatabaseServerConfig), String> {
    if let Some(config) = configs.get(&sql.server) {
        return Ok((sql.server.clone(), config));
    }
    let same_name: Vec<(&WorkloadId, &&DatabaseServerConfig)> = configs
        .iter()
        .filter(|(id, _)| id.name() == sql.server.name())
        .collect();
    let kind = |c: &DatabaseServerConfig| match c.dialect {
        SqlDialect::PostgreSql => "PostgreSQLServerConfig",
        SqlDialect::MySql => "MySQLServerConfig",
    };
    match same_name.as_slice() {
        [(id, config)] if !sql.namespace_given => Ok(((*id).clone(), config)),
        [] => Err(format!(
            "no PostgreSQLServerConfig or MySQLServerConfig `{}` is given; add one so ibac knows the dialect and address",
            if sql.namespace_given {
                sql.server.to_string()
            } else {
                sql.server.name().to_string()
            }
        )),
        [(id, config)] => Err(format!(
            "no PostgreSQLServerConfig or MySQLServerConfig `{}` is given; the {} `{}` is in namespace `{}`: write `{id}`",
            sql.server,
            kind(config),
            id.name(),
            id.namespace()
        )),
        several => Err(format!(
            "`{}` is ambiguous: {}; write `name.namespace` (`{}`) to pick one",
            sql.server.name(),
            several
                .iter()
                .map(|(id, c)| format!("{} `{id}`", kind(c)))
                .collect::<Vec<_>>()
                .join(", "),
            several
                .first()
                .map(|(id, _)| id.to_string())
                .unwrap_or_default()
        )),
    }
}

/// Every SQL target in force whose server is named `name`, with its client
/// and what it resolves to among the configs of that name.
fn targets_named<'p>(
    policy: &'p Policy,
    name: &str,
    configs: &BTreeMap<WorkloadId, &'p DatabaseServerConfig>,
) -> Vec<(
    &'p WorkloadId,
    &'p SqlTarget,
    &'p Location,
    Result<WorkloadId, String>,
)> {
    let mut out = Vec::new();
    for client in policy.sql_clients(name) {
        let Some(ci) = policy.intents_of(client) else {
            continue;
        };
        for target in &ci.targets {
            let TargetKind::Sql(sql) = &target.kind else {
                continue;
            };
            if sql.server.name() == name {
                let resolved = server_config(configs, sql).map(|(id, _)| id);
                out.push((client, sql, &target.at, resolved));
            }
        }
    }
    out
}

fn skipped_target(at: &Location, message: &str) -> DocumentError {
    DocumentError::Invalid {
        at: at.clone(),
        message: format!("{message}; the target is skipped"),
    }
}

/// Renders the script of one database server: the grants of every client
/// whose SQL target resolves to its config. A target of its name that
/// resolves to no config, or to several, is reported with each server of
/// that name, since any of them may be the one meant.
pub fn render_server_sql(policy: &Policy, server: &WorkloadId) -> ServerRendering<SqlScript> {
    let mut out = ServerRendering::default();
    if !policy.settings().enforcers.database {
        return out;
    }
    let configs: BTreeMap<WorkloadId, &DatabaseServerConfig> = policy
        .database_configs(server.name())
        .into_iter()
        .map(|(id, c)| (id.clone(), c))
        .collect();
    let Some(config) = configs.get(server) else {
        return out;
    };
    out.protected = policy.protection(server).is_protected();
    // client → privileges, in client order
    let mut wanted: BTreeMap<&WorkloadId, Vec<&SqlPrivilege>> = BTreeMap::new();
    for (client, sql, at, resolved) in targets_named(policy, server.name(), &configs) {
        match resolved {
            Ok(id) if &id == server => {}
            Ok(_) => continue,
            Err(message) => {
                out.skipped.push(skipped_target(at, &message));
                continue;
            }
        }
        let granted = wanted.entry(client).or_default();
        for p in &sql.privileges {
            if p.operations.is_empty() {
                out.skipped.push(DocumentError::Invalid {
                    at: p.at.clone(),
                    message: "operations are empty; ibac never grants ALL unless written: list the operations, or ALL (skipped)".into(),
                });
            } else {
                granted.push(p);
            }
        }
    }
    if wanted.is_empty() {
        return out;
    }
    let mut statements = Vec::new();
    for (client, privs) in wanted {
        let user = user_name(client, config.dialect);
        statements.push(format!("-- {client}"));
        let grants: Vec<(&WorkloadId, &SqlPrivilege)> =
            privs.into_iter().map(|p| (client, p)).collect();
        match config.dialect {
            SqlDialect::PostgreSql => statements.extend(postgres(&user, &grants)),
            SqlDialect::MySql => match mysql(&user, &grants) {
                Ok(s) => statements.extend(s),
                Err(e) => out.skipped.push(e),
            },
        }
    }
    out.objects.push(SqlScript {
        server: server.clone(),
        dialect: match config.dialect {
            SqlDialect::PostgreSql => "postgresql",
            SqlDialect::MySql => "mysql",
        },
        address: config.address.clone(),
        statements,
    });
    out
}

/// Renders one script per SQL server named by intents: a fold over
/// [`render_server_sql`], plus the targets of names no config has (they
/// belong to no server).
pub fn render_sql(policy: &Policy) -> Rendered<SqlScript> {
    if !policy.settings().enforcers.database {
        return Rendered::default();
    }
    let (mut out, refused) = Rendered::fold_all(
        policy
            .database_servers()
            .into_iter()
            .map(|server| render_server_sql(policy, &server)),
    );
    for name in policy.sql_names() {
        if policy.database_configs(name).is_empty() {
            for (_, _, at, resolved) in targets_named(policy, name, &BTreeMap::new()) {
                if let Err(message) = resolved {
                    out.skipped.push(skipped_target(at, &message));
                }
            }
        }
    }
    out.skipped.extend(refused);
    // A target several servers may mean was reported by each of them.
    let mut seen = Vec::new();
    out.skipped.retain(|e| {
        let new = !seen.contains(e);
        if new {
            seen.push(e.clone());
        }
        new
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_safely() {
        assert_eq!(pg_ident("or\"ders"), "\"or\"\"ders\"");
        assert_eq!(mysql_ident("a`b"), "`a``b`");
        assert_eq!(mysql_string("it's\\"), "'it''s\\\\'");
    }

    #[test]
    fn user_names_fit_the_dialect() {
        let w = WorkloadId::parse("checkoutservice.otterize-ecom-demo").unwrap();
        assert_eq!(
            user_name(&w, SqlDialect::PostgreSql),
            "checkoutservice_otterize_ecom_demo"
        );
        let my = user_name(&w, SqlDialect::MySql);
        assert_eq!(my.len(), 32);
        assert!(my.starts_with("checkoutservice_otterize_"));
    }
}
