//! The model formats the trainers write (`trainyard-train` documents how each is computed) and
//! their parsed, query-ready forms. A model is parsed once when it is loaded; queries only read.

use std::collections::HashMap;

use serde::Deserialize;
use trainyard_core::catalog::FunctionName;
use trainyard_train::ctr::CtrModel;

/// One query of a hot model.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct HotEntry {
    pub query: String,
    /// Searches counted in the training window.
    pub pv: i64,
    /// Distinct users who searched it (absent in models that did not count users).
    #[serde(default)]
    pub uv: Option<i64>,
    /// 0 new, 1 hot, 2 surging (compared with the previous window); absent when not tagged.
    #[serde(default)]
    pub tags: Option<i64>,
}

/// `trainyard.hot.v1`: top queries in the model's order (the `default` sort).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct HotModel {
    pub entries: Vec<HotEntry>,
}

/// One hint word.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct HintEntry {
    pub hint: String,
    pub pv: i64,
}

/// `trainyard.hint.v1`: global hints, and per-user hints when the model is personalized.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct HintModel {
    pub global: Vec<HintEntry>,
    /// Present (possibly empty) exactly when the model was trained as personalized.
    #[serde(default)]
    pub personalized: Option<HashMap<String, Vec<HintEntry>>>,
}

/// `trainyard.pop.v1`: popularity in [0, 1] per item id.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PopModel {
    /// The score the model suggests for items it has not seen.
    #[serde(default)]
    pub default_score: Option<f64>,
    pub scores: HashMap<String, f64>,
}

/// A parsed model of any served function.
#[derive(Debug, Clone, PartialEq)]
pub enum Model {
    Hot(HotModel),
    Hint(HintModel),
    Pop(PopModel),
    /// `trainyard.ctr.v2`, binary: loaded and validated by the trainer's own code.
    Ctr(Box<CtrModel>),
}

#[derive(Deserialize)]
struct Header {
    format: String,
}

/// The format string each function's artifacts carry.
pub fn expected_format(function: FunctionName) -> Option<&'static str> {
    match function {
        FunctionName::Hot => Some("trainyard.hot.v1"),
        FunctionName::Hint => Some("trainyard.hint.v1"),
        FunctionName::Pop => Some("trainyard.pop.v1"),
        FunctionName::Ctr => Some(trainyard_train::ctr::FORMAT),
        _ => None,
    }
}

/// Parses an artifact of `function`; the error says what is wrong with it.
pub fn parse_model(function: FunctionName, bytes: &[u8]) -> Result<Model, String> {
    let Some(expected) = expected_format(function) else {
        return Err(format!("function {function} has no served model format"));
    };
    if function == FunctionName::Ctr {
        return CtrModel::load(bytes).map(|model| Model::Ctr(Box::new(model))).map_err(|error| error.to_string());
    }
    let header: Header = serde_json::from_slice(bytes).map_err(|error| format!("not a model file: {error}"))?;
    if header.format != expected {
        return Err(format!("its format is \"{}\", expected \"{expected}\"", header.format));
    }
    let parsed = match function {
        FunctionName::Hot => serde_json::from_slice(bytes).map(Model::Hot),
        FunctionName::Hint => serde_json::from_slice(bytes).map(Model::Hint),
        _ => serde_json::from_slice(bytes).map(Model::Pop),
    };
    let model = parsed.map_err(|error| format!("{expected} does not parse: {error}"))?;
    if let Model::Pop(pop) = &model
        && let Some((item, score)) = pop.scores.iter().find(|(_, score)| !(0.0..=1.0).contains(*score))
    {
        return Err(format!("item \"{item}\" has popularity {score}, outside [0, 1]"));
    }
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_format() {
        let hot = br#"{"format":"trainyard.hot.v1","generated_at":1,"window_days":14,"entries":[{"query":"a","pv":3,"uv":2,"tags":1}]}"#;
        assert_eq!(
            parse_model(FunctionName::Hot, hot).unwrap(),
            Model::Hot(HotModel { entries: vec![HotEntry { query: "a".into(), pv: 3, uv: Some(2), tags: Some(1) }] })
        );
        let hint = br#"{"format":"trainyard.hint.v1","generated_at":1,"global":[{"hint":"b","pv":2}]}"#;
        let Model::Hint(parsed_hint) = parse_model(FunctionName::Hint, hint).unwrap() else { panic!() };
        assert_eq!(parsed_hint.personalized, None);
        let pop = br#"{"format":"trainyard.pop.v1","generated_at":1,"default_score":0.1,"scores":{"i1":0.5}}"#;
        let Model::Pop(parsed_pop) = parse_model(FunctionName::Pop, pop).unwrap() else { panic!() };
        assert_eq!(parsed_pop.scores["i1"], 0.5);
    }

    #[test]
    fn refuses_wrong_or_damaged_models() {
        assert!(parse_model(FunctionName::Hot, b"{").unwrap_err().contains("not a model file"));
        let pop_as_hot = br#"{"format":"trainyard.pop.v1","scores":{}}"#;
        assert!(parse_model(FunctionName::Hot, pop_as_hot).unwrap_err().contains("expected \"trainyard.hot.v1\""));
        let out_of_range = br#"{"format":"trainyard.pop.v1","scores":{"x":1.5}}"#;
        assert!(parse_model(FunctionName::Pop, out_of_range).unwrap_err().contains("outside [0, 1]"));
        assert!(parse_model(FunctionName::Ctr, b"{}").unwrap_err().contains("damaged"));
        assert!(parse_model(FunctionName::Category, b"{}").unwrap_err().contains("no served model format"));
        let missing_entries = br#"{"format":"trainyard.hot.v1"}"#;
        assert!(parse_model(FunctionName::Hot, missing_entries).unwrap_err().contains("does not parse"));
    }
}
