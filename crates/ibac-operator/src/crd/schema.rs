//! A small vocabulary for writing structural OpenAPI schemas by hand.
//!
//! Every object names its properties and refuses others (a structural schema
//! never preserves unknown fields on what users write), so kubectl's strict
//! field validation reports a misspelt field instead of dropping it.

use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSON, JSONSchemaProps, JSONSchemaPropsOrArray,
};

/// One schema node under construction.
#[derive(Clone, Debug)]
pub struct Schema(pub JSONSchemaProps);

fn typed(type_: &str) -> Schema {
    Schema(JSONSchemaProps {
        type_: Some(type_.to_owned()),
        ..JSONSchemaProps::default()
    })
}

/// A string.
pub fn string() -> Schema {
    typed("string")
}

/// A boolean.
pub fn boolean() -> Schema {
    typed("boolean")
}

/// An integer.
pub fn integer() -> Schema {
    typed("integer")
}

/// A port number, 1 to 65535.
pub fn port() -> Schema {
    let mut s = integer();
    s.0.minimum = Some(1.0);
    s.0.maximum = Some(65535.0);
    s
}

/// An object whose fields the API server itself defines (`metadata`).
pub fn typed_object() -> Schema {
    typed("object")
}

/// A list of `items`.
pub fn array(items: Schema) -> Schema {
    let mut s = typed("array");
    s.0.items = Some(JSONSchemaPropsOrArray::Schema(Box::new(items.0)));
    s
}

/// An object with exactly these properties.
pub fn object<const N: usize>(properties: [(&str, Schema); N]) -> Schema {
    let mut s = typed("object");
    s.0.properties = Some(
        properties
            .into_iter()
            .map(|(name, schema)| (name.to_owned(), schema.0))
            .collect::<BTreeMap<_, _>>(),
    );
    s
}

/// One of these strings.
pub fn one_of_strings(values: &[&str]) -> Schema {
    let mut s = string();
    s.0.enum_ = Some(
        values
            .iter()
            .map(|v| JSON(serde_json::Value::String((*v).to_owned())))
            .collect(),
    );
    s
}

impl Schema {
    /// Adds a description, shown by `kubectl explain`.
    pub fn describe(mut self, text: &str) -> Schema {
        self.0.description = Some(text.to_owned());
        self
    }

    /// Adds one property to an object.
    pub fn property(mut self, name: &str, schema: Schema) -> Schema {
        self.0
            .properties
            .get_or_insert_with(BTreeMap::new)
            .insert(name.to_owned(), schema.0);
        self
    }

    /// Between `min` and `max` properties (an object that holds exactly one of
    /// its fields: `exactly(1)`).
    pub fn exactly_one_property(mut self) -> Schema {
        self.0.min_properties = Some(1);
        self.0.max_properties = Some(1);
        self
    }

    /// Properties that must be present.
    pub fn require(mut self, names: &[&str]) -> Schema {
        self.0.required = Some(names.iter().map(|n| (*n).to_owned()).collect());
        self
    }

    /// A regular expression a string must match.
    pub fn pattern(mut self, pattern: &str) -> Schema {
        self.0.pattern = Some(pattern.to_owned());
        self
    }

    /// The longest a string may be.
    pub fn max_length(mut self, n: i64) -> Schema {
        self.0.max_length = Some(n);
        self
    }

    /// The fewest items a list must have.
    pub fn min_items(mut self, n: i64) -> Schema {
        self.0.min_items = Some(n);
        self
    }

    /// An integer, or a string such as `80` or `http`.
    pub fn int_or_string() -> Schema {
        Schema(JSONSchemaProps {
            x_kubernetes_int_or_string: Some(true),
            ..JSONSchemaProps::default()
        })
    }

    /// `null` is accepted (and dropped), as `kubectl get -o yaml` may print it.
    pub fn nullable(mut self) -> Schema {
        self.0.nullable = Some(true);
        self
    }

    /// A map from strings to `values`.
    pub fn map_of(values: Schema) -> Schema {
        let mut s = typed("object");
        s.0.additional_properties = Some(
            k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrBool::Schema(
                Box::new(values.0),
            ),
        );
        s
    }
}
