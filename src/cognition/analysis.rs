//! TEMPORARY stub until wip-analysis merges.
use serde_json::{json, Value};
pub struct Analysis(String);
pub fn analyze(text: &str) -> Analysis {
    Analysis(text.to_string())
}
impl Analysis {
    pub fn to_json(&self) -> Value {
        let t = if self.0.trim_end().ends_with('?') { "question" } else { "statement" };
        json!({ "sentenceType": t, "confidence": 0.5, "words": self.0.split_whitespace().count(), "language": { "name": "English" } })
    }
}
