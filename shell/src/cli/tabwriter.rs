//! Column alignment as Go's `text/tabwriter` does it with padding 2 and spaces, which is how
//! Argo's plugin and kubectl lay out their tables.
//!
//! Cells are terminated by `\t`; the text after a line's last tab is not part of any column.
//! A column's width is the widest cell plus the padding, computed over each run of adjacent
//! lines that have a cell in that column (Go's "column blocks"). Widths count characters,
//! not bytes, and ignore ANSI colour sequences.

/// Spaces after the widest cell of a column.
const PADDING: usize = 2;

/// Aligns tab-separated `text` into columns. Trailing spaces are removed from every line.
pub fn align(text: &str) -> String {
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    let mut out = String::new();
    let mut widths = Vec::new();
    format_block(&lines, 0, lines.len(), &mut widths, &mut out);
    out
}

/// Go's `Writer.format`: the lines `from..to` share the column widths in `widths`.
fn format_block(lines: &[Vec<&str>], from: usize, to: usize, widths: &mut Vec<usize>, out: &mut String) {
    let column = widths.len();
    let mut start = from;
    let mut this = from;
    while this < to {
        if column + 1 >= lines[this].len() {
            this += 1;
            continue;
        }
        // A block of lines with a cell in this column begins here.
        write_lines(lines, start, this, widths, out);
        start = this;
        let mut width = 0;
        while this < to && column + 1 < lines[this].len() {
            width = width.max(display_width(lines[this][column]) + PADDING);
            this += 1;
        }
        widths.push(width);
        format_block(lines, start, this, widths, out);
        widths.pop();
        start = this;
    }
    write_lines(lines, start, to, widths, out);
}

fn write_lines(lines: &[Vec<&str>], from: usize, to: usize, widths: &[usize], out: &mut String) {
    for cells in &lines[from..to] {
        let mut line = String::new();
        for (j, cell) in cells.iter().enumerate() {
            line.push_str(cell);
            if j + 1 < cells.len() {
                let width = widths.get(j).copied().unwrap_or(0);
                let pad = width.saturating_sub(display_width(cell));
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end_matches(' '));
        out.push('\n');
    }
}

/// Characters shown on a terminal: ANSI escape sequences (`ESC [ … letter`) take no room.
pub fn display_width(s: &str) -> usize {
    let mut width = 0;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            width += 1;
        }
    }
    width
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell_plus_two() {
        let got = align("NAME\tKIND\tINFO\nlonger-name\tPod\tready:1/1\n");
        assert_eq!(got, "NAME         KIND  INFO\nlonger-name  Pod   ready:1/1\n");
    }

    #[test]
    fn the_text_after_the_last_tab_is_not_aligned_and_trailing_spaces_go() {
        let got = align("a\tb\t\nccc\td\t\n");
        assert_eq!(got, "a    b\nccc  d\n");
    }

    #[test]
    fn colour_sequences_and_wide_symbols_count_as_what_they_show() {
        assert_eq!(display_width("\x1b[32m✔\x1b[0m Healthy"), 9);
        let got = align("\x1b[32m✔\x1b[0m ok\tx\n⟳ longer\ty\n");
        assert_eq!(got, "\x1b[32m✔\x1b[0m ok      x\n⟳ longer  y\n");
    }

    #[test]
    fn a_line_without_the_column_ends_the_block() {
        // As Go's tabwriter: the second block is aligned on its own.
        let got = align("a\tb\nno tabs here\nlonger\tc\n");
        assert_eq!(got, "a  b\nno tabs here\nlonger  c\n");
    }
}
