//! The conversion webhook: the API server stores Otterize's kinds as
//! `v2beta1` and asks here whenever an object is written or read in another
//! version. The object's spec is read by ibac-model into its one canonical
//! form and written in the version asked for; metadata and status are kept as
//! they are (the API server refuses any other change to them).
//!
//! What the version asked for cannot hold (ports, a topic prefix, a kind in
//! v1alpha2, cloud targets before v1alpha3) is refused with its field path,
//! never dropped: a conversion that loses a rule would widen or narrow access
//! behind the user's back.

use ibac_model::encode::encode_as;
use ibac_model::{Document, Format};
use serde_json::{Value, json};

use super::validate;

/// Converts one object to `desired` (an apiVersion), or says why not.
pub fn convert(object: &Value, desired: &str) -> Result<Value, String> {
    let from = object["apiVersion"].as_str().unwrap_or_default();
    if from == desired {
        return Ok(object.clone());
    }
    let format = Format::parse(desired).map_err(|hint| match hint {
        Some(hint) => format!("`{desired}` is not a version ibac converts to: {hint}"),
        None => format!("`{desired}` is not a version ibac converts to"),
    })?;
    let namespace = object["metadata"]["namespace"].as_str();
    let (parsed, indexed) = validate::read(object, namespace);
    if !parsed.errors.is_empty() {
        let problems: Vec<String> = parsed
            .errors
            .iter()
            .map(|e| match e.location() {
                Some(at) => validate::placed(at, &e.to_string(), &indexed),
                None => e.to_string(),
            })
            .collect();
        return Err(format!(
            "cannot read the object as {from}: {}",
            problems.join("; ")
        ));
    }
    let doc: &Document = match parsed.documents.as_slice() {
        [doc] => doc,
        _ => return Err(format!("the object is not one {from} document")),
    };
    let encoded = encode_as(doc, format).map_err(|e| {
        let text = e.to_string();
        match e.field {
            // The place is the document; the field says where in it.
            Some(field) => {
                let message = text.strip_prefix(&format!("{}: ", e.at)).unwrap_or(&text);
                format!("{field}: {message}")
            }
            None => validate::placed(&e.at, &text, &indexed),
        }
    })?;
    let spec = encoded
        .spec_json()
        .map_err(|e| format!("cannot write the spec as {desired}: {e}"))?;
    let mut converted = object.clone();
    converted["apiVersion"] = Value::String(desired.to_owned());
    converted["spec"] = spec;
    Ok(converted)
}

/// Answers an `apiextensions.k8s.io/v1` ConversionReview: every object
/// converted, or a failure that names the first object that cannot be and why.
pub fn review(request: &Value) -> Value {
    let uid = request["request"]["uid"].clone();
    let desired = request["request"]["desiredAPIVersion"]
        .as_str()
        .unwrap_or_default();
    let objects = request["request"]["objects"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut converted = Vec::with_capacity(objects.len());
    let mut failure = None;
    for object in objects {
        match convert(object, desired) {
            Ok(object) => converted.push(object),
            Err(message) => {
                let name = object["metadata"]["name"].as_str().unwrap_or_default();
                let kind = object["kind"].as_str().unwrap_or_default();
                failure = Some(format!("{kind} `{name}`: {message}"));
                break;
            }
        }
    }
    let response = match failure {
        None => json!({
            "uid": uid,
            "convertedObjects": converted,
            "result": {"status": "Success"},
        }),
        Some(message) => json!({
            "uid": uid,
            "result": {"status": "Failure", "message": message},
        }),
    };
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "ConversionReview",
        "response": response,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored() -> Value {
        json!({
            "apiVersion": "k8s.otterize.com/v2beta1",
            "kind": "ClientIntents",
            "metadata": {
                "name": "checkout", "namespace": "shop", "uid": "1234",
                "resourceVersion": "7", "labels": {"team": "a"},
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
            },
            "spec": {
                "workload": {"name": "checkout", "kind": "Deployment"},
                "targets": [
                    {"kubernetes": {"name": "cart"}},
                    {"service": {"name": "catalog.other", "http": [{"path": "/products", "methods": ["GET"]}]}},
                    {"kafka": {"name": "kafka.kafka", "topics": [{"name": "orders", "operations": ["produce"]}]}},
                ],
            },
            "status": {"upToDate": true, "observedGeneration": 3},
        })
    }

    #[test]
    fn converts_to_v1alpha3_and_back_keeping_metadata_and_status() {
        let v1 = convert(&stored(), "k8s.otterize.com/v1alpha3").unwrap();
        assert_eq!(v1["apiVersion"], "k8s.otterize.com/v1alpha3");
        assert_eq!(v1["metadata"], stored()["metadata"]);
        assert_eq!(v1["status"], stored()["status"]);
        assert_eq!(v1["spec"]["service"]["name"], "checkout");
        assert_eq!(v1["spec"]["calls"][1]["name"], "svc:catalog.other");
        assert_eq!(v1["spec"]["calls"][2]["kafkaTopics"][0]["name"], "orders");
        let back = convert(&v1, "k8s.otterize.com/v2beta1").unwrap();
        assert_eq!(back, stored());
    }

    #[test]
    fn what_an_older_version_cannot_hold_is_refused_with_its_field_path() {
        let mut object = stored();
        object["spec"]["targets"][0]["kubernetes"]["kind"] = json!("StatefulSet");
        object["spec"]["workload"]["kind"] = Value::Null;
        object["spec"]["workload"] = json!({"name": "checkout"});
        let error = convert(&object, "k8s.otterize.com/v1alpha2").unwrap_err();
        assert_eq!(
            error,
            "spec.targets[0]: cannot write as k8s.otterize.com/v1alpha2: the target has the kind `StatefulSet` and v1alpha2 has no `kind`; read it as k8s.otterize.com/v2beta1"
        );
    }

    #[test]
    fn a_kind_v1alpha2_cannot_hold_is_refused() {
        let error = convert(&stored(), "k8s.otterize.com/v1alpha2").unwrap_err();
        assert_eq!(
            error,
            "spec.workload.kind: cannot write as k8s.otterize.com/v1alpha2: the client has the kind `Deployment` and v1alpha2 has no `kind`; read it as k8s.otterize.com/v2beta1"
        );
    }

    #[test]
    fn review_answers_every_object_or_fails_with_the_first_refusal() {
        let request = json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "ConversionReview",
            "request": {
                "uid": "u1",
                "desiredAPIVersion": "k8s.otterize.com/v1beta1",
                "objects": [stored(), stored()],
            },
        });
        let answer = review(&request);
        assert_eq!(answer["kind"], "ConversionReview");
        assert_eq!(answer["response"]["uid"], "u1");
        assert_eq!(answer["response"]["result"]["status"], "Success");
        assert_eq!(
            answer["response"]["convertedObjects"][1]["apiVersion"],
            "k8s.otterize.com/v1beta1"
        );

        let request = json!({
            "request": {
                "uid": "u2",
                "desiredAPIVersion": "k8s.otterize.com/v1alpha2",
                "objects": [stored()],
            },
        });
        let answer = review(&request);
        assert_eq!(answer["response"]["result"]["status"], "Failure");
        let message = answer["response"]["result"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("ClientIntents `checkout`: ")
                && message.contains("v1alpha2 has no `kind`"),
            "{message}"
        );
    }

    #[test]
    fn the_same_version_is_returned_unchanged() {
        assert_eq!(
            convert(&stored(), "k8s.otterize.com/v2beta1").unwrap(),
            stored()
        );
    }
}
