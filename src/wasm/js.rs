//! Plain JS objects in and out: building result objects, and reading option objects with typed
//! errors (a wrong type or an unknown key is `invalid_options`, never a panic).

use js_sys::{Array, Object, Reflect};
use wasm_bindgen::{JsCast, JsValue};

use crate::error::{Error, Result};
use crate::grammar::Grammar;

/// `{k1: v1, k2: v2, …}`.
pub fn object(fields: &[(&str, JsValue)]) -> JsValue {
    let obj = Object::new();
    for (k, v) in fields {
        // Setting a data property on a fresh plain object cannot fail.
        let _ = Reflect::set(&obj, &JsValue::from_str(k), v);
    }
    obj.into()
}

pub fn num(n: impl Into<f64>) -> JsValue {
    JsValue::from_f64(n.into())
}

/// An options object as the worker passes it (undefined/null = no options).
pub struct Options {
    obj: Option<Object>,
    what: &'static str,
}

impl Options {
    /// Checks that `value` is an object whose keys are all in `allowed` (catches typos early).
    pub fn new(value: &JsValue, what: &'static str, allowed: &[&str]) -> Result<Options> {
        if value.is_undefined() || value.is_null() {
            return Ok(Options { obj: None, what });
        }
        let obj = value.dyn_ref::<Object>().filter(|_| !value.is_function()).ok_or_else(|| {
            Error::invalid_options(format!("{what}: options must be an object"))
        })?;
        for key in Object::keys(obj).iter() {
            let key = key.as_string().unwrap_or_default();
            if !allowed.contains(&key.as_str()) {
                return Err(Error::invalid_options(format!(
                    "{what}: unknown option '{key}'; known options: {}",
                    allowed.join(", ")
                )));
            }
        }
        Ok(Options { obj: Some(obj.clone()), what })
    }

    fn get(&self, key: &str) -> Option<JsValue> {
        let v = Reflect::get(self.obj.as_ref()?, &JsValue::from_str(key)).ok()?;
        (!v.is_undefined() && !v.is_null()).then_some(v)
    }

    fn bad(&self, key: &str, want: &str) -> Error {
        Error::invalid_options(format!("{}: '{key}' must be {want}", self.what))
    }

    pub fn f64(&self, key: &str) -> Result<Option<f64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_f64().filter(|n| n.is_finite()).map(Some).ok_or_else(|| self.bad(key, "a finite number")),
        }
    }

    /// A whole number in `0..=max`.
    pub fn uint(&self, key: &str, max: f64) -> Result<Option<u64>> {
        match self.f64(key)? {
            Some(n) if n < 0.0 || n > max || n.fract() != 0.0 => Err(self.bad(key, &format!("a whole number from 0 to {max}"))),
            n => Ok(n.map(|n| n as u64)),
        }
    }

    pub fn bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_bool().map(Some).ok_or_else(|| self.bad(key, "true or false")),
        }
    }

    /// A string or an array of strings.
    pub fn strings(&self, key: &str) -> Result<Vec<String>> {
        let Some(v) = self.get(key) else { return Ok(Vec::new()) };
        if let Some(s) = v.as_string() {
            return Ok(vec![s]);
        }
        let arr = v.dyn_ref::<Array>().ok_or_else(|| self.bad(key, "a string or an array of strings"))?;
        arr.iter().map(|s| s.as_string().ok_or_else(|| self.bad(key, "a string or an array of strings"))).collect()
    }

    /// An array of token ids.
    pub fn tokens(&self, key: &str) -> Result<Vec<u32>> {
        let Some(v) = self.get(key) else { return Ok(Vec::new()) };
        if !Array::is_array(&v) && !v.is_instance_of::<js_sys::Uint32Array>() {
            return Err(self.bad(key, "an array of token ids"));
        }
        Array::from(&v)
            .iter().map(|t| token_id(&t).ok_or_else(|| self.bad(key, "an array of token ids"))).collect()
    }

    /// `{ jsonSchema: object|string }`, `{ regex: string }`, `{ lark: string }` or `{ gbnf: string }`.
    pub fn grammar(&self, key: &str) -> Result<Option<Grammar>> {
        let Some(v) = self.get(key) else { return Ok(None) };
        let want = "one of { jsonSchema: object|string }, { regex: string }, { lark: string }, { gbnf: string }";
        let obj = v.dyn_ref::<Object>().filter(|_| !Array::is_array(&v)).ok_or_else(|| self.bad(key, want))?;
        let keys: Vec<String> = Object::keys(obj).iter().filter_map(|k| k.as_string()).collect();
        let [kind] = keys.as_slice() else { return Err(self.bad(key, want)) };
        let value = Reflect::get(obj, &JsValue::from_str(kind)).unwrap_or(JsValue::UNDEFINED);
        let text = match value.as_string() {
            Some(s) => s,
            None if kind == "jsonSchema" && value.is_object() => js_sys::JSON::stringify(&value)
                .ok()
                .and_then(|s| s.as_string())
                .ok_or_else(|| self.bad(key, "a JSON Schema that JSON.stringify can write"))?,
            None => return Err(self.bad(key, want)),
        };
        Ok(Some(match kind.as_str() {
            "jsonSchema" => Grammar::JsonSchema(text),
            "regex" => Grammar::Regex(text),
            "lark" => Grammar::Lark(text),
            "gbnf" => Grammar::Gbnf(text),
            _ => return Err(self.bad(key, want)),
        }))
    }

    /// `{ "<token id>": bias, … }`.
    pub fn token_map(&self, key: &str) -> Result<Vec<(u32, f32)>> {
        let Some(v) = self.get(key) else { return Ok(Vec::new()) };
        let obj = v.dyn_ref::<Object>().ok_or_else(|| self.bad(key, "an object { tokenId: bias }"))?;
        let mut out = Vec::new();
        for entry in Object::entries(obj).iter() {
            let pair = Array::from(&entry);
            let id = pair.get(0).as_string().and_then(|s| s.parse::<u32>().ok());
            let bias = pair.get(1).as_f64();
            match (id, bias) {
                (Some(id), Some(b)) => out.push((id, b as f32)),
                _ => return Err(self.bad(key, "an object { tokenId: bias } with numeric biases")),
            }
        }
        Ok(out)
    }
}

fn token_id(v: &JsValue) -> Option<u32> {
    v.as_f64().filter(|n| *n >= 0.0 && *n <= u32::MAX as f64 && n.fract() == 0.0).map(|n| n as u32)
}
