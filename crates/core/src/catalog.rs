//! The function catalog: the nine functions, their model types, and for each version the
//! create and usage parameters an instance may set — with meaning, default and validation rule.
//!
//! Upstream publishes parameter names for only two functions (ctr's `*_field` parameters and
//! hot's `filter` / `allow_dict_id` / `deny_dict_id`); the rest are Trainyard's design, chosen as
//! what each trainer really needs. Versions are immutable once published: an instance records the
//! `VersionId` it was validated against, and a changed parameter set becomes a new version.
//!
//! Parameters that name a resource (`allow_dict_id`, `deny_dict_id`, ...) take the name of a
//! `raw_file` resource of the same function in the same app group — upstream names intervention
//! dictionaries by id there; Trainyard keeps the names so upstream examples read the same, and
//! the reference is checked when the instance is created or updated.

use std::fmt;

use crate::error::CoreError;
use crate::filter::parse_filter;
use crate::model::{Parameter, ResourceType};

/// The nine functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FunctionName {
    Ctr,
    Pop,
    Category,
    Hot,
    Hint,
    Suggest,
    Analyzer,
    Termweight,
    Synonym,
}

impl FunctionName {
    pub const ALL: [FunctionName; 9] = [
        FunctionName::Ctr,
        FunctionName::Pop,
        FunctionName::Category,
        FunctionName::Hot,
        FunctionName::Hint,
        FunctionName::Suggest,
        FunctionName::Analyzer,
        FunctionName::Termweight,
        FunctionName::Synonym,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FunctionName::Ctr => "ctr",
            FunctionName::Pop => "pop",
            FunctionName::Category => "category",
            FunctionName::Hot => "hot",
            FunctionName::Hint => "hint",
            FunctionName::Suggest => "suggest",
            FunctionName::Analyzer => "analyzer",
            FunctionName::Termweight => "termweight",
            FunctionName::Synonym => "synonym",
        }
    }

    /// Parses a `functionName` path segment.
    pub fn parse(text: &str) -> Result<FunctionName, CoreError> {
        FunctionName::ALL.into_iter().find(|function| function.as_str() == text).ok_or_else(|| {
            CoreError::invalid(
                "functionName",
                format!(
                    "\"{}\" is not a function; the functions are {}",
                    crate::names::printable(text),
                    FunctionName::ALL.map(FunctionName::as_str).join(", ")
                ),
            )
        })
    }
}

impl fmt::Display for FunctionName {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// The behavior types of data collection 2.0 that trainers understand (`expose` = impression).
pub const BEHAVIOR_TYPES: &[&str] = &[
    "expose",
    "click",
    "buy",
    "cart",
    "collect",
    "like",
    "comment",
    "share",
    "subscribe",
    "gift",
    "download",
    "read",
    "tip",
];

/// The query-log fields a hot/hint `filter` may test.
pub const QUERY_LOG_FILTER_FIELDS: &[&str] = &["user_id", "biz_id", "hits", "query"];

/// The base analyzers the text functions can build on.
pub const BASE_ANALYZERS: &[&str] = &["chn_standard", "en_min", "chn_ecommerce", "chn_it_content"];

/// How a parameter value is validated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParameterRule {
    /// A document field name: `^[A-Za-z_][A-Za-z0-9_]{0,63}$`.
    FieldName,
    /// 1..=max distinct field names separated by `,`.
    FieldNameList { max: usize },
    /// One of a closed set.
    OneOf(&'static [&'static str]),
    /// A decimal integer in `min..=max`.
    Integer { min: i64, max: i64 },
    /// A finite decimal number in `min..=max`.
    Number { min: f64, max: f64 },
    /// `true` or `false`.
    Boolean,
    /// A filter expression; `fields` restricts the fields it may test.
    Filter { fields: Option<&'static [&'static str]> },
    /// Behavior types separated by `,`.
    BehaviorTypes,
    /// `type:weight` pairs separated by `,`, weights finite and in (0, 1000].
    BehaviorWeights,
    /// The name of a resource of this type, of the same function and app group.
    ResourceReference(ResourceType),
}

impl ParameterRule {
    /// The rule in words, as published by GetFunctionVersion.
    pub fn describe(&self) -> String {
        match self {
            ParameterRule::FieldName => {
                "a document field name: letters, digits, underscores, 1-64 characters, not starting with a digit".into()
            }
            ParameterRule::FieldNameList { max } => {
                format!("1 to {max} distinct document field names separated by \",\"")
            }
            ParameterRule::OneOf(values) => format!("one of: {}", values.join(", ")),
            ParameterRule::Integer { min, max } => format!("an integer from {min} to {max}"),
            ParameterRule::Number { min, max } => format!("a number from {min} to {max}"),
            ParameterRule::Boolean => "true or false".into(),
            ParameterRule::Filter { fields: Some(fields) } => format!(
                "conditions \"field op value\" joined by \",\" (AND), op one of >= <= > < = !=, fields: {}",
                fields.join(", ")
            ),
            ParameterRule::Filter { fields: None } => {
                "conditions \"field op value\" joined by \",\" (AND), op one of >= <= > < = !=".into()
            }
            ParameterRule::BehaviorTypes => {
                format!("behavior types separated by \",\", from: {}", BEHAVIOR_TYPES.join(", "))
            }
            ParameterRule::BehaviorWeights => format!(
                "\"type:weight\" pairs separated by \",\", weight in (0, 1000], types from: {}",
                BEHAVIOR_TYPES.join(", ")
            ),
            ParameterRule::ResourceReference(resource_type) => {
                format!("the name of a {} resource of this function in the app group", resource_type.as_str())
            }
        }
    }

    /// Checks one value; `field` is the name used in errors (e.g. `createParameters.window_days`).
    pub fn validate(&self, field: &str, value: &str) -> Result<(), CoreError> {
        let refuse = |reason: String| Err(CoreError::invalid(field, reason));
        match self {
            ParameterRule::FieldName => {
                if is_field_name(value) {
                    Ok(())
                } else {
                    refuse(format!("\"{}\" is not {}", crate::names::printable(value), self.describe()))
                }
            }
            ParameterRule::FieldNameList { max } => {
                let names: Vec<&str> = value.split(',').map(str::trim).collect();
                if names.len() > *max {
                    return refuse(format!("{} fields given, at most {max} allowed", names.len()));
                }
                if let Some(bad) = names.iter().find(|name| !is_field_name(name)) {
                    return refuse(format!("\"{}\" is not a document field name", crate::names::printable(bad)));
                }
                let mut sorted = names.clone();
                sorted.sort_unstable();
                sorted.dedup();
                if sorted.len() != names.len() {
                    return refuse("a field is named twice".into());
                }
                Ok(())
            }
            ParameterRule::OneOf(values) => {
                if values.contains(&value) {
                    Ok(())
                } else {
                    refuse(format!("\"{}\" is not {}", crate::names::printable(value), self.describe()))
                }
            }
            ParameterRule::Integer { min, max } => match value.trim().parse::<i64>() {
                Ok(number) if (*min..=*max).contains(&number) => Ok(()),
                _ => refuse(format!("\"{}\" is not {}", crate::names::printable(value), self.describe())),
            },
            ParameterRule::Number { min, max } => match value.trim().parse::<f64>() {
                Ok(number) if number.is_finite() && number >= *min && number <= *max => Ok(()),
                _ => refuse(format!("\"{}\" is not {}", crate::names::printable(value), self.describe())),
            },
            ParameterRule::Boolean => match value {
                "true" | "false" => Ok(()),
                _ => refuse(format!("\"{}\" is not true or false", crate::names::printable(value))),
            },
            ParameterRule::Filter { fields } => parse_filter(field, value, *fields).map(|_| ()),
            ParameterRule::BehaviorTypes => {
                for behavior_type in value.split(',').map(str::trim) {
                    if !BEHAVIOR_TYPES.contains(&behavior_type) {
                        return refuse(format!(
                            "\"{}\" is not a behavior type; known: {}",
                            crate::names::printable(behavior_type),
                            BEHAVIOR_TYPES.join(", ")
                        ));
                    }
                }
                Ok(())
            }
            ParameterRule::BehaviorWeights => {
                for pair in value.split(',').map(str::trim) {
                    let Some((behavior_type, weight)) = pair.split_once(':') else {
                        return refuse(format!("\"{}\" is not a \"type:weight\" pair", crate::names::printable(pair)));
                    };
                    if !BEHAVIOR_TYPES.contains(&behavior_type.trim()) {
                        return refuse(format!(
                            "\"{}\" is not a behavior type; known: {}",
                            crate::names::printable(behavior_type),
                            BEHAVIOR_TYPES.join(", ")
                        ));
                    }
                    match weight.trim().parse::<f64>() {
                        Ok(number) if number.is_finite() && number > 0.0 && number <= 1000.0 => {}
                        _ => {
                            return refuse(format!(
                                "weight \"{}\" is not a number in (0, 1000]",
                                crate::names::printable(weight)
                            ));
                        }
                    }
                }
                Ok(())
            }
            ParameterRule::ResourceReference(_) => crate::names::validate_name(field, value),
        }
    }
}

fn is_field_name(value: &str) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && !bytes[0].is_ascii_digit()
        && bytes.iter().all(|byte| byte.is_ascii_alphanumeric() || *byte == b'_')
}

/// One parameter a version accepts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParameterSpec {
    pub name: &'static str,
    pub required: bool,
    pub description: &'static str,
    /// The value a trainer uses when the parameter is not set.
    pub default_value: Option<&'static str>,
    pub rule: ParameterRule,
}

/// A condition a version needs before training (shown as `Depends`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dependency {
    pub condition: &'static str,
    pub dependency: &'static str,
    pub description: &'static str,
}

/// One published version of a function for one model type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FunctionVersion {
    pub version_id: i64,
    pub version_name: &'static str,
    pub function_name: FunctionName,
    pub model_type: &'static str,
    /// `PAAS`: the instance must be trained before use.
    pub function_type: &'static str,
    /// Empty = general edition.
    pub domain: &'static str,
    /// Empty = default category.
    pub category: &'static str,
    pub description: &'static str,
    pub create_parameters: &'static [ParameterSpec],
    pub usage_parameters: &'static [ParameterSpec],
    pub depends: &'static [Dependency],
}

/// Which of an instance's parameter lists is being validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParameterList {
    Create,
    Usage,
}

impl ParameterList {
    pub fn field_name(self) -> &'static str {
        match self {
            ParameterList::Create => "createParameters",
            ParameterList::Usage => "usageParameters",
        }
    }
}

impl FunctionVersion {
    fn specs(&self, list: ParameterList) -> &'static [ParameterSpec] {
        match list {
            ParameterList::Create => self.create_parameters,
            ParameterList::Usage => self.usage_parameters,
        }
    }

    /// Validates a parameter list against this version: every name known and given once, every
    /// required one present, every value following its rule. Returns the resources it references.
    pub fn validate_parameters(&self, list: ParameterList, parameters: &[Parameter]) -> Result<Vec<String>, CoreError> {
        let list_name = list.field_name();
        let specs = self.specs(list);
        let mut referenced_resources = Vec::new();
        for (index, parameter) in parameters.iter().enumerate() {
            let Some(spec) = specs.iter().find(|spec| spec.name == parameter.name) else {
                let known = if specs.is_empty() {
                    "this version accepts none".to_string()
                } else {
                    format!("known: {}", specs.iter().map(|spec| spec.name).collect::<Vec<_>>().join(", "))
                };
                return Err(CoreError::invalid(
                    format!("{list_name}.{}", crate::names::printable(&parameter.name)),
                    format!(
                        "unknown parameter for {} {} version {} ({known})",
                        self.function_name, self.model_type, self.version_name
                    ),
                ));
            };
            if parameters[..index].iter().any(|earlier| earlier.name == parameter.name) {
                return Err(CoreError::invalid(
                    format!("{list_name}.{}", spec.name),
                    "the parameter is given more than once",
                ));
            }
            let field = format!("{list_name}.{}", spec.name);
            if parameter.value.is_empty() {
                if spec.required {
                    return Err(CoreError::invalid(field, "the parameter is required and may not be empty"));
                }
                continue;
            }
            spec.rule.validate(&field, &parameter.value)?;
            if let ParameterRule::ResourceReference(_) = spec.rule {
                referenced_resources.push(parameter.value.clone());
            }
        }
        if let Some(missing) =
            specs.iter().find(|spec| spec.required && !parameters.iter().any(|parameter| parameter.name == spec.name))
        {
            return Err(CoreError::invalid(
                format!("{list_name}.{}", missing.name),
                format!(
                    "the parameter is required by {} {} version {}",
                    self.function_name, self.model_type, self.version_name
                ),
            ));
        }
        Ok(referenced_resources)
    }

    /// Every parameter of `list` as the trainer sees it: the instance's value when it set one
    /// (non-empty), else the catalog default; parameters with neither are left out.
    pub fn effective_parameters(
        &self,
        list: ParameterList,
        given: &[Parameter],
    ) -> std::collections::BTreeMap<String, String> {
        self.specs(list)
            .iter()
            .filter_map(|spec| {
                let set = given.iter().find(|parameter| parameter.name == spec.name && !parameter.value.is_empty());
                let value =
                    set.map(|parameter| parameter.value.clone()).or_else(|| spec.default_value.map(str::to_string))?;
                Some((spec.name.to_string(), value))
            })
            .collect()
    }

    /// The resource type a parameter must reference, if it references one.
    pub fn referenced_resource_type(&self, list: ParameterList, parameter_name: &str) -> Option<ResourceType> {
        self.specs(list).iter().find(|spec| spec.name == parameter_name).and_then(|spec| match spec.rule {
            ParameterRule::ResourceReference(resource_type) => Some(resource_type),
            _ => None,
        })
    }
}

/// The catalog: every version ever published, oldest first.
pub fn all_versions() -> &'static [FunctionVersion] {
    VERSIONS
}

/// The version with this id, if any.
pub fn find_version(version_id: i64) -> Option<&'static FunctionVersion> {
    VERSIONS.iter().find(|version| version.version_id == version_id)
}

/// The query of GetFunctionCurrentVersion (and the lookup CreateFunctionInstance makes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionQuery<'a> {
    pub function_name: FunctionName,
    pub model_type: &'a str,
    pub function_type: &'a str,
    pub domain: &'a str,
    pub category: &'a str,
}

/// The newest version matching the query, or `Version.NotExist` explaining what is offered.
pub fn current_version(query: VersionQuery<'_>) -> Result<&'static FunctionVersion, CoreError> {
    let offered_for_function: Vec<&FunctionVersion> =
        VERSIONS.iter().filter(|version| version.function_name == query.function_name).collect();
    let matching = offered_for_function
        .iter()
        .filter(|version| {
            version.model_type == query.model_type
                && version.function_type == query.function_type
                && version.domain == normalize_edition(query.domain)
                && version.category == normalize_edition(query.category)
        })
        .max_by_key(|version| version.version_id);
    if let Some(version) = matching {
        return Ok(version);
    }
    let mut offered: Vec<String> = offered_for_function
        .iter()
        .map(|version| format!("modelType={} functionType={}", version.model_type, version.function_type))
        .collect();
    offered.dedup();
    Err(CoreError::VersionNotExist {
        reason: format!(
            "version not exist: function {} has no version for modelType=\"{}\" functionType=\"{}\" domain=\"{}\" category=\"{}\" (offered: {}; domain and category: general edition only)",
            query.function_name,
            crate::names::printable(query.model_type),
            crate::names::printable(query.function_type),
            crate::names::printable(query.domain),
            crate::names::printable(query.category),
            offered.join("; ")
        ),
    })
}

/// `general` and the empty string both mean the general edition.
fn normalize_edition(value: &str) -> &str {
    if value == "general" { "" } else { value }
}

const fn optional(
    name: &'static str,
    default_value: Option<&'static str>,
    rule: ParameterRule,
    description: &'static str,
) -> ParameterSpec {
    ParameterSpec { name, required: false, description, default_value, rule }
}

const fn required(name: &'static str, rule: ParameterRule, description: &'static str) -> ParameterSpec {
    ParameterSpec { name, required: true, description, default_value: None, rule }
}

const QUERY_LOG_FILTER: ParameterRule = ParameterRule::Filter { fields: Some(QUERY_LOG_FILTER_FIELDS) };
const DOCUMENT_FILTER: ParameterRule = ParameterRule::Filter { fields: None };
const RAW_FILE: ParameterRule = ParameterRule::ResourceReference(ResourceType::RawFile);

const CTR_CREATE: &[ParameterSpec] = &[
    optional(
        "id_field",
        Some("id"),
        ParameterRule::FieldName,
        "document field holding the item id (the id behavior events carry as item_id)",
    ),
    optional(
        "title_field",
        Some("title"),
        ParameterRule::FieldName,
        "document field whose tokens become title features",
    ),
    optional(
        "description_field",
        None,
        ParameterRule::FieldName,
        "document field whose tokens become description features",
    ),
    optional("tags_field", None, ParameterRule::FieldName, "document field holding tags (comma or space separated)"),
    optional(
        "category_field",
        None,
        ParameterRule::FieldName,
        "document field holding the item category; also crossed with the user",
    ),
    optional(
        "user_fields",
        None,
        ParameterRule::FieldNameList { max: 10 },
        "fields of the user records (USER data, e.g. age,gender,occupation) that become user features",
    ),
    optional(
        "label_behavior_types",
        Some("click"),
        ParameterRule::BehaviorTypes,
        "behavior types that count as a positive label",
    ),
    optional(
        "training_window_days",
        Some("30"),
        ParameterRule::Integer { min: 1, max: 365 },
        "days of behavior data, ending at the task start, used for training",
    ),
    optional(
        "model",
        Some("fm"),
        ParameterRule::OneOf(&["fm", "ftrl_lr"]),
        "fm = factorization machine, ftrl_lr = FTRL-Proximal logistic regression",
    ),
    optional(
        "hash_bits",
        Some("22"),
        ParameterRule::Integer { min: 12, max: 28 },
        "log2 of the number of hashed feature slots",
    ),
    optional("epochs", Some("5"), ParameterRule::Integer { min: 1, max: 50 }, "passes over the training examples"),
    optional(
        "learning_rate",
        Some("0.05"),
        ParameterRule::Number { min: 0.000001, max: 10.0 },
        "FTRL-Proximal learning rate (alpha) of the linear weights",
    ),
    optional(
        "ftrl_beta",
        Some("1"),
        ParameterRule::Number { min: 0.000001, max: 100.0 },
        "FTRL-Proximal beta: a coordinate's first step is learning_rate / ftrl_beta, smaller lets rare features (user and item ids) learn faster",
    ),
    optional("l1", Some("0.0001"), ParameterRule::Number { min: 0.0, max: 100.0 }, "L1 regularization"),
    optional("l2", Some("0.0001"), ParameterRule::Number { min: 0.0, max: 100.0 }, "L2 regularization"),
    optional("factors", Some("8"), ParameterRule::Integer { min: 1, max: 128 }, "latent factors per feature (fm only)"),
    optional(
        "factor_learning_rate",
        Some("0.02"),
        ParameterRule::Number { min: 0.000001, max: 10.0 },
        "AdaGrad learning rate of the latent factors (fm only)",
    ),
    optional(
        "factor_l2",
        Some("0.03"),
        ParameterRule::Number { min: 0.0, max: 100.0 },
        "L2 regularization of the latent factors (fm only)",
    ),
    optional(
        "holdout_percent",
        Some("10"),
        ParameterRule::Integer { min: 1, max: 50 },
        "the most recent percent of the time range held out for evaluation",
    ),
    optional(
        "holdout_split",
        Some("time"),
        ParameterRule::OneOf(&["time", "random"]),
        "time = hold out the most recent holdout_percent of the time range (honest for a model of the future); random = a seeded random holdout_percent of the examples (for comparison with random-split benchmarks)",
    ),
    optional(
        "threads",
        Some("2"),
        ParameterRule::Integer { min: 1, max: 64 },
        "training threads (Hogwild); 1 makes a run deterministic for its seed",
    ),
    optional(
        "seed",
        Some("42"),
        ParameterRule::Integer { min: 0, max: i64::MAX },
        "random seed (runs are deterministic single-threaded)",
    ),
    optional(
        "user_history",
        Some("false"),
        ParameterRule::Boolean,
        "add the user's own smoothed click-through rate (from earlier examples) as a feature; helps where users return, hurts where most are new",
    ),
    optional(
        "serve_below_baseline",
        Some("false"),
        ParameterRule::Boolean,
        "serve a new model even when its holdout AUC is below the popularity baseline",
    ),
];

const POP_CREATE: &[ParameterSpec] = &[
    optional(
        "behavior_weights",
        Some("click:1"),
        ParameterRule::BehaviorWeights,
        "weight of each behavior type in the popularity signal",
    ),
    optional(
        "training_window_days",
        Some("30"),
        ParameterRule::Integer { min: 1, max: 365 },
        "days of behavior data used",
    ),
    optional(
        "half_life_days",
        Some("7"),
        ParameterRule::Number { min: 0.1, max: 365.0 },
        "time decay: an event this many days old counts half",
    ),
    optional(
        "filter",
        None,
        ParameterRule::Filter { fields: Some(&["biz_id", "item_type", "user_id"]) },
        "only behavior events matching this filter are used",
    ),
];

const POP_USAGE: &[ParameterSpec] = &[optional(
    "default_score",
    Some("0"),
    ParameterRule::Number { min: 0.0, max: 1.0 },
    "score of items the model has not seen",
)];

const CATEGORY_CREATE: &[ParameterSpec] = &[
    required("category_id_field", ParameterRule::FieldName, "document field holding the category id"),
    required("category_name_field", ParameterRule::FieldName, "document field holding the category name"),
    required("title_field", ParameterRule::FieldName, "document field holding the item title"),
    optional(
        "mode",
        Some("behavior"),
        ParameterRule::OneOf(&["behavior", "item"]),
        "behavior = learn from queries and clicks; item = from documents only",
    ),
    optional(
        "training_window_days",
        Some("30"),
        ParameterRule::Integer { min: 1, max: 365 },
        "days of queries and clicks used (behavior mode)",
    ),
    optional("filter", None, DOCUMENT_FILTER, "only documents matching this filter are used"),
];

const HOT_CREATE: &[ParameterSpec] = &[
    optional("filter", None, QUERY_LOG_FILTER, "only searches matching this filter are counted"),
    optional(
        "window_days",
        Some("14"),
        ParameterRule::Integer { min: 1, max: 90 },
        "days of raw_query searches counted",
    ),
    optional(
        "top_n",
        Some("100"),
        ParameterRule::Integer { min: 1, max: 1000 },
        "how many top queries the model keeps",
    ),
];

const HINT_CREATE: &[ParameterSpec] = &[
    optional("filter", None, QUERY_LOG_FILTER, "only searches matching this filter are counted"),
    optional(
        "window_days",
        Some("14"),
        ParameterRule::Integer { min: 1, max: 90 },
        "days of raw_query searches counted",
    ),
    optional("top_n", Some("100"), ParameterRule::Integer { min: 1, max: 1000 }, "how many hint words the model keeps"),
    optional(
        "personalized",
        Some("false"),
        ParameterRule::Boolean,
        "also keep per-user hints from each user's recent queries and clicks",
    ),
];

const DICTIONARY_USAGE: &[ParameterSpec] = &[
    optional("allow_dict_id", None, RAW_FILE, "raw_file resource, one query per line, always served first"),
    optional("deny_dict_id", None, RAW_FILE, "raw_file resource, one query per line, never served"),
];

const SUGGEST_CREATE: &[ParameterSpec] = &[
    required(
        "source_fields",
        ParameterRule::FieldNameList { max: 3 },
        "up to 3 document fields suggestions are built from",
    ),
    optional(
        "mode",
        Some("extract"),
        ParameterRule::OneOf(&["extract", "keep"]),
        "extract = segment and combine terms; keep = original values truncated to 30 characters",
    ),
    optional(
        "window_days",
        Some("7"),
        ParameterRule::Integer { min: 1, max: 90 },
        "days of searches used to score candidates",
    ),
    optional("filter", None, DOCUMENT_FILTER, "only documents matching this filter are used"),
];

const ANALYZER_CREATE: &[ParameterSpec] = &[
    required(
        "training_fields",
        ParameterRule::FieldNameList { max: 5 },
        "document fields the segmentation model learns from",
    ),
    optional(
        "base_analyzer",
        Some("chn_standard"),
        ParameterRule::OneOf(BASE_ANALYZERS),
        "the analyzer the model refines",
    ),
    optional("lowercase", Some("true"), ParameterRule::Boolean, "normalize letters to lower case"),
    optional("full_width_to_half_width", Some("true"), ParameterRule::Boolean, "normalize full-width characters"),
    optional("user_dict_id", None, RAW_FILE, "raw_file resource, one term per line, always kept whole"),
];

const TERMWEIGHT_CREATE: &[ParameterSpec] = &[
    required("training_fields", ParameterRule::FieldNameList { max: 5 }, "document fields term statistics come from"),
    optional(
        "base_analyzer",
        Some("chn_standard"),
        ParameterRule::OneOf(BASE_ANALYZERS),
        "the analyzer that splits queries into terms",
    ),
    optional("window_days", Some("30"), ParameterRule::Integer { min: 1, max: 365 }, "days of queries and clicks used"),
];

const SYNONYM_CREATE: &[ParameterSpec] = &[
    required("training_fields", ParameterRule::FieldNameList { max: 5 }, "document fields synonyms are mined from"),
    optional(
        "base_analyzer",
        Some("chn_standard"),
        ParameterRule::OneOf(BASE_ANALYZERS),
        "the analyzer that splits text into terms",
    ),
    optional(
        "min_similarity",
        Some("0.7"),
        ParameterRule::Number { min: 0.0, max: 1.0 },
        "similarity a pair needs to become synonyms",
    ),
    optional(
        "synonym_data_id",
        None,
        RAW_FILE,
        "raw_file resource of known synonym groups, one group per line, terms separated by \",\"",
    ),
];

const QUERY_LOG_DEPENDENCY: &[Dependency] = &[Dependency {
    condition: "raw_query searches with results in the window > 0",
    dependency: "query_log",
    description: "searches sent with raw_query, pushed to the query log",
}];
const BEHAVIOR_DEPENDENCY: &[Dependency] = &[Dependency {
    condition: "behavior events in the window > 0",
    dependency: "behavior",
    description: "behavior events (data collection 2.0) of the app group",
}];
const CTR_DEPENDENCY: &[Dependency] = &[
    Dependency {
        condition: "expose events in the window > 0",
        dependency: "behavior",
        description: "impressions (bhv_type expose)",
    },
    Dependency {
        condition: "label events in the window > 0",
        dependency: "behavior",
        description: "clicks (or the label behavior types)",
    },
    Dependency { condition: "documents > 0", dependency: "documents", description: "documents carrying the id_field" },
];
const DOCUMENT_DEPENDENCY: &[Dependency] =
    &[Dependency { condition: "documents > 0", dependency: "documents", description: "documents of the app group" }];

const fn version(
    version_id: i64,
    function_name: FunctionName,
    model_type: &'static str,
    description: &'static str,
    create_parameters: &'static [ParameterSpec],
    usage_parameters: &'static [ParameterSpec],
    depends: &'static [Dependency],
) -> FunctionVersion {
    FunctionVersion {
        version_id,
        version_name: "v1",
        function_name,
        model_type,
        function_type: "PAAS",
        domain: "",
        category: "",
        description,
        create_parameters,
        usage_parameters,
        depends,
    }
}

static VERSIONS: &[FunctionVersion] = &[
    version(
        101,
        FunctionName::Ctr,
        "tf_checkpoint",
        "click-through-rate model (FM or FTRL logistic regression) from exposures and clicks",
        CTR_CREATE,
        &[],
        CTR_DEPENDENCY,
    ),
    version(
        201,
        FunctionName::Pop,
        "pop",
        "item popularity in [0,1] from weighted, time-decayed behavior",
        POP_CREATE,
        POP_USAGE,
        BEHAVIOR_DEPENDENCY,
    ),
    version(
        301,
        FunctionName::Category,
        "offline_inference",
        "query to category relevance",
        CATEGORY_CREATE,
        &[],
        DOCUMENT_DEPENDENCY,
    ),
    version(
        401,
        FunctionName::Hot,
        "offline_inference",
        "top searches over a window",
        HOT_CREATE,
        DICTIONARY_USAGE,
        QUERY_LOG_DEPENDENCY,
    ),
    version(
        402,
        FunctionName::Hot,
        "near_realtime",
        "top searches tagged new, hot or surging against the previous window",
        HOT_CREATE,
        DICTIONARY_USAGE,
        QUERY_LOG_DEPENDENCY,
    ),
    version(
        501,
        FunctionName::Hint,
        "offline_inference",
        "hint (placeholder) words",
        HINT_CREATE,
        DICTIONARY_USAGE,
        QUERY_LOG_DEPENDENCY,
    ),
    version(
        502,
        FunctionName::Hint,
        "near_realtime",
        "personalized hint words",
        HINT_CREATE,
        DICTIONARY_USAGE,
        QUERY_LOG_DEPENDENCY,
    ),
    version(
        601,
        FunctionName::Suggest,
        "offline_inference",
        "drop-down suggestions from document fields, scored by searches",
        SUGGEST_CREATE,
        DICTIONARY_USAGE,
        DOCUMENT_DEPENDENCY,
    ),
    version(
        701,
        FunctionName::Analyzer,
        "text",
        "tailored segmentation model",
        ANALYZER_CREATE,
        &[],
        DOCUMENT_DEPENDENCY,
    ),
    version(
        801,
        FunctionName::Termweight,
        "tf_checkpoint",
        "term weights for queries",
        TERMWEIGHT_CREATE,
        &[],
        DOCUMENT_DEPENDENCY,
    ),
    version(
        901,
        FunctionName::Synonym,
        "offline_inference",
        "synonyms mined from documents and searches",
        SYNONYM_CREATE,
        &[],
        DOCUMENT_DEPENDENCY,
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn parameter(name: &str, value: &str) -> Parameter {
        Parameter { name: name.into(), value: value.into() }
    }

    fn query(function_name: FunctionName, model_type: &str) -> VersionQuery<'_> {
        VersionQuery { function_name, model_type, function_type: "PAAS", domain: "", category: "" }
    }

    #[test]
    fn every_function_has_a_version_and_ids_are_unique() {
        for function in FunctionName::ALL {
            assert!(VERSIONS.iter().any(|version| version.function_name == function), "{function}");
        }
        let mut ids: Vec<i64> = VERSIONS.iter().map(|version| version.version_id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), VERSIONS.len());
    }

    #[test]
    fn defaults_follow_their_own_rules() {
        for version in VERSIONS {
            for spec in version.create_parameters.iter().chain(version.usage_parameters) {
                if let Some(default_value) = spec.default_value {
                    spec.rule
                        .validate(spec.name, default_value)
                        .unwrap_or_else(|error| panic!("{} {}: {error}", version.version_id, spec.name));
                }
                assert!(
                    !(spec.required && spec.default_value.is_some()),
                    "{} is required and has a default",
                    spec.name
                );
            }
        }
    }

    #[test]
    fn current_version_matches_model_type_and_edition() {
        assert_eq!(current_version(query(FunctionName::Ctr, "tf_checkpoint")).unwrap().version_id, 101);
        assert_eq!(current_version(query(FunctionName::Hot, "near_realtime")).unwrap().version_id, 402);
        let general = VersionQuery { domain: "general", ..query(FunctionName::Pop, "pop") };
        assert_eq!(current_version(general).unwrap().version_id, 201);
        let error = current_version(query(FunctionName::Ctr, "pop")).unwrap_err();
        assert!(error.to_string().contains("modelType=tf_checkpoint"), "{error}");
        let ecommerce = VersionQuery { domain: "ecommerce", ..query(FunctionName::Ctr, "tf_checkpoint") };
        assert!(current_version(ecommerce).is_err());
        let saas = VersionQuery { function_type: "SAAS", ..query(FunctionName::Ctr, "tf_checkpoint") };
        assert!(current_version(saas).is_err());
    }

    #[test]
    fn parameters_are_validated_by_name_presence_and_rule() {
        let ctr = find_version(101).unwrap();
        assert!(
            ctr.validate_parameters(
                ParameterList::Create,
                &[parameter("id_field", "item_id"), parameter("title_field", "")]
            )
            .is_ok()
        );
        let unknown = ctr.validate_parameters(ParameterList::Create, &[parameter("param1", "value1")]).unwrap_err();
        assert_eq!(unknown.code(), crate::error::ErrorCode::InvalidParameter);
        assert!(unknown.to_string().contains("createParameters.param1"), "{unknown}");
        let bad_value = ctr.validate_parameters(ParameterList::Create, &[parameter("epochs", "0")]).unwrap_err();
        assert!(
            bad_value.to_string().contains("createParameters.epochs") && bad_value.to_string().contains("from 1 to 50"),
            "{bad_value}"
        );
        let twice = ctr
            .validate_parameters(ParameterList::Create, &[parameter("model", "fm"), parameter("model", "fm")])
            .unwrap_err();
        assert!(twice.to_string().contains("more than once"));
        let usage = ctr.validate_parameters(ParameterList::Usage, &[parameter("top_n", "100")]).unwrap_err();
        assert!(
            usage.to_string().contains("usageParameters.top_n") && usage.to_string().contains("accepts none"),
            "{usage}"
        );

        let category = find_version(301).unwrap();
        let missing =
            category.validate_parameters(ParameterList::Create, &[parameter("title_field", "title")]).unwrap_err();
        assert!(missing.to_string().contains("createParameters.category_id_field"), "{missing}");
    }

    #[test]
    fn upstream_hot_example_validates_except_its_dictionary_ids_must_name_resources() {
        let hot = find_version(401).unwrap();
        let bad_filter_field =
            hot.validate_parameters(ParameterList::Create, &[parameter("filter", "biz_type != 1")]).unwrap_err();
        assert!(bad_filter_field.to_string().contains("allowed fields"), "{bad_filter_field}");
        assert!(hot.validate_parameters(ParameterList::Create, &[parameter("filter", "biz_id != 1")]).is_ok());
        let references = hot
            .validate_parameters(
                ParameterList::Usage,
                &[parameter("allow_dict_id", "hot_allow"), parameter("deny_dict_id", "hot_deny")],
            )
            .unwrap();
        assert_eq!(references, vec!["hot_allow".to_string(), "hot_deny".to_string()]);
        assert!(hot.validate_parameters(ParameterList::Usage, &[parameter("allow_dict_id", "123")]).is_err());
    }

    #[test]
    fn effective_parameters_fill_in_defaults() {
        let hot = find_version(401).unwrap();
        let effective =
            hot.effective_parameters(ParameterList::Create, &[parameter("window_days", "7"), parameter("filter", "")]);
        assert_eq!(effective.get("window_days").map(String::as_str), Some("7"));
        assert_eq!(effective.get("top_n").map(String::as_str), Some("100"), "default");
        assert!(!effective.contains_key("filter"), "empty and without a default");
    }

    #[test]
    fn rules_refuse_what_they_should() {
        assert!(ParameterRule::BehaviorWeights.validate("w", "click:1,buy:5").is_ok());
        for bad in ["click", "click:0", "click:-1", "teleport:1", "click:NaN", "click:1e9"] {
            assert!(ParameterRule::BehaviorWeights.validate("w", bad).is_err(), "{bad}");
        }
        assert!(ParameterRule::FieldNameList { max: 3 }.validate("f", "title,body").is_ok());
        for bad in ["title,title", "a,b,c,d", "", "title,", "1x"] {
            assert!(ParameterRule::FieldNameList { max: 3 }.validate("f", bad).is_err(), "{bad}");
        }
        assert!(ParameterRule::Number { min: 0.0, max: 1.0 }.validate("n", "inf").is_err());
        assert!(ParameterRule::Boolean.validate("b", "TRUE").is_err());
    }
}
