//! Template merging, argument merging and `{{args.*}}` resolution.
