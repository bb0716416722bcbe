//! Every response the tests receive is checked against the served OpenAPI document: its status
//! is one the operation lists, its body matches that response's schema, an error's `code` is
//! one the operation names, and the headers the document requires are there. A drift between
//! the code and the document fails the test that saw it.
use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock},
};

use serde_json::{Value, json};

fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| serde_json::from_str(&chatd::http::api::document()).expect("the document is JSON"))
}

fn validator(schema: &Value) -> Arc<jsonschema::Validator> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<jsonschema::Validator>>>> = OnceLock::new();
    let key = schema.to_string();
    let mut cache = CACHE.get_or_init(Default::default).lock().unwrap();
    cache
        .entry(key)
        .or_insert_with(|| {
            // OpenAPI 3.1 schemas are JSON Schema 2020-12; `$ref`s point into the components.
            let root = json!({"allOf": [schema], "components": {"schemas": document()["components"]["schemas"]}});
            Arc::new(jsonschema::draft202012::options().should_validate_formats(true).build(&root).expect("the schema compiles"))
        })
        .clone()
}

/// Fails with every way `instance` differs from `schema` (an OpenAPI schema of the document).
pub fn assert_matches(schema: &Value, instance: &Value, what: &str) {
    let validator = validator(schema);
    let errors: Vec<String> = validator.iter_errors(instance).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "{what} does not match the OpenAPI document:\n{}\nbody: {instance}", errors.join("\n"));
}

/// The operation a request reached, by method and path template.
fn operation(method: &str, path: &str) -> Option<(&'static str, &'static Value)> {
    let method = if method.eq_ignore_ascii_case("HEAD") { "get".to_owned() } else { method.to_ascii_lowercase() };
    let segments: Vec<&str> = path.split('/').collect();
    document()["paths"].as_object()?.iter().find_map(|(template, item)| {
        let pattern: Vec<&str> = template.split('/').collect();
        let matches = pattern.len() == segments.len()
            && pattern.iter().zip(&segments).all(|(p, s)| if p.starts_with('{') { !s.is_empty() } else { p == s });
        if !matches {
            return None;
        }
        item.get(&method).map(|op| (template.as_str(), op))
    })
}

fn resolve(response: &Value) -> &Value {
    match response["$ref"].as_str() {
        Some(reference) => &document()["components"]["responses"][reference.rsplit('/').next().unwrap()],
        None => response,
    }
}

/// A response's body as JSON (null when empty, a string when not JSON), checked with
/// [`check_response`].
pub fn checked_body(method: &str, path: &str, status: u16, headers: &reqwest::header::HeaderMap, text: String) -> Value {
    let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
    check_response(method, path, status, headers, &body);
    body
}

/// Checks one response against the document. `path` may carry a query.
pub fn check_response(method: &str, path: &str, status: u16, headers: &reqwest::header::HeaderMap, body: &Value) {
    let path = path.split('?').next().unwrap();
    let Some((template, operation)) = operation(method, path).filter(|_| path.starts_with("/api/")) else {
        // Outside the API's operations (an unknown path, a wrong method): still the error shape.
        if status >= 400 && path.starts_with("/api/") && body.is_object() {
            assert_matches(&json!({"$ref": "#/components/schemas/ErrorBody"}), body, &format!("{method} {path} → {status}"));
        }
        return;
    };
    let id = operation["operationId"].as_str().unwrap();
    let what = format!("{method} {path} ({id}) → {status}");
    let Some(response) = operation["responses"].get(status.to_string()) else {
        let listed: Vec<&String> = operation["responses"].as_object().unwrap().keys().collect();
        panic!("{what}: the document lists only {listed:?} for {template}; body: {body}");
    };
    let response = resolve(response);
    for (name, header) in response["headers"].as_object().into_iter().flatten() {
        if header["required"] == true {
            assert!(headers.contains_key(name.as_str()), "{what}: the document requires a `{name}` header");
        }
    }
    if method.eq_ignore_ascii_case("HEAD") {
        return;
    }
    let Some(media) = response["content"].get("application/json") else {
        assert!(body.is_null(), "{what}: the document says no body, but one came: {body}");
        return;
    };
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(content_type.starts_with("application/json"), "{what}: content type {content_type:?}");
    assert_matches(&media["schema"], body, &what);
    if let Some(examples) = media["examples"].as_object() {
        let code = body["code"].as_str().unwrap_or_default();
        assert!(examples.contains_key(code), "{what}: code `{code}` is not among those the document lists: {:?}", examples.keys().collect::<Vec<_>>());
    }
}
