//! API tokens: who may call the control plane, and for which namespaces.

use super::*;

impl Control {
    /// Who holds a bearer token.
    pub fn token_caller(&self, secret: &str) -> Option<Caller> {
        self.tokens.load().caller(secret)
    }

    /// Creates the admin token if there is none yet; returns its secret
    /// when it was created.
    pub async fn ensure_admin_token(&self) -> Result<Option<String>, ControlError> {
        if self.tokens.load().has_name("admin") {
            return Ok(None);
        }
        let secret = self
            .create_token(
                &Caller::Admin {
                    name: "ibac up".into(),
                },
                "admin",
                None,
            )
            .await?;
        Ok(Some(secret))
    }

    /// Makes an API token; `namespaces: None` makes an admin token.
    pub async fn create_token(
        &self,
        caller: &Caller,
        name: &str,
        namespaces: Option<Vec<String>>,
    ) -> Result<String, ControlError> {
        if !caller.is_admin() {
            return Err(ControlError::NotAllowed(
                "only an admin token may make tokens".into(),
            ));
        }
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(ControlError::Invalid(format!(
                "`{name}` is not a token name: use letters, digits, `-`, `_` and `.`"
            )));
        }
        if let Some(ns) = &namespaces {
            for n in ns {
                Namespace::parse(n).map_err(|e| ControlError::Invalid(format!("`{n}`: {e}")))?;
            }
        }
        let _guard = self.writer.lock().await;
        if self.tokens.load().has_name(name) {
            return Err(ControlError::Conflict(format!(
                "a token named `{name}` exists"
            )));
        }
        let secret = new_secret().map_err(|_| ControlError::Internal("no randomness".into()))?;
        let row = TokenRow {
            hash: hash_secret(&secret),
            name: name.to_string(),
            namespaces: namespaces.clone(),
            created_at: now(),
        };
        let scope = match &namespaces {
            None => "all namespaces".into(),
            Some(ns) => format!("namespaces {}", ns.join(", ")),
        };
        let change = Change {
            put_tokens: vec![row],
            ..audited(caller, "token-create", name, scope)
        };
        let rows = self
            .on_store(move |s| {
                s.write(&change)?;
                s.tokens()
            })
            .await?;
        self.tokens.store(Arc::new(Tokens::new(rows)));
        Ok(secret)
    }
}
