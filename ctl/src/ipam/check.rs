// `podctl ipam check [--node N]...`: ipamd's consistency report, as
// `calicoctl ipam check`: allocations without a handle and the reverse,
// blocks and allocations of nodes that do not exist, overlaps, leaked empty
// blocks, unreadable records. The command exits 1 when a problem is found,
// so scripts and cron jobs can alert on it.

use std::fmt::Write as _;

use podroute_proto::ipam::v1::{CheckResponse, Problem, ProblemKind};
use serde::Serialize;

use crate::human::{self, Tone};
use crate::output::{RenderError, View};

/// One problem; `kind` is the snake_case name of ipam.proto's ProblemKind
/// without its prefix ("allocation_without_handle").
#[derive(Debug, Serialize)]
pub struct ProblemView {
    pub kind: String,
    pub subject: String,
    pub detail: String,
}

/// The report; the JSON field names are a documented, stable schema
/// (ctl/OUTPUT.md).
#[derive(Debug, Serialize)]
pub struct CheckReport {
    /// True when no problem was found.
    pub ok: bool,
    pub problems: Vec<ProblemView>,
    pub pools_checked: u64,
    pub blocks_checked: u64,
    pub handles_checked: u64,
    pub allocations_checked: u64,
    /// False when no node list was known, so node checks were skipped.
    pub nodes_checked: bool,
}

impl From<CheckResponse> for CheckReport {
    fn from(r: CheckResponse) -> Self {
        CheckReport {
            ok: r.problems.is_empty(),
            problems: r.problems.into_iter().map(ProblemView::from).collect(),
            pools_checked: r.pools_checked,
            blocks_checked: r.blocks_checked,
            handles_checked: r.handles_checked,
            allocations_checked: r.allocations_checked,
            nodes_checked: r.nodes_checked,
        }
    }
}

impl From<Problem> for ProblemView {
    fn from(p: Problem) -> Self {
        ProblemView {
            kind: kind_name(p.kind),
            subject: p.subject,
            detail: p.detail,
        }
    }
}

pub fn render_check(report: &CheckReport, view: View) -> Result<String, RenderError> {
    if let Some(text) = view.structured(report)? {
        return Ok(text);
    }
    let mut out = String::new();
    if !report.problems.is_empty() {
        let rows: Vec<Vec<String>> = report
            .problems
            .iter()
            .map(|p| vec![p.kind.clone(), p.subject.clone(), p.detail.clone()])
            .collect();
        out.push_str(&human::table(&["KIND", "SUBJECT", "DETAIL"], &rows));
        out.push('\n');
    }
    let _ = writeln!(out, "{}", summary(report));
    let verdict = match report.problems.len() {
        0 => view.style.paint("no problems found", Tone::Good),
        1 => view.style.paint("1 problem found", Tone::Bad),
        n => view.style.paint(&format!("{n} problems found"), Tone::Bad),
    };
    let _ = writeln!(out, "{verdict}");
    Ok(out)
}

/// What was checked, in one line.
fn summary(r: &CheckReport) -> String {
    let nodes = if r.nodes_checked {
        "nodes checked".to_string()
    } else {
        "nodes not checked (ipamd knows no nodes: pass --node NAME for each node)".to_string()
    };
    format!(
        "checked {}, {}, {}, {}; {nodes}",
        count(r.pools_checked, "pool"),
        count(r.blocks_checked, "block"),
        count(r.handles_checked, "handle"),
        count(r.allocations_checked, "allocation"),
    )
}

/// "1 pool", "2 pools".
fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn kind_name(kind: i32) -> String {
    match ProblemKind::try_from(kind) {
        Ok(ProblemKind::AllocationWithoutHandle) => "allocation_without_handle".into(),
        Ok(ProblemKind::HandleWithoutAllocation) => "handle_without_allocation".into(),
        Ok(ProblemKind::BlockOfUnknownNode) => "block_of_unknown_node".into(),
        Ok(ProblemKind::AllocationOfUnknownNode) => "allocation_of_unknown_node".into(),
        Ok(ProblemKind::Overlap) => "overlap".into(),
        Ok(ProblemKind::BlockOutsidePool) => "block_outside_pool".into(),
        Ok(ProblemKind::DuplicateAddress) => "duplicate_address".into(),
        Ok(ProblemKind::LeakedEmptyBlock) => "leaked_empty_block".into(),
        Ok(ProblemKind::UnreadableRecord) => "unreadable_record".into(),
        Ok(ProblemKind::Unspecified) | Err(_) => format!("unknown({kind})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response() -> CheckResponse {
        CheckResponse {
            problems: vec![
                Problem {
                    kind: ProblemKind::LeakedEmptyBlock.into(),
                    subject: "10.244.9.0/26".into(),
                    detail: "empty for 2h, grace 5m".into(),
                },
                Problem {
                    kind: ProblemKind::BlockOfUnknownNode.into(),
                    subject: "10.244.3.0/26".into(),
                    detail: "affine to node-gone".into(),
                },
            ],
            pools_checked: 2,
            blocks_checked: 14,
            handles_checked: 120,
            allocations_checked: 121,
            nodes_checked: true,
        }
    }

    #[test]
    fn problems_table_and_summary() {
        let report = CheckReport::from(response());
        assert!(!report.ok);
        assert_eq!(
            render_check(&report, View::TABLE).unwrap(),
            "\
KIND                   SUBJECT        DETAIL
leaked_empty_block     10.244.9.0/26  empty for 2h, grace 5m
block_of_unknown_node  10.244.3.0/26  affine to node-gone

checked 2 pools, 14 blocks, 120 handles, 121 allocations; nodes checked
2 problems found
"
        );
    }

    #[test]
    fn the_verdict_is_coloured_on_a_terminal() {
        let view = View {
            style: crate::human::Style::COLOR,
            ..View::TABLE
        };
        let text = render_check(&CheckReport::from(response()), view).unwrap();
        assert!(
            text.ends_with("\x1b[31m2 problems found\x1b[0m\n"),
            "{text}"
        );
    }

    #[test]
    fn a_clean_report_says_what_was_not_checked() {
        let report = CheckReport::from(CheckResponse {
            problems: Vec::new(),
            nodes_checked: false,
            ..response()
        });
        assert!(report.ok);
        assert_eq!(
            render_check(&report, View::TABLE).unwrap(),
            "checked 2 pools, 14 blocks, 120 handles, 121 allocations; nodes not checked (ipamd knows no nodes: pass --node NAME for each node)\nno problems found\n"
        );
    }

    #[test]
    fn check_json_schema() {
        let report = CheckReport::from(response());
        let json: serde_json::Value =
            serde_json::from_str(&render_check(&report, View::JSON).unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "ok": false,
                "problems": [
                    {"kind": "leaked_empty_block", "subject": "10.244.9.0/26", "detail": "empty for 2h, grace 5m"},
                    {"kind": "block_of_unknown_node", "subject": "10.244.3.0/26", "detail": "affine to node-gone"},
                ],
                "pools_checked": 2,
                "blocks_checked": 14,
                "handles_checked": 120,
                "allocations_checked": 121,
                "nodes_checked": true,
            })
        );
        assert_eq!(kind_name(0), "unknown(0)");
        assert_eq!(kind_name(99), "unknown(99)");
        assert_eq!(
            kind_name(ProblemKind::UnreadableRecord.into()),
            "unreadable_record"
        );
    }
}
