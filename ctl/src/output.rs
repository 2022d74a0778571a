// What podctl prints: `-o table` for people (human.rs), `-o json` and
// `-o yaml` for scripts. JSON and YAML are the same serde structures, whose
// fields are a stable, documented schema (ctl/OUTPUT.md).

use serde::Serialize;

use crate::human::Style;

/// `-o`: the output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Output {
    /// Aligned text for people.
    #[default]
    Table,
    /// One JSON document (schema: ctl/OUTPUT.md).
    Json,
    /// The same document as YAML.
    Yaml,
}

/// How one command's result is printed: the format and, for tables, the
/// colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    pub output: Output,
    pub style: Style,
}

/// Why a result could not be printed.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("cannot write JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("cannot write YAML: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
}

impl View {
    /// A plain table.
    pub const TABLE: View = View {
        output: Output::Table,
        style: Style::PLAIN,
    };
    pub const JSON: View = View {
        output: Output::Json,
        style: Style::PLAIN,
    };
    pub const YAML: View = View {
        output: Output::Yaml,
        style: Style::PLAIN,
    };

    /// `value` as JSON (pretty, one trailing newline) or YAML; None when
    /// the output is a table, which each command draws itself.
    pub fn structured<T: Serialize + ?Sized>(
        self,
        value: &T,
    ) -> Result<Option<String>, RenderError> {
        Ok(match self.output {
            Output::Table => None,
            Output::Json => Some(serde_json::to_string_pretty(value)? + "\n"),
            Output::Yaml => Some(serde_yaml_ng::to_string(value)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Sample {
        name: &'static str,
        uptime_s: u64,
        tags: Vec<&'static str>,
        missing: Option<u32>,
    }

    #[test]
    fn yaml_is_the_same_structure_as_json() {
        let sample = Sample {
            name: "tor1",
            uptime_s: 61,
            tags: vec!["a"],
            missing: None,
        };
        assert_eq!(View::TABLE.structured(&sample).unwrap(), None);
        let json = View::JSON.structured(&sample).unwrap().unwrap();
        let yaml = View::YAML.structured(&sample).unwrap().unwrap();
        assert!(json.ends_with("}\n"), "{json}");
        assert_eq!(
            yaml,
            "name: tor1\nuptime_s: 61\ntags:\n- a\nmissing: null\n"
        );
        let from_json: serde_json::Value = serde_json::from_str(&json).unwrap();
        let from_yaml: serde_json::Value = serde_yaml_ng::from_str(&yaml).unwrap();
        assert_eq!(from_json, from_yaml);
    }
}
