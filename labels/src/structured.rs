// meta/v1 LabelSelector, the structured form (NetworkPolicy podSelector and
// namespaceSelector): matchLabels and every matchExpressions term are ANDed.
// `LabelSelector` is the wire form (camelCase JSON/YAML); `validate` checks
// it as the API server does and compiles it into a `Selector`.
//
// A *missing* selector (null in Go) matches nothing in Kubernetes; callers
// model that as `Option<LabelSelector>`, it is not a value of this type.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::names::{check_key, check_value};
use crate::selector::{Operator, Requirement, Selector, SelectorError};

/// meta/v1 LabelSelector, as written in manifests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub match_labels: BTreeMap<String, String>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// meta/v1 LabelSelectorRequirement: one matchExpressions term.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelectorRequirement {
    pub key: String,
    pub operator: LabelSelectorOperator,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub values: Vec<String>,
}

/// meta/v1 LabelSelectorOperator; serialized exactly as Kubernetes spells it
/// (case-sensitive; anything else is a decode error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LabelSelectorOperator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

impl fmt::Display for LabelSelectorOperator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LabelSelectorOperator::In => "In",
            LabelSelectorOperator::NotIn => "NotIn",
            LabelSelectorOperator::Exists => "Exists",
            LabelSelectorOperator::DoesNotExist => "DoesNotExist",
        })
    }
}

impl LabelSelector {
    /// Checks the selector as the Kubernetes API server does and returns the
    /// matcher, or the first problem found.
    pub fn validate(&self) -> Result<Selector, SelectorError> {
        for (key, value) in &self.match_labels {
            check_key(key).map_err(|problem| SelectorError::InvalidKey {
                field: "matchLabels".into(),
                key: key.clone(),
                problem,
            })?;
            check_value(value).map_err(|problem| SelectorError::InvalidValue {
                field: format!("matchLabels.{key}"),
                value: value.clone(),
                problem,
            })?;
        }
        for (i, expr) in self.match_expressions.iter().enumerate() {
            expr.validate(&format!("matchExpressions[{i}]"))?;
        }
        Ok(self.compile())
    }

    /// The requirements, unchecked: matchLabels `k: v` is `k=v` (Kubernetes
    /// converts it to `In {v}`, which matches the same labels).
    fn compile(&self) -> Selector {
        let labels = self.match_labels.iter().map(|(k, v)| Requirement {
            key: k.clone(),
            op: Operator::Equals(v.clone()),
        });
        let exprs = self.match_expressions.iter().map(|e| {
            let values = || e.values.iter().cloned().collect();
            let op = match e.operator {
                LabelSelectorOperator::In => Operator::In(values()),
                LabelSelectorOperator::NotIn => Operator::NotIn(values()),
                LabelSelectorOperator::Exists => Operator::Exists,
                LabelSelectorOperator::DoesNotExist => Operator::DoesNotExist,
            };
            Requirement {
                key: e.key.clone(),
                op,
            }
        });
        Selector::new(labels.chain(exprs).collect())
    }
}

impl LabelSelectorRequirement {
    fn validate(&self, field: &str) -> Result<(), SelectorError> {
        check_key(&self.key).map_err(|problem| SelectorError::InvalidKey {
            field: format!("{field}.key"),
            key: self.key.clone(),
            problem,
        })?;
        let values_field = format!("{field}.values");
        match self.operator {
            LabelSelectorOperator::In | LabelSelectorOperator::NotIn => {
                if self.values.is_empty() {
                    return Err(SelectorError::MissingValues {
                        field: values_field,
                        operator: self.operator,
                    });
                }
                for (i, value) in self.values.iter().enumerate() {
                    check_value(value).map_err(|problem| SelectorError::InvalidValue {
                        field: format!("{values_field}[{i}]"),
                        value: value.clone(),
                        problem,
                    })?;
                }
            }
            LabelSelectorOperator::Exists | LabelSelectorOperator::DoesNotExist => {
                if !self.values.is_empty() {
                    return Err(SelectorError::UnexpectedValues {
                        field: values_field,
                        operator: self.operator,
                    });
                }
            }
        }
        Ok(())
    }
}

impl TryFrom<&LabelSelector> for Selector {
    type Error = SelectorError;

    fn try_from(selector: &LabelSelector) -> Result<Self, Self::Error> {
        selector.validate()
    }
}

/// The canonical text form (see `Selector`'s Display), for podctl and logs:
/// `{"matchLabels":{"app":"web"},"matchExpressions":[{"key":"env",
/// "operator":"NotIn","values":["prod"]}]}` prints `app=web,env notin (prod)`.
/// An invalid selector prints too (`k in ()`); the empty one prints nothing.
impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.compile().fmt(f)
    }
}

/// Kubernetes writes absent lists and maps as `null`; read them as empty.
/// For every meta/v1-style wire type (the policy agent's objects use it too).
pub fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests;
