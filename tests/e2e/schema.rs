//! Real `-o json` outputs checked against the published JSON Schema files in `schemas/`.
//! A small validator for the subset those files use (`type`, `const`, `enum`,
//! `properties`, `required`, `additionalProperties: false`, `items`), so a field added to
//! the output but not to the schema, or the other way round, fails.

use serde_json::Value;

/// Checks `text` (a command's stdout) against `schemas/{name}.json`; panics naming the path.
pub fn check(name: &str, text: &str) {
    let path = format!("{}/schemas/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")),
    )
    .unwrap_or_else(|e| panic!("{path}: {e}"));
    let value: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    if let Err(e) = validate(&schema, &value, "$") {
        panic!("{path}: {e}\n{text}");
    }
}

fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_u64() || n.is_i64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn validate(schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    let known = [
        "$schema",
        "$id",
        "title",
        "description",
        "type",
        "const",
        "enum",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "minimum",
    ];
    if let Some(obj) = schema.as_object() {
        if let Some(k) = obj.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(format!("{at}: the checker does not know the keyword {k}"));
        }
    }
    if let Some(t) = schema.get("type") {
        let allowed: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => return Err(format!("{at}: bad type in schema")),
        };
        if !allowed.contains(&type_of(v)) {
            return Err(format!("{at}: {} is not {allowed:?}", type_of(v)));
        }
    }
    if let Some(c) = schema.get("const") {
        if c != v {
            return Err(format!("{at}: {v} is not {c}"));
        }
    }
    if let Some(Value::Array(e)) = schema.get("enum") {
        if !e.contains(v) {
            return Err(format!("{at}: {v} is not one of {e:?}"));
        }
    }
    if let Some(Value::Number(min)) = schema.get("minimum") {
        if v.as_f64().unwrap_or(f64::MIN) < min.as_f64().unwrap_or(0.0) {
            return Err(format!("{at}: {v} below {min}"));
        }
    }
    if let Value::Object(fields) = v {
        let props = schema.get("properties").and_then(Value::as_object);
        for r in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let r = r.as_str().unwrap_or_default();
            if !fields.contains_key(r) {
                return Err(format!("{at}: missing required {r}"));
            }
        }
        for (k, field) in fields {
            match props.and_then(|p| p.get(k)) {
                Some(s) => validate(s, field, &format!("{at}.{k}"))?,
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    return Err(format!("{at}: {k} is not in the schema"));
                }
                None => {}
            }
        }
    }
    if let (Value::Array(items), Some(s)) = (v, schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            validate(s, item, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

#[test]
fn the_checker_rejects_what_the_schema_does_not_say() {
    let schema: Value = serde_json::json!({
        "type": "object", "additionalProperties": false, "required": ["schema", "a"],
        "properties": {"schema": {"type": "integer", "const": 1},
                       "a": {"type": "array", "items": {"enum": ["x", "y"]}}}
    });
    let ok = serde_json::json!({"schema": 1, "a": ["x"]});
    assert_eq!(validate(&schema, &ok, "$"), Ok(()));
    for bad in [
        serde_json::json!({"schema": 1, "a": ["x"], "extra": 1}),
        serde_json::json!({"schema": 2, "a": []}),
        serde_json::json!({"schema": 1}),
        serde_json::json!({"schema": 1, "a": ["z"]}),
        serde_json::json!({"schema": "1", "a": []}),
    ] {
        assert!(validate(&schema, &bad, "$").is_err(), "{bad}");
    }
}
