//! The query index: derived from the log behind the write path.
