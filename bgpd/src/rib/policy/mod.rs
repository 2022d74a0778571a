// Route policy: for now the AS-path regular expressions that import and
// export policies match with.

mod as_path_regex;

pub use as_path_regex::{AsPathRegex, render as render_as_path};
