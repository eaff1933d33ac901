//! Reading `/proc/<pid>/stat`-style files (Linux).

use std::path::Path;

/// Clock ticks per second of the tick-valued `stat` fields (`USER_HZ`, 100 on Linux).
pub const TICKS_PER_SECOND: u64 = 100;

/// The fields of a `stat` file after the parenthesised command name (which may itself
/// hold spaces and parentheses): index 0 is the state, 1 the parent pid, 11 `utime`
/// and 12 `stime` (in ticks).
pub fn stat_fields(path: &Path) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(path).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// `utime + stime` of a `stat` file's fields, in ticks.
pub fn cpu_ticks(fields: &[String]) -> Option<u64> {
    let tick = |i: usize| fields.get(i)?.parse::<u64>().ok();
    Some(tick(11)? + tick(12)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_start_after_the_name_even_with_parentheses_in_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stat");
        std::fs::write(
            &path,
            "42 (a) b (c) S 7 42 42 0 -1 4194560 10 0 0 0 31 9 0 0 20 0 1\n",
        )
        .unwrap();
        let fields = stat_fields(&path).unwrap();
        assert_eq!(fields[0], "S");
        assert_eq!(fields[1], "7");
        assert_eq!(cpu_ticks(&fields), Some(40));
    }
}
