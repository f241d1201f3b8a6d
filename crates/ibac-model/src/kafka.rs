//! Kafka operations and topic patterns as intents name them.

use crate::glob::Glob;
use crate::text::as_str_text;

/// An operation on a Kafka topic, spelled as Otterize spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KafkaOperation {
    /// Every operation.
    All,
    /// Read records (with the consumer group).
    Consume,
    /// Write records.
    Produce,
    /// Create the topic.
    Create,
    /// Alter the topic.
    Alter,
    /// Delete the topic.
    Delete,
    /// Describe the topic.
    Describe,
    /// Cluster-level actions.
    ClusterAction,
    /// Read configuration.
    DescribeConfigs,
    /// Change configuration.
    AlterConfigs,
    /// Idempotent produce.
    IdempotentWrite,
}

impl KafkaOperation {
    /// Every operation, in the documented order.
    pub const ALL: [KafkaOperation; 11] = [
        KafkaOperation::All,
        KafkaOperation::Consume,
        KafkaOperation::Produce,
        KafkaOperation::Create,
        KafkaOperation::Alter,
        KafkaOperation::Delete,
        KafkaOperation::Describe,
        KafkaOperation::ClusterAction,
        KafkaOperation::DescribeConfigs,
        KafkaOperation::AlterConfigs,
        KafkaOperation::IdempotentWrite,
    ];

    /// The spelling documents use.
    pub fn as_str(self) -> &'static str {
        match self {
            KafkaOperation::All => "all",
            KafkaOperation::Consume => "consume",
            KafkaOperation::Produce => "produce",
            KafkaOperation::Create => "create",
            KafkaOperation::Alter => "alter",
            KafkaOperation::Delete => "delete",
            KafkaOperation::Describe => "describe",
            KafkaOperation::ClusterAction => "ClusterAction",
            KafkaOperation::DescribeConfigs => "DescribeConfigs",
            KafkaOperation::AlterConfigs => "AlterConfigs",
            KafkaOperation::IdempotentWrite => "IdempotentWrite",
        }
    }

    /// Parses an operation; on failure, returns the likely intended one.
    pub fn parse(text: &str) -> Result<Self, Option<&'static str>> {
        if let Some(op) = Self::ALL.into_iter().find(|op| op.as_str() == text) {
            return Ok(op);
        }
        let lower = text.to_ascii_lowercase();
        let suggestion = match lower.as_str() {
            "read" => Some("consume"),
            "write" => Some("produce"),
            _ => Self::ALL
                .into_iter()
                .find(|op| op.as_str().eq_ignore_ascii_case(text))
                .map(Self::as_str),
        };
        Err(suggestion)
    }
}

as_str_text!(KafkaOperation);

/// Which topics a Kafka intent covers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TopicPattern {
    /// One topic by name.
    Literal(String),
    /// Every topic whose name starts with this (written `name*`, ibac documents only).
    Prefix(String),
    /// Every topic (written `*`).
    Any,
}

/// Why a topic name is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// Bad characters or length.
    #[error("topic names have 1 to 249 of `a-z A-Z 0-9 . _ -`")]
    Name,
    /// A prefix in a format that cannot express one.
    #[error("prefixed topics (`name*`) exist only in ibac.dev/v1 documents")]
    PrefixNotAllowed,
    /// A `*` inside the name.
    #[error("`*` may only end a topic name (a prefix) or stand alone (every topic)")]
    Wildcard,
}

impl TopicPattern {
    /// Parses a topic as written; prefixes only when `allow_prefix`.
    pub fn parse(text: &str, allow_prefix: bool) -> Result<Self, TopicError> {
        if text == "*" {
            return Ok(TopicPattern::Any);
        }
        let (name, prefix) = match text.strip_suffix('*') {
            Some(name) => (name, true),
            None => (text, false),
        };
        if name.contains('*') {
            return Err(TopicError::Wildcard);
        }
        let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if name.is_empty() || name.len() > 249 || !name.chars().all(legal) {
            return Err(TopicError::Name);
        }
        match (prefix, allow_prefix) {
            (true, false) => Err(TopicError::PrefixNotAllowed),
            (true, true) => Ok(TopicPattern::Prefix(name.to_string())),
            (false, _) => Ok(TopicPattern::Literal(name.to_string())),
        }
    }

    /// Whether this pattern covers the named topic.
    pub fn matches(&self, topic: &str) -> bool {
        self.glob().matches(topic)
    }

    fn glob(&self) -> Glob<'_> {
        match self {
            TopicPattern::Literal(t) => Glob::Exact(t),
            TopicPattern::Prefix(p) => Glob::Prefix(p),
            TopicPattern::Any => Glob::Any,
        }
    }
}

crate::glob::written_as_glob!(TopicPattern);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_hint_at_the_right_spelling() {
        assert_eq!(
            KafkaOperation::parse("consume"),
            Ok(KafkaOperation::Consume)
        );
        assert_eq!(KafkaOperation::parse("read"), Err(Some("consume")));
        assert_eq!(KafkaOperation::parse("Write"), Err(Some("produce")));
        assert_eq!(KafkaOperation::parse("Consume"), Err(Some("consume")));
        assert_eq!(
            KafkaOperation::parse("clusteraction"),
            Err(Some("ClusterAction"))
        );
        assert_eq!(KafkaOperation::parse("fly"), Err(None));
    }

    #[test]
    fn topics() {
        assert_eq!(
            TopicPattern::parse("orders", false),
            Ok(TopicPattern::Literal("orders".into()))
        );
        assert_eq!(TopicPattern::parse("*", false), Ok(TopicPattern::Any));
        assert_eq!(
            TopicPattern::parse("ord*", false),
            Err(TopicError::PrefixNotAllowed)
        );
        assert_eq!(
            TopicPattern::parse("ord*", true),
            Ok(TopicPattern::Prefix("ord".into()))
        );
        assert_eq!(TopicPattern::parse("o*d", true), Err(TopicError::Wildcard));
        assert_eq!(TopicPattern::parse("a b", true), Err(TopicError::Name));
        assert!(TopicPattern::Prefix("ord".into()).matches("orders"));
    }
}
