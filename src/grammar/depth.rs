//! Bounds on how deeply a grammar nests, checked before llguidance compiles it: its compilers
//! recurse once per level of rule reference (Lark) or of subschema and `$ref` (JSON Schema), and
//! a chain of a thousand rules, or of a thousand `$ref`s, overflows wasm's 1 MiB stack — a trap
//! that kills the worker. 600 rule levels and 100 `$ref` levels compiled in our tests; grammars
//! people write nest a few dozen deep.

use std::collections::HashMap;

use serde_json::Value;

use crate::error::{Error, Result};

pub const MAX_RULE_DEPTH: usize = 256;
/// JSON values (objects and arrays) on the longest path through a schema, `$ref`s followed.
pub const MAX_SCHEMA_DEPTH: usize = 256;

/// `InvalidOptions` if a chain of rule references in `lark` is longer than [`MAX_RULE_DEPTH`].
/// Rules are lines `name: …` or `name.priority: …` (continued by lines starting with `|`); a
/// reference is a rule's name in another rule's body, outside strings and regexes. Cycles
/// (recursion) count once: the compiler does not unroll them.
pub fn check(lark: &str, kind: &str) -> Result<()> {
    let rules = rules(lark);
    let index: HashMap<&str, usize> = rules.iter().enumerate().map(|(i, (name, _))| (*name, i)).collect();
    let edges: Vec<Vec<usize>> = rules.iter().map(|(_, body)| names(body).filter_map(|n| index.get(n).copied()).collect()).collect();
    match deeper_than(&edges, MAX_RULE_DEPTH) {
        Some(rule) => Err(Error::invalid_options(format!(
            "{kind}: rules nest more than {MAX_RULE_DEPTH} levels deep (from rule '{}'); flatten the grammar",
            rules[rule].0
        ))),
        None => Ok(()),
    }
}

/// `InvalidOptions` if a path through `schema`'s objects and arrays, following local `$ref`s
/// (`#/…`), is longer than [`MAX_SCHEMA_DEPTH`].
pub fn check_schema(schema: &Value) -> Result<()> {
    // Every object and array, by address; edges to its children and to what its `$ref` names.
    let mut nodes: Vec<&Value> = Vec::new();
    let mut index: HashMap<*const Value, usize> = HashMap::new();
    let mut todo = vec![schema];
    while let Some(v) = todo.pop() {
        if index.contains_key(&(v as *const Value)) {
            continue;
        }
        index.insert(v, nodes.len());
        nodes.push(v);
        todo.extend(children(v));
    }
    let edges: Vec<Vec<usize>> = nodes
        .iter()
        .map(|v| {
            let target = v.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix('#')).and_then(|p| schema.pointer(p));
            children(v).chain(target.filter(|t| t.is_object() || t.is_array())).map(|c| index[&(c as *const Value)]).collect()
        })
        .collect();
    match deeper_than(&edges, MAX_SCHEMA_DEPTH) {
        Some(_) => Err(Error::invalid_options(format!(
            "json_schema: subschemas and $refs nest more than {MAX_SCHEMA_DEPTH} levels deep; flatten the schema"
        ))),
        None => Ok(()),
    }
}

fn children(v: &Value) -> impl Iterator<Item = &Value> {
    let (a, o) = match v {
        Value::Array(a) => (Some(a.iter()), None),
        Value::Object(o) => (None, Some(o.values())),
        _ => (None, None),
    };
    a.into_iter().flatten().chain(o.into_iter().flatten()).filter(|c| c.is_object() || c.is_array())
}

/// A node from which a path of more than `max` nodes starts, if any (cycles count once: the
/// compilers do not unroll them). An explicit stack: a recursive walk would overflow too.
fn deeper_than(edges: &[Vec<usize>], max: usize) -> Option<usize> {
    const NEW: usize = usize::MAX;
    const OPEN: usize = usize::MAX - 1;
    let mut depth = vec![NEW; edges.len()];
    for root in 0..edges.len() {
        if depth[root] != NEW {
            continue;
        }
        let mut stack = vec![(root, 0)];
        depth[root] = OPEN;
        while let Some(&mut (rule, ref mut next)) = stack.last_mut() {
            if let Some(&child) = edges[rule].get(*next) {
                *next += 1;
                if depth[child] == NEW {
                    depth[child] = OPEN;
                    stack.push((child, 0));
                }
                continue;
            }
            // A child still open is on the stack: a cycle, which adds nothing.
            let deepest = edges[rule].iter().map(|&c| if depth[c] >= OPEN { 0 } else { depth[c] }).max().unwrap_or(0);
            depth[rule] = deepest + 1;
            if depth[rule] > max {
                return Some(rule);
            }
            stack.pop();
        }
    }
    None
}

/// Each rule's name and body (its definition's lines joined).
fn rules(lark: &str) -> Vec<(&str, String)> {
    let mut rules: Vec<(&str, String)> = Vec::new();
    for line in lark.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('|') {
            if let Some((_, body)) = rules.last_mut() {
                body.push(' ');
                body.push_str(trimmed);
            }
            continue;
        }
        let Some((head, body)) = trimmed.split_once(':') else { continue };
        let name = head.split('.').next().unwrap_or("").trim();
        if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !line.starts_with(char::is_whitespace) {
            rules.push((name, body.to_string()));
        }
    }
    rules
}

/// The identifiers of a rule body, outside "strings" and /regexes/.
fn names(body: &str) -> impl Iterator<Item = &str> {
    let mut spans = Vec::new();
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'"' | b'/') => {
                i += 1;
                while i < bytes.len() && bytes[i] != quote {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b if b.is_ascii_alphabetic() || b == b'_' => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                spans.push(&body[start..i]);
            }
            _ => i += 1,
        }
    }
    spans.into_iter()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: usize) -> String {
        let mut lark = String::from("start: r0\n");
        for i in 0..n {
            lark.push_str(&format!("r{i}: \"a\" r{} | \"b\"\n", i + 1));
        }
        lark + &format!("r{n}: \"c\"\n")
    }

    #[test]
    fn a_long_chain_is_refused_and_recursion_is_not() {
        assert!(check(&chain(200), "lark").is_ok());
        let err = check(&chain(2000), "lark").unwrap_err();
        assert!(err.message.contains("nest more than 256"), "{}", err.message);
        // Left and mutual recursion, and names inside strings and regexes, are no depth.
        assert!(check("start: list\nlist: list \",\" item | item\nitem: \"r0 r1\" | /r2|r3/ | list\n", "lark").is_ok());
    }

    fn ref_chain(n: usize) -> Value {
        let mut defs = serde_json::Map::new();
        for i in 0..n {
            defs.insert(format!("a{i}"), serde_json::json!({ "type": "array", "items": { "$ref": format!("#/$defs/a{}", i + 1) } }));
        }
        defs.insert(format!("a{n}"), serde_json::json!({ "type": "integer" }));
        serde_json::json!({ "$ref": "#/$defs/a0", "$defs": defs })
    }

    #[test]
    fn a_long_ref_chain_is_refused_and_a_recursive_schema_is_not() {
        assert!(check_schema(&ref_chain(50)).is_ok());
        assert!(check_schema(&ref_chain(1000)).unwrap_err().message.contains("nest more than 256"));
        let tree = serde_json::json!({ "$defs": { "node": { "type": "object", "properties": { "kids": { "type": "array", "items": { "$ref": "#/$defs/node" } } } } }, "$ref": "#/$defs/node" });
        assert!(check_schema(&tree).is_ok());
    }
}
