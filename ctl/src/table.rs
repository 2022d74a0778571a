// Plain aligned text tables for podctl's default (`-o table`) output:
// columns padded to their widest cell, two spaces apart, no trailing blanks.

/// Renders `headers` and `rows` as aligned lines, each ending in '\n'.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            let len = cell.chars().count();
            match widths.get_mut(i) {
                Some(w) => *w = (*w).max(len),
                None => widths.push(len),
            }
        }
    }
    let mut out = String::new();
    let header_cells: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header_cells).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            let pad = widths[i].saturating_sub(cell.chars().count());
            line.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns_without_trailing_spaces() {
        let rows = vec![
            vec![
                "10.0.0.1".to_string(),
                "65001".to_string(),
                "Established".to_string(),
            ],
            vec![
                "fd00::1".to_string(),
                "4200000000".to_string(),
                "Idle".to_string(),
            ],
        ];
        let out = render(&["PEER", "AS", "STATE"], &rows);
        assert_eq!(
            out,
            "PEER      AS          STATE\n\
             10.0.0.1  65001       Established\n\
             fd00::1   4200000000  Idle\n"
        );
    }

    #[test]
    fn header_only_when_no_rows() {
        assert_eq!(render(&["A", "B"], &[]), "A  B\n");
    }
}
